//! Wakes the daemon as soon as an operator writes the control ConfigMap (`keelson suspend`, `resume`,
//! `reconcile`), instead of at the next poll. The loop reads the requests themselves on waking.

use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;

use crate::cluster::Kube;
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
    /// Watches the control ConfigMap in `namespace`; each change after the initial list notifies `wake`.
    /// Must be called inside a Tokio runtime.
    pub fn start(kube: &Kube, namespace: &str, wake: Arc<Notify>) -> Self {
        let api: Api<ConfigMap> = Api::namespaced(kube.client().clone(), namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={CONTROL_CONFIGMAP}"));
        let task = tokio::spawn(async move {
            let mut stream = watcher::watcher(api, config).default_backoff().boxed();
            // What the first list finds was read by the loop already; only later writes are requests. A
            // re-list after a watch error may hide a write made in the gap, so it wakes the loop once.
            let mut listed = false;
            let mut relisting = false;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Init) => listed = false,
                    Ok(Event::InitDone) => {
                        if std::mem::replace(&mut relisting, true) {
                            wake.notify_one();
                        }
                        listed = true;
                    }
                    Ok(Event::Apply(_) | Event::Delete(_)) if listed => {
                        tracing::debug!("control object changed");
                        wake.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "control watch: restarting"),
                }
            }
        });
        Self { task }
    }
}
