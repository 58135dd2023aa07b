//! What a plan does to running things, in the words a reviewer asks in: which workloads restart and why
//! (image X -> Y, config file F changed, env changed, Secret rotated), how many Pods that is, which Jobs run
//! and which of them migrate a database, and which components the change touches at all.
//!
//! Pure: read off the plan's field diffs, the desired bodies and the live objects.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::object::{ANNOTATION_CONFIG_HASH, LABEL_JOB, LABEL_SERVICE, ObjectRef};
use crate::render::Stage;
use crate::topology::Topology;

use super::diff::{get_str, meta_map, subset_diff};
use super::migration::{self, MigrationKind};
use super::model::{Action, Change, FieldDiff, Plan};
use super::order::{ObjectKey, api_group};

/// Everything the impact analysis reads.
#[derive(Debug, Clone, Copy)]
pub struct ImpactInput<'a> {
    pub plan: &'a Plan,
    pub topology: &'a Topology,
    /// The live objects the plan was computed against (for the Jobs a new run replaces).
    pub live: &'a [Value],
}

/// The effect of a plan on Pods and Jobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Impact {
    /// Workloads whose Pods start, restart, scale or stop; in apply order.
    pub workloads: Vec<WorkloadImpact>,
    /// Jobs that run (a new spec hash is a new Job); in apply order.
    pub jobs: Vec<JobRun>,
    pub warnings: Vec<ImpactWarning>,
    pub components: ComponentCounts,
}

/// What happens to one workload's Pods.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadImpact {
    pub reference: ObjectRef,
    pub component: String,
    pub effect: WorkloadEffect,
    /// Pods affected: the (new) replica count, or one per matching node for a DaemonSet.
    pub pods: PodCount,
    /// Why the Pods restart; empty unless `effect` is `restart`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<RestartReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WorkloadEffect {
    /// A new workload: its Pods start.
    Start,
    /// The Pod template changes: every Pod is replaced (rolling).
    Restart,
    /// Only the replica count changes: Pods are added or removed, none restarts.
    #[serde(rename_all = "camelCase")]
    Scale,
    /// The workload is deleted: its Pods stop.
    Stop,
}

/// How many Pods a workload change touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum PodCount {
    /// A Deployment or StatefulSet: its replica count (after the change; before it for `stop`).
    #[serde(rename_all = "camelCase")]
    Replicas {
        count: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<u64>,
    },
    /// A DaemonSet: one Pod per node its node selector matches.
    #[serde(rename_all = "camelCase")]
    PerNode { node_selector: BTreeMap<String, String> },
}

/// Why a workload's Pods are replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum RestartReason {
    #[serde(rename_all = "camelCase")]
    Image {
        container: String,
        from: Option<String>,
        to: Option<String>,
    },
    /// A config file the Pods read changed (`file` is where the container sees it).
    #[serde(rename_all = "camelCase")]
    ConfigFile {
        config_map: String,
        key: String,
        file: String,
        change: FileChange,
    },
    /// The configuration hash changed but no changed file could be named (a ConfigMap outside this plan).
    #[serde(rename_all = "camelCase")]
    Config { annotation: String },
    /// Environment variables of a container were added, removed or changed (names only).
    #[serde(rename_all = "camelCase")]
    Env {
        container: String,
        variables: Vec<String>,
    },
    /// A Secret the Pods read changed (its hash on the Pod template moved); values are never shown.
    #[serde(rename_all = "camelCase")]
    SecretRotated {
        secrets: Vec<String>,
        annotation: String,
    },
    /// Any other field of the Pod template (resources, probes, volumes, command, ...), relative to the template.
    #[serde(rename_all = "camelCase")]
    PodSpec { fields: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FileChange {
    Added,
    Changed,
    Removed,
}

/// A Job that runs because of this plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRun {
    pub reference: ObjectRef,
    pub component: String,
    /// The job's name in the service file (`db-sync`).
    pub job: String,
    /// `preJob` (before the workload rolls) or `postJob` (after it is healthy).
    pub stage: Stage,
    /// Whether the job migrates a database, and which phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationKind>,
    /// The earlier run this one replaces (its Job is pruned), when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// Why it runs again: the changed fields of the Job (image, env, ...); empty for a first run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<RestartReason>,
}

/// Something about running things a reviewer should see.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImpactWarning {
    pub reference: ObjectRef,
    pub component: String,
    pub kind: ImpactWarningKind,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ImpactWarningKind {
    /// A contract-phase migration runs: afterwards the previous release cannot use the database.
    ContractPhase,
    /// A ConfigMap or Secret the Pods read changes, but the Pod template does not: running Pods keep the
    /// old values (environment variables) until they restart for another reason.
    #[serde(rename_all = "camelCase")]
    StaleConsumer { object: ObjectRef },
}

/// Which components the plan touches (creates, updates, deletes or refuses anything of).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentCounts {
    pub touched: Vec<String>,
    pub untouched: Vec<String>,
}

impl Impact {
    pub fn restarts(&self) -> impl Iterator<Item = &WorkloadImpact> {
        self.workloads
            .iter()
            .filter(|w| w.effect == WorkloadEffect::Restart)
    }

    /// Pods replaced by restarts, counting replicas; DaemonSets are counted separately by the caller.
    pub fn restarting_replicas(&self) -> u64 {
        self.restarts()
            .map(|w| match w.pods {
                PodCount::Replicas { count, .. } => count,
                PodCount::PerNode { .. } => 0,
            })
            .sum()
    }

    pub fn restarting_daemonsets(&self) -> usize {
        self.restarts()
            .filter(|w| matches!(w.pods, PodCount::PerNode { .. }))
            .count()
    }

    pub fn migrations(&self) -> impl Iterator<Item = &JobRun> {
        self.jobs.iter().filter(|j| j.migration.is_some())
    }
}

const WORKLOAD_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet"];

fn is_workload(r: &ObjectRef) -> bool {
    api_group(&r.api_version) == "apps" && WORKLOAD_KINDS.contains(&r.kind.as_str())
}

fn is_job(r: &ObjectRef) -> bool {
    api_group(&r.api_version) == "batch" && r.kind == "Job"
}

fn is_core(r: &ObjectRef, kind: &str) -> bool {
    api_group(&r.api_version).is_empty() && r.kind == kind
}

/// Compute the impact of a plan.
pub fn impact(input: &ImpactInput) -> Impact {
    let plan = input.plan;
    let live: BTreeMap<ObjectKey, &Value> = input
        .live
        .iter()
        .filter_map(|v| reference_of(v).map(|r| (ObjectKey::of(&r), v)))
        .collect();
    let changes: BTreeMap<ObjectKey, &Change> = plan
        .apply_changes()
        .chain(plan.deletion_changes())
        .map(|c| (ObjectKey::of(&c.reference), c))
        .collect();
    let mut out = Impact::default();
    for change in plan.apply_changes().filter(|c| is_workload(&c.reference)) {
        if let Some(w) = workload_impact(change, &changes, &mut out.warnings) {
            out.workloads.push(w);
        }
    }
    for change in plan.deletion_changes().filter(|c| is_workload(&c.reference)) {
        if let Some(body) = live.get(&ObjectKey::of(&change.reference)) {
            out.workloads.push(WorkloadImpact {
                reference: change.reference.clone(),
                component: change.component.clone(),
                effect: WorkloadEffect::Stop,
                pods: pod_count(body, None),
                reasons: Vec::new(),
            });
        }
    }
    let replaced = replaced_jobs(plan, &live);
    for change in plan
        .apply_changes()
        .filter(|c| c.action == Action::Create && is_job(&c.reference))
    {
        let Some(body) = &change.desired else { continue };
        let job = job_label(body).unwrap_or(&change.reference.name).to_string();
        let spec = input
            .topology
            .components
            .get(&change.component)
            .and_then(|c| c.spec.jobs.iter().find(|j| j.name == job));
        // A job runs a command or a script; either names what it migrates.
        let kind = spec.and_then(|s| {
            let run = s.command.as_deref().or(s.script.as_deref()).unwrap_or_default();
            migration::classify(&s.name, run)
        });
        let previous = replaced.get(&(change.component.clone(), job.clone())).copied();
        let reasons = previous
            .and_then(|old| {
                Some((
                    old,
                    old.pointer("/spec/template")?,
                    body.pointer("/spec/template")?,
                ))
            })
            .map(|(_, before, after)| template_reasons(&subset_diff(after, before, false), &BTreeMap::new()))
            .unwrap_or_default();
        if kind == Some(MigrationKind::Contract) {
            out.warnings.push(ImpactWarning {
                reference: change.reference.clone(),
                component: change.component.clone(),
                kind: ImpactWarningKind::ContractPhase,
                message: format!(
                    "job {job} runs the contract phase of a database migration: once it has run, the previous \
                     release can no longer use the database, and reverting this change needs a database restore"
                ),
            });
        }
        out.jobs.push(JobRun {
            reference: change.reference.clone(),
            component: change.component.clone(),
            job,
            stage: change.stage,
            migration: kind,
            replaces: previous.and_then(|old| get_str(old, &["metadata", "name"]).map(str::to_string)),
            reasons,
        });
    }
    out.components = component_counts(plan, input.topology);
    out
}

/// The object reference a live object names, if it names one.
fn reference_of(v: &Value) -> Option<ObjectRef> {
    Some(ObjectRef {
        api_version: get_str(v, &["apiVersion"])?.to_string(),
        kind: get_str(v, &["kind"])?.to_string(),
        namespace: get_str(v, &["metadata", "namespace"]).map(str::to_string),
        name: get_str(v, &["metadata", "name"])?.to_string(),
    })
}

/// The job's name in its service file: the `keelson.dev/job` label of the Job or of its Pod template.
pub(super) fn job_label(body: &Value) -> Option<&str> {
    meta_map(body, "labels")
        .and_then(|m| m.get(LABEL_JOB))
        .or_else(|| {
            body.pointer("/spec/template/metadata/labels")
                .and_then(|l| l.get(LABEL_JOB))
        })
        .and_then(Value::as_str)
}

/// Jobs this plan deletes, by (component, job name): a new Job of the same job replaces them.
fn replaced_jobs<'a>(
    plan: &Plan,
    live: &BTreeMap<ObjectKey, &'a Value>,
) -> BTreeMap<(String, String), &'a Value> {
    let mut out = BTreeMap::new();
    for change in plan.deletion_changes().filter(|c| is_job(&c.reference)) {
        let Some(body) = live.get(&ObjectKey::of(&change.reference)) else {
            continue;
        };
        let labels = meta_map(body, "labels");
        let component = labels
            .and_then(|m| m.get(LABEL_SERVICE))
            .and_then(Value::as_str)
            .unwrap_or(&change.component);
        if let Some(job) = job_label(body) {
            out.insert((component.to_string(), job.to_string()), *body);
        }
    }
    out
}

fn workload_impact(
    change: &Change,
    changes: &BTreeMap<ObjectKey, &Change>,
    warnings: &mut Vec<ImpactWarning>,
) -> Option<WorkloadImpact> {
    let body = change.desired.as_ref()?;
    let replicas_diff = change.diff.iter().find(|d| d.path == "spec.replicas");
    let from = replicas_diff
        .and_then(|d| d.before.as_ref())
        .and_then(Value::as_u64);
    let template_diffs: Vec<FieldDiff> = change
        .diff
        .iter()
        .filter_map(|d| {
            let rest = d.path.strip_prefix("spec.template.")?;
            Some(FieldDiff {
                path: rest.to_string(),
                ..d.clone()
            })
        })
        .collect();
    let (effect, reasons) = match change.action {
        Action::Create => (WorkloadEffect::Start, Vec::new()),
        Action::Update if !template_diffs.is_empty() => {
            let reasons = template_reasons(&template_diffs, &consumed_changes(body, changes));
            (WorkloadEffect::Restart, reasons)
        }
        Action::Update if replicas_diff.is_some() => (WorkloadEffect::Scale, Vec::new()),
        _ => {
            stale_consumers(change, body, changes, warnings);
            return None;
        }
    };
    if effect == WorkloadEffect::Scale {
        stale_consumers(change, body, changes, warnings);
    }
    Some(WorkloadImpact {
        reference: change.reference.clone(),
        component: change.component.clone(),
        effect,
        pods: pod_count(body, from.filter(|_| effect == WorkloadEffect::Scale)),
        reasons,
    })
}

fn pod_count(body: &Value, from: Option<u64>) -> PodCount {
    if get_str(body, &["kind"]) == Some("DaemonSet") {
        let node_selector = body
            .pointer("/spec/template/spec/nodeSelector")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        return PodCount::PerNode { node_selector };
    }
    // Kubernetes defaults an absent replica count to 1.
    let count = body
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    PodCount::Replicas { count, from }
}

/// A ConfigMap or Secret the Pod template reads, and how.
#[derive(Debug, Clone)]
struct Consumed<'a> {
    change: &'a Change,
    /// ConfigMap key -> where the container sees it.
    files: BTreeMap<String, String>,
}

/// The ConfigMaps and Secrets a workload's Pod template reads that this plan creates, updates or deletes.
fn consumed_changes<'a>(
    body: &Value,
    changes: &BTreeMap<ObjectKey, &'a Change>,
) -> BTreeMap<ObjectKey, Consumed<'a>> {
    let mut out = BTreeMap::new();
    let namespace = get_str(body, &["metadata", "namespace"]).map(str::to_string);
    let Some(pod) = body.pointer("/spec/template/spec") else {
        return out;
    };
    let mut note = |kind: &str, name: &str, files: BTreeMap<String, String>| {
        let reference = ObjectRef {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: namespace.clone(),
            name: name.into(),
        };
        let key = ObjectKey::of(&reference);
        if let Some(change) = changes.get(&key).filter(|c| c.action != Action::Unchanged) {
            out.entry(key)
                .or_insert_with(|| Consumed {
                    change,
                    files: BTreeMap::new(),
                })
                .files
                .extend(files);
        }
    };
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| pod.get(*f).and_then(Value::as_array))
        .flatten()
        .collect();
    let volumes = pod
        .get("volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for volume in &volumes {
        let Some(vname) = volume.get("name").and_then(Value::as_str) else {
            continue;
        };
        let mount = containers
            .iter()
            .filter_map(|c| c.get("volumeMounts").and_then(Value::as_array))
            .flatten()
            .find(|m| m.get("name").and_then(Value::as_str) == Some(vname))
            .and_then(|m| m.get("mountPath").and_then(Value::as_str))
            .unwrap_or("");
        for (kind, field, name_field) in [
            ("ConfigMap", "configMap", "name"),
            ("Secret", "secret", "secretName"),
        ] {
            let Some(source) = volume.get(field) else { continue };
            let Some(name) = source.get(name_field).and_then(Value::as_str) else {
                continue;
            };
            let files = source
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    let key = i.get("key")?.as_str()?;
                    let path = i.get("path")?.as_str()?;
                    Some((key.to_string(), format!("{}/{path}", mount.trim_end_matches('/'))))
                })
                .collect();
            note(kind, name, files);
        }
    }
    for container in &containers {
        for from in container
            .get("envFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = from.pointer("/configMapRef/name").and_then(Value::as_str) {
                note("ConfigMap", name, BTreeMap::new());
            }
            if let Some(name) = from.pointer("/secretRef/name").and_then(Value::as_str) {
                note("Secret", name, BTreeMap::new());
            }
        }
        for env in container
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = env
                .pointer("/valueFrom/configMapKeyRef/name")
                .and_then(Value::as_str)
            {
                note("ConfigMap", name, BTreeMap::new());
            }
            if let Some(name) = env
                .pointer("/valueFrom/secretKeyRef/name")
                .and_then(Value::as_str)
            {
                note("Secret", name, BTreeMap::new());
            }
        }
    }
    out
}

/// A workload whose template does not change, though something it reads does.
fn stale_consumers(
    change: &Change,
    body: &Value,
    changes: &BTreeMap<ObjectKey, &Change>,
    warnings: &mut Vec<ImpactWarning>,
) {
    for consumed in consumed_changes(body, changes).values() {
        if consumed.change.action != Action::Update {
            continue;
        }
        warnings.push(ImpactWarning {
            reference: change.reference.clone(),
            component: change.component.clone(),
            kind: ImpactWarningKind::StaleConsumer {
                object: consumed.change.reference.clone(),
            },
            message: format!(
                "{} changes, but the Pods of {} do not restart: they keep the old values until they restart",
                consumed.change.reference, change.reference
            ),
        });
    }
}

/// Restart reasons from the Pod template's field diffs (paths relative to the template).
fn template_reasons(diffs: &[FieldDiff], consumed: &BTreeMap<ObjectKey, Consumed>) -> Vec<RestartReason> {
    let mut images = Vec::new();
    let mut env: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut config = Vec::new();
    let mut secrets = Vec::new();
    let mut other: BTreeSet<String> = BTreeSet::new();
    for d in diffs {
        let path = d.path.as_str();
        if let Some(annotation) = annotation_key(path) {
            if annotation == ANNOTATION_CONFIG_HASH {
                config.push(annotation);
            } else if annotation.to_ascii_lowercase().contains("secret") {
                secrets.push(annotation);
            } else {
                other.insert(path.to_string());
            }
            continue;
        }
        match container_field(path) {
            Some((container, "image")) => images.push(RestartReason::Image {
                container: container.to_string(),
                from: d.before.as_ref().and_then(Value::as_str).map(str::to_string),
                to: d.after.as_ref().and_then(Value::as_str).map(str::to_string),
            }),
            Some((container, field))
                if field == "env" || field.starts_with("env[") || field.starts_with("env.") =>
            {
                env.entry(container.to_string())
                    .or_default()
                    .extend(env_names(field, d));
            }
            _ => {
                other.insert(path.to_string());
            }
        }
    }
    let mut out = images;
    for annotation in config {
        let files = config_files(consumed);
        if files.is_empty() {
            out.push(RestartReason::Config { annotation });
        } else {
            out.extend(files);
        }
    }
    for annotation in secrets {
        let names: Vec<String> = consumed
            .values()
            .filter(|c| is_core(&c.change.reference, "Secret"))
            .map(|c| c.change.reference.name.clone())
            .collect();
        out.push(RestartReason::SecretRotated {
            secrets: names,
            annotation,
        });
    }
    for (container, variables) in env {
        out.push(RestartReason::Env {
            container,
            variables: variables.into_iter().collect(),
        });
    }
    if !other.is_empty() {
        out.push(RestartReason::PodSpec {
            fields: other.into_iter().collect(),
        });
    }
    out
}

/// `metadata.annotations["k"]` -> `k`.
fn annotation_key(path: &str) -> Option<String> {
    let rest = path.strip_prefix("metadata.annotations")?;
    if let Some(quoted) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return serde_json::from_str::<String>(quoted).ok();
    }
    rest.strip_prefix('.').map(str::to_string)
}

/// `spec.containers[name=api].image` -> (`api`, `image`); also init containers.
fn container_field(path: &str) -> Option<(&str, &str)> {
    let rest = path
        .strip_prefix("spec.containers[name=")
        .or_else(|| path.strip_prefix("spec.initContainers[name="))?;
    let (name, field) = rest.split_once(']')?;
    Some((name, field.strip_prefix('.').unwrap_or(field)))
}

/// Names of the variables an env diff touches: `env[name=X]...` names X; a whole `env` list names the
/// variables whose entries differ between the two sides.
fn env_names(field: &str, d: &FieldDiff) -> Vec<String> {
    if let Some(rest) = field.strip_prefix("env[name=") {
        return rest
            .split_once(']')
            .map(|(n, _)| vec![n.to_string()])
            .unwrap_or_default();
    }
    let entries = |v: &Option<Value>| -> BTreeMap<String, Value> {
        v.as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e.get("name")?.as_str()?.to_string(), e.clone())))
            .collect()
    };
    let (before, after) = (entries(&d.before), entries(&d.after));
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter(|n| before.get(*n) != after.get(*n))
        .cloned()
        .collect()
}

/// Files of the consumed ConfigMaps that this plan adds, changes or removes. A file is named where the
/// container finds it: the Kolla destination when the ConfigMap's `config.json` names one, else the mount.
fn config_files(consumed: &BTreeMap<ObjectKey, Consumed>) -> Vec<RestartReason> {
    let mut out = Vec::new();
    for c in consumed
        .values()
        .filter(|c| is_core(&c.change.reference, "ConfigMap"))
    {
        let destinations = kolla_destinations(c.change.desired.as_ref());
        let keyed: Vec<(String, FileChange)> = match c.change.action {
            Action::Create => c
                .change
                .desired
                .as_ref()
                .and_then(|b| b.get("data"))
                .and_then(Value::as_object)
                .map(|m| m.keys().map(|k| (k.clone(), FileChange::Added)).collect())
                .unwrap_or_default(),
            _ => c.change.diff.iter().flat_map(data_keys).collect(),
        };
        for (key, change) in keyed {
            let file = destinations
                .get(&key)
                .or_else(|| c.files.get(&key))
                .cloned()
                .unwrap_or_else(|| key.clone());
            out.push(RestartReason::ConfigFile {
                config_map: c.change.reference.name.clone(),
                key,
                file,
                change,
            });
        }
    }
    out
}

/// The ConfigMap keys a diff touches: `data["k"]` / `data.k` name one key; a whole `data` names each
/// differing key.
fn data_keys(d: &FieldDiff) -> Vec<(String, FileChange)> {
    let change = match (&d.before, &d.after) {
        (None, _) => FileChange::Added,
        (_, None) => FileChange::Removed,
        _ => FileChange::Changed,
    };
    let path = d.path.as_str();
    if let Some(rest) = path.strip_prefix("data[").and_then(|r| r.strip_suffix(']')) {
        return serde_json::from_str::<String>(rest)
            .map(|k| vec![(k, change)])
            .unwrap_or_default();
    }
    if let Some(key) = path.strip_prefix("data.") {
        return vec![(key.to_string(), change)];
    }
    if path == "data" {
        let keys = |v: &Option<Value>| -> BTreeMap<String, Value> {
            v.as_ref()
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        let (before, after) = (keys(&d.before), keys(&d.after));
        let all: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        return all
            .into_iter()
            .filter_map(|k| match (before.get(k), after.get(k)) {
                (None, Some(_)) => Some((k.clone(), FileChange::Added)),
                (Some(_), None) => Some((k.clone(), FileChange::Removed)),
                (Some(a), Some(b)) if a != b => Some((k.clone(), FileChange::Changed)),
                _ => None,
            })
            .collect();
    }
    Vec::new()
}

/// ConfigMap key -> the Kolla destination named by a `config.json` in the ConfigMap.
fn kolla_destinations(body: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(data) = body.and_then(|b| b.get("data")).and_then(Value::as_object) else {
        return out;
    };
    for (key, text) in data {
        if !key.ends_with("config.json") {
            continue;
        }
        let Some(doc) = text.as_str().and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
            continue;
        };
        for file in doc
            .get("config_files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(source), Some(dest)) = (
                file.get("source").and_then(Value::as_str),
                file.get("dest").and_then(Value::as_str),
            ) else {
                continue;
            };
            if let Some(k) = source.rsplit('/').next() {
                out.entry(k.to_string()).or_insert_with(|| dest.to_string());
            }
        }
    }
    out
}

fn component_counts(plan: &Plan, topology: &Topology) -> ComponentCounts {
    let mut touched: BTreeSet<String> = plan
        .apply_changes()
        .chain(plan.deletion_changes())
        .filter(|c| c.action != Action::Unchanged)
        .map(|c| c.component.clone())
        .collect();
    touched.extend(plan.refusals.iter().map(|r| r.component.clone()));
    let untouched = topology
        .components
        .keys()
        .filter(|c| !touched.contains(*c))
        .cloned()
        .collect();
    ComponentCounts {
        touched: touched.into_iter().collect(),
        untouched,
    }
}
