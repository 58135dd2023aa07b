//! The simulated cluster's control plane as a user meets it: Nodes, Pods placed by the scheduler or left
//! Pending with its reasons, the kubelet's container states and Events, claims bound through their
//! StorageClass, and deletion through the garbage collector — through kube's client and through real
//! kubectl (v1.37 and the v1.35 from the npm layer). The kubectl tests fail (not skip) without kubectl when
//! CI=true; scripts/install-test-tools.sh installs both into ./.tools/bin.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, PersistentVolumeClaim, Pod};
use keelson::sim::{Cluster, SimOptions};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde_json::{Value, json};
use tokio::process::Command;

const NS: &str = "shop";

fn options() -> SimOptions {
    SimOptions {
        ready_after: Duration::from_millis(200),
        job_duration: Duration::from_millis(200),
        // node-1 role=db, node-2 role=app, node-3 role=app but tainted for batch work only.
        node_labels: vec!["role=app".parse().unwrap(), "node-1:role=db".parse().unwrap()],
        node_taints: vec!["node-3:dedicated=batch:NoSchedule".parse().unwrap()],
        unpullable_images: vec!["*:broken".into()],
        crash_commands: vec!["*crash*".into()],
        ..SimOptions::default()
    }
}

async fn cluster() -> Cluster {
    let c = Cluster::start(options()).await.expect("simulator starts");
    let nss: Api<Namespace> = Api::all(c.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.expect("namespace");
    c
}

async fn apply(c: &Cluster, objects: &[Value]) {
    let client = c.client();
    for o in objects {
        let gvk = kube::api::GroupVersionKind::try_from(&kube::api::TypeMeta {
            api_version: o["apiVersion"].as_str().unwrap().into(),
            kind: o["kind"].as_str().unwrap().into(),
        })
        .unwrap();
        let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await.expect("kind");
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), NS, &ar);
        api.patch(
            o["metadata"]["name"].as_str().unwrap(),
            &PatchParams::apply("test").force(),
            &Patch::Apply(o),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {}: {e}", o["metadata"]["name"]));
    }
}

fn deployment(name: &str, replicas: i64, pod: Value) -> Value {
    let mut spec = json!({"containers": [{"name": "app", "image": "shop/app:1"}]});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), pod.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}})
}

/// Polls until `check` holds for the Pods of `app` (by label); returns them.
async fn pods_until(c: &Cluster, app: &str, what: &str, check: impl Fn(&[Pod]) -> bool) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(c.client(), NS);
    let started = Instant::now();
    loop {
        let list = pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .expect("list pods")
            .items;
        if check(&list) {
            return list;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{app}: {what} not reached: {:#?}",
            list.iter().map(|p| &p.status).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn waiting_reason(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|l| l.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

async fn events_for(c: &Cluster, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(c.client(), NS);
    api.list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .expect("events")
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_scheduled_only_where_they_fit_and_wait_with_the_schedulers_reason() {
    let c = cluster().await;
    apply(
        &c,
        &[
            deployment("db", 1, json!({"nodeSelector": {"role": "db"}})),
            deployment("app", 3, json!({})),
            deployment("batch", 1, json!({"nodeSelector": {"role": "app"},
                "tolerations": [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-3"]}]}]}}}})),
            deployment("gpu", 1, json!({"nodeSelector": {"role": "gpu"}})),
            deployment("huge", 1, json!({"containers": [{"name": "app", "image": "shop/app:1",
                "resources": {"requests": {"cpu": "16", "memory": "1Gi"}}}]})),
        ],
    )
    .await;
    let db = pods_until(&c, "db", "running", |p| p.len() == 1 && ready(&p[0])).await;
    assert_eq!(node_of(&db[0]), "node-1", "role=db is only on node-1");
    let app = pods_until(&c, "app", "three ready", |p| p.len() == 3 && p.iter().all(ready)).await;
    let mut nodes: Vec<String> = app.iter().map(node_of).collect();
    nodes.sort();
    assert_eq!(
        nodes,
        ["node-1", "node-1", "node-2"],
        "node-3 is tainted; replicas spread over the others"
    );
    let batch = pods_until(&c, "batch", "running", |p| p.len() == 1 && ready(&p[0])).await;
    assert_eq!(
        node_of(&batch[0]),
        "node-3",
        "the toleration and the affinity lead to node-3"
    );

    let gpu = pods_until(&c, "gpu", "pending", |p| {
        p.len() == 1 && p[0].status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")
    })
    .await;
    let name = gpu[0].metadata.name.clone().unwrap();
    let pending = async || events_for(&c, &name).await;
    let started = Instant::now();
    let message = loop {
        if let Some((_, m)) = pending().await.into_iter().find(|(r, _)| r == "FailedScheduling") {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no FailedScheduling event"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        message,
        "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    let scheduled = gpu[0]
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|l| l.iter().find(|c| c.type_ == "PodScheduled").cloned())
        .expect("PodScheduled condition");
    assert_eq!(
        (scheduled.status.as_str(), scheduled.reason.as_deref()),
        ("False", Some("Unschedulable"))
    );
    assert!(node_of(&gpu[0]).is_empty());

    let huge = pods_until(&c, "huge", "failed scheduling", |p| p.len() == 1).await;
    let name = huge[0].metadata.name.clone().unwrap();
    let started = Instant::now();
    loop {
        let events = events_for(&c, &name).await;
        if let Some((_, m)) = events.iter().find(|(r, _)| r == "FailedScheduling") {
            assert!(m.contains("2 Insufficient cpu"), "{m}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no FailedScheduling event"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Labelling a node lets the Pending Pod go there.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.client());
    nodes
        .patch(
            "node-2",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"role": "gpu"}}})),
        )
        .await
        .expect("label node-2");
    let gpu = pods_until(&c, "gpu", "running once a node matches", |p| {
        p.len() == 1 && ready(&p[0])
    })
    .await;
    assert_eq!(node_of(&gpu[0]), "node-2");
    // Deployment status is earned from the Pods.
    let deps: Api<Deployment> = Api::namespaced(c.client(), NS);
    let d = deps.get("app").await.unwrap();
    let status = d.status.unwrap();
    assert_eq!(
        (status.ready_replicas, status.available_replicas),
        (Some(3), Some(3))
    );
    let huge = deps.get("huge").await.unwrap().status.unwrap();
    assert_eq!(huge.available_replicas, None);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_reports_missing_config_unpullable_images_and_crashes_as_a_kubelet_does() {
    let c = cluster().await;
    apply(
        &c,
        &[
            deployment("nosecret", 1, json!({"containers": [{"name": "app", "image": "shop/app:1",
                "env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "keystone", "key": "database-connection"}}}]}]})),
            deployment("broken", 1, json!({"containers": [{"name": "app", "image": "quay.io/shop/app:broken"}]})),
            deployment("crash", 1, json!({"containers": [{"name": "app", "image": "shop/app:1", "command": ["sh", "-c", "crash-loop"]}]})),
        ],
    )
    .await;
    let p = pods_until(&c, "nosecret", "CreateContainerConfigError", |p| {
        p.len() == 1 && waiting_reason(&p[0]).as_deref() == Some("CreateContainerConfigError")
    })
    .await;
    let name = p[0].metadata.name.clone().unwrap();
    assert!(
        events_for(&c, &name)
            .await
            .contains(&("Failed".into(), "Error: secret \"keystone\" not found".into()))
    );
    // The Secret appears without the key, then with it: the container starts.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(c.client(), NS);
    let secret = |data: Value| -> k8s_openapi::api::core::v1::Secret {
        serde_json::from_value(json!({"metadata": {"name": "keystone"}, "stringData": data})).unwrap()
    };
    secrets
        .create(&PostParams::default(), &secret(json!({"other": "x"})))
        .await
        .unwrap();
    pods_until(&c, "nosecret", "missing key", |p| {
        p.len() == 1
            && p[0]
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|l| {
                    l[0].state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.message.clone())
                        == Some("couldn't find key database-connection in Secret shop/keystone".into())
                })
    })
    .await;
    secrets
        .replace(
            "keystone",
            &PostParams::default(),
            &secret(json!({"database-connection": "mysql://"})),
        )
        .await
        .unwrap();
    pods_until(&c, "nosecret", "ready once the key exists", |p| {
        p.len() == 1 && ready(&p[0])
    })
    .await;

    let p = pods_until(&c, "broken", "ImagePullBackOff", |p| {
        p.len() == 1 && waiting_reason(&p[0]).as_deref() == Some("ImagePullBackOff")
    })
    .await;
    let reasons: Vec<(String, String)> = events_for(&c, p[0].metadata.name.as_deref().unwrap()).await;
    assert!(reasons.iter().any(|(r, m)| r == "Failed"
        && m.starts_with("Failed to pull image \"quay.io/shop/app:broken\": rpc error: code = NotFound")));
    assert!(reasons.contains(&("Failed".into(), "Error: ErrImagePull".into())));
    assert!(reasons.contains(&(
        "BackOff".into(),
        "Back-off pulling image \"quay.io/shop/app:broken\"".into()
    )));

    let p = pods_until(&c, "crash", "restarted twice", |p| {
        p.len() == 1
            && p[0]
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|l| l[0].restart_count >= 2)
    })
    .await;
    assert!(!ready(&p[0]));
    let events = events_for(&c, p[0].metadata.name.as_deref().unwrap()).await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "BackOff" && m.starts_with("Back-off restarting failed container app"))
    );
    let deps: Api<Deployment> = Api::namespaced(c.client(), NS);
    for name in ["broken", "crash"] {
        let s = deps.get(name).await.unwrap().status.unwrap();
        assert_eq!(s.available_replicas, None, "{name} is never available");
    }
    c.shutdown().await;
}

fn claim(name: &str, class: Option<&str>, mode: &str) -> Value {
    let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NS},
        "spec": {"accessModes": [mode], "resources": {"requests": {"storage": "1Gi"}}}});
    if let Some(class) = class {
        c["spec"]["storageClassName"] = json!(class);
    }
    c
}

async fn phase_of(c: &Cluster, name: &str) -> (String, Option<String>, Option<String>) {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(c.client(), NS);
    let pvc = api.get(name).await.expect("claim");
    (
        pvc.status.and_then(|s| s.phase).unwrap_or_default(),
        pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone()),
        pvc.spec.and_then(|s| s.volume_name),
    )
}

async fn claim_until(c: &Cluster, name: &str, phase: &str) {
    let started = Instant::now();
    while phase_of(c, name).await.0 != phase {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} never {phase}: {:?}",
            phase_of(c, name).await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_bind_as_their_class_says() {
    let c = cluster().await;
    apply(
        &c,
        &[
            claim("later", None, "ReadWriteOnce"),
            claim("now", Some("nfs"), "ReadWriteMany"),
            claim("shared", None, "ReadWriteMany"),
        ],
    )
    .await;
    // Immediate: bound at once, whatever uses it.
    claim_until(&c, "now", "Bound").await;
    // The default class is WaitForFirstConsumer: no consumer, no binding.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (phase, class, volume) = phase_of(&c, "later").await;
    assert_eq!(
        (phase.as_str(), class.as_deref(), volume),
        ("Pending", Some("standard"), None)
    );
    assert!(events_for(&c, "later").await.contains(&(
        "WaitForFirstConsumer".into(),
        "waiting for first consumer to be created before binding".into()
    )));
    // A Pod that uses it is scheduled: the claim binds on that Pod's node, and the volume stays there.
    apply(
        &c,
        &[deployment(
            "user",
            1,
            json!({"nodeSelector": {"role": "db"},
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "later"}}]}),
        )],
    )
    .await;
    let pod = pods_until(&c, "user", "running", |p| p.len() == 1 && ready(&p[0])).await;
    assert_eq!(node_of(&pod[0]), "node-1");
    let (phase, _, volume) = phase_of(&c, "later").await;
    assert_eq!(phase, "Bound");
    let pvs: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(c.client());
    let pv = pvs.get(&volume.unwrap()).await.expect("volume");
    let affinity = serde_json::to_value(pv.spec.unwrap().node_affinity).unwrap();
    assert_eq!(
        affinity["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
        json!(["node-1"])
    );
    // ReadWriteMany on the node-local default class: the provisioner refuses, the consumer waits.
    apply(
        &c,
        &[deployment(
            "sharer",
            1,
            json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}]}),
        )],
    )
    .await;
    let started = Instant::now();
    loop {
        let events = events_for(&c, "shared").await;
        if let Some((_, m)) = events.iter().find(|(r, _)| r == "ProvisioningFailed") {
            assert_eq!(
                m,
                "failed to provision volume with StorageClass \"standard\": NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no ProvisioningFailed: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(phase_of(&c, "shared").await.0, "Pending");
    let sharer = pods_until(&c, "sharer", "pending", |p| p.len() == 1).await;
    assert!(!ready(&sharer[0]) && node_of(&sharer[0]).is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_follows_the_propagation_policy_grace_periods_and_finalizers() {
    let c = cluster().await;
    apply(
        &c,
        &[
            deployment("bg", 2, json!({})),
            deployment("orphan", 1, json!({})),
            deployment("fg", 1, json!({})),
        ],
    )
    .await;
    for app in ["bg", "orphan", "fg"] {
        pods_until(&c, app, "ready", |p| !p.is_empty() && p.iter().all(ready)).await;
    }
    let deps: Api<Deployment> = Api::namespaced(c.client(), NS);
    let rss: Api<ReplicaSet> = Api::namespaced(c.client(), NS);
    let pods: Api<Pod> = Api::namespaced(c.client(), NS);

    // Background: the Deployment goes at once; the collector takes its ReplicaSet, then the Pods stop
    // gracefully (Terminating first) and go.
    deps.delete("bg", &DeleteParams::background()).await.unwrap();
    assert!(deps.get_opt("bg").await.unwrap().is_none());
    let terminating = pods_until(&c, "bg", "terminating or gone", |p| {
        p.iter().all(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    for p in &terminating {
        assert!(p.metadata.deletion_grace_period_seconds.is_some_and(|g| g > 0));
    }
    pods_until(&c, "bg", "gone", |p| p.is_empty()).await;
    assert!(
        rss.list(&ListParams::default().labels("app=bg"))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Orphan: the ReplicaSet and its Pods stay, without the reference to the Deployment.
    deps.delete(
        "orphan",
        &DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let started = Instant::now();
    while deps.get_opt("orphan").await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "orphaning never finished"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let kept = rss
        .list(&ListParams::default().labels("app=orphan"))
        .await
        .unwrap()
        .items;
    assert_eq!(kept.len(), 1);
    assert!(
        kept[0]
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(Vec::is_empty)
    );
    assert_eq!(
        pods_until(&c, "orphan", "still there", |p| p.len() == 1)
            .await
            .len(),
        1
    );

    // Foreground: the Deployment waits, with the foregroundDeletion finalizer, until its Pods are gone.
    deps.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let waiting = deps.get("fg").await.expect("still there while its dependents go");
    assert!(
        waiting
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    assert!(waiting.metadata.deletion_timestamp.is_some());
    let started = Instant::now();
    while deps.get_opt("fg").await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "foreground deletion never finished"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        pods.list(&ListParams::default().labels("app=fg"))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // batch/v1 Jobs deleted without a policy keep their Pods, as kube-apiserver does for compatibility.
    let jobs: Api<Job> = Api::namespaced(c.client(), NS);
    let job: Job = serde_json::from_value(json!({"metadata": {"name": "once"}, "spec": {"template": {
        "metadata": {"labels": {"app": "once"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "shop/app:1"}]}}}}))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    pods_until(&c, "once", "a Pod", |p| p.len() == 1).await;
    jobs.delete("once", &DeleteParams::default()).await.unwrap();
    let started = Instant::now();
    while jobs.get_opt("once").await.unwrap().is_some() {
        assert!(started.elapsed() < Duration::from_secs(10), "the Job never went");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let left = pods_until(&c, "once", "orphaned", |p| {
        p.len() == 1 && p[0].metadata.owner_references.as_ref().is_none_or(Vec::is_empty)
    })
    .await;
    assert_eq!(left.len(), 1);

    // Finalizers hold an object; a namespace goes Terminating, refuses new objects, empties and goes.
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), NS);
    let held: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}))
            .unwrap();
    cms.create(&PostParams::default(), &held).await.unwrap();
    let nss: Api<Namespace> = Api::all(c.client());
    nss.delete(NS, &DeleteParams::default()).await.unwrap();
    let ns = nss.get(NS).await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = cms.get("held").await.expect("held by its finalizer");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(
        nss.get_opt(NS).await.unwrap().is_some(),
        "the namespace waits for it"
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let started = Instant::now();
    while nss.get_opt(NS).await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the namespace never went"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulsets_get_ordinals_with_claims_and_daemonsets_a_pod_per_matching_node() {
    let c = cluster().await;
    apply(
        &c,
        &[
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": NS},
                "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "db:1"}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": NS},
                "spec": {"selector": {"matchLabels": {"app": "agent"}},
                    "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"nodeSelector": {"role": "app"},
                        "containers": [{"name": "c", "image": "agent:1"}]}}}}),
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "nowhere", "namespace": NS},
                "spec": {"selector": {"matchLabels": {"app": "nowhere"}},
                    "template": {"metadata": {"labels": {"app": "nowhere"}}, "spec": {"nodeSelector": {"role": "gpu"},
                        "containers": [{"name": "c", "image": "agent:1"}]}}}}),
        ],
    )
    .await;
    let db = pods_until(&c, "db", "both ordinals ready", |p| {
        p.len() == 2 && p.iter().all(ready)
    })
    .await;
    let mut names: Vec<String> = db.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["db-0", "db-1"]);
    for ordinal in 0..2 {
        assert_eq!(phase_of(&c, &format!("data-db-{ordinal}")).await.0, "Bound");
    }
    // role=app is on node-2 only (node-1 has role=db, node-3 is tainted).
    let agents = pods_until(&c, "agent", "one per matching node", |p| {
        p.len() == 1 && ready(&p[0])
    })
    .await;
    assert_eq!(node_of(&agents[0]), "node-2");
    let dss: Api<k8s_openapi::api::apps::v1::DaemonSet> = Api::namespaced(c.client(), NS);
    let status = dss.get("nowhere").await.unwrap().status.unwrap();
    assert_eq!(status.desired_number_scheduled, 0, "matches no node");
    c.shutdown().await;
}

// --- real kubectl -------------------------------------------------------------------------------------

fn kubectl_bins() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin");
    let mut found = Vec::new();
    for name in ["kubectl", "kubectl-1.35"] {
        let p = dir.join(name);
        if p.is_file() {
            found.push(p);
        } else if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{name} not found at {} (run scripts/install-test-tools.sh)",
                p.display()
            );
        } else {
            eprintln!("skipping {name}: not found at {}", p.display());
        }
    }
    found
}

async fn kubectl(
    bin: &PathBuf,
    kubeconfig: &std::path::Path,
    home: &std::path::Path,
    args: &[&str],
) -> Output {
    let mut c = Command::new(bin);
    c.arg("--kubeconfig").arg(kubeconfig).args(args);
    c.env("HOME", home).env_remove("KUBECONFIG");
    tokio::time::timeout(Duration::from_secs(60), c.output())
        .await
        .expect("kubectl timed out")
        .expect("run kubectl")
}

async fn ok(bin: &PathBuf, kubeconfig: &std::path::Path, home: &std::path::Path, args: &[&str]) -> String {
    let out = kubectl(bin, kubeconfig, home, args).await;
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}\n{}",
        bin.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The row of `name` in a `kubectl get` table, split on whitespace.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|n| n == name || n.ends_with(&format!("/{name}")))
        })
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
        .split_whitespace()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_describes_and_reads_logs_of_simulated_pods() {
    let bins = kubectl_bins();
    if bins.is_empty() {
        return;
    }
    let c = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    c.write_kubeconfig(&kubeconfig).unwrap();
    apply(
        &c,
        &[
            deployment("web", 2, json!({})),
            deployment("gpu", 1, json!({"nodeSelector": {"role": "gpu"}})),
            deployment("nosecret", 1, json!({"containers": [{"name": "app", "image": "shop/app:1",
                "env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "keystone", "key": "password"}}}]}]})),
            deployment("broken", 1, json!({"containers": [{"name": "app", "image": "shop/app:broken"}]})),
            deployment("crash", 1, json!({"containers": [{"name": "app", "image": "shop/app:1", "command": ["crash"]}]})),
        ],
    )
    .await;
    let web = pods_until(&c, "web", "ready", |p| p.len() == 2 && p.iter().all(ready)).await;
    pods_until(&c, "nosecret", "config error", |p| {
        p.len() == 1 && waiting_reason(&p[0]).as_deref() == Some("CreateContainerConfigError")
    })
    .await;
    pods_until(&c, "broken", "back-off", |p| {
        p.len() == 1 && waiting_reason(&p[0]).as_deref() == Some("ImagePullBackOff")
    })
    .await;
    pods_until(&c, "crash", "restarted", |p| {
        p.len() == 1
            && p[0]
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|l| l[0].restart_count >= 1)
    })
    .await;
    let web_pod = web[0].metadata.name.clone().unwrap();
    let (k, h) = (&kubeconfig, dir.path());
    for bin in &bins {
        let nodes = ok(bin, k, h, &["get", "nodes"]).await;
        assert_eq!(row(&nodes, "node-1")[1..2], ["Ready"], "{nodes}");
        assert!(row(&nodes, "node-3").contains(&"v1.37.0"), "{nodes}");

        let table = ok(bin, k, h, &["get", "pods,rs", "-n", NS]).await;
        assert_eq!(row(&table, &web_pod)[1..3], ["1/1", "Running"], "{table}");
        for (app, status) in [
            ("gpu", "Pending"),
            ("nosecret", "CreateContainerConfigError"),
            ("broken", "ImagePullBackOff"),
        ] {
            let line = table
                .lines()
                .find(|l| l.starts_with(&format!("pod/{app}-")))
                .unwrap_or_else(|| panic!("no {app} pod in\n{table}"));
            assert!(line.contains(status), "{app}: {line}");
        }
        let crash = table.lines().find(|l| l.starts_with("pod/crash-")).unwrap();
        assert!(
            crash.contains("CrashLoopBackOff") || crash.contains("Running"),
            "{crash}"
        );
        let rs_line = table
            .lines()
            .find(|l| l.starts_with("replicaset.apps/web-"))
            .unwrap_or_else(|| panic!("no web ReplicaSet in\n{table}"));
        assert_eq!(
            rs_line.split_whitespace().collect::<Vec<_>>()[1..4],
            ["2", "2", "2"],
            "{rs_line}"
        );

        let events = ok(
            bin,
            k,
            h,
            &[
                "get",
                "events",
                "-n",
                NS,
                "--field-selector",
                "reason=FailedScheduling",
            ],
        )
        .await;
        assert!(
            events.contains("didn't match Pod's node affinity/selector"),
            "{events}"
        );

        let described = ok(bin, k, h, &["describe", "pod", "-n", NS, "-l", "app=nosecret"]).await;
        assert!(described.contains("CreateContainerConfigError"), "{described}");
        assert!(described.contains("secret \"keystone\" not found"), "{described}");
        let described = ok(bin, k, h, &["describe", "node", "node-1"]).await;
        assert!(described.contains("Non-terminated Pods:"), "{described}");
        assert!(
            described.contains("kubelet is posting ready status"),
            "{described}"
        );
        let described = ok(bin, k, h, &["describe", "deployment", "web", "-n", NS]).await;
        assert!(described.contains("NewReplicaSet:"), "{described}");
        assert!(described.contains("ScalingReplicaSet"), "{described}");

        let log = ok(bin, k, h, &["logs", "-n", NS, &web_pod]).await;
        assert!(log.contains("runs no processes"), "{log}");
        let log = ok(bin, k, h, &["logs", "-n", NS, "deploy/web"]).await;
        assert!(log.contains("container \"app\""), "{log}");
        let waiting = kubectl(bin, k, h, &["logs", "-n", NS, "deploy/broken"]).await;
        assert!(!waiting.status.success());
        assert!(
            String::from_utf8_lossy(&waiting.stderr)
                .contains("is waiting to start: trying and failing to pull image"),
            "{}",
            String::from_utf8_lossy(&waiting.stderr)
        );
        let previous = ok(bin, k, h, &["logs", "-n", NS, "deploy/crash", "--previous"]).await;
        assert!(previous.contains("exited with code 1"), "{previous}");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_shapes_the_controllers_would_walk_are_refused_and_the_control_plane_keeps_working() {
    let c = cluster().await;
    let client = c.client();
    let deps: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        NS,
        &kube::discovery::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "apps",
            "v1",
            "Deployment",
        )),
    );
    for (what, template) in [
        (
            "a container that is a string",
            json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": ["nginx"]}}),
        ),
        (
            "labels that are a string",
            json!({"metadata": {"labels": "app=x"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
        ),
        (
            "a selector that does not select the template",
            json!({"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
        ),
    ] {
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}});
        let err = deps
            .patch("bad", &PatchParams::apply("test"), &Patch::Apply(&body))
            .await
            .expect_err(what);
        match err {
            kube::Error::Api(s) => assert_eq!(s.code, 422, "{what}: {}", s.message),
            other => panic!("{what}: {other}"),
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let err = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}],
                "serviceAccountName": "missing"}}),
            )
            .unwrap(),
        )
        .await
        .expect_err("no such ServiceAccount");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message.contains("serviceaccount \"missing\" not found"),
                "{}",
                s.message
            );
        }
        other => panic!("{other}"),
    }
    apply(&c, &[deployment("fine", 1, json!({}))]).await;
    pods_until(&c, "fine", "ready", |p| p.len() == 1 && ready(&p[0])).await;
    c.shutdown().await;
}
