//! One iteration of the daemon, one method per step in the order they run: poll the source, read the
//! operators' requests, decide ([`policy`]), then pass: prepare, start, roll out under supervision, finish
//! ([`record`]). Every status change goes through [`Daemon::commit`].

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tokio::time::Interval;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::policy::{self, Action, Gate, Planned, Request, Scope, Trigger, Verdict};
use super::progress::ProgressTracker;
use super::record::{self, Edit, Outcome, PassInfo, StatusChange};
use super::{Daemon, ReconcileRequest};
use crate::plan;
use crate::reconciler::pass::{self, PassError, PassSettings, Prepared};
use crate::rollout::CancelReason;
use crate::source::verify::VerifyFailure;
use crate::source::{PollOutcome, Snapshot, SourceError, redact_url};
use crate::status::{self, ComponentPhase, Phase, StatusError, now_rfc3339};

/// Objects a drift log names one by one before it counts the rest.
const DRIFT_LINES: usize = 20;

impl Daemon {
    /// Keeps the history across restarts.
    pub(super) async fn load_status(&mut self) {
        let stored = match status::read_status(&self.kube, &self.config.namespace).await {
            Ok(stored) => stored.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the stored status");
                status::Status::default()
            }
        };
        let source = format!("{} ({})", redact_url(&self.source_url), self.source_ref);
        let restored = record::restored(stored, source);
        self.shared.update(|s| *s = restored);
    }

    /// This replica became the leader: the old one kept writing, so start over from what it wrote.
    pub(super) async fn took_over(&mut self) {
        self.load_status().await;
        self.last = None;
        self.retry = None;
    }

    /// A control request or drift that arrived while a pass ran (its wake-up went to the pass).
    pub(super) fn pending_trigger(&mut self) -> Option<Trigger> {
        if std::mem::take(&mut self.control_changed) {
            return Some(Trigger::Wake);
        }
        self.drift_signal.take().then_some(Trigger::Drift)
    }

    pub(super) async fn iteration(
        &mut self,
        trigger: Trigger,
        interval: &mut Interval,
        stop: &CancellationToken,
    ) {
        // A due retry is taken now, whatever this iteration does: it must not fire again and again.
        let retry_due =
            trigger == Trigger::Retry || self.retry.is_some_and(|at| at <= tokio::time::Instant::now());
        if retry_due {
            self.retry = None;
        }
        let before = self.snapshot.as_ref().map(|s| s.revision.id.clone());
        self.poll(trigger).await;
        let resync_due = self
            .planned_at
            .is_none_or(|at| at.elapsed() >= self.config.resync_interval);
        let new_revision = self.snapshot.as_ref().map(|s| &s.revision.id) != before.as_ref();
        // The control watch wakes the loop on every request, so a poll that found no new commit (and is not
        // a resync) reads nothing more than the ref: no request to the API at all.
        let quiet_poll =
            trigger == Trigger::Poll && self.control_seen && !new_revision && !resync_due && !retry_due;
        let control = if quiet_poll {
            status::Control {
                suspend: self.suspend_requested.unwrap_or(self.shared.status().suspended),
                reconcile_requested_at: self.handled_reconcile.clone(),
                // No new request, so nothing to force.
                force: false,
            }
        } else {
            self.read_control().await
        };
        self.shared.metrics.suspended.set(i64::from(control.suspend));
        let reconcile_requested =
            self.control_seen && control.reconcile_requested_at != self.handled_reconcile;
        self.handled_reconcile = control.reconcile_requested_at.clone();
        self.control_seen = true;
        self.log_requests(&control, reconcile_requested);
        if reconcile_requested && let Some(token) = control.reconcile_requested_at.clone() {
            self.reconcile_request = Some(ReconcileRequest {
                token,
                force: control.force,
            });
        }
        let Some(snapshot) = self.snapshot.clone() else {
            return;
        };
        let state = policy::State {
            last: self.last.as_ref().map(|(r, v)| (r.as_str(), *v)),
            revision: Some(&snapshot.revision.id),
            suspend_requested: control.suspend,
            suspended: self.shared.status().phase == Phase::Suspended,
            reconcile_requested,
            force_requested: self.reconcile_request.as_ref().is_some_and(|r| r.force),
            retry_due,
            resync_due,
        };
        match policy::decide(&state, trigger) {
            Action::Wait => {}
            Action::ReportSuspended => {
                let now = now_rfc3339();
                let mut change = record::suspended(&self.shared.status(), &snapshot, &now);
                if let Some(request) = self.reconcile_request.take() {
                    record::reconcile_while_suspended(&mut change, &request.token, &snapshot, &now);
                }
                self.commit(change, None).await;
            }
            Action::Pass { scope, trigger } => self.passes(snapshot, scope, trigger, interval, stop).await,
        }
    }

    /// A pass over `snapshot`, and over each newer revision that pre-empts the one before.
    async fn passes(
        &mut self,
        snapshot: Snapshot,
        mut scope: Scope,
        trigger: &str,
        interval: &mut Interval,
        stop: &CancellationToken,
    ) {
        let mut next = Some(snapshot);
        while let Some(mut snapshot) = next.take() {
            // Every revision is verified before its pass, also one that pre-empted a rollout.
            if let Err(error) = self.verify(&mut snapshot).await {
                let (started, start) = (Instant::now(), now_rfc3339());
                let end = now_rfc3339();
                let pass = PassInfo {
                    snapshot: &snapshot,
                    trigger,
                    start: &start,
                    end: &end,
                };
                self.finish_error(&pass, Scope::Full, &error, started).await;
                return;
            }
            next = self.pass(&snapshot, trigger, scope, interval, stop).await;
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

    /// With `--verify-signatures`: records the signer on `snapshot` if its commit (or tag) is signed by an
    /// allowed key, or says why not. A revision is checked once: the signer is kept on the daemon's snapshot.
    async fn verify(&mut self, snapshot: &mut Snapshot) -> Result<(), PassError> {
        let Some((mode, allowed)) = self.config.verify.clone() else {
            return Ok(());
        };
        if snapshot.signer.is_some() {
            return Ok(());
        }
        let revision = snapshot.revision.id.clone();
        match self.source.verify(snapshot.clone(), mode, allowed).await {
            Ok(signer) => {
                tracing::info!(revision = %snapshot.revision.short(), signer = %signer, "signature verified");
                if let Some(kept) = self.snapshot.as_mut().filter(|s| s.revision.id == revision) {
                    kept.signer = Some(signer.clone());
                }
                snapshot.signer = Some(signer);
                Ok(())
            }
            Err(VerifyFailure::Refused(refusal)) => Err(PassError::Unverified {
                revision,
                message: refusal.to_string(),
            }),
            Err(VerifyFailure::Source(source)) => Err(PassError::Verify { source }),
        }
    }

    /// Polls the source; keeps a new snapshot; reports a source that cannot be read, or a head that cannot
    /// be used, in the status. While a transient failure backs off, timer ticks, pass retries and drift do not
    /// poll: the poll at the time the log names does (a wake-up, such as a webhook, polls at once).
    async fn poll(&mut self, trigger: Trigger) {
        let now = tokio::time::Instant::now();
        let backing_off = self.source_backoff.is_some_and(|at| at > now);
        if backing_off && matches!(trigger, Trigger::Poll | Trigger::Retry | Trigger::Drift) {
            return;
        }
        self.source_backoff = None;
        match self.poll_source().await {
            Ok(PollOutcome::Changed {
                snapshot,
                history_rewritten,
                ..
            }) => {
                if history_rewritten {
                    tracing::warn!(revision = %snapshot.revision.short(), "the tracked ref was rewritten");
                }
                tracing::debug!(revision = %snapshot.revision.short(), "new revision");
                self.source_read(&snapshot.revision.id).await;
                self.snapshot = Some(snapshot);
            }
            Ok(PollOutcome::Unchanged { revision }) => self.source_read(&revision.id).await,
            Err(e) => {
                let transient = e.is_transient();
                if transient {
                    let delay = self.source.retry_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "polling the Git source failed; polling again in {delay:.1?}");
                    self.source_backoff = Some(now + delay);
                } else {
                    let interval = self.config.interval;
                    tracing::warn!(error = %e, "the Git source's head cannot be used; polling again in {interval:.1?} (the poll interval) or on a webhook");
                }
                let failure = record::SourceFailure {
                    message: &e.to_string(),
                    transient,
                    unusable: e.unusable_commit(),
                };
                let change = record::source_failed(
                    &self.shared.status(),
                    &failure,
                    self.snapshot.is_some(),
                    &now_rfc3339(),
                );
                self.commit(change, None).await;
            }
        }
    }

    /// The source's head was read: a `SourceReady=False` turns True (written, with an Event); a status
    /// without the condition gets it with its next write.
    async fn source_read(&mut self, revision: &str) {
        let now = now_rfc3339();
        let status = self.shared.status();
        match record::source_read(&status, revision, &now) {
            Some(change) => self.commit(change, None).await,
            None if status.condition(record::SOURCE_READY).is_none() => {
                let message = format!("revision {} read", revision.get(..12).unwrap_or(revision));
                self.shared
                    .update(|s| s.set_condition(record::SOURCE_READY, true, "Succeeded", &message, &now));
            }
            None => {}
        }
    }

    /// One poll, counted; a new revision is recorded as observed.
    async fn poll_source(&mut self) -> Result<PollOutcome, SourceError> {
        let before = self.source.stats();
        let result = self.source.poll().await;
        let after = self.source.stats();
        let metrics = &self.shared.metrics;
        metrics.git_polls.inc();
        metrics
            .git_fetches
            .inc_by(after.fetches.saturating_sub(before.fetches));
        match &result {
            Ok(PollOutcome::Changed { snapshot, .. }) => {
                let id = snapshot.revision.id.clone();
                self.shared.update(|s| s.observed_revision = Some(id));
            }
            Ok(PollOutcome::Unchanged { .. }) => {}
            Err(_) => {
                metrics.git_poll_failures.inc();
            }
        }
        result
    }

    /// While a rollout runs: a newer revision, which pre-empts it.
    pub(super) async fn poll_during_rollout(&mut self) -> Option<Snapshot> {
        match self.poll_source().await {
            Ok(PollOutcome::Changed { snapshot, .. }) => {
                tracing::info!(revision = %snapshot.revision.short(), "newer revision: cancelling the rollout in progress");
                Some(snapshot)
            }
            Ok(PollOutcome::Unchanged { .. }) => None,
            Err(e) => {
                tracing::warn!(error = %e, "polling during the rollout failed");
                None
            }
        }
    }

    async fn read_control(&self) -> status::Control {
        match status::read_control(&self.kube, &self.config.namespace).await {
            Ok(control) => control,
            Err(e) => {
                tracing::warn!(error = %e, "reading the control object failed; keeping the previous requests");
                status::Control {
                    suspend: self.shared.status().suspended,
                    reconcile_requested_at: self.handled_reconcile.clone(),
                    force: false,
                }
            }
        }
    }

    /// Says what operators asked, once per request.
    fn log_requests(&mut self, control: &status::Control, reconcile_requested: bool) {
        let was = self.suspend_requested.replace(control.suspend);
        match (was, control.suspend) {
            (Some(true), true) | (None | Some(false), false) => {}
            (_, true) => tracing::info!(
                "suspend requested: nothing is applied until `keelson resume`; reporting goes on"
            ),
            (Some(true), false) => tracing::info!("resume requested: applying the newest revision"),
        }
        if reconcile_requested {
            let at = control.reconcile_requested_at.as_deref().unwrap_or_default();
            if control.force {
                tracing::info!(
                    requested_at = at,
                    "forced reconcile requested: a full pass now, through the sync windows"
                );
            } else {
                tracing::info!(requested_at = at, "reconcile requested: a full pass now");
            }
        }
    }

    /// While a rollout runs: reads the requests that woke the loop; a reconcile request is kept for the
    /// next iteration, a suspend request cancels the rollout.
    pub(super) async fn suspend_requested_during_rollout(&mut self) -> bool {
        let control = self.read_control().await;
        if control.reconcile_requested_at != self.handled_reconcile {
            self.control_changed = true;
        }
        if control.suspend {
            tracing::info!("suspend requested: cancelling the rollout in progress");
            self.suspend_requested = Some(true);
            self.control_changed = true;
        }
        control.suspend
    }

    /// One pass over `snapshot`. Returns a newer snapshot when one cancelled this pass.
    #[instrument(skip_all, fields(revision = %snapshot.revision.short(), trigger = %trigger, scope = ?scope))]
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
        let previous = self.shared.status();
        let revision = snapshot.revision.id.as_str();
        let same_as_applied = previous.last_applied_revision.as_deref() == Some(revision);
        self.commit(record::resumed(&previous, &start), None).await;

        let prepared = match self.prepare(snapshot, scope, &previous).await {
            Ok(prepared) => prepared,
            Err(e) => {
                let end = now_rfc3339();
                let pass = PassInfo {
                    snapshot,
                    trigger,
                    start: &start,
                    end: &end,
                };
                self.finish_error(&pass, scope, &e, started).await;
                return None;
            }
        };
        let converged_here =
            same_as_applied && matches!(&self.last, Some((r, Verdict::Converged)) if r == revision);
        match policy::after_plan(scope, prepared.plan.has_changes(), converged_here) {
            Planned::NothingDrifted => return None,
            Planned::Unchanged => {
                let end = now_rfc3339();
                let pass = PassInfo {
                    snapshot,
                    trigger,
                    start: &start,
                    end: &end,
                };
                let objects = prepared.plan.summary.unchanged;
                self.finish(&pass, Outcome::Unchanged { objects }, started).await;
                return None;
            }
            Planned::Execute => {}
        }
        self.log_drift(&prepared, same_as_applied);
        // A refused plan writes nothing: the status keeps the components of the applied revision.
        if let Err(e) = pass::refuse_if_blocked(&prepared) {
            let end = now_rfc3339();
            let pass = PassInfo {
                snapshot,
                trigger,
                start: &start,
                end: &end,
            };
            self.finish_error(&pass, scope, &e, started).await;
            return None;
        }
        if prepared.plan.has_changes()
            && !self
                .through_windows(snapshot, &prepared, scope, same_as_applied)
                .await
        {
            return None;
        }

        // A narrowed pass leaves the status of the failed revision as it is; it only adds its own record.
        let tracking = if scope == Scope::Full {
            let inventory = self.config.pass.inventory_namespace.as_deref();
            let inventory = inventory.unwrap_or(&prepared.topology.spec.namespace);
            self.commit(record::started(&prepared, inventory, &now_rfc3339()), None)
                .await;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let tracker = ProgressTracker::new(self.shared.clone(), &self.kube, &self.config.namespace);
            Some((tx, tokio::spawn(tracker.run(rx))))
        } else {
            tracing::info!(
                revision = %snapshot.revision.short(),
                objects = prepared.plan.summary.create + prepared.plan.summary.update,
                "correcting drift in the healthy components of a failed revision"
            );
            None
        };
        let (progress, tracking) = tracking.unzip();
        let cancel = stop.child_token();
        let kube = self.kube.clone();
        let settings = PassSettings {
            // Said unless the supervisor names another cause (a newer revision, suspend, leadership).
            cancel_reason: CancelReason::with_default("cancelled: Keelson is shutting down"),
            ..self.config.pass.clone()
        };
        let execution = pass::execute(&kube, &prepared, &settings, cancel.clone(), progress);
        let (result, newer) = self
            .supervise(execution, &cancel, &settings.cancel_reason, interval)
            .await;
        if let Some(tracking) = tracking {
            for (wave, seconds) in tracking.await.unwrap_or_default() {
                self.shared.metrics.wave(wave, seconds);
            }
        }

        let end = now_rfc3339();
        let pass = PassInfo {
            snapshot,
            trigger,
            start: &start,
            end: &end,
        };
        match (result, scope) {
            (Ok(outcome), Scope::Full) => {
                let outcome = Outcome::Rollout {
                    prepared: &prepared,
                    rollout: &outcome.rollout,
                    same_as_applied,
                };
                self.finish(&pass, outcome, started).await;
            }
            (Ok(outcome), Scope::HealthyOnly) => {
                self.finish(
                    &pass,
                    Outcome::DriftCorrection {
                        rollout: &outcome.rollout,
                    },
                    started,
                )
                .await;
            }
            (Err(e), _) => self.finish_error(&pass, scope, &e, started).await,
        }
        if let Some(fresh) = newer {
            self.snapshot = Some(fresh.clone());
            return Some(fresh);
        }
        None
    }

    /// Whether the sync windows (the daemon's and the revision's) let this pass write now. A held pass
    /// reports what waits and until when, and wakes the loop when the window opens; a forced or manual
    /// request that goes through a closed window is recorded as an override.
    async fn through_windows(
        &mut self,
        snapshot: &Snapshot,
        prepared: &Prepared,
        scope: Scope,
        drift_only: bool,
    ) -> bool {
        let windows = self.config.sync_windows.merged(&prepared.topology.sync_windows);
        if windows.is_empty() {
            return true;
        }
        let request = match &self.reconcile_request {
            Some(ReconcileRequest { force: true, .. }) => Request::Forced,
            Some(_) => Request::Manual,
            None => Request::Automatic,
        };
        let now = self.config.clock.now();
        let closed = match policy::gate(&windows, now, request) {
            Gate::Write => return true,
            Gate::Override(closed) => {
                let change = record::window_overridden(snapshot, &closed, request == Request::Forced);
                for note in &change.events {
                    tracing::warn!(revision = %snapshot.revision.short(), "{}", note.message);
                }
                self.commit(change, None).await;
                return true;
            }
            Gate::Hold(closed) => closed,
        };
        // Look again when the window opens (at least daily: clocks move, windows are edited).
        let wait = closed
            .opens
            .and_then(|opens| Duration::try_from(opens.duration_since(now)).ok())
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(24 * 3600));
        self.retry = Some(tokio::time::Instant::now() + wait);
        let revision = snapshot.revision.short();
        if scope == Scope::HealthyOnly {
            tracing::debug!(
                revision,
                "drift correction held back by the sync windows: {}",
                closed.because
            );
            return false;
        }
        let now_text = now_rfc3339();
        let pass = record::Held {
            snapshot,
            summary: &prepared.plan.summary,
            closed: &closed,
            drift_only,
            now: &now_text,
        };
        let mut change = record::held(&self.shared.status(), &pass);
        if let Some(request) = self.reconcile_request.take() {
            record::reconcile_held(&mut change, &request.token, &pass);
        }
        match &change.edit {
            Some(Edit {
                phase: Some((_, _, message)),
                ..
            }) => tracing::info!(revision, "{message}"),
            _ => tracing::debug!(revision, "still held back by the sync windows"),
        }
        self.last = Some((snapshot.revision.id.clone(), Verdict::Deferred));
        self.commit(change, None).await;
        false
    }

    /// Load, render, read the cluster and plan; a narrowed pass keeps only the components that were
    /// healthy, with the dependencies they need.
    #[instrument(skip_all, fields(revision = %snapshot.revision.short()))]
    async fn prepare(
        &mut self,
        snapshot: &Snapshot,
        scope: Scope,
        previous: &status::Status,
    ) -> Result<Prepared, PassError> {
        self.planned_at = Some(tokio::time::Instant::now());
        let prepared =
            pass::prepare_with(&self.kube, self.view.as_ref(), snapshot, &self.config.pass).await?;
        self.view = prepared.view.clone();
        if scope == Scope::Full {
            return Ok(prepared);
        }
        let healthy: BTreeSet<String> = previous
            .components
            .iter()
            .filter(|c| c.state == ComponentPhase::Healthy)
            .map(|c| c.name.clone())
            .collect();
        Ok(prepared.only_components(&policy::with_their_dependencies(&prepared.topology, healthy)))
    }

    /// A pass that ended in an error: a full pass records it; a narrowed one leaves the failed revision's
    /// status as it is (the next trigger looks again).
    async fn finish_error(&mut self, pass: &PassInfo<'_>, scope: Scope, error: &PassError, started: Instant) {
        if scope == Scope::HealthyOnly {
            tracing::warn!(error = %error, "not correcting drift in the healthy components");
            self.commit(record::narrowed_error(error), Some(started.elapsed()))
                .await;
            return;
        }
        let last = self.last.clone();
        let last = last.as_ref().map(|(r, v)| (r.as_str(), *v));
        self.finish(pass, Outcome::Error { error, last }, started).await;
    }

    /// Records how a pass ended, logs it in one line, and remembers its verdict for the policy.
    #[instrument(skip_all, fields(revision = %pass.snapshot.revision.short()))]
    async fn finish(&mut self, pass: &PassInfo<'_>, outcome: Outcome<'_>, started: Instant) {
        let mut change = record::finished(pass, outcome);
        if change.verdict != Some(Verdict::Cancelled)
            && let Some(request) = self.reconcile_request.take()
        {
            record::answer_reconcile(&mut change, &request.token, pass);
        }
        let elapsed = started.elapsed();
        let line = record::log_line(pass, outcome, &change, elapsed);
        let revision = &pass.snapshot.revision;
        match (outcome, change.verdict) {
            (Outcome::Error { .. }, Some(Verdict::Stalled)) => {
                tracing::warn!("{line}; stalled until the next commit or `keelson reconcile`");
                self.retry = None;
            }
            (Outcome::Error { last, .. }, Some(Verdict::Error)) => {
                let attempt = policy::attempt(last, self.attempts, &revision.id);
                let delay = self.config.backoff.delay(attempt);
                tracing::warn!(attempt, retry_in = ?delay, "{line}; retrying in {delay:.1?}");
                self.attempts = attempt;
                self.retry = Some(tokio::time::Instant::now() + delay);
            }
            (Outcome::Rollout { prepared, .. }, Some(verdict)) => {
                if verdict == Verdict::Failed {
                    tracing::warn!("{line}");
                } else {
                    tracing::info!("{line}");
                }
                // A failed revision is watched too: its healthy components keep being corrected.
                if matches!(verdict, Verdict::Converged | Verdict::Failed) {
                    self.watch_for_drift(prepared);
                }
                self.retry = None;
            }
            (Outcome::Unchanged { .. }, _) => {
                tracing::info!("{line}");
                self.retry = None;
            }
            _ => tracing::info!("{line}"),
        }
        if let Some(verdict) = change.verdict {
            self.last = Some((revision.id.clone(), verdict));
        }
        self.commit(change, Some(elapsed)).await;
    }

    /// Names what drifted from Git and which fields, before a pass re-applies it: the owned objects whose
    /// rendering did not change but whose live copy did, and the objects of the applied revision deleted
    /// by hand.
    fn log_drift(&self, prepared: &Prepared, same_as_applied: bool) {
        let drifted: Vec<String> = prepared
            .plan
            .apply_changes()
            .filter_map(|c| match c.action {
                plan::Action::Update if c.drift => {
                    let fields: Vec<String> = c.diff.iter().map(|d| d.path.clone()).collect();
                    let fields = record::bounded_list(&fields, 5);
                    Some(format!("{}: {fields} changed outside Git", c.reference))
                }
                plan::Action::Create if same_as_applied => {
                    Some(format!("{}: deleted outside Git", c.reference))
                }
                _ => None,
            })
            .collect();
        let revision = prepared.revision.short();
        for line in drifted.iter().take(DRIFT_LINES) {
            tracing::info!(revision, "drift: {line}; re-applying from Git");
        }
        if drifted.len() > DRIFT_LINES {
            tracing::info!(revision, "drift: {} more object(s)", drifted.len() - DRIFT_LINES);
        }
    }

    /// Carries out a status change: metrics, readiness, the status object, Events.
    async fn commit(&self, change: StatusChange, elapsed: Option<Duration>) {
        let metrics = &self.shared.metrics;
        if let Some(result) = change.result {
            metrics.pass(result.as_str(), change.reason);
            if let Some(elapsed) = elapsed {
                metrics.pass_duration.observe(elapsed.as_secs_f64());
            }
            metrics.counts(&change.objects);
        }
        metrics.drift_corrections.inc_by(change.drift_corrected);
        if change.ready {
            self.shared.set_ready();
        }
        if change.applied {
            metrics.applied_now();
        }
        if let Some(edit) = &change.edit {
            let status = self.shared.update(|s| edit.apply(s));
            metrics
                .change_pending
                .set(i64::from(status.pending_change.is_some()));
            self.write_status(&status).await;
        }
        for note in &change.events {
            self.event(note).await;
        }
    }

    /// Drift is what the pass's view sees change once it has listed: its watches (one per owned kind and
    /// namespace) raise the drift signal after taking the change in, so the re-plan it wakes reads it.
    fn watch_for_drift(&mut self, prepared: &Prepared) {
        let Some(view) = &prepared.view else {
            return;
        };
        let signal = self.drift_signal.clone();
        view.on_change(move || signal.raise());
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

    async fn event(&self, note: &record::Note) {
        let result = status::events::emit(
            &self.kube,
            &self.config.namespace,
            note.kind,
            note.reason,
            &note.message,
        )
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "recording an event failed");
        }
    }
}
