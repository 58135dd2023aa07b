//! Wakes the daemon as soon as an operator writes the control ConfigMap (`keelson suspend`, `resume`,
//! `reconcile`), instead of at the next poll. The loop reads the requests themselves on waking.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::Notify;

use super::drift::on_changes;
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
        // What the first list finds was read by the loop already; only later writes are requests.
        let stream = watcher::watcher(api, config);
        let task = tokio::spawn(async move {
            on_changes(stream, "control watch", || wake.notify_one()).await;
        });
        Self { task }
    }
}
