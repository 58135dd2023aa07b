//! Notices changes made outside Git: the pass's watch-fed view (a watch per owned kind and namespace,
//! filtered by the topology's ownership labels) raises this signal on every change or deletion. It wakes
//! the daemon with a drift reason; the next pass re-plans from the view, re-applies what differs from Git
//! (Git wins) and counts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

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

    /// Drift seen: wake the loop.
    pub fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Whether drift was seen since the last call.
    pub fn take(&self) -> bool {
        self.raised.swap(false, Ordering::SeqCst)
    }
}
