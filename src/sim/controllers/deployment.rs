//! Deployments and ReplicaSets. The deployment controller keeps one ReplicaSet per Pod template
//! (`<name>-<pod-template-hash>`) and moves replicas from the old ones to the new one within `maxSurge` and
//! `maxUnavailable` (or all at once for `Recreate`), reporting counts from its ReplicaSets and the
//! `Available` / `Progressing` conditions, with `ProgressDeadlineExceeded` once nothing moved for
//! `progressDeadlineSeconds`. The ReplicaSet controller keeps `spec.replicas` Pods and counts the ready and
//! available ones.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{
    Action, Announce, DEPLOYMENTS, Event, Involved, Memory, PODS, REPLICASETS, View, condition,
    controller_ref, generated_name, generation, int_or_percent, is_deleting, keep_transitions, label, name,
    namespace, pod_active, pod_available, pod_from_template, pod_ready, replicas, text, uid,
};

const DEPLOYMENT_CONTROLLER: &str = "deployment-controller";
const REPLICASET_CONTROLLER: &str = "replicaset-controller";
const MANAGER: &str = "kube-controller-manager";
pub const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// When each Deployment last made progress (for `progressDeadlineSeconds`), and when the Deployments
/// still rolling out run out of time.
#[derive(Debug, Default)]
pub struct Progress {
    seen: HashMap<String, (u64, Instant)>,
    deadlines: HashMap<String, Instant>,
}

impl Progress {
    pub fn wake(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }
}

fn revision(obj: &Value) -> i64 {
    text(&obj["metadata"]["annotations"][REVISION])
        .parse()
        .unwrap_or(0)
}

fn spec_replicas(rs: &Value) -> i64 {
    replicas(rs)
}

fn status_int(obj: &Value, field: &str) -> i64 {
    obj["status"][field].as_i64().unwrap_or(0)
}

/// maxSurge and maxUnavailable of a Deployment as absolute numbers.
fn surge_and_unavailable(d: &Value, desired: i64) -> (i64, i64) {
    if d["spec"]["strategy"]["type"] == "Recreate" {
        return (0, desired);
    }
    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    let surge = int_or_percent(&ru["maxSurge"], desired, true, (desired + 3) / 4);
    let unavailable = int_or_percent(&ru["maxUnavailable"], desired, false, desired / 4);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn replica_set(d: &Value, hash: &str, count: i64, revision: i64, surge: i64) -> Value {
    let desired = replicas(d);
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"][HASH_LABEL] = json!(hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    let labels = template["metadata"]["labels"].clone();
    let mut spec = json!({"replicas": count, "selector": selector, "template": template});
    if let Some(m) = d["spec"]["minReadySeconds"].as_i64() {
        spec["minReadySeconds"] = json!(m);
    }
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("{}-{hash}", name(d)), "namespace": namespace(d), "labels": labels,
            "annotations": {REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                "deployment.kubernetes.io/max-replicas": (desired + surge).to_string()},
            "ownerReferences": [controller_ref(d)]},
        "spec": spec})
}

fn scale(d: &Value, rs: &Value, to: i64, surge: i64, out: &mut Vec<Action>) {
    let from = spec_replicas(rs);
    if from == to {
        return;
    }
    let mut new = rs.clone();
    new["spec"]["replicas"] = json!(to);
    new["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
        json!(replicas(d).to_string());
    new["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] =
        json!((replicas(d) + surge).to_string());
    out.push(Action::update(REPLICASETS, new, MANAGER));
    out.push(Action::Event(Event::normal(
        Involved::of(d),
        DEPLOYMENT_CONTROLLER,
        "ScalingReplicaSet",
        format!(
            "Scaled {} replica set {} from {from} to {to}",
            if to > from { "up" } else { "down" },
            name(rs)
        ),
    )));
}

pub fn run(view: &View, mem: &mut Memory, out: &mut Vec<Action>) {
    let mut live = Vec::new();
    for d in view.list(DEPLOYMENTS) {
        live.push(uid(d).to_string());
        if !is_deleting(d) {
            deployment(view, mem, d, out);
        }
    }
    mem.deployments.seen.retain(|k, _| live.contains(k));
    mem.deployments.deadlines.retain(|k, _| live.contains(k));
}

fn deployment(view: &View, mem: &mut Memory, d: &Value, out: &mut Vec<Action>) {
    let ns = namespace(d);
    let id = uid(d);
    let hash = mem.template_hash(d);
    let mut rss: Vec<&Value> = view
        .replicasets_of(id)
        .into_iter()
        .filter(|rs| namespace(rs) == ns)
        .collect();
    rss.sort_by_key(|rs| {
        (
            revision(rs),
            text(&rs["metadata"]["creationTimestamp"]).to_string(),
        )
    });
    let new = rss
        .iter()
        .copied()
        .find(|rs| label(rs, HASH_LABEL) == Some(hash.as_str()));
    let old: Vec<&Value> = rss
        .iter()
        .copied()
        .filter(|rs| label(rs, HASH_LABEL) != Some(hash.as_str()))
        .collect();
    let desired = replicas(d);
    let (surge, unavailable) = surge_and_unavailable(d, desired);
    let plan = Strategy {
        desired,
        surge,
        unavailable,
        recreate: d["spec"]["strategy"]["type"] == "Recreate",
        paused: d["spec"]["paused"] == true,
    };
    let Strategy { recreate, paused, .. } = plan;
    let old_spec: i64 = old.iter().map(|rs| spec_replicas(rs)).sum();
    let mut created = false;
    let next_revision = rss.iter().map(|rs| revision(rs)).max().unwrap_or(0) + 1;
    if !paused {
        match new {
            None => {
                let count = if recreate {
                    let old_pods_running = old
                        .iter()
                        .any(|rs| view.pods_of(ns, uid(rs)).iter().any(|p| !super::pod_finished(p)));
                    if old_spec > 0 || old_pods_running {
                        for rs in &old {
                            scale(d, rs, 0, surge, out);
                        }
                        None
                    } else {
                        Some(desired)
                    }
                } else {
                    Some(desired.min((desired + surge - old_spec).max(0)))
                };
                if let Some(count) = count {
                    let rs = replica_set(d, &hash, count, next_revision, surge);
                    let rs_name = name(&rs).to_string();
                    out.push(Action::Create {
                        res: REPLICASETS,
                        object: rs,
                        manager: MANAGER,
                        announce: None,
                    });
                    out.push(Action::Event(Event::normal(
                        Involved::of(d),
                        DEPLOYMENT_CONTROLLER,
                        "ScalingReplicaSet",
                        format!("Scaled up replica set {rs_name} from 0 to {count}"),
                    )));
                    created = true;
                }
            }
            Some(new_rs) => rollout(view, d, new_rs, &old, &plan, out),
        }
        if let Some(new_rs) = new {
            // The newest template's ReplicaSet has the highest revision, also when an old template returns.
            let max_old = old.iter().map(|rs| revision(rs)).max().unwrap_or(0);
            let new_revision = if revision(new_rs) > max_old {
                revision(new_rs)
            } else {
                let mut rs = new_rs.clone();
                rs["metadata"]["annotations"][REVISION] = json!((max_old + 1).to_string());
                out.push(Action::update(REPLICASETS, rs, MANAGER));
                max_old + 1
            };
            let want = new_revision.to_string();
            if d["metadata"]["annotations"][REVISION].as_str() != Some(&want) {
                let mut updated = d.clone();
                updated["metadata"]["annotations"][REVISION] = json!(want);
                out.push(Action::update(DEPLOYMENTS, updated, MANAGER));
            }
        }
        history_cleanup(d, &old, out);
    }
    let sets = ReplicaSets {
        hash: &hash,
        new,
        all: &rss,
    };
    status(view, mem, d, &sets, &plan, created, out);
}

/// What a Deployment's spec asks of a rollout, read once.
#[derive(Clone, Copy)]
struct Strategy {
    desired: i64,
    surge: i64,
    unavailable: i64,
    recreate: bool,
    paused: bool,
}

/// A Deployment's ReplicaSets: the one of the current template (by its hash), if made, and all of them.
struct ReplicaSets<'a> {
    hash: &'a str,
    new: Option<&'a Value>,
    all: &'a [&'a Value],
}

fn rollout(view: &View, d: &Value, new: &Value, old: &[&Value], plan: &Strategy, out: &mut Vec<Action>) {
    let Strategy {
        desired,
        surge,
        unavailable,
        recreate,
        ..
    } = *plan;
    let ns = namespace(d);
    let new_spec = spec_replicas(new);
    let old_spec: i64 = old.iter().map(|rs| spec_replicas(rs)).sum();
    if recreate {
        if old_spec > 0 {
            for rs in old {
                scale(d, rs, 0, surge, out);
            }
            return;
        }
        let old_running = old
            .iter()
            .any(|rs| view.pods_of(ns, uid(rs)).iter().any(|p| !super::pod_finished(p)));
        if !old_running {
            scale(d, new, desired, surge, out);
        }
        return;
    }
    let all = new_spec + old_spec;
    let target = if new_spec < desired {
        desired.min(new_spec + (desired + surge - all).max(0))
    } else {
        desired
    };
    if target != new_spec {
        scale(d, new, target, surge, out);
        return;
    }
    // Old replicas go as far as availability allows: unhealthy ones first, then healthy ones.
    let min_available = desired - unavailable;
    let new_unavailable = new_spec - status_int(new, "availableReplicas");
    let mut budget = all - min_available - new_unavailable;
    if budget <= 0 {
        return;
    }
    let mut targets: Vec<i64> = old.iter().map(|rs| spec_replicas(rs)).collect();
    for (i, rs) in old.iter().enumerate() {
        let unhealthy = (targets[i] - status_int(rs, "availableReplicas")).max(0);
        let cut = unhealthy.min(budget);
        targets[i] -= cut;
        budget -= cut;
    }
    let available: i64 = std::iter::once(new)
        .chain(old.iter().copied())
        .map(|rs| status_int(rs, "availableReplicas"))
        .sum();
    let mut down = (available - min_available).max(0);
    for t in targets.iter_mut() {
        let cut = (*t).min(down);
        *t -= cut;
        down -= cut;
    }
    for (rs, t) in old.iter().zip(targets) {
        scale(d, rs, t, surge, out);
    }
}

/// Old ReplicaSets scaled to zero beyond `revisionHistoryLimit` are deleted, oldest first.
fn history_cleanup(d: &Value, old: &[&Value], out: &mut Vec<Action>) {
    let limit = d["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10).max(0) as usize;
    let idle: Vec<&&Value> = old
        .iter()
        .filter(|rs| spec_replicas(rs) == 0 && status_int(rs, "replicas") == 0 && !is_deleting(rs))
        .collect();
    if idle.len() > limit {
        for rs in &idle[..idle.len() - limit] {
            out.push(Action::delete(REPLICASETS, rs, None));
        }
    }
}

fn status(
    view: &View,
    mem: &mut Memory,
    d: &Value,
    sets: &ReplicaSets<'_>,
    plan: &Strategy,
    created: bool,
    out: &mut Vec<Action>,
) {
    let ReplicaSets { hash, new, all: rss } = *sets;
    let Strategy {
        desired,
        unavailable,
        paused,
        ..
    } = *plan;
    let wall = &view.wall;
    let sum = |f: &str| rss.iter().map(|rs| status_int(rs, f)).sum::<i64>();
    let total = sum("replicas");
    let ready = sum("readyReplicas");
    let available = sum("availableReplicas");
    let spec_total: i64 = rss.iter().map(|rs| spec_replicas(rs)).sum();
    let updated = new.map_or(0, |rs| status_int(rs, "replicas"));
    let rs_name = new.map_or_else(|| format!("{}-{hash}", name(d)), |rs| name(rs).to_string());

    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&rs_name, updated, ready, available, total, spec_total).hash(&mut h);
    let fingerprint = h.finish();
    let entry = mem
        .deployments
        .seen
        .entry(uid(d).to_string())
        .or_insert((fingerprint, view.now));
    let moved = entry.0 != fingerprint;
    if moved {
        *entry = (fingerprint, view.now);
    }
    let since_progress = view.now.saturating_duration_since(entry.1);
    let deadline = Duration::from_secs(d["spec"]["progressDeadlineSeconds"].as_u64().unwrap_or(600));
    let complete = new.is_some() && updated == desired && total == desired && available == desired;
    if complete || paused || since_progress >= deadline {
        mem.deployments.deadlines.remove(uid(d));
    } else {
        mem.deployments
            .deadlines
            .insert(uid(d).to_string(), entry.1 + deadline);
    }

    let mut available_cond = if available >= desired - unavailable {
        condition(
            "Available",
            true,
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            wall,
        )
    } else {
        condition(
            "Available",
            false,
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            wall,
        )
    };
    let old_progressing = d["status"]["conditions"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["type"] == "Progressing"))
        .cloned();
    let mut progressing = if paused {
        condition(
            "Progressing",
            true,
            "DeploymentPaused",
            "Deployment is paused",
            wall,
        )
    } else if complete {
        condition(
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            wall,
        )
    } else if created {
        condition(
            "Progressing",
            true,
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{rs_name}\""),
            wall,
        )
    } else if since_progress >= deadline {
        condition(
            "Progressing",
            false,
            "ProgressDeadlineExceeded",
            &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
            wall,
        )
    } else if moved || old_progressing.is_none() {
        condition(
            "Progressing",
            true,
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs_name}\" is progressing."),
            wall,
        )
    } else {
        old_progressing.clone().unwrap_or_default()
    };
    available_cond["lastUpdateTime"] = json!(wall);
    progressing["lastUpdateTime"] = json!(wall);
    let mut conds = vec![available_cond, progressing];
    if let Some(f) = new
        .and_then(|rs| rs["status"]["conditions"].as_array())
        .and_then(|l| {
            l.iter()
                .find(|c| c["type"] == "ReplicaFailure" && c["status"] == "True")
        })
    {
        conds.push(f.clone());
    }
    keep_transitions(&d["status"]["conditions"], &mut conds);
    if !moved && !created {
        // Without progress the update time stays where it was.
        for c in conds.iter_mut() {
            if let Some(o) = d["status"]["conditions"].as_array().and_then(|l| {
                l.iter()
                    .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
            }) {
                c["lastUpdateTime"] = o["lastUpdateTime"].clone();
            }
        }
    }
    let mut status = json!({"observedGeneration": generation(d), "conditions": conds});
    for (field, n) in [
        ("replicas", total),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        (
            "unavailableReplicas",
            (spec_total.max(desired) - available).max(0),
        ),
    ] {
        if n > 0 {
            status[field] = json!(n);
        }
    }
    if status != d["status"] {
        out.push(Action::status(DEPLOYMENTS, d, status, MANAGER));
    }
}

/// Which of a ReplicaSet's Pods go first when it scales down: unscheduled, pending, not ready, then the
/// ones that restarted most, then the newest.
fn deletion_rank(p: &Value) -> (u8, u8, u8, Reverse<i64>, Reverse<String>) {
    let scheduled = u8::from(!text(&p["spec"]["nodeName"]).is_empty());
    let phase = match text(&p["status"]["phase"]) {
        "Pending" => 0,
        "Running" => 2,
        _ => 1,
    };
    let restarts: i64 = p["status"]["containerStatuses"]
        .as_array()
        .map(|l| l.iter().map(|c| c["restartCount"].as_i64().unwrap_or(0)).sum())
        .unwrap_or(0);
    (
        scheduled,
        phase,
        u8::from(pod_ready(p)),
        Reverse(restarts),
        Reverse(text(&p["metadata"]["creationTimestamp"]).to_string()),
    )
}

pub fn replicasets(view: &View, mem: &mut Memory, out: &mut Vec<Action>) {
    for rs in view.list(REPLICASETS) {
        if is_deleting(rs) {
            continue;
        }
        let ns = namespace(rs);
        let id = uid(rs);
        let mut active: Vec<&Value> = view
            .pods_of(ns, id)
            .into_iter()
            .filter(|p| pod_active(p))
            .collect();
        let want = replicas(rs);
        let have = active.len() as i64;
        if want > have && mem.may_create(id, view.now) {
            for _ in 0..(want - have).min(500) {
                let pod_name = generated_name(&format!("{}-", name(rs)));
                let pod = pod_from_template(rs, &rs["spec"]["template"], &pod_name, &[]);
                out.push(Action::Create {
                    res: PODS,
                    object: pod,
                    manager: MANAGER,
                    announce: Some(Announce {
                        owner: Involved::of(rs),
                        component: REPLICASET_CONTROLLER,
                        ok: ("SuccessfulCreate", format!("Created pod: {pod_name}")),
                        failed: ("FailedCreate", "Error creating: ".into()),
                    }),
                });
            }
        } else if want < have {
            active.sort_by_key(|p| deletion_rank(p));
            for p in active.iter().take((have - want) as usize) {
                out.push(Action::delete(
                    PODS,
                    p,
                    Some(Announce {
                        owner: Involved::of(rs),
                        component: REPLICASET_CONTROLLER,
                        ok: ("SuccessfulDelete", format!("Deleted pod: {}", name(p))),
                        failed: ("FailedDelete", "Error deleting: ".into()),
                    }),
                ));
            }
        }
        let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
        let ready = active.iter().filter(|p| pod_ready(p)).count() as i64;
        let available = active
            .iter()
            .filter(|p| pod_available(p, min_ready, &view.wall))
            .count() as i64;
        let mut status = json!({"replicas": have, "observedGeneration": generation(rs)});
        for (f, n) in [
            ("fullyLabeledReplicas", have),
            ("readyReplicas", ready),
            ("availableReplicas", available),
        ] {
            if n > 0 {
                status[f] = json!(n);
            }
        }
        if let Some(message) = mem.refusal(id) {
            let mut conds = vec![condition(
                "ReplicaFailure",
                true,
                "FailedCreate",
                message,
                &view.wall,
            )];
            keep_transitions(&rs["status"]["conditions"], &mut conds);
            status["conditions"] = json!(conds);
        }
        if status != rs["status"] {
            out.push(Action::status(REPLICASETS, rs, status, MANAGER));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{store, view};
    use super::super::{Memory, Res};
    use super::*;

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "d-1", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    fn actions(objects: Vec<(Res, Value)>) -> Vec<Action> {
        let s = store(&objects);
        let v = view(&s);
        let mut mem = Memory::default();
        let mut out = Vec::new();
        run(&v, &mut mem, &mut out);
        replicasets(&v, &mut mem, &mut out);
        out
    }

    fn rs_of(d: &Value, count: i64, available: i64, revision: i64) -> Value {
        let hash = super::super::template_hash(&d["spec"]["template"]);
        let mut rs = replica_set(d, &hash, count, revision, 1);
        rs["metadata"]["uid"] = json!(format!("rs-{hash}"));
        rs["metadata"]["creationTimestamp"] = json!(format!("2026-01-0{revision}T00:00:00Z"));
        rs["status"] = json!({"replicas": count, "readyReplicas": available, "availableReplicas": available});
        rs
    }

    #[test]
    fn a_new_deployment_gets_a_replica_set_and_the_replica_set_its_pods() {
        let d = deployment(2, "web:1");
        let out = actions(vec![(DEPLOYMENTS, d.clone())]);
        let rs = out
            .iter()
            .find_map(|a| match a {
                Action::Create { object, .. } if object["kind"] == "ReplicaSet" => Some(object.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(rs["spec"]["replicas"], 2);
        assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "d-1");
        let hash = text(&rs["metadata"]["labels"][HASH_LABEL]).to_string();
        assert_eq!(
            rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL],
            hash.as_str()
        );
        assert_eq!(name(&rs), format!("web-{hash}"));

        let mut rs = rs;
        rs["metadata"]["uid"] = json!("rs-1");
        let out = actions(vec![(DEPLOYMENTS, d), (REPLICASETS, rs)]);
        let pods: Vec<&Value> = out
            .iter()
            .filter_map(|a| match a {
                Action::Create { object, .. } if object["kind"] == "Pod" => Some(object),
                _ => None,
            })
            .collect();
        assert_eq!(pods.len(), 2);
        assert!(name(pods[0]).starts_with(&format!("web-{hash}-")));
        assert_eq!(pods[0]["metadata"]["labels"]["app"], "web");
        assert_eq!(pods[0]["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
    }

    fn scales(out: &[Action]) -> Vec<(String, i64)> {
        out.iter()
            .filter_map(|a| match a {
                Action::Update { object, .. } if object["kind"] == "ReplicaSet" => Some((
                    name(object).to_string(),
                    object["spec"]["replicas"].as_i64().unwrap(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_rolling_update_surges_then_retires_old_replicas_as_new_ones_become_available() {
        let old_d = deployment(4, "web:1");
        let new_d = deployment(4, "web:2");
        let old_rs = rs_of(&old_d, 4, 4, 1);
        let old_name = name(&old_rs).to_string();
        // maxSurge 25% of 4 = 1: the new ReplicaSet starts with one Pod.
        let out = actions(vec![(DEPLOYMENTS, new_d.clone()), (REPLICASETS, old_rs.clone())]);
        let created = out.iter().find_map(|a| match a {
            Action::Create { object, .. } if object["kind"] == "ReplicaSet" => {
                Some(object["spec"]["replicas"].clone())
            }
            _ => None,
        });
        assert_eq!(created, Some(json!(1)));
        // The new Pod is not available yet: maxUnavailable 1 lets one old replica go.
        let new_rs = rs_of(&new_d, 1, 0, 2);
        let out = actions(vec![
            (DEPLOYMENTS, new_d.clone()),
            (REPLICASETS, old_rs.clone()),
            (REPLICASETS, new_rs),
        ]);
        assert_eq!(scales(&out), vec![(old_name.clone(), 3)]);
        // Once it is available, the new ReplicaSet grows again.
        let mut old3 = old_rs.clone();
        old3["spec"]["replicas"] = json!(3);
        old3["status"] = json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3});
        let new_rs = rs_of(&new_d, 1, 1, 2);
        let new_name = name(&new_rs).to_string();
        let out = actions(vec![
            (DEPLOYMENTS, new_d),
            (REPLICASETS, old3),
            (REPLICASETS, new_rs),
        ]);
        assert_eq!(scales(&out), vec![(new_name, 2)]);
    }

    #[test]
    fn recreate_scales_old_replicas_to_zero_first() {
        let mut d = deployment(2, "web:2");
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        let old_rs = rs_of(&deployment(2, "web:1"), 2, 2, 1);
        let out = actions(vec![(DEPLOYMENTS, d), (REPLICASETS, old_rs.clone())]);
        assert_eq!(scales(&out), vec![(name(&old_rs).to_string(), 0)]);
        assert!(
            !out.iter()
                .any(|a| matches!(a, Action::Create { res, .. } if *res == REPLICASETS))
        );
    }

    #[test]
    fn status_counts_come_from_the_replica_sets() {
        let d = deployment(2, "web:1");
        let rs = rs_of(&d, 2, 1, 1);
        let out = actions(vec![(DEPLOYMENTS, d), (REPLICASETS, rs)]);
        let status = out
            .iter()
            .find_map(|a| match a {
                Action::Status { status, res, .. } if *res == DEPLOYMENTS => Some(status.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(status["replicas"], 2);
        assert_eq!(status["updatedReplicas"], 2);
        assert_eq!(status["availableReplicas"], 1);
        assert_eq!(status["unavailableReplicas"], 1);
        assert_eq!(status["conditions"][0]["type"], "Available");
        // 25% of 2 rounds down to 0 unavailable allowed: one available of two is not enough.
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(status["conditions"][1]["reason"], "ReplicaSetUpdated");
    }

    #[test]
    fn surplus_pods_go_unready_first() {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "rs-1", "generation": 1},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let owned = |n: &str, ready: bool| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n, "namespace": "shop",
                "ownerReferences": [{"uid": "rs-1", "controller": true}]},
                "spec": {"nodeName": "node-1"},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
        };
        let out = actions(vec![
            (REPLICASETS, rs),
            (PODS, owned("web-1-aaaaa", true)),
            (PODS, owned("web-1-bbbbb", false)),
        ]);
        let deleted: Vec<&str> = out
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, vec!["web-1-bbbbb"]);
    }
}
