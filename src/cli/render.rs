//! `keelson render DIR [-o yaml|json] [--revision REV]`: the Kubernetes objects of a valid topology,
//! in apply order.

use std::io::Write;
use std::process::ExitCode;

use super::EXIT_FAILURE;
use super::input::TopologyInput;
use crate::render::{self, RenderOptions, Rendered};
use crate::topology;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One YAML document per object.
    Yaml,
    /// A Kubernetes `List` holding every object.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub input: TopologyInput,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// Revision stamped on every object as the `keelson.dev/revision` annotation (not part of the hash).
    #[arg(long)]
    pub revision: Option<String>,
}

pub fn run(args: &RenderArgs) -> ExitCode {
    if let Some(revision) = &args.revision
        && (revision.is_empty() || revision.len() > 256 || revision.chars().any(char::is_control))
    {
        eprintln!("--revision: must be 1 to 256 characters without control characters");
        return ExitCode::from(super::EXIT_USAGE);
    }
    let snapshot = match args.input.snapshot() {
        Ok(snapshot) => snapshot,
        Err(e) => return super::validate::source_failure(&e),
    };
    let topology = match topology::load(&snapshot) {
        Ok(topology) => topology,
        Err(diagnostics) => {
            return super::validate::invalid_topology(&snapshot.revision.origin, &diagnostics);
        }
    };
    let options = RenderOptions {
        revision: args.revision.clone(),
    };
    let rendered = match render::render(&topology, &options) {
        Ok(rendered) => rendered,
        Err(e) => {
            eprintln!("{}: {e}", snapshot.revision.origin);
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let text = match format(&rendered, args.output) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{}: {e}", snapshot.revision.origin);
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`keelson render . | head`) is not worth a panic or an error message.
    if stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::from(EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}

/// Multi-document YAML (each document introduced by `---`) or a pretty-printed JSON `List`.
pub fn format(rendered: &Rendered, output: OutputFormat) -> Result<String, crate::yaml::YamlError> {
    match output {
        OutputFormat::Yaml => {
            let mut out = String::new();
            for object in &rendered.objects {
                out.push_str("---\n");
                out.push_str(&crate::yaml::to_string(&object.body)?);
            }
            Ok(out)
        }
        OutputFormat::Json => {
            let items: Vec<&serde_json::Value> = rendered.objects.iter().map(|o| &o.body).collect();
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            let mut text =
                serde_json::to_string_pretty(&list).map_err(|e| crate::yaml::YamlError::Write {
                    message: e.to_string(),
                })?;
            text.push('\n');
            Ok(text)
        }
    }
}
