//! Failures that say why, through the real binary where an operator meets them: an API server that refuses
//! connections or never answers, credentials it rejects, a permission Keelson lacks (one-shot commands and
//! the daemon), Ctrl-C during `apply`, components that time out, the baseline `plan` names, and a Git source
//! that goes away, comes back and then points at a commit without keelson.yaml (`keelson run` on `git://`).

#[path = "source_support/mod.rs"]
mod source_support;
mod support;

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use keelson::cluster::{Kube, Target, connect};
use keelson::reconciler::{self, PassSettings};
use keelson::sim::{Cluster, kubeconfig_for};
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
use keelson::status::{self, Phase};
use kube::api::{Api, ListParams};
use serde_json::json;
use source_support::Repo;
use support::{SimEnv, wait_for};
use tokio::io::{AsyncBufReadExt, BufReader};
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

/// A topology of `services` (name, image, health timeout), no dependencies.
fn topology(dir: &Path, name: &str, services: &[(&str, &str, &str)]) {
    std::fs::create_dir_all(dir.join("services")).unwrap();
    std::fs::write(
        dir.join("keelson.yaml"),
        format!(
            "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: {name}\nspec:\n  namespace: {name}\n  \
             images:\n    registry: quay.io\n    namespace: openstack.kolla\n    tag: 2025.1-ubuntu-noble\n"
        ),
    )
    .unwrap();
    for (service, image, timeout) in services {
        std::fs::write(
            dir.join(format!("services/{service}.yaml")),
            format!(
                "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: {service}\nspec:\n  image: {image}\n  \
                 healthTimeout: {timeout}\n  ports:\n  - name: api\n    port: 5000\n"
            ),
        )
        .unwrap();
    }
}

fn write_kubeconfig(dir: &Path, name: &str, server: &str, token: &str, ca_pem: &str) -> PathBuf {
    let path = dir.join(name);
    let text = serde_yaml::to_string(&kubeconfig_for(server, token, ca_pem)).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// A kubeconfig for `server` with a token and no CA (the servers it is used for never get to TLS).
fn kubeconfig_without_ca(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  \
         context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: t}}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

async fn run(command: &mut Command) -> Ran {
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the command ends")
        .expect("keelson runs");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// One line on stderr, no library log lines, no colour codes (stderr is a pipe here).
fn assert_one_plain_line(ran: &Ran, starts: &str, contains: &[&str]) {
    let lines: Vec<&str> = ran.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{}", ran.stderr);
    assert!(lines[0].starts_with(starts), "{}", lines[0]);
    for text in contains {
        assert!(lines[0].contains(text), "{text:?} missing from {}", lines[0]);
    }
    assert!(
        !ran.stderr.contains("kube_client") && !ran.stderr.contains('\u{1b}'),
        "{}",
        ran.stderr
    );
    assert_eq!(ran.code, Some(1), "{ran:?}", ran = (&ran.stdout, &ran.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_is_one_line_naming_the_server_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    topology(&dir.path().join("repo"), "small", &[("api", "keystone", "1m")]);
    // A port nothing listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("https://127.0.0.1:{port}");
    let kubeconfig = kubeconfig_without_ca(dir.path(), &server);
    for command in ["plan", "apply"] {
        let ran = run(keelson()
            .arg(command)
            .arg(dir.path().join("repo"))
            .arg("--kubeconfig")
            .arg(&kubeconfig))
        .await;
        let expected =
            format!("cannot reach {server}: connection refused — is the kubeconfig's server right?");
        assert_one_plain_line(&ran, &expected, &[]);
        // Ten retries took 13.8 s; a refused port is said at once.
        assert!(
            ran.elapsed < Duration::from_secs(2),
            "{command}: {:?}",
            ran.elapsed
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_and_a_certificate_nobody_trusts_are_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    topology(&dir.path().join("repo"), "small", &[("api", "keystone", "1m")]);
    // `.invalid` never resolves (RFC 6761).
    let server = "https://api.keelson-test.invalid:6443";
    let kubeconfig = kubeconfig_without_ca(dir.path(), server);
    let ran = run(keelson()
        .arg("plan")
        .arg(dir.path().join("repo"))
        .arg("--kubeconfig")
        .arg(&kubeconfig))
    .await;
    assert_one_plain_line(
        &ran,
        &format!("cannot reach {server}: the host name does not resolve (DNS)"),
        &["does its host name resolve from here?"],
    );

    // A real API server whose certificate the kubeconfig does not trust (no CA given: the system roots).
    let sim = Cluster::start(support::fast_sim()).await.unwrap();
    let server = sim.url();
    let server = server.trim_end_matches('/');
    let kubeconfig = kubeconfig_without_ca(dir.path(), server);
    let ran = run(keelson()
        .arg("plan")
        .arg(dir.path().join("repo"))
        .arg("--kubeconfig")
        .arg(&kubeconfig))
    .await;
    assert_one_plain_line(
        &ran,
        &format!("cannot reach {server}: TLS handshake failed: "),
        &["certificate-authority-data"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_accepts_and_never_answers_ends_in_one_line_within_35_seconds() {
    let dir = tempfile::tempdir().unwrap();
    topology(&dir.path().join("repo"), "small", &[("api", "keystone", "1m")]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("https://{}", listener.local_addr().unwrap());
    // Accepts every connection and holds it open without a byte in reply.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let kubeconfig = kubeconfig_without_ca(dir.path(), &server);
    // Both commands at once, with the default --request-timeout: the bound holds for each.
    let mut plan = keelson();
    plan.arg("plan")
        .arg(dir.path().join("repo"))
        .arg("--kubeconfig")
        .arg(&kubeconfig);
    let mut apply = keelson();
    apply
        .arg("apply")
        .arg(dir.path().join("repo"))
        .arg("--kubeconfig")
        .arg(&kubeconfig);
    let (plan, apply) = tokio::join!(run(&mut plan), run(&mut apply));
    for ran in [plan, apply] {
        assert_one_plain_line(
            &ran,
            &format!("cannot reach {server}: no answer"),
            &[
                "timed out",
                "is the kubeconfig's server right",
                "--request-timeout",
            ],
        );
        assert!(ran.elapsed < Duration::from_secs(35), "{:?}", ran.elapsed);
    }
}

/// A simulated cluster with RBAC, Keelson's namespace, and a ServiceAccount `keelson-system/keelson` that may
/// only keep its status, control object, Events and Lease there: nothing in the topology's namespace.
async fn cluster_with_a_bare_service_account() -> (Cluster, Kube, String) {
    let sim = Cluster::start(support::sim_options(Duration::from_millis(100)))
        .await
        .unwrap();
    let admin = connect(Target::InlineKubeconfig {
        kubeconfig: sim.kubeconfig(),
        context: None,
    })
    .await
    .unwrap();
    let options = keelson::cluster::ApplyOptions::default();
    for object in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KEELSON_NS}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "keelson", "namespace": KEELSON_NS}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "keelson-self", "namespace": KEELSON_NS},
               "rules": [{"apiGroups": [""], "resources": ["configmaps", "events"], "verbs": ["*"]},
                         {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["*"]},
                         {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "keelson-self", "namespace": KEELSON_NS},
               "subjects": [{"kind": "ServiceAccount", "name": "keelson", "namespace": KEELSON_NS}],
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "keelson-self"}}),
    ] {
        admin.apply(&object, &options).await.unwrap();
    }
    let token = sim
        .service_account_token(KEELSON_NS, "keelson", Duration::from_secs(3600))
        .unwrap();
    (sim, admin, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_and_a_missing_permission_are_one_line_naming_the_server_and_what_to_check() {
    let (sim, _admin, token) = cluster_with_a_bare_service_account().await;
    let dir = tempfile::tempdir().unwrap();
    topology(&dir.path().join("repo"), "small", &[("api", "keystone", "1m")]);
    let server = sim.url();
    let server = server.trim_end_matches('/');
    let ca = sim.ca_certificate_pem();

    let wrong = write_kubeconfig(dir.path(), "wrong", server, "not-a-token", ca);
    let ran = run(keelson()
        .arg("plan")
        .arg(dir.path().join("repo"))
        .arg("--kubeconfig")
        .arg(&wrong))
    .await;
    assert_one_plain_line(
        &ran,
        &format!("{server}: "),
        &["401 Unauthorized", "check the kubeconfig's user"],
    );

    let bare = write_kubeconfig(dir.path(), "bare", server, &token, ca);
    let ran = run(keelson()
        .arg("plan")
        .arg(dir.path().join("repo"))
        .arg("--kubeconfig")
        .arg(&bare))
    .await;
    assert_one_plain_line(
        &ran,
        &format!("{server}: "),
        &[
            "403 Forbidden: missing permission: system:serviceaccount:keelson-system:keelson may not list configmaps in namespace small",
            "grant verb \"list\" on resource \"configmaps\"",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_without_a_permission_stalls_naming_it_and_does_not_retry() {
    let (sim, admin, token) = cluster_with_a_bare_service_account().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(dir.path().join("repo"));
    topology(&repo.path, "small", &[("api", "keystone", "1m")]);
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "small"]);
    let kubeconfig = kubeconfig_for(&sim.url(), &token, sim.ca_certificate_pem());
    let kube = connect(Target::InlineKubeconfig {
        kubeconfig,
        context: None,
    })
    .await
    .unwrap();
    let mut source = keelson::source::GitSourceConfig::new(repo.path.to_string_lossy().into_owned(), "main");
    source.cache_dir = dir.path().join("cache");
    let mut config = support::test_daemon_config(KEELSON_NS);
    // Frequent poll ticks: a stalled revision must not be retried on any of them.
    config.interval = Duration::from_millis(200);
    let daemon = keelson::reconciler::Daemon::new(kube, source, config).unwrap();
    let shared = daemon.shared();
    let stop = tokio_util::sync::CancellationToken::new();
    let shutdown = stop.clone();
    let task = tokio::spawn(async move {
        let _ = daemon.run(async move { shutdown.cancelled().await }).await;
    });
    wait_for("the stalled pass recorded", Duration::from_secs(30), || async {
        shared.status().phase == Phase::Stalled
            && status::read_status(&admin, KEELSON_NS)
                .await
                .ok()
                .flatten()
                .is_some_and(|s| s.phase == Phase::Stalled)
    })
    .await;
    let stalled = status::read_status(&admin, KEELSON_NS)
        .await
        .unwrap()
        .expect("status written");
    let ready = stalled.condition("Ready").expect("Ready").clone();
    assert_eq!(ready.reason, "MissingPermission");
    assert!(
        ready.message.contains(
            "system:serviceaccount:keelson-system:keelson may not list configmaps in namespace small"
        ),
        "{}",
        ready.message
    );
    let reads = || {
        sim.request_log()
            .iter()
            .filter(|r| r.resource == "configmaps" && r.namespace.as_deref() == Some("small"))
            .count()
    };
    let before = reads();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reads(), before, "a stalled pass is not retried");
    let events: Api<Event> = Api::namespaced(admin.client().clone(), KEELSON_NS);
    let events = events.list(&ListParams::default()).await.unwrap();
    let warnings: Vec<_> = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("MissingPermission"))
        .collect();
    assert_eq!(warnings.len(), 1, "one Event: {:?}", events.items);
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
}

/// `keelson apply` against the simulator, its stdout read line by line as it comes.
async fn spawn_apply(
    repo: &Path,
    kubeconfig: &Path,
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let mut child = keelson()
        .arg("apply")
        .arg(repo)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keelson apply runs");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().expect("stdout");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

async fn lines_until(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, what: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = rx.recv().await {
            let done = line.contains(what);
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "{what:?} not printed:\n{}",
        seen.join("\n")
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_apply_says_interrupted_and_timed_out_components_are_counted_as_failed() {
    // Workloads that take an hour to become ready (and never fail on their own, as an unpullable image would).
    let sim = Cluster::start(support::sim_options(Duration::from_secs(3600)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc");
    sim.write_kubeconfig(&kubeconfig).unwrap();

    // Two components waited on for an hour: Ctrl-C ends the wait.
    let waiting = dir.path().join("waiting");
    topology(
        &waiting,
        "waiting",
        &[("api", "keystone", "1h"), ("web", "horizon", "1h")],
    );
    let (child, mut rx) = spawn_apply(&waiting, &kubeconfig).await;
    lines_until(&mut rx, "applying").await;
    let pid = child.id().expect("pid").to_string();
    let killed = Command::new("kill").args(["-INT", &pid]).status().await.unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("apply ends after Ctrl-C")
        .unwrap();
    // Everything the process printed: the reader ends at end of file, which may come after its exit is seen.
    let mut stdout: Vec<String> = Vec::new();
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = rx.recv().await {
            stdout.push(line);
        }
    })
    .await;
    assert!(drained.is_ok(), "the output did not end: {stdout:?}");
    let stdout = stdout.join("\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("interrupted: stopping after the writes in flight"),
        "{stderr}"
    );
    assert!(stdout.contains("interrupted (Ctrl-C)"), "{stdout}");
    assert!(!stdout.contains("newer revision"), "{stdout}");
    assert!(
        stdout.contains("components: 0 healthy, 0 failed, 0 blocked, 2 skipped"),
        "{stdout}"
    );

    // --pass-timeout ends the same wait: the components say the deadline stopped them.
    let bounded = dir.path().join("bounded");
    topology(&bounded, "bounded", &[("api", "keystone", "1h")]);
    let ran = run(keelson()
        .args(["apply", "--pass-timeout", "2s"])
        .arg(&bounded)
        .arg("--kubeconfig")
        .arg(&kubeconfig))
    .await;
    assert_eq!(ran.code, Some(1), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("cancelled: the pass deadline of 2s passed (--pass-timeout)"),
        "{}",
        ran.stdout
    );
    assert!(ran.elapsed < Duration::from_secs(30), "{:?}", ran.elapsed);

    // The same components with a one-second health timeout: both time out and the summary says so.
    let timing_out = dir.path().join("timing-out");
    topology(
        &timing_out,
        "timing-out",
        &[("api", "keystone", "1s"), ("web", "horizon", "1s")],
    );
    let ran = run(keelson()
        .arg("apply")
        .arg(&timing_out)
        .arg("--kubeconfig")
        .arg(&kubeconfig))
    .await;
    assert_eq!(ran.code, Some(1), "{}", ran.stdout);
    assert!(ran.stdout.contains("not healthy within 1s"), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("components: 0 healthy, 2 failed (2 timed out), 0 blocked, 0 skipped"),
        "{}",
        ran.stdout
    );
    let timing_out = dir.path().join("timing-out-json");
    topology(
        &timing_out,
        "timing-out-json",
        &[("api", "keystone", "1s"), ("web", "horizon", "1s")],
    );
    let ran = run(keelson()
        .args(["apply", "-o", "json"])
        .arg(&timing_out)
        .arg("--kubeconfig")
        .arg(&kubeconfig))
    .await;
    let document: serde_json::Value = serde_json::from_str(&ran.stdout).expect("one JSON document");
    assert_eq!(document["componentCounts"]["failed"], 2, "{document}");
    assert_eq!(document["componentCounts"]["timedOut"], 2, "{document}");
}

async fn pass(kube: &Kube, dir: &Path) -> String {
    let snapshot = Snapshot::from_dir(dir, DEFAULT_MAX_FILE_SIZE).expect("snapshot");
    let settings = PassSettings {
        poll_interval: Duration::from_millis(50),
        ..PassSettings::default()
    };
    let prepared = reconciler::prepare(kube, &snapshot, &settings)
        .await
        .expect("prepare");
    let outcome = reconciler::execute(kube, &prepared, &settings, Default::default(), None)
        .await
        .expect("execute");
    assert!(outcome.rollout.converged(), "{:?}", outcome.rollout);
    snapshot.revision.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_names_the_revision_the_cluster_was_last_brought_to() {
    let SimEnv { sim, kube } = SimEnv::start(support::sim_options(Duration::from_millis(50))).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let repo = dir.path().join("repo");
    topology(&repo, "base", &[("api", "keystone", "1m")]);
    let first = pass(&kube, &repo).await;
    // A change of one object's content only: the set of objects stays as it was.
    support::edit(
        &repo,
        "services/api.yaml",
        "healthTimeout: 1m",
        "healthTimeout: 1m\n  replicas: 2",
    );
    let second = pass(&kube, &repo).await;
    assert_ne!(first, second);
    let inventory = kube
        .read_inventory("base", "base")
        .await
        .unwrap()
        .expect("inventory");
    let inventory = keelson::plan::Inventory::from_json(&inventory).unwrap();
    assert_eq!(
        inventory.revision, second,
        "every successful pass records its revision"
    );

    let plan = |extra: &'static [&'static str]| {
        let mut command = keelson();
        command
            .arg("plan")
            .arg(&repo)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(extra);
        command
    };
    let ran = run(&mut plan(&[])).await;
    assert!(
        ran.stdout
            .contains(&format!("Last applied to the cluster: {second}\n")),
        "{}{}",
        ran.stdout,
        ran.stderr
    );

    // A daemon's status names the revision it brought the cluster to; plan takes its word first.
    let recorded = status::Status {
        topology: Some("base".into()),
        last_applied_revision: Some(first.clone()),
        ..status::Status::default()
    };
    kube.ensure_namespace(KEELSON_NS, "test").await.unwrap();
    status::write_status(&kube, KEELSON_NS, &recorded).await.unwrap();
    let ran = run(&mut plan(&[])).await;
    assert!(
        ran.stdout
            .contains(&format!("Last applied to the cluster: {first}\n")),
        "{}",
        ran.stdout
    );
    // A status about another topology, or in another namespace, is not this one's baseline.
    let ran = run(&mut plan(&["--status-namespace", "elsewhere"])).await;
    assert!(
        ran.stdout
            .contains(&format!("Last applied to the cluster: {second}\n")),
        "{}",
        ran.stdout
    );
}

/// `git daemon` on a fixed port, so that it can go away and come back where the daemon looks.
struct GitServer {
    child: Option<std::process::Child>,
    base: PathBuf,
    port: u16,
}

impl GitServer {
    fn start(base: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = GitServer {
            child: None,
            base: base.to_path_buf(),
            port,
        };
        server.up();
        server
    }

    fn up(&mut self) {
        // git-daemon itself, not `git daemon`: `git` would run it as a child of its own, which killing `git`
        // leaves listening.
        let exec_path = source_support::git(&self.base, &["--exec-path"]);
        let child = std::process::Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--base-path={}", self.base.display()))
            .arg(&self.base)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that going away takes the connections it forked along.
            .process_group(0)
            .spawn()
            .expect("git daemon starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &group])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.down();
    }
}

async fn status_of(kube: &Kube) -> status::Status {
    status::read_status(kube, KEELSON_NS)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

async fn events(kube: &Kube, reason: &str) -> usize {
    let api: Api<Event> = Api::namespaced(kube.client().clone(), KEELSON_NS);
    match api.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .count(),
        Err(_) => 0,
    }
}

/// Prints the daemon's log when the test fails.
struct Dump(PathBuf);

impl Drop for Dump {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", std::fs::read_to_string(&self.0).unwrap_or_default());
        }
    }
}

/// Seconds of a `retry_in` field as the JSON log writes a Duration (`1.02s`, `850ms`).
fn seconds(text: &str) -> Option<f64> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse::<f64>().ok().map(|ms| ms / 1000.0);
    }
    text.strip_suffix('s')?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_tells_a_git_outage_and_an_unusable_head_and_keeps_the_applied_revision() {
    let SimEnv { sim, kube } = SimEnv::start(support::sim_options(Duration::from_millis(50))).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let served = dir.path().join("served");
    let repo = Repo::init(served.join("cloud"));
    topology(&repo.path, "cloud", &[("api", "keystone", "1m")]);
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "cloud"]);
    let applied = repo.head();
    let mut git = GitServer::start(&served);

    let log = dir.path().join("run.log");
    let mut daemon = keelson()
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "1s",
            "--ref",
            "main",
        ])
        .arg("--repo")
        .arg(format!("git://127.0.0.1:{}/cloud", git.port))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("KEELSON_LOG_FORMAT", "json")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("keelson run starts");

    let bound = Duration::from_secs(60);
    wait_for("the first revision applied", bound, || async {
        let s = status_of(&kube).await;
        s.phase == Phase::Ready && s.last_applied_revision.as_deref() == Some(applied.as_str())
    })
    .await;

    git.down();
    let shown = log.clone();
    let _dump = Dump(shown);
    wait_for("SourceReady=False during the outage", bound, || async {
        let s = status_of(&kube).await;
        s.condition("SourceReady")
            .is_some_and(|c| c.status == "False" && c.reason == "SourceUnavailable")
    })
    .await;
    let s = status_of(&kube).await;
    assert_eq!(
        s.phase,
        Phase::Ready,
        "the cluster still equals the applied revision"
    );
    assert_eq!(s.last_applied_revision.as_deref(), Some(applied.as_str()));
    assert!(
        s.condition("SourceReady")
            .unwrap()
            .message
            .contains("unreachable"),
        "{s:?}"
    );
    assert_eq!(events(&kube, "SourceUnavailable").await, 1);
    // Let a few retries happen, then bring the server back.
    tokio::time::sleep(Duration::from_secs(4)).await;
    git.up();
    wait_for("SourceReady=True after the outage", bound, || async {
        status_of(&kube)
            .await
            .condition("SourceReady")
            .is_some_and(|c| c.status == "True")
    })
    .await;
    assert_eq!(events(&kube, "SourceRecovered").await, 1);

    // The retry log says when the next attempt comes, and it comes then, not on the next poll tick.
    let text = std::fs::read_to_string(&log).unwrap();
    let failures: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("polling the Git source failed; polling again in"))
        })
        .filter_map(|l| {
            let at = humantime::parse_rfc3339(l["timestamp"].as_str()?).ok()?;
            let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
            Some((at, seconds(l["fields"]["retry_in"].as_str()?)?))
        })
        .collect();
    assert!(failures.len() >= 2, "{text}");
    for pair in failures.windows(2) {
        let ((at, retry_in), (next, _)) = (pair[0], pair[1]);
        assert!(
            next - at >= retry_in - 0.05,
            "the next attempt came {:.2}s after a log that said {retry_in:.2}s:\n{text}",
            next - at
        );
    }

    // A pushed commit without keelson.yaml: read, refused, reported; the cluster stays where it was.
    repo.git(&["rm", "-q", "keelson.yaml"]);
    repo.git(&["commit", "-q", "-m", "lose the topology"]);
    let unusable = repo.head();
    wait_for("the unusable head reported", bound, || async {
        status_of(&kube).await.unusable_revision.as_deref() == Some(unusable.as_str())
    })
    .await;
    let s = status_of(&kube).await;
    let source = s.condition("SourceReady").unwrap();
    assert_eq!(
        (source.status.as_str(), source.reason.as_str()),
        ("False", "RevisionUnusable")
    );
    assert!(source.message.contains("keelson.yaml"), "{}", source.message);
    assert_eq!(s.observed_revision.as_deref(), Some(unusable.as_str()));
    assert_eq!(s.last_applied_revision.as_deref(), Some(applied.as_str()));
    assert_eq!(s.phase, Phase::Ready);
    assert_eq!(events(&kube, "RevisionUnusable").await, 1);
    // `keelson status` shows it to the operator.
    let ran = run(keelson().args(["status", "--kubeconfig"]).arg(&kubeconfig)).await;
    assert!(
        ran.stdout.contains("SourceReady") && ran.stdout.contains("RevisionUnusable"),
        "{}",
        ran.stdout
    );

    let _ = daemon.start_kill();
    let _ = daemon.wait().await;
}
