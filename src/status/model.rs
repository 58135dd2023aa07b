//! The status document operators read: what was applied, what was tried, why it stopped, and the last
//! passes. Pure data; storage lives in `store`.

use serde::{Deserialize, Serialize};

/// Passes kept in the history.
pub const HISTORY_LEN: usize = 20;

/// Where the daemon stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Phase {
    /// No pass has finished yet, or the sync windows hold a change back (`pendingChange` says which and
    /// until when).
    #[default]
    Pending,
    /// A pass is running.
    Reconciling,
    /// The last pass converged: the cluster equals the last applied revision.
    Ready,
    /// The last pass failed; a transient error is retried with backoff, a failed rollout waits for a new
    /// commit or `keelson reconcile`.
    Failed,
    /// The revision cannot be applied as it is (invalid topology, refused plan): waits for a new commit.
    Stalled,
    /// Applying is suspended (`keelson suspend`); reporting goes on.
    Suspended,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Pending => "Pending",
            Phase::Reconciling => "Reconciling",
            Phase::Ready => "Ready",
            Phase::Failed => "Failed",
            Phase::Stalled => "Stalled",
            Phase::Suspended => "Suspended",
        })
    }
}

/// A Kubernetes-style condition (`Ready`, `Reconciling`, `Stalled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    /// `True` or `False`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

/// Where one component stands after the last pass that touched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComponentPhase {
    Healthy,
    Progressing,
    Failed,
    Blocked,
    Pending,
}

impl std::fmt::Display for ComponentPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ComponentPhase::Healthy => "Healthy",
            ComponentPhase::Progressing => "Progressing",
            ComponentPhase::Failed => "Failed",
            ComponentPhase::Blocked => "Blocked",
            ComponentPhase::Pending => "Pending",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub name: String,
    pub state: ComponentPhase,
    #[serde(default)]
    pub reason: String,
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PassResult {
    /// Converged.
    Succeeded,
    /// A component failed or an object could not be written.
    Failed,
    /// A configuration error: waits for a new commit.
    Stalled,
    /// A transient error (API, Git): retried with backoff.
    Error,
    /// A newer revision or shutdown stopped it.
    Cancelled,
}

impl PassResult {
    /// The label value used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PassResult::Succeeded => "succeeded",
            PassResult::Failed => "failed",
            PassResult::Stalled => "stalled",
            PassResult::Error => "error",
            PassResult::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for PassResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PassResult::Succeeded => "Succeeded",
            PassResult::Failed => "Failed",
            PassResult::Stalled => "Stalled",
            PassResult::Error => "Error",
            PassResult::Cancelled => "Cancelled",
        })
    }
}

/// Objects by what a pass did to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectCounts {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
}

/// One pass in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub revision: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub author: String,
    /// The commit this one reverts, for `git revert` commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_of: Option<String>,
    /// What started the pass (`poll`, `wake`, `retry`, `reconcile`, `drift`, `start`).
    #[serde(default)]
    pub trigger: String,
    pub start: String,
    pub end: String,
    pub result: PassResult,
    #[serde(default)]
    pub message: String,
    pub counts: ObjectCounts,
}

/// The daemon's answer to the last `keelson reconcile`: which request, and how the pass it ran ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandledReconcile {
    /// The request's token, as written to the control object.
    pub requested_at: String,
    pub revision: String,
    /// `Succeeded`, `Failed`, `Stalled`, `Error`, or `Suspended` when no pass could run.
    pub result: String,
    pub message: String,
    pub end: String,
}

/// A change planned but held back because no sync window allows writing now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingChange {
    pub revision: String,
    /// Objects the plan creates, updates and deletes (and leaves unchanged).
    pub counts: ObjectCounts,
    /// The windows that hold it back.
    pub reason: String,
    /// When writing is next allowed (RFC 3339); absent when no window opens within two years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_opens: Option<String>,
    /// `keelson reconcile` (without `--force`) may apply it now (the windows allow manual sync).
    #[serde(default)]
    pub manual_sync: bool,
    /// Since when it is held back.
    pub since: String,
}

/// The whole status document, stored as JSON in the status ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub topology: Option<String>,
    /// The remote and ref, without credentials.
    #[serde(default)]
    pub source: String,
    pub phase: Phase,
    #[serde(default)]
    pub suspended: bool,
    /// The newest revision the source reported.
    #[serde(default)]
    pub observed_revision: Option<String>,
    /// The revision of the last converged pass.
    #[serde(default)]
    pub last_applied_revision: Option<String>,
    #[serde(default)]
    pub last_applied_time: Option<String>,
    /// The revision of the last pass, whatever its result.
    #[serde(default)]
    pub last_attempted_revision: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub components: Vec<ComponentStatus>,
    /// Owned objects re-applied because they differed from Git outside a new revision.
    #[serde(default)]
    pub drift_corrections: u64,
    /// Where the inventory of the applied objects is kept (`keelson status -o wide` reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile: Option<HandledReconcile>,
    /// A change the sync windows hold back: planned, not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<PendingChange>,
    /// Newest first, at most [`HISTORY_LEN`].
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    #[serde(default)]
    pub updated: String,
}

impl Status {
    /// Adds a pass to the front of the history, dropping the oldest beyond [`HISTORY_LEN`].
    pub fn record(&mut self, entry: HistoryEntry) {
        self.history.insert(0, entry);
        self.history.truncate(HISTORY_LEN);
    }

    /// Sets a condition, keeping its transition time when the status does not change.
    pub fn set_condition(&mut self, kind: &str, status: bool, reason: &str, message: &str, now: &str) {
        let status = if status { "True" } else { "False" };
        if let Some(existing) = self.conditions.iter_mut().find(|c| c.kind == kind) {
            if existing.status != status {
                existing.last_transition_time = now.to_string();
            }
            existing.status = status.to_string();
            existing.reason = reason.to_string();
            existing.message = message.to_string();
            return;
        }
        self.conditions.push(Condition {
            kind: kind.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: now.to_string(),
        });
    }

    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// Sets Ready / Reconciling / Stalled together so they never contradict each other.
    pub fn set_phase(&mut self, phase: Phase, reason: &str, message: &str, now: &str) {
        self.phase = phase;
        self.set_condition("Ready", phase == Phase::Ready, reason, message, now);
        self.set_condition("Reconciling", phase == Phase::Reconciling, reason, message, now);
        self.set_condition("Stalled", phase == Phase::Stalled, reason, message, now);
        self.updated = now.to_string();
    }
}

/// The current time as RFC 3339 (UTC, second precision) for status fields.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> HistoryEntry {
        HistoryEntry {
            revision: format!("rev{n}"),
            subject: String::new(),
            author: String::new(),
            revert_of: None,
            trigger: "poll".into(),
            start: String::new(),
            end: String::new(),
            result: PassResult::Succeeded,
            message: String::new(),
            counts: ObjectCounts::default(),
        }
    }

    #[test]
    fn history_keeps_the_newest_twenty() {
        let mut status = Status::default();
        for n in 0..25 {
            status.record(entry(n));
        }
        assert_eq!(status.history.len(), HISTORY_LEN);
        assert_eq!(status.history[0].revision, "rev24");
        assert_eq!(status.history[19].revision, "rev5");
    }

    #[test]
    fn conditions_follow_the_phase_and_keep_transition_times() {
        let cases = [
            (
                Phase::Ready,
                [("Ready", "True"), ("Reconciling", "False"), ("Stalled", "False")],
            ),
            (
                Phase::Reconciling,
                [("Ready", "False"), ("Reconciling", "True"), ("Stalled", "False")],
            ),
            (
                Phase::Stalled,
                [("Ready", "False"), ("Reconciling", "False"), ("Stalled", "True")],
            ),
            (
                Phase::Failed,
                [("Ready", "False"), ("Reconciling", "False"), ("Stalled", "False")],
            ),
        ];
        for (phase, expected) in cases {
            let mut status = Status::default();
            status.set_phase(phase, "R", "m", "t1");
            for (kind, value) in expected {
                assert_eq!(status.condition(kind).unwrap().status, value, "{phase} {kind}");
            }
        }
        let mut status = Status::default();
        status.set_phase(Phase::Ready, "A", "m", "t1");
        status.set_phase(Phase::Ready, "B", "m2", "t2");
        let ready = status.condition("Ready").unwrap();
        assert_eq!(
            (ready.reason.as_str(), ready.last_transition_time.as_str()),
            ("B", "t1")
        );
        status.set_phase(Phase::Failed, "C", "m3", "t3");
        assert_eq!(status.condition("Ready").unwrap().last_transition_time, "t3");
    }

    #[test]
    fn round_trips_through_json() {
        let mut status = Status::default();
        status.record(entry(1));
        status.set_phase(Phase::Stalled, "InvalidTopology", "bad", "t");
        let text = serde_json::to_string(&status).unwrap();
        assert!(text.contains("\"lastAppliedRevision\""));
        let back: Status = serde_json::from_str(&text).unwrap();
        assert_eq!(back, status);
    }
}
