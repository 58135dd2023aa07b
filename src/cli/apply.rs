//! `keelson apply`: one pass — plan, then roll out wave by wave with live progress and a summary (or, with
//! `-o json`, one JSON document of what happened to every component and object).

use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::input::TopologyInput;
use super::pass_args::{DecryptArgs, PassArgs};
use super::target::TargetArgs;
use super::verify_args::VerifyArgs;
use super::{EXIT_FAILURE, print_stdout, report, runtime};
use crate::cluster::{ChangeKind, Kube};
use crate::reconciler::{self, PassOutcome, PassSettings, Prepared};
use crate::rollout::{CancelReason, RolloutOutcome};

/// What the components Ctrl-C stopped say.
const INTERRUPTED: &str = "interrupted (Ctrl-C): not finished";
use crate::source::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApplyFormat {
    /// Live progress and a summary table.
    Text,
    /// One JSON document after the pass: every component and object with what happened to it.
    Json,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub input: TopologyInput,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub pass: PassArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub decrypt: DecryptArgs,
    /// Send every write as a server-side dry run: the API server checks each object (schema, admission,
    /// RBAC) and stores nothing; nothing is waited on and the inventory is not recorded. Custom resources
    /// whose CustomResourceDefinition this revision creates are skipped with a note (their kind does not
    /// exist yet).
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ApplyFormat::Text)]
    pub output: ApplyFormat,
}

pub fn run(args: ApplyArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let (snapshot, connection) =
            match super::read_verified_and_connect(&args.input, &args.target, &args.verify).await {
                Ok(both) => both,
                Err(code) => return code,
            };
        if let Some(signer) = &snapshot.signer {
            // On stderr with -o json, so that stdout stays one JSON document.
            match args.output {
                ApplyFormat::Text => println!("{} signed by {signer}", signer.object),
                ApplyFormat::Json => eprintln!("{} signed by {signer}", signer.object),
            }
        }
        let mut settings = args.verify.settings(&args.pass);
        args.decrypt.apply_to(&mut settings);
        settings.dry_run |= args.dry_run;
        let outcome = match args.output {
            ApplyFormat::Text => apply_with_progress(&connection.kube, &snapshot, &settings).await,
            ApplyFormat::Json => apply_as_json(&connection.kube, &snapshot, &settings).await,
        };
        match outcome {
            Some(outcome) if outcome.rollout.converged() => ExitCode::SUCCESS,
            Some(outcome) if settings.dry_run && outcome.rollout.passed_dry_run() => ExitCode::SUCCESS,
            _ => ExitCode::from(EXIT_FAILURE),
        }
    })
}

/// Plans and applies one snapshot, printing progress and the summary; a pass with nothing to change gets
/// a one-line summary. `None` when the pass failed before the rollout (the reason is printed).
pub async fn apply_with_progress(
    kube: &Kube,
    snapshot: &Snapshot,
    settings: &PassSettings,
) -> Option<PassOutcome> {
    let prepared = prepare(kube, snapshot, settings).await?;
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
    let unchanged = !prepared.plan.has_changes();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = interruptible();
    let settings = &cancel.settings(settings);
    let execution = reconciler::execute(kube, &prepared, settings, cancel.token.clone(), Some(tx));
    let result = if unchanged {
        // Nothing to apply: the health checks run, component by component, without a line each.
        drop(rx);
        execution.await
    } else {
        let printer = report::print_progress(&prepared.plan, rx);
        tokio::join!(execution, printer).0
    };
    match result {
        Ok(outcome) if unchanged && outcome.rollout.converged() => {
            println!("{}", report::unchanged_summary(&outcome.rollout));
            Some(outcome)
        }
        Ok(outcome) => {
            println!("\n{}", report::summary_table(&prepared.plan, &outcome.rollout));
            Some(outcome)
        }
        Err(e) => {
            eprintln!("{}", super::pass_failure(kube, &e));
            None
        }
    }
}

/// The same pass, printing only one JSON document at the end.
async fn apply_as_json(kube: &Kube, snapshot: &Snapshot, settings: &PassSettings) -> Option<PassOutcome> {
    let prepared = prepare(kube, snapshot, settings).await?;
    let cancel = interruptible();
    let settings = &cancel.settings(settings);
    match reconciler::execute(kube, &prepared, settings, cancel.token.clone(), None).await {
        Ok(outcome) => {
            let document = outcome_json(&prepared, &outcome.rollout);
            print_stdout(&(serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"));
            Some(outcome)
        }
        Err(e) => {
            eprintln!("{}", super::pass_failure(kube, &e));
            None
        }
    }
}

async fn prepare(kube: &Kube, snapshot: &Snapshot, settings: &PassSettings) -> Option<Prepared> {
    match reconciler::prepare(kube, snapshot, settings).await {
        Ok(prepared) => Some(prepared),
        Err(e) => {
            eprintln!("{}", super::pass_failure(kube, &e));
            None
        }
    }
}

/// Ctrl-C cancels the rollout (writes in flight finish); dropping this stops listening.
struct Interruptible {
    token: CancellationToken,
    reason: CancelReason,
    listener: tokio::task::JoinHandle<()>,
}

impl Interruptible {
    /// `settings` whose cancelled components say that Ctrl-C stopped them.
    fn settings(&self, settings: &PassSettings) -> PassSettings {
        PassSettings {
            cancel_reason: self.reason.clone(),
            ..settings.clone()
        }
    }
}

impl Drop for Interruptible {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn interruptible() -> Interruptible {
    let token = CancellationToken::new();
    let reason = CancelReason::with_default(INTERRUPTED);
    let interrupted = token.clone();
    let listener = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: stopping after the writes in flight");
            interrupted.cancel();
        }
    });
    Interruptible {
        token,
        reason,
        listener,
    }
}

fn outcome_json(prepared: &Prepared, rollout: &RolloutOutcome) -> Value {
    let wave_of = |name: &str| {
        prepared
            .plan
            .waves
            .iter()
            .find(|w| w.components.iter().any(|c| c.name == name))
            .map(|w| w.index + 1)
    };
    let count = |kind: ChangeKind| rollout.changes.count(kind);
    json!({
        "revision": prepared.revision.id,
        "topology": prepared.topology.name,
        "converged": rollout.converged(),
        "cancelled": rollout.cancelled,
        "elapsedSeconds": rollout.elapsed.as_secs_f64(),
        "counts": {
            "created": count(ChangeKind::Created),
            "configured": count(ChangeKind::Configured),
            "unchanged": count(ChangeKind::Unchanged),
            "deleted": count(ChangeKind::Deleted),
            "failed": count(ChangeKind::Failed),
            "skipped": count(ChangeKind::Skipped),
        },
        "componentCounts": report::component_counts(rollout).to_json(),
        "components": rollout.components.iter().map(|c| json!({
            "name": c.name,
            "wave": wave_of(&c.name),
            "state": c.state.to_string(),
            "reason": c.reason,
            "elapsedSeconds": c.elapsed.as_secs_f64(),
            "timedOut": c.timed_out,
        })).collect::<Vec<_>>(),
        "objects": rollout.changes.entries.iter().map(|e| json!({
            "apiVersion": e.object.api_version,
            "kind": e.object.kind,
            "namespace": e.object.namespace,
            "name": e.object.name,
            "change": e.change.to_string(),
            "message": e.message,
        })).collect::<Vec<_>>(),
    })
}
