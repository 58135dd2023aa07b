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
    /// oslo.config option data the components' config files are checked against, per OpenStack release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_schemas: Vec<ConfigSchemaSet>,
    /// Secrets shared by several components (service users' passwords, the message queue's): created
    /// before any component, every component may reference them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretSpec>,
    /// Where the bootstrap Jobs of `database`, `messaging` and `identity` fields connect, and as whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapSpec>,
    /// What Git explicitly gives up: generated Secrets are deleted only when listed here.
    #[serde(default, skip_serializing_if = "Tombstones::is_empty")]
    pub tombstones: Tombstones,
    /// When the daemon may write: cron-scheduled allow and deny windows (Argo CD's sync windows). Empty:
    /// always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_windows: Vec<SyncWindowSpec>,
}

/// One sync window: from each time `schedule` fires, for `duration`, writes are allowed (`allow`) or
/// refused (`deny`). Deny wins over allow; with any allow window, writes happen only inside one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyncWindowSpec {
    pub kind: WindowKind,
    /// A five-field cron schedule (`minute hour day-of-month month day-of-week`) or `@daily`-style
    /// nickname, in `timeZone`.
    pub schedule: String,
    /// How long the window stays open after each start (humantime, e.g. `2h`).
    pub duration: String,
    /// IANA time zone the schedule is read in (`Europe/Berlin`); UTC when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Whether `keelson reconcile` (without `--force`) may apply while this window holds writes back.
    #[serde(default)]
    pub manual_sync: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WindowKind {
    Allow,
    Deny,
}

/// The option data of one OpenStack release (`oslo-config-generator --format yaml` output, kept in the
/// repository). A component's config file is checked when its destination's file name is listed here for
/// the release of the component's image.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigSchemaSet {
    /// The release series (`2025.1`), matched against the tag of each component's image.
    pub release: String,
    /// Option data by the config file's name at its destination (`nova.conf`, `l3_agent.ini`), as
    /// repo-relative paths.
    pub files: BTreeMap<String, String>,
    /// Option data of keystoneauth1's authentication plugins, one group per plugin: the options of the
    /// groups that load a plugin by `auth_type` (`[keystone_authtoken]`, nova's `[neutron]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_plugins: Option<String>,
}

/// Explicit deletions of state Keelson otherwise never prunes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tombstones {
    /// Names of generated Secrets (in the topology's namespace) that may be deleted once no component
    /// declares them any more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

impl Tombstones {
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

/// A Secret Keelson makes: each key generated once, derived from generated keys by a template, or
/// decrypted from an age-encrypted file in the repository.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretSpec {
    pub name: String,
    /// Raising it regenerates every generated key of the Secret (and so every value derived from them).
    #[serde(default)]
    pub rotation: u32,
    /// Keys of the Secret and how each value is made.
    pub data: BTreeMap<String, SecretValueSpec>,
}

/// How one key of a Secret is made: exactly one of `generate`, `template`, `encrypted`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretValueSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generator>,
    /// Characters of a `random` value (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    /// Characters a `random` value is drawn from (default alphanumeric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alphabet: Option<Alphabet>,
    /// Text with `{{ <secret>.<key> }}` references to generated keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Repo-relative path of an age-encrypted file (`*.age`) whose plaintext is the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Generator {
    /// `length` characters drawn uniformly from `alphabet`.
    Random,
    /// 32 random bytes, URL-safe base64 (a Fernet key, as Keystone and cryptography's Fernet use).
    Fernet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Alphabet {
    /// `A-Z a-z 0-9`.
    Alphanumeric,
    /// `a-z 0-9`.
    LowerAlphanumeric,
    /// `0-9 a-f`.
    Hex,
    /// `A-Z a-z 0-9 - _`.
    UrlSafe,
}

impl Alphabet {
    pub fn chars(self) -> &'static [u8] {
        match self {
            Alphabet::Alphanumeric => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            Alphabet::LowerAlphanumeric => b"abcdefghijklmnopqrstuvwxyz0123456789",
            Alphabet::Hex => b"0123456789abcdef",
            Alphabet::UrlSafe => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        }
    }
}

/// A key of a Secret: where a bootstrap Job or template reads a password.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretKeySelector {
    pub secret: String,
    pub key: String,
}

/// The shared services the bootstrap Jobs talk to. Every Job runs Kolla's `kolla-toolbox` image.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BootstrapSpec {
    /// Short Kolla name or full reference of the toolbox image.
    #[serde(default = "default_toolbox_image")]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseServer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging: Option<MessagingServer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityServer>,
}

fn default_toolbox_image() -> String {
    "kolla-toolbox".to_string()
}

/// The MariaDB server databases and users are created in.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatabaseServer {
    pub host: String,
    #[serde(default = "default_mysql_port")]
    pub port: i32,
    #[serde(default = "default_root")]
    pub admin_user: String,
    pub admin_password_from: SecretKeySelector,
}

fn default_mysql_port() -> i32 {
    3306
}
fn default_root() -> String {
    "root".to_string()
}

/// The RabbitMQ server, reached through its management API.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MessagingServer {
    pub host: String,
    #[serde(default = "default_management_port")]
    pub management_port: i32,
    pub admin_user: String,
    pub admin_password_from: SecretKeySelector,
}

fn default_management_port() -> i32 {
    15672
}

/// Keystone, and the admin the identity Jobs act as.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdentityServer {
    pub auth_url: String,
    #[serde(default = "default_admin")]
    pub admin_user: String,
    #[serde(default = "default_admin")]
    pub admin_project: String,
    pub admin_password_from: SecretKeySelector,
    #[serde(default = "default_region")]
    pub region: String,
    /// The project service users are created in.
    #[serde(default = "default_service_project")]
    pub service_project: String,
}

fn default_admin() -> String {
    "admin".to_string()
}
fn default_region() -> String {
    "RegionOne".to_string()
}
fn default_service_project() -> String {
    "service".to_string()
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
    /// The image of the init container that holds a Pod until its `for: SameNode` dependencies' Pods on
    /// the same node are Ready (OpenStack-Helm's kubernetes-entrypoint).
    #[serde(default = "default_entrypoint_image")]
    pub entrypoint: String,
}

impl Default for ImageDefaults {
    fn default() -> Self {
        Self {
            registry: default_registry(),
            namespace: default_image_namespace(),
            tag: default_tag(),
            pull_policy: default_pull_policy(),
            pull_secrets: Vec::new(),
            entrypoint: default_entrypoint_image(),
        }
    }
}

fn default_entrypoint_image() -> String {
    "quay.io/airshipit/kubernetes-entrypoint:latest-ubuntu_jammy".to_string()
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
    /// Whether pods may share the host's process namespace (`hostPID`).
    #[serde(default, rename = "allowHostPID")]
    pub allow_host_pid: bool,
    /// Whether pods may share the host's IPC namespace (`hostIPC`).
    #[serde(default, rename = "allowHostIPC")]
    pub allow_host_ipc: bool,
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
            allow_host_pid: false,
            allow_host_ipc: false,
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
    /// What must be ready before this component is applied: component names, or `{component, for}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    #[serde(default)]
    pub workload: WorkloadKind,
    /// A short Kolla image name (`keystone`) resolved with the topology's defaults, or a full reference.
    /// Required unless the component has no workload and every job names its own image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
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
    /// Share the host's process namespace (libvirt, nova-compute); needs `policy.allowHostPID`.
    #[serde(default, rename = "hostPID")]
    pub host_pid: bool,
    /// Share the host's IPC namespace; needs `policy.allowHostIPC`.
    #[serde(default, rename = "hostIPC")]
    pub host_ipc: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Containers that run to completion, in order, before the main container starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<ContainerSpec>,
    /// Containers that run beside the main one for the pod's lifetime (native sidecars: started before
    /// it, stopped after it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<ContainerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// Hooks of the main container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Keep the component's pods on different nodes: `preferred` or `required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AntiAffinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread: Vec<TopologySpread>,
    /// The PodDisruptionBudget of a replicated workload. Generated with `maxUnavailable: 1` when there is
    /// more than one replica; `enabled: false` turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<DisruptionBudget>,
    /// Secrets Keelson generates for this component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretSpec>,
    /// The component's database and user in MariaDB, created by a bootstrap Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,
    /// The component's RabbitMQ user, vhost and permissions, created by a bootstrap Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging: Option<MessagingSpec>,
    /// The component's Keystone service, endpoints and service user, created by bootstrap Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentitySpec>,
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

/// One `dependsOn` entry: what of `component` this one waits for before it is applied. Written as the
/// component's name alone (wait until it is healthy) or as `{component: NAME, for: Healthy|Service|SameNode}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Dependency {
    pub component: String,
    #[serde(rename = "for", skip_serializing_if = "WaitFor::is_healthy")]
    pub wait_for: WaitFor,
}

impl Dependency {
    /// A dependency on `component` being healthy, as a plain name in `dependsOn` says.
    pub fn healthy(component: impl Into<String>) -> Self {
        Self {
            component: component.into(),
            wait_for: WaitFor::Healthy,
        }
    }
}

impl From<&str> for Dependency {
    fn from(component: &str) -> Self {
        Dependency::healthy(component)
    }
}

/// How much of a dependency must be ready before its dependent starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum WaitFor {
    /// Every object of the dependency healthy, its post-jobs finished.
    #[default]
    Healthy,
    /// The dependency's workload available (every replica Ready, so its Service has ready endpoints);
    /// its post-jobs may still run.
    Service,
    /// DaemonSet on DaemonSet, per node: the dependent is applied once the dependency's objects are, and
    /// each of its Pods waits in an init container until the dependency's Pod on the same node is Ready.
    SameNode,
}

impl WaitFor {
    pub fn is_healthy(&self) -> bool {
        *self == WaitFor::Healthy
    }

    /// How `keelson graph` and the plan name it.
    pub fn label(self) -> &'static str {
        match self {
            WaitFor::Healthy => "healthy",
            WaitFor::Service => "service",
            WaitFor::SameNode => "same node",
        }
    }
}

impl<'de> Deserialize<'de> for Dependency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DependencyVisitor)
    }
}

struct DependencyVisitor;

impl<'de> serde::de::Visitor<'de> for DependencyVisitor {
    type Value = Dependency;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a component name, or a mapping with `component` and `for`")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Dependency, E> {
        Ok(Dependency::healthy(name))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Dependency, A::Error> {
        const FIELDS: &[&str] = &["component", "for"];
        let mut component: Option<String> = None;
        let mut wait_for: Option<WaitFor> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "component" if component.is_none() => component = Some(map.next_value()?),
                "for" if wait_for.is_none() => wait_for = Some(map.next_value()?),
                "component" => return Err(serde::de::Error::duplicate_field("component")),
                "for" => return Err(serde::de::Error::duplicate_field("for")),
                other => return Err(serde::de::Error::unknown_field(other, FIELDS)),
            }
        }
        let component = component.ok_or_else(|| serde::de::Error::missing_field("component"))?;
        Ok(Dependency {
            component,
            wait_for: wait_for.unwrap_or_default(),
        })
    }
}

impl ServiceSpec {
    /// The names in `dependsOn`, in order.
    pub fn dependency_names(&self) -> Vec<String> {
        self.depends_on.iter().map(|d| d.component.clone()).collect()
    }

    /// The dependencies waited for less than fully healthy, by name.
    pub fn relaxed_dependencies(&self) -> BTreeMap<String, WaitFor> {
        self.depends_on
            .iter()
            .filter(|d| !d.wait_for.is_healthy())
            .map(|d| (d.component.clone(), d.wait_for))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
    DaemonSet,
    /// No long-running workload: the component is its Secrets, jobs and manifests.
    None,
}

/// A database (or several, one user) in MariaDB: `CREATE DATABASE IF NOT EXISTS`, the user with its
/// password, `GRANT ALL` on each database.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatabaseSpec {
    pub name: String,
    /// More databases the same user owns (`nova_api`, `nova_cell0` beside `nova`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_names: Vec<String>,
    pub user: String,
    pub password_from: SecretKeySelector,
}

/// A RabbitMQ user with all permissions on its vhost.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MessagingSpec {
    pub user: String,
    #[serde(default = "default_vhost")]
    pub vhost: String,
    pub password_from: SecretKeySelector,
}

fn default_vhost() -> String {
    "/".to_string()
}

/// A Keystone catalog entry and service user. For `serviceType: identity` (Keystone itself) the Job is
/// `keystone-manage bootstrap`, which creates the admin, the catalog entry and the region.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdentitySpec {
    pub service_type: String,
    pub service_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub endpoints: Endpoints,
    /// Defaults to the topology's `bootstrap.identity.region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The service user, in the service project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_from: Option<SecretKeySelector>,
    /// Roles the service user holds in the service project (default `admin`, `service`).
    #[serde(default = "default_roles")]
    pub roles: Vec<String>,
    /// A domain the service owns and its admin (Heat's stack domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainSpec>,
}

fn default_roles() -> Vec<String> {
    vec!["admin".to_string(), "service".to_string()]
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Endpoints {
    pub public: String,
    pub internal: String,
    pub admin: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DomainSpec {
    pub name: String,
    pub admin_user: String,
    pub admin_password_from: SecretKeySelector,
    /// Roles created for the domain's users (Heat's `heat_stack_user`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// An init container or sidecar: exec form, no Kolla config.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerSpec {
    pub name: String,
    /// Defaults to the component's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Names of the component's volumes to mount, at the same paths as the main container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub privileged: bool,
    /// Sidecars only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
}

/// `postStart` and `preStop` hooks: exactly one handler each.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Lifecycle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_start: Option<Hook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<Hook>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep: Option<SleepHook>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SleepHook {
    pub seconds: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AntiAffinity {
    /// Spread over nodes where possible.
    Preferred,
    /// Never two pods on one node.
    Required,
}

/// One `topologySpreadConstraints` entry over the component's pods.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TopologySpread {
    /// A node label, e.g. `topology.kubernetes.io/zone`.
    pub topology_key: String,
    #[serde(default = "default_max_skew")]
    pub max_skew: i32,
    #[serde(default)]
    pub when_unsatisfiable: WhenUnsatisfiable,
}

fn default_max_skew() -> i32 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum WhenUnsatisfiable {
    #[default]
    ScheduleAnyway,
    DoNotSchedule,
}

/// A PodDisruptionBudget: at most one of `maxUnavailable` and `minAvailable`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DisruptionBudget {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<i32>,
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
    /// `HostToContainer` or `Bidirectional` (the latter needs a privileged container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_propagation: Option<MountPropagation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum MountPropagation {
    None,
    HostToContainer,
    Bidirectional,
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
    /// The command `kolla_start` runs for this job. Exactly one of `command` and `script`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// A bash script run instead of a single command (for steps that must check before they act).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Consecutive jobs of one phase with the same group run at the same time; otherwise each job
    /// completes before the next starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
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
