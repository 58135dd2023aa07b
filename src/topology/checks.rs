//! Checks of the parts of the language that make OpenStack run from Git alone: generated and encrypted
//! Secrets, the bootstrap fields (`database`, `messaging`, `identity`), and the pod details (init
//! containers, sidecars, hooks, spreading, disruption budgets). Each problem is reported at the field
//! that causes it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::source::Snapshot;

use super::load::{
    Check, ParsedService, RootDocument, check_env, check_port_number, check_probe, diag, read_repo_bytes,
};
use super::secrets::{self, TemplatePart, ValueKind};
use super::spec::{
    AntiAffinity, ContainerSpec, Hook, SecretKeySelector, SecretSpec, ServiceSpec, TopologySpec, WorkloadKind,
};
use super::{Diagnostic, image, names};

/// The `serviceType` of Keystone itself, whose registration is `keystone-manage bootstrap`.
pub const IDENTITY_SERVICE_TYPE: &str = "identity";
/// Longest termination grace period accepted (a day); more is a typo.
const MAX_GRACE_SECONDS: i64 = 86_400;

/// Checks `spec.secrets` of one document; returns the ciphertext of every encrypted file it names.
pub(super) fn check_secret_specs(
    check: &mut Check<'_>,
    snapshot: &Snapshot,
    base: &str,
    specs: &[SecretSpec],
) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (i, secret) in specs.iter().enumerate() {
        let field = format!("{base}[{i}]");
        // A label, not a subdomain: templates split `<secret>.<key>` at the first dot.
        check.result(&format!("{field}.name"), names::dns1123_label(&secret.name));
        if !seen.insert(&secret.name) {
            check.at(
                &format!("{field}.name"),
                format!("Secret `{}` is declared twice", secret.name),
            );
        }
        if secret.data.is_empty() {
            check.at(&format!("{field}.data"), "a Secret needs at least one key");
        }
        for (key, value) in &secret.data {
            let key_field = format!("{field}.data.{key}");
            check.result(&key_field, names::config_key(key));
            if let Err(e) = secrets::value_kind(value) {
                check.at(&key_field, e);
            }
            for (sub, message) in secrets::check_value(value) {
                check.at(&format!("{key_field}.{sub}"), message);
            }
            if let Some(path) = &value.encrypted {
                match read_repo_bytes(snapshot, path) {
                    Ok(bytes) => match check_age_header(bytes) {
                        Ok(()) => {
                            files.insert(path.clone(), bytes.to_vec());
                        }
                        Err(e) => check.at(&format!("{key_field}.encrypted"), format!("`{path}`: {e}")),
                    },
                    Err(e) => check.at(&format!("{key_field}.encrypted"), e),
                }
            }
        }
    }
    files
}

/// Whether `bytes` is an age file (binary or armored) with a readable header; the body is not read, and
/// nothing is decrypted.
pub fn check_age_header(bytes: &[u8]) -> Result<(), String> {
    const BINARY: &[u8] = b"age-encryption.org/v1\n";
    const ARMORED: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
    if !bytes.starts_with(BINARY) && !bytes.trim_ascii_start().starts_with(ARMORED) {
        return Err(
            "is not an age-encrypted file (it starts with neither the age header nor the armor line)"
                .to_string(),
        );
    }
    let reader = age::armor::ArmoredReader::new(bytes);
    match age::Decryptor::new(reader) {
        Ok(decryptor) if decryptor.is_scrypt() => {
            Err("is encrypted with a passphrase; encrypt it to an age recipient (age -r)".to_string())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(format!("is not an age-encrypted file: {e}")),
    }
}

fn check_selector(check: &mut Check<'_>, field: &str, selector: &SecretKeySelector) {
    check.result(
        &format!("{field}.secret"),
        names::dns1123_subdomain(&selector.secret),
    );
    check.result(&format!("{field}.key"), names::config_key(&selector.key));
}

fn check_url(check: &mut Check<'_>, field: &str, url: &str) {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    let host = url.split("://").nth(1).unwrap_or("");
    if !scheme_ok || host.is_empty() || host.starts_with('/') || url.chars().any(char::is_whitespace) {
        check.at(
            field,
            format!("`{url}` must be an http:// or https:// URL with a host"),
        );
    }
}

/// keelson.yaml's `spec.bootstrap`.
pub(super) fn check_bootstrap(check: &mut Check<'_>, spec: &TopologySpec) {
    let Some(bootstrap) = &spec.bootstrap else {
        return;
    };
    if let Err(e) = image::resolve(&bootstrap.image, &spec.images) {
        check.at("spec.bootstrap.image", e);
    }
    if let Some(db) = &bootstrap.database {
        check.result("spec.bootstrap.database.host", names::dns1123_subdomain(&db.host));
        check_port_number(check, "spec.bootstrap.database.port", db.port);
        check.result("spec.bootstrap.database.adminUser", sql_name(&db.admin_user, 80));
        check_selector(
            check,
            "spec.bootstrap.database.adminPasswordFrom",
            &db.admin_password_from,
        );
    }
    if let Some(mq) = &bootstrap.messaging {
        check.result(
            "spec.bootstrap.messaging.host",
            names::dns1123_subdomain(&mq.host),
        );
        check_port_number(
            check,
            "spec.bootstrap.messaging.managementPort",
            mq.management_port,
        );
        check.result("spec.bootstrap.messaging.adminUser", rabbit_name(&mq.admin_user));
        check_selector(
            check,
            "spec.bootstrap.messaging.adminPasswordFrom",
            &mq.admin_password_from,
        );
    }
    if let Some(identity) = &bootstrap.identity {
        check_url(check, "spec.bootstrap.identity.authUrl", &identity.auth_url);
        for (field, value) in [
            ("adminUser", &identity.admin_user),
            ("adminProject", &identity.admin_project),
            ("region", &identity.region),
            ("serviceProject", &identity.service_project),
        ] {
            check.result(&format!("spec.bootstrap.identity.{field}"), keystone_name(value));
        }
        check_selector(
            check,
            "spec.bootstrap.identity.adminPasswordFrom",
            &identity.admin_password_from,
        );
    }
}

/// MySQL identifiers as the bootstrap Job quotes them: letters, digits, `_` (and `-` for users).
fn sql_name(name: &str, max: usize) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` must be 1-{max} letters, digits, `_` or `-`"))
    }
}

fn database_name(name: &str) -> Result<(), String> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` must be 1-64 letters, digits or `_`"))
    }
}

fn rabbit_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` must be letters, digits, `_`, `-` or `.`"))
    }
}

fn keystone_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` must be letters, digits, `_`, `-` or `.` (it is passed to the openstack client)"
        ))
    }
}

/// `database`, `messaging` and `identity` of a component; returns the toolbox image their Jobs run.
/// `root_known` is false when keelson.yaml itself is broken: what it lacks is then not reported here.
pub(super) fn check_bootstrap_fields(
    check: &mut Check<'_>,
    spec: &ServiceSpec,
    topology: &TopologySpec,
    root_known: bool,
) -> Option<String> {
    let bootstrap = topology.bootstrap.as_ref();
    let mut needs_toolbox = false;
    if let Some(db) = &spec.database {
        needs_toolbox = true;
        if root_known && bootstrap.and_then(|b| b.database.as_ref()).is_none() {
            check.at(
                "spec.database",
                "needs the MariaDB server in keelson.yaml spec.bootstrap.database",
            );
        }
        check.result("spec.database.name", database_name(&db.name));
        for (i, extra) in db.extra_names.iter().enumerate() {
            check.result(&format!("spec.database.extraNames[{i}]"), database_name(extra));
            if extra == &db.name || db.extra_names[..i].contains(extra) {
                check.at(
                    &format!("spec.database.extraNames[{i}]"),
                    format!("`{extra}` is listed twice"),
                );
            }
        }
        check.result("spec.database.user", sql_name(&db.user, 80));
        check_selector(check, "spec.database.passwordFrom", &db.password_from);
    }
    if let Some(mq) = &spec.messaging {
        needs_toolbox = true;
        if root_known && bootstrap.and_then(|b| b.messaging.as_ref()).is_none() {
            check.at(
                "spec.messaging",
                "needs the RabbitMQ server in keelson.yaml spec.bootstrap.messaging",
            );
        }
        check.result("spec.messaging.user", rabbit_name(&mq.user));
        if mq.vhost.is_empty() || mq.vhost.chars().any(|c| c.is_control() || c.is_whitespace()) {
            check.at(
                "spec.messaging.vhost",
                format!("`{}` must be a non-empty vhost name without whitespace", mq.vhost),
            );
        }
        check_selector(check, "spec.messaging.passwordFrom", &mq.password_from);
    }
    if let Some(identity) = &spec.identity {
        if root_known && bootstrap.and_then(|b| b.identity.as_ref()).is_none() {
            check.at(
                "spec.identity",
                "needs Keystone and its admin in keelson.yaml spec.bootstrap.identity",
            );
        }
        check.result("spec.identity.serviceType", keystone_name(&identity.service_type));
        check.result("spec.identity.serviceName", keystone_name(&identity.service_name));
        for (field, url) in [
            ("public", &identity.endpoints.public),
            ("internal", &identity.endpoints.internal),
            ("admin", &identity.endpoints.admin),
        ] {
            check_url(check, &format!("spec.identity.endpoints.{field}"), url);
        }
        if let Some(region) = &identity.region {
            check.result("spec.identity.region", keystone_name(region));
        }
        if identity.service_type == IDENTITY_SERVICE_TYPE {
            // keystone-manage bootstrap runs with the Keystone image and the topology's admin password.
            for (field, set) in [
                ("user", identity.user.is_some()),
                ("passwordFrom", identity.password_from.is_some()),
                ("domain", identity.domain.is_some()),
            ] {
                if set {
                    check.at(
                        &format!("spec.identity.{field}"),
                        "Keystone's own registration (serviceType identity) creates the admin of keelson.yaml spec.bootstrap.identity, not a service user",
                    );
                }
            }
            if spec.image.is_empty() {
                check.at(
                    "spec.image",
                    "keystone-manage bootstrap runs with the component's image",
                );
            }
        } else {
            needs_toolbox = true;
            match (&identity.user, &identity.password_from) {
                (Some(user), Some(selector)) => {
                    check.result("spec.identity.user", keystone_name(user));
                    check_selector(check, "spec.identity.passwordFrom", selector);
                }
                (None, None) => {}
                _ => check.at("spec.identity", "a service user needs both user and passwordFrom"),
            }
            for (i, role) in identity.roles.iter().enumerate() {
                check.result(&format!("spec.identity.roles[{i}]"), keystone_name(role));
            }
            if let Some(domain) = &identity.domain {
                check.result("spec.identity.domain.name", keystone_name(&domain.name));
                check.result(
                    "spec.identity.domain.adminUser",
                    keystone_name(&domain.admin_user),
                );
                check_selector(
                    check,
                    "spec.identity.domain.adminPasswordFrom",
                    &domain.admin_password_from,
                );
                for (i, role) in domain.roles.iter().enumerate() {
                    check.result(&format!("spec.identity.domain.roles[{i}]"), keystone_name(role));
                }
            }
        }
    }
    if !needs_toolbox {
        return None;
    }
    let toolbox = bootstrap.map(|b| b.image.as_str()).unwrap_or("kolla-toolbox");
    image::resolve(toolbox, &topology.images).ok()
}

/// A component without a workload has no pods of its own: fields that shape them are mistakes.
pub(super) fn check_no_workload(check: &mut Check<'_>, service: &ParsedService, spec: &ServiceSpec) {
    let written = |key: &str| service.doc.value().get("spec").and_then(|s| s.get(key)).is_some();
    for field in [
        "replicas",
        "ports",
        "readinessProbe",
        "command",
        "args",
        "initContainers",
        "sidecars",
        "lifecycle",
        "antiAffinity",
        "topologySpread",
        "disruptionBudget",
        "terminationGracePeriodSeconds",
    ] {
        if written(field) {
            check.at(
                &format!("spec.{field}"),
                "a component with `workload: None` has no pods of its own; remove it",
            );
        }
    }
    let _ = spec;
}

/// Init containers, sidecars, hooks, spreading and the disruption budget; returns each extra
/// container's resolved image.
pub(super) fn check_pod_details(
    check: &mut Check<'_>,
    spec: &ServiceSpec,
    component_image: &str,
    topology: &TopologySpec,
    policy_known: bool,
) -> BTreeMap<String, String> {
    let mut images = BTreeMap::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let volumes: BTreeSet<&str> = spec.volumes.iter().map(|v| v.name.as_str()).collect();
    let groups = [
        ("initContainers", &spec.init_containers),
        ("sidecars", &spec.sidecars),
    ];
    for (group, containers) in groups {
        for (i, container) in containers.iter().enumerate() {
            let field = format!("spec.{group}[{i}]");
            check_container(
                check,
                &field,
                container,
                group == "sidecars",
                &volumes,
                topology,
                policy_known,
            );
            if !seen.insert(&container.name) {
                check.at(
                    &format!("{field}.name"),
                    format!("container name `{}` is used twice", container.name),
                );
            }
            let image = match &container.image {
                Some(image) => image::resolve(image, &topology.images).unwrap_or_else(|e| {
                    check.at(&format!("{field}.image"), e);
                    String::new()
                }),
                None if component_image.is_empty() => {
                    check.at(
                        &format!("{field}.image"),
                        "needs an image (the component has none)",
                    );
                    String::new()
                }
                None => component_image.to_string(),
            };
            images.insert(container.name.clone(), image);
        }
    }
    if let Some(grace) = spec.termination_grace_period_seconds {
        if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
            check.at(
                "spec.terminationGracePeriodSeconds",
                format!("{grace} must be between 0 and {MAX_GRACE_SECONDS}"),
            );
        }
    }
    if let Some(lifecycle) = &spec.lifecycle {
        for (name, hook) in [
            ("postStart", &lifecycle.post_start),
            ("preStop", &lifecycle.pre_stop),
        ] {
            if let Some(hook) = hook {
                check_hook(check, &format!("spec.lifecycle.{name}"), hook);
            }
        }
    }
    let spreads_pods = matches!(
        spec.workload,
        WorkloadKind::Deployment | WorkloadKind::StatefulSet
    );
    if spec.anti_affinity.is_some() && !spreads_pods {
        check.at(
            "spec.antiAffinity",
            "only a Deployment's or StatefulSet's replicas can be kept apart (a DaemonSet runs one pod per node)",
        );
    }
    if spec.anti_affinity == Some(AntiAffinity::Required) && spec.host_network {
        // Host-network pods already cannot share a node when they bind the same ports.
        tracing::debug!("required anti-affinity on a host-network component");
    }
    for (i, spread) in spec.topology_spread.iter().enumerate() {
        let field = format!("spec.topologySpread[{i}]");
        if !spreads_pods {
            check.at(
                &field,
                "only a Deployment's or StatefulSet's replicas can be spread",
            );
        }
        check.result(
            &format!("{field}.topologyKey"),
            names::label_key(&spread.topology_key),
        );
        if spread.max_skew < 1 {
            check.at(
                &format!("{field}.maxSkew"),
                format!("{} must be at least 1", spread.max_skew),
            );
        }
    }
    if let Some(budget) = &spec.disruption_budget {
        if !spreads_pods && budget.enabled {
            check.at(
                "spec.disruptionBudget",
                "a PodDisruptionBudget is rendered for Deployments and StatefulSets only",
            );
        }
        if budget.max_unavailable.is_some() && budget.min_available.is_some() {
            check.at(
                "spec.disruptionBudget",
                "set at most one of maxUnavailable and minAvailable",
            );
        }
        for (field, value) in [
            ("maxUnavailable", budget.max_unavailable),
            ("minAvailable", budget.min_available),
        ] {
            if let Some(v) = value {
                if v < 0 {
                    check.at(
                        &format!("spec.disruptionBudget.{field}"),
                        format!("{v} must not be negative"),
                    );
                }
            }
        }
        if let Some(min) = budget.min_available {
            if spec.replicas > 0 && min >= spec.replicas && budget.enabled {
                check.at(
                    "spec.disruptionBudget.minAvailable",
                    format!(
                        "{min} of {} replicas would never let a node drain; use at most {}",
                        spec.replicas,
                        spec.replicas - 1
                    ),
                );
            }
        }
    }
    images
}

fn check_container(
    check: &mut Check<'_>,
    field: &str,
    container: &ContainerSpec,
    sidecar: bool,
    volumes: &BTreeSet<&str>,
    topology: &TopologySpec,
    policy_known: bool,
) {
    check.result(&format!("{field}.name"), names::dns1123_label(&container.name));
    if container.command.is_empty() || container.command.iter().any(|c| c.is_empty()) {
        check.at(
            &format!("{field}.command"),
            "must be a non-empty list of non-empty strings",
        );
    }
    check_env(check, &format!("{field}.env"), &container.env);
    for (i, mount) in container.volume_mounts.iter().enumerate() {
        if !volumes.contains(mount.as_str()) {
            check.at(
                &format!("{field}.volumeMounts[{i}]"),
                format!("`{mount}` is not one of the component's spec.volumes"),
            );
        }
    }
    if let Some(resources) = &container.resources {
        for (section, map) in [("requests", &resources.requests), ("limits", &resources.limits)] {
            for (resource, quantity) in map {
                check.result(
                    &format!("{field}.resources.{section}.{resource}"),
                    names::quantity(quantity),
                );
            }
        }
    }
    if policy_known && container.privileged && !topology.policy.allow_privileged {
        check.at(
            &format!("{field}.privileged"),
            "privileged containers are not allowed by keelson.yaml spec.policy.allowPrivileged",
        );
    }
    if let Some(probe) = &container.readiness_probe {
        if sidecar {
            check_probe(check, &format!("{field}.readinessProbe"), probe);
        } else {
            check.at(
                &format!("{field}.readinessProbe"),
                "an init container runs to completion; only sidecars have readiness",
            );
        }
    }
}

fn check_hook(check: &mut Check<'_>, field: &str, hook: &Hook) {
    let handlers = [hook.exec.is_some(), hook.http_get.is_some(), hook.sleep.is_some()];
    if handlers.iter().filter(|h| **h).count() != 1 {
        check.at(field, "a hook needs exactly one of exec, httpGet, sleep");
    }
    if let Some(exec) = &hook.exec {
        if exec.command.is_empty() {
            check.at(&format!("{field}.exec.command"), "must not be empty");
        }
    }
    if let Some(http) = &hook.http_get {
        check_port_number(check, &format!("{field}.httpGet.port"), http.port);
        if !http.path.starts_with('/') {
            check.at(
                &format!("{field}.httpGet.path"),
                format!("`{}` must start with `/`", http.path),
            );
        }
    }
    if let Some(sleep) = &hook.sleep {
        if !(1..=3600).contains(&sleep.seconds) {
            check.at(
                &format!("{field}.sleep.seconds"),
                format!("{} must be between 1 and 3600", sleep.seconds),
            );
        }
    }
}

/// Where a Secret is declared: keelson.yaml (shared, visible to all) or a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner<'a> {
    Shared,
    Component(&'a str),
}

struct Declaration<'a> {
    owner: Owner<'a>,
    spec: &'a SecretSpec,
}

/// Every reference to a Secret Keelson declares must name a declared key, and the declaring component
/// must come first (keelson.yaml, the component itself, or one it depends on); templates may only use
/// generated keys; a tombstone may not name a Secret still declared.
pub(super) fn check_secret_references(
    root: &RootDocument,
    parsed: &[ParsedService],
    declared_components: &BTreeMap<&str, &str>,
    diags: &mut Vec<Diagnostic>,
) {
    let spec = &root.document.spec;
    let mut declarations: BTreeMap<&str, Declaration<'_>> = BTreeMap::new();
    for secret in &spec.secrets {
        declarations.entry(secret.name.as_str()).or_insert(Declaration {
            owner: Owner::Shared,
            spec: secret,
        });
    }
    let services: Vec<&ParsedService> = parsed
        .iter()
        .filter(|s| declared_components.get(s.document.metadata.name.as_str()) == Some(&s.file.as_str()))
        .collect();
    for service in &services {
        let name = known_name(service);
        for (i, secret) in service.document.spec.secrets.iter().enumerate() {
            match declarations.get(secret.name.as_str()) {
                Some(first) => {
                    let where_ = match first.owner {
                        Owner::Shared => "keelson.yaml".to_string(),
                        Owner::Component(c) => format!("component `{c}`"),
                    };
                    let field = format!("spec.secrets[{i}].name");
                    diags.push(diag(
                        &service.file,
                        service.doc.locate(&field),
                        &field,
                        format!("Secret `{}` is already declared by {where_}", secret.name),
                    ));
                }
                None => {
                    declarations.insert(
                        secret.name.as_str(),
                        Declaration {
                            owner: Owner::Component(name),
                            spec: secret,
                        },
                    );
                }
            }
        }
    }
    let deps: BTreeMap<&str, Vec<&str>> = services
        .iter()
        .map(|s| {
            (
                known_name(s),
                s.document
                    .spec
                    .depends_on
                    .iter()
                    .map(|d| d.component.as_str())
                    .collect(),
            )
        })
        .collect();

    let mut root_refs = Vec::new();
    collect_template_refs("spec.secrets", &spec.secrets, &mut root_refs);
    if let Some(bootstrap) = &spec.bootstrap {
        for (field, selector) in [
            (
                "database",
                bootstrap.database.as_ref().map(|d| &d.admin_password_from),
            ),
            (
                "messaging",
                bootstrap.messaging.as_ref().map(|m| &m.admin_password_from),
            ),
            (
                "identity",
                bootstrap.identity.as_ref().map(|i| &i.admin_password_from),
            ),
        ] {
            if let Some(selector) = selector {
                root_refs.push(Reference {
                    field: format!("spec.bootstrap.{field}.adminPasswordFrom"),
                    secret: selector.secret.clone(),
                    key: Some(selector.key.clone()),
                    template: false,
                });
            }
        }
    }
    for reference in &root_refs {
        // keelson.yaml's own templates see only keelson.yaml's Secrets; the bootstrap admins may live in a
        // component (MariaDB's root password), checked where a component uses them.
        let visible = |owner: Owner<'_>| owner == Owner::Shared || !reference.template;
        if let Some(message) = judge(reference, &declarations, visible) {
            let at = root.doc.locate(&reference.field);
            diags.push(diag(super::TOPOLOGY_FILE, at, &reference.field, message));
        }
    }
    for (i, name) in spec.tombstones.secrets.iter().enumerate() {
        if let Some(d) = declarations.get(name.as_str()) {
            let field = format!("spec.tombstones.secrets[{i}]");
            let owner = match d.owner {
                Owner::Shared => "keelson.yaml".to_string(),
                Owner::Component(c) => format!("component `{c}`"),
            };
            diags.push(diag(
                super::TOPOLOGY_FILE,
                root.doc.locate(&field),
                &field,
                format!(
                    "Secret `{name}` is still declared by {owner}; remove the declaration or the tombstone"
                ),
            ));
        }
    }

    for service in &services {
        let name = known_name(service);
        let upstream = reachable(&deps, name);
        let mut refs = Vec::new();
        collect_service_refs(&service.document.spec, &mut refs);
        if let Some(bootstrap) = &spec.bootstrap {
            let s = &service.document.spec;
            let uses = [
                (
                    s.database.is_some(),
                    "spec.database",
                    bootstrap.database.as_ref().map(|d| &d.admin_password_from),
                ),
                (
                    s.messaging.is_some(),
                    "spec.messaging",
                    bootstrap.messaging.as_ref().map(|m| &m.admin_password_from),
                ),
                (
                    s.identity.is_some(),
                    "spec.identity",
                    bootstrap.identity.as_ref().map(|i| &i.admin_password_from),
                ),
            ];
            for (used, field, selector) in uses {
                if let (true, Some(selector)) = (used, selector) {
                    refs.push(Reference {
                        field: field.to_string(),
                        secret: selector.secret.clone(),
                        key: Some(selector.key.clone()),
                        template: false,
                    });
                }
            }
        }
        for reference in &refs {
            let visible = |owner: Owner<'_>| match owner {
                Owner::Shared => true,
                Owner::Component(c) => c == name || upstream.contains(c),
            };
            if let Some(message) = judge(reference, &declarations, visible) {
                let at = service.doc.locate(&reference.field);
                diags.push(diag(&service.file, at, &reference.field, message));
            }
        }
    }
}

/// The name the other components know a service by: its file's (`services/<name>.yaml`). It differs from
/// `metadata.name` only when that was renamed, an error reported once, at the rename.
fn known_name(service: &ParsedService) -> &str {
    service
        .file
        .strip_prefix("services/")
        .and_then(|p| p.strip_suffix(".yaml"))
        .unwrap_or(&service.document.metadata.name)
}

struct Reference {
    field: String,
    secret: String,
    key: Option<String>,
    template: bool,
}

fn judge(
    reference: &Reference,
    declarations: &BTreeMap<&str, Declaration<'_>>,
    visible: impl Fn(Owner<'_>) -> bool,
) -> Option<String> {
    let Some(declaration) = declarations.get(reference.secret.as_str()) else {
        // A template may only use Secrets Keelson makes; anything else may be an operator's Secret.
        return reference.template.then(|| {
            format!(
                "`{}` is not a Secret declared in spec.secrets (templates use only generated keys)",
                reference.secret
            )
        });
    };
    if !visible(declaration.owner) {
        let Owner::Component(owner) = declaration.owner else {
            return Some(format!(
                "Secret `{}` of keelson.yaml cannot be used here",
                reference.secret
            ));
        };
        return Some(format!(
            "Secret `{}` is declared by component `{owner}`, which this component does not depend on; add it to dependsOn or declare the Secret in keelson.yaml",
            reference.secret
        ));
    }
    let key = reference.key.as_deref()?;
    let Some(value) = declaration.spec.data.get(key) else {
        let keys: Vec<&str> = declaration.spec.data.keys().map(String::as_str).collect();
        return Some(format!(
            "Secret `{}` has no key `{key}` (it declares {})",
            reference.secret,
            keys.join(", ")
        ));
    };
    if reference.template && value.generate.is_none() {
        return Some(format!(
            "`{}.{key}` is not a generated key; templates are made from generated values only",
            reference.secret
        ));
    }
    None
}

fn collect_template_refs(base: &str, specs: &[SecretSpec], out: &mut Vec<Reference>) {
    for (i, secret) in specs.iter().enumerate() {
        for (key, value) in &secret.data {
            let Some(template) = &value.template else { continue };
            if secrets::value_kind(value) != Ok(ValueKind::Template) {
                continue;
            }
            for part in secrets::parse_template(template).unwrap_or_default() {
                if let TemplatePart::Ref { secret, key: k } = part {
                    out.push(Reference {
                        field: format!("{base}[{i}].data.{key}.template"),
                        secret,
                        key: Some(k),
                        template: true,
                    });
                }
            }
        }
    }
}

fn env_refs(base: &str, env: &[super::spec::EnvVar], out: &mut Vec<Reference>) {
    for (i, var) in env.iter().enumerate() {
        if let Some(r) = &var.secret_key_ref {
            out.push(Reference {
                field: format!("{base}[{i}].secretKeyRef.name"),
                secret: r.name.clone(),
                key: Some(r.key.clone()),
                template: false,
            });
        }
    }
}

fn collect_service_refs(spec: &ServiceSpec, out: &mut Vec<Reference>) {
    collect_template_refs("spec.secrets", &spec.secrets, out);
    env_refs("spec.env", &spec.env, out);
    for (j, job) in spec.jobs.iter().enumerate() {
        env_refs(&format!("spec.jobs[{j}].env"), &job.env, out);
    }
    for (group, containers) in [
        ("initContainers", &spec.init_containers),
        ("sidecars", &spec.sidecars),
    ] {
        for (k, c) in containers.iter().enumerate() {
            env_refs(&format!("spec.{group}[{k}].env"), &c.env, out);
        }
    }
    for (i, volume) in spec.volumes.iter().enumerate() {
        if let Some(secret) = &volume.secret {
            out.push(Reference {
                field: format!("spec.volumes[{i}].secret.name"),
                secret: secret.name.clone(),
                key: None,
                template: false,
            });
        }
    }
    let mut selector = |field: &str, s: &SecretKeySelector| {
        out.push(Reference {
            field: field.to_string(),
            secret: s.secret.clone(),
            key: Some(s.key.clone()),
            template: false,
        })
    };
    if let Some(db) = &spec.database {
        selector("spec.database.passwordFrom", &db.password_from);
    }
    if let Some(mq) = &spec.messaging {
        selector("spec.messaging.passwordFrom", &mq.password_from);
    }
    if let Some(identity) = &spec.identity {
        if let Some(p) = &identity.password_from {
            selector("spec.identity.passwordFrom", p);
        }
        if let Some(d) = &identity.domain {
            selector("spec.identity.domain.adminPasswordFrom", &d.admin_password_from);
        }
    }
}

/// Components `name` depends on, directly or through others.
fn reachable<'a>(deps: &BTreeMap<&'a str, Vec<&'a str>>, name: &'a str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<&str> = deps.get(name).cloned().unwrap_or_default().into();
    while let Some(next) = queue.pop_front() {
        if seen.insert(next) {
            queue.extend(deps.get(next).cloned().unwrap_or_default());
        }
    }
    seen
}
