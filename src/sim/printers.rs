//! Table columns and cells for the kinds the simulated control plane runs (Pods, Nodes, ReplicaSets,
//! claims, volumes, StorageClasses), computed as kube-apiserver's printers compute them: a Pod's STATUS
//! from its container states, a Node's from its Ready condition, ages, restart counts.

use serde_json::{Value, json};

use super::resources::ResourceInfo;

type Columns = &'static [(&'static str, &'static str, u8)];

/// The columns, when `info` is one of the kinds printed here.
pub fn columns(info: &ResourceInfo) -> Option<Columns> {
    if !info.builtin {
        return None;
    }
    Some(match (info.group.as_str(), info.plural.as_str()) {
        ("", "pods") => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        ("", "nodes") => &[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        ("apps", "replicasets") => &[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        ("", "persistentvolumeclaims") => &[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Volume", "string", 0),
            ("Capacity", "string", 0),
            ("Access Modes", "string", 0),
            ("StorageClass", "string", 0),
            ("VolumeAttributesClass", "string", 0),
            ("Age", "string", 0),
            ("VolumeMode", "string", 1),
        ],
        ("", "persistentvolumes") => &[
            ("Name", "string", 0),
            ("Capacity", "string", 0),
            ("Access Modes", "string", 0),
            ("Reclaim Policy", "string", 0),
            ("Status", "string", 0),
            ("Claim", "string", 0),
            ("StorageClass", "string", 0),
            ("VolumeAttributesClass", "string", 0),
            ("Reason", "string", 0),
            ("Age", "string", 0),
            ("VolumeMode", "string", 1),
        ],
        ("storage.k8s.io", "storageclasses") => &[
            ("Name", "string", 0),
            ("Provisioner", "string", 0),
            ("ReclaimPolicy", "string", 0),
            ("VolumeBindingMode", "string", 0),
            ("AllowVolumeExpansion", "string", 0),
            ("Age", "string", 0),
        ],
        _ => return None,
    })
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

fn modes(v: &Value) -> String {
    v.as_array()
        .map(|l| {
            l.iter()
                .map(|m| match text(m) {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn selector(v: &Value) -> String {
    let mut parts: Vec<String> = v["matchLabels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect())
        .unwrap_or_default();
    for e in v["matchExpressions"].as_array().cloned().unwrap_or_default() {
        let values: Vec<&str> = e["values"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match text(&e["operator"]) {
            "Exists" => text(&e["key"]).to_string(),
            "DoesNotExist" => format!("!{}", text(&e["key"])),
            op => format!("{} {} ({})", text(&e["key"]), op.to_lowercase(), values.join(",")),
        });
    }
    parts.join(",")
}

/// The cells of one row, `age` and `since` being the table's age printers.
pub fn cells(info: &ResourceInfo, obj: &Value, age: &dyn Fn(&Value) -> String) -> Vec<Value> {
    let name = json!(obj["metadata"]["name"]);
    let created = age(&obj["metadata"]["creationTimestamp"]);
    let s = &obj["status"];
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "pods") => pod_cells(obj, age),
        ("", "nodes") => {
            let ready = s["conditions"]
                .as_array()
                .and_then(|l| l.iter().find(|c| c["type"] == "Ready"))
                .map(|c| {
                    if c["status"] == "True" {
                        "Ready"
                    } else {
                        "NotReady"
                    }
                })
                .unwrap_or("Unknown");
            let status = if obj["spec"]["unschedulable"] == true {
                format!("{ready},SchedulingDisabled")
            } else {
                ready.to_string()
            };
            let mut roles: Vec<String> = obj["metadata"]["labels"]
                .as_object()
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .filter(|r| !r.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            roles.sort();
            let address = |t: &str| {
                s["addresses"]
                    .as_array()
                    .and_then(|l| l.iter().find(|a| a["type"] == t))
                    .map(|a| text(&a["address"]).to_string())
                    .unwrap_or_else(|| "<none>".into())
            };
            let info = &s["nodeInfo"];
            vec![
                name,
                json!(status),
                json!(or_none(roles.join(","))),
                json!(created),
                json!(text(&info["kubeletVersion"])),
                json!(address("InternalIP")),
                json!(address("ExternalIP")),
                json!(text(&info["osImage"])),
                json!(text(&info["kernelVersion"])),
                json!(text(&info["containerRuntimeVersion"])),
            ]
        }
        ("apps", "replicasets") => {
            let cs = obj["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
            let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
            vec![
                name,
                json!(obj["spec"]["replicas"].as_i64().unwrap_or(1)),
                json!(s["replicas"].as_i64().unwrap_or(0)),
                json!(s["readyReplicas"].as_i64().unwrap_or(0)),
                json!(created),
                json!(names.join(",")),
                json!(images.join(",")),
                json!(selector(&obj["spec"]["selector"])),
            ]
        }
        ("", "persistentvolumeclaims") => {
            let bound = s["phase"] == "Bound";
            vec![
                name,
                json!(text(&s["phase"])),
                json!(text(&obj["spec"]["volumeName"])),
                json!(if bound {
                    text(&s["capacity"]["storage"])
                } else {
                    ""
                }),
                json!(if bound {
                    modes(&s["accessModes"])
                } else {
                    String::new()
                }),
                json!(or_none(text(&obj["spec"]["storageClassName"]).to_string())),
                json!(or_unset(text(&obj["spec"]["volumeAttributesClassName"]))),
                json!(created),
                json!(text(&obj["spec"]["volumeMode"])),
            ]
        }
        ("", "persistentvolumes") => {
            let claim = &obj["spec"]["claimRef"];
            let claim = if claim.is_object() {
                format!("{}/{}", text(&claim["namespace"]), text(&claim["name"]))
            } else {
                String::new()
            };
            vec![
                name,
                json!(text(&obj["spec"]["capacity"]["storage"])),
                json!(modes(&obj["spec"]["accessModes"])),
                json!(text(&obj["spec"]["persistentVolumeReclaimPolicy"])),
                json!(text(&s["phase"])),
                json!(claim),
                json!(text(&obj["spec"]["storageClassName"])),
                json!(or_unset(text(&obj["spec"]["volumeAttributesClassName"]))),
                json!(text(&s["reason"])),
                json!(created),
                json!(text(&obj["spec"]["volumeMode"])),
            ]
        }
        ("storage.k8s.io", "storageclasses") => {
            let default =
                obj["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true";
            let n = text(&obj["metadata"]["name"]);
            vec![
                json!(if default {
                    format!("{n} (default)")
                } else {
                    n.to_string()
                }),
                json!(text(&obj["provisioner"])),
                json!(obj["reclaimPolicy"].as_str().unwrap_or("Delete")),
                json!(obj["volumeBindingMode"].as_str().unwrap_or("Immediate")),
                json!(obj["allowVolumeExpansion"].as_bool().unwrap_or(false).to_string()),
                json!(created),
            ]
        }
        _ => vec![name, json!(created)],
    }
}

fn or_unset(s: &str) -> String {
    if s.is_empty() { "<unset>".into() } else { s.into() }
}

/// kubectl's Pod STATUS: the phase, overridden by the first init container still working, else by the
/// last container with a waiting or terminated reason; `Terminating` once deleted.
pub fn pod_status(pod: &Value) -> (String, usize, usize, i64, Option<String>) {
    let s = &pod["status"];
    let mut reason = s["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| s["phase"].as_str().unwrap_or("Pending"))
        .to_string();
    let inits = s["initContainerStatuses"].as_array().cloned().unwrap_or_default();
    let total_inits = pod["spec"]["initContainers"].as_array().map_or(0, Vec::len);
    let mut restarts = 0;
    let mut last_restart: Option<String> = None;
    let mut note_restart = |c: &Value, restarts: &mut i64| {
        *restarts += c["restartCount"].as_i64().unwrap_or(0);
        if let Some(t) = c["lastState"]["terminated"]["finishedAt"].as_str() {
            if last_restart.as_deref().is_none_or(|l| t > l) {
                last_restart = Some(t.to_string());
            }
        }
    };
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        note_restart(c, &mut restarts);
        let st = &c["state"];
        if st["terminated"].is_object() && st["terminated"]["exitCode"] == 0 {
            continue;
        }
        initializing = true;
        reason = if st["terminated"].is_object() {
            match st["terminated"]["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => format!("Init:ExitCode:{}", st["terminated"]["exitCode"]),
            }
        } else if let Some(r) = st["waiting"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{total_inits}")
        };
        break;
    }
    let containers = s["containerStatuses"].as_array().cloned().unwrap_or_default();
    let total = pod["spec"]["containers"]
        .as_array()
        .map_or(containers.len(), Vec::len);
    let mut ready = 0;
    if !initializing {
        restarts = 0;
        let mut running = false;
        for c in containers.iter().rev() {
            note_restart(c, &mut restarts);
            let st = &c["state"];
            if let Some(r) = st["waiting"]["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if let Some(r) = st["terminated"]["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if st["terminated"].is_object() {
                reason = format!("ExitCode:{}", st["terminated"]["exitCode"]);
            } else if c["ready"] == true && st["running"].is_object() {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            let pod_ready = s["conditions"]
                .as_array()
                .is_some_and(|l| l.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        reason = "Terminating".into();
    }
    (reason, ready, total, restarts, last_restart)
}

fn pod_cells(pod: &Value, age: &dyn Fn(&Value) -> String) -> Vec<Value> {
    let (status, ready, total, restarts, last) = pod_status(pod);
    let restarts = match last {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", age(&json!(t))),
        _ => restarts.to_string(),
    };
    let ip = pod["status"]["podIP"].as_str().unwrap_or("<none>");
    let node = pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or("<none>");
    vec![
        json!(pod["metadata"]["name"]),
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        json!(age(&pod["metadata"]["creationTimestamp"])),
        json!(ip),
        json!(node),
        json!("<none>"),
        json!("<none>"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(status: Value, deleting: bool) -> String {
        let mut pod =
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}, "status": status});
        if deleting {
            pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        pod_status(&pod).0
    }

    #[test]
    fn pod_status_column_as_kubectl_prints_it() {
        let waiting = |r: &str| json!({"phase": "Pending", "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": r}}}]});
        for (status, deleting, want) in [
            (json!({"phase": "Pending"}), false, "Pending"),
            (waiting("ContainerCreating"), false, "ContainerCreating"),
            (
                waiting("CreateContainerConfigError"),
                false,
                "CreateContainerConfigError",
            ),
            (waiting("ImagePullBackOff"), false, "ImagePullBackOff"),
            (
                json!({"phase": "Running", "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}]}),
                false,
                "Running",
            ),
            (
                json!({"phase": "Running", "containerStatuses": [{"name": "a", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                false,
                "CrashLoopBackOff",
            ),
            (
                json!({"phase": "Succeeded", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                false,
                "Completed",
            ),
            (
                json!({"phase": "Running", "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}]}),
                true,
                "Terminating",
            ),
            (
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"waiting": {"reason": "PodInitializing"}}}]}),
                false,
                "Init:0/0",
            ),
        ] {
            assert_eq!(status_of(status.clone(), deleting), want, "{status}");
        }
    }

    #[test]
    fn restarts_and_readiness_are_counted() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"finishedAt": "2026-01-01T00:00:00Z"}}}]}});
        let (status, ready, total, restarts, last) = pod_status(&pod);
        assert_eq!(
            (status.as_str(), ready, total, restarts),
            ("CrashLoopBackOff", 1, 2, 2)
        );
        assert_eq!(last.as_deref(), Some("2026-01-01T00:00:00Z"));
    }
}
