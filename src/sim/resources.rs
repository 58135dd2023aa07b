//! The resource registry: which group/version/resources the server serves, built-in and from CRDs.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// One servable resource (a row of an APIResourceList).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub has_status: bool,
    pub has_scale: bool,
    /// Built-ins merge lists by the Kubernetes merge keys; custom resources treat lists atomically
    /// unless their schema says otherwise.
    pub builtin: bool,
    /// For custom resources: `x-kubernetes-list-map-keys` by field path (dot-joined field names).
    pub list_keys: BTreeMap<String, Vec<String>>,
    /// For custom resources: paths whose `x-kubernetes-list-type` is `set`.
    pub list_sets: Vec<String>,
    /// Reviews and requests that are answered, never stored (SelfSubjectAccessReview, TokenReview ...):
    /// `create` is their only verb.
    pub create_only: bool,
    /// ServiceAccounts: the `token` subresource (TokenRequest).
    pub has_token: bool,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// "deployments.apps" or "pods": how the server names the resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Storage key shared by all versions of a resource.
    pub fn key(&self) -> ResKey {
        ResKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }

    fn list_entry(&self) -> Value {
        let mut verbs = if self.create_only {
            vec!["create"]
        } else {
            vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        };
        if self.plural == "namespaces" {
            verbs.retain(|v| *v != "deletecollection");
        }
        let mut v = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
        });
        if !self.create_only {
            v["storageVersionHash"] = json!(storage_hash(&self.group, &self.version, &self.kind));
        }
        if !self.short_names.is_empty() {
            v["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            v["categories"] = json!(self.categories);
        }
        v
    }

    fn sub_entries(&self) -> Vec<Value> {
        let mut out = Vec::new();
        if self.has_status {
            out.push(json!({
                "name": format!("{}/status", self.plural), "singularName": "", "namespaced": self.namespaced,
                "kind": self.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if self.builtin && self.group.is_empty() && self.plural == "pods" {
            out.push(json!({
                "name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"],
            }));
        }
        if self.has_scale {
            out.push(json!({
                "name": format!("{}/scale", self.plural), "singularName": "", "namespaced": self.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
        if self.has_token {
            out.push(json!({
                "name": format!("{}/token", self.plural), "singularName": "", "namespaced": self.namespaced,
                "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"],
            }));
        }
        out
    }
}

/// Identifies a stored resource independent of version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResKey {
    pub group: String,
    pub plural: String,
}

/// Stable per-kind hash, like the apiserver's storageVersionHash (any stable opaque string will do).
fn storage_hash(group: &str, version: &str, kind: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    d.iter().take(8).map(|b| format!("{:02x}", b)).collect::<String>()[..11].to_string()
}

/// Everything the server serves, keyed by (group, version, plural).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    resources: BTreeMap<(String, String, String), ResourceInfo>,
}

fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: if matches!(
            plural,
            "pods" | "services" | "deployments" | "statefulsets" | "daemonsets" | "jobs" | "replicasets"
        ) {
            vec!["all".into()]
        } else {
            vec![]
        },
        has_status: false,
        has_scale: false,
        builtin: true,
        list_keys: BTreeMap::new(),
        list_sets: Vec::new(),
        create_only: false,
        has_token: plural == "serviceaccounts",
    }
}

impl ResourceInfo {
    /// Serves the `status` subresource.
    fn with_status(self) -> Self {
        ResourceInfo {
            has_status: true,
            ..self
        }
    }

    /// Serves the `scale` subresource.
    fn with_scale(self) -> Self {
        ResourceInfo {
            has_scale: true,
            ..self
        }
    }
}

/// A review: created, answered, never stored.
fn review(group: &str, kind: &str, plural: &str, namespaced: bool) -> ResourceInfo {
    ResourceInfo {
        create_only: true,
        ..builtin(group, "v1", kind, plural, namespaced, &[])
    }
}

impl Registry {
    pub fn with_builtins() -> Self {
        let mut r = Registry::default();
        let all = [
            builtin("", "v1", "Namespace", "namespaces", false, &["ns"]).with_status(),
            builtin("", "v1", "ConfigMap", "configmaps", true, &["cm"]),
            builtin("", "v1", "Secret", "secrets", true, &[]),
            builtin("", "v1", "Service", "services", true, &["svc"]).with_status(),
            builtin("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
            builtin(
                "",
                "v1",
                "PersistentVolumeClaim",
                "persistentvolumeclaims",
                true,
                &["pvc"],
            )
            .with_status(),
            builtin("", "v1", "Pod", "pods", true, &["po"]).with_status(),
            builtin("", "v1", "Node", "nodes", false, &["no"]).with_status(),
            builtin("", "v1", "PersistentVolume", "persistentvolumes", false, &["pv"]).with_status(),
            builtin("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"])
                .with_status()
                .with_scale(),
            builtin(
                "storage.k8s.io",
                "v1",
                "StorageClass",
                "storageclasses",
                false,
                &["sc"],
            ),
            builtin("", "v1", "Event", "events", true, &["ev"]),
            builtin("apps", "v1", "Deployment", "deployments", true, &["deploy"])
                .with_status()
                .with_scale(),
            builtin("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"])
                .with_status()
                .with_scale(),
            builtin("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"]).with_status(),
            builtin("batch", "v1", "Job", "jobs", true, &[]).with_status(),
            builtin("coordination.k8s.io", "v1", "Lease", "leases", true, &[]),
            builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[]),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "RoleBinding",
                "rolebindings",
                true,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "clusterroles",
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRoleBinding",
                "clusterrolebindings",
                false,
                &[],
            ),
            builtin(
                "policy",
                "v1",
                "PodDisruptionBudget",
                "poddisruptionbudgets",
                true,
                &["pdb"],
            )
            .with_status(),
            builtin(
                "networking.k8s.io",
                "v1",
                "NetworkPolicy",
                "networkpolicies",
                true,
                &["netpol"],
            ),
            builtin("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"]).with_status(),
            builtin(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
                &["crd", "crds"],
            )
            .with_status(),
            review("authentication.k8s.io", "TokenReview", "tokenreviews", false),
            review(
                "authentication.k8s.io",
                "SelfSubjectReview",
                "selfsubjectreviews",
                false,
            ),
            review(
                "authorization.k8s.io",
                "SelfSubjectAccessReview",
                "selfsubjectaccessreviews",
                false,
            ),
            review(
                "authorization.k8s.io",
                "SelfSubjectRulesReview",
                "selfsubjectrulesreviews",
                false,
            ),
            review(
                "authorization.k8s.io",
                "SubjectAccessReview",
                "subjectaccessreviews",
                false,
            ),
            review(
                "authorization.k8s.io",
                "LocalSubjectAccessReview",
                "localsubjectaccessreviews",
                true,
            ),
        ];
        for info in all {
            r.insert(info);
        }
        r
    }

    pub fn insert(&mut self, info: ResourceInfo) {
        self.resources.insert(
            (info.group.clone(), info.version.clone(), info.plural.clone()),
            info,
        );
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.resources
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// Removes every version of a group/plural (CRD deletion). Returns true if any was removed.
    pub fn remove_resource(&mut self, group: &str, plural: &str) -> bool {
        let before = self.resources.len();
        self.resources.retain(|(g, _, p), _| !(g == group && p == plural));
        before != self.resources.len()
    }

    pub fn all(&self) -> impl Iterator<Item = &ResourceInfo> {
        self.resources.values()
    }

    /// Group name -> versions served, core group excluded, in a stable order.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (g, v, _) in self.resources.keys() {
            if g.is_empty() {
                continue;
            }
            let vs = out.entry(g.clone()).or_default();
            if !vs.contains(v) {
                vs.push(v.clone());
            }
        }
        for vs in out.values_mut() {
            vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    /// The `APIResourceList` for one group/version, or None if nothing is served there.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let mut entries = Vec::new();
        for r in self
            .resources
            .values()
            .filter(|r| r.group == group && r.version == version)
        {
            entries.push(r.list_entry());
            entries.extend(r.sub_entries());
        }
        if entries.is_empty() {
            return None;
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}))
    }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_serve_every_resource_the_issue_names() {
        let r = Registry::with_builtins();
        for (g, p) in [
            ("", "namespaces"),
            ("", "events"),
            ("apps", "daemonsets"),
            ("batch", "jobs"),
            ("coordination.k8s.io", "leases"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("policy", "poddisruptionbudgets"),
            ("networking.k8s.io", "ingresses"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
        ] {
            assert!(r.get(g, "v1", p).is_some(), "{g}/{p}");
        }
    }

    #[test]
    fn resource_list_has_status_subresource_and_short_names() {
        let r = Registry::with_builtins();
        let l = r.resource_list("apps", "v1").unwrap();
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"deployments/status"));
        assert!(names.contains(&"deployments/scale"));
        let dep = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "deployments")
            .unwrap();
        assert_eq!(dep["shortNames"][0], "deploy");
    }

    #[test]
    fn versions_sort_ga_first() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "v1beta2"];
        v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(v, vec!["v1", "v2beta1", "v1beta2", "v1alpha1"]);
    }
}
