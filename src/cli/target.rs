//! Which Kubernetes API a command talks to, declared once for every command that talks to one: a kubeconfig
//! (and context), the pod's service account, or a fresh embedded simulated cluster. The flags are spelled
//! as kubectl spells them.

use std::path::PathBuf;
use std::time::Duration;

use crate::cluster::{self, ClusterError, ConnectOptions, Kube, Target};
use crate::sim::{self, SimOptions};

/// The default of `--request-timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: &str = "30s";

/// How to reach an existing cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// kubeconfig file (default: $KUBECONFIG, then ~/.kube/config; inside a pod without either, its service
    /// account).
    #[arg(long, value_name = "FILE", env = "KEELSON_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig to use (default: its current context).
    #[arg(long, value_name = "NAME", env = "KEELSON_CONTEXT")]
    pub context: Option<String>,
    /// Use the pod's service account.
    #[arg(long, conflicts_with_all = ["kubeconfig", "context"])]
    pub in_cluster: bool,
    /// With the pod's service account: the folder holding its `token`, `ca.crt` and `namespace` (the API
    /// server comes from KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT).
    #[arg(long, value_name = "DIR", env = "KEELSON_SERVICE_ACCOUNT_DIR",
          default_value = cluster::SERVICE_ACCOUNT_DIR)]
    pub service_account_dir: PathBuf,
    /// How long to wait for each API request before giving up on it and retrying (`0`: no limit), as
    /// kubectl's --request-timeout.
    #[arg(long, value_name = "DURATION", env = "KEELSON_REQUEST_TIMEOUT",
          default_value = DEFAULT_REQUEST_TIMEOUT, value_parser = parse_request_timeout)]
    pub request_timeout: RequestTimeout,
}

/// A request timeout; `0` means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTimeout(pub Option<Duration>);

fn parse_request_timeout(text: &str) -> Result<RequestTimeout, String> {
    if text.trim() == "0" {
        return Ok(RequestTimeout(None));
    }
    let timeout = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    Ok(RequestTimeout((!timeout.is_zero()).then_some(timeout)))
}

impl ClusterArgs {
    /// Where the flags point. Without any, like kubectl: the kubeconfig when one is configured, else the
    /// pod's service account when running in a pod.
    pub fn target(&self) -> Target {
        let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty());
        let kubeconfig_set = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
        let default_kubeconfig = std::env::home_dir().is_some_and(|h| h.join(".kube/config").exists());
        let unconfigured = self.kubeconfig.is_none() && self.context.is_none();
        if self.in_cluster || (unconfigured && in_pod && !kubeconfig_set && !default_kubeconfig) {
            Target::InCluster {
                service_account_dir: self.service_account_dir.clone(),
            }
        } else {
            Target::Kubeconfig {
                path: self.kubeconfig.clone(),
                context: self.context.clone(),
            }
        }
    }

    pub fn options(&self, user_agent: String) -> ConnectOptions {
        ConnectOptions {
            user_agent,
            request_timeout: self.request_timeout.0,
        }
    }

    pub async fn connect(&self) -> Result<Kube, ClusterError> {
        let options = self.options(cluster::default_user_agent());
        cluster::connect_with(self.target(), &options).await
    }
}

/// An existing cluster, or a fresh simulated one.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Use a fresh embedded simulated cluster (empty; gone when the command ends).
    #[arg(long, conflicts_with_all = ["kubeconfig", "context", "in_cluster"])]
    pub sim: bool,
}

/// A connected API, and the simulator behind it when there is one (kept alive as long as this value).
pub struct Connection {
    pub kube: Kube,
    pub sim: Option<sim::Cluster>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("embedded simulated cluster: {0}")]
    Sim(#[from] sim::SimError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl TargetArgs {
    pub async fn connect(&self) -> Result<Connection, TargetError> {
        self.connect_as(cluster::default_user_agent()).await
    }

    /// Connects sending `user_agent` with every request.
    pub async fn connect_as(&self, user_agent: String) -> Result<Connection, TargetError> {
        let options = self.cluster.options(user_agent);
        if !self.sim {
            let kube = cluster::connect_with(self.cluster.target(), &options).await?;
            return Ok(Connection { kube, sim: None });
        }
        let sim = sim::Cluster::start(SimOptions::default()).await?;
        let target = Target::InlineKubeconfig {
            kubeconfig: sim.kubeconfig(),
            context: None,
        };
        let kube = cluster::connect_with(target, &options).await?;
        Ok(Connection { kube, sim: Some(sim) })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        target: TargetArgs,
    }

    fn parse(args: &[&str]) -> Result<Cmd, clap::Error> {
        Cmd::try_parse_from(std::iter::once("k").chain(args.iter().copied()))
    }

    #[test]
    fn kubectl_spellings_and_what_contradicts() {
        let cmd = parse(&["--kubeconfig", "/k", "--context", "c", "--request-timeout", "5s"]).unwrap();
        assert_eq!(cmd.target.cluster.kubeconfig, Some(PathBuf::from("/k")));
        assert_eq!(
            cmd.target.cluster.request_timeout,
            RequestTimeout(Some(Duration::from_secs(5)))
        );
        assert!(
            matches!(cmd.target.cluster.target(), Target::Kubeconfig { context: Some(c), .. } if c == "c")
        );
        let cmd = parse(&[]).unwrap();
        assert_eq!(
            cmd.target.cluster.request_timeout,
            RequestTimeout(Some(Duration::from_secs(30)))
        );
        assert_eq!(
            parse(&["--request-timeout", "0"])
                .unwrap()
                .target
                .cluster
                .request_timeout,
            RequestTimeout(None)
        );
        assert!(matches!(
            parse(&["--in-cluster"]).unwrap().target.cluster.target(),
            Target::InCluster { .. }
        ));
        for bad in [
            &["--sim", "--kubeconfig", "/k"][..],
            &["--sim", "--in-cluster"],
            &["--in-cluster", "--context", "c"],
            &["--request-timeout", "soon"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
