//! The scheduler: binds each unscheduled Pod to a Node that fits, with kube-scheduler's filters in its order
//! (unschedulable nodes, taints and tolerations, node selector and required node affinity, host ports,
//! resource requests against allocatable, volume node affinity), or leaves it Pending with a
//! `PodScheduled=False` condition and a `FailedScheduling` Event worded as kube-scheduler words it.
//! Claims of a WaitForFirstConsumer class are bound through the node chosen for their first consumer
//! (the `volume.kubernetes.io/selected-node` annotation); the Pod is bound once they are, as the
//! VolumeBinding plugin waits in PreBind.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::podspec::{self, milli};
use super::storage::{self, BindingMode, SELECTED_NODE};
use super::{
    Action, Event, Involved, NODES, PODS, PVCS, PVS, STORAGECLASSES, View, condition, controller_uid,
    is_deleting, keep_transitions, name, namespace, pod_finished, text, uid,
};

const COMPONENT: &str = "default-scheduler";
const MANAGER: &str = "kube-scheduler";
/// kube-scheduler's back-off for unschedulable Pods: 1s, doubling to 10s.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable Pods are retried at least this often even when nothing in the cluster changed.
const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// The scheduler's memory: Pods that did not fit, and claims it asked to be provisioned for a node.
#[derive(Debug, Default)]
pub struct Queue {
    waiting: HashMap<String, Attempt>,
    /// Pod uid -> node chosen while its WaitForFirstConsumer claims are being provisioned.
    assumed: HashMap<String, String>,
}

#[derive(Debug)]
struct Attempt {
    at: Instant,
    backoff: Duration,
    fingerprint: u64,
}

/// What a node already holds: requests, Pod count, host ports, Pods per controller.
#[derive(Debug, Default, Clone)]
struct Usage {
    requests: BTreeMap<String, i128>,
    pods: i64,
    ports: Vec<(i64, String, String)>,
    per_owner: HashMap<String, i64>,
}

impl Usage {
    fn add(&mut self, pod: &Value) {
        let spec = &pod["spec"];
        for (r, v) in podspec::requests(spec) {
            *self.requests.entry(r).or_default() += v;
        }
        self.pods += 1;
        self.ports.extend(podspec::host_ports(spec));
        if let Some(owner) = controller_uid(pod) {
            *self.per_owner.entry(owner.to_string()).or_default() += 1;
        }
    }
}

enum Decision {
    Bind(String),
    /// Claims to provision on the chosen node before the Pod can be bound there.
    Provision(String, Vec<String>),
    /// Claims are being provisioned; bind when they are bound.
    Wait,
    Unschedulable(String),
}

pub fn run(view: &View, q: &mut Queue, out: &mut Vec<Action>) {
    let pending: Vec<&Value> = view
        .list(PODS)
        .filter(|p| text(&p["spec"]["nodeName"]).is_empty() && wants_scheduling(p))
        .collect();
    if pending.is_empty() {
        q.waiting.clear();
        q.assumed.clear();
        return;
    }
    let nodes: Vec<&Value> = view.list(NODES).filter(|n| !is_deleting(n)).collect();
    let mut usage: HashMap<String, Usage> = HashMap::new();
    for pod in view.list(PODS) {
        if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            if !pod_finished(pod) {
                usage.entry(node.to_string()).or_default().add(pod);
            }
        }
    }
    let fingerprint = cluster_fingerprint(view, &usage);
    let keep: Vec<String> = pending.iter().map(|p| uid(p).to_string()).collect();
    q.waiting.retain(|k, _| keep.contains(k));
    q.assumed.retain(|k, _| keep.contains(k));
    for pod in pending {
        let id = uid(pod).to_string();
        if let Some(a) = q.waiting.get(&id) {
            let backed_off = view.now >= a.at + a.backoff;
            let changed = a.fingerprint != fingerprint;
            if !(backed_off && changed) && view.now < a.at + MAX_UNSCHEDULABLE {
                continue;
            }
        }
        match decide(view, pod, &nodes, &usage, q.assumed.get(&id)) {
            Decision::Bind(node) => {
                q.waiting.remove(&id);
                q.assumed.remove(&id);
                bind(view, pod, &node, out);
                usage.entry(node).or_default().add(pod);
            }
            Decision::Provision(node, claims) => {
                for claim in claims {
                    if let Some(pvc) = view.get(PVCS, namespace(pod), &claim) {
                        let mut pvc = pvc.clone();
                        pvc["metadata"]["annotations"][SELECTED_NODE] = json!(node);
                        out.push(Action::update(PVCS, pvc, MANAGER));
                    }
                }
                q.assumed.insert(id, node.clone());
                // The node is taken for this Pod while its claims are provisioned.
                usage.entry(node).or_default().add(pod);
            }
            Decision::Wait => {}
            Decision::Unschedulable(message) => {
                q.assumed.remove(&id);
                let backoff = q
                    .waiting
                    .get(&id)
                    .map_or(INITIAL_BACKOFF, |a| (a.backoff * 2).min(MAX_BACKOFF));
                q.waiting.insert(
                    id,
                    Attempt {
                        at: view.now,
                        backoff,
                        fingerprint,
                    },
                );
                unschedulable(view, pod, &message, out);
            }
        }
    }
}

impl Queue {
    /// When the next unschedulable Pod's back-off ends.
    pub fn wake(&self) -> Option<Instant> {
        self.waiting.values().map(|a| a.at + a.backoff).min()
    }
}

fn wants_scheduling(pod: &Value) -> bool {
    let scheduler = pod["spec"]["schedulerName"].as_str().unwrap_or(COMPONENT);
    !is_deleting(pod)
        && !pod_finished(pod)
        && scheduler == COMPONENT
        && pod["spec"]["schedulingGates"]
            .as_array()
            .is_none_or(Vec::is_empty)
}

/// Changes that may let an unschedulable Pod fit: nodes, claims, volumes, classes, Pods leaving nodes.
fn cluster_fingerprint(view: &View, usage: &HashMap<String, Usage>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for r in [NODES, PVCS, PVS, STORAGECLASSES] {
        for o in view.list(r) {
            text(&o["metadata"]["resourceVersion"]).hash(&mut h);
        }
    }
    let mut counts: Vec<(&String, i64)> = usage.iter().map(|(k, u)| (k, u.pods)).collect();
    counts.sort();
    counts.hash(&mut h);
    h.finish()
}

fn decide(
    view: &View,
    pod: &Value,
    nodes: &[&Value],
    usage: &HashMap<String, Usage>,
    assumed: Option<&String>,
) -> Decision {
    if nodes.is_empty() {
        return Decision::Unschedulable("no nodes available to schedule pods".into());
    }
    let ns = namespace(pod);
    let spec = &pod["spec"];
    let mut bound_volumes: Vec<&Value> = Vec::new();
    let mut delayed: Vec<String> = Vec::new();
    let mut provisioning = false;
    for (_, claim) in podspec::claims(spec) {
        let Some(pvc) = view.get(PVCS, ns, claim) else {
            return Decision::Unschedulable(prefilter(
                nodes.len(),
                &format!("persistentvolumeclaim \"{claim}\" not found"),
            ));
        };
        if is_deleting(pvc) {
            return Decision::Unschedulable(prefilter(
                nodes.len(),
                &format!("persistentvolumeclaim \"{claim}\" is being deleted"),
            ));
        }
        let volume = text(&pvc["spec"]["volumeName"]);
        if !volume.is_empty() && pvc["status"]["phase"] == "Bound" {
            match view.get(PVS, "", volume) {
                Some(pv) => bound_volumes.push(pv),
                None => {
                    return Decision::Unschedulable(prefilter(
                        nodes.len(),
                        &format!("persistentvolume \"{volume}\" not found"),
                    ));
                }
            }
            continue;
        }
        match storage::binding_mode(view, pvc) {
            BindingMode::WaitForFirstConsumer => {
                match pvc["metadata"]["annotations"][SELECTED_NODE].as_str() {
                    Some(_) => provisioning = true,
                    None if assumed.is_some() => {
                        // We asked for this claim on a node and the provisioner gave the node back.
                        return Decision::Unschedulable(format!(
                            "running PreBind plugin \"VolumeBinding\": binding volumes: selectedNode annotation reset for PVC \"{claim}\""
                        ));
                    }
                    None => delayed.push(claim.to_string()),
                }
            }
            BindingMode::Immediate => {
                return Decision::Unschedulable(prefilter(
                    nodes.len(),
                    "pod has unbound immediate PersistentVolumeClaims",
                ));
            }
        }
    }
    if provisioning {
        // A claim is being provisioned for a node (ours, or another consumer's): wait for it to bind.
        return Decision::Wait;
    }
    if let Some(node) = assumed {
        if delayed.is_empty() {
            return Decision::Bind(node.clone());
        }
    }
    let empty = Usage::default();
    let mut feasible = Vec::new();
    let mut failures = Vec::new();
    for node in nodes {
        let used = usage.get(name(node)).unwrap_or(&empty);
        let reasons = filter(pod, node, used, &bound_volumes);
        if reasons.is_empty() {
            feasible.push((*node, used));
        } else {
            failures.push(reasons);
        }
    }
    let Some((best, _)) = feasible
        .into_iter()
        .min_by(|a, b| score(pod, a).cmp(&score(pod, b)))
    else {
        return Decision::Unschedulable(fit_error(nodes.len(), &failures));
    };
    let node = name(best).to_string();
    if delayed.is_empty() {
        Decision::Bind(node)
    } else {
        Decision::Provision(node, delayed)
    }
}

/// Fewer Pods of the same controller first (spreading replicas), then the least requested node.
fn score(pod: &Value, (node, used): &(&Value, &Usage)) -> (i64, i128, String) {
    let same = controller_uid(pod)
        .and_then(|o| used.per_owner.get(o).copied())
        .unwrap_or(0);
    let req = podspec::requests(&pod["spec"]);
    let alloc = &node["status"]["allocatable"];
    let fraction = |r: &str| {
        let total = milli(&alloc[r]).max(1);
        (used.requests.get(r).copied().unwrap_or(0) + req.get(r).copied().unwrap_or(0)) * 1000 / total
    };
    (same, fraction("cpu") + fraction("memory"), name(node).to_string())
}

/// The reasons `node` cannot take `pod`, from the first filter that fails (resources may give several).
fn filter(pod: &Value, node: &Value, used: &Usage, bound_volumes: &[&Value]) -> Vec<String> {
    let spec = &pod["spec"];
    let tolerations = spec["tolerations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if node["spec"]["unschedulable"] == true
        && !tolerates(
            tolerations,
            &json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}),
        )
    {
        return vec!["node(s) were unschedulable".into()];
    }
    if node_taints(node)
        .iter()
        .filter(|t| matches!(text(&t["effect"]), "NoSchedule" | "NoExecute"))
        .any(|t| !tolerates(tolerations, t))
    {
        return vec!["node(s) had untolerated taint(s)".into()];
    }
    if !node_matches(spec, node) {
        return vec!["node(s) didn't match Pod's node affinity/selector".into()];
    }
    let wanted = podspec::host_ports(spec);
    if wanted
        .iter()
        .any(|w| used.ports.iter().any(|u| podspec::ports_conflict(w, u)))
    {
        return vec!["node(s) didn't have free ports for the requested pod ports".into()];
    }
    let alloc = &node["status"]["allocatable"];
    let mut short = Vec::new();
    let max_pods = milli(&alloc["pods"]) / 1000;
    if used.pods as i128 + 1 > max_pods {
        short.push("Too many pods".to_string());
    }
    for (r, want) in podspec::requests(spec) {
        if want > 0 && used.requests.get(&r).copied().unwrap_or(0) + want > milli(&alloc[r.as_str()]) {
            short.push(format!("Insufficient {r}"));
        }
    }
    if !short.is_empty() {
        return short;
    }
    if bound_volumes.iter().any(|pv| {
        let terms = &pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"];
        !terms.is_null() && !terms_match(terms, node)
    }) {
        return vec!["node(s) had volume node affinity conflict".into()];
    }
    Vec::new()
}

/// The node's taints, plus the not-ready taint the node lifecycle controller puts on a node that is not
/// Ready.
pub fn node_taints(node: &Value) -> Vec<Value> {
    let mut taints = node["spec"]["taints"].as_array().cloned().unwrap_or_default();
    let ready = node["status"]["conditions"]
        .as_array()
        .is_some_and(|l| l.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
    if !ready {
        taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}));
        taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}));
    }
    taints
}

/// Whether some toleration tolerates the taint.
pub fn tolerates(tolerations: &[Value], taint: &Value) -> bool {
    tolerations.iter().any(|t| {
        let key = text(&t["key"]);
        let exists = text(&t["operator"]) == "Exists";
        let key_ok = (key.is_empty() && exists) || key == text(&taint["key"]);
        let effect = text(&t["effect"]);
        let effect_ok = effect.is_empty() || effect == text(&taint["effect"]);
        let value_ok = exists || text(&t["value"]) == text(&taint["value"]);
        key_ok && effect_ok && value_ok
    })
}

/// The Pod's nodeSelector and required node affinity against the node's labels (and name).
pub fn node_matches(spec: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    if let Some(sel) = spec["nodeSelector"].as_object() {
        if !sel.iter().all(|(k, v)| labels[k] == *v) {
            return false;
        }
    }
    let terms = &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
    terms.is_null() || terms_match(terms, node)
}

/// NodeSelectorTerms: any term matches; inside a term every expression and field matches; a term with
/// neither matches nothing.
pub fn terms_match(terms: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    list(terms).iter().any(|term| {
        let exprs = list(&term["matchExpressions"]);
        let fields = list(&term["matchFields"]);
        if exprs.is_empty() && fields.is_empty() {
            return false;
        }
        exprs
            .iter()
            .all(|e| requirement(e, labels[text(&e["key"])].as_str()))
            && fields.iter().all(|f| {
                let value = match text(&f["key"]) {
                    "metadata.name" => Some(name(node)),
                    _ => None,
                };
                requirement(f, value)
            })
    })
}

fn requirement(e: &Value, have: Option<&str>) -> bool {
    let values: Vec<&str> = e["values"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let number = |s: Option<&str>| s.and_then(|s| s.parse::<i64>().ok());
    match text(&e["operator"]) {
        "In" => have.is_some_and(|h| values.contains(&h)),
        "NotIn" => have.is_none_or(|h| !values.contains(&h)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        "Gt" => matches!((number(have), number(values.first().copied())), (Some(h), Some(v)) if h > v),
        "Lt" => matches!((number(have), number(values.first().copied())), (Some(h), Some(v)) if h < v),
        _ => false,
    }
}

fn prefilter(nodes: usize, reason: &str) -> String {
    format!(
        "0/{nodes} nodes are available: {reason}. preemption: 0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling."
    )
}

/// kube-scheduler's FitError: counts per reason, sorted, and what preemption could do about each node.
fn fit_error(nodes: usize, failures: &[Vec<String>]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut preemption: BTreeMap<&str, usize> = BTreeMap::new();
    for reasons in failures {
        for r in reasons {
            *counts.entry(r).or_default() += 1;
        }
        let resources_only = reasons
            .iter()
            .all(|r| r.starts_with("Insufficient ") || r == "Too many pods");
        let p = if resources_only {
            "No preemption victims found for incoming pod"
        } else {
            "Preemption is not helpful for scheduling"
        };
        *preemption.entry(p).or_default() += 1;
    }
    let sorted = |m: BTreeMap<&str, usize>| {
        let mut v: Vec<String> = m.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
        v.sort();
        v.join(", ")
    };
    format!(
        "0/{nodes} nodes are available: {}. preemption: 0/{nodes} nodes are available: {}.",
        sorted(counts),
        sorted(preemption)
    )
}

fn scheduled_status(pod: &Value, ok: bool, message: &str, wall: &str) -> Value {
    let mut status = pod["status"].clone();
    if !status.is_object() {
        status = json!({"phase": "Pending"});
    }
    let mut c = if ok {
        condition("PodScheduled", true, "", "", wall)
    } else {
        condition("PodScheduled", false, "Unschedulable", message, wall)
    };
    c["lastProbeTime"] = Value::Null;
    let mut conds: Vec<Value> = status["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|x| x["type"] != "PodScheduled")
        .collect();
    let old = status["conditions"].clone();
    let mut new = vec![c];
    keep_transitions(&old, &mut new);
    conds.extend(new);
    status["conditions"] = json!(conds);
    status
}

fn bind(view: &View, pod: &Value, node: &str, out: &mut Vec<Action>) {
    let mut bound = pod.clone();
    bound["spec"]["nodeName"] = json!(node);
    out.push(Action::update(PODS, bound, MANAGER));
    out.push(Action::status(
        PODS,
        pod,
        scheduled_status(pod, true, "", &view.wall),
        MANAGER,
    ));
    out.push(Action::Event(Event::normal(
        Involved::of(pod),
        COMPONENT,
        "Scheduled",
        format!("Successfully assigned {}/{} to {node}", namespace(pod), name(pod)),
    )));
}

fn unschedulable(view: &View, pod: &Value, message: &str, out: &mut Vec<Action>) {
    out.push(Action::status(
        PODS,
        pod,
        scheduled_status(pod, false, message, &view.wall),
        MANAGER,
    ));
    out.push(Action::Event(Event::warning(
        Involved::of(pod),
        COMPONENT,
        "FailedScheduling",
        message.to_string(),
    )));
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{node, pod, store, view};
    use super::super::{NODES, PODS, PVCS, Res};
    use super::*;

    /// The message of the first FailedScheduling Event, or the node the Pod was bound to.
    fn outcome(objects: Vec<(Res, Value)>) -> Result<String, String> {
        let s = store(&objects);
        let v = view(&s);
        let mut q = Queue::default();
        let mut out = Vec::new();
        run(&v, &mut q, &mut out);
        for a in &out {
            match a {
                Action::Update { object, .. } if object["kind"] == "Pod" => {
                    return Ok(text(&object["spec"]["nodeName"]).to_string());
                }
                Action::Event(e) if e.reason == "FailedScheduling" => return Err(e.message.clone()),
                _ => {}
            }
        }
        Err(format!("no decision: {out:?}"))
    }

    fn three_nodes() -> Vec<(Res, Value)> {
        vec![
            (
                NODES,
                node("node-1", json!({"openstack.org/control-plane": "enabled"})),
            ),
            (NODES, node("node-2", json!({"openstack.org/compute": "enabled"}))),
            (NODES, node("node-3", json!({"openstack.org/compute": "enabled"}))),
        ]
    }

    fn with(mut objects: Vec<(Res, Value)>, more: Vec<(Res, Value)>) -> Vec<(Res, Value)> {
        objects.extend(more);
        objects
    }

    fn api_pod(extra: Value) -> Value {
        let mut spec = json!({"containers": [{"name": "api", "image": "keystone:1"}]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        pod("openstack", "keystone-abc", spec)
    }

    #[test]
    fn scheduling_table() {
        type Case<'a> = (&'a str, Vec<(Res, Value)>, Result<&'a str, &'a str>);
        let cases: Vec<Case> = vec![
            (
                "nodeSelector picks the only matching node",
                with(
                    three_nodes(),
                    vec![(
                        PODS,
                        api_pod(json!({"nodeSelector": {"openstack.org/control-plane": "enabled"}})),
                    )],
                ),
                Ok("node-1"),
            ),
            (
                "no node matches the selector",
                with(
                    three_nodes(),
                    vec![(
                        PODS,
                        api_pod(json!({"nodeSelector": {"openstack.org/storage": "enabled"}})),
                    )],
                ),
                Err(
                    "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
                ),
            ),
            (
                "required node affinity, In and NotIn",
                with(
                    three_nodes(),
                    vec![(
                        PODS,
                        api_pod(
                            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "openstack.org/compute", "operator": "In", "values": ["enabled"]},
                        {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["node-2"]}]}]}}}}),
                        ),
                    )],
                ),
                Ok("node-3"),
            ),
            (
                "too large for every node",
                with(
                    three_nodes(),
                    vec![(
                        PODS,
                        api_pod(
                            json!({"containers": [{"name": "api", "image": "i", "resources": {"requests": {"cpu": "9", "memory": "1Gi"}}}]}),
                        ),
                    )],
                ),
                Err(
                    "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
                ),
            ),
            (
                "mixed reasons are counted and sorted",
                with(
                    three_nodes(),
                    vec![(
                        PODS,
                        api_pod(json!({
                    "nodeSelector": {"openstack.org/compute": "enabled"},
                    "containers": [{"name": "api", "image": "i", "resources": {"requests": {"memory": "64Gi"}}}]})),
                    )],
                ),
                Err(
                    "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient memory. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.",
                ),
            ),
            (
                "a missing claim fails before any node is tried",
                with(
                    three_nodes(),
                    vec![(
                        PODS,
                        api_pod(
                            json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}),
                        ),
                    )],
                ),
                Err(
                    "0/3 nodes are available: persistentvolumeclaim \"data\" not found. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
                ),
            ),
            (
                "no nodes at all",
                vec![(PODS, api_pod(json!({})))],
                Err("no nodes available to schedule pods"),
            ),
        ];
        for (what, objects, want) in cases {
            let got = outcome(objects);
            assert_eq!(got.as_deref().map_err(String::as_str), want, "{what}");
        }
    }

    #[test]
    fn taints_need_tolerations() {
        let mut tainted = node("node-1", json!({}));
        tainted["spec"]["taints"] = json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]);
        let mut soft = node("node-2", json!({}));
        soft["spec"]["taints"] = json!([{"key": "spare", "effect": "PreferNoSchedule"}]);
        let mut cordoned = node("node-3", json!({}));
        cordoned["spec"]["unschedulable"] = json!(true);
        let nodes = vec![(NODES, tainted.clone()), (NODES, cordoned.clone())];
        assert_eq!(
            outcome(with(nodes.clone(), vec![(PODS, api_pod(json!({})))])).unwrap_err(),
            "0/2 nodes are available: 1 node(s) had untolerated taint(s), 1 node(s) were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        );
        let tolerant = api_pod(
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
        );
        assert_eq!(
            outcome(with(nodes.clone(), vec![(PODS, tolerant)])).unwrap(),
            "node-1"
        );
        let wrong_value = api_pod(json!({"tolerations": [{"key": "dedicated", "value": "web"}]}));
        assert!(outcome(with(nodes, vec![(PODS, wrong_value)])).is_err());
        // PreferNoSchedule does not filter.
        assert_eq!(
            outcome(vec![(NODES, soft), (PODS, api_pod(json!({})))]).unwrap(),
            "node-2"
        );
        let everything = api_pod(json!({"tolerations": [{"operator": "Exists"}]}));
        assert_eq!(
            outcome(vec![(NODES, tainted), (PODS, everything)]).unwrap(),
            "node-1"
        );
    }

    #[test]
    fn host_ports_and_pod_counts_fill_nodes() {
        let mut busy = pod(
            "openstack",
            "ovs-1",
            json!({"nodeName": "node-1", "hostNetwork": true,
            "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 6640, "protocol": "TCP"}]}]}),
        );
        busy["status"]["phase"] = json!("Running");
        let wants_port = pod(
            "openstack",
            "ovs-2",
            json!({"hostNetwork": true,
            "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 6640, "protocol": "TCP"}]}]}),
        );
        let got = outcome(vec![
            (NODES, node("node-1", json!({}))),
            (PODS, busy),
            (PODS, wants_port),
        ]);
        assert_eq!(
            got.unwrap_err(),
            "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        );
        let mut tiny = node("node-1", json!({}));
        tiny["status"]["allocatable"]["pods"] = json!("0");
        assert!(
            outcome(vec![(NODES, tiny), (PODS, api_pod(json!({})))])
                .unwrap_err()
                .contains("1 Too many pods")
        );
    }

    #[test]
    fn replicas_spread_over_nodes() {
        let owner = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-1", "controller": true}]);
        let mut first = pod(
            "openstack",
            "a",
            json!({"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]}),
        );
        first["metadata"]["ownerReferences"] = owner.clone();
        first["status"]["phase"] = json!("Running");
        let mut second = pod(
            "openstack",
            "b",
            json!({"containers": [{"name": "c", "image": "i"}]}),
        );
        second["metadata"]["ownerReferences"] = owner;
        let got = outcome(vec![
            (NODES, node("node-1", json!({}))),
            (NODES, node("node-2", json!({}))),
            (PODS, first),
            (PODS, second),
        ]);
        assert_eq!(got.unwrap(), "node-2");
    }

    #[test]
    fn a_wait_for_first_consumer_claim_is_provisioned_on_the_chosen_node_first() {
        let objects = vec![
            (NODES, node("node-1", json!({}))),
            (
                super::super::STORAGECLASSES,
                storage::default_classes()[0].clone(),
            ),
            (
                PVCS,
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": "openstack"},
                "spec": {"storageClassName": "standard", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                "status": {"phase": "Pending"}}),
            ),
            (
                PODS,
                api_pod(json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]})),
            ),
        ];
        let s = store(&objects);
        let v = view(&s);
        let mut q = Queue::default();
        let mut out = Vec::new();
        run(&v, &mut q, &mut out);
        let annotated = out.iter().find_map(|a| match a {
            Action::Update { object, .. } if object["kind"] == "PersistentVolumeClaim" => {
                Some(object["metadata"]["annotations"][SELECTED_NODE].clone())
            }
            _ => None,
        });
        assert_eq!(annotated, Some(json!("node-1")));
        assert!(
            !out.iter()
                .any(|a| matches!(a, Action::Update { object, .. } if object["kind"] == "Pod")),
            "the Pod waits for its claim: {out:?}"
        );
    }
}
