//! Notices changes made outside Git: a watch per owned kind and namespace, filtered by the
//! topology's ownership labels. A change or deletion wakes the daemon with a drift reason; the next pass
//! re-plans from live state, re-applies what differs from Git (Git wins) and counts it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::cluster::{KindRef, Kube, WatchFilter, owned_selector};

/// Raised by a watcher, taken by the daemon loop.
#[derive(Debug, Default)]
pub struct DriftSignal {
    raised: AtomicBool,
    pub wake: Arc<Notify>,
}

impl DriftSignal {
    pub fn new(wake: Arc<Notify>) -> Self {
        Self {
            raised: AtomicBool::new(false),
            wake,
        }
    }

    fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Whether drift was seen since the last call.
    pub fn take(&self) -> bool {
        self.raised.swap(false, Ordering::SeqCst)
    }
}

/// What to watch: kinds with the namespace they live in (`None` for cluster-scoped kinds).
pub type Targets = BTreeSet<(KindRef, Option<String>)>;

/// Running watchers; dropping this stops them.
pub struct DriftWatch {
    topology: String,
    targets: Targets,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for DriftWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl DriftWatch {
    /// Whether this watch already covers exactly `targets` of `topology`.
    pub fn covers(&self, topology: &str, targets: &Targets) -> bool {
        self.topology == topology && &self.targets == targets
    }

    /// Starts one watcher per target. Must be called inside a Tokio runtime.
    pub fn start(kube: &Kube, topology: &str, targets: Targets, signal: Arc<DriftSignal>) -> Self {
        let selector = owned_selector(topology);
        let tasks = targets
            .iter()
            .map(|(kind, namespace)| {
                tokio::spawn(watch_one(
                    kube.clone(),
                    kind.clone(),
                    namespace.clone(),
                    selector.clone(),
                    signal.clone(),
                ))
            })
            .collect();
        tracing::debug!(
            topology,
            watches = targets.len(),
            "watching owned objects for drift"
        );
        Self {
            topology: topology.to_string(),
            targets,
            tasks,
        }
    }
}

async fn watch_one(
    kube: Kube,
    kind: KindRef,
    namespace: Option<String>,
    selector: String,
    signal: Arc<DriftSignal>,
) {
    let watched = kube
        .watch_changes(
            &kind,
            namespace.as_deref(),
            WatchFilter::Labels(&selector),
            || signal.raise(),
        )
        .await;
    if let Err(e) = watched {
        tracing::warn!(%kind, error = %e, "drift watch: cannot resolve the kind; relying on the poll interval");
    }
}
