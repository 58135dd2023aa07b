//! `keelson run`: the long-running loop. One pass at a time, started by the poll timer, a retry timer or a
//! wake-up (webhook, local watch, drift, control requests); a newer revision found while a rollout waits
//! cancels it, and the next pass plans from live state.
//!
//! Rooms: `loop` holds the `select!`s and nothing else; `policy` decides, purely, what a trigger
//! leads to; `iteration` runs the steps of one iteration (poll, read requests, decide, pass); `record`
//! turns what happened into a status change, purely, and is the one place a pass's status is finalised;
//! `progress` reports a rollout's components while it runs. This file holds the daemon's state, its
//! start-up and its shutdown.
//!
//! Writes to the control ConfigMap (`keelson suspend`, `resume`, `reconcile`) wake the loop at once; a
//! suspend request also cancels a rollout in progress.

mod iteration;
mod r#loop;
mod policy;
mod progress;
mod record;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

pub use self::policy::Backoff;
use self::policy::Verdict;
use super::clock::{Clock, SystemClock};
use super::control::ControlWatch;
use super::drift::DriftSignal;
use super::leader::{self, LeaderConfig};
use super::pass::PassSettings;
use crate::cluster::{ClusterView, Kube};
use crate::source::verify::{AllowedSigners, VerifyMode};
use crate::source::watch::LocalWatcher;
use crate::source::webhook::{self, WebhookConfig};
use crate::source::{GitSource, GitSourceConfig, RemoteUrl, Snapshot, SourceError};
use crate::status::server::{self, Server};
use crate::status::{self, Shared, StatusError};
use crate::topology::sync_windows::SyncWindows;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Keelson's own namespace: status, control, events, lease.
    pub namespace: String,
    /// Time between polls of the source.
    pub interval: Duration,
    /// Time between full re-plans of an unchanged, converged revision (drift is otherwise found from
    /// watch events).
    pub resync_interval: Duration,
    pub pass: PassSettings,
    pub backoff: Backoff,
    /// Serve `/healthz`, `/readyz`, `/metrics`, `/status` (and the webhook) here.
    pub listen: Option<SocketAddr>,
    /// Accept push webhooks at `/hooks/git` (needs `listen`).
    pub webhook: Option<WebhookConfig>,
    /// Watch a local repository's refs and poll when they move.
    pub watch_local: bool,
    /// Debounce of the local watch.
    pub watch_debounce: Duration,
    /// Apply only commits signed by one of these keys (`--verify-signatures`); others stall the revision.
    pub verify: Option<(VerifyMode, Arc<AllowedSigners>)>,
    /// The daemon's own sync windows (`--sync-window`), which govern together with each revision's
    /// `spec.syncWindows`; a commit cannot lift them.
    pub sync_windows: SyncWindows,
    /// The time sync windows are read against.
    pub clock: Arc<dyn Clock>,
}

impl DaemonConfig {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            interval: Duration::from_secs(60),
            resync_interval: Duration::from_secs(600),
            pass: PassSettings::default(),
            backoff: Backoff::default(),
            listen: None,
            webhook: None,
            watch_local: true,
            watch_debounce: Duration::from_millis(100),
            verify: None,
            sync_windows: SyncWindows::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("git source: {0}")]
    Source(#[from] SourceError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("webhook: needs a listen address")]
    WebhookWithoutListener,
}

/// A `keelson reconcile` request: its token, and whether it overrides the sync windows (`--force`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReconcileRequest {
    token: String,
    force: bool,
}

/// The reconciler daemon.
pub struct Daemon {
    kube: Kube,
    source: GitSource,
    source_url: String,
    source_ref: String,
    config: DaemonConfig,
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    snapshot: Option<Snapshot>,
    /// Revision and verdict of the last pass.
    last: Option<(String, Verdict)>,
    /// When to retry after a transient failure.
    retry: Option<tokio::time::Instant>,
    /// After a transient source failure: poll timer ticks before this do not poll (the retry does).
    source_backoff: Option<tokio::time::Instant>,
    /// Transient failures of the current revision in a row.
    attempts: u32,
    handled_reconcile: Option<String>,
    control_seen: bool,
    /// What the control object said about suspending when last read (`None` before the first read).
    suspend_requested: Option<bool>,
    /// A `keelson reconcile` request not answered yet.
    reconcile_request: Option<ReconcileRequest>,
    listener: Option<Server>,
    leader_config: Option<LeaderConfig>,
    /// Whether this replica may write; `None` without leader election.
    leader: Option<watch::Receiver<bool>>,
    drift_signal: Arc<DriftSignal>,
    /// A control request (suspend, resume, reconcile) arrived during a pass: the loop runs the next
    /// iteration at once, which reads the requests.
    control_changed: bool,
    /// The watch-fed view of the cluster, kept from pass to pass: a re-plan reads it without a request.
    view: Option<ClusterView>,
    /// When the last full plan was made (for `resync_interval`).
    planned_at: Option<tokio::time::Instant>,
}

impl Daemon {
    pub fn new(kube: Kube, source: GitSourceConfig, config: DaemonConfig) -> Result<Self, DaemonError> {
        if config.webhook.is_some() && config.listen.is_none() {
            return Err(DaemonError::WebhookWithoutListener);
        }
        let source_url = source.url.clone();
        let source_ref = source.reference.clone();
        let wake = Arc::new(Notify::new());
        Ok(Self {
            drift_signal: Arc::new(DriftSignal::new(wake.clone())),
            control_changed: false,
            view: None,
            planned_at: None,
            kube,
            source: GitSource::new(source)?,
            source_url,
            source_ref,
            config,
            shared: Arc::new(Shared::default()),
            wake,
            snapshot: None,
            last: None,
            retry: None,
            source_backoff: None,
            attempts: 0,
            handled_reconcile: None,
            control_seen: false,
            suspend_requested: None,
            reconcile_request: None,
            listener: None,
            leader_config: None,
            leader: None,
        })
    }

    /// Only the holder of the Lease in the daemon's namespace applies and writes status.
    pub fn with_leader_election(mut self, config: LeaderConfig) -> Self {
        self.leader_config = Some(config);
        self
    }

    /// Status, readiness and metrics, as the HTTP server sees them.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Notifying this makes the daemon poll now.
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Binds the HTTP listener now (so that callers learn the port before `run`); `run` serves it.
    pub async fn bind(&mut self) -> Result<Option<SocketAddr>, DaemonError> {
        if self.listener.is_none()
            && let Some(addr) = self.config.listen
        {
            self.listener = Some(Server::bind(addr).await?);
        }
        match &self.listener {
            Some(server) => Ok(Some(server.local_addr()?)),
            None => Ok(None),
        }
    }

    /// Runs until `shutdown` resolves; a rollout in progress is cancelled (writes in flight finish) and the
    /// final status is written before returning.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let stop = CancellationToken::new();
        let server = self.start_server(stop.clone()).await?;
        let _watcher = self.start_watcher();
        let _control = ControlWatch::start(&self.kube, &self.config.namespace, self.wake.clone());
        if let Err(e) = status::store::ensure_namespace(&self.kube, &self.config.namespace).await {
            tracing::warn!(error = %e, "cannot make sure Keelson's namespace exists");
        }
        let elector_stop = CancellationToken::new();
        let elector = self.leader_config.clone().map(|config| {
            let (tx, rx) = watch::channel(false);
            self.leader = Some(rx);
            tokio::spawn(leader::run(
                self.kube.clone(),
                self.config.namespace.clone(),
                config,
                tx,
                elector_stop.clone(),
            ))
        });
        // Also with an elector: it may have won already, and then the loop never waits to become the leader
        // (a standby reloads when it takes over, since the old leader kept writing).
        self.load_status().await;
        self.run_until(shutdown, stop.clone()).await;
        stop.cancel();
        // The Lease is released only after the last write of this replica.
        elector_stop.cancel();
        if let Some(elector) = elector {
            let _ = elector.await;
        }
        if let Some(server) = server {
            let _ = server.await;
        }
        Ok(())
    }

    async fn start_server(
        &mut self,
        stop: CancellationToken,
    ) -> Result<Option<tokio::task::JoinHandle<Result<(), StatusError>>>, DaemonError> {
        let Some(addr) = self.bind().await? else {
            return Ok(None);
        };
        let Some(server) = self.listener.take() else {
            return Ok(None);
        };
        let hooks = self
            .config
            .webhook
            .clone()
            .map(|hook| webhook::router(hook, self.wake.clone()));
        let router = server::router(self.shared.clone(), hooks);
        tracing::info!(%addr, "serving /healthz /readyz /metrics /status");
        Ok(Some(tokio::spawn(async move {
            server.serve(router, async move { stop.cancelled().await }).await
        })))
    }

    fn start_watcher(&self) -> Option<LocalWatcher> {
        if !self.config.watch_local {
            return None;
        }
        let path = RemoteUrl::parse(&self.source_url).ok()?.local_path()?;
        match LocalWatcher::spawn(&path, self.config.watch_debounce, self.wake.clone()) {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the local repository; relying on the poll interval");
                None
            }
        }
    }
}
