//! `keelson plan --base/--head` and revision expressions on a real Git repository: the built binary, real
//! commits, the JSON checked against docs/plan.schema.json with a real JSON Schema validator.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{copy_tree, example_repo};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn keelson(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .current_dir(dir)
        .env_remove("KEELSON_LOG")
        .output()
        .expect("keelson runs")
}

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
        .args(["-c", "init.defaultBranch=main"])
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn edit(path: &Path, from: &str, to: &str) {
    let body = std::fs::read_to_string(path).expect("read");
    assert!(body.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, body.replacen(from, to, 1)).expect("write");
}

/// A repository: an empty first commit, the example topology under `deploy/`, then keystone's image bump.
/// Returns (repository, [first, topology, bump] shas).
fn repository(dir: &Path) -> (PathBuf, [String; 3]) {
    let repo = dir.join("topology");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("README.md"), "cloud\n").expect("write");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "Start"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    copy_tree(&example_repo(), &repo.join("deploy"));
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "OpenStack topology"]);
    let topology = git(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["tag", "-a", "-m", "first release", "v1"]);
    edit(
        &repo.join("deploy/services/keystone.yaml"),
        "  image: keystone\n",
        "  image: keystone:2025.2-ubuntu-noble\n",
    );
    git(&repo, &["commit", "-q", "-am", "Keystone 2025.2"]);
    let bump = git(&repo, &["rev-parse", "HEAD"]);
    (repo, [first, topology, bump])
}

fn json(out: &Output) -> Value {
    assert!(out.status.code() != Some(101), "no panic: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON: {e}\n{}\n{}", text(&out.stdout), text(&out.stderr)))
}

#[test]
fn the_ref_takes_revision_expressions_and_short_shas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, [_, topology, bump]) = repository(dir.path());
    let cache = dir.path().join("cache");
    let cache = cache.to_string_lossy();
    let path = repo.to_string_lossy().into_owned();
    let url = format!("file://{path}");
    for (remote, reference, want) in [
        (&path, "HEAD~1", &topology),
        (&path, &bump[..7], &bump),
        (&path, "v1", &topology),
        (&url, "HEAD~1", &topology),
        (&url, &bump[..9], &bump),
        (&url, "main^", &topology),
        (&url, "origin/main", &bump),
    ] {
        let out = keelson(
            dir.path(),
            &[
                "render",
                "--repo",
                remote,
                "--ref",
                reference,
                "--path",
                "deploy",
                "--cache-dir",
                &cache,
                "-o",
                "json",
            ],
        );
        assert!(
            out.status.success(),
            "{remote} {reference}: {}",
            text(&out.stderr)
        );
        let list: Value = serde_json::from_slice(&out.stdout).expect("JSON list");
        assert!(!list["items"].as_array().expect("items").is_empty());
        let out = keelson(
            dir.path(),
            &[
                "plan",
                "--repo",
                remote,
                "--ref",
                reference,
                "--path",
                "deploy",
                "--cache-dir",
                &cache,
                "--sim",
                "-o",
                "json",
            ],
        );
        assert_eq!(
            json(&out)["revision"].as_str(),
            Some(want.as_str()),
            "{remote} {reference}"
        );
    }
    let out = keelson(
        dir.path(),
        &[
            "plan",
            "--repo",
            &path,
            "--ref",
            "no-such~2",
            "--path",
            "deploy",
            "--sim",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("revision \"no-such~2\"") && stderr.contains("unknown revision"),
        "{stderr}"
    );
}

#[test]
fn a_change_is_planned_against_its_base_without_a_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, [_, topology, bump]) = repository(dir.path());
    let deploy = repo.join("deploy");
    let out = keelson(
        &deploy,
        &[
            "plan",
            ".",
            "--base",
            "HEAD~1",
            "-o",
            "json",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let plan = json(&out);
    assert_eq!(plan["offline"], true);
    assert_eq!(plan["revision"].as_str(), Some(bump.as_str()));
    assert_eq!(plan["base"]["revision"].as_str(), Some(topology.as_str()));
    assert_eq!(plan["head"]["subject"], "Keystone 2025.2");
    assert_eq!(
        plan["impact"]["components"]["touched"],
        serde_json::json!(["keystone"])
    );
    let restart = &plan["impact"]["workloads"][0];
    assert_eq!(restart["effect"], "restart");
    assert_eq!(
        restart["pods"],
        serde_json::json!({"type": "replicas", "count": 2})
    );
    assert_eq!(restart["reasons"][0]["type"], "image");
    let jobs: Vec<&str> = plan["impact"]["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["job"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        jobs,
        ["db-sync", "credential-setup", "fernet-setup", "ks-bootstrap"],
        "a new image is a new run of each job"
    );
    assert_eq!(plan["impact"]["jobs"][0]["migration"], "sync");
    assert_eq!(plan["impact"]["jobs"][1].get("migration"), None);
    // Text for a terminal says the same.
    let out = keelson(&deploy, &["plan", ".", "--base", "v1", "--head", &bump[..8]]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("1 component touched, 25 untouched"), "{stdout}");
    assert!(
        stdout.contains("image of container keystone: 2025.1-ubuntu-noble -> 2025.2-ubuntu-noble"),
        "{stdout}"
    );
    // Nothing changes between a commit and itself.
    let out = keelson(&deploy, &["plan", ".", "--base", "HEAD", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn a_base_without_the_topology_creates_everything_and_cluster_flags_need_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, [first, _, _]) = repository(dir.path());
    let deploy = repo.join("deploy");
    let plan = json(&keelson(
        &deploy,
        &["plan", ".", "--base", &first, "--head", "HEAD~1", "-o", "json"],
    ));
    assert_eq!(plan["summary"]["update"], 0);
    assert!(
        plan["summary"]["create"].as_u64().unwrap_or(0) > 50,
        "{}",
        plan["summary"]
    );
    assert_eq!(
        plan["graph"]["addedComponents"].as_array().map(Vec::len),
        // The 25 services and keelson.yaml's shared Secrets.
        Some(26)
    );
    let out = keelson(&deploy, &["plan", ".", "--base", "HEAD~1", "--sim"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("add --live"), "{}", text(&out.stderr));
}

#[test]
fn live_plans_against_the_cluster_and_shows_what_the_change_alone_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, _) = repository(dir.path());
    let deploy = repo.join("deploy");
    // An empty simulated cluster: the cluster plan creates everything, the change only bumps keystone.
    let plan = json(&keelson(
        &deploy,
        &["plan", ".", "--base", "HEAD~1", "--live", "--sim", "-o", "json"],
    ));
    assert_eq!(plan["offline"], false);
    assert!(plan["summary"]["create"].as_u64().unwrap_or(0) > 50);
    let change = &plan["change"]["plan"]["summary"];
    assert_eq!(
        (&change["create"], &change["update"], &change["delete"]),
        // Keystone's four jobs run anew (created, their old runs deleted); its Deployment is updated.
        (&4.into(), &1.into(), &4.into()),
        "{change}"
    );
    let outside = plan["outsideChange"].as_array().expect("outsideChange");
    assert!(
        outside.iter().any(|o| o["reference"]["name"] == "mariadb"),
        "mariadb is not part of the change"
    );
    let md = text(
        &keelson(
            &deploy,
            &[
                "plan", ".", "--base", "HEAD~1", "--live", "--sim", "-o", "markdown",
            ],
        )
        .stdout,
    );
    assert!(md.contains("against the live cluster"), "{md}");
    assert!(md.contains("beyond it"), "{md}");
}

#[test]
fn blocked_changes_exit_1_and_are_still_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, _) = repository(dir.path());
    let deploy = repo.join("deploy");
    // Removing most services deletes far more than the prune budget allows.
    for entry in std::fs::read_dir(deploy.join("services")).expect("services") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !["mariadb.yaml", "memcached.yaml", "rabbitmq.yaml"].contains(&name.as_str()) {
            std::fs::remove_file(&path).expect("rm");
        }
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "Remove most of the cloud"]);
    let out = keelson(&deploy, &["plan", ".", "--base", "HEAD~1", "-o", "markdown"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let md = text(&out.stdout);
    assert!(md.lines().next().unwrap_or_default().contains("BLOCKED"), "{md}");
    assert!(
        md.contains("[!CAUTION]") && md.contains("over the budget"),
        "{md}"
    );
    let out = keelson(
        &deploy,
        &[
            "plan",
            ".",
            "--base",
            "HEAD~1",
            "--allow-prune-over-budget",
            "-o",
            "json",
        ],
    );
    let plan = json(&out);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let removed: Vec<&str> = plan["graph"]["removedComponents"]
        .as_array()
        .expect("removed")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(removed.len(), 22);
    assert!(
        plan["impact"]["workloads"]
            .as_array()
            .expect("workloads")
            .iter()
            .all(|w| w["effect"] == "stop")
    );
}

/// The JSON Schema validator from the test tools' virtualenv (scripts/install-test-tools.sh).
fn validator() -> Option<PathBuf> {
    let python = Path::new(MANIFEST).join(".tools/venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{}: no jsonschema; run scripts/install-test-tools.sh",
            python.display()
        );
    }
    eprintln!(
        "skipping the JSON Schema check: no jsonschema in {}",
        python.display()
    );
    None
}

#[test]
fn every_json_plan_matches_the_documented_schema() {
    let Some(python) = validator() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, [first, _, _]) = repository(dir.path());
    let deploy = repo.join("deploy");
    let example = example_repo();
    let example = example.to_string_lossy();
    let outputs = [
        keelson(&deploy, &["plan", ".", "--base", "HEAD~1", "-o", "json"]),
        keelson(&deploy, &["plan", ".", "--base", &first, "-o", "json"]),
        keelson(
            &deploy,
            &["plan", ".", "--base", "HEAD~1", "--live", "--sim", "-o", "json"],
        ),
        keelson(Path::new(MANIFEST), &["plan", &example, "--sim", "-o", "json"]),
    ];
    let schema = Path::new(MANIFEST).join("docs/plan.schema.json");
    for (i, out) in outputs.iter().enumerate() {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let file = dir.path().join(format!("plan-{i}.json"));
        std::fs::write(&file, &out.stdout).expect("write");
        let check = Command::new(&python)
            .args([
                "-c",
                "import json, sys, jsonschema\n\
                 schema = json.load(open(sys.argv[1]))\n\
                 jsonschema.Draft202012Validator.check_schema(schema)\n\
                 errors = list(jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))\n\
                 for e in errors[:20]: print(e.json_path, e.message[:300])\n\
                 sys.exit(1 if errors else 0)",
            ])
            .arg(&schema)
            .arg(&file)
            .output()
            .expect("python runs");
        assert!(
            check.status.success(),
            "plan {i}: {}{}",
            text(&check.stdout),
            text(&check.stderr)
        );
    }
}
