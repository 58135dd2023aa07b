//! What the status says about each step of the daemon: pure functions from what happened to a
//! [`StatusChange`] (edits of the status document, Events, metric observations). [`finished`] is the one
//! place a pass's result is finalised (Flux's `finalizeStatus`); the other transitions say that a pass
//! started, that applying is suspended or resumed, or that the source cannot be read.

use std::time::Duration;

use crate::cluster::ChangeKind;
use crate::plan::{self, Action};
use crate::reconciler::{PassError, Prepared};
use crate::rollout::{ComponentState, RolloutOutcome};
use crate::source::Snapshot;
use crate::status::{
    ComponentPhase, ComponentStatus, EventType, HandledReconcile, HistoryEntry, ObjectCounts, PassResult,
    PendingChange, Phase, Status,
};
use crate::topology::sync_windows::Closed;

use super::policy::Verdict;

/// One Kubernetes Event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub kind: EventType,
    pub reason: &'static str,
    pub message: String,
}

impl Note {
    fn normal(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: EventType::Normal,
            reason,
            message: message.into(),
        }
    }

    fn warning(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: EventType::Warning,
            reason,
            message: message.into(),
        }
    }
}

/// How the component list of the status changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Components {
    #[default]
    Keep,
    /// The components of this revision, replacing the list.
    Replace(Vec<ComponentStatus>),
    /// Only these entries change (a narrowed pass).
    Update(Vec<ComponentStatus>),
}

/// How the history changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum History {
    #[default]
    Keep,
    Record(HistoryEntry),
    /// A retry that fails as the newest entry did only moves its end time, so backoff does not flood the
    /// history.
    RecordOrExtend(HistoryEntry),
}

/// How the change held back by the sync windows changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Pending {
    #[default]
    Keep,
    Set(PendingChange),
    /// Nothing waits any more: a pass writes, or the revision cannot be applied at all.
    Clear,
}

/// Edits of the status document, applied in one place ([`Edit::apply`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Edit {
    pub now: String,
    pub phase: Option<(Phase, &'static str, String)>,
    pub topology: Option<String>,
    pub suspended: Option<bool>,
    pub last_attempted: Option<String>,
    /// A converged pass: this revision is now the applied one.
    pub last_applied: Option<String>,
    pub components: Components,
    pub drift_corrections: u64,
    pub history: History,
    pub inventory_namespace: Option<String>,
    pub handled_reconcile: Option<HandledReconcile>,
    pub pending: Pending,
    /// The `SourceReady` condition: whether the head of the source could be read, why not.
    pub source_ready: Option<(bool, &'static str, String)>,
    /// `Some(None)` clears it.
    pub unusable_revision: Option<Option<String>>,
    pub observed: Option<String>,
}

impl Edit {
    pub fn apply(&self, s: &mut Status) {
        if let Some((ready, reason, message)) = &self.source_ready {
            s.set_condition(SOURCE_READY, *ready, reason, message, &self.now);
            s.updated = self.now.clone();
        }
        if let Some(unusable) = &self.unusable_revision {
            s.unusable_revision = unusable.clone();
        }
        if let Some(observed) = &self.observed {
            s.observed_revision = Some(observed.clone());
        }
        if let Some(topology) = &self.topology {
            s.topology = Some(topology.clone());
        }
        if let Some(suspended) = self.suspended {
            s.suspended = suspended;
        }
        if let Some(revision) = &self.last_attempted {
            s.last_attempted_revision = Some(revision.clone());
        }
        if let Some(revision) = &self.last_applied {
            s.last_applied_revision = Some(revision.clone());
            s.last_applied_time = Some(self.now.clone());
        }
        match &self.components {
            Components::Keep => {}
            Components::Replace(components) => s.components = components.clone(),
            Components::Update(changed) => {
                for change in changed {
                    if let Some(c) = s.components.iter_mut().find(|c| c.name == change.name) {
                        c.state = change.state;
                        c.reason = change.reason.clone();
                    }
                }
            }
        }
        s.drift_corrections += self.drift_corrections;
        if let Some(namespace) = &self.inventory_namespace {
            s.inventory_namespace = Some(namespace.clone());
        }
        if let Some(handled) = &self.handled_reconcile {
            s.last_handled_reconcile = Some(handled.clone());
        }
        match &self.pending {
            Pending::Keep => {}
            Pending::Set(pending) => s.pending_change = Some(pending.clone()),
            Pending::Clear => s.pending_change = None,
        }
        if let Some((phase, reason, message)) = &self.phase {
            s.set_phase(*phase, reason, message, &self.now);
        }
        match &self.history {
            History::Keep => {}
            History::Record(entry) => s.record(entry.clone()),
            History::RecordOrExtend(entry) => match s.history.first_mut() {
                Some(first)
                    if first.revision == entry.revision
                        && first.result == entry.result
                        && first.message == entry.message =>
                {
                    first.end = entry.end.clone();
                }
                _ => s.record(entry.clone()),
            },
        }
    }
}

/// What the daemon does about one step: edit (and write) the status, record Events, count.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusChange {
    /// `None`: the status document (and the status object) stays as it is.
    pub edit: Option<Edit>,
    pub events: Vec<Note>,
    /// How the pass ended, for the pass counter; `None` when no pass ended.
    pub result: Option<PassResult>,
    /// Why, in one word (the counter's `reason` label).
    pub reason: &'static str,
    /// Objects by what the pass did to them, for the object counter.
    pub objects: ObjectCounts,
    /// Owned objects re-applied because they drifted from Git.
    pub drift_corrected: u64,
    /// The cluster equals the revision: the daemon is ready.
    pub ready: bool,
    /// A revision became (or stayed) the applied one by a pass that wrote.
    pub applied: bool,
    /// What the policy remembers of this pass; `None` keeps the last verdict (a narrowed pass).
    pub verdict: Option<Verdict>,
}

/// The pass being recorded.
#[derive(Debug, Clone, Copy)]
pub struct PassInfo<'a> {
    pub snapshot: &'a Snapshot,
    pub trigger: &'a str,
    /// RFC 3339 start and end times.
    pub start: &'a str,
    pub end: &'a str,
}

impl PassInfo<'_> {
    fn short(&self) -> &str {
        self.snapshot.revision.short()
    }

    fn entry(&self, result: PassResult, message: &str, counts: ObjectCounts) -> HistoryEntry {
        let commit = self.snapshot.commit.as_ref();
        HistoryEntry {
            revision: self.snapshot.revision.id.clone(),
            subject: commit.map(|c| c.subject.clone()).unwrap_or_default(),
            author: commit
                .map(|c| format!("{} <{}>", c.author_name, c.author_email))
                .unwrap_or_default(),
            revert_of: commit.and_then(|c| c.reverts.clone()),
            trigger: self.trigger.to_string(),
            start: self.start.to_string(),
            end: self.end.to_string(),
            result,
            message: message.to_string(),
            counts,
        }
    }
}

/// How a pass ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// A full pass rolled out. `same_as_applied`: the revision was the applied one already, so whatever it
    /// wrote corrected drift.
    Rollout {
        prepared: &'a Prepared,
        rollout: &'a RolloutOutcome,
        same_as_applied: bool,
    },
    /// A pass narrowed to the healthy components of a failed revision rolled out.
    DriftCorrection { rollout: &'a RolloutOutcome },
    /// A full pass ended with an error before or after its rollout. `last`: the policy's memory, which
    /// tells a repeated failure (no new Event) from a new one.
    Error {
        error: &'a PassError,
        last: Option<(&'a str, Verdict)>,
    },
    /// A re-plan of the converged revision found nothing to change in its `objects`.
    Unchanged { objects: usize },
}

/// The one place a pass's result is finalised.
pub fn finished(pass: &PassInfo<'_>, outcome: Outcome<'_>) -> StatusChange {
    match outcome {
        Outcome::Rollout {
            prepared,
            rollout,
            same_as_applied,
        } => rolled_out(pass, prepared, rollout, same_as_applied),
        Outcome::DriftCorrection { rollout } => drift_corrected(pass, rollout),
        Outcome::Error { error, last } => failed(pass, error, last),
        Outcome::Unchanged { .. } => StatusChange {
            result: Some(PassResult::Succeeded),
            reason: "unchanged",
            ready: true,
            ..StatusChange::default()
        },
    }
}

fn rolled_out(
    pass: &PassInfo<'_>,
    prepared: &Prepared,
    rollout: &RolloutOutcome,
    same_as_applied: bool,
) -> StatusChange {
    let short = pass.short();
    let counts = counts(rollout);
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
    let converged = verdict == Verdict::Converged;
    let drifted = if same_as_applied && converged {
        (counts.created + counts.updated + counts.deleted) as u64
    } else {
        0
    };
    let event = match verdict {
        Verdict::Converged if drifted > 0 => Note::normal("DriftCorrected", &message),
        Verdict::Converged => Note::normal("Applied", &message),
        Verdict::Cancelled => Note::normal("Cancelled", &message),
        _ => Note::warning("RolloutFailed", &message),
    };
    let mut events = vec![event];
    for component in &rollout.components {
        let reason = match component.state {
            ComponentState::Failed => "ComponentFailed",
            ComponentState::Blocked => "ComponentBlocked",
            _ => continue,
        };
        let text = format!("{}: {} (revision {short})", component.name, component.reason);
        events.push(Note::warning(reason, text));
    }
    StatusChange {
        edit: Some(Edit {
            now: pass.end.to_string(),
            phase: Some((phase, reason, message.clone())),
            last_applied: converged.then(|| pass.snapshot.revision.id.clone()),
            components: Components::Replace(component_statuses(prepared, rollout)),
            drift_corrections: drifted,
            history: History::Record(pass.entry(result, &message, counts)),
            ..Edit::default()
        }),
        events,
        result: Some(result),
        reason: match verdict {
            Verdict::Converged if drifted > 0 => "drift_corrected",
            Verdict::Converged => "applied",
            Verdict::Cancelled => "cancelled",
            _ => failure_label(rollout),
        },
        objects: counts,
        drift_corrected: drifted,
        ready: converged,
        applied: converged,
        verdict: Some(verdict),
    }
}

/// The revision stays failed (phase, conditions and the verdict are kept); what was re-applied counts as
/// drift. A component whose correction failed is no longer healthy: it leaves the set corrected on every
/// trigger, so one failure is not retried (and recorded) again and again.
fn drift_corrected(pass: &PassInfo<'_>, rollout: &RolloutOutcome) -> StatusChange {
    let short = pass.short();
    let counts = counts(rollout);
    let written = (counts.created + counts.updated) as u64;
    let (result, event, corrected, reason) = if rollout.converged() {
        let message = format!(
            "corrected drift in {written} object(s) of healthy components; revision {short} stays failed until \
             a new commit or `keelson reconcile`"
        );
        let event = Note::normal("DriftCorrected", message);
        (PassResult::Succeeded, event, written, "drift_corrected")
    } else if rollout.cancelled {
        let message = format!("drift correction of revision {short} cancelled");
        (
            PassResult::Cancelled,
            Note::normal("Cancelled", message),
            0,
            "cancelled",
        )
    } else {
        let message = format!(
            "correcting drift of revision {short} failed: {}",
            unhealthy_components(rollout)
        );
        let event = Note::warning("DriftCorrectionFailed", message);
        (PassResult::Failed, event, 0, failure_label(rollout))
    };
    let no_longer_healthy = rollout
        .components
        .iter()
        .filter(|c| c.state != ComponentState::Healthy)
        .map(|c| ComponentStatus {
            name: c.name.clone(),
            state: component_phase(c.state),
            reason: c.reason.clone(),
        })
        .collect();
    StatusChange {
        edit: Some(Edit {
            now: pass.end.to_string(),
            components: Components::Update(no_longer_healthy),
            drift_corrections: corrected,
            history: History::Record(pass.entry(result, &event.message, counts)),
            ..Edit::default()
        }),
        events: vec![event],
        result: Some(result),
        reason,
        objects: counts,
        drift_corrected: corrected,
        ..StatusChange::default()
    }
}

fn failed(pass: &PassInfo<'_>, error: &PassError, last: Option<(&str, Verdict)>) -> StatusChange {
    let revision = &pass.snapshot.revision.id;
    let message = error.to_string();
    let reason = error.status_reason();
    let (result, phase, verdict) = if error.is_configuration() {
        (PassResult::Stalled, Phase::Stalled, Verdict::Stalled)
    } else {
        (PassResult::Error, Phase::Failed, Verdict::Error)
    };
    let repeated = last.is_some_and(|(r, v)| r == revision && v == verdict);
    StatusChange {
        edit: Some(Edit {
            now: pass.end.to_string(),
            phase: Some((phase, reason, message.clone())),
            last_attempted: Some(revision.clone()),
            history: History::RecordOrExtend(pass.entry(result, &message, ObjectCounts::default())),
            pending: Pending::Clear,
            ..Edit::default()
        }),
        events: if repeated {
            Vec::new()
        } else {
            vec![Note::warning(reason, message)]
        },
        result: Some(result),
        reason: error.metric_label(),
        verdict: Some(verdict),
        ..StatusChange::default()
    }
}

/// The pass answers the `keelson reconcile` request `requested_at` (a cancelled pass answers nothing: the
/// pass that follows it does). A pass that wrote nothing else still writes the answer.
pub fn answer_reconcile(change: &mut StatusChange, requested_at: &str, pass: &PassInfo<'_>) {
    let message = match &change.edit {
        Some(Edit {
            phase: Some((_, _, message)),
            ..
        }) => message.clone(),
        _ => format!("revision {}: nothing to change", pass.short()),
    };
    let handled = HandledReconcile {
        requested_at: requested_at.to_string(),
        revision: pass.snapshot.revision.id.clone(),
        result: change.result.map(|r| r.to_string()).unwrap_or_default(),
        message,
        end: pass.end.to_string(),
    };
    change
        .edit
        .get_or_insert_with(|| Edit {
            now: pass.end.to_string(),
            ..Edit::default()
        })
        .handled_reconcile = Some(handled);
}

/// `keelson reconcile` while applying is suspended: no pass runs; the answer says so.
pub fn reconcile_while_suspended(
    change: &mut StatusChange,
    requested_at: &str,
    snapshot: &Snapshot,
    now: &str,
) {
    let handled = HandledReconcile {
        requested_at: requested_at.to_string(),
        revision: snapshot.revision.id.clone(),
        result: "Suspended".into(),
        message: "applying is suspended: no pass ran; `keelson resume` applies the newest revision".into(),
        end: now.to_string(),
    };
    change
        .edit
        .get_or_insert_with(|| Edit {
            now: now.to_string(),
            ..Edit::default()
        })
        .handled_reconcile = Some(handled);
}

/// A full pass is about to roll out: its components are pending, the status says what it applies and where
/// its inventory will be.
pub fn started(prepared: &Prepared, inventory_namespace: &str, now: &str) -> StatusChange {
    StatusChange {
        edit: Some(Edit {
            now: now.to_string(),
            phase: Some((
                Phase::Reconciling,
                "Progressing",
                format!("applying revision {}", prepared.revision.short()),
            )),
            topology: Some(prepared.topology.name.clone()),
            last_attempted: Some(prepared.revision.id.clone()),
            components: Components::Replace(pending_components(prepared)),
            inventory_namespace: Some(inventory_namespace.to_string()),
            pending: Pending::Clear,
            ..Edit::default()
        }),
        ..StatusChange::default()
    }
}

/// A planned change the sync windows hold back.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    pub snapshot: &'a Snapshot,
    pub summary: &'a plan::Summary,
    pub closed: &'a Closed,
    /// The revision is the applied one: what waits is drift correction.
    pub drift_only: bool,
    /// RFC 3339.
    pub now: &'a str,
}

impl Held<'_> {
    /// `change pending: window opens Tue 2026-12-08 02:00 UTC; revision abc123 (...) is held back: ...`.
    pub fn message(&self) -> String {
        let short = self.snapshot.revision.short();
        let what = if self.drift_only {
            format!("drift correction of revision {short}")
        } else {
            format!("revision {short}")
        };
        let s = self.summary;
        let hint = if self.closed.manual_sync {
            "`keelson reconcile` applies it now"
        } else {
            "`keelson reconcile --force` applies it now"
        };
        format!(
            "change pending: {}; {what} ({} to create, {} to update, {} to delete) is held back: {}; {hint}",
            self.closed.opens_text(),
            s.create,
            s.update,
            s.delete,
            self.closed.because
        )
    }
}

/// The sync windows hold a planned change back: the status says what waits and when the window opens
/// (written, with an Event, only when that changes); nothing in the cluster is written.
pub fn held(current: &Status, held: &Held<'_>) -> StatusChange {
    let message = held.message();
    if current.phase == Phase::Pending && current.condition("Ready").is_some_and(|c| c.message == message) {
        return StatusChange::default();
    }
    let revision = &held.snapshot.revision.id;
    let since = current
        .pending_change
        .as_ref()
        .filter(|p| &p.revision == revision)
        .map_or_else(|| held.now.to_string(), |p| p.since.clone());
    let s = held.summary;
    let pending = PendingChange {
        revision: revision.clone(),
        counts: ObjectCounts {
            created: s.create,
            updated: s.update,
            deleted: s.delete,
            unchanged: s.unchanged,
        },
        reason: held.closed.because.clone(),
        window_opens: held
            .closed
            .opens
            .map(|at| at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        manual_sync: held.closed.manual_sync,
        since,
    };
    StatusChange {
        edit: Some(Edit {
            now: held.now.to_string(),
            phase: Some((Phase::Pending, "SyncWindowClosed", message.clone())),
            pending: Pending::Set(pending),
            ..Edit::default()
        }),
        events: vec![Note::normal("SyncWindowClosed", message)],
        ..StatusChange::default()
    }
}

/// `keelson reconcile` (without `--force`) while the windows hold writes back and do not allow manual
/// sync: no pass writes; the answer says when the window opens.
pub fn reconcile_held(change: &mut StatusChange, requested_at: &str, held: &Held<'_>) {
    let handled = HandledReconcile {
        requested_at: requested_at.to_string(),
        revision: held.snapshot.revision.id.clone(),
        result: "Pending".into(),
        message: held.message(),
        end: held.now.to_string(),
    };
    change
        .edit
        .get_or_insert_with(|| Edit {
            now: held.now.to_string(),
            ..Edit::default()
        })
        .handled_reconcile = Some(handled);
}

/// A request goes through windows that hold writes back: `--force`, or `keelson reconcile` where every
/// window that holds back allows manual sync. An Event says so; the history records the pass's trigger.
pub fn window_overridden(snapshot: &Snapshot, closed: &Closed, forced: bool) -> StatusChange {
    let by = if forced {
        "`keelson reconcile --force`"
    } else {
        "`keelson reconcile` (the windows allow manual sync)"
    };
    let message = format!(
        "revision {} is applied outside the sync windows by {by}: {}",
        snapshot.revision.short(),
        closed.because
    );
    StatusChange {
        events: vec![Note::warning("SyncWindowOverridden", message)],
        ..StatusChange::default()
    }
}

/// A pass narrowed to a failed revision's healthy components ended with an error: counted, nothing else
/// (the revision stays reported as it is; the next trigger looks again).
pub fn narrowed_error(error: &PassError) -> StatusChange {
    StatusChange {
        result: Some(PassResult::Error),
        reason: error.metric_label(),
        ..StatusChange::default()
    }
}

/// Applying is suspended at `snapshot`. Suspended daemons keep reporting: a new commit shows up in the
/// stored status (one write per commit); the Event only once.
pub fn suspended(current: &Status, snapshot: &Snapshot, now: &str) -> StatusChange {
    let already = current.phase == Phase::Suspended;
    let message = format!(
        "applying is suspended; revision {} is not applied until `keelson resume`",
        snapshot.revision.short()
    );
    if already && current.condition("Ready").is_some_and(|c| c.message == message) {
        return StatusChange::default();
    }
    StatusChange {
        edit: Some(Edit {
            now: now.to_string(),
            phase: Some((Phase::Suspended, "Suspended", message.clone())),
            suspended: Some(true),
            ..Edit::default()
        }),
        events: if already {
            Vec::new()
        } else {
            vec![Note::normal("Suspended", message)]
        },
        ..StatusChange::default()
    }
}

/// The first pass after a suspend.
pub fn resumed(current: &Status, now: &str) -> StatusChange {
    if !current.suspended && current.phase != Phase::Suspended {
        return StatusChange::default();
    }
    StatusChange {
        edit: Some(Edit {
            now: now.to_string(),
            phase: Some((Phase::Pending, "Resumed", "applying resumed".into())),
            suspended: Some(false),
            ..Edit::default()
        }),
        events: vec![Note::normal("Resumed", "applying resumed")],
        ..StatusChange::default()
    }
}

/// The condition that says whether the source's head could be read.
pub const SOURCE_READY: &str = "SourceReady";

/// A poll of the source that failed.
#[derive(Debug, Clone, Copy)]
pub struct SourceFailure<'a> {
    pub message: &'a str,
    /// Network or server trouble that a later poll may not meet.
    pub transient: bool,
    /// The head commit, when it was fetched but cannot be used (no keelson.yaml in it).
    pub unusable: Option<&'a str>,
}

/// The source cannot be read, or its head cannot be used: `SourceReady=False` with the reason and a Warning
/// Event, written once per message. The applied revision and the phase stay as they are (the cluster still
/// equals the applied revision) unless no revision was ever read, when the phase says why nothing runs.
pub fn source_failed(
    current: &Status,
    failure: &SourceFailure<'_>,
    revision_known: bool,
    now: &str,
) -> StatusChange {
    let reason = match failure {
        SourceFailure {
            unusable: Some(_), ..
        } => "RevisionUnusable",
        SourceFailure { transient: true, .. } => "SourceUnavailable",
        _ => "SourceError",
    };
    let message = match failure.unusable {
        Some(commit) => format!(
            "head {} cannot be used: {}; the cluster stays at {}",
            short_sha(commit),
            failure.message,
            current
                .last_applied_revision
                .as_deref()
                .map_or("what it runs", short_sha)
        ),
        None => failure.message.to_string(),
    };
    let condition = current.condition(SOURCE_READY);
    if condition.is_some_and(|c| c.status == "False" && c.message == message) {
        return StatusChange::default();
    }
    let phase = match (revision_known, failure.transient) {
        (true, _) => None,
        (false, true) => Some((Phase::Failed, reason, message.clone())),
        (false, false) => Some((Phase::Stalled, reason, message.clone())),
    };
    StatusChange {
        edit: Some(Edit {
            now: now.to_string(),
            phase,
            source_ready: Some((false, reason, message.clone())),
            unusable_revision: Some(failure.unusable.map(str::to_string)),
            observed: failure.unusable.map(str::to_string),
            ..Edit::default()
        }),
        events: vec![Note::warning(reason, message)],
        ..StatusChange::default()
    }
}

/// A poll read the source again after it failed: `SourceReady=True` and a Normal Event. `None` when the
/// condition says so already; a status without the condition gets it with its next write.
pub fn source_read(current: &Status, revision: &str, now: &str) -> Option<StatusChange> {
    let message = format!("revision {} read", short_sha(revision));
    match current.condition(SOURCE_READY) {
        Some(c) if c.status == "False" => Some(StatusChange {
            edit: Some(Edit {
                now: now.to_string(),
                source_ready: Some((true, "Succeeded", message.clone())),
                unusable_revision: Some(None),
                observed: Some(revision.to_string()),
                ..Edit::default()
            }),
            events: vec![Note::normal("SourceRecovered", message)],
            ..StatusChange::default()
        }),
        _ => None,
    }
}

fn short_sha(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

/// The status a starting daemon continues from: the stored one (keeping the history across restarts), with
/// the source it follows now.
pub fn restored(stored: Status, source: String) -> Status {
    let mut status = stored;
    status.source = source;
    if status.phase == Phase::Reconciling {
        // A previous instance stopped during a pass.
        status.phase = Phase::Pending;
    }
    status
}

/// Names shown in a log line before the rest is counted.
const LOGGED_NAMES: usize = 10;

/// The daemon's one log line about a pass: revision, trigger, result, duration, and the objects it
/// created, updated and deleted, by name (the first few of each; unchanged objects only counted).
pub fn log_line(
    pass: &PassInfo<'_>,
    outcome: Outcome<'_>,
    change: &StatusChange,
    elapsed: Duration,
) -> String {
    let result = change.result.map(|r| r.to_string()).unwrap_or_default();
    let why = if change.reason.eq_ignore_ascii_case(&result) {
        String::new()
    } else {
        format!(" ({})", change.reason)
    };
    let head = format!(
        "revision {} ({}): {result}{why} in {:.1}s",
        pass.short(),
        pass.trigger,
        elapsed.as_secs_f64()
    );
    let rollout = match outcome {
        Outcome::Rollout { rollout, .. } | Outcome::DriftCorrection { rollout } => rollout,
        Outcome::Unchanged { objects } => return format!("{head}: {objects} objects unchanged"),
        Outcome::Error { error, .. } => {
            let text = error.to_string();
            let mut lines = text.lines();
            let first = lines.next().unwrap_or_default();
            let more = lines.count();
            return match more {
                0 => format!("{head}: {first}"),
                n => format!("{head}: {first} (and {n} more line(s); see `keelson status`)"),
            };
        }
    };
    let names = |kind: ChangeKind| -> Vec<String> {
        rollout
            .changes
            .entries
            .iter()
            .filter(|e| e.change == kind)
            .map(|e| e.object.to_string())
            .collect()
    };
    let mut parts = Vec::new();
    for (kind, word) in [
        (ChangeKind::Created, "created"),
        (ChangeKind::Configured, "updated"),
        (ChangeKind::Deleted, "deleted"),
        (ChangeKind::Failed, "failed"),
    ] {
        let names = names(kind);
        if !names.is_empty() {
            parts.push(format!("{word} {}", bounded_list(&names, LOGGED_NAMES)));
        }
    }
    let unchanged = rollout.changes.count(ChangeKind::Unchanged);
    if unchanged > 0 {
        parts.push(format!("{unchanged} unchanged"));
    }
    let unhealthy = unhealthy_components(rollout);
    if !unhealthy.is_empty() {
        parts.push(unhealthy);
    }
    if parts.is_empty() {
        head
    } else {
        format!("{head}: {}", parts.join("; "))
    }
}

/// `a, b, c and 7 more` (all of them when there are at most `shown`).
pub fn bounded_list(names: &[String], shown: usize) -> String {
    if names.len() <= shown {
        return names.join(", ");
    }
    format!("{} and {} more", names[..shown].join(", "), names.len() - shown)
}

/// Why a rollout failed, for the pass counter: an object the API refused (`apply`), or components that did
/// not become healthy in time (`health`).
fn failure_label(rollout: &RolloutOutcome) -> &'static str {
    if rollout.changes.count(ChangeKind::Failed) > 0 {
        "apply"
    } else {
        "health"
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

pub fn component_phase(state: ComponentState) -> ComponentPhase {
    match state {
        ComponentState::Healthy => ComponentPhase::Healthy,
        ComponentState::Failed => ComponentPhase::Failed,
        ComponentState::Blocked => ComponentPhase::Blocked,
        ComponentState::Skipped => ComponentPhase::Pending,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::cluster::ChangeSet;
    use crate::plan::fixtures::{mk_object, mk_topology};
    use crate::plan::{PlanInput, PlanOptions};
    use crate::render::{Rendered, Stage};
    use crate::rollout::ComponentOutcome;
    use crate::source::Revision;
    use crate::topology::Diagnostics;

    const REV: &str = "0123456789abcdef0123";

    fn snapshot() -> Snapshot {
        let revision = Revision {
            id: REV.into(),
            origin: "repo (main)".into(),
        };
        Snapshot::new(revision, None, BTreeMap::new())
    }

    /// `db` and `api` (depending on db), one ConfigMap each, nothing live yet.
    fn prepared() -> Prepared {
        let topology = mk_topology(&[("db", &[]), ("api", &["db"])]);
        let objects = vec![
            mk_object(
                "db",
                Stage::Config,
                "ConfigMap",
                "db",
                json!({"data": {"a": "1"}}),
            ),
            mk_object(
                "api",
                Stage::Config,
                "ConfigMap",
                "api",
                json!({"data": {"b": "2"}}),
            ),
        ];
        let plan = crate::plan::plan(&PlanInput {
            topology: &topology,
            revision: REV,
            desired: &objects,
            live: &[],
            foreign: &[],
            inventory: None,
            options: &PlanOptions::default(),
        })
        .expect("plan");
        Prepared {
            revision: snapshot().revision,
            commit: None,
            topology,
            rendered: Rendered { objects },
            inventory: None,
            plan,
            partial: false,
            started: std::time::Instant::now(),
            view: None,
        }
    }

    fn rollout(
        states: &[(&str, ComponentState)],
        changes: &[(&str, ChangeKind)],
        cancelled: bool,
    ) -> RolloutOutcome {
        let mut set = ChangeSet::default();
        for (name, kind) in changes {
            let object = crate::plan::fixtures::mk_ref("v1", "ConfigMap", Some("openstack"), name);
            set.push(object, *kind, None);
        }
        RolloutOutcome {
            revision: REV.into(),
            components: states
                .iter()
                .map(|(name, state)| ComponentOutcome {
                    name: name.to_string(),
                    state: *state,
                    reason: format!("{name} reason"),
                    elapsed: Duration::ZERO,
                    timed_out: false,
                })
                .collect(),
            changes: set,
            cancelled,
            elapsed: Duration::ZERO,
        }
    }

    fn info(snapshot: &Snapshot) -> PassInfo<'_> {
        PassInfo {
            snapshot,
            trigger: "poll",
            start: "t0",
            end: "t1",
        }
    }

    fn applied(change: &StatusChange, mut status: Status) -> Status {
        if let Some(edit) = &change.edit {
            edit.apply(&mut status);
        }
        status
    }

    fn reasons(change: &StatusChange) -> Vec<(EventType, &str)> {
        change.events.iter().map(|n| (n.kind, n.reason)).collect()
    }

    #[test]
    fn a_rollout_is_finalised_by_how_it_ended() {
        use ComponentState::{Blocked, Failed, Healthy};
        let snapshot = snapshot();
        let prepared = prepared();
        let healthy = [("db", Healthy), ("api", Healthy)];
        struct Row {
            what: &'static str,
            rollout: RolloutOutcome,
            same_as_applied: bool,
            ended: (PassResult, Phase, Verdict),
            reason: &'static str,
            events: Vec<(EventType, &'static str)>,
            drifted: u64,
        }
        let rows = vec![
            Row {
                what: "first apply",
                rollout: rollout(
                    &healthy,
                    &[("db", ChangeKind::Created), ("api", ChangeKind::Created)],
                    false,
                ),
                same_as_applied: false,
                ended: (PassResult::Succeeded, Phase::Ready, Verdict::Converged),
                reason: "applied",
                events: vec![(EventType::Normal, "Applied")],
                drifted: 0,
            },
            Row {
                what: "drift on the applied revision",
                rollout: rollout(
                    &healthy,
                    &[("db", ChangeKind::Configured), ("api", ChangeKind::Unchanged)],
                    false,
                ),
                same_as_applied: true,
                ended: (PassResult::Succeeded, Phase::Ready, Verdict::Converged),
                reason: "drift_corrected",
                events: vec![(EventType::Normal, "DriftCorrected")],
                drifted: 1,
            },
            Row {
                what: "cancelled",
                rollout: rollout(&[("db", Healthy), ("api", ComponentState::Skipped)], &[], true),
                same_as_applied: false,
                ended: (PassResult::Cancelled, Phase::Pending, Verdict::Cancelled),
                reason: "cancelled",
                events: vec![(EventType::Normal, "Cancelled")],
                drifted: 0,
            },
            Row {
                what: "db failed, api blocked",
                rollout: rollout(
                    &[("db", Failed), ("api", Blocked)],
                    &[("db", ChangeKind::Failed)],
                    false,
                ),
                same_as_applied: true,
                ended: (PassResult::Failed, Phase::Failed, Verdict::Failed),
                reason: "apply",
                events: vec![
                    (EventType::Warning, "RolloutFailed"),
                    (EventType::Warning, "ComponentFailed"),
                    (EventType::Warning, "ComponentBlocked"),
                ],
                drifted: 0,
            },
        ];
        for row in rows {
            let Row {
                what,
                rollout,
                same_as_applied,
                ended: (result, phase, verdict),
                reason,
                events,
                drifted,
            } = row;
            let outcome = Outcome::Rollout {
                prepared: &prepared,
                rollout: &rollout,
                same_as_applied,
            };
            let change = finished(&info(&snapshot), outcome);
            assert_eq!(change.result, Some(result), "{what}");
            assert_eq!(change.verdict, Some(verdict), "{what}");
            assert_eq!(change.reason, reason, "{what}");
            assert_eq!(reasons(&change), events, "{what}");
            assert_eq!(change.drift_corrected, drifted, "{what}");
            assert_eq!(change.ready, verdict == Verdict::Converged, "{what}");
            let status = applied(&change, Status::default());
            assert_eq!(status.phase, phase, "{what}");
            assert_eq!(status.drift_corrections, drifted, "{what}");
            assert_eq!(
                status.last_applied_revision.as_deref(),
                (verdict == Verdict::Converged).then_some(REV),
                "{what}"
            );
            let states: Vec<(&str, ComponentPhase)> = status
                .components
                .iter()
                .map(|c| (c.name.as_str(), c.state))
                .collect();
            assert_eq!(states.len(), 2, "{what}: every component of the plan");
            assert_eq!(status.history.len(), 1, "{what}");
            assert_eq!(status.history[0].result, result, "{what}");
        }
    }

    #[test]
    fn a_failed_rollout_names_the_unhealthy_components() {
        let snapshot = snapshot();
        let prepared = prepared();
        let rollout = rollout(
            &[("db", ComponentState::Failed), ("api", ComponentState::Blocked)],
            &[],
            false,
        );
        let outcome = Outcome::Rollout {
            prepared: &prepared,
            rollout: &rollout,
            same_as_applied: false,
        };
        let status = applied(&finished(&info(&snapshot), outcome), Status::default());
        let ready = status.condition("Ready").expect("Ready");
        assert_eq!(
            ready.message,
            "revision 0123456789ab failed; not retried until a new commit or `keelson reconcile`: \
             db Failed: db reason; api Blocked: api reason"
        );
    }

    #[test]
    fn a_drift_correction_keeps_the_failed_revision_and_marks_what_it_could_not_correct() {
        let snapshot = snapshot();
        let mut before = Status::default();
        before.set_phase(Phase::Failed, "RolloutFailed", "api failed", "t");
        before.components = vec![
            ComponentStatus {
                name: "db".into(),
                state: ComponentPhase::Healthy,
                reason: String::new(),
            },
            ComponentStatus {
                name: "api".into(),
                state: ComponentPhase::Failed,
                reason: "api failed".into(),
            },
        ];
        let corrected = rollout(
            &[("db", ComponentState::Healthy)],
            &[("db", ChangeKind::Configured)],
            false,
        );
        let change = finished(&info(&snapshot), Outcome::DriftCorrection { rollout: &corrected });
        assert_eq!(
            (change.result, change.verdict, change.drift_corrected),
            (Some(PassResult::Succeeded), None, 1)
        );
        assert_eq!(reasons(&change), vec![(EventType::Normal, "DriftCorrected")]);
        let after = applied(&change, before.clone());
        assert_eq!(after.phase, Phase::Failed, "the revision stays failed");
        assert_eq!(after.components, before.components);
        assert_eq!(after.drift_corrections, 1);

        let failing = rollout(
            &[("db", ComponentState::Failed)],
            &[("db", ChangeKind::Failed)],
            false,
        );
        let change = finished(&info(&snapshot), Outcome::DriftCorrection { rollout: &failing });
        assert_eq!(
            reasons(&change),
            vec![(EventType::Warning, "DriftCorrectionFailed")]
        );
        let after = applied(&change, before);
        assert_eq!(
            after.components[0].state,
            ComponentPhase::Failed,
            "not corrected on every trigger"
        );
        assert_eq!(after.drift_corrections, 0);
    }

    #[test]
    fn errors_stall_or_retry_and_a_repeated_failure_extends_its_history_entry() {
        let snapshot = snapshot();
        let invalid = PassError::Invalid {
            origin: "repo".into(),
            diagnostics: Diagnostics::default(),
        };
        let change = finished(
            &info(&snapshot),
            Outcome::Error {
                error: &invalid,
                last: None,
            },
        );
        assert_eq!(
            (change.result, change.verdict),
            (Some(PassResult::Stalled), Some(Verdict::Stalled))
        );
        assert_eq!(
            reasons(&change),
            vec![(EventType::Warning, "InvalidConfiguration")]
        );
        assert_eq!(change.reason, "invalid_topology");
        assert_eq!(applied(&change, Status::default()).phase, Phase::Stalled);

        let refused = PassError::Blocked {
            revision: REV.into(),
            message: "refused".into(),
        };
        assert!(refused.is_configuration(), "a refused plan stalls too");
        let api = PassError::ReadInventory {
            source: crate::cluster::ClusterError::UnknownKind {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
            },
        };
        let first = finished(
            &info(&snapshot),
            Outcome::Error {
                error: &api,
                last: None,
            },
        );
        assert_eq!(
            (first.result, first.verdict),
            (Some(PassResult::Error), Some(Verdict::Error))
        );
        let status = applied(&first, Status::default());
        assert_eq!((status.phase, status.history.len()), (Phase::Failed, 1));
        let again = PassInfo {
            end: "t2",
            ..info(&snapshot)
        };
        let repeated = finished(
            &again,
            Outcome::Error {
                error: &api,
                last: Some((REV, Verdict::Error)),
            },
        );
        assert!(
            repeated.events.is_empty(),
            "a retry failing the same way records no new Event"
        );
        let status = applied(&repeated, status);
        assert_eq!(status.history.len(), 1, "the retry extends the newest entry");
        assert_eq!(status.history[0].end, "t2");
        assert_eq!(status.last_attempted_revision.as_deref(), Some(REV));
    }

    #[test]
    fn an_unchanged_pass_only_counts_and_keeps_the_daemon_ready() {
        let snapshot = snapshot();
        let change = finished(&info(&snapshot), Outcome::Unchanged { objects: 76 });
        assert_eq!(change.edit, None, "no status write (invariant 5)");
        assert!(change.events.is_empty());
        assert_eq!(
            (change.result, change.ready, change.verdict),
            (Some(PassResult::Succeeded), true, None)
        );
    }

    #[test]
    fn suspend_and_resume_are_reported_once() {
        let snapshot = snapshot();
        let first = suspended(&Status::default(), &snapshot, "t");
        assert_eq!(reasons(&first), vec![(EventType::Normal, "Suspended")]);
        let status = applied(&first, Status::default());
        assert!(status.suspended && status.phase == Phase::Suspended);
        assert_eq!(
            suspended(&status, &snapshot, "t2"),
            StatusChange::default(),
            "nothing new"
        );
        let newer = Snapshot::new(
            Revision {
                id: "fedcba9876543210".into(),
                origin: String::new(),
            },
            None,
            BTreeMap::new(),
        );
        let moved = suspended(&status, &newer, "t3");
        assert!(
            moved.edit.is_some() && moved.events.is_empty(),
            "a new commit is written, no new Event"
        );

        let back = resumed(&status, "t4");
        assert_eq!(reasons(&back), vec![(EventType::Normal, "Resumed")]);
        let status = applied(&back, status);
        assert!(!status.suspended && status.phase == Phase::Pending);
        assert_eq!(resumed(&status, "t5"), StatusChange::default());
    }

    #[test]
    fn a_held_change_is_reported_once_per_opening_and_cleared_by_the_pass_that_writes() {
        let snapshot = snapshot();
        let prepared = prepared();
        let closed = Closed {
            because: "outside every allow window (allow window \"0 2 * * 2\" for 2h (UTC))".into(),
            manual_sync: false,
            opens: Some("2026-12-08T02:00:00Z".parse().expect("time")),
        };
        let held_at = |now| Held {
            snapshot: &snapshot,
            summary: &prepared.plan.summary,
            closed: &closed,
            drift_only: false,
            now,
        };
        let first = held(&Status::default(), &held_at("t1"));
        assert_eq!(reasons(&first), vec![(EventType::Normal, "SyncWindowClosed")]);
        let status = applied(&first, Status::default());
        assert_eq!(status.phase, Phase::Pending);
        let message = &status.condition("Ready").expect("Ready").message;
        assert_eq!(
            message,
            "change pending: window opens Tue 2026-12-08 02:00 UTC; revision 0123456789ab (2 to create, 0 to \
             update, 0 to delete) is held back: outside every allow window (allow window \"0 2 * * 2\" for 2h \
             (UTC)); `keelson reconcile --force` applies it now"
        );
        let pending = status.pending_change.clone().expect("pending");
        assert_eq!(
            (
                pending.window_opens.as_deref(),
                pending.since.as_str(),
                pending.counts.created
            ),
            (Some("2026-12-08T02:00:00Z"), "t1", 2)
        );
        assert_eq!(
            held(&status, &held_at("t2")),
            StatusChange::default(),
            "nothing new"
        );

        let mut answered = StatusChange::default();
        reconcile_held(&mut answered, "token", &held_at("t3"));
        let handled = applied(&answered, status.clone())
            .last_handled_reconcile
            .expect("answer");
        assert_eq!(
            (handled.result.as_str(), handled.message.as_str()),
            ("Pending", message.as_str())
        );

        let status = applied(&started(&prepared, "openstack", "t4"), status);
        assert_eq!(status.pending_change, None, "a pass that writes clears it");
        let overridden = window_overridden(&snapshot, &closed, true);
        assert_eq!(
            reasons(&overridden),
            vec![(EventType::Warning, "SyncWindowOverridden")]
        );
        assert!(overridden.edit.is_none());
    }

    #[test]
    fn a_source_failure_is_written_once_per_message_and_a_restart_leaves_no_pass_running() {
        let failure = |message, transient| SourceFailure {
            message,
            transient,
            unusable: None,
        };
        let change = source_failed(
            &Status::default(),
            &failure("remote: not found", false),
            false,
            "t",
        );
        let status = applied(&change, Status::default());
        assert_eq!(status.phase, Phase::Stalled);
        assert_eq!(
            source_failed(&status, &failure("remote: not found", false), false, "t2"),
            StatusChange::default()
        );
        let status = applied(
            &source_failed(&status, &failure("timed out", true), false, "t3"),
            status,
        );
        assert_eq!(
            status.condition("Ready").map(|c| c.reason.as_str()),
            Some("SourceUnavailable")
        );

        let mut stored = Status::default();
        stored.set_phase(Phase::Reconciling, "Progressing", "applying", "t");
        let restored = restored(stored, "repo (main)".into());
        assert_eq!(
            (restored.phase, restored.source.as_str()),
            (Phase::Pending, "repo (main)")
        );
    }

    #[test]
    fn after_the_first_read_source_failures_reach_the_condition_and_events_and_keep_the_applied_revision() {
        let mut status = Status {
            last_applied_revision: Some("a".repeat(40)),
            ..Status::default()
        };
        status.set_phase(Phase::Ready, "Succeeded", "applied", "t0");
        let outage = SourceFailure {
            message: "git remote x (main): unreachable: Connection refused",
            transient: true,
            unusable: None,
        };
        let change = source_failed(&status, &outage, true, "t1");
        assert_eq!(reasons(&change), vec![(EventType::Warning, "SourceUnavailable")]);
        let down = applied(&change, status.clone());
        assert_eq!(
            down.phase,
            Phase::Ready,
            "the cluster still equals the applied revision"
        );
        assert_eq!(down.last_applied_revision, status.last_applied_revision);
        let source = down.condition(SOURCE_READY).expect("SourceReady");
        assert_eq!(
            (source.status.as_str(), source.reason.as_str()),
            ("False", "SourceUnavailable")
        );
        assert_eq!(source_failed(&down, &outage, true, "t2"), StatusChange::default());

        let back = source_read(&down, &"b".repeat(40), "t3").expect("a recovery is recorded");
        assert_eq!(reasons(&back), vec![(EventType::Normal, "SourceRecovered")]);
        let up = applied(&back, down);
        assert_eq!(
            up.condition(SOURCE_READY).map(|c| c.status.as_str()),
            Some("True")
        );
        assert_eq!(source_read(&up, &"b".repeat(40), "t4"), None);

        let head = "c".repeat(40);
        let unusable = SourceFailure {
            message: "keelson.yaml not found",
            transient: false,
            unusable: Some(&head),
        };
        let bad = applied(&source_failed(&up, &unusable, true, "t5"), up);
        assert_eq!(bad.unusable_revision.as_deref(), Some(head.as_str()));
        assert_eq!(bad.observed_revision.as_deref(), Some(head.as_str()));
        let source = bad.condition(SOURCE_READY).expect("SourceReady");
        assert_eq!(source.reason, "RevisionUnusable");
        assert!(
            source
                .message
                .starts_with("head cccccccccccc cannot be used: keelson.yaml not found"),
            "{}",
            source.message
        );
        assert!(
            source.message.ends_with("the cluster stays at aaaaaaaaaaaa"),
            "{}",
            source.message
        );
        assert_eq!(bad.phase, Phase::Ready);
        let fixed = applied(&source_read(&bad, &"d".repeat(40), "t6").expect("recovery"), bad);
        assert_eq!(fixed.unusable_revision, None);
        assert_eq!(fixed.observed_revision, Some("d".repeat(40)));
    }

    #[test]
    fn a_started_pass_lists_its_components_as_pending() {
        let prepared = prepared();
        let status = applied(&started(&prepared, "openstack", "t"), Status::default());
        assert_eq!(status.phase, Phase::Reconciling);
        assert_eq!(status.topology.as_deref(), Some("openstack"));
        let rows: Vec<(&str, ComponentPhase, &str)> = status
            .components
            .iter()
            .map(|c| (c.name.as_str(), c.state, c.reason.as_str()))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("db", ComponentPhase::Pending, "1 object(s) to change"),
                ("api", ComponentPhase::Pending, "1 object(s) to change"),
            ]
        );
    }

    #[test]
    fn one_log_line_per_pass_names_what_changed_and_only_counts_the_rest() {
        let snapshot = snapshot();
        let prepared = prepared();
        let mut changes: Vec<(String, ChangeKind)> = (0..12)
            .map(|i| (format!("c{i:02}"), ChangeKind::Created))
            .collect();
        changes.push(("u".into(), ChangeKind::Configured));
        changes.push(("gone".into(), ChangeKind::Deleted));
        changes.extend((0..40).map(|i| (format!("same{i}"), ChangeKind::Unchanged)));
        let changes: Vec<(&str, ChangeKind)> = changes.iter().map(|(n, k)| (n.as_str(), *k)).collect();
        let healthy = [("db", ComponentState::Healthy), ("api", ComponentState::Healthy)];
        let done = rollout(&healthy, &changes, false);
        let outcome = Outcome::Rollout {
            prepared: &prepared,
            rollout: &done,
            same_as_applied: false,
        };
        let change = finished(&info(&snapshot), outcome);
        let line = log_line(&info(&snapshot), outcome, &change, Duration::from_millis(2345));
        assert_eq!(
            line,
            "revision 0123456789ab (poll): Succeeded (applied) in 2.3s: created ConfigMap openstack/c00, \
             ConfigMap openstack/c01, ConfigMap openstack/c02, ConfigMap openstack/c03, ConfigMap openstack/c04, \
             ConfigMap openstack/c05, ConfigMap openstack/c06, ConfigMap openstack/c07, ConfigMap openstack/c08, \
             ConfigMap openstack/c09 and 2 more; updated ConfigMap openstack/u; deleted ConfigMap openstack/gone; \
             40 unchanged"
        );
        let quiet = Outcome::Unchanged { objects: 76 };
        let change = finished(&info(&snapshot), quiet);
        assert_eq!(
            log_line(&info(&snapshot), quiet, &change, Duration::from_millis(300)),
            "revision 0123456789ab (poll): Succeeded (unchanged) in 0.3s: 76 objects unchanged"
        );
        let invalid = PassError::Blocked {
            revision: REV.into(),
            message: "refused: prune budget\nallow it with --allow-prune-over-budget".into(),
        };
        let outcome = Outcome::Error {
            error: &invalid,
            last: None,
        };
        let change = finished(&info(&snapshot), outcome);
        assert_eq!(
            log_line(&info(&snapshot), outcome, &change, Duration::ZERO),
            "revision 0123456789ab (poll): Stalled (refused) in 0.0s: refused: prune budget (and 1 more line(s); \
             see `keelson status`)"
        );
    }
}
