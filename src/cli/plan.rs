//! `keelson plan`: what a pass would change, as text, Markdown (a pull-request comment) or JSON.
//!
//! Without `--base` the topology is planned against the cluster. With `--base REV` the head commit is planned
//! against the base commit's rendering, offline: the impact of a pull request before it merges. `--live` adds
//! the plan against the cluster to that.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::input::{InputError, TopologyInput};
use super::pass_args::PassArgs;
use super::target::TargetArgs;
use super::verify_args::VerifyArgs;
use super::{EXIT_FAILURE, EXIT_USAGE, runtime};
use crate::cluster::Kube;
use crate::plan::{self, Impact, ImpactInput, Plan, PlanOptions, Review, RevisionInfo, Side};
use crate::reconciler;
use crate::render::{self, RenderOptions, Rendered};
use crate::source::verify::{AllowedSigners, VerifyMode};
use crate::source::{Snapshot, SourceError};
use crate::topology::{self, Topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub input: TopologyInput,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub pass: PassArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// Plan the change from this revision to --head, without a cluster: the base commit's objects stand in
    /// for the live ones. Any revision git accepts: `main`, `origin/main`, `HEAD~1`, a short sha, a tag,
    /// `$(git merge-base origin/main HEAD)`.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// The revision whose change is planned [default: HEAD of the directory's repository, or --repo's --ref].
    #[arg(long, value_name = "REV", requires = "base", conflicts_with = "reference")]
    pub head: Option<String>,
    /// With --base: plan head against the cluster (--kubeconfig, --in-cluster, --sim), and show what the base
    /// -> head change alone does and what the cluster plan does beyond it.
    #[arg(long, requires = "base")]
    pub live: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Exit 0 when there is nothing to change, 2 when there are changes, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Keelson's namespace, where `keelson run` keeps its status: the revision the cluster was last brought
    /// to is read from there, falling back to the inventory's.
    #[arg(
        long,
        value_name = "NS",
        env = "KEELSON_NAMESPACE",
        default_value = "keelson-system"
    )]
    pub status_namespace: String,
}

pub fn run(args: PlanArgs) -> ExitCode {
    let targets_cluster = args.target.sim
        || args.target.cluster.in_cluster
        || args.target.cluster.kubeconfig.is_some()
        || args.target.cluster.context.is_some();
    if args.base.is_some() && !args.live && targets_cluster {
        eprintln!("error: --base plans without a cluster; add --live to also plan against the cluster");
        return ExitCode::from(EXIT_USAGE);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(plan_command(args))
}

async fn plan_command(args: PlanArgs) -> ExitCode {
    let review = match &args.base {
        Some(base) => change_review(&args, base).await,
        None => cluster_review(&args).await,
    };
    let review = match review {
        Ok(review) => review,
        Err(code) => return code,
    };
    let text = match args.format {
        PlanFormat::Text => plan::review_to_text(&review, std::io::stdout().is_terminal()),
        PlanFormat::Markdown => plan::review_to_markdown(&review),
        PlanFormat::Json => plan::review_to_json(&review),
    };
    super::print_stdout(&text);
    if review.plan.is_blocked() {
        return ExitCode::from(EXIT_FAILURE);
    }
    match (args.detailed_exitcode, review.plan.has_changes()) {
        (true, true) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    }
}

/// The topology planned against the cluster.
async fn cluster_review(args: &PlanArgs) -> Result<Review, ExitCode> {
    let (snapshot, connection) =
        super::read_verified_and_connect(&args.input, &args.target, &args.verify).await?;
    let (plan, impact) = live_plan(&connection.kube, &snapshot, args).await?;
    Ok(Review {
        base: None,
        head: revision_info(&snapshot, None),
        plan,
        impact,
        graph: None,
        change: None,
        outside_change: Vec::new(),
        offline: false,
    })
}

/// Head planned against base, offline; with --live also against the cluster.
async fn change_review(args: &PlanArgs, base: &str) -> Result<Review, ExitCode> {
    let fail = |message: String| {
        eprintln!("{message}");
        ExitCode::from(EXIT_FAILURE)
    };
    let connection = match args.live {
        true => Some(args.target.connect().await.map_err(|e| fail(e.to_string()))?),
        false => None,
    };
    let verify = args
        .verify
        .load(connection.as_ref().map(|c| &c.kube), None)
        .await
        .map_err(|e| fail(format!("error: {e}")))?;
    let input = args.input.clone();
    let (base, head) = (base.to_string(), head_revision(args));
    let read = tokio::task::spawn_blocking(move || read_both(&input, &base, &head, verify.as_ref())).await;
    let (base_snapshot, head_snapshot) = match read {
        Ok(Ok(both)) => both,
        Ok(Err(InputError::Source(e))) => return Err(super::validate::source_failure(&e)),
        Ok(Err(e)) => return Err(fail(format!("refused: {e}"))),
        Err(e) => return Err(fail(format!("reading the revisions failed: {e}"))),
    };
    let head_side = load_and_render(&head_snapshot)?;
    let base_side = base_snapshot.as_ref().map(load_and_render).transpose()?;
    let options = plan_options(&head_snapshot, &args.verify.settings(&args.pass).plan);
    let head = side(&head_side, &head_snapshot);
    let base = base_side
        .as_ref()
        .zip(base_snapshot.as_ref())
        .map(|(b, s)| side(b, s));
    let (change_plan, change_impact) = plan::plan_change(base.as_ref(), &head, &options).map_err(|e| {
        eprintln!("planning failed: {e}");
        ExitCode::from(EXIT_FAILURE)
    })?;
    let graph = plan::graph_change(base.map(|b| b.topology), head.topology);
    let base_info = Some(match &base_snapshot {
        Some(snapshot) => revision_info(snapshot, args.base.clone()),
        None => RevisionInfo {
            revision: "(no topology)".to_string(),
            spec: args.base.clone(),
            ..RevisionInfo::default()
        },
    });
    let head_info = revision_info(&head_snapshot, Some(head_revision(args)));
    if !args.live {
        return Ok(Review {
            base: base_info,
            head: head_info,
            plan: change_plan,
            impact: change_impact,
            graph: Some(graph),
            change: None,
            outside_change: Vec::new(),
            offline: true,
        });
    }
    let Some(connection) = connection else {
        return Err(fail("--live: no cluster connection".into()));
    };
    let (live_plan, live_impact) = live_plan(&connection.kube, &head_snapshot, args).await?;
    let outside_change = plan::outside_change(&live_plan, &change_plan);
    Ok(Review {
        base: base_info,
        head: head_info,
        plan: live_plan,
        impact: live_impact,
        graph: Some(graph),
        change: Some(plan::ChangeOnly {
            plan: change_plan,
            impact: change_impact,
        }),
        outside_change,
        offline: false,
    })
}

fn side<'a>((topology, rendered): &'a (Topology, Rendered), snapshot: &'a Snapshot) -> Side<'a> {
    Side {
        topology,
        rendered,
        revision: &snapshot.revision.id,
    }
}

/// --head, else the directory's HEAD, else --repo's --ref.
fn head_revision(args: &PlanArgs) -> String {
    args.head.clone().unwrap_or_else(|| match args.input.dir {
        Some(_) => "HEAD".to_string(),
        None => args.input.git.reference(),
    })
}

/// Both snapshots; a base without a topology (the commit before the topology was added) is `None`. With
/// verification, head is read only if it passes (base is what the cluster already runs).
fn read_both(
    input: &TopologyInput,
    base: &str,
    head: &str,
    verify: Option<&(VerifyMode, AllowedSigners)>,
) -> Result<(Option<Snapshot>, Snapshot), InputError> {
    let history = input.history()?;
    let head = history.resolve(head)?;
    let base = history.resolve(base)?;
    let head = match verify {
        Some((mode, allowed)) => super::input::verified(&history, &head, *mode, allowed)?,
        None => history.snapshot(&head)?,
    };
    let base = match history.snapshot(&base) {
        Ok(snapshot) => Some(snapshot),
        Err(SourceError::MissingTopologyFile { .. } | SourceError::MissingPath { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    Ok((base, head))
}

fn load_and_render(snapshot: &Snapshot) -> Result<(Topology, Rendered), ExitCode> {
    let topology = topology::load(snapshot)
        .map_err(|diagnostics| super::validate::invalid_topology(&snapshot.revision.origin, &diagnostics))?;
    let options = RenderOptions {
        revision: Some(snapshot.revision.id.clone()),
    };
    let rendered = render::render(&topology, &options).map_err(|e| {
        eprintln!("{}: render failed: {e}", snapshot.revision.origin);
        ExitCode::from(EXIT_FAILURE)
    })?;
    Ok((topology, rendered))
}

/// The operator's options plus what the head commit's trailers allow, as a pass would plan it.
fn plan_options(head: &Snapshot, options: &PlanOptions) -> PlanOptions {
    match &head.commit {
        Some(commit) => options.with_commit_trailers(
            &crate::source::parse_trailers(&commit.message),
            head.signer.is_some(),
        ),
        None => options.clone(),
    }
}

/// The plan of `snapshot` against the cluster, as a pass would compute it, and its impact.
async fn live_plan(kube: &Kube, snapshot: &Snapshot, args: &PlanArgs) -> Result<(Plan, Impact), ExitCode> {
    let prepared = reconciler::prepare(kube, snapshot, &args.verify.settings(&args.pass))
        .await
        .map_err(|e| {
            eprintln!("{}", super::pass_failure(kube, &e));
            ExitCode::from(EXIT_FAILURE)
        })?;
    let mut prepared = prepared;
    if let Some(revision) = last_applied(kube, &args.status_namespace, &prepared.topology.name).await {
        prepared.plan.previous_revision = Some(revision);
    }
    let replaced = replaced_jobs(kube, &prepared.plan).await?;
    let impact = plan::impact(&ImpactInput {
        plan: &prepared.plan,
        topology: &prepared.topology,
        live: &replaced,
    });
    Ok((prepared.plan, impact))
}

/// The revision the daemon last brought the cluster to, from its status object, when that status is about
/// this topology. Without one (no daemon, a status not readable with these credentials) the inventory's
/// revision, which every successful pass records, stands.
async fn last_applied(kube: &Kube, namespace: &str, topology: &str) -> Option<String> {
    match crate::status::read_status(kube, namespace).await {
        Ok(Some(status)) if status.topology.as_deref() == Some(topology) => status.last_applied_revision,
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(error = %e, "no status to name the last applied revision; using the inventory");
            None
        }
    }
}

/// The live Jobs the plan deletes, read back so the impact can say which run a new Job replaces and why.
async fn replaced_jobs(kube: &Kube, plan: &Plan) -> Result<Vec<Value>, ExitCode> {
    let mut out = Vec::new();
    for change in plan.deletion_changes().filter(|c| c.reference.kind == "Job") {
        match kube.get(&change.reference).await {
            Ok(Some(job)) => out.push(job),
            Ok(None) => {}
            Err(e) => {
                eprintln!("{}: reading it failed: {e}", change.reference);
                return Err(ExitCode::from(EXIT_FAILURE));
            }
        }
    }
    Ok(out)
}

fn revision_info(snapshot: &Snapshot, spec: Option<String>) -> RevisionInfo {
    RevisionInfo {
        revision: snapshot.revision.id.clone(),
        spec,
        subject: snapshot.commit.as_ref().map(|c| c.subject.clone()),
        author: snapshot
            .commit
            .as_ref()
            .map(|c| format!("{} <{}>", c.author_name, c.author_email)),
        signed_by: snapshot.signer.as_ref().map(ToString::to_string),
    }
}
