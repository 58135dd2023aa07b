//! Command-line interface: argument parsing and output; the work happens in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod graph;
pub mod input;
pub mod render;
pub mod sim;
pub mod validate;

#[derive(Debug, Parser)]
#[command(
    name = "keelson",
    version,
    about = "GitOps reconciler for OpenStack on Kubernetes"
)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `keelson=debug`.
    #[arg(long, global = true, env = "KEELSON_LOG", default_value = "warn")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The simulated Kubernetes cluster.
    Sim(sim::SimArgs),
    /// Check a topology and list every problem as `file:line:column: field: message`.
    Validate(validate::ValidateArgs),
    /// Show the dependency graph of a topology as waves, Graphviz DOT or Mermaid.
    Graph(graph::GraphArgs),
    /// Print the Kubernetes objects of a topology in apply order, as YAML documents or a JSON List.
    Render(render::RenderArgs),
}

/// Exit code for "the thing failed" (invalid repository, failed rollout).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for usage errors.
pub const EXIT_USAGE: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    match cli.command {
        Command::Sim(args) => sim::run(args),
        Command::Validate(args) => validate::run(&args),
        Command::Graph(args) => graph::run(&args),
        Command::Render(args) => render::run(&args),
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
