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

/// Events print as kube-apiserver prints them: the name last, at priority 1 (`-o wide`).
const EVENT_COLUMNS: &[(&str, &str, u8)] = &[
    ("Last Seen", "string", 0),
    ("Type", "string", 0),
    ("Reason", "string", 0),
    ("Object", "string", 0),
    ("Subobject", "string", 1),
    ("Source", "string", 1),
    ("Message", "string", 0),
    ("First Seen", "string", 1),
    ("Count", "string", 1),
    ("Name", "string", 1),
];

fn is_event(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.plural == "events"
}

fn columns(info: &ResourceInfo) -> Vec<Value> {
    if is_event(info) {
        return EVENT_COLUMNS.iter().map(|(n, k, p)| col(n, k, *p)).collect();
    }
    if let Some(cols) = super::printers::columns(info) {
        return cols.iter().map(|(n, k, p)| col(n, k, *p)).collect();
    }
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
    since(&obj["metadata"]["creationTimestamp"])
}

/// Time since an RFC 3339 timestamp, as `kubectl get` prints ages.
fn since(timestamp: &Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match timestamp.as_str().and_then(parse_rfc3339) {
        Some(t) => human_age(now.saturating_sub(t)),
        None => "<unknown>".into(),
    }
}

fn event_cells(obj: &Value) -> Vec<Value> {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let first = [
        &obj["firstTimestamp"],
        &obj["eventTime"],
        &obj["metadata"]["creationTimestamp"],
    ]
    .into_iter()
    .find(|v| v.is_string())
    .cloned()
    .unwrap_or(Value::Null);
    let last = [
        &obj["lastTimestamp"],
        &obj["series"]["lastObservedTime"],
        &obj["eventTime"],
    ]
    .into_iter()
    .find(|v| v.is_string())
    .cloned()
    .unwrap_or_else(|| first.clone());
    let involved = &obj["involvedObject"];
    let object = format!(
        "{}/{}",
        text(&involved["kind"]).to_lowercase(),
        text(&involved["name"])
    );
    let subobject = text(&involved["fieldPath"]);
    let or = |a: String, b: &Value| if a.is_empty() { text(b) } else { a };
    let component = or(text(&obj["source"]["component"]), &obj["reportingComponent"]);
    let host = or(text(&obj["source"]["host"]), &obj["reportingInstance"]);
    let source = if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(since(&last)),
        json!(text(&obj["type"])),
        json!(text(&obj["reason"])),
        json!(object),
        json!(subobject),
        json!(source),
        json!(text(&obj["message"]).trim()),
        json!(since(&first)),
        json!(obj["count"].as_i64().unwrap_or(1).to_string()),
        json!(obj["metadata"]["name"]),
    ]
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
    if is_event(info) {
        return event_cells(obj);
    }
    if super::printers::columns(info).is_some() {
        return super::printers::cells(info, obj, &since);
    }
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

    #[test]
    fn event_rows_show_type_reason_object_and_message() {
        let reg = Registry::with_builtins();
        let info = reg.get("", "v1", "events").unwrap();
        let obj = json!({"metadata": {"name": "keelson-status.1"}, "type": "Warning", "reason": "RolloutFailed",
            "involvedObject": {"kind": "ConfigMap", "name": "keelson-status"}, "message": "revision abc failed",
            "source": {"component": "keelson"}, "count": 1,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"});
        let t = to_table(info, &obj, false);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["priority"] == 0)
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["Last Seen", "Type", "Reason", "Object", "Message"]);
        let cells = t["rows"][0]["cells"].as_array().unwrap();
        assert_eq!(cells.len(), t["columnDefinitions"].as_array().unwrap().len());
        assert_eq!(cells[1], "Warning");
        assert_eq!(cells[2], "RolloutFailed");
        assert_eq!(cells[3], "configmap/keelson-status");
        assert_eq!(cells[5], "keelson");
        assert_eq!(cells[6], "revision abc failed");
        assert_eq!(cells[9], "keelson-status.1");
    }
}
