//! Failures say why: a rollout that cannot finish names the reason its workload's Pods give, as a kubelet
//! or the scheduler wrote it (an image that does not pull, a crash loop, a missing ConfigMap, a nodeSelector
//! no node matches, a Job whose Pods fail, a DaemonSet that matches no node), in `apply`'s live progress
//! and summary, the status object, the component's Event and the daemon log. What cannot heal on its own
//! fails after `--pod-failure-grace`, well before the health timeout. (A missing Secret never gets this far:
//! the pre-flight does not start its component, tests/preflight.rs.)

#[path = "source_support/mod.rs"]
mod source_support;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use keelson::cluster::Kube;
use keelson::sim::{Cluster, SimOptions};
use keelson::status::{self, ComponentPhase};
use kube::api::{Api, ListParams};
use source_support::Repo;
use support::{SimEnv, wait_for};
use tokio::process::Command;

const KEELSON_NS: &str = "keelson-system";

fn keelson() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keelson"));
    command
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KEELSON_LOG")
        .env_remove("KUBECONFIG")
        .kill_on_drop(true);
    command
}

/// A topology `name` (its namespace too) of `services`: each a name and the rest of its spec as YAML lines
/// (indented two spaces).
fn topology(dir: &Path, name: &str, services: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("services")).unwrap();
    std::fs::write(
        dir.join("keelson.yaml"),
        format!(
            "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: {name}\nspec:\n  namespace: {name}\n  \
             images:\n    registry: quay.io\n    namespace: openstack.kolla\n    tag: 2025.1-ubuntu-noble\n"
        ),
    )
    .unwrap();
    for (service, spec) in services {
        std::fs::write(
            dir.join(format!("services/{service}.yaml")),
            format!("apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: {service}\nspec:\n{spec}"),
        )
        .unwrap();
    }
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    elapsed: Duration,
}

/// `keelson apply` of `dir` against `sim`, with `args` before the path.
async fn apply(sim: &Cluster, dir: &Path, args: &[&str]) -> Ran {
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        keelson()
            .arg("apply")
            .args(args)
            .arg(dir)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .output(),
    )
    .await
    .expect("apply ends")
    .expect("keelson runs");
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        elapsed: started.elapsed(),
    };
    assert_eq!(
        ran.code,
        Some(1),
        "{}\n{}",
        ran.stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    ran
}

/// The line of `stdout` that reports `component` finished.
fn finished<'a>(stdout: &'a str, component: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.contains(&format!(" {component} ")) && l.contains(" Failed after "))
        .unwrap_or_else(|| panic!("no line says {component} failed:\n{stdout}"))
}

const PORTS: &str = "  ports:\n  - name: api\n    port: 5000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpullable_image_and_a_crash_loop_are_named_while_waiting_and_when_the_timeout_passes() {
    // Kolla containers run `kolla_start`, which starts the command of their config.json: every container
    // that starts here crashes; `api` never starts, as its image never pulls.
    let SimEnv { sim, .. } = SimEnv::start(SimOptions {
        crash_commands: vec!["kolla_start".into()],
        ..support::sim_options(Duration::from_millis(200))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("hr-waits");
    topology(
        &repo,
        "hr-waits",
        &[
            (
                "api",
                &format!("  image: keystone:broken\n  healthTimeout: 4s\n{PORTS}"),
            ),
            (
                "looping",
                &format!("  image: keystone\n  command: keystone-api\n  healthTimeout: 6s\n{PORTS}"),
            ),
        ],
    );
    let ran = apply(&sim, &repo, &[]).await;
    let out = &ran.stdout;

    // While waiting: the live progress says what the Pods say, not only how many replicas are ready.
    assert!(
        out.lines().any(|l| l.contains(" api ")
            && l.contains("waiting: Deployment hr-waits/api: 0 of 1 replicas available — ")
            && l.contains("quay.io/openstack.kolla/keystone:broken")),
        "{out}"
    );
    // When the timeout passes, the reason is the Pods'; an image pull that may heal is waited on to the end.
    let api = finished(out, "api");
    assert!(
        api.contains("not healthy within 4s: Deployment hr-waits/api: 0 of 1 replicas available — ImagePullBackOff: quay.io/openstack.kolla/keystone:broken"),
        "{api}"
    );
    let looping = finished(out, "looping");
    assert!(
        looping.contains("not healthy within 6s: Deployment hr-waits/looping: 0 of 1 replicas available — CrashLoopBackOff ("),
        "{looping}"
    );
    assert!(
        looping.contains(" restart")
            && looping.contains("container looping, last exited with code 1 (Error)"),
        "{looping}"
    );
    assert!(
        out.contains("components: 0 healthy, 2 failed (2 timed out), 0 blocked, 0 skipped"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_map_and_a_node_selector_no_node_matches_fail_after_the_grace_naming_them() {
    let SimEnv { sim, .. } = SimEnv::start(support::sim_options(Duration::from_millis(200))).await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("hr-grace");
    let settings = "  env:\n  - name: OS_DATABASE__CONNECTION\n    configMapKeyRef:\n      name: api-settings\n      key: connection\n";
    topology(
        &repo,
        "hr-grace",
        &[
            (
                "api",
                &format!("  image: keystone\n  healthTimeout: 10m\n{settings}{PORTS}"),
            ),
            (
                "compute",
                &format!(
                    "  image: nova-compute\n  workload: StatefulSet\n  healthTimeout: 10m\n  nodeSelector:\n    \
                     openstack.org/compute: enabled\n{PORTS}"
                ),
            ),
            (
                "web",
                &format!("  image: horizon\n  dependsOn:\n  - api\n  healthTimeout: 10m\n{PORTS}"),
            ),
        ],
    );
    let ran = apply(&sim, &repo, &["--pod-failure-grace", "2s"]).await;
    let out = &ran.stdout;
    // Both fail after the grace, far inside their ten-minute health timeouts.
    assert!(
        ran.elapsed < Duration::from_secs(40),
        "took {:?}:\n{out}",
        ran.elapsed
    );
    let api = finished(out, "api");
    assert!(
        api.contains("Deployment hr-grace/api: 0 of 1 replicas available — CreateContainerConfigError: configmap \"api-settings\" not found (for 2s, --pod-failure-grace; it does not heal on its own)"),
        "{api}"
    );
    assert!(!api.contains("not healthy within"), "{api}");
    let compute = finished(out, "compute");
    assert!(
        compute.contains("StatefulSet hr-grace/compute: 0 of 1 replicas ready — Unschedulable: 0/3 nodes match nodeSelector openstack.org/compute=enabled (0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector)"),
        "{compute}"
    );
    // The failed component stops its dependent, as any failure does.
    assert!(
        out.contains("components: 0 healthy, 2 failed, 1 blocked, 0 skipped"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_pods_fail_names_their_exit_and_a_daemonset_matching_no_node_is_told_then_fails() {
    let SimEnv { sim, .. } = SimEnv::start(SimOptions {
        failing_jobs: vec!["*-db-sync*".into()],
        ..support::sim_options(Duration::from_millis(100))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("hr-jobs");
    topology(
        &repo,
        "hr-jobs",
        &[
            (
                "api",
                &format!(
                    "  image: keystone\n  healthTimeout: 10m\n  jobs:\n  - name: db-sync\n    phase: pre\n    \
                     command: keystone-manage db_sync\n{PORTS}"
                ),
            ),
            (
                "agent",
                "  image: nova-compute\n  workload: DaemonSet\n  healthTimeout: 10m\n  nodeSelector:\n    \
                 openstack.org/compute: enabled\n",
            ),
        ],
    );
    let ran = apply(&sim, &repo, &["--pod-failure-grace", "3s"]).await;
    let out = &ran.stdout;
    assert!(
        ran.elapsed < Duration::from_secs(60),
        "took {:?}:\n{out}",
        ran.elapsed
    );
    let api = finished(out, "api");
    assert!(api.contains("Job hr-jobs/api-db-sync"), "{api}");
    assert!(
        api.contains("failed: container db-sync exited with code 1 (Error)"),
        "{api}"
    );
    // The DaemonSet is not healthy silently: the wait says it matches no node, then it fails.
    assert!(
        out.lines().any(|l| l.contains(" agent ")
            && l.contains("waiting: DaemonSet hr-jobs/agent: 0 pods desired: the DaemonSet matches no node — no node matches nodeSelector openstack.org/compute=enabled")),
        "{out}"
    );
    let agent = finished(out, "agent");
    assert!(
        agent
            .contains("matches no node — no node matches nodeSelector openstack.org/compute=enabled (for 3s"),
        "{agent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_reference_that_does_not_parse_fails_at_once() {
    let SimEnv { sim, .. } = SimEnv::start(support::sim_options(Duration::from_millis(100))).await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("hr-invalid");
    // Keelson's own services refuse such a reference when validating; a raw manifest can still carry one.
    // Its pod template carries the topology label, as Keelson's own templates do.
    topology(
        &repo,
        "hr-invalid",
        &[(
            "raw",
            "  workload: None\n  healthTimeout: 10m\n  manifests:\n  - manifests/raw.yaml\n",
        )],
    );
    std::fs::create_dir_all(repo.join("manifests")).unwrap();
    std::fs::write(
        repo.join("manifests/raw.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: raw\nspec:\n  selector:\n    matchLabels:\n      \
         app: raw\n  template:\n    metadata:\n      labels:\n        app: raw\n        keelson.dev/topology: hr-invalid\n    \
         spec:\n      containers:\n      - name: raw\n        image: quay.io/openstack.kolla/Keystone:1\n",
    )
    .unwrap();
    let ran = apply(&sim, &repo, &[]).await;
    let out = &ran.stdout;
    assert!(
        ran.elapsed < Duration::from_secs(30),
        "took {:?}:\n{out}",
        ran.elapsed
    );
    let raw = finished(out, "raw");
    assert!(
        raw.contains("Deployment hr-invalid/raw: 0 of 1 replicas available — InvalidImageName: quay.io/openstack.kolla/Keystone:1 is not a valid image reference; this cannot heal on its own"),
        "{raw}"
    );
}

async fn component_events(kube: &Kube, reason: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(kube.client().clone(), KEELSON_NS);
    match api.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter_map(|e| e.message)
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_tells_a_missing_config_map_in_its_status_events_and_log_before_the_health_timeout() {
    let SimEnv { sim, kube } = SimEnv::start(support::sim_options(Duration::from_millis(200))).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let repo = Repo::init(dir.path().join("cloud"));
    let settings = "  env:\n  - name: OS_DATABASE__CONNECTION\n    configMapKeyRef:\n      name: api-settings\n      key: connection\n";
    topology(
        &repo.path,
        "hr-daemon",
        &[
            (
                "api",
                &format!("  image: keystone\n  healthTimeout: 10m\n{settings}{PORTS}"),
            ),
            (
                "pulling",
                &format!("  image: keystone:broken\n  healthTimeout: 15s\n{PORTS}"),
            ),
        ],
    );
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "cloud"]);
    let log = dir.path().join("run.log");
    let started = Instant::now();
    let _daemon = keelson()
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "1h",
            "--ref",
            "main",
        ])
        .args(["--pod-failure-grace", "2s"])
        .arg("--repo")
        .arg(&repo.path)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("KEELSON_LOG_FORMAT", "json")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("keelson run starts");

    let want = "CreateContainerConfigError: configmap \\\"api-settings\\\" not found";
    let plain = "CreateContainerConfigError: configmap \"api-settings\" not found";
    let status_of = || async {
        status::read_status(&kube, KEELSON_NS)
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    wait_for(
        "the component failed naming the ConfigMap",
        Duration::from_secs(60),
        || async {
            status_of()
                .await
                .components
                .iter()
                .any(|c| c.name == "api" && c.state == ComponentPhase::Failed && c.reason.contains(plain))
        },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    // While `pulling` waits (and after `api` failed), the status says what its Pods say, and so does
    // `keelson status`.
    let pulling = "Deployment hr-daemon/pulling: 0 of 1 replicas available — ImagePullBackOff: quay.io/openstack.kolla/keystone:broken";
    wait_for(
        "the waiting reason in the status",
        Duration::from_secs(20),
        || async {
            status_of()
                .await
                .components
                .iter()
                .any(|c| c.name == "pulling" && c.state == ComponentPhase::Progressing && c.reason == pulling)
        },
    )
    .await;
    // The table cuts long reasons; the JSON form carries them whole.
    let shown = keelson()
        .args(["status", "-o", "json"])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .output()
        .await
        .expect("keelson status runs");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains(pulling), "{shown}");
    assert!(shown.contains(want), "{shown}");
    // The Events come with the end of the pass, once `pulling` timed out.
    wait_for(
        "a ComponentFailed Event naming the ConfigMap",
        Duration::from_secs(40),
        || async {
            component_events(&kube, "ComponentFailed")
                .await
                .iter()
                .any(|m| m.starts_with("api: ") && m.contains(plain))
        },
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(want), "the daemon log names the reason:\n{text}");
}
