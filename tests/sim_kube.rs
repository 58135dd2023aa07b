//! The simulated cluster driven by kube-rs, as Keelson drives a real cluster: typed and dynamic APIs,
//! discovery, server-side apply, watches, conflicts, workload status, faults and the request log.

use std::time::Duration;

use axum::http;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use keelson::sim::{Cluster, FaultConfig, SimOptions};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::core::{GroupVersionKind, Status};
use kube::discovery::{self, Discovery, Scope};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

async fn start() -> Cluster {
    Cluster::start(SimOptions {
        ready_after: Duration::from_millis(400),
        job_duration: Duration::from_millis(300),
        unpullable_images: vec!["*:broken".into()],
        failing_jobs: vec!["*-fails".into()],
        ..Default::default()
    })
    .await
    .expect("start simulator")
}

async fn namespace(c: &Cluster, name: &str) {
    let api: Api<Namespace> = Api::all(c.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

fn api_error(e: kube::Error) -> Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn deployment(name: &str, image: &str, replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "progressDeadlineSeconds": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image, "ports": [{"containerPort": 8080}]}]}}}
    })
}

#[tokio::test]
async fn typed_crud_selectors_and_errors() {
    let c = start().await;
    namespace(&c, "t1").await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "t1");
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"tier": tier}}, "data": {"k": name}}),
        )
        .unwrap();
        let created = cms.create(&PostParams::default(), &cm).await.unwrap();
        assert!(created.metadata.uid.is_some());
        assert!(created.metadata.creation_timestamp.is_some());
    }
    let got = cms.get("b").await.unwrap();
    assert_eq!(got.data.unwrap()["k"], "b");

    let web = cms.list(&ListParams::default().labels("tier=web")).await.unwrap();
    let names: Vec<_> = web
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "c"]);
    let set = cms
        .list(&ListParams::default().labels("tier in (db),tier notin (web)"))
        .await
        .unwrap();
    assert_eq!(set.items.len(), 1);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=c"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    // Paging with limit/continue visits every object once (the namespace's kube-root-ca.crt has no tier).
    let page1 = cms
        .list(&ListParams::default().labels("tier").limit(2))
        .await
        .unwrap();
    assert_eq!(page1.items.len(), 2);
    let token = page1.metadata.continue_.clone().expect("continue token");
    let page2 = cms
        .list(
            &ListParams::default()
                .labels("tier")
                .limit(2)
                .continue_token(&token),
        )
        .await
        .unwrap();
    assert_eq!(page2.items.len(), 1);
    assert_eq!(page2.items[0].metadata.name.as_deref(), Some("c"));

    // 404, 409 AlreadyExists, 409 Conflict on a stale resourceVersion, 422 on a bad name.
    let e = api_error(cms.get("missing").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    let dup: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap();
    let e = api_error(cms.create(&PostParams::default(), &dup).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    let mut stale = cms.get("a").await.unwrap();
    let mut fresh = stale.clone();
    fresh.data = Some([("k".to_string(), "new".to_string())].into());
    cms.replace("a", &PostParams::default(), &fresh).await.unwrap();
    stale.data = Some([("k".to_string(), "stale".to_string())].into());
    let e = api_error(
        cms.replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    let bad: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "Bad_Name"}})).unwrap();
    let e = api_error(cms.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));

    // Objects in a namespace that does not exist: 404 for the namespace.
    let nowhere: Api<ConfigMap> = Api::namespaced(c.client(), "nowhere");
    let e = api_error(nowhere.create(&PostParams::default(), &dup).await.unwrap_err());
    assert_eq!(e.code, 404);
    assert!(
        e.message.contains("namespaces \"nowhere\" not found"),
        "{}",
        e.message
    );

    cms.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(cms.get("a").await.unwrap_err()).code, 404);
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("tier=web"),
    )
    .await
    .unwrap();
    assert_eq!(
        cms.list(&ListParams::default().labels("tier"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    c.shutdown().await;
}

#[tokio::test]
async fn kubeconfig_client_finalizers_and_namespace_deletion() {
    let c = start().await;
    // A client built the usual way from the kubeconfig works as well as `Cluster::client`.
    let kc = c.kubeconfig();
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    namespace(&c, "t6").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "t6");
    let held: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}))
            .unwrap();
    cms.create(&PostParams::default(), &held).await.unwrap();

    // Delete with a finalizer: the object stays with a deletionTimestamp.
    let pending = cms.delete("held", &DeleteParams::default()).await.unwrap();
    assert!(
        pending
            .left()
            .is_some_and(|cm| cm.metadata.deletion_timestamp.is_some())
    );
    // Deleting its namespace leaves the namespace Terminating while the finalizer holds.
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.delete("t6", &DeleteParams::default()).await.unwrap();
    let ns = nss.get("t6").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    let e = api_error(
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "new"}})).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    // Removing the finalizer completes the delete, and then the namespace goes.
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(cms.get("held").await.unwrap_err()).code, 404);
    // The namespace controller removes the emptied namespace shortly after, as on a real cluster.
    let started = std::time::Instant::now();
    while nss.get("t6").await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "namespace t6 still there"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(api_error(nss.get("t6").await.unwrap_err()).code, 404);
    c.shutdown().await;
}

#[tokio::test]
async fn server_side_apply_ownership_conflicts_and_dry_run() {
    let c = start().await;
    namespace(&c, "t2").await;
    let deps: Api<Deployment> = Api::namespaced(c.client(), "t2");
    let keelson = PatchParams::apply("keelson");
    let applied = deps
        .patch("web", &keelson, &Patch::Apply(deployment("web", "app:1", 2)))
        .await
        .unwrap();
    assert_eq!(applied.metadata.generation, Some(1));
    let mf = applied.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("keelson"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_value(&mf[0].fields_v1).unwrap();
    assert!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"main\"}"]["f:image"]
            .is_object(),
        "{fields}"
    );

    // Re-applying the same configuration changes nothing: same resourceVersion, same generation. The
    // Deployment controller writes status meanwhile, so compare once the rollout has settled.
    let settled = wait_for(&deps, "web", |d| {
        d.status.as_ref().and_then(|s| s.available_replicas) == Some(2)
    })
    .await;
    let again = deps
        .patch("web", &keelson, &Patch::Apply(deployment("web", "app:1", 2)))
        .await
        .unwrap();
    assert_eq!(again.metadata.resource_version, settled.metadata.resource_version);
    assert_eq!(again.metadata.generation, Some(1));

    // Another manager changing an owned field conflicts; with force it takes the field over.
    let mut other = deployment("web", "app:1", 5);
    other["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:1");
    let e = api_error(
        deps.patch("web", &PatchParams::apply("hpa"), &Patch::Apply(other.clone()))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(e.message.contains("conflict with \"keelson\""), "{}", e.message);
    assert!(e.message.contains(".spec.replicas"), "{}", e.message);
    let forced = deps
        .patch("web", &PatchParams::apply("hpa").force(), &Patch::Apply(other))
        .await
        .unwrap();
    assert_eq!(forced.spec.replicas, Some(5));
    assert_eq!(forced.metadata.generation, Some(2));

    // Dropping a label the applier owned alone removes it.
    let mut with_label = deployment("web", "app:1", 2);
    with_label["metadata"]["labels"]["extra"] = json!("x");
    deps.patch("web", &keelson.clone().force(), &Patch::Apply(with_label))
        .await
        .unwrap();
    let dropped = deps
        .patch(
            "web",
            &keelson.clone().force(),
            &Patch::Apply(deployment("web", "app:1", 2)),
        )
        .await
        .unwrap();
    assert!(!dropped.metadata.labels.unwrap().contains_key("extra"));

    // Dry run: the answer shows the change, the store does not, and it is not counted as a write.
    c.clear_request_log();
    let writes_before = c.stats().writes;
    let dry = deps
        .patch(
            "web",
            &PatchParams::apply("keelson").force().dry_run(),
            &Patch::Apply(deployment("web", "app:2", 2)),
        )
        .await
        .unwrap();
    assert_eq!(
        dry.spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("app:2")
    );
    let live = deps.get("web").await.unwrap();
    assert_eq!(
        live.spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("app:1")
    );
    assert_eq!(c.stats().writes, writes_before);
    let log = c.request_log();
    assert!(
        log.iter()
            .any(|r| r.verb == "patch" && r.dry_run && r.field_manager.as_deref() == Some("keelson"))
    );
    assert!(log.iter().all(|r| !r.is_write()));

    // Merge, JSON and strategic patches.
    let merged = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"a": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.metadata.annotations.unwrap()["a"], "1");
    let ops = json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]);
    let req = http::Request::patch("/apis/apps/v1/namespaces/t2/deployments/web")
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&ops).unwrap())
        .unwrap();
    let jpd: Deployment = c.client().request(req).await.unwrap();
    assert_eq!(jpd.spec.replicas, Some(4));
    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "side:1"}]}}}});
    let s = deps
        .patch("web", &PatchParams::default(), &Patch::Strategic(smp))
        .await
        .unwrap();
    let names: Vec<_> = s
        .spec
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["main", "side"]);
    c.shutdown().await;
}

#[tokio::test]
async fn discovery_dynamic_api_and_crds() {
    let c = start().await;
    let disc = Discovery::new(c.client()).run().await.expect("discovery");
    let apps = disc.groups().find(|g| g.name() == "apps").expect("apps group");
    let (ar, caps) = apps.recommended_kind("Deployment").expect("deployments");
    assert_eq!(ar.plural, "deployments");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "deployments/status" || s.plural == "status")
    );

    let crds: Api<CustomResourceDefinition> = Api::all(c.client());
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let created = crds
        .patch(
            "widgets.example.com",
            &PatchParams::apply("keelson"),
            &Patch::Apply(crd),
        )
        .await
        .unwrap();
    // As on a real server, the names are accepted at once and the definition is Established a moment
    // later; until then the kind is not served.
    let condition = |crd: &CustomResourceDefinition, type_: &str| {
        crd.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == type_))
            .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
    };
    assert_eq!(
        condition(&created, "NamesAccepted"),
        Some(("True".to_string(), "NoConflicts".to_string()))
    );
    assert_eq!(
        condition(&created, "Established"),
        Some(("False".to_string(), "Installing".to_string()))
    );
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    assert!(discovery::pinned_kind(&c.client(), &gvk).await.is_err());
    let started = std::time::Instant::now();
    loop {
        let crd = crds.get("widgets.example.com").await.unwrap();
        if condition(&crd, "Established").is_some_and(|(status, _)| status == "True") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "never Established"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let (ar, caps) = discovery::pinned_kind(&c.client(), &gvk)
        .await
        .expect("widget discovered");
    assert_eq!(caps.scope, Scope::Namespaced);
    namespace(&c, "t3").await;
    let widgets: Api<DynamicObject> = Api::namespaced_with(c.client(), "t3", &ar);
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}, "status": {"x": 1}});
    let applied = widgets
        .patch("w1", &PatchParams::apply("keelson"), &Patch::Apply(w))
        .await
        .unwrap();
    assert_eq!(applied.data["spec"]["size"], 3);
    assert!(
        applied.data.get("status").is_none(),
        "status is a subresource: the main resource ignores it"
    );
    let list = widgets.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    widgets.delete("w1", &DeleteParams::default()).await.unwrap();

    // Deleting the CRD stops serving the kind.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let e = api_error(widgets.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(e.code, 404);
    c.shutdown().await;
}

#[tokio::test]
async fn watcher_and_reflector_see_adds_updates_deletes() {
    let c = start().await;
    namespace(&c, "t4").await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "t4");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().fields("metadata.name=w")),
    )
    .applied_objects();
    let seen = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut datas = Vec::new();
        while let Some(Ok(cm)) = stream.next().await {
            let v = cm.data.unwrap_or_default().get("v").cloned().unwrap_or_default();
            datas.push(v.clone());
            if v == "2" {
                break;
            }
        }
        datas
    });
    reader.wait_until_ready().await.unwrap();
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "w"}, "data": {"v": "1"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    let datas = tokio::time::timeout(Duration::from_secs(10), seen)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(datas, vec!["1", "2"]);
    assert_eq!(reader.state().len(), 1);

    // A raw watch sees the delete with the last state.
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = cms
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    match events.try_next().await.unwrap() {
        Some(kube::core::WatchEvent::Deleted(cm)) => assert_eq!(cm.metadata.name.as_deref(), Some("w")),
        other => panic!("expected a delete event, got {other:?}"),
    }
    c.shutdown().await;
}

#[tokio::test]
async fn watch_from_an_expired_version_is_gone() {
    let c = Cluster::start(SimOptions {
        watch_history: 5,
        ..Default::default()
    })
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let first = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for i in 0..10 {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut events = cms
        .watch(&WatchParams::default().timeout(5), &first)
        .await
        .unwrap()
        .boxed();
    match events.try_next().await.unwrap() {
        Some(kube::core::WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Expired, got {other:?}"),
    }
    // Bookmarks arrive when asked for.
    let c2 = Cluster::start(SimOptions {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .unwrap();
    let cms2: Api<ConfigMap> = Api::namespaced(c2.client(), "default");
    let mut events = cms2
        .watch(&WatchParams::default().timeout(5), "0")
        .await
        .unwrap()
        .boxed();
    let mut got_bookmark = false;
    while let Ok(Some(ev)) = events.try_next().await {
        if matches!(ev, kube::core::WatchEvent::Bookmark(_)) {
            got_bookmark = true;
            break;
        }
    }
    assert!(got_bookmark);
    c.shutdown().await;
    c2.shutdown().await;
}

async fn wait_for<F: Fn(&Deployment) -> bool>(api: &Api<Deployment>, name: &str, f: F) -> Deployment {
    for _ in 0..100 {
        let d = api.get(name).await.unwrap();
        if f(&d) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never reached the expected state");
}

#[tokio::test]
async fn workloads_become_ready_or_fail_by_rule() {
    let c = start().await;
    namespace(&c, "t5").await;
    let deps: Api<Deployment> = Api::namespaced(c.client(), "t5");
    let pp = PatchParams::apply("keelson");
    deps.patch("good", &pp, &Patch::Apply(deployment("good", "app:1", 3)))
        .await
        .unwrap();
    // The controller reports asynchronously: whatever status is there never claims more than the spec.
    let fresh = deps.get("good").await.unwrap();
    if let Some(status) = &fresh.status {
        assert!(status.observed_generation.unwrap_or(0) <= 1, "{status:?}");
        assert!(status.available_replicas.unwrap_or(0) <= 3, "{status:?}");
    }
    let ready = wait_for(&deps, "good", |d| {
        d.status.as_ref().and_then(|s| s.available_replicas) == Some(3)
    })
    .await;
    let s = ready.status.unwrap();
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(s.updated_replicas, Some(3));
    assert_eq!(s.ready_replicas, Some(3));
    let mf = ready.metadata.managed_fields.unwrap();
    assert!(
        mf.iter()
            .any(|m| m.manager.as_deref() == Some("kube-controller-manager")
                && m.subresource.as_deref() == Some("status"))
    );

    // A spec change: generation bumps, observedGeneration follows after the delay.
    let changed = deps
        .patch("good", &pp, &Patch::Apply(deployment("good", "app:2", 3)))
        .await
        .unwrap();
    assert_eq!(changed.metadata.generation, Some(2));
    wait_for(&deps, "good", |d| {
        let s = d.status.as_ref().unwrap();
        s.observed_generation == Some(2) && s.available_replicas == Some(3) && s.replicas == Some(3)
    })
    .await;

    deps.patch("bad", &pp, &Patch::Apply(deployment("bad", "app:broken", 1)))
        .await
        .unwrap();
    let stuck = wait_for(&deps, "bad", |d| {
        d.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_.as_deref() == Some("Progressing")
                        && c.status.as_deref() == Some("False")
                        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                })
            })
    })
    .await;
    assert_eq!(stuck.status.unwrap().available_replicas, None);

    let jobs: Api<Job> = Api::namespaced(c.client(), "t5");
    for name in ["migrate", "migrate-fails"] {
        let j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "tool:1"}]}}}});
        jobs.patch(name, &pp, &Patch::Apply(j)).await.unwrap();
    }
    for (name, want) in [("migrate", "Complete"), ("migrate-fails", "Failed")] {
        let mut found = false;
        for _ in 0..100 {
            let j = jobs.get(name).await.unwrap();
            if j.status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == want && c.status == "True"))
            {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(found, "{name} should end {want}");
    }
    c.shutdown().await;
}

fn client_without_retries(c: &Cluster) -> kube::Client {
    let mut config = c.config();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn faults_and_request_log() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client_without_retries(&c), "default");
    c.clear_request_log();
    c.faults().fail_verb("list", 503);
    let e = api_error(cms.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (503, "ServiceUnavailable"));
    c.faults().fail_verb("list", 500);
    let e = api_error(cms.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));
    c.faults()
        .set(FaultConfig {
            throttle_rate: 1.0,
            retry_after_secs: 2,
            ..Default::default()
        })
        .unwrap();
    let e = api_error(cms.get("x").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(e.details.map(|d| d.retry_after_seconds), Some(2));
    c.faults()
        .set(FaultConfig {
            drop_rate: 1.0,
            ..Default::default()
        })
        .unwrap();
    assert!(
        !matches!(cms.get("x").await, Ok(_) | Err(kube::Error::Api(_))),
        "a dropped connection is not an API answer"
    );
    c.faults()
        .set(FaultConfig {
            latency: Duration::from_millis(200),
            ..Default::default()
        })
        .unwrap();
    let t = std::time::Instant::now();
    let _ = cms.get("x").await;
    assert!(t.elapsed() >= Duration::from_millis(200));
    c.faults().clear();
    assert!(cms.list(&ListParams::default()).await.is_ok());
    assert!(
        c.faults()
            .set(FaultConfig {
                drop_rate: 2.0,
                ..Default::default()
            })
            .is_err()
    );

    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "logged"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let log = c.request_log();
    let verbs: Vec<(&str, u16)> = log.iter().map(|r| (r.verb.as_str(), r.status)).collect();
    assert_eq!(
        verbs,
        vec![
            ("list", 503),
            ("list", 500),
            ("get", 429),
            ("get", 0),
            ("get", 404),
            ("list", 200),
            ("create", 201)
        ]
    );
    let create = log.last().unwrap();
    assert!(create.is_write());
    assert_eq!(
        (
            create.resource.as_str(),
            create.namespace.as_deref(),
            create.name.as_deref()
        ),
        ("configmaps", Some("default"), Some("logged"))
    );
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq && w[0].at <= w[1].at));
    let stats = c.stats();
    assert_eq!(stats.by_resource["configmaps"]["create"], 1);
    assert_eq!(stats.injected_faults, 4);
    assert_eq!(stats.writes, 1);

    // kube's default client retries 503s: an outage that ends is invisible to the caller.
    c.clear_request_log();
    c.faults().fail_verb("list", 503);
    let retrying: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let call = tokio::spawn(async move {
        retrying
            .list(&ListParams::default().fields("metadata.name=logged"))
            .await
            .map(|l| l.items.len())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.faults().clear();
    assert_eq!(call.await.unwrap().unwrap(), 1);
    let statuses: Vec<u16> = c.request_log().iter().map(|r| r.status).collect();
    assert!(
        statuses.len() >= 2 && statuses[0] == 503 && *statuses.last().unwrap() == 200,
        "{statuses:?}"
    );

    // The same counters over HTTP, for tools outside the process.
    let body: serde_json::Value = control_get(&c, "/_sim/stats").await;
    assert_eq!(body["writes"], 1);
    c.shutdown().await;
}

/// A GET through kube's own client stack, to read the control endpoints.
async fn control_get(c: &Cluster, path: &str) -> serde_json::Value {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    c.client().request::<serde_json::Value>(req).await.unwrap()
}

#[tokio::test]
async fn quantities_are_stored_in_canonical_form_and_invalid_ones_refused() {
    let c = start().await;
    namespace(&c, "q").await;
    let api: Api<DynamicObject> = Api::namespaced_with(
        c.client(),
        "q",
        &kube::discovery::ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment")),
    );
    let mut body = deployment("api", "api:1", 1);
    body["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({
        "requests": {"cpu": "1000m", "memory": "0.5Gi"}, "limits": {"cpu": 2, "memory": "1024Mi"}});
    body["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "tmp", "emptyDir": {"sizeLimit": "1.5Gi"}}]);
    let params = PatchParams::apply("test").force();
    let stored = api
        .patch("api", &params, &Patch::Apply(&body))
        .await
        .expect("apply");
    let spec = &stored.data["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0]["resources"],
        json!({"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}})
    );
    assert_eq!(spec["volumes"][0]["emptyDir"]["sizeLimit"], "1536Mi");
    // Re-applying the same quantities as written changes nothing (the controllers write status and the
    // revision annotation meanwhile, so compare the spec's generation).
    let again = api
        .patch("api", &params, &Patch::Apply(&body))
        .await
        .expect("apply again");
    assert_eq!(again.metadata.generation, stored.metadata.generation);
    assert_eq!(again.data["spec"], stored.data["spec"]);

    body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = json!("1GB");
    let err = api_error(
        api.patch("api", &params, &Patch::Apply(&body))
            .await
            .expect_err("1GB is no quantity"),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("spec.template.spec.containers[0].resources.limits.memory"),
        "{}",
        err.message
    );
}
