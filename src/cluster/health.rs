//! Health of a live object, kstatus-style: is it Current (the controller has acted on the latest spec
//! and the result is ready), still InProgress, or Failed for good. Pure: a JSON object in, a verdict out.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HealthStatus {
    Current,
    InProgress,
    Failed,
}

/// A verdict with the reason an operator needs to understand it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub status: HealthStatus,
    pub reason: String,
}

impl Health {
    fn current(reason: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Current,
            reason: reason.into(),
        }
    }
    fn in_progress(reason: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::InProgress,
            reason: reason.into(),
        }
    }
    fn failed(reason: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Failed,
            reason: reason.into(),
        }
    }
    pub fn is_current(&self) -> bool {
        self.status == HealthStatus::Current
    }
}

/// Health of `obj` as read from the API server.
pub fn health(obj: &Value) -> Health {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Health::in_progress("being deleted");
    }
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    match (api_version, kind) {
        ("apps/v1", "Deployment") => deployment(obj),
        ("apps/v1", "StatefulSet") => statefulset(obj),
        ("apps/v1", "DaemonSet") => daemonset(obj),
        ("batch/v1", "Job") => job(obj),
        ("v1", "Pod") => pod(obj),
        ("v1", "PersistentVolumeClaim") => pvc(obj),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => crd(obj),
        _ if is_builtin(api_version) => Health::current("exists"),
        _ => custom(obj),
    }
}

/// Whether the health of this kind depends on more than existence. For the others (ConfigMaps, Services,
/// Secrets, RBAC...) an object that was just applied, or that the plan found live, is Current without a read.
pub fn has_status_rules(api_version: &str, kind: &str) -> bool {
    matches!(
        (api_version, kind),
        ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet")
            | ("batch/v1", "Job")
            | ("v1", "Pod" | "PersistentVolumeClaim")
            | ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    ) || !is_builtin(api_version)
}

fn int(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

/// The condition of `type_` in `status.conditions`, if present.
fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn cond_status(c: &Value) -> &str {
    c.get("status").and_then(Value::as_str).unwrap_or("Unknown")
}

fn cond_text(c: &Value) -> String {
    let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
    let message = c.get("message").and_then(Value::as_str).unwrap_or("");
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{reason}: {message}"),
        (false, true) => reason.to_string(),
        (true, false) => message.to_string(),
        (true, true) => String::new(),
    }
}

/// The controller has not yet seen the latest spec: anything else in status describes an older one.
fn generation_pending(obj: &Value) -> Option<Health> {
    let generation = int(obj, "/metadata/generation")?;
    match int(obj, "/status/observedGeneration") {
        Some(observed) if observed >= generation => None,
        _ => Some(Health::in_progress(format!(
            "waiting for the controller to observe generation {generation}"
        ))),
    }
}

fn deployment(obj: &Value) -> Health {
    if let Some(h) = generation_pending(obj) {
        return h;
    }
    if let Some(c) = condition(obj, "Progressing") {
        if c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded") {
            return Health::failed(format!("progress deadline exceeded: {}", cond_text(c)));
        }
    }
    let desired = int(obj, "/spec/replicas").unwrap_or(1);
    let updated = int(obj, "/status/updatedReplicas").unwrap_or(0);
    let available = int(obj, "/status/availableReplicas").unwrap_or(0);
    let total = int(obj, "/status/replicas").unwrap_or(0);
    if updated < desired {
        return Health::in_progress(format!("{updated} of {desired} replicas updated"));
    }
    if total > updated {
        return Health::in_progress(format!("{} old replicas pending termination", total - updated));
    }
    if available < desired {
        return Health::in_progress(format!("{available} of {desired} replicas available"));
    }
    Health::current(format!("{available} of {desired} replicas available"))
}

fn statefulset(obj: &Value) -> Health {
    if let Some(h) = generation_pending(obj) {
        return h;
    }
    let desired = int(obj, "/spec/replicas").unwrap_or(1);
    let ready = int(obj, "/status/readyReplicas").unwrap_or(0);
    let partitioned = int(obj, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0) > 0;
    let on_delete = str_at(obj, "/spec/updateStrategy/type") == Some("OnDelete");
    if ready < desired {
        return Health::in_progress(format!("{ready} of {desired} replicas ready"));
    }
    if !partitioned && !on_delete {
        let updated = int(obj, "/status/updatedReplicas").unwrap_or(0);
        if updated < desired {
            return Health::in_progress(format!("{updated} of {desired} replicas updated"));
        }
        let current = str_at(obj, "/status/currentRevision").unwrap_or("");
        let update = str_at(obj, "/status/updateRevision").unwrap_or("");
        if current != update {
            return Health::in_progress(format!("rolling from revision {current} to {update}"));
        }
    }
    Health::current(format!("{ready} of {desired} replicas ready"))
}

fn daemonset(obj: &Value) -> Health {
    if let Some(h) = generation_pending(obj) {
        return h;
    }
    let desired = int(obj, "/status/desiredNumberScheduled").unwrap_or(0);
    if desired == 0 {
        // Nothing runs: its nodeSelector, affinity or tolerations match no node.
        return Health::in_progress("0 pods desired: the DaemonSet matches no node");
    }
    let updated = int(obj, "/status/updatedNumberScheduled").unwrap_or(0);
    let ready = int(obj, "/status/numberReady").unwrap_or(0);
    let available = int(obj, "/status/numberAvailable").unwrap_or(ready);
    if updated < desired {
        return Health::in_progress(format!("{updated} of {desired} pods updated"));
    }
    if ready < desired {
        return Health::in_progress(format!("{ready} of {desired} pods ready"));
    }
    if available < desired {
        return Health::in_progress(format!("{available} of {desired} pods available"));
    }
    Health::current(format!("{ready} of {desired} pods ready"))
}

fn job(obj: &Value) -> Health {
    for (type_, failed) in [("Failed", true), ("FailureTarget", true), ("Complete", false)] {
        if let Some(c) = condition(obj, type_) {
            if cond_status(c) == "True" {
                let text = cond_text(c);
                return if failed {
                    Health::failed(format!("job failed: {text}"))
                } else {
                    Health::current("job complete")
                };
            }
        }
    }
    let active = int(obj, "/status/active").unwrap_or(0);
    let failed = int(obj, "/status/failed").unwrap_or(0);
    Health::in_progress(format!("job running ({active} active, {failed} failed attempts)"))
}

fn pod(obj: &Value) -> Health {
    match str_at(obj, "/status/phase") {
        Some("Succeeded") => Health::current("pod succeeded"),
        Some("Failed") => Health::failed("pod failed"),
        Some("Running") => match condition(obj, "Ready") {
            Some(c) if cond_status(c) == "True" => Health::current("pod ready"),
            _ => Health::in_progress("pod running, not ready"),
        },
        phase => Health::in_progress(format!("pod {}", phase.unwrap_or("pending").to_lowercase())),
    }
}

/// A claim of a WaitForFirstConsumer class binds only once a Pod that uses it is scheduled, so a
/// Pending claim cannot gate its consumers: they are applied with it, and their health (their Pods wait for
/// the binding) covers it. Only a claim that lost its volume fails.
fn pvc(obj: &Value) -> Health {
    match str_at(obj, "/status/phase") {
        Some("Bound") => Health::current("bound"),
        Some("Lost") => Health::failed("claim lost its volume"),
        phase => Health::current(format!(
            "claim {}; it binds when its first consumer is scheduled",
            phase.unwrap_or("pending").to_lowercase()
        )),
    }
}

/// A CustomResourceDefinition serves its kinds once `Established`; names another definition holds
/// (`NamesAccepted=False`) never will be, until someone changes one of them.
fn crd(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "NamesAccepted")
        && cond_status(c) == "False"
    {
        return Health::failed(format!("names not accepted: {}", cond_text(c)));
    }
    match condition(obj, "Established") {
        Some(c) if cond_status(c) == "True" => Health::current("established"),
        Some(c) => Health::in_progress(format!("not established: {}", cond_text(c))),
        None => Health::in_progress("not established yet"),
    }
}

/// Custom resources, by kstatus rules: a controller that has not observed the latest generation is in
/// progress; `Stalled=True` means failed; `Reconciling=True` in progress; `Ready` decides if present, else
/// `Available`; a resource without any of these conditions is current as soon as it exists (its kind
/// reports nothing a wait could follow).
fn custom(obj: &Value) -> Health {
    if obj.pointer("/status/observedGeneration").is_some() {
        if let Some(h) = generation_pending(obj) {
            return h;
        }
    }
    if let Some(c) = condition(obj, "Stalled") {
        if cond_status(c) == "True" {
            return Health::failed(format!("stalled: {}", cond_text(c)));
        }
    }
    if let Some(c) = condition(obj, "Reconciling") {
        if cond_status(c) == "True" {
            return Health::in_progress(format!("reconciling: {}", cond_text(c)));
        }
    }
    for type_ in ["Ready", "Available"] {
        if let Some(c) = condition(obj, type_) {
            let lower = type_.to_lowercase();
            return if cond_status(c) == "True" {
                Health::current(lower)
            } else {
                Health::in_progress(format!("not {lower}: {}", cond_text(c)))
            };
        }
    }
    Health::current("exists")
}

/// Kubernetes' own API groups, whose objects without a specific rule are current once they exist.
fn is_builtin(api_version: &str) -> bool {
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::*;
    use serde_json::json;

    fn deploy(spec_replicas: i64, generation: i64, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "d", "generation": generation},
               "spec": {"replicas": spec_replicas}, "status": status})
    }

    #[test]
    fn kinds_with_status_rules() {
        let cases = [
            ("apps/v1", "Deployment", true),
            ("apps/v1", "StatefulSet", true),
            ("batch/v1", "Job", true),
            ("v1", "PersistentVolumeClaim", true),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition", true),
            ("mariadb.mmontes.io/v1", "MariaDB", true),
            ("v1", "ConfigMap", false),
            ("v1", "Service", false),
            ("rbac.authorization.k8s.io/v1", "Role", false),
            ("policy/v1", "PodDisruptionBudget", false),
        ];
        for (api_version, kind, want) in cases {
            assert_eq!(has_status_rules(api_version, kind), want, "{kind}");
            // Consistent with `health`: kinds without rules are Current as soon as they exist.
            if !want {
                let obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
                assert_eq!(health(&obj).status, Current);
            }
        }
    }

    #[test]
    fn table() {
        let cases: Vec<(&str, Value, HealthStatus, &str)> = vec![
            (
                "deployment ready",
                deploy(
                    2,
                    3,
                    json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}),
                ),
                Current,
                "2 of 2",
            ),
            (
                "deployment old generation",
                deploy(
                    2,
                    3,
                    json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
                ),
                InProgress,
                "generation 3",
            ),
            (
                "deployment no status",
                deploy(1, 1, json!({})),
                InProgress,
                "generation 1",
            ),
            (
                "deployment updating",
                deploy(
                    3,
                    1,
                    json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 3}),
                ),
                InProgress,
                "1 of 3 replicas updated",
            ),
            (
                "deployment old pods",
                deploy(
                    2,
                    1,
                    json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
                ),
                InProgress,
                "pending termination",
            ),
            (
                "deployment unavailable",
                deploy(
                    2,
                    1,
                    json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
                ),
                InProgress,
                "1 of 2 replicas available",
            ),
            (
                "deployment deadline",
                deploy(
                    2,
                    1,
                    json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 0,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"d-1\" has timed out progressing."}]}),
                ),
                Failed,
                "progress deadline exceeded",
            ),
            (
                "deployment zero replicas",
                deploy(0, 1, json!({"observedGeneration": 1})),
                Current,
                "0 of 0",
            ),
            (
                "deployment deleting",
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
                InProgress,
                "being deleted",
            ),
            (
                "statefulset ready",
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"generation": 2}, "spec": {"replicas": 3},
                "status": {"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "db-1", "updateRevision": "db-1"}}),
                Current,
                "3 of 3",
            ),
            (
                "statefulset rolling",
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"generation": 2}, "spec": {"replicas": 3},
                "status": {"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "db-1", "updateRevision": "db-2"}}),
                InProgress,
                "db-1 to db-2",
            ),
            (
                "statefulset not ready",
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 3},
                "status": {"observedGeneration": 1, "readyReplicas": 1}}),
                InProgress,
                "1 of 3 replicas ready",
            ),
            (
                "daemonset ready",
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"generation": 1},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 4, "updatedNumberScheduled": 4, "numberReady": 4, "numberAvailable": 4}}),
                Current,
                "4 of 4",
            ),
            (
                "daemonset updating",
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"generation": 1},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 4, "updatedNumberScheduled": 2, "numberReady": 4}}),
                InProgress,
                "2 of 4 pods updated",
            ),
            (
                "daemonset not ready",
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"generation": 1},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 4, "updatedNumberScheduled": 4, "numberReady": 3}}),
                InProgress,
                "3 of 4 pods ready",
            ),
            (
                "job complete",
                json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}}),
                Current,
                "complete",
            ),
            (
                "job failed",
                json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}}),
                Failed,
                "BackoffLimitExceeded",
            ),
            (
                "job running",
                json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"active": 1}}),
                InProgress,
                "1 active",
            ),
            (
                "job no status",
                json!({"apiVersion": "batch/v1", "kind": "Job"}),
                InProgress,
                "running",
            ),
            (
                "service",
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}),
                Current,
                "exists",
            ),
            (
                "configmap",
                json!({"apiVersion": "v1", "kind": "ConfigMap"}),
                Current,
                "exists",
            ),
            (
                "secret",
                json!({"apiVersion": "v1", "kind": "Secret"}),
                Current,
                "exists",
            ),
            (
                "rbac",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role"}),
                Current,
                "exists",
            ),
            (
                "pod running ready",
                json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
                Current,
                "ready",
            ),
            (
                "pod failed",
                json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Failed"}}),
                Failed,
                "failed",
            ),
            (
                "pvc bound",
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}}),
                Current,
                "bound",
            ),
            (
                "pvc pending for its first consumer",
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}}),
                Current,
                "binds when its first consumer is scheduled",
            ),
            (
                "pvc lost",
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Lost"}}),
                Failed,
                "lost",
            ),
            (
                "daemonset matching no node",
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"generation": 1},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 0, "currentNumberScheduled": 0, "numberReady": 0}}),
                InProgress,
                "matches no node",
            ),
            (
                "cr ready",
                json!({"apiVersion": "mariadb.mmontes.io/v1", "kind": "MariaDB", "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                Current,
                "ready",
            ),
            (
                "cr not ready",
                json!({"apiVersion": "mariadb.mmontes.io/v1", "kind": "MariaDB", "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Provisioning"}]}}),
                InProgress,
                "Provisioning",
            ),
            (
                "cr stalled",
                json!({"apiVersion": "x.example.com/v1", "kind": "Thing", "status": {"conditions": [{"type": "Stalled", "status": "True", "message": "bad spec"}]}}),
                Failed,
                "bad spec",
            ),
            (
                "cr stale generation",
                json!({"apiVersion": "x.example.com/v1", "kind": "Thing", "metadata": {"generation": 4}, "status": {"observedGeneration": 3, "conditions": [{"type": "Ready", "status": "True"}]}}),
                InProgress,
                "generation 4",
            ),
            (
                "cr reconciling although ready",
                json!({"apiVersion": "x.example.com/v1", "kind": "Thing", "status": {"conditions": [
                    {"type": "Reconciling", "status": "True", "reason": "Progressing", "message": "creating replicas"},
                    {"type": "Ready", "status": "True"}]}}),
                InProgress,
                "reconciling: Progressing: creating replicas",
            ),
            (
                "cr available",
                json!({"apiVersion": "x.example.com/v1", "kind": "Thing", "status": {"conditions": [{"type": "Available", "status": "True"}]}}),
                Current,
                "available",
            ),
            (
                "cr not available",
                json!({"apiVersion": "x.example.com/v1", "kind": "Thing", "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}}),
                InProgress,
                "not available: MinimumReplicasUnavailable",
            ),
            (
                "cr without conditions",
                json!({"apiVersion": "x.example.com/v1", "kind": "Thing"}),
                Current,
                "exists",
            ),
            (
                "crd established",
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "status": {"conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]}}),
                Current,
                "established",
            ),
            (
                "crd installing",
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "status": {"conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                    {"type": "Established", "status": "False", "reason": "Installing", "message": "the initial names have been accepted"}]}}),
                InProgress,
                "not established: Installing",
            ),
            (
                "crd without status",
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"}),
                InProgress,
                "not established",
            ),
            (
                "crd names taken",
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "status": {"conditions": [
                    {"type": "NamesAccepted", "status": "False", "reason": "MultipleConflicts", "message": "\"widgets\" is already in use"},
                    {"type": "Established", "status": "False", "reason": "NotAccepted"}]}}),
                Failed,
                "names not accepted: MultipleConflicts",
            ),
        ];
        for (name, obj, status, reason) in cases {
            let h = health(&obj);
            assert_eq!(h.status, status, "{name}: {h:?}");
            assert!(
                h.reason.contains(reason),
                "{name}: reason {:?} lacks {reason:?}",
                h.reason
            );
        }
    }
}
