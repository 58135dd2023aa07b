//! Which Kubernetes API a command talks to: a kubeconfig context, the pod's service account, or a fresh
//! embedded simulated cluster.

use std::path::PathBuf;

use crate::cluster::{self, ClusterError, Kube, Target};
use crate::sim::{self, SimOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "FILE", env = "KEELSON_KUBECONFIG", conflicts_with_all = ["sim", "in_cluster"])]
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig to use (default: its current context).
    #[arg(long, value_name = "NAME", env = "KEELSON_CONTEXT", conflicts_with_all = ["sim", "in_cluster"])]
    pub context: Option<String>,
    /// Use the pod's service account.
    #[arg(long, conflicts_with = "sim")]
    pub in_cluster: bool,
    /// Use a fresh embedded simulated cluster (empty; gone when the command ends).
    #[arg(long)]
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
        if self.sim {
            let cluster = sim::Cluster::start(SimOptions::default()).await?;
            let kube = cluster::connect(Target::InlineKubeconfig {
                kubeconfig: cluster.kubeconfig(),
                context: None,
            })
            .await?;
            return Ok(Connection {
                kube,
                sim: Some(cluster),
            });
        }
        let target = if self.in_cluster {
            Target::InCluster
        } else {
            Target::Kubeconfig {
                path: self.kubeconfig.clone(),
                context: self.context.clone(),
            }
        };
        Ok(Connection {
            kube: cluster::connect(target).await?,
            sim: None,
        })
    }
}
