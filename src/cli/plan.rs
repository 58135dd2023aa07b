//! `keelson plan`: what a pass would change, as text, Markdown (a pull-request comment) or JSON.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::input::TopologyInput;
use super::pass_args::PassArgs;
use super::target::TargetArgs;
use super::{EXIT_FAILURE, runtime};
use crate::plan;
use crate::reconciler;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub input: TopologyInput,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub pass: PassArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Exit 0 when there is nothing to change, 2 when there are changes, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

pub fn run(args: PlanArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(plan_command(args))
}

async fn plan_command(args: PlanArgs) -> ExitCode {
    let (snapshot, connection) = match super::read_and_connect(&args.input, &args.target).await {
        Ok(both) => both,
        Err(code) => return code,
    };
    let prepared = match reconciler::prepare(&connection.kube, &snapshot, &args.pass.settings()).await {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let text = match args.format {
        PlanFormat::Text => plan::to_text(&prepared.plan, std::io::stdout().is_terminal()),
        PlanFormat::Markdown => plan::to_markdown(&prepared.plan),
        PlanFormat::Json => plan::to_json(&prepared.plan),
    };
    super::print_stdout(&text);
    if prepared.plan.is_blocked() {
        return ExitCode::from(EXIT_FAILURE);
    }
    match (args.detailed_exitcode, prepared.plan.has_changes()) {
        (true, true) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    }
}
