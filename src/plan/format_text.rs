//! The plan for a terminal: one block per wave, one line per changed object, field diffs under updates,
//! unchanged objects counted rather than listed. Colour only when asked (the CLI asks on a tty).

use std::fmt::Write as _;

use super::display::{action_label, change_title, field_lines, shown_diffs, summary_line};
use super::model::{Action, ComponentPlan, Plan};

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD_RED: &str = "\x1b[1;31m";

struct Paint {
    on: bool,
}

impl Paint {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    fn sign(&self, sign: char, text: &str) -> String {
        match sign {
            '+' => self.paint(GREEN, text),
            '-' => self.paint(RED, text),
            '~' => self.paint(YELLOW, text),
            _ => text.to_string(),
        }
    }
}

pub fn to_text(plan: &Plan, color: bool) -> String {
    let p = Paint { on: color };
    let mut out = String::new();
    write_header(&mut out, &p, plan);
    out.push_str(&body(plan, color));
    out
}

fn write_header(out: &mut String, p: &Paint, plan: &Plan) {
    let previous = plan
        .previous_revision
        .as_deref()
        .map(|r| format!(" (last applied: {r})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{}",
        p.paint(
            BOLD,
            &format!(
                "Plan for topology {} at revision {}{previous}",
                plan.topology, plan.revision
            )
        )
    );
    let _ = writeln!(out, "{}", summary_line(&plan.summary));
}

/// Everything after the heading: waves, deletions, refusals, warnings, and the closing verdict.
pub(super) fn body(plan: &Plan, color: bool) -> String {
    let p = Paint { on: color };
    let mut out = String::new();
    let total = plan.waves.len();
    for wave in &plan.waves {
        let names: Vec<&str> = wave.components.iter().map(|c| c.name.as_str()).collect();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{}",
            p.paint(
                BOLD,
                &format!("Wave {} of {total}: {}", wave.index + 1, names.join(", "))
            )
        );
        for component in &wave.components {
            write_component(&mut out, &p, component);
        }
    }

    if !plan.deletions.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{}",
            p.paint(BOLD, "Deletions (after all waves, dependents first)")
        );
        for wave in &plan.deletions {
            let names: Vec<&str> = wave.components.iter().map(|c| c.name.as_str()).collect();
            let _ = writeln!(
                out,
                "{}",
                p.paint(
                    BOLD,
                    &format!("Deletion wave {}: {}", wave.index + 1, names.join(", "))
                )
            );
            for component in &wave.components {
                write_component(&mut out, &p, component);
            }
        }
    }

    if !plan.refusals.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", p.paint(BOLD, "Refused"));
        for r in &plan.refusals {
            let mark = if r.blocking {
                p.paint(BOLD_RED, "! refused")
            } else {
                p.paint(YELLOW, "! kept   ")
            };
            let _ = writeln!(
                out,
                "  {mark} {} ({}, {}): {}",
                r.reference,
                r.component,
                r.action.as_str(),
                r.message
            );
        }
    }

    if !plan.warnings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", p.paint(BOLD, "Warnings"));
        for w in &plan.warnings {
            let _ = writeln!(
                out,
                "  {} {} ({}): {}",
                p.paint(YELLOW, "! warning"),
                w.reference,
                w.component,
                w.message
            );
        }
    }

    if !plan.skipped_checks.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", p.paint(BOLD, "Pre-flight"));
        for s in &plan.skipped_checks {
            let _ = writeln!(
                out,
                "  {} pre-flight skipped for {}: {}",
                p.paint(YELLOW, "! skipped"),
                s.resource,
                s.reason
            );
        }
    }

    let _ = writeln!(out);
    match plan.blocked_message() {
        Some(message) => {
            let _ = writeln!(out, "{}", p.paint(BOLD_RED, "BLOCKED"));
            for line in message.lines() {
                let _ = writeln!(out, "{}", p.paint(RED, line));
            }
        }
        None if !plan.has_changes() => {
            let _ = writeln!(out, "No changes: the cluster matches revision {}.", plan.revision);
        }
        None => {}
    }
    out
}

fn write_component(out: &mut String, p: &Paint, component: &ComponentPlan) {
    let unchanged = component.count(Action::Unchanged);
    let changed: Vec<_> = component
        .changes
        .iter()
        .filter(|c| c.action != Action::Unchanged)
        .collect();
    if changed.is_empty() {
        let what = if component.changes.is_empty() {
            "no objects".to_string()
        } else {
            format!("{unchanged} unchanged")
        };
        let _ = writeln!(
            out,
            "  {}: {}",
            component.name,
            p.paint(DIM, &format!("no changes ({what})"))
        );
        return;
    }
    let _ = writeln!(out, "  {}", component.name);
    for change in changed {
        let label = action_label(change.action);
        let sign = label.chars().next().unwrap_or(' ');
        let _ = writeln!(out, "    {} {}", p.sign(sign, label), change_title(change));
        for d in shown_diffs(change) {
            for line in field_lines(d) {
                let _ = writeln!(
                    out,
                    "        {}",
                    p.sign(line.sign, &format!("{} {}", line.sign, line.text))
                );
            }
        }
    }
    if unchanged > 0 {
        let _ = writeln!(out, "    {}", p.paint(DIM, &format!("= {unchanged} unchanged")));
    }
}
