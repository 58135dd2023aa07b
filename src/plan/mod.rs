//! Desired vs live -> an ordered, checked [`Plan`]: per-object create / update / unchanged / delete with
//! field diffs (Secret values redacted), grouped into dependency waves, with deletions last and in reverse.
//! Printed as text, Markdown (pull-request comments) and JSON. Pure: the caller reads the cluster first.

mod diff;
mod display;
mod downgrade;
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
mod format_json;
mod format_markdown;
mod format_text;
mod impact;
mod impact_display;
mod inventory;
mod migration;
mod model;
mod order;
pub mod preflight;
mod review;
mod review_json;
mod review_markdown;
mod review_text;
mod safety;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::object::{ANNOTATION_HASH, LABEL_SERVICE, ObjectRef};
use crate::render::RenderedObject;

pub use crate::object::ANNOTATION_PERSISTENT;
/// What a component's dependency gate waits for travels on the plan ([`ComponentPlan::waits_for`]).
pub use crate::topology::WaitFor;
pub use diff::REDACTED;
pub use downgrade::{
    ALLOW_ALL, ALLOW_TRAILER, Direction, Series, allowed_downgrades, compare_images, tag_series,
};
pub use format_json::to_json;
pub use format_markdown::to_markdown;
pub use format_text::to_text;
pub use impact::{
    ComponentCounts, FileChange, Impact, ImpactInput, ImpactWarning, ImpactWarningKind, JobRun, PodCount,
    RestartReason, WorkloadEffect, WorkloadImpact, impact,
};
pub use inventory::{INVENTORY_FORMAT_VERSION, Inventory, InventoryEntry};
pub use migration::MigrationKind;
pub use model::{
    Action, Change, ComponentPlan, DeletionWave, FieldDiff, Plan, PlanInput, PlanOptions, PlanWarning,
    Refusal, RefusalReason, Summary, WarningKind, Wave,
};
pub use preflight::{LiveNames, Preflight, RefKind, SkippedCheck};
pub use review::{
    ChangeOnly, Edge, GraphChange, OutsideChange, REVIEW_SCHEMA_VERSION, Review, RevisionInfo, Side,
    WaveMove, graph_change, outside_change, plan_change,
};
pub use review_json::review_to_json;
pub use review_markdown::{COMMENT_LIMIT, review_to_markdown};
pub use review_text::review_to_text;

use order::ObjectKey;

/// Component name used for owned objects that carry neither a service label nor an inventory entry.
pub const UNKNOWN_COMPONENT: &str = "(unknown)";

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("desired object {reference}: rendered more than once")]
    DuplicateDesired { reference: String },
    #[error("desired object {reference}: belongs to component `{component}`, which is not in the topology")]
    UnknownComponent { reference: String, component: String },
    #[error("component {component}: depends on `{dependency}`, which is not in the topology")]
    UnknownDependency { component: String, dependency: String },
    #[error("dependency graph: cycle among components {}", components.join(", "))]
    DependencyCycle { components: Vec<String> },
    #[error("live object #{index}: {reason}")]
    LiveMalformed { index: usize, reason: String },
    #[error("inventory: {reason}")]
    InventoryMalformed { reason: String },
    #[error("inventory: recorded for topology `{inventory}`, not `{topology}`")]
    InventoryTopology { inventory: String, topology: String },
    #[error(
        "desired object {reference}: kind {kind} is served by no CustomResourceDefinition, in the cluster or \
         in this revision; add its CRD to the topology's manifests or install it first"
    )]
    UnservedKind { reference: String, kind: String },
}

/// A live object and where it came from.
struct Live<'a> {
    reference: ObjectRef,
    object: &'a Value,
    owned: bool,
}

/// Compute the plan. Errors mean the inputs contradict each other (a renderer or cluster-layer bug); refusals
/// (policy, ownership, budget) are part of a successful plan, so the operator sees all of them at once.
pub fn plan(input: &PlanInput) -> Result<Plan, PlanError> {
    let topology = input.topology;
    if let Some(inv) = input.inventory
        && inv.topology != topology.name
    {
        return Err(PlanError::InventoryTopology {
            inventory: inv.topology.clone(),
            topology: topology.name.clone(),
        });
    }

    let waves = order::component_waves(topology)?;
    let live = index_live(input.live, &topology.name)?;
    let foreign: BTreeSet<ObjectKey> = input.foreign.iter().map(ObjectKey::of).collect();

    let live_owned: BTreeMap<ObjectKey, &Value> = live
        .iter()
        .filter(|(_, l)| l.owned)
        .map(|(k, l)| (k.clone(), l.object))
        .collect();
    let mut downgrades = downgrade::findings(
        topology,
        input.desired,
        &live_owned,
        &input.options.allow_downgrade,
    );

    let mut refusals = Vec::new();
    let mut warnings = Vec::new();
    let mut desired_keys = BTreeSet::new();
    let mut per_component: BTreeMap<&str, Vec<Change>> = BTreeMap::new();
    for obj in input.desired {
        let key = ObjectKey::of(&obj.reference);
        if !desired_keys.insert(key.clone()) {
            return Err(PlanError::DuplicateDesired {
                reference: obj.reference.to_string(),
            });
        }
        if !topology.components.contains_key(&obj.component) {
            return Err(PlanError::UnknownComponent {
                reference: obj.reference.to_string(),
                component: obj.component.clone(),
            });
        }
        let found = live.get(&key);
        let change = classify(
            obj,
            found.filter(|l| l.owned).map(|l| l.object),
            input.options.live_is_rendered,
        );
        let mut downgrade_refusal = None;
        for finding in downgrades.remove(&key).unwrap_or_default() {
            match finding {
                downgrade::Finding::Refuse(reason, message) => downgrade_refusal = Some((reason, message)),
                downgrade::Finding::Warn(warning) => warnings.push(warning),
            }
        }
        let refusal = policy_refusal(topology, &obj.reference)
            .or_else(|| {
                let taken = foreign.contains(&key) || found.is_some_and(|l| !l.owned);
                taken.then(|| {
                    let message = safety::not_owned_message(&obj.reference, &topology.name);
                    (
                        RefusalReason::NotOwned {
                            topology: topology.name.clone(),
                        },
                        message,
                    )
                })
            })
            .or(downgrade_refusal);
        match refusal {
            Some((reason, message)) => refusals.push(Refusal {
                reference: obj.reference.clone(),
                component: obj.component.clone(),
                // Taking over someone else's object would be, for Keelson, creating one of its own.
                action: if found.is_some_and(|l| l.owned) {
                    change.action
                } else {
                    Action::Create
                },
                reason,
                blocking: true,
                message,
            }),
            None => per_component
                .entry(obj.component.as_str())
                .or_default()
                .push(change),
        }
    }

    mark_derived_secrets(&mut per_component);

    let mut plan_waves = Vec::with_capacity(waves.len());
    let mut wave_of = BTreeMap::new();
    for (index, names) in waves.into_iter().enumerate() {
        let mut components = Vec::with_capacity(names.len());
        for name in names {
            let Some(component) = topology.components.get(&name) else {
                continue;
            };
            let mut changes = per_component.remove(name.as_str()).unwrap_or_default();
            // Stable: the renderer's order is kept inside a stage.
            changes.sort_by_key(|c| c.stage);
            order_custom_resources(&mut changes);
            wave_of.insert(name.clone(), index);
            components.push(ComponentPlan {
                name,
                project: component.project.clone(),
                depends_on: component.spec.dependency_names(),
                waits_for: component.spec.relaxed_dependencies(),
                changes,
                health_timeout: component.health_timeout,
                recreate_on_immutable_change: component.spec.recreate_on_immutable_change,
            });
        }
        plan_waves.push(Wave { index, components });
    }

    let deletions = if input.options.skip_prune {
        Vec::new()
    } else {
        plan_deletions(input, &live, &desired_keys, &wave_of, &mut refusals)
    };

    let mut plan = Plan {
        topology: topology.name.clone(),
        revision: input.revision.to_string(),
        previous_revision: input.inventory.map(|i| i.revision.clone()),
        waves: plan_waves,
        deletions,
        refusals,
        warnings,
        skipped_checks: Vec::new(),
        summary: Summary::default(),
    };
    plan.summary = summarize(&plan);
    Ok(plan)
}

/// Custom resources of a CustomResourceDefinition the same component applies go one step after it: the
/// rollout waits until the CRD is Established before it writes objects of its kind.
fn order_custom_resources(changes: &mut [Change]) {
    let mut defined: BTreeMap<(String, String), (crate::render::Stage, u32)> = BTreeMap::new();
    for c in changes.iter().filter(|c| preflight::is_crd(&c.reference)) {
        for kind in c.desired.as_ref().map(preflight::crd_kinds).unwrap_or_default() {
            defined.insert(kind, (c.stage, c.step));
        }
    }
    if defined.is_empty() {
        return;
    }
    let mut moved = false;
    for c in changes.iter_mut() {
        let kind = (c.reference.api_version.clone(), c.reference.kind.clone());
        if let Some(&(stage, step)) = defined.get(&kind)
            && (c.stage, c.step) <= (stage, step)
        {
            c.stage = stage;
            c.step = step + 1;
            moved = true;
        }
    }
    if moved {
        changes.sort_by_key(|c| (c.stage, c.step));
    }
}

/// Parse the live list into references, keyed by identity. A duplicate (the same object listed by label and
/// read again from the inventory) keeps the first copy.
fn index_live<'a>(live: &'a [Value], topology: &str) -> Result<BTreeMap<ObjectKey, Live<'a>>, PlanError> {
    let mut out = BTreeMap::new();
    for (index, object) in live.iter().enumerate() {
        let field = |keys: &[&str]| diff::get_str(object, keys).filter(|s| !s.is_empty());
        let missing = |what: &str| PlanError::LiveMalformed {
            index,
            reason: format!("has no {what}"),
        };
        let reference = ObjectRef {
            api_version: field(&["apiVersion"])
                .ok_or_else(|| missing("apiVersion"))?
                .to_string(),
            kind: field(&["kind"]).ok_or_else(|| missing("kind"))?.to_string(),
            namespace: field(&["metadata", "namespace"]).map(str::to_string),
            name: field(&["metadata", "name"])
                .ok_or_else(|| missing("metadata.name"))?
                .to_string(),
        };
        let owned = safety::is_owned(object, topology);
        out.entry(ObjectKey::of(&reference)).or_insert(Live {
            reference,
            object,
            owned,
        });
    }
    Ok(out)
}

fn is_secret(r: &ObjectRef) -> bool {
    order::api_group(&r.api_version).is_empty() && r.kind == "Secret"
}

/// Create, update or unchanged for one desired object against its owned live counterpart.
fn classify(obj: &RenderedObject, live: Option<&Value>, live_is_rendered: bool) -> Change {
    let mut change = Change {
        action: Action::Create,
        reference: obj.reference.clone(),
        component: obj.component.clone(),
        stage: obj.stage,
        step: obj.step,
        timeout: obj.timeout,
        diff: Vec::new(),
        drift: false,
        desired: Some(obj.body.clone()),
        secret: obj.secret.clone(),
    };
    let Some(live) = live else { return change };
    let mut diff = diff::subset_diff(&obj.body, live, is_secret(&obj.reference));
    if live_is_rendered {
        diff.extend(diff::removed_fields(&obj.body, live, is_secret(&obj.reference)));
    }
    let live_hash = diff::get_str(live, &["metadata", "annotations", ANNOTATION_HASH]);
    let hash_equal = live_hash == Some(obj.hash.as_str());
    // The body normally carries the hash annotation, so a hash change already shows in the diff; this covers
    // a body without it, so that a new rendering is never mistaken for "unchanged".
    let hash_path = format!("metadata.annotations[\"{ANNOTATION_HASH}\"]");
    if !hash_equal && !diff.iter().any(|d| d.path == hash_path) {
        diff.insert(
            0,
            FieldDiff {
                path: hash_path,
                before: live_hash.map(|h| Value::String(h.to_string())),
                after: Some(Value::String(obj.hash.clone())),
            },
        );
    }
    change.action = if diff.is_empty() {
        Action::Unchanged
    } else {
        Action::Update
    };
    change.drift = hash_equal && !diff.is_empty();
    change.diff = diff;
    change
}

/// A Secret whose templates read a Secret this plan creates or updates is recomputed by the rollout; the plan
/// says so, naming the inputs (never a value), instead of calling it unchanged.
fn mark_derived_secrets(per_component: &mut BTreeMap<&str, Vec<Change>>) {
    let changed: BTreeSet<(Option<String>, String)> = per_component
        .values()
        .flatten()
        .filter(|c| c.secret.is_some() && matches!(c.action, Action::Create | Action::Update))
        .map(|c| (c.reference.namespace.clone(), c.reference.name.clone()))
        .collect();
    for change in per_component.values_mut().flatten() {
        let Some(recipe) = &change.secret else { continue };
        if change.action != Action::Unchanged {
            continue;
        }
        let inputs: BTreeSet<&str> = recipe
            .inputs(&change.reference.name)
            .filter(|input| changed.contains(&(change.reference.namespace.clone(), input.to_string())))
            .collect();
        if inputs.is_empty() {
            continue;
        }
        let names: Vec<&str> = inputs.into_iter().collect();
        change.action = Action::Update;
        change.diff.push(FieldDiff {
            path: "data".to_string(),
            before: Some(Value::String(REDACTED.to_string())),
            after: Some(Value::String(format!("(recomputed from {})", names.join(", ")))),
        });
    }
}

/// Namespace first, then kind: the namespace message is the more specific fix.
fn policy_refusal(topology: &crate::topology::Topology, r: &ObjectRef) -> Option<(RefusalReason, String)> {
    if let Some((namespace, message)) = safety::namespace_refusal(topology, r) {
        return Some((RefusalReason::NamespaceNotAllowed { namespace }, message));
    }
    safety::kind_refusal(topology, r).map(|(kind, cluster_scoped, message)| {
        (RefusalReason::KindNotAllowed { kind, cluster_scoped }, message)
    })
}

/// Owned live objects that are no longer desired, checked and ordered.
fn plan_deletions(
    input: &PlanInput,
    live: &BTreeMap<ObjectKey, Live>,
    desired: &BTreeSet<ObjectKey>,
    wave_of: &BTreeMap<String, usize>,
    refusals: &mut Vec<Refusal>,
) -> Vec<DeletionWave> {
    let topology = input.topology;
    let policy = &topology.spec.policy;
    let owned = live.values().filter(|l| l.owned).count();
    let claim_prefixes = safety::statefulset_claim_prefixes(
        input
            .desired
            .iter()
            .map(|o| &o.body)
            .chain(live.values().filter(|l| l.owned).map(|l| l.object)),
    );
    let recorded = input.inventory.map(Inventory::index).unwrap_or_default();
    // A Job that a new run of the same job replaces (a release bump re-runs every migration) is not a loss
    // the prune budget guards against: it does not count.
    let desired_runs: BTreeSet<(&str, &str)> = input
        .desired
        .iter()
        .filter(|o| o.reference.kind == "Job")
        .filter_map(|o| Some((o.component.as_str(), impact::job_label(&o.body)?)))
        .collect();
    let mut replaced_runs = 0;
    let mut planned: Vec<Change> = Vec::new();
    for (key, l) in live {
        if !l.owned
            || desired.contains(key)
            || safety::controller_owned(l.object)
            || safety::is_statefulset_claim(&l.reference, &claim_prefixes)
        {
            continue;
        }
        let entry = recorded.get(key).copied();
        let component = diff::meta_map(l.object, "labels")
            .and_then(|m| m.get(LABEL_SERVICE))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| entry.map(|e| e.component.clone()))
            .unwrap_or_else(|| UNKNOWN_COMPONENT.to_string());
        let stage = entry
            .map(|e| e.stage)
            .unwrap_or_else(|| order::stage_of_kind(&l.reference));
        let refusal = policy_refusal(topology, &l.reference)
            .map(|(reason, message)| (reason, message, true))
            .or_else(|| {
                (safety::is_generated_secret(&l.reference, l.object)
                    && !topology.spec.tombstones.secrets.contains(&l.reference.name))
                .then(|| {
                    let message = safety::generated_secret_message(&l.reference.name);
                    (RefusalReason::GeneratedSecret, message, false)
                })
            })
            .or_else(|| {
                (safety::is_persistent(&l.reference, Some(l.object)) && !policy.prune_persistent_data)
                    .then(|| (RefusalReason::PersistentData, safety::persistent_message(), false))
            });
        match refusal {
            Some((reason, message, blocking)) => refusals.push(Refusal {
                reference: l.reference.clone(),
                component,
                action: Action::Delete,
                reason,
                blocking,
                message,
            }),
            None => {
                let replaced = l.reference.kind == "Job"
                    && impact::job_label(l.object)
                        .is_some_and(|job| desired_runs.contains(&(component.as_str(), job)));
                replaced_runs += usize::from(replaced);
                planned.push(Change {
                    action: Action::Delete,
                    reference: l.reference.clone(),
                    component,
                    stage,
                    step: 0,
                    timeout: None,
                    diff: Vec::new(),
                    drift: false,
                    desired: None,
                    secret: None,
                });
            }
        }
    }

    let budget = policy.prune_budget_percent;
    let counted = planned.len() - replaced_runs;
    if safety::over_budget(counted, owned, budget) && !input.options.allow_prune_over_budget {
        let message = safety::budget_message(counted, owned, budget);
        let reason = RefusalReason::PruneOverBudget {
            deletions: counted,
            owned,
            budget_percent: budget,
        };
        refusals.extend(planned.drain(..).map(|c| Refusal {
            reference: c.reference,
            component: c.component,
            action: Action::Delete,
            reason: reason.clone(),
            blocking: true,
            message: message.clone(),
        }));
    }

    let mut by_component: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for c in planned {
        by_component.entry(c.component.clone()).or_default().push(c);
    }
    let names: BTreeSet<String> = by_component.keys().cloned().collect();
    let groups = order::deletion_groups(&names, wave_of, |c| {
        input.inventory.and_then(|i| i.first_position(c))
    });
    groups
        .into_iter()
        .enumerate()
        .map(|(index, group)| DeletionWave {
            index,
            components: group
                .into_iter()
                .map(|name| {
                    let mut changes = by_component.remove(&name).unwrap_or_default();
                    changes.sort_by(|a, b| {
                        b.stage
                            .cmp(&a.stage)
                            .then_with(|| ObjectKey::of(&a.reference).cmp(&ObjectKey::of(&b.reference)))
                    });
                    let component = input.topology.components.get(&name);
                    ComponentPlan {
                        project: component
                            .map(|c| c.project.clone())
                            .unwrap_or_else(|| name.clone()),
                        depends_on: component.map(|c| c.spec.dependency_names()).unwrap_or_default(),
                        waits_for: component
                            .map(|c| c.spec.relaxed_dependencies())
                            .unwrap_or_default(),
                        name,
                        changes,
                        // A component removed from the topology waits as long as the topology says.
                        health_timeout: component.map_or(input.topology.health_timeout, |c| c.health_timeout),
                        recreate_on_immutable_change: false,
                    }
                })
                .collect(),
        })
        .collect()
}

impl Plan {
    /// The part of this plan that touches only `components`: their apply changes, no deletions, and only
    /// their refusals and warnings. Used to correct drift of the healthy components of a failed revision
    /// without retrying the failed ones; `components` must be closed under dependencies (a dependency that
    /// is left out blocks its dependents in the rollout).
    pub fn only_components(&self, components: &BTreeSet<String>) -> Plan {
        let mut plan = Plan {
            waves: self
                .waves
                .iter()
                .map(|w| Wave {
                    index: w.index,
                    components: w
                        .components
                        .iter()
                        .filter(|c| components.contains(&c.name))
                        .cloned()
                        .collect(),
                })
                .collect(),
            deletions: Vec::new(),
            // Refused deletions go with the deletions.
            refusals: self
                .refusals
                .iter()
                .filter(|r| components.contains(&r.component) && r.action != Action::Delete)
                .cloned()
                .collect(),
            warnings: self
                .warnings
                .iter()
                .filter(|w| components.contains(&w.component))
                .cloned()
                .collect(),
            summary: Summary::default(),
            ..self.clone()
        };
        plan.summary = summarize(&plan);
        plan
    }
}

fn summarize(plan: &Plan) -> Summary {
    let mut s = Summary {
        refused: plan.refusals.len(),
        ..Summary::default()
    };
    for c in plan.apply_changes().chain(plan.deletion_changes()) {
        match c.action {
            Action::Create => s.create += 1,
            Action::Update => s.update += 1,
            Action::Unchanged => s.unchanged += 1,
            Action::Delete => s.delete += 1,
        }
    }
    s
}

#[cfg(test)]
mod review_tests;
#[cfg(test)]
mod tests;
