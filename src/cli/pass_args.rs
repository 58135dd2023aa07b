//! Settings shared by the commands that plan or apply a topology.

use crate::plan::PlanOptions;
use crate::reconciler::PassSettings;
use crate::rollout::AgeKeySecret;

#[derive(Debug, Clone, clap::Args)]
pub struct PassArgs {
    /// Allow a plan that deletes more than the policy's prune budget.
    #[arg(long, env = "KEELSON_ALLOW_PRUNE_OVER_BUDGET")]
    pub allow_prune_over_budget: bool,
    /// Allow rolling this component (or project, or `all`) back to an older release although it runs
    /// database migrations; the same as a `Keelson-Allow-Downgrade:` commit trailer. Repeatable.
    #[arg(long = "allow-downgrade", value_name = "COMPONENT")]
    pub allow_downgrade: Vec<String>,
    /// Namespace holding Keelson's inventory (default: the topology's namespace).
    #[arg(long, value_name = "NS", env = "KEELSON_INVENTORY_NAMESPACE")]
    pub inventory_namespace: Option<String>,
    /// Components applied and waited on at the same time.
    #[arg(long, default_value_t = 8, env = "KEELSON_CONCURRENCY",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Writes of one step of a component (its ConfigMaps, say) sent at the same time.
    #[arg(long, default_value_t = 4, env = "KEELSON_WRITE_CONCURRENCY",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub write_concurrency: u16,
    /// The longest one pass may take, from reading the cluster to the end of its rollout (`0`: no limit);
    /// a rollout still running then is cancelled and says so. Each API request has its own bound
    /// (--request-timeout), each component its health timeout.
    #[arg(long, value_name = "DURATION", env = "KEELSON_PASS_TIMEOUT", default_value = "1h",
          value_parser = parse_pass_timeout)]
    pub pass_timeout: PassTimeout,
    /// How long a workload may wait on something its Pods say heals only if someone acts (a missing
    /// Secret or ConfigMap, no node matching its nodeSelector, a DaemonSet matching no node) before its
    /// component fails, well before its health timeout. An invalid image reference fails at once;
    /// ImagePullBackOff and CrashLoopBackOff are waited on and named if the health timeout passes.
    #[arg(long, value_name = "DURATION", env = "KEELSON_POD_FAILURE_GRACE", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub pod_failure_grace: std::time::Duration,
}

/// A pass deadline; `0` means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassTimeout(pub Option<std::time::Duration>);

fn parse_pass_timeout(text: &str) -> Result<PassTimeout, String> {
    if text.trim() == "0" {
        return Ok(PassTimeout(None));
    }
    let timeout = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    Ok(PassTimeout((!timeout.is_zero()).then_some(timeout)))
}

impl PassArgs {
    pub fn settings(&self) -> PassSettings {
        PassSettings {
            inventory_namespace: self.inventory_namespace.clone(),
            plan: PlanOptions {
                allow_prune_over_budget: self.allow_prune_over_budget,
                allow_downgrade: self.allow_downgrade.iter().map(|c| c.to_lowercase()).collect(),
                ..PlanOptions::default()
            },
            concurrency: usize::from(self.concurrency),
            deadline: self.pass_timeout.0,
            write_concurrency: usize::from(self.write_concurrency),
            pod_failure_grace: self.pod_failure_grace,
            ..PassSettings::default()
        }
    }
}

/// Settings of the commands that write to the cluster (`apply`, `run`) and therefore may decrypt.
#[derive(Debug, Clone, clap::Args)]
pub struct DecryptArgs {
    /// The Secret (`<namespace>/<name>`) whose keys hold the age identities that decrypt the repository's
    /// `*.age` files. Read from the cluster, and only when an encrypted value must be written.
    #[arg(long, value_name = "NS/NAME", env = "KEELSON_AGE_KEY_SECRET")]
    pub age_key_secret: Option<AgeKeySecret>,
}

impl DecryptArgs {
    pub fn apply_to(&self, settings: &mut PassSettings) {
        settings.age_key_secret = self.age_key_secret.clone();
    }
}

// The flag's syntax is the command line's business: the rollout only takes the parsed value.
impl std::str::FromStr for AgeKeySecret {
    type Err = String;

    /// `namespace/name`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (namespace, name) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` must be <namespace>/<name> of a Secret"))?;
        for part in [namespace, name] {
            crate::topology::names::dns1123_subdomain(part)?;
        }
        Ok(AgeKeySecret {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}
