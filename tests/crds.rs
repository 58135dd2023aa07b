//! A CustomResourceDefinition and its custom resources in one commit, against the simulated cluster over
//! real HTTP: planned as creates, applied in one pass with every custom resource written only after its
//! CRD is Established, a dry run that skips them with a note, and a custom resource of a kind nothing
//! serves refused before any write.

mod support;

use std::path::Path;
use std::time::Duration;

use keelson::plan::Action;
use keelson::reconciler::{self, PassSettings};
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
use serde_json::{Value, json};
use support::SimEnv;
use tokio_util::sync::CancellationToken;

const NS: &str = "openstack";

const TOPOLOGY: &str = "\
apiVersion: keelson.dev/v1
kind: Topology
metadata:
  name: demo
spec:
  namespace: openstack
  healthTimeout: 20s
  policy:
    allowedKinds: [CustomResourceDefinition, example.com/Widget]
";

const WIDGETS: &str = "\
apiVersion: keelson.dev/v1
kind: Service
metadata:
  name: widgets
spec:
  workload: None
  manifests: [manifests/widgets.yaml]
";

/// The custom resource comes first in the file: the order is Keelson's to make.
const MANIFEST: &str = "\
apiVersion: example.com/v1
kind: Widget
metadata:
  name: first
spec:
  size: 3
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
";

fn write_topology(dir: &Path) {
    support::write_files(
        dir,
        &[
            ("keelson.yaml", TOPOLOGY),
            ("services/widgets.yaml", WIDGETS),
            ("manifests/widgets.yaml", MANIFEST),
        ],
    );
}

fn settings() -> PassSettings {
    PassSettings {
        poll_interval: Duration::from_millis(50),
        ..PassSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_and_its_custom_resource_converge_in_one_pass_the_resource_after_established() {
    let env = SimEnv::start(support::fast_sim()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_topology(dir.path());
    let snapshot = Snapshot::from_dir(dir.path(), DEFAULT_MAX_FILE_SIZE).expect("snapshot");
    env.sim.clear_request_log();

    let prepared = reconciler::prepare(&env.kube, &snapshot, &settings())
        .await
        .expect("a custom resource of a CRD in the same commit plans");
    let changes: Vec<(String, Action, u32)> = prepared
        .plan
        .apply_changes()
        .map(|c| (c.reference.kind.clone(), c.action, c.step))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("CustomResourceDefinition".to_string(), Action::Create, 0),
            ("Widget".to_string(), Action::Create, 1),
        ]
    );
    let outcome = reconciler::execute(&env.kube, &prepared, &settings(), CancellationToken::new(), None)
        .await
        .expect("pass");
    assert!(outcome.rollout.converged(), "{:#?}", outcome.rollout.components);
    assert!(outcome.inventory_recorded);

    let log = env.sim.request_log();
    let crd_write = log
        .iter()
        .find(|r| r.resource == "customresourcedefinitions" && r.is_write() && r.subresource.is_none())
        .expect("the CRD was written");
    let widget_writes: Vec<_> = log
        .iter()
        .filter(|r| r.resource == "widgets" && r.is_write())
        .collect();
    assert_eq!(
        widget_writes.len(),
        1,
        "one write, never refused: {widget_writes:#?}"
    );
    let widget_write = widget_writes[0];
    assert!((200..300).contains(&widget_write.status), "{widget_write:?}");
    assert!(widget_write.seq > crd_write.seq);
    // The simulator establishes a CRD 200ms after its creation, as the establishing controller of a real
    // server does a moment after; the resource waited for it.
    assert!(
        widget_write.at >= crd_write.at + Duration::from_millis(200),
        "written {:?} after its CRD",
        widget_write.at.saturating_sub(crd_write.at)
    );
    let crd: Value = env
        .kube
        .get(&keelson::object::ObjectRef {
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            namespace: None,
            name: "widgets.example.com".into(),
        })
        .await
        .expect("get")
        .expect("the CRD exists");
    let established = crd["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{crd:#}");

    // A second pass over the same commit writes nothing.
    env.sim.clear_request_log();
    let prepared = reconciler::prepare(&env.kube, &snapshot, &settings())
        .await
        .expect("prepare again");
    assert!(!prepared.plan.has_changes(), "{:#?}", prepared.plan.summary);
    reconciler::execute(&env.kube, &prepared, &settings(), CancellationToken::new(), None)
        .await
        .expect("second pass");
    assert!(support::writes(&env.sim.request_log()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_a_dry_run_of_a_crd_with_its_resources_exit_zero() {
    let env = SimEnv::start(support::fast_sim()).await;
    env.kube
        .apply(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            &Default::default(),
        )
        .await
        .expect("namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    write_topology(dir.path());
    let kubeconfig = dir.path().join("kubeconfig");
    env.sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let topology = dir.path().to_str().expect("utf-8 path");

    let out = support::keelson_on(&["plan", topology, "-o", "json"], &kubeconfig);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("JSON plan");
    assert_eq!(plan["summary"]["create"], 2, "{plan:#}");

    env.sim.clear_request_log();
    let out = support::keelson_on(&["apply", topology, "--dry-run", "-o", "json"], &kubeconfig);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("not checked: kind Widget example.com/v1 does not exist yet"),
        "{stdout}"
    );
    let log = env.sim.request_log();
    assert!(support::writes(&log).is_empty(), "{:#?}", support::writes(&log));
    let checked: Vec<&str> = log
        .iter()
        .filter(|r| r.dry_run && r.verb == "patch")
        .map(|r| r.resource.as_str())
        .collect();
    assert_eq!(checked, vec!["customresourcedefinitions"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_resource_of_a_kind_nothing_serves_fails_the_pass_naming_object_and_kind() {
    let env = SimEnv::start(support::fast_sim()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_topology(dir.path());
    // The CRD leaves the commit; its resource stays.
    let manifest = MANIFEST.split("---\n").next().expect("first document");
    std::fs::write(dir.path().join("manifests/widgets.yaml"), manifest).expect("write");
    let snapshot = Snapshot::from_dir(dir.path(), DEFAULT_MAX_FILE_SIZE).expect("snapshot");
    env.sim.clear_request_log();
    let err = reconciler::prepare(&env.kube, &snapshot, &settings())
        .await
        .expect_err("an unserved kind");
    assert_eq!(
        err.to_string(),
        "planning failed: desired object Widget openstack/first: kind Widget example.com/v1 is served by no \
         CustomResourceDefinition, in the cluster or in this revision; add its CRD to the topology's manifests \
         or install it first"
    );
    assert!(support::writes(&env.sim.request_log()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_resource_in_another_component_waits_until_its_kind_is_served() {
    let env = SimEnv::start(support::fast_sim()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_topology(dir.path());
    // The CRD stays with `widgets`; its resource moves to `gadgets`, which depends on nothing.
    let (widget, crd) = MANIFEST.split_once("---\n").expect("two documents");
    std::fs::write(dir.path().join("manifests/widgets.yaml"), crd).expect("write");
    std::fs::write(dir.path().join("manifests/gadgets.yaml"), widget).expect("write");
    std::fs::write(
        dir.path().join("services/gadgets.yaml"),
        WIDGETS
            .replace("name: widgets", "name: gadgets")
            .replace("widgets.yaml", "gadgets.yaml"),
    )
    .expect("write");
    let snapshot = Snapshot::from_dir(dir.path(), DEFAULT_MAX_FILE_SIZE).expect("snapshot");
    env.sim.clear_request_log();
    let prepared = reconciler::prepare(&env.kube, &snapshot, &settings())
        .await
        .expect("plans");
    let outcome = reconciler::execute(&env.kube, &prepared, &settings(), CancellationToken::new(), None)
        .await
        .expect("pass");
    assert!(outcome.rollout.converged(), "{:#?}", outcome.rollout.components);
    let log = env.sim.request_log();
    let crd_write = log
        .iter()
        .find(|r| r.resource == "customresourcedefinitions" && r.is_write() && r.subresource.is_none())
        .expect("the CRD was written");
    let widget_write = log
        .iter()
        .find(|r| r.resource == "widgets" && r.is_write() && (200..300).contains(&r.status))
        .expect("the Widget was written");
    assert!(widget_write.at >= crd_write.at + Duration::from_millis(200));
}
