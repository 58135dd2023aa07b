//! What operators read: the status object with history, Kubernetes Events, Prometheus metrics, and the
//! HTTP endpoints that serve them.

pub mod events;
pub mod metrics;
pub mod model;
pub mod server;
pub mod store;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

pub use events::EventType;
pub use metrics::Metrics;
pub use model::{
    ComponentPhase, ComponentStatus, Condition, HISTORY_LEN, HandledReconcile, HistoryEntry, ObjectCounts,
    PassResult, PendingChange, Phase, Status, now_rfc3339,
};
pub use store::{
    CONTROL_CONFIGMAP, Control, STATUS_CONFIGMAP, STATUS_FIELD_MANAGER, read_control, read_status,
    request_reconcile, request_reconcile_with, set_suspend, write_status,
};

use crate::cluster::ClusterError;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{object}: read failed: {source}")]
    Read {
        object: String,
        #[source]
        source: ClusterError,
    },
    #[error("{object}: write failed: {source}")]
    Write {
        object: String,
        #[source]
        source: ClusterError,
    },
    #[error("{object}: invalid: {reason}")]
    Invalid { object: String, reason: String },
    #[error("event {reason}: {source}")]
    Event {
        reason: String,
        #[source]
        source: ClusterError,
    },
    #[error("HTTP listener {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// State shared between the daemon loop and the HTTP server.
#[derive(Debug, Default)]
pub struct Shared {
    status: Mutex<Status>,
    ready: AtomicBool,
    pub metrics: Metrics,
}

impl Shared {
    /// A copy of the current status.
    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Changes the status in place and returns a copy of the result.
    pub fn update(&self, change: impl FnOnce(&mut Status)) -> Status {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut status);
        status.clone()
    }

    /// True from the first converged pass on.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }
}
