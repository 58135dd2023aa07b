//! The embedded simulated cluster: an HTTP server that speaks the Kubernetes REST API (discovery, CRUD,
//! server-side apply, patches, list/watch with resourceVersions) with simulated workload status and fault
//! injection. It implements Kubernetes semantics generically and knows nothing of Keelson.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keelson::sim::SimError> {
//! let cluster = keelson::sim::Cluster::start(Default::default()).await?;
//! let client = cluster.client();
//! # let _ = client;
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod apply;
mod auth;
mod codec;
mod controllers;
mod defaults;
mod discovery;
mod faults;
mod fieldset;
mod http;
mod meta;
mod openapi;
mod partial;
mod patch;
mod printers;
mod prune;
mod request;
mod resources;
mod schema;
mod selectors;
mod stats;
mod status;
mod store;
mod table;
mod tls;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use controllers::{NodeCapacity, NodeLabels, NodeTaint};
pub use faults::{FaultConfig, FaultControl};
pub use stats::{RequestRecord, Stats};

/// How the simulated cluster behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Time from a Pod landing on its node until it is Ready (its containers start after a quarter of it).
    pub ready_after: Duration,
    /// Time a Job's Pod runs before it exits.
    pub job_duration: Duration,
    /// Nodes of the cluster (`node-1` .. `node-N`).
    pub nodes: u32,
    /// Labels for every node or for one (`openstack.org/compute=enabled`, `node-2:zone=b`).
    pub node_labels: Vec<NodeLabels>,
    /// Taints for every node or for one (`dedicated=db:NoSchedule`, `node-1:gpu:NoExecute`).
    pub node_taints: Vec<NodeTaint>,
    /// What each node can hold (allocatable cpu, memory, ephemeral storage, Pods).
    pub node_capacity: NodeCapacity,
    /// Image globs that never pull: their Pods go ErrImagePull, then ImagePullBackOff.
    pub unpullable_images: Vec<String>,
    /// Globs over Job names and images: their Pods exit with an error, so the Jobs fail.
    pub failing_jobs: Vec<String>,
    /// Globs over container command lines (command and args joined by spaces): they crash soon after
    /// starting and go CrashLoopBackOff.
    pub crash_commands: Vec<String>,
    /// Faults active from the start (change them at run time through `Cluster::faults`).
    pub faults: FaultConfig,
    /// Watch events kept for resuming watches; older resourceVersions answer 410 Expired.
    pub watch_history: usize,
    /// Interval of BOOKMARK events on watches that ask for them.
    pub bookmark_interval: Duration,
    /// Request records kept by the request log (counters are unbounded).
    pub request_log_capacity: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            port: 0,
            ready_after: Duration::from_secs(1),
            job_duration: Duration::from_secs(1),
            nodes: 3,
            node_labels: Vec::new(),
            node_taints: Vec::new(),
            node_capacity: NodeCapacity::default(),
            unpullable_images: Vec::new(),
            failing_jobs: Vec::new(),
            crash_commands: Vec::new(),
            faults: FaultConfig::default(),
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(5),
            request_log_capacity: 100_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator: invalid glob {glob:?}")]
    Glob {
        glob: String,
        #[source]
        source: globset::Error,
    },
    #[error("simulator: invalid fault configuration: {0}")]
    Faults(String),
    #[error("simulator: {0}")]
    Nodes(String),
    #[error("simulator: cannot listen on 127.0.0.1:{port}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("simulator: cannot build a client for {url}")]
    Client {
        url: String,
        #[source]
        source: kube::Error,
    },
    #[error("simulator: cannot write kubeconfig {path}")]
    WriteKubeconfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("simulator: serviceaccount {namespace}/{name} does not exist")]
    NoServiceAccount { namespace: String, name: String },
    #[error("simulator: cannot set up TLS")]
    Tls(#[source] tls::TlsError),
    #[error("simulator: cannot encode kubeconfig")]
    EncodeKubeconfig(#[source] serde_yaml::Error),
}

pub(crate) struct Shared {
    pub state: Mutex<api::State>,
    pub auth: auth::Authenticator,
    pub recorder: stats::Recorder,
    pub faults: FaultControl,
    pub started: Instant,
    pub cancel: CancellationToken,
    pub bookmark_interval: Duration,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, api::State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn globs(patterns: &[String]) -> Result<GlobSet, SimError> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|source| SimError::Glob {
            glob: p.clone(),
            source,
        })?);
    }
    b.build().map_err(|source| SimError::Glob {
        glob: patterns.join(","),
        source,
    })
}

/// A running simulated cluster.
pub struct Cluster {
    addr: SocketAddr,
    ca_pem: String,
    ca_der: Vec<u8>,
    shared: Arc<Shared>,
    client: kube::Client,
    server: JoinHandle<()>,
    controllers: JoinHandle<()>,
}

pub const CONTEXT: &str = "keelson-sim";

impl Cluster {
    /// Binds 127.0.0.1 and serves until `shutdown`.
    pub async fn start(opts: SimOptions) -> Result<Cluster, SimError> {
        opts.faults.validate().map_err(SimError::Faults)?;
        let behaviour = controllers::Behaviour {
            ready_after: opts.ready_after,
            job_duration: opts.job_duration,
            unpullable: globs(&opts.unpullable_images)?,
            failing_jobs: globs(&opts.failing_jobs)?,
            crash_commands: globs(&opts.crash_commands)?,
        };
        let nodes = controllers::nodes::nodes(
            opts.nodes,
            &opts.node_labels,
            &opts.node_taints,
            &opts.node_capacity,
        )
        .map_err(SimError::Nodes)?;
        for node in &nodes {
            let causes = meta::validate_meta(node);
            if let Some((field, message)) = causes.first() {
                return Err(SimError::Nodes(format!(
                    "node {}: {field}: {message}",
                    node["metadata"]["name"].as_str().unwrap_or("")
                )));
            }
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .map_err(|source| SimError::Bind {
                port: opts.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            port: opts.port,
            source,
        })?;
        let shared = Arc::new(Shared {
            state: Mutex::new(api::State::new(behaviour, opts.watch_history, nodes)),
            auth: auth::Authenticator::new(),
            recorder: stats::Recorder::new(opts.request_log_capacity),
            faults: FaultControl::new(opts.faults.clone()),
            started: Instant::now(),
            cancel: CancellationToken::new(),
            bookmark_interval: opts.bookmark_interval,
        });
        let tls = tls::Tls::generate().map_err(SimError::Tls)?;
        let url = format!("https://{addr}");
        let client = make_client(&url, shared.auth.admin_token(), &tls.ca_der)?;
        let server = tokio::spawn(http::serve(listener, shared.clone(), tls.acceptor));
        let controllers = tokio::spawn(run_controllers(shared.clone()));
        tracing::info!(%url, "simulated cluster listening");
        Ok(Cluster {
            addr,
            ca_pem: tls.ca_pem,
            ca_der: tls.ca_der,
            shared,
            client,
            server,
            controllers,
        })
    }

    /// `https://127.0.0.1:PORT`; the server's certificate is signed by `ca_certificate_pem()`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The PEM certificate of the authority that signed the server's certificate.
    pub fn ca_certificate_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The same certificate, DER-encoded.
    pub fn ca_certificate_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The client configuration `client()` is built from (cluster-admin token, the cluster's CA), for
    /// callers that change a setting (retries, timeouts) before building their own client.
    pub fn config(&self) -> kube::Config {
        make_config(&self.url(), self.shared.auth.admin_token(), &self.ca_der)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client for this cluster (plain HTTP) with the cluster-admin token.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The bearer token of the cluster's admin (`kubernetes-admin`, group `system:masters`).
    pub fn admin_token(&self) -> String {
        self.shared.auth.admin_token().to_string()
    }

    /// A kube client that authenticates with `token` (a ServiceAccount token, say).
    pub fn client_with_token(&self, token: &str) -> Result<kube::Client, SimError> {
        make_client(&self.url(), token, &self.ca_der)
    }

    /// Mints a token for an existing ServiceAccount, as `kubectl create token NAME -n NAMESPACE
    /// --duration` does through the TokenRequest API.
    pub fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        lifetime: Duration,
    ) -> Result<String, SimError> {
        let uid = {
            let g = self.shared.lock();
            let key = resources::ResKey {
                group: String::new(),
                plural: "serviceaccounts".into(),
            };
            g.store
                .get(&key, namespace, name)
                .and_then(|sa| sa["metadata"]["uid"].as_str().map(String::from))
        };
        let uid = uid.ok_or_else(|| SimError::NoServiceAccount {
            namespace: namespace.into(),
            name: name.into(),
        })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(self.shared.auth.mint(&auth::token::Claims {
            namespace: namespace.into(),
            service_account: name.into(),
            service_account_uid: uid,
            audiences: auth::API_AUDIENCES.iter().map(|a| a.to_string()).collect(),
            issued_at: now,
            expires_at: now + lifetime.as_secs().max(1),
            bound: None,
        }))
    }

    /// A kubeconfig for this cluster whose user holds the cluster-admin token.
    pub fn kubeconfig(&self) -> kube::config::Kubeconfig {
        kubeconfig_for(&self.url(), self.shared.auth.admin_token(), &self.ca_pem)
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SimError> {
        use std::io::Write;
        let text = serde_yaml::to_string(&self.kubeconfig()).map_err(SimError::EncodeKubeconfig)?;
        let error = |source| SimError::WriteKubeconfig {
            path: path.display().to_string(),
            source,
        };
        // The file holds the admin token: readable by its owner only, as kubeadm writes admin.conf.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(error)?;
        file.write_all(text.as_bytes()).map_err(error)
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.shared.recorder.stats();
        let g = self.shared.lock();
        s.objects = g.store.count();
        s.resource_version = g.store.current_rv();
        s
    }

    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared.recorder.log()
    }

    pub fn clear_request_log(&self) {
        self.shared.recorder.clear()
    }

    pub fn faults(&self) -> FaultControl {
        self.shared.faults.clone()
    }

    /// Stops serving: open watches end, the listener closes.
    pub async fn shutdown(self) {
        self.shared.cancel.cancel();
        let _ = self.server.await;
        let _ = self.controllers.await;
    }

    /// Resolves when the server stops (for the foreground CLI).
    pub async fn wait_cancelled(&self) {
        self.shared.cancel.cancelled().await
    }
}

fn make_config(url: &str, token: &str, ca_der: &[u8]) -> kube::Config {
    // The URL is the cluster's own `https://127.0.0.1:PORT`.
    let uri: http_uri::Uri = url
        .parse()
        .unwrap_or_else(|_| http_uri::Uri::from_static("https://127.0.0.1"));
    let mut config = kube::Config::new(uri);
    config.default_namespace = "default".into();
    config.auth_info.token = Some(token.to_string().into());
    config.root_cert = Some(vec![ca_der.to_vec()]);
    config.read_timeout = Some(Duration::from_secs(300));
    config
}

fn make_client(url: &str, token: &str, ca_der: &[u8]) -> Result<kube::Client, SimError> {
    let config = make_config(url, token, ca_der);
    kube::Client::try_from(config).map_err(|source| SimError::Client {
        url: url.to_string(),
        source,
    })
}

mod http_uri {
    pub use axum::http::Uri;
}

/// A kubeconfig with one cluster (trusting `ca_pem`), one user with a bearer token, and a current context.
pub fn kubeconfig_for(url: &str, token: &str, ca_pem: &str) -> kube::config::Kubeconfig {
    use base64::Engine;
    use kube::config::{
        AuthInfo, Cluster as KCluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
    };
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: CONTEXT.into(),
            cluster: Some(KCluster {
                server: Some(url.to_string()),
                certificate_authority_data: Some(
                    base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes()),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: CONTEXT.into(),
            auth_info: Some(AuthInfo {
                token: Some(token.to_string().into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: CONTEXT.into(),
            context: Some(Context {
                cluster: CONTEXT.into(),
                user: Some(CONTEXT.into()),
                namespace: Some("default".into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(CONTEXT.into()),
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        ..Default::default()
    }
}

/// The control plane reacts to every change in the store (a few milliseconds later, so a burst of writes
/// is handled at once) and wakes by itself when something is due (a container starting, a back-off ending).
async fn run_controllers(shared: Arc<Shared>) {
    use tokio::sync::broadcast::error::RecvError;
    const COALESCE: Duration = Duration::from_millis(5);
    let mut changes = shared.lock().store.subscribe();
    loop {
        let due = shared.lock().next_wake();
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            change = changes.recv() => {
                if matches!(change, Err(RecvError::Closed)) {
                    return;
                }
                tokio::time::sleep(COALESCE).await;
                while changes.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep_until(due.into()) => {}
        }
        // Round after round until nothing changes, letting API requests in between.
        for _ in 0..ROUNDS_BEFORE_REST {
            if !shared.lock().run_round() {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Rounds run back to back before the loop looks at its triggers again (a bound, should rounds keep writing).
const ROUNDS_BEFORE_REST: usize = 50;
