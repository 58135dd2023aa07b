//! The API's semantics over the store, one room per kind of request: `read` (get, list), `write` (create,
//! update, patch, apply, and the commit every write ends in), `delete` (delete, deletecollection, namespaces,
//! garbage collection), `crd` (serving custom resources), `review` (tokens and access reviews, answered
//! and never stored), `workloads` (the glue that runs the simulated control plane, admission on create,
//! Events and Pod logs). No HTTP here: requests arrive parsed, as `request` types.

mod crd;
mod delete;
mod read;
mod review;
mod workloads;
mod write;

use std::sync::Arc;

use serde_json::{Value, json};

use super::controllers::{self, Behaviour, Memory, storage};
use super::defaults::ClusterIps;
use super::request::{RequestContext, Target};
use super::resources::{Registry, ResourceInfo};
use super::status::ApiError;
use super::store::Store;
use write::Managed;

pub(crate) struct State {
    pub registry: Registry,
    pub store: Store,
    pub behaviour: Behaviour,
    /// What the simulated control plane remembers between ticks.
    pub memory: Memory,
    events: workloads::EventLog,
    /// The resourceVersion and time of the last control-plane tick.
    ticked: (u64, std::time::Instant),
    /// The request being handled: its field validation, the warnings it collects.
    pub request: RequestContext,
    cluster_ips: ClusterIps,
    /// CustomResourceDefinitions being installed, by name: when they become Established (and their kinds
    /// served), as the apiextensions-apiserver's establishing controller does a moment after creation.
    crds_installing: std::collections::BTreeMap<String, std::time::Instant>,
    /// CustomResourceDefinitions that are Established, by name.
    crds_established: std::collections::BTreeSet<String>,
}

impl State {
    /// A cluster with the system namespaces, the `kubernetes` Service, `nodes` (Node objects) with their
    /// Leases, and the default StorageClasses.
    pub fn new(behaviour: Behaviour, history: usize, nodes: Vec<Value>) -> Self {
        let mut s = State {
            registry: Registry::with_builtins(),
            store: Store::new(history),
            behaviour,
            memory: Memory::default(),
            events: workloads::EventLog::default(),
            ticked: (0, std::time::Instant::now()),
            request: RequestContext::default(),
            cluster_ips: ClusterIps::default(),
            crds_installing: Default::default(),
            crds_established: Default::default(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let info = s.info("", "namespaces");
            let t = Target {
                info,
                namespace: None,
                name: Some(ns.into()),
                sub: None,
            };
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let _ = s.commit(&t, None, body, Managed::Update("kube-apiserver"), false);
        }
        let info = s.info("", "services");
        let t = Target {
            info,
            namespace: Some("default".into()),
            name: Some("kubernetes".into()),
            sub: None,
        };
        let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 6443}]}});
        let _ = s.commit(&t, None, body, Managed::Update("kube-apiserver"), false);
        for (plural, body) in super::auth::rbac::bootstrap_policy() {
            let t = Target {
                info: s.info(super::auth::rbac::GROUP, plural),
                namespace: None,
                name: body["metadata"]["name"].as_str().map(String::from),
                sub: None,
            };
            let _ = s.commit(&t, None, body, Managed::Update("kube-apiserver"), false);
        }
        for class in storage::default_classes() {
            s.create_system("storage.k8s.io", "storageclasses", class);
        }
        for node in nodes {
            let stored = s.create_system("", "nodes", node.clone());
            if let Some(stored) = stored {
                s.create_system(
                    "coordination.k8s.io",
                    "leases",
                    controllers::nodes::lease(&stored),
                );
            }
        }
        s
    }

    /// An object the cluster starts with; nodes get their status as their kubelet would report it.
    fn create_system(&mut self, group: &str, plural: &str, mut body: Value) -> Option<Value> {
        let info = self.info(group, plural);
        let status = body.as_object_mut().and_then(|m| m.remove("status"));
        let t = Target {
            namespace: info.namespaced.then(|| {
                body["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string()
            }),
            name: body["metadata"]["name"].as_str().map(String::from),
            sub: None,
            info,
        };
        let stored = self
            .commit(&t, None, body, Managed::Update("kube-apiserver"), false)
            .ok()?;
        let Some(status) = status else {
            return Some(stored);
        };
        let mut new = stored.clone();
        new["status"] = status;
        let st = Target {
            sub: Some("status".into()),
            ..t
        };
        let old = self.lookup(&st).ok()?;
        self.commit(&st, Some(old), new, Managed::Update("kubelet"), false)
            .ok()
    }

    pub(super) fn info(&self, group: &str, plural: &str) -> ResourceInfo {
        self.registry
            .all()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
            .unwrap_or_else(|| panic!("built-in resource {plural} missing from the registry"))
    }

    pub(super) fn lookup(&self, t: &Target) -> Result<Arc<Value>, ApiError> {
        self.store
            .get(&t.info.key(), t.ns(), t.name())
            .cloned()
            .ok_or_else(|| ApiError::not_found(&t.info.qualified(), t.name()))
    }

    /// Re-labels a stored object with the apiVersion the request used (all versions share storage).
    pub(super) fn as_version(&self, t: &Target, obj: &Value) -> Value {
        let mut v = obj.clone();
        v["apiVersion"] = json!(t.info.api_version());
        v
    }
}
