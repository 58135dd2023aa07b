//! Object semantics shared by every write: timestamps, uids, name validation, defaulting, generation.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::Value;

use super::resources::ResourceInfo;

/// RFC 3339 UTC with second precision, as metadata timestamps are written.
pub fn now_rfc3339() -> String {
    rfc3339(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses the RFC 3339 timestamps this server writes back into seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + se).ok()
}

pub fn new_uid() -> String {
    let mut rng = rand::rng();
    let b: [u8; 16] = rng.random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Five characters from the alphabet the API server uses for generateName suffixes.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

fn dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(dns_label)
}

/// RBAC objects accept path-segment names (anything but `/`, `%`, `.` and `..`).
fn path_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('%')
}

/// Checks a name against the rule its resource uses; returns the message on failure.
pub fn validate_name(info: &ResourceInfo, name: &str) -> Result<(), String> {
    let label_only = matches!(info.plural.as_str(), "namespaces" | "services");
    let ok = if info.group == "rbac.authorization.k8s.io" {
        path_segment(name)
    } else if label_only {
        dns_label(name)
    } else {
        dns_subdomain(name)
    };
    if ok {
        return Ok(());
    }
    Err(if label_only {
        format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric \
             characters or '-', and must start and end with an alphanumeric character"
        )
    } else {
        format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
             characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    })
}

fn label_value_ok(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && v.as_bytes()[0].is_ascii_alphanumeric()
            && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric())
}

fn qualified_name_ok(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(dns_subdomain)
        && !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

/// Validates metadata the way every resource's validation does: labels, annotations, types.
pub fn validate_meta(obj: &Value) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let meta = &obj["metadata"];
    match meta.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            for (k, v) in labels {
                if !qualified_name_ok(k) {
                    errs.push(("metadata.labels".into(), format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'")));
                }
                match v.as_str() {
                    Some(s) if label_value_ok(s) => {}
                    _ => errs.push(("metadata.labels".to_string(), format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))),
                }
            }
        }
        Some(_) => errs.push((
            "metadata.labels".into(),
            "Invalid value: must be a map of strings".into(),
        )),
    }
    match meta.get("annotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(ann)) => {
            let mut total = 0usize;
            for (k, v) in ann {
                if !qualified_name_ok(k) {
                    errs.push(("metadata.annotations".into(), format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'")));
                }
                match v.as_str() {
                    Some(s) => total += k.len() + s.len(),
                    None => errs.push((
                        "metadata.annotations".into(),
                        format!("Invalid value: {v}: must be a string"),
                    )),
                }
            }
            if total > 256 * 1024 {
                errs.push((
                    "metadata.annotations".into(),
                    "Too long: must have at most 262144 bytes".into(),
                ));
            }
        }
        Some(_) => errs.push((
            "metadata.annotations".into(),
            "Invalid value: must be a map of strings".into(),
        )),
    }
    if let Some(f) = meta.get("finalizers") {
        if !f.is_null() && !f.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
            errs.push((
                "metadata.finalizers".into(),
                "Invalid value: must be a list of strings".into(),
            ));
        }
    }
    errs
}

/// Checks a few typed fields real validation would reject, so typed clients never meet a shape they
/// cannot decode.
/// Fields the real API server refuses to change once an object exists, with its wording: a changed
/// workload selector or Job template is `Invalid ... field is immutable`; a StatefulSet spec change outside the
/// updatable fields and a bound-claim spec change are `Forbidden`; an `immutable` ConfigMap or Secret keeps its data.
pub fn validate_immutable(info: &ResourceInfo, old: Option<&Value>, new: &Value) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let Some(old) = old else { return errs };
    if !info.builtin {
        return errs;
    }
    let field_is_immutable = |errs: &mut Vec<(String, String)>, path: &[&str]| {
        let get = |v: &Value| {
            path.iter()
                .try_fold(v, |v, k| v.get(*k))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let (before, after) = (get(old), get(new));
        if before != after {
            errs.push((
                path.join("."),
                format!("Invalid value: {after}: field is immutable"),
            ));
        }
    };
    match (info.group.as_str(), info.plural.as_str()) {
        ("apps", "deployments" | "daemonsets") => field_is_immutable(&mut errs, &["spec", "selector"]),
        ("apps", "statefulsets") => {
            const UPDATABLE: [&str; 6] = [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            let fixed = |v: &Value| -> Value {
                let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(m) = spec.as_object_mut() {
                    m.retain(|k, _| !UPDATABLE.contains(&k.as_str()));
                }
                spec
            };
            if fixed(old) != fixed(new) {
                errs.push((
                    "spec".into(),
                    "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', \
                     'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' \
                     are forbidden"
                        .into(),
                ));
            }
        }
        ("batch", "jobs") => {
            field_is_immutable(&mut errs, &["spec", "selector"]);
            field_is_immutable(&mut errs, &["spec", "template"]);
        }
        ("", "persistentvolumeclaims") => {
            // The binder may name the volume of a claim that had none, and set a class on a claim without.
            let volume_unset = old["spec"]["volumeName"].is_null() || old["spec"]["volumeName"] == "";
            let class_unset = old["spec"]["storageClassName"].is_null();
            let fixed = |v: &Value| -> Value {
                let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(m) = spec.as_object_mut() {
                    m.remove("resources");
                    m.remove("volumeAttributesClassName");
                    if volume_unset {
                        m.remove("volumeName");
                    }
                    if class_unset {
                        m.remove("storageClassName");
                    }
                }
                spec
            };
            if fixed(old) != fixed(new) {
                errs.push((
                    "spec".into(),
                    "Forbidden: spec is immutable after creation except resources.requests and \
                     volumeAttributesClassName for bound claims"
                        .into(),
                ));
            }
        }
        ("", "configmaps" | "secrets") if old.get("immutable") == Some(&Value::Bool(true)) => {
            for field in ["data", "binaryData"] {
                if old.get(field) != new.get(field) {
                    errs.push((
                        field.into(),
                        "Forbidden: field is immutable when `immutable` is set".into(),
                    ));
                }
            }
            if new.get("immutable") != Some(&Value::Bool(true)) {
                errs.push((
                    "immutable".into(),
                    "Forbidden: field is immutable when `immutable` is set".into(),
                ));
            }
        }
        _ => {}
    }
    errs
}

pub fn validate_spec(info: &ResourceInfo, obj: &Value) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    if !info.builtin {
        return errs;
    }
    if let Some(spec) = obj.get("spec") {
        if !spec.is_object() && !spec.is_null() {
            errs.push(("spec".into(), "Invalid value: must be an object".into()));
            return errs;
        }
        if let Some(r) = spec.get("replicas") {
            if !r.is_null() && !r.as_i64().is_some_and(|n| (0..=i32::MAX as i64).contains(&n)) {
                errs.push((
                    "spec.replicas".into(),
                    format!("Invalid value: {r}: must be greater than or equal to 0"),
                ));
            }
        }
    }
    errs.extend(invalid_quantities(obj));
    if info.group.is_empty() && matches!(info.plural.as_str(), "configmaps" | "secrets") {
        errs.extend(data_too_large(&info.plural, obj));
    }
    if matches!(info.plural.as_str(), "configmaps" | "secrets") {
        for field in ["data", "stringData", "binaryData"] {
            if let Some(d) = obj.get(field) {
                if !d.is_null() && !d.as_object().is_some_and(|m| m.values().all(Value::is_string)) {
                    errs.push((field.into(), "Invalid value: must be a map of strings".into()));
                }
            }
        }
    }
    errs
}

/// ConfigMaps and Secrets hold at most 1 MiB of (decoded) data, as kube-apiserver counts it.
fn data_too_large(plural: &str, obj: &Value) -> Vec<(String, String)> {
    const MAX: usize = 1024 * 1024;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let strings = |field: &str| -> usize {
        obj[field]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_str).map(str::len).sum())
            .unwrap_or(0)
    };
    let decoded = |field: &str| -> usize {
        obj[field]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(Value::as_str)
                    .map(|v| b64.decode(v).map_or(v.len(), |d| d.len()))
                    .sum()
            })
            .unwrap_or(0)
    };
    let (total, field) = if plural == "secrets" {
        (decoded("data"), "data")
    } else {
        (strings("data") + decoded("binaryData"), "[]")
    };
    if total > MAX {
        vec![(field.into(), format!("Too long: must have at most {MAX} bytes"))]
    } else {
        Vec::new()
    }
}

/// Everything under the object except metadata and status: a change here bumps `generation`.
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    const OUTSIDE: [&str; 4] = ["metadata", "status", "apiVersion", "kind"];
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    let fields = |m: &'_ serde_json::Map<String, Value>| {
        m.iter().filter(|(k, _)| !OUTSIDE.contains(&k.as_str())).count()
    };
    fields(o) != fields(n)
        || o.iter()
            .filter(|(k, _)| !OUTSIDE.contains(&k.as_str()))
            .any(|(k, v)| n.get(k) != Some(v))
}

/// Visits every quantity field (see `quantity::is_quantity_field`) with its dotted path.
pub(super) fn visit_quantities(v: &mut Value, path: &mut Vec<String>, f: &mut dyn FnMut(&str, &mut Value)) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                path.push(k.clone());
                let keys: Vec<&str> = path
                    .iter()
                    .map(String::as_str)
                    .filter(|k| !k.starts_with('['))
                    .collect();
                if !child.is_object() && !child.is_array() && crate::quantity::is_quantity_field(&keys) {
                    f(&path.join("."), child);
                } else {
                    visit_quantities(child, path, f);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                path.push(format!("[{i}]"));
                visit_quantities(child, path, f);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Quantity fields that hold no quantity, as kube-apiserver reports them.
fn invalid_quantities(obj: &Value) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let mut obj = obj.clone();
    visit_quantities(&mut obj, &mut Vec::new(), &mut |path, value| {
        let valid = match value {
            Value::String(s) => crate::quantity::Quantity::parse(s).is_some(),
            Value::Number(n) => crate::quantity::Quantity::parse(&n.to_string()).is_some(),
            // An explicit null leaves the field unset.
            Value::Null => true,
            _ => false,
        };
        if !valid {
            errs.push((
                path.replace(".[", "["),
                format!(
                    "Invalid value: {value}: quantities must match the regular expression \
                     '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                ),
            ));
        }
    });
    errs
}

#[cfg(test)]
mod tests {
    use super::super::resources::Registry;
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_round_trips() {
        for secs in [0u64, 951_782_400, 1_795_000_000, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn immutable_fields_by_resource() {
        let r = Registry::with_builtins();
        let deployments = r.get("apps", "v1", "deployments").unwrap();
        let statefulsets = r.get("apps", "v1", "statefulsets").unwrap();
        let jobs = r.get("batch", "v1", "jobs").unwrap();
        let configmaps = r.get("", "v1", "configmaps").unwrap();
        let claims = r.get("", "v1", "persistentvolumeclaims").unwrap();
        let deployment =
            json!({"spec": {"replicas": 1, "selector": {"matchLabels": {"a": "1"}}, "template": {}}});
        let statefulset = json!({"spec": {"serviceName": "db", "replicas": 1, "template": {"x": 1}}});
        let job = json!({"spec": {"backoffLimit": 3, "template": {"spec": {"image": "a"}}}});
        let frozen = json!({"immutable": true, "data": {"k": "v"}});
        let mutable = json!({"data": {"k": "v"}});
        let claim = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        let with = |base: &Value, pointer: &str, value: Value| {
            let mut v = base.clone();
            *v.pointer_mut(pointer).unwrap() = value;
            v
        };
        let cases: Vec<(&ResourceInfo, &Value, Value, Option<&str>)> = vec![
            (
                deployments,
                &deployment,
                with(&deployment, "/spec/replicas", json!(3)),
                None,
            ),
            (
                deployments,
                &deployment,
                with(&deployment, "/spec/selector/matchLabels/a", json!("2")),
                Some("spec.selector"),
            ),
            (
                statefulsets,
                &statefulset,
                with(&statefulset, "/spec/template/x", json!(2)),
                None,
            ),
            (
                statefulsets,
                &statefulset,
                with(&statefulset, "/spec/serviceName", json!("other")),
                Some("spec"),
            ),
            (
                jobs,
                &job,
                with(&job, "/spec/template/spec/image", json!("b")),
                Some("spec.template"),
            ),
            (
                configmaps,
                &frozen,
                with(&frozen, "/data/k", json!("w")),
                Some("data"),
            ),
            (configmaps, &mutable, json!({"data": {"k": "w"}}), None),
            (
                claims,
                &claim,
                with(&claim, "/spec/resources/requests/storage", json!("2Gi")),
                None,
            ),
            (
                claims,
                &claim,
                with(&claim, "/spec/accessModes", json!(["ReadWriteMany"])),
                Some("spec"),
            ),
        ];
        for (info, old, new, refused) in cases {
            let errs = validate_immutable(info, Some(old), &new);
            assert_eq!(
                errs.first().map(|(f, _)| f.as_str()),
                refused,
                "{}: {new}",
                info.plural
            );
            assert!(
                validate_immutable(info, None, &new).is_empty(),
                "creation is never refused"
            );
        }
    }

    #[test]
    fn name_rules_by_resource() {
        let r = Registry::with_builtins();
        let cm = r.get("", "v1", "configmaps").unwrap();
        let ns = r.get("", "v1", "namespaces").unwrap();
        let role = r.get("rbac.authorization.k8s.io", "v1", "clusterroles").unwrap();
        let cases = [
            (cm, "a.b-c", true),
            (cm, "A", false),
            (cm, "-a", false),
            (cm, "", false),
            (ns, "a.b", false),
            (ns, "kube-system", true),
            (role, "system:controller:x", true),
            (role, "a/b", false),
        ];
        for (info, name, ok) in cases {
            assert_eq!(validate_name(info, name).is_ok(), ok, "{}/{name}", info.plural);
        }
        assert!(validate_name(cm, &"a".repeat(254)).is_err());
    }

    #[test]
    fn labels_are_validated() {
        let ok = json!({"metadata": {"labels": {"app.kubernetes.io/name": "x", "a": ""}}});
        assert!(validate_meta(&ok).is_empty());
        for bad in [
            json!({"metadata": {"labels": {"a": 1}}}),
            json!({"metadata": {"labels": {"a b": "x"}}}),
            json!({"metadata": {"labels": "x"}}),
            json!({"metadata": {"labels": {"a": "-x"}}}),
        ] {
            assert!(!validate_meta(&bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn generation_ignores_metadata_and_status() {
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"y": 1}});
        let b = json!({"metadata": {"labels": {"a": "2"}}, "spec": {"x": 1}, "status": {"y": 2}});
        let c = json!({"metadata": {}, "spec": {"x": 2}});
        assert!(!spec_changed(&a, &b));
        assert!(spec_changed(&a, &c));
    }
}
