//! Helpers shared by the integration tests that work on copies of the example topology.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keelson::cli::example_cluster;
use keelson::cluster::Kube;
use keelson::reconciler::{Backoff, DaemonConfig, PassSettings};
use keelson::sim::SimOptions;
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};

pub fn example_repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("example-repo")
}

/// The simulated cluster example-repo expects: its services' node labels on the nodes.
pub fn example_nodes(options: SimOptions) -> SimOptions {
    SimOptions {
        node_labels: example_cluster::node_labels(),
        ..options
    }
}

/// The namespace and the Secrets example-repo's services reference, created as the operator does before
/// the first apply (example-repo/README.md), until Keelson generates them.
pub async fn create_example_secrets(kube: &Kube) {
    let snapshot = Snapshot::from_dir(&example_repo(), DEFAULT_MAX_FILE_SIZE).expect("example snapshot");
    example_cluster::create_referenced_secrets(kube, &snapshot)
        .await
        .expect("the example's Secrets");
}

/// Copies a directory tree (regular files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Polls `check` until it holds; fails the test after `timeout`. Returns how long it took.
pub async fn wait_for<F: Fn() -> Fut, Fut: Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    check: F,
) -> Duration {
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A daemon configuration for tests: an hour between polls (only commits, webhooks, drift and control
/// requests start passes), fast health polling, short backoff and debounce.
pub fn test_daemon_config(namespace: &str) -> DaemonConfig {
    let mut config = DaemonConfig::new(namespace);
    config.interval = Duration::from_secs(3600);
    config.pass = PassSettings {
        poll_interval: Duration::from_millis(50),
        ..PassSettings::default()
    };
    config.backoff = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(2),
    };
    config.watch_debounce = Duration::from_millis(50);
    config
}
