//! DaemonSets: one Pod on every Node the Pod template may run on (its nodeSelector, required node affinity
//! and tolerations, with the tolerations the controller adds itself), pinned to that node through node
//! affinity on `metadata.name` and placed by the scheduler (which still checks resources and ports);
//! Pods on nodes that no longer qualify go; a template change replaces Pods node by node within
//! `maxUnavailable`.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::scheduler::{node_matches, node_taints, tolerates};
use super::{
    Action, Announce, DAEMONSETS, Involved, Memory, NODES, PODS, View, generated_name, generation,
    int_or_percent, is_deleting, label, name, namespace, pod_available, pod_finished, pod_from_template,
    pod_ready, text, uid,
};

const COMPONENT: &str = "daemonset-controller";
const MANAGER: &str = "kube-controller-manager";
const REVISION_LABEL: &str = "controller-revision-hash";

/// The tolerations the DaemonSet controller adds to every Pod it makes.
fn default_tolerations(host_network: bool) -> Vec<Value> {
    let mut t = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        t.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    t
}

fn tolerations(spec: &Value) -> Vec<Value> {
    let mut t = spec["tolerations"].as_array().cloned().unwrap_or_default();
    for d in default_tolerations(spec["hostNetwork"] == true) {
        if !t.contains(&d) {
            t.push(d);
        }
    }
    t
}

/// Whether the DaemonSet's Pod belongs on `node` (taints with NoSchedule/NoExecute tolerated, selector and
/// affinity matched).
pub fn should_run(spec: &Value, node: &Value) -> bool {
    let tolerations = tolerations(spec);
    !is_deleting(node)
        && node_matches(spec, node)
        && node_taints(node)
            .iter()
            .filter(|t| matches!(text(&t["effect"]), "NoSchedule" | "NoExecute"))
            .all(|t| tolerates(&tolerations, t))
}

fn pod(ds: &Value, node: &str, hash: &str) -> Value {
    let mut p = pod_from_template(
        ds,
        &ds["spec"]["template"],
        &generated_name(&format!("{}-", name(ds))),
        &[
            (REVISION_LABEL, hash.to_string()),
            ("pod-template-generation", generation(ds).to_string()),
        ],
    );
    let spec = &mut p["spec"];
    spec["tolerations"] = json!(tolerations(spec));
    spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]});
    p
}

/// The node a DaemonSet Pod is for: where it runs, or where its affinity pins it.
fn node_of(p: &Value) -> String {
    let bound = text(&p["spec"]["nodeName"]);
    if !bound.is_empty() {
        return bound.to_string();
    }
    text(
        &p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchFields"][0]["values"][0],
    )
    .to_string()
}

pub fn run(view: &View, mem: &mut Memory, out: &mut Vec<Action>) {
    let nodes: Vec<&Value> = view.list(NODES).collect();
    for ds in view.list(DAEMONSETS) {
        if !is_deleting(ds) {
            daemonset(view, mem, ds, &nodes, out);
        }
    }
}

fn daemonset(view: &View, mem: &mut Memory, ds: &Value, nodes: &[&Value], out: &mut Vec<Action>) {
    let id = uid(ds);
    let hash = mem.template_hash(ds);
    let spec = &ds["spec"]["template"]["spec"];
    let mut by_node: HashMap<String, Vec<&Value>> = HashMap::new();
    for p in view.pods_of(namespace(ds), id) {
        by_node.entry(node_of(p)).or_default().push(p);
    }
    let may_create = mem.may_create(id, view.now);
    let announce = |ok: String| {
        Some(Announce {
            owner: Involved::of(ds),
            component: COMPONENT,
            ok: ("SuccessfulCreate", ok),
            failed: ("FailedCreate", "Error creating: ".into()),
        })
    };
    let delete_note = |p: &Value| {
        Some(Announce {
            owner: Involved::of(ds),
            component: COMPONENT,
            ok: ("SuccessfulDelete", format!("Deleted pod: {}", name(p))),
            failed: ("FailedDelete", "Error deleting: ".into()),
        })
    };
    let min_ready = ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) =
        (0, 0, 0, 0, 0, 0);
    let mut outdated = Vec::new();
    for node in nodes {
        let node_name = name(node);
        let pods: Vec<&Value> = by_node
            .get(node_name)
            .map(|l| l.iter().copied().filter(|p| !is_deleting(p)).collect())
            .unwrap_or_default();
        if should_run(spec, node) {
            desired += 1;
            match pods.as_slice() {
                [] if may_create => {
                    let p = pod(ds, node_name, &hash);
                    let pod_name = name(&p).to_string();
                    out.push(Action::Create {
                        res: PODS,
                        object: p,
                        manager: MANAGER,
                        announce: announce(format!("Created pod: {pod_name}")),
                    });
                }
                [] => {}
                [p, rest @ ..] => {
                    current += 1;
                    for extra in rest {
                        out.push(Action::delete(PODS, extra, delete_note(extra)));
                    }
                    if p["status"]["phase"] == "Failed" {
                        out.push(Action::delete(PODS, p, delete_note(p)));
                        continue;
                    }
                    if pod_ready(p) {
                        ready += 1;
                    }
                    if pod_available(p, min_ready, &view.wall) {
                        available += 1;
                    }
                    if label(p, REVISION_LABEL) == Some(hash.as_str()) {
                        updated += 1;
                    } else {
                        outdated.push(*p);
                    }
                }
            }
        } else if !pods.is_empty() {
            misscheduled += 1;
            for p in pods {
                out.push(Action::delete(PODS, p, delete_note(p)));
            }
        }
    }
    // Pods pinned to nodes that are gone.
    for (node, pods) in &by_node {
        if !nodes.iter().any(|n| name(n) == node) {
            for p in pods.iter().filter(|p| !is_deleting(p) && !pod_finished(p)) {
                out.push(Action::delete(PODS, p, delete_note(p)));
            }
        }
    }
    if ds["spec"]["updateStrategy"]["type"] != "OnDelete" {
        let max_unavailable = int_or_percent(
            &ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
            desired,
            false,
            1,
        )
        .max(1);
        let unavailable = desired - available;
        let mut budget = (max_unavailable - unavailable).max(0);
        outdated.sort_by_key(|p| (pod_available(p, min_ready, &view.wall), name(p).to_string()));
        for p in outdated {
            // Outdated Pods that are not available anyway can always go.
            if !pod_available(p, min_ready, &view.wall) {
                out.push(Action::delete(PODS, p, delete_note(p)));
            } else if budget > 0 {
                budget -= 1;
                out.push(Action::delete(PODS, p, delete_note(p)));
            }
        }
    }
    let mut status = json!({"observedGeneration": generation(ds), "desiredNumberScheduled": desired,
        "currentNumberScheduled": current, "numberMisscheduled": misscheduled, "numberReady": ready});
    for (f, n) in [
        ("updatedNumberScheduled", updated),
        ("numberAvailable", available),
        ("numberUnavailable", desired - available),
    ] {
        if n > 0 {
            status[f] = json!(n);
        }
    }
    if status != ds["status"] {
        out.push(Action::status(DAEMONSETS, ds, status, MANAGER));
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{node, store, view};
    use super::super::{Memory, Res};
    use super::*;

    fn ds(template_spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "os", "uid": "ds-1", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": template_spec}}})
    }

    fn run_once(objects: Vec<(Res, Value)>) -> (Vec<String>, Value) {
        let s = store(&objects);
        let v = view(&s);
        let mut out = Vec::new();
        run(&v, &mut Memory::default(), &mut out);
        let nodes = out
            .iter()
            .filter_map(|a| match a {
                Action::Create { object, .. } => Some(node_of(object)),
                _ => None,
            })
            .collect();
        let status = out
            .iter()
            .find_map(|a| match a {
                Action::Status { status, .. } => Some(status.clone()),
                _ => None,
            })
            .unwrap_or_default();
        (nodes, status)
    }

    fn cluster() -> Vec<(Res, Value)> {
        let mut tainted = node("node-3", json!({"openstack.org/compute": "enabled"}));
        tainted["spec"]["taints"] = json!([{"key": "dedicated", "value": "storage", "effect": "NoSchedule"}]);
        vec![
            (
                NODES,
                node("node-1", json!({"openstack.org/control-plane": "enabled"})),
            ),
            (NODES, node("node-2", json!({"openstack.org/compute": "enabled"}))),
            (NODES, tainted),
        ]
    }

    #[test]
    fn pods_go_to_matching_nodes_only() {
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            (
                "every untainted node",
                json!({"containers": [{"name": "c", "image": "i"}]}),
                vec!["node-1", "node-2"],
            ),
            (
                "nodeSelector",
                json!({"nodeSelector": {"openstack.org/compute": "enabled"}, "containers": [{"name": "c", "image": "i"}]}),
                vec!["node-2"],
            ),
            (
                "nodeSelector and a toleration",
                json!({"nodeSelector": {"openstack.org/compute": "enabled"},
                    "tolerations": [{"key": "dedicated", "operator": "Exists"}], "containers": [{"name": "c", "image": "i"}]}),
                vec!["node-2", "node-3"],
            ),
            (
                "required node affinity",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "openstack.org/control-plane", "operator": "Exists"}]}]}}},
                    "containers": [{"name": "c", "image": "i"}]}),
                vec!["node-1"],
            ),
            (
                "matches no node",
                json!({"nodeSelector": {"openstack.org/storage": "enabled"}, "containers": [{"name": "c", "image": "i"}]}),
                vec![],
            ),
        ];
        for (what, spec, want) in cases {
            let mut objects = cluster();
            objects.push((DAEMONSETS, ds(spec)));
            let (nodes, status) = run_once(objects);
            assert_eq!(nodes, want, "{what}");
            assert_eq!(status["desiredNumberScheduled"], want.len(), "{what}");
        }
    }

    #[test]
    fn pods_are_pinned_to_their_node_and_tolerate_what_daemons_tolerate() {
        let d = ds(json!({"hostNetwork": true, "containers": [{"name": "c", "image": "i"}]}));
        let p = pod(&d, "node-2", "h");
        assert_eq!(node_of(&p), "node-2");
        assert!(name(&p).starts_with("agent-"));
        let keys: Vec<&str> = p["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| text(&t["key"]))
            .collect();
        assert!(keys.contains(&"node.kubernetes.io/unschedulable"));
        assert!(keys.contains(&"node.kubernetes.io/network-unavailable"));
    }
}
