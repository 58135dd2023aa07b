//! Notices changes made outside Git: a kube-runtime watcher per owned kind and namespace, filtered by the
//! topology's ownership labels. A change or deletion wakes the daemon with a drift reason; the next pass
//! re-plans from live state, re-applies what differs from Git (Git wins) and counts it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt as _;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;

use crate::cluster::{KindRef, Kube, owned_selector};

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
    let resource = match kube.resolve(&kind).await {
        Ok((resource, _)) => resource,
        Err(e) => {
            tracing::warn!(%kind, error = %e, "drift watch: cannot resolve the kind; relying on the poll interval");
            return;
        }
    };
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(kube.client().clone(), ns, &resource),
        None => Api::all_with(kube.client().clone(), &resource),
    };
    let stream = watcher::watcher(api, watcher::Config::default().labels(&selector));
    let what = format!("drift watch of {kind}");
    on_changes(stream, &what, || signal.raise()).await;
}

/// Calls `changed` for every change a watcher reports after its first list: objects listed at start are no
/// changes. A re-list after a watch error may hide a change made in the gap, so it counts as one (the
/// callers then re-read, which costs reads only). Returns when the stream ends.
pub async fn on_changes<K: kube::Resource + std::fmt::Debug + Send + 'static>(
    stream: impl futures::Stream<Item = watcher::Result<Event<K>>> + Send,
    what: &str,
    mut changed: impl FnMut(),
) {
    let mut stream = stream.default_backoff().boxed();
    let mut listed = false;
    let mut relisting = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listed = false,
            Ok(Event::InitDone) => {
                if std::mem::replace(&mut relisting, true) {
                    changed();
                }
                listed = true;
            }
            Ok(Event::Apply(object) | Event::Delete(object)) if listed => {
                tracing::debug!(what, name = ?object.meta().name, "changed");
                changed();
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(what, error = %e, "watch restarting"),
        }
    }
}
