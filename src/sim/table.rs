//! Server-side printing: the `meta.k8s.io/v1 Table` form `kubectl get` asks for, with the columns a real
//! server prints for the kinds the simulator serves.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::meta::parse_rfc3339;
use super::resources::ResourceInfo;

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .any(|part| part.contains("as=Table") && part.contains("g=meta.k8s.io"))
}

fn col(name: &str, kind: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": "", "priority": priority})
}

fn columns(info: &ResourceInfo) -> Vec<Value> {
    let mut c = vec![col("Name", "string", 0)];
    let rest: &[(&str, &str, u8)] = match (info.group.as_str(), info.plural.as_str()) {
        ("apps", "deployments") => &[
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        ("apps", "statefulsets") => &[
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        ("apps", "daemonsets") => &[
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Age", "string", 0),
        ],
        ("batch", "jobs") => &[
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            ("Age", "string", 0),
        ],
        ("", "pods") => &[
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
        ],
        ("", "services") => &[
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
        ],
        ("", "configmaps") => &[("Data", "integer", 0), ("Age", "string", 0)],
        ("", "secrets") => &[
            ("Type", "string", 0),
            ("Data", "integer", 0),
            ("Age", "string", 0),
        ],
        ("", "namespaces") => &[("Status", "string", 0), ("Age", "string", 0)],
        _ => &[("Age", "string", 0)],
    };
    c.extend(rest.iter().map(|(n, k, p)| col(n, k, *p)));
    c
}

/// Kubernetes' short human durations: 45s, 5m10s, 3h, 2d, 400d.
pub fn human_age(secs: u64) -> String {
    if secs < 120 {
        format!("{secs}s")
    } else if secs < 600 {
        let (m, s) = (secs / 60, secs % 60);
        if s == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{s}s")
        }
    } else if secs < 3 * 3600 {
        format!("{}m", secs / 60)
    } else if secs < 8 * 3600 {
        let (h, m) = (secs / 3600, (secs % 3600) / 60);
        if m == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{m}m")
        }
    } else if secs < 48 * 3600 {
        format!("{}h", secs / 3600)
    } else {
        format!("{}d", secs / 86_400)
    }
}

fn age(obj: &Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(parse_rfc3339)
    {
        Some(t) => human_age(now.saturating_sub(t)),
        None => "<unknown>".into(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn containers(obj: &Value) -> (String, String) {
    let cs = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

fn cells(info: &ResourceInfo, obj: &Value) -> Vec<Value> {
    let name = json!(obj["metadata"]["name"]);
    let s = &obj["status"];
    let a = json!(age(obj));
    match (info.group.as_str(), info.plural.as_str()) {
        ("apps", "deployments") => {
            let (c, i) = containers(obj);
            let sel = obj["spec"]["selector"]["matchLabels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&s["readyReplicas"]),
                    obj["spec"]["replicas"].as_i64().unwrap_or(1)
                )),
                json!(int(&s["updatedReplicas"])),
                json!(int(&s["availableReplicas"])),
                a,
                json!(c),
                json!(i),
                json!(sel),
            ]
        }
        ("apps", "statefulsets") => {
            let (c, i) = containers(obj);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&s["readyReplicas"]),
                    obj["spec"]["replicas"].as_i64().unwrap_or(1)
                )),
                a,
                json!(c),
                json!(i),
            ]
        }
        ("apps", "daemonsets") => {
            let ns = obj["spec"]["template"]["spec"]["nodeSelector"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(int(&s["desiredNumberScheduled"])),
                json!(int(&s["currentNumberScheduled"])),
                json!(int(&s["numberReady"])),
                json!(int(&s["updatedNumberScheduled"])),
                json!(int(&s["numberAvailable"])),
                json!(if ns.is_empty() { "<none>".to_string() } else { ns }),
                a,
            ]
        }
        ("batch", "jobs") => {
            let conds = s["conditions"].as_array().cloned().unwrap_or_default();
            let has = |t: &str| conds.iter().any(|c| c["type"] == t && c["status"] == "True");
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else {
                "Running"
            };
            let duration = match (
                s["startTime"].as_str().and_then(parse_rfc3339),
                s["completionTime"].as_str().and_then(parse_rfc3339),
            ) {
                (Some(st), Some(ct)) => human_age(ct.saturating_sub(st)),
                (Some(st), None) => human_age(
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0)
                        .saturating_sub(st),
                ),
                _ => String::new(),
            };
            vec![
                name,
                json!(status),
                json!(format!(
                    "{}/{}",
                    int(&s["succeeded"]),
                    obj["spec"]["completions"].as_i64().unwrap_or(1)
                )),
                json!(duration),
                a,
            ]
        }
        ("", "pods") => vec![
            name,
            json!("0/1"),
            json!(s["phase"].as_str().unwrap_or("Pending")),
            json!("0"),
            a,
        ],
        ("", "services") => {
            let ports = obj["spec"]["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(obj["spec"]["type"].as_str().unwrap_or("ClusterIP")),
                json!(obj["spec"]["clusterIP"].as_str().unwrap_or("")),
                json!("<none>"),
                json!(if ports.is_empty() { "<none>".into() } else { ports }),
                a,
            ]
        }
        ("", "configmaps") => {
            let n = obj["data"].as_object().map_or(0, |m| m.len())
                + obj["binaryData"].as_object().map_or(0, |m| m.len());
            vec![name, json!(n), a]
        }
        ("", "secrets") => vec![
            name,
            json!(obj["type"].as_str().unwrap_or("Opaque")),
            json!(obj["data"].as_object().map_or(0, |m| m.len())),
            a,
        ],
        ("", "namespaces") => vec![name, json!(s["phase"].as_str().unwrap_or("Active")), a],
        _ => vec![name, a],
    }
}

fn row(info: &ResourceInfo, obj: &Value, full: bool) -> Value {
    let object = if full {
        let mut o = obj.clone();
        o["apiVersion"] = json!(info.api_version());
        o["kind"] = json!(info.kind);
        o
    } else {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
    };
    json!({"cells": cells(info, obj), "object": object})
}

/// A Table for a list response (or a single object when `list` has no `items`).
pub fn to_table(info: &ResourceInfo, body: &Value, full: bool) -> Value {
    let (rows, meta) = match body.get("items").and_then(Value::as_array) {
        Some(items) => (
            items.iter().map(|o| row(info, o, full)).collect::<Vec<_>>(),
            body["metadata"].clone(),
        ),
        None => (
            vec![row(info, body, full)],
            json!({"resourceVersion": body["metadata"]["resourceVersion"]}),
        ),
    };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns(info), "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::super::resources::Registry;
    use super::*;

    #[test]
    fn human_age_table() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (130, "2m10s"),
            (600, "10m"),
            (4 * 3600, "4h"),
            (3 * 86400, "3d"),
        ] {
            assert_eq!(human_age(s), want);
        }
    }

    #[test]
    fn deployment_row_shows_ready_counts() {
        let reg = Registry::with_builtins();
        let info = reg.get("apps", "v1", "deployments").unwrap();
        let obj = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = to_table(info, &obj, false);
        assert_eq!(t["rows"][0]["cells"][1], "2/3");
        assert_eq!(
            t["columnDefinitions"].as_array().unwrap().len(),
            t["rows"][0]["cells"].as_array().unwrap().len()
        );
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
