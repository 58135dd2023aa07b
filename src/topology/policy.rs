//! What raw manifests may contain: which kinds, in which namespaces. Built-in namespaced kinds are
//! allowed by default; cluster-scoped kinds and kinds Keelson does not know (custom resources) only
//! when `policy.allowedKinds` lists them; Secrets never, because their values would live in Git.

use super::spec::Policy;

/// Built-in kinds that live in a namespace, as `(API group, kind)`; `""` is the core group.
const NAMESPACED: &[(&str, &str)] = &[
    ("", "ConfigMap"),
    ("", "Endpoints"),
    ("", "LimitRange"),
    ("", "PersistentVolumeClaim"),
    ("", "Pod"),
    ("", "ReplicationController"),
    ("", "ResourceQuota"),
    ("", "Service"),
    ("", "ServiceAccount"),
    ("apps", "ControllerRevision"),
    ("apps", "DaemonSet"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("batch", "CronJob"),
    ("batch", "Job"),
    ("coordination.k8s.io", "Lease"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("policy", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
];

/// Built-in kinds that have no namespace.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("networking.k8s.io", "IngressClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "VolumeAttachment"),
];

/// Where a kind lives, as far as Keelson knows without asking a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
    /// Not a built-in kind (a custom resource): its scope is only known to the cluster.
    Unknown,
}

/// The API group of an `apiVersion` (`apps/v1` -> `apps`, `v1` -> ``).
pub fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(group, _)| group).unwrap_or("")
}

pub fn scope(api_version: &str, kind: &str) -> Scope {
    let key = (api_group(api_version), kind);
    if NAMESPACED.contains(&key) {
        Scope::Namespaced
    } else if CLUSTER_SCOPED.contains(&key) {
        Scope::Cluster
    } else {
        Scope::Unknown
    }
}

/// Whether `policy.allowedKinds` lists this kind, as `Kind` or `group/Kind`.
pub fn kind_listed(policy: &Policy, api_version: &str, kind: &str) -> bool {
    let group = api_group(api_version);
    policy
        .allowed_kinds
        .iter()
        .any(|entry| match entry.rsplit_once('/') {
            Some((g, k)) => g == group && k == kind,
            None => entry == kind,
        })
}

/// Why a raw manifest of this kind is refused, or `None` when it is allowed.
pub fn kind_refusal(policy: &Policy, api_version: &str, kind: &str) -> Option<String> {
    if api_group(api_version).is_empty() && kind == "Secret" {
        return Some(
            "kind Secret is not allowed: Secret values never live in Git; create the Secret out of band and reference it"
                .to_string(),
        );
    }
    if kind_listed(policy, api_version, kind) {
        return None;
    }
    match scope(api_version, kind) {
        Scope::Namespaced => None,
        Scope::Cluster => Some(format!(
            "cluster-scoped kind {kind} ({api_version}) is not allowed; list it in keelson.yaml spec.policy.allowedKinds"
        )),
        Scope::Unknown => Some(format!(
            "kind {kind} ({api_version}) is not a built-in namespaced kind; list it in keelson.yaml spec.policy.allowedKinds"
        )),
    }
}

/// Whether objects may be placed in `namespace`: the topology's own, or one the policy lists.
pub fn namespace_allowed(policy: &Policy, topology_namespace: &str, namespace: &str) -> bool {
    namespace == topology_namespace || policy.allowed_namespaces.iter().any(|n| n == namespace)
}

/// Checks an `allowedKinds` entry (`Kind` or `group/Kind`).
pub fn check_allowed_kind(entry: &str) -> Result<(), String> {
    let kind = entry.rsplit_once('/').map(|(_, k)| k).unwrap_or(entry);
    let group_ok = entry
        .rsplit_once('/')
        .is_none_or(|(g, _)| super::names::dns1123_subdomain(g).is_ok());
    let kind_ok =
        kind.starts_with(|c: char| c.is_ascii_uppercase()) && kind.chars().all(|c| c.is_ascii_alphanumeric());
    if group_ok && kind_ok {
        Ok(())
    } else {
        Err(format!(
            "`{entry}` is not a kind (`Kind` or `group/Kind`, e.g. `ClusterRole` or `cert-manager.io/Certificate`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_scope_and_policy() {
        let mut policy = Policy::default();
        let cases = [
            ("v1", "ConfigMap", true),
            ("apps/v1", "Deployment", true),
            ("v1", "Secret", false),
            ("v1", "Namespace", false),
            ("rbac.authorization.k8s.io/v1", "ClusterRole", false),
            ("cert-manager.io/v1", "Certificate", false),
        ];
        for (api_version, kind, allowed) in cases {
            assert_eq!(
                kind_refusal(&policy, api_version, kind).is_none(),
                allowed,
                "{kind}"
            );
        }
        policy.allowed_kinds = vec![
            "ClusterRole".into(),
            "cert-manager.io/Certificate".into(),
            "Secret".into(),
        ];
        assert!(kind_refusal(&policy, "rbac.authorization.k8s.io/v1", "ClusterRole").is_none());
        assert!(kind_refusal(&policy, "cert-manager.io/v1", "Certificate").is_none());
        assert!(kind_refusal(&policy, "other.io/v1", "Certificate").is_some());
        // Listing Secret does not make it allowed.
        assert!(kind_refusal(&policy, "v1", "Secret").is_some());
    }

    #[test]
    fn namespaces_follow_policy() {
        let policy = Policy {
            allowed_namespaces: vec!["monitoring".into()],
            ..Policy::default()
        };
        assert!(namespace_allowed(&policy, "openstack", "openstack"));
        assert!(namespace_allowed(&policy, "openstack", "monitoring"));
        assert!(!namespace_allowed(&policy, "openstack", "kube-system"));
    }

    #[test]
    fn allowed_kind_entries() {
        assert!(check_allowed_kind("ClusterRole").is_ok());
        assert!(check_allowed_kind("cert-manager.io/Certificate").is_ok());
        assert!(check_allowed_kind("clusterrole").is_err());
        assert!(check_allowed_kind("bad group/Kind").is_err());
    }
}
