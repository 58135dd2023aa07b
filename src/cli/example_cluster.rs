//! What a topology expects of a cluster beyond the objects Keelson applies, made for the demo and the test
//! suites on the simulated cluster: Nodes labelled as example-repo's services select them, and any Secret
//! its services reference that the topology does not declare in `spec.secrets`.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use serde_json::{Value, json};

use crate::cluster::{ApplyOptions, Kube};
use crate::sim::NodeLabels;
use crate::source::Snapshot;

/// example-repo's node roles on a three-node cluster: every node runs the control plane and Open
/// vSwitch; node-1 is the network node, node-2 and node-3 are compute nodes, node-3 also has storage.
pub fn node_labels() -> Vec<NodeLabels> {
    let labels = |node: Option<&str>, pairs: &[&str]| NodeLabels {
        node: node.map(String::from),
        labels: pairs
            .iter()
            .map(|k| (k.to_string(), "enabled".to_string()))
            .collect(),
    };
    vec![
        labels(
            None,
            &["openstack.org/control-plane", "openstack.org/openvswitch"],
        ),
        labels(Some("node-1"), &["openstack.org/network"]),
        labels(Some("node-2"), &["openstack.org/compute"]),
        labels(
            Some("node-3"),
            &["openstack.org/compute", "openstack.org/storage"],
        ),
    ]
}

/// Secret name -> keys, for every Secret the rendered objects reference (env, envFrom, volumes).
fn referenced_secrets(objects: &[Value]) -> BTreeMap<(String, String), BTreeSet<String>> {
    fn walk(v: &Value, namespace: &str, out: &mut BTreeMap<(String, String), BTreeSet<String>>) {
        match v {
            Value::Object(m) => {
                let mut add = |name: Option<&str>, key: Option<&str>| {
                    if let Some(name) = name {
                        let keys = out.entry((namespace.to_string(), name.to_string())).or_default();
                        if let Some(k) = key {
                            keys.insert(k.to_string());
                        }
                    }
                };
                if let Some(r) = m.get("secretKeyRef") {
                    add(r["name"].as_str(), r["key"].as_str());
                }
                if let Some(r) = m.get("secretRef") {
                    add(r["name"].as_str(), None);
                }
                if let Some(r) = m.get("secret") {
                    add(r["secretName"].as_str(), None);
                }
                for child in m.values() {
                    walk(child, namespace, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, namespace, out)),
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for o in objects {
        walk(
            &o["spec"],
            o["metadata"]["namespace"].as_str().unwrap_or("default"),
            &mut out,
        );
    }
    out
}

fn random_value() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Creates the namespaces and the Secrets the topology's objects reference, with random values, as an
/// operator does before the first apply (example-repo/README.md). Secrets that exist are left alone.
/// Returns how many Secrets it created.
pub async fn create_referenced_secrets(kube: &Kube, snapshot: &Snapshot) -> Result<usize, String> {
    let topology = crate::topology::load(snapshot).map_err(|d| format!("invalid topology: {d}"))?;
    let rendered = crate::render::render(&topology, &Default::default()).map_err(|e| e.to_string())?;
    let bodies: Vec<Value> = rendered.objects.iter().map(|o| o.body.clone()).collect();
    // Secrets the topology declares (`spec.secrets`) are Keelson's to make; only the others are the operator's.
    let made_by_keelson: BTreeSet<(String, String)> = rendered
        .objects
        .iter()
        .filter(|o| o.reference.kind == "Secret")
        .map(|o| {
            (
                o.reference.namespace.clone().unwrap_or_default(),
                o.reference.name.clone(),
            )
        })
        .collect();
    let opts = ApplyOptions {
        field_manager: "operator".into(),
        ..ApplyOptions::default()
    };
    let mut created = 0;
    for ((namespace, name), keys) in referenced_secrets(&bodies) {
        if made_by_keelson.contains(&(namespace.clone(), name.clone())) {
            continue;
        }
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        let ns_ref = crate::object::ObjectRef {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: namespace.clone(),
        };
        if kube.get(&ns_ref).await.map_err(|e| e.to_string())?.is_none() {
            kube.apply(&ns, &opts).await.map_err(|e| e.to_string())?;
        }
        let secret_ref = crate::object::ObjectRef {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: Some(namespace.clone()),
            name: name.clone(),
        };
        if kube.get(&secret_ref).await.map_err(|e| e.to_string())?.is_some() {
            continue;
        }
        let data: serde_json::Map<String, Value> =
            keys.into_iter().map(|k| (k, json!(random_value()))).collect();
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque", "stringData": data});
        kube.apply(&secret, &opts).await.map_err(|e| e.to_string())?;
        created += 1;
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_reference_is_found() {
        let objects = vec![
            json!({"metadata": {"namespace": "openstack"}, "spec": {"template": {"spec": {
            "containers": [{"env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": "keystone", "key": "database-connection"}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "keystone", "key": "admin-password"}}}],
                "envFrom": [{"secretRef": {"name": "extra"}}]}],
            "volumes": [{"name": "tls", "secret": {"secretName": "certs"}}]}}}}),
        ];
        let found = referenced_secrets(&objects);
        let keys: Vec<String> = found[&("openstack".into(), "keystone".into())]
            .iter()
            .cloned()
            .collect();
        assert_eq!(keys, ["admin-password", "database-connection"]);
        assert!(found.contains_key(&("openstack".into(), "extra".into())));
        assert!(found.contains_key(&("openstack".into(), "certs".into())));
    }

    #[test]
    fn example_nodes_cover_every_role_the_example_selects() {
        let roles: BTreeSet<String> = node_labels()
            .into_iter()
            .flat_map(|l| l.labels.into_keys())
            .collect();
        for role in ["control-plane", "compute", "openvswitch", "network", "storage"] {
            assert!(roles.contains(&format!("openstack.org/{role}")), "{role}");
        }
    }
}
