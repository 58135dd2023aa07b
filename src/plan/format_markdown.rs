//! The plan as a pull-request comment: a heading with the revision and counts, a warning block when the
//! plan is blocked, a table per wave listing what changes, collapsed diffs, deletions and refusals.
//! Everything that comes from the repository or the cluster is escaped, so a name or a config value cannot
//! break the comment's layout.

use std::fmt::Write as _;

use super::display::{change_title, field_lines, shown_diffs, summary_line};
use super::inventory::stage_name;
use super::model::{Action, Change, ComponentPlan, Plan};

/// Room for folded diffs: GitHub refuses comments over 65,536 characters, and the tables, refusals and
/// headings need the rest.
pub(super) const DIFF_BUDGET: usize = 48_000;

/// How much diff text may still be written, and how many diffs were left out.
struct Budget {
    remaining: usize,
    omitted: usize,
}

pub fn to_markdown(plan: &Plan) -> String {
    to_markdown_with_budget(plan, DIFF_BUDGET)
}

fn to_markdown_with_budget(plan: &Plan, diff_budget: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Keelson plan for {} at {}",
        code(&plan.topology),
        code(&plan.revision)
    );
    let _ = writeln!(out);
    let previous = plan
        .previous_revision
        .as_deref()
        .map(|r| format!(" (last applied: {})", code(r)))
        .unwrap_or_default();
    let _ = writeln!(out, "**{}**{previous}", summary_line(&plan.summary));
    let _ = writeln!(out);
    out.push_str(&verdict(plan));
    out.push_str(&body(plan, diff_budget));
    out
}

/// The blocked warning, or the no-changes line, or nothing.
pub(super) fn verdict(plan: &Plan) -> String {
    let mut out = String::new();
    if let Some(message) = plan.blocked_message() {
        let _ = writeln!(out, "> [!CAUTION]");
        let _ = writeln!(
            out,
            "> **Blocked: nothing will be applied until the refusals below are resolved.**"
        );
        for line in message.lines().skip(1) {
            let _ = writeln!(out, "> - {}", escape_text(line));
        }
        let _ = writeln!(out);
    } else if !plan.has_changes() {
        let _ = writeln!(out, "No changes: the cluster matches this revision.");
        let _ = writeln!(out);
    }
    out
}

/// Waves, deletions, refusals and warnings, with at most `diff_budget` characters of folded diffs.
pub(super) fn body(plan: &Plan, diff_budget: usize) -> String {
    let mut budget = Budget {
        remaining: diff_budget,
        omitted: 0,
    };
    let mut out = String::new();
    let total = plan.waves.len();
    for wave in &plan.waves {
        let names: Vec<String> = wave.components.iter().map(|c| escape_text(&c.name)).collect();
        let _ = writeln!(
            out,
            "#### Wave {} of {total}: {}",
            wave.index + 1,
            names.join(", ")
        );
        let _ = writeln!(out);
        write_table(&mut out, &wave.components, "No changes in this wave", &mut budget);
    }

    if !plan.deletions.is_empty() {
        let _ = writeln!(out, "#### Deletions (after all waves, dependents first)");
        let _ = writeln!(out);
        let components: Vec<ComponentPlan> = plan
            .deletions
            .iter()
            .flat_map(|w| w.components.iter().cloned())
            .collect();
        write_table(&mut out, &components, "No deletions", &mut budget);
    }

    if !plan.refusals.is_empty() {
        let _ = writeln!(out, "#### Refused");
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| Object | Component | Would | Blocks the plan | Why, and how to allow it |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        for r in &plan.refusals {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                code(&r.reference.to_string()),
                cell(&r.component),
                r.action.as_str(),
                if r.blocking { "yes" } else { "no (kept)" },
                cell(&r.message)
            );
        }
        let _ = writeln!(out);
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "#### Warnings");
        let _ = writeln!(out);
        let _ = writeln!(out, "| Object | Component | Applied, but note |");
        let _ = writeln!(out, "| --- | --- | --- |");
        for w in &plan.warnings {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                code(&w.reference.to_string()),
                cell(&w.component),
                cell(&w.message)
            );
        }
        let _ = writeln!(out);
    }
    if !plan.skipped_checks.is_empty() {
        let _ = writeln!(out, "#### Pre-flight skipped");
        let _ = writeln!(out);
        for s in &plan.skipped_checks {
            let _ = writeln!(out, "- {}: {}", code(&s.resource), cell(&s.reason));
        }
        let _ = writeln!(out);
    }
    if budget.omitted > 0 {
        let _ = writeln!(
            out,
            "_{} diff(s) left out to keep this comment within size limits; `keelson plan -o text` shows all._",
            budget.omitted
        );
    }
    out
}

/// A table of the changed objects of these components, their diffs folded below, unchanged ones counted.
fn write_table(out: &mut String, components: &[ComponentPlan], empty: &str, budget: &mut Budget) {
    let changes: Vec<&Change> = components
        .iter()
        .flat_map(|c| c.changes.iter())
        .filter(|c| c.action != Action::Unchanged)
        .collect();
    let unchanged: usize = components.iter().map(|c| c.count(Action::Unchanged)).sum();
    if changes.is_empty() {
        let _ = writeln!(out, "_{empty} ({unchanged} unchanged)._");
        let _ = writeln!(out);
        return;
    }
    let _ = writeln!(out, "| Action | Object | Component | Stage |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for c in &changes {
        let action = match (c.action, c.drift) {
            (Action::Update, true) => "**update** (drift)".to_string(),
            (a, _) => format!("**{}**", a.as_str()),
        };
        let _ = writeln!(
            out,
            "| {action} | {} | {} | {} |",
            code(&c.reference.to_string()),
            cell(&c.component),
            stage_name(c.stage)
        );
    }
    let _ = writeln!(out);
    if unchanged > 0 {
        let _ = writeln!(out, "_{unchanged} unchanged._");
        let _ = writeln!(out);
    }
    for c in changes.iter().filter(|c| !c.diff.is_empty()) {
        let mut body = String::new();
        for d in shown_diffs(c) {
            for line in field_lines(d) {
                let _ = writeln!(body, "{} {}", line.sign, line.text);
            }
        }
        let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
        let mut block = String::new();
        let _ = writeln!(
            block,
            "<details><summary>Diff: {}</summary>",
            escape_html(&change_title(c))
        );
        let _ = writeln!(block);
        let _ = writeln!(block, "{fence}diff");
        block.push_str(&body);
        let _ = writeln!(block, "{fence}");
        let _ = writeln!(block);
        let _ = writeln!(block, "</details>");
        let _ = writeln!(block);
        if block.len() > budget.remaining {
            budget.omitted += 1;
            continue;
        }
        budget.remaining -= block.len();
        out.push_str(&block);
    }
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// An inline code span that survives backticks inside the text.
pub(super) fn code(s: &str) -> String {
    let fence = "`".repeat(longest_backtick_run(s) + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{}{pad}{fence}", s.replace('|', "\\|"))
}

/// Plain text inside a table cell: no line breaks, no column separators, no HTML.
pub(super) fn cell(s: &str) -> String {
    escape_text(s).replace('|', "\\|")
}

pub(super) fn escape_text(s: &str) -> String {
    escape_html(&s.replace(['\n', '\r'], " "))
}

pub(super) fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_beyond_the_budget_are_left_out_and_counted() {
        use crate::object::ObjectRef;
        use crate::plan::{Action, Change, FieldDiff, Plan, Summary, Wave};
        use crate::render::Stage;
        let change = |name: &str| Change {
            action: Action::Update,
            reference: ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("ns".into()),
                name: name.into(),
            },
            component: "c".into(),
            stage: Stage::Config,
            diff: vec![FieldDiff {
                path: "data.x".into(),
                before: Some("a".into()),
                after: Some("b".into()),
            }],
            drift: false,
            desired: None,
            step: 0,
            timeout: None,
            secret: None,
        };
        let plan = Plan {
            topology: "t".into(),
            revision: "r".into(),
            previous_revision: None,
            waves: vec![Wave {
                index: 0,
                components: vec![ComponentPlan {
                    name: "c".into(),
                    project: "c".into(),
                    depends_on: vec![],
                    changes: vec![change("one"), change("two"), change("three")],
                    ..ComponentPlan::default()
                }],
            }],
            deletions: vec![],
            refusals: vec![],
            warnings: Vec::new(),
            skipped_checks: Vec::new(),
            summary: Summary {
                update: 3,
                ..Summary::default()
            },
        };
        let full = to_markdown_with_budget(&plan, DIFF_BUDGET);
        assert_eq!(full.matches("<details>").count(), 3);
        assert!(!full.contains("left out"));
        // Room for exactly one block.
        let one = full
            .split("<details>")
            .nth(1)
            .map(|b| b.len() + "<details>".len())
            .unwrap_or(0);
        let cut = to_markdown_with_budget(&plan, one + 10);
        assert_eq!(cut.matches("<details>").count(), 1, "{cut}");
        assert!(cut.contains("_2 diff(s) left out"), "{cut}");
        // The tables still list every change.
        assert!(cut.contains("`ConfigMap ns/three`"), "{cut}");
    }

    #[test]
    fn escaping_table() {
        assert_eq!(code("a"), "`a`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(cell("x | <b>\ny"), "x \\| &lt;b&gt; y");
        assert_eq!(longest_backtick_run("no ``` here ````"), 4);
    }
}
