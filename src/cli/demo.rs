//! `keelson demo`: start the embedded simulated cluster, roll the example OpenStack topology out wave by
//! wave, then run a second pass on the same commit and show that it writes nothing. The example topology
//! is compiled into the binary, so the demo runs from any directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use include_dir::{Dir, include_dir};

use super::input::TopologyInput;
use super::{EXIT_FAILURE, apply::apply_with_progress, runtime};
use crate::cluster::{self, Target};
use crate::reconciler::PassSettings;
use crate::sim::{self, SimOptions};

/// `example-repo/`, as it was when the binary was built.
static EXAMPLE_REPO: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/example-repo");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Topology to deploy [default: the example OpenStack topology built into the binary].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Time a simulated workload takes to become ready after a change.
    #[arg(long, default_value = "600ms", value_parser = humantime::parse_duration)]
    pub ready_after: Duration,
    /// Time a simulated Job runs.
    #[arg(long, default_value = "400ms", value_parser = humantime::parse_duration)]
    pub job_duration: Duration,
    /// Keep the simulated cluster running afterwards, for kubectl, until interrupted.
    #[arg(long)]
    pub serve: bool,
    /// Where to write the simulated cluster's kubeconfig with --serve (its namespace is the topology's).
    #[arg(long, value_name = "FILE", default_value = "keelson-demo.kubeconfig")]
    pub kubeconfig_out: PathBuf,
}

pub fn run(args: DemoArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(demo(args))
}

/// A directory that is removed when dropped.
struct Unpacked(PathBuf);

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the built-in example topology to a fresh directory under the system's temporary directory.
fn unpack_example() -> std::io::Result<Unpacked> {
    let dir = std::env::temp_dir().join(format!(
        "keelson-demo-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let unpacked = Unpacked(dir);
    write_dir(&EXAMPLE_REPO, &unpacked.0)?;
    Ok(unpacked)
}

fn write_dir(dir: &Dir<'_>, root: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join(dir.path()))?;
    for file in dir.files() {
        std::fs::write(root.join(file.path()), file.contents())?;
    }
    for sub in dir.dirs() {
        write_dir(sub, root)?;
    }
    Ok(())
}

async fn demo(args: DemoArgs) -> ExitCode {
    let (dir, _unpacked, what) = match &args.dir {
        Some(dir) => (dir.clone(), None, dir.display().to_string()),
        None => match unpack_example() {
            Ok(unpacked) => (
                unpacked.0.clone(),
                Some(unpacked),
                "the example OpenStack topology".to_string(),
            ),
            Err(e) => {
                eprintln!(
                    "writing the example topology to {}: {e}",
                    std::env::temp_dir().display()
                );
                return ExitCode::from(EXIT_FAILURE);
            }
        },
    };
    let input = TopologyInput {
        dir: Some(dir),
        git: Default::default(),
    };
    let snapshot = match super::read_snapshot(&input).await {
        Ok(snapshot) => snapshot,
        Err(code) => return code,
    };
    let namespace = crate::topology::load(&snapshot)
        .map(|t| t.spec.namespace)
        .unwrap_or_default();
    let options = SimOptions {
        ready_after: args.ready_after,
        job_duration: args.job_duration,
        node_labels: super::example_cluster::node_labels(),
        ..SimOptions::default()
    };
    let sim = match sim::Cluster::start(options).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("embedded simulated cluster: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let kube = match cluster::connect(Target::InlineKubeconfig {
        kubeconfig: sim.kubeconfig(),
        context: None,
    })
    .await
    {
        Ok(kube) => kube,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    println!(
        "Simulated Kubernetes API at {} (workloads ready {:?} after a change)\n",
        sim.url(),
        args.ready_after
    );
    // The operator's part of example-repo/README.md: the Secrets the services read.
    match super::example_cluster::create_referenced_secrets(&kube, &snapshot).await {
        Ok(n) => {
            if n > 0 {
                println!(
                    "Created {n} Secrets the topology references (random values), as an operator would.\n"
                );
            }
            sim.clear_request_log();
        }
        Err(e) => {
            eprintln!("creating the Secrets the topology references: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    }
    let settings = PassSettings {
        poll_interval: Duration::from_millis(100),
        ..PassSettings::default()
    };

    println!("== Pass 1: deploy {what} ==");
    let first = apply_with_progress(&kube, &snapshot, &settings).await;
    let first_writes = writes(&sim);
    match &first {
        Some(outcome) if outcome.rollout.converged() => {
            println!("Pass 1 converged with {first_writes} write requests to the API.\n");
        }
        _ => {
            eprintln!("Pass 1 did not converge.");
            return ExitCode::from(EXIT_FAILURE);
        }
    }

    println!("== Pass 2: same commit, same cluster ==");
    sim.clear_request_log();
    let second = apply_with_progress(&kube, &snapshot, &settings).await;
    let second_writes = writes(&sim);
    let converged = second.as_ref().is_some_and(|o| o.rollout.converged());
    println!("Pass 2: {second_writes} write requests to the API.");
    if !converged || second_writes != 0 {
        eprintln!("Pass 2 should have converged without a single write.");
        return ExitCode::from(EXIT_FAILURE);
    }

    if args.serve {
        let written =
            cluster::write_kubeconfig_for_namespace(&sim.kubeconfig(), &namespace, &args.kubeconfig_out);
        if let Err(e) = written {
            eprintln!("{e}");
            return ExitCode::from(EXIT_FAILURE);
        }
        println!(
            "\nThe simulated cluster keeps running. Explore it with (namespace {namespace}):\n  kubectl \
             --kubeconfig {} get deployments,statefulsets,daemonsets,jobs,pods\nPress Ctrl-C to stop.",
            args.kubeconfig_out.display(),
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    sim.shutdown().await;
    ExitCode::SUCCESS
}

fn writes(sim: &sim::Cluster) -> usize {
    sim.request_log().iter().filter(|r| r.is_write()).count()
}
