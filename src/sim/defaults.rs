//! Defaulting: the fields kube-apiserver fills in on write, from the object itself (`apply_defaults`) or
//! from the server's own state (`server_fields`: addresses, status a new object starts with).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::meta::visit_quantities;
use super::resources::ResourceInfo;

/// Service cluster IPs, handed out from 10.96.0.0/16 in order.
#[derive(Debug)]
pub struct ClusterIps {
    next: u32,
}

impl Default for ClusterIps {
    fn default() -> Self {
        ClusterIps { next: 1 }
    }
}

impl ClusterIps {
    pub fn allocate(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        format!("10.96.{}.{}", n / 254, n % 254 + 1)
    }
}

/// The defaults a real server fills in for the fields Keelson and kubectl read back.
pub fn apply_defaults(info: &ResourceInfo, obj: &mut Value) {
    if !info.builtin {
        return;
    }
    match (info.group.as_str(), info.plural.as_str()) {
        ("apps", "deployments") | ("apps", "statefulsets") => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert(json!(1));
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
                if info.plural == "deployments" {
                    spec.entry("progressDeadlineSeconds").or_insert(json!(600));
                    spec.entry("strategy").or_insert(json!({
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
                    }));
                } else {
                    spec.entry("podManagementPolicy").or_insert(json!("OrderedReady"));
                    spec.entry("updateStrategy")
                        .or_insert(json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
                }
            }
        }
        ("", "secrets") => {
            if let Some(m) = obj.as_object_mut() {
                m.entry("type").or_insert(json!("Opaque"));
                // stringData is write-only: it is merged into data (base64) and dropped.
                if let Some(Value::Object(sd)) = m.remove("stringData") {
                    let data = m.entry("data").or_insert(json!({}));
                    if let Some(d) = data.as_object_mut() {
                        for (k, v) in sd {
                            if let Some(s) = v.as_str() {
                                d.insert(k, json!(BASE64.encode(s.as_bytes())));
                            }
                        }
                    }
                }
            }
        }
        ("", "namespaces") => {
            if let Some(m) = obj.as_object_mut() {
                m.entry("spec").or_insert(json!({"finalizers": ["kubernetes"]}));
            }
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                let name = meta.get("name").cloned().unwrap_or(Value::Null);
                let labels = meta.entry("labels").or_insert(json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), name);
                }
            }
        }
        _ => {}
    }
    default_ports(obj);
    canonicalize_quantities(obj);
}

/// Fields a real server fills from its own state (addresses) or keeps from the old object.
pub fn server_fields(info: &ResourceInfo, old: Option<&Value>, new: &mut Value, ips: &mut ClusterIps) {
    if !info.builtin {
        return;
    }
    match info.plural.as_str() {
        "services" => {
            if !new["spec"].is_object() {
                new["spec"] = json!({});
            }
            let spec = &mut new["spec"];
            if spec["type"].is_null() {
                spec["type"] = json!("ClusterIP");
            }
            if spec["sessionAffinity"].is_null() {
                spec["sessionAffinity"] = json!("None");
            }
            if spec["type"] != "ExternalName" {
                let old_ip = old.map(|o| o["spec"]["clusterIP"].clone()).unwrap_or(Value::Null);
                if spec["clusterIP"].is_null() || spec["clusterIP"] == "" {
                    spec["clusterIP"] = if old_ip.is_string() {
                        old_ip
                    } else {
                        json!(ips.allocate())
                    };
                }
                spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
                spec["ipFamilies"] = json!(["IPv4"]);
                if spec["ipFamilyPolicy"].is_null() {
                    spec["ipFamilyPolicy"] = json!("SingleStack");
                }
                if spec["internalTrafficPolicy"].is_null() {
                    spec["internalTrafficPolicy"] = json!("Cluster");
                }
            }
            if let Some(ports) = spec["ports"].as_array_mut() {
                for p in ports {
                    if p["targetPort"].is_null() && !p["port"].is_null() {
                        p["targetPort"] = p["port"].clone();
                    }
                }
            }
            if new["status"].is_null() {
                new["status"] = json!({"loadBalancer": {}});
            }
        }
        "namespaces" if new["status"].is_null() => new["status"] = json!({"phase": "Active"}),
        "pods" if new["status"].is_null() => {
            new["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"})
        }
        // Claims start Pending; the PersistentVolume controller binds them (`controllers::storage`).
        "persistentvolumeclaims" | "persistentvolumes" if new["status"].is_null() => {
            new["status"] = json!({"phase": "Pending"})
        }
        _ => {}
    }
}

/// The API server stores quantities in canonical form (`1000m` as `1`, `1024Mi` as `1Gi`, `2` as `"2"`).
fn canonicalize_quantities(obj: &mut Value) {
    visit_quantities(obj, &mut Vec::new(), &mut |_, value| {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return,
        };
        if let Some(canonical) = crate::quantity::canonical(&text) {
            *value = Value::String(canonical);
        }
    });
}

/// Container and service ports get `protocol: TCP`, which is part of their list keys.
fn default_ports(obj: &mut Value) {
    fn visit(v: &mut Value, parent: &str) {
        match v {
            Value::Object(m) => {
                for (k, child) in m.iter_mut() {
                    visit(child, k);
                }
            }
            Value::Array(items) if parent == "ports" => {
                for item in items {
                    if let Some(m) = item.as_object_mut() {
                        if m.contains_key("containerPort") || m.contains_key("port") {
                            m.entry("protocol").or_insert(json!("TCP"));
                        }
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    visit(item, "");
                }
            }
            _ => {}
        }
    }
    if let Some(spec) = obj.get_mut("spec") {
        visit(spec, "spec");
    }
}
