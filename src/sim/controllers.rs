//! Simulated workload controllers: status for Deployments, StatefulSets, DaemonSets and Jobs as a pure
//! function of the object, the time since its spec last changed, and the simulator's failure rules.

use std::time::Duration;

use globset::GlobSet;
use serde_json::{Value, json};

use super::meta;

/// The simulator's settings the controllers read.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub ready_after: Duration,
    pub job_duration: Duration,
    pub nodes: u32,
    pub unpullable: GlobSet,
    pub failing_jobs: GlobSet,
}

/// What a workload looked like when its spec changed (old pods keep serving during a rollout).
#[derive(Debug, Clone, PartialEq)]
pub struct Tracked {
    pub generation: i64,
    pub since: std::time::Instant,
    /// Wall-clock start, for Job startTime.
    pub since_wall: String,
    pub prev_ready: i64,
    pub prev_revision: Option<String>,
}

/// The next status, and whether the workload reached a final state (no more changes without a new spec).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: Value,
    pub done: bool,
}

pub fn is_workload(group: &str, plural: &str) -> bool {
    matches!(
        (group, plural),
        ("apps", "deployments" | "statefulsets" | "daemonsets") | ("batch", "jobs")
    )
}

fn images(obj: &Value) -> Vec<String> {
    let spec = &obj["spec"]["template"]["spec"];
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["image"].as_str().map(String::from))
        .collect()
}

fn unpullable(obj: &Value, b: &Behaviour) -> bool {
    images(obj).iter().any(|i| b.unpullable.is_match(i))
}

fn cond(kind: &str, status: bool, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": kind, "status": if status { "True" } else { "False" }, "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now,
    })
}

/// Keeps lastTransitionTime of conditions whose status did not change, as a controller would.
fn keep_transitions(old: &Value, new: &mut Value) {
    let Some(old_conds) = old["conditions"].as_array() else {
        return;
    };
    let Some(new_conds) = new.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in new_conds.iter_mut() {
        if let Some(o) = old_conds.iter().find(|o| o["type"] == c["type"]) {
            if o["status"] == c["status"] {
                c["lastTransitionTime"] = o["lastTransitionTime"].clone();
                if o["reason"] == c["reason"] {
                    c["lastUpdateTime"] = o["lastUpdateTime"].clone();
                }
            }
        }
    }
}

/// A revision name for a pod template, as controllers derive one from its hash.
pub fn revision(obj: &Value) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(obj["spec"]["template"].to_string().as_bytes());
    let h: String = d.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{}-{}", obj["metadata"]["name"].as_str().unwrap_or("x"), &h[..10])
}

pub fn simulate(
    plural: &str,
    obj: &Value,
    t: &Tracked,
    elapsed: Duration,
    b: &Behaviour,
    now: &str,
) -> Option<Outcome> {
    // Controllers notice changes a little later than the write, as a real controller manager does.
    let observe_after = b.ready_after / 4;
    if elapsed < observe_after {
        return None;
    }
    let old = obj.get("status").cloned().unwrap_or(json!({}));
    let mut out = match plural {
        "deployments" => deployment(obj, t, elapsed, b, now),
        "statefulsets" => statefulset(obj, t, elapsed, b),
        "daemonsets" => daemonset(obj, t, elapsed, b),
        "jobs" => job(obj, t, elapsed, b, now),
        _ => return None,
    };
    keep_transitions(&old, &mut out.status);
    Some(out)
}

fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1).max(0)
}

fn deployment(obj: &Value, t: &Tracked, elapsed: Duration, b: &Behaviour, now: &str) -> Outcome {
    let n = replicas(obj);
    let generation = t.generation;
    let stuck = unpullable(obj, b);
    let deadline = Duration::from_secs(obj["spec"]["progressDeadlineSeconds"].as_u64().unwrap_or(600));
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let rs = revision(obj);
    let ready = !stuck && elapsed >= b.ready_after;
    if ready || n == 0 {
        let mut conds = vec![cond(
            "Available",
            true,
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
        )];
        conds.push(cond(
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs}\" has successfully progressed."),
            now,
        ));
        let mut status = json!({"observedGeneration": generation, "replicas": n, "updatedReplicas": n, "readyReplicas": n,
            "availableReplicas": n, "conditions": conds});
        if n == 0 {
            for k in [
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
            ] {
                if let Some(m) = status.as_object_mut() {
                    m.remove(k);
                }
            }
        }
        return Outcome { status, done: true };
    }
    let prev = t.prev_ready.min(n);
    let available = cond(
        "Available",
        prev > 0,
        if prev > 0 {
            "MinimumReplicasAvailable"
        } else {
            "MinimumReplicasUnavailable"
        },
        if prev > 0 {
            "Deployment has minimum availability."
        } else {
            "Deployment does not have minimum availability."
        },
        now,
    );
    let exceeded = stuck && elapsed >= deadline;
    let progressing = if exceeded {
        cond(
            "Progressing",
            false,
            "ProgressDeadlineExceeded",
            &format!("ReplicaSet \"{rs}\" has timed out progressing."),
            now,
        )
    } else {
        cond(
            "Progressing",
            true,
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs}\" is progressing."),
            now,
        )
    };
    let _ = name;
    let mut status = json!({
        "observedGeneration": generation, "replicas": prev + n, "updatedReplicas": n, "unavailableReplicas": n,
        "conditions": [available, progressing],
    });
    if prev > 0 {
        status["readyReplicas"] = json!(prev);
        status["availableReplicas"] = json!(prev);
    }
    Outcome {
        status,
        done: exceeded,
    }
}

fn statefulset(obj: &Value, t: &Tracked, elapsed: Duration, b: &Behaviour) -> Outcome {
    let n = replicas(obj);
    let rev = revision(obj);
    let ready = !unpullable(obj, b) && elapsed >= b.ready_after;
    if ready || n == 0 {
        return Outcome {
            status: json!({"observedGeneration": t.generation, "replicas": n, "readyReplicas": n, "currentReplicas": n,
                "updatedReplicas": n, "availableReplicas": n, "currentRevision": rev, "updateRevision": rev,
                "collisionCount": 0}),
            done: true,
        };
    }
    let prev = t.prev_ready.min(n);
    let current = t.prev_revision.clone().unwrap_or_else(|| rev.clone());
    Outcome {
        status: json!({"observedGeneration": t.generation, "replicas": n, "readyReplicas": prev, "currentReplicas": prev,
            "updatedReplicas": 0, "availableReplicas": prev, "currentRevision": current, "updateRevision": rev,
            "collisionCount": 0}),
        done: false,
    }
}

fn daemonset(obj: &Value, t: &Tracked, elapsed: Duration, b: &Behaviour) -> Outcome {
    let n = i64::from(b.nodes);
    let ready = !unpullable(obj, b) && elapsed >= b.ready_after;
    let (ready_n, updated) = if ready { (n, n) } else { (t.prev_ready.min(n), 0) };
    let mut status = json!({"observedGeneration": t.generation, "desiredNumberScheduled": n,
        "currentNumberScheduled": n, "numberMisscheduled": 0, "numberReady": ready_n,
        "updatedNumberScheduled": updated, "numberAvailable": ready_n});
    if n - ready_n > 0 {
        status["numberUnavailable"] = json!(n - ready_n);
    }
    Outcome { status, done: ready }
}

fn job(obj: &Value, t: &Tracked, elapsed: Duration, b: &Behaviour, now: &str) -> Outcome {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let completions = obj["spec"]["completions"].as_i64().unwrap_or(1).max(0);
    let parallelism = obj["spec"]["parallelism"].as_i64().unwrap_or(1).max(0);
    let backoff = obj["spec"]["backoffLimit"].as_i64().unwrap_or(6).max(0);
    let fails = b.failing_jobs.is_match(name) || images(obj).iter().any(|i| b.failing_jobs.is_match(i));
    let stuck = unpullable(obj, b);
    let start = t.since_wall.clone();
    if stuck || elapsed < b.job_duration {
        let active = parallelism.min(completions.max(1));
        let mut status = json!({"startTime": start, "active": active, "ready": 0, "terminating": 0,
            "uncountedTerminatedPods": {}});
        if stuck {
            status["ready"] = json!(0);
        }
        return Outcome { status, done: false };
    }
    if fails {
        return Outcome {
            status: json!({"startTime": start, "failed": backoff + 1, "ready": 0, "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": [
                cond("FailureTarget", true, "BackoffLimitExceeded", "Job has reached the specified backoff limit", now),
                cond("Failed", true, "BackoffLimitExceeded", "Job has reached the specified backoff limit", now),
            ]}),
            done: true,
        };
    }
    Outcome {
        status: json!({"startTime": start, "completionTime": now, "succeeded": completions, "ready": 0,
        "terminating": 0, "uncountedTerminatedPods": {},
        "conditions": [
            cond("SuccessCriteriaMet", true, "CompletionsReached", "Reached expected number of succeeded pods", now),
            cond("Complete", true, "CompletionsReached", "Reached expected number of succeeded pods", now),
        ]}),
        done: true,
    }
}

/// Ready count of the current status (what keeps serving during the next rollout).
pub fn current_ready(plural: &str, obj: &Value) -> i64 {
    let s = &obj["status"];
    match plural {
        "daemonsets" => s["numberReady"].as_i64().unwrap_or(0),
        _ => s["readyReplicas"].as_i64().unwrap_or(0),
    }
}

pub fn start_wall() -> String {
    meta::now_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;
    use globset::{Glob, GlobSetBuilder};

    fn behaviour() -> Behaviour {
        let set = |p: &str| {
            let mut b = GlobSetBuilder::new();
            b.add(Glob::new(p).unwrap());
            b.build().unwrap()
        };
        Behaviour {
            ready_after: Duration::from_secs(2),
            job_duration: Duration::from_secs(1),
            nodes: 3,
            unpullable: set("*:broken"),
            failing_jobs: set("*fail*"),
        }
    }

    fn tracked(prev: i64) -> Tracked {
        Tracked {
            generation: 2,
            since: std::time::Instant::now(),
            since_wall: "t0".into(),
            prev_ready: prev,
            prev_revision: None,
        }
    }

    fn dep(image: &str) -> Value {
        json!({"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 3, "progressDeadlineSeconds": 5,
            "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn deployment_lags_then_becomes_ready() {
        let b = behaviour();
        assert_eq!(
            simulate(
                "deployments",
                &dep("x:1"),
                &tracked(0),
                Duration::from_millis(100),
                &b,
                "t"
            ),
            None
        );
        let mid = simulate(
            "deployments",
            &dep("x:1"),
            &tracked(3),
            Duration::from_secs(1),
            &b,
            "t",
        )
        .unwrap();
        assert!(!mid.done);
        assert_eq!(mid.status["observedGeneration"], 2);
        assert_eq!(
            mid.status["replicas"], 6,
            "old pods still running during the rollout"
        );
        assert_eq!(mid.status["updatedReplicas"], 3);
        let done = simulate(
            "deployments",
            &dep("x:1"),
            &tracked(3),
            Duration::from_secs(2),
            &b,
            "t",
        )
        .unwrap();
        assert!(done.done);
        assert_eq!(done.status["availableReplicas"], 3);
        assert_eq!(done.status["replicas"], 3);
    }

    #[test]
    fn unpullable_image_hits_progress_deadline() {
        let b = behaviour();
        let before = simulate(
            "deployments",
            &dep("x:broken"),
            &tracked(0),
            Duration::from_secs(3),
            &b,
            "t",
        )
        .unwrap();
        assert!(!before.done);
        assert_eq!(before.status.get("availableReplicas"), None);
        let after = simulate(
            "deployments",
            &dep("x:broken"),
            &tracked(0),
            Duration::from_secs(5),
            &b,
            "t",
        )
        .unwrap();
        assert!(after.done);
        let p = after.status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Progressing")
            .unwrap();
        assert_eq!(p["status"], "False");
        assert_eq!(p["reason"], "ProgressDeadlineExceeded");
    }

    #[test]
    fn jobs_complete_or_fail_by_rule() {
        let b = behaviour();
        let job = |name: &str| json!({"metadata": {"name": name}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let running = simulate(
            "jobs",
            &job("db-sync"),
            &tracked(0),
            Duration::from_millis(600),
            &b,
            "t",
        )
        .unwrap();
        assert_eq!(running.status["active"], 1);
        let ok = simulate(
            "jobs",
            &job("db-sync"),
            &tracked(0),
            Duration::from_secs(1),
            &b,
            "t",
        )
        .unwrap();
        assert_eq!(ok.status["conditions"][1]["type"], "Complete");
        assert_eq!(ok.status["succeeded"], 1);
        let bad = simulate(
            "jobs",
            &job("will-fail"),
            &tracked(0),
            Duration::from_secs(1),
            &b,
            "t",
        )
        .unwrap();
        assert_eq!(bad.status["conditions"][1]["type"], "Failed");
    }

    #[test]
    fn daemonset_counts_nodes() {
        let b = behaviour();
        let ds = json!({"metadata": {"name": "agent"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let done = simulate("daemonsets", &ds, &tracked(0), Duration::from_secs(2), &b, "t").unwrap();
        assert_eq!(done.status["desiredNumberScheduled"], 3);
        assert_eq!(done.status["numberReady"], 3);
        assert!(done.done);
    }
}
