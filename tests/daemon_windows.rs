//! Sync windows: the daemon in-process against the simulated cluster, following a real repository with real
//! commits, its clock set by the test (a `ManualClock`, never the wall time). Outside a window a commit is
//! planned and reported — status, `keelson status`, /status, Events — and nothing is written; when the window
//! opens it applies; `keelson reconcile --force` (the built binary) applies once and the history records it;
//! invalid windows are refused naming file, line and field.

#[path = "source_support/mod.rs"]
mod source_support;
mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use keelson::cluster::{Kube, Target, connect};
use keelson::object::ObjectRef;
use keelson::reconciler::clock::ManualClock;
use keelson::reconciler::{Daemon, DaemonConfig};
use keelson::sim::Cluster;
use keelson::source::GitSourceConfig;
use keelson::status::{PassResult, Phase, Shared, Status};
use keelson::topology::sync_windows::{SyncWindow, SyncWindows};
use serde_json::Value;
use source_support::Repo;
use support::wait_for;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const KEELSON_NS: &str = "keelson-system";
const NS: &str = "demo";
const WAIT: Duration = Duration::from_secs(30);

fn write_topology(dir: &Path, windows: &str, replicas: u32) {
    std::fs::create_dir_all(dir.join("services")).unwrap();
    std::fs::write(
        dir.join("keelson.yaml"),
        format!(
            "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: demo\nspec:\n  namespace: demo\n  \
             images:\n    registry: quay.io\n    namespace: openstack.kolla\n    tag: 2025.1-ubuntu-noble\n{windows}"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("services/cache.yaml"),
        format!(
            "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: cache\nspec:\n  image: memcached\n  \
             replicas: {replicas}\n  ports:\n  - name: memcached\n    port: 11211\n"
        ),
    )
    .unwrap();
}

fn commit(repo: &Repo, message: &str) -> String {
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", message]);
    repo.git(&["rev-parse", "HEAD"])
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

struct Running {
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    addr: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("daemon stops")
            .expect("daemon task");
    }
}

struct Fixture {
    tmp: tempfile::TempDir,
    repo: Repo,
    sim: Cluster,
    kube: Kube,
    clock: Arc<ManualClock>,
}

async fn fixture(windows: &str, now: &str) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(tmp.path().join("repo"));
    write_topology(&repo.path, windows, 1);
    commit(&repo, "first");
    let sim = Cluster::start(support::fast_sim()).await.expect("sim");
    let kube = connect(Target::Client(sim.client())).await.expect("connect");
    Fixture {
        tmp,
        repo,
        sim,
        kube,
        clock: Arc::new(ManualClock::new(at(now))),
    }
}

impl Fixture {
    async fn start(&self, tweak: impl FnOnce(&mut DaemonConfig)) -> Running {
        let mut config = support::test_daemon_config(KEELSON_NS);
        config.clock = self.clock.clone();
        config.listen = Some("127.0.0.1:0".parse().unwrap());
        tweak(&mut config);
        let mut source = GitSourceConfig::new(self.repo.path.to_string_lossy().into_owned(), "main");
        source.cache_dir = self.tmp.path().join("cache");
        let mut daemon = Daemon::new(self.kube.clone(), source, config).expect("daemon");
        let addr = daemon.bind().await.expect("bind").expect("listening");
        let (shared, wake) = (daemon.shared(), daemon.wake_handle());
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
            wake,
            addr,
            stop,
            task,
        }
    }

    fn kubeconfig(&self) -> String {
        let path = self.tmp.path().join("kubeconfig");
        self.sim.write_kubeconfig(&path).expect("kubeconfig");
        path.to_string_lossy().into_owned()
    }

    async fn replicas(&self) -> i64 {
        let live = self
            .kube
            .get(&ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some(NS.into()),
                name: "cache".into(),
            })
            .await
            .expect("get")
            .expect("deployment exists");
        live["spec"]["replicas"].as_i64().expect("replicas")
    }

    /// Writes the sim saw to the topology's namespace (the daemon's own status and Events are elsewhere).
    fn writes_to_topology(&self) -> usize {
        self.sim
            .request_log()
            .iter()
            .filter(|r| r.is_write() && r.namespace.as_deref() == Some(NS))
            .count()
    }

    async fn event_messages(&self, reason: &str) -> Vec<String> {
        let api: kube::Api<k8s_openapi::api::core::v1::Event> =
            kube::Api::namespaced(self.kube.client().clone(), KEELSON_NS);
        api.list(&Default::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter_map(|e| e.message)
            .collect()
    }
}

async fn applied(shared: &Shared, revision: &str) {
    wait_for(&format!("revision {revision} applied"), WAIT, || async {
        let s = shared.status();
        s.last_applied_revision.as_deref() == Some(revision) && s.phase == Phase::Ready
    })
    .await;
}

async fn pending(shared: &Shared, revision: &str) -> Status {
    wait_for(&format!("revision {revision} pending"), WAIT, || async {
        let s = shared.status();
        s.phase == Phase::Pending && s.pending_change.as_ref().is_some_and(|p| p.revision == revision)
    })
    .await;
    shared.status()
}

async fn keelson(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(&args)
            .output()
            .expect("keelson runs")
    })
    .await
    .expect("keelson finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: keelson\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

async fn get_status(addr: std::net::SocketAddr) -> Value {
    let body = get(addr, "/status").await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is JSON: {e}: {body}"))
}

// 2026-12-01 is a Tuesday.
const WEEKEND_FREEZE: &str =
    "  syncWindows:\n  - kind: deny\n    schedule: \"0 22 * * 5\"\n    duration: 60h\n    timeZone: UTC\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_inside_a_deny_window_is_planned_and_reported_and_applied_when_the_window_ends() {
    let f = fixture(WEEKEND_FREEZE, "2026-12-01T12:00:00Z").await;
    let daemon = f.start(|_| {}).await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first).await;

    // Saturday noon: inside the freeze, which ends on Monday at 10:00.
    f.clock.set(at("2026-12-05T12:00:00Z"));
    let writes_before = f.writes_to_topology();
    write_topology(&f.repo.path, WEEKEND_FREEZE, 3);
    let second = commit(&f.repo, "cache x3");
    let status = pending(&daemon.shared, &second).await;
    let message = &status.condition("Ready").unwrap().message;
    assert!(
        message.starts_with("change pending: window opens Mon 2026-12-07 10:00 UTC; revision "),
        "{message}"
    );
    assert!(
        message.contains("(1 to create, 1 to update, 0 to delete)"),
        "{message}"
    );
    assert!(
        message.contains("deny window \"0 22 * * 5\" for 60h (UTC) is active until Mon 2026-12-07 10:00 UTC"),
        "{message}"
    );
    let change = status.pending_change.clone().unwrap();
    assert_eq!(change.window_opens.as_deref(), Some("2026-12-07T10:00:00Z"));
    assert_eq!(change.counts.updated, 1);
    assert_eq!(status.last_applied_revision.as_deref(), Some(first.as_str()));
    // Woken again (drift, polls) while held: still nothing written, the report is not repeated.
    for _ in 0..3 {
        daemon.wake.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        f.writes_to_topology(),
        writes_before,
        "nothing is written outside the window"
    );
    assert_eq!(f.replicas().await, 1);
    let events = f.event_messages("SyncWindowClosed").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].contains("window opens Mon 2026-12-07 10:00 UTC"),
        "{events:?}"
    );

    // The operator sees it in `keelson status` and on /status.
    let kc = f.kubeconfig();
    let out = keelson(vec!["status".into(), "--kubeconfig".into(), kc.clone()]).await;
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}{}", text(&out.stderr));
    assert!(shown.contains("Pending"), "{shown}");
    assert!(shown.contains("SyncWindowClosed"), "{shown}");
    assert!(shown.contains("PENDING CHANGE"), "{shown}");
    assert!(shown.contains("window opens: 2026-12-07T10:00:00Z"), "{shown}");
    assert!(
        shown.contains("apply now: `keelson reconcile --force`"),
        "{shown}"
    );
    let served = get_status(daemon.addr).await;
    assert_eq!(served["pendingChange"]["revision"], second.as_str(), "{served}");
    assert_eq!(served["pendingChange"]["windowOpens"], "2026-12-07T10:00:00Z");
    assert_eq!(
        support::metric(&get(daemon.addr, "/metrics").await, "keelson_change_pending"),
        1
    );

    // Monday 10:00: the freeze is over; the next trigger applies the commit.
    f.clock.set(at("2026-12-07T10:00:00Z"));
    daemon.wake.notify_one();
    applied(&daemon.shared, &second).await;
    assert_eq!(f.replicas().await, 3);
    let status = daemon.shared.status();
    assert_eq!(status.pending_change, None);
    assert_eq!(status.history[0].revision, second);
    assert_eq!(status.history[0].result, PassResult::Succeeded);
    assert_eq!(
        support::metric(&get(daemon.addr, "/metrics").await, "keelson_change_pending"),
        0
    );
    daemon.stop().await;
}

const TUESDAY_NIGHTS: &str =
    "  syncWindows:\n  - kind: allow\n    schedule: \"0 2 * * 2\"\n    duration: 2h\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_an_allow_window_only_reconcile_force_applies_and_only_once() {
    let f = fixture(TUESDAY_NIGHTS, "2026-12-01T03:00:00Z").await;
    let daemon = f.start(|_| {}).await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    applied(&daemon.shared, &first).await;

    // Tuesday noon: outside the window until next Tuesday 02:00.
    f.clock.set(at("2026-12-01T12:00:00Z"));
    write_topology(&f.repo.path, TUESDAY_NIGHTS, 2);
    let second = commit(&f.repo, "cache x2");
    let status = pending(&daemon.shared, &second).await;
    let message = &status.condition("Ready").unwrap().message;
    assert!(
        message.contains("window opens Tue 2026-12-08 02:00 UTC"),
        "{message}"
    );
    assert!(message.contains("outside every allow window"), "{message}");

    // A plain `keelson reconcile` does not go through a window without manualSync.
    let kc = f.kubeconfig();
    let args = |extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "reconcile".into(),
            "--wait".into(),
            "--timeout".into(),
            "30s".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--kubeconfig".to_string(), kc.clone()]);
        args
    };
    let out = keelson(args(&[])).await;
    assert!(!out.status.success(), "a held reconcile is not a success");
    let said = text(&out.stdout);
    assert!(
        said.contains("Pending: change pending: window opens Tue 2026-12-08 02:00 UTC"),
        "{said}"
    );
    assert_eq!(f.replicas().await, 1);

    // `--force` applies it, once; the history and an Event record the override.
    let out = keelson(args(&["--force"])).await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    applied(&daemon.shared, &second).await;
    assert_eq!(f.replicas().await, 2);
    let status = daemon.shared.status();
    assert_eq!(status.history[0].revision, second);
    assert_eq!(status.history[0].trigger, "force");
    assert_eq!(status.pending_change, None);
    let overrides = f.event_messages("SyncWindowOverridden").await;
    assert_eq!(overrides.len(), 1, "{overrides:?}");
    assert!(
        overrides[0].contains("`keelson reconcile --force`"),
        "{overrides:?}"
    );
    let out = keelson(vec!["history".into(), "--kubeconfig".into(), kc.clone()]).await;
    assert!(text(&out.stdout).contains("force"), "{}", text(&out.stdout));

    // The next commit is held again: the override was for one pass.
    write_topology(&f.repo.path, TUESDAY_NIGHTS, 4);
    let third = commit(&f.repo, "cache x4");
    pending(&daemon.shared, &third).await;
    assert_eq!(f.replicas().await, 2);

    // Inside next Tuesday's window it applies.
    f.clock.set(at("2026-12-08T02:30:00Z"));
    daemon.wake.notify_one();
    applied(&daemon.shared, &third).await;
    assert_eq!(f.replicas().await, 4);
    assert_eq!(daemon.shared.status().history[0].trigger, "wake");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_own_window_holds_back_drift_and_a_commit_cannot_lift_it() {
    let f = fixture("", "2026-12-01T12:00:00Z").await;
    let freeze =
        SyncWindow::parse_flag("{kind: deny, schedule: '0 0 1 12 *', duration: 7d, manualSync: true}")
            .expect("window");
    let daemon = f
        .start(|config| config.sync_windows = SyncWindows(vec![freeze]))
        .await;
    let first = f.repo.git(&["rev-parse", "HEAD"]);
    // No revision applied yet and inside the daemon's freeze: even the first commit waits.
    let status = pending(&daemon.shared, &first).await;
    let message = &status.condition("Ready").unwrap().message;
    assert!(
        message.contains("window opens Tue 2026-12-08 00:00 UTC"),
        "{message}"
    );
    assert!(
        message.contains("`keelson reconcile` applies it now"),
        "{message}"
    );
    assert_eq!(f.writes_to_topology(), 0);

    // Its manualSync lets a plain `keelson reconcile` through.
    let kc = f.kubeconfig();
    let out = keelson(vec![
        "reconcile".into(),
        "--wait".into(),
        "--kubeconfig".into(),
        kc.clone(),
    ])
    .await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    applied(&daemon.shared, &first).await;
    assert_eq!(daemon.shared.status().history[0].trigger, "reconcile");

    // Drift is not corrected inside the freeze (a documented choice): the hand edit stays until it ends.
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(f.kube.client().clone(), NS);
    let scale = serde_json::json!({"spec": {"replicas": 5}});
    api.patch(
        "cache",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&scale),
    )
    .await
    .expect("scale by hand");
    wait_for("drift held back", WAIT, || async {
        let s = daemon.shared.status();
        s.phase == Phase::Pending
            && s.condition("Ready")
                .is_some_and(|c| c.message.contains("drift correction of revision"))
    })
    .await;
    assert_eq!(f.replicas().await, 5);

    // A commit that declares an allow-everything window of its own does not lift the daemon's freeze.
    write_topology(
        &f.repo.path,
        "  syncWindows:\n  - kind: allow\n    schedule: \"* * * * *\"\n    duration: 1h\n",
        1,
    );
    let second = commit(&f.repo, "try to open the window");
    pending(&daemon.shared, &second).await;
    assert_eq!(f.replicas().await, 5);

    f.clock.set(at("2026-12-08T00:00:00Z"));
    daemon.wake.notify_one();
    applied(&daemon.shared, &second).await;
    assert_eq!(f.replicas().await, 1);
    daemon.stop().await;
}

#[test]
fn invalid_windows_are_refused_naming_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    write_topology(
        tmp.path(),
        "  syncWindows:\n  - kind: deny\n    schedule: \"0 25 * * *\"\n    duration: 1h\n  - kind: allow\n    \
         schedule: \"@daily\"\n    duration: soon\n    timeZone: Mars/Olympus\n",
        1,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .arg("validate")
        .arg(tmp.path())
        .output()
        .expect("keelson runs");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{said}");
    for expected in [
        "keelson.yaml:13:15: spec.syncWindows[0].schedule: `0 25 * * *` is not a cron schedule",
        "keelson.yaml:17:15: spec.syncWindows[1].duration: `soon` is not a duration",
        "keelson.yaml:18:15: spec.syncWindows[1].timeZone: `Mars/Olympus` is not an IANA time zone",
    ] {
        assert!(said.contains(expected), "{expected}\n{said}");
    }

    write_topology(
        tmp.path(),
        "  syncWindows:\n  - kind: later\n    schedule: \"0 2 * * *\"\n    duration: 1h\n",
        1,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .arg("validate")
        .arg(tmp.path())
        .output()
        .expect("keelson runs");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("keelson.yaml:12:"), "{said}");
    assert!(said.contains("spec.syncWindows[0].kind"), "{said}");

    // The daemon's flag takes the same fields and refuses a bad one before starting (a usage error).
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["run", "--repo", "/nowhere", "--sim"])
        .args([
            "--sync-window",
            "{kind: deny, schedule: '0 22 * * 5', duration: 0s}",
        ])
        .output()
        .expect("keelson runs");
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("--sync-window"), "{said}");
    assert!(
        said.contains("duration: duration `0s` must be greater than zero"),
        "{said}"
    );
}
