//! The bootstrap Jobs of the `database`, `messaging` and `identity` fields: what OpenStack-Helm's
//! db-init, rabbit-init, ks-service / ks-endpoints / ks-user Jobs and kolla-ansible's bootstrap and
//! register tasks do, as ordinary Jobs of the component. They run Kolla's `kolla-toolbox` image (PyMySQL,
//! the `openstack` client) with scripts Keelson ships, read every password from a Secret through the
//! environment, and are idempotent. Keystone's own registration is `keystone-manage bootstrap` in the
//! Keystone image, rendered as one of the component's Kolla jobs.

use serde_json::{Value, json};

use super::Ctx;
use crate::topology::{EnvVar, IdentitySpec, JobPhase, JobSpec, KeyRef, SecretKeySelector};

/// Where the scripts ConfigMap is mounted in a bootstrap Job.
pub const SCRIPTS_DIR: &str = "/var/lib/keelson/bootstrap";
/// The pod volume carrying the scripts.
pub const SCRIPTS_VOLUME: &str = "keelson-bootstrap";
/// The Keystone job that registers Keystone itself.
pub const KEYSTONE_BOOTSTRAP_JOB: &str = "ks-bootstrap";
/// The serviceType of Keystone itself.
pub const IDENTITY_TYPE: &str = "identity";

const DB_INIT: &str = include_str!("scripts/db-init.py");
const RABBIT_INIT: &str = include_str!("scripts/rabbit-init.py");
const KS_REGISTER: &str = include_str!("scripts/ks-register.sh");
const KS_DOMAIN: &str = include_str!("scripts/ks-domain.sh");

/// One toolbox Job: its name, the script it runs and the environment the script reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolboxJob {
    pub name: &'static str,
    pub script: &'static str,
    pub interpreter: &'static str,
    pub env: Vec<Value>,
}

impl ToolboxJob {
    pub fn script_text(&self) -> &'static str {
        match self.script {
            "db-init.py" => DB_INIT,
            "rabbit-init.py" => RABBIT_INIT,
            "ks-register.sh" => KS_REGISTER,
            _ => KS_DOMAIN,
        }
    }

    pub fn command(&self) -> Vec<String> {
        vec![
            self.interpreter.to_string(),
            format!("{SCRIPTS_DIR}/{}", self.script),
        ]
    }
}

pub fn scripts_config_map_name(component: &str) -> String {
    format!("{component}-bootstrap")
}

fn literal(name: &str, value: impl Into<String>) -> Value {
    json!({"name": name, "value": value.into()})
}

fn from_secret(name: &str, selector: &SecretKeySelector) -> Value {
    json!({"name": name, "valueFrom": {"secretKeyRef": {"name": selector.secret, "key": selector.key}}})
}

/// The toolbox Jobs of the component, in the order they are listed (they run together, first of the
/// component's pre-jobs).
pub(crate) fn toolbox_jobs(ctx: &Ctx<'_>) -> Vec<ToolboxJob> {
    let spec = &ctx.component.spec;
    let Some(bootstrap) = &ctx.topology.spec.bootstrap else {
        return Vec::new();
    };
    let mut jobs = Vec::new();
    if let (Some(db), Some(server)) = (&spec.database, &bootstrap.database) {
        let mut names = vec![db.name.clone()];
        names.extend(db.extra_names.iter().cloned());
        jobs.push(ToolboxJob {
            name: "db-init",
            script: "db-init.py",
            interpreter: "python3",
            env: vec![
                literal("DB_HOST", &server.host),
                literal("DB_PORT", server.port.to_string()),
                literal("DB_ADMIN_USER", &server.admin_user),
                from_secret("DB_ADMIN_PASSWORD", &server.admin_password_from),
                literal("DB_NAMES", names.join(",")),
                literal("DB_USER", &db.user),
                from_secret("DB_PASSWORD", &db.password_from),
            ],
        });
    }
    if let (Some(mq), Some(server)) = (&spec.messaging, &bootstrap.messaging) {
        jobs.push(ToolboxJob {
            name: "rabbit-init",
            script: "rabbit-init.py",
            interpreter: "python3",
            env: vec![
                literal("RABBIT_HOST", &server.host),
                literal("RABBIT_MANAGEMENT_PORT", server.management_port.to_string()),
                literal("RABBIT_ADMIN_USER", &server.admin_user),
                from_secret("RABBIT_ADMIN_PASSWORD", &server.admin_password_from),
                literal("RABBIT_USER", &mq.user),
                literal("RABBIT_VHOST", &mq.vhost),
                from_secret("RABBIT_PASSWORD", &mq.password_from),
            ],
        });
    }
    if let (Some(identity), Some(server)) = (&spec.identity, &bootstrap.identity) {
        if identity.service_type != IDENTITY_TYPE {
            let admin = || {
                vec![
                    literal("OS_AUTH_URL", &server.auth_url),
                    literal("OS_IDENTITY_API_VERSION", "3"),
                    literal("OS_INTERFACE", "internal"),
                    literal("OS_USERNAME", &server.admin_user),
                    from_secret("OS_PASSWORD", &server.admin_password_from),
                    literal("OS_PROJECT_NAME", &server.admin_project),
                    literal("OS_USER_DOMAIN_NAME", "Default"),
                    literal("OS_PROJECT_DOMAIN_NAME", "Default"),
                    literal("OS_REGION_NAME", region(identity, &server.region)),
                ]
            };
            let mut env = admin();
            env.extend([
                literal("SERVICE_TYPE", &identity.service_type),
                literal("SERVICE_NAME", &identity.service_name),
                literal(
                    "SERVICE_DESCRIPTION",
                    identity
                        .description
                        .clone()
                        .unwrap_or_else(|| format!("OpenStack {}", identity.service_type)),
                ),
                literal("REGION", region(identity, &server.region)),
                literal("ENDPOINT_PUBLIC", &identity.endpoints.public),
                literal("ENDPOINT_INTERNAL", &identity.endpoints.internal),
                literal("ENDPOINT_ADMIN", &identity.endpoints.admin),
                literal("SERVICE_PROJECT", &server.service_project),
            ]);
            if let (Some(user), Some(password)) = (&identity.user, &identity.password_from) {
                env.extend([
                    literal("SERVICE_USER", user),
                    from_secret("SERVICE_PASSWORD", password),
                    literal("SERVICE_ROLES", identity.roles.join(" ")),
                ]);
            }
            jobs.push(ToolboxJob {
                name: "ks-register",
                script: "ks-register.sh",
                interpreter: "bash",
                env,
            });
            if let Some(domain) = &identity.domain {
                let mut env = admin();
                env.extend([
                    literal("SERVICE_NAME", &identity.service_name),
                    literal("DOMAIN_NAME", &domain.name),
                    literal("DOMAIN_ADMIN_USER", &domain.admin_user),
                    from_secret("DOMAIN_ADMIN_PASSWORD", &domain.admin_password_from),
                    literal("DOMAIN_ROLES", domain.roles.join(" ")),
                ]);
                jobs.push(ToolboxJob {
                    name: "ks-domain",
                    script: "ks-domain.sh",
                    interpreter: "bash",
                    env,
                });
            }
        }
    }
    jobs
}

fn region(identity: &IdentitySpec, default: &str) -> String {
    identity.region.clone().unwrap_or_else(|| default.to_string())
}

/// Keystone's own registration: `keystone-manage bootstrap`, run with the Keystone image after the
/// component's pre-jobs (the schema must exist) and before its workload. It creates the admin user,
/// project and role, the region and the identity endpoints, and is idempotent.
pub(crate) fn keystone_bootstrap(ctx: &Ctx<'_>) -> Option<JobSpec> {
    let identity = ctx.component.spec.identity.as_ref()?;
    if identity.service_type != IDENTITY_TYPE {
        return None;
    }
    let server = ctx.topology.spec.bootstrap.as_ref()?.identity.as_ref()?;
    let plain = |name: &str, value: &str| EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        secret_key_ref: None,
        config_map_key_ref: None,
    };
    let region = region(identity, &server.region);
    let env = vec![
        EnvVar {
            name: "OS_BOOTSTRAP_PASSWORD".into(),
            value: None,
            secret_key_ref: Some(KeyRef {
                name: server.admin_password_from.secret.clone(),
                key: server.admin_password_from.key.clone(),
                optional: None,
            }),
            config_map_key_ref: None,
        },
        plain("OS_BOOTSTRAP_USERNAME", &server.admin_user),
        plain("OS_BOOTSTRAP_PROJECT_NAME", &server.admin_project),
        plain("OS_BOOTSTRAP_ROLE_NAME", "admin"),
        plain("OS_BOOTSTRAP_SERVICE_NAME", &identity.service_name),
        plain("OS_BOOTSTRAP_REGION_ID", &region),
        plain("OS_BOOTSTRAP_ADMIN_URL", &identity.endpoints.admin),
        plain("OS_BOOTSTRAP_INTERNAL_URL", &identity.endpoints.internal),
        plain("OS_BOOTSTRAP_PUBLIC_URL", &identity.endpoints.public),
    ];
    Some(JobSpec {
        name: KEYSTONE_BOOTSTRAP_JOB.to_string(),
        phase: JobPhase::Pre,
        command: Some("keystone-manage bootstrap".to_string()),
        script: None,
        group: None,
        image: None,
        env,
        backoff_limit: None,
        timeout: None,
    })
}
