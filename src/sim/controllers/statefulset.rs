//! StatefulSets: one Pod per ordinal (`<name>-<i>`), each with its own claims from `volumeClaimTemplates`
//! (`<template>-<name>-<i>`), created in order and each only once the ones before it are Running and
//! Ready (`OrderedReady`, the default) or all at once (`Parallel`); removed from the highest ordinal down;
//! updated from the highest ordinal down, one Pod at a time, above the rolling update's partition.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{
    Action, Announce, Involved, Memory, PODS, PVCS, STATEFULSETS, View, controller_ref, generation,
    is_deleting, label, name, namespace, pod_available, pod_from_template, pod_ready, replicas, text, uid,
};

const COMPONENT: &str = "statefulset-controller";
const MANAGER: &str = "kube-controller-manager";
const REVISION_LABEL: &str = "controller-revision-hash";

/// The revision name a StatefulSet's template has (`<name>-<hash>`, its ControllerRevision's name).
#[cfg(test)]
fn revision(sts: &Value) -> String {
    use super::template_hash;
    format!("{}-{}", name(sts), template_hash(&sts["spec"]["template"]))
}

fn ordinal_of(sts: &Value, pod: &Value) -> Option<i64> {
    name(pod)
        .strip_prefix(&format!("{}-", name(sts)))
        .and_then(|i| i.parse().ok())
}

fn running_and_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod_ready(pod) && !is_deleting(pod)
}

fn announce(sts: &Value, ok: String, failed: String) -> Option<Announce> {
    Some(Announce {
        owner: Involved::of(sts),
        component: COMPONENT,
        ok: ("SuccessfulCreate", ok),
        failed: ("FailedCreate", failed),
    })
}

fn claim(sts: &Value, template: &Value, pod_name: &str) -> Value {
    let claim_name = format!("{}-{pod_name}", text(&template["metadata"]["name"]));
    let mut metadata = template["metadata"].as_object().cloned().unwrap_or_default();
    metadata.insert("name".into(), json!(claim_name));
    metadata.insert("namespace".into(), json!(namespace(sts)));
    let labels = metadata.entry("labels").or_insert_with(|| json!({}));
    if let (Some(l), Some(sel)) = (
        labels.as_object_mut(),
        sts["spec"]["selector"]["matchLabels"].as_object(),
    ) {
        for (k, v) in sel {
            l.insert(k.clone(), v.clone());
        }
    }
    if sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete" {
        metadata.insert("ownerReferences".into(), json!([controller_ref(sts)]));
    }
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata,
        "spec": template["spec"].clone()})
}

fn pod(sts: &Value, ordinal: i64, revision: &str) -> Value {
    let pod_name = format!("{}-{ordinal}", name(sts));
    let mut p = pod_from_template(
        sts,
        &sts["spec"]["template"],
        &pod_name,
        &[
            (REVISION_LABEL, revision.to_string()),
            ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
            ("apps.kubernetes.io/pod-index", ordinal.to_string()),
        ],
    );
    p["spec"]["hostname"] = json!(pod_name);
    if let Some(service) = sts["spec"]["serviceName"].as_str().filter(|s| !s.is_empty()) {
        p["spec"]["subdomain"] = json!(service);
    }
    let templates = sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !templates.is_empty() {
        let mut volumes: Vec<Value> = p["spec"]["volumes"].as_array().cloned().unwrap_or_default();
        for t in &templates {
            let vol = text(&t["metadata"]["name"]);
            volumes.retain(|v| v["name"] != vol);
            volumes.push(
                json!({"name": vol, "persistentVolumeClaim": {"claimName": format!("{vol}-{pod_name}")}}),
            );
        }
        p["spec"]["volumes"] = json!(volumes);
    }
    p
}

pub fn run(view: &View, mem: &mut Memory, out: &mut Vec<Action>) {
    for sts in view.list(STATEFULSETS) {
        if !is_deleting(sts) {
            statefulset(view, mem, sts, out);
        }
    }
}

fn statefulset(view: &View, mem: &mut Memory, sts: &Value, out: &mut Vec<Action>) {
    let ns = namespace(sts);
    let id = uid(sts);
    let update_revision = format!("{}-{}", name(sts), mem.template_hash(sts));
    let current_revision = sts["status"]["currentRevision"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| update_revision.clone());
    let want = replicas(sts);
    let start = sts["spec"]["ordinals"]["start"].as_i64().unwrap_or(0).max(0);
    let parallel = sts["spec"]["podManagementPolicy"] == "Parallel";
    let pods: HashMap<i64, &Value> = view
        .pods_of(ns, id)
        .into_iter()
        .filter_map(|p| ordinal_of(sts, p).map(|i| (i, p)))
        .collect();
    let may_create = mem.may_create(id, view.now);
    let templates = sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let partition = sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
        .as_i64()
        .unwrap_or(0);
    let mut blocked = false;
    for ordinal in start..start + want {
        let pod_name = format!("{}-{ordinal}", name(sts));
        match pods.get(&ordinal) {
            None if may_create && !blocked => {
                for t in &templates {
                    let c = claim(sts, t, &pod_name);
                    if view.get(PVCS, ns, name(&c)).is_none() {
                        let claim_name = name(&c).to_string();
                        out.push(Action::Create {
                            res: PVCS,
                            object: c,
                            manager: MANAGER,
                            announce: announce(
                                sts,
                                format!("create Claim {claim_name} Pod {pod_name} in StatefulSet {} success", name(sts)),
                                format!("create Claim {claim_name} for Pod {pod_name} in StatefulSet {} failed error: ", name(sts)),
                            ),
                        });
                    }
                }
                // Ordinals below the partition keep the current revision.
                let rev = if ordinal - start < partition {
                    &current_revision
                } else {
                    &update_revision
                };
                out.push(Action::Create {
                    res: PODS,
                    object: pod(sts, ordinal, rev),
                    manager: MANAGER,
                    announce: announce(
                        sts,
                        format!("create Pod {pod_name} in StatefulSet {} successful", name(sts)),
                        format!(
                            "create Pod {pod_name} in StatefulSet {} failed error: ",
                            name(sts)
                        ),
                    ),
                });
                if !parallel {
                    blocked = true;
                }
            }
            None => blocked = true,
            Some(p) if p["status"]["phase"] == "Failed" && !is_deleting(p) => {
                out.push(Action::delete(PODS, p, None));
                blocked = !parallel;
            }
            Some(p) if !running_and_ready(p) && !parallel => blocked = true,
            Some(_) => {}
        }
    }
    let all_ready = (start..start + want).all(|i| pods.get(&i).is_some_and(|p| running_and_ready(p)));
    // Scale down: highest ordinal first, one at a time unless Parallel.
    let mut surplus: Vec<(&i64, &&Value)> = pods
        .iter()
        .filter(|(i, _)| **i < start || **i >= start + want)
        .collect();
    surplus.sort_by_key(|(i, _)| std::cmp::Reverse(**i));
    let terminating = pods.values().any(|p| is_deleting(p));
    for (_, p) in surplus.iter().take(if parallel { usize::MAX } else { 1 }) {
        if !is_deleting(p) && (parallel || (all_ready && !terminating)) {
            out.push(Action::delete(
                PODS,
                p,
                Some(Announce {
                    owner: Involved::of(sts),
                    component: COMPONENT,
                    ok: (
                        "SuccessfulDelete",
                        format!("delete Pod {} in StatefulSet {} successful", name(p), name(sts)),
                    ),
                    failed: (
                        "FailedDelete",
                        format!(
                            "delete Pod {} in StatefulSet {} failed error: ",
                            name(p),
                            name(sts)
                        ),
                    ),
                }),
            ));
        }
    }
    // Rolling update: the highest outdated ordinal at or above the partition goes once every Pod is ready.
    let on_delete = sts["spec"]["updateStrategy"]["type"] == "OnDelete";
    if !on_delete && all_ready && !terminating && surplus.is_empty() {
        let outdated = (start + partition..start + want)
            .rev()
            .filter_map(|i| pods.get(&i))
            .find(|p| label(p, REVISION_LABEL) != Some(update_revision.as_str()));
        if let Some(p) = outdated {
            out.push(Action::delete(PODS, p, None));
        }
    }

    let live: Vec<&&Value> = pods.values().filter(|p| !is_deleting(p)).collect();
    let count = |f: &dyn Fn(&Value) -> bool| live.iter().filter(|p| f(p)).count() as i64;
    let ready = count(&|p| pod_ready(p));
    let min_ready = sts["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let available = count(&|p| pod_available(p, min_ready, &view.wall));
    let updated = count(&|p| label(p, REVISION_LABEL) == Some(update_revision.as_str()));
    let mut current = count(&|p| label(p, REVISION_LABEL) == Some(current_revision.as_str()));
    let mut current_rev = current_revision.clone();
    if updated == want && live.len() as i64 == want && ready == want {
        current_rev = update_revision.clone();
        current = updated;
    }
    let mut status = json!({"observedGeneration": generation(sts), "replicas": live.len(),
        "currentRevision": current_rev, "updateRevision": update_revision, "collisionCount": 0});
    for (f, n) in [
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("currentReplicas", current),
        ("updatedReplicas", updated),
    ] {
        if n > 0 {
            status[f] = json!(n);
        }
    }
    if status != sts["status"] {
        out.push(Action::status(STATEFULSETS, sts, status, MANAGER));
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{store, view};
    use super::super::{Memory, Res};
    use super::*;

    fn sts(replicas: i64, parallel: bool) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "os", "uid": "sts-1", "generation": 1},
            "spec": {"replicas": replicas, "serviceName": "db", "podManagementPolicy": if parallel { "Parallel" } else { "OrderedReady" },
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "db:1"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
    }

    fn created(objects: Vec<(Res, Value)>) -> Vec<String> {
        let s = store(&objects);
        let v = view(&s);
        let mut out = Vec::new();
        run(&v, &mut Memory::default(), &mut out);
        out.iter()
            .filter_map(|a| match a {
                Action::Create { object, .. } => {
                    Some(format!("{}/{}", object["kind"].as_str().unwrap(), name(object)))
                }
                _ => None,
            })
            .collect()
    }

    fn member(s: &Value, i: i64, ready: bool) -> Value {
        let mut p = pod(s, i, &revision(s));
        p["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]});
        p
    }

    #[test]
    fn ordered_ready_creates_one_ordinal_at_a_time_with_its_claim() {
        let s = sts(3, false);
        assert_eq!(
            created(vec![(STATEFULSETS, s.clone())]),
            vec!["PersistentVolumeClaim/data-db-0", "Pod/db-0"]
        );
        // db-0 exists but is not ready: nothing more.
        assert!(created(vec![(STATEFULSETS, s.clone()), (PODS, member(&s, 0, false))]).is_empty());
        assert_eq!(
            created(vec![(STATEFULSETS, s.clone()), (PODS, member(&s, 0, true))]),
            vec!["PersistentVolumeClaim/data-db-1", "Pod/db-1"]
        );
    }

    #[test]
    fn parallel_creates_every_ordinal_at_once() {
        let s = sts(2, true);
        assert_eq!(
            created(vec![(STATEFULSETS, s)]),
            vec![
                "PersistentVolumeClaim/data-db-0",
                "Pod/db-0",
                "PersistentVolumeClaim/data-db-1",
                "Pod/db-1"
            ]
        );
    }

    #[test]
    fn pods_carry_identity_and_claims() {
        let s = sts(1, false);
        let p = pod(&s, 0, &revision(&s));
        assert_eq!(p["spec"]["hostname"], "db-0");
        assert_eq!(p["spec"]["subdomain"], "db");
        assert_eq!(
            p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
            "db-0"
        );
        assert_eq!(
            p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "data-db-0"
        );
        let c = claim(&s, &s["spec"]["volumeClaimTemplates"][0], "db-0");
        assert_eq!(c["metadata"]["labels"]["app"], "db");
        assert!(
            c["metadata"]["ownerReferences"].is_null(),
            "claims are retained by default"
        );
    }

    #[test]
    fn an_update_replaces_the_highest_outdated_ordinal_first() {
        let old = sts(2, false);
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("db:2");
        let s = store(&[
            (STATEFULSETS, new),
            (PODS, member(&old, 0, true)),
            (PODS, member(&old, 1, true)),
        ]);
        let v = view(&s);
        let mut out = Vec::new();
        run(&v, &mut Memory::default(), &mut out);
        let deleted: Vec<&str> = out
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, vec!["db-1"]);
    }
}
