//! The watch-fed view of the cluster, read off the simulator's request log: a no-op pass lists each kind
//! once and sends no GET and no write, health comes from watch events (no object is read while waiting),
//! and the create guard still refuses a name someone else took after the plan was made.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use keelson::cluster::ApplyOptions;
use keelson::object::ObjectRef;
use keelson::reconciler::{self, PassSettings, Prepared};
use keelson::rollout::ComponentState;
use keelson::sim::RequestRecord;
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
use serde_json::json;
use support::{SimEnv, wait_for, writes};
use tokio_util::sync::CancellationToken;

const NS: &str = "openstack";

/// A poll interval so long that a rollout which polled could not finish in a test's time: every health
/// verdict must come from watch events.
fn settings() -> PassSettings {
    PassSettings {
        poll_interval: Duration::from_secs(3600),
        ..PassSettings::default()
    }
}

fn snapshot(dir: &Path) -> Snapshot {
    Snapshot::from_dir(dir, DEFAULT_MAX_FILE_SIZE).expect("snapshot")
}

async fn prepare(env: &SimEnv, dir: &Path) -> Prepared {
    reconciler::prepare(&env.kube, &snapshot(dir), &settings())
        .await
        .expect("prepare")
}

async fn converge(env: &SimEnv, dir: &Path) -> Prepared {
    let prepared = prepare(env, dir).await;
    let outcome = reconciler::execute(&env.kube, &prepared, &settings(), CancellationToken::new(), None)
        .await
        .expect("pass");
    assert!(outcome.rollout.converged(), "{:#?}", outcome.rollout.components);
    prepared
}

/// Requests by verb, and (verb, resource) -> count.
fn counts(log: &[RequestRecord]) -> (BTreeMap<String, usize>, BTreeMap<(String, String), usize>) {
    let mut by_verb = BTreeMap::new();
    let mut by_resource = BTreeMap::new();
    for r in log.iter().filter(|r| !r.verb.is_empty()) {
        *by_verb.entry(r.verb.clone()).or_default() += 1;
        *by_resource
            .entry((r.verb.clone(), r.resource.clone()))
            .or_default() += 1;
    }
    (by_verb, by_resource)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_pass_lists_each_kind_once_and_sends_no_get_and_no_write() {
    let env = SimEnv::start(support::example_nodes(support::fast_sim())).await;
    let dir = support::topology_copy();
    converge(&env, dir.path()).await;

    env.sim.clear_request_log();
    let prepared = converge(&env, dir.path()).await;
    assert!(!prepared.plan.has_changes());
    let log = env.sim.request_log();
    assert_eq!(writes(&log).len(), 0, "{:#?}", writes(&log));
    let (by_verb, by_resource) = counts(&log);
    assert_eq!(by_verb.get("get"), None, "no GET at all: {by_resource:?}");
    for ((verb, resource), n) in &by_resource {
        if verb == "list" || verb == "watch" {
            assert_eq!(
                *n, 1,
                "{verb} {resource}: once per kind in the one namespace: {by_resource:?}"
            );
        }
    }
    // The kinds the example renders, and the ones every pass looks at: each listed once.
    for resource in [
        "configmaps",
        "secrets",
        "services",
        "deployments",
        "statefulsets",
        "jobs",
    ] {
        assert_eq!(
            by_resource.get(&("list".to_string(), resource.to_string())),
            Some(&1),
            "{resource}: {by_resource:?}"
        );
    }
    // No metadata list: nothing is to be created, so no name needs checking.
    let listed = log.iter().filter(|r| r.verb == "list").count();
    let watched = log.iter().filter(|r| r.verb == "watch").count();
    assert_eq!(listed, watched, "one watch follows each list: {by_resource:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_converges_from_watch_events_without_reading_any_object() {
    let env = SimEnv::start(support::example_nodes(support::fast_sim())).await;
    let dir = support::topology_copy();
    env.sim.clear_request_log();
    let prepared = converge(&env, dir.path()).await;
    let log = env.sim.request_log();
    let written = writes(&log).len();
    assert!(written > 50, "the example creates its objects: {written}");
    let (by_verb, by_resource) = counts(&log);
    // The only object read is the namespace Keelson makes sure of before creating into it.
    let gets: Vec<&(String, String)> = by_resource.keys().filter(|(v, _)| v == "get").collect();
    assert_eq!(
        gets,
        vec![&("get".to_string(), "namespaces".to_string())],
        "{by_resource:?}"
    );
    assert_eq!(by_verb.get("get"), Some(&1));
    // Reads are a fixed cost per kind: a list and a watch of owned objects, and a metadata list and watch
    // of every name of the kinds created into.
    let kinds = by_resource.keys().filter(|(v, _)| v == "list").count();
    for ((verb, resource), n) in &by_resource {
        if verb == "list" || verb == "watch" {
            assert!(*n <= 2, "{verb} {resource} {n} times: {by_resource:?}");
        }
    }
    let reads = log.iter().filter(|r| !r.verb.is_empty() && !r.is_write()).count();
    assert!(
        reads <= 4 * kinds + 1,
        "{reads} reads for {written} writes over {kinds} kinds: {by_resource:?}"
    );
    assert!(prepared.plan.summary.create > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_someone_else_takes_after_planning_is_refused_at_write_time() {
    let env = SimEnv::start(support::example_nodes(support::fast_sim())).await;
    let dir = support::topology_copy();
    let prepared = prepare(&env, dir.path()).await;
    let taken = ObjectRef {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some(NS.into()),
        name: "horizon-config".into(),
    };
    assert!(
        prepared.plan.refusals.is_empty() && prepared.plan.summary.create > 0,
        "nothing is in the way yet"
    );
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "horizon-config", "namespace": NS}, "data": {"mine": "yes"}});
    let admin = ApplyOptions {
        field_manager: "admin".into(),
        ..ApplyOptions::default()
    };
    env.kube.apply(&namespace, &admin).await.expect("namespace");
    env.kube.apply(&theirs, &admin).await.expect("their ConfigMap");
    let view = prepared.view.clone().expect("the pass's view");
    wait_for("the view to see their ConfigMap", Duration::from_secs(20), || {
        let (view, taken) = (view.clone(), taken.clone());
        async move { matches!(view.foreign(&taken).await, Ok(Some(_))) }
    })
    .await;

    env.sim.clear_request_log();
    let outcome = reconciler::execute(&env.kube, &prepared, &settings(), CancellationToken::new(), None)
        .await
        .expect("pass runs");
    let horizon = outcome.rollout.component("horizon").expect("horizon");
    assert_eq!(horizon.state, ComponentState::Failed, "{horizon:?}");
    assert!(
        horizon.reason.contains("refusing to take over") && horizon.reason.contains("horizon-config"),
        "{}",
        horizon.reason
    );
    let log = env.sim.request_log();
    assert!(
        !writes(&log)
            .iter()
            .any(|r| r.resource == "configmaps" && r.name.as_deref() == Some("horizon-config")),
        "their ConfigMap was written"
    );
    let live = env.kube.get(&taken).await.expect("read").expect("still there");
    assert_eq!(live["data"], json!({"mine": "yes"}));
}
