//! Planning tests over the diamond topology: classification, drift, ordering, safety rules, formats.

use serde_json::{Value, json};

use super::fixtures::*;
use super::*;
use crate::object::{ANNOTATION_HASH, LABEL_TOPOLOGY};
use crate::render::Stage;
use crate::topology::Topology;

/// One planning run; fields default to an empty cluster with no inventory.
struct Scenario {
    topology: Topology,
    desired: Vec<RenderedObject>,
    live: Vec<Value>,
    foreign: Vec<ObjectRef>,
    inventory: Option<Inventory>,
    options: PlanOptions,
}

impl Scenario {
    fn new(desired: Vec<RenderedObject>) -> Scenario {
        Scenario {
            topology: diamond(),
            desired,
            live: Vec::new(),
            foreign: Vec::new(),
            inventory: None,
            options: PlanOptions::default(),
        }
    }

    fn live(mut self, live: Vec<Value>) -> Scenario {
        self.live = live;
        self
    }

    fn try_run(&self) -> Result<Plan, PlanError> {
        plan(&PlanInput {
            topology: &self.topology,
            revision: "new-rev",
            desired: &self.desired,
            live: &self.live,
            foreign: &self.foreign,
            inventory: self.inventory.as_ref(),
            options: &self.options,
        })
    }

    fn run(&self) -> Plan {
        self.try_run().expect("plan")
    }
}

fn keystone_config(conf: &str) -> RenderedObject {
    mk_object(
        "keystone",
        Stage::Config,
        "ConfigMap",
        "keystone-config",
        json!({"data": {"keystone.conf": conf}}),
    )
}

fn actions(plan: &Plan) -> Vec<(String, Action)> {
    plan.apply_changes()
        .chain(plan.deletion_changes())
        .map(|c| (c.reference.name.clone(), c.action))
        .collect()
}

fn change<'a>(plan: &'a Plan, name: &str) -> &'a Change {
    plan.apply_changes()
        .find(|c| c.reference.name == name)
        .expect("change")
}

#[test]
fn classification_table() {
    let old_conf = keystone_config("[DEFAULT]\ndebug = false\n");
    let new_conf = keystone_config("[DEFAULT]\ndebug = true\n");
    let api = mk_deployment("keystone", "keystone-api", "keystone:1");
    let mut hand_edited = live_of(&api);
    hand_edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("keystone:hotfix");

    struct Case {
        name: &'static str,
        desired: Vec<RenderedObject>,
        live: Vec<Value>,
        want: Vec<(&'static str, Action)>,
        drift: bool,
    }
    let cases = vec![
        Case {
            name: "nothing live: create",
            desired: vec![new_conf.clone()],
            live: vec![],
            want: vec![("keystone-config", Action::Create)],
            drift: false,
        },
        Case {
            name: "same hash, server-defaulted extras only: unchanged",
            desired: vec![api.clone()],
            live: vec![live_of(&api)],
            want: vec![("keystone-api", Action::Unchanged)],
            drift: false,
        },
        Case {
            name: "rendered content changed: update",
            desired: vec![new_conf.clone()],
            live: vec![live_of(&old_conf)],
            want: vec![("keystone-config", Action::Update)],
            drift: false,
        },
        Case {
            name: "same hash but an owned field edited in the cluster: update with drift",
            desired: vec![api.clone()],
            live: vec![hand_edited.clone()],
            want: vec![("keystone-api", Action::Update)],
            drift: true,
        },
        Case {
            name: "owned and no longer desired: delete",
            desired: vec![api.clone()],
            live: vec![live_of(&api), live_of(&new_conf)],
            want: vec![
                ("keystone-api", Action::Unchanged),
                ("keystone-config", Action::Delete),
            ],
            drift: false,
        },
    ];
    for case in cases {
        let mut s = Scenario::new(case.desired).live(case.live);
        // These cases are about classification; the budget has its own test.
        s.options.allow_prune_over_budget = true;
        let plan = s.run();
        let want: Vec<(String, Action)> = case.want.iter().map(|(n, a)| (n.to_string(), *a)).collect();
        assert_eq!(actions(&plan), want, "case: {}", case.name);
        assert_eq!(
            plan.apply_changes().any(|c| c.drift),
            case.drift,
            "case: {}",
            case.name
        );
        assert!(plan.refusals.is_empty(), "case: {}", case.name);
    }
}

#[test]
fn drift_diff_names_the_edited_field_and_nothing_server_set() {
    let api = mk_deployment("keystone", "keystone-api", "keystone:1");
    let mut live = live_of(&api);
    live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("keystone:hotfix");
    live["spec"]["replicas"] = json!(1.0);
    let plan = Scenario::new(vec![api]).live(vec![live]).run();
    let c = change(&plan, "keystone-api");
    assert!(c.drift);
    assert_eq!(c.diff.len(), 1, "{:?}", c.diff);
    assert_eq!(c.diff[0].path, "spec.template.spec.containers[name=main].image");
    assert_eq!(c.diff[0].before, Some(json!("keystone:hotfix")));
    assert_eq!(c.diff[0].after, Some(json!("keystone:1")));
}

#[test]
fn update_diff_shows_the_content_and_hash_but_not_the_revision() {
    let plan = Scenario::new(vec![keystone_config("debug = true\n")])
        .live(vec![live_of(&keystone_config("debug = false\n"))])
        .run();
    let c = change(&plan, "keystone-config");
    assert!(!c.drift);
    let paths: Vec<&str> = c.diff.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "metadata.annotations[\"keelson.dev/hash\"]",
            "data[\"keystone.conf\"]"
        ]
    );
}

#[test]
fn a_live_object_without_the_hash_annotation_is_never_unchanged() {
    let conf = keystone_config("x\n");
    let mut desired = conf.clone();
    // A body without the annotation: only the recorded hash tells that the object is new.
    desired.body["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove(ANNOTATION_HASH);
    let mut live = live_of(&conf);
    live["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove(ANNOTATION_HASH);
    let plan = Scenario::new(vec![desired]).live(vec![live]).run();
    let c = change(&plan, "keystone-config");
    assert_eq!(c.action, Action::Update);
    assert_eq!(c.diff[0].before, None);
    assert_eq!(c.diff[0].after, Some(json!(conf.hash)));
}

fn secret(value_b64: &str, plain: &str) -> RenderedObject {
    mk_object(
        "keystone",
        Stage::Config,
        "Secret",
        "keystone-db",
        json!({"type": "Opaque", "data": {"password": value_b64}, "stringData": {"token": plain}}),
    )
}

#[test]
fn secret_values_never_reach_any_output() {
    let old = secret("T0xEU0VDUkVU", "old-plain-token");
    let new = secret("TkVXU0VDUkVU", "new-plain-token");
    let mut s = Scenario::new(vec![new]).live(vec![live_of(&old)]);
    // A created Secret too: its body must not appear either.
    s.desired.push(mk_object(
        "mariadb",
        Stage::Config,
        "Secret",
        "mariadb-root",
        json!({"data": {"pw": "Q1JFQVRFRA=="}}),
    ));
    let plan = s.run();
    let c = change(&plan, "keystone-db");
    assert_eq!(c.action, Action::Update);
    let redacted: Vec<&FieldDiff> = c.diff.iter().filter(|d| d.path.starts_with("data")).collect();
    assert_eq!(redacted.len(), 1);
    assert_eq!(redacted[0].before, Some(json!(REDACTED)));
    assert_eq!(redacted[0].after, Some(json!(REDACTED)));
    for (format, text) in [
        ("text", to_text(&plan, true)),
        ("markdown", to_markdown(&plan)),
        ("json", to_json(&plan)),
        ("debug of diff", format!("{:?}", c.diff)),
    ] {
        for secret_value in [
            "T0xEU0VDUkVU",
            "TkVXU0VDUkVU",
            "old-plain-token",
            "new-plain-token",
            "Q1JFQVRFRA==",
        ] {
            assert!(
                !text.contains(secret_value),
                "{format} leaks {secret_value}:\n{text}"
            );
        }
        assert!(
            text.contains(REDACTED),
            "{format} should show that a value changed:\n{text}"
        );
    }
}

/// Every component of the diamond gets objects in all stages, given out of order.
fn full_diamond() -> Vec<RenderedObject> {
    let mut out = Vec::new();
    for component in ["horizon", "nova-api", "glance", "keystone", "rabbitmq", "mariadb"] {
        out.push(mk_object(
            component,
            Stage::PostJob,
            "Job",
            &format!("{component}-bootstrap"),
            json!({}),
        ));
        out.push(mk_deployment(component, component, &format!("{component}:1")));
        out.push(mk_object(
            component,
            Stage::PreJob,
            "Job",
            &format!("{component}-db-sync"),
            json!({}),
        ));
        out.push(mk_object(
            component,
            Stage::Service,
            "Service",
            component,
            json!({"spec": {"ports": [{"port": 80}]}}),
        ));
        out.push(mk_object(
            component,
            Stage::Config,
            "ConfigMap",
            &format!("{component}-config"),
            json!({}),
        ));
        out.push(mk_object(
            component,
            Stage::Config,
            "ServiceAccount",
            component,
            json!({}),
        ));
    }
    out
}

#[test]
fn waves_follow_dependencies_and_changes_follow_stages() {
    let plan = Scenario::new(full_diamond()).run();
    let waves: Vec<Vec<&str>> = plan
        .waves
        .iter()
        .map(|w| w.components.iter().map(|c| c.name.as_str()).collect())
        .collect();
    assert_eq!(
        waves,
        vec![
            vec!["mariadb", "rabbitmq"],
            vec!["keystone"],
            vec!["glance", "nova-api"],
            vec!["horizon"]
        ]
    );
    assert_eq!(
        plan.waves.iter().map(|w| w.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    let nova = &plan.waves[2].components[1];
    assert_eq!(nova.project, "nova");
    assert_eq!(nova.depends_on, vec!["keystone", "rabbitmq"]);
    for component in plan.waves.iter().flat_map(|w| &w.components) {
        let stages: Vec<Stage> = component.changes.iter().map(|c| c.stage).collect();
        assert_eq!(
            stages,
            vec![
                Stage::Config,
                Stage::Config,
                Stage::Service,
                Stage::PreJob,
                Stage::Workload,
                Stage::PostJob
            ],
            "{}",
            component.name
        );
        // Inside a stage the renderer's order is kept.
        assert_eq!(component.changes[0].reference.kind, "ConfigMap");
    }
    assert_eq!(
        plan.summary,
        Summary {
            create: 36,
            ..Summary::default()
        }
    );
}

#[test]
fn components_without_objects_still_get_their_wave() {
    let plan = Scenario::new(vec![keystone_config("x")]).run();
    assert_eq!(plan.waves.len(), 4);
    assert!(plan.waves[0].components.iter().all(|c| c.changes.is_empty()));
}

#[test]
fn deletions_run_in_reverse_dependency_and_stage_order() {
    // Everything rendered before; now glance and mariadb keep only their config, and two components that are
    // gone from the topology still have objects. `old-dashboard` was applied after `old-cache`.
    let before = full_diamond();
    let mut s = Scenario::new(
        before
            .iter()
            .filter(|o| !(["glance", "mariadb"].contains(&o.component.as_str()) && o.stage != Stage::Config))
            .cloned()
            .collect(),
    );
    s.live = before.iter().map(live_of).collect();
    s.live.push(mk_live("old-cache", "ConfigMap", "old-cache-config"));
    s.live
        .push(mk_live("old-dashboard", "ConfigMap", "old-dashboard-config"));
    s.live
        .push(mk_live("old-dashboard", "Deployment", "old-dashboard"));
    let mut inventory = Inventory::from_plan(&Scenario::new(before.clone()).run());
    for (component, name) in [
        ("old-cache", "old-cache-config"),
        ("old-dashboard", "old-dashboard-config"),
    ] {
        inventory.objects.push(InventoryEntry {
            reference: mk_ref("v1", "ConfigMap", Some(NS), name),
            component: component.into(),
            stage: Stage::Config,
        });
    }
    s.inventory = Some(inventory);
    s.options.allow_prune_over_budget = true;
    let plan = s.run();

    let order: Vec<Vec<(&str, Vec<&str>)>> = plan
        .deletions
        .iter()
        .map(|w| {
            w.components
                .iter()
                .map(|c| {
                    (
                        c.name.as_str(),
                        c.changes.iter().map(|ch| ch.reference.kind.as_str()).collect(),
                    )
                })
                .collect()
        })
        .collect();
    assert_eq!(
        order,
        vec![
            vec![("old-dashboard", vec!["Deployment", "ConfigMap"])],
            vec![("old-cache", vec!["ConfigMap"])],
            vec![("glance", vec!["Job", "Deployment", "Job", "Service"])],
            vec![("mariadb", vec!["Job", "Deployment", "Job", "Service"])],
        ]
    );
    // Within glance: the post-job before the workload, the pre-job after it.
    let glance: Vec<&str> = plan.deletions[2].components[0]
        .changes
        .iter()
        .map(|c| c.reference.name.as_str())
        .collect();
    assert_eq!(
        glance,
        vec!["glance-bootstrap", "glance", "glance-db-sync", "glance"]
    );
    assert_eq!(plan.summary.delete, 11);
    assert_eq!(plan.previous_revision.as_deref(), Some("new-rev"));
}

#[test]
fn prune_budget_blocks_and_can_be_allowed() {
    let kept = vec![
        keystone_config("x"),
        mk_deployment("keystone", "keystone-api", "k:1"),
    ];
    let mut live: Vec<Value> = kept.iter().map(live_of).collect();
    for name in ["a", "b", "c"] {
        live.push(mk_live("keystone", "ConfigMap", name));
    }
    // 3 of 5 owned objects = 60% > 30%.
    let mut s = Scenario::new(kept).live(live);
    let blocked = s.run();
    assert!(blocked.is_blocked());
    assert!(
        blocked.deletions.is_empty(),
        "no deletion may be planned while over budget"
    );
    assert_eq!(blocked.summary.refused, 3);
    assert_eq!(blocked.summary.delete, 0);
    assert!(blocked.has_changes());
    let message = blocked.blocked_message().unwrap();
    assert!(
        message.contains("3 of 5 owned objects (~60%), over the budget of 30%"),
        "{message}"
    );
    assert!(message.contains("--allow-prune-over-budget"), "{message}");
    assert!(message.contains("spec.policy.pruneBudgetPercent"), "{message}");
    assert_eq!(
        message.matches("over the budget").count(),
        1,
        "one budget line, not one per object:\n{message}"
    );

    s.options.allow_prune_over_budget = true;
    let allowed = s.run();
    assert!(!allowed.is_blocked());
    assert_eq!(allowed.summary.delete, 3);

    s.options.allow_prune_over_budget = false;
    s.topology.spec.policy.prune_budget_percent = 60;
    assert!(!s.run().is_blocked(), "exactly at the budget is allowed");

    s.options.skip_prune = true;
    s.topology.spec.policy.prune_budget_percent = 0;
    let skipped = s.run();
    assert!(!skipped.is_blocked() && skipped.deletions.is_empty() && skipped.refusals.is_empty());
}

#[test]
fn persistent_data_is_kept_unless_policy_allows() {
    let kept = vec![
        keystone_config("x"),
        mk_deployment("keystone", "keystone-api", "k:1"),
    ];
    let mut live: Vec<Value> = kept.iter().map(live_of).collect();
    live.push(mk_live("mariadb", "PersistentVolumeClaim", "mariadb-data"));
    let mut marked = mk_live("mariadb", "ConfigMap", "mariadb-seed");
    marked["metadata"]["annotations"][ANNOTATION_PERSISTENT] = json!("true");
    live.push(marked);
    let mut s = Scenario::new(kept).live(live);
    s.topology.spec.policy.prune_budget_percent = 100;

    let plan = s.run();
    assert!(plan.deletions.is_empty());
    let kept: Vec<(&str, &RefusalReason, bool)> = plan
        .refusals
        .iter()
        .map(|r| (r.reference.name.as_str(), &r.reason, r.blocking))
        .collect();
    assert_eq!(
        kept,
        vec![
            ("mariadb-seed", &RefusalReason::PersistentData, false),
            ("mariadb-data", &RefusalReason::PersistentData, false)
        ]
    );
    assert!(
        !plan.is_blocked(),
        "keeping data must not stop the rest of the rollout"
    );
    assert!(!plan.has_changes());
    assert!(plan.refusals[0].message.contains("prunePersistentData: true"));
    // Kept objects stay in the inventory: they still exist and are still ours.
    let inv = Inventory::from_plan(&plan);
    assert!(inv.objects.iter().any(|e| e.reference.name == "mariadb-data"));

    s.topology.spec.policy.prune_persistent_data = true;
    let plan = s.run();
    assert_eq!(plan.summary.delete, 2);
    assert!(plan.refusals.is_empty());
}

#[test]
fn generated_secrets_are_kept_until_a_tombstone_names_them() {
    let kept = vec![keystone_config("x")];
    let mut live: Vec<Value> = kept.iter().map(live_of).collect();
    let mut generated = mk_live("horizon", "Secret", "horizon");
    generated["metadata"]["annotations"][crate::object::ANNOTATION_GENERATED] = json!("secret-key");
    live.push(generated);
    // A Secret Keelson made only from templates or ciphertexts can be made again: it prunes normally.
    let mut derived = mk_live("horizon", "Secret", "horizon-urls");
    derived["metadata"]["annotations"][crate::object::ANNOTATION_RECIPE] = json!("{}");
    live.push(derived);
    let mut s = Scenario::new(kept).live(live);
    s.topology.spec.policy.prune_budget_percent = 100;
    // Even a policy that lets persistent data go keeps generated values.
    s.topology.spec.policy.prune_persistent_data = true;

    let plan = s.run();
    let refused: Vec<(&str, &RefusalReason, bool)> = plan
        .refusals
        .iter()
        .map(|r| (r.reference.name.as_str(), &r.reason, r.blocking))
        .collect();
    assert_eq!(refused, vec![("horizon", &RefusalReason::GeneratedSecret, false)]);
    assert!(plan.refusals[0].message.contains("spec.tombstones.secrets"));
    let deleted: Vec<&str> = plan
        .deletion_changes()
        .map(|c| c.reference.name.as_str())
        .collect();
    assert_eq!(deleted, vec!["horizon-urls"]);
    assert!(
        Inventory::from_plan(&plan)
            .objects
            .iter()
            .any(|e| e.reference.name == "horizon")
    );

    s.topology.spec.tombstones.secrets = vec!["horizon".into()];
    let plan = s.run();
    assert!(plan.refusals.is_empty());
    assert_eq!(plan.summary.delete, 2);
}

#[test]
fn objects_created_by_controllers_from_our_templates_are_never_pruned() {
    let sts = mk_object(
        "mariadb",
        Stage::Workload,
        "StatefulSet",
        "mariadb",
        json!({"spec": {"replicas": 1, "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}),
    );
    // Created by the StatefulSet controller from the claim template: Keelson's labels, no owner reference.
    let claim = mk_live("mariadb", "PersistentVolumeClaim", "data-mariadb-0");
    // A pod-like object carrying copied labels, owned by its controller.
    let mut replica = mk_live("mariadb", "ConfigMap", "mariadb-replica-state");
    replica["metadata"]["ownerReferences"] =
        json!([{"kind": "StatefulSet", "name": "mariadb", "controller": true}]);
    let mut s = Scenario::new(vec![sts.clone()]).live(vec![live_of(&sts), claim, replica]);
    // Even where the policy allows deleting persistent data and any share of objects.
    s.topology.spec.policy.prune_persistent_data = true;
    s.topology.spec.policy.prune_budget_percent = 100;
    let plan = s.run();
    assert_eq!(plan.deletion_changes().count(), 0, "{:?}", plan.deletions);
    assert!(plan.refusals.is_empty());
    assert!(!plan.has_changes());
}

#[test]
fn objects_without_our_ownership_are_never_touched() {
    let conf = keystone_config("x");
    let api = mk_deployment("keystone", "keystone-api", "k:1");
    // keystone-config exists but belongs to someone else (reported by the cluster layer as foreign);
    // keystone-api carries Keelson's label but another topology's name.
    let mut other = live_of(&api);
    other["metadata"]["labels"][LABEL_TOPOLOGY] = json!("other-cloud");
    // An object of the other topology that we do not render must not be deleted either.
    let mut other_extra = mk_live("keystone", "ConfigMap", "theirs");
    other_extra["metadata"]["labels"][LABEL_TOPOLOGY] = json!("other-cloud");
    let mut s = Scenario::new(vec![conf.clone(), api]).live(vec![other, other_extra]);
    s.foreign = vec![conf.reference.clone()];
    let plan = s.run();

    assert_eq!(plan.apply_changes().count(), 0, "no write to a foreign object");
    assert_eq!(plan.deletion_changes().count(), 0);
    assert!(plan.is_blocked());
    let refused: Vec<(&str, Action)> = plan
        .refusals
        .iter()
        .map(|r| (r.reference.name.as_str(), r.action))
        .collect();
    assert_eq!(
        refused,
        vec![
            ("keystone-config", Action::Create),
            ("keystone-api", Action::Create)
        ]
    );
    assert!(matches!(&plan.refusals[0].reason, RefusalReason::NotOwned { topology } if topology == TOPOLOGY));
    let message = plan.blocked_message().unwrap();
    assert!(
        message.contains(
            "kubectl label configmap -n openstack keystone-config app.kubernetes.io/managed-by=keelson"
        ),
        "{message}"
    );
}

#[test]
fn namespace_and_kind_policy_refusals() {
    let mut elsewhere = keystone_config("x");
    elsewhere.reference.namespace = Some("kube-system".into());
    let mut cluster_role = mk_object(
        "keystone",
        Stage::Config,
        "ClusterRole",
        "keystone-reader",
        json!({}),
    );
    cluster_role.reference.namespace = None;
    let monitor = RenderedObject {
        reference: mk_ref("monitoring.coreos.com/v1", "ServiceMonitor", Some(NS), "keystone"),
        ..mk_object("keystone", Stage::Config, "ServiceMonitor", "keystone", json!({}))
    };
    let ok = mk_deployment("keystone", "keystone-api", "k:1");
    let mut s = Scenario::new(vec![elsewhere, cluster_role, monitor, ok]);
    let plan = s.run();
    let reasons: Vec<(&str, &RefusalReason)> = plan
        .refusals
        .iter()
        .map(|r| (r.reference.name.as_str(), &r.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                "keystone-config",
                &RefusalReason::NamespaceNotAllowed {
                    namespace: "kube-system".into()
                }
            ),
            (
                "keystone-reader",
                &RefusalReason::KindNotAllowed {
                    kind: "rbac.authorization.k8s.io/ClusterRole".into(),
                    cluster_scoped: true
                }
            ),
            (
                "keystone",
                &RefusalReason::KindNotAllowed {
                    kind: "monitoring.coreos.com/ServiceMonitor".into(),
                    cluster_scoped: false
                }
            ),
        ]
    );
    assert!(plan.is_blocked());
    let message = plan.blocked_message().unwrap();
    assert!(
        message.contains("add it to spec.policy.allowedNamespaces"),
        "{message}"
    );
    assert!(
        message.contains("add `rbac.authorization.k8s.io/ClusterRole` to spec.policy.allowedKinds"),
        "{message}"
    );
    assert_eq!(actions(&plan), vec![("keystone-api".to_string(), Action::Create)]);

    s.topology.spec.policy.allowed_namespaces = vec!["kube-system".into()];
    s.topology.spec.policy.allowed_kinds = vec![
        "ClusterRole".into(),
        "monitoring.coreos.com/ServiceMonitor".into(),
    ];
    let plan = s.run();
    assert!(plan.refusals.is_empty(), "{:?}", plan.refusals);
    assert_eq!(plan.summary.create, 4);
}

#[test]
fn owned_objects_outside_the_policy_are_not_deleted() {
    let mut stray = mk_live("keystone", "ConfigMap", "stray");
    stray["metadata"]["namespace"] = json!("legacy");
    let mut s = Scenario::new(vec![keystone_config("x")]).live(vec![stray]);
    s.options.allow_prune_over_budget = true;
    let plan = s.run();
    assert!(plan.deletions.is_empty());
    assert_eq!(plan.refusals[0].action, Action::Delete);
    assert!(plan.is_blocked());
}

#[test]
fn contradictory_inputs_are_errors_naming_the_object() {
    let conf = keystone_config("x");
    let mut ghost = keystone_config("y");
    ghost.component = "ghost".into();
    ghost.reference.name = "ghost-config".into();
    let cases: Vec<(&str, Scenario, &str)> = vec![
        (
            "duplicate",
            Scenario::new(vec![conf.clone(), conf.clone()]),
            "desired object ConfigMap openstack/keystone-config: rendered more than once",
        ),
        (
            "unknown component",
            Scenario::new(vec![ghost]),
            "component `ghost`, which is not in the topology",
        ),
        (
            "live without name",
            Scenario::new(vec![]).live(vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
            ]),
            "live object #0: has no metadata.name",
        ),
        (
            "live not an object",
            Scenario::new(vec![]).live(vec![json!([1, 2])]),
            "live object #0: has no apiVersion",
        ),
        (
            "inventory of another topology",
            Scenario {
                inventory: Some(Inventory {
                    topology: "other".into(),
                    revision: "r".into(),
                    objects: vec![],
                }),
                ..Scenario::new(vec![])
            },
            "inventory: recorded for topology `other`, not `openstack`",
        ),
        (
            "cycle",
            Scenario {
                topology: mk_topology(&[("keystone", &["mariadb"]), ("mariadb", &["keystone"])]),
                ..Scenario::new(vec![])
            },
            "dependency graph: cycle among components keystone, mariadb",
        ),
    ];
    for (name, scenario, want) in cases {
        let err = scenario.try_run().expect_err(name).to_string();
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn the_same_object_listed_twice_live_is_planned_once() {
    let conf = keystone_config("x");
    let plan = Scenario::new(vec![conf.clone()])
        .live(vec![live_of(&conf), live_of(&conf)])
        .run();
    assert_eq!(
        actions(&plan),
        vec![("keystone-config".to_string(), Action::Unchanged)]
    );
}

#[test]
fn idempotent_pass_has_no_changes() {
    let desired = full_diamond();
    let live: Vec<Value> = desired.iter().map(live_of).collect();
    let plan = Scenario::new(desired).live(live).run();
    assert_eq!(
        plan.summary,
        Summary {
            unchanged: 36,
            ..Summary::default()
        }
    );
    assert!(!plan.has_changes());
    assert!(to_text(&plan, false).contains("No changes: the cluster matches revision new-rev."));
    assert!(to_markdown(&plan).contains("No changes: the cluster matches this revision."));
}

#[test]
fn inventory_from_plan_lists_applied_objects_in_apply_order_and_round_trips() {
    let plan = Scenario::new(full_diamond()).run();
    let inv = Inventory::from_plan(&plan);
    assert_eq!(inv.revision, "new-rev");
    assert_eq!(inv.objects.len(), 36);
    assert_eq!(inv.objects[0].component, "mariadb");
    assert_eq!(inv.objects.last().map(|e| e.component.as_str()), Some("horizon"));
    assert_eq!(inv.first_position("keystone"), Some(12));
    assert_eq!(Inventory::from_json(&inv.to_json()).unwrap(), inv);
}

/// A plan with a bit of everything, as a reviewer would see it on a pull request.
fn mixed_plan(budget_percent: u32) -> Plan {
    let keystone_old = keystone_config("[DEFAULT]\ndebug = false\n[database]\nconnection = mysql://old\n");
    let keystone_new = keystone_config("[DEFAULT]\ndebug = true\n[database]\nconnection = mysql://old\n");
    let mariadb = mk_object(
        "mariadb",
        Stage::Workload,
        "StatefulSet",
        "mariadb",
        json!({"spec": {"replicas": 3}}),
    );
    let mariadb_live = live_of(&mk_object(
        "mariadb",
        Stage::Workload,
        "StatefulSet",
        "mariadb",
        json!({"spec": {"replicas": 1}}),
    ));
    let rabbit = mk_deployment("rabbitmq", "rabbitmq", "rabbitmq:1");
    let glance = mk_deployment("glance", "glance-api", "glance:1");
    let mut s = Scenario::new(vec![keystone_new, mariadb, rabbit.clone(), glance]);
    s.live = vec![
        live_of(&keystone_old),
        mariadb_live,
        live_of(&rabbit),
        mk_live("old-dashboard", "ConfigMap", "dashboard"),
    ];
    s.topology.spec.policy.prune_budget_percent = budget_percent;
    s.run()
}

#[test]
fn markdown_reads_well_on_a_pull_request() {
    let md = to_markdown(&mixed_plan(30));
    let expected_lines = [
        "### Keelson plan for `openstack` at `new-rev`",
        "**1 to create, 2 to update, 1 unchanged, 1 to delete, 0 refused**",
        "#### Wave 1 of 4: mariadb, rabbitmq",
        "| Action | Object | Component | Stage |",
        "| --- | --- | --- | --- |",
        "| **update** | `StatefulSet openstack/mariadb` | mariadb | workload |",
        "_1 unchanged._",
        "<details><summary>Diff: StatefulSet openstack/mariadb [workload]</summary>",
        "```diff",
        "- spec.replicas: 1",
        "+ spec.replicas: 3",
        "</details>",
        "#### Wave 2 of 4: keystone",
        "| **update** | `ConfigMap openstack/keystone-config` | keystone | config |",
        "  data[\"keystone.conf\"]:",
        "-     debug = false",
        "+     debug = true",
        "#### Wave 3 of 4: glance, nova-api",
        "| **create** | `Deployment openstack/glance-api` | glance | workload |",
        "#### Wave 4 of 4: horizon",
        "_No changes in this wave (0 unchanged)._",
        "#### Deletions (after all waves, dependents first)",
        "| **delete** | `ConfigMap openstack/dashboard` | old-dashboard | config |",
    ];
    let lines: Vec<&str> = md.lines().collect();
    let mut at = 0;
    for want in expected_lines {
        let found = lines[at..].iter().position(|l| *l == want);
        assert!(found.is_some(), "missing or out of order: {want:?}\n---\n{md}");
        at += found.unwrap_or(0) + 1;
    }
    assert!(!md.contains("[!CAUTION]"));
    // The unchanged database URL line is context, not a change.
    assert!(md.contains("      connection = mysql://old"), "{md}");
    // Collapsible blocks must be balanced or the rest of the comment disappears.
    assert_eq!(md.matches("<details>").count(), md.matches("</details>").count());
    assert_eq!(md.matches("```").count() % 2, 0);
    // The hash annotation changes with every update; the JSON keeps it, people are spared it.
    assert!(!md.contains("keelson.dev/hash"), "{md}");
}

#[test]
fn blocked_plans_carry_a_warning_in_every_format() {
    let plan = mixed_plan(10);
    assert!(plan.is_blocked());
    let md = to_markdown(&plan);
    assert!(md.contains("> [!CAUTION]\n> **Blocked: nothing will be applied until the refusals below are resolved.**\n> - prune would delete 1 of 4 owned objects (~25%), over the budget of 10%"), "{md}");
    assert!(
        md.contains("| `ConfigMap openstack/dashboard` | old-dashboard | delete | yes |"),
        "{md}"
    );

    let text = to_text(&plan, false);
    assert!(
        text.contains("\nBLOCKED\nplan for revision new-rev is blocked: 1 object(s) refused"),
        "{text}"
    );
    assert!(
        text.contains("! refused ConfigMap openstack/dashboard (old-dashboard, delete): prune would delete"),
        "{text}"
    );

    let json: Value = serde_json::from_str(&to_json(&plan)).unwrap();
    assert_eq!(json["blocked"], json!(true));
    assert_eq!(json["hasChanges"], json!(true));
    assert!(
        json["blockedMessage"]
            .as_str()
            .unwrap()
            .contains("--allow-prune-over-budget")
    );
    assert_eq!(json["refusals"][0]["reason"]["type"], json!("pruneOverBudget"));
    assert_eq!(json["refusals"][0]["reason"]["budgetPercent"], json!(10));
}

#[test]
fn text_output_lists_changes_and_colours_only_on_request() {
    let plan = mixed_plan(30);
    let plain = to_text(&plan, false);
    assert!(!plain.contains('\x1b'));
    for want in [
        "Plan for topology openstack at revision new-rev",
        "1 to create, 2 to update, 1 unchanged, 1 to delete, 0 refused",
        "Wave 1 of 4: mariadb, rabbitmq",
        "    ~ update    StatefulSet openstack/mariadb [workload]",
        "        - spec.replicas: 1",
        "        + spec.replicas: 3",
        "  rabbitmq: no changes (1 unchanged)",
        "  horizon: no changes (no objects)",
        "    + create    Deployment openstack/glance-api [workload]",
        "Deletion wave 1: old-dashboard",
        "    - delete    ConfigMap openstack/dashboard [config]",
    ] {
        assert!(plain.lines().any(|l| l == want), "missing {want:?}:\n{plain}");
    }
    let coloured = to_text(&plan, true);
    assert!(coloured.contains("\x1b[32m+ create   \x1b[0m"), "{coloured}");
    assert!(coloured.contains("\x1b[31m- delete   \x1b[0m"), "{coloured}");
}

#[test]
fn json_output_is_complete_and_bodyless() {
    let plan = mixed_plan(30);
    let json: Value = serde_json::from_str(&to_json(&plan)).unwrap();
    assert_eq!(json["revision"], json!("new-rev"));
    assert_eq!(
        json["summary"],
        json!({"create": 1, "update": 2, "unchanged": 1, "delete": 1, "refused": 0})
    );
    assert_eq!(json["blocked"], json!(false));
    assert!(json.get("blockedMessage").is_none());
    let first = &json["waves"][0]["components"][0];
    assert_eq!(first["name"], json!("mariadb"));
    assert_eq!(first["changes"][0]["action"], json!("update"));
    assert_eq!(first["changes"][0]["stage"], json!("workload"));
    assert_eq!(first["changes"][0]["reference"]["apiVersion"], json!("apps/v1"));
    assert_eq!(
        first["changes"][0]["diff"][1],
        json!({"path": "spec.replicas", "before": 1, "after": 3})
    );
    assert_eq!(
        json["deletions"][0]["components"][0]["changes"][0]["action"],
        json!("delete")
    );
    assert!(!to_json(&plan).contains("\"desired\""));
}

/// nova-api at an image tag: its config, a db-sync pre-job named by the tag (as the renderer names jobs by
/// their spec) and its Deployment. `pre_job: false` leaves the job out.
fn nova_at(image: &str, conf: &str, pre_job: bool) -> Vec<RenderedObject> {
    let suffix: String = image
        .rsplit([':', '@'])
        .next()
        .unwrap_or("x")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let mut objects = vec![mk_object(
        "nova-api",
        Stage::Config,
        "ConfigMap",
        "nova-api-config",
        json!({"data": {"nova.conf": conf}}),
    )];
    if pre_job {
        objects.push(mk_object(
            "nova-api",
            Stage::PreJob,
            "Job",
            &format!("nova-api-db-sync-{suffix}"),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "db-sync", "image": image}]}}}}),
        ));
    }
    objects.push(mk_deployment("nova-api", "nova-api", image));
    objects
}

const NOVA: &str = "quay.io/openstack.kolla/nova-api";

#[test]
fn schema_downgrade_detection_table() {
    let img = |tag: &str| format!("{NOVA}:{tag}");
    let allow = |names: &[&str]| PlanOptions {
        allow_downgrade: names.iter().map(|s| s.to_string()).collect(),
        ..PlanOptions::default()
    };
    struct Case {
        name: &'static str,
        live: String,
        desired: String,
        conf_changed: bool,
        pre_job: bool,
        options: PlanOptions,
        policy_allows: bool,
        /// Blocked with this (from, to).
        blocked: Option<(&'static str, &'static str)>,
        /// Warnings expected, by kind name.
        warnings: &'static [&'static str],
    }
    let case = |name, live: String, desired: String| Case {
        name,
        live,
        desired,
        conf_changed: false,
        pre_job: true,
        options: PlanOptions::default(),
        policy_allows: false,
        blocked: None,
        warnings: &[],
    };
    let down = ("2025.2-ubuntu-noble", "2025.1-ubuntu-noble");
    let cases = vec![
        case("upgrade", img("2025.1-ubuntu-noble"), img("2025.2-ubuntu-noble")),
        Case {
            blocked: Some(down),
            ..case("downgrade", img(down.0), img(down.1))
        },
        Case {
            blocked: Some(("2025.1-ubuntu-noble", "2024.2-ubuntu-jammy")),
            ..case(
                "downgrade across distributions",
                img("2025.1-ubuntu-noble"),
                img("2024.2-ubuntu-jammy"),
            )
        },
        Case {
            conf_changed: true,
            ..case(
                "config only",
                img("2025.1-ubuntu-noble"),
                img("2025.1-ubuntu-noble"),
            )
        },
        Case {
            warnings: &["imageOrderUnknown"],
            ..case(
                "digest to digest",
                format!("{NOVA}@sha256:aaaa"),
                format!("{NOVA}@sha256:bbbb"),
            )
        },
        Case {
            warnings: &["imageOrderUnknown"],
            ..case("unparseable tag", img("2025.2-ubuntu-noble"), img("hotfix-3"))
        },
        Case {
            pre_job: false,
            ..case("no pre-jobs", img(down.0), img(down.1))
        },
        Case {
            options: allow(&["nova-api"]),
            warnings: &["schemaDowngradeAllowed"],
            ..case("allowed by component", img(down.0), img(down.1))
        },
        Case {
            options: allow(&["nova"]),
            warnings: &["schemaDowngradeAllowed"],
            ..case("allowed by project", img(down.0), img(down.1))
        },
        Case {
            options: allow(&["all"]),
            warnings: &["schemaDowngradeAllowed"],
            ..case("allowed for all", img(down.0), img(down.1))
        },
        Case {
            policy_allows: true,
            warnings: &["schemaDowngradeAllowed"],
            ..case("allowed by policy", img(down.0), img(down.1))
        },
        Case {
            options: allow(&["glance"]),
            blocked: Some(down),
            ..case("allowance for another component", img(down.0), img(down.1))
        },
    ];
    for c in cases {
        let live_conf = "[DEFAULT]\ndebug = false\n";
        let conf = if c.conf_changed {
            "[DEFAULT]\ndebug = true\n"
        } else {
            live_conf
        };
        let live: Vec<Value> = nova_at(&c.live, live_conf, c.pre_job)
            .iter()
            .map(live_of)
            .collect();
        let mut s = Scenario::new(nova_at(&c.desired, conf, c.pre_job)).live(live);
        // The old job is no longer desired; its prune is beside the point here.
        s.options = PlanOptions {
            skip_prune: true,
            ..c.options.clone()
        };
        s.topology.spec.policy.allow_schema_downgrade = c.policy_allows;
        let plan = s.run();

        let downgrade_refusals: Vec<&Refusal> = plan
            .refusals
            .iter()
            .filter(|r| matches!(r.reason, RefusalReason::SchemaDowngrade { .. }))
            .collect();
        match c.blocked {
            Some((from, to)) => {
                assert!(plan.is_blocked(), "{}", c.name);
                assert_eq!(downgrade_refusals.len(), 1, "{}", c.name);
                let r = downgrade_refusals[0];
                assert_eq!(
                    r.reason,
                    RefusalReason::SchemaDowngrade {
                        from: from.into(),
                        to: to.into()
                    },
                    "{}",
                    c.name
                );
                assert!(r.blocking);
                assert_eq!(
                    (r.reference.kind.as_str(), r.reference.name.as_str()),
                    ("Deployment", "nova-api")
                );
                assert_eq!(r.component, "nova-api");
                let message = plan.blocked_message().expect("blocked");
                for needle in [
                    "schema-downgrade risk",
                    "nova-api",
                    from,
                    to,
                    "Keelson-Allow-Downgrade: nova-api",
                    "`nova`",
                    "allowSchemaDowngrade: true",
                ] {
                    assert!(message.contains(needle), "{}: {needle:?} in {message}", c.name);
                }
                assert!(
                    plan.apply_changes().all(|ch| ch.reference.name != "nova-api"),
                    "{}: the refused Deployment is not planned",
                    c.name
                );
            }
            None => {
                assert!(!plan.is_blocked(), "{}: {:?}", c.name, plan.blocked_message());
                assert!(downgrade_refusals.is_empty(), "{}", c.name);
                // A config-only change leaves the Deployment as it is (its ConfigMap changes).
                let want = if c.live == c.desired {
                    Action::Unchanged
                } else {
                    Action::Update
                };
                assert_eq!(change(&plan, "nova-api").action, want, "{}", c.name);
            }
        }
        let kinds: Vec<String> = plan
            .warnings
            .iter()
            .map(|w| {
                serde_json::to_value(&w.kind).expect("json")["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(kinds, c.warnings, "{}", c.name);
        for w in &plan.warnings {
            assert_eq!(w.component, "nova-api");
            assert_eq!(w.reference.name, "nova-api");
        }
        if c.conf_changed {
            assert_eq!(
                change(&plan, "nova-api-config").action,
                Action::Update,
                "{}",
                c.name
            );
        }
    }
}

#[test]
fn schema_downgrade_shows_in_every_format() {
    let live: Vec<Value> = nova_at(&format!("{NOVA}:2025.2-ubuntu-noble"), "x", true)
        .iter()
        .map(live_of)
        .collect();
    let desired = nova_at(&format!("{NOVA}:2025.1-ubuntu-noble"), "x", true);
    let blocked = Scenario::new(desired.clone()).live(live.clone()).run();
    let text = to_text(&blocked, false);
    let markdown = to_markdown(&blocked);
    for out in [&text, &markdown] {
        assert!(out.contains("schema-downgrade risk: component nova-api"), "{out}");
        assert!(
            out.contains("2025.2-ubuntu-noble back to the older release 2025.1-ubuntu-noble"),
            "{out}"
        );
    }
    assert!(text.contains("BLOCKED"));
    let json: Value = serde_json::from_str(&to_json(&blocked)).expect("json");
    assert_eq!(json["blocked"], true);
    assert_eq!(
        json["refusals"][0]["reason"],
        json!({"type": "schemaDowngrade", "from": "2025.2-ubuntu-noble", "to": "2025.1-ubuntu-noble"})
    );

    let mut allowed = Scenario::new(desired).live(live);
    allowed.options.skip_prune = true;
    allowed.options.allow_downgrade.insert("nova".into());
    let plan = allowed.run();
    let text = to_text(&plan, false);
    assert!(text.contains("Warnings"), "{text}");
    assert!(
        text.contains("schema-downgrade risk allowed by commit trailer `Keelson-Allow-Downgrade: nova`"),
        "{text}"
    );
    assert!(!text.contains("BLOCKED"));
    assert!(to_markdown(&plan).contains("#### Warnings"));
    let json: Value = serde_json::from_str(&to_json(&plan)).expect("json");
    assert_eq!(json["blocked"], false);
    assert_eq!(json["warnings"][0]["kind"]["type"], "schemaDowngradeAllowed");
    assert_eq!(json["warnings"][0]["kind"]["from"], "2025.2-ubuntu-noble");
}

#[test]
fn only_components_keeps_their_changes_and_drops_deletions() {
    // Everything is live, mariadb's Deployment drifted, and an old component is gone from Git.
    let desired = full_diamond();
    let mut s = Scenario::new(desired.clone());
    s.live = desired.iter().map(live_of).collect();
    for live in &mut s.live {
        if live["kind"] == "Deployment" && live["metadata"]["name"] == "mariadb" {
            live["spec"]["replicas"] = json!(7);
        }
    }
    s.live.push(mk_live("old-cache", "ConfigMap", "old-cache-config"));
    s.options.allow_prune_over_budget = true;
    let full = s.run();
    assert_eq!(full.summary.delete, 1);

    let keep: BTreeSet<String> = ["mariadb", "rabbitmq"].iter().map(|s| s.to_string()).collect();
    let part = full.only_components(&keep);
    let names: Vec<&str> = part
        .waves
        .iter()
        .flat_map(|w| &w.components)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["mariadb", "rabbitmq"]);
    assert_eq!(part.waves.len(), full.waves.len(), "wave indices are kept");
    assert!(part.deletions.is_empty());
    assert_eq!(part.summary.delete, 0);
    assert_eq!(part.summary.update, 1, "{:?}", part.summary);
    assert_eq!(part.summary.unchanged, 11);
    let updated: Vec<String> = part
        .apply_changes()
        .filter(|c| c.action == Action::Update)
        .map(|c| c.reference.to_string())
        .collect();
    assert_eq!(updated, [format!("Deployment {NS}/mariadb")]);
}
