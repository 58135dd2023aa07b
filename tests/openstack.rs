//! OpenStack from Git alone, on the simulated cluster over real HTTP: a fresh cluster and one pass of the
//! example topology give every Secret the pods read (generated, none in Git), every database, RabbitMQ
//! user and catalog entry before the workload that needs it, Nova's cell sequence in order; a second pass
//! writes nothing and regenerates nothing; no plan format and no render shows a generated value; a
//! rotation in Git makes new values and rolls exactly their readers; removing a service keeps its
//! generated Secrets until a tombstone says otherwise.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use keelson::cluster::{Kube, Target, connect};
use keelson::object::{ANNOTATION_RECIPE, ANNOTATION_SECRETS_HASH};
use keelson::reconciler::{self, PassError, PassOutcome, PassSettings, Prepared};
use keelson::sim::{Cluster, RequestRecord, SimOptions};
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
use serde_json::Value;
use support::{copy_tree, example_repo};
use tokio_util::sync::CancellationToken;

const NS: &str = "openstack";

fn copy_example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&example_repo(), dir.path());
    dir
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "{file} does not contain {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
}

struct Env {
    sim: Cluster,
    kube: Kube,
    kubeconfig: tempfile::NamedTempFile,
}

async fn env() -> Env {
    let sim = Cluster::start(support::example_nodes(SimOptions {
        ready_after: Duration::from_millis(100),
        job_duration: Duration::from_millis(100),
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
    let kubeconfig = tempfile::NamedTempFile::new().expect("kubeconfig file");
    sim.write_kubeconfig(kubeconfig.path())
        .expect("kubeconfig written");
    Env {
        sim,
        kube,
        kubeconfig,
    }
}

fn settings() -> PassSettings {
    PassSettings {
        poll_interval: Duration::from_millis(30),
        concurrency: 16,
        ..PassSettings::default()
    }
}

async fn pass(kube: &Kube, dir: &Path) -> (Prepared, Result<PassOutcome, PassError>) {
    let snapshot = Snapshot::from_dir(dir, DEFAULT_MAX_FILE_SIZE).expect("snapshot");
    let prepared = reconciler::prepare(kube, &snapshot, &settings())
        .await
        .expect("prepare");
    let result = reconciler::execute(kube, &prepared, &settings(), CancellationToken::new(), None).await;
    (prepared, result)
}

fn assert_converged(result: &Result<PassOutcome, PassError>) {
    let outcome = result.as_ref().expect("pass runs");
    let failed: Vec<String> = outcome
        .rollout
        .components
        .iter()
        .filter(|c| c.state != keelson::rollout::ComponentState::Healthy)
        .map(|c| format!("{} {}: {}", c.name, c.state, c.reason))
        .collect();
    assert!(outcome.rollout.converged(), "not converged: {failed:#?}");
}

async fn get_json(kube: &Kube, path: &str) -> Value {
    let request = http::Request::get(path).body(Vec::new()).expect("request");
    kube.client().request::<Value>(request).await.expect("GET")
}

/// Every Secret in the namespace: name -> (annotations, decoded values).
async fn secrets(kube: &Kube) -> BTreeMap<String, (Value, BTreeMap<String, String>)> {
    let list = get_json(kube, &format!("/api/v1/namespaces/{NS}/secrets")).await;
    let mut out = BTreeMap::new();
    for item in list["items"].as_array().cloned().unwrap_or_default() {
        let name = item["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let mut data = BTreeMap::new();
        for (key, value) in item["data"].as_object().cloned().unwrap_or_default() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value.as_str().unwrap_or_default())
                .expect("base64");
            data.insert(key, String::from_utf8(bytes).expect("utf-8"));
        }
        out.insert(name, (item["metadata"]["annotations"].clone(), data));
    }
    out
}

/// Every (Secret, key) a pod template of the rendered objects reads; `None` for a whole-Secret volume.
fn referenced_secrets(prepared: &Prepared) -> BTreeSet<(String, Option<String>)> {
    let mut out = BTreeSet::new();
    for object in &prepared.rendered.objects {
        let Some(pod) = object.body.pointer("/spec/template/spec") else {
            continue;
        };
        for group in ["initContainers", "containers"] {
            for container in pod[group].as_array().cloned().unwrap_or_default() {
                for env in container["env"].as_array().cloned().unwrap_or_default() {
                    if let Some(r) = env.pointer("/valueFrom/secretKeyRef") {
                        out.insert((
                            r["name"].as_str().unwrap_or_default().to_string(),
                            r["key"].as_str().map(str::to_string),
                        ));
                    }
                }
            }
        }
        for volume in pod["volumes"].as_array().cloned().unwrap_or_default() {
            if let Some(name) = volume.pointer("/secret/secretName").and_then(Value::as_str) {
                out.insert((name.to_string(), None));
            }
        }
    }
    out
}

/// Position in the request log of the first write of an object whose name starts with `prefix`.
fn first_write(log: &[RequestRecord], resource: &str, prefix: &str) -> usize {
    log.iter()
        .position(|r| {
            r.is_write() && r.resource == resource && r.name.as_deref().is_some_and(|n| n.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no write of {resource} {prefix}*"))
}

fn keelson(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .output()
        .expect("keelson runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_apply_on_a_fresh_cluster_makes_every_secret_account_and_catalog_entry_in_order_and_a_second_pass_writes_nothing()
 {
    let env = env().await;
    let dir = copy_example();
    let (prepared, result) = pass(&env.kube, dir.path()).await;
    assert_converged(&result);
    let log = env.sim.request_log();

    // Every Secret a pod reads exists, with the key it reads, and is one Keelson generated: Git holds
    // its recipe, not its values.
    let live = secrets(&env.kube).await;
    let referenced = referenced_secrets(&prepared);
    assert!(referenced.len() > 30, "{referenced:?}");
    for (name, key) in &referenced {
        let (annotations, data) = live
            .get(name)
            .unwrap_or_else(|| panic!("Secret {name} is read by a pod but does not exist"));
        assert!(
            annotations.get(ANNOTATION_RECIPE).is_some(),
            "Secret {name} was not made by Keelson"
        );
        if let Some(key) = key {
            let value = data
                .get(key)
                .unwrap_or_else(|| panic!("Secret {name} lacks {key}"));
            assert!(!value.is_empty() && !value.contains("{{"), "{name}.{key}");
        }
    }
    for rendered in prepared
        .rendered
        .objects
        .iter()
        .filter(|o| o.reference.kind == "Secret")
    {
        assert!(
            rendered.body.get("data").is_none(),
            "{} carries values",
            rendered.reference
        );
    }
    // Derived values are made from the generated ones.
    let nova = &live["nova"].1;
    assert_eq!(
        nova["database-connection"],
        format!(
            "mysql+pymysql://nova:{}@mariadb.openstack.svc:3306/nova",
            nova["database-password"]
        )
    );
    assert_eq!(
        nova["transport-url"],
        format!(
            "rabbit://nova:{}@rabbitmq.openstack.svc:5672//",
            nova["rabbitmq-password"]
        )
    );
    assert_eq!(nova["keystone-password"].len(), 32);
    assert!(
        live["heat"].1["auth-encryption-key"]
            .chars()
            .all(|c| c.is_ascii_hexdigit())
    );

    // Every database, RabbitMQ and Keystone Job was written (and, the rollout waiting on each step,
    // completed) before the workload that needs it.
    for (component, jobs, workload) in [
        ("keystone", &["db-init"][..], "deployments"),
        ("glance-api", &["db-init", "ks-register"][..], "deployments"),
        ("placement-api", &["db-init", "ks-register"][..], "deployments"),
        (
            "nova-api",
            &["db-init", "rabbit-init", "ks-register"][..],
            "deployments",
        ),
        (
            "neutron-server",
            &["db-init", "rabbit-init", "ks-register"][..],
            "deployments",
        ),
        (
            "cinder-api",
            &["db-init", "rabbit-init", "ks-register"][..],
            "deployments",
        ),
        (
            "heat-api",
            &["db-init", "rabbit-init", "ks-register", "ks-domain"][..],
            "deployments",
        ),
    ] {
        let workload_at = first_write(&log, workload, component);
        for job in jobs {
            let job_at = first_write(&log, "jobs", &format!("{component}-{job}-"));
            assert!(job_at < workload_at, "{component}: {job} after its workload");
        }
    }
    // The shared services' Secrets exist before the first bootstrap Job that reads them.
    assert!(first_write(&log, "secrets", "mariadb") < first_write(&log, "jobs", "keystone-db-init-"));
    // Keystone: database and user, schema, key repositories, keystone-manage bootstrap, then the API.
    let order = |names: &[(&str, &str)]| {
        let at: Vec<usize> = names.iter().map(|(r, n)| first_write(&log, r, n)).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{names:?} written at {at:?}");
    };
    order(&[
        ("jobs", "keystone-db-init-"),
        ("jobs", "keystone-db-sync-"),
        ("jobs", "keystone-fernet-setup-"),
        ("jobs", "keystone-ks-bootstrap-"),
        ("deployments", "keystone"),
    ]);
    // fernet-setup and credential-setup share a group: both written before either is waited on.
    order(&[
        ("jobs", "keystone-db-sync-"),
        ("jobs", "keystone-credential-setup-"),
    ]);
    order(&[
        ("jobs", "keystone-credential-setup-"),
        ("jobs", "keystone-ks-bootstrap-"),
    ]);
    // Nova: api_db sync -> map_cell0 -> create_cell -> db sync -> workloads -> discover_hosts after
    // nova-compute is healthy.
    order(&[
        ("jobs", "nova-api-api-db-sync-"),
        ("jobs", "nova-api-map-cell0-"),
        ("jobs", "nova-api-create-cell-"),
        ("jobs", "nova-api-db-sync-"),
        ("deployments", "nova-api"),
        ("deployments", "nova-conductor"),
        ("daemonsets", "nova-compute"),
        ("jobs", "nova-compute-discover-hosts-"),
    ]);

    // A second pass writes nothing, and no generated value changed.
    env.sim.clear_request_log();
    let (second, result) = pass(&env.kube, dir.path()).await;
    assert_converged(&result);
    let writes: Vec<String> = env
        .sim
        .request_log()
        .iter()
        .filter(|r| r.is_write())
        .map(|r| format!("{} {} {:?}", r.verb, r.resource, r.name))
        .collect();
    assert!(writes.is_empty(), "second pass wrote: {writes:#?}");
    assert_eq!(second.plan.summary.create + second.plan.summary.update, 0);
    assert_eq!(secrets(&env.kube).await, live, "a value was regenerated");

    // No plan format, and no render, shows a generated value (nor does the plan of a rotation, whose
    // diffs are about Secrets).
    let values: BTreeSet<&str> = live
        .values()
        .flat_map(|(_, data)| data.values())
        .map(String::as_str)
        .filter(|v| v.len() >= 8)
        .collect();
    assert!(values.len() > 30);
    edit(
        dir.path(),
        "keelson.yaml",
        "  - name: nova\n",
        "  - name: nova\n    rotation: 1\n",
    );
    let kubeconfig = env.kubeconfig.path().to_str().expect("path");
    let repo = dir.path().to_str().expect("path");
    let mut outputs = Vec::new();
    for format in ["text", "markdown", "json"] {
        let out = keelson(&["plan", repo, "--kubeconfig", kubeconfig, "-o", format]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        outputs.push((format!("plan -o {format}"), out));
    }
    let text = String::from_utf8_lossy(&outputs[0].1.stdout).to_string();
    assert!(
        text.contains("Secret openstack/nova"),
        "the rotation is planned:\n{text}"
    );
    for format in ["yaml", "json"] {
        outputs.push((
            format!("render -o {format}"),
            keelson(&["render", repo, "-o", format]),
        ));
    }
    for (what, out) in &outputs {
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for value in &values {
            assert!(!shown.contains(value), "{what} shows a generated value");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_in_git_makes_new_values_and_rolls_their_readers_and_a_removed_service_keeps_its_secrets_until_a_tombstone()
 {
    let env = env().await;
    let dir = copy_example();
    let (first, result) = pass(&env.kube, dir.path()).await;
    assert_converged(&result);
    let before = secrets(&env.kube).await;
    let template_hash = |prepared: &Prepared, kind: &str, name: &str| {
        prepared
            .rendered
            .objects
            .iter()
            .find(|o| o.reference.kind == kind && o.reference.name == name)
            .and_then(|o| o.body.pointer("/spec/template/metadata/annotations"))
            .and_then(|a| a.get(ANNOTATION_SECRETS_HASH))
            .and_then(Value::as_str)
            .map(str::to_string)
    };

    edit(
        dir.path(),
        "keelson.yaml",
        "  - name: nova\n",
        "  - name: nova\n    rotation: 1\n",
    );
    env.sim.clear_request_log();
    let (rotated, result) = pass(&env.kube, dir.path()).await;
    assert_converged(&result);
    let after = secrets(&env.kube).await;
    let (old, new) = (&before["nova"].1, &after["nova"].1);
    for key in [
        "database-password",
        "rabbitmq-password",
        "keystone-password",
        "metadata-secret",
    ] {
        assert_ne!(old[key], new[key], "nova.{key} rotated");
    }
    assert_eq!(
        new["database-connection"],
        format!(
            "mysql+pymysql://nova:{}@mariadb.openstack.svc:3306/nova",
            new["database-password"]
        )
    );
    for (name, (_, data)) in &before {
        if name != "nova" {
            assert_eq!(&after[name].1, data, "{name} kept its values");
        }
    }
    // nova's readers roll, others do not; the Jobs that set nova's passwords run again.
    for (kind, name, rolls) in [
        ("Deployment", "nova-api", true),
        ("DaemonSet", "nova-compute", true),
        ("DaemonSet", "neutron-metadata-agent", true),
        ("Deployment", "glance-api", false),
        ("StatefulSet", "mariadb", false),
    ] {
        let changed = template_hash(&first, kind, name) != template_hash(&rotated, kind, name);
        assert_eq!(changed, rolls, "{kind} {name}");
    }
    let log = env.sim.request_log();
    for job in [
        "nova-api-db-init-",
        "nova-api-rabbit-init-",
        "nova-api-ks-register-",
    ] {
        first_write(&log, "jobs", job);
    }
    assert!(
        !log.iter().any(|r| r.is_write()
            && r.name
                .as_deref()
                .is_some_and(|n| n.starts_with("glance-api-db-init-"))),
        "glance's database Job does not run again"
    );

    // Horizon and Heat go away: their objects are pruned, horizon's generated Secret is kept (and
    // reported), and nothing is run against Heat's database, queue user or domain: the pass only deletes.
    for service in ["horizon", "heat-api", "heat-engine"] {
        std::fs::remove_file(dir.path().join(format!("services/{service}.yaml"))).expect("remove");
    }
    env.sim.clear_request_log();
    let (removed, result) = pass(&env.kube, dir.path()).await;
    assert_converged(&result);
    let not_deletes: Vec<String> = env
        .sim
        .request_log()
        .iter()
        .filter(|r| r.is_write() && r.verb != "delete" && r.resource != "configmaps")
        .map(|r| format!("{} {} {:?}", r.verb, r.resource, r.name))
        .collect();
    assert!(not_deletes.is_empty(), "removing services wrote: {not_deletes:?}");
    let left = secrets(&env.kube).await;
    assert!(left.contains_key("horizon"), "kept without a tombstone");
    assert_eq!(
        left["heat"].1, after["heat"].1,
        "heat's credentials are untouched"
    );
    let kept = removed
        .plan
        .refusals
        .iter()
        .find(|r| r.reference.name == "horizon" && r.reference.kind == "Secret")
        .expect("the kept Secret is reported");
    assert!(!kept.blocking);
    assert!(
        kept.message.contains("spec.tombstones.secrets"),
        "{}",
        kept.message
    );
    let deployments = get_json(&env.kube, &format!("/apis/apps/v1/namespaces/{NS}/deployments")).await;
    assert!(
        !deployments["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|d| d["metadata"]["name"] == "horizon")),
        "horizon's Deployment is pruned"
    );

    // The tombstone lets it go.
    edit(
        dir.path(),
        "keelson.yaml",
        "  secrets:\n",
        "  tombstones:\n    secrets: [horizon]\n  secrets:\n",
    );
    let (_, result) = pass(&env.kube, dir.path()).await;
    assert_converged(&result);
    assert!(
        !secrets(&env.kube).await.contains_key("horizon"),
        "deleted after the tombstone"
    );
}

/// Every script the example's Jobs and init containers run is valid bash or Python: the bootstrap scripts
/// (from the rendered `<component>-bootstrap` ConfigMaps), job scripts and `bash -c` init containers.
#[test]
fn every_script_the_example_runs_parses() {
    let snapshot = Snapshot::from_dir(&example_repo(), DEFAULT_MAX_FILE_SIZE).expect("snapshot");
    let topology = keelson::topology::load(&snapshot).unwrap_or_else(|d| panic!("{d}"));
    let rendered = keelson::render::render(&topology, &Default::default()).expect("render");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut scripts: Vec<(String, String)> = Vec::new();
    for object in &rendered.objects {
        if object.reference.kind == "ConfigMap" {
            for (key, value) in object.body["data"].as_object().cloned().unwrap_or_default() {
                if key.ends_with(".py") || key.ends_with(".sh") {
                    scripts.push((
                        format!("{}-{key}", object.reference.name),
                        value.as_str().unwrap_or_default().into(),
                    ));
                }
            }
        }
        let containers = object.body.pointer("/spec/template/spec/initContainers");
        for container in containers.and_then(Value::as_array).cloned().unwrap_or_default() {
            let command: Vec<&str> = container["command"]
                .as_array()
                .map(|c| c.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let ["bash", "-c", script] = command.as_slice() {
                scripts.push((format!("{}-init.sh", object.reference.name), script.to_string()));
            }
        }
    }
    let names: BTreeSet<&str> = scripts.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "nova-api-bootstrap-db-init.py",
        "nova-api-bootstrap-rabbit-init.py",
        "heat-api-bootstrap-ks-domain.sh",
        "nova-api-config-create-cell.sh",
        "mariadb-init.sh",
    ] {
        assert!(names.contains(expected), "{expected} missing from {names:?}");
    }
    for (name, text) in &scripts {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let (program, args): (&str, Vec<&str>) = if name.ends_with(".py") {
            ("python3", vec!["-m", "py_compile"])
        } else {
            ("bash", vec!["-n"])
        };
        let out = Command::new(program)
            .args(&args)
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
