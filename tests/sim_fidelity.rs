//! Fidelity of the simulated cluster's storage: the objects Keelson renders for the example topology, and a
//! set of hand-written manifests, are stored with the defaults kube-apiserver sets (the table in
//! docs/simulator.md); unknown fields are dropped with a warning or refused under `fieldValidation=Strict`;
//! explicit nulls store nothing; size limits answer with kube-apiserver's messages; and Keelson's second
//! pass over the defaulted objects writes nothing.

use std::time::Duration;

mod support;
use support::{copy_tree, example_repo};

use keelson::cluster::{Kube, Target, connect};
use keelson::reconciler::{self, PassSettings};
use keelson::sim::{Cluster, SimOptions};
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

async fn start() -> (Cluster, Kube) {
    let sim = Cluster::start(support::example_nodes(SimOptions {
        ready_after: Duration::from_millis(150),
        job_duration: Duration::from_millis(150),
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
    (sim, kube)
}

/// A request through kube's client, answered with its status, `Warning` headers and body.
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Vec<String>, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body)
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("an answer");
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (
        status,
        warnings,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn apply(client: &kube::Client, path: &str, obj: &Value) -> Value {
    let (code, warnings, body) = send(
        client,
        "PATCH",
        &format!("{path}?fieldManager=fidelity&force=true"),
        "application/apply-patch+yaml",
        serde_json::to_vec(obj).unwrap(),
    )
    .await;
    assert!(code == 200 || code == 201, "{path}: {code} {body}");
    assert!(warnings.is_empty(), "{path}: {warnings:?}");
    body
}

/// The pod-template defaults of `SetDefaults_PodSpec` and `SetDefaults_Container`.
fn assert_pod_template_defaults(what: &str, spec: &Value) {
    assert!(spec["dnsPolicy"].is_string(), "{what}: dnsPolicy");
    assert_eq!(spec["schedulerName"], "default-scheduler", "{what}");
    assert!(spec["securityContext"].is_object(), "{what}: securityContext");
    // 30 when the topology leaves it out; some services (MariaDB) choose their own.
    assert!(
        spec["terminationGracePeriodSeconds"]
            .as_i64()
            .is_some_and(|s| s > 0),
        "{what}: terminationGracePeriodSeconds {}",
        spec["terminationGracePeriodSeconds"]
    );
    assert!(
        matches!(
            spec["restartPolicy"].as_str(),
            Some("Always" | "OnFailure" | "Never")
        ),
        "{what}: restartPolicy {}",
        spec["restartPolicy"]
    );
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or("");
            assert!(
                matches!(
                    c["imagePullPolicy"].as_str(),
                    Some("Always" | "IfNotPresent" | "Never")
                ),
                "{what}/{name}: imagePullPolicy"
            );
            assert_eq!(
                c["terminationMessagePath"], "/dev/termination-log",
                "{what}/{name}"
            );
            assert_eq!(c["terminationMessagePolicy"], "File", "{what}/{name}");
            for p in c["ports"].as_array().into_iter().flatten() {
                assert_eq!(p["protocol"], "TCP", "{what}/{name}: port protocol");
            }
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if c[probe].is_object() {
                    for f in [
                        "timeoutSeconds",
                        "periodSeconds",
                        "successThreshold",
                        "failureThreshold",
                    ] {
                        assert!(c[probe][f].is_i64(), "{what}/{name}: {probe}.{f}");
                    }
                }
            }
        }
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        for source in ["configMap", "secret"] {
            if v[source].is_object() {
                assert!(
                    v[source]["defaultMode"].is_i64(),
                    "{what}: volume {} defaultMode",
                    v["name"]
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_example_topology_is_stored_defaulted_without_unknown_fields_and_a_second_pass_writes_nothing()
 {
    let (sim, kube) = start().await;
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&example_repo(), dir.path());
    let settings = PassSettings {
        poll_interval: Duration::from_millis(50),
        ..PassSettings::default()
    };
    let pass = || async {
        let snapshot = Snapshot::from_dir(dir.path(), DEFAULT_MAX_FILE_SIZE).expect("snapshot");
        let prepared = reconciler::prepare(&kube, &snapshot, &settings)
            .await
            .expect("prepare");
        let outcome = reconciler::execute(&kube, &prepared, &settings, CancellationToken::new(), None)
            .await
            .expect("pass");
        (prepared, outcome)
    };
    let (_, outcome) = pass().await;
    assert!(outcome.rollout.converged(), "{:#?}", outcome.rollout.components);

    // Keelson sends only fields the schemas declare: no write drew an unknown-field warning.
    let log = sim.request_log();
    let warned: Vec<_> = log.iter().filter(|r| !r.warnings.is_empty()).collect();
    assert!(warned.is_empty(), "{warned:#?}");

    let client = sim.client();
    let list = |path: &'static str| {
        let client = client.clone();
        async move {
            let (code, _, body) = send(&client, "GET", path, "application/json", Vec::new()).await;
            assert_eq!(code, 200, "{path}");
            body["items"].as_array().cloned().unwrap_or_default()
        }
    };
    let mut templates = 0;
    for path in [
        "/apis/apps/v1/namespaces/openstack/deployments",
        "/apis/apps/v1/namespaces/openstack/statefulsets",
        "/apis/apps/v1/namespaces/openstack/daemonsets",
        "/apis/batch/v1/namespaces/openstack/jobs",
    ] {
        for obj in list(path).await {
            let what = format!("{path}/{}", obj["metadata"]["name"].as_str().unwrap_or(""));
            assert_pod_template_defaults(&what, &obj["spec"]["template"]["spec"]);
            assert!(
                obj["spec"]["revisionHistoryLimit"].is_i64() || path.contains("jobs"),
                "{what}"
            );
            if path.contains("jobs") {
                for f in ["backoffLimit", "completions", "parallelism"] {
                    assert!(obj["spec"][f].is_i64(), "{what}: {f}");
                }
                assert_eq!(obj["spec"]["completionMode"], "NonIndexed", "{what}");
                assert_eq!(obj["spec"]["suspend"], false, "{what}");
                let uid = obj["metadata"]["uid"].clone();
                assert_eq!(
                    obj["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], uid,
                    "{what}"
                );
            }
            templates += 1;
        }
    }
    assert!(templates >= 10, "only {templates} workloads checked");
    for svc in list("/api/v1/namespaces/openstack/services").await {
        let name = svc["metadata"]["name"].clone();
        assert_eq!(svc["spec"]["sessionAffinity"], "None", "{name}");
        assert!(svc["spec"]["type"].is_string(), "{name}");
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]), "{name}");
        let ip = svc["spec"]["clusterIP"].as_str().unwrap_or("");
        assert!(ip == "None" || ip.starts_with("10.96."), "{name}: {ip}");
    }

    sim.clear_request_log();
    let (prepared, outcome) = pass().await;
    assert!(outcome.rollout.converged());
    assert!(
        !prepared.plan.has_changes(),
        "{}",
        keelson::plan::to_text(&prepared.plan, false)
    );
    let writes: Vec<_> = sim.request_log().into_iter().filter(|r| r.is_write()).collect();
    assert!(writes.is_empty(), "second pass wrote: {writes:#?}");
    sim.shutdown().await;
}

/// A manifest applied at a path, and stored values by JSON pointer.
type Case = (&'static str, Value, Vec<(&'static str, Value)>);

#[tokio::test]
async fn hand_written_manifests_are_stored_with_the_defaults_table() {
    let (sim, _) = start().await;
    let c = sim.client();
    apply(
        &c,
        "/api/v1/namespaces/fid",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fid"}}),
    )
    .await;
    let template = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [
        {"name": "main", "image": "registry.example/app", "ports": [{"containerPort": 8080}],
         "livenessProbe": {"httpGet": {"path": "/", "port": 8080}}},
        {"name": "pinned", "image": "registry.example/app:2.1", "imagePullPolicy": "Always"}],
        "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "scratch"}]}});
    let job_template =
        json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "tool:1"}]}});
    let selector = json!({"matchLabels": {"app": "a"}});
    // (path, manifest, [(JSON pointer, stored value)])
    let cases: Vec<Case> = vec![
        (
            "/apis/apps/v1/namespaces/fid/deployments/d",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"selector": selector, "template": template}}),
            vec![
                ("/spec/replicas", json!(1)),
                ("/spec/revisionHistoryLimit", json!(10)),
                ("/spec/progressDeadlineSeconds", json!(600)),
                (
                    "/spec/strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                ),
                ("/spec/template/spec/restartPolicy", json!("Always")),
                ("/spec/template/spec/dnsPolicy", json!("ClusterFirst")),
                ("/spec/template/spec/schedulerName", json!("default-scheduler")),
                ("/spec/template/spec/securityContext", json!({})),
                ("/spec/template/spec/terminationGracePeriodSeconds", json!(30)),
                (
                    "/spec/template/spec/containers/0/imagePullPolicy",
                    json!("Always"),
                ),
                (
                    "/spec/template/spec/containers/1/imagePullPolicy",
                    json!("Always"),
                ),
                (
                    "/spec/template/spec/containers/0/terminationMessagePath",
                    json!("/dev/termination-log"),
                ),
                (
                    "/spec/template/spec/containers/0/terminationMessagePolicy",
                    json!("File"),
                ),
                ("/spec/template/spec/containers/0/ports/0/protocol", json!("TCP")),
                (
                    "/spec/template/spec/containers/0/livenessProbe",
                    json!({"httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"},
                  "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}),
                ),
                ("/spec/template/spec/volumes/0/configMap/defaultMode", json!(420)),
                ("/spec/template/spec/volumes/1/emptyDir", json!({})),
            ],
        ),
        (
            "/apis/apps/v1/namespaces/fid/statefulsets/s",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {"serviceName": "s", "selector": selector, "template": template,
             "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
            vec![
                ("/spec/replicas", json!(1)),
                ("/spec/podManagementPolicy", json!("OrderedReady")),
                (
                    "/spec/updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                ),
                ("/spec/revisionHistoryLimit", json!(10)),
                (
                    "/spec/persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                ),
                (
                    "/spec/volumeClaimTemplates/0/spec/volumeMode",
                    json!("Filesystem"),
                ),
            ],
        ),
        (
            "/apis/apps/v1/namespaces/fid/daemonsets/ds",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {"selector": selector, "template": template}}),
            vec![
                (
                    "/spec/updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                ),
                ("/spec/revisionHistoryLimit", json!(10)),
            ],
        ),
        (
            "/apis/batch/v1/namespaces/fid/jobs/j",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": job_template}}),
            vec![
                ("/spec/backoffLimit", json!(6)),
                ("/spec/completions", json!(1)),
                ("/spec/parallelism", json!(1)),
                ("/spec/completionMode", json!("NonIndexed")),
                ("/spec/suspend", json!(false)),
                ("/spec/podReplacementPolicy", json!("TerminatingOrFailed")),
                ("/spec/template/spec/restartPolicy", json!("Never")),
                ("/spec/template/metadata/labels/job-name", json!("j")),
            ],
        ),
        (
            "/api/v1/namespaces/fid/services/svc",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}}),
            vec![
                ("/spec/type", json!("ClusterIP")),
                ("/spec/sessionAffinity", json!("None")),
                ("/spec/ipFamilies", json!(["IPv4"])),
                ("/spec/ipFamilyPolicy", json!("SingleStack")),
                ("/spec/internalTrafficPolicy", json!("Cluster")),
                ("/spec/ports/0/protocol", json!("TCP")),
                ("/spec/ports/0/targetPort", json!(80)),
            ],
        ),
        (
            "/api/v1/namespaces/fid/secrets/sec",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "stringData": {"k": "v"}}),
            vec![("/type", json!("Opaque")), ("/data/k", json!("dg=="))],
        ),
        (
            "/api/v1/namespaces/fid/persistentvolumeclaims/pvc",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "pvc"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
            vec![("/spec/volumeMode", json!("Filesystem"))],
        ),
    ];
    for (path, manifest, wants) in cases {
        let stored = apply(&c, path, &manifest).await;
        for (pointer, want) in wants {
            assert_eq!(stored.pointer(pointer), Some(&want), "{path}{pointer}: {stored}");
        }
    }
    let (_, _, secret) = send(
        &c,
        "GET",
        "/api/v1/namespaces/fid/secrets/sec",
        "application/json",
        vec![],
    )
    .await;
    assert!(secret.get("stringData").is_none(), "stringData is write-only");
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_fields_warn_or_are_refused_nulls_store_nothing_and_sizes_are_limited() {
    let (sim, _) = start().await;
    let c = sim.client();
    let cm = |name: &str, extra: Value| {
        let mut v =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}});
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        serde_json::to_vec(&v).unwrap()
    };
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, warnings, _) = send(
        &c,
        "POST",
        path,
        "application/json",
        cm("warned", json!({"datum": {"x": "y"}})),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        vec!["299 - \"unknown field \\\"datum\\\"\"".to_string()]
    );
    let (_, _, stored) = send(&c, "GET", &format!("{path}/warned"), "application/json", vec![]).await;
    assert!(stored.get("datum").is_none());
    let (code, _, body) = send(
        &c,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        "application/json",
        cm(
            "strict",
            json!({"datum": {}, "metadata": {"name": "strict", "colour": "red"}}),
        ),
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    assert_eq!(
        body["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"metadata.colour\", unknown field \"datum\""
    );
    let (code, _, _) = send(&c, "GET", &format!("{path}/strict"), "application/json", vec![]).await;
    assert_eq!(code, 404, "a refused object is not stored");
    let (code, warnings, _) = send(
        &c,
        "POST",
        &format!("{path}?fieldValidation=Ignore"),
        "application/json",
        cm("quiet", json!({"datum": {}})),
    )
    .await;
    assert_eq!((code, warnings.len()), (201, 0));

    // An explicit null stores nothing.
    let (code, _, stored) = send(
        &c,
        "POST",
        path,
        "application/json",
        cm("nulls", json!({"binaryData": null, "immutable": null})),
    )
    .await;
    assert_eq!(code, 201);
    assert!(
        stored.get("binaryData").is_none() && stored.get("immutable").is_none(),
        "{stored}"
    );

    // 1 MiB of data, 3 MiB of body.
    let big = "x".repeat(1024 * 1024 + 1);
    let (code, _, body) = send(
        &c,
        "POST",
        path,
        "application/json",
        cm("big", json!({"data": {"a": big}})),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        "ConfigMap \"big\" is invalid: []: Too long: must have at most 1048576 bytes"
    );
    let secret =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "big"}, "stringData": {"a": big}});
    let (code, _, body) = send(
        &c,
        "POST",
        "/api/v1/namespaces/default/secrets",
        "application/json",
        serde_json::to_vec(&secret).unwrap(),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        "Secret \"big\" is invalid: data: Too long: must have at most 1048576 bytes"
    );
    let huge = "x".repeat(3 * 1024 * 1024 + 1);
    let (code, _, body) = send(
        &c,
        "POST",
        path,
        "application/json",
        cm("huge", json!({"data": {"a": huge}})),
    )
    .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (413, Some("RequestEntityTooLarge"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn empty_optional_strings_are_dropped_pointer_ones_kept_and_null_map_values_stored_empty() {
    let (sim, _) = start().await;
    let c = sim.client();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "generateName": "", "labels": {"nulled": null, "empty": ""}},
        "spec": {"serviceAccountName": "", "runtimeClassName": "", "nodeName": "", "hostname": "",
            "containers": [{"name": "c", "image": "i", "workingDir": "",
                "env": [{"name": "E", "value": ""}], "ports": [{"name": "", "containerPort": 80}]}]}});
    let (code, _, stored) = send(
        &c,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        serde_json::to_vec(&pod).unwrap(),
    )
    .await;
    assert_eq!(code, 201, "{stored}");
    assert!(stored["metadata"].get("generateName").is_none(), "{stored}");
    assert_eq!(stored["metadata"]["labels"], json!({"nulled": "", "empty": ""}));
    let spec = &stored["spec"];
    // Dropped, then set by the ServiceAccount admission plugin as if it had never been sent.
    assert_eq!(spec["serviceAccountName"], "default");
    // `*string`: kept.
    assert_eq!(spec["runtimeClassName"], "");
    assert!(spec.get("hostname").is_none(), "{spec}");
    let container = &spec["containers"][0];
    assert!(container.get("workingDir").is_none(), "{container}");
    assert_eq!(container["env"], json!([{"name": "E"}]));
    assert_eq!(
        container["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );

    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"clusterIP": "", "type": "", "ports": [{"port": 80, "name": ""}]}});
    let (code, _, stored) = send(
        &c,
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        serde_json::to_vec(&svc).unwrap(),
    )
    .await;
    assert_eq!(code, 201, "{stored}");
    assert_eq!(stored["spec"]["type"], "ClusterIP");
    assert!(
        stored["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96.")),
        "{stored}"
    );
    assert!(stored["spec"]["ports"][0].get("name").is_none());
    sim.shutdown().await;
}

/// Raw manifests with empty optional strings, as an operator may write them.
const EMPTIES: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: empties
  generateName: ""
  labels:
    empty-label: ""
data:
  empty: ""
---
apiVersion: v1
kind: Service
metadata:
  name: empties
spec:
  clusterIP: ""
  type: ""
  selector:
    app: empties
  ports:
  - name: ""
    port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: empties
spec:
  replicas: 1
  selector:
    matchLabels:
      app: empties
  template:
    metadata:
      labels:
        app: empties
    spec:
      serviceAccountName: ""
      nodeSelector:
        openstack.org/control-plane: enabled
      containers:
      - name: c
        image: quay.io/openstack.kolla/memcached:2025.1-ubuntu-noble
        workingDir: ""
        env:
        - name: EMPTY
          value: ""
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_with_empty_strings_the_server_drops_converge_and_a_second_pass_writes_nothing() {
    let (sim, kube) = start().await;
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&example_repo(), dir.path());
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(dir.path().join("manifests/empties.yaml"), EMPTIES).unwrap();
    let service = dir.path().join("services/memcached.yaml");
    let mut text = std::fs::read_to_string(&service).unwrap();
    text.push_str("  manifests:\n  - manifests/empties.yaml\n");
    std::fs::write(&service, text).unwrap();
    let settings = PassSettings {
        poll_interval: Duration::from_millis(50),
        ..PassSettings::default()
    };
    let pass = || async {
        let snapshot = Snapshot::from_dir(dir.path(), DEFAULT_MAX_FILE_SIZE).expect("snapshot");
        let prepared = reconciler::prepare(&kube, &snapshot, &settings)
            .await
            .expect("prepare");
        let outcome = reconciler::execute(&kube, &prepared, &settings, CancellationToken::new(), None)
            .await
            .expect("pass");
        (prepared, outcome)
    };
    let (_, outcome) = pass().await;
    assert!(outcome.rollout.converged(), "{:#?}", outcome.rollout.components);

    // What a real server stores: the empty strings are gone, the defaults took their place.
    let client = sim.client();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            let (code, _, body) = send(&client, "GET", path, "application/json", Vec::new()).await;
            assert_eq!(code, 200, "{path}");
            body
        }
    };
    let cm = get("/api/v1/namespaces/openstack/configmaps/empties").await;
    assert!(cm["metadata"].get("generateName").is_none(), "{cm}");
    assert_eq!(cm["metadata"]["labels"]["empty-label"], "");
    assert_eq!(cm["data"], json!({"empty": ""}));
    let svc = get("/api/v1/namespaces/openstack/services/empties").await;
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96.")),
        "{svc}"
    );
    assert!(svc["spec"]["ports"][0].get("name").is_none(), "{svc}");
    let deploy = get("/apis/apps/v1/namespaces/openstack/deployments/empties").await;
    let pod_spec = &deploy["spec"]["template"]["spec"];
    assert!(pod_spec.get("serviceAccountName").is_none(), "{pod_spec}");
    assert!(
        pod_spec["containers"][0].get("workingDir").is_none(),
        "{pod_spec}"
    );
    assert_eq!(pod_spec["containers"][0]["env"], json!([{"name": "EMPTY"}]));

    sim.clear_request_log();
    let (prepared, outcome) = pass().await;
    assert!(outcome.rollout.converged());
    assert!(
        !prepared.plan.has_changes(),
        "{}",
        keelson::plan::to_text(&prepared.plan, false)
    );
    let writes: Vec<_> = sim.request_log().into_iter().filter(|r| r.is_write()).collect();
    assert!(writes.is_empty(), "second pass wrote: {writes:#?}");
    sim.shutdown().await;
}
