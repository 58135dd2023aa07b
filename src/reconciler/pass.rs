//! One reconcile pass, one method per step in the order they run:
//! load -> render -> read inventory -> read live -> find foreign objects -> plan -> ensure namespaces ->
//! roll out (apply, wait, prune) -> record the inventory.
//!
//! Every error before the rollout aborts the pass before the first API write (invariant 2: a failed read
//! never deletes).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use crate::cluster::{ClusterError, ClusterView, FIELD_MANAGER, KindRef, Kube};
use crate::object::ObjectRef;
use crate::plan::{self, Action, Inventory, LiveNames, Plan, PlanError, PlanInput, PlanOptions, RefKind};
use crate::render::{self, RenderError, RenderOptions, Rendered};
use crate::rollout::{
    self, AgeKeySecret, AgeKeys, CancelReason, ProgressEvent, RolloutOptions, RolloutOutcome,
};
use crate::source::{self, CommitInfo, Revision, Snapshot, SourceError};
use crate::topology::{self, Diagnostics, Topology};

/// Kinds the renderer produces for components; always listed so that owned objects of these kinds are
/// found for pruning even when the inventory is missing.
const RENDERED_KINDS: &[(&str, &str)] = &[
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("policy/v1", "PodDisruptionBudget"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
];

/// How a pass runs; the same for every pass of a daemon.
#[derive(Debug, Clone)]
pub struct PassSettings {
    /// Where the inventory ConfigMap lives; `None` means the topology's namespace.
    pub inventory_namespace: Option<String>,
    pub plan: PlanOptions,
    /// Components applied and waited on at the same time.
    pub concurrency: usize,
    /// Writes of one step of one component sent at the same time.
    pub write_concurrency: usize,
    /// How often health waits read the objects they wait on when no watch can tell (a rollout without a
    /// view); with the pass's view they follow watch events.
    pub poll_interval: Duration,
    /// Create the topology's namespace when it does not exist.
    pub create_namespace: bool,
    /// Send every write as a server-side dry run.
    pub dry_run: bool,
    /// The Secret holding the age identities that decrypt encrypted values (`--age-key-secret`).
    pub age_key_secret: Option<AgeKeySecret>,
    /// What the components a cancelled rollout stopped say (set by whoever cancels it).
    pub cancel_reason: CancelReason,
    /// The longest a whole pass may take, reading and planning included (`--pass-timeout`); a rollout
    /// still running then is cancelled. `None`: no bound beyond each request's and each health timeout.
    pub deadline: Option<Duration>,
    /// How long a workload may wait on a reason that heals only if someone acts before its component
    /// fails (`--pod-failure-grace`).
    pub pod_failure_grace: Duration,
}

/// The default of `--pass-timeout`: longer than any rollout of a whole cloud should take, short enough that
/// a pass stuck on an API server that stopped answering ends and is retried.
pub const DEFAULT_PASS_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for PassSettings {
    fn default() -> Self {
        Self {
            inventory_namespace: None,
            plan: PlanOptions::default(),
            concurrency: 8,
            write_concurrency: 4,
            poll_interval: Duration::from_millis(500),
            create_namespace: true,
            dry_run: false,
            age_key_secret: None,
            cancel_reason: CancelReason::default(),
            deadline: Some(DEFAULT_PASS_TIMEOUT),
            pod_failure_grace: rollout::DEFAULT_POD_FAILURE_GRACE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("{origin}: invalid topology:\n{diagnostics}")]
    Invalid {
        origin: String,
        diagnostics: Diagnostics,
    },
    #[error("{origin}: render failed: {source}")]
    Render {
        origin: String,
        #[source]
        source: Box<RenderError>,
    },
    #[error("reading the inventory failed: {source}")]
    ReadInventory {
        #[source]
        source: ClusterError,
    },
    #[error("the stored inventory is unusable: {source}")]
    Inventory {
        #[source]
        source: PlanError,
    },
    #[error("reading live objects failed: {source}")]
    ReadLive {
        #[source]
        source: ClusterError,
    },
    #[error("planning failed: {source}")]
    Plan {
        #[source]
        source: PlanError,
    },
    #[error("namespace {namespace}: {source}")]
    Namespace {
        namespace: String,
        #[source]
        source: ClusterError,
    },
    /// `message` already names the revision and says how to allow each refusal.
    #[error("{message}")]
    Blocked { revision: String, message: String },
    /// `--pass-timeout` passed before the pass had planned.
    #[error("the pass did not finish planning within its deadline of {} (--pass-timeout)", humantime::format_duration(*after))]
    Deadline { after: Duration },
    #[error("recording the inventory failed: {source}")]
    WriteInventory {
        #[source]
        source: ClusterError,
    },
    /// `--verify-signatures`: the commit is not signed by an allowed key. `message` names the commit and the key.
    #[error("{message}")]
    Unverified { revision: String, message: String },
    /// `--verify-signatures`: the signature could not be checked (the tags could not be fetched).
    #[error("verifying the commit's signature failed: {source}")]
    Verify {
        #[source]
        source: SourceError,
    },
}

impl PassError {
    /// The kind of error as a metric label value (`keelson_passes_total{reason}`): the step that failed,
    /// or for API errors what the cluster door says.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PassError::Invalid { .. } => "invalid_topology",
            PassError::Render { .. } => "render",
            PassError::Inventory { .. } => "inventory",
            PassError::Plan { .. } => "plan",
            PassError::Blocked { .. } => "refused",
            PassError::Unverified { .. } => "unverified",
            PassError::Verify { .. } => "source",
            PassError::Deadline { .. } => "deadline",
            PassError::ReadInventory { source }
            | PassError::ReadLive { source }
            | PassError::Namespace { source, .. }
            | PassError::WriteInventory { source } => source.metric_label(),
        }
    }

    /// Errors that a retry of the same revision cannot fix: they wait for a new commit (or settings).
    /// A permission Keelson lacks (403) or credentials the server refuses (401) are among them: retrying
    /// them forever would only hide that a person must act.
    pub fn is_configuration(&self) -> bool {
        match self {
            PassError::Invalid { .. }
            | PassError::Render { .. }
            | PassError::Blocked { .. }
            | PassError::Unverified { .. }
            | PassError::Inventory { .. } => true,
            _ => self.cluster_error().is_some_and(ClusterError::is_configuration),
        }
    }

    /// The API error that ended the pass, for the steps that talk to the cluster.
    pub fn cluster_error(&self) -> Option<&ClusterError> {
        match self {
            PassError::ReadInventory { source }
            | PassError::ReadLive { source }
            | PassError::Namespace { source, .. }
            | PassError::WriteInventory { source } => Some(source),
            _ => None,
        }
    }

    /// The reason of the status condition and the Event a failed pass leaves.
    pub fn status_reason(&self) -> &'static str {
        match self {
            PassError::Unverified { .. } => "UnverifiedCommit",
            _ if self.cluster_error().and_then(ClusterError::code) == Some(403) => "MissingPermission",
            _ if self.cluster_error().and_then(ClusterError::code) == Some(401) => "Unauthorized",
            e if e.is_configuration() => "InvalidConfiguration",
            _ => "TransientError",
        }
    }
}

/// Everything a pass computed before writing anything.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub revision: Revision,
    pub commit: Option<CommitInfo>,
    pub topology: Topology,
    pub rendered: Rendered,
    pub inventory: Option<Inventory>,
    pub plan: Plan,
    /// The plan covers only some components (see [`Prepared::only_components`]): executing it never
    /// records the inventory, which must list every object of the revision.
    pub partial: bool,
    /// When the pass started reading, for its deadline.
    pub started: std::time::Instant,
    /// The watch-fed view the plan was made from; the rollout waits on its events.
    pub view: Option<ClusterView>,
}

impl Prepared {
    /// This pass narrowed to `components` (closed under dependencies): their writes only, no deletions.
    pub fn only_components(&self, components: &BTreeSet<String>) -> Prepared {
        Prepared {
            plan: self.plan.only_components(components),
            partial: true,
            ..self.clone()
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone)]
pub struct PassOutcome {
    pub rollout: RolloutOutcome,
    /// Whether the inventory now records this revision (only after a converged rollout).
    pub inventory_recorded: bool,
}

/// Load, render, read the cluster and plan. Reads only: nothing is written.
pub async fn prepare(
    kube: &Kube,
    snapshot: &Snapshot,
    settings: &PassSettings,
) -> Result<Prepared, PassError> {
    prepare_with(kube, None, snapshot, settings).await
}

/// Like [`prepare`], reading the cluster through `view` when it is the topology's (a daemon keeps its
/// view from pass to pass, so a warm view answers without a request); otherwise through a new one.
#[instrument(skip_all, fields(revision = %snapshot.revision.short()))]
pub async fn prepare_with(
    kube: &Kube,
    view: Option<&ClusterView>,
    snapshot: &Snapshot,
    settings: &PassSettings,
) -> Result<Prepared, PassError> {
    let reading = read_and_plan(kube, view, snapshot, settings);
    match settings.deadline {
        // Reads only: abandoning them midway is safe.
        Some(after) => tokio::time::timeout(after, reading)
            .await
            .unwrap_or(Err(PassError::Deadline { after })),
        None => reading.await,
    }
}

async fn read_and_plan(
    kube: &Kube,
    view: Option<&ClusterView>,
    snapshot: &Snapshot,
    settings: &PassSettings,
) -> Result<Prepared, PassError> {
    let started = std::time::Instant::now();
    let topology = load(snapshot)?;
    let rendered = render_objects(&topology, snapshot)?;
    let inventory_namespace = inventory_namespace(&topology, settings);
    let view = match view {
        Some(view)
            if view.topology() == topology.name
                && view.inventory_namespace() == Some(inventory_namespace.as_str()) =>
        {
            view.clone()
        }
        _ => kube.view_with_inventory(&topology.name, Some(&inventory_namespace)),
    };
    let inventory = read_inventory(&view).await?;
    let live = read_live(&view, &topology, &rendered, inventory.as_ref()).await?;
    let foreign = find_foreign(&view, &rendered, &live).await?;
    check_kinds(&view, &rendered).await?;
    let options = plan_options(snapshot, settings);
    let mut plan = make_plan(&PlanInput {
        topology: &topology,
        revision: &snapshot.revision.id,
        desired: &rendered.objects,
        live: &live,
        foreign: &foreign,
        inventory: inventory.as_ref(),
        options: &options,
    })?;
    let found = preflight(&view, &rendered).await?;
    plan.warnings.extend(found.warnings);
    plan.skipped_checks = found.skipped;
    Ok(Prepared {
        revision: snapshot.revision.clone(),
        commit: snapshot.commit.clone(),
        topology,
        rendered,
        inventory,
        plan,
        partial: false,
        started,
        view: Some(view),
    })
}

/// Carry out a prepared plan: refuse a blocked plan, make sure the namespaces exist, roll out, and record
/// the inventory once the cluster equals the revision.
#[instrument(skip_all, fields(revision = %prepared.revision.short()))]
pub async fn execute(
    kube: &Kube,
    prepared: &Prepared,
    settings: &PassSettings,
    cancel: CancellationToken,
    progress: Option<UnboundedSender<ProgressEvent>>,
) -> Result<PassOutcome, PassError> {
    refuse_if_blocked(prepared)?;
    if settings.create_namespace && !settings.dry_run {
        ensure_namespaces(kube, &prepared.plan).await?;
    }
    let rollout = roll_out(kube, prepared, settings, cancel, progress).await;
    let inventory_recorded = if rollout.converged() && !settings.dry_run && !prepared.partial {
        record_inventory(kube, prepared, settings).await?;
        true
    } else {
        false
    };
    Ok(PassOutcome {
        rollout,
        inventory_recorded,
    })
}

/// The error a blocked plan (prune budget, policy, ownership, schema downgrade) ends its pass with, before
/// anything is written.
#[instrument(skip_all, fields(revision = %prepared.revision.short()))]
pub fn refuse_if_blocked(prepared: &Prepared) -> Result<(), PassError> {
    match prepared.plan.blocked_message() {
        Some(message) => Err(PassError::Blocked {
            revision: prepared.revision.id.clone(),
            message,
        }),
        None => Ok(()),
    }
}

/// The operator's options plus what the commit itself allows: a `Keelson-Allow-Downgrade` trailer names the
/// components whose schema downgrade this commit means to make.
fn plan_options(snapshot: &Snapshot, settings: &PassSettings) -> PlanOptions {
    match &snapshot.commit {
        Some(commit) => settings.plan.with_commit_trailers(
            &source::parse_trailers(&commit.message),
            snapshot.signer.is_some(),
        ),
        None => settings.plan.clone(),
    }
}

#[instrument(skip_all, fields(revision = %snapshot.revision.short()))]
fn load(snapshot: &Snapshot) -> Result<Topology, PassError> {
    topology::load(snapshot).map_err(|diagnostics| PassError::Invalid {
        origin: snapshot.revision.origin.clone(),
        diagnostics,
    })
}

#[instrument(skip_all, fields(revision = %snapshot.revision.short()))]
fn render_objects(topology: &Topology, snapshot: &Snapshot) -> Result<Rendered, PassError> {
    let options = RenderOptions {
        revision: Some(snapshot.revision.id.clone()),
    };
    render::render(topology, &options).map_err(|source| PassError::Render {
        origin: snapshot.revision.origin.clone(),
        source: Box::new(source),
    })
}

fn inventory_namespace(topology: &Topology, settings: &PassSettings) -> String {
    settings
        .inventory_namespace
        .clone()
        .unwrap_or_else(|| topology.spec.namespace.clone())
}

/// The stored inventory, from the view's ConfigMap feed of the inventory namespace.
#[instrument(skip_all)]
async fn read_inventory(view: &ClusterView) -> Result<Option<Inventory>, PassError> {
    let stored = view
        .inventory()
        .await
        .map_err(|source| PassError::ReadInventory { source })?;
    stored
        .map(|text| Inventory::from_json(&text))
        .transpose()
        .map_err(|source| PassError::Inventory { source })
}

/// The owned objects of every kind and namespace the desired objects, the inventory or the renderer can
/// use, from the view: one list per kind per namespace the first time, nothing once its watches run.
#[instrument(skip_all, fields(topology = %topology.name))]
async fn read_live(
    view: &ClusterView,
    topology: &Topology,
    rendered: &Rendered,
    inventory: Option<&Inventory>,
) -> Result<Vec<Value>, PassError> {
    let mut kinds: BTreeSet<KindRef> = RENDERED_KINDS.iter().map(|(a, k)| KindRef::new(*a, *k)).collect();
    let mut namespaces: BTreeSet<String> = BTreeSet::from([topology.spec.namespace.clone()]);
    namespaces.extend(topology.spec.policy.allowed_namespaces.iter().cloned());
    let mut note = |reference: &ObjectRef| {
        kinds.insert(KindRef::of(reference));
        if let Some(ns) = &reference.namespace {
            namespaces.insert(ns.clone());
        }
    };
    rendered.objects.iter().for_each(|o| note(&o.reference));
    inventory
        .iter()
        .flat_map(|i| i.objects.iter())
        .for_each(|e| note(&e.reference));

    let kinds: Vec<KindRef> = kinds.into_iter().collect();
    let namespaces: Vec<String> = namespaces.into_iter().collect();
    view.owned(&kinds, &namespaces)
        .await
        .map_err(|source| PassError::ReadLive { source })
}

/// Desired objects that are not in the owned list but whose name is taken: someone else's, never to be
/// taken over. Answered from a metadata watch of each kind (and namespace) Keelson is about to create
/// objects of: one list per kind, nothing for objects it already owns.
#[instrument(skip_all)]
async fn find_foreign(
    view: &ClusterView,
    rendered: &Rendered,
    live: &[Value],
) -> Result<Vec<ObjectRef>, PassError> {
    let owned: BTreeSet<(String, String, Option<String>, String)> =
        live.iter().filter_map(identity).collect();
    let mut foreign = Vec::new();
    for object in &rendered.objects {
        let r = &object.reference;
        let key = (
            r.api_version.clone(),
            r.kind.clone(),
            r.namespace.clone(),
            r.name.clone(),
        );
        if owned.contains(&key) {
            continue;
        }
        match view.foreign(r).await {
            Ok(Some(_)) => foreign.push(r.clone()),
            Ok(None) => {}
            Err(source) => return Err(PassError::ReadLive { source }),
        }
    }
    Ok(foreign)
}

/// Every desired object's kind is served, or defined by a CustomResourceDefinition of the same revision
/// (its objects are then created after it); otherwise the pass stops here, naming the object and the kind.
#[instrument(skip_all)]
async fn check_kinds(view: &ClusterView, rendered: &Rendered) -> Result<(), PassError> {
    let kinds: BTreeSet<(String, String)> = rendered
        .objects
        .iter()
        .map(|o| (o.reference.api_version.clone(), o.reference.kind.clone()))
        .collect();
    let mut unserved = BTreeSet::new();
    for (api_version, kind) in kinds {
        let served = view
            .served(&KindRef::new(api_version.as_str(), kind.as_str()))
            .await
            .map_err(|source| PassError::ReadLive { source })?;
        if !served {
            unserved.insert((api_version, kind));
        }
    }
    plan::preflight::check_unserved(&rendered.objects, &unserved).map_err(|source| PassError::Plan { source })
}

/// Pre-flight: the names the desired objects reference that exist live, read from the view's metadata
/// watches (one list per kind and namespace, then nothing), checked against what the revision makes. A
/// kind whose names Keelson may not list is skipped, and said once.
#[instrument(skip_all)]
async fn preflight(view: &ClusterView, rendered: &Rendered) -> Result<plan::Preflight, PassError> {
    let references = plan::preflight::references(&rendered.objects);
    let mut live = LiveNames::default();
    for (kind, namespace) in plan::preflight::needed(&rendered.objects, &references) {
        if live.skipped(kind) {
            continue;
        }
        let kind_ref = KindRef::new(kind.api_version(), kind.kind());
        match view.names(&kind_ref, namespace.as_deref()).await {
            Ok(names) => live.insert(kind, namespace, names.unwrap_or_default()),
            Err(e) if e.code() == Some(403) => {
                let place = namespace
                    .map(|ns| format!(" in namespace {ns}"))
                    .unwrap_or_default();
                let reason = format!(
                    "list not granted{place}; grant list and watch on {} to have references to them checked",
                    kind.plural()
                );
                say_skipped_once(kind, &reason);
                live.skip(kind, reason);
            }
            Err(source) => return Err(PassError::ReadLive { source }),
        }
    }
    Ok(plan::preflight::check(&rendered.objects, &references, &live))
}

/// A daemon plans again and again; a missing grant is logged at warning level once per process.
fn say_skipped_once(kind: RefKind, reason: &str) {
    static SAID: std::sync::Mutex<BTreeSet<RefKind>> = std::sync::Mutex::new(BTreeSet::new());
    let first = SAID.lock().unwrap_or_else(|p| p.into_inner()).insert(kind);
    if first {
        tracing::warn!(resource = kind.plural(), %reason, "pre-flight skipped");
    } else {
        tracing::debug!(resource = kind.plural(), %reason, "pre-flight skipped");
    }
}

/// Desired vs live: the plan (pure).
#[instrument(skip_all, fields(revision = %input.revision))]
fn make_plan(input: &PlanInput<'_>) -> Result<Plan, PassError> {
    plan::plan(input).map_err(|source| PassError::Plan { source })
}

fn identity(object: &Value) -> Option<(String, String, Option<String>, String)> {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Some((
        text("/apiVersion")?,
        text("/kind")?,
        text("/metadata/namespace"),
        text("/metadata/name")?,
    ))
}

/// Namespaces that objects about to be created live in; created (labelled as Keelson's, never pruned)
/// when missing.
#[instrument(skip_all)]
async fn ensure_namespaces(kube: &Kube, plan: &Plan) -> Result<(), PassError> {
    let namespaces: BTreeSet<&str> = plan
        .waves
        .iter()
        .flat_map(|w| &w.components)
        .flat_map(|c| &c.changes)
        .filter(|c| c.action == Action::Create)
        .filter_map(|c| c.reference.namespace.as_deref())
        .collect();
    for namespace in namespaces {
        kube.ensure_namespace(namespace, FIELD_MANAGER)
            .await
            .map_err(|source| PassError::Namespace {
                namespace: namespace.to_string(),
                source,
            })?;
    }
    Ok(())
}

#[instrument(skip_all, fields(revision = %prepared.revision.short()))]
async fn roll_out(
    kube: &Kube,
    prepared: &Prepared,
    settings: &PassSettings,
    cancel: CancellationToken,
    progress: Option<UnboundedSender<ProgressEvent>>,
) -> RolloutOutcome {
    // What is left of the pass's deadline cancels the rollout, as a newer revision would.
    let deadline = settings.deadline.map(|after| {
        let (token, reason) = (cancel.clone(), settings.cancel_reason.clone());
        let left = after.saturating_sub(prepared.started.elapsed());
        tokio::spawn(async move {
            tokio::time::sleep(left).await;
            let after = humantime::format_duration(after);
            reason.set(&format!(
                "cancelled: the pass deadline of {after} passed (--pass-timeout)"
            ));
            token.cancel();
        })
    });
    let _stop_timer = deadline.map(|timer| AbortOnDrop(timer.abort_handle()));
    let options = RolloutOptions {
        concurrency: settings.concurrency,
        write_concurrency: settings.write_concurrency,
        cancel,
        cancel_reason: settings.cancel_reason.clone(),
        progress,
        poll_interval: settings.poll_interval,
        dry_run: settings.dry_run,
        age_keys: AgeKeys::from_secret(settings.age_key_secret.clone()),
        view: prepared.view.clone(),
        pod_failure_grace: settings.pod_failure_grace,
        ..RolloutOptions::default()
    };
    rollout::execute(kube, &prepared.plan, &options).await
}

/// Stops the deadline's timer with the rollout it bounds.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[instrument(skip_all, fields(revision = %prepared.revision.short()))]
async fn record_inventory(
    kube: &Kube,
    prepared: &Prepared,
    settings: &PassSettings,
) -> Result<(), PassError> {
    let inventory = Inventory::from_plan(&prepared.plan);
    if prepared
        .inventory
        .as_ref()
        .is_some_and(|stored| stored.objects == inventory.objects && stored.revision == inventory.revision)
    {
        // A pass over the revision the inventory already records (an unchanged commit) writes nothing here,
        // so that it writes nothing at all; every other successful pass records its revision, which is the
        // baseline `plan` names.
        return Ok(());
    }
    let namespace = inventory_namespace(&prepared.topology, settings);
    kube.write_inventory(&namespace, &prepared.topology.name, &inventory.to_json(), false)
        .await
        .map_err(|source| PassError::WriteInventory { source })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn commit(message: &str) -> Snapshot {
        let revision = Revision {
            id: "abc".into(),
            origin: "repo".into(),
        };
        let commit = CommitInfo {
            sha: "abc".into(),
            subject: message.lines().next().unwrap_or_default().into(),
            message: message.into(),
            author_name: "A".into(),
            author_email: "a@example.com".into(),
            time: 0,
            parents: Vec::new(),
            reverts: None,
        };
        Snapshot::new(revision, Some(commit), BTreeMap::new())
    }

    #[test]
    fn a_commit_trailer_adds_to_the_downgrades_the_operator_allows() {
        let rows: &[(&str, &[&str])] = &[
            (
                "Revert\n\nThis reverts commit abc1234.\n\nKeelson-Allow-Downgrade: nova",
                &["glance", "nova"],
            ),
            (
                "Revert\n\nKEELSON-ALLOW-DOWNGRADE: Nova-API, glance\nkeelson-allow-downgrade: all",
                &["all", "glance", "nova-api"],
            ),
            ("Revert\n\nSigned-off-by: A <a@b>", &["glance"]),
            // Only the last paragraph holds trailers.
            (
                "Revert\n\nKeelson-Allow-Downgrade: nova\n\nreverted because of a bug",
                &["glance"],
            ),
            ("Keelson-Allow-Downgrade: nova", &["glance"]),
        ];
        let mut settings = PassSettings::default();
        settings.plan.allow_downgrade.insert("glance".into());
        for (message, want) in rows {
            let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                plan_options(&commit(message), &settings).allow_downgrade,
                want,
                "{message:?}"
            );
        }
    }
}
