//! Writes: create, update, patch (merge, strategic, JSON), server-side apply, `/scale`, and `commit`, the
//! final step every write ends in (server-owned metadata, defaults, validation, managedFields, storage).

use std::sync::Arc;

use serde_json::{Value, json};

use super::super::apply::{self, ApplyRequest};
use super::super::auth;
use super::super::controllers;
use super::super::defaults;
use super::super::meta;
use super::super::patch;
use super::super::prune;
use super::super::request::{FieldValidation, MAX_BODY, PatchKind, Target, WriteOpts};
use super::super::resources::{ResKey, ResourceInfo};
use super::super::status::ApiError;
use super::read::scale_of;
use super::{State, crd};

/// Who a write is attributed to in managedFields.
pub(super) enum Managed<'a> {
    Update(&'a str),
    Applied,
}

/// Whether two versions of an object are the same but for resourceVersion and managedFields times (a
/// write that changes nothing keeps the stored object). Compared in place: controllers write often.
fn same_but_times(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let others_equal =
        |x: &serde_json::Map<String, Value>, y: &serde_json::Map<String, Value>, skip: &[&str]| {
            x.iter().filter(|(k, _)| !skip.contains(&k.as_str())).count()
                == y.iter().filter(|(k, _)| !skip.contains(&k.as_str())).count()
                && x.iter()
                    .filter(|(k, _)| !skip.contains(&k.as_str()))
                    .all(|(k, v)| y.get(k) == Some(v))
        };
    if !others_equal(a, b, &["metadata"]) {
        return false;
    }
    let (ma, mb) = (&a.get("metadata"), &b.get("metadata"));
    let (Some(Value::Object(ma)), Some(Value::Object(mb))) = (ma, mb) else {
        return ma == mb;
    };
    if !others_equal(ma, mb, &["resourceVersion", "managedFields"]) {
        return false;
    }
    let entries = |m: &serde_json::Map<String, Value>| m.get("managedFields").cloned().unwrap_or(Value::Null);
    match (entries(ma), entries(mb)) {
        (Value::Array(ea), Value::Array(eb)) => {
            ea.len() == eb.len()
                && ea
                    .iter()
                    .zip(&eb)
                    .all(|(x, y)| match (x.as_object(), y.as_object()) {
                        (Some(x), Some(y)) => others_equal(x, y, &["time"]),
                        _ => x == y,
                    })
        }
        (x, y) => x == y,
    }
}

impl State {
    pub(super) fn ensure_namespace(&self, t: &Target) -> Result<(), ApiError> {
        if !t.info.namespaced {
            return Ok(());
        }
        let ns_key = ResKey {
            group: String::new(),
            plural: "namespaces".into(),
        };
        match self.store.get(&ns_key, "", t.ns()) {
            None => Err(ApiError::not_found("namespaces", t.ns())),
            Some(ns) if !ns["metadata"]["deletionTimestamp"].is_null() => {
                let mut e = ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                        t.info.qualified(),
                        t.name(),
                        t.ns()
                    ),
                );
                e.set_details(
                    json!({"name": t.name(), "group": t.info.group, "kind": t.info.plural,
                    "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {} is being terminated", t.ns()), "field": "metadata.namespace"}]}),
                );
                Err(e)
            }
            Some(_) => Ok(()),
        }
    }

    /// Checks that the body is an object of the request's kind and scope.
    pub(super) fn check_body(&self, t: &Target, body: &Value) -> Result<(), ApiError> {
        let Some(obj) = body.as_object() else {
            return Err(ApiError::bad_request("the body must be a JSON or YAML object"));
        };
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if kind.is_empty() && api_version.is_empty() {
            // Typed clients always send both; a body without them is decoded as the request's kind.
        } else if kind != t.info.kind || api_version != t.info.api_version() {
            if t.sub.as_deref() == Some("scale") {
                return Ok(());
            }
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({}) or kind ({kind}) does not match {}",
                t.info.api_version(),
                t.info.kind
            )));
        }
        match obj.get("metadata") {
            None | Some(Value::Object(_)) => {}
            Some(_) => return Err(ApiError::bad_request("metadata: must be an object")),
        }
        if let Some(ns) = body["metadata"]["namespace"].as_str() {
            if t.info.namespaced && !ns.is_empty() && ns != t.ns() {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        for f in ["name", "namespace", "generateName", "resourceVersion", "uid"] {
            let v = &body["metadata"][f];
            if !v.is_null() && !v.is_string() {
                return Err(ApiError::bad_request(format!("metadata.{f}: must be a string")));
            }
        }
        Ok(())
    }

    pub fn create(&mut self, t: &Target, mut body: Value, o: &WriteOpts) -> Result<Value, ApiError> {
        self.check_body(t, &body)?;
        let mut t = t.clone();
        let name = match body["metadata"]["name"].as_str().filter(|s| !s.is_empty()) {
            Some(n) => n.to_string(),
            None => match body["metadata"]["generateName"]
                .as_str()
                .filter(|s| !s.is_empty())
            {
                Some(prefix) => format!("{prefix}{}", meta::name_suffix()),
                None => {
                    return Err(ApiError::invalid(
                        &t.info.kind,
                        &t.info.group,
                        "",
                        vec![(
                            "metadata.name".into(),
                            "Required value: name or generateName is required".into(),
                        )],
                    ));
                }
            },
        };
        body["metadata"]["name"] = json!(name);
        t.name = Some(name);
        self.ensure_namespace(&t)?;
        self.commit(&t, None, body, Managed::Update(&o.manager), o.dry_run)
    }

    pub fn update(&mut self, t: &Target, body: Value, o: &WriteOpts) -> Result<Value, ApiError> {
        self.check_body(t, &body)?;
        if let Some(n) = body["metadata"]["name"].as_str() {
            if n != t.name() {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({})",
                    t.name()
                )));
            }
        }
        let old = self.lookup(t)?;
        if t.sub.as_deref() == Some("scale") {
            return self.update_scale(t, &old, &body, o);
        }
        let rv = body["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if !rv.is_empty() && rv != old["metadata"]["resourceVersion"].as_str().unwrap_or("") {
            return Err(ApiError::conflict(&t.info.qualified(), t.name()));
        }
        let uid = body["metadata"]["uid"].as_str().unwrap_or("");
        if !uid.is_empty() && uid != old["metadata"]["uid"].as_str().unwrap_or("") {
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
        let mut body = body;
        // Clients cannot rewrite managedFields through an update in this simulator; the server keeps them.
        if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            match old["metadata"].get("managedFields") {
                Some(mf) => m.insert("managedFields".into(), mf.clone()),
                None => m.remove("managedFields"),
            };
        }
        self.commit(t, Some(old), body, Managed::Update(&o.manager), o.dry_run)
    }

    fn update_scale(
        &mut self,
        t: &Target,
        old: &Arc<Value>,
        body: &Value,
        o: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let replicas = body["spec"]["replicas"]
            .as_i64()
            .filter(|n| (0..=i32::MAX as i64).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "Scale",
                    "autoscaling",
                    t.name(),
                    vec![(
                        "spec.replicas".into(),
                        "Invalid value: must be a non-negative integer".into(),
                    )],
                )
            })?;
        let mut new = (**old).clone();
        new["spec"]["replicas"] = json!(replicas);
        let main = Target {
            sub: None,
            ..t.clone()
        };
        let stored = self.commit(
            &main,
            Some(old.clone()),
            new,
            Managed::Update(&o.manager),
            o.dry_run,
        )?;
        Ok(scale_of(&stored))
    }

    pub fn patch(
        &mut self,
        t: &Target,
        kind: PatchKind,
        body: &Value,
        o: &WriteOpts,
    ) -> Result<Value, ApiError> {
        if kind == PatchKind::Apply {
            return self.apply(t, body, o);
        }
        let old = self.lookup(t)?;
        let base = if t.sub.as_deref() == Some("scale") {
            scale_of(&old)
        } else {
            (*old).clone()
        };
        let mut new = base.clone();
        match kind {
            PatchKind::Merge => {
                if !body.is_object() {
                    return Err(ApiError::bad_request(
                        "merge patch: the patch must be a JSON object",
                    ));
                }
                patch::merge_patch(&mut new, body)
            }
            PatchKind::Strategic => {
                if !body.is_object() {
                    return Err(ApiError::bad_request(
                        "strategic merge patch: the patch must be a JSON object",
                    ));
                }
                if !t.info.builtin {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources; use merge or apply patches",
                    ));
                }
                patch::strategic_merge_patch(&mut new, body, &t.info)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            PatchKind::Json => patch::json_patch(&mut new, body).map_err(|e| match e {
                patch::PatchError::TestFailed(_) => ApiError::new(422, "Invalid", e.to_string()),
                _ => ApiError::bad_request(e.to_string()),
            })?,
            PatchKind::Apply => unreachable!("handled above"),
        }
        if patch::depth(&new) > patch::MAX_DEPTH {
            return Err(ApiError::bad_request("the patched object is nested too deeply"));
        }
        if serde_json::to_vec(&new).map_or(true, |b| b.len() > MAX_BODY) {
            return Err(ApiError::too_large());
        }
        if t.sub.as_deref() == Some("scale") {
            return self.update_scale(t, &old, &new, o);
        }
        if new["metadata"]["name"].as_str() != Some(t.name()) {
            return Err(ApiError::bad_request(
                "metadata.name: the name of a patched object cannot change",
            ));
        }
        let rv = new["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if !rv.is_empty() && rv != old["metadata"]["resourceVersion"].as_str().unwrap_or("") {
            return Err(ApiError::conflict(&t.info.qualified(), t.name()));
        }
        if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            match old["metadata"].get("managedFields") {
                Some(mf) => m.insert("managedFields".into(), mf.clone()),
                None => m.remove("managedFields"),
            };
        }
        self.check_body(t, &new)?;
        self.commit(t, Some(old), new, Managed::Update(&o.manager), o.dry_run)
    }

    fn apply(&mut self, t: &Target, body: &Value, o: &WriteOpts) -> Result<Value, ApiError> {
        if o.manager.is_empty() {
            return Err(ApiError::invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                vec![(
                    "fieldManager".into(),
                    "Required value: is required for apply patch".into(),
                )],
            ));
        }
        if !body.is_object() {
            return Err(ApiError::bad_request("apply patch: the body must be an object"));
        }
        if body["kind"].as_str().unwrap_or("").is_empty()
            || body["apiVersion"].as_str().unwrap_or("").is_empty()
        {
            return Err(ApiError::bad_request(format!(
                "invalid object type: {}, Kind={}",
                body["apiVersion"].as_str().unwrap_or("/"),
                body["kind"].as_str().unwrap_or("")
            )));
        }
        self.check_body(t, body)?;
        if body["metadata"]["name"].as_str() != Some(t.name()) {
            return Err(ApiError::bad_request(format!(
                "metadata.name: Invalid value: {}: the name of the object does not match the name on the URL ({})",
                body["metadata"]["name"],
                t.name()
            )));
        }
        if !body["metadata"]["managedFields"].is_null() {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        if t.sub.as_deref() == Some("scale") {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "apply is not supported on the scale subresource",
            ));
        }
        let existing = self.store.get(&t.info.key(), t.ns(), t.name()).cloned();
        if existing.is_none() {
            if t.sub.is_some() {
                return Err(ApiError::not_found(&t.info.qualified(), t.name()));
            }
            self.ensure_namespace(t)?;
        }
        let mut applied = body.clone();
        if let Some(m) = applied.as_object_mut() {
            if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
                meta.remove("uid");
            }
            match t.sub.as_deref() {
                Some("status") => {
                    m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
                }
                _ if t.info.has_status => {
                    m.remove("status");
                }
                _ => {}
            }
        }
        self.prune(&t.info, &mut applied)?;
        defaults::apply_defaults(&t.info, &mut applied);
        let now = meta::now_rfc3339();
        let merged = apply::apply(ApplyRequest {
            info: &t.info,
            live: existing.as_deref(),
            applied: &applied,
            manager: &o.manager,
            force: o.force,
            subresource: t.sub.as_deref(),
            now: &now,
        })
        .map_err(|conflicts| {
            let mut e = ApiError::new(409, "Conflict", apply::conflict_message(&conflicts));
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version), "field": c.path}))
                .collect();
            e.set_details(json!({"causes": causes}));
            e
        })?;
        self.commit(t, existing, merged, Managed::Applied, o.dry_run)
    }

    /// Drops fields the kind does not declare: named in warnings, or refusing the request under
    /// `fieldValidation=Strict`, as kube-apiserver's decoder does.
    fn prune(&mut self, info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
        let unknown = prune::prune(info, obj);
        if unknown.is_empty() {
            return Ok(());
        }
        let named: Vec<String> = unknown.iter().map(|p| format!("unknown field {p:?}")).collect();
        match self.request.field_validation {
            FieldValidation::Ignore => Ok(()),
            FieldValidation::Warn => {
                self.request.warnings.extend(named);
                Ok(())
            }
            FieldValidation::Strict => Err(ApiError::bad_request(format!(
                "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                named.join(", "),
                kind = info.kind,
                version = info.version,
            ))),
        }
    }

    /// Final step of every write: server-owned metadata, defaults, validation, ownership, storage, hooks.
    pub(super) fn commit(
        &mut self,
        t: &Target,
        old: Option<Arc<Value>>,
        mut new: Value,
        managed: Managed<'_>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let info = t.info.clone();
        let now = meta::now_rfc3339();
        if !new.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        new["apiVersion"] = json!(info.api_version());
        new["kind"] = json!(info.kind);

        // Subresources: /status writes only status; the main resource never writes status.
        if let Some(old) = &old {
            if t.sub.as_deref() == Some("status") {
                let status = new.get("status").cloned();
                let mut base = (**old).clone();
                base["apiVersion"] = json!(info.api_version());
                if let Some(mf) = new["metadata"].get("managedFields") {
                    base["metadata"]["managedFields"] = mf.clone();
                }
                match status {
                    Some(s) => base["status"] = s,
                    None => {
                        if let Some(m) = base.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                new = base;
            } else if info.has_status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
        } else if info.has_status {
            if let Some(m) = new.as_object_mut() {
                m.remove("status");
            }
        }

        {
            let m = new["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
            m.insert("name".into(), json!(t.name()));
            if info.namespaced {
                m.insert("namespace".into(), json!(t.ns()));
            } else {
                m.remove("namespace");
            }
            m.remove("selfLink");
            match &old {
                Some(o) => {
                    for f in [
                        "uid",
                        "creationTimestamp",
                        "deletionTimestamp",
                        "deletionGracePeriodSeconds",
                        "generateName",
                    ] {
                        match o["metadata"].get(f) {
                            Some(v) => m.insert(f.into(), v.clone()),
                            None => m.remove(f),
                        };
                    }
                }
                None => {
                    m.insert("uid".into(), json!(meta::new_uid()));
                    m.insert("creationTimestamp".into(), json!(now));
                    m.remove("deletionTimestamp");
                    m.remove("deletionGracePeriodSeconds");
                }
            }
        }
        self.prune(&info, &mut new)?;
        prune::drop_empty(&info, &mut new);
        defaults::apply_defaults(&info, &mut new);
        defaults::object_defaults(&info, &mut new);
        defaults::server_fields(&info, old.as_deref(), &mut new, &mut self.cluster_ips);
        if old.is_none() {
            self.admit_create(&info, &mut new)?;
        }
        let generation = match &old {
            Some(o) => {
                let g = o["metadata"]["generation"].as_i64().unwrap_or(1);
                if meta::spec_changed(o, &new) { g + 1 } else { g }
            }
            None => 1,
        };
        if tracks_generation(&info) {
            new["metadata"]["generation"] = json!(generation);
        } else if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("generation");
        }

        let mut causes = Vec::new();
        if let Err(msg) = meta::validate_name(&info, t.name()) {
            causes.push(("metadata.name".to_string(), msg));
        }
        causes.extend(meta::validate_meta(&new));
        causes.extend(meta::validate_spec(&info, &new));
        if info.builtin {
            causes.extend(controllers::validate(&info.group, &info.plural, &new));
        }
        if t.sub.is_none() {
            causes.extend(meta::validate_immutable(&info, old.as_deref(), &new));
        }
        if info.group == "apiextensions.k8s.io" {
            causes.extend(crd::validate_crd(&new, t.name()));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.kind, &info.group, t.name(), causes));
        }
        // A server-side apply that makes a new object is a create too: kube-apiserver asks the authorizer
        // for `create` once the object has been validated, before admission and storage (dry runs included).
        if old.is_none() && matches!(managed, Managed::Applied) {
            if let (Some(user), Some(attrs)) = (&self.request.user, &self.request.create_attributes) {
                let (allowed, reason) = auth::authorize(&self.store, user, attrs);
                if !allowed {
                    return Err(auth::forbidden_on_create(attrs, &reason));
                }
                self.request.authorized.push(attrs.verb.clone());
            }
        }

        match managed {
            Managed::Update(manager) => {
                apply::record_update(&info, old.as_deref(), &mut new, manager, t.sub.as_deref(), &now)
            }
            Managed::Applied => {}
        }
        if info.group == "apiextensions.k8s.io" {
            let established = self.crds_established.contains(t.name());
            crd::set_crd_status(old.as_deref(), &mut new, &now, established);
        }

        if info.group == auth::rbac::GROUP && t.sub.is_none() {
            if let Some(user) = &self.request.user {
                auth::check_grant(&self.store, user, &info.plural, t.ns(), t.name(), &new)?;
            }
        }

        // As on a real server, validation answers before storage does.
        if old.is_none() && self.store.get(&info.key(), t.ns(), t.name()).is_some() {
            return Err(ApiError::already_exists(&info.qualified(), t.name()));
        }
        if let Some(o) = &old {
            if same_but_times(o, &new) {
                return Ok(self.as_version(t, o));
            }
        }
        if dry_run {
            if let Some(o) = &old {
                new["metadata"]["resourceVersion"] = o["metadata"]["resourceVersion"].clone();
            }
            return Ok(new);
        }
        let finalizers_empty = new["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
        // The last finalizer gone ends a deletion, unless a graceful one (a Pod's) is still running.
        let graceful = new["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0)
            > 0;
        if !new["metadata"]["deletionTimestamp"].is_null()
            && finalizers_empty
            && !graceful
            && info.plural != "namespaces"
        {
            let key = info.key();
            let last = self
                .store
                .remove(&key, t.ns(), t.name())
                .map(|v| (*v).clone())
                .unwrap_or(new);
            self.after_delete(&info, &last);
            return Ok(last);
        }
        let stored = self.store.put(&info.key(), t.ns(), t.name(), new);
        self.after_write(&info, t, old.as_deref(), &stored);
        Ok(self.as_version(t, &stored))
    }

    fn after_write(&mut self, info: &ResourceInfo, t: &Target, old: Option<&Value>, stored: &Value) {
        if info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions" {
            if self.crds_established.contains(t.name()) {
                self.register_crd(stored);
            } else {
                self.crds_installing
                    .entry(t.name().to_string())
                    .or_insert_with(|| std::time::Instant::now() + crd::ESTABLISH_AFTER);
            }
        }
        if info.group.is_empty() && info.plural == "namespaces" && old.is_none() {
            let sa = self.info("", "serviceaccounts");
            let t = Target {
                info: sa,
                namespace: Some(t.name().to_string()),
                name: Some("default".into()),
                sub: None,
            };
            let body = json!({"metadata": {"name": "default"}});
            let _ = self.commit(&t, None, body, Managed::Update("kube-controller-manager"), false);
            self.publish_root_ca(t.ns());
        }
    }
}

/// Resources whose strategy maintains metadata.generation on a real server.
fn tracks_generation(info: &ResourceInfo) -> bool {
    !info.builtin
        || matches!(
            (info.group.as_str(), info.plural.as_str()),
            ("apps", _)
                | ("batch", _)
                | ("policy", _)
                | ("networking.k8s.io", _)
                | ("apiextensions.k8s.io", _)
                | ("", "pods")
        )
}
