//! `keelson graph DIR [-o text|dot|mermaid]`: the dependency graph of a valid topology.

use std::process::ExitCode;

use super::input::TopologyInput;
use crate::topology::{self, graph};

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub input: TopologyInput,
    /// Output format: waves as text, Graphviz DOT, or a Mermaid flowchart (`--format` is the old spelling).
    #[arg(short = 'o', long = "output", alias = "format", value_enum, default_value_t = graph::Format::Text)]
    pub output: graph::Format,
}

pub fn run(args: &GraphArgs) -> ExitCode {
    let snapshot = match args.input.snapshot() {
        Ok(snapshot) => snapshot,
        Err(e) => return super::validate::source_failure(&e),
    };
    match topology::load(&snapshot) {
        Ok(topology) => {
            super::print_stdout(&graph::format(&topology, args.output));
            ExitCode::SUCCESS
        }
        Err(diagnostics) => super::validate::invalid_topology(&snapshot.revision.origin, &diagnostics),
    }
}
