//! The API's semantics over the store: get, list, create, update, patch, apply, delete, deletecollection,
//! subresources, namespaces, CRDs, garbage collection. No HTTP here: requests arrive parsed.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::apply::{self, ApplyRequest};
use super::controllers::{self, Behaviour, Tracked};
use super::meta;
use super::patch;
use super::resources::{Registry, ResKey, ResourceInfo};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, success_status};
use super::store::Store;

/// The resource, scope and object a request addresses.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub info: ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

impl Target {
    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct WriteOpts {
    pub dry_run: bool,
    pub manager: String,
    pub force: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub cont: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PatchKind {
    Merge,
    Strategic,
    Json,
    Apply,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOpts {
    pub dry_run: bool,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

type ObjKey = (ResKey, String, String);

pub(crate) struct State {
    pub registry: Registry,
    pub store: Store,
    pub tracked: HashMap<ObjKey, Tracked>,
    pub behaviour: Behaviour,
    next_cluster_ip: u32,
}

enum Managed<'a> {
    Update(&'a str),
    Applied,
    Controller,
}

fn strip_times(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(list) = v
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        for e in list {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
    }
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

impl State {
    pub fn new(behaviour: Behaviour, history: usize) -> Self {
        let mut s = State {
            registry: Registry::with_builtins(),
            store: Store::new(history),
            tracked: HashMap::new(),
            behaviour,
            next_cluster_ip: 1,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let info = s.info("", "namespaces");
            let t = Target {
                info,
                namespace: None,
                name: Some(ns.into()),
                sub: None,
            };
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let _ = s.commit(&t, None, body, Managed::Update("kube-apiserver"), false);
        }
        let info = s.info("", "services");
        let t = Target {
            info,
            namespace: Some("default".into()),
            name: Some("kubernetes".into()),
            sub: None,
        };
        let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 6443}]}});
        let _ = s.commit(&t, None, body, Managed::Update("kube-apiserver"), false);
        s
    }

    fn info(&self, group: &str, plural: &str) -> ResourceInfo {
        self.registry
            .all()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
            .unwrap_or_else(|| panic!("built-in resource {plural} missing from the registry"))
    }

    fn lookup(&self, t: &Target) -> Result<Arc<Value>, ApiError> {
        self.store
            .get(&t.info.key(), t.ns(), t.name())
            .cloned()
            .ok_or_else(|| ApiError::not_found(&t.info.qualified(), t.name()))
    }

    /// Re-labels a stored object with the apiVersion the request used (all versions share storage).
    fn as_version(&self, t: &Target, obj: &Value) -> Value {
        let mut v = obj.clone();
        v["apiVersion"] = json!(t.info.api_version());
        v
    }

    pub fn get(&self, t: &Target) -> Result<Value, ApiError> {
        let obj = self.lookup(t)?;
        match t.sub.as_deref() {
            None | Some("status") => Ok(self.as_version(t, &obj)),
            Some("scale") if t.info.has_scale => Ok(scale_of(&obj)),
            Some(_) => Err(ApiError::path_not_found()),
        }
    }

    pub fn list(&self, t: &Target, q: &ListQuery) -> Result<Value, ApiError> {
        let key = t.info.key();
        let ns = t.namespace.as_deref();
        let iter = match &q.cont {
            Some(c) => {
                let (cns, cname) = decode_continue(c)?;
                self.store.list_after(&key, ns, (cns, cname))
            }
            None => self.store.list(&key, ns),
        };
        let mut items = Vec::new();
        let mut more = false;
        let mut remaining = 0usize;
        let mut last_key = None;
        for obj in iter {
            if !q.labels.matches(obj["metadata"]["labels"].as_object()) || !q.fields.matches(obj) {
                continue;
            }
            if let Some(limit) = q.limit {
                if items.len() >= limit {
                    more = true;
                    remaining += 1;
                    continue;
                }
            }
            last_key = Some((
                obj["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
                obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
            ));
            let mut item = (**obj).clone();
            if t.info.builtin {
                if let Some(m) = item.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
            } else {
                item["apiVersion"] = json!(t.info.api_version());
            }
            items.push(item);
        }
        let mut meta = json!({"resourceVersion": self.store.current_rv().to_string()});
        if more {
            if let Some((ns, name)) = last_key {
                meta["continue"] = json!(encode_continue(&ns, &name));
                meta["remainingItemCount"] = json!(remaining);
            }
        }
        Ok(json!({
            "kind": format!("{}List", t.info.kind),
            "apiVersion": t.info.api_version(),
            "metadata": meta,
            "items": items,
        }))
    }

    fn ensure_namespace(&self, t: &Target) -> Result<(), ApiError> {
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
    fn check_body(&self, t: &Target, body: &Value) -> Result<(), ApiError> {
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
        if serde_json::to_vec(&new).map_or(true, |b| b.len() > super::http::MAX_BODY) {
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
        meta::apply_defaults(&t.info, &mut applied);
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

    /// Final step of every write: server-owned metadata, defaults, validation, ownership, storage, hooks.
    fn commit(
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
            } else if info.has_status && !matches!(managed, Managed::Controller) {
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
        meta::apply_defaults(&info, &mut new);
        self.server_defaults(&info, old.as_deref(), &mut new);
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
        if t.sub.is_none() {
            causes.extend(meta::validate_immutable(&info, old.as_deref(), &new));
        }
        if info.group == "apiextensions.k8s.io" {
            causes.extend(validate_crd(&new, t.name()));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.kind, &info.group, t.name(), causes));
        }

        match managed {
            Managed::Update(manager) => {
                apply::record_update(&info, old.as_deref(), &mut new, manager, t.sub.as_deref(), &now)
            }
            Managed::Controller => apply::record_update(
                &info,
                old.as_deref(),
                &mut new,
                "kube-controller-manager",
                Some("status"),
                &now,
            ),
            Managed::Applied => {}
        }
        if info.group == "apiextensions.k8s.io" {
            set_crd_status(old.as_deref(), &mut new, &now);
        }

        // As on a real server, validation answers before storage does.
        if old.is_none() && self.store.get(&info.key(), t.ns(), t.name()).is_some() {
            return Err(ApiError::already_exists(&info.qualified(), t.name()));
        }
        if let Some(o) = &old {
            if strip_times(o) == strip_times(&new) {
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
        if !new["metadata"]["deletionTimestamp"].is_null() && finalizers_empty && info.plural != "namespaces"
        {
            let key = info.key();
            let last = self
                .store
                .remove(&key, t.ns(), t.name())
                .map(|v| (*v).clone())
                .unwrap_or(new);
            self.after_delete(&info, t.ns(), t.name(), &last, true);
            return Ok(last);
        }
        let stored = self.store.put(&info.key(), t.ns(), t.name(), new);
        self.after_write(&info, t, old.as_deref(), &stored);
        Ok(self.as_version(t, &stored))
    }

    /// Fields a real server fills from its own state (addresses) or keeps from the old object.
    fn server_defaults(&mut self, info: &ResourceInfo, old: Option<&Value>, new: &mut Value) {
        if !info.builtin {
            return;
        }
        match info.plural.as_str() {
            "services" => {
                if !new["spec"].is_object() {
                    new["spec"] = json!({});
                }
                let spec = &mut new["spec"];
                if spec["type"].is_null() {
                    spec["type"] = json!("ClusterIP");
                }
                if spec["sessionAffinity"].is_null() {
                    spec["sessionAffinity"] = json!("None");
                }
                if spec["type"] != "ExternalName" {
                    let old_ip = old.map(|o| o["spec"]["clusterIP"].clone()).unwrap_or(Value::Null);
                    if spec["clusterIP"].is_null() || spec["clusterIP"] == "" {
                        spec["clusterIP"] = if old_ip.is_string() {
                            old_ip
                        } else {
                            let n = self.next_cluster_ip;
                            self.next_cluster_ip += 1;
                            json!(format!("10.96.{}.{}", n / 254, n % 254 + 1))
                        };
                    }
                    spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
                    spec["ipFamilies"] = json!(["IPv4"]);
                    if spec["ipFamilyPolicy"].is_null() {
                        spec["ipFamilyPolicy"] = json!("SingleStack");
                    }
                    if spec["internalTrafficPolicy"].is_null() {
                        spec["internalTrafficPolicy"] = json!("Cluster");
                    }
                }
                if let Some(ports) = spec["ports"].as_array_mut() {
                    for p in ports {
                        if p["targetPort"].is_null() && !p["port"].is_null() {
                            p["targetPort"] = p["port"].clone();
                        }
                    }
                }
                if new["status"].is_null() {
                    new["status"] = json!({"loadBalancer": {}});
                }
            }
            "namespaces" if new["status"].is_null() => new["status"] = json!({"phase": "Active"}),
            "pods" if new["status"].is_null() => {
                new["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"})
            }
            "persistentvolumeclaims" if new["status"].is_null() || new["status"]["phase"].is_null() => {
                let storage = new["spec"]["resources"]["requests"]["storage"].clone();
                new["status"] = json!({"phase": "Bound", "accessModes": new["spec"]["accessModes"].clone(),
                    "capacity": {"storage": storage}});
            }
            _ => {}
        }
    }

    fn after_write(&mut self, info: &ResourceInfo, t: &Target, old: Option<&Value>, stored: &Value) {
        let key: ObjKey = (info.key(), t.ns().to_string(), t.name().to_string());
        if controllers::is_workload(&info.group, &info.plural) {
            let generation = stored["metadata"]["generation"].as_i64().unwrap_or(1);
            let changed = old.is_none_or(|o| o["metadata"]["generation"].as_i64() != Some(generation));
            if changed {
                let prev_ready = old
                    .map(|o| controllers::current_ready(&info.plural, o))
                    .unwrap_or(0);
                let prev_revision =
                    old.and_then(|o| o["status"]["updateRevision"].as_str().map(String::from));
                self.tracked.insert(
                    key,
                    Tracked {
                        generation,
                        since: std::time::Instant::now(),
                        since_wall: controllers::start_wall(),
                        prev_ready,
                        prev_revision,
                    },
                );
            }
        }
        if info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions" {
            self.register_crd(stored);
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
        }
    }

    fn register_crd(&mut self, crd: &Value) {
        let spec = &crd["spec"];
        let group = spec["group"].as_str().unwrap_or("").to_string();
        let names = &spec["names"];
        let plural = names["plural"].as_str().unwrap_or("").to_string();
        self.registry.remove_resource(&group, &plural);
        for v in spec["versions"].as_array().cloned().unwrap_or_default() {
            if v["served"] == json!(false) {
                continue;
            }
            let mut list_keys = std::collections::BTreeMap::new();
            let mut list_sets = Vec::new();
            collect_list_types(
                &v["schema"]["openAPIV3Schema"],
                &mut Vec::new(),
                &mut list_keys,
                &mut list_sets,
            );
            self.registry.insert(ResourceInfo {
                group: group.clone(),
                version: v["name"].as_str().unwrap_or("").to_string(),
                kind: names["kind"].as_str().unwrap_or("").to_string(),
                plural: plural.clone(),
                singular: names["singular"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| names["kind"].as_str().unwrap_or("").to_lowercase()),
                namespaced: spec["scope"] == "Namespaced",
                short_names: names["shortNames"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                    .unwrap_or_default(),
                categories: names["categories"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                    .unwrap_or_default(),
                has_status: !v["subresources"]["status"].is_null(),
                has_scale: false,
                builtin: false,
                list_keys,
                list_sets,
            });
        }
    }

    /// Called after an object left the store: tracked workloads, CRD kinds, dependents.
    fn after_delete(&mut self, info: &ResourceInfo, ns: &str, name: &str, last: &Value, cascade: bool) {
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
            let group = last["spec"]["group"].as_str().unwrap_or("").to_string();
            let plural = last["spec"]["names"]["plural"].as_str().unwrap_or("").to_string();
            self.registry.remove_resource(&group, &plural);
            let key = ResKey { group, plural };
            let names: Vec<(String, String)> = self
                .store
                .list(&key, None)
                .map(|o| {
                    (
                        o["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
                        o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            for (n, nm) in names {
                self.store.remove(&key, &n, &nm);
            }
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

    /// One pass of the workload controllers: writes status where the simulation moved on.
    pub fn run_controllers(&mut self) {
        if self.tracked.is_empty() {
            return;
        }
        let now = meta::now_rfc3339();
        let keys: Vec<ObjKey> = self.tracked.keys().cloned().collect();
        for key in keys {
            let Some(tr) = self.tracked.get(&key).cloned() else {
                continue;
            };
            let (rk, ns, name) = &key;
            let Some(obj) = self.store.get(rk, ns, name).cloned() else {
                self.tracked.remove(&key);
                continue;
            };
            let Some(out) =
                controllers::simulate(&rk.plural, &obj, &tr, tr.since.elapsed(), &self.behaviour, &now)
            else {
                continue;
            };
            if out.done {
                self.tracked.remove(&key);
            }
            if strip_cond_times(&obj["status"]) == strip_cond_times(&out.status) {
                continue;
            }
            let Some(info) = self.registry.all().find(|r| r.key() == *rk).cloned() else {
                continue;
            };
            let t = Target {
                info,
                namespace: Some(ns.clone()),
                name: Some(name.clone()),
                sub: Some("status".into()),
            };
            let mut new = (*obj).clone();
            new["status"] = out.status;
            let _ = self.commit(&t, Some(obj), new, Managed::Controller, false);
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

fn strip_cond_times(s: &Value) -> Value {
    let mut s = s.clone();
    if let Some(conds) = s.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            if let Some(m) = c.as_object_mut() {
                m.remove("lastUpdateTime");
                m.remove("lastTransitionTime");
            }
        }
    }
    if let Some(m) = s.as_object_mut() {
        m.remove("completionTime");
    }
    s
}

fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

fn encode_continue(ns: &str, name: &str) -> String {
    format!("{ns}\u{0}{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    if !token.is_ascii() || token.len() % 2 != 0 || token.len() > 2048 {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect();
    let s = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let (ns, name) = s.split_once('\u{0}').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

fn validate_crd(obj: &Value, name: &str) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    let kind = spec["names"]["kind"].as_str().unwrap_or("");
    if group.is_empty() || !group.contains('.') {
        errs.push((
            "spec.group".into(),
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    if plural.is_empty() {
        errs.push(("spec.names.plural".into(), "Required value".into()));
    }
    if kind.is_empty() {
        errs.push(("spec.names.kind".into(), "Required value".into()));
    }
    if name != format!("{plural}.{group}") {
        errs.push((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        errs.push((
            "spec.scope".into(),
            "Unsupported value: must be Namespaced or Cluster".into(),
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push((
            "spec.versions".into(),
            "Invalid value: must have at least one version".into(),
        ));
    }
    if versions.iter().filter(|v| v["storage"] == json!(true)).count() != 1 {
        errs.push((
            "spec.versions".into(),
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
    errs
}

fn set_crd_status(old: Option<&Value>, new: &mut Value, now: &str) {
    let mut names = new["spec"]["names"].clone();
    if names["singular"].is_null() {
        names["singular"] = json!(names["kind"].as_str().unwrap_or("").to_lowercase());
    }
    if names["listKind"].is_null() {
        names["listKind"] = json!(format!("{}List", names["kind"].as_str().unwrap_or("")));
    }
    let storage: Vec<Value> = new["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"] == json!(true))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let since = old
        .and_then(|o| o["status"]["conditions"].as_array())
        .and_then(|c| c.first())
        .map(|c| c["lastTransitionTime"].clone())
        .unwrap_or(json!(now));
    new["status"] = json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since},
        ],
        "storedVersions": storage,
    });
}

/// Reads `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` from a CRD schema.
fn collect_list_types(
    schema: &Value,
    path: &mut Vec<String>,
    keys: &mut std::collections::BTreeMap<String, Vec<String>>,
    sets: &mut Vec<String>,
) {
    if path.len() > 32 {
        return;
    }
    match schema["x-kubernetes-list-type"].as_str() {
        Some("map") => {
            let k: Vec<String> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                .unwrap_or_default();
            if !k.is_empty() {
                keys.insert(path.join("."), k);
            }
        }
        Some("set") => sets.push(path.join(".")),
        _ => {}
    }
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            path.push(k.clone());
            collect_list_types(v, path, keys, sets);
            path.pop();
        }
    }
    if schema["items"].is_object() {
        collect_list_types(&schema["items"], path, keys, sets);
    }
    let _ = Map::<String, Value>::new();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue("ns", "a.b");
        assert_eq!(
            decode_continue(&t).unwrap(),
            ("ns".to_string(), "a.b".to_string())
        );
        for bad in ["zz", "abc", "41", "", "é1"] {
            assert!(decode_continue(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn crd_list_types_are_read_from_the_schema() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                "items": {"type": "object", "properties": {"tags": {"type": "array", "x-kubernetes-list-type": "set"}}}}}}}});
        let mut keys = Default::default();
        let mut sets = vec![];
        collect_list_types(&schema, &mut vec![], &mut keys, &mut sets);
        assert_eq!(keys.get("spec.items"), Some(&vec!["id".to_string()]));
        assert_eq!(sets, vec!["spec.items.tags".to_string()]);
    }
}
