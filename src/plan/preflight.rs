//! Pre-flight: references in the desired objects that cannot resolve in the cluster. Pod templates name
//! Secrets, ConfigMaps, a ServiceAccount, image pull Secrets and a PriorityClass; claims name a
//! StorageClass. A reference resolves when the revision itself makes the object, or when an object of that
//! name exists live (the caller reads the names, metadata only). Each one that does not is a warning with
//! the component, the object and the field; a missing Secret a pod mounts or reads also keeps its
//! component from starting, since its pods could never run.
//!
//! Also here: custom resources of kinds the server does not serve yet, which resolve when the revision
//! carries their CustomResourceDefinition. Pure: the caller reads the cluster first.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::object::ObjectRef;
use crate::render::RenderedObject;

use super::PlanError;
use super::model::{PlanWarning, WarningKind};

/// A kind of object a pod template or a claim can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RefKind {
    Secret,
    ConfigMap,
    ServiceAccount,
    PriorityClass,
    StorageClass,
}

impl RefKind {
    pub fn api_version(self) -> &'static str {
        match self {
            RefKind::Secret | RefKind::ConfigMap | RefKind::ServiceAccount => "v1",
            RefKind::PriorityClass => "scheduling.k8s.io/v1",
            RefKind::StorageClass => "storage.k8s.io/v1",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            RefKind::Secret => "Secret",
            RefKind::ConfigMap => "ConfigMap",
            RefKind::ServiceAccount => "ServiceAccount",
            RefKind::PriorityClass => "PriorityClass",
            RefKind::StorageClass => "StorageClass",
        }
    }

    /// The resource name, as RBAC and the operator's messages say it.
    pub fn plural(self) -> &'static str {
        match self {
            RefKind::Secret => "secrets",
            RefKind::ConfigMap => "configmaps",
            RefKind::ServiceAccount => "serviceaccounts",
            RefKind::PriorityClass => "priorityclasses",
            RefKind::StorageClass => "storageclasses",
        }
    }

    pub fn cluster_scoped(self) -> bool {
        matches!(self, RefKind::PriorityClass | RefKind::StorageClass)
    }

    fn of(api_version: &str, kind: &str) -> Option<RefKind> {
        [
            RefKind::Secret,
            RefKind::ConfigMap,
            RefKind::ServiceAccount,
            RefKind::PriorityClass,
            RefKind::StorageClass,
        ]
        .into_iter()
        .find(|k| k.api_version() == api_version && k.kind() == kind)
    }
}

/// One name a desired object gives of another object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub component: String,
    pub object: ObjectRef,
    /// Where the name is written: `spec.template.spec.volumes[2].secret.secretName`.
    pub field: String,
    pub target: RefKind,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
    /// Pods cannot start without it: a Secret mounted or read into the environment.
    pub blocks_start: bool,
}

/// A check that did not run, and why (said once per kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedCheck {
    /// The resource whose names could not be read: `secrets`, `priorityclasses`.
    pub resource: String,
    pub reason: String,
}

/// The names that exist live per kind and namespace (`None` for cluster-scoped kinds), and the kinds whose
/// names could not be read.
#[derive(Debug, Clone, Default)]
pub struct LiveNames {
    names: BTreeMap<(RefKind, Option<String>), BTreeSet<String>>,
    skipped: BTreeMap<RefKind, String>,
}

impl LiveNames {
    pub fn insert(&mut self, kind: RefKind, namespace: Option<String>, names: BTreeSet<String>) {
        self.names.entry((kind, namespace)).or_default().extend(names);
    }

    /// The names of `kind` could not be read: references to it are not checked. The first reason is kept.
    pub fn skip(&mut self, kind: RefKind, reason: String) {
        self.skipped.entry(kind).or_insert(reason);
    }

    pub fn skipped(&self, kind: RefKind) -> bool {
        self.skipped.contains_key(&kind)
    }

    fn exists(&self, kind: RefKind, namespace: Option<&String>, name: &str) -> bool {
        self.names
            .get(&(kind, namespace.cloned()))
            .is_some_and(|names| names.contains(name))
    }
}

/// Objects every cluster has, never worth a warning: the namespace's own ServiceAccount (made by the
/// ServiceAccount controller with the namespace) and the built-in PriorityClasses.
fn always_there(kind: RefKind, name: &str) -> bool {
    match kind {
        RefKind::ServiceAccount => name == "default",
        RefKind::PriorityClass => matches!(name, "system-cluster-critical" | "system-node-critical"),
        _ => false,
    }
}

/// Every reference the desired objects make, in their order.
pub fn references(desired: &[RenderedObject]) -> Vec<Reference> {
    let mut out = Vec::new();
    for object in desired {
        let mut found = Found {
            object,
            out: &mut out,
        };
        let r = &object.reference;
        let body = &object.body;
        match (r.api_version.as_str(), r.kind.as_str()) {
            ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") | ("batch/v1", "Job") => {
                found.pod(body.pointer("/spec/template/spec"), "spec.template.spec");
            }
            ("batch/v1", "CronJob") => found.pod(
                body.pointer("/spec/jobTemplate/spec/template/spec"),
                "spec.jobTemplate.spec.template.spec",
            ),
            ("v1", "Pod") => found.pod(body.get("spec"), "spec"),
            ("v1", "PersistentVolumeClaim") => {
                found.storage_class(body.pointer("/spec/storageClassName"), "spec.storageClassName");
            }
            _ => {}
        }
        if (r.api_version.as_str(), r.kind.as_str()) == ("apps/v1", "StatefulSet") {
            for (i, claim) in items(body.pointer("/spec/volumeClaimTemplates")) {
                found.storage_class(
                    claim.pointer("/spec/storageClassName"),
                    &format!("spec.volumeClaimTemplates[{i}].spec.storageClassName"),
                );
            }
        }
    }
    out
}

fn items(value: Option<&Value>) -> impl Iterator<Item = (usize, &Value)> {
    value.and_then(Value::as_array).into_iter().flatten().enumerate()
}

fn optional(value: &Value) -> bool {
    value.get("optional").and_then(Value::as_bool) == Some(true)
}

struct Found<'a> {
    object: &'a RenderedObject,
    out: &'a mut Vec<Reference>,
}

impl Found<'_> {
    fn add(&mut self, target: RefKind, name: Option<&Value>, field: String, blocks_start: bool) {
        let Some(name) = name.and_then(Value::as_str).filter(|n| !n.is_empty()) else {
            return;
        };
        let namespace = if target.cluster_scoped() {
            None
        } else {
            self.object.reference.namespace.clone()
        };
        self.out.push(Reference {
            component: self.object.component.clone(),
            object: self.object.reference.clone(),
            field,
            target,
            namespace,
            name: name.to_string(),
            blocks_start,
        });
    }

    fn storage_class(&mut self, name: Option<&Value>, field: &str) {
        // An empty class asks for no class at all (static provisioning), not for a class named "".
        self.add(RefKind::StorageClass, name, field.to_string(), false);
    }

    fn pod(&mut self, spec: Option<&Value>, at: &str) {
        let Some(spec) = spec else { return };
        for (i, volume) in items(spec.get("volumes")) {
            let field = format!("{at}.volumes[{i}]");
            if let Some(secret) = volume.get("secret").filter(|s| !optional(s)) {
                self.add(
                    RefKind::Secret,
                    secret.get("secretName"),
                    format!("{field}.secret.secretName"),
                    true,
                );
            }
            if let Some(map) = volume.get("configMap").filter(|s| !optional(s)) {
                self.add(
                    RefKind::ConfigMap,
                    map.get("name"),
                    format!("{field}.configMap.name"),
                    false,
                );
            }
            for (j, source) in items(volume.pointer("/projected/sources")) {
                let field = format!("{field}.projected.sources[{j}]");
                if let Some(secret) = source.get("secret").filter(|s| !optional(s)) {
                    self.add(
                        RefKind::Secret,
                        secret.get("name"),
                        format!("{field}.secret.name"),
                        true,
                    );
                }
                if let Some(map) = source.get("configMap").filter(|s| !optional(s)) {
                    self.add(
                        RefKind::ConfigMap,
                        map.get("name"),
                        format!("{field}.configMap.name"),
                        false,
                    );
                }
            }
        }
        for list in ["initContainers", "containers"] {
            for (i, container) in items(spec.get(list)) {
                let field = format!("{at}.{list}[{i}]");
                for (j, env) in items(container.get("env")) {
                    let field = format!("{field}.env[{j}].valueFrom");
                    if let Some(key) = env.pointer("/valueFrom/secretKeyRef").filter(|s| !optional(s)) {
                        let path = format!("{field}.secretKeyRef.name");
                        self.add(RefKind::Secret, key.get("name"), path, true);
                    }
                    if let Some(key) = env.pointer("/valueFrom/configMapKeyRef").filter(|s| !optional(s)) {
                        let path = format!("{field}.configMapKeyRef.name");
                        self.add(RefKind::ConfigMap, key.get("name"), path, false);
                    }
                }
                for (j, from) in items(container.get("envFrom")) {
                    let field = format!("{field}.envFrom[{j}]");
                    if let Some(secret) = from.get("secretRef").filter(|s| !optional(s)) {
                        let path = format!("{field}.secretRef.name");
                        self.add(RefKind::Secret, secret.get("name"), path, true);
                    }
                    if let Some(map) = from.get("configMapRef").filter(|s| !optional(s)) {
                        let path = format!("{field}.configMapRef.name");
                        self.add(RefKind::ConfigMap, map.get("name"), path, false);
                    }
                }
            }
        }
        let account = spec.get("serviceAccountName");
        self.add(
            RefKind::ServiceAccount,
            account,
            format!("{at}.serviceAccountName"),
            false,
        );
        // A missing pull Secret does not stop the kubelet: it pulls without it (and a public image works).
        for (i, pull) in items(spec.get("imagePullSecrets")) {
            self.add(
                RefKind::Secret,
                pull.get("name"),
                format!("{at}.imagePullSecrets[{i}].name"),
                false,
            );
        }
        self.add(
            RefKind::PriorityClass,
            spec.get("priorityClassName"),
            format!("{at}.priorityClassName"),
            false,
        );
    }
}

/// The kinds and namespaces whose live names the check needs (`None`: a cluster-scoped kind): those of
/// references that neither always resolve nor name an object the revision makes, so that a topology that
/// makes everything it references costs no read.
pub fn needed(desired: &[RenderedObject], references: &[Reference]) -> BTreeSet<(RefKind, Option<String>)> {
    let made = made(desired);
    references
        .iter()
        .filter(|r| !always_there(r.target, &r.name))
        .filter(|r| !made.contains(&(r.target, r.namespace.as_ref(), r.name.as_str())))
        .map(|r| (r.target, r.namespace.clone()))
        .collect()
}

/// The objects of the referenced kinds the revision makes.
fn made(desired: &[RenderedObject]) -> BTreeSet<(RefKind, Option<&String>, &str)> {
    desired
        .iter()
        .filter_map(|o| {
            let r = &o.reference;
            let kind = RefKind::of(&r.api_version, &r.kind)?;
            Some((kind, r.namespace.as_ref(), r.name.as_str()))
        })
        .collect()
}

/// What the check found: a warning per reference that resolves neither to a desired nor to a live object,
/// and the checks that could not run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preflight {
    pub warnings: Vec<PlanWarning>,
    pub skipped: Vec<SkippedCheck>,
}

/// Check `references` (made by `desired`) against the desired objects and the live names.
pub fn check(desired: &[RenderedObject], references: &[Reference], live: &LiveNames) -> Preflight {
    let made = made(desired);
    let mut warnings = Vec::new();
    let mut seen = BTreeSet::new();
    for r in references {
        if always_there(r.target, &r.name)
            || live.skipped(r.target)
            || made.contains(&(r.target, r.namespace.as_ref(), r.name.as_str()))
            || live.exists(r.target, r.namespace.as_ref(), &r.name)
            || !seen.insert((&r.object, &r.field))
        {
            continue;
        }
        let whereabouts = match &r.namespace {
            Some(ns) => format!(" in namespace {ns}"),
            None => String::new(),
        };
        let consequence = if r.blocks_start {
            format!("; {} is not started until it exists", r.component)
        } else {
            String::new()
        };
        warnings.push(PlanWarning {
            reference: r.object.clone(),
            component: r.component.clone(),
            kind: WarningKind::UnresolvedReference {
                field: r.field.clone(),
                target_kind: r.target.kind().to_string(),
                name: r.name.clone(),
                namespace: r.namespace.clone(),
                blocks_apply: r.blocks_start,
            },
            message: format!(
                "{}: {} \"{}\" not found{whereabouts}{consequence}",
                r.field,
                r.target.kind(),
                r.name
            ),
        });
    }
    let skipped = live
        .skipped
        .iter()
        .filter(|(kind, _)| references.iter().any(|r| r.target == **kind))
        .map(|(kind, reason)| SkippedCheck {
            resource: kind.plural().to_string(),
            reason: reason.clone(),
        })
        .collect();
    Preflight { warnings, skipped }
}

/// The kinds (apiVersion, kind) a CustomResourceDefinition body serves.
pub fn crd_kinds(body: &Value) -> Vec<(String, String)> {
    let group = body.pointer("/spec/group").and_then(Value::as_str).unwrap_or("");
    let kind = body
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    if group.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    items(body.pointer("/spec/versions"))
        .filter(|(_, v)| v.get("served").and_then(Value::as_bool) != Some(false))
        .filter_map(|(_, v)| v.get("name").and_then(Value::as_str))
        .map(|version| (format!("{group}/{version}"), kind.to_string()))
        .collect()
}

pub fn is_crd(r: &ObjectRef) -> bool {
    r.kind == "CustomResourceDefinition" && r.api_version.starts_with("apiextensions.k8s.io/")
}

/// Of the desired objects whose kind the server does not serve (`unserved`), those a desired
/// CustomResourceDefinition defines are to be created after it; any other is an error naming the object
/// and the kind.
pub fn check_unserved(
    desired: &[RenderedObject],
    unserved: &BTreeSet<(String, String)>,
) -> Result<(), PlanError> {
    let defined: BTreeSet<(String, String)> = desired
        .iter()
        .filter(|o| is_crd(&o.reference))
        .flat_map(|o| crd_kinds(&o.body))
        .collect();
    for object in desired {
        let r = &object.reference;
        let kind = (r.api_version.clone(), r.kind.clone());
        if unserved.contains(&kind) && !defined.contains(&kind) {
            return Err(PlanError::UnservedKind {
                reference: r.to_string(),
                kind: format!("{} {}", r.kind, r.api_version),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::fixtures::mk_ref;
    use crate::render::Stage;

    fn obj(component: &str, api_version: &str, kind: &str, name: &str, body: Value) -> RenderedObject {
        let namespaced = !matches!(
            kind,
            "CustomResourceDefinition" | "PriorityClass" | "StorageClass"
        );
        RenderedObject {
            component: component.into(),
            stage: Stage::Workload,
            reference: mk_ref(api_version, kind, namespaced.then_some("openstack"), name),
            step: 0,
            timeout: None,
            hash: String::new(),
            body,
            secret: None,
        }
    }

    fn keystone_api() -> RenderedObject {
        obj(
            "keystone",
            "apps/v1",
            "Deployment",
            "keystone-api",
            json!({"spec": {"template": {"spec": {
                "serviceAccountName": "keystone",
                "priorityClassName": "openstack-high",
                "imagePullSecrets": [{"name": "registry"}],
                "volumes": [
                    {"name": "config", "configMap": {"name": "keystone-config"}},
                    {"name": "fernet", "secret": {"secretName": "keystone-fernet"}},
                    {"name": "db", "secret": {"secretName": "keystone-db"}},
                    {"name": "maybe", "secret": {"secretName": "maybe", "optional": true}},
                    {"name": "all", "projected": {"sources": [{"secret": {"name": "proj"}}, {"configMap": {"name": "proj-cm"}}]}}
                ],
                "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "env-all"}}, {"configMapRef": {"name": "opt", "optional": true}}]}],
                "containers": [{"name": "api", "env": [
                    {"name": "A", "value": "x"},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "keystone-admin", "key": "password"}}},
                    {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}},
                    {"name": "D", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": true}}}
                ]}]
            }}}}),
        )
    }

    #[test]
    fn every_reference_of_a_pod_template_is_found_with_its_field() {
        let found: Vec<(String, RefKind, String, bool)> = references(&[keystone_api()])
            .into_iter()
            .map(|r| (r.field, r.target, r.name, r.blocks_start))
            .collect();
        let at = "spec.template.spec";
        let want = vec![
            (
                format!("{at}.volumes[0].configMap.name"),
                RefKind::ConfigMap,
                "keystone-config",
                false,
            ),
            (
                format!("{at}.volumes[1].secret.secretName"),
                RefKind::Secret,
                "keystone-fernet",
                true,
            ),
            (
                format!("{at}.volumes[2].secret.secretName"),
                RefKind::Secret,
                "keystone-db",
                true,
            ),
            (
                format!("{at}.volumes[4].projected.sources[0].secret.name"),
                RefKind::Secret,
                "proj",
                true,
            ),
            (
                format!("{at}.volumes[4].projected.sources[1].configMap.name"),
                RefKind::ConfigMap,
                "proj-cm",
                false,
            ),
            (
                format!("{at}.initContainers[0].envFrom[0].secretRef.name"),
                RefKind::Secret,
                "env-all",
                true,
            ),
            (
                format!("{at}.containers[0].env[1].valueFrom.secretKeyRef.name"),
                RefKind::Secret,
                "keystone-admin",
                true,
            ),
            (
                format!("{at}.containers[0].env[2].valueFrom.configMapKeyRef.name"),
                RefKind::ConfigMap,
                "settings",
                false,
            ),
            (
                format!("{at}.serviceAccountName"),
                RefKind::ServiceAccount,
                "keystone",
                false,
            ),
            (
                format!("{at}.imagePullSecrets[0].name"),
                RefKind::Secret,
                "registry",
                false,
            ),
            (
                format!("{at}.priorityClassName"),
                RefKind::PriorityClass,
                "openstack-high",
                false,
            ),
        ];
        let want: Vec<(String, RefKind, String, bool)> = want
            .into_iter()
            .map(|(f, k, n, b)| (f, k, n.to_string(), b))
            .collect();
        assert_eq!(found, want);
    }

    #[test]
    fn claims_name_storage_classes_and_an_empty_class_is_none() {
        let set = obj(
            "mariadb",
            "apps/v1",
            "StatefulSet",
            "mariadb",
            json!({"spec": {"template": {"spec": {}}, "volumeClaimTemplates": [
                {"spec": {"storageClassName": "fast"}}, {"spec": {"storageClassName": ""}}]}}),
        );
        let claim = obj(
            "glance",
            "v1",
            "PersistentVolumeClaim",
            "images",
            json!({"spec": {"storageClassName": "slow"}}),
        );
        let found: Vec<(String, Option<String>, String)> = references(&[set, claim])
            .into_iter()
            .map(|r| (r.field, r.namespace, r.name))
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    "spec.volumeClaimTemplates[0].spec.storageClassName".into(),
                    None,
                    "fast".into()
                ),
                ("spec.storageClassName".into(), None, "slow".into()),
            ]
        );
    }

    #[test]
    fn a_reference_resolves_to_a_desired_or_live_object_and_skipped_kinds_are_said_once() {
        let secret = obj("keystone", "v1", "Secret", "keystone-fernet", json!({}));
        let desired = vec![keystone_api(), secret];
        let refs = references(&desired);
        let mut live = LiveNames::default();
        let ns = Some("openstack".to_string());
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect();
        live.insert(
            RefKind::Secret,
            ns.clone(),
            names(&["keystone-admin", "proj", "env-all", "registry"]),
        );
        live.insert(
            RefKind::ConfigMap,
            ns.clone(),
            names(&["keystone-config", "proj-cm", "settings"]),
        );
        // Names in another namespace do not count.
        live.insert(
            RefKind::ServiceAccount,
            Some("other".into()),
            names(&["keystone"]),
        );
        live.skip(RefKind::PriorityClass, "list not granted".into());
        live.skip(RefKind::StorageClass, "list not granted".into());
        // What the revision makes is not read.
        let needed: Vec<(RefKind, Option<String>)> = needed(&desired, &refs).into_iter().collect();
        assert_eq!(
            needed,
            vec![
                (RefKind::Secret, ns.clone()),
                (RefKind::ConfigMap, ns.clone()),
                (RefKind::ServiceAccount, ns.clone()),
                (RefKind::PriorityClass, None),
            ]
        );
        let found = check(&desired, &refs, &live);
        let messages: Vec<(&str, &str)> = found
            .warnings
            .iter()
            .map(|w| (w.component.as_str(), w.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            vec![
                (
                    "keystone",
                    "spec.template.spec.volumes[2].secret.secretName: Secret \"keystone-db\" not found in \
                     namespace openstack; keystone is not started until it exists"
                ),
                (
                    "keystone",
                    "spec.template.spec.serviceAccountName: ServiceAccount \"keystone\" not found in namespace \
                     openstack"
                ),
            ]
        );
        assert_eq!(
            found.warnings[0].kind,
            WarningKind::UnresolvedReference {
                field: "spec.template.spec.volumes[2].secret.secretName".into(),
                target_kind: "Secret".into(),
                name: "keystone-db".into(),
                namespace: ns,
                blocks_apply: true,
            }
        );
        // Only the kinds something referenced are reported as skipped.
        assert_eq!(
            found.skipped,
            vec![SkippedCheck {
                resource: "priorityclasses".into(),
                reason: "list not granted".into()
            }]
        );
    }

    #[test]
    fn the_default_service_account_and_system_priority_classes_need_no_read() {
        let pod = obj(
            "x",
            "v1",
            "Pod",
            "p",
            json!({"spec": {"serviceAccountName": "default", "priorityClassName": "system-node-critical"}}),
        );
        let refs = references(std::slice::from_ref(&pod));
        assert_eq!(refs.len(), 2);
        assert!(needed(std::slice::from_ref(&pod), &refs).is_empty());
        assert!(check(&[pod], &refs, &LiveNames::default()).warnings.is_empty());
    }

    #[test]
    fn custom_resources_of_a_desired_crd_are_allowed_and_others_are_an_error() {
        let crd = obj(
            "widgets",
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "widgets.example.com",
            json!({"spec": {"group": "example.com", "names": {"kind": "Widget"},
                "versions": [{"name": "v1", "served": true}, {"name": "v0", "served": false}]}}),
        );
        let widget = obj("widgets", "example.com/v1", "Widget", "w", json!({}));
        let old = obj("widgets", "example.com/v0", "Widget", "old", json!({}));
        assert_eq!(
            crd_kinds(&crd.body),
            vec![("example.com/v1".to_string(), "Widget".to_string())]
        );
        let unserved: BTreeSet<(String, String)> = [
            ("example.com/v1".to_string(), "Widget".to_string()),
            ("example.com/v0".to_string(), "Widget".to_string()),
        ]
        .into();
        assert!(check_unserved(&[crd.clone(), widget.clone()], &unserved).is_ok());
        let err = check_unserved(&[crd, widget, old], &unserved)
            .expect_err("a kind no CRD serves")
            .to_string();
        assert_eq!(
            err,
            "desired object Widget openstack/old: kind Widget example.com/v0 is served by no \
             CustomResourceDefinition, in the cluster or in this revision; add its CRD to the topology's \
             manifests or install it first"
        );
    }
}
