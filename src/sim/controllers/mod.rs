//! The simulated control plane: one file per controller (`deployment` with ReplicaSets, `statefulset`,
//! `daemonset`, `job`, `storage`, `gc`), the `scheduler`, and a kubelet (`pod`) on every simulated Node.
//!
//! Compute, then apply: in each round every controller reads the same consistent [`View`] of the store and
//! returns the writes a real controller would send as [`Action`]s; `api::workloads` performs them through the
//! same commit path every API write takes (validation, managedFields, resourceVersions, watch events).
//! Rounds repeat until nothing changes, so a Deployment's ReplicaSet, its Pods and their binding appear in
//! one tick; what takes time (pulling, starting, becoming ready, running a Job) is timed against the
//! simulator's [`Behaviour`]. In-memory state a real component would also keep in memory (a kubelet's view
//! of its containers, the scheduler's back-off queue) lives in [`Memory`].

mod daemonset;
mod deployment;
mod entrypoint;
pub mod gc;
mod job;
pub mod nodes;
pub mod pod;
pub mod podspec;
mod scheduler;
mod shape;
mod statefulset;
pub mod storage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use globset::GlobSet;
use serde_json::{Map, Value, json};

use super::resources::ResKey;
use super::store::Store;

pub use nodes::{NodeCapacity, NodeLabels, NodeTaint};

/// The simulator's settings the controllers read.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// From a Pod landing on its node until it is Ready.
    pub ready_after: Duration,
    /// How long a Job's Pod runs before it exits.
    pub job_duration: Duration,
    /// Images that never pull.
    pub unpullable: GlobSet,
    /// Job names and images whose Pods exit with an error.
    pub failing_jobs: GlobSet,
    /// Container command lines (command and args joined by spaces) that crash soon after starting.
    pub crash_commands: GlobSet,
}

impl Behaviour {
    /// From a Pod landing on its node until its containers are created (pull, sandbox, create).
    pub fn startup(&self) -> Duration {
        self.ready_after / 4
    }
}

/// A resource the controllers read or write, by API group and plural.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Res(pub &'static str, pub &'static str);

pub const PODS: Res = Res("", "pods");
pub const NODES: Res = Res("", "nodes");
pub const NAMESPACES: Res = Res("", "namespaces");
pub const SECRETS: Res = Res("", "secrets");
pub const CONFIGMAPS: Res = Res("", "configmaps");
pub const EVENTS: Res = Res("", "events");
pub const PVCS: Res = Res("", "persistentvolumeclaims");
pub const PVS: Res = Res("", "persistentvolumes");
pub const STORAGECLASSES: Res = Res("storage.k8s.io", "storageclasses");
pub const DEPLOYMENTS: Res = Res("apps", "deployments");
pub const REPLICASETS: Res = Res("apps", "replicasets");
pub const STATEFULSETS: Res = Res("apps", "statefulsets");
pub const DAEMONSETS: Res = Res("apps", "daemonsets");
pub const JOBS: Res = Res("batch", "jobs");

impl Res {
    pub fn key(self) -> ResKey {
        ResKey {
            group: self.0.into(),
            plural: self.1.into(),
        }
    }
}

/// What the controllers see: the store at the start of a round, and the time.
pub struct View<'a> {
    store: &'a Store,
    pub now: Instant,
    /// `now` as the RFC 3339 timestamp objects carry.
    pub wall: String,
    /// Pods and ReplicaSets by the uid of their controller.
    pods_by_owner: HashMap<&'a str, Vec<&'a Value>>,
    replicasets_by_owner: HashMap<&'a str, Vec<&'a Value>>,
}

impl<'a> View<'a> {
    pub fn new(store: &'a Store, now: Instant, wall: String) -> Self {
        let by_owner = |r: Res| {
            let mut index: HashMap<&str, Vec<&Value>> = HashMap::new();
            for o in store.list(&r.key(), None) {
                if let Some(owner) = controller_uid(o) {
                    index.entry(owner).or_default().push(o.as_ref());
                }
            }
            index
        };
        View {
            store,
            now,
            wall,
            pods_by_owner: by_owner(PODS),
            replicasets_by_owner: by_owner(REPLICASETS),
        }
    }

    /// Changes the store saw to objects' deletion (removals, deletions started): the garbage collector
    /// looks again only after one.
    pub fn deletion_epoch(&self) -> u64 {
        self.store.deletion_epoch()
    }

    /// Whether RBAC lets `user` do what `a` asks (what a Pod's own token may read).
    pub fn authorized(&self, user: &super::auth::User, a: &super::auth::Attributes) -> bool {
        super::auth::authorize(self.store, user, a).0
    }

    pub fn list(&self, r: Res) -> impl Iterator<Item = &'a Value> + 'a {
        self.store.list(&r.key(), None).map(Arc::as_ref)
    }

    pub fn list_in(&self, r: Res, namespace: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.store.list(&r.key(), Some(namespace)).map(Arc::as_ref)
    }

    pub fn get(&self, r: Res, namespace: &str, name: &str) -> Option<&'a Value> {
        self.store.get(&r.key(), namespace, name).map(Arc::as_ref)
    }

    /// Every stored object with its resource (garbage collection and namespace termination).
    pub fn all(&self) -> impl Iterator<Item = (&'a ResKey, &'a Value)> + 'a {
        self.store.all().map(|(k, v)| (k, v.as_ref()))
    }

    /// ReplicaSets whose controller is `owner_uid`.
    pub fn replicasets_of(&self, owner_uid: &str) -> Vec<&'a Value> {
        self.replicasets_by_owner
            .get(owner_uid)
            .cloned()
            .unwrap_or_default()
    }

    /// Pods in a namespace whose controller is `owner_uid`.
    pub fn pods_of(&self, namespace: &str, owner_uid: &str) -> Vec<&'a Value> {
        self.pods_by_owner
            .get(owner_uid)
            .map(|l| {
                l.iter()
                    .copied()
                    .filter(|p| self::namespace(p) == namespace)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Involved {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub field_path: Option<String>,
}

impl Involved {
    pub fn of(obj: &Value) -> Involved {
        Involved {
            api_version: text(&obj["apiVersion"]).into(),
            kind: text(&obj["kind"]).into(),
            namespace: namespace(obj).into(),
            name: name(obj).into(),
            uid: uid(obj).into(),
            resource_version: text(&obj["metadata"]["resourceVersion"]).into(),
            field_path: None,
        }
    }

    pub fn container(mut self, field_path: String) -> Involved {
        self.field_path = Some(field_path);
        self
    }
}

/// An Event as a component records it; repeats of the same one raise its count.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub involved: Involved,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
    pub component: &'static str,
    /// The node, for kubelet events.
    pub host: Option<String>,
}

impl Event {
    pub fn normal(
        involved: Involved,
        component: &'static str,
        reason: &'static str,
        message: String,
    ) -> Self {
        Event {
            involved,
            warning: false,
            reason,
            message,
            component,
            host: None,
        }
    }

    pub fn warning(
        involved: Involved,
        component: &'static str,
        reason: &'static str,
        message: String,
    ) -> Self {
        Event {
            warning: true,
            ..Event::normal(involved, component, reason, message)
        }
    }

    pub fn on_host(mut self, host: &str) -> Self {
        self.host = Some(host.to_string());
        self
    }
}

/// The Events a controller records on its object for a create or delete it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Announce {
    pub owner: Involved,
    pub component: &'static str,
    pub ok: (&'static str, String),
    /// Reason and message prefix; the API's error message follows the prefix.
    pub failed: (&'static str, String),
}

/// One write a controller asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A new object, named by the controller. The owner (if any) is kept from creating again for a while
    /// when the API refuses.
    Create {
        res: Res,
        object: Value,
        manager: &'static str,
        announce: Option<Announce>,
    },
    /// The object as the controller wants it; dropped when the object changed since the round read it.
    Update {
        res: ResKey,
        object: Value,
        manager: &'static str,
    },
    /// A new status; dropped when the object is gone or is another object of the same name (uid).
    Status {
        res: Res,
        namespace: String,
        name: String,
        uid: String,
        status: Value,
        manager: &'static str,
    },
    Delete {
        res: ResKey,
        namespace: String,
        name: String,
        uid: String,
        grace: Option<i64>,
        propagation: Option<&'static str>,
        announce: Option<Announce>,
    },
    Event(Event),
}

impl Action {
    pub fn status(res: Res, obj: &Value, status: Value, manager: &'static str) -> Action {
        Action::Status {
            res,
            namespace: namespace(obj).into(),
            name: name(obj).into(),
            uid: uid(obj).into(),
            status,
            manager,
        }
    }

    pub fn update(res: Res, object: Value, manager: &'static str) -> Action {
        Action::Update {
            res: res.key(),
            object,
            manager,
        }
    }

    pub fn delete(res: Res, obj: &Value, announce: Option<Announce>) -> Action {
        Action::Delete {
            res: res.key(),
            namespace: namespace(obj).into(),
            name: name(obj).into(),
            uid: uid(obj).into(),
            grace: None,
            propagation: None,
            announce,
        }
    }
}

/// What the control plane remembers between rounds that is not in any object.
#[derive(Debug, Default)]
pub struct Memory {
    pub kubelet: pod::Kubelet,
    pub scheduler: scheduler::Queue,
    pub deployments: deployment::Progress,
    pub storage: storage::Notes,
    pub gc: gc::Clock,
    /// Owners whose last create was refused: until when they wait, their back-off, and the refusal.
    creates: HashMap<String, (Instant, Duration, String)>,
    /// Pod template hashes by workload uid, for the generation they were computed at.
    hashes: HashMap<String, (i64, String)>,
}

impl Memory {
    /// Whether `owner_uid` may create now (no refused create waiting out its back-off).
    pub fn may_create(&self, owner_uid: &str, now: Instant) -> bool {
        self.creates
            .get(owner_uid)
            .is_none_or(|(until, _, _)| now >= *until)
    }

    /// Why the owner's last create was refused, while it backs off.
    pub fn refusal(&self, owner_uid: &str) -> Option<&str> {
        self.creates.get(owner_uid).map(|(_, _, m)| m.as_str())
    }

    /// A create for `owner_uid` was refused: back off 1s, doubling up to a minute.
    pub fn create_refused(&mut self, owner_uid: &str, now: Instant, message: String) {
        let next = self
            .creates
            .get(owner_uid)
            .map_or(Duration::from_secs(1), |(_, d, _)| {
                (*d * 2).min(Duration::from_secs(60))
            });
        self.creates
            .insert(owner_uid.to_string(), (now + next, next, message));
    }

    pub fn create_succeeded(&mut self, owner_uid: &str) {
        self.creates.remove(owner_uid);
    }

    /// The workload's Pod template hash (see [`template_hash`]), computed once per generation.
    pub fn template_hash(&mut self, workload: &Value) -> String {
        let g = generation(workload);
        if let Some((at, h)) = self.hashes.get(uid(workload)) {
            if *at == g {
                return h.clone();
            }
        }
        let h = template_hash(&workload["spec"]["template"]);
        if self.hashes.len() > 10_000 {
            self.hashes.clear();
        }
        self.hashes.insert(uid(workload).to_string(), (g, h.clone()));
        h
    }

    /// The next moment something changes by itself (a container moves, a back-off or deadline ends); the
    /// control plane may rest until then while nothing is written.
    pub fn wake(&self) -> Option<Instant> {
        [
            self.kubelet.wake(),
            self.scheduler.wake(),
            self.deployments.wake(),
            self.creates.values().map(|(until, _, _)| *until).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// One round of every controller over the same view.
pub fn round(view: &View, mem: &mut Memory, b: &Behaviour) -> Vec<Action> {
    let mut out = Vec::new();
    gc::run(view, &mut mem.gc, &mut out);
    deployment::run(view, mem, &mut out);
    deployment::replicasets(view, mem, &mut out);
    statefulset::run(view, mem, &mut out);
    daemonset::run(view, mem, &mut out);
    job::run(view, mem, &mut out);
    storage::run(view, &mut mem.storage, &mut out);
    scheduler::run(view, &mut mem.scheduler, &mut out);
    pod::run(view, &mut mem.kubelet, b, &mut out);
    out
}

// --- object accessors -------------------------------------------------------------------------------

pub fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

pub fn name(obj: &Value) -> &str {
    text(&obj["metadata"]["name"])
}

pub fn namespace(obj: &Value) -> &str {
    text(&obj["metadata"]["namespace"])
}

pub fn uid(obj: &Value) -> &str {
    text(&obj["metadata"]["uid"])
}

pub fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["labels"][key].as_str()
}

pub fn is_deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

pub fn has_finalizer(obj: &Value, f: &str) -> bool {
    obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|l| l.iter().any(|x| x == f))
}

/// The object without finalizer `f` (for the controller that owns that finalizer).
pub fn without_finalizer(obj: &Value, f: &str) -> Value {
    let mut o = obj.clone();
    if let Some(l) = o["metadata"]["finalizers"].as_array_mut() {
        l.retain(|x| x != f);
    }
    o
}

pub fn generation(obj: &Value) -> i64 {
    obj["metadata"]["generation"].as_i64().unwrap_or(1)
}

/// The uid of the object's controller (the ownerReference with `controller: true`).
pub fn controller_uid(obj: &Value) -> Option<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .and_then(|r| r["uid"].as_str())
}

/// The ownerReference a controller puts on what it creates.
pub fn controller_ref(owner: &Value) -> Value {
    json!({"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": name(owner), "uid": uid(owner),
        "controller": true, "blockOwnerDeletion": true})
}

/// `spec.replicas`, defaulting to 1.
pub fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1).max(0)
}

/// Whether a structured label selector (`matchLabels`, `matchExpressions`) selects these labels. An empty
/// selector selects everything.
pub fn selector_matches(selector: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(m) = selector["matchLabels"].as_object() {
        if !m.iter().all(|(k, v)| get(k) == v.as_str()) {
            return false;
        }
    }
    selector["matchExpressions"]
        .as_array()
        .map(|l| l.as_slice())
        .unwrap_or_default()
        .iter()
        .all(|e| {
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let have = get(text(&e["key"]));
            match text(&e["operator"]) {
                "In" => have.is_some_and(|h| values.contains(&h)),
                "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
}

/// What kube-apiserver validates of the kinds the controllers act on: the shapes they walk (see `shape`),
/// and a workload's selector present, not empty, and selecting the Pod template's labels (the controllers
/// find their Pods by it).
pub fn validate(group: &str, plural: &str, obj: &Value) -> Vec<(String, String)> {
    let shape = shape::check(group, plural, obj);
    if !shape.is_empty() {
        return shape;
    }
    let workload = matches!(
        (group, plural),
        (
            "apps",
            "deployments" | "replicasets" | "statefulsets" | "daemonsets"
        )
    );
    let manual_job = (group, plural) == ("batch", "jobs") && obj["spec"]["manualSelector"] == true;
    if !(workload || manual_job) || !obj["spec"].is_object() {
        return Vec::new();
    }
    let selector = &obj["spec"]["selector"];
    let empty = selector["matchLabels"].as_object().is_none_or(Map::is_empty)
        && selector["matchExpressions"].as_array().is_none_or(Vec::is_empty);
    if selector.is_null() {
        return vec![("spec.selector".into(), "Required value".into())];
    }
    if empty {
        return vec![(
            "spec.selector".into(),
            format!(
                "Invalid value: {selector}: empty selector is invalid for {}",
                &plural[..plural.len() - 1]
            ),
        )];
    }
    let labels = obj["spec"]["template"]["metadata"]["labels"].as_object();
    if !selector_matches(selector, labels) {
        let shown: Vec<String> = labels
            .map(|l| l.iter().map(|(k, v)| format!("{k:?}:{v}")).collect())
            .unwrap_or_default();
        return vec![(
            "spec.template.metadata.labels".into(),
            format!(
                "Invalid value: map[string]string{{{}}}: `selector` does not match template `labels`",
                shown.join(", ")
            ),
        )];
    }
    Vec::new()
}

/// A stable short hash of a Pod template, in the alphabet controllers use for `pod-template-hash`.
pub fn template_hash(template: &Value) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let d = Sha256::digest(template.to_string().as_bytes());
    d.iter()
        .take(10)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A condition as controllers write it.
pub fn condition(type_: &str, status: bool, reason: &str, message: &str, now: &str) -> Value {
    let mut c =
        json!({"type": type_, "status": if status { "True" } else { "False" }, "lastTransitionTime": now});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

/// Keeps `lastTransitionTime` (and `lastUpdateTime` / `lastProbeTime` while nothing else moved) of
/// conditions whose status did not change, as controllers do.
pub fn keep_transitions(old: &Value, new: &mut [Value]) {
    let Some(old) = old.as_array() else { return };
    for c in new.iter_mut() {
        let Some(o) = old.iter().find(|o| o["type"] == c["type"]) else {
            continue;
        };
        if o["status"] != c["status"] {
            continue;
        }
        c["lastTransitionTime"] = o["lastTransitionTime"].clone();
        if o["reason"] == c["reason"] && o["message"] == c["message"] {
            for f in ["lastUpdateTime", "lastProbeTime"] {
                if c.get(f).is_some() {
                    c[f] = o[f].clone();
                }
            }
        }
    }
}

/// `n` of `total`, an int or a percentage (`25%`), rounded up or down.
pub fn int_or_percent(v: &Value, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(default),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(default),
        },
        _ => default,
    }
}

/// Whether a Pod counts as ready (its Ready condition is True).
pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|l| l.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Whether a Pod has finished (Succeeded or Failed).
pub fn pod_finished(pod: &Value) -> bool {
    matches!(text(&pod["status"]["phase"]), "Succeeded" | "Failed")
}

/// A Pod that still counts for its controller: not finished, not being deleted.
pub fn pod_active(pod: &Value) -> bool {
    !pod_finished(pod) && !is_deleting(pod)
}

/// A Pod ready for at least `min_ready` seconds (by its Ready condition's transition time).
pub fn pod_available(pod: &Value, min_ready_secs: i64, wall: &str) -> bool {
    if !pod_ready(pod) {
        return false;
    }
    if min_ready_secs <= 0 {
        return true;
    }
    let since = pod["status"]["conditions"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(super::meta::parse_rfc3339);
    match (since, super::meta::parse_rfc3339(wall)) {
        (Some(s), Some(n)) => n >= s + min_ready_secs as u64,
        _ => false,
    }
}

/// The Pod a workload controller makes from its template.
pub fn pod_from_template(
    owner: &Value,
    template: &Value,
    name: &str,
    extra_labels: &[(&str, String)],
) -> Value {
    let mut metadata = template["metadata"].as_object().cloned().unwrap_or_default();
    metadata.remove("name");
    metadata.remove("namespace");
    metadata.remove("creationTimestamp");
    metadata.insert("name".into(), json!(name));
    metadata.insert("namespace".into(), json!(namespace(owner)));
    if let Some(l) = metadata
        .entry("labels")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        for (k, v) in extra_labels {
            l.insert((*k).into(), json!(v));
        }
    }
    metadata.insert("ownerReferences".into(), json!([controller_ref(owner)]));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"].clone()})
}

/// A generated name: `prefix` and five characters, as `generateName` makes them.
pub fn generated_name(prefix: &str) -> String {
    let max_prefix = 63 - 5;
    let p: String = prefix.chars().take(max_prefix).collect();
    format!("{p}{}", super::meta::name_suffix())
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Builders for the controllers' table tests: a store holding the given objects, and a view over it.

    use std::time::Duration;

    use super::*;

    pub fn store(objects: &[(Res, Value)]) -> Store {
        let mut s = Store::new(1000);
        for (r, o) in objects {
            let mut o = o.clone();
            if o["metadata"]["uid"].is_null() {
                o["metadata"]["uid"] = json!(format!("uid-{}", name(&o)));
            }
            let (ns, n) = (namespace(&o).to_string(), name(&o).to_string());
            s.put(&r.key(), &ns, &n, o);
        }
        s
    }

    pub fn view(store: &Store) -> View<'_> {
        View::new(store, Instant::now(), "2026-01-01T00:00:00Z".into())
    }

    pub fn behaviour() -> Behaviour {
        Behaviour {
            ready_after: Duration::from_millis(400),
            job_duration: Duration::from_millis(200),
            unpullable: globs(&["*:broken"]),
            failing_jobs: globs(&["*-fails"]),
            crash_commands: globs(&["*crash*"]),
        }
    }

    pub fn globs(patterns: &[&str]) -> GlobSet {
        let mut b = globset::GlobSetBuilder::new();
        for p in patterns {
            b.add(globset::Glob::new(p).expect("glob"));
        }
        b.build().expect("globs")
    }

    pub fn node(name: &str, labels: Value) -> Value {
        let mut n = nodes::node_object(name, 1, &NodeCapacity::default());
        if let Some(m) = labels.as_object() {
            for (k, v) in m {
                n["metadata"]["labels"][k] = v.clone();
            }
        }
        n
    }

    pub fn pod(ns: &str, name: &str, spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
            "spec": spec, "status": {"phase": "Pending"}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_labels_and_expressions() {
        let labels = json!({"app": "web", "tier": "front"});
        let l = labels.as_object();
        let cases = [
            (json!({}), true),
            (json!({"matchLabels": {"app": "web"}}), true),
            (json!({"matchLabels": {"app": "db"}}), false),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "Bogus"}]}),
                false,
            ),
        ];
        for (sel, want) in cases {
            assert_eq!(selector_matches(&sel, l), want, "{sel}");
        }
    }

    #[test]
    fn percentages_round_as_the_deployment_controller_rounds() {
        assert_eq!(int_or_percent(&json!("25%"), 2, true, 0), 1);
        assert_eq!(int_or_percent(&json!("25%"), 2, false, 0), 0);
        assert_eq!(int_or_percent(&json!(3), 10, false, 0), 3);
        assert_eq!(int_or_percent(&Value::Null, 10, false, 1), 1);
    }

    #[test]
    fn template_hashes_are_stable_and_distinct() {
        let a = json!({"spec": {"containers": [{"name": "c", "image": "a"}]}});
        let b = json!({"spec": {"containers": [{"name": "c", "image": "b"}]}});
        assert_eq!(template_hash(&a), template_hash(&a.clone()));
        assert_ne!(template_hash(&a), template_hash(&b));
        assert_eq!(template_hash(&a).len(), 10);
    }
}
