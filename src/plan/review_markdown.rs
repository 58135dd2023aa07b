//! A review as a pull-request comment: a one-line summary first, then collapsible sections (restarts, jobs,
//! the graph, the objects wave by wave). The comment always fits GitHub's 65,536-character limit: sections
//! that do not fit are left out whole, diffs are shortened first, and a note says what is missing.

use std::fmt::Write as _;

use super::format_markdown::{DIFF_BUDGET, body, cell, code, escape_html, escape_text, verdict};
use super::impact::Impact;
use super::impact_display::{effect_text, job_text, pods_text, reason_text};
use super::review::{GraphChange, Review, RevisionInfo};

/// GitHub refuses issue and pull-request comments longer than this.
pub const COMMENT_LIMIT: usize = 65_536;
/// Room kept for the truncation note.
const NOTE_ROOM: usize = 400;

pub fn review_to_markdown(review: &Review) -> String {
    review_to_markdown_within(review, COMMENT_LIMIT)
}

pub(super) fn review_to_markdown_within(review: &Review, limit: usize) -> String {
    let mut head = String::new();
    let _ = writeln!(head, "### Keelson plan: {}", escape_text(&review.summary_line()));
    let _ = writeln!(head);
    let against = match (&review.base, review.offline) {
        (Some(base), true) => format!("against base {}", revision(base)),
        (Some(base), false) => format!("against the live cluster (base {})", revision(base)),
        (None, true) => "against an empty cluster".to_string(),
        (None, false) => "against the live cluster".to_string(),
    };
    let _ = writeln!(
        head,
        "Topology {}: head {} {against}.",
        code(&review.plan.topology),
        revision(&review.head)
    );
    if !review.offline {
        let _ = writeln!(head);
        let _ = match &review.plan.previous_revision {
            Some(revision) => writeln!(head, "Last applied to the cluster: {}.", code(revision)),
            None => writeln!(head, "Last applied to the cluster: nothing yet."),
        };
    }
    let _ = writeln!(head);
    head.push_str(&verdict(&review.plan));
    if !review.impact.warnings.is_empty() {
        let _ = writeln!(head, "> [!WARNING]");
        for w in &review.impact.warnings {
            let _ = writeln!(
                head,
                "> - {}: {}",
                code(&w.reference.to_string()),
                escape_text(&w.message)
            );
        }
        let _ = writeln!(head);
    }

    let mut sections: Vec<String> = Vec::new();
    sections.extend(impact_sections(&review.impact, ""));
    if let Some(graph) = &review.graph {
        sections.push(graph_section(graph));
    }
    if let Some(change) = &review.change {
        sections.push(change_section(review, &change.impact, &change.plan.summary));
    }
    let mut out = head;
    let mut left_out = 0;
    for section in sections {
        if out.len() + section.len() + NOTE_ROOM > limit {
            left_out += 1;
            continue;
        }
        out.push_str(&section);
    }
    // The objects go last: the longest section, and the one whose diffs can be shortened to make it fit.
    let room = limit.saturating_sub(out.len() + NOTE_ROOM);
    let mut budget = DIFF_BUDGET.min(room);
    loop {
        let objects = objects_section(review, budget);
        if objects.len() <= room {
            out.push_str(&objects);
            break;
        }
        if budget == 0 {
            left_out += 1;
            break;
        }
        budget /= 2;
        if budget < 1_000 {
            budget = 0;
        }
    }
    if left_out > 0 {
        let _ = writeln!(
            out,
            "_Truncated to fit GitHub's {COMMENT_LIMIT}-character comment limit: {left_out} section(s) left out. \
             `keelson plan -o text` (or `-o json`) shows everything._"
        );
    }
    out
}

fn revision(r: &RevisionInfo) -> String {
    let mut s = code(r.short());
    if let Some(subject) = &r.subject {
        s.push_str(&format!(" ({})", escape_text(subject)));
    }
    if let Some(signer) = &r.signed_by {
        s.push_str(&format!(", signed by {}", escape_text(signer)));
    }
    s
}

fn details(summary: &str, open: bool, content: &str) -> String {
    format!(
        "<details{}><summary><b>{}</b></summary>\n\n{content}\n</details>\n\n",
        if open { " open" } else { "" },
        escape_html(summary)
    )
}

fn impact_sections(impact: &Impact, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !impact.workloads.is_empty() {
        let mut table = String::from(
            "| Workload | Component | Pods | What happens, and why |\n| --- | --- | --- | --- |\n",
        );
        for w in &impact.workloads {
            let mut why = vec![effect_text(w.effect).to_string()];
            why.extend(w.reasons.iter().map(|r| cell(&reason_text(r))));
            let _ = writeln!(
                table,
                "| {} | {} | {} | {} |",
                code(&w.reference.to_string()),
                cell(&w.component),
                cell(&pods_text(w)),
                why.join("<br>")
            );
        }
        let restarts = impact.restarts().count();
        let summary = format!(
            "{prefix}Workloads: {restarts} restart ({}), {} in all",
            super::review::pods_phrase(impact.restarting_replicas(), impact.restarting_daemonsets()),
            impact.workloads.len()
        );
        out.push(details(&summary, true, &table));
    }
    if !impact.jobs.is_empty() {
        let mut table =
            String::from("| Job | Component | Runs as | Why it runs again |\n| --- | --- | --- | --- |\n");
        for j in &impact.jobs {
            let why: Vec<String> = j.reasons.iter().map(|r| cell(&reason_text(r))).collect();
            let _ = writeln!(
                table,
                "| {} | {} | {} | {} |",
                code(&j.reference.to_string()),
                cell(&j.component),
                cell(&job_text(j)),
                if why.is_empty() {
                    "-".to_string()
                } else {
                    why.join("<br>")
                }
            );
        }
        let migrations = impact.migrations().count();
        let summary = format!(
            "{prefix}Jobs: {} run, {migrations} migration(s)",
            impact.jobs.len()
        );
        out.push(details(&summary, true, &table));
    }
    out
}

fn graph_section(graph: &GraphChange) -> String {
    let mut content = String::new();
    if graph.is_empty() {
        let _ = writeln!(content, "No component, dependency or wave changes.\n");
    }
    for c in &graph.added_components {
        let _ = writeln!(content, "- new component {}", code(c));
    }
    for c in &graph.removed_components {
        let _ = writeln!(content, "- removed component {}", code(c));
    }
    for e in &graph.added_edges {
        let _ = writeln!(
            content,
            "- new edge: {} waits for {}{}",
            code(&e.component),
            code(&e.dependency),
            e.wait_text()
        );
    }
    for e in &graph.removed_edges {
        let _ = writeln!(
            content,
            "- removed edge: {} no longer waits for {}{}",
            code(&e.component),
            code(&e.dependency),
            e.wait_text()
        );
    }
    for m in &graph.moved {
        let _ = writeln!(
            content,
            "- {} moves from wave {} to wave {}",
            code(&m.component),
            m.from,
            m.to
        );
    }
    let _ = writeln!(content, "\n| Wave | Components |\n| --- | --- |");
    for (i, w) in graph.waves.iter().enumerate() {
        let _ = writeln!(content, "| {} | {} |", i + 1, cell(&w.join(", ")));
    }
    let changes = graph.added_components.len()
        + graph.removed_components.len()
        + graph.added_edges.len()
        + graph.removed_edges.len();
    details(
        &format!(
            "Dependency graph: {changes} change(s), {} waves",
            graph.waves.len()
        ),
        changes > 0,
        &content,
    )
}

fn change_section(review: &Review, impact: &Impact, s: &super::model::Summary) -> String {
    let mut content = format!(
        "The change alone (base -> head) creates {}, updates {} and deletes {} object(s).\n\n",
        s.create, s.update, s.delete
    );
    for section in impact_sections(impact, "The change alone: ") {
        content.push_str(&section);
    }
    if review.outside_change.is_empty() {
        content.push_str("The cluster plan does nothing beyond the change.\n");
    } else {
        content.push_str(
            "Beyond the change (drift in the cluster, or the cluster is not at base):\n\n| Action | Object | Component |\n| --- | --- | --- |\n",
        );
        for o in &review.outside_change {
            let _ = writeln!(
                content,
                "| {} | {} | {} |",
                o.action.as_str(),
                code(&o.reference.to_string()),
                cell(&o.component)
            );
        }
    }
    details(
        &format!(
            "Base -> head alone, and {} object(s) the cluster plan changes beyond it",
            review.outside_change.len()
        ),
        !review.outside_change.is_empty(),
        &content,
    )
}

fn objects_section(review: &Review, diff_budget: usize) -> String {
    let s = &review.plan.summary;
    details(
        &format!(
            "Objects by wave: {} to create, {} to update, {} unchanged, {} to delete, {} refused",
            s.create, s.update, s.unchanged, s.delete, s.refused
        ),
        false,
        &body(&review.plan, diff_budget),
    )
}
