//! Migration-aware revert, end to end: the example topology in a real Git repository made with the `git`
//! command line, read through the Git source, applied to the simulated cluster over real HTTP. Reverting a
//! release upgrade of nova is refused before any write; the same revert carrying a `Keelson-Allow-Downgrade`
//! trailer applies; reverting a config-only change is never blocked.

mod source_support;
mod support;

use std::time::Duration;

use keelson::cluster::{Kube, Target, connect};
use keelson::object::ObjectRef;
use keelson::plan::{Action, RefusalReason, WarningKind};
use keelson::reconciler::{self, PassError, PassOutcome, PassSettings, Prepared};
use keelson::sim::{Cluster, SimOptions};
use keelson::source::{GitSource, GitSourceConfig, PollOutcome, Snapshot};
use serde_json::Value;
use source_support::Repo;
use support::{copy_tree, edit, example_repo};
use tokio_util::sync::CancellationToken;

const NOVA_SERVICES: &[&str] = &[
    "nova-api",
    "nova-compute",
    "nova-conductor",
    "nova-novncproxy",
    "nova-scheduler",
];
const OLD: &str = "2025.1-ubuntu-noble";
const NEW: &str = "2025.2-ubuntu-noble";

fn settings() -> PassSettings {
    PassSettings {
        poll_interval: Duration::from_millis(50),
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

async fn execute(kube: &Kube, prepared: &Prepared) -> Result<PassOutcome, PassError> {
    reconciler::execute(kube, prepared, &settings(), CancellationToken::new(), None).await
}

async fn converge(kube: &Kube, snapshot: &Snapshot) -> Prepared {
    let prepared = prepare(kube, snapshot).await;
    let outcome = execute(kube, &prepared).await.expect("pass applies");
    assert!(outcome.rollout.converged(), "{:?}", outcome.rollout);
    assert!(outcome.inventory_recorded);
    prepared
}

/// The image of the first container of the live nova-api Deployment.
async fn nova_api_image(kube: &Kube) -> String {
    let reference = ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("openstack".into()),
        name: "nova-api".into(),
    };
    let live = kube.get(&reference).await.expect("get").expect("exists");
    live.pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .expect("image")
        .to_string()
}

fn pre_job_names(prepared: &Prepared) -> Vec<String> {
    prepared
        .rendered
        .objects
        .iter()
        .filter(|o| o.component == "nova-api" && o.reference.kind == "Job")
        .map(|o| o.reference.name.clone())
        .collect()
}

#[tokio::test]
async fn reverting_a_release_upgrade_needs_an_explicit_trailer_and_config_reverts_never_do() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = Repo::init(tmp.path().join("repo"));
    copy_tree(&example_repo(), &repo.path);
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "OpenStack 2025.1"]);

    let sim = Cluster::start(support::example_nodes(SimOptions {
        ready_after: Duration::from_millis(150),
        job_duration: Duration::from_millis(150),
        ..SimOptions::default()
    }))
    .await
    .expect("simulator starts");
    let kube = connect(Target::InlineKubeconfig {
        kubeconfig: sim.kubeconfig(),
        context: None,
    })
    .await
    .expect("connects");
    support::create_example_secrets(&kube).await;
    let mut config = GitSourceConfig::new(repo.file_url(), "main");
    config.cache_dir = tmp.path().join("cache");
    let mut source = GitSource::new(config).expect("git source");

    // Commit A: everything at 2025.1.
    let a = converge(&kube, &next_snapshot(&mut source).await).await;
    assert!(nova_api_image(&kube).await.ends_with(OLD));

    // Commit B: nova to 2025.2. An upgrade is never blocked; the db-sync jobs get new names.
    for service in NOVA_SERVICES {
        edit(
            &repo.path,
            &format!("services/{service}.yaml"),
            &format!("image: {service}\n"),
            &format!("image: quay.io/openstack.kolla/{service}:{NEW}\n"),
        );
    }
    repo.git(&["commit", "-q", "-am", "Upgrade nova to 2025.2"]);
    let upgrade = repo.head();
    let b = converge(&kube, &next_snapshot(&mut source).await).await;
    assert!(b.plan.refusals.is_empty() && b.plan.warnings.is_empty());
    assert_ne!(pre_job_names(&a), pre_job_names(&b));
    assert!(nova_api_image(&kube).await.ends_with(NEW));

    // Path 1: `git revert B` is refused before the first write.
    repo.git(&["revert", "--no-edit", &upgrade]);
    let snapshot = next_snapshot(&mut source).await;
    assert_eq!(
        snapshot.commit.as_ref().and_then(|c| c.reverts.as_deref()),
        Some(upgrade.as_str())
    );
    sim.clear_request_log();
    let refused = prepare(&kube, &snapshot).await;
    let downgrades: Vec<_> = refused
        .plan
        .refusals
        .iter()
        .filter(|r| matches!(r.reason, RefusalReason::SchemaDowngrade { .. }))
        .collect();
    // Only nova-api runs database migrations (pre-jobs); the other nova services roll back freely.
    assert_eq!(downgrades.len(), 1, "{:?}", refused.plan.refusals);
    assert_eq!(downgrades[0].component, "nova-api");
    assert_eq!(
        downgrades[0].reason,
        RefusalReason::SchemaDowngrade {
            from: NEW.into(),
            to: OLD.into()
        }
    );
    assert!(downgrades[0].blocking);
    match execute(&kube, &refused).await {
        Err(PassError::Blocked { revision, message }) => {
            assert_eq!(revision, snapshot.revision.id);
            for needle in [
                "schema-downgrade risk",
                "nova-api",
                NEW,
                OLD,
                "Keelson-Allow-Downgrade: nova-api",
                "spec.policy.allowSchemaDowngrade: true",
            ] {
                assert!(message.contains(needle), "{needle:?} in {message}");
            }
        }
        other => panic!("expected a blocked pass, got {other:?}"),
    }
    let writes: Vec<_> = sim.request_log().into_iter().filter(|r| r.is_write()).collect();
    assert!(writes.is_empty(), "a refused pass wrote: {writes:?}");
    assert!(nova_api_image(&kube).await.ends_with(NEW));

    // Path 2: the same revert, committed with the trailer, applies and converges.
    repo.git(&["reset", "-q", "--hard", "HEAD~1"]);
    repo.git(&["revert", "--no-commit", &upgrade]);
    repo.git(&[
        "commit",
        "-q",
        "-m",
        &format!(
            "Revert nova to 2025.1\n\nThis reverts commit {upgrade}.\n\nKeelson-Allow-Downgrade: nova\n"
        ),
    ]);
    let allowed = converge(&kube, &next_snapshot(&mut source).await).await;
    assert!(!allowed.plan.is_blocked());
    assert!(allowed.plan.refusals.is_empty(), "{:?}", allowed.plan.refusals);
    let notes: Vec<_> = allowed
        .plan
        .warnings
        .iter()
        .map(|w| (w.component.as_str(), &w.kind))
        .collect();
    assert_eq!(
        notes,
        vec![(
            "nova-api",
            &WarningKind::SchemaDowngradeAllowed {
                from: NEW.into(),
                to: OLD.into(),
                allowed_by: "commit trailer `Keelson-Allow-Downgrade: nova`".into(),
            }
        )]
    );
    assert!(nova_api_image(&kube).await.ends_with(OLD));
    assert_eq!(pre_job_names(&allowed), pre_job_names(&a));

    // Path 3: a config-only change and its revert; neither is ever blocked.
    edit(
        &repo.path,
        "config/nova/nova.conf",
        "[DEFAULT]\n",
        "[DEFAULT]\ndebug = true\n",
    );
    repo.git(&["commit", "-q", "-am", "nova: debug logging"]);
    let config_change = repo.head();
    converge(&kube, &next_snapshot(&mut source).await).await;
    repo.git(&["revert", "--no-edit", &config_change]);
    let reverted = converge(&kube, &next_snapshot(&mut source).await).await;
    assert!(reverted.plan.refusals.is_empty() && reverted.plan.warnings.is_empty());
    let updated: Vec<&str> = reverted
        .plan
        .apply_changes()
        .filter(|c| c.action != Action::Unchanged)
        .map(|c| c.component.as_str())
        .collect();
    assert!(updated.contains(&"nova-api"), "{updated:?}");
    assert!(nova_api_image(&kube).await.ends_with(OLD));
}
