//! The pull-request examples of docs/pull-requests.md, run as CI would run them: the GitHub Actions steps and
//! the GitLab CI script, with the built `keelson` on PATH, in a clone of a real repository with a real feature
//! branch whose base moved on after it forked. The comment they post goes to a stand-in API on loopback.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::{copy_tree, example_repo};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Op",
            "-c",
            "user.email=op@example.org",
            "-c",
            "commit.gpgsign=false",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// curl and jq are what the examples post with; a CI machine must have them.
fn tools_present() -> bool {
    let found = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = ["curl", "jq"].into_iter().filter(|t| !found(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let note = format!(
        "missing {}; run scripts/install-test-tools.sh",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("pull-request examples: {note}");
    }
    eprintln!("skipping the pull-request example test: {note}");
    false
}

/// origin: main with the example topology, then a feature branch (glance to 2025.2, keystone debug), then main
/// moves on (nova-api to 3 replicas) after the branch forked. Returns (the CI clone at the branch, main's
/// later commit).
fn repository_with_a_pull_request(dir: &Path) -> (PathBuf, String) {
    let work = dir.join("work");
    copy_tree(&example_repo(), &work);
    git(&work, &["init", "-q"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "OpenStack topology"]);
    git(&work, &["checkout", "-q", "-b", "glance-2025.2"]);
    edit(
        &work.join("services/glance-api.yaml"),
        "  image: glance-api\n",
        "  image: glance-api:2025.2-ubuntu-noble\n",
    );
    edit(
        &work.join("config/keystone/keystone.conf"),
        "debug = False",
        "debug = True",
    );
    git(
        &work,
        &["commit", "-q", "-am", "Glance 2025.2; keystone debug logging"],
    );
    git(&work, &["checkout", "-q", "main"]);
    edit(
        &work.join("services/nova-api.yaml"),
        "  replicas: 2\n",
        "  replicas: 3\n",
    );
    git(&work, &["commit", "-q", "-am", "nova-api: three replicas"]);
    let main_later = git(&work, &["rev-parse", "HEAD"]);
    let origin = dir.join("origin.git");
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            &work.to_string_lossy(),
            &origin.to_string_lossy(),
        ],
    );
    // What the CI checkout is: a full clone, at the pull request's branch.
    let clone = dir.join("ci");
    git(
        dir,
        &["clone", "-q", &origin.to_string_lossy(), &clone.to_string_lossy()],
    );
    git(&clone, &["checkout", "-q", "glance-2025.2"]);
    (clone, main_later)
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

/// A stand-in for the GitHub and GitLab APIs: answers every request, records method, path and body.
struct Api {
    url: String,
    requests: Arc<Mutex<Vec<(String, String, String)>>>,
}

fn api() -> Api {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let mut parts = request_line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_string();
            let path = parts.next().unwrap_or_default().to_string();
            let reply = if method == "GET" { "[]" } else { "{\"id\": 1}" };
            seen.lock()
                .expect("requests")
                .push((method, path, String::from_utf8_lossy(&body).into_owned()));
            let _ = write!(
                stream,
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    Api { url, requests }
}

/// PATH with the built keelson first.
fn path_with_keelson() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_keelson"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

fn run_script(shell_flags: &[&str], script: &str, dir: &Path, env: &[(&str, String)]) -> Output {
    let mut command = Command::new("bash");
    command
        .args(shell_flags)
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path_with_keelson())
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("KEELSON_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("bash runs")
}

fn yaml(path: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(Path::new(MANIFEST).join(path)).expect("example file");
    serde_yaml::from_str(&text).expect("example is YAML")
}

/// The comment the example posted: the plan of the branch against its merge base, not against main's tip.
fn assert_is_the_branch_plan(comment: &str, main_later: &str) {
    assert!(comment.len() <= 65_536, "{} characters", comment.len());
    let first = comment
        .lines()
        .find(|l| !l.starts_with("<!--"))
        .unwrap_or_default();
    assert!(
        first.starts_with("### Keelson plan: 2 components touched"),
        "{first}"
    );
    assert!(
        comment.contains("image of container glance-api: 2025.1-ubuntu-noble -&gt; 2025.2-ubuntu-noble"),
        "{comment}"
    );
    assert!(
        comment.contains("config file /etc/keystone/keystone.conf changed"),
        "{comment}"
    );
    assert!(comment.contains("migration: schema sync"), "{comment}");
    // main's later commit is not part of the change: nova-api does not scale in this plan.
    assert!(!comment.contains("nova-api | 2 -&gt; 3"), "{comment}");
    assert!(!comment.contains(&main_later[..12]), "{comment}");
}

#[test]
fn the_github_actions_example_posts_the_plan_of_the_branch_against_its_merge_base() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (clone, main_later) = repository_with_a_pull_request(dir.path());
    let workflow = yaml("docs/examples/github-keelson-plan.yml");
    let steps = workflow["jobs"]["plan"]["steps"].as_sequence().expect("steps");
    let step = |name: &str| -> String {
        steps
            .iter()
            .find(|s| s["name"].as_str() == Some(name))
            .and_then(|s| s["run"].as_str())
            .unwrap_or_else(|| panic!("step {name}"))
            .to_string()
    };
    let api = api();
    let output_file = dir.path().join("github-output");
    std::fs::write(&output_file, "").expect("output file");
    let env = vec![
        ("KEELSON_TOPOLOGY", ".".to_string()),
        ("BASE_REF", "main".to_string()),
        ("GITHUB_OUTPUT", output_file.to_string_lossy().into_owned()),
        ("GITHUB_API_URL", api.url.clone()),
        ("GITHUB_REPOSITORY", "cloud/topology".to_string()),
        ("GITHUB_TOKEN", "test-token".to_string()),
        ("PR_NUMBER", "7".to_string()),
    ];
    // GitHub runs `run:` scripts with `bash --noprofile --norc -eo pipefail`.
    let flags = ["--noprofile", "--norc", "-eo", "pipefail"];
    let plan = run_script(&flags, &step("Plan"), &clone, &env);
    assert!(plan.status.success(), "{}", String::from_utf8_lossy(&plan.stderr));
    let outputs = std::fs::read_to_string(&output_file).expect("outputs");
    assert_eq!(outputs.trim(), "status=2", "changes: exit code 2");
    let comment = run_script(&flags, &step("Comment"), &clone, &env);
    assert!(
        comment.status.success(),
        "{}",
        String::from_utf8_lossy(&comment.stderr)
    );
    let requests = api.requests.lock().expect("requests").clone();
    assert_eq!(requests[0].0, "GET");
    assert_eq!(
        requests[0].1,
        "/repos/cloud/topology/issues/7/comments?per_page=100"
    );
    assert_eq!(requests[1].0, "POST");
    assert_eq!(requests[1].1, "/repos/cloud/topology/issues/7/comments");
    let body: Value = serde_json::from_str(&requests[1].2).expect("JSON body");
    let text = body["body"].as_str().expect("body");
    assert!(text.starts_with("<!-- keelson plan -->\n"), "{text}");
    assert_is_the_branch_plan(text, &main_later);
    let fail = run_script(
        &flags,
        &step("Fail on a blocked or failed plan"),
        &clone,
        &[("STATUS", "2".into())],
    );
    assert!(fail.status.success(), "changes alone do not fail the check");
}

#[test]
fn the_gitlab_ci_example_posts_the_plan_of_the_branch_against_its_merge_base() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (clone, main_later) = repository_with_a_pull_request(dir.path());
    let job = yaml("docs/examples/gitlab-keelson-plan.yml");
    let script: Vec<&str> = job["keelson-plan"]["script"]
        .as_sequence()
        .expect("script")
        .iter()
        .map(|l| l.as_str().expect("script line"))
        .collect();
    let api = api();
    let env = vec![
        ("KEELSON_TOPOLOGY", ".".to_string()),
        ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main".to_string()),
        ("CI_API_V4_URL", format!("{}/api/v4", api.url)),
        ("CI_PROJECT_ID", "42".to_string()),
        ("CI_MERGE_REQUEST_IID", "7".to_string()),
        ("KEELSON_GITLAB_TOKEN", "test-token".to_string()),
    ];
    // The runner stops at the first failing line, as `bash -e` does.
    let out = run_script(&["-eo", "pipefail"], &script.join("\n"), &clone, &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let requests = api.requests.lock().expect("requests").clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0, "POST");
    assert_eq!(requests[0].1, "/api/v4/projects/42/merge_requests/7/notes");
    let body: Value = serde_json::from_str(&requests[0].2).expect("JSON body");
    assert_is_the_branch_plan(body["body"].as_str().expect("body"), &main_later);
}

#[test]
fn docs_show_the_examples_as_they_are_tested() {
    let docs = std::fs::read_to_string(Path::new(MANIFEST).join("docs/pull-requests.md")).expect("docs");
    for example in [
        "docs/examples/github-keelson-plan.yml",
        "docs/examples/gitlab-keelson-plan.yml",
    ] {
        let text = std::fs::read_to_string(Path::new(MANIFEST).join(example)).expect("example");
        assert!(
            docs.contains(&text),
            "docs/pull-requests.md must show {example} verbatim"
        );
    }
}
