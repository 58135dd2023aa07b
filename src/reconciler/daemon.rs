//! `keelson run`: the long-running loop. One `select!` over shutdown, the poll timer, a retry timer and a
//! wake-up (webhook, local watch, drift); one pass at a time. A newer revision found while a rollout waits
//! cancels it, and the next pass plans from live state.
//!
//! Failure policy: configuration errors stall until the next commit; transient errors retry with exponential
//! backoff and jitter; a failed rollout is not retried on the same commit unless an operator asks
//! (`keelson reconcile`, which also re-plans a stalled revision) or a new commit arrives. A converged
//! revision is re-planned on every tick, which re-applies owned objects that drifted from Git (and costs
//! only reads when nothing drifted). While a revision stays failed, drift in the components that did
//! become healthy is still corrected, by passes narrowed to those components; the failed ones and their
//! dependents are left as they are.
//!
//! Writes to the control ConfigMap (`keelson suspend`, `resume`, `reconcile`) wake the loop at once; a
//! suspend request also cancels a rollout in progress.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::control::ControlWatch;
use super::drift::{self, DriftSignal, DriftWatch};
use super::leader::{self, LeaderConfig};
use super::pass::{self, PassError, PassSettings, Prepared};
use crate::cluster::{ChangeKind, KindRef, Kube};
use crate::plan::Action;
use crate::rollout::{ComponentState, ProgressEvent, RolloutOutcome};
use crate::source::verify::{AllowedSigners, VerifyFailure, VerifyMode};
use crate::source::watch::LocalWatcher;
use crate::source::webhook::{self, WebhookConfig};
use crate::source::{GitSource, GitSourceConfig, PollOutcome, RemoteUrl, Snapshot, SourceError, redact_url};
use crate::status::server::{self, Server};
use crate::status::{
    self, ComponentPhase, ComponentStatus, EventType, HistoryEntry, ObjectCounts, PassResult, Phase, Shared,
    StatusError, now_rfc3339,
};

/// Exponential backoff with jitter for transient errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based): `initial * 2^(attempt-1)`, capped at `max`, then
    /// scaled by a random factor in [0.8, 1.2) so that many daemons do not retry in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let base = self.initial.saturating_mul(1u32 << exponent).min(self.max);
        base.mul_f64(rand::random_range(0.8..1.2))
    }
}

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Keelson's own namespace: status, control, events, lease.
    pub namespace: String,
    /// Time between polls of the source.
    pub interval: Duration,
    pub pass: PassSettings,
    pub backoff: Backoff,
    /// Serve `/healthz`, `/readyz`, `/metrics`, `/status` (and the webhook) here.
    pub listen: Option<SocketAddr>,
    /// Accept push webhooks at `/hooks/git` (needs `listen`).
    pub webhook: Option<WebhookConfig>,
    /// Watch a local repository's refs and poll when they move.
    pub watch_local: bool,
    /// Debounce of the local watch.
    pub watch_debounce: Duration,
    /// Apply only commits signed by one of these keys (`--verify-signatures`); others stall the revision.
    pub verify: Option<(VerifyMode, Arc<AllowedSigners>)>,
}

impl DaemonConfig {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            interval: Duration::from_secs(60),
            pass: PassSettings::default(),
            backoff: Backoff::default(),
            listen: None,
            webhook: None,
            watch_local: true,
            watch_debounce: Duration::from_millis(100),
            verify: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("git source: {0}")]
    Source(#[from] SourceError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("webhook: needs a listen address")]
    WebhookWithoutListener,
}

/// What started a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Start,
    Poll,
    Wake,
    Retry,
    Drift,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Poll => "poll",
            Trigger::Wake => "wake",
            Trigger::Retry => "retry",
            Trigger::Drift => "drift",
        }
    }
}

/// How the last pass over a revision ended, which decides whether the next tick runs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Converged,
    /// Failed rollout: wait for a new commit or a reconcile request.
    Failed,
    /// Configuration error: wait for a new commit.
    Stalled,
    /// Transient error: retry at the scheduled time.
    Error,
    /// Cancelled (newer revision or shutdown): run again.
    Cancelled,
}

/// What a pass covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every component of the revision, with pruning.
    Full,
    /// Only the components that became healthy in the failed rollout of this revision: drift correction
    /// without retrying what failed. Never prunes, never records the inventory, keeps the Failed status.
    HealthyOnly,
}

/// The reconciler daemon.
pub struct Daemon {
    kube: Kube,
    source: GitSource,
    source_url: String,
    source_ref: String,
    config: DaemonConfig,
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    snapshot: Option<Snapshot>,
    /// Revision and verdict of the last pass.
    last: Option<(String, Verdict)>,
    /// When to retry after a transient failure.
    retry: Option<tokio::time::Instant>,
    /// Transient failures of the current revision in a row.
    attempts: u32,
    handled_reconcile: Option<String>,
    control_seen: bool,
    listener: Option<Server>,
    leader_config: Option<LeaderConfig>,
    /// Whether this replica may write; `None` without leader election.
    leader: Option<watch::Receiver<bool>>,
    drift_signal: Arc<DriftSignal>,
    drift_watch: Option<DriftWatch>,
    /// A control request (suspend, resume, reconcile) arrived during a pass: the loop runs the next
    /// iteration at once, which reads the requests.
    control_changed: bool,
}

impl Daemon {
    pub fn new(kube: Kube, source: GitSourceConfig, config: DaemonConfig) -> Result<Self, DaemonError> {
        if config.webhook.is_some() && config.listen.is_none() {
            return Err(DaemonError::WebhookWithoutListener);
        }
        let source_url = source.url.clone();
        let source_ref = source.reference.clone();
        let wake = Arc::new(Notify::new());
        Ok(Self {
            drift_signal: Arc::new(DriftSignal::new(wake.clone())),
            drift_watch: None,
            control_changed: false,
            kube,
            source: GitSource::new(source)?,
            source_url,
            source_ref,
            config,
            shared: Arc::new(Shared::default()),
            wake,
            snapshot: None,
            last: None,
            retry: None,
            attempts: 0,
            handled_reconcile: None,
            control_seen: false,
            listener: None,
            leader_config: None,
            leader: None,
        })
    }

    /// Only the holder of the Lease in the daemon's namespace applies and writes status.
    pub fn with_leader_election(mut self, config: LeaderConfig) -> Self {
        self.leader_config = Some(config);
        self
    }

    /// Status, readiness and metrics, as the HTTP server sees them.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Notifying this makes the daemon poll now.
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Binds the HTTP listener now (so that callers learn the port before `run`); `run` serves it.
    pub async fn bind(&mut self) -> Result<Option<SocketAddr>, DaemonError> {
        if self.listener.is_none()
            && let Some(addr) = self.config.listen
        {
            self.listener = Some(Server::bind(addr).await?);
        }
        match &self.listener {
            Some(server) => Ok(Some(server.local_addr()?)),
            None => Ok(None),
        }
    }

    /// Runs until `shutdown` resolves; a rollout in progress is cancelled (writes in flight finish) and the
    /// final status is written before returning.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let stop = CancellationToken::new();
        let server = self.start_server(stop.clone()).await?;
        let _watcher = self.start_watcher();
        let _control = ControlWatch::start(&self.kube, &self.config.namespace, self.wake.clone());
        if let Err(e) = status::store::ensure_namespace(&self.kube, &self.config.namespace).await {
            tracing::warn!(error = %e, "cannot make sure Keelson's namespace exists");
        }
        let elector_stop = CancellationToken::new();
        let elector = self.leader_config.clone().map(|config| {
            let (tx, rx) = watch::channel(false);
            self.leader = Some(rx);
            tokio::spawn(leader::run(
                self.kube.clone(),
                self.config.namespace.clone(),
                config,
                tx,
                elector_stop.clone(),
            ))
        });
        // Also with an elector: it may have won already, and then the loop never waits to become the leader
        // (a standby reloads when it takes over, since the old leader kept writing).
        self.load_status().await;

        let main = self.main_loop(stop.clone());
        tokio::pin!(main);
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut main => {}
            () = &mut shutdown => {
                tracing::info!("shutting down");
                stop.cancel();
                main.await;
            }
        }
        stop.cancel();
        // The Lease is released only after the last write of this replica.
        elector_stop.cancel();
        if let Some(elector) = elector {
            let _ = elector.await;
        }
        if let Some(server) = server {
            let _ = server.await;
        }
        Ok(())
    }

    async fn start_server(
        &mut self,
        stop: CancellationToken,
    ) -> Result<Option<tokio::task::JoinHandle<Result<(), StatusError>>>, DaemonError> {
        let Some(addr) = self.bind().await? else {
            return Ok(None);
        };
        let Some(server) = self.listener.take() else {
            return Ok(None);
        };
        let hooks = self
            .config
            .webhook
            .clone()
            .map(|hook| webhook::router(hook, self.wake.clone()));
        let router = server::router(self.shared.clone(), hooks);
        tracing::info!(%addr, "serving /healthz /readyz /metrics /status");
        Ok(Some(tokio::spawn(async move {
            server.serve(router, async move { stop.cancelled().await }).await
        })))
    }

    fn start_watcher(&self) -> Option<LocalWatcher> {
        if !self.config.watch_local {
            return None;
        }
        let path = RemoteUrl::parse(&self.source_url).ok()?.local_path()?;
        match LocalWatcher::spawn(&path, self.config.watch_debounce, self.wake.clone()) {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the local repository; relying on the poll interval");
                None
            }
        }
    }

    /// Keeps the history across restarts.
    async fn load_status(&mut self) {
        let stored = match status::read_status(&self.kube, &self.config.namespace).await {
            Ok(stored) => stored.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the stored status");
                status::Status::default()
            }
        };
        let source = format!("{} ({})", redact_url(&self.source_url), self.source_ref);
        self.shared.update(|s| {
            *s = stored;
            s.source = source;
            if s.phase == Phase::Reconciling {
                // A previous instance stopped during a pass.
                s.phase = Phase::Pending;
            }
        });
    }

    async fn main_loop(&mut self, stop: CancellationToken) {
        let mut interval = tokio::time::interval(self.config.interval);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick completes at once: that is the start-up pass.
        interval.tick().await;
        let mut trigger = Trigger::Start;
        loop {
            if let Some(rx) = self.leader.as_mut()
                && !*rx.borrow()
            {
                self.shared.metrics.leader.set(0);
                // A standby is ready: it serves and takes over when the leader goes.
                self.shared.set_ready();
                tracing::info!("waiting to become the leader");
                tokio::select! {
                    () = stop.cancelled() => return,
                    result = rx.wait_for(|leader| *leader) => if result.is_err() { return },
                }
                self.load_status().await;
                self.last = None;
                self.retry = None;
                trigger = Trigger::Start;
            }
            self.shared.metrics.leader.set(1);
            self.iteration(trigger, &mut interval, &stop).await;
            if stop.is_cancelled() {
                return;
            }
            // A control request seen during the pass (its wake-up went to the pass).
            if std::mem::take(&mut self.control_changed) {
                trigger = Trigger::Wake;
                continue;
            }
            // Drift seen during the pass (its wake-up went to the pass, which only polls the source).
            if self.drift_signal.take() {
                trigger = Trigger::Drift;
                continue;
            }
            let retry_at = self.retry;
            trigger = tokio::select! {
                () = stop.cancelled() => return,
                _ = interval.tick() => Trigger::Poll,
                () = self.wake.notified() => Trigger::Wake,
                () = sleep_until_opt(retry_at) => Trigger::Retry,
            };
            if trigger == Trigger::Wake && self.drift_signal.take() {
                trigger = Trigger::Drift;
            }
            tracing::debug!(trigger = trigger.as_str(), "woken");
        }
    }

    async fn iteration(&mut self, trigger: Trigger, interval: &mut Interval, stop: &CancellationToken) {
        let polled = self.poll().await;
        let control = self.read_control().await;
        let suspended = control.suspend;
        self.shared.metrics.suspended.set(i64::from(suspended));
        let reconcile_requested =
            self.control_seen && control.reconcile_requested_at != self.handled_reconcile;
        self.handled_reconcile = control.reconcile_requested_at.clone();
        self.control_seen = true;
        if !polled && self.snapshot.is_none() {
            return;
        }
        let Some(snapshot) = self.snapshot.clone() else {
            return;
        };
        if suspended {
            self.report_suspended(&snapshot).await;
            return;
        }
        let revision = snapshot.revision.id.clone();
        let retry_due =
            trigger == Trigger::Retry || self.retry.is_some_and(|at| at <= tokio::time::Instant::now());
        if retry_due {
            // Taken: a retry that finds nothing to do must not fire again and again.
            self.retry = None;
        }
        let scope = match self.last {
            None => Some(Scope::Full),
            Some((ref last, _)) if *last != revision => Some(Scope::Full),
            Some((_, Verdict::Converged | Verdict::Cancelled)) => Some(Scope::Full),
            // Drift wakes do not end a stall either; a stalled revision is never applied.
            Some((_, Verdict::Error)) => (retry_due || reconcile_requested).then_some(Scope::Full),
            // Drift does not restart a failed rollout (its own writes would wake it again and again), but
            // the components that did become healthy stay equal to Git.
            Some((_, Verdict::Failed)) if reconcile_requested => Some(Scope::Full),
            Some((_, Verdict::Failed)) => Some(Scope::HealthyOnly),
            // An operator who removed a cause outside Git (someone else's object in the way) asks again.
            Some((_, Verdict::Stalled)) => reconcile_requested.then_some(Scope::Full),
        };
        let was_suspended = self.shared.status().phase == Phase::Suspended;
        let mut scope = match scope {
            // Resuming applies the revision as a whole.
            _ if was_suspended => Scope::Full,
            Some(scope) => scope,
            None => return,
        };
        let trigger_name = if reconcile_requested {
            "reconcile"
        } else {
            trigger.as_str()
        };
        let mut next = Some(snapshot);
        // A newer revision found during a rollout cancels it; loop to apply the newer one right away.
        while let Some(snapshot) = next.take() {
            next = self.pass(&snapshot, trigger_name, scope, interval, stop).await;
            scope = Scope::Full;
            // The next iteration reads the requests (and the newer revision, kept in `self.snapshot`).
            if stop.is_cancelled() || self.control_changed {
                return;
            }
            // The pass's wake-ups stop once a newer revision pre-empted it: look before starting that one.
            if next.is_some() && self.read_control().await.suspend {
                self.control_changed = true;
                return;
            }
        }
    }

    /// Polls the source; true when it answered.
    async fn poll(&mut self) -> bool {
        let before = self.source.stats();
        let result = self.source.poll().await;
        let after = self.source.stats();
        let metrics = &self.shared.metrics;
        metrics.git_polls.inc();
        metrics
            .git_fetches
            .inc_by(after.fetches.saturating_sub(before.fetches));
        match result {
            Ok(PollOutcome::Changed {
                snapshot,
                history_rewritten,
                ..
            }) => {
                if history_rewritten {
                    tracing::warn!(revision = %snapshot.revision.short(), "the tracked ref was rewritten");
                }
                tracing::info!(revision = %snapshot.revision.short(), "new revision");
                let Some(snapshot) = self.verified(snapshot).await else {
                    return true;
                };
                let id = snapshot.revision.id.clone();
                self.shared.update(|s| s.observed_revision = Some(id));
                self.snapshot = Some(snapshot);
                true
            }
            Ok(PollOutcome::Unchanged { .. }) => true,
            Err(e) => {
                metrics.git_poll_failures.inc();
                let delay = self.source.retry_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "polling the Git source failed");
                if self.snapshot.is_none() {
                    let (phase, reason) = if e.is_transient() {
                        (Phase::Failed, "SourceUnavailable")
                    } else {
                        (Phase::Stalled, "SourceError")
                    };
                    let message = e.to_string();
                    let now = now_rfc3339();
                    let changed = self
                        .shared
                        .status()
                        .condition("Ready")
                        .map(|c| c.message.as_str())
                        != Some(message.as_str());
                    let status = self.shared.update(|s| s.set_phase(phase, reason, &message, &now));
                    if changed {
                        self.write_status(&status).await;
                    }
                }
                if e.is_transient() {
                    self.retry = Some(tokio::time::Instant::now() + delay);
                }
                false
            }
        }
    }

    /// With `--verify-signatures`: the snapshot, if its commit is signed by an allowed key. Otherwise the revision
    /// is stalled (status and a Warning Event say why, with the key's fingerprint) and nothing of it is applied:
    /// the cluster keeps the last verified revision until a verified commit arrives.
    async fn verified(&mut self, mut snapshot: Snapshot) -> Option<Snapshot> {
        let Some((mode, allowed)) = self.config.verify.clone() else {
            return Some(snapshot);
        };
        let revision = snapshot.revision.id.clone();
        let message = match self.source.verify(snapshot.clone(), mode, allowed).await {
            Ok(signer) => {
                tracing::info!(revision = %snapshot.revision.short(), signer = %signer, "signature verified");
                snapshot.signer = Some(signer);
                return Some(snapshot);
            }
            // The tags could not be fetched: read and verify the commit again on a later poll.
            Err(VerifyFailure::Source(e)) if e.is_transient() => {
                tracing::warn!(revision = %snapshot.revision.short(), error = %e, "verifying the commit failed; retrying");
                self.source.forget_last_seen();
                self.retry = Some(tokio::time::Instant::now() + self.config.backoff.initial);
                return None;
            }
            Err(e) => e.to_string(),
        };
        tracing::warn!(revision = %snapshot.revision.short(), reason = %message, "commit refused");
        let now = now_rfc3339();
        let status = self.shared.update(|s| {
            s.observed_revision = Some(revision.clone());
            s.set_phase(Phase::Stalled, "UnverifiedCommit", &message, &now);
        });
        self.write_status(&status).await;
        self.event(EventType::Warning, "UnverifiedCommit", &message).await;
        // No snapshot to apply, not even the previous one again: a stalled revision is never applied.
        self.snapshot = None;
        self.last = Some((revision, Verdict::Stalled));
        None
    }

    async fn read_control(&self) -> status::Control {
        match status::read_control(&self.kube, &self.config.namespace).await {
            Ok(control) => control,
            Err(e) => {
                tracing::warn!(error = %e, "reading the control object failed; keeping the previous requests");
                status::Control {
                    suspend: self.shared.status().suspended,
                    reconcile_requested_at: self.handled_reconcile.clone(),
                }
            }
        }
    }

    async fn report_suspended(&mut self, snapshot: &Snapshot) {
        let current = self.shared.status();
        let already = current.phase == Phase::Suspended;
        let message = format!(
            "applying is suspended; revision {} is not applied until `keelson resume`",
            snapshot.revision.short()
        );
        // Suspended daemons keep reporting: a new commit shows up in the stored status (one write per commit).
        if already && current.condition("Ready").is_some_and(|c| c.message == message) {
            return;
        }
        let now = now_rfc3339();
        let status = self.shared.update(|s| {
            s.suspended = true;
            s.set_phase(Phase::Suspended, "Suspended", &message, &now);
        });
        self.write_status(&status).await;
        if !already {
            self.event(EventType::Normal, "Suspended", &message).await;
        }
    }

    /// One pass over `snapshot`. Returns a newer snapshot when one cancelled this pass.
    async fn pass(
        &mut self,
        snapshot: &Snapshot,
        trigger: &str,
        scope: Scope,
        interval: &mut Interval,
        stop: &CancellationToken,
    ) -> Option<Snapshot> {
        let started = Instant::now();
        let start = now_rfc3339();
        let revision = snapshot.revision.id.clone();
        let previous = self.shared.status();
        let same_as_applied = previous.last_applied_revision.as_deref() == Some(revision.as_str());
        if previous.suspended || previous.phase == Phase::Suspended {
            let now = now_rfc3339();
            let status = self.shared.update(|s| {
                s.suspended = false;
                s.set_phase(Phase::Pending, "Resumed", "applying resumed", &now);
            });
            self.write_status(&status).await;
            self.event(EventType::Normal, "Resumed", "applying resumed").await;
        }

        let prepared = match (
            pass::prepare(&self.kube, snapshot, &self.config.pass).await,
            scope,
        ) {
            (Ok(prepared), Scope::Full) => prepared,
            (Ok(prepared), Scope::HealthyOnly) => {
                let healthy: BTreeSet<String> = previous
                    .components
                    .iter()
                    .filter(|c| c.state == ComponentPhase::Healthy)
                    .map(|c| c.name.clone())
                    .collect();
                prepared.only_components(&with_their_dependencies(&prepared, healthy))
            }
            (Err(e), Scope::Full) => {
                self.finish_error(snapshot, trigger, &start, started, &e, ObjectCounts::default())
                    .await;
                return None;
            }
            (Err(e), Scope::HealthyOnly) => {
                // The revision stays failed as it was; the next wake-up or poll looks again.
                self.shared.metrics.pass(PassResult::Error.as_str());
                tracing::warn!(error = %e, "checking the healthy components for drift failed");
                return None;
            }
        };
        if scope == Scope::HealthyOnly && !prepared.plan.has_changes() {
            // Nothing drifted (typically the wake-up of the failed rollout's own writes): reads only.
            return None;
        }
        let quiet = same_as_applied
            && !prepared.plan.has_changes()
            && matches!(self.last, Some((ref r, Verdict::Converged)) if *r == revision);
        if quiet {
            // Nothing drifted: a re-plan of the applied revision writes nothing (invariant 5).
            self.shared.metrics.pass(PassResult::Succeeded.as_str());
            self.shared
                .metrics
                .pass_duration
                .observe(started.elapsed().as_secs_f64());
            self.shared.set_ready();
            self.retry = None;
            return None;
        }

        // A refused plan writes nothing: the status keeps the components of the applied revision.
        if let Err(e) = pass::refuse_if_blocked(&prepared) {
            match scope {
                Scope::Full => {
                    self.finish_error(snapshot, trigger, &start, started, &e, ObjectCounts::default())
                        .await
                }
                // A hand-made change the plan refuses to undo (someone else's object in the way, a newer
                // image over migrations): the revision stays failed as it is; the next full pass reports it.
                Scope::HealthyOnly => {
                    tracing::warn!(error = %e, "not correcting drift in the healthy components: plan refused")
                }
            }
            return None;
        }
        // A narrowed pass leaves the status of the failed revision as it is; it only adds its own record.
        let tracking = if scope == Scope::Full {
            let now = now_rfc3339();
            let components = pending_components(&prepared);
            let topology = prepared.topology.name.clone();
            let status = self.shared.update(|s| {
                s.topology = Some(topology);
                s.last_attempted_revision = Some(revision.clone());
                s.components = components;
                s.set_phase(
                    Phase::Reconciling,
                    "Progressing",
                    &format!("applying revision {}", snapshot.revision.short()),
                    &now,
                );
            });
            self.write_status(&status).await;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let tracker =
                ProgressTracker::new(&prepared, self.shared.clone(), &self.kube, &self.config.namespace);
            Some((tx, tokio::spawn(tracker.run(rx))))
        } else {
            tracing::info!(
                revision = %snapshot.revision.short(),
                objects = prepared.plan.summary.create + prepared.plan.summary.update,
                "correcting drift in the healthy components of a failed revision"
            );
            None
        };

        let cancel = stop.child_token();
        let (progress, tracking) = match tracking {
            Some((tx, handle)) => (Some(tx), Some(handle)),
            None => (None, None),
        };
        let mut newer = None;
        let result = {
            let execution = pass::execute(&self.kube, &prepared, &self.config.pass, cancel.clone(), progress);
            tokio::pin!(execution);
            loop {
                tokio::select! {
                    result = &mut execution => break result,
                    _ = interval.tick(), if newer.is_none() => {}
                    () = self.wake.notified(), if newer.is_none() => {
                        let control = self.read_control().await;
                        if control.reconcile_requested_at != self.handled_reconcile {
                            self.control_changed = true;
                        }
                        if control.suspend {
                            tracing::info!("suspend requested: cancelling the rollout in progress");
                            self.control_changed = true;
                            cancel.cancel();
                            continue;
                        }
                    }
                    () = leadership_lost(&mut self.leader), if !cancel.is_cancelled() => {
                        tracing::warn!("lost leadership: cancelling the rollout in progress");
                        cancel.cancel();
                        continue;
                    }
                }
                // Look for a newer revision while the rollout runs: it pre-empts this one (invariant 6).
                match self.source.poll().await {
                    Ok(PollOutcome::Changed { snapshot: fresh, .. }) => {
                        tracing::info!(
                            revision = %fresh.revision.short(),
                            "newer revision: cancelling the rollout in progress"
                        );
                        self.shared.metrics.git_polls.inc();
                        let id = fresh.revision.id.clone();
                        self.shared.update(|s| s.observed_revision = Some(id));
                        newer = Some(fresh);
                        cancel.cancel();
                    }
                    Ok(PollOutcome::Unchanged { .. }) => {
                        self.shared.metrics.git_polls.inc();
                    }
                    Err(e) => {
                        self.shared.metrics.git_poll_failures.inc();
                        tracing::warn!(error = %e, "polling during the rollout failed");
                    }
                }
            }
        };
        let wave_times = match tracking {
            Some(tracking) => tracking.await.unwrap_or_default(),
            None => Vec::new(),
        };
        for (wave, seconds) in wave_times {
            self.shared
                .metrics
                .wave_duration
                .get_or_create(&status::metrics::WaveLabel {
                    wave: wave.to_string(),
                })
                .observe(seconds);
        }
        match result {
            Ok(outcome) if scope == Scope::HealthyOnly => {
                let counts = counts(&outcome.rollout);
                self.finish_drift_correction(snapshot, trigger, &start, started, &outcome.rollout, counts)
                    .await;
            }
            Err(e) if scope == Scope::HealthyOnly => {
                self.shared.metrics.pass(PassResult::Error.as_str());
                tracing::warn!(error = %e, "correcting drift in the healthy components failed");
            }
            Ok(outcome) => {
                let counts = counts(&outcome.rollout);
                self.finish_rollout(
                    snapshot,
                    &prepared,
                    trigger,
                    &start,
                    started,
                    &outcome.rollout,
                    counts,
                    same_as_applied,
                )
                .await;
            }
            Err(e) => {
                self.finish_error(snapshot, trigger, &start, started, &e, ObjectCounts::default())
                    .await
            }
        }
        if let Some(fresh) = newer {
            self.snapshot = Some(fresh.clone());
            return Some(fresh);
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish_rollout(
        &mut self,
        snapshot: &Snapshot,
        prepared: &Prepared,
        trigger: &str,
        start: &str,
        started: Instant,
        rollout: &RolloutOutcome,
        counts: ObjectCounts,
        same_as_applied: bool,
    ) {
        let revision = snapshot.revision.id.clone();
        let short = snapshot.revision.short().to_string();
        let shared = self.shared.clone();
        let metrics = &shared.metrics;
        metrics.objects("created", counts.created);
        metrics.objects("updated", counts.updated);
        metrics.objects("deleted", counts.deleted);
        metrics.objects("unchanged", counts.unchanged);
        let components = component_statuses(prepared, rollout);
        let (result, phase, reason, message, verdict) = if rollout.converged() {
            (
                PassResult::Succeeded,
                Phase::Ready,
                "Succeeded",
                format!(
                    "revision {short} applied: {} created, {} updated, {} deleted, {} unchanged",
                    counts.created, counts.updated, counts.deleted, counts.unchanged
                ),
                Verdict::Converged,
            )
        } else if rollout.cancelled {
            (
                PassResult::Cancelled,
                Phase::Pending,
                "Cancelled",
                format!("rollout of revision {short} cancelled"),
                Verdict::Cancelled,
            )
        } else {
            (
                PassResult::Failed,
                Phase::Failed,
                "RolloutFailed",
                format!(
                    "revision {short} failed; not retried until a new commit or `keelson reconcile`: {}",
                    unhealthy_components(rollout)
                ),
                Verdict::Failed,
            )
        };
        let drifted = if same_as_applied && verdict == Verdict::Converged {
            (counts.created + counts.updated + counts.deleted) as u64
        } else {
            0
        };
        if drifted > 0 {
            metrics.drift_corrections.inc_by(drifted);
            tracing::info!(objects = drifted, revision = %short, "corrected drift");
        }
        metrics.pass(result.as_str());
        metrics.pass_duration.observe(started.elapsed().as_secs_f64());
        let now = now_rfc3339();
        if matches!(verdict, Verdict::Converged | Verdict::Failed) {
            // A failed revision is watched too: its healthy components keep being corrected.
            self.watch_for_drift(prepared);
        }
        if verdict == Verdict::Converged {
            self.shared.set_ready();
            if let Ok(seconds) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
                metrics.last_applied_timestamp.set(seconds.as_secs_f64());
            }
        }
        let entry = history_entry(snapshot, trigger, start, &now, result, &message, counts);
        let status = self.shared.update(|s| {
            s.components = components;
            s.drift_corrections += drifted;
            if verdict == Verdict::Converged {
                s.last_applied_revision = Some(revision.clone());
                s.last_applied_time = Some(now.clone());
            }
            s.set_phase(phase, reason, &message, &now);
            s.record(entry);
        });
        self.last = Some((revision, verdict));
        self.retry = None;
        self.write_status(&status).await;
        let kind = if verdict == Verdict::Failed {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let event_reason = match verdict {
            Verdict::Converged if drifted > 0 => "DriftCorrected",
            Verdict::Converged => "Applied",
            Verdict::Cancelled => "Cancelled",
            _ => "RolloutFailed",
        };
        self.event(kind, event_reason, &message).await;
        for component in &rollout.components {
            let reason = match component.state {
                ComponentState::Failed => "ComponentFailed",
                ComponentState::Blocked => "ComponentBlocked",
                _ => continue,
            };
            let text = format!("{}: {} (revision {short})", component.name, component.reason);
            self.event(EventType::Warning, reason, &text).await;
        }
    }

    /// Records a pass narrowed to the healthy components of a failed revision. The revision stays failed
    /// (phase, conditions, components and the verdict are kept); what was re-applied counts as drift.
    async fn finish_drift_correction(
        &mut self,
        snapshot: &Snapshot,
        trigger: &str,
        start: &str,
        started: Instant,
        rollout: &RolloutOutcome,
        counts: ObjectCounts,
    ) {
        let short = snapshot.revision.short().to_string();
        let metrics = &self.shared.metrics;
        metrics.objects("created", counts.created);
        metrics.objects("updated", counts.updated);
        metrics.objects("unchanged", counts.unchanged);
        let written = (counts.created + counts.updated) as u64;
        let (result, kind, reason, message) = if rollout.converged() {
            metrics.drift_corrections.inc_by(written);
            tracing::info!(objects = written, revision = %short, "corrected drift while the revision is failed");
            (
                PassResult::Succeeded,
                EventType::Normal,
                "DriftCorrected",
                format!(
                    "corrected drift in {written} object(s) of healthy components; revision {short} stays \
                     failed until a new commit or `keelson reconcile`"
                ),
            )
        } else if rollout.cancelled {
            (
                PassResult::Cancelled,
                EventType::Normal,
                "Cancelled",
                format!("drift correction of revision {short} cancelled"),
            )
        } else {
            (
                PassResult::Failed,
                EventType::Warning,
                "DriftCorrectionFailed",
                format!(
                    "correcting drift of revision {short} failed: {}",
                    unhealthy_components(rollout)
                ),
            )
        };
        metrics.pass(result.as_str());
        metrics.pass_duration.observe(started.elapsed().as_secs_f64());
        let now = now_rfc3339();
        let entry = history_entry(snapshot, trigger, start, &now, result, &message, counts);
        let corrected = if result == PassResult::Succeeded {
            written
        } else {
            0
        };
        let status = self.shared.update(|s| {
            s.drift_corrections += corrected;
            // A component whose correction failed is no longer healthy: it leaves the set corrected on
            // every tick, so one failure is not retried (and recorded) again and again.
            for outcome in rollout
                .components
                .iter()
                .filter(|c| c.state != ComponentState::Healthy)
            {
                if let Some(c) = s.components.iter_mut().find(|c| c.name == outcome.name) {
                    c.state = component_phase(outcome.state);
                    c.reason = outcome.reason.clone();
                }
            }
            s.record(entry);
        });
        self.write_status(&status).await;
        self.event(kind, reason, &message).await;
    }

    async fn finish_error(
        &mut self,
        snapshot: &Snapshot,
        trigger: &str,
        start: &str,
        started: Instant,
        error: &PassError,
        counts: ObjectCounts,
    ) {
        let revision = snapshot.revision.id.clone();
        let message = error.to_string();
        let now = now_rfc3339();
        let (result, phase, reason, verdict) = if error.is_configuration() {
            tracing::warn!(revision = %snapshot.revision.short(), error = %message, "stalled until the next commit");
            self.retry = None;
            (
                PassResult::Stalled,
                Phase::Stalled,
                "InvalidConfiguration",
                Verdict::Stalled,
            )
        } else {
            let attempt = match self.last {
                Some((ref r, Verdict::Error)) if *r == revision => self.attempts.saturating_add(1),
                _ => 1,
            };
            let delay = self.config.backoff.delay(attempt);
            tracing::warn!(
                revision = %snapshot.revision.short(), error = %message, attempt, retry_in = ?delay,
                "pass failed; retrying"
            );
            self.attempts = attempt;
            self.retry = Some(tokio::time::Instant::now() + delay);
            (PassResult::Error, Phase::Failed, "TransientError", Verdict::Error)
        };
        let metrics = &self.shared.metrics;
        metrics.pass(result.as_str());
        metrics.pass_duration.observe(started.elapsed().as_secs_f64());
        let entry = history_entry(snapshot, trigger, start, &now, result, &message, counts);
        // Repeated identical failures (retries) update the newest history entry instead of flooding it.
        let status = self.shared.update(|s| {
            s.last_attempted_revision = Some(revision.clone());
            s.set_phase(phase, reason, &message, &now);
            match s.history.first_mut() {
                Some(first)
                    if first.revision == entry.revision
                        && first.result == entry.result
                        && first.message == entry.message =>
                {
                    first.end = entry.end.clone();
                }
                _ => s.record(entry),
            }
        });
        let repeated = matches!(self.last, Some((ref r, v)) if *r == revision && v == verdict);
        self.last = Some((revision, verdict));
        self.write_status(&status).await;
        if !repeated {
            self.event(EventType::Warning, reason, &message).await;
        }
    }

    /// (Re)starts the drift watchers when the set of owned kinds and namespaces changed.
    fn watch_for_drift(&mut self, prepared: &Prepared) {
        let topology = prepared.topology.name.clone();
        let targets: drift::Targets = prepared
            .rendered
            .objects
            .iter()
            .map(|o| (KindRef::of(&o.reference), o.reference.namespace.clone()))
            .collect();
        if self
            .drift_watch
            .as_ref()
            .is_some_and(|w| w.covers(&topology, &targets))
        {
            return;
        }
        self.drift_watch = Some(DriftWatch::start(
            &self.kube,
            &topology,
            targets,
            self.drift_signal.clone(),
        ));
    }

    async fn write_status(&self, status: &status::Status) {
        let namespace = &self.config.namespace;
        let mut result = status::write_status(&self.kube, namespace, status).await;
        // Keelson's namespace may be missing when creating it at start-up failed (API down); create it now.
        if let Err(StatusError::Write { source, .. }) = &result
            && source.is_not_found()
        {
            result = match status::store::ensure_namespace(&self.kube, namespace).await {
                Ok(()) => status::write_status(&self.kube, namespace, status).await,
                Err(e) => Err(e),
            };
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "writing the status failed");
        }
    }

    async fn event(&self, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = status::events::emit(&self.kube, &self.config.namespace, kind, reason, message).await
        {
            tracing::warn!(error = %e, "recording an event failed");
        }
    }
}

async fn leadership_lost(leader: &mut Option<watch::Receiver<bool>>) {
    match leader {
        // A closed channel means the elector is gone: no longer allowed to write either.
        Some(rx) => {
            let _ = rx.wait_for(|leader| !*leader).await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn history_entry(
    snapshot: &Snapshot,
    trigger: &str,
    start: &str,
    end: &str,
    result: PassResult,
    message: &str,
    counts: ObjectCounts,
) -> HistoryEntry {
    let commit = snapshot.commit.as_ref();
    HistoryEntry {
        revision: snapshot.revision.id.clone(),
        subject: commit.map(|c| c.subject.clone()).unwrap_or_default(),
        author: commit
            .map(|c| format!("{} <{}>", c.author_name, c.author_email))
            .unwrap_or_default(),
        revert_of: commit.and_then(|c| c.reverts.clone()),
        trigger: trigger.to_string(),
        start: start.to_string(),
        end: end.to_string(),
        result,
        message: message.to_string(),
        counts,
    }
}

/// The components of `names` whose dependencies are all in it too (transitively): a narrowed pass never
/// waits on a component it leaves out.
fn with_their_dependencies(prepared: &Prepared, mut names: BTreeSet<String>) -> BTreeSet<String> {
    loop {
        let incomplete: Vec<String> = names
            .iter()
            .filter(|name| {
                prepared.topology.components.get(*name).is_none_or(|c| {
                    c.spec
                        .depends_on
                        .iter()
                        .any(|dependency| !names.contains(dependency))
                })
            })
            .cloned()
            .collect();
        if incomplete.is_empty() {
            return names;
        }
        for name in incomplete {
            names.remove(&name);
        }
    }
}

/// `glance-api Failed: ...; nova-api Blocked: ...` for the status message of a failed pass.
fn unhealthy_components(rollout: &RolloutOutcome) -> String {
    let unhealthy: Vec<String> = rollout
        .components
        .iter()
        .filter(|c| c.state != ComponentState::Healthy)
        .map(|c| format!("{} {}: {}", c.name, c.state, c.reason))
        .collect();
    unhealthy.join("; ")
}

fn counts(rollout: &RolloutOutcome) -> ObjectCounts {
    let c = &rollout.changes;
    ObjectCounts {
        created: c.count(ChangeKind::Created),
        updated: c.count(ChangeKind::Configured),
        deleted: c.count(ChangeKind::Deleted),
        unchanged: c.count(ChangeKind::Unchanged),
    }
}

fn pending_components(prepared: &Prepared) -> Vec<ComponentStatus> {
    prepared
        .plan
        .waves
        .iter()
        .flat_map(|w| &w.components)
        .map(|c| {
            let changes = c
                .changes
                .iter()
                .filter(|ch| ch.action != Action::Unchanged)
                .count();
            ComponentStatus {
                name: c.name.clone(),
                state: ComponentPhase::Pending,
                reason: format!("{changes} object(s) to change"),
            }
        })
        .collect()
}

fn component_statuses(prepared: &Prepared, rollout: &RolloutOutcome) -> Vec<ComponentStatus> {
    prepared
        .plan
        .waves
        .iter()
        .flat_map(|w| &w.components)
        .map(|c| match rollout.component(&c.name) {
            Some(outcome) => ComponentStatus {
                name: c.name.clone(),
                state: component_phase(outcome.state),
                reason: outcome.reason.clone(),
            },
            None => ComponentStatus {
                name: c.name.clone(),
                state: ComponentPhase::Pending,
                reason: String::new(),
            },
        })
        .collect()
}

fn component_phase(state: ComponentState) -> ComponentPhase {
    match state {
        ComponentState::Healthy => ComponentPhase::Healthy,
        ComponentState::Failed => ComponentPhase::Failed,
        ComponentState::Blocked => ComponentPhase::Blocked,
        ComponentState::Skipped => ComponentPhase::Pending,
    }
}

/// Follows progress events: keeps the per-component state of the shared status current, writes it to the
/// status object at most once per [`PROGRESS_WRITE_INTERVAL`] (so that `keelson status` shows what a rollout
/// waits on), and measures waves.
struct ProgressTracker {
    wave_of: HashMap<String, usize>,
    shared: Arc<Shared>,
    kube: Kube,
    namespace: String,
}

/// How often a rollout in progress writes its component states to the status object.
const PROGRESS_WRITE_INTERVAL: Duration = Duration::from_secs(1);

impl ProgressTracker {
    fn new(prepared: &Prepared, shared: Arc<Shared>, kube: &Kube, namespace: &str) -> Self {
        let wave_of = prepared
            .plan
            .waves
            .iter()
            .flat_map(|w| w.components.iter().map(move |c| (c.name.clone(), w.index)))
            .collect();
        Self {
            wave_of,
            shared,
            kube: kube.clone(),
            namespace: namespace.to_string(),
        }
    }

    /// Seconds from the first start to the last finish of each wave. Returns when the rollout drops its
    /// sender, after the last progress write: the pass's final status write always comes later.
    async fn run(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<ProgressEvent>) -> Vec<(usize, f64)> {
        let mut spans: HashMap<usize, (Instant, Instant)> = HashMap::new();
        let mut flush = tokio::time::interval(PROGRESS_WRITE_INTERVAL);
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut dirty = false;
        loop {
            let event = tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                _ = flush.tick() => {
                    if std::mem::take(&mut dirty) {
                        self.write().await;
                    }
                    continue;
                }
            };
            let (component, phase, reason) = match event {
                ProgressEvent::ComponentStarted { component, at } => {
                    if let Some(&wave) = self.wave_of.get(&component) {
                        spans.entry(wave).or_insert((at, at));
                    }
                    let reason = "applying and waiting for health".to_string();
                    (component, ComponentPhase::Progressing, reason)
                }
                ProgressEvent::ComponentFinished {
                    component,
                    state,
                    reason,
                } => {
                    if let Some(span) = self.wave_of.get(&component).and_then(|w| spans.get_mut(w)) {
                        span.1 = Instant::now();
                    }
                    (component, component_phase(state), reason)
                }
                _ => continue,
            };
            self.shared.update(|s| {
                if let Some(c) = s.components.iter_mut().find(|c| c.name == component) {
                    c.state = phase;
                    c.reason = reason;
                }
            });
            dirty = true;
        }
        let mut waves: Vec<(usize, f64)> = spans
            .into_iter()
            .map(|(w, (a, b))| (w, b.duration_since(a).as_secs_f64()))
            .collect();
        waves.sort_by_key(|(w, _)| *w);
        waves
    }

    async fn write(&self) {
        if let Err(e) = status::write_status(&self.kube, &self.namespace, &self.shared.status()).await {
            tracing::debug!(error = %e, "writing rollout progress to the status failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        let cases = [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (40, 60.0)];
        for (attempt, base) in cases {
            for _ in 0..50 {
                let d = backoff.delay(attempt).as_secs_f64();
                assert!(
                    d >= base * 0.8 - 1e-9 && d < base * 1.2 + 1e-9,
                    "attempt {attempt}: {d}"
                );
            }
        }
        let spread: std::collections::BTreeSet<u128> =
            (0..20).map(|_| backoff.delay(3).as_millis()).collect();
        assert!(spread.len() > 1, "jitter varies the delay");
    }
}
