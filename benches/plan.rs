//! Planning cost for a large cloud: components in a layered dependency graph, six objects each (a config
//! file of 200 lines, a Service, a ServiceAccount, a pre-job, a Deployment, a post-job). Prints the median
//! time of `plan` for an idle pass (all unchanged) and for a pass where every tenth config changed and a
//! tenth of the components were removed, and the time of each output format.
//!
//! `cargo bench --bench plan [-- <components>]` (default 500 components, 3000 objects).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use keelson::object::{ANNOTATION_HASH, LABEL_MANAGED_BY, LABEL_SERVICE, LABEL_TOPOLOGY, ObjectRef};
use keelson::plan::{Inventory, Plan, PlanInput, PlanOptions, plan, to_json, to_markdown, to_text};
use keelson::render::{RenderedObject, Stage};
use keelson::topology::{Component, ServiceSpec, Topology, TopologySpec};

const NS: &str = "openstack";

fn topology(n: usize) -> Topology {
    let spec: TopologySpec = serde_json::from_value(json!({"namespace": NS})).expect("spec");
    let mut components = BTreeMap::new();
    for i in 0..n {
        // Each component depends on up to two components of the previous layer of 20.
        let deps: Vec<String> = if i < 20 {
            vec![]
        } else {
            vec![name(i - 20), name(i - 20 + (i % 7).min(19 - i % 20))]
        };
        let mut deps = deps;
        deps.dedup();
        let service: ServiceSpec =
            serde_json::from_value(json!({"image": "img", "dependsOn": deps})).expect("service");
        components.insert(
            name(i),
            Component {
                name: name(i),
                project: name(i),
                file: format!("services/{}.yaml", name(i)),
                spec: service,
                image: "img".into(),
                job_images: vec![],
                health_timeout: Duration::from_secs(600),
                config_contents: vec![],
                manifests: vec![],
                container_images: Default::default(),
                toolbox_image: None,
                encrypted_files: Default::default(),
            },
        );
    }
    Topology {
        name: "bench".into(),
        spec,
        health_timeout: Duration::from_secs(600),
        components,
        sync_windows: Default::default(),
    }
}

fn name(i: usize) -> String {
    format!("svc-{i:04}")
}

fn object(
    component: &str,
    stage: Stage,
    api: &str,
    kind: &str,
    obj_name: &str,
    fields: Value,
    version: u32,
) -> RenderedObject {
    let hash = format!("{kind}-{obj_name}-{version}");
    let mut body = json!({
        "apiVersion": api, "kind": kind,
        "metadata": {"name": obj_name, "namespace": NS,
            "labels": {LABEL_MANAGED_BY: "keelson", LABEL_TOPOLOGY: "bench", LABEL_SERVICE: component},
            "annotations": {ANNOTATION_HASH: hash}},
    });
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), fields) {
        b.extend(extra);
    }
    RenderedObject {
        component: component.into(),
        stage,
        step: 0,
        timeout: None,
        secret: None,
        reference: ObjectRef {
            api_version: api.into(),
            kind: kind.into(),
            namespace: Some(NS.into()),
            name: obj_name.into(),
        },
        hash,
        body,
    }
}

fn render(topo: &Topology, version_of: impl Fn(usize) -> u32) -> Vec<RenderedObject> {
    let mut out = Vec::new();
    for (i, c) in topo.components.keys().enumerate() {
        let v = version_of(i);
        let conf: String = (0..200)
            .map(|l| format!("option_{l} = value-{}\n", if l == 100 { v } else { 0 }))
            .collect();
        out.push(object(
            c,
            Stage::Config,
            "v1",
            "ConfigMap",
            &format!("{c}-config"),
            json!({"data": {"app.conf": conf}}),
            v,
        ));
        out.push(object(c, Stage::Config, "v1", "ServiceAccount", c, json!({}), 0));
        out.push(object(
            c,
            Stage::Service,
            "v1",
            "Service",
            c,
            json!({"spec": {"ports": [{"name": "api", "port": 8080}]}}),
            0,
        ));
        out.push(object(
            c,
            Stage::PreJob,
            "batch/v1",
            "Job",
            &format!("{c}-db-sync"),
            json!({"spec": {"backoffLimit": 3}}),
            0,
        ));
        let deployment = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "main", "image": format!("img:{v}"), "ports": [{"containerPort": 8080}],
             "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]}]}}}});
        out.push(object(
            c,
            Stage::Workload,
            "apps/v1",
            "Deployment",
            c,
            deployment,
            v,
        ));
        out.push(object(
            c,
            Stage::PostJob,
            "batch/v1",
            "Job",
            &format!("{c}-bootstrap"),
            json!({"spec": {"backoffLimit": 3}}),
            0,
        ));
    }
    out
}

fn live_of(desired: &[RenderedObject]) -> Vec<Value> {
    desired
        .iter()
        .map(|o| {
            let mut l = o.body.clone();
            l["metadata"]["uid"] = json!("uid");
            l["metadata"]["resourceVersion"] = json!("42");
            l["metadata"]["managedFields"] = json!([{"manager": "keelson"}]);
            l["status"] = json!({"observedGeneration": 1});
            l
        })
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut samples = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        last = Some(f());
        samples.push(start.elapsed());
    }
    (median(samples), last.expect("at least one run"))
}

fn run_plan(
    topo: &Topology,
    desired: &[RenderedObject],
    live: &[Value],
    inventory: Option<&Inventory>,
) -> Plan {
    let options = PlanOptions {
        allow_prune_over_budget: true,
        ..PlanOptions::default()
    };
    plan(&PlanInput {
        topology: topo,
        revision: "r2",
        desired,
        live,
        foreign: &[],
        inventory,
        options: &options,
    })
    .expect("plan")
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500);
    let runs = 7;
    let full = topology(n);
    let v1 = render(&full, |_| 1);
    let live = live_of(&v1);

    let (idle, idle_plan) = time(runs, || run_plan(&full, &v1, &live, None));
    assert!(!idle_plan.has_changes());

    // Every tenth component changes its config and image; components of the last tenth are removed.
    let mut smaller = full.clone();
    let removed: Vec<String> = smaller.components.keys().skip(n - n / 10).cloned().collect();
    for r in &removed {
        smaller.components.remove(r);
    }
    // Nothing may depend on a removed component; the layered graph only points backwards, so cut those edges.
    for c in smaller.components.values_mut() {
        c.spec.depends_on.retain(|d| !removed.contains(&d.component));
    }
    let v2 = render(&smaller, |i| if i % 10 == 0 { 2 } else { 1 });
    let inventory = Inventory::from_plan(&idle_plan);
    let (busy, busy_plan) = time(runs, || run_plan(&smaller, &v2, &live, Some(&inventory)));
    let s = busy_plan.summary;

    let (text_t, text) = time(runs, || to_text(&busy_plan, false));
    let (md_t, md) = time(runs, || to_markdown(&busy_plan));
    let (json_t, json) = time(runs, || to_json(&busy_plan));

    println!(
        "plan bench: {n} components, {} objects, median of {runs} runs",
        v1.len()
    );
    println!(
        "  plan, nothing changed:         {idle:>10.2?}  ({} unchanged)",
        idle_plan.summary.unchanged
    );
    println!(
        "  plan, 10% changed, 10% removed: {busy:>10.2?}  ({} update, {} unchanged, {} delete in {} deletion waves)",
        s.update,
        s.unchanged,
        s.delete,
        busy_plan.deletions.len()
    );
    println!("  to_text:      {text_t:>10.2?}  ({} bytes)", text.len());
    println!("  to_markdown:  {md_t:>10.2?}  ({} bytes)", md.len());
    println!("  to_json:      {json_t:>10.2?}  ({} bytes)", json.len());
}
