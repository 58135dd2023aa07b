//! The operator's language: serde types for `keelson.yaml` (kind `Topology`) and `services/*.yaml`
//! (kind `Service`). Every struct rejects unknown fields so that a typo is an error, not a silent no-op.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "keelson.dev/v1";

/// `metadata` of a Keelson document.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The root document, `keelson.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TopologyDocument {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: TopologySpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TopologySpec {
    /// Namespace every component is deployed into.
    pub namespace: String,
    #[serde(default)]
    pub images: ImageDefaults,
    /// Default time a component may take to become healthy (humantime, e.g. `10m`).
    #[serde(default = "default_health_timeout")]
    pub health_timeout: String,
    #[serde(default)]
    pub policy: Policy,
}

fn default_health_timeout() -> String {
    "10m".to_string()
}

/// How short Kolla image names are resolved: `<registry>/<namespace>/<name>:<tag>`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageDefaults {
    #[serde(default = "default_registry")]
    pub registry: String,
    #[serde(default = "default_image_namespace")]
    pub namespace: String,
    #[serde(default = "default_tag")]
    pub tag: String,
    #[serde(default = "default_pull_policy")]
    pub pull_policy: PullPolicy,
    /// Secrets (existing in the target namespace) used to pull images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<String>,
}

impl Default for ImageDefaults {
    fn default() -> Self {
        Self {
            registry: default_registry(),
            namespace: default_image_namespace(),
            tag: default_tag(),
            pull_policy: default_pull_policy(),
            pull_secrets: Vec::new(),
        }
    }
}

fn default_registry() -> String {
    "quay.io".to_string()
}
fn default_image_namespace() -> String {
    "openstack.kolla".to_string()
}
fn default_tag() -> String {
    "2025.1-ubuntu-noble".to_string()
}
fn default_pull_policy() -> PullPolicy {
    PullPolicy::IfNotPresent
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// What Keelson may do in the cluster on behalf of this repository.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    /// Namespaces objects may be applied to. Empty means only the topology's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_namespaces: Vec<String>,
    /// Extra kinds raw manifests may use (`Kind` or `group/Kind`). Cluster-scoped kinds are refused unless listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_kinds: Vec<String>,
    /// Largest share of owned objects (percent) one pass may delete without an explicit allowance.
    #[serde(default = "default_prune_budget")]
    pub prune_budget_percent: u32,
    /// Whether PersistentVolumeClaims and objects marked persistent may be deleted.
    #[serde(default)]
    pub prune_persistent_data: bool,
    /// Whether components may use the host's network namespace.
    #[serde(default)]
    pub allow_host_network: bool,
    /// Whether containers may run privileged.
    #[serde(default)]
    pub allow_privileged: bool,
    /// Whether a component with database migrations (pre-jobs) may move to an older OpenStack release
    /// without a `Keelson-Allow-Downgrade` commit trailer.
    #[serde(default)]
    pub allow_schema_downgrade: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allowed_namespaces: Vec::new(),
            allowed_kinds: Vec::new(),
            prune_budget_percent: default_prune_budget(),
            prune_persistent_data: false,
            allow_host_network: false,
            allow_privileged: false,
            allow_schema_downgrade: false,
        }
    }
}

fn default_prune_budget() -> u32 {
    30
}

/// One component document, `services/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceDocument {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ServiceSpec,
}

/// One component: one workload plus its jobs, config and raw manifests.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The OpenStack project this component belongs to (`nova` for nova-api); defaults to the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub workload: WorkloadKind,
    /// A short Kolla image name (`keystone`) resolved with the topology's defaults, or a full reference.
    pub image: String,
    #[serde(default = "default_replicas")]
    pub replicas: i32,
    /// The command Kolla's `kolla_start` runs, written into `config.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Arguments appended to `command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub host_network: bool,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_files: Vec<ConfigFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobSpec>,
    /// Overrides the topology's default health timeout (humantime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout: Option<String>,
    /// Raw Kubernetes manifests (repo-relative paths) owned by this component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<String>,
    /// Whether Keelson may delete and recreate the workload when the API rejects a change to an immutable field.
    #[serde(default)]
    pub recreate_on_immutable_change: bool,
}

fn default_replicas() -> i32 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// An environment variable: a literal value, or a reference to an existing Secret or ConfigMap key.
/// Secret values never live in Git.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyRef {
    pub name: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Port {
    pub name: String,
    pub port: i32,
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// Whether a Kubernetes Service exposes this port (default true).
    #[serde(default = "default_true")]
    pub expose: bool,
}

fn default_protocol() -> Protocol {
    Protocol::TCP
}
fn default_true() -> bool {
    true
}

#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Protocol {
    TCP,
    UDP,
    SCTP,
}

/// A readiness probe: exactly one of `httpGet`, `tcpSocket`, `exec`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Probe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpGetProbe {
    pub path: String,
    pub port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpSocketProbe {
    pub port: i32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecProbe {
    pub command: Vec<String>,
}

/// Requests and limits as Kubernetes quantities (`500m`, `1Gi`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// A volume mounted into the component's container: exactly one source.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<NamedSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<NamedSource>,
    /// Persistent storage: a volumeClaimTemplate for StatefulSets, a PersistentVolumeClaim otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<PersistentSource>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmptyDirSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostPathSource {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub type_: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamedSource {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PersistentSource {
    /// Requested size as a Kubernetes quantity (`10Gi`).
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// How the volume may be mounted; what the storage class can provide decides what works.
    #[serde(default)]
    pub access_mode: AccessMode,
}

/// A PersistentVolumeClaim's access mode. ReadWriteOnce (one node at a time) is what block storage and
/// node-local classes provide; ReadWriteMany needs shared storage (NFS, CephFS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum AccessMode {
    #[default]
    ReadWriteOnce,
    ReadOnlyMany,
    ReadWriteMany,
    ReadWriteOncePod,
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadOnlyMany => "ReadOnlyMany",
            AccessMode::ReadWriteMany => "ReadWriteMany",
            AccessMode::ReadWriteOncePod => "ReadWriteOncePod",
        }
    }
}

/// A configuration file from the repository, delivered the Kolla way via `config.json`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigFile {
    /// Repo-relative path of the file (`config/keystone/keystone.conf`).
    pub source: String,
    /// Absolute destination inside the container (`/etc/keystone/keystone.conf`).
    pub dest: String,
    #[serde(default = "default_owner")]
    pub owner: String,
    #[serde(default = "default_perm")]
    pub perm: String,
}

fn default_owner() -> String {
    "root".to_string()
}
fn default_perm() -> String {
    "0600".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum JobPhase {
    /// Runs to completion before the workload is applied (e.g. `db_sync`).
    Pre,
    /// Runs after the workload is healthy (e.g. `bootstrap`).
    Post,
}

/// A one-shot task of the component. Its Kubernetes name carries a hash of its spec and image.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobSpec {
    pub name: String,
    pub phase: JobPhase,
    /// The command `kolla_start` runs for this job.
    pub command: String,
    /// Defaults to the component's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Defaults to 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// Overrides the component's health timeout for this job (humantime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}
