//! The operator's language: parse and validate a [`Snapshot`] into a [`Topology`], and order its
//! components into dependency waves. Pure: values in, values out.

mod checks;
mod diagnostics;
pub mod graph;
pub mod image;
mod load;
pub mod names;
pub mod oslo;
pub mod policy;
pub mod secrets;
pub mod spec;
mod suggest;
pub mod sync_windows;

use std::collections::BTreeMap;
use std::time::Duration;

pub use diagnostics::{Diagnostic, Diagnostics};
pub use load::{
    Loaded, MAX_REPLICAS, SERVICES_DIR, SHARED_COMPONENT, TOPOLOGY_FILE, load, load_with_warnings,
};
pub use spec::*;

/// A validated topology: every reference resolved, every file read, every name checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// `metadata.name` of `keelson.yaml`; scopes ownership so two topologies never prune each other.
    pub name: String,
    /// `spec` of `keelson.yaml` as written (defaults filled in).
    pub spec: TopologySpec,
    /// `spec.healthTimeout`, parsed.
    pub health_timeout: Duration,
    /// Components by name.
    pub components: BTreeMap<String, Component>,
    /// `spec.syncWindows`, parsed.
    pub sync_windows: sync_windows::SyncWindows,
}

/// One validated component.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub name: String,
    /// `spec.project`, or the component name when unset.
    pub project: String,
    /// The file the component was declared in (`services/keystone.yaml`).
    pub file: String,
    pub spec: ServiceSpec,
    /// `spec.image` resolved against the topology's image defaults.
    pub image: String,
    /// Each job's image, resolved, in `spec.jobs` order.
    pub job_images: Vec<String>,
    /// `spec.healthTimeout`, or the topology default, parsed.
    pub health_timeout: Duration,
    /// Contents of `spec.configFiles`, in the same order.
    pub config_contents: Vec<String>,
    /// Raw manifests, one entry per YAML document, in file order.
    pub manifests: Vec<RawManifest>,
    /// Resolved images of the init containers and sidecars, by container name.
    pub container_images: BTreeMap<String, String>,
    /// The resolved `kolla-toolbox` image the bootstrap Jobs run, when the component has any.
    pub toolbox_image: Option<String>,
    /// Ciphertext of every age-encrypted file `spec.secrets` names, by repo-relative path.
    pub encrypted_files: BTreeMap<String, Vec<u8>>,
}

impl Component {
    /// The Secrets this component declares (for the shared component: keelson.yaml's).
    pub fn secrets(&self) -> &[SecretSpec] {
        &self.spec.secrets
    }
}

/// One document from a component's raw manifest files.
#[derive(Debug, Clone, PartialEq)]
pub struct RawManifest {
    pub file: String,
    /// 1-based line where the document starts.
    pub line: usize,
    pub object: serde_json::Value,
}
