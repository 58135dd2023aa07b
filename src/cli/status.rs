//! `keelson status`, `history`, `suspend`, `resume` and `reconcile`: read what the daemon reports, and leave
//! requests for it in the control object.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::target::ClusterArgs;
use super::{EXIT_FAILURE, print_stdout, runtime};
use crate::cluster::Kube;
use crate::status::{self, Status, now_rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Table,
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
        Output::Table => Err("table output is not encoded".into()),
    }
}

/// `keelson status`.
pub fn status(args: ShowArgs) -> ExitCode {
    block_on(async {
        let status = fetch(&args.target).await?;
        let text = match args.output {
            Output::Table => status_table(&status),
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
            Output::Table => history_table(&status),
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

/// `keelson reconcile`.
pub fn reconcile(args: ControlArgs) -> ExitCode {
    block_on(async {
        let kube = args.target.connect().await?;
        // Nanoseconds make two requests within one second distinct.
        let token = format!("{}#{:x}", now_rfc3339(), rand::random::<u32>());
        status::request_reconcile(&kube, &args.target.namespace, &token)
            .await
            .map_err(|e| e.to_string())?;
        print_stdout(&format!(
            "reconcile requested in namespace {}; the daemon watches it and starts a pass at once\n",
            args.target.namespace
        ));
        Ok(())
    })
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
