//! Simulated cluster throughput: holds at least 5,000 objects and serves a mixed get/list/apply load
//! through kube's client, printing requests per second and latency percentiles.
//!
//! Run: `cargo bench -j2 --bench sim` (environment: SIM_BENCH_OBJECTS, SIM_BENCH_SECS, SIM_BENCH_CLIENTS).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use keelson::sim::{Cluster, SimOptions};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rand::Rng;
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const NAMESPACES: usize = 50;

fn object(ns: usize, i: usize, rev: u64) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{i}"), "namespace": format!("ns-{ns}"),
            "labels": {"app.kubernetes.io/managed-by": "keelson", "service": format!("svc-{}", i % 10)}},
        "data": {"config": format!("revision {rev} of object {i}: {}", "x".repeat(200))}
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let objects = env("SIM_BENCH_OBJECTS", 5_000);
    let secs = env("SIM_BENCH_SECS", 10) as u64;
    let clients = env("SIM_BENCH_CLIENTS", 8);
    let cluster = Cluster::start(SimOptions::default())
        .await
        .expect("start simulator");
    let client = cluster.client();

    let t = Instant::now();
    let nss: Api<Namespace> = Api::all(client.clone());
    for n in 0..NAMESPACES {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": format!("ns-{n}")}})).unwrap();
        nss.create(&PostParams::default(), &ns).await.expect("namespace");
    }
    let per_ns = objects.div_ceil(NAMESPACES);
    let mut loads = Vec::new();
    for n in 0..NAMESPACES {
        let client = client.clone();
        loads.push(tokio::spawn(async move {
            let api: Api<ConfigMap> = Api::namespaced(client, &format!("ns-{n}"));
            for i in 0..per_ns {
                api.patch(
                    &format!("cm-{i}"),
                    &PatchParams::apply("keelson"),
                    &Patch::Apply(object(n, i, 0)),
                )
                .await
                .expect("apply");
            }
        }));
    }
    for l in loads {
        l.await.unwrap();
    }
    let held = cluster.stats().objects;
    println!(
        "loaded {held} objects ({} configmaps) in {:.2?}",
        NAMESPACES * per_ns,
        t.elapsed()
    );
    assert!(
        held >= objects,
        "expected at least {objects} objects, holding {held}"
    );

    cluster.clear_request_log();
    let before = cluster.stats();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..clients {
        let client = client.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut lat: Vec<(u8, Duration)> = Vec::new();
            let mut rev = 1u64;
            while !stop.load(Ordering::Relaxed) {
                let (n, i, roll) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(0..NAMESPACES),
                        rng.random_range(0..per_ns),
                        rng.random_range(0..10),
                    )
                };
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), &format!("ns-{n}"));
                let t = Instant::now();
                let kind = match roll {
                    0..=5 => {
                        api.get(&format!("cm-{i}")).await.expect("get");
                        0
                    }
                    6..=7 => {
                        let lp = ListParams::default().labels(&format!("service=svc-{}", i % 10));
                        api.list(&lp).await.expect("list");
                        1
                    }
                    _ => {
                        rev += 1;
                        let pp = PatchParams::apply("keelson");
                        api.patch(
                            &format!("cm-{i}"),
                            &pp,
                            &Patch::Apply(object(n, i, rev * 100 + w as u64)),
                        )
                        .await
                        .expect("apply");
                        2
                    }
                };
                lat.push((kind, t.elapsed()));
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<(u8, Duration)> = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let after = cluster.stats();
    let total = after.resource_requests - before.resource_requests;
    println!(
        "mixed load: {clients} clients, {secs}s, {total} requests = {:.0} req/s (objects held: {})",
        total as f64 / secs as f64,
        after.objects
    );
    for (kind, name) in [
        (0u8, "get"),
        (1, "list (label selector, ~10 items)"),
        (2, "apply (server-side)"),
    ] {
        let mut l: Vec<Duration> = all.iter().filter(|(k, _)| *k == kind).map(|(_, d)| *d).collect();
        l.sort();
        if l.is_empty() {
            continue;
        }
        let p = |q: f64| l[((l.len() as f64 - 1.0) * q) as usize];
        println!(
            "  {name:<34} n={:<6} p50={:>8.2?} p99={:>8.2?} max={:>8.2?}",
            l.len(),
            p(0.5),
            p(0.99),
            l[l.len() - 1]
        );
    }
    cluster.shutdown().await;
}
