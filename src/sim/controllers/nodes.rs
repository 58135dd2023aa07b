//! The simulated Nodes: their names, labels, taints and capacity as `sim serve --nodes`, `--node-labels`,
//! `--node-taints` and `--node-capacity` give them, and the Node and Lease objects the cluster starts with.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde_json::{Value, json};

/// Node `i` (1-based) of the simulated cluster.
pub fn node_name(i: u32) -> String {
    format!("node-{i}")
}

/// Labels for one node (`node-2:k=v,k2=v2`) or for every node (`k=v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLabels {
    pub node: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// A taint for one node (`node-1:key=value:NoSchedule`) or for every node (`key:NoExecute`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTaint {
    pub node: Option<String>,
    pub key: String,
    pub value: String,
    pub effect: String,
}

/// What every simulated node can hold (`cpu=8,memory=32Gi,pods=110`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCapacity {
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    pub ephemeral_storage: String,
}

impl Default for NodeCapacity {
    fn default() -> Self {
        NodeCapacity {
            cpu: "8".into(),
            memory: "32Gi".into(),
            pods: 110,
            ephemeral_storage: "100Gi".into(),
        }
    }
}

fn split_node(s: &str) -> (Option<String>, &str) {
    // Label keys and values never hold ':', node names neither: a first ':' separates the node.
    match s.split_once(':') {
        Some((node, rest)) if !node.contains('=') => (Some(node.to_string()), rest),
        _ => (None, s),
    }
}

fn pairs(s: &str, what: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("{what} {pair:?}: expected KEY=VALUE"))?;
        if k.is_empty() {
            return Err(format!("{what} {pair:?}: empty key"));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

impl FromStr for NodeLabels {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (node, rest) = split_node(s);
        let labels = pairs(rest, "node label")?;
        if labels.is_empty() {
            return Err(format!(
                "node labels {s:?}: expected [NODE:]KEY=VALUE[,KEY=VALUE...]"
            ));
        }
        Ok(NodeLabels { node, labels })
    }
}

impl FromStr for NodeTaint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (node, taint, effect) = match parts.as_slice() {
            [taint, effect] => (None, *taint, *effect),
            [node, taint, effect] => (Some(node.to_string()), *taint, *effect),
            _ => return Err(format!("node taint {s:?}: expected [NODE:]KEY[=VALUE]:EFFECT")),
        };
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(format!(
                "node taint {s:?}: effect {effect:?} is not NoSchedule, PreferNoSchedule or NoExecute"
            ));
        }
        let (key, value) = taint.split_once('=').unwrap_or((taint, ""));
        if key.is_empty() {
            return Err(format!("node taint {s:?}: empty key"));
        }
        Ok(NodeTaint {
            node,
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
        })
    }
}

impl FromStr for NodeCapacity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut c = NodeCapacity::default();
        for (k, v) in pairs(s, "node capacity")? {
            let quantity = || {
                crate::quantity::canonical(&v).ok_or_else(|| format!("node capacity {k}={v}: not a quantity"))
            };
            match k.as_str() {
                "cpu" => c.cpu = quantity()?,
                "memory" => c.memory = quantity()?,
                "ephemeral-storage" => c.ephemeral_storage = quantity()?,
                "pods" => {
                    c.pods = v
                        .parse()
                        .map_err(|_| format!("node capacity pods={v}: not a whole number"))?
                }
                other => {
                    return Err(format!(
                        "node capacity {other:?}: expected cpu, memory, ephemeral-storage or pods"
                    ));
                }
            }
        }
        Ok(c)
    }
}

/// A Ready node as its kubelet registers it.
pub fn node_object(name: &str, index: u32, capacity: &NodeCapacity) -> Value {
    let resources = json!({"cpu": capacity.cpu, "memory": capacity.memory, "pods": capacity.pods.to_string(),
        "ephemeral-storage": capacity.ephemeral_storage, "hugepages-1Gi": "0", "hugepages-2Mi": "0"});
    let now = super::super::meta::now_rfc3339();
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let id = format!("{:032x}", u128::from(index) * 0x9e37_79b9_7f4a_7c15);
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {"podCIDR": format!("10.244.{index}.0/24"), "podCIDRs": [format!("10.244.{index}.0/24")],
            "providerID": format!("sim://{name}")},
        "status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": node_ip(index)}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": id, "systemUUID": id, "bootID": id, "kernelVersion": "6.8.0-sim",
                "osImage": "Simulated Linux", "containerRuntimeVersion": "containerd://2.1.0",
                "kubeletVersion": "v1.37.0", "kubeProxyVersion": "", "operatingSystem": "linux",
                "architecture": "amd64"},
        },
    })
}

pub fn node_ip(index: u32) -> String {
    format!("172.18.{}.{}", index / 250, index % 250 + 1)
}

/// The nodes of a simulated cluster with the labels and taints asked for; an error names a label or taint
/// for a node that does not exist.
pub fn nodes(
    count: u32,
    labels: &[NodeLabels],
    taints: &[NodeTaint],
    capacity: &NodeCapacity,
) -> Result<Vec<Value>, String> {
    let names: Vec<String> = (1..=count).map(node_name).collect();
    let known = |node: &Option<String>, what: &str| match node {
        Some(n) if !names.contains(n) => Err(format!(
            "{what} for {n:?}: the cluster's nodes are {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )),
        _ => Ok(()),
    };
    for l in labels {
        known(&l.node, "node labels")?;
    }
    for t in taints {
        known(&t.node, "node taint")?;
    }
    let applies = |node: &Option<String>, name: &str| node.as_deref().is_none_or(|n| n == name);
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut node = node_object(name, i as u32 + 1, capacity);
        for l in labels.iter().filter(|l| applies(&l.node, name)) {
            for (k, v) in &l.labels {
                node["metadata"]["labels"][k] = json!(v);
            }
        }
        let node_taints: Vec<Value> = taints
            .iter()
            .filter(|t| applies(&t.node, name))
            .map(|t| {
                let mut v = json!({"key": t.key, "effect": t.effect});
                if !t.value.is_empty() {
                    v["value"] = json!(t.value);
                }
                v
            })
            .collect();
        if !node_taints.is_empty() {
            node["spec"]["taints"] = json!(node_taints);
        }
        out.push(node);
    }
    Ok(out)
}

/// The node's heartbeat Lease in `kube-node-lease`, owned by the node.
pub fn lease(node: &Value) -> Value {
    let name = super::name(node);
    let now = super::super::meta::now_rfc3339().replace('Z', ".000000Z");
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": super::uid(node)}]},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_taints_parse_for_one_node_or_all() {
        let l: NodeLabels = "node-2:openstack.org/compute=enabled,zone=a".parse().unwrap();
        assert_eq!(l.node.as_deref(), Some("node-2"));
        assert_eq!(l.labels["openstack.org/compute"], "enabled");
        assert_eq!(l.labels["zone"], "a");
        let all: NodeLabels = "openstack.org/control-plane=enabled".parse().unwrap();
        assert_eq!(all.node, None);
        assert!("node-1:".parse::<NodeLabels>().is_err());
        assert!("novalue".parse::<NodeLabels>().is_err());

        let t: NodeTaint = "node-1:dedicated=db:NoSchedule".parse().unwrap();
        assert_eq!(
            (t.node.as_deref(), t.key.as_str(), t.value.as_str()),
            (Some("node-1"), "dedicated", "db")
        );
        let t: NodeTaint = "gpu:NoExecute".parse().unwrap();
        assert_eq!((t.node, t.key.as_str(), t.value.as_str()), (None, "gpu", ""));
        assert!("gpu:Sometimes".parse::<NodeTaint>().is_err());
        assert!("a:b:c:NoSchedule".parse::<NodeTaint>().is_err());

        let c: NodeCapacity = "cpu=4,memory=8Gi".parse().unwrap();
        assert_eq!((c.cpu.as_str(), c.memory.as_str(), c.pods), ("4", "8Gi", 110));
        assert!("cpu=lots".parse::<NodeCapacity>().is_err());
        assert!("gpus=2".parse::<NodeCapacity>().is_err());
    }

    #[test]
    fn nodes_get_their_labels_and_taints_and_unknown_nodes_are_refused() {
        let labels = vec![
            "role=any".parse().unwrap(),
            "node-2:openstack.org/compute=enabled".parse().unwrap(),
        ];
        let taints = vec!["node-3:dedicated=storage:NoSchedule".parse().unwrap()];
        let ns = nodes(3, &labels, &taints, &NodeCapacity::default()).unwrap();
        assert_eq!(ns.len(), 3);
        assert!(ns.iter().all(|n| n["metadata"]["labels"]["role"] == "any"));
        assert_eq!(ns[1]["metadata"]["labels"]["openstack.org/compute"], "enabled");
        assert!(ns[0]["metadata"]["labels"]["openstack.org/compute"].is_null());
        assert_eq!(ns[2]["spec"]["taints"][0]["key"], "dedicated");
        assert!(ns[0]["spec"]["taints"].is_null());
        let bad = nodes(2, &["node-5:a=b".parse().unwrap()], &[], &NodeCapacity::default());
        assert!(bad.unwrap_err().contains("node-1, node-2"));
    }
}
