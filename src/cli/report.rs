//! Live progress of a rollout and the summary table after it, for `apply` and `demo`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::cluster::ChangeKind;
use crate::object::ObjectRef;
use crate::plan::Plan;
use crate::rollout::{ComponentState, ProgressEvent, RolloutOutcome};

/// Prints progress events as they arrive: a line when a wave starts, one line per component start and
/// finish, each with the wave it belongs to and the time since the rollout started. On a terminal a status line below them names the
/// components still being waited on, refreshed every quarter second.
pub async fn print_progress(plan: &Plan, mut events: UnboundedReceiver<ProgressEvent>) {
    let wave_count = plan.waves.len();
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut announced_waves = std::collections::BTreeSet::new();
    let mut running: BTreeMap<String, Instant> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
            _ = tick.tick(), if tty => {
                status_line(&running);
                continue;
            }
        };
        let at = started.elapsed().as_secs_f64();
        let line = match event {
            ProgressEvent::ComponentStarted {
                component,
                wave,
                at: began,
            } => {
                let wave = wave + 1;
                let mut line = String::new();
                if announced_waves.insert(wave) {
                    let members: Vec<&str> = plan
                        .waves
                        .iter()
                        .filter(|w| w.index + 1 == wave)
                        .flat_map(|w| w.components.iter().map(|c| c.name.as_str()))
                        .collect();
                    let _ = writeln!(
                        line,
                        "[{at:6.1}s] wave {wave}/{wave_count} starts: {}",
                        members.join(", ")
                    );
                }
                // Each line names its wave: a component of an earlier wave may start after a later one did.
                let _ = write!(line, "[{at:6.1}s]   wave {wave}  {component:<28} applying");
                running.insert(component, began);
                line
            }
            ProgressEvent::ComponentFinished {
                component,
                wave,
                state,
                reason,
            } => {
                let took = running
                    .remove(&component)
                    .map(|t| t.elapsed().as_secs_f64())
                    .unwrap_or(0.0);
                let reason = if reason.is_empty() {
                    String::new()
                } else {
                    format!("  {reason}")
                };
                let wave = wave + 1;
                format!("[{at:6.1}s]   wave {wave}  {component:<28} {state} after {took:.1}s{reason}")
            }
            ProgressEvent::ObjectDeleted { object, change } => {
                format!("[{at:6.1}s]   prune {object}: {change}")
            }
            ProgressEvent::ComponentWaiting { component, reason } => {
                let wave = plan
                    .waves
                    .iter()
                    .find(|w| w.components.iter().any(|c| c.name == component))
                    .map_or(0, |w| w.index + 1);
                format!("[{at:6.1}s]   wave {wave}  {component:<28} waiting: {reason}")
            }
            ProgressEvent::ObjectApplied { .. } | ProgressEvent::ObjectHealthy { .. } => continue,
        };
        if tty {
            print!("\r\x1b[2K");
        }
        println!("{line}");
        if tty {
            status_line(&running);
        }
    }
    if tty {
        print!("\r\x1b[2K");
        let _ = std::io::stdout().flush();
    }
}

fn status_line(running: &BTreeMap<String, Instant>) {
    let waiting: Vec<String> = running
        .iter()
        .map(|(name, since)| format!("{name} {:.1}s", since.elapsed().as_secs_f64()))
        .collect();
    let mut line = if waiting.is_empty() {
        String::new()
    } else {
        format!("waiting for: {}", waiting.join(", "))
    };
    line.truncate(200);
    print!("\r\x1b[2K{line}");
    let _ = std::io::stdout().flush();
}

/// One line for a pass that had nothing to change and found every component healthy.
pub fn unchanged_summary(outcome: &RolloutOutcome) -> String {
    format!(
        "nothing to change: {} components healthy, {} objects unchanged, checked in {:.1}s",
        outcome.components.len(),
        outcome.changes.count(ChangeKind::Unchanged),
        outcome.elapsed.as_secs_f64()
    )
}

/// The per-component table printed after a rollout.
pub fn summary_table(plan: &Plan, outcome: &RolloutOutcome) -> String {
    let component_of: HashMap<&ObjectRef, &str> = plan
        .waves
        .iter()
        .flat_map(|w| w.components.iter())
        .chain(plan.deletions.iter().flat_map(|d| d.components.iter()))
        .flat_map(|c| c.changes.iter().map(move |ch| (&ch.reference, c.name.as_str())))
        .collect();
    let mut counts: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for entry in &outcome.changes.entries {
        let Some(component) = component_of.get(&entry.object) else {
            continue;
        };
        let slot = match entry.change {
            ChangeKind::Created => 0,
            ChangeKind::Configured => 1,
            ChangeKind::Deleted => 2,
            _ => continue,
        };
        counts.entry(component).or_default()[slot] += 1;
    }
    let wave_of: HashMap<&str, usize> = plan
        .waves
        .iter()
        .flat_map(|w| w.components.iter().map(move |c| (c.name.as_str(), w.index + 1)))
        .collect();
    let mut out = format!(
        "{:<28} {:>4}  {:<8} {:>8}  {:>7} {:>10} {:>7}  {}\n",
        "COMPONENT", "WAVE", "STATE", "ELAPSED", "CREATED", "CONFIGURED", "DELETED", "REASON"
    );
    for c in &outcome.components {
        let [created, configured, deleted] = counts.get(c.name.as_str()).copied().unwrap_or_default();
        let wave = wave_of
            .get(c.name.as_str())
            .map(|w| w.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<28} {:>4}  {:<8} {:>7.1}s  {:>7} {:>10} {:>7}  {}",
            c.name,
            wave,
            c.state.to_string(),
            c.elapsed.as_secs_f64(),
            created,
            configured,
            deleted,
            c.reason
        );
    }
    let count = |k: ChangeKind| outcome.changes.count(k);
    let _ = writeln!(out, "\n{}", component_counts(outcome));
    let _ = writeln!(
        out,
        "objects: {} created, {} configured, {} unchanged, {} deleted, {} failed to write, {} not reached in {:.1}s",
        count(ChangeKind::Created),
        count(ChangeKind::Configured),
        count(ChangeKind::Unchanged),
        count(ChangeKind::Deleted),
        count(ChangeKind::Failed),
        count(ChangeKind::Skipped),
        outcome.elapsed.as_secs_f64(),
    );
    out
}

/// Components by how they ended; timed-out ones are failed ones, counted again on their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ComponentCounts {
    pub healthy: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub blocked: usize,
    pub skipped: usize,
    pub cancelled: bool,
}

impl ComponentCounts {
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "healthy": self.healthy,
            "failed": self.failed,
            "timedOut": self.timed_out,
            "blocked": self.blocked,
            "skipped": self.skipped,
        })
    }
}

/// `components: 3 healthy, 5 failed (5 timed out), 2 blocked, 1 skipped (interrupted)`.
impl std::fmt::Display for ComponentCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "components: {} healthy, {} failed", self.healthy, self.failed)?;
        if self.timed_out > 0 {
            write!(f, " ({} timed out)", self.timed_out)?;
        }
        write!(f, ", {} blocked, {} skipped", self.blocked, self.skipped)?;
        if self.cancelled {
            f.write_str(" (cancelled before they finished)")?;
        }
        Ok(())
    }
}

pub fn component_counts(outcome: &RolloutOutcome) -> ComponentCounts {
    let mut counts = ComponentCounts {
        cancelled: outcome.cancelled,
        ..ComponentCounts::default()
    };
    for c in &outcome.components {
        match c.state {
            ComponentState::Healthy => counts.healthy += 1,
            ComponentState::Failed => {
                counts.failed += 1;
                counts.timed_out += usize::from(c.timed_out);
            }
            ComponentState::Blocked => counts.blocked += 1,
            ComponentState::Skipped => counts.skipped += 1,
        }
    }
    counts
}
