//! Ordering: components into dependency waves, objects into stages, deletions into reverse order.

use std::collections::{BTreeMap, BTreeSet};

use crate::object::ObjectRef;
use crate::render::Stage;
use crate::topology::{Topology, graph};

use super::PlanError;

/// Identity of an object for matching desired, live, foreign and inventory entries. The API version is left
/// out on purpose: `apps/v1` and `apps/v1beta2` name the same object, only the group matters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn of(r: &ObjectRef) -> ObjectKey {
        ObjectKey {
            group: api_group(&r.api_version).to_string(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        }
    }
}

pub use crate::topology::policy::api_group;

/// Components of the topology in dependency waves (`topology::graph::waves`): wave 0 depends on nothing,
/// wave n only on earlier waves, names sorted inside a wave.
///
/// The topology loader validates the graph; the plan checks again rather than trusting it, because a plan
/// that silently left out a component on a cycle would skip it without anyone noticing.
pub fn component_waves(topology: &Topology) -> Result<Vec<Vec<String>>, PlanError> {
    let comps = &topology.components;
    for c in comps.values() {
        for dep in &c.spec.depends_on {
            if !comps.contains_key(&dep.component) {
                return Err(PlanError::UnknownDependency {
                    component: c.name.clone(),
                    dependency: dep.component.clone(),
                });
            }
        }
    }
    let waves = graph::waves(topology);
    let placed: BTreeSet<&str> = waves.iter().flatten().map(String::as_str).collect();
    if placed.len() < comps.len() {
        let stuck = comps
            .keys()
            .filter(|n| !placed.contains(n.as_str()))
            .cloned()
            .collect();
        return Err(PlanError::DependencyCycle { components: stuck });
    }
    Ok(waves)
}

/// The stage an object of this kind is applied in, for objects whose stage is not recorded (live objects
/// outside the inventory). Jobs count as post-jobs: deleted first, which is safe whichever phase they had.
pub fn stage_of_kind(r: &ObjectRef) -> Stage {
    match (api_group(&r.api_version), r.kind.as_str()) {
        ("", "Service") => Stage::Service,
        ("batch", "Job") => Stage::PostJob,
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet") => Stage::Workload,
        _ => Stage::Config,
    }
}

/// Order components that have deletions: first components no longer in the topology (nothing current depends
/// on them), latest-applied first by the inventory, unknown ones before those; then current components in
/// reverse wave order. Each removed component gets a wave of its own because their dependencies on each other
/// are no longer known; current components share a wave when they shared an apply wave.
pub fn deletion_groups(
    with_deletions: &BTreeSet<String>,
    current_wave_of: &BTreeMap<String, usize>,
    last_position: impl Fn(&str) -> Option<usize>,
) -> Vec<Vec<String>> {
    let mut removed: Vec<(&String, Option<usize>)> = with_deletions
        .iter()
        .filter(|c| !current_wave_of.contains_key(*c))
        .map(|c| (c, last_position(c)))
        .collect();
    // Unknown position sorts first (None < Some), then the latest applied first, names break ties.
    removed.sort_by(|a, b| match (a.1, b.1) {
        (None, None) => a.0.cmp(b.0),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x).then_with(|| a.0.cmp(b.0)),
    });
    let mut groups: Vec<Vec<String>> = removed.into_iter().map(|(c, _)| vec![c.clone()]).collect();
    let mut by_wave: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for c in with_deletions {
        if let Some(w) = current_wave_of.get(c) {
            by_wave.entry(*w).or_default().push(c.clone());
        }
    }
    groups.extend(by_wave.into_values().rev());
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::mk_topology;

    #[test]
    fn diamond_topology_waves() {
        let topo = mk_topology(&[
            ("mariadb", &[]),
            ("rabbitmq", &[]),
            ("keystone", &["mariadb"]),
            ("glance", &["keystone"]),
            ("nova", &["keystone", "rabbitmq"]),
            ("horizon", &["glance", "nova"]),
        ]);
        let waves = component_waves(&topo).unwrap();
        assert_eq!(
            waves,
            vec![
                vec!["mariadb", "rabbitmq"],
                vec!["keystone"],
                vec!["glance", "nova"],
                vec!["horizon"]
            ]
        );
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_errors() {
        let cyclic = mk_topology(&[("a", &["b"]), ("b", &["a"]), ("c", &[])]);
        let err = component_waves(&cyclic).unwrap_err().to_string();
        assert!(err.contains("a, b"), "{err}");
        let missing = mk_topology(&[("a", &["ghost"])]);
        let err = component_waves(&missing).unwrap_err().to_string();
        assert!(err.contains("ghost"), "{err}");
    }

    #[test]
    fn stage_inference_table() {
        let cases = [
            ("v1", "ConfigMap", Stage::Config),
            ("v1", "Secret", Stage::Config),
            ("v1", "Service", Stage::Service),
            ("serving.knative.dev/v1", "Service", Stage::Config),
            ("batch/v1", "Job", Stage::PostJob),
            ("apps/v1", "StatefulSet", Stage::Workload),
            ("v1", "PersistentVolumeClaim", Stage::Config),
        ];
        for (api, kind, want) in cases {
            let r = ObjectRef {
                api_version: api.into(),
                kind: kind.into(),
                namespace: None,
                name: "x".into(),
            };
            assert_eq!(stage_of_kind(&r), want, "{api} {kind}");
        }
    }

    #[test]
    fn deletion_groups_put_removed_components_first_latest_first() {
        let with: BTreeSet<String> = ["old-a", "old-b", "mystery", "keystone", "nova", "glance"]
            .into_iter()
            .map(String::from)
            .collect();
        let current: BTreeMap<String, usize> = [("keystone", 1), ("nova", 2), ("glance", 2)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let pos = |c: &str| match c {
            "old-a" => Some(0),
            "old-b" => Some(5),
            _ => None,
        };
        let groups = deletion_groups(&with, &current, pos);
        assert_eq!(
            groups,
            vec![
                vec!["mystery"],
                vec!["old-b"],
                vec!["old-a"],
                vec!["glance", "nova"],
                vec!["keystone"]
            ]
        );
    }
}
