//! The generated objects of one component: ConfigMap, Service, PersistentVolumeClaims, workload, jobs.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::bootstrap::{self, ToolboxJob};
use super::kolla::{self, KeyedFile, Permission};
use super::{Ctx, Piece, RenderError, Stage, hash_value, same_node, secrets};
use crate::object::{
    ANNOTATION_CONFIG_HASH, ANNOTATION_PERSISTENT, ANNOTATION_SCRIPT_HASH, ANNOTATION_SECRETS_HASH,
    LABEL_JOB, LABEL_ROLE, ROLE_JOB, ROLE_WORKLOAD,
};
use crate::topology::{
    AntiAffinity, ContainerSpec, EnvVar, Hook, JobPhase, JobSpec, PersistentSource, Port, Probe, Volume,
    WorkloadKind,
};

/// Name of the pod volume that carries the component's ConfigMap.
pub const CONFIG_VOLUME: &str = "kolla-config";
/// Kubernetes object names used as label values (a Job's name is copied into its pods' labels) are
/// limited to 63 characters.
const MAX_LABEL_NAME: usize = 63;

/// A Kolla job of the component with its resolved image: the jobs written in the service file and the
/// ones Keelson renders from the identity field (`keystone-manage bootstrap`).
struct KollaJob<'a> {
    spec: std::borrow::Cow<'a, JobSpec>,
    image: &'a str,
    step: u32,
}

/// The component's Kolla jobs in order, each with its step: pre-jobs after the bootstrap Jobs (step 0
/// when there are any), each job one step after the previous unless it shares its `group`.
fn kolla_jobs<'a>(ctx: &Ctx<'a>, has_toolbox_jobs: bool) -> Vec<KollaJob<'a>> {
    let c = ctx.component;
    let mut out = Vec::new();
    for phase in [JobPhase::Pre, JobPhase::Post] {
        let mut step = u32::from(phase == JobPhase::Pre && has_toolbox_jobs);
        let mut previous: Option<(u32, Option<&str>)> = None;
        for (job, image) in c
            .spec
            .jobs
            .iter()
            .zip(&c.job_images)
            .filter(|(j, _)| j.phase == phase)
        {
            let this = match (previous, job.group.as_deref()) {
                (Some((last, Some(g))), Some(group)) if g == group => last,
                (Some((last, _)), _) => last + 1,
                (None, _) => step,
            };
            previous = Some((this, job.group.as_deref()));
            out.push(KollaJob {
                spec: std::borrow::Cow::Borrowed(job),
                image,
                step: this,
            });
        }
        if phase == JobPhase::Pre {
            step = previous.map_or(step, |(last, _)| last + 1);
            if let Some(bootstrap) = bootstrap::keystone_bootstrap(ctx) {
                out.push(KollaJob {
                    spec: std::borrow::Cow::Owned(bootstrap),
                    image: &c.image,
                    step,
                });
            }
        }
    }
    out
}

/// The ConfigMap key of a job's script.
pub fn job_script_key(job: &str) -> String {
    format!("{job}.sh")
}

/// Renders the generated objects (not the raw manifests) of `ctx.component`.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Piece>, RenderError> {
    let c = ctx.component;
    let spec = &c.spec;
    for v in &spec.volumes {
        if v.name == CONFIG_VOLUME || v.name == bootstrap::SCRIPTS_VOLUME {
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
    if spec.command.is_none() && !files.is_empty() && spec.workload != WorkloadKind::None {
        return Err(RenderError::Command {
            component: c.name.clone(),
            reason: "config files are delivered by kolla_start, which needs a command".into(),
        });
    }
    let toolbox = bootstrap::toolbox_jobs(ctx);
    let jobs = kolla_jobs(ctx, !toolbox.is_empty());

    let mut out = Vec::new();
    for (stage, step, body, recipe) in secrets::render(ctx) {
        out.push(Piece {
            stage,
            step,
            body,
            timeout: None,
            secret: Some(recipe),
        });
    }
    let config = config_map(ctx, &files, &jobs)?;
    let config_hash = config.as_ref().map(|(data, _)| hash_value(data));
    if let Some((_, body)) = config {
        out.push(Piece::new(Stage::Config, body));
    }
    if let Some(service) = service(ctx) {
        out.push(Piece::new(Stage::Service, service));
    }
    for v in &spec.volumes {
        if let Some(p) = &v.persistent
            && spec.workload != WorkloadKind::StatefulSet
        {
            out.push(Piece::new(Stage::Config, pvc(ctx, v, p)));
        }
    }
    if spec.workload != WorkloadKind::None {
        if !same_node::dependencies(ctx).is_empty() {
            // kube-apiserver checks a RoleBinding against the Role it names (the escalation check): the
            // binding is written one step after the Role exists.
            for (step, body) in same_node::access_objects(ctx) {
                out.push(Piece {
                    step,
                    ..Piece::new(Stage::Config, body)
                });
            }
        }
        if let Some(budget) = pod_disruption_budget(ctx) {
            out.push(Piece::new(Stage::Config, budget));
        }
        out.push(Piece::new(
            Stage::Workload,
            workload(ctx, &files, config_hash.as_deref()),
        ));
    }
    if !toolbox.is_empty() {
        let Some(image) = c.toolbox_image.as_deref() else {
            return Err(RenderError::Inconsistent {
                component: c.name.clone(),
                reason: "bootstrap jobs without a resolved kolla-toolbox image".into(),
            });
        };
        out.push(Piece::new(Stage::Config, scripts_config_map(ctx, &toolbox)));
        for job in &toolbox {
            let body = toolbox_job(ctx, job, image)?;
            out.push(Piece {
                stage: Stage::PreJob,
                step: 0,
                body,
                timeout: None,
                secret: None,
            });
        }
    }
    for job in &jobs {
        let stage = match job.spec.phase {
            JobPhase::Pre => Stage::PreJob,
            JobPhase::Post => Stage::PostJob,
        };
        let (body, timeout) = self::job(ctx, &job.spec, job.image, &files)?;
        out.push(Piece {
            stage,
            step: job.step,
            body,
            timeout: Some(timeout),
            secret: None,
        });
    }
    Ok(out)
}

pub fn config_map_name(component: &str) -> String {
    format!("{component}-config")
}

/// The ConfigMap and its `data` (the value the config hash is taken of), when there is anything to carry.
fn config_map(
    ctx: &Ctx<'_>,
    files: &[KeyedFile<'_>],
    jobs: &[KollaJob<'_>],
) -> Result<Option<(Value, Value)>, RenderError> {
    let c = ctx.component;
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    if let Some(command) = &c.spec.command
        && c.spec.workload != WorkloadKind::None
    {
        let line = kolla::command_line(&c.name, command, &c.spec.args)?;
        let doc = kolla::config_json(&line, files, &permissions(ctx, false));
        data.insert(kolla::CONFIG_JSON.into(), pretty(&doc));
    }
    for job in jobs {
        let line = job_command_line(&c.name, &job.spec)?;
        let doc = kolla::config_json(&line, files, &permissions(ctx, true));
        data.insert(kolla::job_config_key(&job.spec.name), pretty(&doc));
        if let Some(script) = &job.spec.script {
            data.insert(job_script_key(&job.spec.name), script.clone());
        }
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

/// What `kolla_start` runs for a job: its command, or bash over its script from the config directory.
fn job_command_line(component: &str, job: &JobSpec) -> Result<String, RenderError> {
    match (&job.command, &job.script) {
        (Some(command), _) => kolla::command_line(component, command, &[]),
        (None, Some(_)) => Ok(format!(
            "bash {}/{}",
            kolla::CONFIG_DIR,
            job_script_key(&job.name)
        )),
        (None, None) => Err(RenderError::Command {
            component: component.to_string(),
            reason: format!("job {} has neither command nor script", job.name),
        }),
    }
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

/// The pod's volumes and the container's mounts for the component's declared volumes. Jobs never get
/// mount propagation: their containers are not privileged, and they do not manage the host.
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
        mounts.push(mount(v, !for_job));
    }
    (volumes, mounts)
}

fn mount(v: &Volume, propagation: bool) -> Value {
    let mut mount = json!({"name": v.name, "mountPath": v.mount_path});
    if v.read_only {
        mount["readOnly"] = json!(true);
    }
    if let (true, Some(p)) = (propagation, v.mount_propagation) {
        mount["mountPropagation"] = json!(p);
    }
    mount
}

/// The config volume with only the keys one container reads, its own config.json under that name.
fn config_volume(
    ctx: &Ctx<'_>,
    config_json_key: &str,
    files: &[KeyedFile<'_>],
    script: Option<&str>,
) -> (Value, Value) {
    let mut items = vec![json!({"key": config_json_key, "path": kolla::CONFIG_JSON})];
    items.extend(files.iter().map(|f| json!({"key": f.key, "path": f.key})));
    if let Some(key) = script {
        items.push(json!({"key": key, "path": key}));
    }
    let volume = json!({
        "name": CONFIG_VOLUME,
        "configMap": {"name": config_map_name(&ctx.component.name), "items": items},
    });
    let mount = json!({"name": CONFIG_VOLUME, "mountPath": kolla::CONFIG_DIR, "readOnly": true});
    (volume, mount)
}

struct PodParts {
    container: Map<String, Value>,
    init_containers: Vec<Value>,
    volumes: Vec<Value>,
    host_network: bool,
    restart_never: bool,
    /// Only workload pods get the component's node-level details (host namespaces, spreading, grace).
    workload: bool,
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
    if parts.workload {
        if spec.host_pid {
            pod.insert("hostPID".into(), json!(true));
        }
        if spec.host_ipc {
            pod.insert("hostIPC".into(), json!(true));
        }
        if let Some(grace) = spec.termination_grace_period_seconds {
            pod.insert("terminationGracePeriodSeconds".into(), json!(grace));
        }
        if let Some(affinity) = affinity(ctx) {
            pod.insert("affinity".into(), affinity);
        }
        if !spec.topology_spread.is_empty() {
            let constraints: Vec<Value> = spec
                .topology_spread
                .iter()
                .map(|t| {
                    json!({
                        "maxSkew": t.max_skew,
                        "topologyKey": t.topology_key,
                        "whenUnsatisfiable": t.when_unsatisfiable,
                        "labelSelector": {"matchLabels": Value::Object(ctx.selector())},
                    })
                })
                .collect();
            pod.insert("topologySpreadConstraints".into(), Value::Array(constraints));
        }
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
    if !parts.init_containers.is_empty() {
        pod.insert("initContainers".into(), Value::Array(parts.init_containers));
    }
    pod.insert("containers".into(), json!([Value::Object(parts.container)]));
    if !parts.volumes.is_empty() {
        pod.insert("volumes".into(), Value::Array(parts.volumes));
    }
    Value::Object(pod)
}

/// Pod anti-affinity over the component's own pods, per node.
fn affinity(ctx: &Ctx<'_>) -> Option<Value> {
    let term = json!({
        "labelSelector": {"matchLabels": Value::Object(ctx.selector())},
        "topologyKey": "kubernetes.io/hostname",
    });
    let anti = match ctx.component.spec.anti_affinity? {
        AntiAffinity::Required => json!({"requiredDuringSchedulingIgnoredDuringExecution": [term]}),
        AntiAffinity::Preferred => json!({
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}],
        }),
    };
    Some(json!({ "podAntiAffinity": anti }))
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

fn resources(r: &crate::topology::Resources) -> Value {
    let mut res = Map::new();
    if !r.requests.is_empty() {
        res.insert("requests".into(), json!(r.requests));
    }
    if !r.limits.is_empty() {
        res.insert("limits".into(), json!(r.limits));
    }
    Value::Object(res)
}

fn hook(h: &Hook) -> Value {
    if let Some(e) = &h.exec {
        json!({"exec": {"command": e.command}})
    } else if let Some(g) = &h.http_get {
        let mut get = Map::new();
        get.insert("path".into(), json!(g.path));
        get.insert("port".into(), json!(g.port));
        if let Some(scheme) = &g.scheme {
            get.insert("scheme".into(), json!(scheme));
        }
        json!({ "httpGet": Value::Object(get) })
    } else if let Some(s) = &h.sleep {
        json!({"sleep": {"seconds": s.seconds}})
    } else {
        json!({})
    }
}

/// An init container or a sidecar (an init container that keeps running: `restartPolicy: Always`).
fn extra_container(ctx: &Ctx<'_>, c: &ContainerSpec, sidecar: bool) -> Value {
    let image = ctx
        .component
        .container_images
        .get(&c.name)
        .map(String::as_str)
        .unwrap_or(&ctx.component.image);
    let mut m = container_base(ctx, &c.name, image);
    m.insert("command".into(), json!(c.command));
    if !c.args.is_empty() {
        m.insert("args".into(), json!(c.args));
    }
    let env = env(false, &[], &c.env);
    if !env.is_empty() {
        m.insert("env".into(), Value::Array(env));
    }
    if let Some(r) = &c.resources {
        m.insert("resources".into(), resources(r));
    }
    if c.privileged {
        m.insert("securityContext".into(), json!({"privileged": true}));
    }
    let mounts: Vec<Value> = c
        .volume_mounts
        .iter()
        .filter_map(|name| ctx.component.spec.volumes.iter().find(|v| &v.name == name))
        // Bidirectional propagation is refused for an unprivileged container.
        .map(|v| mount(v, c.privileged))
        .collect();
    if !mounts.is_empty() {
        m.insert("volumeMounts".into(), Value::Array(mounts));
    }
    if sidecar {
        m.insert("restartPolicy".into(), json!("Always"));
        if let Some(p) = &c.readiness_probe {
            m.insert("readinessProbe".into(), probe(p));
        }
    }
    Value::Object(m)
}

/// Names of the Secrets a set of environment variables and volumes reads.
fn secret_names<'a>(envs: impl IntoIterator<Item = &'a EnvVar>, volumes: &'a [Volume]) -> Vec<String> {
    let mut names: Vec<String> = envs
        .into_iter()
        .filter_map(|e| e.secret_key_ref.as_ref().map(|r| r.name.clone()))
        .chain(
            volumes
                .iter()
                .filter_map(|v| v.secret.as_ref().map(|s| s.name.clone())),
        )
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `keelson.dev/secrets-hash`: the identities of the Keelson-made Secrets a pod reads, so a rotation in
/// Git rolls it (and re-runs a Job). `None` when the pod reads none.
fn secrets_hash(ctx: &Ctx<'_>, names: Vec<String>) -> Option<String> {
    let identities = secrets::pod_secret_identities(ctx.topology, names);
    (!identities.is_empty()).then(|| hash_value(&json!(identities)))
}

fn workload(ctx: &Ctx<'_>, files: &[KeyedFile<'_>], config_hash: Option<&str>) -> Value {
    let c = ctx.component;
    let spec = &c.spec;
    let kolla_mode = spec.command.is_some();
    let (mut volumes, mut mounts) = user_volumes(ctx, false);
    if kolla_mode {
        let (v, m) = config_volume(ctx, kolla::CONFIG_JSON, files, None);
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
        container.insert("resources".into(), resources(r));
    }
    if let Some(l) = &spec.lifecycle {
        let mut hooks = Map::new();
        if let Some(h) = &l.post_start {
            hooks.insert("postStart".into(), hook(h));
        }
        if let Some(h) = &l.pre_stop {
            hooks.insert("preStop".into(), hook(h));
        }
        container.insert("lifecycle".into(), Value::Object(hooks));
    }
    if spec.privileged {
        container.insert("securityContext".into(), json!({"privileged": true}));
    }
    if !mounts.is_empty() {
        container.insert("volumeMounts".into(), Value::Array(mounts));
    }
    let same_node = same_node::dependencies(ctx);
    // The per-node wait comes first: nothing of the Pod starts before its node's dependencies are Ready.
    let init_containers: Vec<Value> = (!same_node.is_empty())
        .then(|| same_node::wait_container(ctx, &same_node))
        .into_iter()
        .chain(
            spec.init_containers
                .iter()
                .map(|i| extra_container(ctx, i, false)),
        )
        .chain(spec.sidecars.iter().map(|s| extra_container(ctx, s, true)))
        .collect();

    let mut pod = pod_spec(
        ctx,
        PodParts {
            container,
            init_containers,
            volumes,
            host_network: spec.host_network,
            restart_never: false,
            workload: true,
        },
    );
    if !same_node.is_empty() {
        // kubernetes-entrypoint reads Pods through the API: the one Pod that gets a token.
        pod["serviceAccountName"] = json!(same_node::service_account_name(&c.name));
        pod["automountServiceAccountToken"] = json!(true);
    }
    let mut labels = ctx.labels();
    labels.insert(LABEL_ROLE.into(), json!(ROLE_WORKLOAD));
    let mut template_meta = Map::new();
    template_meta.insert("labels".into(), Value::Object(labels));
    let mut annotations = Map::new();
    if let Some(hash) = config_hash {
        annotations.insert(ANNOTATION_CONFIG_HASH.into(), json!(hash));
    }
    let envs = spec
        .env
        .iter()
        .chain(spec.init_containers.iter().flat_map(|i| &i.env))
        .chain(spec.sidecars.iter().flat_map(|i| &i.env));
    if let Some(hash) = secrets_hash(ctx, secret_names(envs, &spec.volumes)) {
        annotations.insert(ANNOTATION_SECRETS_HASH.into(), json!(hash));
    }
    if !annotations.is_empty() {
        template_meta.insert("annotations".into(), Value::Object(annotations));
    }
    let template = json!({"metadata": Value::Object(template_meta), "spec": pod});
    let selector = json!({"matchLabels": Value::Object(ctx.selector())});

    let (api_version, kind, body) = match spec.workload {
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
        // A component without a workload never reaches here; a Deployment is the default kind.
        WorkloadKind::Deployment | WorkloadKind::None => {
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
    };
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": ctx.metadata(&c.name),
        "spec": body,
    })
}

/// A PodDisruptionBudget for a replicated Deployment or StatefulSet (`maxUnavailable: 1` unless the
/// service file says otherwise), or for any one whose service file asks for it.
fn pod_disruption_budget(ctx: &Ctx<'_>) -> Option<Value> {
    let spec = &ctx.component.spec;
    if !matches!(
        spec.workload,
        WorkloadKind::Deployment | WorkloadKind::StatefulSet
    ) {
        return None;
    }
    let budget = spec.disruption_budget.as_ref();
    if budget.is_some_and(|b| !b.enabled) || (budget.is_none() && spec.replicas <= 1) {
        return None;
    }
    let mut pdb = Map::new();
    match (
        budget.and_then(|b| b.min_available),
        budget.and_then(|b| b.max_unavailable),
    ) {
        (Some(min), _) => pdb.insert("minAvailable".into(), json!(min)),
        (None, Some(max)) => pdb.insert("maxUnavailable".into(), json!(max)),
        (None, None) => pdb.insert("maxUnavailable".into(), json!(1)),
    };
    pdb.insert(
        "selector".into(),
        json!({"matchLabels": Value::Object(ctx.selector())}),
    );
    Some(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ctx.metadata(&ctx.component.name),
        "spec": Value::Object(pdb),
    }))
}

/// The scripts the component's bootstrap Jobs run.
fn scripts_config_map(ctx: &Ctx<'_>, jobs: &[ToolboxJob]) -> Value {
    let data: Map<String, Value> = jobs
        .iter()
        .map(|j| (j.script.to_string(), Value::String(j.script_text().to_string())))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.metadata(&bootstrap::scripts_config_map_name(&ctx.component.name)),
        "data": Value::Object(data),
    })
}

fn job_deadline(timeout: std::time::Duration) -> i64 {
    i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX).max(1)
}

/// The Job body around a pod spec, named by the hash of its spec.
fn job_object(
    ctx: &Ctx<'_>,
    job: &str,
    backoff: i32,
    timeout: std::time::Duration,
    template: Value,
) -> Value {
    let spec = json!({
        "backoffLimit": backoff,
        "activeDeadlineSeconds": job_deadline(timeout),
        "template": template,
    });
    let hash = hash_value(&spec);
    let name = job_name(&ctx.component.name, job, &hash);
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": ctx.metadata(&name),
        "spec": spec,
    })
}

fn job_template(ctx: &Ctx<'_>, job: &str, pod: Value, annotations: Map<String, Value>) -> Value {
    let mut labels = ctx.labels();
    labels.insert(LABEL_ROLE.into(), json!(ROLE_JOB));
    labels.insert(LABEL_JOB.into(), json!(job));
    let mut metadata = Map::new();
    metadata.insert("labels".into(), Value::Object(labels));
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), Value::Object(annotations));
    }
    json!({"metadata": Value::Object(metadata), "spec": pod})
}

/// A bootstrap Job: the toolbox image runs a Keelson script; the script's hash and the identities of
/// the Secrets it reads are part of the Job's spec, so a new script or a rotated password runs it anew.
fn toolbox_job(ctx: &Ctx<'_>, job: &ToolboxJob, image: &str) -> Result<Value, RenderError> {
    let mut container = container_base(ctx, job.name, image);
    container.insert("command".into(), json!(job.command()));
    container.insert("env".into(), Value::Array(job.env.clone()));
    container.insert(
        "volumeMounts".into(),
        json!([{"name": bootstrap::SCRIPTS_VOLUME, "mountPath": bootstrap::SCRIPTS_DIR, "readOnly": true}]),
    );
    let volumes = vec![json!({
        "name": bootstrap::SCRIPTS_VOLUME,
        "configMap": {
            "name": bootstrap::scripts_config_map_name(&ctx.component.name),
            "items": [{"key": job.script, "path": job.script}],
        },
    })];
    let pod = pod_spec(
        ctx,
        PodParts {
            container,
            init_containers: Vec::new(),
            volumes,
            host_network: false,
            restart_never: true,
            workload: false,
        },
    );
    let mut annotations = Map::new();
    annotations.insert(
        ANNOTATION_SCRIPT_HASH.into(),
        json!(super::sha256_hex(job.script_text().as_bytes())),
    );
    let names: Vec<String> = job
        .env
        .iter()
        .filter_map(|e| e.pointer("/valueFrom/secretKeyRef/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    if let Some(hash) = secrets_hash(ctx, names) {
        annotations.insert(ANNOTATION_SECRETS_HASH.into(), json!(hash));
    }
    let template = job_template(ctx, job.name, pod, annotations);
    Ok(job_object(
        ctx,
        job.name,
        3,
        ctx.component.health_timeout,
        template,
    ))
}

/// A Job named by its content: Jobs are immutable, so a changed spec or image is a new Job (a new
/// db-sync run) rather than an impossible update. The config hash is deliberately not part of the
/// spec: a config change rolls the workload, it does not re-run migrations. A job's script and the
/// identities of the Secrets it reads are, so that editing the one or rotating the other runs it again.
/// Returns the Job and the time it may take.
fn job(
    ctx: &Ctx<'_>,
    job: &JobSpec,
    image: &str,
    files: &[KeyedFile<'_>],
) -> Result<(Value, std::time::Duration), RenderError> {
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
    let script_key = job.script.as_ref().map(|_| job_script_key(&job.name));
    let (v, m) = config_volume(
        ctx,
        &kolla::job_config_key(&job.name),
        files,
        script_key.as_deref(),
    );
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
            init_containers: Vec::new(),
            volumes,
            host_network: false,
            restart_never: true,
            workload: false,
        },
    );
    let mut annotations = Map::new();
    if let Some(script) = &job.script {
        annotations.insert(
            ANNOTATION_SCRIPT_HASH.into(),
            json!(super::sha256_hex(script.as_bytes())),
        );
    }
    let merged: Vec<&EnvVar> = c
        .spec
        .env
        .iter()
        .filter(|e| !job.env.iter().any(|j| j.name == e.name))
        .chain(job.env.iter())
        .collect();
    let job_volumes: Vec<Volume> = c
        .spec
        .volumes
        .iter()
        .filter(|v| mounted_in_jobs(ctx, v))
        .cloned()
        .collect();
    if let Some(hash) = secrets_hash(ctx, secret_names(merged, &job_volumes)) {
        annotations.insert(ANNOTATION_SECRETS_HASH.into(), json!(hash));
    }
    let template = job_template(ctx, &job.name, pod, annotations);
    let body = job_object(ctx, &job.name, job.backoff_limit.unwrap_or(3), timeout, template);
    Ok((body, timeout))
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
