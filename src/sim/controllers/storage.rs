//! Storage: StorageClasses, the PersistentVolume controller (binding claims to volumes, releasing and
//! deleting volumes whose claim is gone, the protection finalizers) and the provisioners the simulator runs.
//!
//! The cluster starts with two classes: `standard`, the default, WaitForFirstConsumer and node-local
//! (`rancher.io/local-path`, as kind ships it: ReadWriteOnce and ReadWriteOncePod only), and `nfs`,
//! Immediate (`nfs.csi.k8s.io`: every access mode). A class naming any other provisioner gets none: its
//! claims wait, with the PV controller's `ExternalProvisioning` Event, as on a cluster where that
//! provisioner is not installed.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::podspec;
use super::{
    Action, Event, Involved, PODS, PVCS, PVS, STORAGECLASSES, View, has_finalizer, is_deleting, name,
    namespace, pod_finished, text, uid, without_finalizer,
};

pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
pub const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";
const PV_CONTROLLER: &str = "persistentvolume-controller";
const MANAGER: &str = "kube-controller-manager";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingMode {
    Immediate,
    WaitForFirstConsumer,
}

/// A provisioner the simulator runs.
struct Provisioner {
    /// How its Events name it (`<provisioner>_<instance>`).
    component: &'static str,
    modes: &'static [&'static str],
    /// Its volumes live on one node (their PersistentVolumes carry node affinity).
    node_local: bool,
    refusal: &'static str,
}

fn provisioner(name: &str) -> Option<Provisioner> {
    match name {
        "rancher.io/local-path" => Some(Provisioner {
            component: "rancher.io/local-path_local-path-provisioner",
            modes: &["ReadWriteOnce", "ReadWriteOncePod"],
            node_local: true,
            refusal: "NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes",
        }),
        "nfs.csi.k8s.io" => Some(Provisioner {
            component: "nfs.csi.k8s.io_csi-nfs-controller",
            modes: &[
                "ReadWriteOnce",
                "ReadOnlyMany",
                "ReadWriteMany",
                "ReadWriteOncePod",
            ],
            node_local: false,
            refusal: "",
        }),
        _ => None,
    }
}

/// The StorageClasses the cluster starts with.
pub fn default_classes() -> Vec<Value> {
    vec![
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard", "annotations": {DEFAULT_CLASS: "true"}},
            "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": false}),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "nfs"},
            "provisioner": "nfs.csi.k8s.io", "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate", "allowVolumeExpansion": true}),
    ]
}

/// The class a claim asks for: `spec.storageClassName`, else the legacy beta annotation.
pub fn class_name(pvc: &Value) -> Option<&str> {
    pvc["spec"]["storageClassName"]
        .as_str()
        .or_else(|| pvc["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"].as_str())
}

/// When the claim binds: WaitForFirstConsumer only if its class exists and says so.
pub fn binding_mode(view: &View, pvc: &Value) -> BindingMode {
    match class_name(pvc).and_then(|c| view.get(STORAGECLASSES, "", c)) {
        Some(sc) if sc["volumeBindingMode"] == "WaitForFirstConsumer" => BindingMode::WaitForFirstConsumer,
        _ => BindingMode::Immediate,
    }
}

/// The default class the DefaultStorageClass admission plugin assigns (the newest, when several claim it).
pub fn default_class<'a>(classes: impl Iterator<Item = &'a Value>) -> Option<String> {
    classes
        .filter(|c| c["metadata"]["annotations"][DEFAULT_CLASS] == "true")
        .max_by(|a, b| {
            text(&a["metadata"]["creationTimestamp"])
                .cmp(text(&b["metadata"]["creationTimestamp"]))
                .then(name(b).cmp(name(a)))
        })
        .map(|c| name(c).to_string())
}

/// Events the PV controller and provisioners record once per claim (and attempt), not every round.
#[derive(Debug, Default)]
pub struct Notes {
    told: HashSet<String>,
}

impl Notes {
    fn first(&mut self, key: String) -> bool {
        self.told.insert(key)
    }
}

pub fn run(view: &View, notes: &mut Notes, out: &mut Vec<Action>) {
    let claims: Vec<&Value> = view.list(PVCS).collect();
    notes
        .told
        .retain(|k| claims.iter().any(|c| k.starts_with(uid(c))));
    for pvc in &claims {
        claim(view, notes, pvc, out);
    }
    for pv in view.list(PVS) {
        volume(view, pv, out);
    }
}

fn in_use(view: &View, pvc: &Value) -> bool {
    view.list_in(PODS, namespace(pvc))
        .any(|p| !pod_finished(p) && podspec::claims(&p["spec"]).iter().any(|(_, c)| *c == name(pvc)))
}

fn claim(view: &View, notes: &mut Notes, pvc: &Value, out: &mut Vec<Action>) {
    if is_deleting(pvc) {
        if has_finalizer(pvc, PVC_PROTECTION) && !in_use(view, pvc) {
            out.push(Action::update(
                PVCS,
                without_finalizer(pvc, PVC_PROTECTION),
                MANAGER,
            ));
        }
        return;
    }
    let volume_name = text(&pvc["spec"]["volumeName"]);
    if !volume_name.is_empty() {
        match view.get(PVS, "", volume_name) {
            Some(pv)
                if text(&pv["spec"]["claimRef"]["uid"]) == uid(pvc) && pvc["status"]["phase"] != "Bound" =>
            {
                let status = json!({"phase": "Bound", "accessModes": pv["spec"]["accessModes"],
                    "capacity": pv["spec"]["capacity"]});
                out.push(Action::status(PVCS, pvc, status, MANAGER));
            }
            Some(_) => {}
            None if pvc["status"]["phase"] == "Bound" => {
                out.push(Action::status(PVCS, pvc, json!({"phase": "Lost"}), MANAGER));
                out.push(Action::Event(Event::warning(
                    Involved::of(pvc),
                    PV_CONTROLLER,
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!".into(),
                )));
            }
            None => {}
        }
        return;
    }
    if pvc["status"]["phase"] != "Pending" {
        out.push(Action::status(PVCS, pvc, json!({"phase": "Pending"}), MANAGER));
    }
    let id = uid(pvc).to_string();
    let class = class_name(pvc).filter(|c| !c.is_empty());
    let sc = class.and_then(|c| view.get(STORAGECLASSES, "", c));
    let selected = pvc["metadata"]["annotations"][SELECTED_NODE].as_str();
    if let (Some(c), None) = (class, sc) {
        if notes.first(format!("{id}/noclass")) {
            out.push(Action::Event(Event::warning(
                Involved::of(pvc),
                PV_CONTROLLER,
                "ProvisioningFailed",
                format!("storageclass.storage.k8s.io \"{c}\" not found"),
            )));
        }
        return;
    }
    let wffc = sc.is_some_and(|s| s["volumeBindingMode"] == "WaitForFirstConsumer");
    if wffc && selected.is_none() {
        if notes.first(format!("{id}/wait")) {
            out.push(Action::Event(Event::normal(
                Involved::of(pvc),
                PV_CONTROLLER,
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding".into(),
            )));
        }
        return;
    }
    if let Some(pv) = static_match(view, pvc, class.unwrap_or(""), selected) {
        bind(pvc, pv, None, out);
        return;
    }
    let Some(sc) = sc else {
        if notes.first(format!("{id}/nostatic")) {
            out.push(Action::Event(Event::normal(
                Involved::of(pvc),
                PV_CONTROLLER,
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set".into(),
            )));
        }
        return;
    };
    let provisioner_name = text(&sc["provisioner"]);
    let Some(p) = provisioner(provisioner_name) else {
        if notes.first(format!("{id}/external")) {
            out.push(Action::Event(Event::normal(
                Involved::of(pvc),
                PV_CONTROLLER,
                "ExternalProvisioning",
                format!(
                    "Waiting for a volume to be created either by the external provisioner '{provisioner_name}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."
                ),
            )));
        }
        return;
    };
    let attempt = format!("{id}/attempt/{}", text(&pvc["metadata"]["resourceVersion"]));
    if !notes.first(attempt) {
        return;
    }
    let key = format!("{}/{}", namespace(pvc), name(pvc));
    out.push(Action::Event(Event::normal(
        Involved::of(pvc),
        p.component,
        "Provisioning",
        format!("External provisioner is provisioning volume for claim \"{key}\""),
    )));
    let modes: Vec<&str> = pvc["spec"]["accessModes"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if modes.iter().any(|m| !p.modes.contains(m)) {
        out.push(Action::Event(Event::warning(
            Involved::of(pvc),
            p.component,
            "ProvisioningFailed",
            format!(
                "failed to provision volume with StorageClass \"{}\": {}",
                name(sc),
                p.refusal
            ),
        )));
        if selected.is_some() {
            // Give the node back so the scheduler can try again, as the external provisioner does.
            let mut reset = pvc.clone();
            if let Some(a) = reset["metadata"]["annotations"].as_object_mut() {
                a.remove(SELECTED_NODE);
            }
            out.push(Action::update(PVCS, reset, p.component));
        }
        return;
    }
    let pv = provisioned_volume(pvc, sc, &p, provisioner_name, selected);
    out.push(Action::Event(Event::normal(
        Involved::of(pvc),
        p.component,
        "ProvisioningSucceeded",
        format!("Successfully provisioned volume {}", name(&pv)),
    )));
    bind(pvc, &pv, Some(provisioner_name), out);
    out.push(Action::Create {
        res: PVS,
        object: pv,
        manager: p.component,
        announce: None,
    });
}

/// An Available volume of the claim's class that holds it (size, modes, and the selected node).
fn static_match<'a>(view: &View<'a>, pvc: &Value, class: &str, node: Option<&str>) -> Option<&'a Value> {
    let want = podspec::milli(&pvc["spec"]["resources"]["requests"]["storage"]);
    let modes = pvc["spec"]["accessModes"].as_array().cloned().unwrap_or_default();
    view.list(PVS).find(|pv| {
        let spec = &pv["spec"];
        let free = spec["claimRef"].is_null()
            || (text(&spec["claimRef"]["name"]) == name(pvc)
                && text(&spec["claimRef"]["namespace"]) == namespace(pvc)
                && text(&spec["claimRef"]["uid"]).is_empty());
        let pv_modes = spec["accessModes"].as_array().cloned().unwrap_or_default();
        let fits_node = match (
            node,
            spec["nodeAffinity"]["required"]["nodeSelectorTerms"].is_null(),
        ) {
            (Some(n), false) => view.get(super::NODES, "", n).is_some_and(|node| {
                super::scheduler::terms_match(&spec["nodeAffinity"]["required"]["nodeSelectorTerms"], node)
            }),
            _ => true,
        };
        !is_deleting(pv)
            && free
            && pv["status"]["phase"] == "Available"
            && text(&spec["storageClassName"]) == class
            && podspec::milli(&spec["capacity"]["storage"]) >= want
            && modes.iter().all(|m| pv_modes.contains(m))
            && fits_node
    })
}

fn provisioned_volume(
    pvc: &Value,
    sc: &Value,
    p: &Provisioner,
    provisioner_name: &str,
    node: Option<&str>,
) -> Value {
    let pv_name = format!("pvc-{}", uid(pvc));
    let mut spec = json!({
        "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]},
        "accessModes": pvc["spec"]["accessModes"],
        "persistentVolumeReclaimPolicy": sc["reclaimPolicy"].as_str().unwrap_or("Delete"),
        "storageClassName": name(sc),
        "volumeMode": pvc["spec"]["volumeMode"].as_str().unwrap_or("Filesystem"),
        "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace(pvc),
            "name": name(pvc), "uid": uid(pvc), "resourceVersion": pvc["metadata"]["resourceVersion"]},
    });
    if p.node_local {
        spec["hostPath"] = json!({"path": format!("/var/local-path-provisioner/{pv_name}_{}_{}", namespace(pvc), name(pvc)),
            "type": "DirectoryOrCreate"});
        if let Some(n) = node {
            spec["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [n]}]}]}});
        }
    } else {
        spec["csi"] = json!({"driver": provisioner_name, "volumeHandle": format!("sim#{pv_name}")});
    }
    json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": provisioner_name},
            "finalizers": [PV_PROTECTION]},
        "spec": spec})
}

/// The claim names its volume; the volume's claimRef is set (or was, when provisioned).
fn bind(pvc: &Value, pv: &Value, provisioner: Option<&str>, out: &mut Vec<Action>) {
    let mut claim = pvc.clone();
    claim["spec"]["volumeName"] = json!(name(pv));
    let a = &mut claim["metadata"]["annotations"];
    if !a.is_object() {
        *a = json!({});
    }
    a["pv.kubernetes.io/bind-completed"] = json!("yes");
    a["pv.kubernetes.io/bound-by-controller"] = json!("yes");
    if let Some(p) = provisioner {
        a["volume.kubernetes.io/storage-provisioner"] = json!(p);
        a["volume.beta.kubernetes.io/storage-provisioner"] = json!(p);
    }
    out.push(Action::update(PVCS, claim, MANAGER));
    if provisioner.is_none() {
        let mut volume = pv.clone();
        volume["spec"]["claimRef"] = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "namespace": namespace(pvc), "name": name(pvc), "uid": uid(pvc),
            "resourceVersion": pvc["metadata"]["resourceVersion"]});
        out.push(Action::update(PVS, volume, MANAGER));
    }
}

fn volume(view: &View, pv: &Value, out: &mut Vec<Action>) {
    let claim_ref = &pv["spec"]["claimRef"];
    let phase = text(&pv["status"]["phase"]);
    if is_deleting(pv) {
        if has_finalizer(pv, PV_PROTECTION) && phase != "Bound" {
            out.push(Action::update(PVS, without_finalizer(pv, PV_PROTECTION), MANAGER));
        }
        return;
    }
    let want = if claim_ref.is_null() {
        "Available"
    } else {
        let claim = view
            .get(PVCS, text(&claim_ref["namespace"]), text(&claim_ref["name"]))
            .filter(|c| text(&claim_ref["uid"]).is_empty() || uid(c) == text(&claim_ref["uid"]));
        match claim {
            Some(c) if text(&c["spec"]["volumeName"]) == name(pv) => "Bound",
            // Bound in this round: the claim names the volume next round.
            Some(_) if phase != "Bound" && phase != "Released" => return,
            _ => "Released",
        }
    };
    if want == "Released" && pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete" {
        out.push(Action::delete(PVS, pv, None));
        return;
    }
    if phase != want {
        out.push(Action::status(PVS, pv, json!({"phase": want}), MANAGER));
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{store, view};
    use super::super::{NODES, Res};
    use super::*;

    fn pvc(class: Option<&str>, mode: &str, selected: Option<&str>) -> Value {
        let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "openstack", "resourceVersion": "5"},
            "spec": {"accessModes": [mode], "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Pending"}});
        if let Some(cl) = class {
            c["spec"]["storageClassName"] = json!(cl);
        }
        if let Some(n) = selected {
            c["metadata"]["annotations"] = json!({SELECTED_NODE: n});
        }
        c
    }

    fn actions(objects: Vec<(Res, Value)>) -> Vec<Action> {
        let s = store(&objects);
        let v = view(&s);
        let mut out = Vec::new();
        run(&v, &mut Notes::default(), &mut out);
        out
    }

    fn reasons(out: &[Action]) -> Vec<(&'static str, String)> {
        out.iter()
            .filter_map(|a| match a {
                Action::Event(e) => Some((e.reason, e.message.clone())),
                _ => None,
            })
            .collect()
    }

    fn classes() -> Vec<(Res, Value)> {
        default_classes()
            .into_iter()
            .map(|c| (STORAGECLASSES, c))
            .collect()
    }

    fn provisioned(out: &[Action]) -> Option<&Value> {
        out.iter().find_map(|a| match a {
            Action::Create { object, .. } if object["kind"] == "PersistentVolume" => Some(object),
            _ => None,
        })
    }

    #[test]
    fn binding_table() {
        let node = (NODES, super::super::fixtures::node("node-2", json!({})));
        let cases: Vec<(&str, Value, Option<&str>, bool)> = vec![
            (
                "WaitForFirstConsumer waits for a consumer",
                pvc(Some("standard"), "ReadWriteOnce", None),
                Some("WaitForFirstConsumer"),
                false,
            ),
            (
                "WaitForFirstConsumer binds on the selected node",
                pvc(Some("standard"), "ReadWriteOnce", Some("node-2")),
                Some("ProvisioningSucceeded"),
                true,
            ),
            (
                "Immediate binds at once",
                pvc(Some("nfs"), "ReadWriteOnce", None),
                Some("ProvisioningSucceeded"),
                true,
            ),
            (
                "Immediate gives ReadWriteMany",
                pvc(Some("nfs"), "ReadWriteMany", None),
                Some("ProvisioningSucceeded"),
                true,
            ),
            (
                "local volumes refuse ReadWriteMany",
                pvc(Some("standard"), "ReadWriteMany", Some("node-2")),
                Some("ProvisioningFailed"),
                false,
            ),
            (
                "an unknown class",
                pvc(Some("gold"), "ReadWriteOnce", None),
                Some("ProvisioningFailed"),
                false,
            ),
            (
                "no class and no volume",
                pvc(Some(""), "ReadWriteOnce", None),
                Some("FailedBinding"),
                false,
            ),
        ];
        for (what, claim, reason, binds) in cases {
            let mut objects = classes();
            objects.push(node.clone());
            objects.push((PVCS, claim));
            let out = actions(objects);
            let got = reasons(&out);
            assert_eq!(got.last().map(|(r, _)| *r), reason, "{what}: {got:?}");
            assert_eq!(provisioned(&out).is_some(), binds, "{what}: {out:?}");
        }
    }

    #[test]
    fn refused_access_modes_say_why_and_give_the_node_back() {
        let mut objects = classes();
        objects.push((PVCS, pvc(Some("standard"), "ReadWriteMany", Some("node-1"))));
        let out = actions(objects);
        let (_, message) = reasons(&out).pop().unwrap();
        assert_eq!(
            message,
            "failed to provision volume with StorageClass \"standard\": NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes"
        );
        let reset = out.iter().find_map(|a| match a {
            Action::Update { object, .. } => Some(object),
            _ => None,
        });
        assert!(reset.unwrap()["metadata"]["annotations"][SELECTED_NODE].is_null());
    }

    #[test]
    fn local_volumes_are_pinned_to_their_node() {
        let mut objects = classes();
        objects.push((PVCS, pvc(Some("standard"), "ReadWriteOnce", Some("node-3"))));
        let out = actions(objects);
        let pv = provisioned(&out).unwrap();
        assert_eq!(
            pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
                [0],
            "node-3"
        );
        assert_eq!(pv["spec"]["claimRef"]["name"], "data");
        assert_eq!(pv["spec"]["storageClassName"], "standard");
    }

    #[test]
    fn a_claim_without_a_running_provisioner_waits_for_it() {
        let mut objects = vec![(
            STORAGECLASSES,
            json!({"metadata": {"name": "ceph"}, "provisioner": "rbd.csi.ceph.com", "volumeBindingMode": "Immediate"}),
        )];
        objects.push((PVCS, pvc(Some("ceph"), "ReadWriteOnce", None)));
        let out = actions(objects);
        let (reason, message) = reasons(&out).pop().unwrap();
        assert_eq!(reason, "ExternalProvisioning");
        assert!(message.contains("'rbd.csi.ceph.com'"), "{message}");
    }

    #[test]
    fn protected_claims_stay_while_a_pod_uses_them() {
        let mut deleting = pvc(Some("standard"), "ReadWriteOnce", None);
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        deleting["metadata"]["finalizers"] = json!([PVC_PROTECTION]);
        let user = super::super::fixtures::pod(
            "openstack",
            "db-0",
            json!({"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}),
        );
        let held = actions(vec![(PVCS, deleting.clone()), (PODS, user)]);
        assert!(held.is_empty(), "{held:?}");
        let freed = actions(vec![(PVCS, deleting)]);
        assert!(
            matches!(&freed[0], Action::Update { object, .. } if object["metadata"]["finalizers"] == json!([]))
        );
    }

    #[test]
    fn the_newest_default_class_is_the_default() {
        let classes = [
            json!({"metadata": {"name": "old", "creationTimestamp": "2025-01-01T00:00:00Z", "annotations": {DEFAULT_CLASS: "true"}}}),
            json!({"metadata": {"name": "new", "creationTimestamp": "2026-01-01T00:00:00Z", "annotations": {DEFAULT_CLASS: "true"}}}),
            json!({"metadata": {"name": "other", "creationTimestamp": "2027-01-01T00:00:00Z"}}),
        ];
        assert_eq!(default_class(classes.iter()).as_deref(), Some("new"));
    }
}
