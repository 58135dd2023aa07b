//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`): the `k8s\0` magic, the
//! `runtime.Unknown` envelope with its TypeMeta, and the object inside it, decoded with the generated types
//! of the `k8s-pb` crate and turned into the JSON the rest of the simulator speaks.
//!
//! Go encodes every non-pointer field, so a zero value on the wire means "unset" for nearly every field;
//! the conversion drops zero scalars, empty lists, maps and objects, as the JSON encoding of the decoded Go
//! struct (`omitempty`) would. Fields where a zero is meaningful (pointer fields in the Go types) are
//! listed with `keep`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_pb::api::{authentication, authorization, core, rbac};
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

use super::super::status::ApiError;

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Every protobuf body starts with these four bytes.
const MAGIC: &[u8] = b"k8s\0";

/// A Go-encoded value in JSON, or `None` where `omitempty` leaves it out.
trait ToJson {
    fn to_json(&self) -> Option<Value>;
    /// What an unset item stands for inside a list (`[{}]` is not `[]`).
    fn empty_item() -> Value {
        json!({})
    }
}

impl ToJson for String {
    fn to_json(&self) -> Option<Value> {
        (!self.is_empty()).then(|| json!(self))
    }
    fn empty_item() -> Value {
        json!("")
    }
}

impl ToJson for i32 {
    fn to_json(&self) -> Option<Value> {
        (*self != 0).then(|| json!(self))
    }
}

impl ToJson for i64 {
    fn to_json(&self) -> Option<Value> {
        (*self != 0).then(|| json!(self))
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Option<Value> {
        self.then(|| json!(true))
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self) -> Option<Value> {
        self.as_ref().and_then(ToJson::to_json)
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Option<Value> {
        (!self.is_empty()).then(|| {
            Value::Array(
                self.iter()
                    .map(|i| i.to_json().unwrap_or_else(T::empty_item))
                    .collect(),
            )
        })
    }
}

impl ToJson for BTreeMap<String, String> {
    fn to_json(&self) -> Option<Value> {
        (!self.is_empty()).then(|| Value::Object(self.iter().map(|(k, v)| (k.clone(), json!(v))).collect()))
    }
}

/// A map of bytes (Secret `data`, ConfigMap `binaryData`): base64 strings in JSON.
fn bytes_map(m: &BTreeMap<String, Vec<u8>>) -> Option<Value> {
    (!m.is_empty()).then(|| {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), json!(BASE64.encode(v))))
                .collect(),
        )
    })
}

/// A pointer field in the Go type: present on the wire means set, even to zero.
fn keep<T: Clone + Into<Value>>(v: &Option<T>) -> Option<Value> {
    v.clone().map(Into::into)
}

/// `metav1.Time`: RFC 3339 in JSON; the zero time is unset.
impl ToJson for meta::Time {
    fn to_json(&self) -> Option<Value> {
        let secs = self.seconds.unwrap_or(0);
        (secs > 0).then(|| json!(super::super::meta::rfc3339(secs as u64)))
    }
}

/// Implements `ToJson` for a generated message by listing its fields and their JSON names; an object with
/// no field set is unset.
macro_rules! message {
    ($ty:ty { $($field:ident : $name:literal $(with $conv:path)?),* $(,)? }) => {
        impl ToJson for $ty {
            fn to_json(&self) -> Option<Value> {
                let mut m = Map::new();
                $(
                    if let Some(v) = message!(@get self.$field $(, $conv)?) {
                        m.insert($name.to_string(), v);
                    }
                )*
                (!m.is_empty()).then(|| Value::Object(m))
            }
        }
    };
    (@get $e:expr) => { ToJson::to_json(&$e) };
    (@get $e:expr, $conv:path) => { $conv(&$e) };
}

message!(meta::OwnerReference {
    api_version: "apiVersion",
    kind: "kind",
    name: "name",
    uid: "uid",
    controller: "controller" with keep,
    block_owner_deletion: "blockOwnerDeletion" with keep,
});
message!(meta::ObjectMeta {
    name: "name",
    generate_name: "generateName",
    namespace: "namespace",
    uid: "uid",
    resource_version: "resourceVersion",
    generation: "generation",
    creation_timestamp: "creationTimestamp",
    deletion_timestamp: "deletionTimestamp",
    deletion_grace_period_seconds: "deletionGracePeriodSeconds" with keep,
    labels: "labels",
    annotations: "annotations",
    owner_references: "ownerReferences",
    finalizers: "finalizers",
});
message!(meta::LabelSelectorRequirement {
    key: "key",
    operator: "operator",
    values: "values"
});
message!(meta::LabelSelector {
    match_labels: "matchLabels",
    match_expressions: "matchExpressions"
});
message!(meta::Preconditions {
    uid: "uid",
    resource_version: "resourceVersion"
});
message!(meta::DeleteOptions {
    grace_period_seconds: "gracePeriodSeconds" with keep,
    preconditions: "preconditions",
    orphan_dependents: "orphanDependents" with keep,
    propagation_policy: "propagationPolicy",
    dry_run: "dryRun",
});

message!(core::v1::NamespaceSpec {
    finalizers: "finalizers"
});
message!(core::v1::Namespace {
    metadata: "metadata",
    spec: "spec"
});
message!(core::v1::Secret {
    metadata: "metadata",
    immutable: "immutable" with keep,
    data: "data" with bytes_map,
    string_data: "stringData",
    r#type: "type",
});
message!(core::v1::ConfigMap {
    metadata: "metadata",
    immutable: "immutable" with keep,
    data: "data",
    binary_data: "binaryData" with bytes_map,
});
message!(core::v1::ObjectReference {
    kind: "kind",
    namespace: "namespace",
    name: "name",
    uid: "uid",
    api_version: "apiVersion",
    resource_version: "resourceVersion",
    field_path: "fieldPath",
});
message!(core::v1::LocalObjectReference { name: "name" });
message!(core::v1::ServiceAccount {
    metadata: "metadata",
    secrets: "secrets",
    image_pull_secrets: "imagePullSecrets",
    automount_service_account_token: "automountServiceAccountToken" with keep,
});

message!(authentication::v1::BoundObjectReference {
    kind: "kind",
    api_version: "apiVersion",
    name: "name",
    u_id: "uid",
});
message!(authentication::v1::TokenRequestSpec {
    audiences: "audiences",
    expiration_seconds: "expirationSeconds" with keep,
    bound_object_ref: "boundObjectRef",
});
message!(authentication::v1::TokenRequest {
    metadata: "metadata",
    spec: "spec"
});

message!(authorization::v1::ResourceAttributes {
    namespace: "namespace",
    verb: "verb",
    group: "group",
    version: "version",
    resource: "resource",
    subresource: "subresource",
    name: "name",
});
message!(authorization::v1::NonResourceAttributes {
    path: "path",
    verb: "verb"
});
message!(authorization::v1::SelfSubjectAccessReviewSpec {
    resource_attributes: "resourceAttributes",
    non_resource_attributes: "nonResourceAttributes",
});
message!(authorization::v1::SelfSubjectAccessReview {
    metadata: "metadata",
    spec: "spec"
});
message!(authorization::v1::SelfSubjectRulesReviewSpec {
    namespace: "namespace"
});
message!(authorization::v1::SelfSubjectRulesReview {
    metadata: "metadata",
    spec: "spec"
});

message!(rbac::v1::PolicyRule {
    verbs: "verbs",
    api_groups: "apiGroups",
    resources: "resources",
    resource_names: "resourceNames",
    non_resource_ur_ls: "nonResourceURLs",
});
message!(rbac::v1::AggregationRule {
    cluster_role_selectors: "clusterRoleSelectors"
});
message!(rbac::v1::Role {
    metadata: "metadata",
    rules: "rules"
});
message!(rbac::v1::ClusterRole {
    metadata: "metadata",
    rules: "rules",
    aggregation_rule: "aggregationRule",
});
message!(rbac::v1::Subject {
    kind: "kind",
    api_group: "apiGroup",
    name: "name",
    namespace: "namespace"
});
message!(rbac::v1::RoleRef {
    api_group: "apiGroup",
    kind: "kind",
    name: "name"
});
message!(rbac::v1::RoleBinding {
    metadata: "metadata",
    subjects: "subjects",
    role_ref: "roleRef"
});
message!(rbac::v1::ClusterRoleBinding {
    metadata: "metadata",
    subjects: "subjects",
    role_ref: "roleRef"
});

message!(authentication::v1::TokenReviewSpec {
    token: "token",
    audiences: "audiences"
});
message!(authentication::v1::TokenReview {
    metadata: "metadata",
    spec: "spec"
});
message!(authentication::v1::SelfSubjectReview { metadata: "metadata" });
message!(authorization::v1::SubjectAccessReviewSpec {
    resource_attributes: "resourceAttributes",
    non_resource_attributes: "nonResourceAttributes",
    user: "user",
    groups: "groups",
    uid: "uid",
});
message!(authorization::v1::SubjectAccessReview {
    metadata: "metadata",
    spec: "spec"
});
message!(authorization::v1::LocalSubjectAccessReview {
    metadata: "metadata",
    spec: "spec"
});

/// The kinds whose protobuf encoding the simulator reads, by apiVersion and kind.
fn decode_kind(api_version: &str, kind: &str, raw: &[u8]) -> Option<Result<Value, prost::DecodeError>> {
    fn dec<T: Message + Default + ToJson>(raw: &[u8]) -> Result<Value, prost::DecodeError> {
        T::decode(raw).map(|m| m.to_json().unwrap_or_else(|| json!({})))
    }
    Some(match (api_version, kind) {
        ("v1", "Namespace") => dec::<core::v1::Namespace>(raw),
        ("v1", "Secret") => dec::<core::v1::Secret>(raw),
        ("v1", "ConfigMap") => dec::<core::v1::ConfigMap>(raw),
        ("v1", "ServiceAccount") => dec::<core::v1::ServiceAccount>(raw),
        ("v1" | "meta.k8s.io/v1", "DeleteOptions") => dec::<meta::DeleteOptions>(raw),
        ("authentication.k8s.io/v1", "TokenRequest") => dec::<authentication::v1::TokenRequest>(raw),
        ("authentication.k8s.io/v1", "TokenReview") => dec::<authentication::v1::TokenReview>(raw),
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            dec::<authentication::v1::SelfSubjectReview>(raw)
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview") => {
            dec::<authorization::v1::SubjectAccessReview>(raw)
        }
        ("authorization.k8s.io/v1", "LocalSubjectAccessReview") => {
            dec::<authorization::v1::LocalSubjectAccessReview>(raw)
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            dec::<authorization::v1::SelfSubjectAccessReview>(raw)
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            dec::<authorization::v1::SelfSubjectRulesReview>(raw)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => dec::<rbac::v1::Role>(raw),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => dec::<rbac::v1::ClusterRole>(raw),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => dec::<rbac::v1::RoleBinding>(raw),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => dec::<rbac::v1::ClusterRoleBinding>(raw),
        _ => return None,
    })
}

/// The kinds `decode` reads, for error messages and the docs.
pub const DECODED_KINDS: &str = "Namespace, Secret, ConfigMap, ServiceAccount, DeleteOptions, TokenRequest, \
     TokenReview, SelfSubjectReview, SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview, \
     LocalSubjectAccessReview, Role, ClusterRole, RoleBinding, ClusterRoleBinding";

/// Decodes a protobuf body into the JSON object it encodes, `apiVersion` and `kind` included.
pub fn decode(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    let Some(body) = bytes.strip_prefix(MAGIC) else {
        return Err(ApiError::bad_request(format!(
            "provided data does not appear to be a protobuf message, expected prefix {:?}",
            MAGIC
        )));
    };
    let unknown = Unknown::decode(body)
        .map_err(|e| ApiError::bad_request(format!("unable to decode the protobuf envelope: {e}")))?;
    if unknown.content_encoding.as_deref().is_some_and(|c| !c.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "unsupported protobuf content encoding {:?}",
            unknown.content_encoding.unwrap_or_default()
        )));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if kind.is_empty() {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in the protobuf envelope",
        ));
    }
    let raw = unknown.raw.unwrap_or_default();
    let mut obj = match decode_kind(&api_version, &kind, &raw) {
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            return Err(ApiError::bad_request(format!(
                "unable to decode {api_version}, Kind={kind} from protobuf: {e}"
            )));
        }
        None => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the simulated cluster decodes protobuf bodies for {DECODED_KINDS} only; \
                     send {api_version}, Kind={kind} as application/json"
                ),
            ));
        }
    };
    if let Some(m) = obj.as_object_mut() {
        let mut out = Map::new();
        out.insert("apiVersion".into(), json!(api_version));
        out.insert("kind".into(), json!(kind));
        out.extend(std::mem::take(m));
        *m = out;
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let u = Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(u.encode_to_vec());
        out
    }

    #[test]
    fn kubectl_create_namespace_body_decodes() {
        // The exact bytes kubectl v1.37 sends for `kubectl create namespace foo`.
        let body = b"k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x1b\n\x13\n\x03foo\x12\x00\x1a\x00\"\x00*\x002\x008\x00B\x00\x12\x00\x1a\x02\n\x00\x1a\x00\"\x00";
        let v = decode(body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}})
        );
    }

    #[test]
    fn secret_data_is_base64_and_pointer_zeroes_are_kept() {
        let s = core::v1::Secret {
            metadata: Some(meta::ObjectMeta {
                name: Some("s".into()),
                generate_name: Some(String::new()),
                labels: [("a".to_string(), "b".to_string())].into(),
                ..Default::default()
            }),
            immutable: Some(false),
            data: [("k".to_string(), b"v\x00".to_vec())].into(),
            string_data: BTreeMap::new(),
            r#type: Some("Opaque".into()),
        };
        let v = decode(&envelope("v1", "Secret", s.encode_to_vec())).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"a": "b"}},
                "immutable": false, "data": {"k": "dgA="}, "type": "Opaque"})
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_the_reason() {
        let cases: Vec<(Vec<u8>, u16, &str)> = vec![
            (b"{}".to_vec(), 400, "does not appear to be a protobuf"),
            (b"k8s\x00\xff\xff".to_vec(), 400, "envelope"),
            (envelope("v1", "", vec![]), 400, "Kind"),
            (
                envelope("v1", "Secret", vec![0x0a, 0x05, 0x01]),
                400,
                "Kind=Secret",
            ),
            (envelope("apps/v1", "Deployment", vec![]), 415, "application/json"),
        ];
        for (body, code, needle) in cases {
            let e = decode(&body).unwrap_err();
            assert_eq!(e.code, code, "{}", e.message);
            assert!(e.message.contains(needle), "{}", e.message);
        }
    }

    #[test]
    fn lists_keep_empty_items() {
        let r = rbac::v1::Role {
            metadata: None,
            rules: vec![rbac::v1::PolicyRule::default()],
        };
        let v = decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "Role",
            r.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(v["rules"], json!([{}]));
    }
}
