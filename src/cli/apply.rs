//! `keelson apply`: one pass — plan, then roll out wave by wave with live progress and a summary.

use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::input::TopologyInput;
use super::pass_args::{DecryptArgs, PassArgs};
use super::target::TargetArgs;
use super::{EXIT_FAILURE, report, runtime};
use crate::cluster::Kube;
use crate::reconciler::{self, PassOutcome, PassSettings};
use crate::source::Snapshot;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub input: TopologyInput,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub pass: PassArgs,
    #[command(flatten)]
    pub decrypt: DecryptArgs,
}

pub fn run(args: ApplyArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let (snapshot, connection) = match super::read_and_connect(&args.input, &args.target).await {
            Ok(both) => both,
            Err(code) => return code,
        };
        let mut settings = args.pass.settings();
        args.decrypt.apply_to(&mut settings);
        match apply_with_progress(&connection.kube, &snapshot, &settings).await {
            Some(outcome) if outcome.rollout.converged() => ExitCode::SUCCESS,
            _ => ExitCode::from(EXIT_FAILURE),
        }
    })
}

/// Plans and applies one snapshot, printing progress and the summary. `None` when the pass failed before
/// the rollout (the reason is printed).
pub async fn apply_with_progress(
    kube: &Kube,
    snapshot: &Snapshot,
    settings: &PassSettings,
) -> Option<PassOutcome> {
    let prepared = match reconciler::prepare(kube, snapshot, settings).await {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("{e}");
            return None;
        }
    };
    let s = &prepared.plan.summary;
    println!(
        "revision {} of topology {}: {} to create, {} to update, {} unchanged, {} to delete",
        prepared.revision.short(),
        prepared.topology.name,
        s.create,
        s.update,
        s.unchanged,
        s.delete
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let interrupted = cancel.clone();
    let on_ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: stopping after the writes in flight");
            interrupted.cancel();
        }
    });
    let printer = report::print_progress(&prepared.plan, rx);
    let execution = reconciler::execute(kube, &prepared, settings, cancel, Some(tx));
    let (result, ()) = tokio::join!(execution, printer);
    on_ctrl_c.abort();
    match result {
        Ok(outcome) => {
            println!("\n{}", report::summary_table(&prepared.plan, &outcome.rollout));
            Some(outcome)
        }
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}
