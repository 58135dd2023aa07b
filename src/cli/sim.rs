//! `keelson sim serve`: the simulated cluster in the foreground, for people and for kubectl.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::sim::{Cluster, FaultConfig, NodeCapacity, NodeLabels, NodeTaint, SimOptions};

use super::{EXIT_FAILURE, EXIT_USAGE};

#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: SimCommand,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run the simulated cluster until interrupted.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Write a kubeconfig for the simulator here (kubectl --kubeconfig FILE).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Time from a Pod landing on its node until it is Ready.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub ready_after: Duration,
    /// Time a Job's Pod runs before it exits.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub job_duration: Duration,
    /// Nodes of the cluster (node-1 .. node-N).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub nodes: u32,
    /// Node labels, for every node (`KEY=VALUE,...`) or for one (`node-2:KEY=VALUE,...`). Repeatable.
    #[arg(long = "node-labels", value_name = "[NODE:]LABELS")]
    pub node_labels: Vec<NodeLabels>,
    /// A node taint, for every node (`KEY[=VALUE]:EFFECT`) or for one (`node-1:KEY[=VALUE]:EFFECT`).
    /// Repeatable.
    #[arg(long = "node-taints", value_name = "[NODE:]TAINT")]
    pub node_taints: Vec<NodeTaint>,
    /// What each node can hold, e.g. `cpu=8,memory=32Gi,pods=110,ephemeral-storage=100Gi`.
    #[arg(
        long,
        value_name = "RESOURCES",
        default_value = "cpu=8,memory=32Gi,pods=110,ephemeral-storage=100Gi"
    )]
    pub node_capacity: NodeCapacity,
    /// Image glob that never pulls (ErrImagePull, then ImagePullBackOff). Repeatable.
    #[arg(long = "unpullable-image", value_name = "GLOB")]
    pub unpullable_images: Vec<String>,
    /// Glob over Job names and images: their Pods exit with an error, so the Jobs fail. Repeatable.
    #[arg(long = "failing-job", value_name = "GLOB")]
    pub failing_jobs: Vec<String>,
    /// Glob over container command lines (command and args joined by spaces): they crash and go
    /// CrashLoopBackOff. Repeatable.
    #[arg(long = "crash-command", value_name = "GLOB")]
    pub crash_commands: Vec<String>,
    /// Fault configuration as JSON (see docs/simulator.md), e.g. '{"errorRates":{"patch":0.1}}'.
    #[arg(long, value_name = "JSON")]
    pub faults: Option<String>,
}

pub fn run(args: SimArgs) -> ExitCode {
    match args.command {
        SimCommand::Serve(a) => serve(a),
    }
}

fn serve(a: ServeArgs) -> ExitCode {
    let faults = match a.faults.as_deref().map(serde_json::from_str::<FaultConfig>) {
        None => FaultConfig::default(),
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            eprintln!("keelson sim serve: --faults: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let opts = SimOptions {
        port: a.port,
        ready_after: a.ready_after,
        job_duration: a.job_duration,
        nodes: a.nodes,
        node_labels: a.node_labels,
        node_taints: a.node_taints,
        node_capacity: a.node_capacity,
        unpullable_images: a.unpullable_images,
        failing_jobs: a.failing_jobs,
        crash_commands: a.crash_commands,
        faults,
        ..SimOptions::default()
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keelson sim serve: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    rt.block_on(async move {
        let cluster = match Cluster::start(opts).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("keelson sim serve: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        };
        if let Some(path) = &a.kubeconfig_out {
            if let Err(e) = cluster.write_kubeconfig(path) {
                eprintln!("keelson sim serve: {e}");
                cluster.shutdown().await;
                return ExitCode::from(EXIT_FAILURE);
            }
            println!("kubeconfig written to {}", path.display());
        }
        println!("simulated cluster serving at {}", cluster.url());
        println!("press Ctrl-C to stop");
        let _ = tokio::signal::ctrl_c().await;
        cluster.shutdown().await;
        ExitCode::SUCCESS
    })
}
