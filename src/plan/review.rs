//! A change as a reviewer sees it: the plan of one commit against another (or against the cluster), what it
//! does to running things, and how it moves the dependency graph. What `keelson plan` prints.
//!
//! Planning a commit against another needs no cluster: the base commit's rendering stands in for the live
//! objects, as if the base had been applied (and recorded in the inventory) by the last pass.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::render::Rendered;
use crate::topology::{Topology, WaitFor, graph};

use super::impact::{Impact, ImpactInput, impact};
use super::inventory::{Inventory, InventoryEntry};
use super::model::{Action, Plan, PlanInput, PlanOptions};
use super::order::ObjectKey;
use super::{PlanError, plan};

/// Version of the JSON layout of [`Review`]; bumped on an incompatible change (docs/plan.schema.json).
pub const REVIEW_SCHEMA_VERSION: u32 = 1;

/// One commit, as the review names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionInfo {
    /// The commit sha (or the `sha256:` digest of a directory).
    pub revision: String,
    /// What was asked for (`origin/main`, `HEAD~1`), when it was a revision expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Who signed it, when signatures were verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
}

impl RevisionInfo {
    /// The first 12 characters of the revision.
    pub fn short(&self) -> &str {
        let id = self.revision.strip_prefix("sha256:").unwrap_or(&self.revision);
        &id[..id.len().min(12)]
    }
}

/// A commit's side of a comparison: its topology and rendering.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub topology: &'a Topology,
    pub rendered: &'a Rendered,
    pub revision: &'a str,
}

/// A dependency edge: `component` waits for `dependency`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub component: String,
    pub dependency: String,
    /// What of the dependency it waits for; a change of it shows as one edge removed and one added.
    #[serde(rename = "for")]
    pub wait_for: WaitFor,
}

impl Edge {
    /// How the review names what is waited for: nothing for the default (health).
    pub fn wait_text(&self) -> String {
        match self.wait_for {
            WaitFor::Healthy => String::new(),
            other => format!(" ({})", other.label()),
        }
    }
}

/// A component whose wave changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveMove {
    pub component: String,
    /// 1-based, as the formats print waves.
    pub from: usize,
    pub to: usize,
}

/// How the dependency graph differs between base and head.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphChange {
    pub added_components: Vec<String>,
    pub removed_components: Vec<String>,
    pub added_edges: Vec<Edge>,
    pub removed_edges: Vec<Edge>,
    /// Components in another wave than before (new and removed components are not listed).
    pub moved: Vec<WaveMove>,
    /// Head's wave order.
    pub waves: Vec<Vec<String>>,
}

impl GraphChange {
    pub fn is_empty(&self) -> bool {
        self.added_components.is_empty()
            && self.removed_components.is_empty()
            && self.added_edges.is_empty()
            && self.removed_edges.is_empty()
            && self.moved.is_empty()
    }
}

/// The plan and impact of base -> head alone, when the main plan is against the live cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOnly {
    pub plan: Plan,
    pub impact: Impact,
}

/// An object the live plan changes that the base -> head change does not: drift, or a cluster not at base.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutsideChange {
    pub reference: crate::object::ObjectRef,
    pub component: String,
    pub action: Action,
}

/// Everything `keelson plan` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub base: Option<RevisionInfo>,
    pub head: RevisionInfo,
    /// The plan that applying head would execute: against base (offline) or against the cluster.
    pub plan: Plan,
    pub impact: Impact,
    /// Present when a base was given.
    pub graph: Option<GraphChange>,
    /// With `--live`: what base -> head alone does, and what the cluster plan does beyond it.
    pub change: Option<ChangeOnly>,
    pub outside_change: Vec<OutsideChange>,
    /// Whether `plan` is against rendered objects rather than a cluster.
    pub offline: bool,
}

/// The objects `base` renders, as the live set and inventory a pass would find after applying it.
fn as_live(base: Option<&Side>, head_topology: &Topology) -> (Vec<Value>, Option<Inventory>) {
    let Some(base) = base else {
        return (Vec::new(), None);
    };
    let live = base.rendered.objects.iter().map(|o| o.body.clone()).collect();
    // A renamed topology owns none of the base's objects; there is no inventory of it to read either.
    let inventory = (base.topology.name == head_topology.name).then(|| Inventory {
        topology: base.topology.name.clone(),
        revision: base.revision.to_string(),
        objects: base
            .rendered
            .objects
            .iter()
            .map(|o| InventoryEntry {
                reference: o.reference.clone(),
                component: o.component.clone(),
                stage: o.stage,
            })
            .collect(),
    });
    (live, inventory)
}

/// Head planned against base's rendering (no base: against nothing, the first commit of a topology), with
/// its impact. Pure.
pub fn plan_change(
    base: Option<&Side>,
    head: &Side,
    options: &PlanOptions,
) -> Result<(Plan, Impact), PlanError> {
    let (live, inventory) = as_live(base, head.topology);
    let options = PlanOptions {
        live_is_rendered: true,
        ..options.clone()
    };
    let plan = plan(&PlanInput {
        topology: head.topology,
        revision: head.revision,
        desired: &head.rendered.objects,
        live: &live,
        foreign: &[],
        inventory: inventory.as_ref(),
        options: &options,
    })?;
    let impact = impact(&ImpactInput {
        plan: &plan,
        topology: head.topology,
        live: &live,
    });
    Ok((plan, impact))
}

/// How head's dependency graph differs from base's.
pub fn graph_change(base: Option<&Topology>, head: &Topology) -> GraphChange {
    let edges = |t: Option<&Topology>| -> BTreeSet<Edge> {
        t.into_iter()
            .flat_map(|t| t.components.values())
            .flat_map(|c| {
                c.spec.depends_on.iter().map(|d| Edge {
                    component: c.name.clone(),
                    dependency: d.component.clone(),
                    wait_for: d.wait_for,
                })
            })
            .collect()
    };
    let names = |t: Option<&Topology>| -> BTreeSet<String> {
        t.into_iter().flat_map(|t| t.components.keys().cloned()).collect()
    };
    let (base_edges, head_edges) = (edges(base), edges(Some(head)));
    let (base_names, head_names) = (names(base), names(Some(head)));
    let base_waves: BTreeMap<String, usize> = base.map(graph::wave_index).unwrap_or_default();
    let head_waves = graph::wave_index(head);
    let moved = head_waves
        .iter()
        .filter_map(|(name, &to)| {
            let &from = base_waves.get(name)?;
            (from != to).then(|| WaveMove {
                component: name.clone(),
                from: from + 1,
                to: to + 1,
            })
        })
        .collect();
    GraphChange {
        added_components: head_names.difference(&base_names).cloned().collect(),
        removed_components: base_names.difference(&head_names).cloned().collect(),
        added_edges: head_edges.difference(&base_edges).cloned().collect(),
        removed_edges: base_edges.difference(&head_edges).cloned().collect(),
        moved,
        waves: graph::waves(head),
    }
}

/// The live plan's changes that the change plan does not make.
pub fn outside_change(live: &Plan, change: &Plan) -> Vec<OutsideChange> {
    let changed = |p: &Plan| -> BTreeMap<ObjectKey, Action> {
        p.apply_changes()
            .chain(p.deletion_changes())
            .filter(|c| c.action != Action::Unchanged)
            .map(|c| (ObjectKey::of(&c.reference), c.action))
            .collect()
    };
    let by_change = changed(change);
    live.apply_changes()
        .chain(live.deletion_changes())
        .filter(|c| c.action != Action::Unchanged)
        .filter(|c| by_change.get(&ObjectKey::of(&c.reference)) != Some(&c.action))
        .map(|c| OutsideChange {
            reference: c.reference.clone(),
            component: c.component.clone(),
            action: c.action,
        })
        .collect()
}

impl Review {
    /// `N components touched, M untouched` and the rest of the headline, one line.
    pub fn summary_line(&self) -> String {
        let touched = self.impact.components.touched.len();
        let untouched = self.impact.components.untouched.len();
        let s = &self.plan.summary;
        let mut parts = vec![format!(
            "{touched} component{} touched, {untouched} untouched",
            plural(touched)
        )];
        let restarts = self.impact.restarts().count();
        if restarts > 0 {
            parts.push(format!(
                "{restarts} workload{} restart{} ({})",
                plural(restarts),
                if restarts == 1 { "s" } else { "" },
                pods_phrase(
                    self.impact.restarting_replicas(),
                    self.impact.restarting_daemonsets()
                )
            ));
        }
        let jobs = self.impact.jobs.len();
        if jobs > 0 {
            let migrations = self.impact.migrations().count();
            let extra = if migrations > 0 {
                format!(" ({migrations} migration{})", plural(migrations))
            } else {
                String::new()
            };
            let verb = if jobs == 1 { "runs" } else { "run" };
            parts.push(format!("{jobs} job{} {verb}{extra}", plural(jobs)));
        }
        parts.push(format!(
            "{} to create, {} to update, {} to delete",
            s.create, s.update, s.delete
        ));
        if self.plan.is_blocked() {
            parts.push(format!("BLOCKED ({} refused)", s.refused));
        } else if s.refused > 0 {
            parts.push(format!("{} kept", s.refused));
        }
        parts.join(" · ")
    }
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `5 Pods`, `5 Pods + 2 DaemonSets (one Pod per matching node)`.
pub(super) fn pods_phrase(replicas: u64, daemonsets: usize) -> String {
    let pods = format!("{replicas} Pod{}", if replicas == 1 { "" } else { "s" });
    match (replicas, daemonsets) {
        (_, 0) => pods,
        (0, d) => format!("{d} DaemonSet{}: one Pod per matching node", plural(d)),
        (_, d) => format!("{pods} + {d} DaemonSet{}: one Pod per matching node", plural(d)),
    }
}
