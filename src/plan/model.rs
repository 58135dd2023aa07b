//! The values a plan is made of: what goes in ([`PlanInput`], [`PlanOptions`]) and what comes out
//! ([`Plan`] with its waves, changes, deletions and refusals).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::object::ObjectRef;
use crate::render::{RenderedObject, SecretRecipe, Stage};
use crate::topology::{Topology, WaitFor};

use super::inventory::Inventory;
use super::preflight::SkippedCheck;

/// Everything [`super::plan`] looks at. All of it is read by the caller beforehand; planning is pure.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub topology: &'a Topology,
    /// The revision being planned (the commit the desired objects were rendered from).
    pub revision: &'a str,
    pub desired: &'a [RenderedObject],
    /// Objects read from the cluster: those carrying Keelson's ownership label, plus any inventory object the
    /// cluster layer could still read. Only objects owned by this topology are ever updated or deleted.
    pub live: &'a [serde_json::Value],
    /// Objects that exist under a desired name but do not carry this topology's ownership labels.
    pub foreign: &'a [ObjectRef],
    /// What the last successful pass applied, if one is recorded.
    pub inventory: Option<&'a Inventory>,
    pub options: &'a PlanOptions,
}

/// Choices the operator makes per invocation (flags), as opposed to the policy written in `keelson.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Let this pass delete more than `spec.policy.pruneBudgetPercent` of the owned objects.
    pub allow_prune_over_budget: bool,
    /// Plan no deletions at all: objects no longer desired stay in the cluster (and in the next plan).
    pub skip_prune: bool,
    /// Components whose move to an older OpenStack release is allowed despite their database migrations:
    /// component names, project names, or `all`. Filled from the commit's `Keelson-Allow-Downgrade` trailer.
    pub allow_downgrade: BTreeSet<String>,
    /// The live objects are exact renderings of another commit (`keelson plan --base`), not objects read
    /// from a cluster: fields they have and the desired objects lack are reported as removed.
    pub live_is_rendered: bool,
    /// Signature verification is on: commit trailers that relax a guard (`Keelson-Allow-Downgrade`) count
    /// only on a commit whose signature was verified.
    pub trailers_need_signature: bool,
}

impl PlanOptions {
    /// These options plus what the commit being planned allows through its trailers (a
    /// `Keelson-Allow-Downgrade` names the components whose schema downgrade it means to make). With
    /// signature verification on, the trailers of a commit whose signature was not verified count for nothing.
    /// `trailers` are the commit message's, as `source::parse_trailers` reads them.
    pub fn with_commit_trailers(&self, trailers: &[(String, String)], verified: bool) -> PlanOptions {
        let mut options = self.clone();
        if self.trailers_need_signature && !verified {
            if !super::allowed_downgrades(trailers).is_empty() {
                tracing::warn!("commit trailers ignored: the commit's signature was not verified");
            }
            return options;
        }
        let allowed = super::allowed_downgrades(trailers);
        if !allowed.is_empty() {
            tracing::info!(allowed = ?allowed, "commit allows schema downgrades");
        }
        options.allow_downgrade.extend(allowed);
        options
    }
}

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Delete => "delete",
        }
    }
}

/// One field that differs between the live object (`before`) and the desired one (`after`).
/// `None` means the field is absent on that side. Secret values are `"(redacted)"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDiff {
    /// `spec.template.spec.containers[name=api].image`, `metadata.annotations["keelson.dev/hash"]`.
    pub path: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// The planned action for one object.
#[derive(Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub action: Action,
    pub reference: ObjectRef,
    pub component: String,
    pub stage: Stage,
    /// Order inside the stage: the rollout applies one step's objects, waits until they are healthy, then
    /// goes on to the next (jobs in the order written).
    #[serde(skip_serializing_if = "is_zero")]
    pub step: u32,
    /// How long this object may take to become healthy, when it says so itself (a job's `timeout`).
    #[serde(
        rename = "timeoutSeconds",
        serialize_with = "seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<std::time::Duration>,
    /// For updates: the fields that differ (desired ⊆ live comparison). Empty for the other actions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<FieldDiff>,
    /// True when the rendered object did not change (same hash) but someone changed owned fields in the cluster.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drift: bool,
    /// The object to apply (creates, updates, unchanged). Never serialized: it may hold Secret values.
    #[serde(skip)]
    pub desired: Option<serde_json::Value>,
    /// For a Secret Keelson makes: how the rollout makes its values (never serialized).
    #[serde(skip)]
    pub secret: Option<SecretRecipe>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn seconds<S: serde::Serializer>(d: &Option<std::time::Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_secs()),
        None => s.serialize_none(),
    }
}

// Written by hand so that `{:?}` in a log line cannot print a Secret's body.
impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Change")
            .field("action", &self.action)
            .field("reference", &self.reference)
            .field("component", &self.component)
            .field("stage", &self.stage)
            .field("step", &self.step)
            .field("timeout", &self.timeout)
            .field("diff", &self.diff)
            .field("drift", &self.drift)
            .field("desired", &self.desired.as_ref().map(|_| "(body omitted)"))
            .finish()
    }
}

/// One component's share of a wave, with what the rollout needs to know about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentPlan {
    pub name: String,
    pub project: String,
    pub depends_on: Vec<String>,
    /// The dependencies waited for less than fully healthy (`for: Service` or `for: SameNode`); the others
    /// gate on health.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub waits_for: BTreeMap<String, WaitFor>,
    /// In stage order (config, services, pre-jobs, workload, post-jobs); for deletions the reverse.
    pub changes: Vec<Change>,
    /// How long the component may take to become healthy (for deletions: to be gone); its own
    /// `healthTimeout`, else the topology's.
    #[serde(skip)]
    pub health_timeout: Duration,
    /// Its objects may be deleted and recreated when the API refuses an immutable change.
    #[serde(skip)]
    pub recreate_on_immutable_change: bool,
}

/// The topology's default health timeout.
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(600);

impl Default for ComponentPlan {
    fn default() -> Self {
        Self {
            name: String::new(),
            project: String::new(),
            depends_on: Vec::new(),
            waits_for: BTreeMap::new(),
            changes: Vec::new(),
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
            recreate_on_immutable_change: false,
        }
    }
}

impl ComponentPlan {
    /// Number of changes with this action.
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

/// Components whose dependencies all sit in earlier waves; the rollout applies a wave only after the previous
/// one is healthy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Wave {
    /// 0-based position in apply order.
    pub index: usize,
    pub components: Vec<ComponentPlan>,
}

/// Deletions that may run together; deletion waves run after every apply wave, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionWave {
    pub index: usize,
    pub components: Vec<ComponentPlan>,
}

/// Why Keelson will not touch an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum RefusalReason {
    /// The object exists but is not owned by this topology.
    #[serde(rename_all = "camelCase")]
    NotOwned { topology: String },
    /// The object's namespace is outside `spec.policy.allowedNamespaces`.
    #[serde(rename_all = "camelCase")]
    NamespaceNotAllowed { namespace: String },
    /// A cluster-scoped object, or a kind outside Keelson's own kinds and `spec.policy.allowedKinds`.
    #[serde(rename_all = "camelCase")]
    KindNotAllowed { kind: String, cluster_scoped: bool },
    /// A PersistentVolumeClaim or an object annotated `keelson.dev/persistent: "true"` would be deleted.
    PersistentData,
    /// A Secret with generated values would be deleted, but `spec.tombstones.secrets` does not list it.
    GeneratedSecret,
    /// The pass would delete more than the prune budget allows.
    #[serde(rename_all = "camelCase")]
    PruneOverBudget {
        deletions: usize,
        owned: usize,
        budget_percent: u32,
    },
    /// A component with database migrations (pre-jobs) would move to an older OpenStack release than the one
    /// running (`from` and `to` are the image tags).
    #[serde(rename_all = "camelCase")]
    SchemaDowngrade { from: String, to: String },
}

/// Something the plan does that the operator should know about, though it is allowed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanWarning {
    pub reference: ObjectRef,
    pub component: String,
    pub kind: WarningKind,
    /// One sentence for the operator.
    pub message: String,
}

/// What a [`PlanWarning`] is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum WarningKind {
    /// A schema downgrade that the commit trailer or the policy allowed; it is applied.
    #[serde(rename_all = "camelCase")]
    SchemaDowngradeAllowed {
        from: String,
        to: String,
        allowed_by: String,
    },
    /// A component with database migrations changes image in a way whose direction cannot be told (a
    /// digest, a tag naming no release); it is applied.
    #[serde(rename_all = "camelCase")]
    ImageOrderUnknown { from: String, to: String },
    /// Pre-flight: a name the object gives (`field`) resolves neither to an object this revision makes nor
    /// to one in the cluster. With `blocks_apply` (a Secret its pods mount or read), the rollout does not
    /// start the component.
    #[serde(rename_all = "camelCase")]
    UnresolvedReference {
        field: String,
        target_kind: String,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        blocks_apply: bool,
    },
}

/// An object Keelson refuses to write or delete, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    pub reference: ObjectRef,
    pub component: String,
    /// What Keelson would have done had it not refused.
    pub action: Action,
    pub reason: RefusalReason,
    /// Whether the refusal stops the whole plan. A protected PersistentVolumeClaim does not: it is kept and the
    /// rest proceeds. Everything else does, because the cluster could not reach the desired state.
    pub blocking: bool,
    /// One sentence for the operator, including how to allow the action.
    pub message: String,
}

/// Counts per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub unchanged: usize,
    pub delete: usize,
    pub refused: usize,
}

/// The ordered, checked answer to "what must change so the cluster equals this revision".
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub topology: String,
    pub revision: String,
    /// The revision recorded in the inventory (the last successful pass), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<String>,
    /// Apply waves, in order. Every component of the topology appears exactly once.
    pub waves: Vec<Wave>,
    /// Deletion waves, run after all apply waves: dependents before their dependencies.
    pub deletions: Vec<DeletionWave>,
    pub refusals: Vec<Refusal>,
    /// Allowed but noteworthy: schema downgrades allowed by a trailer or the policy, image changes of
    /// migrating components that cannot be ordered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<PlanWarning>,
    /// Pre-flight checks that could not run (the names of a kind could not be read), once per kind.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_checks: Vec<SkippedCheck>,
    pub summary: Summary,
}

impl Plan {
    /// Whether anything would be written or deleted, or the plan is blocked (the cluster differs from Git
    /// either way). This is what `--detailed-exitcode` reports as exit code 2.
    pub fn has_changes(&self) -> bool {
        let s = &self.summary;
        s.create + s.update + s.delete > 0 || self.is_blocked()
    }

    /// Whether a refusal forbids executing this plan at all.
    pub fn is_blocked(&self) -> bool {
        self.refusals.iter().any(|r| r.blocking)
    }

    /// Why the plan is blocked and exactly how to allow it; `None` when it is not blocked.
    pub fn blocked_message(&self) -> Option<String> {
        let blocking: Vec<&Refusal> = self.refusals.iter().filter(|r| r.blocking).collect();
        if blocking.is_empty() {
            return None;
        }
        let mut lines = vec![format!(
            "plan for revision {} is blocked: {} object(s) refused, nothing will be applied",
            self.revision,
            blocking.len()
        )];
        // Over-budget refusals share one message; print it once instead of once per object.
        let mut seen = std::collections::BTreeSet::new();
        for refusal in blocking {
            let line = match refusal.reason {
                RefusalReason::PruneOverBudget { .. } => refusal.message.clone(),
                _ => format!("{}: {}", refusal.reference, refusal.message),
            };
            if seen.insert(line.clone()) {
                lines.push(line);
            }
        }
        Some(lines.join("\n"))
    }

    /// Why `component` may not start: a Secret its pods mount or read exists neither in this revision nor
    /// in the cluster (pre-flight). `None` when nothing keeps it back.
    pub fn missing_secrets(&self, component: &str) -> Option<String> {
        let missing: Vec<String> = self
            .warnings
            .iter()
            .filter(|w| w.component == component)
            .filter_map(|w| match &w.kind {
                WarningKind::UnresolvedReference {
                    target_kind,
                    name,
                    blocks_apply: true,
                    ..
                } => Some(format!(
                    "{target_kind} \"{name}\" ({} {})",
                    w.reference,
                    field_of(&w.kind)
                )),
                _ => None,
            })
            .collect();
        if missing.is_empty() {
            return None;
        }
        let mut unique = missing;
        unique.dedup();
        Some(format!(
            "not started: referenced {} not found; create it (or declare it in the topology's secrets) and \
             the next pass starts it",
            unique.join(", ")
        ))
    }

    /// All changes of the apply waves, in apply order.
    pub fn apply_changes(&self) -> impl Iterator<Item = &Change> {
        self.waves
            .iter()
            .flat_map(|w| w.components.iter())
            .flat_map(|c| c.changes.iter())
    }

    /// All deletions, in deletion order.
    pub fn deletion_changes(&self) -> impl Iterator<Item = &Change> {
        self.deletions
            .iter()
            .flat_map(|w| w.components.iter())
            .flat_map(|c| c.changes.iter())
    }
}

fn field_of(kind: &WarningKind) -> &str {
    match kind {
        WarningKind::UnresolvedReference { field, .. } => field,
        _ => "",
    }
}
