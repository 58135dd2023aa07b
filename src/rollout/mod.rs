//! Executes a [`Plan`]: components start as soon as every dependency is ready (the plan's waves give
//! the order, `depends_on` the gates: healthy by default, the workload available for `for: Service`, the
//! workload applied for `for: SameNode`, whose Pods then wait per node), bounded parallelism, health waits with timeouts, failure isolation
//! (dependents of a failed component are Blocked, independent branches finish), pruning last and in
//! reverse order, and cancellation (by a newer revision, Ctrl-C, a suspend or shutdown).

mod component;
mod prune;
mod secrets;

pub use secrets::{AgeKeySecret, AgeKeys};

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cluster::{ChangeKind, ChangeSet, ClusterView, Kube, ObjectRef};
use crate::plan::{ComponentPlan, Plan, WaitFor};

/// How a rollout runs.
#[derive(Debug, Clone)]
pub struct RolloutOptions {
    /// Components applied and waited on at the same time.
    pub concurrency: usize,
    /// Cancelled by a newer revision, Ctrl-C, a suspend or shutdown: waits stop at once, no further object
    /// is written.
    pub cancel: CancellationToken,
    /// Why `cancel` was cancelled, as the cancelled components' reason says it.
    pub cancel_reason: CancelReason,
    /// Receives progress as it happens (for logs, status and tests).
    pub progress: Option<UnboundedSender<ProgressEvent>>,
    /// How often a health wait reads the objects it waits on when there is no `view` (each component's
    /// timeout and recreate permission travel on its [`ComponentPlan`]).
    pub poll_interval: Duration,
    /// Send every write as a server-side dry run and skip health waits.
    pub dry_run: bool,
    /// Run the plan's deletions (after everything else succeeded).
    pub prune: bool,
    /// The age identities that decrypt the repository's encrypted Secret values, read from the cluster
    /// on first need.
    pub age_keys: AgeKeys,
    /// Writes of one step (a stage of one component) sent at the same time.
    pub write_concurrency: usize,
    /// The watch-fed view the plan was made from: health and prune waits follow its events, and the
    /// create guard asks it, instead of reading objects one by one. `None`: read by GET every
    /// `poll_interval`.
    pub view: Option<ClusterView>,
    /// How long a workload may wait on a reason that heals only if someone acts (a missing Secret or
    /// ConfigMap, no node matching its node selection) before its component fails.
    pub pod_failure_grace: Duration,
    /// Kinds (apiVersion, kind) a CustomResourceDefinition of the plan defines: their objects wait for the
    /// kind to be served, and a dry run (which creates no CRD) skips them. Filled by [`execute`].
    pub defined_kinds: Arc<BTreeSet<(String, String)>>,
}

/// The default of `--pod-failure-grace`: long enough for a Secret created right after the apply (or a
/// node being labelled) to be picked up, short beside any health timeout.
pub const DEFAULT_POD_FAILURE_GRACE: Duration = Duration::from_secs(30);

impl Default for RolloutOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            cancel: CancellationToken::new(),
            cancel_reason: CancelReason::default(),
            progress: None,
            defined_kinds: Arc::default(),
            poll_interval: Duration::from_secs(2),
            dry_run: false,
            prune: true,
            age_keys: AgeKeys::default(),
            write_concurrency: 4,
            view: None,
            pod_failure_grace: DEFAULT_POD_FAILURE_GRACE,
        }
    }
}

impl RolloutOptions {
    fn emit(&self, event: ProgressEvent) {
        if let Some(tx) = &self.progress {
            // A dropped receiver only means nobody is listening any more.
            let _ = tx.send(event);
        }
    }
}

/// Why a rollout was cancelled, set by whoever cancels it (Ctrl-C: "interrupted"; the daemon: a newer
/// revision, a suspend request, shutdown) and read by the components it stops. Clones share the text.
#[derive(Debug, Clone, Default)]
pub struct CancelReason(Arc<Mutex<Option<String>>>);

impl CancelReason {
    /// A reason that says `text` unless [`CancelReason::set`] says otherwise.
    pub fn with_default(text: &str) -> Self {
        Self(Arc::new(Mutex::new(Some(text.to_string()))))
    }

    pub fn set(&self, text: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(text.to_string());
    }

    pub fn text(&self) -> String {
        let reason = self.0.lock().unwrap_or_else(|p| p.into_inner());
        reason.clone().unwrap_or_else(|| "cancelled".to_string())
    }
}

/// Where a component ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ComponentState {
    /// Every object applied and healthy.
    Healthy,
    /// An object failed to apply, became Failed, or did not become healthy in time.
    Failed,
    /// Not started because a dependency (transitively) failed or was blocked.
    Blocked,
    /// Not finished because the rollout was cancelled or the plan is blocked.
    Skipped,
}

impl std::fmt::Display for ComponentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ComponentState::Healthy => "Healthy",
            ComponentState::Failed => "Failed",
            ComponentState::Blocked => "Blocked",
            ComponentState::Skipped => "Skipped",
        })
    }
}

/// One component's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentOutcome {
    pub name: String,
    pub state: ComponentState,
    pub reason: String,
    pub elapsed: Duration,
    /// Failed because an object did not become healthy within its timeout.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
}

/// What a rollout did: every component with its state, every object with what happened to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutOutcome {
    pub revision: String,
    /// In plan order.
    pub components: Vec<ComponentOutcome>,
    pub changes: ChangeSet,
    pub cancelled: bool,
    pub elapsed: Duration,
}

impl RolloutOutcome {
    /// Whether the cluster now equals the plan: every component healthy, every write and delete done.
    pub fn converged(&self) -> bool {
        !self.cancelled
            && self.components.iter().all(|c| c.state == ComponentState::Healthy)
            && self
                .changes
                .entries
                .iter()
                .all(|e| !matches!(e.change, ChangeKind::Failed | ChangeKind::Skipped))
    }

    /// For a dry run: every component went through and the server refused no write. Objects a dry run
    /// cannot check (custom resources of a CRD it did not create) are skipped, not failed.
    pub fn passed_dry_run(&self) -> bool {
        !self.cancelled
            && self.components.iter().all(|c| c.state == ComponentState::Healthy)
            && self
                .changes
                .entries
                .iter()
                .all(|e| e.change != ChangeKind::Failed)
    }

    pub fn component(&self, name: &str) -> Option<&ComponentOutcome> {
        self.components.iter().find(|c| c.name == name)
    }
}

/// What is happening, as it happens. `wave` is the 0-based index of the component's wave in the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    ComponentStarted {
        component: String,
        wave: usize,
        at: Instant,
    },
    ObjectApplied {
        component: String,
        object: ObjectRef,
        change: ChangeKind,
    },
    ObjectHealthy {
        component: String,
        object: ObjectRef,
        at: Instant,
    },
    /// What a component waits on, sent when it changes and names what the workload's Pods say
    /// (`Deployment openstack/keystone: 0 of 1 replicas available — ImagePullBackOff: ...`).
    ComponentWaiting {
        component: String,
        reason: String,
    },
    ComponentFinished {
        component: String,
        wave: usize,
        state: ComponentState,
        reason: String,
    },
    ObjectDeleted {
        object: ObjectRef,
        change: ChangeKind,
    },
}

/// Run `plan` against the cluster. Never fails as a whole: the outcome says what happened to what.
pub async fn execute(kube: &Kube, plan: &Plan, opts: &RolloutOptions) -> RolloutOutcome {
    let started = Instant::now();
    let defined: BTreeSet<(String, String)> = plan
        .apply_changes()
        .filter(|c| crate::plan::preflight::is_crd(&c.reference))
        .flat_map(|c| {
            c.desired
                .as_ref()
                .map(crate::plan::preflight::crd_kinds)
                .unwrap_or_default()
        })
        .collect();
    let opts = &RolloutOptions {
        defined_kinds: Arc::new(defined),
        ..opts.clone()
    };
    let mut run = Rollout::new(plan);
    if let Some(message) = plan.blocked_message() {
        run.skip_all(&message);
    } else {
        run.apply_components(kube, opts).await;
        run.prune(kube, plan, opts).await;
    }
    run.finish(plan, opts, started)
}

/// How far a running component has come before it is healthy, as its `for: SameNode` and `for: Service`
/// dependents need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Milestone {
    /// Its workload is applied (the API accepted it; its Pods may not run yet).
    WorkloadApplied,
    /// Its workload is available: every replica Ready, so its Service has ready endpoints.
    WorkloadAvailable,
}

/// Milestones of the running components, shared with their tasks; the scheduler wakes on each.
#[derive(Debug, Clone, Default)]
pub(crate) struct Milestones {
    reached: Arc<Mutex<HashMap<String, Milestone>>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Milestones {
    pub(crate) fn reach(&self, component: &str, milestone: Milestone) {
        let mut reached = self.reached.lock().unwrap_or_else(|p| p.into_inner());
        let entry = reached.entry(component.to_string()).or_insert(milestone);
        *entry = (*entry).max(milestone);
        drop(reached);
        // A permit is stored when the scheduler is not waiting yet, so no milestone is missed.
        self.changed.notify_one();
    }

    fn of(&self, component: &str) -> Option<Milestone> {
        self.reached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(component)
            .copied()
    }
}

/// The state of one execution.
struct Rollout {
    /// Components in plan order (wave by wave).
    order: Vec<ComponentPlan>,
    wave_of: HashMap<String, usize>,
    /// Components not to start, and why (pre-flight found a Secret their pods need missing).
    missing: HashMap<String, String>,
    results: HashMap<String, ComponentOutcome>,
    changes: ChangeSet,
    cancelled: bool,
    milestones: Milestones,
}

impl Rollout {
    fn new(plan: &Plan) -> Self {
        let order = plan
            .waves
            .iter()
            .flat_map(|w| w.components.iter().cloned())
            .collect();
        let wave_of = plan
            .waves
            .iter()
            .flat_map(|w| w.components.iter().map(move |c| (c.name.clone(), w.index)))
            .collect();
        let missing = plan
            .waves
            .iter()
            .flat_map(|w| &w.components)
            .filter_map(|c| {
                plan.missing_secrets(&c.name)
                    .map(|reason| (c.name.clone(), reason))
            })
            .collect();
        Self {
            order,
            wave_of,
            missing,
            results: HashMap::new(),
            changes: ChangeSet::default(),
            cancelled: false,
            milestones: Milestones::default(),
        }
    }

    fn wave(&self, component: &str) -> usize {
        self.wave_of.get(component).copied().unwrap_or_default()
    }

    fn skip_all(&mut self, reason: &str) {
        for c in &self.order {
            self.results.insert(
                c.name.clone(),
                outcome(&c.name, ComponentState::Skipped, reason, Duration::ZERO),
            );
            for change in &c.changes {
                self.changes.push(
                    change.reference.clone(),
                    ChangeKind::Skipped,
                    Some(reason.to_string()),
                );
            }
        }
    }

    /// Start each component as soon as all its dependencies are ready (healthy, or the milestone its
    /// `for:` names), at most `concurrency` at once; mark dependents of failed components Blocked without
    /// starting them.
    async fn apply_components(&mut self, kube: &Kube, opts: &RolloutOptions) {
        let names: BTreeSet<String> = self.order.iter().map(|c| c.name.clone()).collect();
        let mut pending: Vec<ComponentPlan> = self.order.clone();
        let mut running: JoinSet<(ComponentOutcome, ChangeSet)> = JoinSet::new();
        let limit = opts.concurrency.max(1);
        loop {
            if opts.cancel.is_cancelled() {
                self.cancelled = true;
            }
            // Settle blocked components and start ready ones, in plan order.
            let mut progressed = true;
            while progressed {
                progressed = false;
                let mut still_pending = Vec::with_capacity(pending.len());
                for c in pending.drain(..) {
                    match self.readiness(&c, &names) {
                        Readiness::Blocked(reason) => {
                            self.block(&c, reason, opts);
                            progressed = true;
                        }
                        Readiness::Ready if !self.cancelled && self.missing.contains_key(&c.name) => {
                            let reason = self.missing.get(&c.name).cloned().unwrap_or_default();
                            self.refuse(&c, reason, opts);
                            progressed = true;
                        }
                        Readiness::Ready if !self.cancelled && running.len() < limit => {
                            let at = Instant::now();
                            opts.emit(ProgressEvent::ComponentStarted {
                                component: c.name.clone(),
                                wave: self.wave(&c.name),
                                at,
                            });
                            let (kube, opts, c) = (kube.clone(), opts.clone(), c.clone());
                            let milestones = self.milestones.clone();
                            running.spawn(async move { component::run(&kube, &c, &opts, &milestones).await });
                        }
                        _ => still_pending.push(c),
                    }
                }
                pending = still_pending;
            }
            if running.is_empty() {
                break;
            }
            let joined = tokio::select! {
                joined = running.join_next() => joined,
                // A running component reached a milestone: a dependent may be ready to start.
                _ = self.milestones.changed.notified() => continue,
            };
            let Some(joined) = joined else {
                break;
            };
            match joined {
                Ok((result, changes)) => {
                    opts.emit(ProgressEvent::ComponentFinished {
                        component: result.name.clone(),
                        wave: self.wave(&result.name),
                        state: result.state,
                        reason: result.reason.clone(),
                    });
                    if result.state == ComponentState::Skipped {
                        self.cancelled = true;
                    }
                    self.changes.extend(changes);
                    self.results.insert(result.name.clone(), result);
                }
                // A panicking component task is a bug; its component stays unrecorded and is reported
                // as Failed in `finish`.
                Err(e) => tracing::error!(error = %e, "component task ended abnormally"),
            }
        }
        let reason = if self.cancelled {
            opts.cancel_reason.text()
        } else {
            "not started".to_string()
        };
        let reason = reason.as_str();
        for c in pending {
            self.results.insert(
                c.name.clone(),
                outcome(&c.name, ComponentState::Skipped, reason, Duration::ZERO),
            );
            for change in &c.changes {
                self.changes.push(
                    change.reference.clone(),
                    ChangeKind::Skipped,
                    Some(reason.to_string()),
                );
            }
        }
    }

    fn readiness(&self, c: &ComponentPlan, names: &BTreeSet<String>) -> Readiness {
        let mut ready = true;
        for dep in &c.depends_on {
            if !names.contains(dep) {
                return Readiness::Blocked(format!("dependency {dep} is not part of the plan"));
            }
            match self.results.get(dep).map(|r| r.state) {
                Some(ComponentState::Healthy) => {}
                Some(ComponentState::Failed) => {
                    return Readiness::Blocked(format!("dependency {dep} failed"));
                }
                Some(ComponentState::Blocked) => {
                    return Readiness::Blocked(format!("dependency {dep} is blocked"));
                }
                Some(ComponentState::Skipped) => ready = false,
                None => {
                    let needed = match c.waits_for.get(dep) {
                        Some(WaitFor::Service) => Some(Milestone::WorkloadAvailable),
                        Some(WaitFor::SameNode) => Some(Milestone::WorkloadApplied),
                        Some(WaitFor::Healthy) | None => None,
                    };
                    let reached = self.milestones.of(dep);
                    if needed.is_none_or(|needed| reached.is_none_or(|r| r < needed)) {
                        ready = false;
                    }
                }
            }
        }
        if ready {
            Readiness::Ready
        } else {
            Readiness::Waiting
        }
    }

    fn block(&mut self, c: &ComponentPlan, reason: String, opts: &RolloutOptions) {
        self.settle(c, ComponentState::Blocked, reason, opts);
    }

    /// The component cannot run (a Secret its pods need is missing): failed before any write of it, so
    /// that its dependents are blocked as after any failure.
    fn refuse(&mut self, c: &ComponentPlan, reason: String, opts: &RolloutOptions) {
        tracing::warn!(component = %c.name, %reason, "component not started");
        self.settle(c, ComponentState::Failed, reason, opts);
    }

    fn settle(&mut self, c: &ComponentPlan, state: ComponentState, reason: String, opts: &RolloutOptions) {
        opts.emit(ProgressEvent::ComponentFinished {
            component: c.name.clone(),
            wave: self.wave(&c.name),
            state,
            reason: reason.clone(),
        });
        for change in &c.changes {
            self.changes.push(
                change.reference.clone(),
                ChangeKind::Skipped,
                Some(reason.clone()),
            );
        }
        self.results
            .insert(c.name.clone(), outcome(&c.name, state, &reason, Duration::ZERO));
    }

    /// Deletions run only when every component is healthy: pruning while something failed could remove
    /// what the old revision still needs.
    async fn prune(&mut self, kube: &Kube, plan: &Plan, opts: &RolloutOptions) {
        let all_healthy = !self.cancelled
            && self.order.iter().all(|c| {
                self.results
                    .get(&c.name)
                    .is_some_and(|r| r.state == ComponentState::Healthy)
            });
        let deletions: Vec<&ObjectRef> = plan.deletion_changes().map(|c| &c.reference).collect();
        if deletions.is_empty() {
            return;
        }
        let skip_reason = if !opts.prune {
            Some("pruning disabled".to_string())
        } else if opts.cancel.is_cancelled() || self.cancelled {
            Some(opts.cancel_reason.text())
        } else if !all_healthy {
            Some("not pruned: not every component is healthy".to_string())
        } else {
            None
        };
        if let Some(reason) = skip_reason {
            for object in deletions {
                self.changes
                    .push(object.clone(), ChangeKind::Skipped, Some(reason.to_string()));
            }
            return;
        }
        let (changes, cancelled) = prune::run(kube, plan, opts).await;
        self.cancelled |= cancelled;
        self.changes.extend(changes);
    }

    fn finish(mut self, plan: &Plan, opts: &RolloutOptions, started: Instant) -> RolloutOutcome {
        let components = self
            .order
            .iter()
            .map(|c| {
                self.results.remove(&c.name).unwrap_or_else(|| {
                    outcome(
                        &c.name,
                        ComponentState::Failed,
                        "component task ended abnormally",
                        Duration::ZERO,
                    )
                })
            })
            .collect();
        RolloutOutcome {
            revision: plan.revision.clone(),
            components,
            changes: self.changes,
            cancelled: self.cancelled || opts.cancel.is_cancelled(),
            elapsed: started.elapsed(),
        }
    }
}

enum Readiness {
    Ready,
    Waiting,
    Blocked(String),
}

fn outcome(name: &str, state: ComponentState, reason: &str, elapsed: Duration) -> ComponentOutcome {
    ComponentOutcome {
        name: name.to_string(),
        state,
        reason: reason.to_string(),
        elapsed,
        timed_out: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Change, Summary, Wave};
    use crate::render::Stage;

    /// A handle whose server is never contacted: these plans make no request.
    fn offline() -> Kube {
        Kube::unreachable()
    }

    /// A component with no changes (healthy at once) or one create lacking its body (fails at once).
    fn comp(name: &str, deps: &[&str], fails: bool) -> ComponentPlan {
        let changes = if fails {
            vec![Change {
                action: Action::Create,
                reference: ObjectRef {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    namespace: Some("ns".into()),
                    name: format!("{name}-config"),
                },
                component: name.into(),
                stage: Stage::Config,
                step: 0,
                timeout: None,
                diff: Vec::new(),
                drift: false,
                desired: None,
                secret: None,
            }]
        } else {
            Vec::new()
        };
        ComponentPlan {
            name: name.into(),
            project: name.into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            changes,
            ..ComponentPlan::default()
        }
    }

    fn plan_of(waves: Vec<Vec<ComponentPlan>>) -> Plan {
        Plan {
            topology: "t".into(),
            revision: "r".into(),
            previous_revision: None,
            waves: waves
                .into_iter()
                .enumerate()
                .map(|(index, components)| Wave { index, components })
                .collect(),
            deletions: Vec::new(),
            refusals: Vec::new(),
            warnings: Vec::new(),
            skipped_checks: Vec::new(),
            summary: Summary::default(),
        }
    }

    #[tokio::test]
    async fn failure_blocks_transitive_dependents_only() {
        let plan = plan_of(vec![
            vec![comp("db", &[], true), comp("mq", &[], false)],
            vec![comp("keystone", &["db"], false), comp("nova", &["mq"], false)],
            vec![comp("horizon", &["keystone", "nova"], false)],
        ]);
        let out = execute(&offline(), &plan, &RolloutOptions::default()).await;
        let got: Vec<(&str, ComponentState, &str)> = out
            .components
            .iter()
            .map(|c| (c.name.as_str(), c.state, c.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "db",
                    ComponentState::Failed,
                    "ConfigMap ns/db-config: the plan carries no desired object"
                ),
                ("mq", ComponentState::Healthy, "0 object(s) healthy"),
                ("keystone", ComponentState::Blocked, "dependency db failed"),
                ("nova", ComponentState::Healthy, "0 object(s) healthy"),
                (
                    "horizon",
                    ComponentState::Blocked,
                    "dependency keystone is blocked"
                ),
            ]
        );
        assert!(!out.converged());
        assert_eq!(out.changes.count(ChangeKind::Failed), 1);
    }

    #[tokio::test]
    async fn cancelled_before_start_skips_everything() {
        let plan = plan_of(vec![vec![comp("a", &[], false)], vec![comp("b", &["a"], false)]]);
        let opts = RolloutOptions::default();
        opts.cancel.cancel();
        let out = execute(&offline(), &plan, &opts).await;
        assert!(out.cancelled);
        assert!(
            out.components.iter().all(|c| c.state == ComponentState::Skipped),
            "{out:?}"
        );
        assert!(!out.converged());
    }

    #[tokio::test]
    async fn empty_components_converge_and_respect_unknown_dependencies() {
        let plan = plan_of(vec![
            vec![comp("a", &[], false)],
            vec![comp("b", &["a", "ghost"], false)],
        ]);
        let out = execute(
            &offline(),
            &plan,
            &RolloutOptions {
                concurrency: 1,
                ..RolloutOptions::default()
            },
        )
        .await;
        assert_eq!(out.component("a").map(|c| c.state), Some(ComponentState::Healthy));
        let b = out.component("b").expect("b");
        assert_eq!(
            (b.state, b.reason.as_str()),
            (
                ComponentState::Blocked,
                "dependency ghost is not part of the plan"
            )
        );
    }
}
