//! The `plan`, `apply` and `demo` commands as a user runs them: the built binary against the embedded
//! simulated cluster, on a directory and on a real Git repository.

mod support;
use std::process::{Command, Output};
use support::{copy_tree, example_repo};

fn keelson(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KEELSON_LOG")
        .output()
        .expect("keelson runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn plan_as_markdown_reads_as_a_pull_request_comment() {
    let out = keelson(&["plan", "example-repo", "--sim", "-o", "markdown"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    assert!(stdout.starts_with('#'), "starts with a heading: {stdout}");
    assert!(stdout.contains("openstack"), "{stdout}");
    assert!(stdout.contains("| "), "has tables: {stdout}");
    assert!(
        stdout.contains("keystone") && stdout.contains("nova-compute"),
        "{stdout}"
    );
    assert!(stdout.to_lowercase().contains("create"), "{stdout}");
}

#[test]
fn detailed_exitcode_says_whether_there_are_changes_and_json_is_machine_readable() {
    let out = keelson(&[
        "plan",
        "example-repo",
        "--sim",
        "-o",
        "json",
        "--detailed-exitcode",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON plan");
    let summary = &plan["summary"];
    assert!(summary["create"].as_u64().unwrap_or(0) > 50, "{summary}");
    assert_eq!(summary["delete"], 0);
    let waves = plan["waves"].as_array().expect("waves");
    assert!(waves.len() >= 5, "{} waves", waves.len());
}

#[test]
fn an_invalid_topology_fails_the_plan_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("services")).expect("mkdir");
    std::fs::write(
        dir.path().join("keelson.yaml"),
        "apiVersion: keelson.dev/v1\nkind: Topology\nmetadata:\n  name: t\nspec:\n  namespace: openstack\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("services/api.yaml"),
        "apiVersion: keelson.dev/v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  image: keystone\n  dependsOn: [db]\n",
    )
    .expect("write");
    let path = dir.path().to_string_lossy().into_owned();
    let out = keelson(&["plan", &path, "--sim"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("services/api.yaml:7:"), "{stderr}");
    assert!(stderr.contains("db"), "{stderr}");
}

#[test]
fn plan_reads_a_commit_from_a_git_remote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("topology");
    copy_tree(&example_repo(), &repo);
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_AUTHOR_NAME", "Op")
            .env("GIT_AUTHOR_EMAIL", "op@example.org")
            .env("GIT_COMMITTER_NAME", "Op")
            .env("GIT_COMMITTER_EMAIL", "op@example.org")
            .status()
            .expect("git");
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "OpenStack topology"]);
    let url = format!("file://{}", repo.display());
    let cache = dir.path().join("cache");
    let out = keelson(&[
        "plan",
        "--repo",
        &url,
        "--ref",
        "main",
        "--cache-dir",
        &cache.to_string_lossy(),
        "--sim",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON plan");
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&repo)
        .output()
        .expect("rev-parse");
    assert_eq!(plan["revision"].as_str(), Some(text(&head.stdout).trim()));
}

#[test]
fn demo_deploys_the_example_and_its_second_pass_writes_nothing() {
    let out = keelson(&["demo", "--ready-after", "100ms", "--job-duration", "100ms"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("wave 1/"), "{stdout}");
    assert!(stdout.contains("Pass 1 converged"), "{stdout}");
    assert!(stdout.contains("Pass 2: 0 write requests"), "{stdout}");
}
