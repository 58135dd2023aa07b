//! The daemon with signature verification: following a real repository whose commits are signed with real
//! `git commit -S` (an SSH key from `ssh-keygen`), against the simulated cluster. An unsigned commit stalls the
//! daemon with the reason and an Event, the cluster keeps the last verified revision, and the next signed
//! commit is applied.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use keelson::cluster::{Kube, Target, connect};
use keelson::object::ObjectRef;
use keelson::reconciler::Daemon;
use keelson::sim::{Cluster, SimOptions};
use keelson::source::GitSourceConfig;
use keelson::source::verify::{AllowedSigners, VerifyMode};
use keelson::status::{self, Phase};
use support::wait_for;
use tokio_util::sync::CancellationToken;

const KEELSON_NS: &str = "keelson-system";

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn ssh_keygen_present() -> bool {
    if Command::new("ssh-keygen").arg("-?").output().is_ok() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("missing ssh-keygen; run scripts/install-test-tools.sh");
    }
    eprintln!("skipping: no ssh-keygen");
    false
}

struct Repo {
    path: PathBuf,
    key: PathBuf,
}

impl Repo {
    fn git(&self, args: &[&str]) -> String {
        run(Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args(["-c", "user.name=Op", "-c", "user.email=op@example.org"])
            .args(["-c", "gpg.format=ssh"])
            .arg("-c")
            .arg(format!("user.signingkey={}", self.key.display()))
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null"))
    }

    fn commit(&self, replicas: u32, signed: bool) -> String {
        self.commit_image(replicas, "memcached", signed)
    }

    fn commit_image(&self, replicas: u32, image: &str, signed: bool) -> String {
        std::fs::write(
            self.path.join("services/cache.yaml"),
            format!(
                "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: cache\nspec:\n  image: {image}\n  \
                 replicas: {replicas}\n  healthTimeout: 1h\n  ports:\n  - name: memcached\n    port: 11211\n"
            ),
        )
        .expect("write");
        self.git(&["add", "-A"]);
        let sign = if signed { "-S" } else { "--no-gpg-sign" };
        self.git(&["commit", "-q", sign, "-m", &format!("cache x{replicas}")]);
        self.git(&["rev-parse", "HEAD"])
    }
}

async fn replicas(kube: &Kube) -> Option<u64> {
    let reference = ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("signed".into()),
        name: "cache".into(),
    };
    kube.get(&reference)
        .await
        .ok()
        .flatten()?
        .pointer("/spec/replicas")?
        .as_u64()
}

async fn event_messages(kube: &Kube) -> Vec<(String, String)> {
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(kube.client().clone(), KEELSON_NS);
    api.list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

/// A signed repository followed by a daemon that verifies every commit, on a fresh simulated cluster whose
/// `*:broken` images never pull.
struct Running {
    _tmp: tempfile::TempDir,
    repo: Repo,
    kube: Kube,
    shared: Arc<keelson::status::Shared>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    first: String,
}

async fn start() -> Option<Running> {
    if !ssh_keygen_present() {
        return None;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = tmp.path().join("alice");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f"])
        .arg(&key));
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let repo = Repo {
        path: tmp.path().join("repo"),
        key,
    };
    std::fs::create_dir_all(repo.path.join("services")).expect("mkdir");
    run(Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(&repo.path));
    std::fs::write(
        repo.path.join("keelson.yaml"),
        "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: signed\nspec:\n  namespace: signed\n",
    )
    .expect("write");
    let first = repo.commit(1, true);

    let sim = Cluster::start(SimOptions {
        ready_after: Duration::from_millis(100),
        job_duration: Duration::from_millis(100),
        unpullable_images: vec!["*:broken".into()],
        ..SimOptions::default()
    })
    .await
    .expect("sim");
    let kube = connect(Target::Client(sim.client())).await.expect("connect");
    let allowed =
        AllowedSigners::parse("allowed_signers", &format!("alice@example.org {public}")).expect("signers");
    let mut config = support::test_daemon_config(KEELSON_NS);
    config.verify = Some((VerifyMode::Head, Arc::new(allowed)));
    config.pass.plan.trailers_need_signature = true;
    let mut source = GitSourceConfig::new(repo.path.to_string_lossy().into_owned(), "main");
    source.cache_dir = tmp.path().join("cache");
    let daemon = Daemon::new(kube.clone(), source, config).expect("daemon");
    let shared = daemon.shared();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let task = tokio::spawn(async move {
        // The simulated cluster lives as long as the daemon.
        let _sim = sim;
        daemon
            .run(async move { shutdown.cancelled().await })
            .await
            .expect("daemon runs");
    });
    let long = Duration::from_secs(30);
    wait_for("the signed commit applied", long, || async {
        shared.status().last_applied_revision.as_deref() == Some(first.as_str())
    })
    .await;
    assert_eq!(replicas(&kube).await, Some(1));
    Some(Running {
        _tmp: tmp,
        repo,
        kube,
        shared,
        stop,
        task,
        first,
    })
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("daemon stops")
            .expect("daemon task");
    }

    /// Waits until the daemon stalls on `unsigned` with the reason, in the status, the stored status and an Event.
    async fn wait_for_refusal(&self, unsigned: &str, applied: &str) {
        let want = format!("commit {} is not signed by an allowed key", &unsigned[..12]);
        wait_for(
            "the unsigned commit stalls the daemon",
            Duration::from_secs(30),
            || async {
                let s = self.shared.status();
                s.phase == Phase::Stalled
                    && s.condition("Stalled")
                        .is_some_and(|c| c.message.starts_with(&want))
            },
        )
        .await;
        // The stored status is written after the one in memory.
        let read_stored = || async {
            status::read_status(&self.kube, KEELSON_NS)
                .await
                .expect("read")
                .expect("status")
        };
        wait_for("the stalled status stored", Duration::from_secs(10), || async {
            read_stored().await.phase == Phase::Stalled
        })
        .await;
        let stored = read_stored().await;
        assert_eq!(stored.last_applied_revision.as_deref(), Some(applied));
        assert_eq!(stored.observed_revision.as_deref(), Some(unsigned));
        // The Event is written after the status.
        wait_for("the UnverifiedCommit Event", Duration::from_secs(10), || async {
            event_messages(&self.kube)
                .await
                .iter()
                .any(|(reason, message)| reason == "UnverifiedCommit" && message.starts_with(&want))
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_commit_stalls_the_daemon_and_the_next_signed_commit_is_applied() {
    let Some(running) = start().await else { return };
    let (repo, kube, shared, first) = (&running.repo, &running.kube, &running.shared, &running.first);
    let long = Duration::from_secs(30);
    let unsigned = repo.commit(3, false);
    running.wait_for_refusal(&unsigned, first).await;
    // Nothing of the unsigned commit reached the cluster.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(replicas(kube).await, Some(1));

    let signed = repo.commit(2, true);
    wait_for("the next signed commit applied", long, || async {
        let s = shared.status();
        s.last_applied_revision.as_deref() == Some(signed.as_str()) && s.phase == Phase::Ready
    })
    .await;
    assert_eq!(replicas(kube).await, Some(2));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_commit_that_pre_empts_a_waiting_rollout_is_not_applied() {
    let Some(running) = start().await else { return };
    let (repo, kube, first) = (&running.repo, &running.kube, running.first.clone());
    // A signed commit whose image never pulls: its rollout waits on health (an hour).
    let stuck = repo.commit_image(2, "memcached:broken", true);
    wait_for("the stuck rollout started", Duration::from_secs(30), || async {
        replicas(kube).await == Some(2)
    })
    .await;
    assert_eq!(
        running.shared.status().last_attempted_revision.as_deref(),
        Some(stuck.as_str())
    );
    // An unsigned commit arrives while the rollout waits: it cancels the rollout, and stalls instead of applying.
    let unsigned = repo.commit(5, false);
    running.wait_for_refusal(&unsigned, &first).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        replicas(kube).await,
        Some(2),
        "nothing of the unsigned commit reached the cluster"
    );
    running.stop().await;
}
