//! Builders for plan tests: a small topology, rendered objects shaped like the renderer's, and the live
//! copies the API server would hand back (with server-set and defaulted fields added).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::object::{
    ANNOTATION_HASH, ANNOTATION_REVISION, LABEL_MANAGED_BY, LABEL_SERVICE, LABEL_TOPOLOGY, MANAGED_BY_VALUE,
    ObjectRef,
};
use crate::render::{RenderedObject, Stage};
use crate::topology::{Component, ServiceSpec, Topology, TopologySpec};

pub const TOPOLOGY: &str = "openstack";
pub const NS: &str = "openstack";

pub fn mk_ref(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: namespace.map(String::from),
        name: name.into(),
    }
}

/// A topology named `openstack` in namespace `openstack` with the given components and dependencies.
pub fn mk_topology(components: &[(&str, &[&str])]) -> Topology {
    let spec: TopologySpec = serde_json::from_value(json!({"namespace": NS})).expect("topology spec");
    let components = components
        .iter()
        .map(|(name, deps)| {
            let spec: ServiceSpec =
                serde_json::from_value(json!({"image": *name, "dependsOn": deps})).expect("service spec");
            let c = Component {
                name: name.to_string(),
                project: name.split('-').next().unwrap_or(name).to_string(),
                file: format!("services/{name}.yaml"),
                spec,
                image: format!("quay.io/openstack.kolla/{name}:2025.1-ubuntu-noble"),
                job_images: Vec::new(),
                health_timeout: Duration::from_secs(600),
                config_contents: Vec::new(),
                manifests: Vec::new(),
                container_images: BTreeMap::new(),
                toolbox_image: None,
                encrypted_files: BTreeMap::new(),
            };
            (name.to_string(), c)
        })
        .collect::<BTreeMap<_, _>>();
    Topology {
        name: TOPOLOGY.into(),
        spec,
        health_timeout: Duration::from_secs(600),
        components,
        sync_windows: Default::default(),
    }
}

/// The diamond used by most tests: mariadb and rabbitmq first, keystone, then glance and nova, horizon last.
pub fn diamond() -> Topology {
    mk_topology(&[
        ("mariadb", &[]),
        ("rabbitmq", &[]),
        ("keystone", &["mariadb"]),
        ("glance", &["keystone"]),
        ("nova-api", &["keystone", "rabbitmq"]),
        ("horizon", &["glance", "nova-api"]),
    ])
}

pub fn api_version_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "Job" => "batch/v1",
        "Role" | "RoleBinding" | "ClusterRole" => "rbac.authorization.k8s.io/v1",
        _ => "v1",
    }
}

/// A rendered object of `component` in the topology namespace. `fields` are merged into the body next to
/// `metadata` (e.g. `{"data": {...}}` or `{"spec": {...}}`); the hash covers them.
pub fn mk_object(component: &str, stage: Stage, kind: &str, name: &str, fields: Value) -> RenderedObject {
    let hash = format!(
        "{:x}",
        Sha256::digest(format!("{kind}/{name}/{fields}").as_bytes())
    );
    let mut body = json!({
        "apiVersion": api_version_of(kind),
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY_VALUE,
                LABEL_TOPOLOGY: TOPOLOGY,
                LABEL_SERVICE: component,
            },
            "annotations": {ANNOTATION_HASH: hash, ANNOTATION_REVISION: "new-rev"},
        },
    });
    if let (Some(target), Value::Object(extra)) = (body.as_object_mut(), fields) {
        target.extend(extra);
    }
    RenderedObject {
        component: component.into(),
        stage,
        step: 0,
        timeout: None,
        reference: mk_ref(api_version_of(kind), kind, Some(NS), name),
        hash: hash_of(&body),
        body,
        secret: None,
    }
}

fn hash_of(body: &Value) -> String {
    body["metadata"]["annotations"][ANNOTATION_HASH]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// What the API server returns after `obj` was applied at an older revision: server-set metadata, a status,
/// and defaulted fields inside lists.
pub fn live_of(obj: &RenderedObject) -> Value {
    let mut live = obj.body.clone();
    live["metadata"]["uid"] = json!("0f6d-uid");
    live["metadata"]["resourceVersion"] = json!("4711");
    live["metadata"]["creationTimestamp"] = json!("2026-11-01T10:00:00Z");
    live["metadata"]["managedFields"] = json!([{"manager": "keelson", "operation": "Apply"}]);
    live["metadata"]["annotations"][ANNOTATION_REVISION] = json!("old-rev");
    if let Some(containers) = live
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
    {
        for c in containers {
            c["imagePullPolicy"] = json!("IfNotPresent");
            c["terminationMessagePath"] = json!("/dev/termination-log");
        }
    }
    if let Some(spec) = live.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("revisionHistoryLimit".into(), json!(10));
    }
    live["status"] = json!({"observedGeneration": 3});
    live
}

/// A live object owned by this topology that nothing renders any more.
pub fn mk_live(component: &str, kind: &str, name: &str) -> Value {
    live_of(&mk_object(component, Stage::Config, kind, name, json!({})))
}

/// A Deployment with one container.
pub fn mk_deployment(component: &str, name: &str, image: &str) -> RenderedObject {
    mk_object(
        component,
        Stage::Workload,
        "Deployment",
        name,
        json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "main", "image": image, "ports": [{"containerPort": 5000}]}
        ]}}}}),
    )
}
