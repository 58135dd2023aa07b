//! Topology -> desired Kubernetes objects. Pure and deterministic: the same topology renders
//! byte-identical objects.

use serde::Serialize;

/// Ownership label carried by every object Keelson applies.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "keelson";
/// The component an object belongs to.
pub const LABEL_SERVICE: &str = "keelson.dev/service";
/// The topology (`keelson.yaml` `metadata.name`) an object belongs to.
pub const LABEL_TOPOLOGY: &str = "keelson.dev/topology";
/// sha256 of the canonical object, without the revision.
pub const ANNOTATION_HASH: &str = "keelson.dev/hash";
/// The revision that last wrote the object; stamped outside the hash.
pub const ANNOTATION_REVISION: &str = "keelson.dev/revision";
/// On pod templates: hash of the config the pods read, so a config change rolls exactly those pods.
pub const ANNOTATION_CONFIG_HASH: &str = "keelson.dev/config-hash";

/// Where an object sits in its component's apply order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// ConfigMaps, ServiceAccounts, Roles, raw manifests that are configuration.
    Config,
    /// Kubernetes Services.
    Service,
    /// Jobs that must complete before the workload rolls.
    PreJob,
    /// The Deployment, StatefulSet or DaemonSet.
    Workload,
    /// Jobs that run after the workload is healthy.
    PostJob,
}

/// Identity of a Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One desired object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedObject {
    pub component: String,
    pub stage: Stage,
    pub reference: ObjectRef,
    /// Value of the `keelson.dev/hash` annotation.
    pub hash: String,
    /// The complete object as it will be applied.
    pub body: serde_json::Value,
}
