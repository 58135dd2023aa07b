//! Encrypted values in Git: files made with the real `age` CLI, decrypted only by `apply` with the
//! identities of a Secret named by `--age-key-secret`; `plan` needs no key and shows a changed ciphertext
//! by its hash; a generated key beside the encrypted one keeps its value. These tests fail (not skip)
//! without `age` when CI=true.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use keelson::cluster::{ApplyOptions, Kube, Target, connect};
use keelson::reconciler::{self, PassSettings};
use keelson::rollout::{AgeKeySecret, ComponentState};
use keelson::sim::{Cluster, SimOptions};
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NS: &str = "vault";

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{name} not found on PATH (run scripts/install-test-tools.sh)");
        }
        eprintln!("skipping: {name} not found on PATH");
    }
    found
}

fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A key pair from `age-keygen`: (identity file text, recipient).
fn keypair(keygen: &Path, dir: &Path) -> (String, String) {
    let path = dir.join("key.txt");
    run(keygen, &["-o", path.to_str().expect("path")]);
    let recipient = run(keygen, &["-y", path.to_str().expect("path")])
        .trim()
        .to_string();
    (std::fs::read_to_string(&path).expect("key"), recipient)
}

fn encrypt(age: &Path, recipient: &str, plaintext: &str, out: &Path, armor: bool) {
    let input = out.with_extension("plain");
    std::fs::write(&input, plaintext).expect("plaintext");
    let mut args = vec!["-r", recipient, "-o", out.to_str().expect("path")];
    if armor {
        args.insert(0, "-a");
    }
    args.push(input.to_str().expect("path"));
    run(age, &args);
    std::fs::remove_file(&input).expect("plaintext removed");
}

const TOPOLOGY: &str =
    "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: vault\nspec:\n  namespace: vault\n";

const SERVICE: &str = "\
apiVersion: keelson.dev/v1
kind: Service
metadata:
  name: ceph-client
spec:
  image: nova-compute
  secrets:
    - name: ceph
      data:
        keyring: {encrypted: secrets/ceph.keyring.age}
        conf: {encrypted: secrets/ceph.conf.age}
        local-token: {generate: random, length: 40}
  env:
    - name: CEPH_KEYRING
      secretKeyRef: {name: ceph, key: keyring}
  volumes:
    - name: ceph
      mountPath: /etc/ceph
      secret: {name: ceph}
";

async fn live_secret(kube: &Kube, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let request = http::Request::get(format!("/api/v1/namespaces/{NS}/secrets/{name}"))
        .body(Vec::new())
        .expect("request");
    let value: Value = kube.client().request(request).await.ok()?;
    Some(
        value["data"]
            .as_object()?
            .iter()
            .map(|(k, v)| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap_or_default())
                    .expect("base64");
                (k.clone(), String::from_utf8(bytes).expect("utf-8"))
            })
            .collect(),
    )
}

fn keelson(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .output()
        .expect("keelson runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_files_are_decrypted_at_apply_time_only_and_plan_tells_a_changed_ciphertext_by_its_hash() {
    let (Some(age), Some(keygen)) = (tool("age"), tool("age-keygen")) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let repo = work.path().join("repo");
    std::fs::create_dir_all(repo.join("services")).expect("mkdir");
    std::fs::create_dir_all(repo.join("secrets")).expect("mkdir");
    std::fs::write(repo.join("keelson.yaml"), TOPOLOGY).expect("write");
    std::fs::write(repo.join("services/ceph-client.yaml"), SERVICE).expect("write");
    let (identity, recipient) = keypair(&keygen, work.path());
    let keyring = "[client.nova]\n\tkey = AQBZ0vNkAAAAABAAVeryS3cretKeyring==\n";
    let conf = "[global]\nfsid = 5a7c0b7e-0000-4000-8000-000000000001\nmon_host = 10.0.0.1\n";
    encrypt(
        &age,
        &recipient,
        keyring,
        &repo.join("secrets/ceph.keyring.age"),
        false,
    );
    encrypt(&age, &recipient, conf, &repo.join("secrets/ceph.conf.age"), true);
    let ciphertext = std::fs::read(repo.join("secrets/ceph.keyring.age")).expect("ciphertext");
    assert!(!String::from_utf8_lossy(&ciphertext).contains("VeryS3cret"));

    let out = keelson(&["validate", repo.to_str().expect("path")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    let sim = Cluster::start(SimOptions {
        ready_after: Duration::from_millis(100),
        job_duration: Duration::from_millis(100),
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
    let kubeconfig = work.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    // The operator's one key outside Git: the age identity, in a namespace of its own.
    kube.ensure_namespace("keelson", "test").await.expect("namespace");
    let key_secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "age-key", "namespace": "keelson"},
        "stringData": {"keys.txt": identity},
    });
    kube.apply(&key_secret, &ApplyOptions::default())
        .await
        .expect("key Secret");

    let with_key = PassSettings {
        poll_interval: Duration::from_millis(30),
        age_key_secret: Some(AgeKeySecret {
            namespace: "keelson".into(),
            name: "age-key".into(),
        }),
        ..PassSettings::default()
    };
    let without_key = PassSettings {
        age_key_secret: None,
        ..with_key.clone()
    };
    let pass = |settings: PassSettings| {
        let kube = kube.clone();
        let repo = repo.clone();
        async move {
            let snapshot = Snapshot::from_dir(&repo, DEFAULT_MAX_FILE_SIZE).expect("snapshot");
            let prepared = reconciler::prepare(&kube, &snapshot, &settings)
                .await
                .expect("prepare");
            reconciler::execute(&kube, &prepared, &settings, CancellationToken::new(), None)
                .await
                .expect("pass runs")
        }
    };

    // apply with the key: the plaintexts land in the Secret, beside a generated value.
    assert!(pass(with_key.clone()).await.rollout.converged());
    let first = live_secret(&kube, "ceph").await.expect("Secret ceph");
    assert_eq!(first["keyring"], keyring);
    assert_eq!(first["conf"], conf);
    assert_eq!(first["local-token"].len(), 40);

    // plan needs no key; an unchanged ciphertext is unchanged; no format shows a plaintext.
    let plan = |format: &str| {
        keelson(&[
            "plan",
            repo.to_str().expect("path"),
            "--kubeconfig",
            kubeconfig.to_str().expect("path"),
            "-o",
            format,
        ])
    };
    let json_plan: Value = serde_json::from_slice(&plan("json").stdout).expect("json plan");
    assert_eq!(json_plan["summary"]["update"], 0, "{json_plan}");

    // A new ciphertext (same plaintext length, another value) is planned as an update of the Secret,
    // told by the ciphertext's hash, and decrypted only by the apply that follows.
    let rotated = keyring.replace("VeryS3cret", "N3wS3cret!");
    encrypt(
        &age,
        &recipient,
        &rotated,
        &repo.join("secrets/ceph.keyring.age"),
        false,
    );
    let mut shown = String::new();
    for format in ["text", "markdown", "json"] {
        let out = plan(format);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        shown.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    assert!(shown.contains("Secret vault/ceph"), "{shown}");
    assert!(shown.contains("sha256"), "the ciphertext hash changed:\n{shown}");
    for secret in ["VeryS3cret", "N3wS3cret", "mon_host", &first["local-token"]] {
        assert!(!shown.contains(secret), "a plan shows {secret}");
    }

    // apply without the key cannot decrypt: the component fails, naming the flag, and the Secret keeps
    // its old values.
    let failed = pass(without_key).await;
    let component = failed.rollout.component("ceph-client").expect("component");
    assert_eq!(component.state, ComponentState::Failed);
    assert!(
        component.reason.contains("--age-key-secret"),
        "{}",
        component.reason
    );
    assert_eq!(
        live_secret(&kube, "ceph").await.expect("Secret")["keyring"],
        keyring
    );

    // apply with the key: the new plaintext, the generated value kept.
    assert!(pass(with_key.clone()).await.rollout.converged());
    let second = live_secret(&kube, "ceph").await.expect("Secret");
    assert_eq!(second["keyring"], rotated);
    assert_eq!(second["conf"], conf);
    assert_eq!(
        second["local-token"], first["local-token"],
        "the generated key is kept"
    );

    // A third pass decrypts nothing and writes nothing.
    sim.clear_request_log();
    assert!(pass(with_key).await.rollout.converged());
    let writes = sim.request_log().iter().filter(|r| r.is_write()).count();
    assert_eq!(writes, 0);
    let key_reads = sim
        .request_log()
        .iter()
        .filter(|r| r.name.as_deref() == Some("age-key"))
        .count();
    assert_eq!(
        key_reads, 0,
        "the key is read only when something must be decrypted"
    );
}
