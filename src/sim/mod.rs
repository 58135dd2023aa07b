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
mod codec;
mod controllers;
mod defaults;
mod discovery;
mod faults;
mod fieldset;
mod http;
mod meta;
mod openapi;
mod patch;
mod printers;
mod request;
mod resources;
mod schema;
mod selectors;
mod stats;
mod status;
mod store;
mod table;
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
    #[error("simulator: cannot encode kubeconfig")]
    EncodeKubeconfig(#[source] serde_yaml::Error),
}

pub(crate) struct Shared {
    pub state: Mutex<api::State>,
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
            recorder: stats::Recorder::new(opts.request_log_capacity),
            faults: FaultControl::new(opts.faults.clone()),
            started: Instant::now(),
            cancel: CancellationToken::new(),
            bookmark_interval: opts.bookmark_interval,
        });
        let url = format!("http://{addr}");
        let client = make_client(&url)?;
        let server = tokio::spawn(http::serve(listener, shared.clone()));
        let controllers = tokio::spawn(run_controllers(shared.clone()));
        tracing::info!(%url, "simulated cluster listening");
        Ok(Cluster {
            addr,
            shared,
            client,
            server,
            controllers,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client for this cluster (plain HTTP, no credentials).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    pub fn kubeconfig(&self) -> kube::config::Kubeconfig {
        kubeconfig_for(&self.url())
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SimError> {
        let text = serde_yaml::to_string(&self.kubeconfig()).map_err(SimError::EncodeKubeconfig)?;
        std::fs::write(path, text).map_err(|source| SimError::WriteKubeconfig {
            path: path.display().to_string(),
            source,
        })
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

fn make_client(url: &str) -> Result<kube::Client, SimError> {
    let uri: http_uri::Uri = url.parse().map_err(|_| SimError::Client {
        url: url.to_string(),
        source: kube::Error::Service(format!("invalid url {url}").into()),
    })?;
    let mut config = kube::Config::new(uri);
    config.default_namespace = "default".into();
    config.read_timeout = Some(Duration::from_secs(300));
    kube::Client::try_from(config).map_err(|source| SimError::Client {
        url: url.to_string(),
        source,
    })
}

mod http_uri {
    pub use axum::http::Uri;
}

/// A kubeconfig with one cluster, one user without credentials, and a current context.
pub fn kubeconfig_for(url: &str) -> kube::config::Kubeconfig {
    use kube::config::{
        AuthInfo, Cluster as KCluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
    };
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: CONTEXT.into(),
            cluster: Some(KCluster {
                server: Some(url.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: CONTEXT.into(),
            auth_info: Some(AuthInfo::default()),
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
