//! The rules that keep a plan from hurting the cluster: ownership, namespace and kind policy, persistent data,
//! and the prune budget. Each check returns the refusal reason and the sentence that tells the operator how
//! to allow the action.

use serde_json::Value;

use crate::object::{ANNOTATION_PERSISTENT, LABEL_MANAGED_BY, LABEL_TOPOLOGY, MANAGED_BY_VALUE, ObjectRef};
use crate::topology::Topology;
use crate::topology::policy::{self, Scope};

use super::diff::{get_str, meta_map};
use super::order::api_group;

/// Whether a live object carries this topology's ownership labels. Both labels are required: the
/// `managed-by` label alone would let two topologies prune each other.
pub fn is_owned(object: &Value, topology: &str) -> bool {
    let Some(labels) = meta_map(object, "labels") else {
        return false;
    };
    labels.get(LABEL_MANAGED_BY).and_then(Value::as_str) == Some(MANAGED_BY_VALUE)
        && labels.get(LABEL_TOPOLOGY).and_then(Value::as_str) == Some(topology)
}

/// Whether a controller (a ReplicaSet, a Job, ...) manages the object. Such objects may carry Keelson's labels
/// copied from a template, but their controller creates and removes them; Keelson never deletes them.
pub fn controller_owned(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        })
}

/// Name prefixes (`<claim>-<statefulset>-`) of the PersistentVolumeClaims StatefulSets create from their
/// `volumeClaimTemplates`. Those claims carry the template's labels, Keelson's included, but Keelson never
/// applied them and never renders them, so they would look like objects to prune.
pub fn statefulset_claim_prefixes<'a>(objects: impl Iterator<Item = &'a Value>) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects {
        if get_str(o, &["kind"]) != Some("StatefulSet")
            || get_str(o, &["apiVersion"]).map(api_group) != Some("apps")
        {
            continue;
        }
        let Some(sts) = get_str(o, &["metadata", "name"]) else {
            continue;
        };
        let templates = o.pointer("/spec/volumeClaimTemplates").and_then(Value::as_array);
        for t in templates.into_iter().flatten() {
            if let Some(claim) = get_str(t, &["metadata", "name"]) {
                out.push(format!("{claim}-{sts}-"));
            }
        }
    }
    out
}

/// Whether the object is a claim a StatefulSet created (`<claim>-<statefulset>-<ordinal>`).
pub fn is_statefulset_claim(reference: &ObjectRef, prefixes: &[String]) -> bool {
    api_group(&reference.api_version).is_empty()
        && reference.kind == "PersistentVolumeClaim"
        && prefixes.iter().any(|p| {
            reference
                .name
                .strip_prefix(p.as_str())
                .is_some_and(|ordinal| !ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Whether deleting the object would lose data.
pub fn is_persistent(reference: &ObjectRef, live: Option<&Value>) -> bool {
    if api_group(&reference.api_version).is_empty() && reference.kind == "PersistentVolumeClaim" {
        return true;
    }
    live.and_then(|o| get_str(o, &["metadata", "annotations", ANNOTATION_PERSISTENT])) == Some("true")
}

/// The refusal message for a foreign object, with the command that hands it over.
pub fn not_owned_message(reference: &ObjectRef, topology: &str) -> String {
    let ns = reference
        .namespace
        .as_deref()
        .map(|n| format!(" -n {n}"))
        .unwrap_or_default();
    format!(
        "exists but is not owned by Keelson topology `{topology}`; Keelson will not take it over. Rename the \
         object in Git, delete the existing one, or hand it over with `kubectl label {}{ns} {} \
         {LABEL_MANAGED_BY}={MANAGED_BY_VALUE} {LABEL_TOPOLOGY}={topology}`",
        reference.kind.to_lowercase(),
        reference.name
    )
}

/// Namespace policy: the topology's namespace plus `spec.policy.allowedNamespaces`.
/// Returns the refused namespace with its message, or `None` when allowed.
pub fn namespace_refusal(topology: &Topology, reference: &ObjectRef) -> Option<(String, String)> {
    let ns = reference.namespace.as_deref()?;
    if policy::namespace_allowed(&topology.spec.policy, &topology.spec.namespace, ns) {
        return None;
    }
    Some((
        ns.to_string(),
        format!(
            "namespace `{ns}` is outside the policy; add it to spec.policy.allowedNamespaces in keelson.yaml \
             to allow it"
        ),
    ))
}

/// Kind policy: built-in namespaced kinds are allowed; custom resources, and every cluster-scoped object,
/// must be listed in `spec.policy.allowedKinds` as `Kind` or `group/Kind` (the topology's kind tables).
/// Unlike raw-manifest validation this admits Secrets: the renderer may produce them, their values come
/// from outside Git.
/// Returns the refused `group/Kind`, whether the object is cluster-scoped, and the message.
pub fn kind_refusal(topology: &Topology, reference: &ObjectRef) -> Option<(String, bool, String)> {
    let group = api_group(&reference.api_version);
    let kind = reference.kind.as_str();
    let cluster_scoped = reference.namespace.is_none();
    let listed = policy::kind_listed(&topology.spec.policy, &reference.api_version, kind);
    // The topology's table leaves Secret out because raw manifests may not carry one; a Secret the renderer
    // produces is still a built-in namespaced kind here.
    let built_in = !cluster_scoped
        && (policy::scope(&reference.api_version, kind) == Scope::Namespaced
            || (group.is_empty() && kind == "Secret"));
    if built_in || listed {
        return None;
    }
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{group}/{kind}")
    };
    let what = if cluster_scoped {
        "cluster-scoped kind"
    } else {
        "kind"
    };
    Some((
        qualified.clone(),
        cluster_scoped,
        format!(
            "{what} `{qualified}` is outside the policy; add `{qualified}` to spec.policy.allowedKinds in keelson.yaml to allow it"
        ),
    ))
}

/// A Secret holding values Keelson generated: deleting it loses them for good, so only a tombstone in Git
/// lets a prune take it.
pub fn is_generated_secret(r: &ObjectRef, live: &Value) -> bool {
    super::order::api_group(&r.api_version).is_empty()
        && r.kind == "Secret"
        && live
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(crate::object::ANNOTATION_GENERATED))
            .is_some()
}

pub fn generated_secret_message(name: &str) -> String {
    format!(
        "holds generated values and is kept; list `{name}` in keelson.yaml spec.tombstones.secrets to let Keelson delete it"
    )
}

pub fn persistent_message() -> String {
    "holds persistent data and is kept; set spec.policy.prunePersistentData: true in keelson.yaml to let \
     Keelson delete it, or delete it by hand"
        .to_string()
}

/// Whether `deletions` out of `owned` objects exceed `budget_percent`. Integer arithmetic so 3 of 10 at a
/// 30% budget is exactly at the limit (allowed).
pub fn over_budget(deletions: usize, owned: usize, budget_percent: u32) -> bool {
    deletions > 0 && (deletions as u128) * 100 > (owned as u128) * u128::from(budget_percent)
}

pub fn budget_message(deletions: usize, owned: usize, budget_percent: u32) -> String {
    let share = if owned == 0 {
        100
    } else {
        (deletions * 100).div_ceil(owned)
    };
    format!(
        "prune would delete {deletions} of {owned} owned objects (~{share}%), over the budget of \
         {budget_percent}%; check that the repository is complete, then re-run with --allow-prune-over-budget \
         or raise spec.policy.pruneBudgetPercent in keelson.yaml"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::{mk_ref, mk_topology};
    use serde_json::json;

    #[test]
    fn ownership_needs_both_labels() {
        let cases = [
            (
                json!({"metadata": {"labels": {LABEL_MANAGED_BY: "keelson", LABEL_TOPOLOGY: "os"}}}),
                true,
            ),
            (
                json!({"metadata": {"labels": {LABEL_MANAGED_BY: "keelson", LABEL_TOPOLOGY: "other"}}}),
                false,
            ),
            (
                json!({"metadata": {"labels": {LABEL_MANAGED_BY: "helm", LABEL_TOPOLOGY: "os"}}}),
                false,
            ),
            (
                json!({"metadata": {"labels": {LABEL_MANAGED_BY: "keelson"}}}),
                false,
            ),
            (json!({"metadata": {"name": "x"}}), false),
            (json!("garbage"), false),
        ];
        for (obj, want) in cases {
            assert_eq!(is_owned(&obj, "os"), want, "{obj}");
        }
    }

    #[test]
    fn budget_arithmetic() {
        let cases = [
            (0, 0, 30, false),
            (3, 10, 30, false),
            (4, 10, 30, true),
            (1, 1, 100, false),
            (1, 2, 0, true),
        ];
        for (d, o, b, want) in cases {
            assert_eq!(over_budget(d, o, b), want, "{d}/{o} at {b}%");
        }
        assert!(budget_message(4, 10, 30).contains("4 of 10 owned objects (~40%)"));
    }

    #[test]
    fn kind_and_namespace_policy_table() {
        let mut topo = mk_topology(&[("a", &[])]);
        topo.spec.policy.allowed_kinds = vec![
            "monitoring.coreos.com/ServiceMonitor".into(),
            "ClusterRole".into(),
        ];
        topo.spec.policy.allowed_namespaces = vec!["openstack-infra".into()];
        let cases = [
            (
                mk_ref("apps/v1", "Deployment", Some("openstack"), "x"),
                None,
                None,
            ),
            (
                mk_ref(
                    "monitoring.coreos.com/v1",
                    "ServiceMonitor",
                    Some("openstack"),
                    "x",
                ),
                None,
                None,
            ),
            (
                mk_ref("example.com/v1", "ServiceMonitor", Some("openstack"), "x"),
                Some("example.com/ServiceMonitor"),
                None,
            ),
            (
                mk_ref("rbac.authorization.k8s.io/v1", "ClusterRole", None, "x"),
                None,
                None,
            ),
            (mk_ref("v1", "Namespace", None, "x"), Some("Namespace"), None),
            (mk_ref("v1", "Secret", Some("openstack"), "x"), None, None),
            (
                mk_ref("cert-manager.io/v1", "Certificate", Some("openstack"), "x"),
                Some("cert-manager.io/Certificate"),
                None,
            ),
            (
                mk_ref("v1", "ConfigMap", Some("openstack-infra"), "x"),
                None,
                None,
            ),
            (
                mk_ref("v1", "ConfigMap", Some("kube-system"), "x"),
                None,
                Some("kube-system"),
            ),
        ];
        for (r, want_kind, want_ns) in cases {
            assert_eq!(
                kind_refusal(&topo, &r).map(|k| k.0),
                want_kind.map(String::from),
                "{r}"
            );
            assert_eq!(
                namespace_refusal(&topo, &r).map(|n| n.0),
                want_ns.map(String::from),
                "{r}"
            );
        }
    }

    #[test]
    fn objects_managed_by_a_controller_or_a_statefulset_are_recognised() {
        let pod = json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "controller": true}]}});
        let plain = json!({"metadata": {"ownerReferences": [{"kind": "ConfigMap"}]}});
        assert!(controller_owned(&pod));
        assert!(!controller_owned(&plain));
        assert!(!controller_owned(&json!({"metadata": {}})));

        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "mariadb"},
            "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}]}});
        let prefixes = statefulset_claim_prefixes([sts].iter());
        assert_eq!(prefixes, vec!["data-mariadb-"]);
        let cases = [
            ("PersistentVolumeClaim", "data-mariadb-0", true),
            ("PersistentVolumeClaim", "data-mariadb-12", true),
            ("PersistentVolumeClaim", "data-mariadb-", false),
            ("PersistentVolumeClaim", "data-mariadb-x", false),
            ("PersistentVolumeClaim", "data-mariadb-galera-0", false),
            ("ConfigMap", "data-mariadb-0", false),
        ];
        for (kind, name, want) in cases {
            assert_eq!(
                is_statefulset_claim(&mk_ref("v1", kind, Some("openstack"), name), &prefixes),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn persistent_objects() {
        let pvc = mk_ref("v1", "PersistentVolumeClaim", Some("openstack"), "data");
        assert!(is_persistent(&pvc, None));
        let cm = mk_ref("v1", "ConfigMap", Some("openstack"), "c");
        assert!(!is_persistent(&cm, None));
        let marked = json!({"metadata": {"annotations": {ANNOTATION_PERSISTENT: "true"}}});
        assert!(is_persistent(&cm, Some(&marked)));
        let unmarked = json!({"metadata": {"annotations": {ANNOTATION_PERSISTENT: "false"}}});
        assert!(!is_persistent(&cm, Some(&unmarked)));
    }
}
