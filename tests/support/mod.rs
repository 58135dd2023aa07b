//! The test environment every suite in `tests/` shares. A suite adds `mod support;` and uses what it needs:
//!
//! | helper | gives |
//! | --- | --- |
//! | [`example_repo`], [`topology_copy`], [`copy_tree`] | the example topology; a fresh copy of it in a temp dir, to edit |
//! | [`edit`], [`remove`] | one change to a file of a copy (the text to replace must be there) |
//! | [`write_files`] | a topology written file by file (`keelson.yaml`, `services/x.yaml`, ...) |
//! | [`keelson_on`] | the built binary run against a cluster's kubeconfig file |
//! | [`sim_options`], [`fast_sim`] | simulator options: workloads and Jobs ready after a short time, images tagged `broken` never pull |
//! | [`SimEnv::start`] | a simulated cluster and a [`Kube`] connected to it through its kubeconfig |
//! | [`wait_for`] | polls a condition until it holds, failing the test after a generous bound |
//! | [`writes`], [`written`] | the write requests of a simulator request log, as records or as a `(resource, name)` set |
//! | [`metric`] | a value from `/metrics` text, summed over the labels the series does not name |
//! | [`test_daemon_config`] | a daemon configuration with fast health polling and short backoff |
//!
//! Builders of plan and topology values (`mk_topology`, `mk_object`, `live_of`, ...) live in the library,
//! `keelson::plan::fixtures`, behind the `testing` feature (on for `cargo test`).
//!
//! Keep helpers here general (no scenario logic) and documented; a suite's own helpers stay in the suite.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keelson::cli::example_cluster;
use keelson::cluster::{Kube, Target, connect};
use keelson::reconciler::{Backoff, DaemonConfig, PassSettings};
use keelson::sim::{Cluster, RequestRecord, SimOptions};
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};

/// `example-repo/` of this checkout.
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

/// The namespace and any Secret example-repo's services reference that its topology does not declare,
/// created as an operator would before the first apply.
pub async fn create_example_secrets(kube: &Kube) {
    let snapshot = Snapshot::from_dir(&example_repo(), DEFAULT_MAX_FILE_SIZE).expect("example snapshot");
    example_cluster::create_referenced_secrets(kube, &snapshot)
        .await
        .expect("the example's Secrets");
}

/// A fresh copy of the example topology; gone when the value is dropped.
pub fn topology_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&example_repo(), dir.path());
    dir
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

/// Replaces the first `from` in `dir/file` by `to`; fails the test when `from` is not there, so an edit
/// that no longer applies (the example changed) cannot pass silently.
pub fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "{file} does not contain {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
}

/// Writes each `(relative path, text)` under `dir`, making the folders on the way.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, text).expect("write");
    }
}

/// Runs the built `keelson` with `args` against the cluster of `kubeconfig` (never an in-cluster one).
pub fn keelson_on(args: &[&str], kubeconfig: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("runs keelson")
}

/// Removes `dir/file`.
pub fn remove(dir: &Path, file: &str) {
    std::fs::remove_file(dir.join(file)).expect("remove");
}

/// Simulator options: workloads ready `ready_after` after a change, Jobs done as fast; images tagged
/// `broken` never pull.
pub fn sim_options(ready_after: Duration) -> SimOptions {
    SimOptions {
        ready_after,
        job_duration: ready_after,
        unpullable_images: vec!["*:broken".into()],
        ..SimOptions::default()
    }
}

/// [`sim_options`] at 100ms.
pub fn fast_sim() -> SimOptions {
    sim_options(Duration::from_millis(100))
}

/// A simulated cluster and a handle connected to it through its kubeconfig, as an operator would connect.
pub struct SimEnv {
    pub sim: Cluster,
    pub kube: Kube,
}

impl SimEnv {
    pub async fn start(options: SimOptions) -> SimEnv {
        let sim = Cluster::start(options).await.expect("simulator starts");
        let kube = connect(Target::InlineKubeconfig {
            kubeconfig: sim.kubeconfig(),
            context: None,
        })
        .await
        .expect("connects");
        SimEnv { sim, kube }
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

/// The write requests of a request log.
pub fn writes(log: &[RequestRecord]) -> Vec<&RequestRecord> {
    log.iter().filter(|r| r.is_write()).collect()
}

/// `(resource, name)` of each record, as a set.
pub fn written(records: &[RequestRecord]) -> BTreeSet<(String, String)> {
    records
        .iter()
        .map(|r| (r.resource.clone(), r.name.clone().unwrap_or_default()))
        .collect()
}

/// The value of `series` in OpenMetrics `text`: a metric name with some of its labels in order
/// (`keelson_passes_total{result="error"}`); the values of every series that starts so are added up.
pub fn metric(text: &str, series: &str) -> u64 {
    let prefix = series.strip_suffix('}').unwrap_or(series);
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
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
