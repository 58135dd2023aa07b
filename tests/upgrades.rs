//! Rolling upgrades with expand / migrate / contract, as keystone and glance support them: a release change
//! runs the expand (and migrate) Jobs before the workload rolls and the contract Job only once every replica
//! runs the new release; a config-only change runs no migration; reverting the release after its contract
//! ran is refused, naming the contract Job. In a real Git repository (real `git revert`), on the strict
//! simulator.

mod source_support;
mod support;

use std::time::Duration;

use keelson::cluster::Kube;
use keelson::plan::RefusalReason;
use keelson::reconciler::{self, PassError, PassOutcome, PassSettings, Prepared};
use keelson::rollout::ProgressEvent;
use keelson::sim::SimOptions;
use keelson::source::{GitSource, GitSourceConfig, PollOutcome, Snapshot};
use source_support::Repo;
use tokio_util::sync::CancellationToken;

const OLD: &str = "2025.1-ubuntu-noble";
const NEW: &str = "2025.2-ubuntu-noble";

const TOPOLOGY: &str = "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: cloud\nspec:\n  namespace: cloud\n  healthTimeout: 30s\n  images:\n    tag: 2025.1-ubuntu-noble\n";

/// keystone's and glance's rolling-upgrade commands, as kolla-ansible runs them.
fn service(name: &str, expand: &str, migrate: &str, contract: &str) -> String {
    format!(
        "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  image: {name}\n  replicas: 3\n  command: {name}\n  ports:\n  - name: api\n    port: 5000\n  configFiles:\n  - source: config/{name}/{name}.conf\n    dest: /etc/{name}/{name}.conf\n  jobs:\n  - name: db-expand\n    phase: pre\n    command: {expand}\n  - name: db-migrate\n    phase: pre\n    command: {migrate}\n  - name: db-contract\n    phase: post\n    command: {contract}\n"
    )
}

fn settings() -> PassSettings {
    PassSettings {
        poll_interval: Duration::from_millis(25),
        ..PassSettings::default()
    }
}

async fn next_snapshot(source: &mut GitSource) -> Snapshot {
    match source.poll().await.expect("poll") {
        PollOutcome::Changed { snapshot, .. } => snapshot,
        PollOutcome::Unchanged { revision } => panic!("expected a new commit, still at {}", revision.id),
    }
}

async fn prepare(kube: &Kube, snapshot: &Snapshot) -> Prepared {
    reconciler::prepare(kube, snapshot, &settings())
        .await
        .expect("prepare")
}

/// One pass with its progress events.
async fn pass(kube: &Kube, snapshot: &Snapshot) -> (Result<PassOutcome, PassError>, Vec<ProgressEvent>) {
    let prepared = prepare(kube, snapshot).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let outcome = reconciler::execute(kube, &prepared, &settings(), CancellationToken::new(), Some(tx)).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (outcome, events)
}

/// Where in `events` `component`'s object of `kind` whose name starts with `prefix` was applied (created or
/// changed) and became healthy.
fn applied(events: &[ProgressEvent], component: &str, kind: &str, prefix: &str) -> Option<usize> {
    events.iter().position(|e| {
        matches!(e, ProgressEvent::ObjectApplied { component: c, object, .. }
            if c == component && object.kind == kind && object.name.starts_with(prefix))
    })
}

fn healthy(events: &[ProgressEvent], component: &str, kind: &str, prefix: &str) -> Option<usize> {
    events.iter().position(|e| {
        matches!(e, ProgressEvent::ObjectHealthy { component: c, object, .. }
            if c == component && object.kind == kind && object.name.starts_with(prefix))
    })
}

#[tokio::test]
async fn a_release_bump_expands_rolls_then_contracts_and_its_revert_is_refused_after_contract() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = Repo::init(tmp.path().join("repo"));
    let keystone = service(
        "keystone",
        "keystone-manage db_sync --expand",
        "keystone-manage db_sync --migrate",
        "keystone-manage db_sync --contract",
    );
    let glance = service(
        "glance",
        "glance-manage db expand",
        "glance-manage db migrate",
        "glance-manage db contract",
    );
    let installed = repo.commit(
        &[
            ("keelson.yaml", TOPOLOGY),
            ("services/keystone.yaml", &keystone),
            ("services/glance.yaml", &glance),
            ("config/keystone/keystone.conf", "[DEFAULT]\ndebug = false\n"),
            ("config/glance/glance.conf", "[DEFAULT]\ndebug = false\n"),
        ],
        "keystone and glance at 2025.1",
    );
    let env = support::SimEnv::start(SimOptions {
        ready_after: Duration::from_millis(200),
        job_duration: Duration::from_millis(200),
        ..SimOptions::default()
    })
    .await;
    let kube = &env.kube;
    let mut config = GitSourceConfig::new(repo.file_url(), "main");
    config.cache_dir = tmp.path().join("cache");
    let mut source = GitSource::new(config).expect("git source");

    let (first, _) = pass(kube, &next_snapshot(&mut source).await).await;
    assert!(first.expect("first pass").rollout.converged());

    // The release bump: every Job of both services runs again, in the rolling-upgrade order.
    repo.commit(
        &[("keelson.yaml", &TOPOLOGY.replace(OLD, NEW))],
        "Upgrade keystone and glance to 2025.2",
    );
    let upgrade = repo.head();
    // The pull request's plan shows each phase of each service.
    let review = std::process::Command::new(env!("CARGO_BIN_EXE_keelson"))
        .arg("plan")
        .arg(&repo.path)
        .args(["--base", &installed])
        .output()
        .expect("keelson plan runs");
    let text = String::from_utf8_lossy(&review.stdout);
    for component in ["keystone", "glance"] {
        for (job, phase) in [
            ("db-expand", "preJob, migration: expand"),
            ("db-migrate", "preJob, migration: data migration"),
            ("db-contract", "postJob, migration: contract"),
        ] {
            let line = text
                .lines()
                .find(|l| l.contains(&format!("{component}-{job}-")))
                .unwrap_or_else(|| panic!("no line for {component} {job} in:\n{text}"));
            assert!(line.contains(phase), "{line}");
        }
    }
    let snapshot = next_snapshot(&mut source).await;
    let (outcome, events) = pass(kube, &snapshot).await;
    assert!(outcome.expect("upgrade pass").rollout.converged());
    for component in ["keystone", "glance"] {
        let expanded =
            healthy(&events, component, "Job", &format!("{component}-db-expand-")).expect("expand ran");
        let migrated =
            healthy(&events, component, "Job", &format!("{component}-db-migrate-")).expect("migrate ran");
        let rolled = applied(&events, component, "Deployment", component).expect("the workload rolled");
        let all_new = healthy(&events, component, "Deployment", component).expect("every replica updated");
        let contract =
            applied(&events, component, "Job", &format!("{component}-db-contract-")).expect("contract ran");
        assert!(expanded < migrated, "{component}: migrate before expand finished");
        assert!(
            migrated < rolled,
            "{component}: the workload rolled before its schema was expanded"
        );
        assert!(
            all_new < contract,
            "{component}: contract started before every replica ran the new release"
        );
    }

    // A config-only change rolls the workload and runs no migration.
    repo.commit(
        &[("config/keystone/keystone.conf", "[DEFAULT]\ndebug = true\n")],
        "keystone: debug logging",
    );
    let (outcome, events) = pass(kube, &next_snapshot(&mut source).await).await;
    assert!(outcome.expect("config pass").rollout.converged());
    assert!(
        applied(&events, "keystone", "Deployment", "keystone").is_some(),
        "the config change rolls keystone"
    );
    let jobs: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::ObjectApplied { object, .. } if object.kind == "Job"))
        .collect();
    assert!(jobs.is_empty(), "a config-only change ran Jobs: {jobs:?}");

    // `git revert` of the upgrade, after its contract ran: refused before any write, naming the Job.
    repo.git(&["revert", "--no-edit", &upgrade]);
    let snapshot = next_snapshot(&mut source).await;
    env.sim.clear_request_log();
    let refused = prepare(kube, &snapshot).await;
    let downgrades: Vec<_> = refused
        .plan
        .refusals
        .iter()
        .filter(|r| matches!(r.reason, RefusalReason::SchemaDowngrade { .. }))
        .collect();
    assert_eq!(downgrades.len(), 2, "{:?}", refused.plan.refusals);
    match reconciler::execute(kube, &refused, &settings(), CancellationToken::new(), None).await {
        Err(PassError::Blocked { message, .. }) => {
            for needle in [
                "schema downgrade after contract",
                "keystone ran the contract phase of 2025.2-ubuntu-noble (Job cloud/keystone-db-contract-",
                "glance ran the contract phase",
                "restore the database from before the upgrade",
                "Keelson-Allow-Downgrade: keystone",
            ] {
                assert!(message.contains(needle), "{needle:?} in {message}");
            }
        }
        other => panic!("expected a blocked pass, got {other:?}"),
    }
    let writes: Vec<_> = env
        .sim
        .request_log()
        .into_iter()
        .filter(|r| r.is_write())
        .collect();
    assert!(writes.is_empty(), "a refused pass wrote: {writes:?}");
    env.sim.shutdown().await;
}
