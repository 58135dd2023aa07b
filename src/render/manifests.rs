//! A component's raw Kubernetes manifests: applied as written, plus ownership labels and the
//! topology namespace where the object is namespaced and names none.

use serde_json::{Map, Value};

use crate::topology::policy::{self, Scope};

use super::{Ctx, RenderError, Stage};
use crate::object::{ANNOTATION_HASH, ANNOTATION_REVISION};

/// Whether objects of this apiVersion and kind live outside namespaces. Kinds Keelson does not know
/// (custom resources, which the policy must list) are taken as namespaced, the common case.
pub fn is_cluster_scoped(api_version: &str, kind: &str) -> bool {
    policy::scope(api_version, kind) == Scope::Cluster
}

pub fn render(ctx: &Ctx<'_>) -> Result<Vec<(Stage, Value)>, RenderError> {
    ctx.component
        .manifests
        .iter()
        .map(|m| one(ctx, &m.file, m.line, &m.object).map(|v| (Stage::Config, v)))
        .collect()
}

fn one(ctx: &Ctx<'_>, file: &str, line: usize, object: &Value) -> Result<Value, RenderError> {
    let err = |reason: &str| RenderError::Manifest {
        component: ctx.component.name.clone(),
        file: file.to_string(),
        line,
        reason: reason.to_string(),
    };
    let mut body = object.clone();
    let Some(root) = body.as_object_mut() else {
        return Err(err("not a mapping"));
    };
    let api_version = root
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| err("apiVersion missing"))?
        .to_string();
    let kind = root
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| err("kind missing"))?
        .to_string();
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return Err(err("metadata is not a mapping"));
    };
    match meta.get("name") {
        Some(Value::String(n)) if !n.is_empty() => {}
        _ => return Err(err("metadata.name missing")),
    }
    if is_cluster_scoped(&api_version, &kind) {
        if meta.contains_key("namespace") {
            return Err(err(&format!("{kind} is cluster-scoped but names a namespace")));
        }
    } else if !meta.contains_key("namespace") {
        meta.insert("namespace".into(), Value::String(ctx.namespace().to_string()));
    }
    let labels = meta.entry("labels").or_insert_with(|| Value::Object(Map::new()));
    let Some(labels) = labels.as_object_mut() else {
        return Err(err("metadata.labels is not a mapping"));
    };
    // Ownership labels win over what the file says: they decide what Keelson may prune.
    for (k, v) in ctx.labels() {
        labels.insert(k, v);
    }
    if let Some(annotations) = meta.get_mut("annotations") {
        let Some(annotations) = annotations.as_object_mut() else {
            return Err(err("metadata.annotations is not a mapping"));
        };
        annotations.remove(ANNOTATION_HASH);
        annotations.remove(ANNOTATION_REVISION);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_decided_by_group_and_kind() {
        let cases = [
            ("v1", "Namespace", true),
            ("v1", "ConfigMap", false),
            ("rbac.authorization.k8s.io/v1", "ClusterRole", true),
            ("rbac.authorization.k8s.io/v1", "Role", false),
            ("policy/v1", "PodDisruptionBudget", false),
            ("example.com/v1", "Namespace", false),
        ];
        for (api, kind, expected) in cases {
            assert_eq!(is_cluster_scoped(api, kind), expected, "{api} {kind}");
        }
    }
}
