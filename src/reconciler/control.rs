//! Wakes the daemon as soon as an operator writes the control ConfigMap (`keelson suspend`, `resume`,
//! `reconcile`), instead of at the next poll. The loop reads the requests themselves on waking.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::cluster::{KindRef, Kube, WatchFilter};
use crate::status::store::CONTROL_CONFIGMAP;

/// The running watch; dropping it stops it.
pub struct ControlWatch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ControlWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ControlWatch {
    /// Watches the control ConfigMap in `namespace`; each change after the initial list notifies `wake`
    /// (what the first list finds was read by the loop already; only later writes are requests). Must be
    /// called inside a Tokio runtime.
    pub fn start(kube: &Kube, namespace: &str, wake: Arc<Notify>) -> Self {
        let (kube, namespace) = (kube.clone(), namespace.to_string());
        let task = tokio::spawn(async move {
            let kind = KindRef::new("v1", "ConfigMap");
            let filter = WatchFilter::Name(CONTROL_CONFIGMAP);
            let watched = kube
                .watch_changes(&kind, Some(&namespace), filter, || wake.notify_one())
                .await;
            if let Err(e) = watched {
                tracing::warn!(error = %e, "control watch: cannot start; requests act at the next poll");
            }
        });
        Self { task }
    }
}
