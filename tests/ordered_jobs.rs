//! Jobs of one phase run in the order written, each completing before the next starts, or together when
//! they share a group; each job's own `timeout` is honoured even when it is longer than the component's
//! health timeout. Proved with the simulator's request log and clock.

use std::path::Path;
use std::time::Duration;

use keelson::cluster::{Target, connect};
use keelson::reconciler::{self, PassSettings};
use keelson::rollout::{ComponentState, RolloutOutcome};
use keelson::sim::{Cluster, RequestRecord, SimOptions};
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
use tokio_util::sync::CancellationToken;

/// How long each simulated Job runs: longer than the component's health timeout below.
const JOB_RUNS: Duration = Duration::from_millis(1500);

const TOPOLOGY: &str = "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: jobs\nspec:\n  namespace: jobs\n  healthTimeout: 1s\n";

fn service(jobs: &str) -> String {
    format!(
        "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: nova-api\nspec:\n  image: nova-api\n  command: nova-api\n  jobs:\n{jobs}"
    )
}

async fn apply(dir: &Path) -> (RolloutOutcome, Vec<RequestRecord>) {
    let sim = Cluster::start(SimOptions {
        ready_after: Duration::from_millis(100),
        job_duration: JOB_RUNS,
        ..SimOptions::default()
    })
    .await
    .expect("simulator");
    let kube = connect(Target::InlineKubeconfig {
        kubeconfig: sim.kubeconfig(),
        context: None,
    })
    .await
    .expect("connects");
    let settings = PassSettings {
        poll_interval: Duration::from_millis(25),
        ..PassSettings::default()
    };
    let snapshot = Snapshot::from_dir(dir, DEFAULT_MAX_FILE_SIZE).expect("snapshot");
    let prepared = reconciler::prepare(&kube, &snapshot, &settings)
        .await
        .expect("prepare");
    let outcome = reconciler::execute(&kube, &prepared, &settings, CancellationToken::new(), None)
        .await
        .expect("pass runs");
    let log = sim.request_log();
    sim.shutdown().await;
    (outcome.rollout, log)
}

fn repo(jobs: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("services")).expect("mkdir");
    std::fs::write(dir.path().join("keelson.yaml"), TOPOLOGY).expect("write");
    std::fs::write(dir.path().join("services/nova-api.yaml"), service(jobs)).expect("write");
    dir
}

/// When the Job whose name starts with `nova-api-<job>-` was written.
fn written(log: &[RequestRecord], job: &str) -> Duration {
    let prefix = format!("nova-api-{job}-");
    log.iter()
        .find(|r| {
            r.is_write() && r.resource == "jobs" && r.name.as_deref().is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|r| r.at)
        .unwrap_or_else(|| panic!("job {job} never written"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_in_the_order_written_groups_together_and_each_keeps_its_own_timeout() {
    // The Jobs run longer (1.5s) than the component's health timeout (1s, the topology's): they succeed
    // because each keeps its own 10s. The steps: [api-db-sync] [map-cell0, create-cell] [db-sync], the
    // workload, then [discover-hosts].
    let dir = repo(
        "    - {name: api-db-sync, phase: pre, command: nova-manage api_db sync, timeout: 10s}
    - {name: map-cell0, phase: pre, group: cells, command: nova-manage cell_v2 map_cell0, timeout: 10s}
    - {name: create-cell, phase: pre, group: cells, script: \"nova-manage cell_v2 create_cell --name cell1\", timeout: 10s}
    - {name: db-sync, phase: pre, command: nova-manage db sync, timeout: 10s}
    - {name: discover-hosts, phase: post, command: nova-manage cell_v2 discover_hosts, timeout: 10s}
",
    );
    let (outcome, log) = apply(dir.path()).await;
    assert!(outcome.converged(), "{:#?}", outcome.components);

    let api_db = written(&log, "api-db-sync");
    let (map, create) = (written(&log, "map-cell0"), written(&log, "create-cell"));
    let db_sync = written(&log, "db-sync");
    let deployment = log
        .iter()
        .find(|r| r.is_write() && r.resource == "deployments")
        .map(|r| r.at)
        .expect("deployment written");
    let discover = written(&log, "discover-hosts");
    // Each step starts only after the previous one's Jobs completed (they run JOB_RUNS each).
    let after = |later: Duration, earlier: Duration| later.saturating_sub(earlier) >= JOB_RUNS;
    assert!(
        after(map, api_db) && after(create, api_db),
        "the cells group waits for api-db-sync"
    );
    assert!(
        map.abs_diff(create) < JOB_RUNS / 2,
        "a group's Jobs start together: {map:?} vs {create:?}"
    );
    assert!(
        after(db_sync, map.max(create)),
        "db-sync waits for the whole group"
    );
    assert!(
        after(deployment, db_sync),
        "the workload waits for the last pre-job"
    );
    assert!(discover > deployment, "the post-job comes after the workload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_without_a_timeout_of_its_own_gets_the_components_and_fails_when_it_runs_longer() {
    let dir = repo("    - {name: db-sync, phase: pre, command: nova-manage db sync}\n");
    let (outcome, _) = apply(dir.path()).await;
    let component = outcome.component("nova-api").expect("nova-api");
    assert_eq!(component.state, ComponentState::Failed);
    // The Job carries the same deadline (activeDeadlineSeconds), so either its controller or Keelson's
    // health wait ends it first: both mean the component's 1s.
    assert!(
        component.reason.contains("not healthy within 1s") || component.reason.contains("DeadlineExceeded"),
        "{}",
        component.reason
    );
}
