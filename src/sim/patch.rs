//! Non-apply patches: JSON merge patch (RFC 7386), strategic merge patch (the parts kubectl sends) and
//! JSON patch (RFC 6902).

use serde_json::{Map, Value};

use super::resources::ResourceInfo;
use super::schema::{smp_merge_key, smp_merges_primitives};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    #[error("patch: {0}")]
    Invalid(String),
    #[error("the server rejected our request due to an error in our request: test operation failed at {0}")]
    TestFailed(String),
}

/// RFC 7386: objects merge, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Strategic merge patch: like merge patch, but lists with a merge key merge item by item, and the
/// `$patch`, `$retainKeys`, `$setElementOrder/` and `$deleteFromPrimitiveList/` directives apply.
pub fn strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
    info: &ResourceInfo,
) -> Result<(), PatchError> {
    smp(target, patch, &mut Vec::new(), info)
}

fn smp(
    target: &mut Value,
    patch: &Value,
    names: &mut Vec<String>,
    info: &ResourceInfo,
) -> Result<(), PatchError> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut clean = p.clone();
            clean.remove("$patch");
            *target = Value::Object(clean);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(PatchError::Invalid(format!("unknown patch type: {other:?}"))),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return Ok(()) };
    if let Some(keep) = p.get("$retainKeys") {
        let keep: Vec<&str> = keep
            .as_array()
            .ok_or_else(|| PatchError::Invalid("$retainKeys must be a list".into()))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let drop = v
                .as_array()
                .ok_or_else(|| PatchError::Invalid(format!("{k} must be a list")))?;
            if let Some(Value::Array(items)) = t.get_mut(field) {
                items.retain(|i| !drop.contains(i));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        names.push(k.clone());
        let result = match v {
            Value::Array(items) => {
                let existing = t.entry(k.clone()).or_insert(Value::Array(vec![]));
                smp_list(existing, items, names, info)
            }
            Value::Object(_) => smp(t.entry(k.clone()).or_insert(Value::Null), v, names, info),
            _ => {
                t.insert(k.clone(), v.clone());
                Ok(())
            }
        };
        names.pop();
        result?;
    }
    Ok(())
}

fn smp_list(
    target: &mut Value,
    items: &[Value],
    names: &mut Vec<String>,
    info: &ResourceInfo,
) -> Result<(), PatchError> {
    if let Some(key) = smp_merge_key(info, names) {
        if !target.is_array() {
            *target = Value::Array(vec![]);
        }
        let Value::Array(t) = target else { return Ok(()) };
        // A `$patch: replace` item replaces the whole list with the other items.
        if items
            .iter()
            .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
        {
            *t = items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect();
            return Ok(());
        }
        for item in items {
            let Some(obj) = item.as_object() else {
                return Err(PatchError::Invalid(format!(
                    "list {} items must be objects",
                    names.join(".")
                )));
            };
            let Some(kv) = obj.get(&key) else {
                return Err(PatchError::Invalid(format!(
                    "map: {item} does not contain declared merge key: {key}"
                )));
            };
            let pos = t.iter().position(|e| e.get(&key) == Some(kv));
            if obj.get("$patch").and_then(Value::as_str) == Some("delete") {
                if let Some(i) = pos {
                    t.remove(i);
                }
                continue;
            }
            match pos {
                Some(i) => smp(&mut t[i], item, names, info)?,
                None => {
                    let mut fresh = Value::Object(Map::new());
                    smp(&mut fresh, item, names, info)?;
                    t.push(fresh);
                }
            }
        }
        return Ok(());
    }
    if smp_merges_primitives(info, names) {
        if let Value::Array(t) = target {
            for i in items {
                if !t.contains(i) {
                    t.push(i.clone());
                }
            }
            return Ok(());
        }
    }
    *target = Value::Array(items.to_vec());
    Ok(())
}

/// The limit a real API server puts on JSON patch operations.
const MAX_JSON_PATCH_OPS: usize = 10_000;
const MAX_COPIED_BYTES: usize = 3 * 1024 * 1024;
/// Objects nested deeper than this are refused (decoders stop at 128 anyway).
pub const MAX_DEPTH: usize = 128;

/// Nesting depth of a value, without recursion.
pub fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Object(m) => stack.extend(m.values().map(|c| (c, d + 1))),
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            _ => {}
        }
    }
    max
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), PatchError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| PatchError::Invalid("a JSON patch must be a list of operations".into()))?;
    if ops.len() > MAX_JSON_PATCH_OPS {
        return Err(PatchError::Invalid(format!(
            "the allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPS}, got {}",
            ops.len()
        )));
    }
    // `copy` can double a document per operation; the bytes copied are bounded.
    let mut copied = 0usize;
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Invalid("operation without \"op\"".into()))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Invalid(format!("{kind}: missing \"path\"")))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError::Invalid(format!("{kind} {path}: missing \"value\"")))
        };
        match kind {
            "add" => add(target, path, value()?)?,
            "remove" => {
                take(target, path)?;
            }
            "replace" => {
                take(target, path)?;
                add(target, path, value()?)?;
            }
            "move" | "copy" => {
                let from = op
                    .get("from")
                    .and_then(Value::as_str)
                    .ok_or_else(|| PatchError::Invalid(format!("{kind}: missing \"from\"")))?;
                let v = if kind == "move" {
                    take(target, from)?
                } else {
                    let v = target
                        .pointer(from)
                        .cloned()
                        .ok_or_else(|| PatchError::Invalid(format!("copy: {from} does not exist")))?;
                    copied += serde_json::to_vec(&v).map(|b| b.len()).unwrap_or(usize::MAX);
                    if copied > MAX_COPIED_BYTES {
                        return Err(PatchError::Invalid("copy operations copy too much data".into()));
                    }
                    v
                };
                add(target, path, v)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value()?) {
                    return Err(PatchError::TestFailed(path.to_string()));
                }
            }
            other => return Err(PatchError::Invalid(format!("unexpected operation {other:?}"))),
        }
    }
    Ok(())
}

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> Result<(String, String), PatchError> {
    if path.is_empty() {
        return Err(PatchError::Invalid("the root cannot be patched".into()));
    }
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| PatchError::Invalid(format!("{path}: not a JSON pointer")))?;
    Ok((parent.to_string(), unescape(last)))
}

fn add(target: &mut Value, path: &str, v: Value) -> Result<(), PatchError> {
    let (parent, last) = split(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(m)) => {
            m.insert(last, v);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let idx = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| PatchError::Invalid(format!("{path}: bad index")))?
            };
            if idx > a.len() {
                return Err(PatchError::Invalid(format!("{path}: index out of range")));
            }
            a.insert(idx, v);
            Ok(())
        }
        _ => Err(PatchError::Invalid(format!(
            "add operation does not apply: doc is missing path: \"{path}\""
        ))),
    }
}

fn take(target: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = split(path)?;
    let missing = || {
        PatchError::Invalid(format!(
            "remove operation does not apply: doc is missing path: \"{path}\""
        ))
    };
    match target.pointer_mut(&parent) {
        Some(Value::Object(m)) => m.remove(&last).ok_or_else(missing),
        Some(Value::Array(a)) => {
            let idx = last.parse::<usize>().map_err(|_| missing())?;
            if idx < a.len() {
                Ok(a.remove(idx))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
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
    fn merge_patch_rfc7386_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!(["a"]), json!({"a": {"b": null}}), json!({"a": {}})),
        ];
        for (mut t, p, want) in cases {
            merge_patch(&mut t, &p);
            assert_eq!(t, want);
        }
    }

    #[test]
    fn strategic_merge_by_key_and_directives() {
        let info = dep();
        let mut t = json!({"metadata": {"finalizers": ["a"]}, "spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "1", "args": ["x"]}, {"name": "b", "image": "2"}]}}}});
        let p = json!({
            "metadata": {"finalizers": ["b"]},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
                "containers": [{"name": "a", "image": "9"}, {"name": "b", "$patch": "delete"}, {"name": "c", "image": "3"}]}}}});
        strategic_merge_patch(&mut t, &p, &info).unwrap();
        assert_eq!(t["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            t["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "9", "args": ["x"]}, {"name": "c", "image": "3"}])
        );
        let p = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}, "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        t["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
        strategic_merge_patch(&mut t, &p, &info).unwrap();
        assert_eq!(t["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(t["spec"]["strategy"], json!({"type": "Recreate"}));
        assert!(
            strategic_merge_patch(
                &mut t,
                &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
                &info
            )
            .is_err()
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut t = json!({"a": {"b": [1, 2]}, "c": "x"});
        let ops = json!([
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "replace", "path": "/c", "value": "y"},
            {"op": "test", "path": "/c", "value": "y"},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e~1f"},
            {"op": "remove", "path": "/a/b/0"}
        ]);
        json_patch(&mut t, &ops).unwrap();
        assert_eq!(t, json!({"a": {"b": [2, 3]}, "c": "y", "e/f": "y"}));
        for bad in [
            json!({}),
            json!([{"op": "remove", "path": "/nope"}]),
            json!([{"op": "test", "path": "/c", "value": 1}]),
            json!([{"op": "add", "path": "/a/b/9", "value": 1}]),
            json!([{"op": "frob", "path": "/c"}]),
            json!([{"op": "add", "path": ""}]),
        ] {
            assert!(json_patch(&mut t.clone(), &bad).is_err(), "{bad}");
        }
    }
}
