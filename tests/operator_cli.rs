//! The CLI as an operator meets it, through the built binary: one flag vocabulary (`-o`, `-n`,
//! `--kubeconfig`, `--context`, `--request-timeout`), messages that name what is missing, the daemon's log,
//! `reconcile --wait`, `status -o wide`, and `keelson demo` from any directory.

#[path = "source_support/mod.rs"]
mod source_support;
mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use keelson::cluster::{ApplyOptions, Target, connect};
use keelson::sim::{Cluster, FaultConfig, SimOptions};
use serde_json::json;
use source_support::Repo;
use support::wait_for;

fn keelson(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .output()
        .expect("keelson runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_command_that_prints_structured_output_takes_dash_o_and_the_cluster_flags_are_kubectls() {
    let structured = [
        &["validate"][..],
        &["graph"],
        &["render"],
        &["plan"],
        &["apply"],
        &["status"],
        &["history"],
        &["source", "show"],
    ];
    for command in structured {
        let mut args = command.to_vec();
        args.push("--help");
        let help = text(&keelson(&args).stdout);
        assert!(help.contains("-o, --output <"), "{command:?}: {help}");
    }
    let talk_to_a_cluster = [
        &["plan"][..],
        &["apply"],
        &["run"],
        &["status"],
        &["history"],
        &["suspend"],
        &["resume"],
        &["reconcile"],
    ];
    for command in talk_to_a_cluster {
        let mut args = command.to_vec();
        args.push("--help");
        let help = text(&keelson(&args).stdout);
        for flag in [
            "--kubeconfig <FILE>",
            "--context <NAME>",
            "--in-cluster",
            "--request-timeout <DURATION>",
        ] {
            assert!(help.contains(flag), "{command:?} lacks {flag}: {help}");
        }
    }
    for command in [&["run"][..], &["status"], &["suspend"], &["reconcile"]] {
        let mut args = command.to_vec();
        args.push("--help");
        assert!(
            text(&keelson(&args).stdout).contains("-n, --namespace <NS>"),
            "{command:?}"
        );
    }
    // graph's old spelling still works.
    let example = support::example_repo();
    let example = example.to_str().unwrap();
    let new = keelson(&["graph", example, "-o", "dot"]);
    let old = keelson(&["graph", example, "--format", "dot"]);
    assert_eq!(new.status.code(), Some(0));
    assert_eq!(new.stdout, old.stdout);
    assert!(text(&new.stdout).starts_with("digraph"), "{}", text(&new.stdout));
    let validated = keelson(&["validate", example, "-o", "json"]);
    let document: serde_json::Value = serde_json::from_slice(&validated.stdout).expect("JSON");
    assert_eq!(
        (document["valid"].as_bool(), document["components"].as_u64()),
        (Some(true), Some(26))
    );
}

#[test]
fn a_missing_kubeconfig_is_named_plainly() {
    let out = keelson(&["status", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        "no kubeconfig at /nonexistent/kubeconfig (--kubeconfig): pass --kubeconfig FILE, set KUBECONFIG, or \
         use --in-cluster"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["plan", support::example_repo().to_str().unwrap()])
        .env("KUBECONFIG", "/nonexistent/a:/nonexistent/b")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("no kubeconfig at /nonexistent/a ($KUBECONFIG)"),
        "{stderr}"
    );
    assert!(!stderr.contains('"'), "no stray quotes: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_from_any_directory_and_its_no_op_pass_is_one_line() {
    let cwd = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["demo", "--ready-after", "50ms", "--job-duration", "50ms"])
        .current_dir(cwd.path())
        .output()
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("== Pass 1: deploy the example OpenStack topology =="),
        "{stdout}"
    );
    let waves: Vec<usize> = stdout
        .lines()
        .filter_map(|l| l.split("] wave ").nth(1)?.split('/').next()?.parse().ok())
        .collect();
    assert!(waves.len() >= 6, "{stdout}");
    assert!(
        waves.windows(2).all(|w| w[0] < w[1]) || waves.len() == 12,
        "{waves:?}"
    );
    let pass_two = stdout.split("== Pass 2").nth(1).expect("a second pass");
    assert!(
        pass_two.contains("nothing to change: 26 components healthy, 141 objects unchanged"),
        "{pass_two}"
    );
    assert!(
        !pass_two.contains("applying"),
        "no line per component: {pass_two}"
    );
    assert!(pass_two.contains("Pass 2: 0 write requests"), "{pass_two}");

    // The kubeconfig `--serve` writes looks in the topology's namespace.
    let sim = Cluster::start(SimOptions::default()).await.unwrap();
    let path = cwd.path().join("demo.kubeconfig");
    keelson::cluster::write_kubeconfig_for_namespace(&sim.kubeconfig(), "openstack", &path).unwrap();
    let written: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written["contexts"][0]["context"]["namespace"], "openstack");
}

fn write_topology(dir: &Path) {
    std::fs::create_dir_all(dir.join("services")).unwrap();
    std::fs::write(
        dir.join("keelson.yaml"),
        "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: demo\nspec:\n  namespace: demo\n  \
         images:\n    registry: quay.io\n    namespace: openstack.kolla\n    tag: 2025.1-ubuntu-noble\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("services/cache.yaml"),
        "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: cache\nspec:\n  image: memcached\n  \
         ports:\n  - name: memcached\n    port: 11211\n",
    )
    .unwrap();
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_logs_what_changed_and_answers_reconcile_wait_status_wide_and_the_control_commands() {
    let sim = Cluster::start(SimOptions {
        ready_after: Duration::from_millis(100),
        job_duration: Duration::from_millis(100),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let kc = kubeconfig.to_str().unwrap().to_string();
    let repo = Repo::init(tmp.path().join("repo"));
    write_topology(&repo.path);
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "cache"]);
    let short: String = repo.head().chars().take(12).collect();
    let log = tmp.path().join("daemon.log");
    let daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(["run", "--kubeconfig", &kc, "--repo", repo.path.to_str().unwrap()])
            .args(["--cache-dir", tmp.path().join("cache").to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--interval", "1h"])
            .env_remove("KEELSON_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("keelson run starts"),
    );
    let kube = connect(Target::Client(sim.client())).await.unwrap();
    wait_for("the first pass", Duration::from_secs(60), || async {
        keelson::status::read_status(&kube, "keelson-system")
            .await
            .ok()
            .flatten()
            .is_some_and(|s| s.last_applied_revision.is_some())
    })
    .await;

    // reconcile --wait prints the outcome of the pass it asked for.
    let out = keelson(&["reconcile", "--wait", "--timeout", "60s", "--kubeconfig", &kc]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("revision {short}: Succeeded: revision {short}")),
        "{stdout}"
    );

    // status -o wide: each component with its objects and their live health.
    let out = keelson(&["status", "-o", "wide", "--kubeconfig", &kc]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let deployment = stdout
        .lines()
        .find(|l| l.starts_with("  Deployment demo/cache"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(deployment.contains("Current"), "{stdout}");

    // Drift by hand: the log names the object and the field.
    let intruder = ApplyOptions {
        field_manager: "intruder".into(),
        ..ApplyOptions::default()
    };
    let scaled = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "cache", "namespace": "demo"}, "spec": {"replicas": 4}});
    kube.apply(&scaled, &intruder).await.expect("drift");
    wait_for("drift corrected", Duration::from_secs(30), || async {
        keelson::status::read_status(&kube, "keelson-system")
            .await
            .ok()
            .flatten()
            .is_some_and(|s| s.drift_corrections >= 1)
    })
    .await;

    for (args, said) in [
        (&["suspend"][..], "suspend requested"),
        (&["resume"], "resume requested"),
    ] {
        let mut args = args.to_vec();
        args.extend(["--kubeconfig", &kc]);
        let out = keelson(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with(said));
    }
    let out = keelson(&["suspend", "-n", "nowhere", "--kubeconfig", &kc]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        "no Keelson installation in namespace nowhere: the namespace does not exist (see docs/install.md)"
    );

    // --request-timeout bounds each request: a server that takes 3s fails the command instead of answering.
    sim.faults()
        .set(FaultConfig {
            latency: Duration::from_secs(3),
            ..FaultConfig::default()
        })
        .unwrap();
    let started = Instant::now();
    let out = keelson(&["status", "--request-timeout", "200ms", "--kubeconfig", &kc]);
    let took = started.elapsed();
    sim.faults().set(FaultConfig::default()).unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("ConfigMap keelson-system/keelson-status: read failed"),
        "{stderr}"
    );
    // A server that never answered this command is not retried: one request timeout, then the reason.
    assert!(
        stderr.contains("cannot reach https://")
            && stderr.contains("no answer (connecting or waiting for the response timed out)"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(25), "{took:?}");

    wait_for("resumed and logged", Duration::from_secs(20), || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("resume requested")
    })
    .await;
    drop(daemon);
    let log = std::fs::read_to_string(&log).unwrap();
    for line in [
        format!("revision {short} (start): Succeeded (applied) in "),
        "Deployment demo/cache".to_string(),
        format!("revision {short} (reconcile): Succeeded (unchanged) in "),
        "drift: Deployment demo/cache: spec.replicas changed outside Git; re-applying from Git".to_string(),
        "reconcile requested: a full pass now".to_string(),
        "suspend requested: nothing is applied until `keelson resume`".to_string(),
        "resume requested: applying the newest revision".to_string(),
    ] {
        assert!(log.contains(&line), "{line:?} missing from the log:\n{log}");
    }
    assert!(
        !log.contains("component finished"),
        "components are not logged one by one:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "no colour codes outside a terminal");
}
