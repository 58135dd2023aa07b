//! The simulated control plane under load: many Deployments become available (ReplicaSets, Pods, scheduling,
//! kubelets), API latency while the control plane works and once it rests, and a namespace full of Pods
//! deleted through the garbage collector. Prints figures.
//!
//! Run: `cargo bench -j2 --bench sim_workloads` (environment: SIM_BENCH_DEPLOYMENTS, SIM_BENCH_REPLICAS,
//! SIM_BENCH_NODES).

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use keelson::sim::{Cluster, SimOptions};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

async fn get_latency(client: &kube::Client, n: usize) -> (Duration, Duration) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        cms.get("kube-root-ca.crt").await.expect("get");
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let deployments = env("SIM_BENCH_DEPLOYMENTS", 200);
    let replicas = env("SIM_BENCH_REPLICAS", 2);
    let nodes = env("SIM_BENCH_NODES", 10) as u32;
    let cluster = Cluster::start(SimOptions {
        nodes,
        ready_after: Duration::from_millis(200),
        ..SimOptions::default()
    })
    .await
    .expect("start simulator");
    let client = cluster.client();
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "load"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.expect("namespace");
    let (idle_p50, idle_p99) = get_latency(&client, 200).await;

    let deps: Api<Deployment> = Api::namespaced(client.clone(), "load");
    let started = Instant::now();
    for i in 0..deployments {
        let name = format!("app-{i}");
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c",
                    "image": "app:1", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}});
        deps.patch(&name, &PatchParams::apply("bench"), &Patch::Apply(body))
            .await
            .expect("apply");
    }
    let applied = started.elapsed();
    let (busy_p50, busy_p99) = get_latency(&client, 100).await;
    loop {
        let list = deps.list(&ListParams::default()).await.expect("list");
        let available = list
            .items
            .iter()
            .filter(|d| d.status.as_ref().and_then(|s| s.available_replicas) == Some(replicas as i32))
            .count();
        if available == deployments {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{available}/{deployments} available"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_available = started.elapsed();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "load");
    let pod_count = pods.list(&ListParams::default()).await.expect("pods").items.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rest_p50, rest_p99) = get_latency(&client, 200).await;

    let deleting = Instant::now();
    nss.delete("load", &DeleteParams::default())
        .await
        .expect("delete namespace");
    while nss.get_opt("load").await.expect("get namespace").is_some() {
        assert!(
            deleting.elapsed() < Duration::from_secs(600),
            "namespace never went"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deleted = deleting.elapsed();

    println!(
        "{deployments} Deployments x {replicas} replicas on {nodes} nodes: applied in {applied:.2?}, \
         all available after {all_available:.2?} ({pod_count} Pods; ready_after 200ms)"
    );
    println!("namespace with {pod_count} Pods deleted (Terminating -> gone) in {deleted:.2?}");
    println!(
        "get latency: idle p50 {idle_p50:.2?} p99 {idle_p99:.2?}; while rolling out p50 {busy_p50:.2?} p99 {busy_p99:.2?}; at rest p50 {rest_p50:.2?} p99 {rest_p99:.2?}"
    );
    println!("objects held at the end: {}", cluster.stats().objects);
    cluster.shutdown().await;
}
