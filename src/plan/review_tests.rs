//! A change planned against the base commit's rendering: restarts and their reasons, Jobs and migrations,
//! the graph change, and the formats.

use serde_json::{Value, json};

use super::fixtures::*;
use super::*;
use crate::object::ANNOTATION_CONFIG_HASH;
use crate::render::{Rendered, RenderedObject, Stage};
use crate::topology::{JobSpec, Topology, WaitFor};

fn side<'a>(topology: &'a Topology, rendered: &'a Rendered, revision: &'a str) -> Side<'a> {
    Side {
        topology,
        rendered,
        revision,
    }
}

fn rendered(objects: Vec<RenderedObject>) -> Rendered {
    Rendered { objects }
}

/// keystone's ConfigMap with Kolla's config.json and one file.
fn keystone_config(conf: &str, extra: &[(&str, &str)]) -> RenderedObject {
    let config_json = json!({"command": "apache2", "config_files": [
        {"source": "/var/lib/kolla/config_files/keystone.conf", "dest": "/etc/keystone/keystone.conf",
         "owner": "keystone", "perm": "0600"}]})
    .to_string();
    let mut data = serde_json::Map::new();
    data.insert("config.json".into(), json!(config_json));
    data.insert("keystone.conf".into(), json!(conf));
    for (k, v) in extra {
        data.insert(k.to_string(), json!(v));
    }
    mk_object(
        "keystone",
        Stage::Config,
        "ConfigMap",
        "keystone-config",
        json!({"data": data}),
    )
}

/// keystone's Deployment: reads its ConfigMap as a volume and a Secret through env.
fn keystone_workload(image: &str, config_hash: &str, env: Value, replicas: u64) -> RenderedObject {
    mk_object(
        "keystone",
        Stage::Workload,
        "Deployment",
        "keystone",
        json!({"spec": {"replicas": replicas, "template": {
        "metadata": {"annotations": {ANNOTATION_CONFIG_HASH: config_hash}},
        "spec": {
            "containers": [{"name": "keystone", "image": image, "env": env,
                "volumeMounts": [{"name": "kolla-config", "mountPath": "/var/lib/kolla/config_files"}]}],
            "volumes": [{"name": "kolla-config", "configMap": {"name": "keystone-config", "items": [
                {"key": "config.json", "path": "config.json"}, {"key": "keystone.conf", "path": "keystone.conf"}]}}]
        }}}}),
    )
}

fn db_env() -> Value {
    json!([{"name": "OS_DATABASE__CONNECTION",
            "valueFrom": {"secretKeyRef": {"name": "keystone", "key": "database-connection"}}},
           {"name": "OS_DEBUG", "value": "false"}])
}

const OLD: &str = "quay.io/openstack.kolla/keystone:2025.1-ubuntu-noble";
const NEW: &str = "quay.io/openstack.kolla/keystone:2025.2-ubuntu-noble";

fn review(base: &[RenderedObject], head: &[RenderedObject], topology: &Topology) -> (Plan, Impact) {
    let (b, h) = (rendered(base.to_vec()), rendered(head.to_vec()));
    plan_change(
        Some(&side(topology, &b, "base-rev")),
        &side(topology, &h, "head-rev"),
        &PlanOptions::default(),
    )
    .expect("plan")
}

#[test]
fn an_image_bump_restarts_the_workload_and_names_both_tags() {
    let topology = diamond();
    let base = [keystone_workload(OLD, "h1", db_env(), 3)];
    let head = [keystone_workload(NEW, "h1", db_env(), 3)];
    let (plan, impact) = review(&base, &head, &topology);
    assert_eq!(plan.summary.update, 1);
    let w = &impact.workloads[0];
    assert_eq!(w.effect, WorkloadEffect::Restart);
    assert_eq!(w.pods, PodCount::Replicas { count: 3, from: None });
    assert_eq!(
        w.reasons,
        vec![RestartReason::Image {
            container: "keystone".into(),
            from: Some(OLD.into()),
            to: Some(NEW.into())
        }]
    );
    assert_eq!(impact.components.touched, vec!["keystone"]);
    assert_eq!(impact.components.untouched.len(), 5);
}

#[test]
fn a_config_file_change_is_named_by_where_the_container_reads_it() {
    let topology = diamond();
    let base = [
        keystone_config("[DEFAULT]\ndebug = false\n", &[]),
        keystone_workload(OLD, "h1", db_env(), 2),
    ];
    let head = [
        keystone_config("[DEFAULT]\ndebug = true\n", &[]),
        keystone_workload(OLD, "h2", db_env(), 2),
    ];
    let (_, impact) = review(&base, &head, &topology);
    assert_eq!(
        impact.workloads[0].reasons,
        vec![RestartReason::ConfigFile {
            config_map: "keystone-config".into(),
            key: "keystone.conf".into(),
            file: "/etc/keystone/keystone.conf".into(),
            change: FileChange::Changed,
        }]
    );
}

#[test]
fn removed_env_variables_and_config_keys_are_reported_offline() {
    let topology = diamond();
    let base = [
        keystone_config("a", &[("policy.yaml", "x: y\n")]),
        keystone_workload(OLD, "h1", db_env(), 1),
    ];
    let only_db = json!([db_env()[0].clone()]);
    let head = [
        keystone_config("a", &[]),
        keystone_workload(OLD, "h2", only_db, 1),
    ];
    let (plan, impact) = review(&base, &head, &topology);
    let config = plan
        .apply_changes()
        .find(|c| c.reference.kind == "ConfigMap")
        .expect("configmap");
    assert!(
        config
            .diff
            .iter()
            .any(|d| d.path == "data[\"policy.yaml\"]" && d.after.is_none()),
        "{:?}",
        config.diff
    );
    let reasons = &impact.workloads[0].reasons;
    assert!(
        reasons.contains(&RestartReason::ConfigFile {
            config_map: "keystone-config".into(),
            key: "policy.yaml".into(),
            file: "policy.yaml".into(),
            change: FileChange::Removed,
        }),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&RestartReason::Env {
            container: "keystone".into(),
            variables: vec!["OS_DEBUG".into()]
        }),
        "{reasons:?}"
    );
}

#[test]
fn a_rotated_secret_restarts_its_readers_without_showing_its_value() {
    let topology = diamond();
    let secret = |value: &str| {
        mk_object(
            "keystone",
            Stage::Config,
            "Secret",
            "keystone",
            json!({"data": {"database-connection": value}}),
        )
    };
    let with_secret_hash = |hash: &str| {
        let mut w = keystone_workload(OLD, "h1", db_env(), 2);
        w.body["spec"]["template"]["metadata"]["annotations"]["keelson.dev/secret-hash"] = json!(hash);
        w
    };
    let base = [secret("b2xkLXNlY3JldA=="), with_secret_hash("s1")];
    let head = [secret("bmV3LXNlY3JldA=="), with_secret_hash("s2")];
    let (plan, impact) = review(&base, &head, &topology);
    assert_eq!(
        impact.workloads[0].reasons,
        vec![RestartReason::SecretRotated {
            secrets: vec!["keystone".into()],
            annotation: "keelson.dev/secret-hash".into()
        }]
    );
    let review = Review {
        base: None,
        head: RevisionInfo::default(),
        plan,
        impact,
        graph: None,
        change: None,
        outside_change: Vec::new(),
        offline: true,
    };
    for text in [
        review_to_text(&review, false),
        review_to_markdown(&review),
        review_to_json(&review),
    ] {
        assert!(text.contains("keystone"), "{text}");
        assert!(
            !text.contains("bmV3LXNlY3JldA==") && !text.contains("b2xkLXNlY3JldA=="),
            "{text}"
        );
    }
}

#[test]
fn scaling_restarts_nothing_and_a_daemonset_counts_one_pod_per_node() {
    let topology = mk_topology(&[("keystone", &[]), ("nova-compute", &[])]);
    let daemonset = |image: &str| {
        mk_object(
            "nova-compute",
            Stage::Workload,
            "DaemonSet",
            "nova-compute",
            json!({"spec": {"template": {"spec": {
                "nodeSelector": {"openstack.org/compute": "enabled"},
                "containers": [{"name": "nova-compute", "image": image}]}}}}),
        )
    };
    let base = [
        keystone_workload(OLD, "h1", db_env(), 2),
        daemonset("nova-compute:2025.1"),
    ];
    let head = [
        keystone_workload(OLD, "h1", db_env(), 4),
        daemonset("nova-compute:2025.2"),
    ];
    let (_, impact) = review(&base, &head, &topology);
    let by_name = |n: &str| impact.workloads.iter().find(|w| w.reference.name == n).expect(n);
    let keystone = by_name("keystone");
    assert_eq!(keystone.effect, WorkloadEffect::Scale);
    assert_eq!(
        keystone.pods,
        PodCount::Replicas {
            count: 4,
            from: Some(2)
        }
    );
    assert!(keystone.reasons.is_empty());
    let compute = by_name("nova-compute");
    assert_eq!(compute.effect, WorkloadEffect::Restart);
    assert_eq!(
        compute.pods,
        PodCount::PerNode {
            node_selector: [("openstack.org/compute".to_string(), "enabled".to_string())].into()
        }
    );
    assert_eq!(impact.restarting_daemonsets(), 1);
    assert_eq!(impact.restarting_replicas(), 0);
}

#[test]
fn a_changed_configmap_whose_readers_do_not_restart_is_a_warning() {
    let topology = diamond();
    // The config hash did not move: a ConfigMap outside Keelson's hashing (a raw manifest, say).
    let base = [
        keystone_config("a", &[]),
        keystone_workload(OLD, "h1", db_env(), 1),
    ];
    let head = [
        keystone_config("b", &[]),
        keystone_workload(OLD, "h1", db_env(), 1),
    ];
    let (_, impact) = review(&base, &head, &topology);
    assert!(impact.workloads.is_empty(), "{:?}", impact.workloads);
    assert_eq!(impact.warnings.len(), 1);
    assert!(matches!(
        impact.warnings[0].kind,
        ImpactWarningKind::StaleConsumer { .. }
    ));
}

fn job(component: &str, name: &str, stage: Stage, image: &str, hash: &str) -> RenderedObject {
    mk_object(
        component,
        stage,
        "Job",
        &format!("{component}-{name}-{hash}"),
        json!({"spec": {"template": {
            "metadata": {"labels": {"keelson.dev/job": name}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": name, "image": image}]}}}}),
    )
}

fn with_jobs(mut topology: Topology, component: &str, jobs: &[(&str, &str, &str)]) -> Topology {
    let c = topology.components.get_mut(component).expect("component");
    c.spec.jobs = jobs
        .iter()
        .map(|(name, phase, command)| {
            serde_json::from_value::<JobSpec>(json!({"name": name, "phase": phase, "command": command}))
                .expect("job")
        })
        .collect();
    topology
}

#[test]
fn a_new_job_hash_runs_the_job_again_and_migrations_are_named() {
    let topology = with_jobs(
        diamond(),
        "keystone",
        &[
            ("db-sync", "pre", "keystone-manage db_sync --expand"),
            ("db-contract", "post", "keystone-manage db_sync --contract"),
            ("bootstrap", "post", "keystone-manage bootstrap"),
        ],
    );
    // Unchanged objects keep the one deletion inside the prune budget.
    let unchanged: Vec<RenderedObject> = (0..4)
        .map(|i| {
            mk_object(
                "mariadb",
                Stage::Config,
                "ConfigMap",
                &format!("cm-{i}"),
                json!({}),
            )
        })
        .collect();
    let mut base = vec![
        job("keystone", "db-sync", Stage::PreJob, OLD, "aaaa1111"),
        job("keystone", "bootstrap", Stage::PostJob, OLD, "bbbb1111"),
    ];
    let mut head = vec![
        job("keystone", "db-sync", Stage::PreJob, NEW, "aaaa2222"),
        job("keystone", "db-contract", Stage::PostJob, NEW, "cccc2222"),
        job("keystone", "bootstrap", Stage::PostJob, OLD, "bbbb1111"),
    ];
    base.extend(unchanged.clone());
    head.extend(unchanged);
    let (plan, impact) = review(&base, &head, &topology);
    assert_eq!(plan.summary.delete, 1, "the replaced run is pruned");
    let sync = &impact.jobs[0];
    assert_eq!(sync.job, "db-sync");
    assert_eq!(sync.migration, Some(MigrationKind::Expand));
    assert_eq!(sync.replaces.as_deref(), Some("keystone-db-sync-aaaa1111"));
    assert!(
        matches!(&sync.reasons[..], [RestartReason::Image { .. }]),
        "{:?}",
        sync.reasons
    );
    let contract = &impact.jobs[1];
    assert_eq!(contract.migration, Some(MigrationKind::Contract));
    assert_eq!(contract.replaces, None);
    assert_eq!(impact.jobs.len(), 2, "an unchanged job does not run");
    assert!(
        impact
            .warnings
            .iter()
            .any(|w| w.kind == ImpactWarningKind::ContractPhase && w.message.contains("db-contract"))
    );
}

#[test]
fn the_graph_change_lists_new_edges_and_moved_waves() {
    let base = mk_topology(&[
        ("mariadb", &[]),
        ("keystone", &["mariadb"]),
        ("glance", &["mariadb"]),
    ]);
    let head = mk_topology(&[
        ("mariadb", &[]),
        ("keystone", &["mariadb"]),
        ("glance", &["keystone"]),
        ("horizon", &["glance"]),
    ]);
    let change = graph_change(Some(&base), &head);
    assert_eq!(change.added_components, vec!["horizon"]);
    assert_eq!(
        change.added_edges,
        vec![
            Edge {
                component: "glance".into(),
                dependency: "keystone".into(),
                wait_for: WaitFor::Healthy,
            },
            Edge {
                component: "horizon".into(),
                dependency: "glance".into(),
                wait_for: WaitFor::Healthy,
            }
        ]
    );
    assert_eq!(
        change.removed_edges,
        vec![Edge {
            component: "glance".into(),
            dependency: "mariadb".into(),
            wait_for: WaitFor::Healthy,
        }]
    );
    assert_eq!(
        change.moved,
        vec![WaveMove {
            component: "glance".into(),
            from: 2,
            to: 3
        }]
    );
    assert_eq!(change.waves.len(), 4);
}

#[test]
fn the_markdown_comment_starts_with_the_summary_and_stays_under_the_limit() {
    let topology = diamond();
    // Many large config changes: far more diff text than a comment may hold.
    let big = |v: &str| {
        (0..400)
            .map(|i| format!("option_{i} = {v}{i}\n"))
            .collect::<String>()
    };
    let mut base = Vec::new();
    let mut head = Vec::new();
    for i in 0..40 {
        let name = format!("cm-{i}");
        base.push(mk_object(
            "glance",
            Stage::Config,
            "ConfigMap",
            &name,
            json!({"data": {"f": big("a")}}),
        ));
        head.push(mk_object(
            "glance",
            Stage::Config,
            "ConfigMap",
            &name,
            json!({"data": {"f": big("b")}}),
        ));
    }
    let (plan, impact) = review(&base, &head, &topology);
    let review = Review {
        base: Some(RevisionInfo {
            revision: "base-rev".into(),
            ..RevisionInfo::default()
        }),
        head: RevisionInfo {
            revision: "head-rev".into(),
            ..RevisionInfo::default()
        },
        plan,
        impact,
        graph: Some(graph_change(Some(&topology), &topology)),
        change: None,
        outside_change: Vec::new(),
        offline: true,
    };
    let md = review_to_markdown(&review);
    assert!(md.len() <= COMMENT_LIMIT, "{} characters", md.len());
    let first = md.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("### Keelson plan: 1 component touched, 5 untouched"),
        "{first}"
    );
    assert!(md.contains("left out"), "diffs were shortened and say so");
    // A limit too small for the objects section: it is left out whole and the note says so.
    let tiny = review_markdown::review_to_markdown_within(&review, 3_000);
    assert!(tiny.len() <= 3_000, "{}", tiny.len());
    assert!(tiny.contains("Truncated to fit"), "{tiny}");
    assert_eq!(
        tiny.matches("<details").count(),
        tiny.matches("</details>").count()
    );
}

#[test]
fn trailers_that_relax_a_guard_count_only_on_a_verified_commit_when_verification_is_on() {
    let trailers = &[("Keelson-Allow-Downgrade".to_string(), "nova".to_string())][..];
    let off = PlanOptions::default();
    assert!(
        off.with_commit_trailers(trailers, false)
            .allow_downgrade
            .contains("nova")
    );
    let on = PlanOptions {
        trailers_need_signature: true,
        ..PlanOptions::default()
    };
    assert!(
        on.with_commit_trailers(trailers, false)
            .allow_downgrade
            .is_empty()
    );
    assert!(
        on.with_commit_trailers(trailers, true)
            .allow_downgrade
            .contains("nova")
    );
    // Flags are the operator's own allowance, not the commit's: they hold either way.
    let flagged = PlanOptions {
        allow_downgrade: ["glance".to_string()].into(),
        ..on
    };
    assert_eq!(
        flagged.with_commit_trailers(trailers, false).allow_downgrade,
        ["glance".to_string()].into()
    );
}
