//! The inventory: which objects the last successful pass applied, in apply order. The cluster layer stores it
//! as a JSON string (in a ConfigMap or the status object) so that prune knows what it applied instead of
//! trusting labels alone, and so that deletions of removed components can be ordered by their last known
//! apply order.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::object::ObjectRef;
use crate::render::Stage;

use super::PlanError;
use super::model::{Action, Plan};

/// Version of the stored JSON layout; bumped when a change would make old readers misread it.
pub const INVENTORY_FORMAT_VERSION: u32 = 1;

/// What one successful pass applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub topology: String,
    pub revision: String,
    /// In apply order: wave by wave, stage by stage.
    pub objects: Vec<InventoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryEntry {
    pub reference: ObjectRef,
    pub component: String,
    pub stage: Stage,
}

impl Inventory {
    /// The inventory to record once `plan` has been applied successfully: every object that now exists and is
    /// owned, in apply order. Objects kept by a non-blocking refusal (protected persistent data) stay listed,
    /// because they still exist and are still ours.
    pub fn from_plan(plan: &Plan) -> Inventory {
        let mut objects: Vec<InventoryEntry> = plan
            .apply_changes()
            .map(|c| InventoryEntry {
                reference: c.reference.clone(),
                component: c.component.clone(),
                stage: c.stage,
            })
            .collect();
        for refusal in plan
            .refusals
            .iter()
            .filter(|r| !r.blocking && r.action == Action::Delete)
        {
            let stage = super::order::stage_of_kind(&refusal.reference);
            objects.push(InventoryEntry {
                reference: refusal.reference.clone(),
                component: refusal.component.clone(),
                stage,
            });
        }
        Inventory {
            topology: plan.topology.clone(),
            revision: plan.revision.clone(),
            objects,
        }
    }

    /// Position of a component's first object in apply order, used to order deletions of removed components.
    pub fn first_position(&self, component: &str) -> Option<usize> {
        self.objects.iter().position(|e| e.component == component)
    }

    /// Entries by object identity, for lookups while planning deletions.
    pub(super) fn index(&self) -> std::collections::BTreeMap<super::order::ObjectKey, &InventoryEntry> {
        self.objects
            .iter()
            .map(|e| (super::order::ObjectKey::of(&e.reference), e))
            .collect()
    }

    pub fn to_json(&self) -> String {
        let wire = WireInventory {
            version: INVENTORY_FORMAT_VERSION,
            topology: self.topology.clone(),
            revision: self.revision.clone(),
            objects: self
                .objects
                .iter()
                .map(|e| WireEntry {
                    api_version: e.reference.api_version.clone(),
                    kind: e.reference.kind.clone(),
                    namespace: e.reference.namespace.clone(),
                    name: e.reference.name.clone(),
                    component: e.component.clone(),
                    stage: stage_name(e.stage).to_string(),
                })
                .collect(),
        };
        // Only strings and numbers: serialization cannot fail, but never panic on it either.
        serde_json::to_string(&wire).unwrap_or_else(|_| String::from("{}"))
    }

    /// Parse and check a stored inventory. Anything unexpected is an error rather than a guess, because a
    /// misread inventory could make prune delete the wrong objects.
    pub fn from_json(text: &str) -> Result<Inventory, PlanError> {
        let wire: WireInventory = serde_json::from_str(text).map_err(|e| PlanError::InventoryMalformed {
            reason: format!("not valid inventory JSON: {e}"),
        })?;
        if wire.version != INVENTORY_FORMAT_VERSION {
            return Err(PlanError::InventoryMalformed {
                reason: format!(
                    "format version {} is not supported (this Keelson reads version {INVENTORY_FORMAT_VERSION})",
                    wire.version
                ),
            });
        }
        if wire.topology.trim().is_empty() {
            return Err(malformed("field `topology` is empty".to_string()));
        }
        if wire.revision.trim().is_empty() {
            return Err(malformed("field `revision` is empty".to_string()));
        }
        let mut seen = BTreeSet::new();
        let mut objects = Vec::with_capacity(wire.objects.len());
        for (i, e) in wire.objects.into_iter().enumerate() {
            for (field, value) in [
                ("apiVersion", &e.api_version),
                ("kind", &e.kind),
                ("name", &e.name),
                ("component", &e.component),
            ] {
                if value.trim().is_empty() {
                    return Err(malformed(format!("objects[{i}]: field `{field}` is empty")));
                }
            }
            if e.namespace.as_deref().is_some_and(|ns| ns.trim().is_empty()) {
                return Err(malformed(format!("objects[{i}]: field `namespace` is empty")));
            }
            let stage = parse_stage(&e.stage).ok_or_else(|| {
                malformed(format!(
                    "objects[{i}]: unknown stage `{}` (expected config, service, preJob, workload or postJob)",
                    e.stage
                ))
            })?;
            let reference = ObjectRef {
                api_version: e.api_version,
                kind: e.kind,
                namespace: e.namespace,
                name: e.name,
            };
            if !seen.insert(super::order::ObjectKey::of(&reference)) {
                return Err(malformed(format!("objects[{i}]: {reference} is listed twice")));
            }
            objects.push(InventoryEntry {
                reference,
                component: e.component,
                stage,
            });
        }
        Ok(Inventory {
            topology: wire.topology,
            revision: wire.revision,
            objects,
        })
    }
}

fn malformed(reason: String) -> PlanError {
    PlanError::InventoryMalformed { reason }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireInventory {
    version: u32,
    topology: String,
    revision: String,
    objects: Vec<WireEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireEntry {
    api_version: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
    component: String,
    stage: String,
}

/// The name a stage has in JSON (matches `Stage`'s serde form).
pub fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Config => "config",
        Stage::Service => "service",
        Stage::PreJob => "preJob",
        Stage::Workload => "workload",
        Stage::PostJob => "postJob",
    }
}

fn parse_stage(s: &str) -> Option<Stage> {
    [
        Stage::Config,
        Stage::Service,
        Stage::PreJob,
        Stage::Workload,
        Stage::PostJob,
    ]
    .into_iter()
    .find(|st| stage_name(*st) == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Inventory {
        Inventory {
            topology: "openstack".into(),
            revision: "abc123".into(),
            objects: vec![
                InventoryEntry {
                    reference: ObjectRef {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        namespace: Some("openstack".into()),
                        name: "keystone-config".into(),
                    },
                    component: "keystone".into(),
                    stage: Stage::Config,
                },
                InventoryEntry {
                    reference: ObjectRef {
                        api_version: "rbac.authorization.k8s.io/v1".into(),
                        kind: "ClusterRole".into(),
                        namespace: None,
                        name: "reader".into(),
                    },
                    component: "keystone".into(),
                    stage: Stage::PostJob,
                },
            ],
        }
    }

    #[test]
    fn round_trip_keeps_everything() {
        let inv = sample();
        let text = inv.to_json();
        assert!(text.contains("\"stage\":\"postJob\""), "{text}");
        assert!(!text.contains("\"namespace\":null"), "{text}");
        assert_eq!(Inventory::from_json(&text).unwrap(), inv);
    }

    #[test]
    fn malformed_inputs_are_rejected_with_the_reason() {
        let good = sample().to_json();
        let cases: Vec<(&str, String, &str)> = vec![
            ("not json", "{oops".into(), "not valid inventory JSON"),
            ("empty", "".into(), "not valid inventory JSON"),
            ("wrong type", "[]".into(), "not valid inventory JSON"),
            (
                "missing objects",
                r#"{"version":1,"topology":"t","revision":"r"}"#.into(),
                "missing field `objects`",
            ),
            (
                "unknown field",
                good.replacen("\"topology\"", "\"extra\":1,\"topology\"", 1),
                "unknown field `extra`",
            ),
            (
                "future version",
                good.replacen("\"version\":1", "\"version\":2", 1),
                "format version 2",
            ),
            (
                "bad stage",
                good.replacen("postJob", "later", 1),
                "unknown stage `later`",
            ),
            (
                "empty name",
                good.replacen("\"reader\"", "\"\"", 1),
                "objects[1]: field `name` is empty",
            ),
            (
                "empty revision",
                good.replacen("abc123", " ", 1),
                "`revision` is empty",
            ),
            (
                "duplicate",
                good.replacen("\"ClusterRole\"", "\"ConfigMap\"", 1)
                    .replacen("\"rbac.authorization.k8s.io/v1\"", "\"v1\"", 1)
                    .replacen("\"reader\"", "\"keystone-config\",\"namespace\":\"openstack\"", 1),
                "listed twice",
            ),
        ];
        for (name, text, want) in cases {
            let err = Inventory::from_json(&text).expect_err(name).to_string();
            assert!(err.starts_with("inventory: "), "{name}: {err}");
            assert!(err.contains(want), "{name}: {err}");
        }
    }
}
