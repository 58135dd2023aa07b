//! Rollouts against the simulated API server over real HTTP, planned by the real planner from live state;
//! ordering, isolation, cancellation and fault tolerance are read off the simulator's request log.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use keelson::cluster::{
    ApplyOptions, ChangeKind, KindRef, Kube, RetryPolicy, Target, connect, has_status_rules, owned_selector,
};
use keelson::object::ObjectRef;
use keelson::plan::{Plan, PlanInput, PlanOptions, fixtures};
use keelson::render::{RenderedObject, Stage};
use keelson::rollout::{ComponentState, ProgressEvent, RolloutOptions, RolloutOutcome, execute};
use keelson::sim::{Cluster, FaultConfig, RequestRecord, SimOptions};
use keelson::topology::Topology;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

const NS: &str = "openstack";
const TOPOLOGY: &str = "cloud";
const IMAGE: &str = "quay.io/openstack.kolla/keystone:2025.1";

struct Env {
    sim: Cluster,
    kube: Kube,
    _dir: tempfile::TempDir,
}

async fn env(opts: SimOptions) -> Env {
    let sim = Cluster::start(opts).await.expect("simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path).expect("kubeconfig");
    let kube = connect(Target::Kubeconfig {
        path: Some(path),
        context: None,
    })
    .await
    .expect("connects")
    .with_retry(RetryPolicy {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(2),
        max_attempts: 20,
    });
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    kube.apply(&ns, &ApplyOptions::default())
        .await
        .expect("namespace");
    Env { sim, kube, _dir: dir }
}

fn sim_opts() -> SimOptions {
    support::sim_options(Duration::from_millis(300))
}

/// The plan fixtures' topology, named `cloud`, every component (and the topology) with `health_timeout`.
fn topology(components: &[(&str, &[&str])], health_timeout: Duration) -> Topology {
    let mut topology = fixtures::mk_topology(components);
    topology.name = TOPOLOGY.into();
    topology.health_timeout = health_timeout;
    for component in topology.components.values_mut() {
        component.project = component.name.clone();
        component.image = IMAGE.into();
        component.health_timeout = health_timeout;
    }
    topology
}

fn api_version(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "StatefulSet" => "apps/v1",
        "Job" => "batch/v1",
        _ => "v1",
    }
}

/// An object as the renderer would produce it: ownership labels, content hash.
fn object(component: &str, stage: Stage, kind: &str, name: &str, fields: Value) -> RenderedObject {
    let hash = format!(
        "{:x}",
        Sha256::digest(format!("{kind}/{name}/{fields}").as_bytes())
    );
    let mut body = json!({
        "apiVersion": api_version(kind), "kind": kind,
        "metadata": {"name": name, "namespace": NS,
            "labels": {"app.kubernetes.io/managed-by": "keelson", "keelson.dev/topology": TOPOLOGY,
                       "keelson.dev/service": component},
            "annotations": {"keelson.dev/hash": hash}},
    });
    if let (Some(target), Value::Object(extra)) = (body.as_object_mut(), fields) {
        target.extend(extra);
    }
    RenderedObject {
        component: component.into(),
        stage,
        step: 0,
        timeout: None,
        secret: None,
        reference: ObjectRef {
            api_version: api_version(kind).into(),
            kind: kind.into(),
            namespace: Some(NS.into()),
            name: name.into(),
        },
        hash,
        body,
    }
}

fn config(component: &str) -> RenderedObject {
    object(
        component,
        Stage::Config,
        "ConfigMap",
        &format!("{component}-config"),
        json!({"data": {"conf": component}}),
    )
}

fn service(component: &str) -> RenderedObject {
    object(
        component,
        Stage::Service,
        "Service",
        component,
        json!({"spec": {"selector": {"app": component}, "ports": [{"port": 5000, "targetPort": 5000}]}}),
    )
}

fn deployment(component: &str, image: &str, extra_spec: Value) -> RenderedObject {
    let mut spec = json!({"replicas": 2, "selector": {"matchLabels": {"app": component}},
        "template": {"metadata": {"labels": {"app": component}},
                     "spec": {"containers": [{"name": "main", "image": image}]}}});
    if let (Some(s), Value::Object(extra)) = (spec.as_object_mut(), extra_spec) {
        s.extend(extra);
    }
    object(
        component,
        Stage::Workload,
        "Deployment",
        component,
        json!({"spec": spec}),
    )
}

fn job(component: &str, stage: Stage, name: &str) -> RenderedObject {
    object(
        component,
        stage,
        "Job",
        name,
        json!({"spec": {"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "main", "image": IMAGE}]}}}}),
    )
}

fn component(name: &str) -> Vec<RenderedObject> {
    vec![config(name), service(name), deployment(name, IMAGE, json!({}))]
}

const KINDS: [(&str, &str); 4] = [
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
];

/// One pass: read live owned objects (one list per kind), plan, execute.
async fn pass(
    kube: &Kube,
    topology: &Topology,
    desired: &[RenderedObject],
    opts: &RolloutOptions,
) -> (Plan, RolloutOutcome) {
    let kinds: Vec<KindRef> = KINDS.iter().map(|(a, k)| KindRef::new(*a, *k)).collect();
    let live = kube
        .list_owned(&kinds, &[NS.to_string()], &owned_selector(TOPOLOGY))
        .await
        .expect("live read");
    let plan_opts = PlanOptions {
        allow_prune_over_budget: true,
        ..PlanOptions::default()
    };
    let plan = keelson::plan::plan(&PlanInput {
        topology,
        revision: "rev",
        desired,
        live: &live,
        foreign: &[],
        inventory: None,
        options: &plan_opts,
    })
    .expect("plan");
    assert!(!plan.is_blocked(), "{:?}", plan.blocked_message());
    let outcome = execute(kube, &plan, opts).await;
    (plan, outcome)
}

fn fast_opts() -> RolloutOptions {
    RolloutOptions {
        poll_interval: Duration::from_millis(50),
        ..RolloutOptions::default()
    }
}

fn touches(r: &RequestRecord, o: &ObjectRef) -> bool {
    let plural = format!("{}s", o.kind.to_lowercase());
    r.resource == plural
        && r.name.as_deref() == Some(o.name.as_str())
        && r.namespace.as_deref() == o.namespace.as_deref()
}

fn states(outcome: &RolloutOutcome) -> BTreeMap<String, ComponentState> {
    outcome
        .components
        .iter()
        .map(|c| (c.name.clone(), c.state))
        .collect()
}

/// The diamond: mariadb, rabbitmq -> keystone (with a db-sync pre-job) -> glance, nova -> horizon.
fn diamond() -> (Topology, Vec<RenderedObject>) {
    let t = topology(
        &[
            ("mariadb", &[]),
            ("rabbitmq", &[]),
            ("keystone", &["mariadb", "rabbitmq"]),
            ("glance", &["keystone"]),
            ("nova", &["keystone"]),
            ("horizon", &["glance", "nova"]),
        ],
        Duration::from_secs(30),
    );
    let mut desired = Vec::new();
    for c in ["mariadb", "rabbitmq", "glance", "nova", "horizon"] {
        desired.extend(component(c));
    }
    desired.extend(component("keystone"));
    desired.push(job("keystone", Stage::PreJob, "keystone-db-sync-aaaa"));
    (t, desired)
}

#[tokio::test]
async fn dependents_start_only_after_dependencies_are_healthy() {
    let e = env(sim_opts()).await;
    let (t, desired) = diamond();
    e.sim.clear_request_log();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = RolloutOptions {
        progress: Some(tx),
        ..fast_opts()
    };
    let (plan, outcome) = pass(&e.kube, &t, &desired, &opts).await;
    assert!(outcome.converged(), "{outcome:#?}");
    assert_eq!(outcome.changes.count(ChangeKind::Created), desired.len());
    let log = e.sim.request_log();

    // For every dependency edge: each write to the dependent comes after the last read of every object of
    // the dependency (the read that saw it healthy).
    let by_component: BTreeMap<&str, Vec<&ObjectRef>> = desired.iter().fold(BTreeMap::new(), |mut m, o| {
        m.entry(o.component.as_str()).or_default().push(&o.reference);
        m
    });
    for c in plan.waves.iter().flat_map(|w| &w.components) {
        let first_write = log
            .iter()
            .filter(|r| r.is_write() && by_component[c.name.as_str()].iter().any(|o| touches(r, o)))
            .map(|r| r.seq)
            .min()
            .expect("component written");
        for dep in &c.depends_on {
            for o in &by_component[dep.as_str()] {
                // Workloads are healthy at the last read (the one that saw them Current); kinds whose
                // health is existence are healthy once their apply succeeded.
                let kind_of_read = if has_status_rules(&o.api_version, &o.kind) {
                    "get"
                } else {
                    "patch"
                };
                let healthy_read = log
                    .iter()
                    .filter(|r| r.verb == kind_of_read && r.status < 300 && touches(r, o))
                    .map(|r| r.seq)
                    .max()
                    .unwrap_or_else(|| panic!("{o} was {kind_of_read} for health"));
                assert!(
                    healthy_read < first_write,
                    "{} written (seq {first_write}) before {o} was seen healthy (seq {healthy_read})",
                    c.name
                );
            }
        }
    }
    // Inside keystone: the workload is applied only after the db-sync job completed.
    let job_done = log
        .iter()
        .filter(|r| r.resource == "jobs" && r.verb == "get")
        .map(|r| r.seq)
        .max()
        .expect("job read");
    let workload = log
        .iter()
        .filter(|r| r.resource == "deployments" && r.verb == "patch" && r.name.as_deref() == Some("keystone"))
        .map(|r| r.seq)
        .min()
        .expect("keystone applied");
    assert!(job_done < workload);
    // Progress events carry the health timestamps: every object of a dependency was seen healthy before
    // the dependent started.
    let mut healthy_at: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
    let mut started_at: BTreeMap<String, Instant> = BTreeMap::new();
    while let Ok(ev) = rx.try_recv() {
        match ev {
            ProgressEvent::ObjectHealthy { component, at, .. } => {
                healthy_at.entry(component).or_default().push(at)
            }
            ProgressEvent::ComponentStarted { component, at, .. } => {
                started_at.insert(component, at);
            }
            _ => {}
        }
    }
    assert_eq!(started_at.len(), 6);
    for c in plan.waves.iter().flat_map(|w| &w.components) {
        for dep in &c.depends_on {
            let seen = &healthy_at[dep.as_str()];
            assert!(seen.len() >= by_component[dep.as_str()].len());
            assert!(
                seen.iter().all(|at| *at <= started_at[&c.name]),
                "{} started before {dep} was healthy",
                c.name
            );
        }
    }

    // Idempotence: the same desired state on the converged cluster writes nothing.
    e.sim.clear_request_log();
    let (plan, again) = pass(&e.kube, &t, &desired, &fast_opts()).await;
    assert!(again.converged(), "{again:#?}");
    assert_eq!(
        plan.summary.create + plan.summary.update + plan.summary.delete,
        0,
        "{plan:#?}"
    );
    let writes: Vec<_> = e.sim.request_log().into_iter().filter(|r| r.is_write()).collect();
    assert!(writes.is_empty(), "{writes:#?}");
}

#[tokio::test]
async fn changed_job_runs_anew_and_old_ones_are_pruned_last() {
    let e = env(sim_opts()).await;
    let (t, desired) = diamond();
    let (_, first) = pass(&e.kube, &t, &desired, &fast_opts()).await;
    assert!(first.converged(), "{first:#?}");

    // New revision: keystone's db-sync job changed (new hash, new name); horizon's ConfigMap is gone.
    let next: Vec<RenderedObject> = desired
        .iter()
        .filter(|o| o.reference.name != "horizon-config")
        .map(|o| {
            if o.reference.name == "keystone-db-sync-aaaa" {
                job("keystone", Stage::PreJob, "keystone-db-sync-bbbb")
            } else {
                o.clone()
            }
        })
        .collect();
    e.sim.clear_request_log();
    let (plan, outcome) = pass(&e.kube, &t, &next, &fast_opts()).await;
    assert!(outcome.converged(), "{outcome:#?}");
    assert_eq!(plan.summary.create, 1);
    assert_eq!(plan.summary.delete, 2);
    let deleted: BTreeSet<String> = outcome
        .changes
        .entries
        .iter()
        .filter(|e| e.change == ChangeKind::Deleted)
        .map(|e| e.object.name.clone())
        .collect();
    assert_eq!(
        deleted,
        BTreeSet::from(["horizon-config".to_string(), "keystone-db-sync-aaaa".to_string()])
    );
    let log = e.sim.request_log();
    let last_apply = log
        .iter()
        .filter(|r| r.is_write() && r.verb == "patch")
        .map(|r| r.seq)
        .max()
        .expect("applied");
    let first_delete = log
        .iter()
        .filter(|r| r.is_write() && r.verb == "delete")
        .map(|r| r.seq)
        .min()
        .expect("deleted");
    assert!(last_apply < first_delete, "prune runs after every apply");
    // The new job completed before the workload was looked at again.
    let new_job = log
        .iter()
        .filter(|r| r.verb == "patch" && r.name.as_deref() == Some("keystone-db-sync-bbbb"))
        .count();
    assert_eq!(new_job, 1);
}

#[tokio::test]
async fn a_failed_component_blocks_exactly_its_dependents() {
    let e = env(sim_opts()).await;
    let (t, mut desired) = diamond();
    // glance's image never pulls; its progress deadline makes the Deployment fail.
    for o in desired.iter_mut() {
        if o.reference.kind == "Deployment" && o.component == "glance" {
            *o = deployment(
                "glance",
                "quay.io/openstack.kolla/glance:broken",
                json!({"progressDeadlineSeconds": 1}),
            );
        }
    }
    e.sim.clear_request_log();
    let (_, outcome) = pass(&e.kube, &t, &desired, &fast_opts()).await;
    assert!(!outcome.converged());
    let want: BTreeMap<String, ComponentState> = [
        ("mariadb", ComponentState::Healthy),
        ("rabbitmq", ComponentState::Healthy),
        ("keystone", ComponentState::Healthy),
        ("glance", ComponentState::Failed),
        ("nova", ComponentState::Healthy),
        ("horizon", ComponentState::Blocked),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(states(&outcome), want, "{outcome:#?}");
    let glance = outcome.component("glance").expect("glance");
    assert!(
        glance
            .reason
            .starts_with("Deployment openstack/glance: progress deadline exceeded"),
        "{}",
        glance.reason
    );
    let horizon = outcome.component("horizon").expect("horizon");
    assert_eq!(horizon.reason, "dependency glance failed");
    // Nothing of horizon was written; its objects are reported skipped.
    let log = e.sim.request_log();
    assert!(
        !log.iter()
            .any(|r| r.is_write() && r.name.as_deref().is_some_and(|n| n.starts_with("horizon")))
    );
    let skipped = outcome
        .changes
        .entries
        .iter()
        .filter(|e| e.change == ChangeKind::Skipped)
        .count();
    assert_eq!(skipped, 3);
}

#[tokio::test]
async fn health_timeout_fails_the_component() {
    let e = env(sim_opts()).await;
    let t = topology(&[("a", &[]), ("b", &["a"])], Duration::from_millis(800));
    let mut desired = vec![deployment("a", "quay.io/openstack.kolla/a:broken", json!({}))];
    desired.extend(component("b"));
    let opts = RolloutOptions {
        poll_interval: Duration::from_millis(50),
        ..RolloutOptions::default()
    };
    let (_, outcome) = pass(&e.kube, &t, &desired, &opts).await;
    {
        let o = outcome;
        let a = o.component("a").expect("a");
        assert_eq!(a.state, ComponentState::Failed);
        assert!(
            a.reason
                .starts_with("not healthy within 800ms: Deployment openstack/a: "),
            "{}",
            a.reason
        );
        assert_eq!(o.component("b").expect("b").state, ComponentState::Blocked);
    }
}

#[tokio::test]
async fn without_a_view_the_reason_comes_from_a_bounded_list_of_the_workloads_pods() {
    let e = env(sim_opts()).await;
    let t = topology(&[("a", &[]), ("b", &[])], Duration::from_secs(3));
    let secret_env = json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "b-db", "key": "k"}}}]);
    let desired = vec![
        deployment("a", "quay.io/openstack.kolla/a:broken", json!({})),
        deployment(
            "b",
            IMAGE,
            json!({"template": {"metadata": {"labels": {"app": "b"}},
                   "spec": {"containers": [{"name": "main", "image": IMAGE, "env": secret_env}]}}}),
        ),
    ];
    let opts = RolloutOptions {
        poll_interval: Duration::from_millis(50),
        pod_failure_grace: Duration::from_millis(500),
        ..RolloutOptions::default()
    };
    e.sim.clear_request_log();
    let (_, outcome) = pass(&e.kube, &t, &desired, &opts).await;
    let a = outcome.component("a").expect("a");
    assert!(
        a.reason
            .starts_with("not healthy within 3s: Deployment openstack/a: ")
            && a.reason
                .contains(" — ImagePullBackOff: quay.io/openstack.kolla/a:broken"),
        "{}",
        a.reason
    );
    // A missing Secret heals only if someone creates it: it fails after the grace, not at the timeout.
    let b = outcome.component("b").expect("b");
    assert!(
        b.reason.contains(
            " — CreateContainerConfigError: secret \"b-db\" not found (for 500ms, --pod-failure-grace; it does not heal on its own)"
        ),
        "{}",
        b.reason
    );
    assert!(!b.timed_out && b.elapsed < Duration::from_secs(3), "{b:?}");
    // Pods are listed by the workload's selector, never read one by one, and at most every 2s per workload
    // (a: 3s of waiting, b: under 3s).
    let log = e.sim.request_log();
    let pods: Vec<&RequestRecord> = log.iter().filter(|r| r.resource == "pods").collect();
    assert!(pods.iter().all(|r| r.verb == "list"), "{pods:#?}");
    assert!(
        (2..=5).contains(&pods.len()),
        "{} lists of Pods: {pods:#?}",
        pods.len()
    );
}

#[tokio::test]
async fn cancellation_stops_health_waits_promptly_and_the_next_pass_converges() {
    let e = env(SimOptions {
        ready_after: Duration::from_secs(2),
        ..sim_opts()
    })
    .await;
    let t = topology(&[("a", &[]), ("b", &["a"])], Duration::from_secs(60));
    let mut desired = component("a");
    desired.extend(component("b"));
    let cancel = CancellationToken::new();
    let opts = RolloutOptions {
        cancel: cancel.clone(),
        ..fast_opts()
    };
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        trigger.cancel();
    });
    let start = Instant::now();
    let (_, outcome) = pass(&e.kube, &t, &desired, &opts).await;
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "returned {took:?} after start, cancel came at 400ms"
    );
    assert!(outcome.cancelled);
    assert_eq!(outcome.component("a").expect("a").state, ComponentState::Skipped);
    assert_eq!(outcome.component("b").expect("b").state, ComponentState::Skipped);
    let log = e.sim.request_log();
    assert!(
        !log.iter()
            .any(|r| r.is_write() && r.name.as_deref().is_some_and(|n| n.starts_with('b')))
    );

    let (plan, next) = pass(&e.kube, &t, &desired, &fast_opts()).await;
    assert!(next.converged(), "{next:#?}");
    // a's objects were all written before the cancel: the new pass plans them unchanged from live state.
    assert_eq!(plan.summary.unchanged, 3, "{plan:#?}");
    assert_eq!(plan.summary.create, 3);
}

#[tokio::test]
async fn converges_through_injected_server_errors_and_throttling() {
    let mut faults = FaultConfig {
        error_status: 500,
        throttle_rate: 0.03,
        retry_after_secs: 1,
        ..FaultConfig::default()
    };
    faults.error_rates.insert("*".into(), 0.2);
    let e = env(sim_opts()).await;
    let (t, desired) = diamond();
    e.sim.faults().set(faults).expect("faults");
    e.sim.clear_request_log();
    let (_, outcome) = pass(&e.kube, &t, &desired, &fast_opts()).await;
    e.sim.faults().clear();
    assert!(outcome.converged(), "{outcome:#?}");
    let log = e.sim.request_log();
    assert!(
        log.iter().filter(|r| r.status == 500).count() > 3,
        "server errors were injected"
    );
    for o in &desired {
        let ok = log
            .iter()
            .filter(|r| r.verb == "patch" && r.status < 300 && touches(r, &o.reference))
            .count();
        assert_eq!(ok, 1, "{}: applied exactly once", o.reference);
    }
    let kinds: Vec<KindRef> = KINDS.iter().map(|(a, k)| KindRef::new(*a, *k)).collect();
    let live = e
        .kube
        .list_owned(&kinds, &[NS.to_string()], &owned_selector(TOPOLOGY))
        .await
        .expect("live");
    let mut names: Vec<String> = live
        .iter()
        .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
        .collect();
    names.sort();
    let mut want: Vec<String> = desired
        .iter()
        .map(|o| format!("\"{}\"/\"{}\"", o.reference.kind, o.reference.name))
        .collect();
    want.sort();
    assert_eq!(names, want, "no object lost or duplicated");
}

#[tokio::test]
async fn independent_components_run_in_parallel_up_to_the_bound() {
    let e = env(sim_opts()).await;
    let names = ["a", "b", "c", "d", "e"];
    let t = topology(
        &names.iter().map(|n| (*n, &[][..])).collect::<Vec<_>>(),
        Duration::from_secs(30),
    );
    let desired: Vec<RenderedObject> = names.iter().flat_map(|n| component(n)).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = RolloutOptions {
        concurrency: 2,
        progress: Some(tx),
        ..fast_opts()
    };
    let start = Instant::now();
    let (_, outcome) = pass(&e.kube, &t, &desired, &opts).await;
    let took = start.elapsed();
    assert!(outcome.converged(), "{outcome:#?}");
    let (mut running, mut most) = (0usize, 0usize);
    while let Ok(ev) = rx.try_recv() {
        match ev {
            ProgressEvent::ComponentStarted { .. } => {
                running += 1;
                most = most.max(running);
            }
            ProgressEvent::ComponentFinished { .. } => running -= 1,
            _ => {}
        }
    }
    assert_eq!(most, 2, "two at a time, never more");
    // Five components needing ~300ms each, two at a time: at least three rounds.
    assert!(took >= Duration::from_millis(900), "{took:?}");
}

/// An API server that rejects the first apply of one Deployment as a change to an immutable field, the way
/// kube-apiserver does for `spec.selector`, and otherwise behaves: delete removes it, the next apply creates
/// it, a read returns it ready. (The simulator does not model immutable fields.)
mod immutable_server {
    use std::sync::{Arc, Mutex};

    use axum::http::{Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use serde_json::{Value, json};

    #[derive(Default)]
    pub struct State {
        pub requests: Vec<String>,
        pub rejected: bool,
        pub deleted: bool,
        pub exists: bool,
    }

    fn status(code: u16, reason: &str, message: &str, details: Value) -> Response {
        let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                          "reason": reason, "message": message, "details": details});
        (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response()
    }

    fn ready() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "keystone-api", "namespace": "openstack", "generation": 1, "resourceVersion": "7"},
               "spec": {"replicas": 1},
               "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}})
    }

    pub async fn start() -> (keelson::cluster::Kube, Arc<Mutex<State>>) {
        let state = Arc::new(Mutex::new(State {
            exists: true,
            ..State::default()
        }));
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri| {
            let state = shared.clone();
            async move {
                let mut s = state.lock().expect("state");
                let path = uri.path().to_string();
                s.requests.push(format!("{method} {path}"));
                if path == "/apis/apps/v1" {
                    return axum::Json(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1",
                        "resources": [{"name": "deployments", "singularName": "deployment", "namespaced": true,
                                       "kind": "Deployment", "verbs": ["create", "delete", "get", "list", "patch"]}]}))
                    .into_response();
                }
                if path != "/apis/apps/v1/namespaces/openstack/deployments/keystone-api" {
                    return status(404, "NotFound", "not found", json!({}));
                }
                match method {
                    Method::PATCH if s.exists && !s.deleted => {
                        s.rejected = true;
                        status(422, "Invalid",
                            "Deployment.apps \"keystone-api\" is invalid: spec.selector: Invalid value: \
                             v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"keystone\", \"tier\":\"api\"}}: field is immutable",
                            json!({"name": "keystone-api", "group": "apps", "kind": "Deployment",
                                   "causes": [{"reason": "FieldValueInvalid", "field": "spec.selector",
                                               "message": "Invalid value: field is immutable"}]}))
                    }
                    Method::PATCH => {
                        s.deleted = false;
                        s.exists = true;
                        axum::Json(ready()).into_response()
                    }
                    Method::DELETE => {
                        s.deleted = true;
                        axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})).into_response()
                    }
                    Method::GET if s.deleted => status(404, "NotFound", "deployments \"keystone-api\" not found", json!({})),
                    Method::GET => axum::Json(ready()).into_response(),
                    _ => status(405, "MethodNotAllowed", "no", json!({})),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut config = kube::Config::new(format!("http://{addr}").parse().expect("uri"));
        config.default_retry = false;
        let client = kube::Client::try_from(config).expect("client");
        let kube = keelson::cluster::connect(keelson::cluster::Target::Client(client))
            .await
            .expect("connect");
        (kube, state)
    }
}

fn selector_change_plan(recreate_on_immutable_change: bool) -> Plan {
    use keelson::plan::{Action, Change, ComponentPlan, Summary, Wave};
    let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "keystone-api", "namespace": "openstack"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "keystone", "tier": "api"}}}});
    Plan {
        topology: TOPOLOGY.into(),
        revision: "rev".into(),
        previous_revision: None,
        waves: vec![Wave {
            index: 0,
            components: vec![ComponentPlan {
                name: "keystone".into(),
                project: "keystone".into(),
                depends_on: Vec::new(),
                recreate_on_immutable_change,
                changes: vec![Change {
                    action: Action::Update,
                    reference: keelson::cluster::object_ref(&body).expect("ref"),
                    component: "keystone".into(),
                    stage: Stage::Workload,
                    diff: Vec::new(),
                    drift: false,
                    desired: Some(body),
                    step: 0,
                    timeout: None,
                    secret: None,
                }],
                ..ComponentPlan::default()
            }],
        }],
        deletions: Vec::new(),
        refusals: Vec::new(),
        warnings: Vec::new(),
        skipped_checks: Vec::new(),
        summary: Summary::default(),
    }
}

#[tokio::test]
async fn immutable_field_changes_fail_with_the_field_unless_recreate_is_allowed() {
    // Not allowed: the component fails, naming the object and the field; nothing is deleted.
    let (kube, state) = immutable_server::start().await;
    let outcome = execute(&kube, &selector_change_plan(false), &fast_opts()).await;
    let keystone = outcome.component("keystone").expect("keystone");
    assert_eq!(keystone.state, ComponentState::Failed);
    assert!(
        keystone.reason.starts_with(
            "Deployment openstack/keystone-api: apply failed: field spec.selector is immutable (the object must be recreated to change it)"
        ),
        "{}",
        keystone.reason
    );
    let requests = state.lock().expect("state").requests.clone();
    assert!(!requests.iter().any(|r| r.starts_with("DELETE")), "{requests:?}");

    // Allowed by the topology (`spec.recreateOnImmutableChange`): delete, wait until gone, apply anew.
    let (kube, state) = immutable_server::start().await;
    let outcome = execute(&kube, &selector_change_plan(true), &fast_opts()).await;
    assert!(outcome.converged(), "{outcome:#?}");
    let object = "/apis/apps/v1/namespaces/openstack/deployments/keystone-api";
    let requests: Vec<String> = state
        .lock()
        .expect("state")
        .requests
        .iter()
        .filter(|r| r.ends_with(object))
        .cloned()
        .collect();
    assert_eq!(
        requests
            .iter()
            .map(|r| r.split(' ').next().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["PATCH", "DELETE", "GET", "PATCH", "GET"],
        "{requests:?}"
    );
    assert_eq!(outcome.changes.entries[0].change, ChangeKind::Created);
}

mod pipeline {
    //! The whole pass over a repository on disk: load, render, read live, plan, roll out, record the inventory.
    use std::path::Path;

    use keelson::cluster::{KindRef, Kube, owned_selector};
    use keelson::plan::{Inventory, Plan, PlanInput, PlanOptions};
    use keelson::render::{RenderOptions, render};
    use keelson::rollout::{RolloutOptions, RolloutOutcome, execute};
    use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};
    use keelson::topology::load;

    pub const KEELSON: &str = "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: demo\nspec:\n  namespace: openstack\n  healthTimeout: 30s\n";
    pub const MARIADB: &str = "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: mariadb\nspec:\n  workload: StatefulSet\n  image: mariadb-server\n  ports:\n    - name: mysql\n      port: 3306\n  volumes:\n    - name: data\n      mountPath: /var/lib/mysql\n      persistent:\n        size: 1Gi\n";
    pub const KEYSTONE: &str = "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: keystone\nspec:\n  dependsOn: [mariadb]\n  image: keystone\n  replicas: 2\n  command: /usr/sbin/apache2 -DFOREGROUND\n  ports:\n    - name: api\n      port: 5000\n  configFiles:\n    - source: config/keystone/keystone.conf\n      dest: /etc/keystone/keystone.conf\n  jobs:\n    - name: db-sync\n      phase: pre\n      command: keystone-manage db_sync\n";
    pub const GLANCE: &str = "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: glance\nspec:\n  dependsOn: [keystone]\n  image: glance-api\n  ports:\n    - name: api\n      port: 9292\n";

    pub fn write_repo(dir: &Path, keystone_conf: &str, with_glance: bool) {
        let _ = std::fs::remove_dir_all(dir);
        let files = [
            ("keelson.yaml", KEELSON),
            ("services/mariadb.yaml", MARIADB),
            ("services/keystone.yaml", KEYSTONE),
            ("config/keystone/keystone.conf", keystone_conf),
        ];
        for (path, content) in files
            .iter()
            .chain(with_glance.then_some(&("services/glance.yaml", GLANCE)))
        {
            let full = dir.join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, content).expect("write");
        }
    }

    const KINDS: [(&str, &str); 9] = [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
        ("v1", "PersistentVolumeClaim"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
        ("policy/v1", "PodDisruptionBudget"),
    ];

    pub async fn pass(
        kube: &Kube,
        dir: &Path,
        revision: &str,
        opts: &RolloutOptions,
    ) -> (Plan, RolloutOutcome) {
        let snapshot = Snapshot::from_dir(dir, DEFAULT_MAX_FILE_SIZE).expect("snapshot");
        let topology = load(&snapshot).unwrap_or_else(|d| panic!("topology: {d}"));
        let desired = render(
            &topology,
            &RenderOptions {
                revision: Some(revision.to_string()),
            },
        )
        .expect("render");
        let ns = topology.spec.namespace.clone();
        let inventory = kube
            .read_inventory(&ns, &topology.name)
            .await
            .expect("inventory read")
            .map(|text| Inventory::from_json(&text).expect("inventory parses"));
        let kinds: Vec<KindRef> = KINDS.iter().map(|(a, k)| KindRef::new(*a, *k)).collect();
        let live = kube
            .list_owned(&kinds, std::slice::from_ref(&ns), &owned_selector(&topology.name))
            .await
            .expect("live");
        let plan_opts = PlanOptions {
            allow_prune_over_budget: true,
            ..PlanOptions::default()
        };
        let plan = keelson::plan::plan(&PlanInput {
            topology: &topology,
            revision,
            desired: &desired.objects,
            live: &live,
            foreign: &[],
            inventory: inventory.as_ref(),
            options: &plan_opts,
        })
        .expect("plan");
        assert!(!plan.is_blocked(), "{:?}", plan.blocked_message());
        let opts = RolloutOptions {
            poll_interval: opts.poll_interval,
            cancel: opts.cancel.clone(),
            ..RolloutOptions::default()
        };
        let outcome = execute(kube, &plan, &opts).await;
        if outcome.converged() {
            kube.write_inventory(&ns, &topology.name, &Inventory::from_plan(&plan).to_json(), false)
                .await
                .expect("inventory written");
        }
        (plan, outcome)
    }
}

#[tokio::test]
async fn a_repository_rolls_out_converges_idempotently_and_prunes_a_removed_service() {
    let e = env(sim_opts()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("repo");
    pipeline::write_repo(&dir, "[DEFAULT]\ndebug = false\n", true);

    let (plan, first) = pipeline::pass(&e.kube, &dir, "r1", &fast_opts()).await;
    assert!(first.converged(), "{first:#?}");
    assert_eq!(first.changes.count(ChangeKind::Created), plan.summary.create);
    assert_eq!(
        states(&first).into_values().collect::<BTreeSet<_>>(),
        BTreeSet::from([ComponentState::Healthy])
    );

    // The same commit on the converged cluster: zero writes.
    e.sim.clear_request_log();
    let (plan, again) = pipeline::pass(&e.kube, &dir, "r1", &fast_opts()).await;
    assert!(again.converged(), "{again:#?}");
    let writes: Vec<RequestRecord> = e
        .sim
        .request_log()
        .into_iter()
        .filter(|r| r.is_write() && r.name.as_deref() != Some("keelson-inventory-demo"))
        .collect();
    assert!(
        writes.is_empty(),
        "{writes:#?}\n{}",
        keelson::plan::to_text(&plan, false)
    );

    // A config change rolls keystone only.
    pipeline::write_repo(&dir, "[DEFAULT]\ndebug = true\n", true);
    e.sim.clear_request_log();
    let (_, edit) = pipeline::pass(&e.kube, &dir, "r2", &fast_opts()).await;
    assert!(edit.converged(), "{edit:#?}");
    let written: BTreeSet<String> = e
        .sim
        .request_log()
        .into_iter()
        .filter(|r| r.is_write() && r.name.as_deref() != Some("keelson-inventory-demo"))
        .filter_map(|r| r.name)
        .collect();
    assert!(
        !written.is_empty() && written.iter().all(|n| n.starts_with("keystone")),
        "{written:?}"
    );

    // Removing glance prunes its objects, after every apply.
    pipeline::write_repo(&dir, "[DEFAULT]\ndebug = true\n", false);
    let (plan, removed) = pipeline::pass(&e.kube, &dir, "r3", &fast_opts()).await;
    assert!(removed.converged(), "{removed:#?}");
    assert!(plan.summary.delete > 0);
    let deleted: Vec<&str> = removed
        .changes
        .entries
        .iter()
        .filter(|c| c.change == ChangeKind::Deleted)
        .map(|c| c.object.name.as_str())
        .collect();
    assert_eq!(deleted.len(), plan.summary.delete);
    assert!(deleted.iter().all(|n| n.starts_with("glance")), "{deleted:?}");
}
