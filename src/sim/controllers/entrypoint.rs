//! OpenStack-Helm's kubernetes-entrypoint as an init container: it returns only once the Pods its
//! `DEPENDENCY_POD_JSON` names are Ready (on the same node when `requireSameNode`), reading them through the
//! API with the Pod's own ServiceAccount token. The simulated kubelet asks [`hold`] whether such a container
//! may exit: the same inputs the real binary reads (its environment, the Pods, the token and what RBAC lets
//! it read), so a Pod that could not pass on a real cluster does not pass here.

use serde_json::{Map, Value};

use super::super::auth::{Attributes, ResourceAttributes, User};
use super::{PODS, View, name, namespace, pod_ready, text};

/// What an init container does now.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// Not a kubernetes-entrypoint, or every dependency is resolved: it exits 0.
    Released,
    /// Still resolving (it polls): it keeps running.
    Waiting(String),
    /// It cannot run at all (no token, an unreadable dependency list): it exits 1.
    Fails(String),
}

/// Whether `container` (an entry of the Pod's `initContainers`) is a kubernetes-entrypoint.
pub fn is_entrypoint(container: &Value) -> bool {
    let first = |field: &str| {
        container[field]
            .as_array()
            .and_then(|l| l.first())
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let command = first("command");
    command.rsplit('/').next() == Some("kubernetes-entrypoint")
}

fn env<'a>(container: &'a Value, key: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == key)
        .and_then(|e| e["value"].as_str())
}

pub fn hold(view: &View, pod: &Value, container: &Value) -> Hold {
    if !is_entrypoint(container) {
        return Hold::Released;
    }
    let Some(raw) = env(container, "DEPENDENCY_POD_JSON").filter(|s| !s.is_empty()) else {
        return Hold::Released;
    };
    let dependencies: Vec<Value> = match serde_json::from_str(raw) {
        Ok(Value::Array(list)) => list,
        _ => return Hold::Fails(format!("cannot parse DEPENDENCY_POD_JSON {raw:?}")),
    };
    let spec = &pod["spec"];
    if spec["automountServiceAccountToken"] == false {
        return Hold::Fails(
            "unable to load in-cluster configuration: no service account token is mounted".into(),
        );
    }
    let ns = namespace(pod);
    let account = match text(&spec["serviceAccountName"]) {
        "" => "default",
        other => other,
    };
    let user = User::service_account(ns, account, "");
    for verb in ["get", "list"] {
        let attributes = Attributes {
            verb: verb.into(),
            path: format!("/api/v1/namespaces/{ns}/pods"),
            resource: Some(ResourceAttributes {
                resource: "pods".into(),
                namespace: ns.into(),
                name: if verb == "get" {
                    name(pod).into()
                } else {
                    String::new()
                },
                ..Default::default()
            }),
        };
        if !view.authorized(&user, &attributes) {
            return Hold::Waiting(format!(
                "pods is forbidden: User \"{}\" cannot {verb} resource \"pods\" in API group \"\" in the \
                 namespace \"{ns}\"",
                user.name
            ));
        }
    }
    let node = text(&spec["nodeName"]);
    for dependency in &dependencies {
        let Some(labels) = dependency["labels"].as_object() else {
            return Hold::Fails(format!("DEPENDENCY_POD_JSON entry without labels: {dependency}"));
        };
        let same_node = dependency["requireSameNode"] == true;
        let matches =
            |p: &&Value| has_labels(p, labels) && (!same_node || text(&p["spec"]["nodeName"]) == node);
        let found: Vec<&Value> = view.list_in(PODS, ns).filter(matches).collect();
        if !found.iter().any(|p| pod_ready(p)) {
            let where_ = if same_node {
                format!(" on node {node}")
            } else {
                String::new()
            };
            let what = if found.is_empty() {
                "found no pod"
            } else {
                "no pod is ready"
            };
            return Hold::Waiting(format!(
                "dependency pod with labels {} is not resolved: {what}{where_}",
                Value::Object(labels.clone())
            ));
        }
    }
    Hold::Released
}

fn has_labels(pod: &Value, wanted: &Map<String, Value>) -> bool {
    let labels = &pod["metadata"]["labels"];
    wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}
