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
use k8s_pb::api::{apps, authentication, authorization, batch, core, networking, policy, rbac};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
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

/// Whether a decoded message carries something the conversion to JSON leaves out: the JSON path of the
/// first such field, so a body is refused rather than stored without it.
trait Carried {
    fn uncarried(&self, path: &str) -> Option<String>;
}

/// Values the conversion carries whole.
macro_rules! carried_whole {
    ($($ty:ty),*) => {
        $(impl Carried for $ty {
            fn uncarried(&self, _: &str) -> Option<String> {
                None
            }
        })*
    };
}
carried_whole!(String, i32, i64, bool, u8, meta::Time, Quantity, IntOrString);

impl<T: Carried> Carried for Option<T> {
    fn uncarried(&self, path: &str) -> Option<String> {
        self.as_ref().and_then(|v| v.uncarried(path))
    }
}

impl<T: Carried> Carried for Vec<T> {
    fn uncarried(&self, path: &str) -> Option<String> {
        self.iter()
            .enumerate()
            .find_map(|(i, v)| v.uncarried(&format!("{path}[{i}]")))
    }
}

impl<T: Carried> Carried for BTreeMap<String, T> {
    fn uncarried(&self, path: &str) -> Option<String> {
        self.iter()
            .find_map(|(k, v)| v.uncarried(&format!("{path}[{k:?}]")))
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// One field of a protobuf encoding: its tag, its whole bytes (key included), and whether its value is
/// the zero Go writes for an unset non-pointer field (0, false, "", an empty message, recursively).
struct WireField<'a> {
    tag: u64,
    bytes: &'a [u8],
    zero: bool,
}

fn read_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn wire_fields(b: &[u8], depth: usize) -> Option<Vec<WireField<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let start = at;
        let key = read_varint(b, &mut at)?;
        let zero = match key & 7 {
            0 => read_varint(b, &mut at)? == 0,
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                let v = b.get(at..at + n)?;
                at += n;
                v.iter().all(|x| *x == 0)
            }
            2 => {
                let len = usize::try_from(read_varint(b, &mut at)?).ok()?;
                let v = b.get(at..at.checked_add(len)?)?;
                at += len;
                v.is_empty()
                    || (depth < 32 && wire_fields(v, depth + 1).is_some_and(|f| f.iter().all(|f| f.zero)))
            }
            _ => return None,
        };
        if key >> 3 == 0 {
            return None;
        }
        out.push(WireField {
            tag: key >> 3,
            bytes: &b[start..at],
            zero,
        });
    }
    Some(out)
}

/// The JSON name of the first field set in `m` (not at Go's zero value), named from the generated type's
/// field (`host_network` -> `hostNetwork`), or by its protobuf tag if that fails.
fn first_set_field<M: Message + Default + std::fmt::Debug>(m: &M) -> Option<String> {
    let bytes = m.encode_to_vec();
    let fields = wire_fields(&bytes, 0)?;
    let field = fields.iter().find(|f| !f.zero)?;
    let only = M::decode(field.bytes).ok();
    let name = only.and_then(|o| set_field_name(&format!("{o:?}")));
    Some(name.unwrap_or_else(|| {
        let ty = std::any::type_name::<M>()
            .rsplit("::")
            .next()
            .unwrap_or("message");
        format!("<{ty} field {}>", field.tag)
    }))
}

/// In `Type { a: None, b: [], c: Some(..), d: {} }` (a message's Debug form with one field set), the
/// set field's name, in camelCase.
fn set_field_name(debug: &str) -> Option<String> {
    let inner = debug.split_once('{')?.1.strip_suffix('}')?;
    let mut depth = 0i32;
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    let mut entries = Vec::new();
    for (i, c) in inner.char_indices() {
        if quoted {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth -= 1,
            ',' if depth == 0 => {
                entries.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(&inner[start..]);
    let set = entries.iter().find_map(|e| {
        let (name, value) = e.split_once(':')?;
        (!matches!(value.trim(), "None" | "[]" | "{}" | "")).then(|| name.trim())
    })?;
    let mut out = String::new();
    let mut upper = false;
    for c in set.trim_start_matches("r#").chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// A pointer field in the Go type: present on the wire means set, even to zero.
fn keep<T: Clone + Into<Value>>(v: &Option<T>) -> Option<Value> {
    v.clone().map(Into::into)
}

/// `intstr.IntOrString`: a number or a string in JSON; the zero value (0 or "") is unset, as the
/// defaulting of the fields that hold it by value treats it.
impl ToJson for IntOrString {
    fn to_json(&self) -> Option<Value> {
        int_or_string(self).filter(|v| *v != json!(0) && *v != json!(""))
    }
}

fn int_or_string(v: &IntOrString) -> Option<Value> {
    match v.r#type {
        Some(1) => Some(json!(v.str_val.clone().unwrap_or_default())),
        _ => Some(json!(v.int_val.unwrap_or(0))),
    }
}

/// A `*intstr.IntOrString` (a PodDisruptionBudget's `minAvailable`, a rolling update's `maxSurge`):
/// present means set, even to 0.
fn keep_int_or_string(v: &Option<IntOrString>) -> Option<Value> {
    v.as_ref().and_then(int_or_string)
}

/// `resource.Quantity`: its string form.
impl ToJson for Quantity {
    fn to_json(&self) -> Option<Value> {
        self.string.clone().filter(|q| !q.is_empty()).map(Value::String)
    }
}

impl ToJson for BTreeMap<String, Quantity> {
    fn to_json(&self) -> Option<Value> {
        (!self.is_empty()).then(|| {
            Value::Object(
                self.iter()
                    .map(|(k, v)| (k.clone(), v.to_json().unwrap_or_else(|| json!("0"))))
                    .collect(),
            )
        })
    }
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
        impl Carried for $ty {
            fn uncarried(&self, path: &str) -> Option<String> {
                // What is left once the fields the conversion reads are cleared must be unset.
                #[allow(clippy::needless_update)]
                let residue = Self {
                    $($field: Default::default(),)*
                    ..self.clone()
                };
                if let Some(name) = first_set_field(&residue) {
                    return Some(join(path, &name));
                }
                $(
                    if let Some(p) = Carried::uncarried(&self.$field, &join(path, $name)) {
                        return Some(p);
                    }
                )*
                None
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

// The workloads, Services, Pods, PodDisruptionBudgets and Ingresses kubectl's imperative commands make
// (`create deployment|job|service|poddisruptionbudget|ingress`, `expose`, `run`): every field their flags
// set, and the common fields around them. A body that sets any other field is refused (`Carried`).
message!(core::v1::ContainerPort {
    name: "name",
    host_port: "hostPort",
    container_port: "containerPort",
    protocol: "protocol",
    host_ip: "hostIP",
});
message!(core::v1::EnvVar {
    name: "name",
    value: "value"
});
message!(core::v1::ResourceRequirements {
    limits: "limits",
    requests: "requests"
});
message!(core::v1::SecurityContext {
    privileged: "privileged" with keep,
    run_as_user: "runAsUser" with keep,
    run_as_group: "runAsGroup" with keep,
    run_as_non_root: "runAsNonRoot" with keep,
    read_only_root_filesystem: "readOnlyRootFilesystem" with keep,
    allow_privilege_escalation: "allowPrivilegeEscalation" with keep,
});
message!(core::v1::Container {
    name: "name",
    image: "image",
    command: "command",
    args: "args",
    working_dir: "workingDir",
    ports: "ports",
    env: "env",
    resources: "resources",
    termination_message_path: "terminationMessagePath",
    termination_message_policy: "terminationMessagePolicy",
    image_pull_policy: "imagePullPolicy",
    security_context: "securityContext",
    stdin: "stdin",
    stdin_once: "stdinOnce",
    tty: "tty",
});
message!(core::v1::PodSpec {
    containers: "containers",
    init_containers: "initContainers",
    restart_policy: "restartPolicy",
    termination_grace_period_seconds: "terminationGracePeriodSeconds" with keep,
    active_deadline_seconds: "activeDeadlineSeconds" with keep,
    dns_policy: "dnsPolicy",
    node_selector: "nodeSelector",
    service_account_name: "serviceAccountName",
    service_account: "serviceAccount",
    node_name: "nodeName",
    image_pull_secrets: "imagePullSecrets",
    hostname: "hostname",
    subdomain: "subdomain",
    scheduler_name: "schedulerName",
    priority_class_name: "priorityClassName",
});
message!(core::v1::PodTemplateSpec {
    metadata: "metadata",
    spec: "spec"
});
message!(core::v1::Pod {
    metadata: "metadata",
    spec: "spec"
});
message!(core::v1::ServicePort {
    name: "name",
    protocol: "protocol",
    app_protocol: "appProtocol" with keep,
    port: "port",
    target_port: "targetPort",
    node_port: "nodePort",
});
message!(core::v1::ServiceSpec {
    ports: "ports",
    selector: "selector",
    cluster_ip: "clusterIP",
    cluster_ips: "clusterIPs",
    r#type: "type",
    external_ips: "externalIPs",
    session_affinity: "sessionAffinity",
    load_balancer_ip: "loadBalancerIP",
    external_name: "externalName",
    external_traffic_policy: "externalTrafficPolicy",
});
message!(core::v1::Service {
    metadata: "metadata",
    spec: "spec"
});
message!(apps::v1::RollingUpdateDeployment {
    max_unavailable: "maxUnavailable" with keep_int_or_string,
    max_surge: "maxSurge" with keep_int_or_string,
});
message!(apps::v1::DeploymentStrategy {
    r#type: "type",
    rolling_update: "rollingUpdate"
});
message!(apps::v1::DeploymentSpec {
    replicas: "replicas" with keep,
    selector: "selector",
    template: "template",
    strategy: "strategy",
    min_ready_seconds: "minReadySeconds",
    revision_history_limit: "revisionHistoryLimit" with keep,
    paused: "paused",
    progress_deadline_seconds: "progressDeadlineSeconds" with keep,
});
message!(apps::v1::Deployment {
    metadata: "metadata",
    spec: "spec"
});
message!(batch::v1::JobSpec {
    parallelism: "parallelism" with keep,
    completions: "completions" with keep,
    active_deadline_seconds: "activeDeadlineSeconds" with keep,
    backoff_limit: "backoffLimit" with keep,
    selector: "selector",
    manual_selector: "manualSelector" with keep,
    template: "template",
    ttl_seconds_after_finished: "ttlSecondsAfterFinished" with keep,
    suspend: "suspend" with keep,
});
message!(batch::v1::Job {
    metadata: "metadata",
    spec: "spec"
});
message!(policy::v1::PodDisruptionBudgetSpec {
    min_available: "minAvailable" with keep_int_or_string,
    selector: "selector",
    max_unavailable: "maxUnavailable" with keep_int_or_string,
    unhealthy_pod_eviction_policy: "unhealthyPodEvictionPolicy" with keep,
});
message!(policy::v1::PodDisruptionBudget {
    metadata: "metadata",
    spec: "spec"
});
message!(networking::v1::ServiceBackendPort {
    name: "name",
    number: "number"
});
message!(networking::v1::IngressServiceBackend {
    name: "name",
    port: "port"
});
message!(core::v1::TypedLocalObjectReference {
    api_group: "apiGroup" with keep,
    kind: "kind",
    name: "name",
});
message!(networking::v1::IngressBackend {
    service: "service",
    resource: "resource"
});
message!(networking::v1::HttpIngressPath {
    path: "path",
    path_type: "pathType" with keep,
    backend: "backend",
});
message!(networking::v1::HttpIngressRuleValue { paths: "paths" });
message!(networking::v1::IngressRuleValue { http: "http" });
message!(networking::v1::IngressTls {
    hosts: "hosts",
    secret_name: "secretName"
});
message!(networking::v1::IngressSpec {
    ingress_class_name: "ingressClassName" with keep,
    default_backend: "defaultBackend",
    tls: "tls",
    rules: "rules",
});
message!(networking::v1::Ingress {
    metadata: "metadata",
    spec: "spec"
});

/// An Ingress rule: its `IngressRuleValue` is inlined in JSON (`http` beside `host`).
impl ToJson for networking::v1::IngressRule {
    fn to_json(&self) -> Option<Value> {
        let mut m = Map::new();
        if let Some(h) = self.host.to_json() {
            m.insert("host".into(), h);
        }
        if let Some(Value::Object(inline)) = self.ingress_rule_value.to_json() {
            m.extend(inline);
        }
        (!m.is_empty()).then(|| Value::Object(m))
    }
}

impl Carried for networking::v1::IngressRule {
    fn uncarried(&self, path: &str) -> Option<String> {
        self.ingress_rule_value.uncarried(path)
    }
}

/// The kinds whose protobuf encoding the simulator reads, by apiVersion and kind.
fn decode_kind(api_version: &str, kind: &str, raw: &[u8]) -> Option<Result<Value, Refusal>> {
    fn dec<T: Message + Default + ToJson + Carried>(raw: &[u8]) -> Result<Value, Refusal> {
        let m = T::decode(raw).map_err(Refusal::Decode)?;
        if let Some(path) = m.uncarried("") {
            return Err(Refusal::Uncarried(path));
        }
        Ok(m.to_json().unwrap_or_else(|| json!({})))
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
        ("v1", "Pod") => dec::<core::v1::Pod>(raw),
        ("v1", "Service") => dec::<core::v1::Service>(raw),
        ("apps/v1", "Deployment") => dec::<apps::v1::Deployment>(raw),
        ("batch/v1", "Job") => dec::<batch::v1::Job>(raw),
        ("policy/v1", "PodDisruptionBudget") => dec::<policy::v1::PodDisruptionBudget>(raw),
        ("networking.k8s.io/v1", "Ingress") => dec::<networking::v1::Ingress>(raw),
        _ => return None,
    })
}

/// Why a protobuf object is not read.
enum Refusal {
    Decode(prost::DecodeError),
    /// A field the conversion does not carry is set, at this JSON path.
    Uncarried(String),
}

/// The kinds `decode` reads, for error messages and the docs.
pub const DECODED_KINDS: &str = "Namespace, Secret, ConfigMap, ServiceAccount, DeleteOptions, TokenRequest, \
     TokenReview, SelfSubjectReview, SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview, \
     LocalSubjectAccessReview, Role, ClusterRole, RoleBinding, ClusterRoleBinding, Pod, Service, Deployment, \
     Job, PodDisruptionBudget, Ingress";

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
        Some(Err(Refusal::Decode(e))) => {
            return Err(ApiError::bad_request(format!(
                "unable to decode {api_version}, Kind={kind} from protobuf: {e}"
            )));
        }
        Some(Err(Refusal::Uncarried(path))) => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "{api_version}, Kind={kind}: field {path} is set, which the simulated cluster does not \
                     read from protobuf; send the object as application/json"
                ),
            ));
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
            (
                envelope("apps/v1", "StatefulSet", vec![]),
                415,
                "application/json",
            ),
        ];
        for (body, code, needle) in cases {
            let e = decode(&body).unwrap_err();
            assert_eq!(e.code, code, "{}", e.message);
            assert!(e.message.contains(needle), "{}", e.message);
        }
    }

    fn pod(spec: core::v1::PodSpec) -> Vec<u8> {
        let p = core::v1::Pod {
            metadata: Some(meta::ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            }),
            spec: Some(spec),
            status: Some(core::v1::PodStatus::default()),
        };
        envelope("v1", "Pod", p.encode_to_vec())
    }

    #[test]
    fn workloads_decode_with_go_zeroes_unset_and_pointer_zeroes_kept() {
        // As Go encodes `kubectl create deployment web --image=nginx --replicas=0 --port=80`: every
        // non-pointer field is on the wire at its zero value.
        let container = core::v1::Container {
            name: Some("nginx".into()),
            image: Some("nginx".into()),
            working_dir: Some(String::new()),
            ports: vec![core::v1::ContainerPort {
                container_port: Some(80),
                host_port: Some(0),
                ..Default::default()
            }],
            resources: Some(core::v1::ResourceRequirements::default()),
            stdin: Some(false),
            ..Default::default()
        };
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let d = apps::v1::Deployment {
            metadata: Some(meta::ObjectMeta {
                name: Some("web".into()),
                labels: labels.clone(),
                creation_timestamp: Some(meta::Time::default()),
                ..Default::default()
            }),
            spec: Some(apps::v1::DeploymentSpec {
                replicas: Some(0),
                selector: Some(meta::LabelSelector {
                    match_labels: labels.clone(),
                    ..Default::default()
                }),
                template: Some(core::v1::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta {
                        labels,
                        ..Default::default()
                    }),
                    spec: Some(core::v1::PodSpec {
                        containers: vec![container],
                        host_network: Some(false),
                        restart_policy: Some(String::new()),
                        ..Default::default()
                    }),
                }),
                strategy: Some(apps::v1::DeploymentStrategy::default()),
                min_ready_seconds: Some(0),
                paused: Some(false),
                ..Default::default()
            }),
            status: Some(apps::v1::DeploymentStatus::default()),
        };
        let v = decode(&envelope("apps/v1", "Deployment", d.encode_to_vec())).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                        {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}})
        );
    }

    #[test]
    fn a_field_the_conversion_does_not_read_is_refused_by_name() {
        let cases = [
            (
                core::v1::PodSpec {
                    share_process_namespace: Some(true),
                    ..Default::default()
                },
                "spec.shareProcessNamespace",
            ),
            (
                core::v1::PodSpec {
                    containers: vec![
                        core::v1::Container::default(),
                        core::v1::Container {
                            liveness_probe: Some(core::v1::Probe {
                                period_seconds: Some(3),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                "spec.containers[1].livenessProbe",
            ),
            (
                core::v1::PodSpec {
                    containers: vec![core::v1::Container {
                        security_context: Some(core::v1::SecurityContext {
                            capabilities: Some(core::v1::Capabilities {
                                add: vec!["NET_ADMIN".into()],
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                "spec.containers[0].securityContext.capabilities",
            ),
        ];
        for (spec, field) in cases {
            let e = decode(&pod(spec)).unwrap_err();
            assert_eq!(e.code, 415, "{}", e.message);
            assert_eq!(
                e.message,
                format!(
                    "v1, Kind=Pod: field {field} is set, which the simulated cluster does not read from \
                     protobuf; send the object as application/json"
                )
            );
        }
        // Zero values of fields the conversion does not read are what Go writes when they are unset.
        let zeroes = core::v1::PodSpec {
            share_process_namespace: Some(false),
            security_context: Some(core::v1::PodSecurityContext::default()),
            ..Default::default()
        };
        assert!(decode(&pod(zeroes)).is_ok());
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
