//! The cluster door against the simulated API server over real HTTP: what Keelson sends (from the
//! simulator's request log) and what ends up stored.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keelson::cluster::{
    ApplyOptions, ChangeKind, ClusterError, ConnectOptions, DeleteOptions, Deleted, HealthStatus, KindRef,
    Kube, ObjectRef, RetryPolicy, Target, WatchFilter, connect, connect_with, health, owned_selector,
};
use keelson::sim::{Cluster, FaultConfig, SimOptions};
use serde_json::{Value, json};
use support::writes;

struct Env {
    sim: Cluster,
    kube: Kube,
    _dir: tempfile::TempDir,
}

/// A simulator and a handle connected through a kubeconfig file, as an operator would.
async fn env(opts: SimOptions) -> Env {
    let sim = Cluster::start(opts).await.expect("simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path).expect("kubeconfig written");
    let kube = connect(Target::Kubeconfig {
        path: Some(path),
        context: Some("keelson-sim".into()),
    })
    .await
    .expect("connects")
    .with_retry(RetryPolicy {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(2),
        max_attempts: 12,
    });
    Env { sim, kube, _dir: dir }
}

/// Workloads and Jobs ready 300ms after a change.
fn fast() -> SimOptions {
    support::sim_options(Duration::from_millis(300))
}

fn owned_labels(component: &str) -> Value {
    json!({
        "app.kubernetes.io/managed-by": "keelson",
        "keelson.dev/topology": "cloud",
        "keelson.dev/service": component,
    })
}

fn configmap(ns: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": ns, "labels": owned_labels("keystone")},
           "data": {"key": value}})
}

fn deployment(ns: &str, name: &str, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": ns, "labels": owned_labels(name)},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "main", "image": image}]}}}})
}

fn job(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": ns, "labels": owned_labels("keystone")},
           "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "quay.io/openstack.kolla/keystone:2025.1"}]}}}})
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn reference(obj: &Value) -> ObjectRef {
    keelson::cluster::object_ref(obj).expect("valid object")
}

#[tokio::test]
async fn apply_creates_configures_and_leaves_unchanged() {
    let e = env(fast()).await;
    e.kube
        .apply(&namespace("openstack"), &ApplyOptions::default())
        .await
        .expect("namespace");
    e.sim.clear_request_log();

    let guard = ApplyOptions {
        create_guard: true,
        ..ApplyOptions::default()
    };
    let cm = configmap("openstack", "keystone-config", "a");
    let first = e.kube.apply(&cm, &guard).await.expect("create");
    assert_eq!(first.change, ChangeKind::Created);
    assert_eq!(first.object["data"]["key"], "a");

    let again = e.kube.apply(&cm, &guard).await.expect("no-op");
    assert_eq!(again.change, ChangeKind::Unchanged);

    let changed = e
        .kube
        .apply(&configmap("openstack", "keystone-config", "b"), &guard)
        .await
        .expect("update");
    assert_eq!(changed.change, ChangeKind::Configured);

    let log = e.sim.request_log();
    let patches: Vec<_> = log.iter().filter(|r| r.verb == "patch").collect();
    assert_eq!(patches.len(), 3, "one server-side apply per call: {log:#?}");
    for p in &patches {
        assert_eq!(p.field_manager.as_deref(), Some("keelson"));
        assert_eq!(p.resource, "configmaps");
        assert_eq!(p.namespace.as_deref(), Some("openstack"));
        assert_eq!(p.name.as_deref(), Some("keystone-config"));
    }
    let stored = e.kube.get(&reference(&cm)).await.expect("get").expect("exists");
    assert_eq!(stored["data"]["key"], "b");

    // Dry run: the server sees the request, nothing is stored.
    e.sim.clear_request_log();
    let dry = ApplyOptions {
        dry_run: true,
        ..ApplyOptions::default()
    };
    let planned = e
        .kube
        .apply(&configmap("openstack", "keystone-config", "c"), &dry)
        .await
        .expect("dry run");
    assert_eq!(planned.object["data"]["key"], "c");
    assert!(writes(&e.sim.request_log()).is_empty());
    let stored = e.kube.get(&reference(&cm)).await.expect("get").expect("exists");
    assert_eq!(stored["data"]["key"], "b");
}

#[tokio::test]
async fn discovery_resolves_kinds_and_finds_new_crds() {
    let e = env(fast()).await;
    let (ar, _) = e
        .kube
        .resolve(&KindRef::new("apps/v1", "Deployment"))
        .await
        .expect("deployments");
    assert_eq!(ar.plural, "deployments");
    let (ar, _) = e
        .kube
        .resolve(&KindRef::new("v1", "ConfigMap"))
        .await
        .expect("configmaps");
    assert_eq!(ar.plural, "configmaps");
    // Cached: resolving kinds of known group-versions again sends nothing.
    let before = e.sim.stats().requests;
    for _ in 0..3 {
        e.kube
            .resolve(&KindRef::new("apps/v1", "StatefulSet"))
            .await
            .expect("statefulsets");
        e.kube
            .resolve(&KindRef::new("v1", "Service"))
            .await
            .expect("services");
    }
    assert_eq!(
        e.sim.stats().requests,
        before,
        "discovery is cached per group-version"
    );

    let widget = KindRef::new("example.com/v1", "Widget");
    match e.kube.resolve(&widget).await {
        Err(ClusterError::UnknownKind { kind, .. }) => assert_eq!(kind, "Widget"),
        other => panic!("expected UnknownKind, got {other:?}"),
    }
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    e.kube
        .apply(&crd, &ApplyOptions::default())
        .await
        .expect("crd applied");
    // The cached miss is refreshed: the new kind resolves without a new handle.
    let mut resolved = None;
    for _ in 0..50 {
        if let Ok((ar, _)) = e.kube.resolve(&widget).await {
            resolved = Some(ar);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        resolved.expect("Widget resolves after its CRD exists").plural,
        "widgets"
    );
    e.kube
        .apply(&namespace("openstack"), &ApplyOptions::default())
        .await
        .expect("namespace");
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget",
                   "metadata": {"name": "w", "namespace": "openstack", "labels": owned_labels("x")}, "spec": {"size": 1}});
    e.kube
        .apply(&w, &ApplyOptions::default())
        .await
        .expect("custom resource applied");
    let live = e.kube.get(&reference(&w)).await.expect("get").expect("exists");
    assert_eq!(health(&live).status, HealthStatus::Current);
}

#[tokio::test]
async fn list_owned_makes_one_list_per_kind_and_namespace() {
    let e = env(fast()).await;
    let opts = ApplyOptions::default();
    for ns in ["openstack", "infra"] {
        e.kube.apply(&namespace(ns), &opts).await.expect("namespace");
        e.kube.apply(&configmap(ns, "a", "1"), &opts).await.expect("cm a");
        e.kube.apply(&configmap(ns, "b", "1"), &opts).await.expect("cm b");
        e.kube
            .apply(&deployment(ns, "api", "img:1"), &opts)
            .await
            .expect("deployment");
    }
    // Someone else's object and another topology's object in the same namespace.
    let mut foreign = configmap("openstack", "foreign", "1");
    foreign["metadata"]["labels"] = json!({"app": "other"});
    e.kube
        .apply(
            &foreign,
            &ApplyOptions {
                field_manager: "helm".into(),
                ..opts.clone()
            },
        )
        .await
        .expect("foreign");
    let mut other = configmap("openstack", "other-topology", "1");
    other["metadata"]["labels"]["keelson.dev/topology"] = json!("elsewhere");
    e.kube.apply(&other, &opts).await.expect("other topology");
    e.sim.clear_request_log();

    let kinds = [
        KindRef::new("v1", "ConfigMap"),
        KindRef::new("apps/v1", "Deployment"),
    ];
    let namespaces = ["openstack".to_string(), "infra".to_string()];
    // A kind the server does not serve (e.g. its CRD was removed) has no objects: no error, no list.
    let asked = [
        kinds[0].clone(),
        kinds[1].clone(),
        KindRef::new("example.com/v1", "Widget"),
    ];
    let live = e
        .kube
        .list_owned(&asked, &namespaces, &owned_selector("cloud"))
        .await
        .expect("listed");
    let mut names: Vec<String> = live
        .iter()
        .map(|o| {
            format!(
                "{} {}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["namespace"].as_str().unwrap_or("?"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ConfigMap infra/a",
            "ConfigMap infra/b",
            "ConfigMap openstack/a",
            "ConfigMap openstack/b",
            "Deployment infra/api",
            "Deployment openstack/api",
        ]
    );
    assert!(live.iter().all(|o| o["apiVersion"].is_string()));
    let log = e.sim.request_log();
    let lists = log.iter().filter(|r| r.verb == "list").count();
    assert_eq!(lists, kinds.len() * namespaces.len(), "{log:#?}");
    assert_eq!(
        log.iter().filter(|r| r.verb == "get").count(),
        0,
        "never a GET per object"
    );
}

#[tokio::test]
async fn create_guard_refuses_to_take_over_foreign_objects() {
    let e = env(fast()).await;
    e.kube
        .apply(&namespace("openstack"), &ApplyOptions::default())
        .await
        .expect("namespace");
    let mut theirs = configmap("openstack", "keystone-config", "theirs");
    theirs["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "helm"});
    e.kube
        .apply(
            &theirs,
            &ApplyOptions {
                field_manager: "helm".into(),
                ..ApplyOptions::default()
            },
        )
        .await
        .expect("foreign object created");
    e.sim.clear_request_log();

    let ours = configmap("openstack", "keystone-config", "ours");
    let err = e
        .kube
        .apply(
            &ours,
            &ApplyOptions {
                create_guard: true,
                ..ApplyOptions::default()
            },
        )
        .await
        .expect_err("refused");
    assert!(matches!(err, ClusterError::Foreign { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "ConfigMap openstack/keystone-config: refusing to take over an object Keelson does not own: it exists and is managed by \"helm\""
    );
    let log = e.sim.request_log();
    assert!(writes(&log).is_empty(), "nothing written: {log:#?}");
    assert_eq!(log.iter().filter(|r| r.verb == "get").count(), 1);
    let stored = e.kube.get(&reference(&ours)).await.expect("get").expect("exists");
    assert_eq!(stored["data"]["key"], "theirs");
}

#[tokio::test]
async fn delete_then_already_gone() {
    let e = env(fast()).await;
    e.kube
        .apply(&namespace("openstack"), &ApplyOptions::default())
        .await
        .expect("namespace");
    let cm = configmap("openstack", "old", "1");
    e.kube
        .apply(&cm, &ApplyOptions::default())
        .await
        .expect("created");
    let r = reference(&cm);
    assert_eq!(
        e.kube
            .delete(&r, &DeleteOptions::default())
            .await
            .expect("deleted"),
        Deleted::Deleted
    );
    assert_eq!(e.kube.get(&r).await.expect("get"), None);
    assert_eq!(
        e.kube
            .delete(&r, &DeleteOptions::default())
            .await
            .expect("idempotent"),
        Deleted::AlreadyGone
    );
    let deletes: Vec<_> = e
        .sim
        .request_log()
        .into_iter()
        .filter(|r| r.verb == "delete")
        .collect();
    assert_eq!(deletes.len(), 2);
    assert_eq!(deletes[0].status, 200);
    assert_eq!(deletes[1].status, 404);
}

async fn wait_status(kube: &Kube, r: &ObjectRef, want: HealthStatus, within: Duration) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let live = kube.get(r).await.expect("get").expect("exists");
        let h = health(&live);
        if h.status == want {
            return (live, start.elapsed());
        }
        assert!(start.elapsed() < within, "{r}: still {h:?} after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn health_follows_simulated_workloads() {
    let e = env(SimOptions {
        ready_after: Duration::from_millis(500),
        job_duration: Duration::from_millis(300),
        unpullable_images: vec!["*:broken".into()],
        failing_jobs: vec!["*-fails".into()],
        ..SimOptions::default()
    })
    .await;
    let opts = ApplyOptions::default();
    e.kube
        .apply(&namespace("openstack"), &opts)
        .await
        .expect("namespace");

    let d = deployment(
        "openstack",
        "keystone-api",
        "quay.io/openstack.kolla/keystone:2025.1",
    );
    let applied = e.kube.apply(&d, &opts).await.expect("deployment");
    assert_eq!(
        health(&applied.object).status,
        HealthStatus::InProgress,
        "{}",
        applied.object
    );
    let (live, took) = wait_status(
        &e.kube,
        &reference(&d),
        HealthStatus::Current,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        took >= Duration::from_millis(200),
        "ready only after the simulated delay ({took:?})"
    );
    assert!(health(&live).reason.contains("2 of 2"));

    let mut broken = deployment("openstack", "glance-api", "quay.io/openstack.kolla/glance:broken");
    broken["spec"]["progressDeadlineSeconds"] = json!(1);
    e.kube.apply(&broken, &opts).await.expect("broken deployment");
    let (live, _) = wait_status(
        &e.kube,
        &reference(&broken),
        HealthStatus::Failed,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        health(&live).reason.contains("progress deadline exceeded"),
        "{:?}",
        health(&live)
    );

    let ok = job("openstack", "keystone-db-sync-1a2b");
    e.kube.apply(&ok, &opts).await.expect("job");
    wait_status(
        &e.kube,
        &reference(&ok),
        HealthStatus::Current,
        Duration::from_secs(10),
    )
    .await;
    let bad = job("openstack", "keystone-bootstrap-fails");
    e.kube.apply(&bad, &opts).await.expect("job");
    wait_status(
        &e.kube,
        &reference(&bad),
        HealthStatus::Failed,
        Duration::from_secs(10),
    )
    .await;
}

// The simulator refuses selector changes as kube-apiserver does.
#[tokio::test]
async fn immutable_field_rejection_names_the_field() {
    let e = env(fast()).await;
    e.kube
        .apply(&namespace("openstack"), &ApplyOptions::default())
        .await
        .expect("namespace");
    let d = deployment("openstack", "keystone-api", "img:1");
    e.kube.apply(&d, &ApplyOptions::default()).await.expect("created");
    let mut changed = d.clone();
    changed["spec"]["selector"]["matchLabels"] = json!({"app": "keystone-api", "tier": "api"});
    changed["spec"]["template"]["metadata"]["labels"] = json!({"app": "keystone-api", "tier": "api"});
    let err = e
        .kube
        .apply(&changed, &ApplyOptions::default())
        .await
        .expect_err("rejected");
    match &err {
        ClusterError::Immutable { field, .. } => assert_eq!(field, "spec.selector"),
        other => panic!("expected an immutable-field error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with("Deployment openstack/keystone-api: apply failed: field spec.selector is immutable"),
        "{text}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn transient_errors_are_retried_and_permanent_ones_are_not() {
    let e = env(fast()).await;
    e.kube
        .apply(&namespace("openstack"), &ApplyOptions::default())
        .await
        .expect("namespace");

    // Every other request fails with a 500: each call still succeeds.
    let mut faults = FaultConfig {
        error_status: 500,
        ..FaultConfig::default()
    };
    faults.error_rates.insert("*".into(), 0.5);
    e.sim.faults().set(faults).expect("faults");
    e.sim.clear_request_log();
    for i in 0..10 {
        let cm = configmap("openstack", &format!("cm-{i}"), "v");
        e.kube
            .apply(
                &cm,
                &ApplyOptions {
                    create_guard: true,
                    ..ApplyOptions::default()
                },
            )
            .await
            .expect("applied");
    }
    let log = e.sim.request_log();
    assert!(log.iter().any(|r| r.status == 500), "faults were injected");
    for i in 0..10 {
        let name = format!("cm-{i}");
        let ok = log
            .iter()
            .filter(|r| r.verb == "patch" && r.name.as_deref() == Some(&name) && r.status < 300);
        assert_eq!(ok.count(), 1, "{name}: exactly one successful apply");
    }

    // Throttled: the server's Retry-After (1s) is honoured before the retry.
    e.sim
        .faults()
        .set(FaultConfig {
            throttle_rate: 1.0,
            retry_after_secs: 1,
            ..FaultConfig::default()
        })
        .expect("faults");
    let control = e.sim.faults();
    let lift = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        control.clear();
    });
    e.sim.clear_request_log();
    let start = Instant::now();
    e.kube
        .apply(
            &configmap("openstack", "throttled", "v"),
            &ApplyOptions::default(),
        )
        .await
        .expect("applied");
    let took = start.elapsed();
    lift.await.expect("lifted");
    assert!(
        took >= Duration::from_millis(900),
        "waited for Retry-After, took {took:?}"
    );
    let log = e.sim.request_log();
    assert!(log.iter().any(|r| r.status == 429));

    // A 4xx is permanent: one request, an error naming the object.
    e.sim.clear_request_log();
    let missing_ns = configmap("no-such-namespace", "x", "v");
    let mut broken = missing_ns.clone();
    broken["metadata"]["name"] = json!("Not_A_Valid_Name");
    let err = e
        .kube
        .apply(&broken, &ApplyOptions::default())
        .await
        .expect_err("invalid name rejected");
    assert!(!err.is_transient(), "{err}");
    assert!(
        err.to_string()
            .starts_with("ConfigMap no-such-namespace/Not_A_Valid_Name: apply failed: "),
        "{err}"
    );
    assert_eq!(
        e.sim.request_log().iter().filter(|r| r.verb == "patch").count(),
        1
    );
}

#[tokio::test]
async fn inventory_round_trip() {
    let e = env(fast()).await;
    e.kube
        .apply(&namespace("openstack"), &ApplyOptions::default())
        .await
        .expect("namespace");
    assert_eq!(
        e.kube.read_inventory("openstack", "cloud").await.expect("read"),
        None
    );
    let content = r#"{"version":1,"objects":[]}"#;
    e.kube
        .write_inventory("openstack", "cloud", content, false)
        .await
        .expect("written");
    assert_eq!(
        e.kube
            .read_inventory("openstack", "cloud")
            .await
            .expect("read")
            .as_deref(),
        Some(content)
    );
    let patch = e
        .sim
        .request_log()
        .into_iter()
        .rfind(|r| r.verb == "patch")
        .expect("applied");
    assert_eq!(patch.name.as_deref(), Some("keelson-inventory-cloud"));
    assert_eq!(patch.field_manager.as_deref(), Some("keelson"));
    // The inventory is not an owned object: listing owned objects never returns it (so nothing prunes it).
    let live = e
        .kube
        .list_owned(
            &[KindRef::new("v1", "ConfigMap")],
            &["openstack".to_string()],
            &owned_selector("cloud"),
        )
        .await
        .expect("listed");
    assert!(live.is_empty(), "{live:?}");
}

#[tokio::test]
async fn the_request_timeout_bounds_each_request_but_not_a_watch() {
    let sim = Cluster::start(fast()).await.expect("simulator starts");
    let options = ConnectOptions {
        request_timeout: Some(Duration::from_millis(300)),
        ..ConnectOptions::default()
    };
    let target = || Target::InlineKubeconfig {
        kubeconfig: sim.kubeconfig(),
        context: None,
    };
    let once = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let bounded = connect_with(target(), &options)
        .await
        .expect("connects")
        .with_retry(once.clone());
    let unbounded = connect(target()).await.expect("connects").with_retry(once);
    let object = ObjectRef {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: "default".into(),
    };
    // Discovery first, while the server answers at once.
    bounded.get(&object).await.expect("a fast server answers");

    // A watch on a quiet namespace stays open far longer than the request timeout: no re-list (which
    // would count as a change) while nothing changes.
    let changes = Arc::new(AtomicUsize::new(0));
    let counter = changes.clone();
    let watcher = bounded.clone();
    let watch = tokio::spawn(async move {
        let filter = WatchFilter::Labels("keelson.dev/topology=cloud");
        let kind = KindRef::new("v1", "ConfigMap");
        let _ = watcher
            .watch_changes(&kind, Some("default"), filter, || {
                counter.fetch_add(1, Ordering::SeqCst);
            })
            .await;
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(changes.load(Ordering::SeqCst), 0, "nothing changed");
    let watches = sim.request_log().iter().filter(|r| r.verb == "watch").count();
    assert_eq!(
        watches, 1,
        "an idle watch outlives the request timeout instead of reconnecting"
    );
    bounded
        .apply(&configmap("default", "seen", "1"), &ApplyOptions::default())
        .await
        .expect("apply");
    let started = Instant::now();
    while changes.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(changes.load(Ordering::SeqCst), 1, "the change, once");
    watch.abort();

    // A server that takes 1.5s to answer: the bounded request gives up after its timeout, as a transient
    // error the retry policy would retry; the unbounded one waits.
    sim.faults()
        .set(FaultConfig {
            latency: Duration::from_millis(1500),
            ..FaultConfig::default()
        })
        .expect("faults");
    let started = Instant::now();
    let error = bounded.get(&object).await.expect_err("times out");
    let took = started.elapsed();
    assert!(error.is_transient(), "{error}");
    assert!(
        took < Duration::from_millis(1200),
        "gave up after {took:?}: {error}"
    );
    assert!(unbounded.get(&object).await.expect("answers late").is_some());
}
