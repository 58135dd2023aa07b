//! Pre-flight against the simulated cluster over real HTTP: `keelson plan` names every reference that
//! resolves neither in the revision nor in the cluster (component, object, field), `apply` does not start
//! the one component whose Secret is missing while an independent one converges, the next pass converges
//! once the Secret exists, and a Keelson without list on a referenced kind says once that it skipped it.

#[path = "source_support/mod.rs"]
mod source_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use keelson::cluster::{ApplyOptions, Kube, Target, connect};
use keelson::plan::WarningKind;
use keelson::reconciler::{self, PassSettings};
use keelson::rollout::ComponentState;
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
use serde_json::{Value, json};
use support::SimEnv;
use tokio_util::sync::CancellationToken;

const NS: &str = "openstack";

const TOPOLOGY: &str = "\
apiVersion: keelson.dev/v1
kind: Topology
metadata:
  name: demo
spec:
  namespace: openstack
  healthTimeout: 20s
";

/// Reads a Secret and a ConfigMap nobody makes, and names a ServiceAccount nobody makes.
const API: &str = "\
apiVersion: keelson.dev/v1
kind: Service
metadata:
  name: api
spec:
  image: api
  env:
    - name: DB_PASSWORD
      secretKeyRef: {name: api-db, key: password}
    - name: MODE
      configMapKeyRef: {name: api-settings, key: mode}
    - name: EXTRA
      secretKeyRef: {name: api-extra, key: x, optional: true}
";

/// Depends on `api`: blocked when `api` cannot start.
const FRONTEND: &str = "\
apiVersion: keelson.dev/v1
kind: Service
metadata:
  name: frontend
spec:
  dependsOn: [api]
  image: frontend
";

/// Independent of `api`: converges whatever happens to it.
const WORKER: &str = "\
apiVersion: keelson.dev/v1
kind: Service
metadata:
  name: worker
spec:
  image: worker
";

fn write_topology(dir: &Path) {
    support::write_files(
        dir,
        &[
            ("keelson.yaml", TOPOLOGY),
            ("services/api.yaml", API),
            ("services/frontend.yaml", FRONTEND),
            ("services/worker.yaml", WORKER),
        ],
    );
}

fn settings() -> PassSettings {
    PassSettings {
        poll_interval: Duration::from_millis(50),
        ..PassSettings::default()
    }
}

async fn apply_object(kube: &Kube, object: Value) {
    kube.apply(&object, &ApplyOptions::default())
        .await
        .expect("object applied");
}

async fn namespace(kube: &Kube) {
    apply_object(
        kube,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_names_each_unresolved_reference_with_component_and_field_in_every_format() {
    let env = SimEnv::start(support::fast_sim()).await;
    namespace(&env.kube).await;
    // The ConfigMap exists: only the Secret is reported.
    apply_object(
        &env.kube,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "api-settings", "namespace": NS},
               "data": {"mode": "fast"}}),
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_topology(dir.path());
    let kubeconfig = dir.path().join("kubeconfig");
    env.sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let topology = dir.path().to_str().expect("utf-8 path");

    let out = support::keelson_on(&["plan", topology], &kubeconfig);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = "Deployment openstack/api (api): spec.template.spec.containers[0].env[0].valueFrom.\
                secretKeyRef.name: Secret \"api-db\" not found in namespace openstack; api is not started \
                until it exists";
    assert!(text.contains(line), "{text}");
    assert!(!text.contains("api-settings"), "the ConfigMap exists: {text}");
    assert!(
        !text.contains("api-extra"),
        "an optional reference is no warning: {text}"
    );

    let out = support::keelson_on(&["plan", topology, "-o", "markdown"], &kubeconfig);
    let markdown = String::from_utf8_lossy(&out.stdout);
    assert!(
        markdown.contains("secretKeyRef.name: Secret \"api-db\" not found in namespace openstack"),
        "{markdown}"
    );

    let out = support::keelson_on(&["plan", topology, "-o", "json"], &kubeconfig);
    let plan: Value = serde_json::from_slice(&out.stdout).expect("JSON plan");
    let warnings = plan["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(
        warnings[0]["kind"],
        json!({"type": "unresolvedReference",
               "field": "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name",
               "targetKind": "Secret", "name": "api-db", "namespace": NS, "blocksApply": true})
    );
    assert_eq!(warnings[0]["component"], "api");
    assert_eq!(warnings[0]["reference"]["name"], "api");
    // The same document validates against the published schema.
    let Some(python) = validator() else { return };
    let file = dir.path().join("plan.json");
    std::fs::write(&file, &out.stdout).expect("write");
    let check = Command::new(&python)
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator.check_schema(schema)\n\
             errors = list(jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))\n\
             for e in errors[:20]: print(e.json_path, e.message[:300])\n\
             sys.exit(1 if errors else 0)",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/plan.schema.json"))
        .arg(&file)
        .output()
        .expect("python runs");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// The JSON Schema validator of the test tools' virtualenv: this checkout's `.tools`, or the one beside
/// the test tools on PATH (scripts/install-test-tools.sh). Required on CI.
fn validator() -> Option<PathBuf> {
    let mut candidates = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("../venv/bin/python")));
    }
    let found = candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import jsonschema"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "no Python with jsonschema in .tools/venv or beside the tools on PATH; run scripts/install-test-tools.sh"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_only_the_component_whose_secret_is_missing_and_the_next_pass_converges() {
    let env = SimEnv::start(support::fast_sim()).await;
    namespace(&env.kube).await;
    apply_object(
        &env.kube,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "api-settings", "namespace": NS},
               "data": {"mode": "fast"}}),
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_topology(dir.path());
    let snapshot = Snapshot::from_dir(dir.path(), DEFAULT_MAX_FILE_SIZE).expect("snapshot");
    env.sim.clear_request_log();

    let prepared = reconciler::prepare(&env.kube, &snapshot, &settings())
        .await
        .expect("prepare");
    let outcome = reconciler::execute(&env.kube, &prepared, &settings(), CancellationToken::new(), None)
        .await
        .expect("pass");
    let state = |name: &str| {
        outcome
            .rollout
            .component(name)
            .map(|c| (c.state, c.reason.clone()))
            .expect("component")
    };
    let (api, reason) = state("api");
    assert_eq!(api, ComponentState::Failed, "{reason}");
    assert!(reason.contains("Secret \"api-db\""), "{reason}");
    assert!(
        reason.contains("spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name"),
        "{reason}"
    );
    assert_eq!(state("frontend").0, ComponentState::Blocked);
    assert_eq!(state("worker").0, ComponentState::Healthy);
    assert!(!outcome.inventory_recorded);
    // Not one write of api's or frontend's objects reached the server.
    let log = env.sim.request_log();
    let written: Vec<String> = support::writes(&log)
        .iter()
        .filter_map(|r| r.name.clone())
        .collect();
    assert!(written.iter().any(|n| n == "worker"), "{written:?}");
    assert!(
        !written
            .iter()
            .any(|n| n.starts_with("api") || n.starts_with("frontend")),
        "{written:?}"
    );

    // The operator creates the Secret (with kubectl, as a person would).
    let kubeconfig = dir.path().join("kubeconfig");
    env.sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let kubectl = Command::new("kubectl")
        .args([
            "create",
            "secret",
            "generic",
            "api-db",
            "-n",
            NS,
            "--from-literal=password=s3cret",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .output();
    match kubectl {
        Ok(out) => assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr)),
        Err(e) if std::env::var_os("CI").is_some() => panic!("kubectl is needed on CI: {e}"),
        Err(_) => {
            apply_object(
                &env.kube,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-db", "namespace": NS},
                       "stringData": {"password": "s3cret"}}),
            )
            .await
        }
    }

    let prepared = reconciler::prepare(&env.kube, &snapshot, &settings())
        .await
        .expect("prepare again");
    assert!(prepared.plan.warnings.is_empty(), "{:#?}", prepared.plan.warnings);
    let outcome = reconciler::execute(&env.kube, &prepared, &settings(), CancellationToken::new(), None)
        .await
        .expect("second pass");
    assert!(outcome.rollout.converged(), "{:#?}", outcome.rollout.components);
    assert!(outcome.inventory_recorded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keelson_that_may_not_list_a_referenced_kind_says_once_that_it_skipped_it() {
    let env = SimEnv::start(support::fast_sim()).await;
    namespace(&env.kube).await;
    // Keelson's ServiceAccount may do everything in the namespace but has no cluster-wide grant, so it may
    // not list StorageClasses.
    for object in [
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "keelson", "namespace": NS}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "keelson", "namespace": NS},
               "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "keelson", "namespace": NS},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "keelson"},
               "subjects": [{"kind": "ServiceAccount", "name": "keelson", "namespace": NS}]}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-db", "namespace": NS},
               "stringData": {"password": "x"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "api-settings", "namespace": NS},
               "data": {"mode": "fast"}}),
    ] {
        apply_object(&env.kube, object).await;
    }
    let token = env
        .sim
        .service_account_token(NS, "keelson", Duration::from_secs(3600))
        .expect("token");
    let kubeconfig = keelson::sim::kubeconfig_for(&env.sim.url(), &token, env.sim.ca_certificate_pem());
    let kube = connect(Target::InlineKubeconfig {
        kubeconfig,
        context: None,
    })
    .await
    .expect("connects");

    let dir = tempfile::tempdir().expect("tempdir");
    write_topology(dir.path());
    // Two components claim storage of the same class: one list refused, one notice.
    for component in ["api", "worker"] {
        support::edit(
            dir.path(),
            &format!("services/{component}.yaml"),
            &format!("  image: {component}\n"),
            &format!("  image: {component}\n  manifests: [manifests/{component}.yaml]\n"),
        );
        let claim = format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {component}-data\nspec:\n  \
             storageClassName: fast\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      \
             storage: 1Gi\n"
        );
        std::fs::create_dir_all(dir.path().join("manifests")).expect("mkdir");
        std::fs::write(dir.path().join(format!("manifests/{component}.yaml")), claim).expect("write");
    }
    let snapshot = Snapshot::from_dir(dir.path(), DEFAULT_MAX_FILE_SIZE).expect("snapshot");
    env.sim.clear_request_log();
    let prepared = reconciler::prepare(&kube, &snapshot, &settings())
        .await
        .expect("a refused pre-flight list does not fail the plan");
    assert_eq!(
        prepared.plan.skipped_checks.len(),
        1,
        "{:#?}",
        prepared.plan.skipped_checks
    );
    let skipped = &prepared.plan.skipped_checks[0];
    assert_eq!(skipped.resource, "storageclasses");
    assert!(
        skipped.reason.starts_with("list not granted"),
        "{}",
        skipped.reason
    );
    assert!(
        !prepared
            .plan
            .warnings
            .iter()
            .any(|w| matches!(&w.kind, WarningKind::UnresolvedReference { target_kind, .. } if target_kind == "StorageClass")),
        "{:#?}",
        prepared.plan.warnings
    );
    let denied: Vec<_> = env
        .sim
        .request_log()
        .into_iter()
        .filter(|r| r.status == 403)
        .map(|r| (r.verb, r.resource))
        .collect();
    assert_eq!(denied, vec![("list".to_string(), "storageclasses".to_string())]);
    let text = keelson::plan::to_text(&prepared.plan, false);
    assert_eq!(
        text.matches("pre-flight skipped for storageclasses").count(),
        1,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reports_the_missing_secret_and_converges_on_reconcile_once_it_exists() {
    use keelson::reconciler::Daemon;
    use keelson::source::GitSourceConfig;
    use keelson::status::{self, ComponentPhase, Phase};

    const KEELSON_NS: &str = "keelson-system";
    let env = SimEnv::start(support::fast_sim()).await;
    namespace(&env.kube).await;
    apply_object(
        &env.kube,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KEELSON_NS}}),
    )
    .await;
    apply_object(
        &env.kube,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "api-settings", "namespace": NS},
               "data": {"mode": "fast"}}),
    )
    .await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = source_support::Repo::init(tmp.path().join("repo"));
    write_topology(&repo.path);
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "api, frontend and worker"]);
    let head = repo.git(&["rev-parse", "HEAD"]);

    let mut source = GitSourceConfig::new(repo.path.to_string_lossy().into_owned(), "main");
    source.cache_dir = tmp.path().join("cache");
    let mut daemon =
        Daemon::new(env.kube.clone(), source, support::test_daemon_config(KEELSON_NS)).expect("daemon");
    daemon.bind().await.expect("bind");
    let shared = daemon.shared();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let task = tokio::spawn(async move {
        daemon
            .run(async move { shutdown.cancelled().await })
            .await
            .expect("daemon runs");
    });

    support::wait_for("the first pass fails on api", Duration::from_secs(30), || async {
        shared.status().phase == Phase::Failed
    })
    .await;
    let status = shared.status();
    let component = |name: &str| {
        status
            .components
            .iter()
            .find(|c| c.name == name)
            .map(|c| (c.state, c.reason.clone()))
            .expect("component in the status")
    };
    let (api, reason) = component("api");
    assert_eq!(api, ComponentPhase::Failed, "{reason}");
    assert!(
        reason.starts_with("not started: referenced Secret \"api-db\""),
        "{reason}"
    );
    assert_eq!(component("worker").0, ComponentPhase::Healthy);

    apply_object(
        &env.kube,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-db", "namespace": NS},
               "stringData": {"password": "s3cret"}}),
    )
    .await;
    status::request_reconcile(&env.kube, KEELSON_NS, "secret created")
        .await
        .expect("reconcile requested");
    support::wait_for("converged after reconcile", Duration::from_secs(30), || async {
        let s = shared.status();
        s.phase == Phase::Ready && s.last_applied_revision.as_deref() == Some(head.as_str())
    })
    .await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("daemon stops")
        .expect("daemon task");
}
