//! The generated objects of one component: ConfigMap, Service, PersistentVolumeClaims, workload, jobs.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::kolla::{self, KeyedFile, Permission};
use super::{Ctx, RenderError, Stage, hash_value};
use crate::object::{
    ANNOTATION_CONFIG_HASH, ANNOTATION_PERSISTENT, LABEL_JOB, LABEL_ROLE, ROLE_JOB, ROLE_WORKLOAD,
};
use crate::topology::{EnvVar, JobPhase, JobSpec, PersistentSource, Port, Probe, Volume, WorkloadKind};

/// Name of the pod volume that carries the component's ConfigMap.
pub const CONFIG_VOLUME: &str = "kolla-config";
/// Kubernetes object names used as label values (a Job's name is copied into its pods' labels) are
/// limited to 63 characters.
const MAX_LABEL_NAME: usize = 63;

/// Renders the generated objects (not the raw manifests) of `ctx.component`.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<(Stage, Value)>, RenderError> {
    let c = ctx.component;
    let spec = &c.spec;
    for v in &spec.volumes {
        if v.name == CONFIG_VOLUME {
            return Err(RenderError::ReservedVolume {
                component: c.name.clone(),
                name: v.name.clone(),
            });
        }
    }
    if spec.jobs.len() != c.job_images.len() {
        return Err(RenderError::Inconsistent {
            component: c.name.clone(),
            reason: format!(
                "{} jobs declared but {} job images resolved",
                spec.jobs.len(),
                c.job_images.len()
            ),
        });
    }
    let files = kolla::key_files(c)?;
    if spec.command.is_none() && !files.is_empty() {
        return Err(RenderError::Command {
            component: c.name.clone(),
            reason: "config files are delivered by kolla_start, which needs a command".into(),
        });
    }

    let mut out = Vec::new();
    let config = config_map(ctx, &files)?;
    let config_hash = config.as_ref().map(|(data, _)| hash_value(data));
    if let Some((_, body)) = config {
        out.push((Stage::Config, body));
    }
    if let Some(service) = service(ctx) {
        out.push((Stage::Service, service));
    }
    for v in &spec.volumes {
        if let Some(p) = &v.persistent
            && spec.workload != WorkloadKind::StatefulSet
        {
            out.push((Stage::Config, pvc(ctx, v, p)));
        }
    }
    out.push((Stage::Workload, workload(ctx, &files, config_hash.as_deref())));
    for (job, image) in spec.jobs.iter().zip(&c.job_images) {
        let stage = match job.phase {
            JobPhase::Pre => Stage::PreJob,
            JobPhase::Post => Stage::PostJob,
        };
        out.push((stage, self::job(ctx, job, image, &files)?));
    }
    Ok(out)
}

pub fn config_map_name(component: &str) -> String {
    format!("{component}-config")
}

/// The ConfigMap and its `data` (the value the config hash is taken of), when there is anything to carry.
fn config_map(ctx: &Ctx<'_>, files: &[KeyedFile<'_>]) -> Result<Option<(Value, Value)>, RenderError> {
    let c = ctx.component;
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    if let Some(command) = &c.spec.command {
        let line = kolla::command_line(&c.name, command, &c.spec.args)?;
        let doc = kolla::config_json(&line, files, &permissions(ctx, false));
        data.insert(kolla::CONFIG_JSON.into(), pretty(&doc));
    }
    for job in &c.spec.jobs {
        let line = kolla::command_line(&c.name, &job.command, &[])?;
        let doc = kolla::config_json(&line, files, &permissions(ctx, true));
        data.insert(kolla::job_config_key(&job.name), pretty(&doc));
    }
    for f in files {
        data.insert(f.key.clone(), f.content.to_string());
    }
    if data.is_empty() {
        return Ok(None);
    }
    let data: Map<String, Value> = data.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let data = Value::Object(data);
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.metadata(&config_map_name(&c.name)),
        "data": data,
    });
    Ok(Some((data, body)))
}

fn pretty(doc: &Value) -> String {
    // A `Value` always serializes; fall back to the compact form rather than panic.
    let mut s = serde_json::to_string_pretty(doc).unwrap_or_else(|_| doc.to_string());
    s.push('\n');
    s
}

/// Writable data directories of the pod (or job pod) handed to the service user, named by the owner
/// of the component's first config file; nothing when that owner is root or there are no files.
fn permissions(ctx: &Ctx<'_>, for_job: bool) -> Vec<Permission> {
    let spec = &ctx.component.spec;
    let Some(owner) = spec.config_files.first().map(|f| f.owner.as_str()) else {
        return Vec::new();
    };
    if owner == "root" || owner.starts_with("root:") {
        return Vec::new();
    }
    spec.volumes
        .iter()
        .filter(|v| !v.read_only && (v.persistent.is_some() || v.empty_dir.is_some()))
        .filter(|v| !for_job || mounted_in_jobs(ctx, v))
        .map(|v| Permission {
            path: v.mount_path.clone(),
            owner: owner.to_string(),
        })
        .collect()
}

/// A StatefulSet's persistent volumes are per pod, so its jobs cannot share them.
fn mounted_in_jobs(ctx: &Ctx<'_>, v: &Volume) -> bool {
    !(v.persistent.is_some() && ctx.component.spec.workload == WorkloadKind::StatefulSet)
}

fn service(ctx: &Ctx<'_>) -> Option<Value> {
    let spec = &ctx.component.spec;
    let exposed: Vec<&Port> = spec.ports.iter().filter(|p| p.expose).collect();
    let stateful = spec.workload == WorkloadKind::StatefulSet;
    // A StatefulSet names its governing Service, so that one exists even without exposed ports.
    if exposed.is_empty() && !stateful {
        return None;
    }
    let ports: Vec<Value> = exposed
        .iter()
        .map(|p| json!({"name": p.name, "port": p.port, "targetPort": p.name, "protocol": p.protocol}))
        .collect();
    let mut svc = Map::new();
    if stateful {
        svc.insert("clusterIP".into(), json!("None"));
    }
    svc.insert("selector".into(), Value::Object(ctx.selector()));
    if !ports.is_empty() {
        svc.insert("ports".into(), Value::Array(ports));
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(&ctx.component.name),
        "spec": Value::Object(svc),
    }))
}

pub fn pvc_name(component: &str, volume: &str) -> String {
    format!("{component}-{volume}")
}

fn claim_spec(access_mode: &str, size: &str, storage_class: Option<&str>) -> Value {
    let mut spec = Map::new();
    spec.insert("accessModes".into(), json!([access_mode]));
    spec.insert("resources".into(), json!({"requests": {"storage": size}}));
    if let Some(class) = storage_class {
        spec.insert("storageClassName".into(), json!(class));
    }
    Value::Object(spec)
}

fn persistent_annotation() -> Value {
    json!({ ANNOTATION_PERSISTENT: "true" })
}

/// A claim shared by all pods of a Deployment or DaemonSet and by the component's jobs, with the access
/// mode the topology asks for (ReadWriteOnce unless it says otherwise: a node-local or block volume then
/// pins its consumers to one node; ReadWriteMany needs a class that provides it).
fn pvc(ctx: &Ctx<'_>, v: &Volume, p: &PersistentSource) -> Value {
    let mut metadata = ctx.metadata(&pvc_name(&ctx.component.name, &v.name));
    metadata["annotations"] = persistent_annotation();
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": claim_spec(p.access_mode.as_str(), &p.size, p.storage_class.as_deref()),
    })
}

fn env_var(e: &EnvVar) -> Value {
    if let Some(r) = &e.secret_key_ref {
        json!({"name": e.name, "valueFrom": {"secretKeyRef": key_ref(r)}})
    } else if let Some(r) = &e.config_map_key_ref {
        json!({"name": e.name, "valueFrom": {"configMapKeyRef": key_ref(r)}})
    } else {
        json!({"name": e.name, "value": e.value.clone().unwrap_or_default()})
    }
}

fn key_ref(r: &crate::topology::KeyRef) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(r.name));
    m.insert("key".into(), json!(r.key));
    if let Some(optional) = r.optional {
        m.insert("optional".into(), json!(optional));
    }
    Value::Object(m)
}

/// The Kolla strategy first (unless the operator sets it), then the component's variables, then the
/// job's, a job's entry replacing the component's of the same name.
fn env(kolla_mode: bool, component: &[EnvVar], job: &[EnvVar]) -> Vec<Value> {
    let mut merged: Vec<&EnvVar> = component
        .iter()
        .filter(|e| !job.iter().any(|j| j.name == e.name))
        .collect();
    merged.extend(job.iter());
    let mut out = Vec::new();
    if kolla_mode && !merged.iter().any(|e| e.name == kolla::STRATEGY_ENV) {
        out.push(json!({"name": kolla::STRATEGY_ENV, "value": kolla::STRATEGY_VALUE}));
    }
    out.extend(merged.into_iter().map(env_var));
    out
}

fn probe(p: &Probe) -> Value {
    let mut m = Map::new();
    if let Some(h) = &p.http_get {
        let mut get = Map::new();
        get.insert("path".into(), json!(h.path));
        get.insert("port".into(), json!(h.port));
        if let Some(scheme) = &h.scheme {
            get.insert("scheme".into(), json!(scheme));
        }
        m.insert("httpGet".into(), Value::Object(get));
    } else if let Some(t) = &p.tcp_socket {
        m.insert("tcpSocket".into(), json!({"port": t.port}));
    } else if let Some(e) = &p.exec {
        m.insert("exec".into(), json!({"command": e.command}));
    }
    for (key, value) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("periodSeconds", p.period_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(v) = value {
            m.insert(key.into(), json!(v));
        }
    }
    Value::Object(m)
}

/// The pod's volumes and the container's mounts for the component's declared volumes.
fn user_volumes(ctx: &Ctx<'_>, for_job: bool) -> (Vec<Value>, Vec<Value>) {
    let spec = &ctx.component.spec;
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for v in &spec.volumes {
        if for_job && !mounted_in_jobs(ctx, v) {
            continue;
        }
        let source = if let Some(e) = &v.empty_dir {
            Some((
                "emptyDir",
                e.medium
                    .as_ref()
                    .map_or_else(|| json!({}), |m| json!({"medium": m})),
            ))
        } else if let Some(h) = &v.host_path {
            let mut m = Map::new();
            m.insert("path".into(), json!(h.path));
            if let Some(t) = &h.type_ {
                m.insert("type".into(), json!(t));
            }
            Some(("hostPath", Value::Object(m)))
        } else if let Some(s) = &v.secret {
            Some(("secret", json!({"secretName": s.name})))
        } else if let Some(cm) = &v.config_map {
            Some(("configMap", json!({"name": cm.name})))
        } else if v.persistent.is_some() && spec.workload != WorkloadKind::StatefulSet {
            Some((
                "persistentVolumeClaim",
                json!({"claimName": pvc_name(&ctx.component.name, &v.name)}),
            ))
        } else {
            // A StatefulSet's persistent volume comes from its volumeClaimTemplate of the same name.
            None
        };
        if let Some((kind, value)) = source {
            let mut vol = Map::new();
            vol.insert("name".into(), json!(v.name));
            vol.insert(kind.into(), value);
            volumes.push(Value::Object(vol));
        }
        let mut mount = json!({"name": v.name, "mountPath": v.mount_path});
        if v.read_only {
            mount["readOnly"] = json!(true);
        }
        mounts.push(mount);
    }
    (volumes, mounts)
}

/// The config volume with only the keys one container reads, its own config.json under that name.
fn config_volume(ctx: &Ctx<'_>, config_json_key: &str, files: &[KeyedFile<'_>]) -> (Value, Value) {
    let mut items = vec![json!({"key": config_json_key, "path": kolla::CONFIG_JSON})];
    items.extend(files.iter().map(|f| json!({"key": f.key, "path": f.key})));
    let volume = json!({
        "name": CONFIG_VOLUME,
        "configMap": {"name": config_map_name(&ctx.component.name), "items": items},
    });
    let mount = json!({"name": CONFIG_VOLUME, "mountPath": kolla::CONFIG_DIR, "readOnly": true});
    (volume, mount)
}

struct PodParts {
    container: Map<String, Value>,
    volumes: Vec<Value>,
    host_network: bool,
    restart_never: bool,
}

fn pod_spec(ctx: &Ctx<'_>, parts: PodParts) -> Value {
    let spec = &ctx.component.spec;
    let images = &ctx.topology.spec.images;
    let mut pod = Map::new();
    // OpenStack services never talk to the Kubernetes API; no token is mounted.
    pod.insert("automountServiceAccountToken".into(), json!(false));
    if parts.host_network {
        pod.insert("hostNetwork".into(), json!(true));
        // Without this a host-network pod resolves with the node's resolver and cannot find
        // `*.svc` names such as the message queue.
        pod.insert("dnsPolicy".into(), json!("ClusterFirstWithHostNet"));
    }
    if !spec.node_selector.is_empty() {
        pod.insert("nodeSelector".into(), json!(spec.node_selector));
    }
    if !images.pull_secrets.is_empty() {
        let secrets: Vec<Value> = images.pull_secrets.iter().map(|s| json!({"name": s})).collect();
        pod.insert("imagePullSecrets".into(), Value::Array(secrets));
    }
    if parts.restart_never {
        pod.insert("restartPolicy".into(), json!("Never"));
    }
    pod.insert("containers".into(), json!([Value::Object(parts.container)]));
    if !parts.volumes.is_empty() {
        pod.insert("volumes".into(), Value::Array(parts.volumes));
    }
    Value::Object(pod)
}

fn container_base(ctx: &Ctx<'_>, name: &str, image: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("image".into(), json!(image));
    m.insert(
        "imagePullPolicy".into(),
        json!(ctx.topology.spec.images.pull_policy),
    );
    m
}

fn workload(ctx: &Ctx<'_>, files: &[KeyedFile<'_>], config_hash: Option<&str>) -> Value {
    let c = ctx.component;
    let spec = &c.spec;
    let kolla_mode = spec.command.is_some();
    let (mut volumes, mut mounts) = user_volumes(ctx, false);
    if kolla_mode {
        let (v, m) = config_volume(ctx, kolla::CONFIG_JSON, files);
        volumes.insert(0, v);
        mounts.insert(0, m);
    }

    let mut container = container_base(ctx, &c.name, &c.image);
    if kolla_mode {
        container.insert("command".into(), json!([kolla::START_COMMAND]));
    } else if !spec.args.is_empty() {
        container.insert("args".into(), json!(spec.args));
    }
    let env = env(kolla_mode, &spec.env, &[]);
    if !env.is_empty() {
        container.insert("env".into(), Value::Array(env));
    }
    if !spec.ports.is_empty() {
        let ports: Vec<Value> = spec
            .ports
            .iter()
            .map(|p| json!({"name": p.name, "containerPort": p.port, "protocol": p.protocol}))
            .collect();
        container.insert("ports".into(), Value::Array(ports));
    }
    if let Some(p) = &spec.readiness_probe {
        container.insert("readinessProbe".into(), probe(p));
    }
    if let Some(r) = &spec.resources {
        let mut res = Map::new();
        if !r.requests.is_empty() {
            res.insert("requests".into(), json!(r.requests));
        }
        if !r.limits.is_empty() {
            res.insert("limits".into(), json!(r.limits));
        }
        container.insert("resources".into(), Value::Object(res));
    }
    if spec.privileged {
        container.insert("securityContext".into(), json!({"privileged": true}));
    }
    if !mounts.is_empty() {
        container.insert("volumeMounts".into(), Value::Array(mounts));
    }

    let pod = pod_spec(
        ctx,
        PodParts {
            container,
            volumes,
            host_network: spec.host_network,
            restart_never: false,
        },
    );
    let mut labels = ctx.labels();
    labels.insert(LABEL_ROLE.into(), json!(ROLE_WORKLOAD));
    let mut template_meta = Map::new();
    template_meta.insert("labels".into(), Value::Object(labels));
    if let Some(hash) = config_hash {
        template_meta.insert("annotations".into(), json!({ ANNOTATION_CONFIG_HASH: hash }));
    }
    let template = json!({"metadata": Value::Object(template_meta), "spec": pod});
    let selector = json!({"matchLabels": Value::Object(ctx.selector())});

    let (api_version, kind, body) = match spec.workload {
        WorkloadKind::Deployment => {
            // The rollout gate waits this long; the Deployment reports ProgressDeadlineExceeded after the same time.
            let deadline = i32::try_from(c.health_timeout.as_secs())
                .unwrap_or(i32::MAX)
                .max(1);
            (
                "apps/v1",
                "Deployment",
                json!({
                    "replicas": spec.replicas,
                    "progressDeadlineSeconds": deadline,
                    "selector": selector,
                    "template": template,
                }),
            )
        }
        WorkloadKind::StatefulSet => {
            let mut sts = Map::new();
            sts.insert("replicas".into(), json!(spec.replicas));
            sts.insert("serviceName".into(), json!(c.name));
            sts.insert("selector".into(), selector);
            sts.insert("template".into(), template);
            let claims: Vec<Value> = spec
                .volumes
                .iter()
                .filter_map(|v| v.persistent.as_ref().map(|p| (v, p)))
                .map(|(v, p)| {
                    json!({
                        "metadata": {"name": v.name, "labels": Value::Object(ctx.labels()), "annotations": persistent_annotation()},
                        "spec": claim_spec(p.access_mode.as_str(), &p.size, p.storage_class.as_deref()),
                    })
                })
                .collect();
            if !claims.is_empty() {
                sts.insert("volumeClaimTemplates".into(), Value::Array(claims));
            }
            ("apps/v1", "StatefulSet", Value::Object(sts))
        }
        WorkloadKind::DaemonSet => (
            "apps/v1",
            "DaemonSet",
            json!({"selector": selector, "template": template}),
        ),
    };
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": ctx.metadata(&c.name),
        "spec": body,
    })
}

/// A Job named by its content: Jobs are immutable, so a changed spec or image is a new Job (a new
/// db-sync run) rather than an impossible update. The config hash is deliberately not part of the
/// spec: a config change rolls the workload, it does not re-run migrations.
fn job(ctx: &Ctx<'_>, job: &JobSpec, image: &str, files: &[KeyedFile<'_>]) -> Result<Value, RenderError> {
    let c = ctx.component;
    let timeout = match &job.timeout {
        Some(t) => humantime::parse_duration(t).map_err(|source| RenderError::JobTimeout {
            component: c.name.clone(),
            job: job.name.clone(),
            value: t.clone(),
            source,
        })?,
        None => c.health_timeout,
    };
    let (mut volumes, mut mounts) = user_volumes(ctx, true);
    let (v, m) = config_volume(ctx, &kolla::job_config_key(&job.name), files);
    volumes.insert(0, v);
    mounts.insert(0, m);

    let mut container = container_base(ctx, &job.name, image);
    container.insert("command".into(), json!([kolla::START_COMMAND]));
    container.insert("env".into(), Value::Array(env(true, &c.spec.env, &job.env)));
    container.insert("volumeMounts".into(), Value::Array(mounts));
    let pod = pod_spec(
        ctx,
        PodParts {
            container,
            volumes,
            host_network: false,
            restart_never: true,
        },
    );

    let mut labels = ctx.labels();
    labels.insert(LABEL_ROLE.into(), json!(ROLE_JOB));
    labels.insert(LABEL_JOB.into(), json!(job.name));
    let deadline = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX).max(1);
    let spec = json!({
        "backoffLimit": job.backoff_limit.unwrap_or(3),
        "activeDeadlineSeconds": deadline,
        "template": {"metadata": {"labels": Value::Object(labels)}, "spec": pod},
    });
    let hash = hash_value(&spec);
    let name = job_name(&c.name, &job.name, &hash);
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": ctx.metadata(&name),
        "spec": spec,
    }))
}

/// `<component>-<job>-<8 hex>`, the prefix shortened when needed so the name stays a valid label value.
pub fn job_name(component: &str, job: &str, spec_hash: &str) -> String {
    let short = &spec_hash[..spec_hash.len().min(8)];
    let mut prefix = format!("{component}-{job}");
    let room = MAX_LABEL_NAME - short.len() - 1;
    if prefix.len() > room {
        // Names are validated DNS labels (ASCII), but cut on a character boundary regardless.
        let cut = prefix
            .char_indices()
            .map(|(i, _)| i)
            .take_while(|&i| i <= room)
            .last()
            .unwrap_or(0);
        prefix.truncate(cut);
        while prefix.ends_with('-') {
            prefix.pop();
        }
    }
    format!("{prefix}-{short}")
}
