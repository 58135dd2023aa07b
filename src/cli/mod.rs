//! Command-line interface: argument parsing and output; the work happens in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod apply;
pub mod credentials;
pub mod demo;
pub mod example_cluster;
pub mod graph;
pub mod input;
pub mod pass_args;
pub mod plan;
pub mod render;
mod report;
pub mod run;
pub mod sim;
pub mod source;
pub mod status;
pub mod target;
pub mod validate;
pub mod verify_args;

#[derive(Debug, Parser)]
#[command(
    name = "keelson",
    version,
    about = "GitOps reconciler for OpenStack on Kubernetes"
)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `keelson=debug` [default: `info` for
    /// `keelson run`, whose log says what each pass did; `warn` for the other commands, whose output does].
    #[arg(long, global = true, env = "KEELSON_LOG")]
    pub log: Option<String>,
    /// Log format: `text` for terminals, `json` for log collectors.
    #[arg(long, global = true, env = "KEELSON_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a topology and list every problem as `file:line:column: field: message`.
    Validate(validate::ValidateArgs),
    /// Show the dependency graph of a topology as waves, Graphviz DOT or Mermaid.
    Graph(graph::GraphArgs),
    /// Print the Kubernetes objects of a topology in apply order, as YAML documents or a JSON List.
    Render(render::RenderArgs),
    /// Show what applying a topology would change in the cluster (text, Markdown for pull requests, JSON).
    Plan(plan::PlanArgs),
    /// Apply a topology once: in dependency order, waiting for health, then prune.
    Apply(apply::ApplyArgs),
    /// Deploy the example OpenStack topology to the embedded simulated cluster and show a no-op second pass.
    Demo(demo::DemoArgs),
    /// Inspect the Git source.
    Source(source::SourceArgs),
    /// The simulated Kubernetes cluster.
    Sim(sim::SimArgs),
    /// Run the reconciler: follow a Git ref and keep the cluster equal to it.
    Run(Box<run::RunArgs>),
    /// Show what the reconciler reports: phase, revisions, conditions, components.
    Status(status::ShowArgs),
    /// Show the reconciler's last passes.
    History(status::ShowArgs),
    /// Stop applying (the reconciler keeps reporting).
    Suspend(status::ControlArgs),
    /// Apply again after `suspend`.
    Resume(status::ControlArgs),
    /// Ask for a pass now, also on a revision whose rollout failed; --wait prints how it ended.
    Reconcile(status::ReconcileArgs),
}

/// Exit code for "the thing failed" (invalid repository, failed rollout).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for usage errors.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = cli
        .log
        .clone()
        .unwrap_or_else(|| default_log(&cli.command).to_string());
    init_tracing(&filter, cli.log_format);
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Graph(args) => graph::run(&args),
        Command::Render(args) => render::run(&args),
        Command::Plan(args) => plan::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Source(args) => source::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Run(args) => run::run(*args),
        Command::Status(args) => status::status(args),
        Command::History(args) => status::history(args),
        Command::Suspend(args) => status::suspend(args, true),
        Command::Resume(args) => status::suspend(args, false),
        Command::Reconcile(args) => status::reconcile(args),
    }
}

/// The log filter without `--log`: the daemon logs each pass at info, as Flux's controllers do (other
/// crates only from warn on); one-shot commands print what they did and log only warnings.
fn default_log(command: &Command) -> &'static str {
    // kube's client logs every failed request as an error, retried or not; Keelson reports the error
    // that stays, naming the object.
    match command {
        Command::Run(_) => "warn,keelson=info,kube_client::client::builder=off",
        _ => "warn,kube_client::client::builder=off",
    }
}

/// A multi-threaded runtime for the commands that talk to an API.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::from(EXIT_FAILURE)
        })
}

/// Reads the topology input off the async runtime (Git and file-system work block); prints the error.
async fn read_snapshot(input: &input::TopologyInput) -> Result<crate::source::Snapshot, ExitCode> {
    let input = input.clone();
    match tokio::task::spawn_blocking(move || input.snapshot()).await {
        Ok(Ok(snapshot)) => Ok(snapshot),
        Ok(Err(e)) => Err(validate::source_failure(&e)),
        Err(e) => {
            eprintln!("reading the topology failed: {e}");
            Err(ExitCode::from(EXIT_FAILURE))
        }
    }
}

/// The snapshot to apply and the cluster to apply it to, or the exit code after printing why not.
async fn read_and_connect(
    input: &input::TopologyInput,
    target: &target::TargetArgs,
) -> Result<(crate::source::Snapshot, target::Connection), ExitCode> {
    let snapshot = read_snapshot(input).await?;
    match target.connect().await {
        Ok(connection) => Ok((snapshot, connection)),
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(EXIT_FAILURE))
        }
    }
}

/// The snapshot to apply and the cluster to apply it to, with `--verify-signatures`: the commit is read only if
/// it is signed by an allowed key, or the command ends with the reason (exit 1) before anything is planned.
async fn read_verified_and_connect(
    input: &input::TopologyInput,
    target: &target::TargetArgs,
    verify: &verify_args::VerifyArgs,
) -> Result<(crate::source::Snapshot, target::Connection), ExitCode> {
    if verify.verify_signatures.is_none() {
        return read_and_connect(input, target).await;
    }
    let fail = |message: String| {
        eprintln!("{message}");
        ExitCode::from(EXIT_FAILURE)
    };
    let connection = target.connect().await.map_err(|e| fail(e.to_string()))?;
    let Some((mode, allowed)) = verify
        .load(Some(&connection.kube), None)
        .await
        .map_err(|e| fail(format!("error: {e}")))?
    else {
        return read_and_connect(input, target).await;
    };
    let input = input.clone();
    let read = tokio::task::spawn_blocking(move || input.verified_snapshot(mode, &allowed)).await;
    match read {
        Ok(Ok(snapshot)) => Ok((snapshot, connection)),
        Ok(Err(input::InputError::Source(e))) => Err(validate::source_failure(&e)),
        Ok(Err(e)) => Err(fail(format!("refused: {e}"))),
        Err(e) => Err(fail(format!("reading the topology failed: {e}"))),
    }
}

/// Writes to stdout; a closed pipe (`keelson plan | head`) is not worth a panic.
fn print_stdout(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

fn init_tracing(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal: a log file or collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
