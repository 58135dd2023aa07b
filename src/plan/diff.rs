//! Field-level comparison of a desired object against its live counterpart.
//!
//! The live object always carries more than Keelson sent: server-set metadata, defaulted fields, status.
//! So the comparison is "desired ⊆ live": every field present in the desired body must have the same value
//! live; fields only live has are ignored. Lists of objects are matched item by item through a merge key
//! (`mountPath`, `name`, `containerPort`, `port`) or by position, again subset-wise. Lists of scalars
//! (`command`, `args`) are atomic and must be equal.

use serde_json::{Map, Value};

use crate::object::ANNOTATION_REVISION;

use super::model::FieldDiff;

/// What replaces every Secret value in diffs and output.
pub const REDACTED: &str = "(redacted)";

/// Merge keys tried in order for lists of objects. `mountPath` comes before `name` because one volume may be
/// mounted twice under the same name.
const MERGE_KEYS: &[&str] = &["mountPath", "name", "containerPort", "port"];

/// Fields of `desired` that differ from `live`, with Secret values redacted when `is_secret`.
pub fn subset_diff(desired: &Value, live: &Value, is_secret: bool) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    compare(&mut Vec::new(), desired, Some(live), &mut out);
    if is_secret {
        for d in &mut out {
            if is_secret_value_path(&d.path) {
                d.before = d.before.as_ref().map(redact);
                d.after = d.after.as_ref().map(redact);
            }
        }
    }
    out
}

/// Fields `live` has and `desired` lacks, as diffs with no `after`. Only meaningful when `live` is itself an
/// exact rendering (planning against another commit): a real live object carries server-set fields that
/// would all show up here.
pub fn removed_fields(desired: &Value, live: &Value, is_secret: bool) -> Vec<FieldDiff> {
    let mut reversed = Vec::new();
    compare(&mut Vec::new(), live, Some(desired), &mut reversed);
    let mut out: Vec<FieldDiff> = reversed
        .into_iter()
        .filter(|d| d.before.is_none())
        .map(|d| FieldDiff {
            path: d.path,
            before: d.after,
            after: None,
        })
        .collect();
    if is_secret {
        for d in &mut out {
            if is_secret_value_path(&d.path) {
                d.before = d.before.as_ref().map(redact);
            }
        }
    }
    out
}

/// Whether a Secret path holds secret material (`data`, `stringData` and everything below them).
fn is_secret_value_path(path: &str) -> bool {
    ["data", "stringData"].iter().any(|root| {
        path == *root || path.starts_with(&format!("{root}.")) || path.starts_with(&format!("{root}["))
    })
}

/// Replace every scalar inside `value` with [`REDACTED`], keeping the shape (so a reader sees which keys).
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), redact(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        _ => Value::String(REDACTED.to_string()),
    }
}

/// One step of a field path.
#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
    Match(&'static str, String),
}

fn render_path(path: &[Segment]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                let plain = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if plain {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                } else {
                    s.push_str(&format!("[{}]", Value::String(k.clone())));
                }
            }
            Segment::Index(i) => s.push_str(&format!("[{i}]")),
            Segment::Match(key, value) => s.push_str(&format!("[{key}={value}]")),
        }
    }
    s
}

/// Paths the comparison skips: the revision stamp changes on every commit without changing the object.
fn ignored(path: &[Segment]) -> bool {
    matches!(path,
        [Segment::Key(m), Segment::Key(a), Segment::Key(k)]
            if m == "metadata" && a == "annotations" && k == ANNOTATION_REVISION)
}

fn push(path: &[Segment], before: Option<&Value>, after: Option<&Value>, out: &mut Vec<FieldDiff>) {
    out.push(FieldDiff {
        path: render_path(path),
        before: before.cloned(),
        after: after.cloned(),
    });
}

fn compare(path: &mut Vec<Segment>, desired: &Value, live: Option<&Value>, out: &mut Vec<FieldDiff>) {
    if ignored(path) {
        return;
    }
    match (desired, live) {
        // An explicit null asks for the field to be unset; absent live is equal.
        (Value::Null, None | Some(Value::Null)) => {}
        // An empty string leaves the field to the API server: a built-in kind's optional non-pointer
        // string field (`omitempty`) sent as "" is dropped when the server decodes the body, and then
        // defaulted or allocated (`type`, `clusterIP`) or left out. Sending it again would change
        // nothing, so whatever is live is equal. (A pointer field the server keeps "" in is then not
        // watched for drift.) Maps of strings keep "" values: there a missing or changed value is drift.
        (Value::String(s), _) if s.is_empty() && !in_string_map(path) => {}
        (_, None) => push(path, None, Some(desired), out),
        (Value::Object(d), Some(Value::Object(l))) => {
            for (key, dv) in d {
                path.push(Segment::Key(key.clone()));
                compare(path, dv, l.get(key), out);
                path.pop();
            }
        }
        (Value::Array(d), Some(Value::Array(l))) => compare_lists(path, d, l, desired, live, out),
        (Value::Number(d), Some(Value::Number(l))) => {
            // 1 and 1.0 are the same quantity; the API server may hand either back.
            let same = d == l || matches!((d.as_f64(), l.as_f64()), (Some(a), Some(b)) if a == b);
            if !same {
                push(path, live, Some(desired), out);
            }
        }
        (d, Some(l)) => {
            if d != l && !same_quantity_at(path, d, l) {
                push(path, Some(l), Some(d), out);
            }
        }
    }
}

/// Maps of strings of the built-in kinds, where the API server stores "" values as sent.
const STRING_MAPS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "stringData",
    "binaryData",
    "nodeSelector",
    "matchLabels",
    "selector",
    "parameters",
];

/// Whether the last step of `path` is a key of one of the maps of strings.
fn in_string_map(path: &[Segment]) -> bool {
    matches!(path, [.., Segment::Key(parent), Segment::Key(_)] if STRING_MAPS.contains(&parent.as_str()))
}

/// Quantities (resource requests and limits, storage sizes, quotas: see `quantity::is_quantity_field`) come
/// back from the API server in canonical form: `1000m` is live as `1`, `1024Mi` as `1Gi`. Those are no drift.
fn same_quantity_at(path: &[Segment], desired: &Value, live: &Value) -> bool {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Key(k) => Some(k.as_str()),
            _ => None,
        })
        .collect();
    let is_quantity_field = crate::quantity::is_quantity_field(&keys);
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    is_quantity_field
        && matches!((text(desired), text(live)), (Some(d), Some(l)) if crate::quantity::same_quantity(&d, &l))
}

fn compare_lists(
    path: &mut Vec<Segment>,
    desired: &[Value],
    live: &[Value],
    whole_desired: &Value,
    whole_live: Option<&Value>,
    out: &mut Vec<FieldDiff>,
) {
    let all_objects = !desired.is_empty() && desired.iter().all(Value::is_object);
    if !all_objects {
        // Scalar lists are atomic: `args: [a, b]` against `[a, b, c]` is drift.
        if desired != live {
            push(path, whole_live, Some(whole_desired), out);
        }
        return;
    }
    match merge_key(desired) {
        Some(key) => {
            for item in desired {
                let Some(id) = item.get(key) else { continue };
                let label = scalar_label(id);
                let found = live
                    .iter()
                    .find(|l| l.get(key).is_some_and(|lid| same_scalar(lid, id)));
                path.push(Segment::Match(key, label));
                compare(path, item, found, out);
                path.pop();
            }
        }
        None => {
            for (i, item) in desired.iter().enumerate() {
                path.push(Segment::Index(i));
                compare(path, item, live.get(i), out);
                path.pop();
            }
        }
    }
}

/// The first merge key every desired item carries with a distinct scalar value.
fn merge_key(items: &[Value]) -> Option<&'static str> {
    MERGE_KEYS.iter().copied().find(|key| {
        let mut seen = Vec::new();
        // An empty string is no key: the server may not store it.
        items.iter().all(|item| match item.get(key) {
            Some(Value::String(s)) if s.is_empty() => false,
            Some(v @ (Value::String(_) | Value::Number(_))) => {
                let label = scalar_label(v);
                let fresh = !seen.contains(&label);
                seen.push(label);
                fresh
            }
            _ => false,
        })
    })
}

fn scalar_label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Read a string at a JSON path of object keys.
pub fn get_str<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a str> {
    let mut cur = value;
    for k in keys {
        cur = cur.get(k)?;
    }
    cur.as_str()
}

/// The `metadata.labels` or `metadata.annotations` map of an object.
pub fn meta_map<'a>(value: &'a Value, field: &str) -> Option<&'a Map<String, Value>> {
    value.get("metadata")?.get(field)?.as_object()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(d: &[FieldDiff]) -> Vec<&str> {
        d.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn subset_comparison_table() {
        struct Case {
            name: &'static str,
            desired: Value,
            live: Value,
            want: Vec<&'static str>,
        }
        let cases = vec![
            Case {
                name: "server-set and defaulted fields are ignored",
                desired: json!({"metadata": {"name": "a", "labels": {"x": "1"}},
                    "spec": {"replicas": 2, "template": {"spec": {"containers": [
                        {"name": "api", "image": "i:1", "ports": [{"containerPort": 5000}]}]}}}}),
                live: json!({"metadata": {"name": "a", "uid": "u", "resourceVersion": "7",
                        "labels": {"x": "1", "pod-template-hash": "z"}},
                    "spec": {"replicas": 2, "revisionHistoryLimit": 10, "template": {"spec": {
                        "restartPolicy": "Always",
                        "containers": [{"name": "sidecar", "image": "s"},
                            {"name": "api", "image": "i:1", "imagePullPolicy": "IfNotPresent",
                             "ports": [{"containerPort": 5000, "protocol": "TCP"}]}]}}},
                    "status": {"readyReplicas": 2}}),
                want: vec![],
            },
            Case {
                name: "a changed owned field is found through the merge key",
                desired: json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "i:2"}]}}}}),
                live: json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "side", "image": "x"}, {"name": "api", "image": "i:1"}]}}}}),
                want: vec!["spec.template.spec.containers[name=api].image"],
            },
            Case {
                name: "a missing list item is reported whole",
                desired: json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}}),
                live: json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}}),
                want: vec!["spec.ports[port=443]"],
            },
            Case {
                name: "an empty string the server drops is no drift; a missing empty map value is",
                desired: json!({"metadata": {"generateName": "", "labels": {"e": ""}, "annotations": {"a": ""}},
                    "data": {"k": ""},
                    "spec": {"type": "", "ports": [{"name": "", "port": 80}],
                        "template": {"spec": {"serviceAccountName": "",
                        "containers": [{"name": "c", "workingDir": "", "image": ""}]}}}}),
                live: json!({"metadata": {"labels": {}, "annotations": {"a": ""}}, "data": {},
                    "spec": {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}],
                        "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
                want: vec!["metadata.labels.e", "data.k"],
            },
            Case {
                name: "scalar lists are atomic",
                desired: json!({"args": ["a", "b"]}),
                live: json!({"args": ["a", "b", "c"]}),
                want: vec!["args"],
            },
            Case {
                name: "lists without a merge key compare by index",
                desired: json!({"rules": [{"verbs": ["get"]}, {"verbs": ["list"]}]}),
                live: json!({"rules": [{"verbs": ["get"]}, {"verbs": ["watch"]}]}),
                want: vec!["rules[1].verbs"],
            },
            Case {
                name: "the revision annotation is ignored, other annotations are not",
                desired: json!({"metadata": {"annotations": {"keelson.dev/revision": "new", "keelson.dev/hash": "h2"}}}),
                live: json!({"metadata": {"annotations": {"keelson.dev/revision": "old", "keelson.dev/hash": "h1"}}}),
                want: vec!["metadata.annotations[\"keelson.dev/hash\"]"],
            },
            Case {
                name: "integers and floats of equal value are equal",
                desired: json!({"spec": {"replicas": 1}}),
                live: json!({"spec": {"replicas": 1.0}}),
                want: vec![],
            },
            Case {
                name: "quantities the API server canonicalised are equal, changed ones are not",
                desired: json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "resources": {
                    "requests": {"cpu": "1000m", "memory": "1024Mi"}, "limits": {"cpu": 2, "memory": "2Gi"}}}],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "0.5Gi"}}]}}}}),
                live: json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2500m", "memory": "2Gi"}}}],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}}]}}}}),
                want: vec!["spec.template.spec.containers[name=api].resources.limits.cpu"],
            },
            Case {
                name: "equal-valued numbers in text outside quantity fields still differ",
                desired: json!({"data": {"workers": "1000m", "ratio": "0.5"}}),
                live: json!({"data": {"workers": "1", "ratio": "500m"}}),
                want: vec!["data.workers", "data.ratio"],
            },
            Case {
                name: "null in desired matches an absent live field",
                desired: json!({"spec": {"x": null}}),
                live: json!({"spec": {}}),
                want: vec![],
            },
            Case {
                name: "type change is reported at the field",
                desired: json!({"data": {"k": "v"}}),
                live: json!({"data": "oops"}),
                want: vec!["data"],
            },
        ];
        for case in cases {
            let got = subset_diff(&case.desired, &case.live, false);
            assert_eq!(paths(&got), case.want, "case: {}", case.name);
        }
    }

    #[test]
    fn before_and_after_carry_values() {
        let got = subset_diff(
            &json!({"spec": {"replicas": 3}}),
            &json!({"spec": {"replicas": 1}}),
            false,
        );
        assert_eq!(got[0].before, Some(json!(1)));
        assert_eq!(got[0].after, Some(json!(3)));
    }

    #[test]
    fn secret_values_are_redacted_but_other_fields_are_not() {
        let desired = json!({"metadata": {"labels": {"a": "2"}}, "data": {"password": "bmV3"},
            "stringData": {"token": "plain-new"}});
        let live = json!({"metadata": {"labels": {"a": "1"}}, "data": {"password": "b2xk"}});
        let got = subset_diff(&desired, &live, true);
        let text = serde_json::to_string(&got).unwrap();
        assert!(
            !text.contains("bmV3") && !text.contains("b2xk") && !text.contains("plain-new"),
            "{text}"
        );
        assert_eq!(
            paths(&got),
            vec!["metadata.labels.a", "data.password", "stringData"]
        );
        assert_eq!(got[1].before, Some(json!(REDACTED)));
        assert_eq!(got[2].after, Some(json!({"token": REDACTED})));
        assert_eq!(got[0].after, Some(json!("2")));
    }

    #[test]
    fn duplicate_names_fall_back_to_the_next_key() {
        let desired = json!({"m": [{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/b"}]});
        let live = json!({"m": [{"name": "v", "mountPath": "/b"}, {"name": "v", "mountPath": "/a"}]});
        assert!(subset_diff(&desired, &live, false).is_empty());
        let items = [json!({"name": "a"}), json!({"name": "a"})];
        assert_eq!(merge_key(&items), None);
    }
}
