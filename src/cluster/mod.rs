//! The only door to Kubernetes: client construction, discovery, server-side apply, delete, reading
//! the live objects Keelson owns, object health, and inventory storage.
//!
//! Every request goes through [`Kube`], which retries transient failures in one place
//! ([`RetryPolicy`]) and names the object first in every error.

mod create;
pub mod error;
pub mod events;
pub mod health;
pub mod inventory;
pub mod lease;
pub mod pods;
pub mod reach;
pub mod retry;
pub mod view;
pub mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde::Serialize;
use serde_json::Value;

pub use crate::object::ObjectRef;
pub use create::Created;
pub use error::{ClusterError, Verb};
pub use events::EventRecord;
pub use health::{Health, HealthStatus, has_status_rules, health};
pub use kube::api::PropagationPolicy;
pub use lease::{LeaseRecord, LeaseWrite};
pub use reach::{AddressFrom, Retrier};
pub use retry::RetryPolicy;
pub use view::{Changes, ClusterView};
pub use watch::WatchFilter;

use crate::object::{LABEL_MANAGED_BY, LABEL_TOPOLOGY, MANAGED_BY_VALUE};

/// The longest wait for a connection to the API server (less when `--request-timeout` is shorter).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a pod's service account credentials are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The field manager for every object Keelson applies.
pub const FIELD_MANAGER: &str = "keelson";

/// Where the Kubernetes API is.
#[derive(Clone)]
pub enum Target {
    /// The pod's service account: the API server from `KUBERNETES_SERVICE_HOST` and
    /// `KUBERNETES_SERVICE_PORT`, the token, CA bundle and namespace from the files in `service_account_dir`
    /// (in a pod, [`SERVICE_ACCOUNT_DIR`]).
    InCluster { service_account_dir: PathBuf },
    /// A kubeconfig file (`None`: `$KUBECONFIG` or `~/.kube/config`) and optionally one of its contexts.
    Kubeconfig {
        path: Option<PathBuf>,
        context: Option<String>,
    },
    /// A kubeconfig held in memory (e.g. the embedded simulator's) and optionally one of its contexts.
    InlineKubeconfig {
        kubeconfig: kube::config::Kubeconfig,
        context: Option<String>,
    },
    /// A ready client. Its own retry layer stays as it was built; prefer the kubeconfig variants, whose
    /// clients leave all retrying to [`Kube`].
    Client(kube::Client),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::InCluster { service_account_dir } => {
                write!(
                    f,
                    "in-cluster (service account in {})",
                    service_account_dir.display()
                )
            }
            Target::Kubeconfig { path, context } => {
                match path {
                    Some(path) => write!(f, "kubeconfig {}", path.display())?,
                    None => f.write_str("kubeconfig")?,
                }
                if let Some(c) = context {
                    write!(f, " context {c}")?;
                }
                Ok(())
            }
            Target::InlineKubeconfig { kubeconfig, context } => {
                let server = kubeconfig
                    .clusters
                    .first()
                    .and_then(|c| c.cluster.as_ref())
                    .and_then(|c| c.server.clone());
                write!(f, "kubeconfig for {}", server.unwrap_or_default())?;
                if let Some(c) = context {
                    write!(f, " context {c}")?;
                }
                Ok(())
            }
            Target::Client(_) => f.write_str("client"),
        }
    }
}

/// `User-Agent` of Keelson's requests when nothing more specific is given: `keelson/<version>`.
pub fn default_user_agent() -> String {
    format!("keelson/{}", env!("CARGO_PKG_VERSION"))
}

/// How [`connect_with`] builds the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Sent with every request, so that API server audit logs (and the simulator's request log) tell
    /// replicas apart.
    pub user_agent: String,
    /// Bounds each request (connecting, sending, and every wait for the answer), as kubectl's
    /// `--request-timeout` does; a request that times out is transient and retried by [`RetryPolicy`].
    /// Watches, which stay open for minutes, are bounded only while connecting and sending. `None`: no
    /// bound beyond kube's connect timeout.
    pub request_timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            user_agent: default_user_agent(),
            request_timeout: None,
        }
    }
}

/// Build a handle for `target`. Retries of the underlying client are turned off: [`Kube`] retries.
pub async fn connect(target: Target) -> Result<Kube, ClusterError> {
    connect_with(target, &ConnectOptions::default()).await
}

/// Like [`connect`], sending `user_agent` with every request.
pub async fn connect_as(target: Target, user_agent: &str) -> Result<Kube, ClusterError> {
    let options = ConnectOptions {
        user_agent: user_agent.to_string(),
        ..ConnectOptions::default()
    };
    connect_with(target, &options).await
}

/// Build a handle for `target` as `options` say. A ready [`Target::Client`] keeps its own headers and
/// timeouts.
pub async fn connect_with(target: Target, options: &ConnectOptions) -> Result<Kube, ClusterError> {
    let what = format!("{target:?}");
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| ClusterError::Connect {
        target: what.clone(),
        source,
    };
    let (mut config, from) = match target {
        Target::Client(client) => return Ok(Kube::new(client)),
        Target::InCluster { service_account_dir } => (
            in_cluster_config(&service_account_dir).map_err(|e| fail(e.into()))?,
            AddressFrom::InCluster,
        ),
        Target::InlineKubeconfig { kubeconfig, context } => (
            kube::Config::from_custom_kubeconfig(kubeconfig, &kubeconfig_options(context))
                .await
                .map_err(|e| fail(Box::new(e)))?,
            AddressFrom::Given,
        ),
        Target::Kubeconfig { path, context } => {
            let kubeconfig = read_kubeconfig(path)?;
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kubeconfig_options(context))
                .await
                .map_err(|e| fail(Box::new(e)))?;
            (config, AddressFrom::Kubeconfig)
        }
    };
    let server = config.cluster_url.to_string();
    let server = server.strip_suffix('/').unwrap_or(&server).to_string();
    config.default_retry = false;
    config
        .headers
        .push((::http::header::USER_AGENT, user_agent_header(&options.user_agent)));
    // A TCP connect and TLS handshake take milliseconds; a server that accepts nothing for this long is
    // not going to.
    config.connect_timeout = Some(
        options
            .request_timeout
            .map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT)),
    );
    if let Some(timeout) = options.request_timeout {
        config.write_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        // Counted from each request, not from when its pooled connection went idle.
        config.reset_reader_on_write = true;
    }
    let mut watch_config = config.clone();
    watch_config.read_timeout = None;
    let client = kube::Client::try_from(config).map_err(|e| fail(Box::new(e)))?;
    let watch_client = kube::Client::try_from(watch_config).map_err(|e| fail(Box::new(e)))?;
    Ok(Kube::with_watch_client(
        client,
        watch_client,
        Retrier::new(server, from),
    ))
}

/// The client configuration a pod's service account gives, as client-go's `rest.InClusterConfig` builds it:
/// the server from `KUBERNETES_SERVICE_HOST`/`_PORT`, and `token`, `ca.crt` and `namespace` from `dir`. The
/// token and the CA are re-read from their files as they rotate.
fn in_cluster_config(dir: &std::path::Path) -> Result<kube::Config, String> {
    let env = |name: &str| match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
        _ => Err(format!("{name} is not set (is this running in a pod?)")),
    };
    let host = env("KUBERNETES_SERVICE_HOST")?;
    let port: u16 = env("KUBERNETES_SERVICE_PORT")?
        .parse()
        .map_err(|e| format!("KUBERNETES_SERVICE_PORT: {e}"))?;
    let host = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => host,
    };
    let url: ::http::Uri = format!("https://{host}:{port}")
        .parse()
        .map_err(|e| format!("KUBERNETES_SERVICE_HOST/_PORT: {e}"))?;
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let namespace = String::from_utf8_lossy(&read("namespace")?).trim().to_string();
    let ca_file = dir.join("ca.crt");
    let ca = read("ca.crt")?;
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let roots = CertificateDer::pem_slice_iter(&ca)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    if roots.is_empty() {
        return Err(format!("{}: no PEM certificate in it", ca_file.display()));
    }
    let token_file = dir.join("token");
    // Read once here so that a missing or empty token is named now, not at the first request.
    if String::from_utf8_lossy(&read("token")?).trim().is_empty() {
        return Err(format!("{}: empty", token_file.display()));
    }
    let mut config = kube::Config::new(url);
    config.default_namespace = if namespace.is_empty() {
        "default".into()
    } else {
        namespace
    };
    config.root_cert = Some(roots);
    config.root_cert_file = Some(ca_file);
    config.auth_info = kube::config::AuthInfo {
        token_file: Some(token_file.display().to_string()),
        ..Default::default()
    };
    Ok(config)
}

/// Writes `kubeconfig` to `path` with `namespace` as the namespace of every context, so that `kubectl
/// --kubeconfig path get pods` looks where the topology lives.
pub fn write_kubeconfig_for_namespace(
    kubeconfig: &kube::config::Kubeconfig,
    namespace: &str,
    path: &std::path::Path,
) -> Result<(), ClusterError> {
    let mut kubeconfig = kubeconfig.clone();
    for context in kubeconfig.contexts.iter_mut().filter_map(|c| c.context.as_mut()) {
        context.namespace = Some(namespace.to_string());
    }
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| ClusterError::Kubeconfig {
        path: path.to_path_buf(),
        named_by: "the file to write",
        source,
    };
    let text = serde_yaml::to_string(&kubeconfig).map_err(|e| failed(Box::new(e)))?;
    std::fs::write(path, text).map_err(|e| failed(Box::new(e)))
}

/// The kubeconfig to use: the file given, else the files `$KUBECONFIG` lists (merged as kubectl merges
/// them), else `~/.kube/config`. A file that is not there is named, with where its name came from.
fn read_kubeconfig(path: Option<PathBuf>) -> Result<kube::config::Kubeconfig, ClusterError> {
    let (paths, named_by) = match path {
        Some(path) => (vec![path], "--kubeconfig"),
        None => {
            let listed: Vec<PathBuf> = std::env::var_os("KUBECONFIG")
                .map(|v| {
                    std::env::split_paths(&v)
                        .filter(|p| !p.as_os_str().is_empty())
                        .collect()
                })
                .unwrap_or_default();
            if listed.is_empty() {
                let home = std::env::home_dir().unwrap_or_default();
                (vec![home.join(".kube").join("config")], "the default location")
            } else {
                (listed, "$KUBECONFIG")
            }
        }
    };
    let mut merged = kube::config::Kubeconfig::default();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| ClusterError::Kubeconfig {
            path: path.clone(),
            named_by,
            source: Box::new(source),
        })?;
        let invalid = |source: kube::config::KubeconfigError| ClusterError::Kubeconfig {
            path: path.clone(),
            named_by,
            source: Box::new(source),
        };
        let file = kube::config::Kubeconfig::from_yaml(&text).map_err(invalid)?;
        merged = merged.merge(file).map_err(invalid)?;
    }
    Ok(merged)
}

fn kubeconfig_options(context: Option<String>) -> kube::config::KubeConfigOptions {
    kube::config::KubeConfigOptions {
        context,
        cluster: None,
        user: None,
    }
}

/// A header value from `agent`; characters a header cannot carry (an odd pod name) become `_`.
fn user_agent_header(agent: &str) -> ::http::HeaderValue {
    let printable: String = agent
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' })
        .collect();
    ::http::HeaderValue::from_str(&printable).unwrap_or_else(|_| ::http::HeaderValue::from_static("keelson"))
}

/// An apiVersion + kind pair, the key for discovery and listing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct KindRef {
    pub api_version: String,
    pub kind: String,
}

impl KindRef {
    pub fn new(api_version: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            api_version: api_version.into(),
            kind: kind.into(),
        }
    }
    pub fn of(object: &ObjectRef) -> Self {
        Self::new(object.api_version.clone(), object.kind.clone())
    }
}

impl std::fmt::Display for KindRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.api_version)
    }
}

/// Options of [`Kube::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyOptions {
    /// Ask the server to validate and compute the result without persisting it.
    pub dry_run: bool,
    /// Take over fields other managers own (Git wins).
    pub force: bool,
    pub field_manager: String,
    /// Before applying, GET the object and refuse if it exists without Keelson's ownership labels.
    /// Set for objects Keelson believes it is creating (not in the owned list), so a same-named
    /// object someone else made is never silently taken over.
    pub create_guard: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            force: true,
            field_manager: FIELD_MANAGER.to_string(),
            create_guard: false,
        }
    }
}

/// What a write did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    Created,
    Configured,
    Unchanged,
    Deleted,
    Skipped,
    Failed,
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChangeKind::Created => "created",
            ChangeKind::Configured => "configured",
            ChangeKind::Unchanged => "unchanged",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Skipped => "skipped",
            ChangeKind::Failed => "failed",
        })
    }
}

/// One object's line in a [`ChangeSet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeSetEntry {
    pub object: ObjectRef,
    pub change: ChangeKind,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a set of writes did, object by object, including the ones that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangeSet {
    pub entries: Vec<ChangeSetEntry>,
}

impl ChangeSet {
    pub fn push(&mut self, object: ObjectRef, change: ChangeKind, message: Option<String>) {
        self.entries.push(ChangeSetEntry {
            object,
            change,
            message,
        });
    }
    pub fn count(&self, change: ChangeKind) -> usize {
        self.entries.iter().filter(|e| e.change == change).count()
    }
    pub fn extend(&mut self, other: ChangeSet) {
        self.entries.extend(other.entries);
    }
}

/// The result of one apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The object as the server returned it.
    pub object: Value,
    /// Created/Configured/Unchanged when known (the create guard's read tells); Configured otherwise.
    pub change: ChangeKind,
}

/// Options of [`Kube::delete`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteOptions {
    pub propagation: PropagationPolicy,
    pub dry_run: bool,
}

impl Default for DeleteOptions {
    fn default() -> Self {
        Self {
            propagation: PropagationPolicy::Background,
            dry_run: false,
        }
    }
}

/// The result of one delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// It was not there (already deleted, perhaps by a previous attempt).
    AlreadyGone,
}

type DiscoveryCache = HashMap<KindRef, (ApiResource, ApiCapabilities)>;

/// A connection to one cluster: a client, a discovery cache and the retry policy.
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
    /// For watches, which stay open for minutes: no per-request timeout.
    watch_client: kube::Client,
    discovery: Arc<Mutex<DiscoveryCache>>,
    retry: Retrier,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube")
            .field("server", &self.retry.server())
            .field("retry", &self.retry.policy)
            .finish_non_exhaustive()
    }
}

/// The label selector for every object `topology` owns.
pub fn owned_selector(topology: &str) -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE},{LABEL_TOPOLOGY}={topology}")
}

/// Whether `live` carries Keelson's ownership labels (and, if `topology` is given, that topology's).
pub fn is_owned(live: &Value, topology: Option<&str>) -> bool {
    let labels = live.pointer("/metadata/labels");
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    label(LABEL_MANAGED_BY) == Some(MANAGED_BY_VALUE)
        && topology.is_none_or(|t| label(LABEL_TOPOLOGY) == Some(t))
}

/// The identity of a JSON object: apiVersion, kind, metadata.name and metadata.namespace.
pub fn object_ref(obj: &Value) -> Result<ObjectRef, ClusterError> {
    let text = |p: &str| obj.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty());
    let kind = text("/kind");
    let name = text("/metadata/name");
    let what = format!("{} {}", kind.unwrap_or("object"), name.unwrap_or("<unnamed>"));
    let invalid = |reason: &str| ClusterError::InvalidObject {
        object: what.clone(),
        reason: reason.into(),
    };
    Ok(ObjectRef {
        api_version: text("/apiVersion")
            .ok_or_else(|| invalid("apiVersion missing"))?
            .to_string(),
        kind: kind.ok_or_else(|| invalid("kind missing"))?.to_string(),
        namespace: text("/metadata/namespace").map(str::to_string),
        name: name.ok_or_else(|| invalid("metadata.name missing"))?.to_string(),
    })
}

impl Kube {
    pub fn new(client: kube::Client) -> Self {
        let retry = Retrier::new("the API server".into(), AddressFrom::Given);
        Self::with_watch_client(client.clone(), client, retry)
    }

    fn with_watch_client(client: kube::Client, watch_client: kube::Client, retry: Retrier) -> Self {
        Self {
            client,
            watch_client,
            discovery: Arc::default(),
            retry,
        }
    }

    /// The API server's address, as errors name it.
    pub fn server(&self) -> &str {
        self.retry.server()
    }

    /// A handle to an address where no API server listens, for tests of code paths that send no request.
    /// Must be called inside a Tokio runtime.
    #[cfg(test)]
    pub(crate) fn unreachable() -> Self {
        let config = kube::Config::new(::http::Uri::from_static("http://127.0.0.1:9"));
        match kube::Client::try_from(config) {
            Ok(client) => Self::new(client),
            Err(e) => panic!("a client for an unreachable address: {e}"),
        }
    }

    /// Replace the retry policy (tests shorten it; `max_attempts: 1` disables retries).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry.policy = retry;
        self
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    fn watch_client(&self) -> &kube::Client {
        &self.watch_client
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry.policy
    }

    /// Map a kind to its resource. Served from the cache; on a miss, the kind's group-version is
    /// discovered again (once per call), so kinds added by a CRD a moment ago are found.
    pub async fn resolve(&self, kind: &KindRef) -> Result<(ApiResource, ApiCapabilities), ClusterError> {
        if let Some(hit) = self.cache().get(kind) {
            return Ok(hit.clone());
        }
        let gv: GroupVersion = kind
            .api_version
            .parse()
            .map_err(|_| ClusterError::InvalidObject {
                object: kind.to_string(),
                reason: format!("invalid apiVersion {:?}", kind.api_version),
            })?;
        let what = kind.to_string();
        let fetched = self
            .retry
            .run(|| async {
                kube::discovery::pinned_group(&self.client, &gv)
                    .await
                    .map_err(|e| ClusterError::from_kube(&what, Verb::Discover, e))
            })
            .await;
        let group = match fetched {
            Ok(group) => group,
            Err(e) if e.is_not_found() => {
                return Err(ClusterError::UnknownKind {
                    api_version: kind.api_version.clone(),
                    kind: kind.kind.clone(),
                });
            }
            Err(e) => return Err(e),
        };
        let mut cache = self.cache();
        for (ar, caps) in group.versioned_resources(&gv.version) {
            cache.insert(KindRef::new(ar.api_version.clone(), ar.kind.clone()), (ar, caps));
        }
        cache.get(kind).cloned().ok_or_else(|| ClusterError::UnknownKind {
            api_version: kind.api_version.clone(),
            kind: kind.kind.clone(),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, DiscoveryCache> {
        // A panic elsewhere while holding the lock leaves a usable map; the cache is only a cache.
        self.discovery
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The dynamic API for `object`'s kind and namespace.
    async fn api_for(&self, object: &ObjectRef) -> Result<Api<DynamicObject>, ClusterError> {
        let (ar, caps) = self.resolve(&KindRef::of(object)).await?;
        match (&caps.scope, &object.namespace) {
            (Scope::Namespaced, Some(ns)) => Ok(Api::namespaced_with(self.client.clone(), ns, &ar)),
            (Scope::Namespaced, None) => Err(ClusterError::InvalidObject {
                object: object.to_string(),
                reason: "metadata.namespace missing for a namespaced kind".into(),
            }),
            (Scope::Cluster, _) => Ok(Api::all_with(self.client.clone(), &ar)),
        }
    }

    /// Server-side apply of `obj` (any kind) with `opts.field_manager`.
    pub async fn apply(&self, obj: &Value, opts: &ApplyOptions) -> Result<Applied, ClusterError> {
        let object = object_ref(obj)?;
        let what = object.to_string();
        let api = self.api_for(&object).await?;
        let before = if opts.create_guard {
            let live = self.get_with(&api, &object).await?;
            if let Some(live) = &live {
                let topology = obj.pointer(&format!("/metadata/labels/{}", escape(LABEL_TOPOLOGY)));
                let topology = topology.and_then(Value::as_str);
                if !is_owned(live, topology) {
                    return Err(ClusterError::Foreign {
                        object: what,
                        reason: foreign_reason(live, topology),
                    });
                }
            }
            Some(live)
        } else {
            None
        };
        let mut params = PatchParams::apply(&opts.field_manager);
        params.force = opts.force;
        params.dry_run = opts.dry_run;
        let result = self
            .retry
            .run(|| async {
                api.patch(&object.name, &params, &Patch::Apply(obj))
                    .await
                    .map_err(|e| ClusterError::from_kube(&what, Verb::Apply, e))
            })
            .await?;
        let object_value = to_value(&what, result)?;
        let change = match before {
            Some(None) => ChangeKind::Created,
            Some(Some(live)) if resource_version(&live) == resource_version(&object_value) => {
                ChangeKind::Unchanged
            }
            _ => ChangeKind::Configured,
        };
        tracing::debug!(object = %what, %change, dry_run = opts.dry_run, "applied");
        Ok(Applied {
            object: object_value,
            change,
        })
    }

    /// Creates `namespace` (labelled as Keelson's, never pruned) when it does not exist; `true` if it did so.
    pub async fn ensure_namespace(&self, namespace: &str, field_manager: &str) -> Result<bool, ClusterError> {
        let reference = ObjectRef {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: namespace.to_string(),
        };
        if self.get(&reference).await?.is_some() {
            return Ok(false);
        }
        let body = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": namespace, "labels": { LABEL_MANAGED_BY: MANAGED_BY_VALUE } },
        });
        let options = ApplyOptions {
            field_manager: field_manager.to_string(),
            ..ApplyOptions::default()
        };
        self.apply(&body, &options).await?;
        tracing::info!(%namespace, "created namespace");
        Ok(true)
    }

    /// The live object, or `None` when it does not exist.
    pub async fn get(&self, object: &ObjectRef) -> Result<Option<Value>, ClusterError> {
        let api = self.api_for(object).await?;
        self.get_with(&api, object).await
    }

    async fn get_with(
        &self,
        api: &Api<DynamicObject>,
        object: &ObjectRef,
    ) -> Result<Option<Value>, ClusterError> {
        let what = object.to_string();
        let found = self
            .retry
            .run(|| async {
                api.get_opt(&object.name)
                    .await
                    .map_err(|e| ClusterError::from_kube(&what, Verb::Get, e))
            })
            .await?;
        found.map(|o| to_value(&what, o)).transpose()
    }

    /// Delete `object`. A 404 (also on a retry after a lost response) is `AlreadyGone`.
    pub async fn delete(&self, object: &ObjectRef, opts: &DeleteOptions) -> Result<Deleted, ClusterError> {
        let what = object.to_string();
        let api = self.api_for(object).await?;
        let params = DeleteParams {
            dry_run: opts.dry_run,
            propagation_policy: Some(opts.propagation.clone()),
            ..DeleteParams::default()
        };
        let result = self
            .retry
            .run(|| async {
                api.delete(&object.name, &params)
                    .await
                    .map_err(|e| ClusterError::from_kube(&what, Verb::Delete, e))
            })
            .await;
        match result {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) if e.is_not_found() => Ok(Deleted::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    /// Every object of `kinds` in `namespaces` matching `label_selector`: one list per kind per
    /// namespace (one per kind for cluster-scoped kinds), never a GET per object. Items carry their
    /// apiVersion and kind. Kinds the server does not serve have no objects. Any failed list fails the whole
    /// read, so a partial view never drives a prune.
    pub async fn list_owned(
        &self,
        kinds: &[KindRef],
        namespaces: &[String],
        label_selector: &str,
    ) -> Result<Vec<Value>, ClusterError> {
        let mut out = Vec::new();
        for kind in kinds {
            let (ar, caps) = match self.resolve(kind).await {
                Ok(found) => found,
                // A kind the server does not serve (its CRD was removed) has no objects to find.
                Err(ClusterError::UnknownKind { .. }) => {
                    tracing::debug!(%kind, "kind not served; nothing to list");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let scopes: Vec<Option<&str>> = match caps.scope {
                Scope::Cluster => vec![None],
                Scope::Namespaced => namespaces.iter().map(|n| Some(n.as_str())).collect(),
            };
            for ns in scopes {
                let api: Api<DynamicObject> = match ns {
                    Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
                    None => Api::all_with(self.client.clone(), &ar),
                };
                let what = match ns {
                    Some(ns) => format!("{} in namespace {ns}", ar.plural),
                    None => ar.plural.clone(),
                };
                let mut continue_token: Option<String> = None;
                loop {
                    let mut params = ListParams::default().labels(label_selector).limit(500);
                    params.continue_token = continue_token.clone();
                    let page = self
                        .retry
                        .run(|| async {
                            api.list(&params)
                                .await
                                .map_err(|e| ClusterError::from_kube(&what, Verb::List, e))
                        })
                        .await?;
                    continue_token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
                    for item in page.items {
                        let mut value = to_value(&what, item)?;
                        if let Some(map) = value.as_object_mut() {
                            map.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
                            map.insert("kind".into(), Value::String(ar.kind.clone()));
                        }
                        out.push(value);
                    }
                    if continue_token.is_none() {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}

fn to_value(what: &str, object: DynamicObject) -> Result<Value, ClusterError> {
    serde_json::to_value(object).map_err(|e| ClusterError::InvalidObject {
        object: what.to_string(),
        reason: format!("response not representable as JSON: {e}"),
    })
}

fn resource_version(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion").and_then(Value::as_str)
}

/// JSON-pointer escaping of one path segment (label keys contain `/`).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn foreign_reason(live: &Value, topology: Option<&str>) -> String {
    let labels = live.pointer("/metadata/labels");
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    match (label(LABEL_MANAGED_BY), label(LABEL_TOPOLOGY), topology) {
        (Some(MANAGED_BY_VALUE), Some(other), Some(want)) if other != want => {
            format!("it belongs to topology {other:?}, not {want:?}")
        }
        (Some(MANAGED_BY_VALUE), None, Some(want)) => {
            format!("it carries no {LABEL_TOPOLOGY} label (expected {want:?})")
        }
        (Some(manager), _, _) if manager != MANAGED_BY_VALUE => {
            format!("it exists and is managed by {manager:?}")
        }
        _ => format!("it exists without the {LABEL_MANAGED_BY}={MANAGED_BY_VALUE} label"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_agents_carry_printable_ascii_only() {
        let cases = [
            (
                "keelson/0.1.0 (keelson-7d9f-abc)",
                "keelson/0.1.0 (keelson-7d9f-abc)",
            ),
            ("keelson (pod\nname)", "keelson (pod_name)"),
            ("keelson (pöd)", "keelson (p_d)"),
        ];
        for (given, sent) in cases {
            assert_eq!(user_agent_header(given).to_str().ok(), Some(sent), "{given:?}");
        }
        assert!(default_user_agent().starts_with("keelson/"));
    }

    #[test]
    fn object_ref_requires_identity() {
        let ok =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}});
        assert_eq!(
            object_ref(&ok).map(|r| r.to_string()).ok(),
            Some("ConfigMap n/a".to_string())
        );
        let cases = [
            (
                json!({"kind": "ConfigMap", "metadata": {"name": "a"}}),
                "ConfigMap a: invalid object: apiVersion missing",
            ),
            (
                json!({"apiVersion": "v1", "metadata": {"name": "a"}}),
                "object a: invalid object: kind missing",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap"}),
                "ConfigMap <unnamed>: invalid object: metadata.name missing",
            ),
            (
                json!("text"),
                "object <unnamed>: invalid object: apiVersion missing",
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(
                object_ref(&obj).err().map(|e| e.to_string()).as_deref(),
                Some(want)
            );
        }
    }

    #[test]
    fn ownership() {
        let mk = |labels: Value| json!({"metadata": {"labels": labels}});
        let cases = [
            (
                mk(json!({LABEL_MANAGED_BY: "keelson", LABEL_TOPOLOGY: "t"})),
                Some("t"),
                true,
                "",
            ),
            (
                mk(json!({LABEL_MANAGED_BY: "keelson", LABEL_TOPOLOGY: "t"})),
                None,
                true,
                "",
            ),
            (
                mk(json!({LABEL_MANAGED_BY: "keelson", LABEL_TOPOLOGY: "u"})),
                Some("t"),
                false,
                "belongs to topology \"u\"",
            ),
            (
                mk(json!({LABEL_MANAGED_BY: "helm"})),
                Some("t"),
                false,
                "managed by \"helm\"",
            ),
            (json!({"metadata": {}}), Some("t"), false, "without the"),
        ];
        for (live, topology, owned, reason) in cases {
            assert_eq!(is_owned(&live, topology), owned, "{live}");
            if !owned {
                assert!(
                    foreign_reason(&live, topology).contains(reason),
                    "{}",
                    foreign_reason(&live, topology)
                );
            }
        }
    }
}
