//! `keelson validate DIR`: parse and check a topology, print every problem.

use std::process::ExitCode;

use super::input::TopologyInput;
use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::source::SourceError;
use crate::topology::{self, graph};

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub input: TopologyInput,
}

pub fn run(args: &ValidateArgs) -> ExitCode {
    let snapshot = match args.input.snapshot() {
        Ok(snapshot) => snapshot,
        Err(e) => return source_failure(&e),
    };
    match topology::load(&snapshot) {
        Ok(topology) => {
            let jobs: usize = topology.components.values().map(|c| c.spec.jobs.len()).sum();
            let manifests: usize = topology.components.values().map(|c| c.manifests.len()).sum();
            println!(
                "{}: topology {} is valid: {} components in {} waves, {} jobs, {} raw manifests, namespace {}",
                snapshot.revision.origin,
                topology.name,
                topology.components.len(),
                graph::waves(&topology).len(),
                jobs,
                manifests,
                topology.spec.namespace,
            );
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            println!("{diagnostics}");
            eprintln!(
                "{}: {} problem(s) found",
                snapshot.revision.origin,
                diagnostics.len()
            );
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// For commands whose output is something else than diagnostics: the problems go to stderr, exit 1.
pub(crate) fn invalid_topology(origin: &str, diagnostics: &topology::Diagnostics) -> ExitCode {
    eprintln!("{diagnostics}");
    eprintln!("{origin}: {} problem(s) found", diagnostics.len());
    ExitCode::from(EXIT_FAILURE)
}

/// A directory that is not there is a usage error; one that cannot be read is a failure.
pub(crate) fn source_failure(error: &SourceError) -> ExitCode {
    eprintln!("{error}");
    match error {
        SourceError::NotADirectory { .. } => ExitCode::from(EXIT_USAGE),
        SourceError::ReadDir { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            ExitCode::from(EXIT_USAGE)
        }
        _ => ExitCode::from(EXIT_FAILURE),
    }
}
