//! The API's semantics over the store, one room per kind of request: `read` (get, list), `write` (create,
//! update, patch, apply, and the commit every write ends in), `delete` (delete, deletecollection, namespaces,
//! garbage collection), `crd` (serving custom resources), `review` (tokens and access reviews, answered
//! and never stored), `workloads` (the glue that runs the simulated
//! controllers). No HTTP here: requests arrive parsed, as `request` types.

mod crd;
mod delete;
mod read;
mod review;
mod workloads;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::controllers::{Behaviour, Tracked};
use super::defaults::ClusterIps;
use super::request::{RequestContext, Target};
use super::resources::{Registry, ResKey, ResourceInfo};
use super::status::ApiError;
use super::store::Store;
use write::Managed;

/// A stored object's address: resource, namespace (empty when cluster-scoped), name.
pub(crate) type ObjKey = (ResKey, String, String);

pub(crate) struct State {
    pub registry: Registry,
    pub store: Store,
    pub tracked: HashMap<ObjKey, Tracked>,
    pub behaviour: Behaviour,
    /// The request being handled: its field validation, the warnings it collects.
    pub request: RequestContext,
    cluster_ips: ClusterIps,
}

impl State {
    pub fn new(behaviour: Behaviour, history: usize) -> Self {
        let mut s = State {
            registry: Registry::with_builtins(),
            store: Store::new(history),
            tracked: HashMap::new(),
            behaviour,
            request: RequestContext::default(),
            cluster_ips: ClusterIps::default(),
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
        s
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
