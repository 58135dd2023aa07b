//! A review for a terminal: the headline, what restarts and runs, the graph change, then the plan wave by wave.

use std::fmt::Write as _;

use super::format_text;
use super::impact::Impact;
use super::impact_display::{effect_text, job_text, pods_text, reason_text};
use super::review::{GraphChange, Review, RevisionInfo};

pub fn review_to_text(review: &Review, color: bool) -> String {
    let bold = |s: &str| {
        if color {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let against = match (&review.base, review.offline) {
        (Some(base), true) => format!("against base {}", revision_line(base)),
        (Some(base), false) => format!("against the cluster (base {})", revision_line(base)),
        (None, true) => "against an empty cluster".to_string(),
        (None, false) => "against the cluster".to_string(),
    };
    let _ = writeln!(
        out,
        "{}",
        bold(&format!(
            "Plan for topology {}: head {} {against}",
            review.plan.topology,
            revision_line(&review.head)
        ))
    );
    if !review.offline {
        let _ = writeln!(out, "{}", last_applied_line(review));
    }
    let _ = writeln!(out, "{}", review.summary_line());
    write_impact(&mut out, &review.impact, &bold);
    if let Some(graph) = &review.graph {
        write_graph(&mut out, graph, &bold);
    }
    if let Some(change) = &review.change {
        let _ = writeln!(out);
        let s = &change.plan.summary;
        let _ = writeln!(
            out,
            "{}",
            bold(&format!(
                "The change alone (base -> head): {} to create, {} to update, {} to delete, {} restart(s), {} job(s)",
                s.create,
                s.update,
                s.delete,
                change.impact.restarts().count(),
                change.impact.jobs.len()
            ))
        );
        if review.outside_change.is_empty() {
            let _ = writeln!(out, "  The cluster plan does nothing beyond the change.");
        } else {
            let _ = writeln!(
                out,
                "  Beyond the change (drift, or the cluster is not at base): {} object(s)",
                review.outside_change.len()
            );
            for o in &review.outside_change {
                let _ = writeln!(out, "    {} {} ({})", o.action.as_str(), o.reference, o.component);
            }
        }
    }
    out.push_str(&format_text::body(&review.plan, color));
    out
}

/// The baseline of a plan against the cluster: the revision the cluster was last brought to.
fn last_applied_line(review: &Review) -> String {
    match &review.plan.previous_revision {
        Some(revision) => format!("Last applied to the cluster: {revision}"),
        None => "Last applied to the cluster: nothing yet (no status, no inventory)".to_string(),
    }
}

fn revision_line(r: &RevisionInfo) -> String {
    let mut s = r.short().to_string();
    if let Some(spec) = r.spec.as_deref().filter(|spec| !r.revision.starts_with(*spec)) {
        s.push_str(&format!(" ({spec})"));
    }
    if let Some(subject) = &r.subject {
        s.push_str(&format!(" {subject:?}"));
    }
    if let Some(signer) = &r.signed_by {
        s.push_str(&format!(", signed by {signer}"));
    }
    s
}

fn write_impact(out: &mut String, impact: &Impact, bold: &dyn Fn(&str) -> String) {
    if !impact.workloads.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", bold("Workloads"));
        for w in &impact.workloads {
            let _ = writeln!(
                out,
                "  {:<7} {} ({}): {}",
                effect_text(w.effect),
                w.reference,
                w.component,
                pods_text(w)
            );
            for r in &w.reasons {
                let _ = writeln!(out, "            {}", reason_text(r));
            }
        }
    }
    if !impact.jobs.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", bold("Jobs that run"));
        for j in &impact.jobs {
            let _ = writeln!(
                out,
                "  run     {} ({}): {}",
                j.reference,
                j.component,
                job_text(j)
            );
            for r in &j.reasons {
                let _ = writeln!(out, "            {}", reason_text(r));
            }
        }
    }
    if !impact.warnings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", bold("Impact warnings"));
        for w in &impact.warnings {
            let _ = writeln!(out, "  ! {} ({}): {}", w.reference, w.component, w.message);
        }
    }
}

fn write_graph(out: &mut String, graph: &GraphChange, bold: &dyn Fn(&str) -> String) {
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", bold("Dependency graph"));
    if graph.is_empty() {
        let _ = writeln!(out, "  unchanged");
    }
    for c in &graph.added_components {
        let _ = writeln!(out, "  + component {c}");
    }
    for c in &graph.removed_components {
        let _ = writeln!(out, "  - component {c}");
    }
    for e in &graph.added_edges {
        let _ = writeln!(
            out,
            "  + {} waits for {}{}",
            e.component,
            e.dependency,
            e.wait_text()
        );
    }
    for e in &graph.removed_edges {
        let _ = writeln!(
            out,
            "  - {} no longer waits for {}{}",
            e.component,
            e.dependency,
            e.wait_text()
        );
    }
    for m in &graph.moved {
        let _ = writeln!(
            out,
            "  ~ {} moves from wave {} to wave {}",
            m.component, m.from, m.to
        );
    }
    let waves: Vec<String> = graph
        .waves
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{}: {}", i + 1, w.join(", ")))
        .collect();
    let _ = writeln!(out, "  wave order: {}", waves.join(" | "));
}
