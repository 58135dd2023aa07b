//! `keelson source show`: resolve a remote ref to a commit and show what polling it costs.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use super::input::GitArgs;
use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::source::{GitSource, PollCost, PollOutcome, Snapshot, SnapshotEntry};

#[derive(Debug, clap::Args)]
pub struct SourceArgs {
    #[command(subcommand)]
    pub command: SourceCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SourceCommand {
    /// Print the commit a remote ref resolves to, its files, and the cost of a first and a repeat poll.
    Show(ShowArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub git: GitArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ShowFormat::Text)]
    pub output: ShowFormat,
}

pub fn run(args: SourceArgs) -> ExitCode {
    match args.command {
        SourceCommand::Show(show) => run_show(&show),
    }
}

fn run_show(args: &ShowArgs) -> ExitCode {
    let mut source = match args.git.source() {
        Ok(Some(source)) => source,
        Ok(None) => {
            eprintln!("error: source show needs --repo URL");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => return fail(&e),
    };
    let snapshot = match source.poll_blocking() {
        Ok(PollOutcome::Changed { snapshot, .. }) => snapshot,
        Ok(PollOutcome::Unchanged { revision }) => {
            eprintln!("error: {}: first poll read no snapshot", revision.origin);
            return ExitCode::from(EXIT_FAILURE);
        }
        Err(e) => return fail(&e),
    };
    let first = source.last_poll_cost();
    // The repeat poll is the figure that matters for a daemon: what checking an unchanged remote costs.
    let repeat = match source.poll_blocking() {
        Ok(outcome) => (
            source.last_poll_cost(),
            matches!(outcome, PollOutcome::Unchanged { .. }),
        ),
        Err(e) => return fail(&e),
    };
    let text = match args.output {
        ShowFormat::Text => describe(&source, &args.git, &snapshot, first, repeat),
        ShowFormat::Json => {
            let document = describe_json(&source, &args.git, &snapshot, first, repeat);
            serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
        }
    };
    super::print_stdout(&text);
    ExitCode::SUCCESS
}

/// The same as [`describe`], as one JSON document.
fn describe_json(
    source: &GitSource,
    git: &GitArgs,
    snapshot: &Snapshot,
    first: PollCost,
    (repeat, unchanged): (PollCost, bool),
) -> serde_json::Value {
    let (mut files, mut symlinks, mut too_large, mut submodules) = (0, 0, 0, 0);
    for (_, entry) in snapshot.entries() {
        match entry {
            SnapshotEntry::File(_) => files += 1,
            SnapshotEntry::Symlink { .. } => symlinks += 1,
            SnapshotEntry::TooLarge { .. } => too_large += 1,
            SnapshotEntry::Submodule => submodules += 1,
        }
    }
    let cost = |c: PollCost| {
        serde_json::json!({
            "refLookups": c.ref_lookups,
            "fetches": c.fetches,
            "bytesReceived": c.bytes_received,
            "objectsReceived": c.objects_received,
            "snapshotRead": c.snapshot_read,
            "seconds": c.duration.as_secs_f64(),
        })
    };
    let commit = snapshot.commit.as_ref().map(|c| {
        serde_json::json!({
            "sha": c.sha,
            "subject": c.subject,
            "author": format!("{} <{}>", c.author_name, c.author_email),
            "time": c.time,
            "parents": c.parents,
            "reverts": c.reverts,
        })
    });
    let mut repeat_poll = cost(repeat);
    repeat_poll["unchanged"] = serde_json::Value::Bool(unchanged);
    serde_json::json!({
        "remote": source.remote(),
        "ref": git.reference(),
        "path": git.path.as_deref().unwrap_or_default(),
        "revision": snapshot.revision.id,
        "commit": commit,
        "files": {"files": files, "symlinks": symlinks, "tooLarge": too_large, "submodules": submodules},
        "cache": source.cache_path().display().to_string(),
        "firstPoll": cost(first),
        "repeatPoll": repeat_poll,
    })
}

fn describe(
    source: &GitSource,
    git: &GitArgs,
    snapshot: &Snapshot,
    first: PollCost,
    repeat: (PollCost, bool),
) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &str| out.push_str(&format!("{:<13}{value}\n", format!("{key}:")));
    line("remote", source.remote());
    line("ref", &git.reference());
    if let Some(path) = git.path.as_deref().filter(|p| !p.is_empty()) {
        line("path", path);
    }
    line("commit", &snapshot.revision.id);
    if let Some(commit) = &snapshot.commit {
        line("subject", &commit.subject);
        line(
            "author",
            &format!("{} <{}>", commit.author_name, commit.author_email),
        );
        let when = u64::try_from(commit.time)
            .ok()
            .map(|s| UNIX_EPOCH + Duration::from_secs(s));
        if let Some(when) = when {
            line("date", &humantime::format_rfc3339_seconds(when).to_string());
        }
        line(
            "parents",
            &if commit.parents.is_empty() {
                "(root commit)".into()
            } else {
                commit.parents.join(" ")
            },
        );
        if let Some(reverted) = &commit.reverts {
            line("reverts", reverted);
        }
    }
    let (mut files, mut links, mut large, mut modules) = (0, 0, 0, 0);
    for (_, entry) in snapshot.entries() {
        match entry {
            SnapshotEntry::File(_) => files += 1,
            SnapshotEntry::Symlink { .. } => links += 1,
            SnapshotEntry::TooLarge { .. } => large += 1,
            SnapshotEntry::Submodule => modules += 1,
        }
    }
    line(
        "files",
        &format!("{files} ({links} symlinks, {large} too large, {modules} submodules: reported, not read)"),
    );
    line("cache", &source.cache_path().display().to_string());
    line(
        "first poll",
        &cost(
            first,
            if first.snapshot_read {
                "snapshot read"
            } else {
                "no snapshot"
            },
        ),
    );
    let (repeat, unchanged) = repeat;
    line(
        "repeat poll",
        &cost(
            repeat,
            if unchanged {
                "unchanged, no snapshot"
            } else {
                "changed meanwhile"
            },
        ),
    );
    out
}

fn cost(c: PollCost, what: &str) -> String {
    let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}, {} bytes, {}, {what}, {:.1?}",
        plural(c.ref_lookups, "ref lookup"),
        if c.fetches == 1 {
            "1 fetch".to_string()
        } else {
            format!("{} fetches", c.fetches)
        },
        c.bytes_received,
        plural(c.objects_received, "object"),
        c.duration
    )
}

fn fail(error: &dyn std::error::Error) -> ExitCode {
    let mut message = format!("error: {error}");
    let mut cause = error.source();
    while let Some(c) = cause {
        // git2 errors repeat themselves in their source chain; print each distinct cause once.
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(&format!(": {text}"));
        }
        cause = c.source();
    }
    eprintln!("{message}");
    ExitCode::from(EXIT_FAILURE)
}
