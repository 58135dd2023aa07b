//! What a Pod spec asks of its node and its namespace: resource requests, QoS class, host ports, claims,
//! the Secrets and ConfigMaps it reads, its containers' images and command lines. Pure.

use std::collections::BTreeMap;

use serde_json::Value;

use super::text;
use crate::quantity::Quantity;

/// A quantity in thousandths; zero when absent or not a quantity (validation refuses those on write).
pub fn milli(v: &Value) -> i128 {
    let t = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return 0,
    };
    Quantity::parse(&t).and_then(Quantity::milli_value).unwrap_or(0)
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Init containers first, then containers; `true` marks an init container.
pub fn containers(spec: &Value) -> impl Iterator<Item = (bool, &Value)> {
    list(&spec["initContainers"])
        .iter()
        .map(|c| (true, c))
        .chain(list(&spec["containers"]).iter().map(|c| (false, c)))
}

/// A container's request for `resource`: its request, else its limit (the server defaults one from the other).
fn container_request(c: &Value, resource: &str) -> i128 {
    let r = &c["resources"];
    match r["requests"].get(resource) {
        Some(v) => milli(v),
        None => milli(&r["limits"][resource]),
    }
}

/// What the Pod requests of a node, in thousandths per resource, as the scheduler sums it: containers add
/// up, each init container may need more than all of them, overhead adds on top.
pub fn requests(spec: &Value) -> BTreeMap<String, i128> {
    let mut names: Vec<String> = Vec::new();
    for (_, c) in containers(spec) {
        for part in ["requests", "limits"] {
            if let Some(m) = c["resources"][part].as_object() {
                names.extend(m.keys().cloned());
            }
        }
    }
    names.sort();
    names.dedup();
    let mut out = BTreeMap::new();
    for r in names {
        let sum: i128 = list(&spec["containers"])
            .iter()
            .map(|c| container_request(c, &r))
            .sum();
        let init = list(&spec["initContainers"])
            .iter()
            .map(|c| container_request(c, &r))
            .max()
            .unwrap_or(0);
        let overhead = milli(&spec["overhead"][r.as_str()]);
        out.insert(r, sum.max(init) + overhead);
    }
    out
}

/// Guaranteed, Burstable or BestEffort, as the API server records `status.qosClass`.
pub fn qos_class(spec: &Value) -> &'static str {
    let all: Vec<&Value> = containers(spec).map(|(_, c)| c).collect();
    let set = |c: &Value, part: &str, r: &str| !c["resources"][part][r].is_null();
    let any = all.iter().any(|c| {
        ["cpu", "memory"]
            .iter()
            .any(|r| set(c, "requests", r) || set(c, "limits", r))
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = all.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            set(c, "limits", r)
                && (!set(c, "requests", r)
                    || milli(&c["resources"]["requests"][*r]) == milli(&c["resources"]["limits"][*r]))
        })
    });
    if guaranteed { "Guaranteed" } else { "Burstable" }
}

/// (port, protocol, hostIP) the Pod takes on its node: hostPorts, or every port on the host network.
pub fn host_ports(spec: &Value) -> Vec<(i64, String, String)> {
    let host_network = spec["hostNetwork"] == true;
    let mut out = Vec::new();
    for (_, c) in containers(spec) {
        for p in list(&c["ports"]) {
            let port = match p["hostPort"].as_i64() {
                Some(h) if h > 0 => h,
                _ if host_network => p["containerPort"].as_i64().unwrap_or(0),
                _ => 0,
            };
            if port > 0 {
                let ip = p["hostIP"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("0.0.0.0");
                out.push((port, text(&p["protocol"]).to_string(), ip.to_string()));
            }
        }
    }
    out
}

/// Two host ports collide when port and protocol match and either binds every address.
pub fn ports_conflict(a: &(i64, String, String), b: &(i64, String, String)) -> bool {
    let proto = |p: &str| {
        if p.is_empty() {
            "TCP".to_string()
        } else {
            p.to_string()
        }
    };
    a.0 == b.0 && proto(&a.1) == proto(&b.1) && (a.2 == b.2 || a.2 == "0.0.0.0" || b.2 == "0.0.0.0")
}

/// (volume name, claim name) of every PersistentVolumeClaim volume.
pub fn claims(spec: &Value) -> Vec<(&str, &str)> {
    list(&spec["volumes"])
        .iter()
        .filter_map(|v| {
            Some((
                v["name"].as_str()?,
                v["persistentVolumeClaim"]["claimName"].as_str()?,
            ))
        })
        .collect()
}

/// A Secret or ConfigMap (and maybe one key of it) the Pod reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRef {
    /// `Secret` or `ConfigMap`.
    pub kind: &'static str,
    pub name: String,
    pub key: Option<String>,
    pub optional: bool,
    /// Where: `Env` (for a container, by name) or `Volume` (by volume name).
    pub used_by: UsedBy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsedBy {
    Env(String),
    Volume(String),
}

/// Every Secret and ConfigMap reference of the Pod: env and envFrom of each container, secret, configMap
/// and projected volumes.
pub fn config_refs(spec: &Value) -> Vec<ConfigRef> {
    let mut out = Vec::new();
    let optional = |v: &Value| v["optional"] == true;
    for (_, c) in containers(spec) {
        let used_by = || UsedBy::Env(text(&c["name"]).to_string());
        for e in list(&c["env"]) {
            for (field, kind) in [("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")] {
                let r = &e["valueFrom"][field];
                if let Some(name) = r["name"].as_str() {
                    out.push(ConfigRef {
                        kind,
                        name: name.into(),
                        key: r["key"].as_str().map(String::from),
                        optional: optional(r),
                        used_by: used_by(),
                    });
                }
            }
        }
        for e in list(&c["envFrom"]) {
            for (field, kind) in [("secretRef", "Secret"), ("configMapRef", "ConfigMap")] {
                let r = &e[field];
                if let Some(name) = r["name"].as_str() {
                    out.push(ConfigRef {
                        kind,
                        name: name.into(),
                        key: None,
                        optional: optional(r),
                        used_by: used_by(),
                    });
                }
            }
        }
    }
    for v in list(&spec["volumes"]) {
        let vol = text(&v["name"]).to_string();
        let mut add = |kind: &'static str, src: &Value, name_field: &str| {
            let Some(name) = src[name_field].as_str() else {
                return;
            };
            let keys: Vec<Option<String>> = match src["items"].as_array() {
                Some(items) if !items.is_empty() => items
                    .iter()
                    .map(|i| i["key"].as_str().map(String::from))
                    .collect(),
                _ => vec![None],
            };
            for key in keys {
                out.push(ConfigRef {
                    kind,
                    name: name.into(),
                    key,
                    optional: optional(src),
                    used_by: UsedBy::Volume(vol.clone()),
                });
            }
        };
        add("Secret", &v["secret"], "secretName");
        add("ConfigMap", &v["configMap"], "name");
        for s in list(&v["projected"]["sources"]) {
            add("Secret", &s["secret"], "name");
            add("ConfigMap", &s["configMap"], "name");
        }
    }
    out
}

/// The command line a container runs: command and args joined by spaces (what `--crash-command` matches).
pub fn command_line(c: &Value) -> String {
    list(&c["command"])
        .iter()
        .chain(list(&c["args"]))
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_sum_containers_and_take_the_larger_init_container() {
        let spec = json!({
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}},
            ],
            "overhead": {"memory": "1Mi"},
        });
        let r = requests(&spec);
        assert_eq!(
            r["cpu"], 2000,
            "the init container needs more than the two containers"
        );
        assert_eq!(r["memory"], (1536 + 1) * 1024 * 1024 * 1000);
    }

    #[test]
    fn qos_classes() {
        let c = |res: Value| json!({"containers": [{"name": "c", "resources": res}]});
        assert_eq!(qos_class(&c(json!({}))), "BestEffort");
        assert_eq!(qos_class(&c(json!({"requests": {"cpu": "1"}}))), "Burstable");
        assert_eq!(
            qos_class(&c(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&c(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})
            )),
            "Burstable"
        );
    }

    #[test]
    fn host_ports_and_conflicts() {
        let host_net = json!({"hostNetwork": true, "containers": [{"name": "c", "ports": [{"containerPort": 5672, "protocol": "TCP"}]}]});
        let plain = json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]}]});
        assert_eq!(
            host_ports(&host_net),
            vec![(5672, "TCP".into(), "0.0.0.0".into())]
        );
        assert_eq!(host_ports(&plain), vec![(8080, "".into(), "0.0.0.0".into())]);
        let a = (53, "UDP".to_string(), "0.0.0.0".to_string());
        assert!(ports_conflict(&a, &(53, "UDP".into(), "10.0.0.1".into())));
        assert!(!ports_conflict(&a, &(53, "TCP".into(), "0.0.0.0".into())));
    }

    #[test]
    fn config_refs_from_env_env_from_and_volumes() {
        let spec = json!({
            "containers": [{"name": "api", "env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": "keystone", "key": "password"}}},
                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": true}}},
                {"name": "C", "value": "plain"}],
                "envFrom": [{"secretRef": {"name": "all"}}]}],
            "volumes": [{"name": "conf", "configMap": {"name": "keystone-config", "items": [{"key": "a.conf", "path": "a"}]}},
                {"name": "tls", "secret": {"secretName": "certs"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}}],
        });
        let refs = config_refs(&spec);
        let short: Vec<(&str, &str, Option<&str>, bool)> = refs
            .iter()
            .map(|r| (r.kind, r.name.as_str(), r.key.as_deref(), r.optional))
            .collect();
        assert_eq!(
            short,
            vec![
                ("Secret", "keystone", Some("password"), false),
                ("ConfigMap", "cfg", Some("k"), true),
                ("Secret", "all", None, false),
                ("ConfigMap", "keystone-config", Some("a.conf"), false),
                ("Secret", "certs", None, false),
            ]
        );
        assert_eq!(claims(&spec), vec![("data", "data-0")]);
    }

    #[test]
    fn command_lines_join_command_and_args() {
        let c = json!({"command": ["/usr/sbin/apache2"], "args": ["-DFOREGROUND"]});
        assert_eq!(command_line(&c), "/usr/sbin/apache2 -DFOREGROUND");
        assert_eq!(command_line(&json!({})), "");
    }
}
