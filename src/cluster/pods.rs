//! Why a workload is not ready, as its Pods tell it: the reason a kubelet or the scheduler wrote on the
//! Pods the workload owns (through the owner chain: Deployment -> its current ReplicaSet -> Pods;
//! StatefulSet, DaemonSet, Job -> Pods), and whether that reason can heal on its own. Pure: the workload
//! and the Pods and ReplicaSets of its namespace in, the most telling reason out.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Whether the reason may go away without anyone changing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Healing {
    /// It never heals: the spec itself is wrong (an image reference that does not parse).
    Never,
    /// It heals only if someone acts (creates a Secret, labels a node); after a short grace it counts as
    /// failed.
    AfterGrace,
    /// It may heal on its own (a registry back, a dependency up): wait, and name it if the wait times out.
    MayHeal,
}

/// The most telling reason found in a workload's Pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodReason {
    /// What the operator reads, e.g. `ImagePullBackOff: quay.io/openstack.kolla/keystone:broken`.
    pub text: String,
    pub healing: Healing,
    /// The kubelet's or scheduler's reason word (`CreateContainerConfigError`): a grace runs while the
    /// same kind of reason stays, whatever its details (a restart count) do.
    pub kind: &'static str,
}

/// Kinds whose health depends on Pods this module can read.
pub fn runs_pods(api_version: &str, kind: &str) -> bool {
    matches!(
        (api_version, kind),
        ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet") | ("batch/v1", "Job")
    )
}

/// Why `workload` is not ready, from the `pods` and `replica_sets` of its namespace (any others are
/// ignored). `None`: nothing in its Pods explains it (they are starting, or there are none yet).
pub fn explain(workload: &Value, pods: &[&Value], replica_sets: &[&Value]) -> Option<PodReason> {
    let kind = text(workload, "/kind");
    if kind == "DaemonSet" {
        if let Some(reason) = daemonset_without_nodes(workload) {
            return Some(reason);
        }
    }
    let owned = workload_pods(workload, pods, replica_sets);
    let job = kind == "Job";
    owned
        .iter()
        .filter_map(|pod| pod_reason(pod, job).map(|(rank, r)| (rank, name(pod), r)))
        .min_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
        .map(|(_, _, reason)| reason)
}

/// The Pods of `workload`, through the owner chain by uid. For a Deployment only the Pods of its newest
/// ReplicaSet(s): an old ReplicaSet's Pods say nothing about the spec being rolled out.
pub fn workload_pods<'a>(workload: &Value, pods: &[&'a Value], replica_sets: &[&Value]) -> Vec<&'a Value> {
    let uid = text(workload, "/metadata/uid");
    if uid.is_empty() {
        return Vec::new();
    }
    let owners: BTreeSet<&str> = if text(workload, "/kind") == "Deployment" {
        let mine: Vec<&Value> = replica_sets
            .iter()
            .copied()
            .filter(|rs| controller_uid(rs) == Some(uid))
            .collect();
        let newest = mine.iter().map(|rs| revision(rs)).max().unwrap_or(0);
        mine.into_iter()
            .filter(|rs| revision(rs) == newest)
            .map(|rs| text(rs, "/metadata/uid"))
            .filter(|u| !u.is_empty())
            .collect()
    } else {
        BTreeSet::from([uid])
    };
    let mut out: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|p| controller_uid(p).is_some_and(|u| owners.contains(u)))
        .filter(|p| {
            p.pointer("/metadata/deletionTimestamp")
                .is_none_or(Value::is_null)
        })
        .collect();
    out.sort_by(|a, b| name(a).cmp(name(b)));
    out
}

/// Keeps of a Pod or ReplicaSet only what [`explain`] reads, so a watch of every Pod of a namespace stays
/// small: identity and owners, the scheduling constraints, the containers' names and images, and their
/// states.
pub fn slim(object: &Value) -> Value {
    let mut out = Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = object.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut meta = Map::new();
    for key in ["name", "namespace", "uid", "deletionTimestamp"] {
        if let Some(v) = object.pointer(&format!("/metadata/{key}")) {
            meta.insert(key.into(), v.clone());
        }
    }
    if let Some(owners) = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    {
        let owners: Vec<Value> = owners
            .iter()
            .map(|o| pick(o, &["kind", "name", "uid", "controller"]))
            .collect();
        meta.insert("ownerReferences".into(), Value::Array(owners));
    }
    if let Some(rev) = object.pointer("/metadata/annotations/deployment.kubernetes.io~1revision") {
        meta.insert(
            "annotations".into(),
            serde_json::json!({ REVISION_ANNOTATION: rev }),
        );
    }
    out.insert("metadata".into(), Value::Object(meta));
    if object.get("kind").and_then(Value::as_str) == Some("ReplicaSet") {
        return Value::Object(out);
    }
    let mut spec = Map::new();
    if let Some(v) = object.pointer("/spec/nodeSelector") {
        spec.insert("nodeSelector".into(), v.clone());
    }
    for key in ["containers", "initContainers"] {
        if let Some(list) = object.pointer(&format!("/spec/{key}")).and_then(Value::as_array) {
            let list = list.iter().map(|c| pick(c, &["name", "image"])).collect();
            spec.insert(key.into(), Value::Array(list));
        }
    }
    out.insert("spec".into(), Value::Object(spec));
    let mut status = Map::new();
    for key in ["phase", "reason", "message"] {
        if let Some(v) = object.pointer(&format!("/status/{key}")) {
            status.insert(key.into(), v.clone());
        }
    }
    if let Some(scheduled) = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"))
        })
    {
        let scheduled = pick(scheduled, &["type", "status", "reason", "message"]);
        status.insert("conditions".into(), Value::Array(vec![scheduled]));
    }
    for key in ["containerStatuses", "initContainerStatuses"] {
        if let Some(list) = object
            .pointer(&format!("/status/{key}"))
            .and_then(Value::as_array)
        {
            let list = list
                .iter()
                .map(|c| pick(c, &["name", "image", "restartCount", "state", "lastState"]))
                .collect();
            status.insert(key.into(), Value::Array(list));
        }
    }
    out.insert("status".into(), Value::Object(status));
    Value::Object(out)
}

const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// A DaemonSet whose controller has seen its spec and wants no Pod: its node selection matches no node.
fn daemonset_without_nodes(ds: &Value) -> Option<PodReason> {
    let generation = ds.pointer("/metadata/generation").and_then(Value::as_i64)?;
    let observed = ds.pointer("/status/observedGeneration").and_then(Value::as_i64)?;
    let desired = ds
        .pointer("/status/desiredNumberScheduled")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if observed < generation || desired != 0 {
        return None;
    }
    let selector = node_selector(ds.pointer("/spec/template/spec/nodeSelector"));
    let text = match selector {
        Some(selector) => format!("no node matches nodeSelector {selector}"),
        None => "no node matches its node affinity and tolerations".to_string(),
    };
    Some(PodReason {
        text,
        healing: Healing::AfterGrace,
        kind: "NoMatchingNode",
    })
}

/// The most telling reason one Pod gives, with its rank (lower is more telling).
fn pod_reason(pod: &Value, job: bool) -> Option<(u8, PodReason)> {
    let mut best: Option<(u8, PodReason)> = None;
    let mut offer = |rank: u8, reason: PodReason| {
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, reason));
        }
    };
    if let Some(reason) = unschedulable(pod) {
        let rank = if reason.healing == Healing::AfterGrace {
            2
        } else {
            5
        };
        offer(rank, reason);
    }
    for (list, specs, init) in [
        ("/status/initContainerStatuses", "/spec/initContainers", true),
        ("/status/containerStatuses", "/spec/containers", false),
    ] {
        for status in pod.pointer(list).and_then(Value::as_array).into_iter().flatten() {
            if let Some(found) = waiting(pod, status, specs, init) {
                offer(found.0, found.1);
            }
        }
    }
    if job && text(pod, "/status/phase") == "Failed" {
        offer(6, failed_pod(pod));
    }
    best
}

/// A container's waiting reason, when it tells more than "starting".
fn waiting(pod: &Value, status: &Value, specs: &str, init: bool) -> Option<(u8, PodReason)> {
    let reason = status.pointer("/state/waiting/reason").and_then(Value::as_str)?;
    let message = status
        .pointer("/state/waiting/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    let container = status.get("name").and_then(Value::as_str).unwrap_or("");
    let image = pod
        .pointer(specs)
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
        })
        .and_then(|c| c.get("image"))
        .and_then(Value::as_str)
        .or_else(|| status.get("image").and_then(Value::as_str))
        .unwrap_or("");
    let which = if init {
        format!("init container {container}")
    } else {
        format!("container {container}")
    };
    let (rank, healing, kind, text) = match reason {
        "InvalidImageName" => (
            0,
            Healing::Never,
            "InvalidImageName",
            format!("InvalidImageName: {image} is not a valid image reference"),
        ),
        "CreateContainerConfigError" => (
            1,
            Healing::AfterGrace,
            "CreateContainerConfigError",
            format!("CreateContainerConfigError: {}", or(message, &which)),
        ),
        "ErrImagePull" | "ImagePullBackOff" => {
            let kind = if reason == "ErrImagePull" {
                "ErrImagePull"
            } else {
                "ImagePullBackOff"
            };
            (3, Healing::MayHeal, kind, format!("{reason}: {image}"))
        }
        "CrashLoopBackOff" => {
            let restarts = status.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            let plural = if restarts == 1 { "" } else { "s" };
            let last = status
                .pointer("/lastState/terminated")
                .map(|t| format!(", last {}", exit_text(t)))
                .unwrap_or_default();
            (
                4,
                Healing::MayHeal,
                "CrashLoopBackOff",
                format!("CrashLoopBackOff ({restarts} restart{plural}): {which}{last}"),
            )
        }
        // Starting: not a reason yet.
        "ContainerCreating" | "PodInitializing" => return None,
        _ => (
            7,
            Healing::MayHeal,
            "Waiting",
            if message.is_empty() {
                format!("{reason}: {which}")
            } else {
                format!("{reason}: {message}")
            },
        ),
    };
    Some((rank, PodReason { text, healing, kind }))
}

/// `PodScheduled=False` with reason Unschedulable, composed for an operator: when no node matches the
/// Pod's node selection the selector is named, and that cannot heal until a node is labelled.
fn unschedulable(pod: &Value) -> Option<PodReason> {
    let condition = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"))?;
    if condition.get("status").and_then(Value::as_str) != Some("False")
        || condition.get("reason").and_then(Value::as_str) != Some("Unschedulable")
    {
        return None;
    }
    let message = condition.get("message").and_then(Value::as_str).unwrap_or("");
    // The first sentence: what the nodes lack; the preemption sentence after it adds nothing here.
    let first = message
        .split(". preemption:")
        .next()
        .unwrap_or(message)
        .trim_end_matches('.');
    let no_nodes = message.starts_with("no nodes available");
    let fit = parse_fit_error(first);
    let no_match = match &fit {
        Some((total, counts)) => counts
            .iter()
            .any(|(n, r)| *n == *total && r.as_str() == "node(s) didn't match Pod's node affinity/selector"),
        None => false,
    };
    let selector = node_selector(pod.pointer("/spec/nodeSelector"));
    let (text, healing) = match (no_nodes, no_match, fit) {
        (true, _, _) => (format!("Unschedulable: {first}"), Healing::AfterGrace),
        (false, true, Some((total, _))) => {
            let what = match selector {
                Some(s) => format!("nodeSelector {s}"),
                None => "the Pod's node affinity".to_string(),
            };
            (
                format!("Unschedulable: 0/{total} nodes match {what} ({first})"),
                Healing::AfterGrace,
            )
        }
        _ => (
            format!("Unschedulable: {}", or(first, "no node fits")),
            Healing::MayHeal,
        ),
    };
    Some(PodReason {
        text,
        healing,
        kind: "Unschedulable",
    })
}

/// `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint(s)` -> (3, [(1,
/// "Insufficient cpu"), (2, "node(s) had untolerated taint(s)")]).
fn parse_fit_error(first: &str) -> Option<(u64, Vec<(u64, String)>)> {
    let rest = first.strip_prefix("0/")?;
    let (total, rest) = rest.split_once(" nodes are available: ")?;
    let total = total.parse().ok()?;
    let counts = rest
        .split(", ")
        .filter_map(|item| {
            let (n, reason) = item.split_once(' ')?;
            Some((n.parse().ok()?, reason.to_string()))
        })
        .collect();
    Some((total, counts))
}

/// A failed Pod of a Job: the first container that ended with an error, or the Pod's own reason.
fn failed_pod(pod: &Value) -> PodReason {
    let pod_name = name(pod);
    let containers = ["/status/initContainerStatuses", "/status/containerStatuses"]
        .into_iter()
        .flat_map(|p| pod.pointer(p).and_then(Value::as_array).into_iter().flatten());
    let mut text = None;
    for status in containers {
        if let Some(t) = status.pointer("/state/terminated") {
            if t.get("exitCode").and_then(Value::as_i64).unwrap_or(0) != 0 {
                let container = status.get("name").and_then(Value::as_str).unwrap_or("");
                text = Some(format!(
                    "pod {pod_name} failed: container {container} {}",
                    exit_text(t)
                ));
                break;
            }
        }
    }
    let text = text.unwrap_or_else(|| {
        let reason = text_or(pod, "/status/reason", "Failed");
        match pod.pointer("/status/message").and_then(Value::as_str) {
            Some(m) if !m.is_empty() => format!("pod {pod_name} failed: {reason}: {m}"),
            _ => format!("pod {pod_name} failed: {reason}"),
        }
    });
    PodReason {
        text,
        healing: Healing::MayHeal,
        kind: "PodFailed",
    }
}

/// `exited with code 1 (Error)`, from a container's `terminated` state.
fn exit_text(terminated: &Value) -> String {
    let code = terminated.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
    match terminated.get("reason").and_then(Value::as_str) {
        Some(reason) if !reason.is_empty() => format!("exited with code {code} ({reason})"),
        _ => format!("exited with code {code}"),
    }
}

/// `k=v,k2=v2` of a nodeSelector, sorted; `None` when empty.
fn node_selector(selector: Option<&Value>) -> Option<String> {
    let map = selector?.as_object()?;
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    (!pairs.is_empty()).then(|| pairs.join(","))
}

fn controller_uid(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|o| o.get("uid"))
        .and_then(Value::as_str)
}

fn revision(rs: &Value) -> i64 {
    rs.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn pick(object: &Value, keys: &[&str]) -> Value {
    let mut out = Map::new();
    for key in keys {
        if let Some(v) = object.get(*key) {
            out.insert((*key).to_string(), v.clone());
        }
    }
    Value::Object(out)
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn text_or<'a>(object: &'a Value, pointer: &str, default: &'a str) -> &'a str {
    Some(text(object, pointer))
        .filter(|t| !t.is_empty())
        .unwrap_or(default)
}

fn or<'a>(text: &'a str, default: &'a str) -> &'a str {
    if text.is_empty() { default } else { text }
}

fn name(object: &Value) -> &str {
    text(object, "/metadata/name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner(uid: &str) -> Value {
        json!([{"apiVersion": "apps/v1", "kind": "X", "name": "o", "uid": uid, "controller": true}])
    }

    fn workload(kind: &str, uid: &str) -> Value {
        let api_version = if kind == "Job" { "batch/v1" } else { "apps/v1" };
        json!({"apiVersion": api_version, "kind": kind,
               "metadata": {"name": "w", "namespace": "openstack", "uid": uid, "generation": 1},
               "spec": {"template": {"spec": {}}}, "status": {"observedGeneration": 1, "desiredNumberScheduled": 1}})
    }

    fn rs(uid: &str, owner_uid: &str, revision: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": format!("rs-{uid}"), "uid": uid, "ownerReferences": owner(owner_uid),
                            "annotations": {REVISION_ANNOTATION: revision}}})
    }

    /// A Pod owned by `owner_uid` with `status`; its one container is `api` running `image`.
    fn pod(name: &str, owner_uid: &str, spec: Value, status: Value) -> Value {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "api", "image": "quay.io/openstack.kolla/keystone:broken"}]);
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "uid": format!("uid-{name}"), "ownerReferences": owner(owner_uid),
                            "labels": {"big": "x"}, "managedFields": [{"manager": "kubelet"}]},
               "spec": spec, "status": status})
    }

    fn waiting(reason: &str, message: &str) -> Value {
        json!({"phase": "Pending", "containerStatuses": [
            {"name": "api", "image": "quay.io/openstack.kolla/keystone:broken", "restartCount": 0,
             "state": {"waiting": {"reason": reason, "message": message}}}]})
    }

    fn unschedulable(message: &str) -> Value {
        json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]})
    }

    const NO_MATCH: &str = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. \
        preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";

    #[test]
    fn reasons_from_pods() {
        let selector = json!({"nodeSelector": {"openstack.org/compute": "enabled"}});
        let crash = json!({"phase": "Running", "containerStatuses": [
            {"name": "api", "restartCount": 5,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting failed container=api"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]});
        // (case, workload kind, Pod status, expected healing and start of the text)
        type Case<'a> = (&'a str, &'a str, Value, Option<(Healing, &'a str)>);
        let cases: Vec<Case> = vec![
            (
                "image that does not pull",
                "Deployment",
                waiting("ImagePullBackOff", "Back-off pulling image"),
                Some((
                    Healing::MayHeal,
                    "ImagePullBackOff: quay.io/openstack.kolla/keystone:broken",
                )),
            ),
            (
                "first pull failure",
                "StatefulSet",
                waiting("ErrImagePull", "rpc error: not found"),
                Some((
                    Healing::MayHeal,
                    "ErrImagePull: quay.io/openstack.kolla/keystone:broken",
                )),
            ),
            (
                "invalid image reference",
                "Deployment",
                waiting("InvalidImageName", "couldn't parse image name"),
                Some((
                    Healing::Never,
                    "InvalidImageName: quay.io/openstack.kolla/keystone:broken is not",
                )),
            ),
            (
                "missing Secret",
                "Deployment",
                waiting("CreateContainerConfigError", "secret \"keystone\" not found"),
                Some((
                    Healing::AfterGrace,
                    "CreateContainerConfigError: secret \"keystone\" not found",
                )),
            ),
            (
                "crash loop",
                "DaemonSet",
                crash,
                Some((
                    Healing::MayHeal,
                    "CrashLoopBackOff (5 restarts): container api, last exited with code 1 (Error)",
                )),
            ),
            ("starting", "Deployment", waiting("ContainerCreating", ""), None),
            (
                "no node matches the selector",
                "StatefulSet",
                unschedulable(NO_MATCH),
                Some((
                    Healing::AfterGrace,
                    "Unschedulable: 0/3 nodes match nodeSelector openstack.org/compute=enabled (0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector)",
                )),
            ),
            (
                "nodes full",
                "Deployment",
                unschedulable(
                    "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.",
                ),
                Some((
                    Healing::MayHeal,
                    "Unschedulable: 0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu",
                )),
            ),
            (
                "no nodes at all",
                "Deployment",
                unschedulable("no nodes available to schedule pods"),
                Some((
                    Healing::AfterGrace,
                    "Unschedulable: no nodes available to schedule pods",
                )),
            ),
            (
                "failed Pod of a Job",
                "Job",
                json!({"phase": "Failed", "containerStatuses": [
                    {"name": "api", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}),
                Some((
                    Healing::MayHeal,
                    "pod p-1 failed: container api exited with code 2 (Error)",
                )),
            ),
            (
                "evicted Pod of a Job",
                "Job",
                json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
                Some((
                    Healing::MayHeal,
                    "pod p-1 failed: Evicted: The node was low on resource: memory.",
                )),
            ),
        ];
        for (name, kind, status, want) in cases {
            let w = workload(kind, "w-uid");
            let owner_uid = if kind == "Deployment" { "rs-new" } else { "w-uid" };
            let p = pod("p-1", owner_uid, selector.clone(), status);
            let sets = [rs("rs-new", "w-uid", "2")];
            let got = explain(&w, &[&p], &[&sets[0]]);
            match (got, want) {
                (None, None) => {}
                (Some(got), Some((healing, text))) => {
                    assert_eq!(got.healing, healing, "{name}: {got:?}");
                    assert!(
                        got.text.starts_with(text),
                        "{name}: {:?} does not start with {text:?}",
                        got.text
                    );
                    // The slimmed Pod, as the watch keeps it, explains the same.
                    let slim = slim(&p);
                    assert_eq!(explain(&w, &[&slim], &[&slim_rs(&sets[0])]), Some(got), "{name}");
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn slim_rs(rs: &Value) -> Value {
        slim(rs)
    }

    #[test]
    fn the_owner_chain_picks_the_workloads_own_pods() {
        let d = workload("Deployment", "d");
        let sets = [rs("old", "d", "1"), rs("new", "d", "2"), rs("other", "x", "9")];
        let old = pod("a-old", "old", json!({}), waiting("ImagePullBackOff", ""));
        let new = pod(
            "b-new",
            "new",
            json!({}),
            waiting("CreateContainerConfigError", "secret \"x\" not found"),
        );
        let other = pod("c-other", "other", json!({}), waiting("InvalidImageName", ""));
        let loose = pod("d-loose", "d", json!({}), waiting("InvalidImageName", ""));
        let pods = [&old, &new, &other, &loose];
        let refs: Vec<&Value> = sets.iter().collect();
        let picked: Vec<&str> = workload_pods(&d, &pods, &refs).iter().map(|p| name(p)).collect();
        assert_eq!(picked, ["b-new"]);
        let why = explain(&d, &pods, &refs).expect("a reason");
        assert_eq!(why.kind, "CreateContainerConfigError");

        // A StatefulSet owns its Pods directly; a Pod being deleted says nothing.
        let s = workload("StatefulSet", "s");
        let mut going = pod("s-0", "s", json!({}), waiting("InvalidImageName", ""));
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let crash = pod("s-1", "s", json!({}), waiting("ImagePullBackOff", ""));
        assert_eq!(workload_pods(&s, &[&going, &crash], &[]).len(), 1);
        assert_eq!(
            explain(&s, &[&going, &crash], &[]).map(|r| r.kind),
            Some("ImagePullBackOff")
        );

        // The most telling reason wins across Pods: one that cannot heal over one that may.
        let bad = pod("s-2", "s", json!({}), waiting("InvalidImageName", ""));
        assert_eq!(
            explain(&s, &[&crash, &bad], &[]).map(|r| r.healing),
            Some(Healing::Never)
        );
        // A workload without a uid (not read from a server) has no Pods.
        let mut anonymous = s.clone();
        anonymous["metadata"]["uid"] = Value::Null;
        assert!(explain(&anonymous, &[&crash], &[]).is_none());
    }

    #[test]
    fn a_daemonset_that_wants_no_pod_matches_no_node() {
        let mut ds = workload("DaemonSet", "ds");
        ds["spec"]["template"]["spec"]["nodeSelector"] = json!({"openstack.org/compute": "enabled"});
        ds["status"]["desiredNumberScheduled"] = json!(0);
        let why = explain(&ds, &[], &[]).expect("a reason");
        assert_eq!(why.healing, Healing::AfterGrace);
        assert_eq!(
            why.text,
            "no node matches nodeSelector openstack.org/compute=enabled"
        );
        // Before the controller has seen the spec, nothing is known yet.
        ds["status"]["observedGeneration"] = json!(0);
        assert!(explain(&ds, &[], &[]).is_none());
        ds["status"] = json!({"observedGeneration": 1, "desiredNumberScheduled": 2});
        assert!(explain(&ds, &[], &[]).is_none());
    }

    #[test]
    fn slim_keeps_what_explain_reads_and_nothing_else() {
        let p = pod(
            "p",
            "o",
            json!({"nodeSelector": {"a": "b"}}),
            unschedulable(NO_MATCH),
        );
        let s = slim(&p);
        assert!(s.pointer("/metadata/labels").is_none());
        assert!(s.pointer("/metadata/managedFields").is_none());
        assert_eq!(s.pointer("/metadata/ownerReferences/0/uid"), Some(&json!("o")));
        assert_eq!(s.pointer("/spec/nodeSelector/a"), Some(&json!("b")));
        assert_eq!(
            s.pointer("/status/conditions/0/reason"),
            Some(&json!("Unschedulable"))
        );
        let r = slim(&rs("u", "d", "3"));
        assert_eq!(revision(&r), 3);
        assert!(r.get("spec").is_none());
    }

    #[test]
    fn kinds_that_run_pods() {
        assert!(runs_pods("apps/v1", "Deployment"));
        assert!(runs_pods("batch/v1", "Job"));
        assert!(!runs_pods("v1", "Service"));
        assert!(!runs_pods("example.com/v1", "Deployment"));
    }
}
