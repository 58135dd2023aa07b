//! Defaulting: the fields kube-apiserver fills in on write. `apply_defaults` holds what even an applied
//! configuration gets (list keys such as `protocol`, canonical quantities, write-only `stringData`);
//! `object_defaults` is the defaulting of kube-apiserver's `SetDefaults_*` functions for the kinds the
//! simulator serves, applied to every stored object; `server_fields` fills what the server decides from
//! its own state (addresses, the status a new object starts with). docs/simulator.md lists each default.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::meta::visit_quantities;
use super::resources::ResourceInfo;

/// Service cluster IPs, handed out from 10.96.0.0/16 in order.
#[derive(Debug)]
pub struct ClusterIps {
    next: u32,
}

impl Default for ClusterIps {
    fn default() -> Self {
        ClusterIps { next: 1 }
    }
}

impl ClusterIps {
    pub fn allocate(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        format!("10.96.{}.{}", n / 254, n % 254 + 1)
    }
}

/// The defaults a real server fills in for the fields Keelson and kubectl read back.
pub fn apply_defaults(info: &ResourceInfo, obj: &mut Value) {
    if !info.builtin {
        return;
    }
    match (info.group.as_str(), info.plural.as_str()) {
        ("apps", "deployments") | ("apps", "statefulsets") => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert(json!(1));
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
                if info.plural == "deployments" {
                    spec.entry("progressDeadlineSeconds").or_insert(json!(600));
                    spec.entry("strategy").or_insert(json!({
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
                    }));
                } else {
                    spec.entry("podManagementPolicy").or_insert(json!("OrderedReady"));
                    spec.entry("updateStrategy")
                        .or_insert(json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
                }
            }
        }
        ("", "secrets") => {
            if let Some(m) = obj.as_object_mut() {
                m.entry("type").or_insert(json!("Opaque"));
                // stringData is write-only: it is merged into data (base64) and dropped.
                if let Some(Value::Object(sd)) = m.remove("stringData") {
                    let data = m.entry("data").or_insert(json!({}));
                    if let Some(d) = data.as_object_mut() {
                        for (k, v) in sd {
                            if let Some(s) = v.as_str() {
                                d.insert(k, json!(BASE64.encode(s.as_bytes())));
                            }
                        }
                    }
                }
            }
        }
        ("", "namespaces") => {
            if let Some(m) = obj.as_object_mut() {
                m.entry("spec").or_insert(json!({"finalizers": ["kubernetes"]}));
            }
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                let name = meta.get("name").cloned().unwrap_or(Value::Null);
                let labels = meta.entry("labels").or_insert(json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), name);
                }
            }
        }
        _ => {}
    }
    default_ports(obj);
    canonicalize_quantities(obj);
}

/// kube-apiserver's defaults for the stored object (`pkg/apis/core/v1/defaults.go`, `apps/v1`, `batch/v1`).
pub fn object_defaults(info: &ResourceInfo, obj: &mut Value) {
    if !info.builtin {
        return;
    }
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "pods") => {
            pod_spec(spec);
            if spec.get("enableServiceLinks").is_none_or(Value::is_null) {
                spec["enableServiceLinks"] = json!(true);
            }
        }
        ("apps", "deployments" | "statefulsets" | "daemonsets" | "replicasets") => {
            if let Some(t) = spec.pointer_mut("/template/spec").filter(|s| s.is_object()) {
                pod_spec(t);
            }
            set(spec, "revisionHistoryLimit", json!(10));
            match info.plural.as_str() {
                "daemonsets" => {
                    set(spec, "updateStrategy", json!({"type": "RollingUpdate"}));
                    if spec["updateStrategy"]["type"] == "RollingUpdate" {
                        let ru = &mut spec["updateStrategy"];
                        set(ru, "rollingUpdate", json!({}));
                        set(&mut ru["rollingUpdate"], "maxUnavailable", json!(1));
                        set(&mut ru["rollingUpdate"], "maxSurge", json!(0));
                    }
                }
                "statefulsets" => {
                    set(
                        spec,
                        "persistentVolumeClaimRetentionPolicy",
                        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                    );
                    if let Some(claims) = spec.get_mut("volumeClaimTemplates").and_then(Value::as_array_mut) {
                        for c in claims {
                            if c["spec"].is_object() {
                                set(&mut c["spec"], "volumeMode", json!("Filesystem"));
                            }
                            set(c, "status", json!({"phase": "Pending"}));
                        }
                    }
                }
                _ => {}
            }
        }
        ("batch", "jobs") => {
            if let Some(t) = spec.pointer_mut("/template/spec").filter(|s| s.is_object()) {
                pod_spec(t);
            }
            if spec.get("completions").is_none_or(Value::is_null)
                && spec.get("parallelism").is_none_or(Value::is_null)
            {
                spec["completions"] = json!(1);
                spec["parallelism"] = json!(1);
            }
            set(spec, "parallelism", json!(1));
            let per_index = spec.get("backoffLimitPerIndex").is_some_and(|v| !v.is_null());
            set(spec, "backoffLimit", json!(if per_index { i32::MAX } else { 6 }));
            set(spec, "completionMode", json!("NonIndexed"));
            set(spec, "suspend", json!(false));
            if spec.get("podFailurePolicy").is_none_or(Value::is_null) {
                set(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            }
        }
        ("", "persistentvolumeclaims") => set(spec, "volumeMode", json!("Filesystem")),
        _ => {}
    }
}

/// Sets `key` when it is absent or null (an explicit null is no value to a Go decoder); a null default
/// only removes an explicit null.
fn set(obj: &mut Value, key: &str, value: Value) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    if m.get(key).is_none_or(Value::is_null) {
        if value.is_null() {
            m.remove(key);
        } else {
            m.insert(key.to_string(), value);
        }
    }
}

/// `SetDefaults_PodSpec` and what the generated defaulter runs below it: containers, probes, volumes,
/// environment.
fn pod_spec(spec: &mut Value) {
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "securityContext", json!({}));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "schedulerName", json!("default-scheduler"));
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter(|c| c.is_object()) {
                container(c);
            }
        }
    }
    if let Some(vs) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vs.iter_mut().filter(|v| v.is_object()) {
            volume(v);
        }
    }
}

/// `Always` for `:latest` or an image without tag or digest, `IfNotPresent` otherwise.
pub fn image_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
        None if digest => "IfNotPresent",
        None => "Always",
    }
}

fn container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or("").to_string();
    set(c, "imagePullPolicy", json!(image_pull_policy(&image)));
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    for probe_field in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if c[probe_field].is_object() {
            probe(&mut c[probe_field]);
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(h) = c.pointer_mut(&format!("/lifecycle/{hook}/httpGet")) {
            set(h, "scheme", json!("HTTP"));
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if let Some(f) = e.pointer_mut("/valueFrom/fieldRef") {
                set(f, "apiVersion", json!("v1"));
            }
        }
    }
}

fn probe(p: &mut Value) {
    set(p, "timeoutSeconds", json!(1));
    set(p, "periodSeconds", json!(10));
    set(p, "successThreshold", json!(1));
    set(p, "failureThreshold", json!(3));
    if p["httpGet"].is_object() {
        set(&mut p["httpGet"], "scheme", json!("HTTP"));
    }
}

/// Volume sources with file modes get `defaultMode: 420` (0644); a volume without a source is an emptyDir.
fn volume(v: &mut Value) {
    const SOURCES: [&str; 27] = [
        "hostPath",
        "emptyDir",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "secret",
        "nfs",
        "iscsi",
        "glusterfs",
        "persistentVolumeClaim",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "downwardAPI",
        "fc",
        "azureFile",
        "configMap",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "projected",
        "portworxVolume",
        "csi",
        "ephemeral",
    ];
    if !SOURCES.iter().any(|s| v.get(*s).is_some_and(|x| !x.is_null())) && v.get("image").is_none() {
        v["emptyDir"] = json!({});
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if v[source].is_object() {
            set(&mut v[source], "defaultMode", json!(420));
        }
    }
    if let Some(h) = v.get_mut("hostPath").filter(|h| h.is_object()) {
        set(h, "type", json!(""));
    }
}

/// The Job strategy's generated selector: `batch.kubernetes.io/controller-uid` in the selector, that and
/// the job name (also under their legacy keys) on the pod template.
fn job_selector(job: &mut Value) {
    let uid = job["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
    let spec = &mut job["spec"];
    if !spec.is_object() {
        return;
    }
    spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    if !spec["template"].is_object() {
        spec["template"] = json!({});
    }
    if !spec["template"]["metadata"].is_object() {
        spec["template"]["metadata"] = json!({});
    }
    let meta = &mut spec["template"]["metadata"];
    if !meta["labels"].is_object() {
        meta["labels"] = json!({});
    }
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        meta["labels"][k] = json!(v);
    }
}

/// Fields a real server fills from its own state (addresses) or keeps from the old object.
pub fn server_fields(info: &ResourceInfo, old: Option<&Value>, new: &mut Value, ips: &mut ClusterIps) {
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
                        json!(ips.allocate())
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
            // SetDefaults_Service: traffic from outside the cluster may go to any node's endpoints.
            if matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"))
                && spec["externalTrafficPolicy"].is_null()
            {
                spec["externalTrafficPolicy"] = json!("Cluster");
            }
            if spec["type"] == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"].is_null() {
                spec["allocateLoadBalancerNodePorts"] = json!(true);
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
        // A new Job selects its pods by its own uid, unless it asks to choose its selector.
        "jobs" if old.is_none() && new["spec"]["manualSelector"] != json!(true) => job_selector(new),
        "pods" if new["status"].is_null() => {
            new["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"})
        }
        // Claims start Pending; the PersistentVolume controller binds them (`controllers::storage`).
        "persistentvolumeclaims" | "persistentvolumes" if new["status"].is_null() => {
            new["status"] = json!({"phase": "Pending"})
        }
        _ => {}
    }
}

/// The API server stores quantities in canonical form (`1000m` as `1`, `1024Mi` as `1Gi`, `2` as `"2"`).
fn canonicalize_quantities(obj: &mut Value) {
    visit_quantities(obj, &mut Vec::new(), &mut |_, value| {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return,
        };
        if let Some(canonical) = crate::quantity::canonical(&text) {
            *value = Value::String(canonical);
        }
    });
}

/// Container and service ports get `protocol: TCP`, which is part of their list keys.
fn default_ports(obj: &mut Value) {
    fn visit(v: &mut Value, parent: &str) {
        match v {
            Value::Object(m) => {
                for (k, child) in m.iter_mut() {
                    visit(child, k);
                }
            }
            Value::Array(items) if parent == "ports" => {
                for item in items {
                    if let Some(m) = item.as_object_mut() {
                        if m.contains_key("containerPort") || m.contains_key("port") {
                            m.entry("protocol").or_insert(json!("TCP"));
                        }
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    visit(item, "");
                }
            }
            _ => {}
        }
    }
    if let Some(spec) = obj.get_mut("spec") {
        visit(spec, "spec");
    }
}

#[cfg(test)]
mod tests {
    use super::super::resources::Registry;
    use super::*;

    fn info(group: &str, plural: &str) -> ResourceInfo {
        Registry::with_builtins()
            .all()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
            .unwrap()
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("registry:5000/nginx", "Always"),
            ("registry:5000/nginx:1", "IfNotPresent"),
            (
                "quay.io/openstack.kolla/keystone:2025.1-ubuntu-noble",
                "IfNotPresent",
            ),
            ("nginx@sha256:abcd", "IfNotPresent"),
        ] {
            assert_eq!(image_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn pod_templates_get_kube_apiserver_defaults_and_keep_what_was_set() {
        let mut d = json!({"spec": {"template": {"spec": {
            "dnsPolicy": "Default",
            "containers": [{"name": "a", "image": "a:1", "ports": [{"containerPort": 80}],
                "readinessProbe": {"httpGet": {"port": 80}}, "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
            "volumes": [{"name": "c", "configMap": {"name": "c"}}, {"name": "s", "secret": {"secretName": "s", "defaultMode": 256}}, {"name": "e"}]}}}});
        object_defaults(&info("apps", "deployments"), &mut d);
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(spec["dnsPolicy"], "Default");
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet": {"port": 80, "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10,
                "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(spec["volumes"][0]["configMap"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][1]["secret"]["defaultMode"], 256);
        assert_eq!(spec["volumes"][2]["emptyDir"], json!({}));
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert!(spec.get("enableServiceLinks").is_none(), "a Pod-only default");
    }

    #[test]
    fn jobs_daemonsets_and_statefulsets_get_their_defaults() {
        let mut j = json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}});
        object_defaults(&info("batch", "jobs"), &mut j);
        for (k, v) in [
            ("completions", json!(1)),
            ("parallelism", json!(1)),
            ("backoffLimit", json!(6)),
            ("completionMode", json!("NonIndexed")),
            ("suspend", json!(false)),
            ("podReplacementPolicy", json!("TerminatingOrFailed")),
        ] {
            assert_eq!(j["spec"][k], v, "{k}");
        }
        assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
        let mut parallel = json!({"spec": {"parallelism": 3, "template": {"spec": {}}}});
        object_defaults(&info("batch", "jobs"), &mut parallel);
        assert!(
            parallel["spec"].get("completions").is_none(),
            "a work queue has no completions"
        );
        let mut ds = json!({"spec": {"template": {"spec": {}}}});
        object_defaults(&info("apps", "daemonsets"), &mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        let mut sts = json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}});
        object_defaults(&info("apps", "statefulsets"), &mut sts);
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
    }
}
