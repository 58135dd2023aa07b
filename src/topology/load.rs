//! Snapshot -> validated [`Topology`]. Every file is read and every check runs even after the
//! first problem, so one `keelson validate` names everything that is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::source::{DEFAULT_MAX_FILE_SIZE, Snapshot, SnapshotEntry};
use crate::yaml::{self, Document, Location, YamlError};

use super::checks::{
    check_bootstrap, check_bootstrap_fields, check_no_workload, check_pod_details, check_secret_references,
    check_secret_specs,
};
use super::diagnostics::{Diagnostic, Diagnostics};
use super::spec::{
    API_VERSION, ConfigFile, Dependency, EnvVar, JobSpec, MountPropagation, Policy, Probe, ServiceDocument,
    ServiceSpec, TopologyDocument, TopologySpec, Volume, WaitFor, WorkloadKind,
};
use super::sync_windows::{SyncWindow, SyncWindows};
use super::{Component, RawManifest, Topology, graph, image, names, oslo, policy, suggest};

/// The root document of a topology.
pub const TOPOLOGY_FILE: &str = "keelson.yaml";
/// The folder holding one `<component>.yaml` per component.
pub const SERVICES_DIR: &str = "services";
/// Replicas above this are taken for a typo.
pub const MAX_REPLICAS: i32 = 1000;
/// Most shape errors (unknown fields, wrong types) reported for one document.
const MAX_SHAPE_ERRORS: usize = 20;
/// Longest StatefulSet name whose pods' `controller-revision-hash` label still fits.
const MAX_STATEFULSET_NAME: usize = 52;
/// `-<8 hex>` plus the `-` between component and job name in a rendered Job's name.
const JOB_NAME_OVERHEAD: usize = 10;
/// The component that holds keelson.yaml's `spec.secrets`. Not a DNS label, so no service file can
/// take the name; every other component depends on it.
pub const SHARED_COMPONENT: &str = "keelson.yaml";
/// Names of the Jobs the `database`, `messaging` and `identity` fields render; a written job may not
/// take them.
pub const BOOTSTRAP_JOB_NAMES: &[&str] = &[
    "db-init",
    "rabbit-init",
    "ks-register",
    "ks-domain",
    "ks-bootstrap",
];

/// Parses and validates the topology in `snapshot`. Either every component is valid and every
/// reference resolves, or the result lists every problem found.
pub fn load(snapshot: &Snapshot) -> Result<Topology, Diagnostics> {
    load_with_warnings(snapshot).result
}

/// What validating a topology found: the topology or every error, and in both cases the warnings
/// (deprecated configuration), which never block.
#[derive(Debug)]
pub struct Loaded {
    pub result: Result<Topology, Diagnostics>,
    pub warnings: Diagnostics,
    /// The oslo.config files checked against option data (`spec.configSchemas`).
    pub checked_config_files: Vec<oslo::CheckedFile>,
}

/// [`load`], with the warnings and what was checked against option data.
#[tracing::instrument(skip_all, fields(revision = %snapshot.revision.id))]
pub fn load_with_warnings(snapshot: &Snapshot) -> Loaded {
    let mut diags = Vec::new();
    let root = load_topology_document(snapshot, &mut diags);
    let fallback;
    let context = match &root {
        Some(root) => Context {
            spec: &root.document.spec,
            namespace_known: names::dns1123_label(&root.document.spec.namespace).is_ok(),
            policy_known: true,
        },
        None => {
            fallback = fallback_spec();
            Context {
                spec: &fallback,
                namespace_known: false,
                policy_known: false,
            }
        }
    };

    let mut parsed: Vec<ParsedService> = Vec::new();
    // Components whose file exists but could not be read: other components may still name them
    // without a second, misleading "unknown component" error.
    let mut unreadable: BTreeSet<String> = BTreeSet::new();
    if let Some(entry) = snapshot.get(SERVICES_DIR) {
        let what = match entry {
            SnapshotEntry::Symlink { target } => {
                format!("a symlink (to `{target}`); symlinks are not followed")
            }
            SnapshotEntry::Submodule => "a Git submodule".to_string(),
            _ => "a file".to_string(),
        };
        diags.push(file_diag(
            SERVICES_DIR,
            format!("{SERVICES_DIR} must be a directory, found {what}"),
        ));
    }
    for (path, entry) in snapshot.entries_under(SERVICES_DIR) {
        let stem = path
            .strip_prefix("services/")
            .and_then(|p| p.strip_suffix(".yaml"));
        match load_service_file(path, entry, &mut diags) {
            Some(service) => {
                // A renamed `metadata.name` is reported once, at the rename: the components that still
                // name the file's component are not unknown.
                if let Some(stem) = stem.filter(|s| *s != service.document.metadata.name) {
                    unreadable.insert(stem.to_string());
                }
                parsed.push(service);
            }
            None => {
                if let Some(stem) = stem {
                    unreadable.insert(stem.to_string());
                }
            }
        }
    }

    let mut components = BTreeMap::new();
    let mut names_seen: BTreeMap<&str, &str> = BTreeMap::new();
    for service in &parsed {
        let name = service.document.metadata.name.as_str();
        if let Some(first) = names_seen.get(name) {
            diags.push(diag(
                &service.file,
                service.doc.locate("metadata.name"),
                "metadata.name",
                format!("duplicate component name `{name}`, already declared in {first}"),
            ));
            continue;
        }
        names_seen.insert(name, &service.file);
        let mut check = Check {
            file: &service.file,
            doc: &service.doc,
            diags: &mut diags,
        };
        if let Some(component) = check_component(&mut check, snapshot, &context, service) {
            components.insert(name.to_string(), component);
        }
    }

    check_dependencies(&parsed, &names_seen, &unreadable, &mut diags);
    check_duplicate_objects(&components, context.spec, &mut diags);
    let config = match &root {
        Some(root) => {
            let locate = |file: &str, field: &str| {
                if file == TOPOLOGY_FILE {
                    return root.doc.locate(field);
                }
                parsed
                    .iter()
                    .find(|service| service.file == file)
                    .map_or(Location::START, |service| service.doc.locate(field))
            };
            let spec = &root.document.spec;
            oslo::check_topology(
                snapshot,
                &spec.config_schemas,
                &components,
                &spec.images.tag,
                &locate,
            )
        }
        None => oslo::Outcome::default(),
    };
    diags.extend(config.errors);
    if let Some(root) = &root {
        check_secret_references(root, &parsed, &names_seen, &mut diags);
        if !root.document.spec.secrets.is_empty() {
            let shared = shared_component(root, context.spec);
            for component in components.values_mut() {
                component
                    .spec
                    .depends_on
                    .insert(0, Dependency::healthy(SHARED_COMPONENT));
            }
            components.insert(SHARED_COMPONENT.to_string(), shared);
        }
    }

    tracing::debug!(
        components = components.len(),
        problems = diags.len(),
        warnings = config.warnings.len(),
        "topology checked"
    );
    let result = match root {
        Some(root) if diags.is_empty() => Ok(Topology {
            name: root.document.metadata.name,
            spec: root.document.spec,
            health_timeout: root.health_timeout,
            components,
            sync_windows: root.sync_windows,
        }),
        _ => Err(Diagnostics::new(diags)),
    };
    Loaded {
        result,
        warnings: Diagnostics::new(config.warnings),
        checked_config_files: config.checked,
    }
}

pub(super) struct RootDocument {
    pub(super) document: TopologyDocument,
    /// Positions of keelson.yaml's fields, for findings about them made after loading.
    pub(super) doc: Document,
    health_timeout: Duration,
    /// Ciphertexts of the age files keelson.yaml's secrets name.
    encrypted_files: BTreeMap<String, Vec<u8>>,
    sync_windows: SyncWindows,
}

/// keelson.yaml's `spec.secrets` as a component of their own, applied before every other.
fn shared_component(root: &RootDocument, spec: &TopologySpec) -> Component {
    let service = ServiceSpec {
        workload: WorkloadKind::None,
        secrets: spec.secrets.clone(),
        ..empty_service_spec()
    };
    Component {
        name: SHARED_COMPONENT.to_string(),
        project: root.document.metadata.name.clone(),
        file: TOPOLOGY_FILE.to_string(),
        spec: service,
        image: String::new(),
        job_images: Vec::new(),
        health_timeout: root.health_timeout,
        config_contents: Vec::new(),
        manifests: Vec::new(),
        container_images: BTreeMap::new(),
        toolbox_image: None,
        encrypted_files: root.encrypted_files.clone(),
    }
}

fn empty_service_spec() -> ServiceSpec {
    // Every field of a ServiceSpec has a default; an empty mapping always deserializes.
    serde_json::from_value(serde_json::json!({})).unwrap_or_else(|_| unreachable_spec())
}

#[cold]
fn unreachable_spec() -> ServiceSpec {
    ServiceSpec {
        project: None,
        depends_on: Vec::new(),
        workload: WorkloadKind::None,
        image: String::new(),
        replicas: 1,
        command: None,
        args: Vec::new(),
        env: Vec::new(),
        ports: Vec::new(),
        readiness_probe: None,
        resources: None,
        node_selector: BTreeMap::new(),
        host_network: false,
        privileged: false,
        host_pid: false,
        host_ipc: false,
        volumes: Vec::new(),
        init_containers: Vec::new(),
        sidecars: Vec::new(),
        termination_grace_period_seconds: None,
        lifecycle: None,
        anti_affinity: None,
        topology_spread: Vec::new(),
        disruption_budget: None,
        secrets: Vec::new(),
        database: None,
        messaging: None,
        identity: None,
        config_files: Vec::new(),
        jobs: Vec::new(),
        health_timeout: None,
        manifests: Vec::new(),
        recreate_on_immutable_change: false,
    }
}

pub(super) struct ParsedService {
    pub(super) file: String,
    pub(super) doc: Document,
    pub(super) document: ServiceDocument,
}

/// What component checks need from `keelson.yaml`.
struct Context<'a> {
    spec: &'a TopologySpec,
    /// False when `keelson.yaml` is broken: checks that compare against its namespace are skipped
    /// rather than reporting noise.
    namespace_known: bool,
    /// False when `keelson.yaml` is broken: its policy is unknown, so the checks against it are skipped
    /// (a default policy would refuse what the real one allows, once per component).
    policy_known: bool,
}

fn fallback_spec() -> TopologySpec {
    TopologySpec {
        namespace: String::new(),
        images: Default::default(),
        health_timeout: "10m".to_string(),
        policy: Policy::default(),
        config_schemas: Vec::new(),
        secrets: Vec::new(),
        bootstrap: None,
        tombstones: Default::default(),
        sync_windows: Vec::new(),
    }
}

pub(super) fn diag(file: &str, at: Location, field: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        file: file.to_string(),
        line: at.line,
        column: at.column,
        field: if field.is_empty() {
            ".".to_string()
        } else {
            field.to_string()
        },
        message: message.into(),
    }
}

/// Findings about one document.
pub(super) struct Check<'a> {
    pub(super) file: &'a str,
    pub(super) doc: &'a Document,
    pub(super) diags: &'a mut Vec<Diagnostic>,
}

impl Check<'_> {
    pub(super) fn at(&mut self, field: &str, message: impl Into<String>) {
        let at = self.doc.locate(field);
        self.diags.push(diag(self.file, at, field, message));
    }

    pub(super) fn result(&mut self, field: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.at(field, message);
        }
    }

    pub(super) fn count(&self) -> usize {
        self.diags.len()
    }
}

/// A whole-file problem (missing, unreadable, not YAML).
fn file_diag(file: &str, message: impl Into<String>) -> Diagnostic {
    diag(file, Location::START, ".", message)
}

fn yaml_diag(file: &str, error: YamlError) -> Diagnostic {
    match error {
        YamlError::Syntax { location, message } => {
            diag(file, location, ".", format!("invalid YAML: {message}"))
        }
        YamlError::Shape {
            location,
            path,
            message,
        } => diag(file, location, &path, message),
        YamlError::Write { message } => file_diag(file, message),
    }
}

/// The text of a file the topology itself consists of (not one it references).
/// `subject` names the file in the message: "this file" for a problem reported in the file itself,
/// its path for a file referenced from elsewhere.
fn entry_text<'s>(subject: &str, entry: Option<&'s SnapshotEntry>) -> Result<&'s str, String> {
    match entry {
        None => Err(format!("{subject} is missing")),
        Some(SnapshotEntry::File(bytes)) => {
            std::str::from_utf8(bytes).map_err(|e| format!("{subject} is not valid UTF-8 text: {e}"))
        }
        Some(SnapshotEntry::Symlink { target }) => Err(format!(
            "{subject} is a symlink (to `{target}`); symlinks are not followed"
        )),
        Some(SnapshotEntry::TooLarge { size }) => Err(format!(
            "{subject} is {size} bytes, larger than the {} byte limit",
            DEFAULT_MAX_FILE_SIZE
        )),
        Some(SnapshotEntry::Submodule) => Err(format!("{subject} is a Git submodule, not a file")),
    }
}

fn check_header(check: &mut Check<'_>, api_version: &str, kind: &str, want_kind: &str) {
    if api_version != API_VERSION {
        check.at(
            "apiVersion",
            format!("must be `{API_VERSION}`, found `{api_version}`"),
        );
    }
    if kind != want_kind {
        check.at(
            "kind",
            format!("must be `{want_kind}` in this file, found `{kind}`"),
        );
    }
}

fn check_metadata(check: &mut Check<'_>, metadata: &super::spec::Metadata) {
    for (key, value) in &metadata.labels {
        check.result(&format!("metadata.labels.{key}"), names::label_key(key));
        check.result(&format!("metadata.labels.{key}"), names::label_value(value));
    }
    for key in metadata.annotations.keys() {
        check.result(&format!("metadata.annotations.{key}"), names::label_key(key));
    }
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(d) if d.is_zero() => Err(format!("duration `{value}` must be greater than zero")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "`{value}` is not a duration (e.g. `90s`, `10m`, `1h 30m`): {e}"
        )),
    }
}

fn load_topology_document(snapshot: &Snapshot, diags: &mut Vec<Diagnostic>) -> Option<RootDocument> {
    let text = match entry_text("this file", snapshot.get(TOPOLOGY_FILE)) {
        Ok(text) => text,
        Err(message) if snapshot.get(TOPOLOGY_FILE).is_none() => {
            diags.push(file_diag(
                TOPOLOGY_FILE,
                format!("{message}: the topology root must hold {TOPOLOGY_FILE}"),
            ));
            return None;
        }
        Err(message) => {
            diags.push(file_diag(TOPOLOGY_FILE, message));
            return None;
        }
    };
    let doc = match yaml::parse_document(text) {
        Ok(doc) => doc,
        Err(e) => {
            diags.push(yaml_diag(TOPOLOGY_FILE, e));
            return None;
        }
    };
    if doc.is_empty() {
        diags.push(file_diag(TOPOLOGY_FILE, "document is empty"));
        return None;
    }
    let document: TopologyDocument = match doc.deserialize_all(MAX_SHAPE_ERRORS) {
        Ok(d) => d,
        Err(errors) => {
            diags.extend(errors.into_iter().map(|e| yaml_diag(TOPOLOGY_FILE, e)));
            return None;
        }
    };
    let mut check = Check {
        file: TOPOLOGY_FILE,
        doc: &doc,
        diags,
    };
    check_header(&mut check, &document.api_version, &document.kind, "Topology");
    check_metadata(&mut check, &document.metadata);
    check.result("metadata.name", names::dns1123_label(&document.metadata.name));
    let spec = &document.spec;
    check.result("spec.namespace", names::dns1123_label(&spec.namespace));
    let health_timeout = match parse_duration(&spec.health_timeout) {
        Ok(d) => d,
        Err(e) => {
            check.at("spec.healthTimeout", e);
            Duration::ZERO
        }
    };
    for (field, message) in image::check_defaults(&spec.images) {
        check.at(&format!("spec.images.{field}"), message);
    }
    for (i, secret) in spec.images.pull_secrets.iter().enumerate() {
        check.result(
            &format!("spec.images.pullSecrets[{i}]"),
            names::dns1123_subdomain(secret),
        );
    }
    let policy = &spec.policy;
    for (i, namespace) in policy.allowed_namespaces.iter().enumerate() {
        check.result(
            &format!("spec.policy.allowedNamespaces[{i}]"),
            names::dns1123_label(namespace),
        );
    }
    for (i, kind) in policy.allowed_kinds.iter().enumerate() {
        check.result(
            &format!("spec.policy.allowedKinds[{i}]"),
            policy::check_allowed_kind(kind),
        );
    }
    if policy.prune_budget_percent > 100 {
        check.at(
            "spec.policy.pruneBudgetPercent",
            format!("{} is not a percentage (0-100)", policy.prune_budget_percent),
        );
    }
    let encrypted_files = check_secret_specs(&mut check, snapshot, "spec.secrets", &spec.secrets);
    check_bootstrap(&mut check, spec);
    for (i, name) in spec.tombstones.secrets.iter().enumerate() {
        let field = format!("spec.tombstones.secrets[{i}]");
        check.result(&field, names::dns1123_subdomain(name));
    }
    let mut sync_windows = Vec::new();
    for (i, window) in spec.sync_windows.iter().enumerate() {
        match SyncWindow::parse(window) {
            Ok(window) => sync_windows.push(window),
            Err(problems) => {
                for (field, message) in problems {
                    check.at(&format!("spec.syncWindows[{i}].{field}"), message);
                }
            }
        }
    }
    // Problems found here are already reported; the document is still the best guide for checking
    // the components, so it is returned all the same.
    Some(RootDocument {
        document,
        doc,
        health_timeout,
        encrypted_files,
        sync_windows: SyncWindows(sync_windows),
    })
}

fn load_service_file(
    path: &str,
    entry: &SnapshotEntry,
    diags: &mut Vec<Diagnostic>,
) -> Option<ParsedService> {
    let relative = &path[SERVICES_DIR.len() + 1..];
    if relative.contains('/') {
        diags.push(file_diag(
            path,
            format!("{SERVICES_DIR}/ holds one <component>.yaml per component; subdirectories are not read"),
        ));
        return None;
    }
    // Git cannot hold an empty directory; a placeholder is not a stray file.
    if relative == ".gitkeep" {
        return None;
    }
    let Some(stem) = relative.strip_suffix(".yaml") else {
        let hint = if relative.ends_with(".yml") {
            " (rename it to .yaml)"
        } else {
            ""
        };
        diags.push(file_diag(
            path,
            format!("only .yaml files belong in {SERVICES_DIR}/{hint}"),
        ));
        return None;
    };
    let text = match entry_text("this file", Some(entry)) {
        Ok(text) => text,
        Err(message) => {
            diags.push(file_diag(path, message));
            return None;
        }
    };
    let doc = match yaml::parse_document(text) {
        Ok(doc) => doc,
        Err(e) => {
            diags.push(yaml_diag(path, e));
            return None;
        }
    };
    if doc.is_empty() {
        diags.push(file_diag(path, "document is empty"));
        return None;
    }
    let document: ServiceDocument = match doc.deserialize_all(MAX_SHAPE_ERRORS) {
        Ok(d) => d,
        Err(errors) => {
            diags.extend(errors.into_iter().map(|e| yaml_diag(path, e)));
            return None;
        }
    };
    let mut check = Check {
        file: path,
        doc: &doc,
        diags,
    };
    check_header(&mut check, &document.api_version, &document.kind, "Service");
    check_metadata(&mut check, &document.metadata);
    if document.metadata.name != stem {
        check.at(
            "metadata.name",
            format!(
                "`{}` must match the file name `{stem}` (services/<name>.yaml)",
                document.metadata.name
            ),
        );
    }
    Some(ParsedService {
        file: path.to_string(),
        doc,
        document,
    })
}

/// Checks one component on its own; cross-component checks run afterwards.
fn check_component(
    check: &mut Check<'_>,
    snapshot: &Snapshot,
    context: &Context<'_>,
    service: &ParsedService,
) -> Option<Component> {
    let before = check.count();
    let name = &service.document.metadata.name;
    let spec: &ServiceSpec = &service.document.spec;
    let topology = context.spec;

    check.result("metadata.name", names::dns1035_label(name));
    // A StatefulSet's pods carry `controller-revision-hash: <name>-<10 chars>`, a label value that
    // may not exceed 63 characters; longer names create StatefulSets whose pods never start.
    if spec.workload == WorkloadKind::StatefulSet && name.len() > MAX_STATEFULSET_NAME {
        check.at(
            "metadata.name",
            format!(
                "a StatefulSet name may have at most {MAX_STATEFULSET_NAME} characters, `{name}` has {}",
                name.len()
            ),
        );
    }
    let project = spec.project.clone().unwrap_or_else(|| name.clone());
    if spec.project.is_some() {
        check.result("spec.project", names::dns1123_label(&project));
    }
    let mut seen = BTreeSet::new();
    for (i, dep) in spec.depends_on.iter().enumerate() {
        if !seen.insert(dep.component.as_str()) {
            check.at(
                &format!("spec.dependsOn[{i}]"),
                format!("`{}` is listed twice", dep.component),
            );
        }
    }

    let jobs_name_images = spec.jobs.iter().all(|j| j.image.is_some());
    let image = if spec.image.is_empty() && spec.workload == WorkloadKind::None && jobs_name_images {
        String::new()
    } else if spec.image.is_empty() {
        check.at(
            "spec",
            "missing field `image` (needed by the workload and by every job that names no image of its own)",
        );
        String::new()
    } else {
        match image::resolve(&spec.image, &topology.images) {
            Ok(image) => image,
            Err(e) => {
                check.at("spec.image", e);
                String::new()
            }
        }
    };

    if spec.replicas < 0 {
        check.at("spec.replicas", format!("{} must not be negative", spec.replicas));
    } else if spec.replicas > MAX_REPLICAS {
        check.at(
            "spec.replicas",
            format!("{} is more than {MAX_REPLICAS}; is it a typo?", spec.replicas),
        );
    }
    let replicas_written = service
        .doc
        .value()
        .get("spec")
        .and_then(|s| s.get("replicas"))
        .is_some();
    if spec.workload == WorkloadKind::DaemonSet && replicas_written {
        check.at(
            "spec.replicas",
            "a DaemonSet runs one pod per node; remove replicas",
        );
    }
    if spec.workload == WorkloadKind::None {
        check_no_workload(check, service, spec);
    }
    if spec.command.as_deref().is_some_and(|c| c.trim().is_empty()) {
        check.at("spec.command", "must not be empty");
    }

    check_env(check, "spec.env", &spec.env);
    check_ports(check, spec);
    if let Some(probe) = &spec.readiness_probe {
        check_probe(check, "spec.readinessProbe", probe);
    }
    if let Some(resources) = &spec.resources {
        for (section, map) in [("requests", &resources.requests), ("limits", &resources.limits)] {
            for (resource, quantity) in map {
                check.result(
                    &format!("spec.resources.{section}.{resource}"),
                    names::quantity(quantity),
                );
            }
        }
    }
    for (key, value) in &spec.node_selector {
        check.result(&format!("spec.nodeSelector.{key}"), names::label_key(key));
        check.result(&format!("spec.nodeSelector.{key}"), names::label_value(value));
    }
    if context.policy_known && spec.host_network && !topology.policy.allow_host_network {
        check.at(
            "spec.hostNetwork",
            "host networking is not allowed by keelson.yaml spec.policy.allowHostNetwork",
        );
    }
    if context.policy_known && spec.privileged && !topology.policy.allow_privileged {
        check.at(
            "spec.privileged",
            "privileged containers are not allowed by keelson.yaml spec.policy.allowPrivileged",
        );
    }
    if context.policy_known && spec.host_pid && !topology.policy.allow_host_pid {
        check.at(
            "spec.hostPID",
            "sharing the host's process namespace is not allowed by keelson.yaml spec.policy.allowHostPID",
        );
    }
    if context.policy_known && spec.host_ipc && !topology.policy.allow_host_ipc {
        check.at(
            "spec.hostIPC",
            "sharing the host's IPC namespace is not allowed by keelson.yaml spec.policy.allowHostIPC",
        );
    }
    check_volumes(check, spec);
    let container_images = check_pod_details(check, spec, &image, topology, context.policy_known);
    let config_contents = check_config_files(check, snapshot, &spec.config_files);
    let job_images = check_jobs(check, name, &image, &topology.images, &spec.jobs);
    let encrypted_files = check_secret_specs(check, snapshot, "spec.secrets", &spec.secrets);
    let toolbox_image = check_bootstrap_fields(check, spec, topology, context.policy_known);

    let health_timeout = match &spec.health_timeout {
        Some(value) => parse_duration(value).unwrap_or_else(|e| {
            check.at("spec.healthTimeout", e);
            Duration::ZERO
        }),
        None => parse_duration(&topology.health_timeout).unwrap_or(Duration::ZERO),
    };
    let manifests = check_manifests(check, snapshot, context, &spec.manifests);

    if check.count() > before {
        return None;
    }
    Some(Component {
        name: name.clone(),
        project,
        file: service.file.clone(),
        spec: spec.clone(),
        image,
        job_images,
        health_timeout,
        config_contents,
        manifests,
        container_images,
        toolbox_image,
        encrypted_files,
    })
}

pub(super) fn check_env(check: &mut Check<'_>, base: &str, env: &[EnvVar]) {
    let mut seen = BTreeSet::new();
    for (i, var) in env.iter().enumerate() {
        let field = format!("{base}[{i}]");
        check.result(&format!("{field}.name"), names::env_var_name(&var.name));
        if !seen.insert(&var.name) {
            check.at(
                &format!("{field}.name"),
                format!("environment variable `{}` is set twice", var.name),
            );
        }
        let sources = [
            var.value.is_some(),
            var.secret_key_ref.is_some(),
            var.config_map_key_ref.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            check.at(
                &field,
                format!(
                    "`{}` needs exactly one of value, secretKeyRef, configMapKeyRef",
                    var.name
                ),
            );
        }
        for (kind, key_ref) in [
            ("secretKeyRef", &var.secret_key_ref),
            ("configMapKeyRef", &var.config_map_key_ref),
        ] {
            if let Some(key_ref) = key_ref {
                check.result(
                    &format!("{field}.{kind}.name"),
                    names::dns1123_subdomain(&key_ref.name),
                );
                check.result(&format!("{field}.{kind}.key"), names::config_key(&key_ref.key));
            }
        }
    }
}

pub(super) fn check_port_number(check: &mut Check<'_>, field: &str, port: i32) {
    if !(1..=65535).contains(&port) {
        check.at(field, format!("port {port} is out of range (1-65535)"));
    }
}

fn check_ports(check: &mut Check<'_>, spec: &ServiceSpec) {
    let mut names_seen = BTreeSet::new();
    let mut numbers_seen = BTreeSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        check.result(&format!("{field}.name"), names::port_name(&port.name));
        if !names_seen.insert(&port.name) {
            check.at(
                &format!("{field}.name"),
                format!("port name `{}` is used twice", port.name),
            );
        }
        check_port_number(check, &format!("{field}.port"), port.port);
        if !numbers_seen.insert((port.port, port.protocol as u8)) {
            check.at(
                &format!("{field}.port"),
                format!("port {} is declared twice for the same protocol", port.port),
            );
        }
    }
}

pub(super) fn check_probe(check: &mut Check<'_>, base: &str, probe: &Probe) {
    let handlers = [
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
        probe.exec.is_some(),
    ];
    if handlers.iter().filter(|h| **h).count() != 1 {
        check.at(base, "a probe needs exactly one of httpGet, tcpSocket, exec");
    }
    if let Some(http) = &probe.http_get {
        check_port_number(check, &format!("{base}.httpGet.port"), http.port);
        if !http.path.starts_with('/') {
            check.at(
                &format!("{base}.httpGet.path"),
                format!("`{}` must start with `/`", http.path),
            );
        }
        if let Some(scheme) = &http.scheme {
            if scheme != "HTTP" && scheme != "HTTPS" {
                check.at(
                    &format!("{base}.httpGet.scheme"),
                    format!("`{scheme}` must be HTTP or HTTPS"),
                );
            }
        }
    }
    if let Some(tcp) = &probe.tcp_socket {
        check_port_number(check, &format!("{base}.tcpSocket.port"), tcp.port);
    }
    if let Some(exec) = &probe.exec {
        if exec.command.is_empty() {
            check.at(&format!("{base}.exec.command"), "must not be empty");
        }
    }
    let numbers = [
        ("initialDelaySeconds", probe.initial_delay_seconds, 0),
        ("periodSeconds", probe.period_seconds, 1),
        ("timeoutSeconds", probe.timeout_seconds, 1),
        ("failureThreshold", probe.failure_threshold, 1),
    ];
    for (field, value, min) in numbers {
        if let Some(value) = value {
            if value < min {
                check.at(
                    &format!("{base}.{field}"),
                    format!("{value} must be at least {min}"),
                );
            }
        }
    }
}

fn check_volumes(check: &mut Check<'_>, spec: &ServiceSpec) {
    let mut names_seen = BTreeSet::new();
    let mut mounts_seen = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().enumerate() {
        let field = format!("spec.volumes[{i}]");
        check.result(&format!("{field}.name"), names::dns1123_label(&volume.name));
        if !names_seen.insert(&volume.name) {
            check.at(
                &format!("{field}.name"),
                format!("volume name `{}` is used twice", volume.name),
            );
        }
        if !volume.mount_path.starts_with('/') {
            check.at(
                &format!("{field}.mountPath"),
                format!("`{}` must be an absolute path", volume.mount_path),
            );
        } else if !mounts_seen.insert(volume.mount_path.trim_end_matches('/')) {
            check.at(
                &format!("{field}.mountPath"),
                format!("`{}` is mounted twice", volume.mount_path),
            );
        }
        check_volume_source(check, &field, volume);
        if volume.mount_propagation == Some(MountPropagation::Bidirectional) && !spec.privileged {
            check.at(
                &format!("{field}.mountPropagation"),
                "Bidirectional mount propagation needs a privileged container (spec.privileged: true)",
            );
        }
    }
}

fn check_volume_source(check: &mut Check<'_>, field: &str, volume: &Volume) {
    let sources = [
        volume.empty_dir.is_some(),
        volume.host_path.is_some(),
        volume.secret.is_some(),
        volume.config_map.is_some(),
        volume.persistent.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        check.at(
            field,
            "a volume needs exactly one of emptyDir, hostPath, secret, configMap, persistent",
        );
    }
    if let Some(empty_dir) = &volume.empty_dir {
        if let Some(medium) = &empty_dir.medium {
            if !medium.is_empty() && medium != "Memory" {
                check.at(
                    &format!("{field}.emptyDir.medium"),
                    format!("`{medium}` must be empty or `Memory`"),
                );
            }
        }
    }
    if let Some(host_path) = &volume.host_path {
        if !host_path.path.starts_with('/') {
            check.at(
                &format!("{field}.hostPath.path"),
                format!("`{}` must be an absolute path", host_path.path),
            );
        }
    }
    if let Some(secret) = &volume.secret {
        check.result(
            &format!("{field}.secret.name"),
            names::dns1123_subdomain(&secret.name),
        );
    }
    if let Some(config_map) = &volume.config_map {
        check.result(
            &format!("{field}.configMap.name"),
            names::dns1123_subdomain(&config_map.name),
        );
    }
    if let Some(persistent) = &volume.persistent {
        check.result(
            &format!("{field}.persistent.size"),
            names::quantity(&persistent.size),
        );
        if let Some(class) = &persistent.storage_class {
            check.result(
                &format!("{field}.persistent.storageClass"),
                names::dns1123_subdomain(class),
            );
        }
    }
}

/// Checks a repo-relative path and returns the text of the file it names.
pub(super) fn read_repo_file<'s>(snapshot: &'s Snapshot, path: &str) -> Result<&'s str, String> {
    let entry = repo_entry(snapshot, path)?;
    entry_text(&format!("`{path}`"), Some(entry))
}

/// The bytes of a repo-relative file that need not be text (an age ciphertext).
pub(super) fn read_repo_bytes<'s>(snapshot: &'s Snapshot, path: &str) -> Result<&'s [u8], String> {
    match repo_entry(snapshot, path)? {
        SnapshotEntry::File(bytes) => Ok(bytes),
        other => entry_text(&format!("`{path}`"), Some(other)).map(str::as_bytes),
    }
}

/// Checks a repo-relative path and returns the entry it names, refusing anything but a plain file.
fn repo_entry<'s>(snapshot: &'s Snapshot, path: &str) -> Result<&'s SnapshotEntry, String> {
    if path.is_empty() {
        return Err("path must not be empty".to_string());
    }
    if path.starts_with('/') {
        return Err(format!(
            "`{path}` must be relative to the repository root, not absolute"
        ));
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments.contains(&"..") {
        return Err(format!(
            "`{path}` must not contain `..`: files outside the repository cannot be read"
        ));
    }
    if segments.iter().any(|s| s.is_empty() || *s == ".") {
        return Err(format!(
            "`{path}` must be a plain relative path (no empty or `.` segments)"
        ));
    }
    for end in 1..segments.len() {
        let prefix = segments[..end].join("/");
        if let Some(SnapshotEntry::Symlink { target }) = snapshot.get(&prefix) {
            return Err(format!(
                "`{path}` goes through the symlink `{prefix}` (to `{target}`); symlinks are not followed"
            ));
        }
    }
    match snapshot.get(path) {
        None if snapshot.entries_under(path).next().is_some() => {
            Err(format!("`{path}` is a directory, not a file"))
        }
        None => Err(format!("`{path}` does not exist in the repository")),
        Some(SnapshotEntry::Symlink { target }) => {
            let escapes = target.starts_with('/') || target.split('/').any(|s| s == "..");
            let why = if escapes {
                "points outside the repository"
            } else {
                "is a symlink"
            };
            Err(format!(
                "`{path}` {why} (to `{target}`); symlinks are not followed"
            ))
        }
        Some(entry) => Ok(entry),
    }
}

fn check_config_files(check: &mut Check<'_>, snapshot: &Snapshot, files: &[ConfigFile]) -> Vec<String> {
    let mut contents = Vec::with_capacity(files.len());
    let mut dests = BTreeSet::new();
    for (i, file) in files.iter().enumerate() {
        let field = format!("spec.configFiles[{i}]");
        match read_repo_file(snapshot, &file.source) {
            Ok(text) => contents.push(text.to_string()),
            Err(e) => {
                check.at(&format!("{field}.source"), e);
                contents.push(String::new());
            }
        }
        if !file.dest.starts_with('/') || file.dest.ends_with('/') {
            check.at(
                &format!("{field}.dest"),
                format!("`{}` must be an absolute file path", file.dest),
            );
        } else if !dests.insert(&file.dest) {
            check.at(
                &format!("{field}.dest"),
                format!("`{}` is the destination of two config files", file.dest),
            );
        }
        let perm_ok =
            (3..=4).contains(&file.perm.len()) && file.perm.chars().all(|c| ('0'..='7').contains(&c));
        if !perm_ok {
            check.at(
                &format!("{field}.perm"),
                format!("`{}` must be an octal mode such as `0640`", file.perm),
            );
        }
        let owner_ok = file.owner.split(':').count() <= 2
            && file.owner.split(':').all(|part| {
                !part.is_empty()
                    && part.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            });
        if !owner_ok {
            check.at(
                &format!("{field}.owner"),
                format!("`{}` must be `user` or `user:group`", file.owner),
            );
        }
    }
    contents
}

fn check_jobs(
    check: &mut Check<'_>,
    component: &str,
    component_image: &str,
    defaults: &super::spec::ImageDefaults,
    jobs: &[JobSpec],
) -> Vec<String> {
    let mut images = Vec::with_capacity(jobs.len());
    let mut seen = BTreeSet::new();
    for (i, job) in jobs.iter().enumerate() {
        let field = format!("spec.jobs[{i}]");
        match names::dns1123_label(&job.name) {
            Err(e) => check.at(&format!("{field}.name"), e),
            Ok(()) => {
                let length = component.len() + job.name.len() + JOB_NAME_OVERHEAD;
                if length > names::MAX_LABEL {
                    check.at(
                        &format!("{field}.name"),
                        format!(
                            "the Job name `{component}-{}-<8 hex>` would be {length} characters, at most {} are allowed",
                            job.name,
                            names::MAX_LABEL
                        ),
                    );
                }
            }
        }
        if !seen.insert(&job.name) {
            check.at(
                &format!("{field}.name"),
                format!("job name `{}` is used twice", job.name),
            );
        }
        match (&job.command, &job.script) {
            (Some(command), None) if command.trim().is_empty() => {
                check.at(&format!("{field}.command"), "must not be empty");
            }
            (None, Some(script)) if script.trim().is_empty() => {
                check.at(&format!("{field}.script"), "must not be empty");
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => check.at(&field, "a job needs exactly one of command, script"),
        }
        if let Some(group) = &job.group {
            check.result(&format!("{field}.group"), names::dns1123_label(group));
        }
        if BOOTSTRAP_JOB_NAMES.contains(&job.name.as_str()) {
            check.at(
                &format!("{field}.name"),
                format!(
                    "`{}` is the name of a bootstrap Job Keelson renders from the database, messaging and identity fields; choose another",
                    job.name
                ),
            );
        }
        let image = match &job.image {
            Some(image) => image::resolve(image, defaults).unwrap_or_else(|e| {
                check.at(&format!("{field}.image"), e);
                String::new()
            }),
            None => component_image.to_string(),
        };
        images.push(image);
        check_env(check, &format!("{field}.env"), &job.env);
        if let Some(limit) = job.backoff_limit {
            if !(0..=100).contains(&limit) {
                check.at(
                    &format!("{field}.backoffLimit"),
                    format!("{limit} must be between 0 and 100"),
                );
            }
        }
        if let Some(timeout) = &job.timeout {
            if let Err(e) = parse_duration(timeout) {
                check.at(&format!("{field}.timeout"), e);
            }
        }
    }
    images
}

fn check_manifests(
    check: &mut Check<'_>,
    snapshot: &Snapshot,
    context: &Context<'_>,
    paths: &[String],
) -> Vec<RawManifest> {
    let mut manifests = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, path) in paths.iter().enumerate() {
        let field = format!("spec.manifests[{i}]");
        if !seen.insert(path) {
            check.at(&field, format!("`{path}` is listed twice"));
            continue;
        }
        if !(path.ends_with(".yaml") || path.ends_with(".yml")) {
            check.at(&field, format!("`{path}` must be a .yaml or .yml file"));
            continue;
        }
        let text = match read_repo_file(snapshot, path) {
            Ok(text) => text,
            Err(e) => {
                check.at(&field, e);
                continue;
            }
        };
        let documents = match yaml::parse_documents(text) {
            Ok(documents) => documents,
            Err(e) => {
                check.diags.push(yaml_diag(path, e));
                continue;
            }
        };
        if documents.iter().all(Document::is_empty) {
            check.at(&field, format!("`{path}` holds no Kubernetes object"));
            continue;
        }
        for doc in documents.iter().filter(|d| !d.is_empty()) {
            let mut inner = Check {
                file: path,
                doc,
                diags: check.diags,
            };
            if let Some(manifest) = check_manifest(&mut inner, context, path, doc) {
                manifests.push(manifest);
            }
        }
    }
    manifests
}

fn string_at<'v>(value: &'v yaml::Value, path: &[&str]) -> Option<&'v yaml::Value> {
    let mut current = value;
    for key in path {
        current = current.get(*key)?;
    }
    Some(current)
}

fn check_manifest(
    check: &mut Check<'_>,
    context: &Context<'_>,
    path: &str,
    doc: &Document,
) -> Option<RawManifest> {
    let before = check.count();
    let value = doc.value();
    if !value.is_mapping() {
        check.at(
            "",
            "a manifest document must be a mapping (one Kubernetes object)",
        );
        return None;
    }
    let required = |check: &mut Check<'_>, field: &[&str]| -> Option<String> {
        let dotted = field.join(".");
        match string_at(value, field) {
            None => {
                check.at(&dotted, format!("missing {dotted}"));
                None
            }
            Some(v) => match v.as_str() {
                Some(s) if !s.is_empty() => Some(s.to_string()),
                _ => {
                    check.at(&dotted, "must be a non-empty string");
                    None
                }
            },
        }
    };
    let api_version = required(check, &["apiVersion"]);
    let kind = required(check, &["kind"]);
    let name = required(check, &["metadata", "name"]);
    if let Some(name) = &name {
        check.result("metadata.name", names::dns1123_subdomain(name));
    }
    if let (Some(api_version), Some(kind)) = (&api_version, &kind) {
        let policy = &context.spec.policy;
        if let Some(refusal) =
            policy::kind_refusal(policy, api_version, kind).filter(|_| context.policy_known)
        {
            check.at("kind", refusal);
        }
        match string_at(value, &["metadata", "namespace"]) {
            None => {}
            Some(ns) => match ns.as_str() {
                None => check.at("metadata.namespace", "must be a string"),
                Some(ns) => {
                    if policy::scope(api_version, kind) == policy::Scope::Cluster {
                        check.at(
                            "metadata.namespace",
                            format!("{kind} is cluster-scoped and takes no namespace"),
                        );
                    } else if context.namespace_known
                        && !policy::namespace_allowed(policy, &context.spec.namespace, ns)
                    {
                        check.at(
                            "metadata.namespace",
                            format!(
                                "namespace `{ns}` is not allowed: use `{}` or list it in keelson.yaml spec.policy.allowedNamespaces",
                                context.spec.namespace
                            ),
                        );
                    }
                }
            },
        }
    }
    if check.count() > before {
        return None;
    }
    match doc.to_json() {
        Ok(object) => Some(RawManifest {
            file: path.to_string(),
            line: doc.start().line,
            object,
        }),
        Err(e) => {
            check.diags.push(yaml_diag(path, e));
            None
        }
    }
}

/// Cycles up to this length are reported at each of their `dependsOn` entries.
const CYCLE_ENTRIES_REPORTED: usize = 10;

/// `dependsOn` entries must name other, existing components, wait for what the dependency has, and form
/// no cycle.
fn check_dependencies(
    parsed: &[ParsedService],
    declared: &BTreeMap<&str, &str>,
    unreadable: &BTreeSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    let specs: BTreeMap<&str, &ServiceSpec> = parsed
        .iter()
        .filter(|s| declared.get(s.document.metadata.name.as_str()) == Some(&s.file.as_str()))
        .map(|s| (s.document.metadata.name.as_str(), &s.document.spec))
        .collect();
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut entry_location: BTreeMap<(&str, &str), (&str, Location, String)> = BTreeMap::new();
    for service in parsed {
        let name = service.document.metadata.name.as_str();
        if declared.get(name) != Some(&service.file.as_str()) {
            continue;
        }
        let mut deps = Vec::new();
        for (i, entry) in service.document.spec.depends_on.iter().enumerate() {
            let dep = entry.component.as_str();
            let field = format!("spec.dependsOn[{i}]");
            let at = service.doc.locate(&field);
            if dep == name {
                diags.push(diag(
                    &service.file,
                    at,
                    &field,
                    format!("`{name}` cannot depend on itself"),
                ));
            } else if unreadable.contains(dep) {
                // Reported where it is broken.
            } else if !declared.contains_key(dep) {
                let known = declared
                    .keys()
                    .copied()
                    .chain(unreadable.iter().map(String::as_str));
                let hint = match suggest::closest(dep, known) {
                    Some(close) => format!("; did you mean `{close}`?"),
                    None => String::new(),
                };
                diags.push(diag(
                    &service.file,
                    at,
                    &field,
                    format!("unknown component `{dep}` (no {SERVICES_DIR}/{dep}.yaml){hint}"),
                ));
            } else {
                if let Some(problem) =
                    wait_for_problem(name, &service.document.spec, dep, entry.wait_for, &specs)
                {
                    let field = format!("{field}.for");
                    let at = service.doc.locate(&field);
                    diags.push(diag(&service.file, at, &field, problem));
                }
                deps.push(dep);
                entry_location
                    .entry((name, dep))
                    .or_insert((service.file.as_str(), at, field));
            }
        }
        graph.insert(name, deps);
    }
    for cycle in graph::cycles(&graph) {
        let cut = edge_to_cut(&cycle, &graph);
        let cut_text = match entry_location.get(&cut) {
            Some((file, at, _)) => format!(
                "; to break it, cut `{}` -> `{}` ({file}:{}): drop that entry, or move what both need into a \
                 jobs-only component (`workload: None`) that each depends on",
                cut.0, cut.1, at.line
            ),
            None => String::new(),
        };
        // Every entry of a short cycle is reported where it is written, so the file a change edited is
        // among them; a long one (a generated topology) only at its first entry.
        let starts = if cycle.len() <= CYCLE_ENTRIES_REPORTED {
            cycle.len()
        } else {
            1
        };
        for start in 0..starts {
            let rotated: Vec<&str> = cycle[start..]
                .iter()
                .chain(&cycle[..start])
                .map(String::as_str)
                .collect();
            let (from, to) = (rotated[0], rotated.get(1).copied().unwrap_or(rotated[0]));
            if let Some((file, at, field)) = entry_location.get(&(from, to)) {
                let text = format!("{} -> {from}", rotated.join(" -> "));
                diags.push(diag(
                    file,
                    *at,
                    field,
                    format!("dependency cycle: {text}{cut_text}"),
                ));
            }
        }
    }
}

/// The edge of `cycle` the report proposes to cut: the one leaving the member with the most dependencies
/// (the component most likely to wait for more than it needs), the first such in cycle order on a tie.
fn edge_to_cut<'a>(cycle: &'a [String], graph: &BTreeMap<&str, Vec<&str>>) -> (&'a str, &'a str) {
    let edges = cycle
        .iter()
        .zip(cycle.iter().cycle().skip(1))
        .map(|(from, to)| (from.as_str(), to.as_str()));
    let degree = |from: &str| graph.get(from).map_or(0, Vec::len);
    let mut best: Option<(&str, &str)> = None;
    for edge in edges {
        if best.is_none_or(|b| degree(edge.0) > degree(b.0)) {
            best = Some(edge);
        }
    }
    best.unwrap_or(("", ""))
}

/// What is wrong with waiting for `wait_for` of `dep`, if anything: a Service needs a workload with ports,
/// a per-node wait needs a DaemonSet on both sides.
fn wait_for_problem(
    name: &str,
    spec: &ServiceSpec,
    dep: &str,
    wait_for: WaitFor,
    specs: &BTreeMap<&str, &ServiceSpec>,
) -> Option<String> {
    let dependency = specs.get(dep)?;
    match wait_for {
        WaitFor::Healthy => None,
        WaitFor::Service if dependency.workload == WorkloadKind::None || dependency.ports.is_empty() => {
            Some(format!(
                "`for: Service` waits for `{dep}`'s Service, but `{dep}` has {}; use `for: Healthy`",
                if dependency.workload == WorkloadKind::None {
                    "no workload"
                } else {
                    "no ports, so no Service"
                }
            ))
        }
        WaitFor::Service => None,
        WaitFor::SameNode if spec.workload != WorkloadKind::DaemonSet => Some(format!(
            "`for: SameNode` holds each Pod of `{name}` until `{dep}`'s Pod on its node is Ready, so `{name}` \
             must be a DaemonSet (it is a {:?})",
            spec.workload
        )),
        WaitFor::SameNode if dependency.workload != WorkloadKind::DaemonSet => Some(format!(
            "`for: SameNode` waits for `{dep}`'s Pod on the same node, so `{dep}` must be a DaemonSet (it is a {:?})",
            dependency.workload
        )),
        WaitFor::SameNode => None,
    }
}

/// Two raw manifests must not describe the same object.
fn check_duplicate_objects(
    components: &BTreeMap<String, Component>,
    spec: &TopologySpec,
    diags: &mut Vec<Diagnostic>,
) {
    let mut seen: BTreeMap<(String, String, String, String), (String, usize)> = BTreeMap::new();
    for component in components.values() {
        for manifest in &component.manifests {
            let text = |p: &str| {
                manifest
                    .object
                    .pointer(p)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let api_version = text("/apiVersion");
            let group = policy::api_group(&api_version).to_string();
            let namespace = match manifest
                .object
                .pointer("/metadata/namespace")
                .and_then(|v| v.as_str())
            {
                Some(ns) => ns.to_string(),
                None => spec.namespace.clone(),
            };
            let key = (group, text("/kind"), namespace, text("/metadata/name"));
            if let Some((file, line)) = seen.get(&key) {
                diags.push(Diagnostic {
                    file: manifest.file.clone(),
                    line: manifest.line,
                    column: 1,
                    field: "metadata.name".to_string(),
                    message: format!("{} {} is also declared in {file}:{line}", key.1, key.3),
                });
            } else {
                seen.insert(key, (manifest.file.clone(), manifest.line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Revision;

    fn snapshot(files: &[(&str, &str)]) -> Snapshot {
        let entries = files
            .iter()
            .map(|(path, text)| (path.to_string(), SnapshotEntry::File(text.as_bytes().to_vec())))
            .collect();
        Snapshot::new(
            Revision {
                id: "test".into(),
                origin: "memory".into(),
            },
            None,
            entries,
        )
    }

    const TOPOLOGY: &str = "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: lab\nspec:\n  namespace: openstack\n  images:\n    tag: 2024.2-rocky-9\n  healthTimeout: 7m\n";

    const NOVA_API: &str = "\
apiVersion: keelson.dev/v1
kind: Service
metadata:
  name: nova-api
spec:
  project: nova
  image: nova-api
  configFiles:
    - source: config/nova/nova.conf
      dest: /etc/nova/nova.conf
  jobs:
    - name: db-sync
      phase: pre
      command: nova-manage api_db sync
    - name: cells
      phase: post
      command: nova-manage cell_v2 discover_hosts
      image: quay.io/openstack.kolla/nova-conductor:2024.2-rocky-9
  healthTimeout: 90s
  manifests: [manifests/nova.yaml]
";

    const MANIFESTS: &str = "# leading comment\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: nova\n---\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: nova\n  namespace: openstack\n";

    #[test]
    fn builds_components_with_everything_resolved() {
        let topology = load(&snapshot(&[
            ("keelson.yaml", TOPOLOGY),
            ("services/nova-api.yaml", NOVA_API),
            ("config/nova/nova.conf", "[DEFAULT]\n"),
            ("manifests/nova.yaml", MANIFESTS),
        ]))
        .unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(topology.name, "lab");
        assert_eq!(topology.health_timeout, Duration::from_secs(420));
        let nova = &topology.components["nova-api"];
        assert_eq!(nova.project, "nova");
        assert_eq!(nova.file, "services/nova-api.yaml");
        assert_eq!(nova.image, "quay.io/openstack.kolla/nova-api:2024.2-rocky-9");
        assert_eq!(
            nova.job_images,
            [
                "quay.io/openstack.kolla/nova-api:2024.2-rocky-9",
                "quay.io/openstack.kolla/nova-conductor:2024.2-rocky-9"
            ]
        );
        assert_eq!(nova.health_timeout, Duration::from_secs(90));
        assert_eq!(nova.config_contents, ["[DEFAULT]\n"]);
        let found: Vec<(usize, &str)> = nova
            .manifests
            .iter()
            .map(|m| (m.line, m.object["kind"].as_str().unwrap_or_default()))
            .collect();
        assert_eq!(found, [(3, "ServiceAccount"), (9, "Role")]);
        assert_eq!(nova.manifests[1].object["metadata"]["namespace"], "openstack");
    }

    #[test]
    fn component_timeout_defaults_to_the_topology() {
        let service = "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: memcached\nspec:\n  image: memcached\n";
        let topology = load(&snapshot(&[
            ("keelson.yaml", TOPOLOGY),
            ("services/memcached.yaml", service),
        ]))
        .unwrap_or_else(|d| panic!("{d}"));
        let memcached = &topology.components["memcached"];
        assert_eq!(memcached.health_timeout, Duration::from_secs(420));
        assert_eq!(memcached.project, "memcached");
        assert!(memcached.job_images.is_empty());
    }

    #[test]
    fn repo_paths_are_confined_to_the_snapshot() {
        let mut entries: BTreeMap<String, SnapshotEntry> = BTreeMap::new();
        entries.insert("config/a.conf".into(), SnapshotEntry::File(b"x".to_vec()));
        entries.insert(
            "config/big.conf".into(),
            SnapshotEntry::TooLarge { size: 2 << 20 },
        );
        entries.insert("config/sub".into(), SnapshotEntry::Submodule);
        entries.insert(
            "config/link".into(),
            SnapshotEntry::Symlink {
                target: "a.conf".into(),
            },
        );
        entries.insert(
            "linked".into(),
            SnapshotEntry::Symlink {
                target: "config".into(),
            },
        );
        let snap = Snapshot::new(
            Revision {
                id: "t".into(),
                origin: "m".into(),
            },
            None,
            entries,
        );
        let cases = [
            ("config/a.conf", None),
            ("", Some("must not be empty")),
            ("/config/a.conf", Some("not absolute")),
            ("config/../config/a.conf", Some("`..`")),
            ("./config/a.conf", Some("plain relative path")),
            ("config//a.conf", Some("plain relative path")),
            ("config", Some("is a directory")),
            ("config/missing", Some("does not exist")),
            ("config/big.conf", Some("larger than")),
            ("config/sub", Some("submodule")),
            ("config/link", Some("is a symlink")),
            ("linked/a.conf", Some("goes through the symlink `linked`")),
        ];
        for (path, want) in cases {
            match (read_repo_file(&snap, path), want) {
                (Ok(_), None) => {}
                (Err(e), Some(fragment)) => assert!(e.contains(fragment), "{path}: {e}"),
                (got, want) => panic!("{path}: got {got:?}, wanted {want:?}"),
            }
        }
    }
}
