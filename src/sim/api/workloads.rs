//! The glue between the store and the simulated control plane (`controllers`): rounds of every controller,
//! their writes performed through the same commit path API writes take; the admission kube-apiserver
//! applies on create to Pods (ServiceAccount, token volume, default tolerations, QoS class), Jobs
//! (generated selector) and claims (default StorageClass, protection finalizers); Events recorded as the
//! components record them (repeats raise the count); and Pod logs.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::super::controllers::pod::LogRefusal;
use super::super::controllers::storage::{self, PV_PROTECTION, PVC_PROTECTION};
use super::super::controllers::{self, Action, Event, STORAGECLASSES, View, podspec};
use super::super::meta;
use super::super::request::{DeleteOpts, Target};
use super::super::resources::{ResKey, ResourceInfo};
use super::super::status::ApiError;
use super::State;
use super::write::Managed;

const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);
const TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Events already recorded, by what makes them the same Event, so repeats raise the count.
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    names: HashMap<String, (String, String)>,
    seq: u64,
}

impl State {
    /// One round of every controller over the store as it is; `true` when it wrote something, so that
    /// another round should follow (a Deployment's ReplicaSet, then its Pods, then their binding...).
    pub fn run_round(&mut self) -> bool {
        let now = Instant::now();
        self.establish_crds(now);
        // Nothing written since the last settled round and nothing due: the control plane rests (at most a
        // second, for what is timed in whole seconds: Job deadlines, Event expiry).
        let quiet = self.store.current_rv() == self.ticked.0;
        if quiet && now < self.ticked.1 + HEARTBEAT && self.memory.wake().is_none_or(|w| now < w) {
            return false;
        }
        let wall = meta::now_rfc3339();
        let actions = {
            let view = View::new(&self.store, now, wall.clone());
            controllers::round(&view, &mut self.memory, &self.behaviour)
        };
        let before = self.store.current_rv();
        for a in actions {
            self.perform(a, now, &wall);
        }
        let settled = self.store.current_rv() == before;
        if settled {
            self.ticked = (before, now);
        }
        !settled
    }

    /// When the control plane should look again without being told of a change.
    pub fn next_wake(&self) -> Instant {
        let heartbeat = self.ticked.1 + HEARTBEAT;
        let wake = self.memory.wake().map_or(heartbeat, |w| w.min(heartbeat));
        self.next_establishing().map_or(wake, |at| at.min(wake))
    }

    fn target_for(&self, key: &ResKey, ns: &str, name: &str, sub: Option<&str>) -> Option<Target> {
        let info = self.registry.all().find(|r| r.key() == *key)?.clone();
        Some(Target {
            namespace: info.namespaced.then(|| ns.to_string()),
            name: Some(name.to_string()),
            sub: sub.map(String::from),
            info,
        })
    }

    fn perform(&mut self, action: Action, now: Instant, wall: &str) {
        match action {
            Action::Create {
                res,
                object,
                manager,
                announce,
            } => {
                let ns = controllers::namespace(&object).to_string();
                let name = controllers::name(&object).to_string();
                let Some(t) = self.target_for(&res.key(), &ns, &name, None) else {
                    return;
                };
                let result = self
                    .ensure_namespace(&t)
                    .and_then(|()| self.commit(&t, None, object, Managed::Update(manager), false));
                match (result, announce) {
                    (Ok(_), Some(a)) => {
                        self.memory.create_succeeded(&a.owner.uid);
                        self.record_event(&Event::normal(a.owner, a.component, a.ok.0, a.ok.1), wall);
                    }
                    (Err(e), Some(a)) => {
                        tracing::debug!(object = %name, error = %e.message, "simulated controller: create refused");
                        self.memory.create_refused(&a.owner.uid, now, e.message.clone());
                        let message = format!("{}{}", a.failed.1, e.message);
                        self.record_event(&Event::warning(a.owner, a.component, a.failed.0, message), wall);
                    }
                    (Ok(_), None) => {}
                    (Err(e), None) => {
                        tracing::debug!(object = %name, error = %e.message, "simulated controller: create refused")
                    }
                }
            }
            Action::Update { res, object, manager } => {
                let ns = controllers::namespace(&object).to_string();
                let name = controllers::name(&object).to_string();
                let Some(t) = self.target_for(&res, &ns, &name, None) else {
                    return;
                };
                let Some(old) = self.store.get(&res, t.ns(), &name).cloned() else {
                    return;
                };
                // Optimistic concurrency, as controllers have it: a write based on a stale read is dropped
                // and redone from fresh state in the next round.
                if old["metadata"]["resourceVersion"] != object["metadata"]["resourceVersion"] {
                    return;
                }
                if let Err(e) = self.commit(&t, Some(old), object, Managed::Update(manager), false) {
                    tracing::debug!(object = %name, error = %e.message, "simulated controller: update refused");
                }
            }
            Action::Status {
                res,
                namespace,
                name,
                uid,
                status,
                manager,
            } => {
                let Some(t) = self.target_for(&res.key(), &namespace, &name, Some("status")) else {
                    return;
                };
                let Some(old) = self.store.get(&res.key(), t.ns(), &name).cloned() else {
                    return;
                };
                if controllers::uid(&old) != uid || old["status"] == status {
                    return;
                }
                let mut new = (*old).clone();
                new["status"] = status;
                if let Err(e) = self.commit(&t, Some(old), new, Managed::Update(manager), false) {
                    tracing::debug!(object = %name, error = %e.message, "simulated controller: status refused");
                }
            }
            Action::Delete {
                res,
                namespace,
                name,
                uid,
                grace,
                propagation,
                announce,
            } => {
                let Some(t) = self.target_for(&res, &namespace, &name, None) else {
                    return;
                };
                let opts = DeleteOpts {
                    propagation: propagation.map(String::from),
                    precondition_uid: Some(uid),
                    grace_period: grace,
                    ..DeleteOpts::default()
                };
                match (self.delete(&t, &opts), announce) {
                    (Ok(_), Some(a)) => {
                        self.record_event(&Event::normal(a.owner, a.component, a.ok.0, a.ok.1), wall)
                    }
                    (Err(e), Some(a)) => {
                        let message = format!("{}{}", a.failed.1, e.message);
                        self.record_event(&Event::warning(a.owner, a.component, a.failed.0, message), wall);
                    }
                    _ => {}
                }
            }
            Action::Event(e) => self.record_event(&e, wall),
        }
    }

    /// Records an Event as client-go's recorder does: a repeat of the same Event raises its count.
    pub(super) fn record_event(&mut self, e: &Event, wall: &str) {
        let ns = if e.involved.namespace.is_empty() {
            "default".to_string()
        } else {
            e.involved.namespace.clone()
        };
        let host = e.host.clone().unwrap_or_default();
        let key = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            e.involved.uid,
            e.involved.field_path.as_deref().unwrap_or(""),
            e.reason,
            e.message,
            e.component,
            host
        );
        let info = self.info("", "events");
        if let Some((ens, ename)) = self.events.names.get(&key).cloned() {
            if let Some(old) = self.store.get(&info.key(), &ens, &ename).cloned() {
                let mut new = (*old).clone();
                new["count"] = json!(old["count"].as_i64().unwrap_or(1) + 1);
                new["lastTimestamp"] = json!(wall);
                let t = Target {
                    info,
                    namespace: Some(ens),
                    name: Some(ename),
                    sub: None,
                };
                let _ = self.commit(&t, Some(old), new, Managed::Update(e.component), false);
                return;
            }
        }
        if self.events.names.len() > 50_000 {
            self.events.names.clear();
        }
        self.events.seq += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("{}.{:x}", e.involved.name, nanos + u128::from(self.events.seq));
        let mut involved = json!({"kind": e.involved.kind, "namespace": e.involved.namespace, "name": e.involved.name,
            "uid": e.involved.uid, "apiVersion": e.involved.api_version, "resourceVersion": e.involved.resource_version});
        if e.involved.namespace.is_empty() {
            if let Some(m) = involved.as_object_mut() {
                m.remove("namespace");
            }
        }
        if let Some(f) = &e.involved.field_path {
            involved["fieldPath"] = json!(f);
        }
        let mut source = json!({"component": e.component});
        if !host.is_empty() {
            source["host"] = json!(host);
        }
        let body = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved, "reason": e.reason, "message": e.message, "source": source,
            "firstTimestamp": wall, "lastTimestamp": wall, "count": 1,
            "type": if e.warning { "Warning" } else { "Normal" }, "eventTime": null,
            "reportingComponent": e.component, "reportingInstance": host});
        let t = Target {
            info,
            namespace: Some(ns.clone()),
            name: Some(name.clone()),
            sub: None,
        };
        if self.ensure_namespace(&t).is_err() {
            return;
        }
        if self
            .commit(&t, None, body, Managed::Update(e.component), false)
            .is_ok()
        {
            self.events.names.insert(key, (ns, name));
        }
    }

    /// What kube-apiserver's admission does to a new object of the kinds the controllers run.
    pub(super) fn admit_create(&self, info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
        if !info.builtin {
            return Ok(());
        }
        // Admission walks the object: its shape is checked first (validation repeats it, as the real
        // server's decoding would have refused it before admission).
        let causes = controllers::validate(&info.group, &info.plural, obj);
        if !causes.is_empty() {
            let name = controllers::name(obj).to_string();
            return Err(ApiError::invalid(&info.kind, &info.group, &name, causes));
        }
        match (info.group.as_str(), info.plural.as_str()) {
            ("", "pods") => self.admit_pod(obj),
            ("batch", "jobs") => {
                admit_job(obj);
                Ok(())
            }
            ("", "persistentvolumeclaims") => {
                if obj["spec"].get("storageClassName").is_none_or(Value::is_null)
                    && obj["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"].is_null()
                {
                    let sc = STORAGECLASSES.key();
                    if let Some(class) =
                        storage::default_class(self.store.list(&sc, None).map(|v| v.as_ref()))
                    {
                        obj["spec"]["storageClassName"] = json!(class);
                    }
                }
                add_finalizer(obj, PVC_PROTECTION);
                Ok(())
            }
            ("", "persistentvolumes") => {
                add_finalizer(obj, PV_PROTECTION);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn admit_pod(&self, obj: &mut Value) -> Result<(), ApiError> {
        let ns = controllers::namespace(obj).to_string();
        let name = controllers::name(obj).to_string();
        let spec = &mut obj["spec"];
        if !spec.is_object() {
            return Ok(());
        }
        let sa = spec["serviceAccountName"]
            .as_str()
            .or_else(|| spec["serviceAccount"].as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        spec["serviceAccountName"] = json!(sa);
        spec["serviceAccount"] = json!(sa);
        let sa_key = ResKey {
            group: String::new(),
            plural: "serviceaccounts".into(),
        };
        let Some(account) = self.store.get(&sa_key, &ns, &sa) else {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "pods \"{name}\" is forbidden: error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
                ),
            ));
        };
        let automount = spec["automountServiceAccountToken"]
            .as_bool()
            .or_else(|| account["automountServiceAccountToken"].as_bool())
            .unwrap_or(true);
        let mounted = podspec::containers(spec).any(|(_, c)| {
            c["volumeMounts"]
                .as_array()
                .is_some_and(|l| l.iter().any(|m| m["mountPath"] == TOKEN_PATH))
        });
        if automount && !mounted {
            let volume = format!("kube-api-access-{}", meta::name_suffix());
            let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
            let mut volumes = volumes;
            volumes.push(json!({"name": volume, "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}));
            spec["volumes"] = json!(volumes);
            for list in ["initContainers", "containers"] {
                if let Some(cs) = spec[list].as_array_mut() {
                    for c in cs {
                        let mut mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
                        mounts.push(json!({"name": volume, "mountPath": TOKEN_PATH, "readOnly": true}));
                        c["volumeMounts"] = json!(mounts);
                    }
                }
            }
        }
        let mut tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
        for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
            let covered = tolerations
                .iter()
                .any(|t| t["key"] == key && (t["effect"] == "NoExecute" || t["effect"].is_null()));
            if !covered {
                tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
        spec["tolerations"] = json!(tolerations);
        let qos = podspec::qos_class(spec);
        obj["status"]["qosClass"] = json!(qos);
        Ok(())
    }

    /// `kubectl logs`: what the kubelet would answer for the container.
    pub fn pod_log(&self, t: &Target, container: Option<&str>, previous: bool) -> Result<String, ApiError> {
        let pod = self.lookup(t)?;
        let names = |list: &str| -> Vec<String> {
            pod["spec"][list]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|c| c["name"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let containers = names("containers");
        let inits = names("initContainers");
        let container = match container.filter(|c| !c.is_empty()) {
            Some(c) => c.to_string(),
            None if containers.len() == 1 => containers[0].clone(),
            None => {
                let mut message = format!(
                    "a container name must be specified for pod {}, choose one of: [{}]",
                    t.name(),
                    containers.join(" ")
                );
                if !inits.is_empty() {
                    message.push_str(&format!(" or one of the init containers: [{}]", inits.join(" ")));
                }
                return Err(ApiError::bad_request(message));
            }
        };
        if !containers.contains(&container) && !inits.contains(&container) {
            return Err(ApiError::bad_request(format!(
                "container {container} is not valid for pod {}",
                t.name()
            )));
        }
        self.memory
            .kubelet
            .log(&pod, &container, previous)
            .map_err(|r| match r {
                LogRefusal::Waiting(m) | LogRefusal::NoPrevious(m) | LogRefusal::NoContainer(m) => {
                    ApiError::bad_request(m)
                }
            })
    }
}

impl State {
    /// The `kube-root-ca.crt` ConfigMap the root CA publisher puts in every namespace (Pods' token volumes
    /// read it). The simulator serves plain HTTP; the bundle is a placeholder that says so.
    pub(super) fn publish_root_ca(&mut self, namespace: &str) {
        let info = self.info("", "configmaps");
        let t = Target {
            info,
            namespace: Some(namespace.to_string()),
            name: Some("kube-root-ca.crt".into()),
            sub: None,
        };
        let body = json!({"metadata": {"name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description":
            "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
            "data": {"ca.crt": SIMULATED_CA}});
        let _ = self.commit(&t, None, body, Managed::Update("kube-controller-manager"), false);
    }
}

/// Not a certificate anyone can verify against: the simulated API server speaks plain HTTP.
const SIMULATED_CA: &str = "-----BEGIN CERTIFICATE-----\nc2ltdWxhdGVkIGNsdXN0ZXI6IHBsYWluIEhUVFAsIG5vIGNlcnRpZmljYXRlIGF1dGhvcml0eQ==\n-----END CERTIFICATE-----\n";

fn add_finalizer(obj: &mut Value, f: &str) {
    let mut list = obj["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !list.iter().any(|x| x == f) {
        list.push(json!(f));
    }
    obj["metadata"]["finalizers"] = json!(list);
}

/// A Job's selector is generated from its uid, and its Pod template labelled to match (unless
/// `manualSelector`).
fn admit_job(obj: &mut Value) {
    if obj["spec"]["manualSelector"] == true || !obj["spec"].is_object() {
        return;
    }
    let uid = controllers::uid(obj).to_string();
    let name = controllers::name(obj).to_string();
    obj["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    let labels = &mut obj["spec"]["template"]["metadata"]["labels"];
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels[k] = json!(v);
    }
}
