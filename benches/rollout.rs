//! Plan and rollout figures: a generated 1000-component topology rolled out against the simulated
//! cluster by Keelson (full rollout, then a no-op pass on the same commit), side by side with
//! `kubectl apply --server-side` of the same rendered objects against a fresh simulator.
//!
//! Run: `cargo bench --bench rollout` (prints the settings and a Markdown table).
//! `KEELSON_BENCH_COMPONENTS=N` changes the topology size (default 1000).
//!
//! The simulator runs in this process; every measured client runs in a child process of its own, so
//! its peak RSS is its own and not the simulator's:
//! - Keelson: this binary re-executes itself with `--scenario keelson ...`; the child runs one pass through
//!   the library (`reconciler::prepare` + `reconciler::execute`) and prints its own `VmHWM` at the end.
//! - kubectl: `VmHWM` of `/proc/<pid>/status` is polled every 2 ms while kubectl runs (the high-water mark
//!   only grows, so the last reading before exit is the peak up to the last 2 ms).
//!
//! Request counts come from the simulator's counters (differences of `Cluster::stats`), so nothing the
//! clients say about themselves is trusted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use keelson::cluster::{self, Target};
use keelson::reconciler::{self, PassSettings};
use keelson::render::{self, RenderOptions};
use keelson::sim::{Cluster, SimOptions, Stats};
use keelson::source::Snapshot;
use tokio_util::sync::CancellationToken;

const DEFAULT_COMPONENTS: usize = 1000;
const TOPOLOGY: &str = "bench";
const NAMESPACE: &str = "bench";
/// Simulated delays: small, so the figures measure the clients, not the simulated workloads.
const READY_AFTER: Duration = Duration::from_millis(10);
const JOB_DURATION: Duration = Duration::from_millis(10);
/// Components rolled out at once, and writes of one step sent at once.
const CONCURRENCY: usize = 8;
const WRITE_CONCURRENCY: usize = 4;
const MAX_FILE: u64 = 1 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--scenario") {
        return child(&args[2..]);
    }
    match parent() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rollout bench FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The topology

/// A small deterministic generator (no seed handling needed: the same topology on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Shape {
    components: usize,
    deployments: usize,
    statefulsets: usize,
    daemonsets: usize,
    layers: usize,
    config_files: usize,
    pre_jobs: usize,
    post_jobs: usize,
    manifests: usize,
    edges: usize,
}

fn config_text(name: &str, file: usize) -> String {
    let mut text = format!("# {name} configuration file {file}\n[DEFAULT]\ndebug = false\n");
    let _ = writeln!(text, "transport_url = rabbit://{name}:secret@rabbitmq-0:5672/");
    let _ = writeln!(text, "log_dir = /var/log/kolla/{name}\n\n[database]");
    let _ = writeln!(text, "connection = mysql+pymysql://{name}@mariadb-0/{name}");
    let _ = writeln!(text, "max_retries = -1\n\n[keystone_authtoken]");
    let _ = writeln!(
        text,
        "www_authenticate_uri = http://keystone:5000\nauth_type = password"
    );
    let _ = writeln!(
        text,
        "memcached_servers = memcached-0:11211\n\n[oslo_concurrency]"
    );
    let _ = writeln!(text, "lock_path = /var/lib/{name}/tmp");
    text
}

/// Writes the topology: 6 infrastructure roots (StatefulSets with data volumes), then layers of about 125
/// components each depending on 1-3 components of the layers before (mostly the previous one): mostly
/// Deployments with one or two config files and a pre-job, every 10th a StatefulSet with a persistent
/// volume and a PodDisruptionBudget manifest, every 16th a DaemonSet, every 20th with a post-job.
fn generate(root: &Path, count: usize) -> std::io::Result<Shape> {
    let write = |rel: &str, text: &str| -> std::io::Result<()> {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, text)
    };
    write(
        "keelson.yaml",
        &format!(
            "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: {TOPOLOGY}\nspec:\n  namespace: {NAMESPACE}\n  healthTimeout: 10m\n  policy:\n    allowHostNetwork: true\n"
        ),
    )?;
    let mut shape = Shape {
        components: count,
        ..Shape::default()
    };
    let roots = count.min(6);
    let per_layer = 125;
    let mut layers: Vec<Vec<String>> = vec![Vec::new()];
    let mut rng = Lcg(0x5eed);
    for i in 0..count {
        let (name, deps) = if i < roots {
            let base = ["mariadb", "rabbitmq", "memcached"][i % 3];
            (format!("{base}-{}", i / 3), Vec::new())
        } else {
            let layer_index = 1 + (i - roots) / per_layer;
            if layers.len() <= layer_index {
                layers.push(Vec::new());
            }
            let name = format!("l{layer_index}-svc-{i:04}");
            let wanted = 1 + rng.next(3);
            let mut deps: Vec<String> = Vec::new();
            for d in 0..wanted {
                // The first dependency comes from the previous layer, the others from any earlier layer.
                let from = if d == 0 {
                    layer_index - 1
                } else {
                    rng.next(layer_index)
                };
                let pool = &layers[from];
                let pick = pool[rng.next(pool.len())].clone();
                if !deps.contains(&pick) {
                    deps.push(pick);
                }
            }
            (name, deps)
        };
        let layer_index = if i < roots { 0 } else { 1 + (i - roots) / per_layer };
        shape.edges += deps.len();
        let infra = i < roots;
        let workload = if infra || i % 10 == 3 {
            "StatefulSet"
        } else if i % 16 == 5 {
            "DaemonSet"
        } else {
            "Deployment"
        };
        let mut spec = String::new();
        if !deps.is_empty() {
            let _ = writeln!(spec, "  dependsOn: [{}]", deps.join(", "));
        }
        let _ = writeln!(spec, "  workload: {workload}");
        let _ = writeln!(
            spec,
            "  image: {}",
            if infra { "mariadb-server" } else { "keystone" }
        );
        let _ = writeln!(spec, "  command: /usr/bin/{}-server --verbose", name);
        match workload {
            "DaemonSet" => {
                shape.daemonsets += 1;
                spec.push_str("  hostNetwork: true\n");
            }
            "StatefulSet" => {
                shape.statefulsets += 1;
                // Its PodDisruptionBudget is the raw manifest below, not the generated one.
                spec.push_str("  replicas: 3\n  disruptionBudget: {enabled: false}\n");
            }
            _ => {
                shape.deployments += 1;
                spec.push_str("  replicas: 2\n");
            }
        }
        spec.push_str(&format!(
            "  env:\n  - name: OS_LOG_LEVEL\n    value: info\n  - name: DB_PASSWORD\n    secretKeyRef: {{name: {name}-db, key: password}}\n"
        ));
        if workload != "DaemonSet" {
            let port = 5000 + (i % 4000);
            spec.push_str(&format!(
                "  ports:\n  - name: api\n    port: {port}\n  readinessProbe:\n    tcpSocket: {{port: {port}}}\n    periodSeconds: 10\n"
            ));
        }
        spec.push_str(
            "  resources:\n    requests: {cpu: 250m, memory: 512Mi}\n    limits: {memory: 1Gi}\n  volumes:\n  - name: logs\n    mountPath: /var/log/kolla\n    emptyDir: {}\n",
        );
        if workload == "StatefulSet" {
            spec.push_str("  - name: data\n    mountPath: /var/lib/data\n    persistent: {size: 10Gi}\n");
        }
        let files = if i % 3 == 0 { 2 } else { 1 };
        spec.push_str("  configFiles:\n");
        for f in 0..files {
            let source = format!("config/{name}/{name}-{f}.conf");
            write(&source, &config_text(&name, f))?;
            let _ = writeln!(
                spec,
                "  - source: {source}\n    dest: /etc/{name}/{name}-{f}.conf\n    owner: {}\n    perm: '0600'",
                if infra { "mysql" } else { "keystone" }
            );
            shape.config_files += 1;
        }
        let mut jobs = Vec::new();
        if workload != "DaemonSet" {
            jobs.push("  - name: db-sync\n    phase: pre\n    command: manage db_sync".to_string());
            shape.pre_jobs += 1;
        }
        if i % 20 == 7 {
            jobs.push("  - name: bootstrap\n    phase: post\n    command: manage bootstrap".to_string());
            shape.post_jobs += 1;
        }
        if !jobs.is_empty() {
            let _ = writeln!(spec, "  jobs:\n{}", jobs.join("\n"));
        }
        if workload == "StatefulSet" {
            let path = format!("manifests/{name}-pdb.yaml");
            write(
                &path,
                &format!(
                    "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: {name}\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n"
                ),
            )?;
            let _ = writeln!(spec, "  manifests: [{path}]");
            shape.manifests += 1;
        }
        write(
            &format!("services/{name}.yaml"),
            &format!("apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{spec}"),
        )?;
        layers[layer_index].push(name);
    }
    shape.layers = layers.len();
    Ok(shape)
}

// ---------------------------------------------------------------------------------------------------------
// Measurements

/// What one measured client run cost.
#[derive(Debug, Default, Clone)]
struct Figures {
    label: String,
    wall: Duration,
    /// Resource requests by verb, from the simulator.
    by_verb: BTreeMap<String, u64>,
    /// Requests without a verb (discovery, OpenAPI).
    other: u64,
    writes: u64,
    /// The most LIST requests any one resource got.
    max_lists_per_kind: u64,
    peak_rss_kib: u64,
    note: String,
}

impl Figures {
    fn requests(&self) -> u64 {
        self.by_verb.values().sum::<u64>() + self.other
    }
}

/// The most LIST requests one resource got between two readings.
fn max_lists(before: &Stats, after: &Stats) -> u64 {
    after
        .by_resource
        .iter()
        .map(|(resource, verbs)| {
            let was = before
                .by_resource
                .get(resource)
                .and_then(|v| v.get("list"))
                .copied()
                .unwrap_or(0);
            verbs.get("list").copied().unwrap_or(0) - was
        })
        .max()
        .unwrap_or(0)
}

fn diff(before: &Stats, after: &Stats) -> (BTreeMap<String, u64>, u64, u64) {
    let mut by_verb = BTreeMap::new();
    for (verb, n) in &after.by_verb {
        let d = n - before.by_verb.get(verb).copied().unwrap_or(0);
        if d > 0 {
            by_verb.insert(verb.clone(), d);
        }
    }
    let other = (after.requests - after.resource_requests) - (before.requests - before.resource_requests);
    (by_verb, other, after.writes - before.writes)
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn own_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(vm_hwm_kib)
        .unwrap_or(0)
}

/// Runs `command` to completion, polling its `VmHWM` every 2 ms; returns (wall, peak KiB, stdout).
async fn run_polled(mut command: tokio::process::Command) -> Result<(Duration, u64, String), String> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("spawn {command:?}: {e}"))?;
    let pid = child.id().ok_or("child exited before its pid was read")?;
    let status_path = format!("/proc/{pid}/status");
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let out = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut s).await;
        s
    });
    let err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await;
        s
    });
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if let Some(hwm) = std::fs::read_to_string(&status_path)
            .ok()
            .as_deref()
            .and_then(vm_hwm_kib)
        {
            peak = peak.max(hwm);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let wall = started.elapsed();
    let out = out.await.unwrap_or_default();
    let err = err.await.unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "{command:?} exited with {status}\nstdout:\n{out}\nstderr:\n{err}"
        ));
    }
    Ok((wall, peak, out))
}

fn sim_options() -> SimOptions {
    SimOptions {
        ready_after: READY_AFTER,
        job_duration: JOB_DURATION,
        request_log_capacity: 1_000,
        ..SimOptions::default()
    }
}

/// One Keelson pass in a child process; returns the figures and the child's own report line.
async fn keelson_pass(
    sim: &Cluster,
    label: &str,
    dir: &Path,
    kubeconfig: &Path,
) -> Result<(Figures, ChildReport), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut command = tokio::process::Command::new(exe);
    command
        .arg("--scenario")
        .arg("keelson")
        .arg(dir)
        .arg(kubeconfig)
        .env_remove("RUST_LOG");
    let before = sim.stats();
    let (wall, polled, out) = run_polled(command).await?;
    let after = sim.stats();
    let report = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| format!("{label}: the child printed no RESULT line:\n{out}"))
        .and_then(ChildReport::parse)?;
    if !report.converged {
        let why: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("UNHEALTHY ")).collect();
        return Err(format!("{label}: the pass did not converge: {}", why.join("; ")));
    }
    let (by_verb, other, writes) = diff(&before, &after);
    Ok((
        Figures {
            label: label.to_string(),
            wall,
            by_verb,
            other,
            writes,
            max_lists_per_kind: max_lists(&before, &after),
            // The child's own reading at exit is exact; the poll is the same figure up to the last 2 ms.
            peak_rss_kib: report.hwm_kib.max(polled),
            note: String::new(),
        },
        report,
    ))
}

async fn kubectl_apply(
    sim: &Cluster,
    label: &str,
    kubeconfig: &Path,
    file: &Path,
) -> Result<Figures, String> {
    let mut command = tokio::process::Command::new(kubectl());
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "--server-side", "-f"])
        .arg(file)
        // A fresh discovery cache per run, so both runs pay the same discovery cost.
        .arg("--cache-dir")
        .arg(file.with_extension(format!("cache-{label}")));
    let before = sim.stats();
    let (wall, peak, _) = run_polled(command).await?;
    let after = sim.stats();
    let (by_verb, other, writes) = diff(&before, &after);
    Ok(Figures {
        label: label.to_string(),
        wall,
        by_verb,
        other,
        writes,
        max_lists_per_kind: max_lists(&before, &after),
        peak_rss_kib: peak,
        note: String::new(),
    })
}

fn kubectl() -> PathBuf {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/kubectl");
    if local.exists() {
        local
    } else {
        PathBuf::from("kubectl")
    }
}

/// What the Keelson child reports about itself.
#[derive(Debug, Default, Clone)]
struct ChildReport {
    prepare_ms: u64,
    execute_ms: u64,
    hwm_kib: u64,
    create: usize,
    update: usize,
    unchanged: usize,
    delete: usize,
    converged: bool,
}

impl ChildReport {
    fn line(&self) -> String {
        format!(
            "prepare_ms={} execute_ms={} hwm_kib={} create={} update={} unchanged={} delete={} converged={}",
            self.prepare_ms,
            self.execute_ms,
            self.hwm_kib,
            self.create,
            self.update,
            self.unchanged,
            self.delete,
            self.converged
        )
    }

    fn parse(line: &str) -> Result<Self, String> {
        let mut r = ChildReport::default();
        for field in line.split_whitespace() {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| format!("bad field {field:?}"))?;
            let n = || v.parse::<u64>().map_err(|e| format!("{k}: {e}"));
            match k {
                "prepare_ms" => r.prepare_ms = n()?,
                "execute_ms" => r.execute_ms = n()?,
                "hwm_kib" => r.hwm_kib = n()?,
                "create" => r.create = n()? as usize,
                "update" => r.update = n()? as usize,
                "unchanged" => r.unchanged = n()? as usize,
                "delete" => r.delete = n()? as usize,
                "converged" => r.converged = v == "true",
                _ => return Err(format!("unknown field {k:?}")),
            }
        }
        Ok(r)
    }
}

/// The child: one pass through the library against the kubeconfig's cluster, then one RESULT line.
fn child(args: &[String]) -> ExitCode {
    let [scenario, dir, kubeconfig] = args else {
        eprintln!("usage: rollout --scenario keelson DIR KUBECONFIG");
        return ExitCode::from(2);
    };
    if scenario != "keelson" {
        eprintln!("unknown scenario {scenario:?}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(keelson_child(Path::new(dir), Path::new(kubeconfig))) {
        Ok(mut report) => {
            report.hwm_kib = own_hwm_kib();
            println!("RESULT {}", report.line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn keelson_child(dir: &Path, kubeconfig: &Path) -> Result<ChildReport, String> {
    let started = Instant::now();
    let snapshot = Snapshot::from_dir(dir, MAX_FILE).map_err(|e| e.to_string())?;
    let kube = cluster::connect(Target::Kubeconfig {
        path: Some(kubeconfig.to_path_buf()),
        context: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    let settings = settings();
    let prepared = reconciler::prepare(&kube, &snapshot, &settings)
        .await
        .map_err(|e| e.to_string())?;
    let prepare_ms = started.elapsed().as_millis() as u64;
    let outcome = reconciler::execute(&kube, &prepared, &settings, CancellationToken::new(), None)
        .await
        .map_err(|e| e.to_string())?;
    // A pass that did not converge says why (its first few components that did not end healthy).
    for c in outcome
        .rollout
        .components
        .iter()
        .filter(|c| c.state != keelson::rollout::ComponentState::Healthy)
        .take(5)
    {
        println!("UNHEALTHY {}: {} ({})", c.name, c.state, c.reason);
    }
    let s = &prepared.plan.summary;
    Ok(ChildReport {
        prepare_ms,
        execute_ms: started.elapsed().as_millis() as u64 - prepare_ms,
        hwm_kib: 0,
        create: s.create,
        update: s.update,
        unchanged: s.unchanged,
        delete: s.delete,
        converged: outcome.rollout.converged() && outcome.inventory_recorded,
    })
}

/// Creates the Secrets the topology's pods read but it does not make, as an operator does before the first
/// pass (Keelson's pre-flight does not start a component whose Secret is missing). Not measured.
async fn operator_secrets(kubeconfig: &Path, dir: &Path) -> Result<usize, String> {
    let kube = cluster::connect(Target::Kubeconfig {
        path: Some(kubeconfig.to_path_buf()),
        context: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    let snapshot = Snapshot::from_dir(dir, MAX_FILE).map_err(|e| e.to_string())?;
    keelson::cli::example_cluster::create_referenced_secrets(&kube, &snapshot).await
}

fn settings() -> PassSettings {
    PassSettings {
        concurrency: CONCURRENCY,
        write_concurrency: WRITE_CONCURRENCY,
        ..PassSettings::default()
    }
}

// ---------------------------------------------------------------------------------------------------------
// The parent

fn parent() -> Result<(), String> {
    let count = match std::env::var("KEELSON_BENCH_COMPONENTS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (7..=5000).contains(n))
            .ok_or_else(|| format!("KEELSON_BENCH_COMPONENTS={v:?}: want a number from 7 to 5000"))?,
        Err(_) => DEFAULT_COMPONENTS,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(run(count))
}

async fn run(count: usize) -> Result<(), String> {
    let hwm_start = own_hwm_kib();
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = tmp.path().join("topology");
    let shape = generate(&dir, count).map_err(|e| format!("generate: {e}"))?;

    // Load and render once here: for the kubectl file, and as a figure of the pure stages.
    let t = Instant::now();
    let snapshot = Snapshot::from_dir(&dir, MAX_FILE).map_err(|e| e.to_string())?;
    let topology = keelson::topology::load(&snapshot).map_err(|d| format!("invalid topology:\n{d}"))?;
    let load_time = t.elapsed();
    let t = Instant::now();
    let options = RenderOptions {
        revision: Some(snapshot.revision.id.clone()),
    };
    let rendered = render::render(&topology, &options).map_err(|e| e.to_string())?;
    let render_time = t.elapsed();
    // kubectl creates no namespaces; Keelson does, so kubectl's file starts with the Namespace.
    let mut yaml = format!("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n");
    for object in &rendered.objects {
        yaml.push_str("---\n");
        yaml.push_str(&keelson::yaml::to_string(&object.body).map_err(|e| e.to_string())?);
    }
    let yaml_file = tmp.path().join("rendered.yaml");
    std::fs::write(&yaml_file, &yaml).map_err(|e| e.to_string())?;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for o in &rendered.objects {
        *kinds.entry(o.reference.kind.clone()).or_default() += 1;
    }
    let hwm_after_render = own_hwm_kib();
    drop(rendered);
    drop(topology);

    println!("# Plan and rollout benchmark\n");
    println!(
        "topology: {} components ({} Deployments, {} StatefulSets, {} DaemonSets) in {} dependency layers, {} dependency edges, {} config files, {} pre-jobs, {} post-jobs, {} raw manifests",
        shape.components,
        shape.deployments,
        shape.statefulsets,
        shape.daemonsets,
        shape.layers,
        shape.edges,
        shape.config_files,
        shape.pre_jobs,
        shape.post_jobs,
        shape.manifests
    );
    let kinds_text: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "rendered: {} objects ({}), {} KiB of YAML",
        kinds.values().sum::<usize>(),
        kinds_text.join(", "),
        yaml.len() / 1024
    );
    println!(
        "simulator: readyAfter {:?}, jobDuration {:?}, controllers tick every 50 ms, in the bench process; nodes {}",
        READY_AFTER,
        JOB_DURATION,
        sim_options().nodes
    );
    println!(
        "keelson: concurrency {CONCURRENCY} components, {WRITE_CONCURRENCY} writes per step, health from watch events (no polling), one child process per pass (library: reconciler::prepare + execute)"
    );
    println!(
        "kubectl: {} apply --server-side -f rendered.yaml (one Namespace + the same objects), fresh discovery cache per run",
        kubectl().display()
    );
    println!(
        "in-process load {:.0} ms, render {:.0} ms; bench process VmHWM {} KiB at start, {} KiB after render",
        load_time.as_secs_f64() * 1e3,
        render_time.as_secs_f64() * 1e3,
        hwm_start,
        hwm_after_render
    );
    println!();

    // Keelson: full rollout, then the no-op pass, against one fresh simulator.
    let sim = Cluster::start(sim_options()).await.map_err(|e| e.to_string())?;
    let kc = tmp.path().join("keelson.kubeconfig");
    sim.write_kubeconfig(&kc).map_err(|e| e.to_string())?;
    let secrets = operator_secrets(&kc, &dir).await?;
    println!(
        "before each client: {secrets} Secrets the topology reads but does not make, created as an operator would"
    );
    let (mut k_full, full) = keelson_pass(&sim, "keelson full rollout", &dir, &kc).await?;
    if !full.converged || full.create == 0 {
        return Err(format!("the full rollout did not converge: {}", full.line()));
    }
    k_full.note = format!(
        "plan {} create; prepare {} ms + rollout {} ms",
        full.create, full.prepare_ms, full.execute_ms
    );
    let objects_after_keelson = sim.stats().objects;
    let (mut k_noop, noop) = keelson_pass(&sim, "keelson no-op pass", &dir, &kc).await?;
    k_noop.note = format!(
        "plan {} unchanged; prepare {} ms + rollout {} ms",
        noop.unchanged, noop.prepare_ms, noop.execute_ms
    );
    let keelson_stats = sim.stats();
    sim.shutdown().await;

    // kubectl: the same objects, full then again, against another fresh simulator.
    let sim = Cluster::start(sim_options()).await.map_err(|e| e.to_string())?;
    let kc = tmp.path().join("kubectl.kubeconfig");
    sim.write_kubeconfig(&kc).map_err(|e| e.to_string())?;
    operator_secrets(&kc, &dir).await?;
    let mut c_full = kubectl_apply(&sim, "full", &kc, &yaml_file).await?;
    c_full.label = "kubectl apply --server-side (create)".into();
    c_full.note = "no health waits, no dependency order".into();
    let mut c_noop = kubectl_apply(&sim, "noop", &kc, &yaml_file).await?;
    c_noop.label = "kubectl apply --server-side (again)".into();
    c_noop.note = "every object sent again".into();
    let kubectl_objects = sim.stats().objects;
    sim.shutdown().await;

    let rows = [&k_full, &k_noop, &c_full, &c_noop];
    println!("{}", table(&rows));
    println!("{}", targets(&k_full, &k_noop, &c_full, &c_noop));
    println!(
        "stored objects after Keelson: {objects_after_keelson} (with simulated pods and the inventory); after kubectl: {kubectl_objects}"
    );
    println!(
        "Keelson requests by resource over both passes: {}",
        by_resource_text(&keelson_stats)
    );
    println!(
        "bench process VmHWM at the end (simulator included): {} KiB",
        own_hwm_kib()
    );

    if noop.create + noop.update + noop.delete != 0 || !noop.converged {
        return Err(format!("the no-op pass planned changes: {}", noop.line()));
    }
    if k_noop.writes != 0 {
        return Err(format!(
            "the no-op pass sent {} write requests (want 0): {:?}",
            k_noop.writes, k_noop.by_verb
        ));
    }
    println!("no-op pass writes: 0 (checked)");
    Ok(())
}

/// The targets, each Keelson figure beside kubectl's.
fn targets(k_full: &Figures, k_noop: &Figures, c_full: &Figures, c_noop: &Figures) -> String {
    let gets = |f: &Figures| f.by_verb.get("get").copied().unwrap_or(0);
    let secs = |f: &Figures| f.wall.as_secs_f64();
    let mut rows: Vec<(String, String, String, bool)> = Vec::new();
    let noop_speedup = secs(c_noop) / secs(k_noop).max(1e-9);
    rows.push((
        "no-op pass: wall vs kubectl apply again".into(),
        format!("{:.2} s ({noop_speedup:.1}x faster)", secs(k_noop)),
        format!("{:.2} s; target >= 50x faster", secs(c_noop)),
        noop_speedup >= 50.0,
    ));
    rows.push((
        "no-op pass: LIST per kind / GET / writes".into(),
        format!(
            "{} / {} / {}",
            k_noop.max_lists_per_kind,
            gets(k_noop),
            k_noop.writes
        ),
        format!(
            "kubectl: {} / {} / {}; target <= 1 / 0 / 0",
            c_noop.max_lists_per_kind,
            gets(c_noop),
            c_noop.writes
        ),
        k_noop.max_lists_per_kind <= 1 && gets(k_noop) == 0 && k_noop.writes == 0,
    ));
    let full_ratio = secs(k_full) / secs(c_full).max(1e-9);
    rows.push((
        "full gated rollout: wall vs kubectl create".into(),
        format!("{:.2} s ({full_ratio:.2}x kubectl)", secs(k_full)),
        format!("{:.2} s (no health gates); target <= 1.0x", secs(c_full)),
        full_ratio <= 1.0,
    ));
    let per_write = |f: &Figures| f.requests() as f64 / (f.writes.max(1) as f64);
    rows.push((
        "full gated rollout: requests per write".into(),
        format!(
            "{:.3} ({} requests, {} writes)",
            per_write(k_full),
            k_full.requests(),
            k_full.writes
        ),
        format!(
            "kubectl {:.3} ({} requests, {} writes); target <= 1.2",
            per_write(c_full),
            c_full.requests(),
            c_full.writes
        ),
        per_write(k_full) <= 1.2,
    ));
    let mib = |f: &Figures| f.peak_rss_kib as f64 / 1024.0;
    rows.push((
        "peak RSS of a pass".into(),
        format!("full {:.1} MiB, no-op {:.1} MiB", mib(k_full), mib(k_noop)),
        format!(
            "kubectl {:.1} / {:.1} MiB; target <= 64 MiB",
            mib(c_full),
            mib(c_noop)
        ),
        mib(k_full).max(mib(k_noop)) <= 64.0,
    ));
    let mut out = String::from("| target | keelson | kubectl and target | met |\n|---|---|---|---|\n");
    for (what, keelson, kubectl, met) in rows {
        let _ = writeln!(
            out,
            "| {what} | {keelson} | {kubectl} | {} |",
            if met { "yes" } else { "no" }
        );
    }
    out
}

fn by_resource_text(stats: &Stats) -> String {
    let parts: Vec<String> = stats
        .by_resource
        .iter()
        .map(|(res, verbs)| {
            let v: Vec<String> = verbs.iter().map(|(verb, n)| format!("{verb} {n}")).collect();
            format!("{res} [{}]", v.join(", "))
        })
        .collect();
    parts.join("; ")
}

fn table(rows: &[&Figures]) -> String {
    let mut verbs: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.by_verb.keys().map(String::as_str))
        .collect();
    verbs.sort_unstable();
    verbs.dedup();
    let mut out = String::from("| run | wall | requests |");
    for v in &verbs {
        let _ = write!(out, " {v} |");
    }
    out.push_str(" discovery/openapi | writes | peak RSS | notes |\n|---|---:|---:|");
    for _ in &verbs {
        out.push_str("---:|");
    }
    out.push_str("---:|---:|---:|---|\n");
    for r in rows {
        let _ = write!(
            out,
            "| {} | {:.2} s | {} |",
            r.label,
            r.wall.as_secs_f64(),
            r.requests()
        );
        for v in &verbs {
            let _ = write!(out, " {} |", r.by_verb.get(*v).copied().unwrap_or(0));
        }
        let _ = writeln!(
            out,
            " {} | {} | {:.1} MiB | {} |",
            r.other,
            r.writes,
            r.peak_rss_kib as f64 / 1024.0,
            r.note
        );
    }
    out
}
