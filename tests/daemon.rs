//! `keelson run` in-process (and once as a binary) against the simulated cluster over real HTTP, following
//! real Git repositories: triggers (local watch, webhook, poll interval), the failure policy, cancellation by
//! a newer revision, suspend/resume/reconcile, drift correction, leader election and shutdown. Assertions
//! read the status object, Events, metrics and the live objects through the API.

#[path = "source_support/mod.rs"]
mod source_support;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keelson::cluster::{ApplyOptions, Kube, Target, connect};
use keelson::object::ObjectRef;
use keelson::reconciler::leader::{self, LeaderConfig};
use keelson::reconciler::{Daemon, DaemonConfig};
use keelson::sim::{Cluster, SimOptions};
use keelson::source::webhook::WebhookConfig;
use keelson::source::{GitSourceConfig, Secret};
use keelson::status::{self, PassResult, Phase, Shared, Status};
use serde_json::{Value, json};
use source_support::Repo;
use support::{metric, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const KEELSON_NS: &str = "keelson-system";
const NS: &str = "demo";

fn write_topology(dir: &Path, cache_replicas: u32, api_image: &str) {
    std::fs::create_dir_all(dir.join("services")).unwrap();
    std::fs::write(
        dir.join("keelson.yaml"),
        "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: demo\nspec:\n  namespace: demo\n  \
         images:\n    registry: quay.io\n    namespace: openstack.kolla\n    tag: 2025.1-ubuntu-noble\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("services/cache.yaml"),
        format!(
            "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: cache\nspec:\n  image: memcached\n  \
             replicas: {cache_replicas}\n  ports:\n  - name: memcached\n    port: 11211\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("services/api.yaml"),
        format!(
            "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  image: {api_image}\n  \
             dependsOn: [cache]\n  healthTimeout: 1h\n  ports:\n  - name: api\n    port: 5000\n"
        ),
    )
    .unwrap();
}

fn commit(repo: &Repo, message: &str) -> String {
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", message]);
    repo.git(&["rev-parse", "HEAD"])
}

struct Running {
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    addr: Option<std::net::SocketAddr>,
}

impl Running {
    async fn stop(self) -> Duration {
        let started = Instant::now();
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("daemon stops")
            .expect("daemon task");
        started.elapsed()
    }
}

fn fast_sim() -> SimOptions {
    support::fast_sim()
}

fn config(tweak: impl FnOnce(&mut DaemonConfig)) -> DaemonConfig {
    let mut config = support::test_daemon_config(KEELSON_NS);
    tweak(&mut config);
    config
}

async fn start(
    kube: &Kube,
    repo: &Path,
    cache: &Path,
    config: DaemonConfig,
    leader: Option<LeaderConfig>,
) -> Running {
    let mut source = GitSourceConfig::new(repo.to_string_lossy().into_owned(), "main");
    source.cache_dir = cache.to_path_buf();
    let mut daemon = Daemon::new(kube.clone(), source, config).expect("daemon");
    if let Some(leader) = leader {
        daemon = daemon.with_leader_election(leader);
    }
    let addr = daemon.bind().await.expect("bind");
    let shared = daemon.shared();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let task = tokio::spawn(async move {
        daemon
            .run(async move { shutdown.cancelled().await })
            .await
            .expect("daemon runs");
    });
    Running {
        shared,
        stop,
        task,
        addr,
    }
}

async fn applied(shared: &Shared, revision: &str, timeout: Duration) -> Duration {
    wait_for(&format!("revision {revision} applied"), timeout, || async {
        let s = shared.status();
        s.last_applied_revision.as_deref() == Some(revision) && s.phase == Phase::Ready
    })
    .await
}

/// Waits until the stored status (written after the in-memory one) shows `revision` applied.
async fn stored_applied(kube: &Kube, revision: &str) -> Status {
    wait_for(
        &format!("stored status at {revision}"),
        Duration::from_secs(10),
        || async {
            status::read_status(kube, KEELSON_NS)
                .await
                .ok()
                .flatten()
                .is_some_and(|s| {
                    s.last_applied_revision.as_deref() == Some(revision) && s.phase == Phase::Ready
                })
        },
    )
    .await;
    stored(kube).await
}

async fn stored(kube: &Kube) -> Status {
    status::read_status(kube, KEELSON_NS)
        .await
        .expect("read status")
        .expect("status exists")
}

async fn deployment(kube: &Kube, name: &str) -> Value {
    kube.get(&ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some(NS.into()),
        name: name.into(),
    })
    .await
    .expect("get")
    .expect("deployment exists")
}

async fn event_reasons(kube: &Kube) -> Vec<String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(kube.client().clone(), KEELSON_NS);
    api.list(&Default::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    repo: Repo,
    cache: std::path::PathBuf,
    sim: Cluster,
    kube: Kube,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(tmp.path().join("repo"));
    write_topology(&repo.path, 1, "keystone");
    commit(&repo, "first");
    let sim = Cluster::start(fast_sim()).await.expect("sim");
    let kube = connect(Target::Client(sim.client())).await.expect("connect");
    let cache = tmp.path().join("cache");
    Fixture {
        _tmp: tmp,
        repo,
        cache,
        sim,
        kube,
    }
}

async fn http(addr: std::net::SocketAddr, request: String) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: keelson\r\nConnection: close\r\n\r\n"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_commit_is_applied_through_the_watch_not_the_interval() {
    let f = fixture().await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    let daemon = start(&f.kube, &f.repo.path, &f.cache, config(|_| {}), None).await;
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;
    assert_eq!(deployment(&f.kube, "cache").await["spec"]["replicas"], 1);

    write_topology(&f.repo.path, 2, "keystone");
    let second = commit(&f.repo, "two caches");
    // The interval is an hour: only the watch can have started this pass.
    let took = wait_for("the new commit observed", Duration::from_secs(10), || async {
        daemon.shared.status().observed_revision.as_deref() == Some(second.as_str())
    })
    .await;
    applied(&daemon.shared, &second, Duration::from_secs(30)).await;
    eprintln!("commit observed through the watch after {took:?}");
    assert_eq!(deployment(&f.kube, "cache").await["spec"]["replicas"], 2);

    let status = stored_applied(&f.kube, &second).await;
    assert_eq!(status.last_applied_revision.as_deref(), Some(second.as_str()));
    assert_eq!(status.history[0].trigger, "wake");
    assert_eq!(status.history[0].subject, "two caches");
    assert_eq!(status.history[0].counts.updated, 1);
    assert_eq!(status.history[1].trigger, "start");
    assert_eq!(
        status.history[1].counts.created,
        status.history[1].counts.created.max(4)
    );
    assert!(
        status
            .components
            .iter()
            .all(|c| c.state == status::ComponentPhase::Healthy)
    );
    let reasons = event_reasons(&f.kube).await;
    assert_eq!(
        reasons.iter().filter(|r| *r == "Applied").count(),
        2,
        "{reasons:?}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_wakes_the_daemon_and_the_http_endpoints_answer() {
    let f = fixture().await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    let secret = "s3cret-for-tests";
    let cfg = config(|c| {
        c.watch_local = false;
        c.listen = Some("127.0.0.1:0".parse().unwrap());
        c.webhook = Some(WebhookConfig::new(Secret::new(secret.to_string()), "main"));
    });
    let daemon = start(&f.kube, &f.repo.path, &f.cache, cfg, None).await;
    let addr = daemon.addr.expect("listening");
    assert_eq!(get(addr, "/healthz").await.0, 200);
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;
    assert_eq!(get(addr, "/readyz").await.0, 200);

    write_topology(&f.repo.path, 3, "keystone");
    let second = commit(&f.repo, "three caches");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(
        daemon.shared.status().observed_revision.as_deref(),
        Some(second.as_str()),
        "nothing polled yet"
    );
    let body = r#"{"ref":"refs/heads/main","after":"0000"}"#;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body.as_bytes());
    let signature: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let (code, _) = http(
        addr,
        format!(
            "POST /hooks/git HTTP/1.1\r\nHost: keelson\r\nConnection: close\r\nContent-Type: application/json\r\n\
             X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256={signature}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert_eq!(code, 202);
    applied(&daemon.shared, &second, Duration::from_secs(30)).await;

    let (code, text) = get(addr, "/status").await;
    assert_eq!(code, 200);
    let json: Value = serde_json::from_str(&text).expect("status JSON");
    assert_eq!(json["lastAppliedRevision"], second.as_str());
    assert_eq!(json["phase"], "Ready");
    let (code, metrics) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    // Two passes applied commits; a re-plan woken by their own writes may add quiet ones.
    assert!(
        metric(&metrics, "keelson_passes_total{result=\"succeeded\"}") >= 2,
        "{metrics}"
    );
    for needle in [
        "keelson_pass_duration_seconds_count",
        "keelson_objects_total{action=\"created\"}",
        "keelson_objects_total{action=\"updated\"} 1",
        "keelson_git_polls_total",
        "keelson_git_fetches_total",
        "keelson_last_applied_timestamp_seconds",
        "keelson_wave_duration_seconds_count{wave=\"0\"}",
        "keelson_drift_corrections_total 0",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_watch_or_webhook_the_poll_interval_applies_commits() {
    let f = fixture().await;
    let daemon = start(
        &f.kube,
        &f.repo.path,
        &f.cache,
        config(|c| {
            c.watch_local = false;
            c.interval = Duration::from_secs(1);
        }),
        None,
    )
    .await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;
    write_topology(&f.repo.path, 2, "keystone");
    let second = commit(&f.repo, "two caches");
    applied(&daemon.shared, &second, Duration::from_secs(30)).await;
    assert_eq!(stored_applied(&f.kube, &second).await.history[0].trigger, "poll");
    daemon.stop().await;
}

/// Passes and polls so far, from `/metrics`.
async fn passes_and_polls(addr: std::net::SocketAddr) -> (u64, u64) {
    let (_, text) = get(addr, "/metrics").await;
    (
        metric(&text, "keelson_pass_duration_seconds_count"),
        metric(&text, "keelson_git_polls_total"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_that_finds_no_new_commit_plans_nothing_and_reads_no_owned_object() {
    let f = fixture().await;
    let daemon = start(
        &f.kube,
        &f.repo.path,
        &f.cache,
        config(|c| {
            c.watch_local = false;
            c.interval = Duration::from_millis(100);
            c.resync_interval = Duration::from_secs(3600);
            c.listen = Some("127.0.0.1:0".parse().unwrap());
        }),
        None,
    )
    .await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;
    let addr = daemon.addr.expect("listening");
    // The first pass's own writes wake drift passes until the workloads settle; then polls alone follow.
    let settle = Instant::now() + Duration::from_secs(30);
    let (passes, polls) = loop {
        let (passes, polls) = passes_and_polls(addr).await;
        let since = Instant::now();
        while passes_and_polls(addr).await.1 < polls + 5 {
            assert!(
                since.elapsed() < Duration::from_secs(20),
                "the daemon stopped polling"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if passes_and_polls(addr).await.0 == passes {
            break (passes, polls);
        }
        assert!(Instant::now() < settle, "passes go on without a commit or drift");
    };
    f.sim.clear_request_log();
    wait_for("five more polls", Duration::from_secs(20), || async {
        passes_and_polls(addr).await.1 >= polls + 10
    })
    .await;
    assert_eq!(
        passes_and_polls(addr).await.0,
        passes,
        "a poll with nothing new ran a pass"
    );
    let log = f.sim.request_log();
    let owned: Vec<String> = log
        .iter()
        .filter(|r| r.namespace.as_deref() == Some(NS))
        .map(|r| format!("{} {} {:?}", r.verb, r.resource, r.name))
        .collect();
    assert!(
        owned.is_empty(),
        "requests about the topology's objects: {owned:?}"
    );
    assert_eq!(writes(&f.sim), 0);
    daemon.stop().await;
}

/// The value of one series in Prometheus text output; 0 when absent.
fn writes(sim: &Cluster) -> usize {
    sim.request_log()
        .iter()
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_on_invalid_topology_and_does_not_retry_a_failed_rollout_until_asked() {
    let f = fixture().await;
    let daemon = start(
        &f.kube,
        &f.repo.path,
        &f.cache,
        config(|c| c.interval = Duration::from_millis(500)),
        None,
    )
    .await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;

    // Invalid: a dependency that does not exist.
    let path = f.repo.path.join("services/api.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("dependsOn: [cache]", "dependsOn: [nowhere]")).unwrap();
    let invalid = commit(&f.repo, "depend on nothing");
    wait_for("stalled", Duration::from_secs(20), || async {
        daemon.shared.status().phase == Phase::Stalled
    })
    .await;
    // The status write and the Event follow the in-memory status.
    wait_for("stall reported", Duration::from_secs(10), || async {
        event_reasons(&f.kube)
            .await
            .iter()
            .any(|r| r == "InvalidConfiguration")
    })
    .await;
    let before = writes(&f.sim);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        writes(&f.sim),
        before,
        "a stalled revision is not retried on every tick"
    );
    let status = stored(&f.kube).await;
    assert_eq!(status.last_applied_revision.as_deref(), Some(first.as_str()));
    assert_eq!(status.last_attempted_revision.as_deref(), Some(invalid.as_str()));
    assert_eq!(status.condition("Stalled").unwrap().status, "True");
    assert_eq!(status.condition("Ready").unwrap().status, "False");
    assert!(status.condition("Stalled").unwrap().message.contains("nowhere"));
    assert_eq!(status.history[0].result, PassResult::Stalled);
    let metrics = daemon.shared.metrics.encode();
    assert!(
        metric(
            &metrics,
            "keelson_passes_total{result=\"stalled\",reason=\"invalid_topology\"}"
        ) >= 1,
        "the error kind labels the pass: {metrics}"
    );

    // A rollout that fails: the image never pulls and the health timeout is short.
    write_topology(&f.repo.path, 1, "keystone:broken");
    let path = f.repo.path.join("services/api.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("healthTimeout: 1h", "healthTimeout: 1s")).unwrap();
    let broken = commit(&f.repo, "broken api image");
    wait_for("failed", Duration::from_secs(30), || async {
        daemon.shared.status().phase == Phase::Failed
    })
    .await;
    wait_for("failure stored", Duration::from_secs(10), || async {
        stored(&f.kube).await.phase == Phase::Failed
    })
    .await;
    let status = stored(&f.kube).await;
    assert_eq!(status.history[0].revision, broken);
    assert_eq!(status.history[0].result, PassResult::Failed);
    let api = status.components.iter().find(|c| c.name == "api").unwrap();
    assert_eq!(api.state, status::ComponentPhase::Failed);
    wait_for("failure reported", Duration::from_secs(10), || async {
        event_reasons(&f.kube)
            .await
            .iter()
            .any(|r| r == "ComponentFailed")
    })
    .await;
    let before = writes(&f.sim);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        writes(&f.sim),
        before,
        "a failed rollout is not retried on the same commit"
    );

    status::request_reconcile(&f.kube, KEELSON_NS, "now")
        .await
        .unwrap();
    wait_for("a requested pass", Duration::from_secs(30), || async {
        let s = daemon.shared.status();
        s.history.len() >= 4 && s.history[0].trigger == "reconcile" && s.phase == Phase::Failed
    })
    .await;

    let reasons = event_reasons(&f.kube).await;
    for reason in [
        "Applied",
        "InvalidConfiguration",
        "RolloutFailed",
        "ComponentFailed",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} missing from {reasons:?}"
        );
    }
    let metrics = daemon.shared.metrics.encode();
    for needle in [
        "result=\"stalled\",reason=\"invalid_topology\"} 1",
        "result=\"failed\",reason=\"health\"} 2",
        "result=\"succeeded\",reason=\"applied\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_commit_cancels_a_rollout_waiting_on_health() {
    let f = fixture().await;
    let daemon = start(&f.kube, &f.repo.path, &f.cache, config(|_| {}), None).await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;
    let broken = commit_stuck_api(&f.repo, &daemon.shared).await;
    write_topology(&f.repo.path, 1, "keystone:fixed");
    let fixed = commit(&f.repo, "fix api image");
    applied(&daemon.shared, &fixed, Duration::from_secs(30)).await;
    let status = stored_applied(&f.kube, &fixed).await;
    assert_eq!(status.history[0].revision, fixed);
    assert_eq!(status.history[0].result, PassResult::Succeeded);
    assert_eq!(status.history[1].revision, broken);
    assert_eq!(status.history[1].result, PassResult::Cancelled);
    let image =
        deployment(&f.kube, "api").await["spec"]["template"]["spec"]["containers"][0]["image"].clone();
    assert!(image.as_str().unwrap().ends_with(":fixed"), "{image}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_stops_applying_but_keeps_reporting() {
    let f = fixture().await;
    let daemon = start(
        &f.kube,
        &f.repo.path,
        &f.cache,
        config(|c| c.interval = Duration::from_millis(500)),
        None,
    )
    .await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;
    status::set_suspend(&f.kube, KEELSON_NS, true).await.unwrap();
    write_topology(&f.repo.path, 2, "keystone");
    let second = commit(&f.repo, "two caches");
    wait_for("suspended", Duration::from_secs(20), || async {
        let s = daemon.shared.status();
        s.phase == Phase::Suspended && s.observed_revision.as_deref() == Some(second.as_str())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        deployment(&f.kube, "cache").await["spec"]["replicas"],
        1,
        "nothing applied while suspended"
    );
    let status = stored(&f.kube).await;
    assert!(status.suspended);
    assert_eq!(
        status.observed_revision.as_deref(),
        Some(second.as_str()),
        "reporting goes on"
    );
    assert_eq!(status.last_applied_revision.as_deref(), Some(first.as_str()));
    assert!(daemon.shared.metrics.encode().contains("keelson_suspended 1"));

    status::set_suspend(&f.kube, KEELSON_NS, false).await.unwrap();
    applied(&daemon.shared, &second, Duration::from_secs(30)).await;
    assert_eq!(deployment(&f.kube, "cache").await["spec"]["replicas"], 2);
    let reasons = event_reasons(&f.kube).await;
    assert!(
        reasons.iter().any(|r| r == "Suspended") && reasons.iter().any(|r| r == "Resumed"),
        "{reasons:?}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_in_owned_fields_is_corrected_and_counted_and_foreign_fields_stay() {
    let f = fixture().await;
    // The interval is an hour: only the drift watch can start the corrections below.
    let daemon = start(&f.kube, &f.repo.path, &f.cache, config(|_| {}), None).await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;
    // Let the watchers list what exists before changing it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let intruder = ApplyOptions {
        field_manager: "someone-else".into(),
        force: true,
        ..ApplyOptions::default()
    };
    f.kube
        .apply(
            &json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "cache", "namespace": NS, "annotations": {"example.com/note": "mine"}},
                "spec": {"replicas": 5},
            }),
            &intruder,
        )
        .await
        .expect("drift applied");
    wait_for("drift corrected", Duration::from_secs(20), || async {
        deployment(&f.kube, "cache").await["spec"]["replicas"] == 1
    })
    .await;
    wait_for("drift counted", Duration::from_secs(10), || async {
        daemon.shared.status().drift_corrections >= 1
    })
    .await;
    let live = deployment(&f.kube, "cache").await;
    assert_eq!(
        live["metadata"]["annotations"]["example.com/note"], "mine",
        "a field Keelson does not own stays"
    );
    assert_one_drift_correction_reported(&daemon, &f.kube).await;
    assert_eq!(stored(&f.kube).await.history[0].trigger, "drift");

    // The same through kubectl, and a deletion by hand.
    let kubeconfig = f._tmp.path().join("kubeconfig");
    f.sim.write_kubeconfig(&kubeconfig).unwrap();
    let kubectl = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/kubectl");
    if kubectl.exists() {
        let out = std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "-n",
                NS,
                "patch",
                "deployment",
                "api",
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"replicas":3}}"#,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        wait_for("kubectl drift corrected", Duration::from_secs(20), || async {
            deployment(&f.kube, "api").await["spec"]["replicas"] == 1
        })
        .await;
    }
    let service = ObjectRef {
        api_version: "v1".into(),
        kind: "Service".into(),
        namespace: Some(NS.into()),
        name: "cache".into(),
    };
    f.kube
        .delete(&service, &Default::default())
        .await
        .expect("delete by hand");
    wait_for("deleted object recreated", Duration::from_secs(20), || async {
        f.kube.get(&service).await.ok().flatten().is_some()
    })
    .await;
    wait_for("all drift counted", Duration::from_secs(10), || async {
        daemon.shared.status().drift_corrections >= 2
    })
    .await;
    daemon.stop().await;
}

async fn replica_client(sim: &Cluster, identity: &str) -> Kube {
    let target = Target::InlineKubeconfig {
        kubeconfig: sim.kubeconfig(),
        context: None,
    };
    keelson::cluster::connect_as(target, &format!("keelson-test ({identity})"))
        .await
        .expect("connect")
}

/// The metric counts one corrected object and a `DriftCorrected` Event was recorded.
async fn assert_one_drift_correction_reported(daemon: &Running, kube: &Kube) {
    let metrics = daemon.shared.metrics.encode();
    assert_eq!(
        metric(&metrics, "keelson_drift_corrections_total"),
        1,
        "{metrics}"
    );
    wait_for("drift event", Duration::from_secs(10), || async {
        event_reasons(kube).await.iter().any(|r| r == "DriftCorrected")
    })
    .await;
}

fn fast_lease(identity: &str) -> LeaderConfig {
    LeaderConfig {
        lease_duration: Duration::from_millis(1500),
        renew_deadline: Duration::from_millis(1000),
        retry_period: Duration::from_millis(200),
        ..LeaderConfig::new(identity)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_writes_and_the_other_takes_over_when_it_stops() {
    let f = fixture().await;
    let cache_b = f.cache.with_extension("b");
    // One client per replica, each naming itself in its User-Agent, as `keelson run --leader-elect` does.
    let (kube_a, kube_b) = (
        replica_client(&f.sim, "a").await,
        replica_client(&f.sim, "b").await,
    );
    let a = start(
        &kube_a,
        &f.repo.path,
        &f.cache,
        config(|_| {}),
        Some(fast_lease("a")),
    )
    .await;
    let b = start(
        &kube_b,
        &f.repo.path,
        &cache_b,
        config(|_| {}),
        Some(fast_lease("b")),
    )
    .await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    wait_for("one replica applied", Duration::from_secs(30), || async {
        [&a, &b]
            .iter()
            .any(|d| d.shared.status().last_applied_revision.as_deref() == Some(first.as_str()))
    })
    .await;
    let holder = leader::holder(&f.kube, KEELSON_NS, leader::DEFAULT_LEASE_NAME)
        .await
        .unwrap()
        .expect("a holder");
    let (leading, standby) = if holder == "a" { (a, b) } else { (b, a) };
    assert!(leading.shared.metrics.encode().contains("keelson_leader 1"));
    assert!(standby.shared.metrics.encode().contains("keelson_leader 0"));
    assert!(
        standby.shared.status().history.is_empty(),
        "the standby ran no pass"
    );

    // Stop the leader while it waits on a rollout: it stops promptly and releases the Lease.
    write_topology(&f.repo.path, 1, "keystone:broken");
    commit(&f.repo, "broken api image");
    wait_for("rollout waiting", Duration::from_secs(20), || async {
        leading.shared.status().phase == Phase::Reconciling
    })
    .await;
    let took = leading.stop().await;
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    let after = leader::holder(&f.kube, KEELSON_NS, leader::DEFAULT_LEASE_NAME)
        .await
        .unwrap();
    assert!(
        after.is_none() || after.as_deref() != Some(holder.as_str()),
        "released, holder now {after:?}"
    );

    write_topology(&f.repo.path, 2, "keystone");
    let fixed = commit(&f.repo, "two caches, api fixed");
    applied(&standby.shared, &fixed, Duration::from_secs(30)).await;
    let now_holder = leader::holder(&f.kube, KEELSON_NS, leader::DEFAULT_LEASE_NAME)
        .await
        .unwrap();
    assert_ne!(now_holder.as_deref(), Some(holder.as_str()));
    // The new leader continued the stored history rather than starting a new one.
    let status = stored_applied(&f.kube, &fixed).await;
    assert!(
        status.history.iter().any(|h| h.result == PassResult::Cancelled),
        "{:?}",
        status.history
    );
    assert_eq!(deployment(&f.kube, "cache").await["spec"]["replicas"], 2);
    standby.stop().await;

    // Writes never interleave: apart from the election itself (the Lease, and Keelson's namespace that
    // holds it), every write came from the first leader until it stopped, then only from the other one.
    let writers: Vec<String> = f
        .sim
        .request_log()
        .into_iter()
        .filter(|r| r.is_write() && !matches!(r.resource.as_str(), "leases" | "namespaces"))
        .map(|r| r.user_agent.unwrap_or_default())
        .collect();
    let first_leader = format!("keelson-test ({holder})");
    let switch = writers
        .iter()
        .position(|w| *w != first_leader)
        .expect("the second leader wrote");
    assert!(switch > 0, "the first leader wrote first");
    assert!(
        writers[switch..].iter().all(|w| *w == writers[switch]) && writers[switch] != first_leader,
        "writers interleave: {writers:?}"
    );
}

/// A child process that is killed when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keelson_bin() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

/// `keelson run` as the pod runs it: JSON logs on stderr, leader election, an hour between polls.
fn spawn_run(repo: &Path, cache: &Path, kubeconfig: &Path) -> Child {
    spawn_replica(repo, cache, kubeconfig, "keelson-0", &[])
}

fn spawn_replica(repo: &Path, cache: &Path, kubeconfig: &Path, pod: &str, extra: &[&str]) -> Child {
    let child = std::process::Command::new(keelson_bin())
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--leader-elect",
            "--interval",
            "1h",
        ])
        .args(extra)
        .env("POD_NAME", pod)
        .arg("--repo")
        .arg(repo)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("KEELSON_LOG_FORMAT", "json")
        .env("KEELSON_LOG", "info")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn keelson run");
    Child(child)
}

/// `keelson status -o json`, once it answers and `accept` likes it.
fn wait_for_status(kubeconfig: &Path, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        let out = std::process::Command::new(keelson_bin())
            .args(["status", "-o", "json", "--kubeconfig"])
            .arg(kubeconfig)
            .output()
            .expect("keelson status");
        if out.status.success() {
            let value: Value = serde_json::from_slice(&out.stdout).expect("status -o json");
            if accept(&value) {
                return value;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends SIGTERM and waits for the exit; returns the time it took and stderr.
fn terminate(child: &mut Child) -> (Duration, std::process::ExitStatus, String) {
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopped = Instant::now();
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "keelson run did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = stopped.elapsed();
    let mut logs = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut logs).unwrap();
    (took, exit, logs)
}

/// Starts `keelson sim serve` and waits for its kubeconfig.
fn spawn_sim(kubeconfig: &Path) -> Child {
    let sim = Child(
        std::process::Command::new(keelson_bin())
            .args([
                "sim",
                "serve",
                "--ready-after",
                "100ms",
                "--job-duration",
                "100ms",
            ])
            .args(["--unpullable-image", "*:broken", "--kubeconfig-out"])
            .arg(kubeconfig)
            .spawn()
            .expect("spawn keelson sim serve"),
    );
    let started = Instant::now();
    while !kubeconfig.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no kubeconfig from sim serve"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sim
}

fn kubeconfig_client(rt: &tokio::runtime::Runtime, kubeconfig: &Path) -> Kube {
    rt.block_on(connect(Target::Kubeconfig {
        path: Some(kubeconfig.to_path_buf()),
        context: None,
    }))
    .expect("connect")
}

#[test]
fn when_the_leader_process_dies_the_standby_takes_over_within_the_lease_duration() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(tmp.path().join("repo"));
    write_topology(&repo.path, 1, "keystone");
    let first = commit(&repo, "first");
    let kubeconfig = tmp.path().join("kubeconfig");
    let _sim = spawn_sim(&kubeconfig);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kube = kubeconfig_client(&rt, &kubeconfig);
    let holder = || {
        rt.block_on(leader::holder(&kube, KEELSON_NS, leader::DEFAULT_LEASE_NAME))
            .expect("read lease")
            .unwrap_or_default()
    };
    let timings = [
        "--lease-duration",
        "2s",
        "--renew-deadline",
        "1500ms",
        "--retry-period",
        "200ms",
    ];
    let mut a = spawn_replica(
        &repo.path,
        &tmp.path().join("cache-a"),
        &kubeconfig,
        "replica-a",
        &timings,
    );
    wait_for_status(&kubeconfig, "the first commit applied", |s| {
        s["lastAppliedRevision"] == first.as_str() && s["phase"] == "Ready"
    });
    assert!(holder().starts_with("replica-a-"), "{}", holder());
    let mut b = spawn_replica(
        &repo.path,
        &tmp.path().join("cache-b"),
        &kubeconfig,
        "replica-b",
        &timings,
    );
    // The standby runs, but stays a standby while the leader renews (longer than a lease duration here).
    std::thread::sleep(Duration::from_secs(3));
    assert!(b.0.try_wait().unwrap().is_none(), "the standby runs");
    assert!(holder().starts_with("replica-a-"), "{}", holder());

    // The leader dies without releasing anything (SIGKILL: no shutdown, no release).
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let killed = Instant::now();
    let took = loop {
        if holder().starts_with("replica-b-") {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "no takeover, holder {}",
            holder()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // The standby waits a whole lease duration on its own clock, then takes over within a few retry periods.
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "takeover after {took:?}"
    );
    write_topology(&repo.path, 2, "keystone");
    let second = commit(&repo, "two caches");
    // The new leader follows the branch (its local watch sees the commit).
    wait_for_status(&kubeconfig, "the new leader applied", |s| {
        s["lastAppliedRevision"] == second.as_str() && s["phase"] == "Ready"
    });
    let (_, exit, logs) = terminate(&mut b);
    assert!(exit.success(), "{exit:?}\n{logs}");
    assert!(logs.contains("became the leader"), "{logs}");
}

#[test]
fn the_binary_stops_on_sigterm_during_a_rollout_releases_the_lease_and_the_next_start_converges() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(tmp.path().join("repo"));
    write_topology(&repo.path, 1, "keystone");
    let first = commit(&repo, "first");
    let kubeconfig = tmp.path().join("kubeconfig");
    let cache = tmp.path().join("cache");
    // The cluster outlives the daemon, as a real one does.
    let _sim = spawn_sim(&kubeconfig);

    let mut daemon = spawn_run(&repo.path, &cache, &kubeconfig);
    let status = wait_for_status(&kubeconfig, "the first commit applied", |s| {
        s["lastAppliedRevision"] == first.as_str() && s["phase"] == "Ready"
    });
    assert_eq!(status["history"][0]["result"], "Succeeded");
    let history = std::process::Command::new(keelson_bin())
        .args(["history", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .expect("keelson history");
    let table = String::from_utf8_lossy(&history.stdout);
    assert!(table.starts_with("REVISION"), "{table}");
    assert!(
        table.contains(&first[..12]) && table.contains("Succeeded"),
        "{table}"
    );

    // SIGTERM while the rollout waits on an image that never pulls (health timeout: an hour).
    write_topology(&repo.path, 1, "keystone:broken");
    let broken = commit(&repo, "broken api image");
    wait_for_status(&kubeconfig, "the rollout waiting on api", |s| {
        s["phase"] == "Reconciling"
            && s["lastAttemptedRevision"] == broken.as_str()
            && s["components"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["name"] == "api" && c["state"] == "Progressing")
            })
    });
    let (took, exit, logs) = terminate(&mut daemon);
    assert!(exit.success(), "{exit:?}\n{logs}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    for needle in ["lease released", "cancelled"] {
        assert!(
            logs.lines().any(|l| l.starts_with('{') && l.contains(needle)),
            "no JSON log line with {needle:?}:\n{logs}"
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kube = kubeconfig_client(&rt, &kubeconfig);
    let holder = rt
        .block_on(leader::holder(&kube, KEELSON_NS, leader::DEFAULT_LEASE_NAME))
        .expect("read lease");
    assert_eq!(holder, None, "the Lease is released on SIGTERM");
    let status = wait_for_status(&kubeconfig, "the cancelled pass recorded", |_| true);
    assert_eq!(status["history"][0]["revision"], broken.as_str());
    assert_eq!(status["history"][0]["result"], "Cancelled");

    // The next start (a new pod) finds the Lease free and converges on the fixed commit.
    write_topology(&repo.path, 2, "keystone");
    let fixed = commit(&repo, "two caches, api fixed");
    let mut daemon = spawn_run(&repo.path, &cache, &kubeconfig);
    let status = wait_for_status(&kubeconfig, "the fixed commit applied", |s| {
        s["lastAppliedRevision"] == fixed.as_str() && s["phase"] == "Ready"
    });
    assert_eq!(
        status["history"][1]["result"], "Cancelled",
        "history survives the restart"
    );
    let cache_replicas = rt
        .block_on(deployment(&kube, "cache"))
        .pointer("/spec/replicas")
        .cloned();
    assert_eq!(cache_replicas, Some(json!(2)));
    let (_, exit, logs) = terminate(&mut daemon);
    assert!(exit.success(), "{exit:?}\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_api_errors_are_retried_with_backoff_until_they_clear() {
    let f = fixture().await;
    // No retries inside the client: every failed read reaches the daemon's policy.
    let kube = f.kube.clone().with_retry(keelson::cluster::RetryPolicy {
        max_attempts: 1,
        ..Default::default()
    });
    let faults = keelson::sim::FaultConfig {
        error_rates: [("get".to_string(), 1.0)].into_iter().collect(),
        error_status: 500,
        ..Default::default()
    };
    // Keelson's namespace exists, so that status writes and Events (not faulted) land during the faults.
    status::store::ensure_namespace(&f.kube, KEELSON_NS)
        .await
        .unwrap();
    f.sim.faults().set(faults).unwrap();
    let daemon = start(&kube, &f.repo.path, &f.cache, config(|_| {}), None).await;
    let errors = || {
        metric(
            &daemon.shared.metrics.encode(),
            "keelson_passes_total{result=\"error\",reason=\"api\"}",
        )
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        errors() >= 3,
        "{:?} {}",
        daemon.shared.status(),
        daemon.shared.metrics.encode()
    );
    // Exponential: 200ms, 400ms, 800ms, 1.6s, 2s... (with jitter): a handful in 3s, not a storm.
    assert!(errors() <= 8, "{}", errors());
    let status = daemon.shared.status();
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(status.condition("Ready").unwrap().reason, "TransientError");
    assert_eq!(
        status.history.len(),
        1,
        "retries of one error share a history entry"
    );
    assert_eq!(status.history[0].result, PassResult::Error);
    f.sim.faults().set(Default::default()).unwrap();
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;
    wait_for("applied event", Duration::from_secs(10), || async {
        event_reasons(&f.kube).await.iter().any(|r| r == "Applied")
    })
    .await;
    let reasons = event_reasons(&f.kube).await;
    assert_eq!(
        reasons.iter().filter(|r| *r == "TransientError").count(),
        1,
        "{reasons:?}"
    );
    daemon.stop().await;
}

/// Commits an api image that never pulls (health timeout: an hour) and waits until the rollout waits on it.
async fn commit_stuck_api(repo: &Repo, shared: &Shared) -> String {
    write_topology(&repo.path, 1, "keystone:broken");
    let broken = commit(repo, "broken api image");
    wait_for("waiting on api", Duration::from_secs(20), || async {
        shared
            .status()
            .components
            .iter()
            .any(|c| c.name == "api" && c.state == status::ComponentPhase::Progressing)
    })
    .await;
    broken
}

/// Commits an api image that never pulls, with a health timeout short enough to fail the rollout.
fn commit_failing_api(repo: &Repo) -> String {
    write_topology(&repo.path, 1, "keystone:broken");
    let path = repo.path.join("services/api.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("healthTimeout: 1h", "healthTimeout: 1s")).unwrap();
    commit(repo, "broken api image")
}

/// Applies `replicas` to a Deployment as another field manager, as a person with kubectl would.
async fn scale_by_hand(kube: &Kube, name: &str, replicas: u32) {
    let intruder = ApplyOptions {
        field_manager: "someone-else".into(),
        force: true,
        ..ApplyOptions::default()
    };
    kube.apply(
        &json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas},
        }),
        &intruder,
    )
    .await
    .expect("drift applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_in_healthy_components_is_corrected_while_the_revision_stays_failed() {
    let f = fixture().await;
    let daemon = start(&f.kube, &f.repo.path, &f.cache, config(|_| {}), None).await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;
    let broken = commit_failing_api(&f.repo);
    wait_for("rollout failed", Duration::from_secs(30), || async {
        let s = daemon.shared.status();
        s.phase == Phase::Failed && s.last_attempted_revision.as_deref() == Some(broken.as_str())
    })
    .await;
    let failed_passes = daemon.shared.status().history.len();
    // Let the watchers settle on the failed rollout's own writes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.sim.clear_request_log();

    // The failed component, changed by hand, is left alone: correcting it would retry the failed rollout.
    scale_by_hand(&f.kube, "api", 3).await;
    // A healthy component's drift is corrected although the revision failed (the interval is an hour).
    scale_by_hand(&f.kube, "cache", 5).await;
    wait_for("drift corrected", Duration::from_secs(20), || async {
        deployment(&f.kube, "cache").await["spec"]["replicas"] == 1
    })
    .await;
    wait_for("correction recorded", Duration::from_secs(10), || async {
        let s = daemon.shared.status();
        s.drift_corrections >= 1 && s.history.len() > failed_passes
    })
    .await;

    let status = daemon.shared.status();
    assert_eq!(status.phase, Phase::Failed, "the revision stays failed");
    assert_eq!(status.last_applied_revision.as_deref(), Some(first.as_str()));
    assert_eq!(status.last_attempted_revision.as_deref(), Some(broken.as_str()));
    let api = status.components.iter().find(|c| c.name == "api").unwrap();
    assert_eq!(api.state, status::ComponentPhase::Failed);
    let correction = &status.history[0];
    assert_eq!(correction.trigger, "drift");
    assert_eq!(correction.revision, broken);
    assert_eq!(correction.result, PassResult::Succeeded);
    assert!(
        correction.message.contains("stays failed"),
        "{}",
        correction.message
    );
    assert_eq!(deployment(&f.kube, "api").await["spec"]["replicas"], 3);

    let keelson_writes: Vec<String> = f
        .sim
        .request_log()
        .iter()
        .filter(|r| r.is_write() && r.namespace.as_deref() == Some(NS))
        .filter(|r| r.field_manager.as_deref() != Some("someone-else"))
        .map(|r| format!("{}/{}", r.resource, r.name.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        keelson_writes,
        ["deployments/cache"],
        "only the drifted object is written"
    );
    assert_one_drift_correction_reported(&daemon, &f.kube).await;
    wait_for("correction stored", Duration::from_secs(10), || async {
        let s = stored(&f.kube).await;
        s.phase == Phase::Failed && s.history[0].trigger == "drift"
    })
    .await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_resume_act_at_once_and_suspend_cancels_a_waiting_rollout() {
    let f = fixture().await;
    // The interval is an hour: only the watch on the control object can make these prompt.
    let daemon = start(&f.kube, &f.repo.path, &f.cache, config(|_| {}), None).await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;
    let broken = commit_stuck_api(&f.repo, &daemon.shared).await;

    status::set_suspend(&f.kube, KEELSON_NS, true).await.unwrap();
    let took = wait_for("suspended", Duration::from_secs(10), || async {
        daemon.shared.status().phase == Phase::Suspended
    })
    .await;
    assert!(took < Duration::from_secs(3), "suspending took {took:?}");
    let status = daemon.shared.status();
    assert_eq!(status.history[0].revision, broken);
    assert_eq!(status.history[0].result, PassResult::Cancelled);
    wait_for("suspension stored", Duration::from_secs(10), || async {
        stored(&f.kube).await.phase == Phase::Suspended
    })
    .await;

    let log_before = f.sim.request_log().len();
    write_topology(&f.repo.path, 2, "keystone");
    let fixed = commit(&f.repo, "two caches, api fixed");
    wait_for("new commit reported", Duration::from_secs(10), || async {
        daemon.shared.status().observed_revision.as_deref() == Some(fixed.as_str())
    })
    .await;
    // Reporting writes only Keelson's own status; nothing in the topology's namespace.
    let applied_while_suspended = f
        .sim
        .request_log()
        .iter()
        .skip(log_before)
        .filter(|r| r.is_write() && r.namespace.as_deref() == Some(NS))
        .count();
    assert_eq!(applied_while_suspended, 0);

    status::set_suspend(&f.kube, KEELSON_NS, false).await.unwrap();
    let took = applied(&daemon.shared, &fixed, Duration::from_secs(20)).await;
    assert!(took < Duration::from_secs(10), "resuming took {took:?}");
    assert_eq!(deployment(&f.kube, "cache").await["spec"]["replicas"], 2);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_caused_outside_git_is_retried_by_keelson_reconcile() {
    let f = fixture().await;
    let daemon = start(&f.kube, &f.repo.path, &f.cache, config(|_| {}), None).await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;
    // Someone else's Service stands where a new component's Service goes.
    let foreign = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "extra", "namespace": NS},
        "spec": {"ports": [{"port": 80}]},
    });
    let theirs = ApplyOptions {
        field_manager: "someone-else".into(),
        ..ApplyOptions::default()
    };
    f.kube.apply(&foreign, &theirs).await.expect("foreign service");
    let extra = std::fs::read_to_string(f.repo.path.join("services/cache.yaml"))
        .unwrap()
        .replace("name: cache", "name: extra");
    std::fs::write(f.repo.path.join("services/extra.yaml"), extra).unwrap();
    let added = commit(&f.repo, "add extra");
    wait_for(
        "stalled on the foreign object",
        Duration::from_secs(20),
        || async {
            let s = daemon.shared.status();
            s.phase == Phase::Stalled && s.last_attempted_revision.as_deref() == Some(added.as_str())
        },
    )
    .await;
    let message = daemon.shared.status().condition("Ready").unwrap().message.clone();
    assert!(message.contains("not owned"), "{message}");

    let service = ObjectRef {
        api_version: "v1".into(),
        kind: "Service".into(),
        namespace: Some(NS.into()),
        name: "extra".into(),
    };
    f.kube
        .delete(&service, &Default::default())
        .await
        .expect("delete");
    status::request_reconcile(&f.kube, KEELSON_NS, "after-cleanup")
        .await
        .unwrap();
    applied(&daemon.shared, &added, Duration::from_secs(20)).await;
    let status = daemon.shared.status();
    assert_eq!(status.history[0].trigger, "reconcile");
    assert_eq!(status.history[0].result, PassResult::Succeeded);
    let live = f
        .kube
        .get(&service)
        .await
        .unwrap()
        .expect("recreated as Keelson's");
    assert_eq!(
        live["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "keelson"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_requests_hang_stops_writing_by_its_renew_deadline() {
    let f = fixture().await;
    status::store::ensure_namespace(&f.kube, KEELSON_NS)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let stop = CancellationToken::new();
    let config = fast_lease("hung");
    let elector = tokio::spawn(leader::run(
        f.kube.clone(),
        KEELSON_NS.to_string(),
        config.clone(),
        tx,
        stop.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|leader| *leader))
        .await
        .expect("becomes the leader")
        .unwrap();
    // Every request now hangs far longer than the lease: no renewal answers.
    let hung = Instant::now();
    f.sim
        .faults()
        .set(keelson::sim::FaultConfig {
            latency: Duration::from_secs(30),
            ..Default::default()
        })
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|leader| !*leader))
        .await
        .expect("steps down")
        .unwrap();
    let took = hung.elapsed();
    // A standby may take over a lease duration after the last renewal it saw; the leader stops before.
    assert!(
        took < config.lease_duration,
        "stopped writing after {took:?}; the lease is {:?}",
        config.lease_duration
    );
    stop.cancel();
    f.sim.faults().set(Default::default()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(40), elector).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drift_correction_that_fails_marks_the_component_and_is_not_retried_on_every_tick() {
    let f = fixture().await;
    // No retries inside the client: a refused write reaches the daemon at once.
    let kube = f.kube.clone().with_retry(keelson::cluster::RetryPolicy {
        max_attempts: 1,
        ..Default::default()
    });
    let daemon = start(
        &kube,
        &f.repo.path,
        &f.cache,
        config(|c| c.interval = Duration::from_millis(300)),
        None,
    )
    .await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first, Duration::from_secs(30)).await;
    let broken = commit_failing_api(&f.repo);
    wait_for("rollout failed", Duration::from_secs(30), || async {
        let s = daemon.shared.status();
        s.phase == Phase::Failed && s.last_attempted_revision.as_deref() == Some(broken.as_str())
    })
    .await;

    // cache drifts, and every write the daemon would correct it with is refused.
    scale_by_hand(&f.kube, "cache", 5).await;
    f.sim
        .faults()
        .set(keelson::sim::FaultConfig {
            error_rates: [("patch".to_string(), 1.0)].into_iter().collect(),
            error_status: 500,
            ..Default::default()
        })
        .unwrap();
    wait_for("correction failed", Duration::from_secs(20), || async {
        daemon
            .shared
            .status()
            .components
            .iter()
            .any(|c| c.name == "cache" && c.state == status::ComponentPhase::Failed)
    })
    .await;
    let status = daemon.shared.status();
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(status.history[0].result, PassResult::Failed);
    assert!(
        status.history[0].message.contains("correcting drift"),
        "{}",
        status.history[0].message
    );
    // Ticks go on (every 300ms), but the failed correction is not tried and recorded again.
    let entries = status.history.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(daemon.shared.status().history.len(), entries);

    // A reconcile, once the writes go through again, runs the whole revision and restores cache.
    f.sim.faults().set(Default::default()).unwrap();
    status::request_reconcile(&f.kube, KEELSON_NS, "after-outage")
        .await
        .unwrap();
    wait_for("cache corrected", Duration::from_secs(20), || async {
        deployment(&f.kube, "cache").await["spec"]["replicas"] == 1
    })
    .await;
    daemon.stop().await;
}
