//! The shapes the controllers rely on, checked when Pods, workloads and claims are written: a real API
//! server decodes them into typed structs and refuses a string where a map or a list belongs, so the
//! controllers never meet one. Answers `(field, message)` causes for a 422.

use serde_json::Value;

type Causes = Vec<(String, String)>;

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn wrong(out: &mut Causes, path: &str, v: &Value, want: &str) {
    out.push((
        path.to_string(),
        format!("Invalid value: {}: must be {want}", kind_of(v)),
    ));
}

/// `v` is absent, null or an object.
fn object<'a>(out: &mut Causes, path: &str, v: &'a Value) -> Option<&'a serde_json::Map<String, Value>> {
    match v {
        Value::Null => None,
        Value::Object(m) => Some(m),
        other => {
            wrong(out, path, other, "an object");
            None
        }
    }
}

/// `v` is absent, null or a list of objects; returns the objects.
fn objects<'a>(out: &mut Causes, path: &str, v: &'a Value) -> Vec<&'a Value> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(items) => {
            let mut ok = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if item.is_object() {
                    ok.push(item);
                } else {
                    wrong(out, &format!("{path}[{i}]"), item, "an object");
                }
            }
            ok
        }
        other => {
            wrong(out, path, other, "a list");
            Vec::new()
        }
    }
}

fn strings(out: &mut Causes, path: &str, v: &Value) {
    match v {
        Value::Null => {}
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_string() {
                    wrong(out, &format!("{path}[{i}]"), item, "a string");
                }
            }
        }
        other => wrong(out, path, other, "a list of strings"),
    }
}

fn string_map(out: &mut Causes, path: &str, v: &Value) {
    if let Some(m) = object(out, path, v) {
        for (k, item) in m {
            if !item.is_string() {
                wrong(out, &format!("{path}.{k}"), item, "a string");
            }
        }
    }
}

fn string(out: &mut Causes, path: &str, v: &Value) {
    if !v.is_null() && !v.is_string() {
        wrong(out, path, v, "a string");
    }
}

/// A Pod spec: the lists and maps the scheduler, the kubelet and admission walk.
pub fn pod_spec(out: &mut Causes, path: &str, spec: &Value) {
    let Some(s) = object(out, path, spec) else { return };
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, c) in objects(
            out,
            &format!("{path}.{list}"),
            s.get(list).unwrap_or(&Value::Null),
        )
        .into_iter()
        .enumerate()
        {
            let p = format!("{path}.{list}[{i}]");
            string(out, &format!("{p}.name"), &c["name"]);
            string(out, &format!("{p}.image"), &c["image"]);
            strings(out, &format!("{p}.command"), &c["command"]);
            strings(out, &format!("{p}.args"), &c["args"]);
            for field in ["env", "envFrom", "ports", "volumeMounts"] {
                for (j, e) in objects(out, &format!("{p}.{field}"), &c[field])
                    .into_iter()
                    .enumerate()
                {
                    if field == "env" {
                        if let Some(from) = object(out, &format!("{p}.env[{j}].valueFrom"), &e["valueFrom"]) {
                            for (k, r) in from {
                                object(out, &format!("{p}.env[{j}].valueFrom.{k}"), r);
                            }
                        }
                    }
                }
            }
            if let Some(r) = object(out, &format!("{p}.resources"), &c["resources"]) {
                for part in ["requests", "limits"] {
                    object(
                        out,
                        &format!("{p}.resources.{part}"),
                        r.get(part).unwrap_or(&Value::Null),
                    );
                }
            }
        }
    }
    for field in ["volumes", "tolerations", "schedulingGates"] {
        objects(
            out,
            &format!("{path}.{field}"),
            s.get(field).unwrap_or(&Value::Null),
        );
    }
    string_map(
        out,
        &format!("{path}.nodeSelector"),
        s.get("nodeSelector").unwrap_or(&Value::Null),
    );
    for field in [
        "nodeName",
        "restartPolicy",
        "schedulerName",
        "serviceAccountName",
        "serviceAccount",
    ] {
        string(
            out,
            &format!("{path}.{field}"),
            s.get(field).unwrap_or(&Value::Null),
        );
    }
    if let Some(a) = object(
        out,
        &format!("{path}.affinity"),
        s.get("affinity").unwrap_or(&Value::Null),
    ) {
        if let Some(na) = object(
            out,
            &format!("{path}.affinity.nodeAffinity"),
            a.get("nodeAffinity").unwrap_or(&Value::Null),
        ) {
            let req = na
                .get("requiredDuringSchedulingIgnoredDuringExecution")
                .unwrap_or(&Value::Null);
            let rp = format!("{path}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution");
            if let Some(r) = object(out, &rp, req) {
                node_selector_terms(
                    out,
                    &format!("{rp}.nodeSelectorTerms"),
                    r.get("nodeSelectorTerms").unwrap_or(&Value::Null),
                );
            }
        }
    }
}

fn node_selector_terms(out: &mut Causes, path: &str, v: &Value) {
    for (i, term) in objects(out, path, v).into_iter().enumerate() {
        for field in ["matchExpressions", "matchFields"] {
            let p = format!("{path}[{i}].{field}");
            for (j, e) in objects(out, &p, &term[field]).into_iter().enumerate() {
                string(out, &format!("{p}[{j}].key"), &e["key"]);
                string(out, &format!("{p}[{j}].operator"), &e["operator"]);
                strings(out, &format!("{p}[{j}].values"), &e["values"]);
            }
        }
    }
}

fn label_selector(out: &mut Causes, path: &str, v: &Value) {
    let Some(s) = object(out, path, v) else { return };
    string_map(
        out,
        &format!("{path}.matchLabels"),
        s.get("matchLabels").unwrap_or(&Value::Null),
    );
    let p = format!("{path}.matchExpressions");
    for (i, e) in objects(out, &p, s.get("matchExpressions").unwrap_or(&Value::Null))
        .into_iter()
        .enumerate()
    {
        string(out, &format!("{p}[{i}].key"), &e["key"]);
        string(out, &format!("{p}[{i}].operator"), &e["operator"]);
        strings(out, &format!("{p}[{i}].values"), &e["values"]);
    }
}

/// The shape checks for one object of a kind the controllers act on.
pub fn check(group: &str, plural: &str, obj: &Value) -> Causes {
    let mut out = Vec::new();
    let workload = matches!(
        (group, plural),
        (
            "apps",
            "deployments" | "replicasets" | "statefulsets" | "daemonsets"
        ) | ("batch", "jobs")
    );
    if (group, plural) == ("", "pods") {
        pod_spec(&mut out, "spec", &obj["spec"]);
    } else if workload {
        let Some(spec) = object(&mut out, "spec", &obj["spec"]) else {
            return out;
        };
        label_selector(
            &mut out,
            "spec.selector",
            spec.get("selector").unwrap_or(&Value::Null),
        );
        let template = spec.get("template").unwrap_or(&Value::Null);
        if let Some(t) = object(&mut out, "spec.template", template) {
            if let Some(m) = object(
                &mut out,
                "spec.template.metadata",
                t.get("metadata").unwrap_or(&Value::Null),
            ) {
                for f in ["labels", "annotations"] {
                    string_map(
                        &mut out,
                        &format!("spec.template.metadata.{f}"),
                        m.get(f).unwrap_or(&Value::Null),
                    );
                }
            }
            pod_spec(
                &mut out,
                "spec.template.spec",
                t.get("spec").unwrap_or(&Value::Null),
            );
        }
        let p = "spec.volumeClaimTemplates";
        for (i, c) in objects(
            &mut out,
            p,
            spec.get("volumeClaimTemplates").unwrap_or(&Value::Null),
        )
        .into_iter()
        .enumerate()
        {
            if let Some(m) = object(&mut out, &format!("{p}[{i}].metadata"), &c["metadata"]) {
                for f in ["labels", "annotations"] {
                    string_map(
                        &mut out,
                        &format!("{p}[{i}].metadata.{f}"),
                        m.get(f).unwrap_or(&Value::Null),
                    );
                }
            }
            object(&mut out, &format!("{p}[{i}].spec"), &c["spec"]);
        }
    } else if (group, plural) == ("", "persistentvolumeclaims") {
        if let Some(spec) = object(&mut out, "spec", &obj["spec"]) {
            strings(
                &mut out,
                "spec.accessModes",
                spec.get("accessModes").unwrap_or(&Value::Null),
            );
            string(
                &mut out,
                "spec.storageClassName",
                spec.get("storageClassName").unwrap_or(&Value::Null),
            );
            string(
                &mut out,
                "spec.volumeName",
                spec.get("volumeName").unwrap_or(&Value::Null),
            );
        }
    } else if (group, plural) == ("", "persistentvolumes") {
        if let Some(spec) = object(&mut out, "spec", &obj["spec"]) {
            strings(
                &mut out,
                "spec.accessModes",
                spec.get("accessModes").unwrap_or(&Value::Null),
            );
            string(
                &mut out,
                "spec.storageClassName",
                spec.get("storageClassName").unwrap_or(&Value::Null),
            );
            object(
                &mut out,
                "spec.capacity",
                spec.get("capacity").unwrap_or(&Value::Null),
            );
            object(
                &mut out,
                "spec.claimRef",
                spec.get("claimRef").unwrap_or(&Value::Null),
            );
            if let Some(a) = object(
                &mut out,
                "spec.nodeAffinity",
                spec.get("nodeAffinity").unwrap_or(&Value::Null),
            ) {
                if let Some(r) = object(
                    &mut out,
                    "spec.nodeAffinity.required",
                    a.get("required").unwrap_or(&Value::Null),
                ) {
                    node_selector_terms(
                        &mut out,
                        "spec.nodeAffinity.required.nodeSelectorTerms",
                        r.get("nodeSelectorTerms").unwrap_or(&Value::Null),
                    );
                }
            }
        }
    } else if (group, plural) == ("", "nodes") {
        if let Some(spec) = object(&mut out, "spec", &obj["spec"]) {
            objects(
                &mut out,
                "spec.taints",
                spec.get("taints").unwrap_or(&Value::Null),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_types_where_controllers_walk_are_refused() {
        let deploy = |template: Value| json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "template": template}});
        let cases = [
            (
                deploy(json!({"metadata": {"labels": "app=a"}})),
                "spec.template.metadata.labels",
            ),
            (
                deploy(json!({"spec": {"containers": ["nginx"]}})),
                "spec.template.spec.containers[0]",
            ),
            (
                deploy(json!({"spec": {"containers": [{"name": "c", "env": {"A": "b"}}]}})),
                "spec.template.spec.containers[0].env",
            ),
            (
                deploy(json!({"spec": {"nodeSelector": {"zone": 1}}})),
                "spec.template.spec.nodeSelector.zone",
            ),
            (deploy(json!("template")), "spec.template"),
            (
                json!({"spec": {"selector": {"matchLabels": "x"}}}),
                "spec.selector.matchLabels",
            ),
        ];
        for (obj, field) in cases {
            let causes = check("apps", "deployments", &obj);
            assert!(causes.iter().any(|(f, _)| f == field), "{field}: {causes:?}");
        }
        let good = deploy(
            json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i",
            "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}}),
        );
        assert!(check("apps", "deployments", &good).is_empty());
        assert!(check("", "pods", &json!({"spec": {"tolerations": "all"}}))[0].0 == "spec.tolerations");
        assert_eq!(check("", "persistentvolumes", &json!({"spec": "x"}))[0].0, "spec");
    }
}
