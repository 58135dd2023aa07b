//! Builder fixtures and table-driven tests of the renderer.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::object::ANNOTATION_PERSISTENT;
use crate::topology::{
    AccessMode, ConfigFile, EnvVar, JobPhase, JobSpec, KeyRef, PersistentSource, Policy, Port, Protocol,
    RawManifest, ServiceSpec, TopologySpec, Volume, WorkloadKind,
};

pub fn spec(image: &str) -> ServiceSpec {
    serde_json::from_value(json!({"image": image})).unwrap()
}

pub fn component(name: &str) -> Component {
    Component {
        name: name.into(),
        project: name.split('-').next().unwrap().into(),
        file: format!("services/{name}.yaml"),
        spec: spec(name),
        image: format!("quay.io/openstack.kolla/{name}:2025.1-ubuntu-noble"),
        job_images: vec![],
        health_timeout: Duration::from_secs(600),
        config_contents: vec![],
        manifests: vec![],
        container_images: Default::default(),
        toolbox_image: None,
        encrypted_files: Default::default(),
    }
}

pub fn job(name: &str, phase: JobPhase) -> JobSpec {
    JobSpec {
        name: name.into(),
        phase,
        command: Some(format!("{name}-command")),
        script: None,
        group: None,
        image: None,
        env: vec![],
        backoff_limit: None,
        timeout: None,
    }
}

pub fn topology(components: Vec<Component>) -> Topology {
    Topology {
        name: "openstack".into(),
        spec: TopologySpec {
            namespace: "openstack".into(),
            images: Default::default(),
            health_timeout: "10m".into(),
            policy: Policy::default(),
            config_schemas: Vec::new(),
            secrets: vec![],
            bootstrap: None,
            tombstones: Default::default(),
            sync_windows: Vec::new(),
        },
        health_timeout: Duration::from_secs(600),
        components: components.into_iter().map(|c| (c.name.clone(), c)).collect(),
        sync_windows: Default::default(),
    }
}

/// keystone: a Deployment with a config file, a secret env, a port, a fernet PVC and two jobs.
pub fn keystone() -> Component {
    let mut c = component("keystone");
    c.spec.command = Some("/usr/sbin/apache2".into());
    c.spec.args = vec!["-DFOREGROUND".into()];
    c.spec.replicas = 3;
    c.spec.depends_on = vec!["mariadb".into()];
    c.spec.ports = vec![Port {
        name: "api".into(),
        port: 5000,
        protocol: Protocol::TCP,
        expose: true,
    }];
    c.spec.env = vec![EnvVar {
        name: "OS_DATABASE__CONNECTION".into(),
        value: None,
        secret_key_ref: Some(KeyRef {
            name: "keystone-db".into(),
            key: "connection".into(),
            optional: None,
        }),
        config_map_key_ref: None,
    }];
    c.spec.config_files = vec![ConfigFile {
        source: "config/keystone/keystone.conf".into(),
        dest: "/etc/keystone/keystone.conf".into(),
        owner: "keystone".into(),
        perm: "0600".into(),
    }];
    c.config_contents = vec!["[DEFAULT]\ndebug = false\n".into()];
    c.spec.volumes = vec![Volume {
        name: "fernet-keys".into(),
        mount_path: "/etc/keystone/fernet-keys".into(),
        read_only: false,
        empty_dir: None,
        host_path: None,
        secret: None,
        config_map: None,
        persistent: Some(PersistentSource {
            size: "1Gi".into(),
            storage_class: None,
            access_mode: AccessMode::default(),
        }),
        mount_propagation: None,
    }];
    c.spec.jobs = vec![job("db-sync", JobPhase::Pre), job("bootstrap", JobPhase::Post)];
    c.job_images = vec![c.image.clone(), c.image.clone()];
    c
}

/// keystone without its database dependency, for tests about one component.
pub fn keystone_alone() -> Component {
    let mut c = keystone();
    c.spec.depends_on.clear();
    c
}

pub fn mariadb() -> Component {
    let mut c = component("mariadb");
    c.spec.workload = WorkloadKind::StatefulSet;
    c.spec.command = Some("/usr/bin/mysqld_safe".into());
    c.spec.ports = vec![Port {
        name: "mysql".into(),
        port: 3306,
        protocol: Protocol::TCP,
        expose: true,
    }];
    c.spec.config_files = vec![ConfigFile {
        source: "config/mariadb/my.cnf".into(),
        dest: "/etc/mysql/my.cnf".into(),
        owner: "mysql".into(),
        perm: "0600".into(),
    }];
    c.config_contents = vec!["[mysqld]\n".into()];
    c.spec.volumes = vec![Volume {
        name: "data".into(),
        mount_path: "/var/lib/mysql".into(),
        read_only: false,
        empty_dir: None,
        host_path: None,
        secret: None,
        config_map: None,
        persistent: Some(PersistentSource {
            size: "20Gi".into(),
            storage_class: Some("fast".into()),
            access_mode: AccessMode::ReadWriteOnce,
        }),
        mount_propagation: None,
    }];
    c
}

fn render_default(t: &Topology) -> Rendered {
    render(t, &RenderOptions::default()).unwrap()
}

fn kinds_and_names(r: &Rendered) -> Vec<(String, String, String)> {
    r.objects
        .iter()
        .map(|o| {
            (
                o.component.clone(),
                o.reference.kind.clone(),
                o.reference.name.clone(),
            )
        })
        .collect()
}

fn find<'a>(r: &'a Rendered, kind: &str, name_prefix: &str) -> &'a RenderedObject {
    r.objects
        .iter()
        .find(|o| o.reference.kind == kind && o.reference.name.starts_with(name_prefix))
        .unwrap_or_else(|| panic!("no {kind} {name_prefix}*"))
}

#[test]
fn objects_come_in_wave_then_stage_order() {
    let r = render_default(&topology(vec![keystone(), mariadb()]));
    let got: Vec<(String, String)> = kinds_and_names(&r)
        .into_iter()
        .map(|(c, k, n)| (c, format!("{k}/{}", &n[..n.len().min(17)])))
        .collect();
    let expected = [
        ("mariadb", "ConfigMap/mariadb-config"),
        ("mariadb", "Service/mariadb"),
        ("mariadb", "StatefulSet/mariadb"),
        ("keystone", "ConfigMap/keystone-config"),
        ("keystone", "PersistentVolumeClaim/keystone-fernet-k"),
        // Three replicas: a PodDisruptionBudget keeps a drain from taking more than one at a time.
        ("keystone", "PodDisruptionBudget/keystone"),
        ("keystone", "Service/keystone"),
        ("keystone", "Job/keystone-db-sync-"),
        ("keystone", "Deployment/keystone"),
        ("keystone", "Job/keystone-bootstra"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(c, o)| (c.to_string(), o.to_string()))
        .collect();
    assert_eq!(got, expected);
    let stages: Vec<Stage> = r.component("keystone").map(|o| o.stage).collect();
    assert!(stages.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn every_object_carries_ownership_labels_and_hash() {
    let r = render(
        &topology(vec![keystone(), mariadb()]),
        &RenderOptions {
            revision: Some("abc123".into()),
        },
    )
    .unwrap();
    for o in &r.objects {
        let labels = o.body.pointer("/metadata/labels").unwrap();
        let project = if o.component == "keystone" {
            "keystone"
        } else {
            "mariadb"
        };
        for (k, v) in [
            (LABEL_NAME, project),
            (LABEL_COMPONENT, o.component.as_str()),
            (LABEL_PART_OF, "openstack"),
            (LABEL_MANAGED_BY, "keelson"),
            (LABEL_SERVICE, o.component.as_str()),
            (LABEL_TOPOLOGY, "openstack"),
        ] {
            assert_eq!(labels.get(k), Some(&json!(v)), "{} label {k}", o.reference);
        }
        let annotations = o.body.pointer("/metadata/annotations").unwrap();
        assert_eq!(annotations.get(ANNOTATION_HASH), Some(&json!(o.hash)));
        assert_eq!(annotations.get(ANNOTATION_REVISION), Some(&json!("abc123")));
        assert_eq!(o.reference.namespace.as_deref(), Some("openstack"));
    }
}

#[test]
fn hash_is_of_the_object_without_hash_and_revision() {
    let t = topology(vec![keystone_alone()]);
    let plain = render_default(&t);
    let stamped = render(
        &t,
        &RenderOptions {
            revision: Some("r2".into()),
        },
    )
    .unwrap();
    for (a, b) in plain.objects.iter().zip(&stamped.objects) {
        assert_eq!(a.hash, b.hash, "{}", a.reference);
        let mut stripped = b.body.clone();
        let ann = stripped
            .pointer_mut("/metadata/annotations")
            .unwrap()
            .as_object_mut()
            .unwrap();
        ann.remove(ANNOTATION_HASH);
        ann.remove(ANNOTATION_REVISION);
        // Hashing happens with the annotations map present (possibly empty), minus hash and revision.
        assert_eq!(hash_value(&stripped), b.hash, "{}", a.reference);
    }
}

#[test]
fn rendering_is_deterministic() {
    let t = topology(vec![keystone(), mariadb()]);
    let a = serde_json::to_string(&render_default(&t)).unwrap();
    let b = serde_json::to_string(&render_default(&t.clone())).unwrap();
    assert_eq!(a, b);
}

#[test]
fn config_change_rolls_only_that_components_pods() {
    let base = topology(vec![keystone(), mariadb()]);
    let mut changed = base.clone();
    changed.components.get_mut("keystone").unwrap().config_contents[0] = "[DEFAULT]\ndebug = true\n".into();
    let a = render_default(&base);
    let b = render_default(&changed);
    let config_hash = |r: &Rendered, kind: &str, name: &str| {
        find(r, kind, name)
            .body
            .pointer("/spec/template/metadata/annotations/keelson.dev~1config-hash")
            .cloned()
    };
    assert_ne!(
        config_hash(&a, "Deployment", "keystone"),
        config_hash(&b, "Deployment", "keystone")
    );
    assert_eq!(
        config_hash(&a, "StatefulSet", "mariadb"),
        config_hash(&b, "StatefulSet", "mariadb")
    );
    for (x, y) in a.objects.iter().zip(&b.objects) {
        assert_eq!(x.reference, y.reference, "config changes never rename objects");
        let expect_change =
            x.component == "keystone" && matches!(x.reference.kind.as_str(), "ConfigMap" | "Deployment");
        assert_eq!(x.hash != y.hash, expect_change, "{}", x.reference);
    }
    // Jobs do not carry the config hash: a config change does not re-run migrations.
    assert!(config_hash(&a, "Job", "keystone-db-sync").is_none());
}

#[test]
fn image_change_renames_only_that_components_jobs() {
    let base = topology(vec![keystone(), mariadb()]);
    let mut changed = base.clone();
    let k = changed.components.get_mut("keystone").unwrap();
    k.image = "quay.io/openstack.kolla/keystone:2025.2-ubuntu-noble".into();
    k.job_images = vec![k.image.clone(), k.image.clone()];
    let jobs = |r: &Rendered| -> Vec<String> {
        r.objects
            .iter()
            .filter(|o| o.reference.kind == "Job")
            .map(|o| o.reference.name.clone())
            .collect()
    };
    let (a, b) = (render_default(&base), render_default(&changed));
    let (ja, jb) = (jobs(&a), jobs(&b));
    assert_eq!(ja.len(), 2);
    for (x, y) in ja.iter().zip(&jb) {
        assert_ne!(x, y);
        assert_eq!(x[..x.len() - 8], y[..y.len() - 8]);
    }
    let others = |r: &Rendered| -> Vec<(ObjectRef, String)> {
        r.objects
            .iter()
            .filter(|o| o.component == "mariadb")
            .map(|o| (o.reference.clone(), o.hash.clone()))
            .collect()
    };
    assert_eq!(others(&a), others(&b));
}

#[test]
fn job_names_fit_label_values() {
    let cases = [
        ("keystone", "db-sync", "keystone-db-sync-0123abcd"),
        (
            &"a".repeat(40),
            &"b".repeat(30),
            &format!("{}-{}-0123abcd", "a".repeat(40), "b".repeat(13)),
        ),
        (&"a".repeat(54), "x", &format!("{}-0123abcd", "a".repeat(54))),
    ];
    for (component, job, expected) in cases {
        let name = component::job_name(component, job, "0123abcdef");
        assert_eq!(name, expected);
        assert!(name.len() <= 63);
    }
}

#[test]
fn kolla_config_reaches_each_container_as_its_own_config_json() {
    let r = render_default(&topology(vec![keystone(), mariadb()]));
    let cm = find(&r, "ConfigMap", "keystone-config");
    let data = cm.body.get("data").unwrap();
    let workload: Value = serde_json::from_str(data["config.json"].as_str().unwrap()).unwrap();
    assert_eq!(workload["command"], json!("/usr/sbin/apache2 -DFOREGROUND"));
    assert_eq!(
        workload["config_files"],
        json!([{"source": "/var/lib/kolla/config_files/keystone.conf", "dest": "/etc/keystone/keystone.conf", "owner": "keystone", "perm": "0600"}])
    );
    assert_eq!(
        workload["permissions"],
        json!([{"path": "/etc/keystone/fernet-keys", "owner": "keystone", "recurse": true}])
    );
    let db_sync: Value = serde_json::from_str(data["db-sync.config.json"].as_str().unwrap()).unwrap();
    assert_eq!(db_sync["command"], json!("db-sync-command"));
    assert_eq!(data["keystone.conf"], json!("[DEFAULT]\ndebug = false\n"));

    let deploy = &find(&r, "Deployment", "keystone").body;
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["configMap"]["items"][0],
        json!({"key": "config.json", "path": "config.json"})
    );
    let container = &pod["containers"][0];
    assert_eq!(container["command"], json!(["kolla_start"]));
    assert_eq!(
        container["env"][0],
        json!({"name": "KOLLA_CONFIG_STRATEGY", "value": "COPY_ALWAYS"})
    );
    assert_eq!(
        container["env"][1],
        json!({"name": "OS_DATABASE__CONNECTION", "valueFrom": {"secretKeyRef": {"name": "keystone-db", "key": "connection"}}})
    );
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        json!("/var/lib/kolla/config_files")
    );
    assert_eq!(deploy["spec"]["progressDeadlineSeconds"], json!(600));
    assert_eq!(
        pod["volumes"][1],
        json!({"name": "fernet-keys", "persistentVolumeClaim": {"claimName": "keystone-fernet-keys"}})
    );

    let job = &find(&r, "Job", "keystone-db-sync").body;
    let items = &job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"];
    assert_eq!(
        items[0],
        json!({"key": "db-sync.config.json", "path": "config.json"})
    );
    assert_eq!(job["spec"]["backoffLimit"], json!(3));
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], json!("Never"));
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"][LABEL_ROLE],
        json!("job")
    );
}

#[test]
fn selectors_use_only_stable_labels_and_exclude_jobs() {
    let r = render_default(&topology(vec![keystone_alone()]));
    let deploy = &find(&r, "Deployment", "keystone").body;
    let selector = deploy["spec"]["selector"]["matchLabels"].as_object().unwrap();
    let keys: Vec<&str> = selector.keys().map(String::as_str).collect();
    assert_eq!(keys, [LABEL_SERVICE, LABEL_TOPOLOGY, LABEL_ROLE]);
    assert_eq!(
        find(&r, "Service", "keystone").body["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    let job_labels = &find(&r, "Job", "keystone-db-sync").body["spec"]["template"]["metadata"]["labels"];
    assert!(
        selector.iter().any(|(k, v)| job_labels.get(k) != Some(v)),
        "job pods must not match the workload selector"
    );
}

#[test]
fn statefulsets_get_headless_service_and_claim_templates() {
    let r = render_default(&topology(vec![mariadb()]));
    let svc = &find(&r, "Service", "mariadb").body;
    assert_eq!(svc["spec"]["clusterIP"], json!("None"));
    let sts = &find(&r, "StatefulSet", "mariadb").body;
    assert_eq!(sts["spec"]["serviceName"], json!("mariadb"));
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"], json!("data"));
    assert_eq!(
        claim["metadata"]["annotations"][ANNOTATION_PERSISTENT],
        json!("true")
    );
    assert_eq!(claim["spec"]["storageClassName"], json!("fast"));
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], json!("20Gi"));
    let pod_volumes = sts["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    assert!(
        pod_volumes.iter().all(|v| v["name"] != json!("data")),
        "the claim template provides the volume"
    );
    assert!(
        r.objects
            .iter()
            .all(|o| o.reference.kind != "PersistentVolumeClaim")
    );
}

#[test]
fn persistent_claims_of_deployments_are_annotated() {
    let r = render_default(&topology(vec![keystone_alone()]));
    let pvc = &find(&r, "PersistentVolumeClaim", "keystone-fernet-keys").body;
    assert_eq!(
        pvc["metadata"]["annotations"][ANNOTATION_PERSISTENT],
        json!("true")
    );
    assert_eq!(
        pvc["spec"]["accessModes"],
        json!(["ReadWriteOnce"]),
        "ReadWriteOnce unless the topology asks for more"
    );
}

#[test]
fn the_topology_chooses_a_claims_access_mode() {
    let mut keystone = keystone_alone();
    for v in keystone.spec.volumes.iter_mut() {
        if let Some(p) = v.persistent.as_mut() {
            p.access_mode = AccessMode::ReadWriteMany;
        }
    }
    let r = render_default(&topology(vec![keystone]));
    let pvc = &find(&r, "PersistentVolumeClaim", "keystone-fernet-keys").body;
    assert_eq!(pvc["spec"]["accessModes"], json!(["ReadWriteMany"]));
}

#[test]
fn daemonsets_on_the_host_network_resolve_cluster_names() {
    let mut c = component("nova-compute");
    c.spec.workload = WorkloadKind::DaemonSet;
    c.spec.command = Some("nova-compute".into());
    c.spec.host_network = true;
    c.spec.privileged = true;
    let r = render_default(&topology(vec![c]));
    assert_eq!(
        kinds_and_names(&r)
            .iter()
            .map(|(_, k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["ConfigMap", "DaemonSet"]
    );
    let pod = &find(&r, "DaemonSet", "nova-compute").body["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], json!(true));
    assert_eq!(pod["dnsPolicy"], json!("ClusterFirstWithHostNet"));
    assert_eq!(
        pod["containers"][0]["securityContext"],
        json!({"privileged": true})
    );
}

#[test]
fn raw_manifests_get_namespace_and_ownership() {
    let mut c = mariadb();
    c.manifests = vec![
        RawManifest {
            file: "manifests/mariadb.yaml".into(),
            line: 1,
            object: json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "mariadb", "labels": {"keelson.dev/service": "other", "team": "db"}}, "spec": {"maxUnavailable": 1}}),
        },
        RawManifest {
            file: "manifests/mariadb.yaml".into(),
            line: 9,
            object: json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "openstack-db"}, "value": 1000}),
        },
    ];
    let r = render_default(&topology(vec![c]));
    let pdb = find(&r, "PodDisruptionBudget", "mariadb");
    assert_eq!(pdb.stage, Stage::Config);
    assert_eq!(pdb.body["metadata"]["namespace"], json!("openstack"));
    assert_eq!(pdb.body["metadata"]["labels"]["team"], json!("db"));
    assert_eq!(pdb.body["metadata"]["labels"][LABEL_SERVICE], json!("mariadb"));
    let pc = find(&r, "PriorityClass", "openstack-db");
    assert_eq!(pc.reference.namespace, None);
    assert!(pc.body["metadata"].get("namespace").is_none());
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    type Mutate = fn(&mut Component);
    let cases: Vec<(&str, Mutate)> = vec![
        ("manifest without kind", |c| {
            c.manifests = vec![RawManifest {
                file: "m.yaml".into(),
                line: 3,
                object: json!({"apiVersion": "v1", "metadata": {"name": "x"}}),
            }]
        }),
        ("manifest not a map", |c| {
            c.manifests = vec![RawManifest {
                file: "m.yaml".into(),
                line: 1,
                object: json!([1]),
            }]
        }),
        ("manifest without name", |c| {
            c.manifests = vec![RawManifest {
                file: "m.yaml".into(),
                line: 1,
                object: json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            }]
        }),
        ("cluster-scoped with namespace", |c| {
            c.manifests = vec![RawManifest {
                file: "m.yaml".into(),
                line: 1,
                object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "namespace": "y"}}),
            }]
        }),
        ("duplicate object", |c| {
            c.manifests = vec![RawManifest {
                file: "m.yaml".into(),
                line: 1,
                object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keystone-config"}}),
            }]
        }),
        ("reserved volume", |c| {
            c.spec.volumes[0].name = "kolla-config".into()
        }),
        ("bad job timeout", |c| {
            c.spec.jobs[0].timeout = Some("soon".into())
        }),
        ("missing job image", |c| {
            c.job_images.pop();
        }),
        ("missing config contents", |c| c.config_contents.clear()),
        ("config without command", |c| c.spec.command = None),
        ("arg with space", |c| c.spec.args = vec!["a b".into()]),
    ];
    for (what, mutate) in cases {
        let mut c = keystone();
        c.spec.depends_on.clear();
        mutate(&mut c);
        let err = render(&topology(vec![c]), &RenderOptions::default());
        assert!(err.is_err(), "{what}: expected an error");
        assert!(
            err.unwrap_err().to_string().contains("keystone") || what == "duplicate object",
            "{what}"
        );
    }
}

#[test]
fn broken_dependency_graph_is_refused() {
    let mut a = component("a");
    a.spec.depends_on = vec!["b".into()];
    let mut b = component("b");
    b.spec.depends_on = vec!["a".into()];
    assert!(matches!(
        render(&topology(vec![a, b]), &RenderOptions::default()),
        Err(RenderError::Order { .. })
    ));
}

#[test]
fn plain_images_without_command_run_their_own_entrypoint() {
    let mut c = component("exporter");
    c.image = "docker.io/prom/mysqld-exporter:v0.15.1".into();
    c.spec.args = vec!["--web.listen-address=:9104".into()];
    c.spec.ports = vec![Port {
        name: "metrics".into(),
        port: 9104,
        protocol: Protocol::TCP,
        expose: true,
    }];
    let r = render_default(&topology(vec![c]));
    assert_eq!(
        kinds_and_names(&r)
            .iter()
            .map(|(_, k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["Service", "Deployment"]
    );
    let container = &find(&r, "Deployment", "exporter").body["spec"]["template"]["spec"]["containers"][0];
    assert!(container.get("command").is_none());
    assert!(container.get("env").is_none());
    assert_eq!(container["args"], json!(["--web.listen-address=:9104"]));
    let template_meta = &find(&r, "Deployment", "exporter").body["spec"]["template"]["metadata"];
    assert!(template_meta.get("annotations").is_none());
}

#[test]
fn job_env_overrides_component_env() {
    let mut c = keystone();
    c.spec.depends_on.clear();
    c.spec.jobs[1].env = vec![EnvVar {
        name: "OS_DATABASE__CONNECTION".into(),
        value: Some("x".into()),
        secret_key_ref: None,
        config_map_key_ref: None,
    }];
    let r = render_default(&topology(vec![c]));
    let env = &find(&r, "Job", "keystone-bootstrap").body["spec"]["template"]["spec"]["containers"][0]["env"];
    let names: Vec<&str> = env
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["KOLLA_CONFIG_STRATEGY", "OS_DATABASE__CONNECTION"]);
    assert_eq!(env[1]["value"], json!("x"));
}

fn secret_spec(name: &str, data: Value) -> crate::topology::SecretSpec {
    serde_json::from_value(json!({"name": name, "data": data})).unwrap()
}

/// keystone reading a generated Secret `keystone-db` (password + a derived connection URL).
fn keystone_with_secret(rotation: u32) -> Component {
    let mut c = keystone_alone();
    let mut s = secret_spec(
        "keystone-db",
        json!({
            "password": {"generate": "random"},
            "connection": {"template": "mysql+pymysql://keystone:{{ keystone-db.password }}@db/keystone"},
        }),
    );
    s.rotation = rotation;
    c.spec.secrets = vec![s];
    c
}

#[test]
fn secrets_are_rendered_as_recipes_without_values_and_derived_ones_one_step_later() {
    let r = render_default(&topology(vec![keystone_with_secret(0)]));
    let secret = find(&r, "Secret", "keystone-db");
    assert_eq!(secret.stage, Stage::Config);
    assert_eq!(secret.step, 1, "a Secret with templates comes after its inputs");
    assert!(secret.body.get("data").is_none() && secret.body.get("stringData").is_none());
    let annotations = &secret.body["metadata"]["annotations"];
    assert_eq!(annotations["keelson.dev/generated-keys"], "password");
    assert_eq!(annotations["keelson.dev/rotation"], "0");
    let recipe: Value =
        serde_json::from_str(annotations["keelson.dev/secret-recipe"].as_str().unwrap()).unwrap();
    assert_eq!(
        recipe["password"],
        json!({"generate": "random", "length": 32, "alphabet": "alphanumeric"})
    );
    let made = secret.secret.as_ref().expect("recipe");
    assert!(made.has_templates());
    assert!(matches!(
        made.keys["password"],
        KeySource::Random { length: 32, .. }
    ));
}

#[test]
fn a_rotation_rolls_exactly_the_pods_and_jobs_that_read_the_secret() {
    let base = render_default(&topology(vec![keystone_with_secret(0), mariadb()]));
    let rotated = render_default(&topology(vec![keystone_with_secret(1), mariadb()]));
    let hash = |r: &Rendered, kind: &str, name: &str| {
        find(r, kind, name)
            .body
            .pointer("/spec/template/metadata/annotations/keelson.dev~1secrets-hash")
            .cloned()
    };
    assert!(hash(&base, "Deployment", "keystone").is_some());
    assert_ne!(
        hash(&base, "Deployment", "keystone"),
        hash(&rotated, "Deployment", "keystone")
    );
    // The jobs read the component's environment: they are new Jobs, so they run again.
    assert_ne!(
        find(&base, "Job", "keystone-db-sync-").reference.name,
        find(&rotated, "Job", "keystone-db-sync-").reference.name
    );
    // mariadb reads no Keelson Secret: no annotation, no roll.
    assert_eq!(hash(&base, "StatefulSet", "mariadb"), None);
    assert_eq!(
        find(&base, "StatefulSet", "mariadb").hash,
        find(&rotated, "StatefulSet", "mariadb").hash
    );
    // The config hash is untouched: values are not config.
    let config = |r: &Rendered| find(r, "ConfigMap", "keystone-config").hash.clone();
    assert_eq!(config(&base), config(&rotated));
}

#[test]
fn jobs_get_steps_in_the_order_written_and_groups_share_one() {
    let mut c = keystone_alone();
    let mut a = job("api-db-sync", JobPhase::Pre);
    a.timeout = Some("20m".into());
    let mut b = job("map-cell0", JobPhase::Pre);
    b.group = Some("cells".into());
    let mut d = job("create-cell", JobPhase::Pre);
    d.group = Some("cells".into());
    d.command = None;
    d.script = Some(
        "nova-manage cell_v2 list_cells | grep -qw cell1 || nova-manage cell_v2 create_cell --name cell1\n"
            .into(),
    );
    let e = job("db-sync", JobPhase::Pre);
    let f = job("discover-hosts", JobPhase::Post);
    c.spec.jobs = vec![a, b, d, e, f];
    c.job_images = vec![c.image.clone(); 5];
    let r = render_default(&topology(vec![c]));
    let step = |name: &str| {
        let o = find(&r, "Job", &format!("keystone-{name}-"));
        (o.stage, o.step, o.timeout)
    };
    let ten = Some(Duration::from_secs(600));
    assert_eq!(
        step("api-db-sync"),
        (Stage::PreJob, 0, Some(Duration::from_secs(1200)))
    );
    assert_eq!(step("map-cell0"), (Stage::PreJob, 1, ten));
    assert_eq!(step("create-cell"), (Stage::PreJob, 1, ten));
    assert_eq!(step("db-sync"), (Stage::PreJob, 2, ten));
    assert_eq!(step("discover-hosts"), (Stage::PostJob, 0, ten));
    // A script job runs bash over its script, shipped in the ConfigMap and mounted beside config.json.
    let config = find(&r, "ConfigMap", "keystone-config");
    assert!(
        config.body["data"]["create-cell.sh"]
            .as_str()
            .unwrap()
            .contains("create_cell")
    );
    let json: Value =
        serde_json::from_str(config.body["data"]["create-cell.config.json"].as_str().unwrap()).unwrap();
    assert_eq!(json["command"], "bash /var/lib/kolla/config_files/create-cell.sh");
    let create = find(&r, "Job", "keystone-create-cell-");
    let items = create
        .body
        .pointer("/spec/template/spec/volumes/0/configMap/items")
        .unwrap();
    assert!(
        items
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["key"] == "create-cell.sh")
    );
    assert!(
        create
            .body
            .pointer("/spec/template/metadata/annotations/keelson.dev~1script-hash")
            .is_some()
    );
}

fn with_bootstrap(mut t: Topology) -> Topology {
    t.spec.bootstrap = Some(
        serde_json::from_value(json!({
            "database": {"host": "mariadb.openstack.svc", "adminPasswordFrom": {"secret": "mariadb", "key": "root-password"}},
            "messaging": {"host": "rabbitmq.openstack.svc", "adminUser": "openstack", "adminPasswordFrom": {"secret": "rabbitmq", "key": "password"}},
            "identity": {"authUrl": "http://keystone.openstack.svc:5000/v3", "adminPasswordFrom": {"secret": "keystone-admin", "key": "password"}},
        }))
        .unwrap(),
    );
    t
}

#[test]
fn bootstrap_fields_become_toolbox_jobs_that_read_every_password_from_a_secret() {
    let mut c = component("glance-api");
    c.spec.command = Some("glance-api".into());
    c.spec.database = Some(
        serde_json::from_value(
            json!({"name": "glance", "user": "glance", "passwordFrom": {"secret": "glance", "key": "database-password"}}),
        )
        .unwrap(),
    );
    c.spec.messaging = Some(
        serde_json::from_value(
            json!({"user": "glance", "passwordFrom": {"secret": "glance", "key": "rabbitmq-password"}}),
        )
        .unwrap(),
    );
    c.spec.identity = Some(
        serde_json::from_value(json!({
            "serviceType": "image", "serviceName": "glance",
            "endpoints": {"public": "http://glance-api.openstack.svc:9292", "internal": "http://glance-api.openstack.svc:9292", "admin": "http://glance-api.openstack.svc:9292"},
            "user": "glance", "passwordFrom": {"secret": "glance", "key": "keystone-password"},
        }))
        .unwrap(),
    );
    c.toolbox_image = Some("quay.io/openstack.kolla/kolla-toolbox:2025.1-ubuntu-noble".into());
    c.spec.jobs = vec![job("db-sync", JobPhase::Pre)];
    c.job_images = vec![c.image.clone()];
    let r = render_default(&with_bootstrap(topology(vec![c])));
    let scripts = find(&r, "ConfigMap", "glance-api-bootstrap");
    for key in ["db-init.py", "rabbit-init.py", "ks-register.sh"] {
        assert!(scripts.body["data"][key].is_string(), "{key}");
    }
    for (job, script) in [
        ("db-init", "db-init.py"),
        ("rabbit-init", "rabbit-init.py"),
        ("ks-register", "ks-register.sh"),
    ] {
        let o = find(&r, "Job", &format!("glance-api-{job}-"));
        assert_eq!((o.stage, o.step), (Stage::PreJob, 0));
        let container = o.body.pointer("/spec/template/spec/containers/0").unwrap();
        assert!(container["image"].as_str().unwrap().contains("/kolla-toolbox:"));
        assert_eq!(
            container["command"][1],
            format!("/var/lib/keelson/bootstrap/{script}")
        );
        for env in container["env"].as_array().unwrap() {
            let name = env["name"].as_str().unwrap();
            if name.contains("PASSWORD") {
                assert!(env.get("value").is_none(), "{job}: {name} is a literal");
                assert!(env.pointer("/valueFrom/secretKeyRef").is_some(), "{job}: {name}");
            }
        }
    }
    // The component's own pre-job waits for the bootstrap step.
    assert_eq!(find(&r, "Job", "glance-api-db-sync-").step, 1);
}

#[test]
fn keystone_registers_itself_with_keystone_manage_bootstrap_before_its_workload() {
    let mut c = keystone_alone();
    c.spec.identity = Some(
        serde_json::from_value(json!({
            "serviceType": "identity", "serviceName": "keystone",
            "endpoints": {"public": "http://keystone.openstack.svc:5000/v3", "internal": "http://keystone.openstack.svc:5000/v3", "admin": "http://keystone.openstack.svc:5000/v3"},
        }))
        .unwrap(),
    );
    let r = render_default(&with_bootstrap(topology(vec![c])));
    let bootstrap = find(&r, "Job", "keystone-ks-bootstrap-");
    assert_eq!(bootstrap.stage, Stage::PreJob);
    assert!(bootstrap.step > find(&r, "Job", "keystone-db-sync-").step);
    let config = find(&r, "ConfigMap", "keystone-config");
    let json: Value =
        serde_json::from_str(config.body["data"]["ks-bootstrap.config.json"].as_str().unwrap()).unwrap();
    assert_eq!(json["command"], "keystone-manage bootstrap");
    let env = bootstrap
        .body
        .pointer("/spec/template/spec/containers/0/env")
        .unwrap();
    let password = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "OS_BOOTSTRAP_PASSWORD")
        .unwrap();
    assert_eq!(password["valueFrom"]["secretKeyRef"]["name"], "keystone-admin");
}

#[test]
fn pod_details_reach_the_workload_but_not_its_jobs() {
    let mut c = keystone_alone();
    let mut t = topology(vec![]);
    t.spec.policy.allow_privileged = true;
    c.spec.privileged = true;
    c.spec.host_pid = true;
    c.spec.termination_grace_period_seconds = Some(120);
    c.spec.anti_affinity = Some(crate::topology::AntiAffinity::Preferred);
    c.spec.volumes.push(
        serde_json::from_value(json!({"name": "netns", "mountPath": "/run/netns", "hostPath": {"path": "/run/netns"}, "mountPropagation": "Bidirectional"}))
            .unwrap(),
    );
    c.spec.init_containers = vec![
        serde_json::from_value(json!({"name": "init", "command": ["true"], "volumeMounts": ["netns"]}))
            .unwrap(),
    ];
    c.spec.sidecars =
        vec![serde_json::from_value(json!({"name": "logs", "command": ["tail", "-F", "/x"]})).unwrap()];
    c.spec.topology_spread =
        vec![serde_json::from_value(json!({"topologyKey": "topology.kubernetes.io/zone"})).unwrap()];
    t.components.insert(c.name.clone(), c);
    let r = render_default(&t);
    let pod = find(&r, "Deployment", "keystone")
        .body
        .pointer("/spec/template/spec")
        .unwrap()
        .clone();
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["terminationGracePeriodSeconds"], 120);
    assert_eq!(
        pod.pointer("/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/podAffinityTerm/topologyKey"),
        Some(&json!("kubernetes.io/hostname"))
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["whenUnsatisfiable"],
        "ScheduleAnyway"
    );
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    let netns = mounts.iter().find(|m| m["name"] == "netns").unwrap();
    assert_eq!(netns["mountPropagation"], "Bidirectional");
    let init = pod["initContainers"].as_array().unwrap();
    assert_eq!(init[0]["name"], "init");
    assert!(
        init[0]["volumeMounts"][0].get("mountPropagation").is_none(),
        "unprivileged: no propagation"
    );
    assert_eq!(init[1]["name"], "logs");
    assert_eq!(init[1]["restartPolicy"], "Always");
    // Three replicas: a PodDisruptionBudget over the workload's pods.
    let pdb = find(&r, "PodDisruptionBudget", "keystone");
    assert_eq!(pdb.body["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb.body["spec"]["selector"]["matchLabels"]["keelson.dev/role"],
        "workload"
    );
    // Jobs get none of it.
    let job = find(&r, "Job", "keystone-db-sync-")
        .body
        .pointer("/spec/template/spec")
        .unwrap()
        .clone();
    for field in [
        "hostPID",
        "affinity",
        "initContainers",
        "terminationGracePeriodSeconds",
    ] {
        assert!(job.get(field).is_none(), "{field}");
    }
    let job_mounts = job["containers"][0]["volumeMounts"].as_array().unwrap();
    assert!(job_mounts.iter().all(|m| m.get("mountPropagation").is_none()));
}

#[test]
fn a_component_without_workload_renders_its_jobs_and_secrets_only() {
    let mut c = component("nova-cell-setup");
    c.spec.workload = WorkloadKind::None;
    c.spec.jobs = vec![job("discover-hosts", JobPhase::Post)];
    c.job_images = vec![c.image.clone()];
    c.spec.secrets = vec![secret_spec("cells", json!({"token": {"generate": "fernet"}}))];
    let r = render_default(&topology(vec![c]));
    let kinds: Vec<&str> = r.objects.iter().map(|o| o.reference.kind.as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "Secret", "Job"]);
    let config = find(&r, "ConfigMap", "nova-cell-setup-config");
    assert!(
        config.body["data"].get("config.json").is_none(),
        "no workload, no workload config"
    );
    assert!(config.body["data"]["discover-hosts.config.json"].is_string());
}
