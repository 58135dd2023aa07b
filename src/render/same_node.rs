//! `for: SameNode` dependencies: each Pod of the dependent DaemonSet waits in an init container until the
//! dependency's Pod on the same node is Ready. The init container is OpenStack-Helm's kubernetes-entrypoint
//! (`DEPENDENCY_POD_JSON` with `requireSameNode`), which reads Pods through the API, so the component gets
//! a ServiceAccount allowed to read the Pods of its namespace and nothing else.

use serde_json::{Map, Value, json};

use super::Ctx;
use crate::object::{LABEL_ROLE, LABEL_SERVICE, LABEL_TOPOLOGY, ROLE_WORKLOAD};
use crate::topology::WaitFor;

/// Name of the init container that holds the Pod.
pub const WAIT_CONTAINER: &str = "wait-same-node";

/// The components whose Pod on the same node this component's Pods wait for, in `dependsOn` order.
pub fn dependencies<'a>(ctx: &Ctx<'a>) -> Vec<&'a str> {
    ctx.component
        .spec
        .depends_on
        .iter()
        .filter(|d| d.wait_for == WaitFor::SameNode)
        .map(|d| d.component.as_str())
        .collect()
}

/// The ServiceAccount (and its Role and RoleBinding) the waiting Pods run as.
pub fn service_account_name(component: &str) -> String {
    format!("{component}-entrypoint")
}

/// The init container that returns once every dependency's Pod on this Pod's node is Ready.
pub fn wait_container(ctx: &Ctx<'_>, dependencies: &[&str]) -> Value {
    let selectors: Vec<Value> = dependencies
        .iter()
        .map(|dep| {
            let mut labels = Map::new();
            labels.insert(LABEL_SERVICE.into(), json!(dep));
            labels.insert(LABEL_TOPOLOGY.into(), json!(ctx.topology.name));
            labels.insert(LABEL_ROLE.into(), json!(ROLE_WORKLOAD));
            json!({"labels": Value::Object(labels), "requireSameNode": true})
        })
        .collect();
    // Compact JSON, as kubernetes-entrypoint parses it; the order is the topology's, so it is stable.
    let pod_json = Value::Array(selectors).to_string();
    let field = |path: &str| json!({"fieldRef": {"apiVersion": "v1", "fieldPath": path}});
    json!({
        "name": WAIT_CONTAINER,
        "image": ctx.topology.spec.images.entrypoint,
        "imagePullPolicy": ctx.topology.spec.images.pull_policy,
        "command": ["kubernetes-entrypoint"],
        "env": [
            {"name": "POD_NAME", "valueFrom": field("metadata.name")},
            {"name": "NAMESPACE", "valueFrom": field("metadata.namespace")},
            {"name": "DEPENDENCY_POD_JSON", "value": pod_json},
            {"name": "COMMAND", "value": "echo done"},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsUser": 65534,
        },
    })
}

/// The ServiceAccount, Role (read Pods) and RoleBinding of the waiting Pods, each with its step in the
/// configuration stage: the binding comes after the Role it names.
pub fn access_objects(ctx: &Ctx<'_>) -> Vec<(u32, Value)> {
    let name = service_account_name(&ctx.component.name);
    let [account, role, binding] = [
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": ctx.metadata(&name),
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": ctx.metadata(&name),
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": ctx.metadata(&name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ctx.namespace()}],
        }),
    ];
    vec![(0, account), (0, role), (1, binding)]
}
