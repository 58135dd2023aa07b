//! `keelson validate DIR`: parse and check a topology, print every problem.

use std::collections::BTreeSet;
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
    let loaded = topology::load_with_warnings(&snapshot);
    let warnings = warning_lines(&loaded.warnings);
    match loaded.result {
        Ok(topology) => {
            let jobs: usize = topology.components.values().map(|c| c.spec.jobs.len()).sum();
            let manifests: usize = topology.components.values().map(|c| c.manifests.len()).sum();
            for line in &warnings {
                println!("{line}");
            }
            println!(
                "{}: topology {} is valid: {} components in {} waves, {} jobs, {} raw manifests, namespace {}{}",
                snapshot.revision.origin,
                topology.name,
                topology.components.len(),
                graph::waves(&topology).len(),
                jobs,
                manifests,
                topology.spec.namespace,
                config_summary(&topology, &loaded.checked_config_files, warnings.len()),
            );
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            println!("{diagnostics}");
            for line in &warnings {
                println!("{line}");
            }
            eprintln!(
                "{}: {} problem(s) found",
                snapshot.revision.origin,
                diagnostics.len()
            );
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Warnings read like errors, with `warning:` before the message.
fn warning_lines(warnings: &topology::Diagnostics) -> Vec<String> {
    warnings
        .iter()
        .map(|w| {
            let mut shown = w.clone();
            shown.message = format!("warning: {}", w.message);
            shown.to_string()
        })
        .collect()
}

/// `; 15 oslo.config files checked against option data of 2025.1, 12 other config files not (no option data
/// for their names), 2 warning(s)`, or nothing when the topology lists no option data.
fn config_summary(
    topology: &topology::Topology,
    checked: &[topology::oslo::CheckedFile],
    warnings: usize,
) -> String {
    let checked_files: BTreeSet<&str> = checked.iter().map(|c| c.source.as_str()).collect();
    let releases: BTreeSet<&str> = checked.iter().map(|c| c.release.as_str()).collect();
    let others = topology
        .components
        .values()
        .flat_map(|c| c.spec.config_files.iter().map(|f| f.source.as_str()))
        .filter(|source| !checked_files.contains(source))
        .collect::<BTreeSet<_>>()
        .len();
    let mut out = String::new();
    if !topology.spec.config_schemas.is_empty() && checked_files.is_empty() {
        out.push_str("; no config file has option data for its name and release (spec.configSchemas)");
    } else if !topology.spec.config_schemas.is_empty() {
        out.push_str(&format!(
            "; {} oslo.config files checked against option data of {}, {others} other config files not \
             (no option data for their names)",
            checked_files.len(),
            releases.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if warnings > 0 {
        out.push_str(&format!(", {warnings} warning(s)"));
    }
    out
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
