//! Deletion: delete (preconditions, finalizers, propagation), deletecollection, namespaces through
//! Terminating, and the garbage collection of dependents by ownerReferences.

use std::sync::Arc;

use serde_json::{Value, json};

use super::super::meta;
use super::super::request::{DeleteOpts, ListQuery, Target};
use super::super::resources::{ResKey, ResourceInfo};
use super::super::status::{ApiError, success_status};
use super::State;
use super::write::Managed;

impl State {
    /// Called after an object left the store: tracked workloads, CRD kinds, dependents.
    pub(super) fn after_delete(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        last: &Value,
        cascade: bool,
    ) {
        self.tracked
            .remove(&(info.key(), ns.to_string(), name.to_string()));
        if info.namespaced && !self.store.has_objects_in(ns) {
            // The last object of a terminating namespace is gone: the namespace goes too.
            let key = ResKey {
                group: String::new(),
                plural: "namespaces".into(),
            };
            let terminating = self.store.get(&key, "", ns).is_some_and(|n| {
                !n["metadata"]["deletionTimestamp"].is_null()
                    && n["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty)
            });
            if terminating {
                self.store.remove(&key, "", ns);
            }
        }
        if info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions" {
            self.unregister_crd(last);
        }
        let uid = last["metadata"]["uid"].as_str().unwrap_or("").to_string();
        if uid.is_empty() {
            return;
        }
        // Garbage collection: dependents go with their owner, or lose the reference when orphaned.
        let dependents: Vec<(ResKey, String, String)> = self
            .store
            .all()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid.as_str()))
            })
            .map(|(k, o)| {
                (
                    k.clone(),
                    o["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
                    o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        for (key, dns, dname) in dependents {
            let Some(dinfo) = self.registry.all().find(|r| r.key() == key).cloned() else {
                continue;
            };
            let t = Target {
                info: dinfo,
                namespace: if dns.is_empty() { None } else { Some(dns) },
                name: Some(dname),
                sub: None,
            };
            if cascade {
                let _ = self.delete(&t, &DeleteOpts::default());
            } else if let Ok(obj) = self.lookup(&t) {
                let mut o = (*obj).clone();
                if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid.as_str());
                }
                let _ = self.commit(
                    &t,
                    Some(obj),
                    o,
                    Managed::Update("kube-controller-manager"),
                    false,
                );
            }
        }
    }

    pub fn delete(&mut self, t: &Target, o: &DeleteOpts) -> Result<Value, ApiError> {
        let old = self.lookup(t)?;
        if let Some(uid) = &o.precondition_uid {
            if old["metadata"]["uid"].as_str() != Some(uid) {
                let mut e = ApiError::conflict(&t.info.qualified(), t.name());
                e.message = format!(
                    "Operation cannot be fulfilled on {} \"{}\": Precondition failed: UID in precondition: {}, UID in object meta: {}",
                    t.info.qualified(),
                    t.name(),
                    uid,
                    old["metadata"]["uid"].as_str().unwrap_or("")
                );
                return Err(e);
            }
        }
        if let Some(rv) = &o.precondition_rv {
            if old["metadata"]["resourceVersion"].as_str() != Some(rv) {
                return Err(ApiError::conflict(&t.info.qualified(), t.name()));
            }
        }
        let cascade = o.propagation.as_deref() != Some("Orphan");
        let details = json!({"name": t.name(), "group": t.info.group, "kind": t.info.plural, "uid": old["metadata"]["uid"]});
        if o.dry_run {
            return Ok(self.as_version(t, &old));
        }
        let has_finalizers = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if t.info.plural == "namespaces" && t.info.group.is_empty() {
            return Ok(self.delete_namespace(t, old));
        }
        if has_finalizers {
            if old["metadata"]["deletionTimestamp"].is_null() {
                let mut new = (*old).clone();
                new["metadata"]["deletionTimestamp"] = json!(meta::now_rfc3339());
                new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                let stored = self.store.put(&t.info.key(), t.ns(), t.name(), new);
                return Ok(self.as_version(t, &stored));
            }
            return Ok(self.as_version(t, &old));
        }
        let last = self
            .store
            .remove(&t.info.key(), t.ns(), t.name())
            .map(|v| (*v).clone())
            .unwrap_or_default();
        self.after_delete(&t.info, t.ns(), t.name(), &last, cascade);
        Ok(success_status(details))
    }

    /// A namespace goes Terminating, its contents are deleted, then it goes (once nothing with a finalizer
    /// is left in it).
    fn delete_namespace(&mut self, t: &Target, old: Arc<Value>) -> Value {
        let mut new = (*old).clone();
        if new["metadata"]["deletionTimestamp"].is_null() {
            new["metadata"]["deletionTimestamp"] = json!(meta::now_rfc3339());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            new["status"] = json!({"phase": "Terminating"});
            self.store.put(&t.info.key(), "", t.name(), new.clone());
        }
        self.finish_namespace(t.name());
        let key = t.info.key();
        match self.store.get(&key, "", t.name()) {
            Some(v) => self.as_version(t, v),
            None => new,
        }
    }

    fn finish_namespace(&mut self, ns: &str) {
        let contents = self.store.namespaces_with_objects(ns);
        for (key, name) in &contents {
            let Some(info) = self.registry.all().find(|r| r.key() == *key).cloned() else {
                continue;
            };
            let t = Target {
                info,
                namespace: Some(ns.to_string()),
                name: Some(name.clone()),
                sub: None,
            };
            let _ = self.delete(&t, &DeleteOpts::default());
        }
        if !self.store.has_objects_in(ns) {
            let key = ResKey {
                group: String::new(),
                plural: "namespaces".into(),
            };
            if let Some(obj) = self.store.get(&key, "", ns).cloned() {
                if obj["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty) {
                    self.store.remove(&key, "", ns);
                }
            }
        }
    }

    pub fn delete_collection(
        &mut self,
        t: &Target,
        q: &ListQuery,
        o: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let mut all = ListQuery {
            labels: q.labels.clone(),
            fields: q.fields.clone(),
            limit: None,
            cont: None,
        };
        all.limit = None;
        let list = self.list(t, &all)?;
        let mut deleted = Vec::new();
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            let name = item["metadata"]["name"].as_str().unwrap_or("").to_string();
            let one = Target {
                name: Some(name),
                ..t.clone()
            };
            if self.delete(&one, o).is_ok() {
                deleted.push(item);
            }
        }
        let mut out = list;
        out["items"] = Value::Array(deleted);
        Ok(out)
    }
}
