//! `keelson validate [DIR] [-o text|json]`: parse and check a topology, print every problem.

use std::collections::BTreeSet;
use std::process::ExitCode;

use serde_json::json;

use super::input::TopologyInput;
use super::{EXIT_FAILURE, print_stdout};
use crate::source::SourceError;
use crate::topology::{self, Topology, graph};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidateFormat {
    /// `file:line:column: field: message` per problem, or a one-line summary of a valid topology.
    Text,
    /// One JSON document: `valid`, the summary, and every problem with its file, line, column and field.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub input: TopologyInput,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ValidateFormat::Text)]
    pub output: ValidateFormat,
}

pub fn run(args: &ValidateArgs) -> ExitCode {
    let snapshot = match args.input.snapshot() {
        Ok(snapshot) => snapshot,
        Err(e) => return source_failure(&e),
    };
    let origin = &snapshot.revision.origin;
    let loaded = topology::load_with_warnings(&snapshot);
    if args.output == ValidateFormat::Json {
        print_stdout(&(as_json(origin, &loaded) + "\n"));
        return if loaded.result.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_FAILURE)
        };
    }
    let warnings = warning_lines(&loaded.warnings);
    match &loaded.result {
        Ok(topology) => {
            for line in &warnings {
                println!("{line}");
            }
            println!(
                "{}{}",
                summary(origin, topology),
                config_summary(topology, &loaded.checked_config_files, warnings.len())
            );
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            println!("{diagnostics}");
            for line in &warnings {
                println!("{line}");
            }
            eprintln!("{origin}: {} problem(s) found", diagnostics.len());
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
fn config_summary(topology: &Topology, checked: &[topology::oslo::CheckedFile], warnings: usize) -> String {
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

fn summary(origin: &str, topology: &Topology) -> String {
    let jobs: usize = topology.components.values().map(|c| c.spec.jobs.len()).sum();
    let manifests: usize = topology.components.values().map(|c| c.manifests.len()).sum();
    format!(
        "{origin}: topology {} is valid: {} components in {} waves, {jobs} jobs, {manifests} raw manifests, \
         namespace {}",
        topology.name,
        topology.components.len(),
        graph::waves(topology).len(),
        topology.spec.namespace,
    )
}

fn diagnostic_json(d: &topology::Diagnostic) -> serde_json::Value {
    json!({
        "file": d.file,
        "line": d.line,
        "column": d.column,
        "field": d.field,
        "message": d.message,
    })
}

fn as_json(origin: &str, loaded: &topology::Loaded) -> String {
    let warnings: Vec<_> = loaded.warnings.iter().map(diagnostic_json).collect();
    let document = match &loaded.result {
        Ok(topology) => json!({
            "origin": origin,
            "valid": true,
            "topology": topology.name,
            "namespace": topology.spec.namespace,
            "components": topology.components.len(),
            "waves": graph::waves(topology).len(),
            "problems": [],
            "warnings": warnings,
        }),
        Err(diagnostics) => json!({
            "origin": origin,
            "valid": false,
            "problems": diagnostics.iter().map(diagnostic_json).collect::<Vec<_>>(),
            "warnings": warnings,
        }),
    };
    serde_json::to_string_pretty(&document).unwrap_or_default()
}

/// For commands whose output is something else than diagnostics: the problems go to stderr, exit 1.
pub(crate) fn invalid_topology(origin: &str, diagnostics: &topology::Diagnostics) -> ExitCode {
    eprintln!("{diagnostics}");
    eprintln!("{origin}: {} problem(s) found", diagnostics.len());
    ExitCode::from(EXIT_FAILURE)
}

/// A topology that cannot be read (a directory that is not there, a file that cannot be read, a remote that
/// does not answer) is a failure of the thing asked for, exit 1; usage errors (exit 2) are clap's.
pub(crate) fn source_failure(error: &SourceError) -> ExitCode {
    eprintln!("{error}");
    ExitCode::from(EXIT_FAILURE)
}
