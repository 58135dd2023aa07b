//! The lifecycle acceptance suite's bench: a copy of example-repo committed into a fresh Git repository,
//! a fresh simulated cluster, and `keelson run` (the daemon, in-process) following the repository through
//! its local watch. Around it: live snapshots of every owned object, the writes between two points of the
//! simulator's request log, and a watch recorder that orders what the cluster went through.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use keelson::cluster::{Kube, Target, connect};
use keelson::object::{ANNOTATION_REVISION, LABEL_MANAGED_BY, LABEL_SERVICE, MANAGED_BY_VALUE};
use keelson::reconciler::{Daemon, DaemonConfig};
use keelson::sim::{Cluster, RequestRecord, SimOptions};
use keelson::source::{DEFAULT_MAX_FILE_SIZE, GitSourceConfig};
use keelson::status::{self, PassResult, Phase, Shared, Status};
use keelson::topology::Topology;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::source_support::Repo;
pub use crate::support::wait_for;
use crate::support::{copy_tree, example_repo, test_daemon_config};

/// Keelson's own namespace: status, control object, Events, Lease.
pub const KEELSON_NS: &str = "keelson-system";
/// The example topology's namespace and name.
pub const NS: &str = "openstack";
pub const TOPOLOGY: &str = "openstack";
/// How long one pass over the example may take on a loaded two-core machine in debug mode.
pub const PASS_TIMEOUT: Duration = Duration::from_secs(90);

/// (apiVersion, kind, namespace, name) of a live object.
pub type Key = (String, String, String, String);
/// (resource, name) as the request log names a write.
pub type Written = (String, String);

pub fn fast_sim() -> SimOptions {
    crate::support::sim_options(Duration::from_millis(80))
}

fn daemon_config() -> DaemonConfig {
    test_daemon_config(KEELSON_NS)
}

/// One scenario's world: repository, cluster, daemon.
pub struct Lab {
    pub tmp: tempfile::TempDir,
    pub repo: Repo,
    pub sim: Cluster,
    pub kube: Kube,
    pub shared: Arc<Shared>,
    /// Started before the daemon: sees every workload and Job change of the scenario.
    pub recorder: Recorder,
    wake: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    /// (apiVersion, kind) -> (plural, namespaced) for every listable resource the cluster serves.
    resources: BTreeMap<(String, String), (ApiResource, bool)>,
}

impl Lab {
    /// Copies example-repo into a fresh repository, lets `prepare` edit the copy, commits it as the first
    /// revision, starts a fresh simulated cluster and the daemon. Returns the lab and the first commit.
    pub async fn start(options: SimOptions, prepare: impl FnOnce(&Path)) -> (Lab, String) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = Repo::init(tmp.path().join("repo"));
        copy_tree(&example_repo(), &repo.path);
        prepare(&repo.path);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "OpenStack 2025.1"]);
        let first = repo.head();

        let sim = Cluster::start(super::support::example_nodes(options))
            .await
            .expect("simulator starts");
        let kube = connect(Target::Client(sim.client())).await.expect("connects");
        super::support::create_example_secrets(&kube).await;
        sim.clear_request_log();
        let resources = discover(&kube).await;
        let recorder = record(&kube, &resources).await;

        let mut source = GitSourceConfig::new(repo.path.to_string_lossy().into_owned(), "main");
        source.cache_dir = tmp.path().join("cache");
        let daemon = Daemon::new(kube.clone(), source, daemon_config()).expect("daemon");
        let shared = daemon.shared();
        let wake = daemon.wake_handle();
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            daemon
                .run(async move { shutdown.cancelled().await })
                .await
                .expect("daemon runs");
        });
        let lab = Lab {
            tmp,
            repo,
            sim,
            kube,
            shared,
            recorder,
            wake,
            stop,
            task: Some(task),
            resources,
        };
        (lab, first)
    }

    /// Stops the daemon and waits for it to return.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("daemon stops")
                .expect("daemon task");
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.repo.path.join(file)
    }

    /// Replaces the first `from` in `file` of the working tree by `to`.
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        edit(&self.repo.path, file, from, to);
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.path(file)).expect("remove");
    }

    /// Commits the whole working tree; returns the commit.
    pub fn commit(&self, message: &str) -> String {
        self.repo.git(&["add", "-A"]);
        self.repo.git(&["commit", "-q", "-m", message]);
        self.repo.head()
    }

    /// `git revert --no-edit <commit>`; returns the new commit.
    pub fn revert(&self, commit: &str) -> String {
        self.repo.git(&["revert", "--no-edit", commit]);
        self.repo.head()
    }

    pub fn subject(&self, commit: &str) -> String {
        self.repo.git(&["log", "-1", "--format=%s", commit])
    }

    /// The topology of the working tree (what the last commit says, when everything is committed).
    pub fn topology(&self) -> Topology {
        let snapshot = keelson::source::Snapshot::from_dir(&self.repo.path, DEFAULT_MAX_FILE_SIZE)
            .expect("snapshot of the working tree");
        keelson::topology::load(&snapshot).expect("the working tree is a valid topology")
    }

    /// The stored status object (read through the API), if written.
    pub async fn stored(&self) -> Option<Status> {
        status::read_status(&self.kube, KEELSON_NS).await.ok().flatten()
    }

    /// Waits until the stored status shows the pass over `revision` finished with `result`, and returns it.
    /// The status is written after the pass's last object write and the inventory, so every write of the pass
    /// is in the request log by then.
    pub async fn finished(&self, revision: &str, result: PassResult) -> Status {
        let phase = match result {
            PassResult::Succeeded => Phase::Ready,
            PassResult::Failed | PassResult::Error => Phase::Failed,
            PassResult::Stalled => Phase::Stalled,
            PassResult::Cancelled => Phase::Pending,
        };
        let what = format!("revision {} to end {result}", &revision[..12]);
        let started = Instant::now();
        loop {
            if let Some(status) = self.stored().await
                && status.phase == phase
                && status
                    .history
                    .first()
                    .is_some_and(|h| h.revision == revision && h.result == result)
                && (result != PassResult::Succeeded
                    || status.last_applied_revision.as_deref() == Some(revision))
            {
                return status;
            }
            if started.elapsed() > PASS_TIMEOUT {
                panic!(
                    "timed out after {PASS_TIMEOUT:?} waiting for {what}; stored status: {:#?}\nthe cluster's warnings: {:#?}",
                    self.stored().await,
                    self.warnings().await
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for a converged pass over `revision`.
    pub async fn applied(&self, revision: &str) -> Status {
        self.finished(revision, PassResult::Succeeded).await
    }

    /// Passes the daemon counted with `result`.
    pub fn passes(&self, result: &str) -> u64 {
        // Every reason of the result.
        let prefix = format!("keelson_passes_total{{result=\"{result}\",");
        self.shared
            .metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with(prefix.as_str()))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
            .sum()
    }

    /// Wakes the daemon (as a push or a moved ref would) over the applied, unchanged revision and asserts the
    /// pass that follows writes nothing and adds nothing to the history (invariant 5).
    pub async fn assert_quiet_pass(&self) {
        let history = self.stored().await.expect("status").history;
        let before = self.passes("succeeded");
        let mark = self.mark();
        self.wake.notify_one();
        wait_for("a pass over the unchanged revision", PASS_TIMEOUT, || async {
            self.passes("succeeded") > before
        })
        .await;
        let writes: Vec<RequestRecord> = self
            .sim
            .request_log()
            .into_iter()
            .filter(|r| r.seq > mark && r.is_write())
            .collect();
        assert!(
            writes.is_empty(),
            "a pass over an unchanged commit wrote: {writes:?}"
        );
        assert_eq!(self.stored().await.expect("status").history, history);
    }

    /// Runs the `keelson` binary with `args` against this lab's cluster; its standard output.
    pub async fn keelson(&self, args: &[&str]) -> String {
        let kubeconfig = self.tmp.path().join("kubeconfig");
        if !kubeconfig.exists() {
            self.sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        }
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .output()
            .await
            .expect("run keelson");
        assert!(
            out.status.success(),
            "keelson {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The position of the request log's newest record; writes after it are "since" this mark.
    pub fn mark(&self) -> u64 {
        self.sim.request_log().last().map_or(0, |r| r.seq)
    }

    /// Writes after `mark`, in order, without Keelson's bookkeeping: everything in its own namespace
    /// (status, control object, Events, Lease), that namespace itself and the topology's inventory.
    pub fn writes_since(&self, mark: u64) -> Vec<RequestRecord> {
        let inventory = keelson::cluster::inventory::inventory_name(TOPOLOGY);
        self.sim
            .request_log()
            .into_iter()
            .filter(|r| r.seq > mark && r.is_write())
            .filter(|r| r.namespace.as_deref() != Some(KEELSON_NS))
            .filter(|r| !(r.resource == "namespaces" && r.name.as_deref() == Some(KEELSON_NS)))
            .filter(|r| {
                !(r.resource == "configmaps"
                    && r.namespace.as_deref() == Some(NS)
                    && r.name.as_deref() == Some(inventory.as_str()))
            })
            .collect()
    }

    /// Every owned object (label `app.kubernetes.io/managed-by: keelson`) of every listable resource,
    /// without server-set fields and without the revision annotation; Keelson's bookkeeping left out.
    pub async fn snapshot(&self) -> Live {
        let selector = format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}");
        let inventory = keelson::cluster::inventory::inventory_name(TOPOLOGY);
        let mut objects = BTreeMap::new();
        for ((api_version, kind), (ar, _)) in &self.resources {
            let api: Api<DynamicObject> = Api::all_with(self.kube.client().clone(), ar);
            let list = api
                .list(&ListParams::default().labels(&selector))
                .await
                .unwrap_or_else(|e| panic!("list {}: {e}", ar.plural));
            for item in list.items {
                let mut value = serde_json::to_value(item).expect("object as JSON");
                value["apiVersion"] = Value::String(api_version.clone());
                value["kind"] = Value::String(kind.clone());
                let namespace = value["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let name = value["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let bookkeeping = namespace == KEELSON_NS
                    || (kind == "Namespace" && name == KEELSON_NS)
                    || (kind == "ConfigMap" && name == inventory);
                if bookkeeping || made_by_a_controller(&value) {
                    continue;
                }
                objects.insert(
                    (api_version.clone(), kind.clone(), namespace, name),
                    normalize(value),
                );
            }
        }
        Live { objects }
    }

    /// The (resource, name) a key is written as.
    pub fn written_as(&self, key: &Key) -> Written {
        let plural = self.resources.get(&(key.0.clone(), key.1.clone())).map_or_else(
            || format!("{}s", key.1.to_lowercase()),
            |(ar, _)| ar.plural.clone(),
        );
        (plural, key.3.clone())
    }

    /// The objects that differ between two snapshots (changed, added or gone), as (resource, name).
    pub fn changed(&self, before: &Live, after: &Live) -> BTreeSet<Written> {
        let keys: BTreeSet<&Key> = before.objects.keys().chain(after.objects.keys()).collect();
        keys.into_iter()
            .filter(|k| before.objects.get(*k) != after.objects.get(*k))
            .map(|k| self.written_as(k))
            .collect()
    }

    /// The component (label `keelson.dev/service`) each (resource, name) of `snapshots` belongs to.
    pub fn owners(&self, snapshots: &[&Live]) -> BTreeMap<Written, String> {
        let mut owners = BTreeMap::new();
        for live in snapshots {
            for (key, object) in &live.objects {
                if let Some(component) = object["metadata"]["labels"][LABEL_SERVICE].as_str() {
                    owners.insert(self.written_as(key), component.to_string());
                }
            }
        }
        owners
    }

    /// Owned workloads, Jobs and claims of the topology namespace that are not healthy now, with the reason.
    pub async fn unhealthy(&self) -> Vec<String> {
        let selector = format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}");
        let mut out = Vec::new();
        for (api_version, kind) in [
            ("apps/v1", "Deployment"),
            ("apps/v1", "StatefulSet"),
            ("apps/v1", "DaemonSet"),
            ("batch/v1", "Job"),
            ("v1", "PersistentVolumeClaim"),
        ] {
            let (ar, _) = &self.resources[&(api_version.to_string(), kind.to_string())];
            let api: Api<DynamicObject> = Api::namespaced_with(self.kube.client().clone(), NS, ar);
            for item in api
                .list(&ListParams::default().labels(&selector))
                .await
                .expect("list")
                .items
            {
                let mut value = serde_json::to_value(&item).expect("object as JSON");
                value["apiVersion"] = Value::String(api_version.to_string());
                value["kind"] = Value::String(kind.to_string());
                let health = keelson::cluster::health(&value);
                if !health.is_current() {
                    out.push(format!(
                        "{kind} {}: {}",
                        item.metadata.name.unwrap_or_default(),
                        health.reason
                    ));
                }
            }
        }
        out
    }

    /// (reason, message) of every Event in Keelson's namespace.
    pub async fn events(&self) -> Vec<(String, String)> {
        let api: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.kube.client().clone(), KEELSON_NS);
        api.list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    /// The Warning Events in the topology's namespace (what the simulated kubelet and controllers report).
    pub async fn warnings(&self) -> Vec<String> {
        let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(self.kube.client().clone(), NS);
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .map(|e| {
                format!(
                    "{}/{}: {}: {} (x{})",
                    e.involved_object.kind.unwrap_or_default(),
                    e.involved_object.name.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default(),
                    e.count.unwrap_or(1)
                )
            })
            .collect()
    }

    /// metadata.generation of every workload in the topology's namespace, as `deployments/keystone`.
    pub async fn generations(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
            let (ar, _) = &self.resources[&("apps/v1".to_string(), kind.to_string())];
            let api: Api<DynamicObject> = Api::namespaced_with(self.kube.client().clone(), NS, ar);
            for item in api.list(&ListParams::default()).await.expect("list").items {
                out.insert(
                    format!("{}/{}", ar.plural, item.metadata.name.unwrap_or_default()),
                    item.metadata.generation.unwrap_or(-1),
                );
            }
        }
        out
    }
}

pub use crate::support::edit;

/// The 1-based line of `file` (in the working tree) that contains `needle`.
pub fn line_of(dir: &Path, file: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(dir.join(file)).expect("read");
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{file} has no line with {needle:?}"))
}

/// Starts recording every change to the topology namespace's workloads and Jobs from now on.
async fn record(kube: &Kube, resources: &BTreeMap<(String, String), (ApiResource, bool)>) -> Recorder {
    let api: Api<DynamicObject> = Api::namespaced_with(
        kube.client().clone(),
        NS,
        &ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    let from = api
        .list_metadata(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("list resourceVersion");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (api_version, kind) in [
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
    ] {
        let (ar, _) = resources[&(api_version.to_string(), kind.to_string())].clone();
        tasks.push(tokio::spawn(watch(kube.clone(), ar, from.clone(), seen.clone())));
    }
    Recorder { seen, tasks }
}

async fn discover(kube: &Kube) -> BTreeMap<(String, String), (ApiResource, bool)> {
    let discovery = Discovery::new(kube.client().clone())
        .run()
        .await
        .expect("discovery");
    let mut out = BTreeMap::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) {
                continue;
            }
            let namespaced = caps.scope == Scope::Namespaced;
            out.insert((ar.api_version.clone(), ar.kind.clone()), (ar, namespaced));
        }
    }
    assert!(
        out.contains_key(&("apps/v1".to_string(), "Deployment".to_string())),
        "discovery found no Deployments: {:?}",
        out.keys()
    );
    out
}

/// Objects the cluster's controllers made from Keelson's templates, which carry its labels: ReplicaSets and
/// Pods (they have a controlling owner) and a StatefulSet's claims (made from its volumeClaimTemplates, so
/// without the content hash of an object Keelson applies).
fn made_by_a_controller(object: &Value) -> bool {
    let controlled = object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["controller"] == true));
    let template_claim = object["kind"] == "PersistentVolumeClaim"
        && object["metadata"]["annotations"][keelson::object::ANNOTATION_HASH].is_null();
    controlled || template_claim
}

/// The object without what the server sets (resourceVersion, uid, timestamps, managedFields, generation,
/// status, a Service's allocated cluster IPs, a claim's bound volume, a Job's uid-based selector) and without `keelson.dev/revision`,
/// which by design names the commit that last wrote it.
fn normalize(mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        let allocated: &[&str] = match kind.as_str() {
            "Service" => &["clusterIP", "clusterIPs"],
            "PersistentVolumeClaim" => &["volumeName"],
            _ => &[],
        };
        for field in allocated {
            spec.remove(*field);
        }
    }
    if kind == "Job" {
        // The API server generates a Job's selector from its uid and labels its Pod template to match.
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("selector");
        }
        if let Some(labels) = object
            .pointer_mut("/spec/template/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            for generated in [
                "controller-uid",
                "job-name",
                "batch.kubernetes.io/controller-uid",
                "batch.kubernetes.io/job-name",
            ] {
                labels.remove(generated);
            }
        }
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
            "generation",
            "selfLink",
        ] {
            meta.remove(field);
        }
        let empty = meta
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
            .map(|annotations| {
                annotations.remove(ANNOTATION_REVISION);
                // The deployment controller's revision counts rollouts, reverts included.
                annotations.remove("deployment.kubernetes.io/revision");
                annotations.is_empty()
            });
        if empty == Some(true) {
            meta.remove("annotations");
        }
    }
    object
}

/// A snapshot of the live owned objects.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Live {
    pub objects: BTreeMap<Key, Value>,
}

impl Live {
    /// The objects of `component` (label `keelson.dev/service`).
    pub fn of_component(&self, component: &str) -> BTreeMap<Key, Value> {
        self.objects
            .iter()
            .filter(|(_, v)| v["metadata"]["labels"][LABEL_SERVICE] == component)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Everything but the objects of `components`.
    pub fn without(&self, components: &[&str]) -> BTreeMap<Key, Value> {
        self.objects
            .iter()
            .filter(|(_, v)| {
                !components
                    .iter()
                    .any(|c| v["metadata"]["labels"][LABEL_SERVICE] == *c)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn components(&self) -> BTreeSet<String> {
        self.objects
            .values()
            .filter_map(|v| v["metadata"]["labels"][LABEL_SERVICE].as_str())
            .map(str::to_string)
            .collect()
    }

    pub fn names(&self, kind: &str) -> BTreeSet<String> {
        self.objects
            .keys()
            .filter(|k| k.1 == kind)
            .map(|k| k.3.clone())
            .collect()
    }
}

/// Asserts two object maps are equal, naming every object that differs.
#[track_caller]
pub fn assert_same(what: &str, expected: &BTreeMap<Key, Value>, actual: &BTreeMap<Key, Value>) {
    let mut problems = Vec::new();
    let keys: BTreeSet<&Key> = expected.keys().chain(actual.keys()).collect();
    for key in keys {
        match (expected.get(key), actual.get(key)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => problems.push(format!(
                "{key:?} differs:\n  expected {}\n  actual   {}",
                serde_json::to_string(a).unwrap_or_default(),
                serde_json::to_string(b).unwrap_or_default()
            )),
            (Some(_), None) => problems.push(format!("{key:?} is missing")),
            (None, Some(_)) => problems.push(format!("{key:?} should not exist")),
            (None, None) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: {} object(s) differ\n{}",
        problems.len(),
        problems.join("\n")
    );
}

pub use crate::support::written;

/// The components the writes belong to, by `owners`; a write of something no component owns shows up as
/// `(resource/name)` so that it cannot hide.
pub fn written_components(records: &[RequestRecord], owners: &BTreeMap<Written, String>) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| {
            let key = (r.resource.clone(), r.name.clone().unwrap_or_default());
            owners
                .get(&key)
                .cloned()
                .unwrap_or_else(|| format!("({}/{})", key.0, key.1))
        })
        .collect()
}

/// Request-log positions of the writes of each component.
pub fn write_positions(
    records: &[RequestRecord],
    owners: &BTreeMap<Written, String>,
) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in records {
        if let Some(component) = owners.get(&(r.resource.clone(), r.name.clone().unwrap_or_default())) {
            out.entry(component.clone()).or_default().push(r.seq);
        }
    }
    out
}

/// One change the recorder saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub rv: u64,
    pub kind: String,
    pub name: String,
    pub deleted: bool,
    pub object: Value,
}

/// Watches on the workloads and Jobs of the topology namespace; the resourceVersions order them.
pub struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Recorder {
    pub fn seen(&self) -> Vec<Seen> {
        let mut seen = self.seen.lock().expect("recorder lock").clone();
        seen.sort_by_key(|s| s.rv);
        seen
    }

    /// The first resourceVersion at which `kind/name` was Current (healthy) by Keelson's own health rules.
    pub fn first_healthy(&self, kind: &str, name: &str) -> Option<u64> {
        self.seen()
            .into_iter()
            .find(|s| {
                s.kind == kind
                    && s.name == name
                    && !s.deleted
                    && keelson::cluster::health(&s.object).is_current()
            })
            .map(|s| s.rv)
    }

    /// The first resourceVersion at which `kind/name` had a generation above `above` (a spec write).
    pub fn first_spec_change(&self, kind: &str, name: &str, above: i64) -> Option<u64> {
        self.seen()
            .into_iter()
            .find(|s| {
                s.kind == kind
                    && s.name == name
                    && s.object["metadata"]["generation"].as_i64().unwrap_or(0) > above
            })
            .map(|s| s.rv)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn watch(kube: Kube, ar: ApiResource, mut from: String, seen: Arc<Mutex<Vec<Seen>>>) {
    let api: Api<DynamicObject> = Api::namespaced_with(kube.client().clone(), NS, &ar);
    loop {
        let stream = match api.watch(&WatchParams::default(), &from).await {
            Ok(stream) => stream,
            Err(e) => panic!("watch {}: {e}", ar.plural),
        };
        let mut stream = stream.boxed();
        while let Some(event) = stream.try_next().await.unwrap_or(None) {
            let (object, deleted) = match event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => (o, false),
                WatchEvent::Deleted(o) => (o, true),
                WatchEvent::Bookmark(b) => {
                    from = b.metadata.resource_version;
                    continue;
                }
                WatchEvent::Error(e) => panic!("watch {}: {e:?}", ar.plural),
            };
            let rv = object.metadata.resource_version.clone().unwrap_or_default();
            let name = object.metadata.name.clone().unwrap_or_default();
            let mut value = serde_json::to_value(&object).expect("object as JSON");
            value["apiVersion"] = Value::String(ar.api_version.clone());
            value["kind"] = Value::String(ar.kind.clone());
            seen.lock().expect("recorder lock").push(Seen {
                rv: rv.parse().unwrap_or(0),
                kind: ar.kind.clone(),
                name,
                deleted,
                object: value,
            });
            from = rv;
        }
    }
}
