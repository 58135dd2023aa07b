//! The plan for tools: the serialized [`Plan`] plus the derived facts a script would otherwise recompute
//! (`blocked`, `blockedMessage`, `hasChanges`). Object bodies are never included, so no Secret value can leak;
//! Secret fields inside diffs are already redacted.

use serde::Serialize;

use super::model::Plan;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonPlan<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    has_changes: bool,
    blocked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked_message: Option<String>,
}

pub fn to_json(plan: &Plan) -> String {
    let doc = JsonPlan {
        plan,
        has_changes: plan.has_changes(),
        blocked: plan.is_blocked(),
        blocked_message: plan.blocked_message(),
    };
    // The plan holds only strings, numbers and JSON values, which always serialize; still, report rather
    // than panic if that ever changes.
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| {
        serde_json::json!({"error": format!("plan: cannot serialize as JSON: {e}")}).to_string()
    })
}
