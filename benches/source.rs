//! Git source figures: what a no-change poll costs, and fetch + snapshot of a large repository
//! (10,000 files, 1,000 commits): a plain path (read in place), file:// and git:// (git daemon on loopback).
//!
//! Run: `cargo bench --bench source` (prints a Markdown table).

#[path = "../tests/source_support/mod.rs"]
mod source_support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keelson::source::{GitSource, GitSourceConfig, PollCost, PollOutcome};
use source_support::{GitDaemon, Repo, git};

const FILES: usize = 10_000;
const COMMITS: usize = 1_000;
const POLLS: usize = 50;

/// Builds the repository with `git fast-import`: one commit adding every file, then one small change per commit.
fn build_repo(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    git(path, &["init", "-q", "--bare", "-b", "main"]);
    let mut stream = Vec::new();
    let mut commit = |n: usize, files: &[(String, String)]| {
        let message = format!("commit {n}\n");
        write!(
            stream,
            "commit refs/heads/main\ncommitter Bench <bench@example.com> {} +0000\n",
            1_700_000_000 + n
        )
        .unwrap();
        write!(stream, "data {}\n{message}", message.len()).unwrap();
        for (name, content) in files {
            write!(
                stream,
                "M 100644 inline {name}\ndata {}\n{content}\n",
                content.len()
            )
            .unwrap();
        }
        stream.push(b'\n');
    };
    let mut first = vec![(
        "keelson.yaml".to_string(),
        "apiVersion: keelson.dev/v1\nkind: Topology\n".to_string(),
    )];
    for i in 0..FILES {
        first.push((
            format!("config/d{:02}/file-{i:05}.conf", i % 100),
            format!("[DEFAULT]\nindex = {i}\n"),
        ));
    }
    commit(0, &first);
    for n in 1..COMMITS {
        let i = (n * 7) % FILES;
        commit(
            n,
            &[(
                format!("config/d{:02}/file-{i:05}.conf", i % 100),
                format!("[DEFAULT]\nindex = {i}\nrev = {n}\n"),
            )],
        );
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(child.wait().unwrap().success());
    git(path, &["gc", "-q"]);
}

fn source(url: &str, cache: &Path) -> GitSource {
    let mut config = GitSourceConfig::new(url, "main");
    config.cache_dir = cache.to_path_buf();
    GitSource::new(config).unwrap()
}

fn first_poll(url: &str, cache: &Path) -> (GitSource, PollCost, usize) {
    let _ = std::fs::remove_dir_all(cache);
    let mut s = source(url, cache);
    let files = match s.poll_blocking().unwrap() {
        PollOutcome::Changed { snapshot, .. } => snapshot.entries().count(),
        PollOutcome::Unchanged { .. } => panic!("first poll must read"),
    };
    let cost = s.last_poll_cost();
    (s, cost, files)
}

fn no_change(s: &mut GitSource) -> (Duration, Duration, PollCost) {
    let mut times = Vec::with_capacity(POLLS);
    for _ in 0..POLLS {
        let started = Instant::now();
        assert!(matches!(
            s.poll_blocking().unwrap(),
            PollOutcome::Unchanged { .. }
        ));
        times.push(started.elapsed());
    }
    times.sort();
    (times[POLLS / 2], times[POLLS * 95 / 100], s.last_poll_cost())
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    let started = Instant::now();
    build_repo(&served.join("big.git"));
    println!(
        "built repository: {FILES} files, {COMMITS} commits in {:.1?}",
        started.elapsed()
    );
    let daemon = GitDaemon::start(&served);
    let file_url = Repo {
        path: served.join("big.git"),
    }
    .file_url();

    println!("\n| transport | step | time | ref lookups | fetches | bytes | objects |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let path = served.join("big.git").to_string_lossy().into_owned();
    for (name, url) in [
        ("path (read in place)", path),
        ("file://", file_url),
        ("git:// (shallow)", daemon.url("big.git")),
    ] {
        let cache = tmp.path().join(format!("cache-{}", name.len()));
        let (mut s, cost, files) = first_poll(&url, &cache);
        assert_eq!(files, FILES + 1);
        let step = if cost.fetches == 0 {
            "first poll: snapshot read in place"
        } else {
            "first poll: fetch + snapshot (fresh cache)"
        };
        row(name, step, cost.duration, cost);
        let (median, p95, cost) = no_change(&mut s);
        row(name, &format!("no-change poll, median of {POLLS}"), median, cost);
        row(name, &format!("no-change poll, p95 of {POLLS}"), p95, cost);
    }
}

fn row(transport: &str, step: &str, time: Duration, c: PollCost) {
    println!(
        "| {transport} | {step} | {time:.2?} | {} | {} | {} | {} |",
        c.ref_lookups, c.fetches, c.bytes_received, c.objects_received
    );
}
