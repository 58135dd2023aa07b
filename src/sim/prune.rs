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
    /// The kind's definition name (`io.k8s.api.core.v1.Pod`).
    name: String,
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
    Schema {
        name: T::schema_name().into_owned(),
        root,
        defs,
    }
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

/// Optional string fields of the served kinds whose Go type is a pointer (`*string`, `*SomeStringType`), or
/// a non-pointer without `omitempty`: kube-apiserver keeps `""` in these. Every other optional plain string
/// field of a built-in kind is a non-pointer `string` with `omitempty` in k8s.io/api (the API conventions
/// ask for that), so a `""` sent there is gone once the body is decoded into Go and encoded again. The
/// schemas cannot tell the two apart (k8s-openapi has `Option<String>` for both), hence this list, by the
/// definition names of k8s-openapi's schemas, read off k8s.io/api's `types.go` files.
const EMPTY_KEPT: &[(&str, &[&str])] = &[
    (
        "io.k8s.api.core.v1.PodSpec",
        &["runtimeClassName", "preemptionPolicy", "hostnameOverride"],
    ),
    ("io.k8s.api.core.v1.Container", &["restartPolicy"]),
    ("io.k8s.api.core.v1.EphemeralContainer", &["restartPolicy"]),
    ("io.k8s.api.core.v1.SecurityContext", &["procMount"]),
    (
        "io.k8s.api.core.v1.PodSecurityContext",
        &[
            "fsGroupChangePolicy",
            "supplementalGroupsPolicy",
            "seLinuxChangePolicy",
        ],
    ),
    ("io.k8s.api.core.v1.SeccompProfile", &["localhostProfile"]),
    ("io.k8s.api.core.v1.AppArmorProfile", &["localhostProfile"]),
    (
        "io.k8s.api.core.v1.WindowsSecurityContextOptions",
        &["gmsaCredentialSpecName", "gmsaCredentialSpec", "runAsUserName"],
    ),
    (
        "io.k8s.api.core.v1.VolumeMount",
        &["mountPropagation", "recursiveReadOnly"],
    ),
    ("io.k8s.api.core.v1.Lifecycle", &["stopSignal"]),
    ("io.k8s.api.core.v1.GRPCAction", &["service"]),
    ("io.k8s.api.core.v1.PodDNSConfigOption", &["value"]),
    (
        "io.k8s.api.core.v1.PodResourceClaim",
        &["resourceClaimName", "resourceClaimTemplateName"],
    ),
    (
        "io.k8s.api.core.v1.TopologySpreadConstraint",
        &["nodeAffinityPolicy", "nodeTaintsPolicy"],
    ),
    ("io.k8s.api.core.v1.HostPathVolumeSource", &["type"]),
    ("io.k8s.api.core.v1.CSIVolumeSource", &["fsType"]),
    ("io.k8s.api.core.v1.LocalVolumeSource", &["fsType"]),
    (
        "io.k8s.api.core.v1.AzureDiskVolumeSource",
        &["cachingMode", "fsType", "kind"],
    ),
    ("io.k8s.api.core.v1.ISCSIVolumeSource", &["initiatorName"]),
    (
        "io.k8s.api.core.v1.ISCSIPersistentVolumeSource",
        &["initiatorName"],
    ),
    (
        "io.k8s.api.core.v1.ClusterTrustBundleProjection",
        &["name", "signerName"],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        &["storageClassName", "volumeMode", "volumeAttributesClassName"],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeSpec",
        &["volumeMode", "volumeAttributesClassName"],
    ),
    ("io.k8s.api.core.v1.TypedLocalObjectReference", &["apiGroup"]),
    (
        "io.k8s.api.core.v1.TypedObjectReference",
        &["apiGroup", "namespace"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        &[
            "loadBalancerClass",
            "ipFamilyPolicy",
            "internalTrafficPolicy",
            "trafficDistribution",
        ],
    ),
    ("io.k8s.api.core.v1.ServicePort", &["appProtocol"]),
    // `json:"reportingComponent"`, `json:"reportingInstance"`: no omitempty.
    (
        "io.k8s.api.core.v1.Event",
        &["reportingComponent", "reportingInstance"],
    ),
    // `json:"apiGroup"`: no omitempty (validation then refuses anything but the RBAC group).
    ("io.k8s.api.rbac.v1.RoleRef", &["apiGroup"]),
    (
        "io.k8s.api.batch.v1.JobSpec",
        &["completionMode", "podReplacementPolicy", "managedBy"],
    ),
    (
        "io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement",
        &["containerName"],
    ),
    ("io.k8s.api.batch.v1.SuccessPolicyRule", &["succeededIndexes"]),
    ("io.k8s.api.batch.v1.CronJobSpec", &["timeZone"]),
    ("io.k8s.api.networking.v1.IngressSpec", &["ingressClassName"]),
    ("io.k8s.api.networking.v1.NetworkPolicyPort", &["protocol"]),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetSpec",
        &["unhealthyPodEvictionPolicy"],
    ),
    (
        "io.k8s.api.storage.v1.StorageClass",
        &["reclaimPolicy", "volumeBindingMode"],
    ),
    (
        "io.k8s.api.coordination.v1.LeaseSpec",
        &["holderIdentity", "strategy", "preferredHolder"],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
        &["$ref", "x-kubernetes-list-type", "x-kubernetes-map-type"],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.WebhookClientConfig",
        &["url"],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.ServiceReference",
        &["path"],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceSubresourceScale",
        &["labelSelectorPath"],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.ValidationRule",
        &["reason"],
    ),
];

fn empty_kept(definition: &str, field: &str) -> bool {
    EMPTY_KEPT
        .iter()
        .any(|(d, fields)| *d == definition && fields.contains(&field))
}

/// What kube-apiserver's round trip through Go structs does to a built-in object's empty values (JSON and
/// protobuf bodies alike, and the result of a patch or an apply): an optional plain string field sent as
/// `""` is dropped (`omitempty` on a non-pointer `string`), except the fields `EMPTY_KEPT` lists; a `null`
/// value in a map of strings (labels, annotations, ConfigMap data, `nodeSelector`) becomes `""` (Go's
/// decoder stores the zero value under the key). Nulls of declared fields are dropped by `prune`. Custom
/// resources are stored as sent, as on a real server.
pub fn drop_empty(info: &ResourceInfo, obj: &mut Value) {
    if !info.builtin {
        return;
    }
    let Some(schema) = schemas().get(&(info.group.as_str(), info.plural.as_str())) else {
        return;
    };
    empty_walk(obj, &schema.root, &schema.defs, &schema.name, 0);
}

/// A schema's definition name when it is a `$ref` (or the root's), and the schema it resolves to.
fn resolve_named<'a>(s: &'a Value, defs: &'a Map<String, Value>, name: &'a str) -> (&'a Value, &'a str) {
    let mut s = s;
    let mut name = name;
    for _ in 0..8 {
        let Some(r) = s.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some((n, d)) = r.rsplit('/').next().and_then(|n| defs.get_key_value(n)) else {
            break;
        };
        name = n.as_str();
        s = d;
    }
    (s, name)
}

/// A plain string: `type: string` without a format (times, bytes, quantities and int-or-strings decode
/// into other Go types).
fn is_plain_string(s: &Value) -> bool {
    s.get("type").and_then(Value::as_str) == Some("string") && s.get("format").is_none()
}

fn empty_walk(v: &mut Value, schema: &Value, defs: &Map<String, Value>, name: &str, depth: usize) {
    if depth > 64 {
        return;
    }
    let (schema, name) = resolve_named(schema, defs, name);
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match v {
        Value::Object(m) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let required: Vec<&str> = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                m.retain(|k, child| {
                    let Some(cs) = props.get(k) else {
                        return true;
                    };
                    let (cs, _) = resolve_named(cs, defs, "");
                    let dropped = child.as_str() == Some("")
                        && is_plain_string(cs)
                        && !required.contains(&k.as_str())
                        && !empty_kept(name, k);
                    !dropped
                });
                for (k, child) in m.iter_mut() {
                    if let Some(cs) = props.get(k) {
                        empty_walk(child, cs, defs, "", depth + 1);
                    }
                }
            } else if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let (item, _) = resolve_named(additional, defs, "");
                if item.get("type").and_then(Value::as_str) == Some("string") {
                    for child in m.values_mut() {
                        if child.is_null() {
                            *child = Value::String(String::new());
                        }
                    }
                } else {
                    for child in m.values_mut() {
                        empty_walk(child, additional, defs, "", depth + 1);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items.iter_mut() {
                    empty_walk(item, item_schema, defs, "", depth + 1);
                }
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
    fn empty_strings_and_null_map_values_come_back_as_go_encodes_them() {
        // (kind, object sent, object stored)
        let cases = [
            (
                info("", "pods"),
                json!({"metadata": {"name": "p", "generateName": "", "labels": {"a": null, "b": ""}},
                    "spec": {"serviceAccountName": "", "runtimeClassName": "", "nodeName": "",
                    "containers": [{"name": "c", "image": "i", "workingDir": "", "env": [{"name": "E", "value": ""}],
                        "securityContext": {"procMount": ""}}]}}),
                json!({"metadata": {"name": "p", "labels": {"a": "", "b": ""}},
                    "spec": {"runtimeClassName": "",
                    "containers": [{"name": "c", "image": "i", "env": [{"name": "E"}],
                        "securityContext": {"procMount": ""}}]}}),
            ),
            (
                info("", "services"),
                json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "", "type": "", "loadBalancerClass": "",
                    "ports": [{"name": "", "port": 80, "appProtocol": ""}]}}),
                json!({"metadata": {"name": "s"}, "spec": {"loadBalancerClass": "",
                    "ports": [{"port": 80, "appProtocol": ""}]}}),
            ),
            (
                info("", "persistentvolumeclaims"),
                json!({"metadata": {"name": "c"}, "spec": {"storageClassName": "", "volumeName": ""}}),
                json!({"metadata": {"name": "c"}, "spec": {"storageClassName": ""}}),
            ),
            (
                info("", "configmaps"),
                json!({"metadata": {"name": "c", "annotations": {"x": null}}, "data": {"k": null, "e": ""}}),
                json!({"metadata": {"name": "c", "annotations": {"x": ""}}, "data": {"k": "", "e": ""}}),
            ),
            (
                info("", "events"),
                json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "", "name": "p"}, "reason": "",
                    "reportingComponent": "", "reportingInstance": ""}),
                json!({"metadata": {"name": "e"}, "involvedObject": {"name": "p"},
                    "reportingComponent": "", "reportingInstance": ""}),
            ),
            (
                info("rbac.authorization.k8s.io", "rolebindings"),
                json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "", "kind": "Role", "name": "r"},
                    "subjects": [{"kind": "User", "name": "u", "apiGroup": "", "namespace": ""}]}),
                json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "", "kind": "Role", "name": "r"},
                    "subjects": [{"kind": "User", "name": "u"}]}),
            ),
            (
                info("storage.k8s.io", "storageclasses"),
                json!({"metadata": {"name": "s"}, "provisioner": "p", "reclaimPolicy": ""}),
                json!({"metadata": {"name": "s"}, "provisioner": "p", "reclaimPolicy": ""}),
            ),
        ];
        for (info, mut sent, stored) in cases {
            drop_empty(&info, &mut sent);
            assert_eq!(sent, stored, "{}", info.qualified());
        }
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
