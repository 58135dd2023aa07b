//! Custom resources: validating a CustomResourceDefinition, its status, and serving (or no longer serving)
//! the kinds it defines.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::resources::{ResKey, ResourceInfo};
use super::State;
use super::write::Managed;
use crate::sim::request::Target;

/// From a CustomResourceDefinition's creation until it is Established and its kinds are served. A real
/// API server takes a moment too (its establishing controller runs after the names are accepted), and
/// clients must wait for `Established` before they use the kind.
pub(super) const ESTABLISH_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

impl State {
    /// Establish the definitions whose time has come: their status says `Established=True` (a status
    /// write, seen by watches) and their kinds join discovery.
    pub(super) fn establish_crds(&mut self, now: std::time::Instant) {
        let due: Vec<String> = self
            .crds_installing
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            self.crds_installing.remove(&name);
            let info = self.info("apiextensions.k8s.io", "customresourcedefinitions");
            let Some(current) = self.store.get(&info.key(), "", &name).cloned() else {
                continue;
            };
            self.crds_established.insert(name.clone());
            let t = Target {
                info,
                namespace: None,
                name: Some(name),
                sub: Some("status".into()),
            };
            let body = Value::clone(&current);
            let _ = self.commit(&t, Some(current), body, Managed::Update("kube-apiserver"), false);
        }
    }

    /// When the next definition becomes Established.
    pub(super) fn next_establishing(&self) -> Option<std::time::Instant> {
        self.crds_installing.values().min().copied()
    }

    pub(super) fn register_crd(&mut self, crd: &Value) {
        let spec = &crd["spec"];
        let group = spec["group"].as_str().unwrap_or("").to_string();
        let names = &spec["names"];
        let plural = names["plural"].as_str().unwrap_or("").to_string();
        self.registry.remove_resource(&group, &plural);
        for v in spec["versions"].as_array().cloned().unwrap_or_default() {
            if v["served"] == json!(false) {
                continue;
            }
            let mut list_keys = BTreeMap::new();
            let mut list_sets = Vec::new();
            collect_list_types(
                &v["schema"]["openAPIV3Schema"],
                &mut Vec::new(),
                &mut list_keys,
                &mut list_sets,
            );
            self.registry.insert(ResourceInfo {
                group: group.clone(),
                version: v["name"].as_str().unwrap_or("").to_string(),
                kind: names["kind"].as_str().unwrap_or("").to_string(),
                plural: plural.clone(),
                singular: names["singular"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| names["kind"].as_str().unwrap_or("").to_lowercase()),
                namespaced: spec["scope"] == "Namespaced",
                short_names: names["shortNames"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                    .unwrap_or_default(),
                categories: names["categories"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                    .unwrap_or_default(),
                has_status: !v["subresources"]["status"].is_null(),
                has_scale: false,
                builtin: false,
                list_keys,
                list_sets,
                create_only: false,
                has_token: false,
            });
        }
    }

    /// The CRD is gone: its kinds are no longer served and their objects go with it.
    pub(super) fn unregister_crd(&mut self, last: &Value) {
        if let Some(name) = last["metadata"]["name"].as_str() {
            self.crds_established.remove(name);
            self.crds_installing.remove(name);
        }
        let group = last["spec"]["group"].as_str().unwrap_or("").to_string();
        let plural = last["spec"]["names"]["plural"].as_str().unwrap_or("").to_string();
        self.registry.remove_resource(&group, &plural);
        let key = ResKey { group, plural };
        let names: Vec<(String, String)> = self
            .store
            .list(&key, None)
            .map(|o| {
                (
                    o["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
                    o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        for (n, nm) in names {
            self.store.remove(&key, &n, &nm);
        }
    }
}

pub(super) fn validate_crd(obj: &Value, name: &str) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    let kind = spec["names"]["kind"].as_str().unwrap_or("");
    if group.is_empty() || !group.contains('.') {
        errs.push((
            "spec.group".into(),
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    if plural.is_empty() {
        errs.push(("spec.names.plural".into(), "Required value".into()));
    }
    if kind.is_empty() {
        errs.push(("spec.names.kind".into(), "Required value".into()));
    }
    if name != format!("{plural}.{group}") {
        errs.push((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        errs.push((
            "spec.scope".into(),
            "Unsupported value: must be Namespaced or Cluster".into(),
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push((
            "spec.versions".into(),
            "Invalid value: must have at least one version".into(),
        ));
    }
    if versions.iter().filter(|v| v["storage"] == json!(true)).count() != 1 {
        errs.push((
            "spec.versions".into(),
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
    errs
}

/// The status the API server keeps: names accepted at once (conflicts between definitions are not
/// simulated), `Established` once the establishing step ran (`established`).
pub(super) fn set_crd_status(old: Option<&Value>, new: &mut Value, now: &str, established: bool) {
    let mut names = new["spec"]["names"].clone();
    if names["singular"].is_null() {
        names["singular"] = json!(names["kind"].as_str().unwrap_or("").to_lowercase());
    }
    if names["listKind"].is_null() {
        names["listKind"] = json!(format!("{}List", names["kind"].as_str().unwrap_or("")));
    }
    let storage: Vec<Value> = new["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"] == json!(true))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let since = old
        .and_then(|o| o["status"]["conditions"].as_array())
        .and_then(|c| c.first())
        .map(|c| c["lastTransitionTime"].clone())
        .unwrap_or(json!(now));
    let was_established = old
        .and_then(|o| o["status"]["conditions"].as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == "Established"))
        .filter(|c| c["status"] == "True")
        .map(|c| c["lastTransitionTime"].clone());
    let establishing = if established {
        json!({"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
            "lastTransitionTime": was_established.unwrap_or(json!(now))})
    } else {
        json!({"type": "Established", "status": "False", "reason": "Installing",
            "message": "the initial names have been accepted", "lastTransitionTime": since})
    };
    new["status"] = json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since},
            establishing,
        ],
        "storedVersions": storage,
    });
}

/// Reads `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` from a CRD schema.
fn collect_list_types(
    schema: &Value,
    path: &mut Vec<String>,
    keys: &mut BTreeMap<String, Vec<String>>,
    sets: &mut Vec<String>,
) {
    if path.len() > 32 {
        return;
    }
    match schema["x-kubernetes-list-type"].as_str() {
        Some("map") => {
            let k: Vec<String> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                .unwrap_or_default();
            if !k.is_empty() {
                keys.insert(path.join("."), k);
            }
        }
        Some("set") => sets.push(path.join(".")),
        _ => {}
    }
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            path.push(k.clone());
            collect_list_types(v, path, keys, sets);
            path.pop();
        }
    }
    if schema["items"].is_object() {
        collect_list_types(&schema["items"], path, keys, sets);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_list_types_are_read_from_the_schema() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                "items": {"type": "object", "properties": {"tags": {"type": "array", "x-kubernetes-list-type": "set"}}}}}}}});
        let mut keys = Default::default();
        let mut sets = vec![];
        collect_list_types(&schema, &mut vec![], &mut keys, &mut sets);
        assert_eq!(keys.get("spec.items"), Some(&vec!["id".to_string()]));
        assert_eq!(sets, vec!["spec.items.tags".to_string()]);
    }
}
