//! How lists merge: the Kubernetes list types (atomic, map keyed by fields, set) per field path.
//!
//! Built-in types follow the `listType`/`listMapKey` markers of the Kubernetes API types; custom resources
//! are atomic unless their CRD schema says `x-kubernetes-list-type: map|set`, as on a real server.

use serde_json::Value;

use super::resources::ResourceInfo;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    Atomic,
    Map(Vec<String>),
    Set,
}

/// The list type of the field at `names` (field names from the root, list positions left out).
pub fn list_kind(info: &ResourceInfo, names: &[String]) -> ListKind {
    if names.len() == 2 && names[0] == "metadata" {
        return match names[1].as_str() {
            "finalizers" => ListKind::Set,
            "ownerReferences" => map(&["uid"]),
            _ => ListKind::Atomic,
        };
    }
    if !info.builtin {
        let joined = names.join(".");
        if let Some(keys) = info.list_keys.get(&joined) {
            return ListKind::Map(keys.clone());
        }
        if info.list_sets.contains(&joined) {
            return ListKind::Set;
        }
        if names.last().map(String::as_str) == Some("conditions")
            && names.first().map(String::as_str) == Some("status")
        {
            return map(&["type"]);
        }
        return ListKind::Atomic;
    }
    let Some(last) = names.last() else {
        return ListKind::Atomic;
    };
    let in_container = names.len() >= 2
        && matches!(
            names[names.len() - 2].as_str(),
            "containers" | "initContainers" | "ephemeralContainers"
        );
    match last.as_str() {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => map(&["name"]),
        "env" if in_container => map(&["name"]),
        "volumeMounts" if in_container => map(&["mountPath"]),
        "volumeDevices" if in_container => map(&["devicePath"]),
        "ports" if in_container => map(&["containerPort", "protocol"]),
        "ports" if info.plural == "services" && names.len() == 2 => map(&["port", "protocol"]),
        "conditions" => map(&["type"]),
        "hostAliases" => map(&["ip"]),
        "topologySpreadConstraints" => map(&["topologyKey", "whenUnsatisfiable"]),
        "finalizers" if info.plural == "namespaces" => ListKind::Set,
        _ => ListKind::Atomic,
    }
}

fn map(keys: &[&str]) -> ListKind {
    ListKind::Map(keys.iter().map(|s| s.to_string()).collect())
}

/// The value a key field takes in an item, applying the API's default for fields that are part of a key.
pub fn key_value(item: &Value, key: &str) -> Option<Value> {
    match item.get(key) {
        Some(v) => Some(v.clone()),
        None if key == "protocol" => Some(Value::String("TCP".into())),
        None => None,
    }
}

/// The strategic-merge-patch key of a list (kubectl's client-side apply sends these).
pub fn smp_merge_key(info: &ResourceInfo, names: &[String]) -> Option<String> {
    match list_kind(info, names) {
        ListKind::Map(keys) => keys.into_iter().next(),
        _ => None,
    }
}

/// Whether a primitive list merges (rather than being replaced) under strategic merge patch.
pub fn smp_merges_primitives(info: &ResourceInfo, names: &[String]) -> bool {
    list_kind(info, names) == ListKind::Set
}

#[cfg(test)]
mod tests {
    use super::super::resources::Registry;
    use super::*;

    fn names(p: &str) -> Vec<String> {
        p.split('.').map(String::from).collect()
    }

    #[test]
    fn builtin_list_kinds() {
        let r = Registry::with_builtins();
        let dep = r.get("apps", "v1", "deployments").unwrap();
        let svc = r.get("", "v1", "services").unwrap();
        let cases = [
            (dep, "spec.template.spec.containers", map(&["name"])),
            (dep, "spec.template.spec.containers.env", map(&["name"])),
            (
                dep,
                "spec.template.spec.containers.ports",
                map(&["containerPort", "protocol"]),
            ),
            (
                dep,
                "spec.template.spec.containers.volumeMounts",
                map(&["mountPath"]),
            ),
            (dep, "spec.template.spec.containers.args", ListKind::Atomic),
            (dep, "spec.template.spec.tolerations", ListKind::Atomic),
            (dep, "metadata.finalizers", ListKind::Set),
            (svc, "spec.ports", map(&["port", "protocol"])),
        ];
        for (info, path, want) in cases {
            assert_eq!(list_kind(info, &names(path)), want, "{path}");
        }
    }

    #[test]
    fn protocol_defaults_to_tcp_in_keys() {
        let item = serde_json::json!({"containerPort": 80});
        assert_eq!(key_value(&item, "protocol"), Some(serde_json::json!("TCP")));
        assert_eq!(key_value(&item, "name"), None);
    }
}
