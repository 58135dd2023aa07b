//! Pruning, as kube-apiserver's decoding into Go structs prunes: a field the kind's schema does not declare
//! is dropped (and reported, as a `Warning` header, or refused under `fieldValidation=Strict`), and an
//! explicit `null` for a declared field stores nothing. The schemas are the OpenAPI schemas k8s-openapi
//! generates for each built-in kind (its `schemars` feature); custom resources keep what they are sent.

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};

use super::resources::ResourceInfo;

/// One kind's root schema with its definitions.
struct Schema {
    root: Value,
    defs: Map<String, Value>,
}

fn schema_of<T: JsonSchema>() -> Schema {
    let mut generator = SchemaGenerator::default();
    let root = serde_json::to_value(generator.root_schema_for::<T>()).unwrap_or(Value::Null);
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Schema { root, defs }
}

/// The schemas of the built-in kinds the simulator serves, by (group, plural).
fn schemas() -> &'static HashMap<(&'static str, &'static str), Schema> {
    use k8s_openapi::api::{apps, batch, coordination, core, networking, policy, rbac, storage};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    static SCHEMAS: OnceLock<HashMap<(&'static str, &'static str), Schema>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        HashMap::from([
            (("", "namespaces"), schema_of::<core::v1::Namespace>()),
            (("", "configmaps"), schema_of::<core::v1::ConfigMap>()),
            (("", "secrets"), schema_of::<core::v1::Secret>()),
            (("", "services"), schema_of::<core::v1::Service>()),
            (("", "serviceaccounts"), schema_of::<core::v1::ServiceAccount>()),
            (
                ("", "persistentvolumeclaims"),
                schema_of::<core::v1::PersistentVolumeClaim>(),
            ),
            (("", "pods"), schema_of::<core::v1::Pod>()),
            (("", "events"), schema_of::<core::v1::Event>()),
            (("", "nodes"), schema_of::<core::v1::Node>()),
            (
                ("", "persistentvolumes"),
                schema_of::<core::v1::PersistentVolume>(),
            ),
            (
                ("storage.k8s.io", "storageclasses"),
                schema_of::<storage::v1::StorageClass>(),
            ),
            (("apps", "deployments"), schema_of::<apps::v1::Deployment>()),
            (("apps", "statefulsets"), schema_of::<apps::v1::StatefulSet>()),
            (("apps", "daemonsets"), schema_of::<apps::v1::DaemonSet>()),
            (("apps", "replicasets"), schema_of::<apps::v1::ReplicaSet>()),
            (
                ("apps", "controllerrevisions"),
                schema_of::<apps::v1::ControllerRevision>(),
            ),
            (("batch", "jobs"), schema_of::<batch::v1::Job>()),
            (("batch", "cronjobs"), schema_of::<batch::v1::CronJob>()),
            (
                ("coordination.k8s.io", "leases"),
                schema_of::<coordination::v1::Lease>(),
            ),
            (
                ("rbac.authorization.k8s.io", "roles"),
                schema_of::<rbac::v1::Role>(),
            ),
            (
                ("rbac.authorization.k8s.io", "rolebindings"),
                schema_of::<rbac::v1::RoleBinding>(),
            ),
            (
                ("rbac.authorization.k8s.io", "clusterroles"),
                schema_of::<rbac::v1::ClusterRole>(),
            ),
            (
                ("rbac.authorization.k8s.io", "clusterrolebindings"),
                schema_of::<rbac::v1::ClusterRoleBinding>(),
            ),
            (
                ("policy", "poddisruptionbudgets"),
                schema_of::<policy::v1::PodDisruptionBudget>(),
            ),
            (
                ("networking.k8s.io", "networkpolicies"),
                schema_of::<networking::v1::NetworkPolicy>(),
            ),
            (
                ("networking.k8s.io", "ingresses"),
                schema_of::<networking::v1::Ingress>(),
            ),
            (
                ("apiextensions.k8s.io", "customresourcedefinitions"),
                schema_of::<apiext::CustomResourceDefinition>(),
            ),
        ])
    })
}

/// Drops what the kind's schema does not declare and explicit nulls of declared fields; returns the paths
/// of the unknown fields (`spec.template.spec.containers[0].foo`), as kube-apiserver names them.
pub fn prune(info: &ResourceInfo, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if !info.builtin {
        return unknown;
    }
    let Some(schema) = schemas().get(&(info.group.as_str(), info.plural.as_str())) else {
        return unknown;
    };
    walk(
        obj,
        &schema.root,
        &schema.defs,
        &mut String::new(),
        &mut unknown,
        0,
    );
    unknown
}

fn resolve<'a>(mut s: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    for _ in 0..8 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.rsplit('/').next().and_then(|name| defs.get(name)) {
                Some(d) => s = d,
                None => return s,
            },
            None => return s,
        }
    }
    s
}

fn walk(
    v: &mut Value,
    schema: &Value,
    defs: &Map<String, Value>,
    path: &mut String,
    unknown: &mut Vec<String>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    let schema = resolve(schema, defs);
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if props.is_none() && additional.is_none() {
                // A free-form object (FieldsV1, RawExtension): kept as sent.
                return;
            }
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let child_schema = props.and_then(|p| p.get(&k)).or(additional);
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&k);
                match child_schema {
                    None => {
                        if m.get(&k).is_some_and(|c| !c.is_null()) {
                            unknown.push(path.clone());
                        }
                        m.remove(&k);
                    }
                    Some(_) if props.is_some() && m.get(&k).is_some_and(Value::is_null) => {
                        m.remove(&k);
                    }
                    Some(cs) => {
                        if let Some(child) = m.get_mut(&k) {
                            walk(child, cs, defs, path, unknown, depth + 1);
                        }
                    }
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else {
                return;
            };
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, item_schema, defs, path, unknown, depth + 1);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::resources::Registry;
    use super::*;
    use serde_json::json;

    fn info(group: &str, plural: &str) -> ResourceInfo {
        Registry::with_builtins()
            .all()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
            .unwrap()
    }

    #[test]
    fn unknown_fields_are_dropped_and_named_known_nulls_dropped_free_form_kept() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"a": "b"}, "bogus": 1, "annotations": null,
            "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:x": {}}}}]},
        "spec": {"replicas": 2, "replica": 3, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
                {"name": "c", "image": "i", "imagePullPolicy": null, "ports": [{"containerPort": 80, "hostIp": "x"}]},
            ]}}}});
        let unknown = prune(&info("apps", "deployments"), &mut d);
        assert_eq!(
            unknown,
            vec![
                "metadata.bogus".to_string(),
                "spec.replica".to_string(),
                "spec.template.spec.containers[0].ports[0].hostIp".to_string(),
            ]
        );
        assert!(d["metadata"].get("annotations").is_none());
        assert!(
            d["spec"]["template"]["spec"]["containers"][0]
                .get("imagePullPolicy")
                .is_none()
        );
        assert_eq!(
            d["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:spec": {"f:x": {}}})
        );
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(d["metadata"]["labels"], json!({"a": "b"}));
    }

    #[test]
    fn every_served_builtin_kind_has_a_schema() {
        for r in Registry::with_builtins()
            .all()
            .filter(|r| r.builtin && !r.create_only)
        {
            assert!(
                schemas().contains_key(&(r.group.as_str(), r.plural.as_str())),
                "{}",
                r.qualified()
            );
        }
    }
}
