//! `keelson status`, `history`, `suspend`, `resume` and `reconcile`: read what the daemon reports, and leave
//! requests for it in the control object.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::target::ClusterArgs;
use super::{EXIT_FAILURE, print_stdout, runtime};
use crate::cluster::{self, Health, Kube};
use crate::object::ObjectRef;
use crate::plan::Inventory;
use crate::status::{self, HandledReconcile, STATUS_CONFIGMAP, Status, now_rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Table,
    /// The table with each component's objects and their live health (`keelson status` only).
    Wide,
    Json,
    Yaml,
}

/// Where the daemon keeps its status.
#[derive(Debug, Clone, Args)]
pub struct StatusTarget {
    /// Keelson's namespace (where `keelson run` keeps its status).
    #[arg(
        long,
        short = 'n',
        value_name = "NS",
        env = "KEELSON_NAMESPACE",
        default_value = "keelson-system"
    )]
    pub namespace: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl StatusTarget {
    async fn connect(&self) -> Result<Kube, String> {
        self.cluster.connect().await.map_err(|e| e.to_string())
    }
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub target: StatusTarget,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ControlArgs {
    #[command(flatten)]
    pub target: StatusTarget,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// Wait for the pass the request starts and print how it ended (exit 1 unless it succeeded).
    #[arg(long)]
    pub wait: bool,
    /// Write even where the sync windows hold writes back, for this one pass (recorded in the history as
    /// trigger `force`, with a `SyncWindowOverridden` Event).
    #[arg(long)]
    pub force: bool,
    /// How long --wait waits.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration,
          requires = "wait")]
    pub timeout: Duration,
}

fn block_on(work: impl Future<Output = Result<(), String>>) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn fetch(target: &StatusTarget) -> Result<Status, String> {
    let kube = target.connect().await?;
    status::read_status(&kube, &target.namespace)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "namespace {}: no status yet (is `keelson run` running there?)",
                target.namespace
            )
        })
}

fn encode<T: serde::Serialize>(value: &T, output: Output) -> Result<String, String> {
    match output {
        Output::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Output::Yaml => serde_yaml::to_string(value).map_err(|e| e.to_string()),
        Output::Table | Output::Wide => Err("table output is not encoded".into()),
    }
}

/// `keelson status`.
pub fn status(args: ShowArgs) -> ExitCode {
    block_on(async {
        let status = fetch(&args.target).await?;
        let text = match args.output {
            Output::Table => status_table(&status),
            Output::Wide => {
                let kube = args.target.connect().await?;
                let objects = live_objects(&kube, &status).await?;
                wide_table(&status, &objects)
            }
            other => encode(&status, other)?,
        };
        print_stdout(&text);
        Ok(())
    })
}

/// `keelson history`.
pub fn history(args: ShowArgs) -> ExitCode {
    block_on(async {
        let status = fetch(&args.target).await?;
        let text = match args.output {
            Output::Table | Output::Wide => history_table(&status),
            other => encode(&status.history, other)?,
        };
        print_stdout(&text);
        Ok(())
    })
}

/// `keelson suspend` / `keelson resume`.
pub fn suspend(args: ControlArgs, suspend: bool) -> ExitCode {
    block_on(async {
        let kube = args.target.connect().await?;
        installation(&kube, &args.target.namespace).await?;
        status::set_suspend(&kube, &args.target.namespace, suspend)
            .await
            .map_err(|e| e.to_string())?;
        let what = if suspend { "suspend" } else { "resume" };
        print_stdout(&format!(
            "{what} requested in namespace {}; the daemon watches it and acts on it at once\n",
            args.target.namespace
        ));
        Ok(())
    })
}

/// `keelson reconcile [--force] [--wait]`.
pub fn reconcile(args: ReconcileArgs) -> ExitCode {
    block_on(async {
        let target = &args.control.target;
        let kube = target.connect().await?;
        installation(&kube, &target.namespace).await?;
        // Nanoseconds make two requests within one second distinct.
        let token = format!("{}#{:x}", now_rfc3339(), rand::random::<u32>());
        status::request_reconcile_with(&kube, &target.namespace, &token, args.force)
            .await
            .map_err(|e| e.to_string())?;
        if !args.wait {
            print_stdout(&format!(
                "reconcile requested in namespace {}; the daemon watches it and starts a pass at once\n",
                target.namespace
            ));
            return Ok(());
        }
        print_stdout(&format!(
            "reconcile requested in namespace {}; waiting for its pass\n",
            target.namespace
        ));
        let handled = wait_for_answer(&kube, &target.namespace, &token, args.timeout).await?;
        let revision: String = handled.revision.chars().take(12).collect();
        print_stdout(&format!(
            "revision {revision}: {}: {}\n",
            handled.result, handled.message
        ));
        if handled.result == "Succeeded" {
            Ok(())
        } else {
            Err(format!(
                "reconcile of revision {revision} ended {}",
                handled.result
            ))
        }
    })
}

/// Polls the status until the daemon answered the request `token` (Flux's `lastHandledReconcileAt`).
async fn wait_for_answer(
    kube: &Kube,
    namespace: &str,
    token: &str,
    timeout: Duration,
) -> Result<HandledReconcile, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match status::read_status(kube, namespace).await {
            Ok(Some(Status {
                last_handled_reconcile: Some(handled),
                ..
            })) if handled.requested_at == token => return Ok(handled),
            Ok(_) => {}
            Err(e) => eprintln!("{e}; trying again"),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "timed out after {} waiting for the daemon in namespace {namespace} to run the pass (is `keelson \
                 run` running, and the leader?)",
                humantime::format_duration(timeout)
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Requests go to a daemon that is there: Keelson's namespace exists and the daemon wrote its status.
async fn installation(kube: &Kube, namespace: &str) -> Result<(), String> {
    let no_installation = || format!("no Keelson installation in namespace {namespace}");
    let object = ObjectRef {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: namespace.to_string(),
    };
    match kube.get(&object).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(format!(
                "{}: the namespace does not exist (see docs/install.md)",
                no_installation()
            ));
        }
        Err(e) => return Err(e.to_string()),
    }
    match status::read_status(kube, namespace).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!(
            "{}: no {STATUS_CONFIGMAP} ConfigMap (`keelson run` writes it when it starts)",
            no_installation()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Left-aligned columns separated by three spaces, like kubectl.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(&cell);
            } else {
                let pad = widths[i] - cell.chars().count() + 3;
                out.push_str(&cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut text = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        text.push_str(&line(row.clone()));
    }
    text
}

fn short(revision: Option<&str>) -> String {
    match revision {
        Some(r) => r.chars().take(12).collect(),
        None => "<none>".into(),
    }
}

/// One object of a component, as the inventory lists it, with its live health (`None`: not there).
pub struct LiveObject {
    pub component: String,
    pub reference: ObjectRef,
    pub health: Option<Health>,
}

/// The objects of the applied revision (its inventory), each read live: one GET per object.
async fn live_objects(kube: &Kube, status: &Status) -> Result<Vec<LiveObject>, String> {
    let (Some(topology), Some(namespace)) = (&status.topology, &status.inventory_namespace) else {
        return Ok(Vec::new());
    };
    let Some(text) = kube
        .read_inventory(namespace, topology)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(Vec::new());
    };
    let inventory = Inventory::from_json(&text).map_err(|e| e.to_string())?;
    let mut objects = Vec::with_capacity(inventory.objects.len());
    for entry in inventory.objects {
        let health = match kube.get(&entry.reference).await {
            Ok(live) => live.as_ref().map(cluster::health),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.to_string()),
        };
        objects.push(LiveObject {
            component: entry.component,
            reference: entry.reference,
            health,
        });
    }
    Ok(objects)
}

/// The status table, with each component followed by its objects and their health (Argo's `app get`).
pub fn wide_table(status: &Status, objects: &[LiveObject]) -> String {
    let mut without_components = status.clone();
    without_components.components.clear();
    let mut text = status_table(&without_components);
    let mut rows = Vec::new();
    for c in &status.components {
        rows.push(vec![c.name.clone(), c.state.to_string(), first_line(&c.reason)]);
        for o in objects.iter().filter(|o| o.component == c.name) {
            let (health, reason) = match &o.health {
                Some(h) => (format!("{:?}", h.status), first_line(&h.reason)),
                None => ("Missing".to_string(), "not in the cluster".to_string()),
            };
            rows.push(vec![format!("  {}", o.reference), health, reason]);
        }
    }
    if !rows.is_empty() {
        text.push('\n');
        text.push_str(&table(&["COMPONENT / OBJECT", "STATE / HEALTH", "REASON"], &rows));
    }
    if objects.is_empty() {
        text.push_str("\n(no inventory recorded yet: objects are listed once a revision was applied)\n");
    }
    text
}

pub fn status_table(status: &Status) -> String {
    let mut text = table(
        &[
            "TOPOLOGY",
            "PHASE",
            "APPLIED",
            "ATTEMPTED",
            "OBSERVED",
            "SUSPENDED",
            "DRIFT-CORRECTED",
        ],
        &[vec![
            status.topology.clone().unwrap_or_else(|| "<unknown>".into()),
            status.phase.to_string(),
            short(status.last_applied_revision.as_deref()),
            short(status.last_attempted_revision.as_deref()),
            short(status.observed_revision.as_deref()),
            status.suspended.to_string(),
            status.drift_corrections.to_string(),
        ]],
    );
    text.push('\n');
    let conditions: Vec<Vec<String>> = status
        .conditions
        .iter()
        .map(|c| {
            vec![
                c.kind.clone(),
                c.status.clone(),
                c.reason.clone(),
                first_line(&c.message),
            ]
        })
        .collect();
    text.push_str(&table(&["CONDITION", "STATUS", "REASON", "MESSAGE"], &conditions));
    // The table shows a message's first line only; when the cluster is not Ready the rest says why (the
    // `file:line` of an invalid topology, how to allow a refused plan), so it is printed whole.
    if let Some(ready) = status.condition("Ready")
        && ready.status != "True"
        && first_line(&ready.message) != ready.message
    {
        text.push('\n');
        text.push_str("WHY NOT READY\n");
        text.push_str(ready.message.trim_end());
        text.push('\n');
    }
    if let Some(pending) = &status.pending_change {
        let c = &pending.counts;
        let opens = pending.window_opens.as_deref().unwrap_or("not within two years");
        let how = if pending.manual_sync {
            "`keelson reconcile`"
        } else {
            "`keelson reconcile --force`"
        };
        text.push('\n');
        text.push_str(&format!(
            "PENDING CHANGE\nrevision {} ({} to create, {} to update, {} to delete), held back since {}\nwindow \
             opens: {opens}\nheld back by: {}\napply now: {how}\n",
            short(Some(&pending.revision)),
            c.created,
            c.updated,
            c.deleted,
            pending.since,
            pending.reason
        ));
    }
    if !status.components.is_empty() {
        text.push('\n');
        let components: Vec<Vec<String>> = status
            .components
            .iter()
            .map(|c| vec![c.name.clone(), c.state.to_string(), first_line(&c.reason)])
            .collect();
        text.push_str(&table(&["COMPONENT", "STATE", "REASON"], &components));
    }
    text
}

pub fn history_table(status: &Status) -> String {
    let rows: Vec<Vec<String>> = status
        .history
        .iter()
        .map(|h| {
            vec![
                short(Some(&h.revision)),
                h.result.to_string(),
                h.trigger.clone(),
                h.start.clone(),
                h.end.clone(),
                format!(
                    "+{} ~{} -{} ={}",
                    h.counts.created, h.counts.updated, h.counts.deleted, h.counts.unchanged
                ),
                h.revert_of.as_deref().map(|r| short(Some(r))).unwrap_or_default(),
                first_line(&h.subject),
            ]
        })
        .collect();
    table(
        &[
            "REVISION", "RESULT", "TRIGGER", "START", "END", "OBJECTS", "REVERTS", "SUBJECT",
        ],
        &rows,
    )
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > 100 {
        line.chars().take(97).collect::<String>() + "..."
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let text = table(
            &["A", "LONGER"],
            &[vec!["xxxx".into(), "y".into()], vec!["z".into(), "w".into()]],
        );
        assert_eq!(text, "A      LONGER\nxxxx   y\nz      w\n");
    }

    #[test]
    fn status_table_names_phase_conditions_and_components() {
        let mut status = Status {
            topology: Some("cloud".into()),
            last_applied_revision: Some("0123456789abcdef".into()),
            ..Status::default()
        };
        status.set_phase(status::Phase::Failed, "RolloutFailed", "nova failed\nmore", "t");
        status.components.push(status::ComponentStatus {
            name: "nova".into(),
            state: status::ComponentPhase::Failed,
            reason: "image pull".into(),
        });
        let text = status_table(&status);
        assert!(
            text.contains("cloud      Failed   0123456789ab   <none>"),
            "{text}"
        );
        assert!(
            text.contains("Ready         False    RolloutFailed   nova failed\n"),
            "{text}"
        );
        assert!(text.contains("nova        Failed   image pull"), "{text}");
        assert!(
            text.contains("\nWHY NOT READY\nnova failed\nmore\n"),
            "the whole message: {text}"
        );
    }

    #[test]
    fn a_ready_status_or_a_one_line_message_is_not_repeated() {
        let mut status = Status::default();
        status.set_phase(status::Phase::Ready, "Succeeded", "applied\nall", "t");
        assert!(!status_table(&status).contains("WHY NOT READY"));
        status.set_phase(status::Phase::Stalled, "InvalidConfiguration", "short", "t");
        assert!(!status_table(&status).contains("WHY NOT READY"));
    }
}
