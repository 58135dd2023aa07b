//! Time to load + validate and to render a generated 1000-component topology.
//! Run with `cargo bench --bench render`; prints the median of several runs.

use std::path::Path;
use std::time::{Duration, Instant};

use keelson::render::{RenderOptions, render};
use keelson::source::{DEFAULT_MAX_FILE_SIZE, Snapshot};

const COMPONENTS: usize = 1000;
const RUNS: usize = 7;

/// Ten independent chains of 100 components each; every component has a config file, a port, a
/// probe, env from a Secret, and every tenth one a pre-job and a persistent volume.
fn write_topology(root: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join("services"))?;
    std::fs::create_dir_all(root.join("config"))?;
    std::fs::write(
        root.join("keelson.yaml"),
        "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: bench\nspec:\n  namespace: bench\n",
    )?;
    for i in 0..COMPONENTS {
        let name = format!("svc-{i:04}");
        let depends = if i % 100 == 0 {
            String::new()
        } else {
            format!("  dependsOn: [svc-{:04}]\n", i - 1)
        };
        let extra = if i % 10 == 0 {
            "  volumes:\n    - name: data\n      mountPath: /var/lib/data\n      persistent:\n        size: 1Gi\n  jobs:\n    - name: db-sync\n      phase: pre\n      command: manage db_sync\n"
        } else {
            ""
        };
        let service = format!(
            "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{depends}  image: keystone\n  replicas: 2\n  command: /usr/bin/server\n  args: [--verbose]\n  ports:\n    - name: api\n      port: 8080\n  readinessProbe:\n    httpGet:\n      path: /\n      port: 8080\n  env:\n    - name: OS_DATABASE__CONNECTION\n      secretKeyRef:\n        name: {name}\n        key: connection\n  configFiles:\n    - source: config/{name}.conf\n      dest: /etc/{name}/{name}.conf\n      owner: svc\n{extra}"
        );
        std::fs::write(root.join(format!("services/{name}.yaml")), service)?;
        let config = format!("[DEFAULT]\nname = {name}\n{}", "option = value\n".repeat(40));
        std::fs::write(root.join(format!("config/{name}.conf")), config)?;
    }
    Ok(())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_topology(dir.path()).expect("write topology");
    let snapshot = Snapshot::from_dir(dir.path(), DEFAULT_MAX_FILE_SIZE).expect("snapshot");

    let mut load_times = Vec::new();
    let mut topology = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let loaded = keelson::topology::load(&snapshot).unwrap_or_else(|d| panic!("invalid:\n{d}"));
        load_times.push(start.elapsed());
        topology = Some(loaded);
    }
    let topology = topology.expect("at least one run");

    let mut render_times = Vec::new();
    let mut objects = 0;
    let mut bytes = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let rendered = render(
            &topology,
            &RenderOptions {
                revision: Some("bench".into()),
            },
        )
        .expect("render");
        render_times.push(start.elapsed());
        objects = rendered.objects.len();
        bytes = serde_json::to_vec(&rendered.objects.iter().map(|o| &o.body).collect::<Vec<_>>())
            .map_or(0, |v| v.len());
    }
    println!("topology: {COMPONENTS} components, {objects} objects, {bytes} bytes of JSON");
    println!(
        "load + validate: median {:?} over {RUNS} runs",
        median(load_times)
    );
    println!(
        "render:          median {:?} over {RUNS} runs",
        median(render_times)
    );
}
