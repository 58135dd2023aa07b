//! `keelson source show` and `--repo` input through the built binary.

mod source_support;

use std::process::Command;

use source_support::Repo;

#[test]
fn source_show_prints_the_commit_and_a_one_lookup_repeat_poll() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = Repo::init(tmp.path().join("remote"));
    remote.commit(&[("deploy/README.md", "the topology lives here\n")], "Base");
    remote.commit(&[("deploy/keelson.yaml", "kind: Topology\n")], "First");
    remote.git(&["revert", "--no-edit", "HEAD"]);
    let sha = remote.head();
    let first_revert = sha.clone();
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args([
            "source",
            "show",
            "--repo",
            &remote.file_url(),
            "--ref",
            "main",
            "--path",
            "deploy/",
        ])
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Reverting the only file leaves no keelson.yaml: a clear failure naming the remote, ref and file.
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("deploy/keelson.yaml not found") && stderr.contains(&sha),
        "{stderr}"
    );

    remote.git(&["revert", "--no-edit", "HEAD"]);
    let sha = remote.head();
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args([
            "source",
            "show",
            "--repo",
            &remote.file_url(),
            "--ref",
            "main",
            "--path",
            "deploy/",
        ])
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("commit:      {sha}")), "{stdout}");
    // git names a revert of a revert "Reapply".
    assert!(stdout.contains("subject:     Reapply \"First\""), "{stdout}");
    assert!(
        stdout.contains(&format!("reverts:     {first_revert}")),
        "{stdout}"
    );
    assert!(stdout.contains("files:       2 "), "{stdout}");
    let repeat = stdout.lines().find(|l| l.starts_with("repeat poll:")).unwrap();
    assert!(
        repeat.contains("1 ref lookup, 0 fetches, 0 bytes, 0 objects, unchanged"),
        "{repeat}"
    );
}

#[test]
fn usage_errors_exit_2_and_credentials_are_never_printed() {
    let bin = env!("CARGO_BIN_EXE_keelson");
    let out = Command::new(bin).args(["source", "show"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(bin)
        .args(["source", "show", "--ref", "main", "--repo"])
        .arg(format!("https://bob:hunter2@127.0.0.1:{port}/org/repo.git"))
        .arg("--cache-dir")
        .arg(tmp.path())
        .env("KEELSON_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains(&format!("https://127.0.0.1:{port}/org/repo.git")),
        "{all}"
    );
    assert!(!all.contains("hunter2"), "{all}");
}
