//! The garbage collector and the namespace controller. Dependents whose owners (by ownerReference uid) are
//! all gone are deleted; references to owners that are gone are dropped when another owner remains; an
//! owner deleted with `propagationPolicy=Foreground` keeps its `foregroundDeletion` finalizer until its
//! blocking dependents are gone; one deleted with `Orphan` keeps its `orphan` finalizer until its
//! dependents no longer reference it. A terminating namespace's contents are deleted, then the namespace.
//! Events older than an hour expire, as with kube-apiserver's default `--event-ttl`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::super::meta::parse_rfc3339;
use super::super::resources::ResKey;
use super::{
    Action, EVENTS, NAMESPACES, View, has_finalizer, is_deleting, name, namespace, text, uid,
    without_finalizer,
};

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";
const MANAGER: &str = "kube-controller-manager";
const EVENT_TTL: Duration = Duration::from_secs(3600);
const EVENT_SWEEP: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Clock {
    last_sweep: Option<Instant>,
    /// The deletion epoch and time of the last full look; the collector acts on deletions, and looks
    /// again at least every `FULL_LOOK` for dependents created with owners that are already gone.
    last_look: Option<(u64, Instant)>,
}

const FULL_LOOK: Duration = Duration::from_secs(1);

fn refs(obj: &Value) -> &[Value] {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn delete(key: &ResKey, obj: &Value, propagation: Option<&'static str>) -> Action {
    Action::Delete {
        res: key.clone(),
        namespace: namespace(obj).into(),
        name: name(obj).into(),
        uid: uid(obj).into(),
        grace: None,
        propagation,
        announce: None,
    }
}

pub fn run(view: &View, clock: &mut Clock, out: &mut Vec<Action>) {
    let epoch = view.deletion_epoch();
    if clock
        .last_look
        .is_some_and(|(e, at)| e == epoch && view.now < at + FULL_LOOK)
    {
        return;
    }
    clock.last_look = Some((epoch, view.now));
    let mut by_uid: HashMap<&str, &Value> = HashMap::new();
    let mut dependents: HashMap<&str, Vec<(&ResKey, &Value)>> = HashMap::new();
    for (key, obj) in view.all() {
        by_uid.insert(uid(obj), obj);
        for r in refs(obj) {
            dependents.entry(text(&r["uid"])).or_default().push((key, obj));
        }
    }
    for (key, obj) in view.all() {
        let owners = refs(obj);
        if owners.is_empty() {
            continue;
        }
        let mut solid = false;
        let mut waiting = false;
        let mut dangling = Vec::new();
        for r in owners {
            let owner_uid = text(&r["uid"]);
            match by_uid.get(owner_uid) {
                Some(owner) if namespace(owner).is_empty() || namespace(owner) == namespace(obj) => {
                    if is_deleting(owner) && has_finalizer(owner, FOREGROUND) {
                        waiting = true;
                    } else {
                        solid = true;
                    }
                }
                _ => dangling.push(owner_uid),
            }
        }
        if !solid && (waiting || !dangling.is_empty()) {
            if !is_deleting(obj) {
                let has_dependents = dependents.get(uid(obj)).is_some_and(|d| !d.is_empty());
                let propagation = if waiting && has_dependents {
                    "Foreground"
                } else {
                    "Background"
                };
                out.push(delete(key, obj, Some(propagation)));
            }
        } else if solid && !dangling.is_empty() {
            let mut kept = obj.clone();
            if let Some(l) = kept["metadata"]["ownerReferences"].as_array_mut() {
                l.retain(|r| !dangling.contains(&text(&r["uid"])));
            }
            out.push(Action::Update {
                res: key.clone(),
                object: kept,
                manager: MANAGER,
            });
        }
    }
    for (key, obj) in view.all() {
        if !is_deleting(obj) {
            continue;
        }
        let deps = dependents.get(uid(obj)).map(Vec::as_slice).unwrap_or_default();
        if has_finalizer(obj, FOREGROUND) {
            let blocking = deps.iter().any(|(_, d)| {
                refs(d)
                    .iter()
                    .any(|r| text(&r["uid"]) == uid(obj) && r["blockOwnerDeletion"] == true)
            });
            if !blocking {
                out.push(Action::Update {
                    res: key.clone(),
                    object: without_finalizer(obj, FOREGROUND),
                    manager: MANAGER,
                });
            }
        } else if has_finalizer(obj, ORPHAN) {
            if deps.is_empty() {
                out.push(Action::Update {
                    res: key.clone(),
                    object: without_finalizer(obj, ORPHAN),
                    manager: MANAGER,
                });
            }
            for (dkey, d) in deps {
                let mut freed = (*d).clone();
                if let Some(l) = freed["metadata"]["ownerReferences"].as_array_mut() {
                    l.retain(|r| text(&r["uid"]) != uid(obj));
                }
                out.push(Action::Update {
                    res: (*dkey).clone(),
                    object: freed,
                    manager: MANAGER,
                });
            }
        }
    }
    namespaces(view, out);
    if clock.last_sweep.is_none_or(|t| view.now >= t + EVENT_SWEEP) {
        clock.last_sweep = Some(view.now);
        expire_events(view, out);
    }
}

/// Terminating namespaces: contents deleted first, the namespace once nothing is left.
fn namespaces(view: &View, out: &mut Vec<Action>) {
    let terminating: Vec<&Value> = view.list(NAMESPACES).filter(|n| is_deleting(n)).collect();
    for ns in terminating {
        let mut empty = true;
        for (key, obj) in view.all().filter(|(_, o)| namespace(o) == name(ns)) {
            empty = false;
            if !is_deleting(obj) {
                out.push(delete(key, obj, Some("Background")));
            }
        }
        if empty {
            out.push(delete(&NAMESPACES.key(), ns, None));
        }
    }
}

fn expire_events(view: &View, out: &mut Vec<Action>) {
    let Some(now) = parse_rfc3339(&view.wall) else {
        return;
    };
    for e in view.list(EVENTS) {
        let last = [
            &e["lastTimestamp"],
            &e["eventTime"],
            &e["metadata"]["creationTimestamp"],
        ]
        .into_iter()
        .find_map(|v| v.as_str().and_then(parse_rfc3339));
        if last.is_some_and(|t| now >= t + EVENT_TTL.as_secs()) {
            out.push(delete(&EVENTS.key(), e, None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{store, view};
    use super::super::{DEPLOYMENTS, PODS, REPLICASETS, Res};
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, name: &str, owner: Option<(&str, bool)>) -> Value {
        let mut o = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "ns", "uid": name}});
        if let Some((uid, block)) = owner {
            o["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "X", "name": uid, "uid": uid, "controller": true, "blockOwnerDeletion": block}]);
        }
        o
    }

    fn actions(objects: Vec<(Res, Value)>) -> Vec<String> {
        let s = store(&objects);
        let v = view(&s);
        let mut out = Vec::new();
        run(&v, &mut Clock::default(), &mut out);
        out.iter()
            .map(|a| match a {
                Action::Delete {
                    name, propagation, ..
                } => format!("delete {name} {}", propagation.unwrap_or("-")),
                Action::Update { object, .. } => format!(
                    "update {} finalizers={} owners={}",
                    super::name(object),
                    object["metadata"]["finalizers"],
                    object["metadata"]["ownerReferences"]
                        .as_array()
                        .map_or(0, Vec::len)
                ),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn dependents_of_a_gone_owner_are_deleted() {
        assert_eq!(
            actions(vec![(PODS, obj("Pod", "p", Some(("rs-gone", true))))]),
            vec!["delete p Background"]
        );
        let kept = actions(vec![
            (REPLICASETS, obj("ReplicaSet", "rs", None)),
            (PODS, obj("Pod", "p", Some(("rs", true)))),
        ]);
        assert!(kept.is_empty(), "{kept:?}");
    }

    #[test]
    fn foreground_deletion_waits_for_blocking_dependents() {
        let mut owner = obj("Deployment", "d", None);
        owner["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        owner["metadata"]["finalizers"] = json!([FOREGROUND]);
        let rs = obj("ReplicaSet", "rs", Some(("d", true)));
        let pod = obj("Pod", "p", Some(("rs", true)));
        assert_eq!(
            actions(vec![(DEPLOYMENTS, owner.clone()), (REPLICASETS, rs), (PODS, pod)]),
            vec!["delete rs Foreground"],
            "the ReplicaSet has dependents of its own, so it waits for them too"
        );
        assert_eq!(
            actions(vec![(DEPLOYMENTS, owner)]),
            vec!["update d finalizers=[] owners=0"]
        );
    }

    #[test]
    fn orphaning_drops_the_references_then_the_finalizer() {
        let mut owner = obj("Job", "j", None);
        owner["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        owner["metadata"]["finalizers"] = json!([ORPHAN]);
        let pod = obj("Pod", "p", Some(("j", true)));
        assert_eq!(
            actions(vec![(super::super::JOBS, owner.clone()), (PODS, pod)]),
            vec!["update p finalizers=null owners=0"]
        );
        assert_eq!(
            actions(vec![(super::super::JOBS, owner)]),
            vec!["update j finalizers=[] owners=0"]
        );
    }

    #[test]
    fn a_terminating_namespace_empties_then_goes() {
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns", "uid": "ns-1",
            "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        let cm = obj("ConfigMap", "c", None);
        assert_eq!(
            actions(vec![(NAMESPACES, ns.clone()), (super::super::CONFIGMAPS, cm)]),
            vec!["delete c Background"]
        );
        ns["metadata"]["name"] = json!("ns");
        assert_eq!(actions(vec![(NAMESPACES, ns)]), vec!["delete ns -"]);
    }
}
