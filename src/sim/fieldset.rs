//! Field sets: which fields of an object a manager owns, in the managedFields `FieldsV1` encoding.
//!
//! A path is a list of encoded elements exactly as they appear in `fieldsV1`: `f:<field>` for a map
//! field, `k:{"name":"x"}` for an item of a keyed list, `v:<json>` for an item of a set.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::resources::ResourceInfo;
use super::schema::{ListKind, key_value, list_kind};

pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// metadata fields the server owns; they never appear in field sets.
const SERVER_META: &[&str] = &[
    "name",
    "namespace",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Decodes a `fieldsV1` tree into the set of owned paths.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    decode(v, &mut path, &mut out);
    out
}

fn decode(v: &Value, path: &mut Path, out: &mut FieldSet) {
    let Some(map) = v.as_object() else { return };
    let children: Vec<_> = map.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if (map.contains_key(".") || children.is_empty()) && !path.is_empty() {
        out.insert(path.clone());
    }
    for (k, child) in children {
        path.push(k.clone());
        decode(child, path, out);
        path.pop();
    }
}

/// Encodes a set as a `fieldsV1` tree.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        owned: bool,
        children: std::collections::BTreeMap<String, Node>,
    }
    fn to_value(n: &Node) -> Value {
        let mut m = Map::new();
        if n.owned && !n.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &n.children {
            m.insert(k.clone(), to_value(c));
        }
        Value::Object(m)
    }
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for elem in path {
            node = node.children.entry(elem.clone()).or_default();
        }
        node.owned = true;
    }
    sort_tree(to_value(&root))
}

/// `.` first, then the other keys in order, as the API server writes them.
fn sort_tree(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<_> = m.into_iter().collect();
            keys.sort_by(|a, b| (a.0 != ".", &a.0).cmp(&(b.0 != ".", &b.0)));
            Value::Object(keys.into_iter().map(|(k, v)| (k, sort_tree(v))).collect())
        }
        other => other,
    }
}

/// The set of leaf paths an object (or an applied configuration) sets.
pub fn collect(obj: &Value, info: &ResourceInfo) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = obj.as_object() else { return out };
    let mut path = Vec::new();
    let mut names = Vec::new();
    for (k, v) in map {
        if k == "apiVersion" || k == "kind" {
            continue;
        }
        path.push(format!("f:{k}"));
        names.push(k.clone());
        if k == "metadata" {
            if let Some(meta) = v.as_object() {
                for (mk, mv) in meta {
                    if SERVER_META.contains(&mk.as_str()) {
                        continue;
                    }
                    path.push(format!("f:{mk}"));
                    names.push(mk.clone());
                    walk(mv, &mut path, &mut names, info, &mut out);
                    path.pop();
                    names.pop();
                }
            }
        } else {
            walk(v, &mut path, &mut names, info, &mut out);
        }
        path.pop();
        names.pop();
    }
    out
}

fn walk(v: &Value, path: &mut Path, names: &mut Vec<String>, info: &ResourceInfo, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(format!("f:{k}"));
                names.push(k.clone());
                walk(child, path, names, info, out);
                path.pop();
                names.pop();
            }
        }
        Value::Array(items) => match list_kind(info, names) {
            ListKind::Map(keys) if items.iter().all(Value::is_object) => {
                for item in items {
                    path.push(item_key(item, &keys));
                    out.insert(path.clone());
                    walk(item, path, names, info, out);
                    path.pop();
                }
            }
            ListKind::Set => {
                for item in items {
                    path.push(format!("v:{}", item));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// `k:{"name":"x"}` with keys in sorted order, as the server encodes them.
pub fn item_key(item: &Value, keys: &[String]) -> String {
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    let mut m = Map::new();
    for k in sorted {
        if let Some(v) = key_value(item, k) {
            m.insert(k.clone(), v);
        }
    }
    format!("k:{}", Value::Object(m))
}

fn item_matches(item: &Value, key: &Map<String, Value>) -> bool {
    key.iter()
        .all(|(k, want)| key_value(item, k).as_ref() == Some(want))
}

/// The value at a path, if present.
pub fn get<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for elem in path {
        cur = step(cur, elem)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, elem: &str) -> Option<&'a Value> {
    if let Some(f) = elem.strip_prefix("f:") {
        cur.as_object()?.get(f)
    } else if let Some(k) = elem.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(k).ok()?;
        cur.as_array()?.iter().find(|i| item_matches(i, &key))
    } else if let Some(v) = elem.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        cur.as_array()?.iter().find(|i| **i == want)
    } else if let Some(i) = elem.strip_prefix("i:") {
        cur.as_array()?.get(i.parse::<usize>().ok()?)
    } else {
        None
    }
}

/// Removes the field or list item at a path; a no-op if it is absent.
pub fn remove(obj: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for elem in parent_path {
        let next = match step_mut(cur, elem) {
            Some(n) => n,
            None => return,
        };
        cur = next;
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(key), Some(a)) = (serde_json::from_str::<Map<String, Value>>(k), cur.as_array_mut()) {
            a.retain(|i| !item_matches(i, &key));
        }
    } else if let Some(v) = last.strip_prefix("v:") {
        if let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(v), cur.as_array_mut()) {
            a.retain(|i| *i != want);
        }
    }
}

fn step_mut<'a>(cur: &'a mut Value, elem: &str) -> Option<&'a mut Value> {
    if let Some(f) = elem.strip_prefix("f:") {
        cur.as_object_mut()?.get_mut(f)
    } else if let Some(k) = elem.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(k).ok()?;
        cur.as_array_mut()?.iter_mut().find(|i| item_matches(i, &key))
    } else if let Some(v) = elem.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        cur.as_array_mut()?.iter_mut().find(|i| **i == want)
    } else {
        None
    }
}

/// `.spec.template.spec.containers[name="app"].image`: how the server prints a path in conflicts.
pub fn display(path: &[String]) -> String {
    let mut s = String::new();
    for elem in path {
        if let Some(f) = elem.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = elem.strip_prefix("k:") {
            let parts = match serde_json::from_str::<Map<String, Value>>(k) {
                Ok(m) => m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                Err(_) => k.to_string(),
            };
            s.push_str(&format!("[{parts}]"));
        } else if let Some(v) = elem.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// Merges an applied configuration into a live object, lists by their list type.
pub fn merge(live: &mut Value, applied: &Value, names: &mut Vec<String>, info: &ResourceInfo) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                names.push(k.clone());
                match l.get_mut(k) {
                    Some(lv) => merge(lv, av, names, info),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
                names.pop();
            }
        }
        (Value::Array(l), Value::Array(a)) => match list_kind(info, names) {
            ListKind::Map(keys) if a.iter().all(Value::is_object) && l.iter().all(Value::is_object) => {
                for item in a {
                    let k = item_key(item, &keys);
                    let key: Map<String, Value> = k
                        .strip_prefix("k:")
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or_default();
                    match l.iter_mut().find(|i| item_matches(i, &key)) {
                        Some(existing) => merge(existing, item, names, info),
                        None => l.push(item.clone()),
                    }
                }
            }
            ListKind::Set => {
                for item in a {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
            }
            _ => *l = a.clone(),
        },
        (l, a) => *l = a.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::resources::Registry;
    use super::*;
    use serde_json::json;

    fn dep() -> ResourceInfo {
        Registry::with_builtins()
            .get("apps", "v1", "deployments")
            .unwrap()
            .clone()
    }

    #[test]
    fn collect_uses_merge_keys_and_skips_server_fields() {
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"a": "b"}, "resourceVersion": "3"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i", "args": ["x"]}]}}}
        });
        let set = collect(&obj, &dep());
        let enc = to_fields_v1(&set);
        assert_eq!(
            enc,
            json!({
                "f:metadata": {"f:labels": {"f:a": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"c\"}": {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}}}}}
            })
        );
        assert_eq!(from_fields_v1(&enc), set);
    }

    #[test]
    fn get_and_remove_follow_keys() {
        let mut obj = json!({"spec": {"ports": [{"port": 80}, {"port": 443, "protocol": "TCP"}]}});
        let p: Path = vec![
            "f:spec".into(),
            "f:ports".into(),
            "k:{\"port\":443,\"protocol\":\"TCP\"}".into(),
        ];
        assert_eq!(get(&obj, &p), Some(&json!({"port": 443, "protocol": "TCP"})));
        remove(&mut obj, &p);
        assert_eq!(obj, json!({"spec": {"ports": [{"port": 80}]}}));
    }

    #[test]
    fn merge_keyed_lists_by_key_and_atomic_lists_whole() {
        let info = dep();
        let mut live = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "1", "args": ["x", "y"]}, {"name": "b", "image": "2"}]}}}});
        let applied = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "3", "args": ["z"]}]}}}});
        merge(&mut live, &applied, &mut vec![], &info);
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "3", "args": ["z"]}, {"name": "b", "image": "2"}])
        );
    }

    #[test]
    fn display_formats_like_the_server() {
        let p: Path = vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"app\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(display(&p), ".spec.containers[name=\"app\"].image");
    }
}
