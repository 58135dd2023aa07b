//! `keelson validate [DIR] [-o text|json]`: parse and check a topology, print every problem.

use std::process::ExitCode;

use serde_json::json;

use super::input::TopologyInput;
use super::{EXIT_FAILURE, print_stdout};
use crate::source::SourceError;
use crate::topology::{self, Diagnostics, Topology, graph};

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
    let loaded = topology::load(&snapshot);
    if args.output == ValidateFormat::Json {
        print_stdout(&(as_json(origin, &loaded) + "\n"));
        return if loaded.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_FAILURE)
        };
    }
    match loaded {
        Ok(topology) => {
            println!("{}", summary(origin, &topology));
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            println!("{diagnostics}");
            eprintln!("{origin}: {} problem(s) found", diagnostics.len());
            ExitCode::from(EXIT_FAILURE)
        }
    }
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

fn as_json(origin: &str, loaded: &Result<Topology, Diagnostics>) -> String {
    let document = match loaded {
        Ok(topology) => json!({
            "origin": origin,
            "valid": true,
            "topology": topology.name,
            "namespace": topology.spec.namespace,
            "components": topology.components.len(),
            "waves": graph::waves(topology).len(),
            "problems": [],
        }),
        Err(diagnostics) => json!({
            "origin": origin,
            "valid": false,
            "problems": diagnostics.iter().map(|d| json!({
                "file": d.file,
                "line": d.line,
                "column": d.column,
                "field": d.field,
                "message": d.message,
            })).collect::<Vec<_>>(),
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
