//! A review for tools (docs/plan.schema.json): the plan's fields at the top level, as `keelson plan -o json`
//! always printed them, plus the impact, the commits, the graph change and, with `--live`, the change alone.
//! No object bodies, so no Secret value; Secret fields inside diffs are already redacted.

use serde::Serialize;

use super::impact::Impact;
use super::model::Plan;
use super::review::{ChangeOnly, GraphChange, OutsideChange, REVIEW_SCHEMA_VERSION, Review, RevisionInfo};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReview<'a> {
    schema_version: u32,
    #[serde(flatten)]
    plan: &'a Plan,
    has_changes: bool,
    blocked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked_message: Option<String>,
    summary_line: String,
    /// Planned against another commit's rendering rather than a cluster.
    offline: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<&'a RevisionInfo>,
    head: &'a RevisionInfo,
    impact: &'a Impact,
    #[serde(skip_serializing_if = "Option::is_none")]
    graph: Option<&'a GraphChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<&'a ChangeOnly>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outside_change: Option<&'a [OutsideChange]>,
}

pub fn review_to_json(review: &Review) -> String {
    let doc = JsonReview {
        schema_version: REVIEW_SCHEMA_VERSION,
        plan: &review.plan,
        has_changes: review.plan.has_changes(),
        blocked: review.plan.is_blocked(),
        blocked_message: review.plan.blocked_message(),
        summary_line: review.summary_line(),
        offline: review.offline,
        base: review.base.as_ref(),
        head: &review.head,
        impact: &review.impact,
        graph: review.graph.as_ref(),
        change: review.change.as_ref(),
        outside_change: review.change.as_ref().map(|_| review.outside_change.as_slice()),
    };
    // Strings, numbers and JSON values always serialize; still, report rather than panic.
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_else(|e| {
        serde_json::json!({"error": format!("plan: cannot serialize as JSON: {e}")}).to_string()
    });
    text.push('\n');
    text
}
