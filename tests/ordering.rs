//! Dependencies as fine as OpenStack's: a jobs-only component that several workloads wait for, a
//! dependency on another component's Service (its workload available, its post-jobs still running), and a
//! DaemonSet that waits per node for another DaemonSet's Pod. Proved on the strict simulator's Nodes with
//! the rollout's progress events and the Pods' own status.

use std::path::Path;
use std::time::Duration;

use keelson::cluster::KindRef;
use keelson::reconciler::{self, PassSettings};
use keelson::rollout::{ComponentState, ProgressEvent, RolloutOutcome};
use keelson::sim::SimOptions;
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

mod support;

fn topology(health_timeout: &str) -> String {
    format!(
        "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: cloud\nspec:\n  namespace: cloud\n  healthTimeout: {health_timeout}\n"
    )
}

/// `sync` is a jobs-only node that `api` and `worker` share; `web` needs only `api`'s Service, not its
/// post-job; `agent` waits per node for `ovs`, which runs only on nodes labelled `net=yes`.
const SERVICES: &[(&str, &str)] = &[
    (
        "sync",
        "  workload: None\n  image: nova-api\n  jobs:\n  - name: db-sync\n    phase: pre\n    command: nova-manage db sync\n",
    ),
    (
        "api",
        "  image: nova-api\n  command: nova-api\n  dependsOn: [sync]\n  ports:\n  - name: api\n    port: 8774\n  jobs:\n  - name: register\n    phase: post\n    command: register-endpoints\n",
    ),
    (
        "worker",
        "  image: nova-conductor\n  command: nova-conductor\n  dependsOn: [sync]\n",
    ),
    (
        "web",
        "  image: horizon\n  command: horizon\n  dependsOn:\n  - component: api\n    for: Service\n",
    ),
    (
        "ovs",
        "  workload: DaemonSet\n  image: openvswitch-vswitchd\n  command: ovs-vswitchd\n  nodeSelector:\n    net: \"yes\"\n",
    ),
    (
        "agent",
        "  workload: DaemonSet\n  image: neutron-openvswitch-agent\n  command: neutron-openvswitch-agent\n  dependsOn:\n  - {component: ovs, for: SameNode}\n",
    ),
];

fn repo(services: &[(&str, &str)], health_timeout: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("services")).expect("mkdir");
    std::fs::write(dir.path().join("keelson.yaml"), topology(health_timeout)).expect("write");
    for (name, spec) in services {
        let text =
            format!("apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{spec}");
        std::fs::write(dir.path().join(format!("services/{name}.yaml")), text).expect("write");
    }
    dir
}

fn options(net_nodes: &[&str]) -> SimOptions {
    SimOptions {
        ready_after: Duration::from_millis(400),
        // The post-job runs long, so a `for: Service` dependent visibly starts before it ends.
        job_duration: Duration::from_millis(1500),
        node_labels: net_nodes
            .iter()
            .map(|n| format!("{n}:net=yes").parse().expect("node labels"))
            .collect(),
        ..SimOptions::default()
    }
}

struct Run {
    env: support::SimEnv,
    outcome: RolloutOutcome,
    events: Vec<ProgressEvent>,
}

async fn apply(dir: &Path, options: SimOptions) -> Run {
    let env = support::SimEnv::start(options).await;
    let settings = PassSettings {
        poll_interval: Duration::from_millis(25),
        ..PassSettings::default()
    };
    let snapshot = Snapshot::from_dir(dir, DEFAULT_MAX_FILE_SIZE).expect("snapshot");
    let prepared = reconciler::prepare(&env.kube, &snapshot, &settings)
        .await
        .expect("prepare");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let outcome = reconciler::execute(
        &env.kube,
        &prepared,
        &settings,
        CancellationToken::new(),
        Some(tx),
    )
    .await
    .expect("pass runs");
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    Run {
        env,
        outcome: outcome.rollout,
        events,
    }
}

fn position(events: &[ProgressEvent], what: impl Fn(&ProgressEvent) -> bool) -> usize {
    events.iter().position(what).expect("event")
}

fn started(name: &str) -> impl Fn(&ProgressEvent) -> bool + '_ {
    move |e| matches!(e, ProgressEvent::ComponentStarted { component, .. } if component == name)
}

fn finished(name: &str) -> impl Fn(&ProgressEvent) -> bool + '_ {
    move |e| matches!(e, ProgressEvent::ComponentFinished { component, .. } if component == name)
}

fn healthy_kind<'a>(name: &'a str, kind: &'a str) -> impl Fn(&ProgressEvent) -> bool + 'a {
    move |e| {
        matches!(e, ProgressEvent::ObjectHealthy { component, object, .. }
            if component == name && object.kind == kind)
    }
}

async fn pods(env: &support::SimEnv, component: &str) -> Vec<Value> {
    let all = env
        .kube
        .list_owned(
            &[KindRef::new("v1", "Pod")],
            &["cloud".to_string()],
            &format!("keelson.dev/service={component}"),
        )
        .await
        .expect("pods");
    all.into_iter()
        .filter(|p| {
            p.pointer("/metadata/labels/keelson.dev~1role")
                .and_then(Value::as_str)
                == Some("workload")
        })
        .collect()
}

fn node_of(pod: &Value) -> String {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn jobs_only_service_and_same_node_dependencies_roll_out_in_their_order() {
    let dir = repo(SERVICES, "20s");
    let run = apply(dir.path(), options(&["node-1", "node-2", "node-3"])).await;
    assert!(run.outcome.converged(), "{:#?}", run.outcome.components);
    let e = &run.events;

    // The shared jobs-only node runs first; both of its dependents wait for its Job.
    let sync_done = position(e, finished("sync"));
    assert!(sync_done < position(e, started("api")));
    assert!(sync_done < position(e, started("worker")));

    // `for: Service`: web starts once api's Deployment is available, while api's post-job still runs.
    let api_available = position(e, healthy_kind("api", "Deployment"));
    let web_started = position(e, started("web"));
    assert!(
        api_available < web_started,
        "web started before api was available"
    );
    assert!(
        web_started < position(e, healthy_kind("api", "Job")),
        "web waited for api's post-job, as if it depended on api being healthy"
    );

    // `for: SameNode`: agent is applied once ovs is applied, without waiting for ovs to be healthy, and
    // each agent Pod left its init container only after the ovs Pod on its node was Ready.
    assert!(position(e, started("agent")) < position(e, finished("ovs")));
    let ovs = pods(&run.env, "ovs").await;
    let agents = pods(&run.env, "agent").await;
    assert_eq!(agents.len(), 3, "one agent per node");
    for agent in &agents {
        let node = node_of(agent);
        let ovs_here = ovs
            .iter()
            .find(|p| node_of(p) == node)
            .expect("an ovs Pod on the node");
        let ready_at = ovs_here
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .and_then(|c| c["lastTransitionTime"].as_str())
            .expect("ovs Ready time")
            .to_string();
        let waited = agent
            .pointer("/status/initContainerStatuses/0/state/terminated/finishedAt")
            .and_then(Value::as_str)
            .expect("agent's wait finished");
        assert!(
            waited >= ready_at.as_str(),
            "{node}: agent left its wait at {waited}, ovs was Ready at {ready_at}"
        );
    }
    run.env.sim.shutdown().await;
}

#[tokio::test]
async fn a_same_node_dependent_waits_on_the_node_where_its_dependency_does_not_run() {
    let services: Vec<(&str, &str)> = SERVICES
        .iter()
        .copied()
        .filter(|(n, _)| matches!(*n, "ovs" | "agent"))
        .collect();
    let dir = repo(&services, "4s");
    // ovs runs on node-1 and node-2 only; agent runs on every node.
    let run = apply(dir.path(), options(&["node-1", "node-2"])).await;
    let agent = run.outcome.component("agent").expect("agent");
    assert_eq!(agent.state, ComponentState::Failed, "{agent:?}");
    assert_eq!(
        run.outcome.component("ovs").map(|c| c.state),
        Some(ComponentState::Healthy)
    );

    let agents = pods(&run.env, "agent").await;
    assert_eq!(agents.len(), 3);
    for pod in &agents {
        let ready = pod
            .pointer("/status/containerStatuses/0/ready")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let waiting = pod
            .pointer("/status/initContainerStatuses/0/state/running")
            .is_some();
        match node_of(pod).as_str() {
            "node-3" => assert!(waiting && !ready, "the agent on node-3 must still wait: {pod:#}"),
            node => assert!(ready, "the agent on {node} must run: {pod:#}"),
        }
    }
    run.env.sim.shutdown().await;
}

#[test]
fn dependencies_name_what_they_wait_for_and_bad_ones_are_refused_where_written() {
    let keelson = env!("CARGO_BIN_EXE_keelson");
    let dir = repo(SERVICES, "20s");
    let graph = std::process::Command::new(keelson)
        .args(["graph"])
        .arg(dir.path())
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&graph.stdout);
    assert!(graph.status.success(), "{text}");
    assert!(text.contains("agent (agent) <- ovs [same node]"), "{text}");
    assert!(text.contains("web (web) <- api [service]"), "{text}");

    let bad: &[(&str, &str, &str)] = &[
        (
            "web",
            "  image: horizon\n  command: horizon\n  dependsOn:\n  - component: worker\n    for: Service\n",
            "services/web.yaml:10:10: spec.dependsOn[0].for: `for: Service` waits for `worker`'s Service, but `worker` has no ports, so no Service",
        ),
        (
            "web",
            "  image: horizon\n  command: horizon\n  dependsOn:\n  - component: ovs\n    for: SameNode\n",
            "spec.dependsOn[0].for: `for: SameNode` holds each Pod of `web` until `ovs`'s Pod on its node is Ready, so `web` must be a DaemonSet",
        ),
        (
            "web",
            "  image: horizon\n  command: horizon\n  dependsOn:\n  - component: api\n    for: Endpoints\n",
            "unknown variant `Endpoints`, expected one of `Healthy`, `Service`, `SameNode`",
        ),
        (
            "web",
            "  image: horizon\n  command: horizon\n  dependsOn:\n  - component: api\n    wait: Service\n",
            "unknown field `wait`, expected `component` or `for`",
        ),
    ];
    for (name, spec, want) in bad {
        let services: Vec<(&str, &str)> = SERVICES
            .iter()
            .map(|(n, s)| if n == name { (*n, *spec) } else { (*n, *s) })
            .collect();
        let dir = repo(&services, "20s");
        let out = std::process::Command::new(keelson)
            .args(["validate"])
            .arg(dir.path())
            .output()
            .expect("runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains(want), "wanted {want:?} in:\n{text}");
    }
}
