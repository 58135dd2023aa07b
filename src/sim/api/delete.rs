//! Deletion: delete (preconditions, finalizers, grace periods, propagation policies), deletecollection,
//! and namespaces through `Terminating`. What happens after the request, as on a real server, is the
//! control plane's: the garbage collector (`controllers::gc`) deletes dependents by ownerReferences and
//! lifts the `foregroundDeletion` and `orphan` finalizers, the namespace controller empties a
//! terminating namespace, the kubelet stops a Pod within its grace period and removes it.

use std::sync::Arc;

use serde_json::{Value, json};

use super::super::controllers::gc::{FOREGROUND, ORPHAN};
use super::super::meta;
use super::super::request::{DeleteOpts, ListQuery, Target};
use super::super::resources::ResourceInfo;
use super::super::status::{ApiError, success_status};
use super::State;

/// What kube-apiserver does with dependents when the request names no policy: batch/v1 Jobs orphan
/// their Pods (kept for compatibility), everything else deletes them in the background.
fn default_policy(info: &ResourceInfo) -> &'static str {
    if info.builtin && info.group == "batch" && info.plural == "jobs" && info.version == "v1" {
        "Orphan"
    } else {
        "Background"
    }
}

impl State {
    /// Called after an object left the store.
    pub(super) fn after_delete(&mut self, info: &ResourceInfo, last: &Value) {
        if info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions" {
            self.unregister_crd(last);
        }
    }

    /// The grace period a deletion gets: Pods on a node stop gracefully (the request's
    /// `gracePeriodSeconds`, else the Pod's `terminationGracePeriodSeconds`, else 30s); everything else,
    /// and Pods that never ran or already finished, go at once.
    fn grace_period(t: &Target, obj: &Value, requested: Option<i64>) -> i64 {
        let pod = t.info.builtin && t.info.group.is_empty() && t.info.plural == "pods";
        let phase = obj["status"]["phase"].as_str().unwrap_or("");
        if !pod
            || obj["spec"]["nodeName"].as_str().unwrap_or("").is_empty()
            || matches!(phase, "Succeeded" | "Failed")
        {
            return 0;
        }
        requested
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0)
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
        let details = json!({"name": t.name(), "group": t.info.group, "kind": t.info.plural, "uid": old["metadata"]["uid"]});
        if o.dry_run {
            return Ok(self.as_version(t, &old));
        }
        if t.info.plural == "namespaces" && t.info.group.is_empty() {
            return Ok(self.delete_namespace(t, old));
        }
        let deleting = !old["metadata"]["deletionTimestamp"].is_null();
        let grace = Self::grace_period(t, &old, o.grace_period);
        let mut finalizers: Vec<Value> = old["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !deleting {
            let policy = o.propagation.as_deref().unwrap_or(default_policy(&t.info));
            let (add, drop) = match policy {
                "Foreground" => (Some(FOREGROUND), ORPHAN),
                "Orphan" => (Some(ORPHAN), FOREGROUND),
                _ => (None, ""),
            };
            finalizers.retain(|f| f != drop);
            if let Some(f) = add {
                if !finalizers.iter().any(|x| x == f) {
                    finalizers.push(json!(f));
                }
            }
        }
        if finalizers.is_empty() && grace == 0 {
            let last = self
                .store
                .remove(&t.info.key(), t.ns(), t.name())
                .map(|v| (*v).clone())
                .unwrap_or_default();
            self.after_delete(&t.info, &last);
            return Ok(success_status(details));
        }
        let current_grace = old["metadata"]["deletionGracePeriodSeconds"].as_i64();
        if deleting && current_grace.is_some_and(|g| grace >= g) {
            return Ok(self.as_version(t, &old));
        }
        let mut new = (*old).clone();
        let when = meta::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                + grace as u64,
        );
        new["metadata"]["deletionTimestamp"] = json!(when);
        new["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        new["metadata"]["finalizers"] = json!(finalizers);
        if finalizers.is_empty() {
            if let Some(m) = new["metadata"].as_object_mut() {
                m.remove("finalizers");
            }
        }
        let stored = self.store.put(&t.info.key(), t.ns(), t.name(), new);
        Ok(self.as_version(t, &stored))
    }

    /// A namespace goes Terminating; the namespace controller deletes its contents and then removes it.
    /// Deleting a terminating namespace with nothing left in it removes it.
    fn delete_namespace(&mut self, t: &Target, old: Arc<Value>) -> Value {
        let key = t.info.key();
        if !old["metadata"]["deletionTimestamp"].is_null() {
            let finalizers_left = old["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|l| !l.is_empty());
            if !self.store.has_objects_in(t.name()) && !finalizers_left {
                let uid = old["metadata"]["uid"].clone();
                self.store.remove(&key, "", t.name());
                return success_status(json!({"name": t.name(), "kind": "namespaces", "uid": uid}));
            }
            return self.as_version(t, &old);
        }
        let mut new = (*old).clone();
        new["metadata"]["deletionTimestamp"] = json!(meta::now_rfc3339());
        new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        new["status"] = json!({"phase": "Terminating"});
        let stored = self.store.put(&key, "", t.name(), new);
        self.as_version(t, &stored)
    }

    pub fn delete_collection(
        &mut self,
        t: &Target,
        q: &ListQuery,
        o: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let all = ListQuery {
            labels: q.labels.clone(),
            fields: q.fields.clone(),
            limit: None,
            cont: None,
        };
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
