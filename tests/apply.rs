//! One reconcile pass at a time over the example OpenStack topology, against the simulated cluster over
//! real HTTP: order, idempotence, config changes, failure isolation, prune and its safety rules. The
//! assertions read the simulator's request log and the live objects through the API.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

mod support;
use std::time::Duration;
use support::{SimEnv, edit, writes};

use keelson::cluster::{ApplyOptions, Kube};
use keelson::reconciler::{self, PassError, PassOutcome, PassSettings, Prepared};
use keelson::rollout::{ComponentState, ProgressEvent};
use keelson::sim::{RequestRecord, SimOptions};
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
use keelson::topology::graph;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NS: &str = "openstack";

fn copy_example() -> tempfile::TempDir {
    support::topology_copy()
}

fn remove_component(dir: &Path, name: &str) {
    std::fs::remove_file(dir.join(format!("services/{name}.yaml"))).expect("remove service");
}

/// A cluster shaped as example-repo expects (labelled nodes, any Secret it reads that Keelson does not
/// make), its request log clear.
async fn env(options: SimOptions) -> SimEnv {
    let env = SimEnv::start(support::example_nodes(options)).await;
    support::create_example_secrets(&env.kube).await;
    env.sim.clear_request_log();
    env
}

/// Workloads and Jobs ready 150ms after a change.
fn fast_sim() -> SimOptions {
    support::sim_options(Duration::from_millis(150))
}

fn settings() -> PassSettings {
    PassSettings {
        poll_interval: Duration::from_millis(50),
        ..PassSettings::default()
    }
}

fn snapshot(dir: &Path) -> Snapshot {
    Snapshot::from_dir(dir, DEFAULT_MAX_FILE_SIZE).expect("snapshot")
}

/// One whole pass; the progress events in the order they happened.
async fn pass(
    kube: &Kube,
    dir: &Path,
    settings: &PassSettings,
) -> (Prepared, Result<PassOutcome, PassError>, Vec<ProgressEvent>) {
    let prepared = reconciler::prepare(kube, &snapshot(dir), settings)
        .await
        .expect("prepare");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let result = reconciler::execute(kube, &prepared, settings, CancellationToken::new(), Some(tx)).await;
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    (prepared, result, events)
}

/// (resource, name) -> component for every object of a prepared pass (desired and to-be-deleted).
fn owners(prepared: &Prepared) -> BTreeMap<(String, String), String> {
    let plural = |kind: &str| format!("{}s", kind.to_lowercase());
    let mut map = BTreeMap::new();
    for wave in prepared
        .plan
        .waves
        .iter()
        .map(|w| &w.components)
        .chain(prepared.plan.deletions.iter().map(|d| &d.components))
    {
        for component in wave {
            for change in &component.changes {
                map.insert(
                    (plural(&change.reference.kind), change.reference.name.clone()),
                    component.name.clone(),
                );
            }
        }
    }
    map
}

fn owner_of<'a>(owners: &'a BTreeMap<(String, String), String>, record: &RequestRecord) -> Option<&'a str> {
    owners
        .get(&(record.resource.clone(), record.name.clone().unwrap_or_default()))
        .map(String::as_str)
}

fn written_components(prepared: &Prepared, log: &[RequestRecord]) -> BTreeSet<String> {
    let owners = owners(prepared);
    writes(log)
        .iter()
        .filter(|r| r.resource != "namespaces")
        .map(|r| {
            let key = (r.resource.clone(), r.name.clone().unwrap_or_default());
            owners
                .get(&key)
                .cloned()
                .unwrap_or_else(|| format!("(not a component object: {key:?})"))
        })
        .collect()
}

async fn generations(kube: &Kube) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for kind in ["deployments", "statefulsets", "daemonsets"] {
        let list = get_json(kube, &format!("/apis/apps/v1/namespaces/{NS}/{kind}")).await;
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            let name = item["metadata"]["name"].as_str().unwrap_or_default().to_string();
            out.insert(
                format!("{kind}/{name}"),
                item["metadata"]["generation"].as_i64().unwrap_or(-1),
            );
        }
    }
    out
}

async fn get_json(kube: &Kube, path: &str) -> Value {
    let request = http::Request::get(path).body(Vec::new()).expect("request");
    kube.client().request::<Value>(request).await.expect("GET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_are_healthy_before_dependents_are_written_and_a_second_pass_writes_nothing() {
    let env = env(fast_sim()).await;
    let dir = copy_example();
    let (prepared, result, events) = pass(&env.kube, dir.path(), &settings()).await;
    let outcome = result.expect("pass");
    assert!(outcome.rollout.converged(), "{:#?}", outcome.rollout.components);
    assert!(outcome.inventory_recorded);

    // Every object of every dependency is healthy (the component finished Healthy) before any object of
    // a dependent is written: the progress stream orders the two, the request log the writes.
    let position = |wanted: &dyn Fn(&ProgressEvent) -> bool| events.iter().position(wanted);
    let log = env.sim.request_log();
    let owners = owners(&prepared);
    let write_seqs = |component: &str| -> Vec<u64> {
        writes(&log)
            .iter()
            .filter(|r| owner_of(&owners, r) == Some(component))
            .map(|r| r.seq)
            .collect()
    };
    let first_write = |component: &str| write_seqs(component).into_iter().min();
    let last_write = |component: &str| write_seqs(component).into_iter().max();
    let mut checked = 0;
    for (name, component) in &prepared.topology.components {
        let started = position(
            &|e| matches!(e, ProgressEvent::ComponentStarted { component, .. } if component == name),
        )
        .unwrap_or_else(|| panic!("{name} never started"));
        // Edges that wait for less than health (`for: SameNode`, `for: Service`) are pinned by tests/ordering.rs.
        let healthy_edges = component
            .spec
            .depends_on
            .iter()
            .filter(|d| d.wait_for.is_healthy());
        for dependency in healthy_edges.map(|d| d.component.clone()) {
            let dependency = &dependency;
            let healthy = position(&|e| {
                matches!(e, ProgressEvent::ComponentFinished { component, state: ComponentState::Healthy, .. } if component == dependency)
            })
            .unwrap_or_else(|| panic!("{dependency} never became healthy"));
            assert!(
                healthy < started,
                "{name} started before its dependency {dependency} was healthy"
            );
            let (Some(dep_last), Some(own_first)) = (last_write(dependency), first_write(name)) else {
                panic!("{name} or {dependency} was never written");
            };
            assert!(
                dep_last < own_first,
                "{name} was written before {dependency}'s last write"
            );
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} dependency edges checked");

    // Inside a component: config before Services before pre-jobs before the workload before post-jobs.
    let keystone: Vec<String> = writes(&log)
        .iter()
        .filter(|r| {
            owners
                .get(&(r.resource.clone(), r.name.clone().unwrap_or_default()))
                .map(String::as_str)
                == Some("keystone")
        })
        .map(|r| r.resource.clone())
        .collect();
    let order = |resource: &str| keystone.iter().position(|r| r == resource).unwrap_or(usize::MAX);
    assert!(order("configmaps") < order("services"), "{keystone:?}");
    assert!(order("services") < order("jobs"), "{keystone:?}");
    let workload = order("deployments");
    assert!(
        keystone.iter().take(workload).filter(|r| *r == "jobs").count() >= 1,
        "pre-job before workload: {keystone:?}"
    );
    // nova-compute's post-job (discover_hosts) comes after its DaemonSet.
    let nova_compute: Vec<String> = writes(&log)
        .iter()
        .filter(|r| {
            owners
                .get(&(r.resource.clone(), r.name.clone().unwrap_or_default()))
                .map(String::as_str)
                == Some("nova-compute")
        })
        .map(|r| r.resource.clone())
        .collect();
    let daemonset = nova_compute
        .iter()
        .position(|r| r == "daemonsets")
        .unwrap_or(usize::MAX);
    assert!(
        nova_compute.iter().skip(daemonset).any(|r| r == "jobs"),
        "post-job after workload: {nova_compute:?}"
    );

    // Idempotence: the same commit on the same cluster sends zero writes.
    env.sim.clear_request_log();
    let (prepared, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    assert!(result.expect("second pass").rollout.converged());
    assert!(
        !prepared.plan.has_changes(),
        "{}",
        keelson::plan::to_text(&prepared.plan, false)
    );
    let log = env.sim.request_log();
    assert_eq!(writes(&log).len(), 0, "second pass wrote: {:#?}", writes(&log));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_earns_its_health_on_the_strict_simulator_pods_on_matching_nodes_claims_bound() {
    use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
    let env = env(fast_sim()).await;
    let dir = copy_example();
    let (_, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    let outcome = result.expect("pass");
    assert!(outcome.rollout.converged(), "{:#?}", outcome.rollout.components);

    let nodes: Vec<Node> = kube::Api::all(env.kube.client().clone())
        .list(&Default::default())
        .await
        .expect("nodes")
        .items;
    let labels_of = |node: &str| {
        nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(node))
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default()
    };
    let pods: Vec<Pod> = kube::Api::namespaced(env.kube.client().clone(), NS)
        .list(&Default::default())
        .await
        .expect("pods")
        .items;
    assert!(pods.len() > 40, "{} Pods", pods.len());
    let mut per_workload: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let status = pod.status.clone().unwrap_or_default();
        let node = spec.node_name.clone().unwrap_or_default();
        let job = pod
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("job-name"));
        let ready = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if job {
            assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{name}");
        } else {
            assert!(
                status.phase.as_deref() == Some("Running") && ready,
                "{name} is not running and ready"
            );
            let service = pod.metadata.labels.clone().unwrap_or_default()["keelson.dev/service"].clone();
            per_workload.entry(service).or_default().insert(node.clone());
        }
        let node_labels = labels_of(&node);
        for (k, v) in spec.node_selector.unwrap_or_default() {
            assert_eq!(node_labels.get(&k), Some(&v), "{name} on {node} lacks {k}={v}");
        }
    }
    // DaemonSets run on exactly the nodes their selector matches.
    let on = |s: &[&str]| s.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(per_workload["nova-compute"], on(&["node-2", "node-3"]));
    assert_eq!(per_workload["neutron-l3-agent"], on(&["node-1"]));
    assert_eq!(per_workload["cinder-volume"], on(&["node-3"]));
    assert_eq!(
        per_workload["openvswitch-vswitchd"],
        on(&["node-1", "node-2", "node-3"])
    );

    // Every claim binds on the WaitForFirstConsumer default class, ReadWriteOnce: the StatefulSets' through
    // their first Pod, the Deployments' through their Pods and Jobs, all of them on one node each.
    let claims: Vec<PersistentVolumeClaim> = kube::Api::namespaced(env.kube.client().clone(), NS)
        .list(&Default::default())
        .await
        .expect("claims")
        .items;
    assert!(claims.len() >= 4, "{} claims", claims.len());
    for claim in &claims {
        let name = claim.metadata.name.clone().unwrap_or_default();
        let spec = claim.spec.clone().unwrap_or_default();
        assert_eq!(spec.storage_class_name.as_deref(), Some("standard"), "{name}");
        assert_eq!(
            spec.access_modes,
            Some(vec!["ReadWriteOnce".to_string()]),
            "{name}"
        );
        assert_eq!(
            claim.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Bound"),
            "{name}"
        );
    }
    let keystone_nodes = &per_workload["keystone"];
    assert_eq!(
        keystone_nodes.len(),
        1,
        "keystone's fernet keys pin both replicas to one node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_the_topology_reads_but_nobody_makes_keeps_its_component_from_starting() {
    let env = env(fast_sim()).await;
    let dir = copy_example();
    // Horizon reads a Secret that `spec.secrets` does not declare and no operator created.
    edit(
        dir.path(),
        "services/horizon.yaml",
        "    secretKeyRef:\n      name: horizon\n",
        "    secretKeyRef:\n      name: horizon-sso\n",
    );
    let (prepared, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    let outcome = result.expect("pass runs");
    assert!(!outcome.rollout.converged());
    let blocked = graph::dependents(&prepared.topology, "horizon");
    for component in &outcome.rollout.components {
        let expected = if component.name == "horizon" {
            ComponentState::Failed
        } else if blocked.contains(&component.name) {
            ComponentState::Blocked
        } else {
            ComponentState::Healthy
        };
        assert_eq!(
            component.state, expected,
            "{}: {}",
            component.name, component.reason
        );
    }
    let horizon = outcome
        .rollout
        .components
        .iter()
        .find(|c| c.name == "horizon")
        .unwrap();
    // Pre-flight: refused before any write, naming the Secret and where it is read.
    assert!(
        horizon
            .reason
            .starts_with("not started: referenced Secret \"horizon-sso\" (Deployment openstack/horizon "),
        "{}",
        horizon.reason
    );
    let owners = owners(&prepared);
    let log = env.sim.request_log();
    let horizon_writes: Vec<_> = writes(&log)
        .into_iter()
        .filter(|r| owner_of(&owners, r) == Some("horizon"))
        .collect();
    assert!(horizon_writes.is_empty(), "{horizon_writes:#?}");
    let pods: Vec<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(env.kube.client().clone(), NS)
        .list(&kube::api::ListParams::default().labels("keelson.dev/service=horizon"))
        .await
        .expect("pods")
        .items;
    assert!(pods.is_empty(), "no Pod was made to wait for a Secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_writes_only_that_component_and_rolls_only_its_pods() {
    let env = env(fast_sim()).await;
    let dir = copy_example();
    let (_, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    assert!(result.expect("first pass").rollout.converged());
    let before = generations(&env.kube).await;

    edit(
        dir.path(),
        "config/keystone/keystone.conf",
        "[token]",
        "[token]\n# rotated by change 1234",
    );
    env.sim.clear_request_log();
    let (prepared, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    assert!(result.expect("second pass").rollout.converged());

    let log = env.sim.request_log();
    // Besides keystone's objects, only the inventory: it records the revision of every successful pass.
    let inventory = format!(
        "(not a component object: {:?})",
        ("configmaps", "keelson-inventory-openstack")
    );
    assert_eq!(
        written_components(&prepared, &log),
        BTreeSet::from(["keystone".to_string(), inventory])
    );
    let after = generations(&env.kube).await;
    for (workload, generation) in &before {
        if workload == "deployments/keystone" {
            assert_eq!(after[workload], generation + 1, "keystone's pods roll");
        } else {
            assert_eq!(after.get(workload), Some(generation), "{workload} must not roll");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpullable_image_fails_its_component_blocks_exactly_its_dependents_and_the_rest_finishes() {
    let env = env(SimOptions {
        unpullable_images: vec!["*/glance-api:*".into()],
        ..fast_sim()
    })
    .await;
    let dir = copy_example();
    edit(
        dir.path(),
        "services/glance-api.yaml",
        "  image: glance-api\n",
        "  image: glance-api\n  healthTimeout: 2s\n",
    );
    // The db-sync Job runs the same image; its own timeout is honoured, so it is shortened too.
    edit(
        dir.path(),
        "services/glance-api.yaml",
        "timeout: 15m",
        "timeout: 2s",
    );
    let (prepared, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    let outcome = result.expect("pass runs");
    assert!(!outcome.rollout.converged());
    assert!(
        !outcome.inventory_recorded,
        "a failed pass must not record the inventory"
    );

    let expected_blocked = graph::dependents(&prepared.topology, "glance-api");
    assert!(
        !expected_blocked.is_empty(),
        "the example wires dependents to glance-api"
    );
    for component in &outcome.rollout.components {
        let expected = if component.name == "glance-api" {
            ComponentState::Failed
        } else if expected_blocked.contains(&component.name) {
            ComponentState::Blocked
        } else {
            ComponentState::Healthy
        };
        assert_eq!(
            component.state, expected,
            "{}: {}",
            component.name, component.reason
        );
    }
    // Blocked components were never written.
    let written = written_components(&prepared, &env.sim.request_log());
    assert!(
        written.is_disjoint(&expected_blocked),
        "blocked components written: {written:?}"
    );
    assert!(written.contains("cinder-volume"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_component_prunes_its_objects_dependents_first_and_leaves_unowned_objects_alone() {
    let env = env(fast_sim()).await;
    let dir = copy_example();
    let (_, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    assert!(result.expect("first pass").rollout.converged());

    // Someone takes heat-api's Service over by hand: it loses Keelson's labels and must survive the prune.
    let service_path = format!("/api/v1/namespaces/{NS}/services/heat-api");
    let patch = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "someone-else", "keelson.dev/topology": null}}});
    let request = http::Request::patch(service_path.as_str())
        .header("Content-Type", "application/merge-patch+json")
        .body(serde_json::to_vec(&patch).expect("json"))
        .expect("request");
    env.kube
        .client()
        .request::<Value>(request)
        .await
        .expect("relabel");

    remove_component(dir.path(), "heat-engine");
    remove_component(dir.path(), "heat-api");
    env.sim.clear_request_log();
    let (prepared, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    let outcome = result.expect("prune pass");
    assert!(outcome.rollout.converged(), "{:#?}", outcome.rollout);

    let log = env.sim.request_log();
    let deletes: Vec<(String, String)> = writes(&log)
        .iter()
        .filter(|r| r.verb == "delete")
        .map(|r| (r.resource.clone(), r.name.clone().unwrap_or_default()))
        .collect();
    let owners = owners(&prepared);
    let deleted_components: Vec<&str> = deletes
        .iter()
        .filter_map(|k| owners.get(k).map(String::as_str))
        .collect();
    assert!(!deletes.is_empty());
    assert!(
        deleted_components
            .iter()
            .all(|c| *c == "heat-api" || *c == "heat-engine"),
        "{deletes:?}"
    );
    let last_engine = deleted_components
        .iter()
        .rposition(|c| *c == "heat-engine")
        .expect("heat-engine pruned");
    let first_api = deleted_components
        .iter()
        .position(|c| *c == "heat-api")
        .expect("heat-api pruned");
    assert!(
        last_engine < first_api,
        "dependents are deleted before their dependencies: {deletes:?}"
    );
    assert!(
        !deletes.contains(&("services".into(), "heat-api".into())),
        "the unowned Service was deleted"
    );
    // Inside heat-api, reverse stage order: workload before its config.
    let api_deletes: Vec<&str> = deletes
        .iter()
        .filter(|k| owners.get(*k).map(String::as_str) == Some("heat-api"))
        .map(|k| k.0.as_str())
        .collect();
    let pos = |r: &str| api_deletes.iter().position(|x| *x == r).unwrap_or(usize::MAX);
    assert!(pos("deployments") < pos("configmaps"), "{api_deletes:?}");
    // Only deletes were written.
    assert!(
        writes(&log).iter().all(|r| r.verb == "delete"
            || r.resource == "configmaps"
                && r.name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("keelson-inventory"))),
        "{:#?}",
        writes(&log)
    );

    let service = get_json(&env.kube, &service_path).await;
    assert_eq!(
        service["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "someone-else"
    );
    let deployments = get_json(&env.kube, &format!("/apis/apps/v1/namespaces/{NS}/deployments")).await;
    let names: BTreeSet<&str> = deployments["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    assert!(!names.contains("heat-api") && !names.contains("heat-engine"));
    assert!(names.contains("keystone"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_over_the_prune_budget_is_refused_and_changes_nothing_until_allowed() {
    let env = env(fast_sim()).await;
    let dir = copy_example();
    let (_, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    assert!(result.expect("first pass").rollout.converged());

    for name in [
        "horizon",
        "heat-api",
        "heat-engine",
        "cinder-api",
        "cinder-scheduler",
        "cinder-volume",
        "nova-compute",
        "nova-novncproxy",
        "neutron-l3-agent",
        "neutron-dhcp-agent",
        "neutron-metadata-agent",
    ] {
        remove_component(dir.path(), name);
    }
    env.sim.clear_request_log();
    let (prepared, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    assert!(prepared.plan.is_blocked());
    match result {
        Err(PassError::Blocked { message, .. }) => {
            assert!(
                message.contains("prune budget") || message.contains("budget"),
                "{message}"
            );
            assert!(
                message.contains("allow"),
                "the message tells how to allow it: {message}"
            );
        }
        other => panic!("expected a blocked pass, got {other:?}"),
    }
    assert_eq!(
        writes(&env.sim.request_log()).len(),
        0,
        "a refused plan writes nothing"
    );

    let allowed = PassSettings {
        plan: keelson::plan::PlanOptions {
            allow_prune_over_budget: true,
            ..Default::default()
        },
        ..settings()
    };
    let (_, result, _) = pass(&env.kube, dir.path(), &allowed).await;
    assert!(result.expect("allowed pass").rollout.converged());
    let deletes = writes(&env.sim.request_log())
        .iter()
        .filter(|r| r.verb == "delete")
        .count();
    assert!(deletes >= 20, "only {deletes} deletes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_someone_else_owns_is_never_taken_over() {
    let env = env(fast_sim()).await;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    env.kube
        .apply(
            &namespace,
            &ApplyOptions {
                field_manager: "admin".into(),
                ..Default::default()
            },
        )
        .await
        .expect("ns");
    let foreign = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "horizon-config", "namespace": NS}, "data": {"mine": "yes"}});
    env.kube
        .apply(
            &foreign,
            &ApplyOptions {
                field_manager: "admin".into(),
                ..Default::default()
            },
        )
        .await
        .expect("foreign");
    env.sim.clear_request_log();

    let dir = copy_example();
    let (prepared, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    assert!(
        prepared
            .plan
            .refusals
            .iter()
            .any(|r| r.reference.name == "horizon-config")
    );
    assert!(matches!(result, Err(PassError::Blocked { .. })), "{result:?}");
    assert_eq!(writes(&env.sim.request_log()).len(), 0);
    let live = get_json(
        &env.kube,
        &format!("/api/v1/namespaces/{NS}/configmaps/horizon-config"),
    )
    .await;
    assert_eq!(live["data"], json!({"mine": "yes"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_health_wait_returns_promptly_and_the_next_pass_converges() {
    let env = env(SimOptions {
        unpullable_images: vec!["*/glance-api:broken".into()],
        ..fast_sim()
    })
    .await;
    let dir = copy_example();
    let (_, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    assert!(result.expect("first pass").rollout.converged());

    edit(
        dir.path(),
        "services/glance-api.yaml",
        "  image: glance-api\n",
        "  image: glance-api:broken\n",
    );
    let prepared = reconciler::prepare(&env.kube, &snapshot(dir.path()), &settings())
        .await
        .expect("prepare");
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let kube = env.kube.clone();
    let run_settings = settings();
    let run_cancel = cancel.clone();
    let task = tokio::spawn(async move {
        reconciler::execute(&kube, &prepared, &run_settings, run_cancel, Some(tx)).await
    });
    // Wait until glance-api is being waited on, then cancel as a newer revision would.
    while let Some(event) = rx.recv().await {
        if matches!(&event, ProgressEvent::ObjectApplied { component, .. } if component == "glance-api") {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled_at = std::time::Instant::now();
    cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("returns promptly")
        .expect("join")
        .expect("pass");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(2),
        "took {:?}",
        cancelled_at.elapsed()
    );
    assert!(outcome.rollout.cancelled);

    edit(
        dir.path(),
        "services/glance-api.yaml",
        "  image: glance-api:broken\n",
        "  image: glance-api\n",
    );
    let (_, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    assert!(result.expect("next pass").rollout.converged());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantities_the_api_server_stores_in_canonical_form_are_not_drift() {
    let env = env(fast_sim()).await;
    let dir = copy_example();
    let resources =
        "  resources:\n    requests:\n      cpu: 250m\n      memory: 512Mi\n    limits:\n      memory: 1Gi\n";
    let written = "  resources:\n    requests:\n      cpu: \"0.25\"\n      memory: 0.5Gi\n    limits:\n      memory: 1024Mi\n";
    edit(dir.path(), "services/keystone.yaml", resources, written);
    let (_, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    assert!(result.expect("pass").rollout.converged());
    let live = get_json(
        &env.kube,
        "/apis/apps/v1/namespaces/openstack/deployments/keystone",
    )
    .await;
    let container = &live["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["resources"],
        json!({"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}),
        "the cluster stores canonical quantities"
    );

    env.sim.clear_request_log();
    let (prepared, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    assert!(result.expect("second pass").rollout.converged());
    assert!(
        !prepared.plan.has_changes(),
        "{}",
        keelson::plan::to_text(&prepared.plan, false)
    );
    assert_eq!(writes(&env.sim.request_log()).len(), 0);

    // A real change of a quantity is still one.
    edit(
        dir.path(),
        "services/keystone.yaml",
        "memory: 1024Mi",
        "memory: 2Gi",
    );
    let (prepared, result, _) = pass(&env.kube, dir.path(), &settings()).await;
    assert!(result.expect("third pass").rollout.converged());
    assert_eq!(
        prepared.plan.summary.update,
        1,
        "{}",
        keelson::plan::to_text(&prepared.plan, false)
    );
}
