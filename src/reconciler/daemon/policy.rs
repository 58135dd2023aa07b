//! What the daemon does next, decided from what it knows. Pure: every rule is a row of the tables below.
//!
//! Configuration errors stall until the next commit; transient errors retry with exponential backoff and
//! jitter; a failed rollout is not retried on the same commit unless an operator asks (`keelson
//! reconcile`, which also re-plans a stalled revision) or a new commit arrives. A converged revision is
//! re-planned when a watch sees an owned object change (drift), when asked, and every `--resync-interval`
//! (a safety net for a missed event); a poll that finds no new commit does nothing else. While a revision stays failed, the components that did become healthy are still
//! kept equal to Git, by passes narrowed to them.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use crate::topology::Topology;
use crate::topology::sync_windows::{Closed, SyncWindows};

/// What woke the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Start,
    Poll,
    Wake,
    Retry,
    Drift,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Poll => "poll",
            Trigger::Wake => "wake",
            Trigger::Retry => "retry",
            Trigger::Drift => "drift",
        }
    }
}

/// How the last pass over a revision ended, which decides whether the next trigger runs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Converged,
    /// Failed rollout: wait for a new commit or a reconcile request.
    Failed,
    /// Configuration error: wait for a new commit.
    Stalled,
    /// Transient error: retry at the scheduled time.
    Error,
    /// Cancelled (newer revision, suspend, shutdown): run again.
    Cancelled,
    /// Planned, but held back by the sync windows: plan again on every trigger.
    Deferred,
}

/// What a pass covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every component of the revision, with pruning.
    Full,
    /// Only the components that became healthy in the failed rollout of this revision: drift correction
    /// without retrying what failed. Never prunes, never records the inventory, keeps the Failed status.
    HealthyOnly,
}

/// What the loop knows when a trigger arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State<'a> {
    /// Revision and verdict of the last pass.
    pub last: Option<(&'a str, Verdict)>,
    /// The revision the source points at; `None` until a poll succeeded.
    pub revision: Option<&'a str>,
    /// The control object asks to suspend.
    pub suspend_requested: bool,
    /// The status says applying is suspended (so a pass now is a resume).
    pub suspended: bool,
    /// `keelson reconcile` asked for a pass since the last iteration.
    pub reconcile_requested: bool,
    /// That request overrides the sync windows (`--force`).
    pub force_requested: bool,
    /// The retry scheduled after a transient error is due.
    pub retry_due: bool,
    /// The last full re-plan is older than `--resync-interval`.
    pub resync_due: bool,
}

/// What to do about a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the next trigger.
    Wait,
    /// Applying is suspended: report it, apply nothing.
    ReportSuspended,
    /// Run a pass; `trigger` is what the history records as its cause.
    Pass { scope: Scope, trigger: &'static str },
}

pub fn decide(state: &State<'_>, trigger: Trigger) -> Action {
    let Some(revision) = state.revision else {
        return Action::Wait;
    };
    if state.suspend_requested {
        return Action::ReportSuspended;
    }
    let asked = state.reconcile_requested;
    let retry_due = trigger == Trigger::Retry || state.retry_due;
    let scope = match state.last {
        // Resuming applies the revision as a whole.
        _ if state.suspended => Some(Scope::Full),
        None => Some(Scope::Full),
        Some((last, _)) if last != revision => Some(Scope::Full),
        // Nothing new in Git and no drift event: the watches would have said if anything changed, so a
        // poll re-plans only when the resync interval is due.
        Some((_, Verdict::Converged)) if trigger == Trigger::Poll && !asked && !state.resync_due => None,
        Some((_, Verdict::Converged | Verdict::Cancelled | Verdict::Deferred)) => Some(Scope::Full),
        // Drift wakes do not end a backoff either.
        Some((_, Verdict::Error)) => (retry_due || asked).then_some(Scope::Full),
        Some((_, Verdict::Failed)) if asked => Some(Scope::Full),
        // Drift does not restart a failed rollout (its own writes would wake it again and again), but the
        // components that did become healthy stay equal to Git.
        Some((_, Verdict::Failed)) => Some(Scope::HealthyOnly),
        // A stalled revision is never applied as it is; an operator who removed a cause outside Git
        // (someone else's object in the way) asks again.
        Some((_, Verdict::Stalled)) => asked.then_some(Scope::Full),
    };
    match scope {
        Some(scope) => Action::Pass {
            scope,
            trigger: match (asked, state.force_requested, trigger) {
                (true, true, _) => "force",
                (true, false, _) => "reconcile",
                (false, _, Trigger::Poll)
                    if state.resync_due && state.last.is_some_and(|(l, _)| l == revision) =>
                {
                    "resync"
                }
                (false, _, trigger) => trigger.as_str(),
            },
        },
        None => Action::Wait,
    }
}

/// Whether a prepared pass goes on to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    /// A narrowed pass found no drift (typically the wake-up of the failed rollout's own writes).
    NothingDrifted,
    /// A re-plan of the converged revision that changes nothing: reads only, no status write
    /// (invariant 5).
    Unchanged,
    /// Refuse (if blocked) or roll out.
    Execute,
}

/// `converged_here`: the last pass converged on this very revision, and it is the applied one.
pub fn after_plan(scope: Scope, has_changes: bool, converged_here: bool) -> Planned {
    match (scope, has_changes) {
        (_, true) => Planned::Execute,
        (Scope::HealthyOnly, false) => Planned::NothingDrifted,
        (Scope::Full, false) if converged_here => Planned::Unchanged,
        (Scope::Full, false) => Planned::Execute,
    }
}

/// Who asks for the writes of a pass, which decides whether a sync window holds them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A poll, a wake-up, drift, a retry: held back outside the windows.
    Automatic,
    /// `keelson reconcile`: goes through windows that allow manual sync.
    Manual,
    /// `keelson reconcile --force`: goes through every window, once.
    Forced,
}

/// Whether a pass that would write may write now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Write,
    /// A window forbids writing now, but this request overrides it (recorded as such).
    Override(Closed),
    Hold(Closed),
}

pub fn gate(windows: &SyncWindows, now: Timestamp, request: Request) -> Gate {
    match windows.check(now) {
        Ok(()) => Gate::Write,
        Err(closed) => match request {
            Request::Forced => Gate::Override(closed),
            Request::Manual if closed.manual_sync => Gate::Override(closed),
            _ => Gate::Hold(closed),
        },
    }
}

/// The number of this transient failure of `revision` in a row (1 for the first).
pub fn attempt(last: Option<(&str, Verdict)>, attempts: u32, revision: &str) -> u32 {
    match last {
        Some((r, Verdict::Error)) if r == revision => attempts.saturating_add(1),
        _ => 1,
    }
}

/// The components of `names` whose dependencies are all in it too (transitively): a narrowed pass never
/// waits on a component it leaves out.
pub fn with_their_dependencies(topology: &Topology, mut names: BTreeSet<String>) -> BTreeSet<String> {
    loop {
        let incomplete: Vec<String> = names
            .iter()
            .filter(|name| {
                topology.components.get(*name).is_none_or(|c| {
                    c.spec
                        .depends_on
                        .iter()
                        .any(|dependency| !names.contains(&dependency.component))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::mk_topology;

    const OLD: &str = "old";
    const NEW: &str = "new";

    fn state(last: Option<(&'static str, Verdict)>) -> State<'static> {
        State {
            last,
            revision: Some(NEW),
            suspend_requested: false,
            suspended: false,
            reconcile_requested: false,
            force_requested: false,
            retry_due: false,
            resync_due: false,
        }
    }

    fn pass(scope: Scope, trigger: &'static str) -> Action {
        Action::Pass { scope, trigger }
    }

    #[test]
    fn decides_from_the_last_verdict_the_trigger_and_the_requests() {
        use Scope::{Full, HealthyOnly};
        use Trigger::{Drift, Poll, Retry, Start, Wake};
        use Verdict::{Cancelled, Converged, Deferred, Error, Failed, Stalled};
        let asked = |mut s: State<'static>| {
            s.reconcile_requested = true;
            s
        };
        let due = |mut s: State<'static>| {
            s.retry_due = true;
            s
        };
        let resumed = |mut s: State<'static>| {
            s.suspended = true;
            s
        };
        let resync = |mut s: State<'static>| {
            s.resync_due = true;
            s
        };
        let forced = |mut s: State<'static>| {
            s.reconcile_requested = true;
            s.force_requested = true;
            s
        };
        let rows: Vec<(&str, State<'static>, Trigger, Action)> = vec![
            ("first pass", state(None), Start, pass(Full, "start")),
            (
                "no revision yet",
                State {
                    revision: None,
                    ..state(None)
                },
                Poll,
                Action::Wait,
            ),
            (
                "new commit after a stall",
                state(Some((OLD, Stalled))),
                Poll,
                pass(Full, "poll"),
            ),
            (
                "new commit after a failure",
                state(Some((OLD, Failed))),
                Wake,
                pass(Full, "wake"),
            ),
            (
                "converged: a poll that finds no new commit waits",
                state(Some((NEW, Converged))),
                Poll,
                Action::Wait,
            ),
            (
                "converged: a poll re-plans once the resync interval is due",
                resync(state(Some((NEW, Converged)))),
                Poll,
                pass(Full, "resync"),
            ),
            (
                "converged: a reconcile request re-plans at once",
                asked(state(Some((NEW, Converged)))),
                Poll,
                pass(Full, "reconcile"),
            ),
            (
                "drift on a converged revision",
                state(Some((NEW, Converged))),
                Drift,
                pass(Full, "drift"),
            ),
            (
                "cancelled: run again",
                state(Some((NEW, Cancelled))),
                Wake,
                pass(Full, "wake"),
            ),
            (
                "backoff: not before the retry",
                state(Some((NEW, Error))),
                Poll,
                Action::Wait,
            ),
            (
                "backoff: drift waits too",
                state(Some((NEW, Error))),
                Drift,
                Action::Wait,
            ),
            (
                "backoff: the retry timer",
                state(Some((NEW, Error))),
                Retry,
                pass(Full, "retry"),
            ),
            (
                "backoff: the retry is due",
                due(state(Some((NEW, Error)))),
                Poll,
                pass(Full, "poll"),
            ),
            (
                "backoff: reconcile",
                asked(state(Some((NEW, Error)))),
                Wake,
                pass(Full, "reconcile"),
            ),
            (
                "failed: healthy part only",
                state(Some((NEW, Failed))),
                Drift,
                pass(HealthyOnly, "drift"),
            ),
            (
                "failed: poll, healthy part",
                state(Some((NEW, Failed))),
                Poll,
                pass(HealthyOnly, "poll"),
            ),
            (
                "failed: reconcile retries",
                asked(state(Some((NEW, Failed)))),
                Wake,
                pass(Full, "reconcile"),
            ),
            ("stalled: waits", state(Some((NEW, Stalled))), Poll, Action::Wait),
            (
                "stalled: drift waits",
                state(Some((NEW, Stalled))),
                Drift,
                Action::Wait,
            ),
            (
                "stalled: reconcile re-plans",
                asked(state(Some((NEW, Stalled)))),
                Wake,
                pass(Full, "reconcile"),
            ),
            (
                "resume after a stall",
                resumed(state(Some((NEW, Stalled)))),
                Wake,
                pass(Full, "wake"),
            ),
            (
                "held by a window: plan again",
                state(Some((NEW, Deferred))),
                Poll,
                pass(Full, "poll"),
            ),
            (
                "held by a window: drift plans again too",
                state(Some((NEW, Deferred))),
                Drift,
                pass(Full, "drift"),
            ),
            (
                "forced reconcile",
                forced(state(Some((NEW, Deferred)))),
                Wake,
                pass(Full, "force"),
            ),
            (
                "forced reconcile of a stalled revision",
                forced(state(Some((NEW, Stalled)))),
                Wake,
                pass(Full, "force"),
            ),
            (
                "resume after a failure",
                resumed(state(Some((NEW, Failed)))),
                Wake,
                pass(Full, "wake"),
            ),
        ];
        for (what, state, trigger, want) in rows {
            assert_eq!(decide(&state, trigger), want, "{what}");
        }
    }

    #[test]
    fn a_suspend_request_wins_over_everything_but_a_missing_revision() {
        for last in [None, Some((NEW, Verdict::Error)), Some((OLD, Verdict::Converged))] {
            let s = State {
                suspend_requested: true,
                reconcile_requested: true,
                retry_due: true,
                ..state(last)
            };
            assert_eq!(decide(&s, Trigger::Retry), Action::ReportSuspended, "{last:?}");
            let s = State { revision: None, ..s };
            assert_eq!(decide(&s, Trigger::Retry), Action::Wait, "{last:?}");
        }
    }

    #[test]
    fn windows_hold_automatic_writes_and_let_manual_and_forced_ones_through_as_configured() {
        use crate::topology::spec::{SyncWindowSpec, WindowKind};
        use crate::topology::sync_windows::SyncWindow;
        let deny = |manual_sync| {
            let spec = SyncWindowSpec {
                kind: WindowKind::Deny,
                schedule: "0 0 * * *".into(),
                duration: "1h".into(),
                time_zone: None,
                manual_sync,
            };
            SyncWindows(vec![SyncWindow::parse(&spec).expect("window")])
        };
        let inside: Timestamp = "2026-12-01T00:30:00Z".parse().unwrap();
        let outside: Timestamp = "2026-12-01T01:30:00Z".parse().unwrap();
        let kind = |gate: Gate| match gate {
            Gate::Write => "write",
            Gate::Override(_) => "override",
            Gate::Hold(_) => "hold",
        };
        let rows = [
            (false, inside, Request::Automatic, "hold"),
            (false, inside, Request::Manual, "hold"),
            (false, inside, Request::Forced, "override"),
            (true, inside, Request::Automatic, "hold"),
            (true, inside, Request::Manual, "override"),
            (false, outside, Request::Automatic, "write"),
            (false, outside, Request::Forced, "write"),
        ];
        for (manual_sync, at, request, want) in rows {
            assert_eq!(
                kind(gate(&deny(manual_sync), at, request)),
                want,
                "{manual_sync} {at} {request:?}"
            );
        }
    }

    #[test]
    fn only_a_change_or_a_full_first_pass_writes_after_planning() {
        let rows = [
            (Scope::Full, true, true, Planned::Execute),
            (Scope::Full, false, true, Planned::Unchanged),
            // The first pass after a start, or after a failure, records its result even without changes.
            (Scope::Full, false, false, Planned::Execute),
            (Scope::HealthyOnly, false, false, Planned::NothingDrifted),
            (Scope::HealthyOnly, true, false, Planned::Execute),
        ];
        for (scope, changes, converged, want) in rows {
            assert_eq!(
                after_plan(scope, changes, converged),
                want,
                "{scope:?} {changes} {converged}"
            );
        }
    }

    #[test]
    fn transient_failures_of_one_revision_count_up() {
        let rows = [
            (None, 0, 1),
            (Some((NEW, Verdict::Error)), 1, 2),
            (Some((NEW, Verdict::Error)), 5, 6),
            (Some((OLD, Verdict::Error)), 5, 1),
            (Some((NEW, Verdict::Failed)), 5, 1),
        ];
        for (last, attempts, want) in rows {
            assert_eq!(attempt(last, attempts, NEW), want, "{last:?} {attempts}");
        }
    }

    #[test]
    fn a_narrowed_pass_keeps_only_components_whose_dependencies_it_keeps() {
        let topology = mk_topology(&[
            ("db", &[]),
            ("keystone", &["db"]),
            ("glance", &["keystone"]),
            ("memcached", &[]),
        ]);
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let rows: [(&[&str], &[&str]); 4] = [
            (&["db", "keystone", "glance"], &["db", "keystone", "glance"]),
            (&["keystone", "glance", "memcached"], &["memcached"]),
            (&["db", "glance"], &["db"]),
            (&["ghost"], &[]),
        ];
        for (healthy, want) in rows {
            assert_eq!(
                with_their_dependencies(&topology, set(healthy)),
                set(want),
                "{healthy:?}"
            );
        }
    }

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
        let spread: BTreeSet<u128> = (0..20).map(|_| backoff.delay(3).as_millis()).collect();
        assert!(spread.len() > 1, "jitter varies the delay");
    }
}
