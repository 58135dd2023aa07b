//! Jobs: Pods up to `parallelism` until `completions` of them succeeded (`Complete`), or until more than
//! `backoffLimit` failed (`Failed`, `BackoffLimitExceeded`) or `activeDeadlineSeconds` passed (`Failed`,
//! `DeadlineExceeded`), with the success and failure criteria conditions of batch/v1. Replacement Pods
//! start at once (a real controller backs off 10s, doubling).

use serde_json::{Value, json};

use super::{
    Action, Announce, Event, Involved, JOBS, Memory, PODS, View, condition, generated_name, is_deleting,
    keep_transitions, name, namespace, pod_from_template, pod_ready, text, uid,
};

const COMPONENT: &str = "job-controller";
const MANAGER: &str = "kube-controller-manager";

fn count(pods: &[&Value], phase: &str) -> i64 {
    pods.iter().filter(|p| p["status"]["phase"] == phase).count() as i64
}

fn is_true(job: &Value, type_: &str) -> bool {
    job["status"]["conditions"]
        .as_array()
        .is_some_and(|l| l.iter().any(|c| c["type"] == type_ && c["status"] == "True"))
}

pub fn run(view: &View, mem: &mut Memory, out: &mut Vec<Action>) {
    for job in view.list(JOBS) {
        if !is_deleting(job) {
            one(view, mem, job, out);
        }
    }
}

fn one(view: &View, mem: &mut Memory, job: &Value, out: &mut Vec<Action>) {
    let wall = &view.wall;
    let spec = &job["spec"];
    let id = uid(job);
    let pods = view.pods_of(namespace(job), id);
    let active: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|p| !is_deleting(p) && !matches!(text(&p["status"]["phase"]), "Succeeded" | "Failed"))
        .collect();
    let terminating = pods.iter().filter(|p| is_deleting(p)).count() as i64;
    let succeeded = count(&pods, "Succeeded");
    let failed = count(&pods, "Failed");
    let finished = is_true(job, "Complete") || is_true(job, "Failed");
    let suspended = spec["suspend"] == true;
    let stop_active = |out: &mut Vec<Action>| {
        for p in &active {
            out.push(Action::delete(PODS, p, None));
        }
    };
    let mut conds: Vec<Value> = job["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut completion_time = job["status"]["completionTime"].clone();
    let start_time = match job["status"]["startTime"].as_str() {
        Some(t) => json!(t),
        None if suspended => Value::Null,
        None => json!(wall),
    };
    if finished {
        if is_true(job, "Failed") {
            stop_active(out);
        }
    } else if suspended {
        stop_active(out);
        conds.retain(|c| c["type"] != "Suspended");
        conds.push(condition(
            "Suspended",
            true,
            "JobSuspended",
            "Job suspended",
            wall,
        ));
    } else {
        conds.retain(|c| c["type"] != "Suspended");
        let completions = spec["completions"].as_i64().unwrap_or(1).max(0);
        let parallelism = spec["parallelism"].as_i64().unwrap_or(1).max(0);
        let backoff = spec["backoffLimit"].as_i64().unwrap_or(6).max(0);
        // With restartPolicy OnFailure the kubelet restarts failed containers; the restarts count.
        let restarts: i64 = if spec["template"]["spec"]["restartPolicy"] == "OnFailure" {
            active
                .iter()
                .flat_map(|p| {
                    p["status"]["containerStatuses"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .sum()
        } else {
            0
        };
        let past_deadline = spec["activeDeadlineSeconds"].as_u64().is_some_and(|limit| {
            let started = start_time.as_str().and_then(super::super::meta::parse_rfc3339);
            let now = super::super::meta::parse_rfc3339(wall);
            matches!((started, now), (Some(s), Some(n)) if n >= s + limit)
        });
        let failure = if past_deadline {
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ))
        } else if failed + restarts > backoff {
            Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ))
        } else {
            None
        };
        if let Some((reason, message)) = failure {
            stop_active(out);
            conds.push(condition("FailureTarget", true, reason, message, wall));
            conds.push(condition("Failed", true, reason, message, wall));
            out.push(Action::Event(Event::warning(
                Involved::of(job),
                COMPONENT,
                reason,
                message.into(),
            )));
        } else if succeeded >= completions {
            let message = "Reached expected number of succeeded pods";
            conds.push(condition(
                "SuccessCriteriaMet",
                true,
                "CompletionsReached",
                message,
                wall,
            ));
            conds.push(condition("Complete", true, "CompletionsReached", message, wall));
            completion_time = json!(wall);
            out.push(Action::Event(Event::normal(
                Involved::of(job),
                COMPONENT,
                "Completed",
                "Job completed".into(),
            )));
        } else if mem.may_create(id, view.now) {
            let want = parallelism.min(completions - succeeded);
            for _ in active.len() as i64..want {
                let pod_name = generated_name(&format!("{}-", name(job)));
                let mut pod = pod_from_template(
                    job,
                    &spec["template"],
                    &pod_name,
                    &[
                        ("batch.kubernetes.io/controller-uid", id.to_string()),
                        ("batch.kubernetes.io/job-name", name(job).to_string()),
                        ("controller-uid", id.to_string()),
                        ("job-name", name(job).to_string()),
                    ],
                );
                pod["metadata"]["annotations"]["batch.kubernetes.io/job-tracking"] = json!("");
                out.push(Action::Create {
                    res: PODS,
                    object: pod,
                    manager: MANAGER,
                    announce: Some(Announce {
                        owner: Involved::of(job),
                        component: COMPONENT,
                        ok: ("SuccessfulCreate", format!("Created pod: {pod_name}")),
                        failed: ("FailedCreate", "Error creating: ".into()),
                    }),
                });
            }
        }
    }
    keep_transitions(&job["status"]["conditions"], &mut conds);
    let ready = active.iter().filter(|p| pod_ready(p)).count() as i64;
    let mut status = json!({"ready": ready, "terminating": terminating, "uncountedTerminatedPods": {}});
    if !start_time.is_null() {
        status["startTime"] = start_time;
    }
    for (f, n) in [
        ("active", if finished { 0 } else { active.len() as i64 }),
        ("succeeded", succeeded),
        ("failed", failed),
    ] {
        if n > 0 {
            status[f] = json!(n);
        }
    }
    if !conds.is_empty() {
        status["conditions"] = json!(conds);
    }
    if !completion_time.is_null() {
        status["completionTime"] = completion_time;
    }
    if status != job["status"] {
        out.push(Action::status(JOBS, job, status, MANAGER));
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{store, view};
    use super::super::{Memory, Res};
    use super::*;

    fn job(extra: Value) -> Value {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "db-sync", "namespace": "os", "uid": "job-1"},
            "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "i"}]}}}});
        if let Some(m) = extra.as_object() {
            for (k, v) in m {
                j["spec"][k] = v.clone();
            }
        }
        j
    }

    fn attempt(phase: &str, n: usize) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("db-sync-{n}"), "namespace": "os",
            "ownerReferences": [{"uid": "job-1", "controller": true}]}, "status": {"phase": phase}})
    }

    fn outcome(objects: Vec<(Res, Value)>) -> (usize, Value) {
        let s = store(&objects);
        let v = view(&s);
        let mut out = Vec::new();
        run(&v, &mut Memory::default(), &mut out);
        let creates = out.iter().filter(|a| matches!(a, Action::Create { .. })).count();
        let status = out
            .iter()
            .find_map(|a| match a {
                Action::Status { status, .. } => Some(status.clone()),
                _ => None,
            })
            .unwrap_or_default();
        (creates, status)
    }

    fn last_condition(status: &Value) -> (String, String) {
        let c = status["conditions"]
            .as_array()
            .and_then(|l| l.last())
            .cloned()
            .unwrap_or_default();
        (text(&c["type"]).into(), text(&c["reason"]).into())
    }

    #[test]
    fn jobs_run_pods_until_they_succeed_or_fail_too_often() {
        let (creates, status) = outcome(vec![(JOBS, job(json!({})))]);
        assert_eq!(creates, 1);
        assert!(status["startTime"].is_string());

        let (creates, status) = outcome(vec![(JOBS, job(json!({}))), (PODS, attempt("Succeeded", 1))]);
        assert_eq!(creates, 0);
        assert_eq!(
            last_condition(&status),
            ("Complete".into(), "CompletionsReached".into())
        );
        assert_eq!(status["succeeded"], 1);

        // One failure is within backoffLimit 1: a replacement starts.
        let (creates, status) = outcome(vec![(JOBS, job(json!({}))), (PODS, attempt("Failed", 1))]);
        assert_eq!(creates, 1);
        assert_eq!(status["failed"], 1);
        let (creates, status) = outcome(vec![
            (JOBS, job(json!({}))),
            (PODS, attempt("Failed", 1)),
            (PODS, attempt("Failed", 2)),
        ]);
        assert_eq!(creates, 0);
        assert_eq!(
            last_condition(&status),
            ("Failed".into(), "BackoffLimitExceeded".into())
        );
    }

    #[test]
    fn parallel_jobs_start_several_pods() {
        let (creates, _) = outcome(vec![(JOBS, job(json!({"completions": 5, "parallelism": 3})))]);
        assert_eq!(creates, 3);
        let (creates, _) = outcome(vec![
            (JOBS, job(json!({"completions": 2, "parallelism": 3}))),
            (PODS, attempt("Succeeded", 1)),
        ]);
        assert_eq!(creates, 1);
    }

    #[test]
    fn suspended_jobs_start_nothing() {
        let (creates, status) = outcome(vec![(JOBS, job(json!({"suspend": true})))]);
        assert_eq!(creates, 0);
        assert_eq!(
            last_condition(&status),
            ("Suspended".into(), "JobSuspended".into())
        );
    }
}
