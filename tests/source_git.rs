//! The Git source against real repositories over file://, git:// (git daemon) and smart HTTP (git http-backend).

mod source_support;

use std::path::Path;

use keelson::source::{
    GitCredentials, GitSource, GitSourceConfig, PollOutcome, Secret, Snapshot, SnapshotEntry, SourceError,
};
use source_support::{GitDaemon, HttpGit, Repo, git};

const TOPOLOGY: &str = "apiVersion: keelson.dev/v1\nkind: Topology\n";

fn config(url: &str, reference: &str, cache: &Path) -> GitSourceConfig {
    let mut config = GitSourceConfig::new(url, reference);
    config.cache_dir = cache.to_path_buf();
    config
}

fn changed(outcome: PollOutcome) -> (Snapshot, Option<String>, bool) {
    match outcome {
        PollOutcome::Changed {
            snapshot,
            previous,
            history_rewritten,
        } => (snapshot, previous, history_rewritten),
        PollOutcome::Unchanged { revision } => panic!("expected a change, got unchanged at {}", revision.id),
    }
}

fn file(snapshot: &Snapshot, path: &str) -> String {
    match snapshot.get(path) {
        Some(SnapshotEntry::File(bytes)) => String::from_utf8(bytes.clone()).unwrap(),
        other => panic!("{path}: {other:?}"),
    }
}

/// A remote with a topology under `deploy/` and an unrelated file at the root.
fn topology_remote(dir: &Path) -> (Repo, String) {
    let repo = Repo::init(dir.join("remote"));
    let sha = repo.commit(
        &[
            ("deploy/keelson.yaml", TOPOLOGY),
            ("deploy/services/keystone.yaml", "name: keystone\n"),
            ("README.md", "outside the path\n"),
        ],
        "Add keystone\n\nFirst service.",
    );
    (repo, sha)
}

#[tokio::test]
async fn file_remote_reads_a_commit_and_an_unchanged_poll_costs_one_ref_lookup() {
    let tmp = tempfile::tempdir().unwrap();
    let (remote, sha) = topology_remote(tmp.path());
    let mut cfg = config(&remote.file_url(), "main", &tmp.path().join("cache"));
    cfg.path = "deploy".into();
    let mut source = GitSource::new(cfg).unwrap();

    let (snapshot, previous, rewritten) = changed(source.poll().await.unwrap());
    assert_eq!(previous, None);
    assert!(!rewritten);
    assert_eq!(snapshot.revision.id, sha);
    assert_eq!(snapshot.revision.origin, format!("{}@main", remote.file_url()));
    let paths: Vec<_> = snapshot.entries().map(|(p, _)| p.to_string()).collect();
    assert_eq!(paths, ["keelson.yaml", "services/keystone.yaml"]);
    assert_eq!(file(&snapshot, "services/keystone.yaml"), "name: keystone\n");
    let commit = snapshot.commit.as_ref().unwrap();
    assert_eq!(commit.sha, sha);
    assert_eq!(commit.subject, "Add keystone");
    assert_eq!(commit.author_name, "Test Author");
    assert_eq!(commit.author_email, "author@example.com");
    assert!(commit.parents.is_empty());
    assert_eq!(commit.reverts, None);
    assert!(commit.time > 1_700_000_000);
    let first = source.last_poll_cost();
    assert_eq!((first.ref_lookups, first.fetches), (1, 1));
    assert!(first.objects_received > 0 && first.snapshot_read);

    // Nothing moved: one ref advertisement, no fetch, no objects, no snapshot.
    match source.poll().await.unwrap() {
        PollOutcome::Unchanged { revision } => assert_eq!(revision.id, sha),
        PollOutcome::Changed { .. } => panic!("unchanged remote produced a snapshot"),
    }
    let second = source.last_poll_cost();
    assert_eq!(
        (
            second.ref_lookups,
            second.fetches,
            second.bytes_received,
            second.objects_received,
            second.snapshot_read
        ),
        (1, 0, 0, 0, false)
    );
    let stats = source.stats();
    assert_eq!(
        (stats.polls, stats.ref_lookups, stats.fetches, stats.snapshots),
        (2, 2, 1, 1)
    );
    assert!(source.cache_path().starts_with(tmp.path().join("cache")));
}

#[tokio::test]
async fn new_commits_are_read_and_older_snapshots_and_working_trees_do_not_leak() {
    let tmp = tempfile::tempdir().unwrap();
    let (remote, sha_a) = topology_remote(tmp.path());
    let cache = tmp.path().join("cache");
    let mut cfg = config(&remote.file_url(), "main", &cache);
    cfg.path = "deploy".into();
    let mut source = GitSource::new(cfg.clone()).unwrap();
    let (snap_a, _, _) = changed(source.poll().await.unwrap());

    let sha_b = remote.commit(
        &[("deploy/services/keystone.yaml", "name: keystone\nreplicas: 3\n")],
        "Scale keystone",
    );
    // An uncommitted edit in the remote's working tree must never reach a snapshot.
    remote.write("deploy/services/keystone.yaml", "dirty working tree\n");
    remote.write("deploy/services/untracked.yaml", "untracked\n");

    let (snap_b, previous, rewritten) = changed(source.poll().await.unwrap());
    assert_eq!(snap_b.revision.id, sha_b);
    assert_eq!(previous.as_deref(), Some(sha_a.as_str()));
    assert!(!rewritten);
    assert_eq!(
        file(&snap_b, "services/keystone.yaml"),
        "name: keystone\nreplicas: 3\n"
    );
    assert!(snap_b.get("services/untracked.yaml").is_none());
    assert_eq!(
        snap_b.commit.as_ref().unwrap().parents,
        std::slice::from_ref(&sha_a)
    );
    assert_eq!(file(&snap_a, "services/keystone.yaml"), "name: keystone\n");
    assert!(source.last_poll_cost().fetches == 1);

    // Pinning commit A by sha still reads A after B exists, and a repeat poll needs no network at all.
    let mut pinned = GitSource::new(GitSourceConfig {
        reference: sha_a.clone(),
        ..cfg
    })
    .unwrap();
    let (snap, _, _) = changed(pinned.poll().await.unwrap());
    assert_eq!(snap.revision.id, sha_a);
    assert_eq!(file(&snap, "services/keystone.yaml"), "name: keystone\n");
    assert!(matches!(
        pinned.poll().await.unwrap(),
        PollOutcome::Unchanged { .. }
    ));
    assert_eq!(pinned.last_poll_cost().ref_lookups, 0);
}

#[tokio::test]
async fn tags_reverts_force_pushes_and_deleted_branches() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = Repo::init(tmp.path().join("remote"));
    let sha_a = remote.commit(&[("keelson.yaml", TOPOLOGY), ("services/a.yaml", "a\n")], "A");
    remote.git(&["tag", "-a", "v1", "-m", "release 1"]);
    let sha_b = remote.commit(&[("services/b.yaml", "b\n")], "Add b");
    let cache = tmp.path().join("cache");

    // An annotated tag resolves to its commit.
    let mut tagged = GitSource::new(config(&remote.file_url(), "v1", &cache)).unwrap();
    let (snap, _, _) = changed(tagged.poll().await.unwrap());
    assert_eq!(snap.revision.id, sha_a);
    assert!(snap.get("services/b.yaml").is_none());

    let mut main = GitSource::new(config(&remote.file_url(), "refs/heads/main", &cache)).unwrap();
    let (snap, _, _) = changed(main.poll().await.unwrap());
    assert_eq!(snap.revision.id, sha_b);

    // git revert is recognised.
    remote.git(&["revert", "--no-edit", &sha_b]);
    let (snap, _, rewritten) = changed(main.poll().await.unwrap());
    assert!(!rewritten);
    assert_eq!(
        snap.commit.as_ref().unwrap().reverts.as_deref(),
        Some(sha_b.as_str())
    );
    assert!(snap.get("services/b.yaml").is_none());

    // Force-push: main moves to a commit that does not descend from the last one.
    remote.git(&["reset", "-q", "--hard", &sha_a]);
    let sha_c = remote.commit(&[("services/c.yaml", "c\n")], "Rewritten history");
    let (snap, _, rewritten) = changed(main.poll().await.unwrap());
    assert_eq!(snap.revision.id, sha_c);
    assert!(rewritten, "a force-push must be reported");
    assert_eq!(main.stats().history_rewrites, 1);

    // A deleted branch is an error naming remote and ref; the last revision stays current.
    remote.git(&["checkout", "-q", "-b", "feature"]);
    let sha_f = remote.commit(&[("services/f.yaml", "f\n")], "Feature");
    let mut feature = GitSource::new(config(&remote.file_url(), "feature", &cache)).unwrap();
    assert_eq!(changed(feature.poll().await.unwrap()).0.revision.id, sha_f);
    remote.git(&["checkout", "-q", "main"]);
    remote.git(&["branch", "-q", "-D", "feature"]);
    let err = feature.poll().await.unwrap_err();
    assert!(matches!(err, SourceError::RefNotFound { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&remote.file_url()) && text.contains("feature"),
        "{text}"
    );
    assert_eq!(feature.current_revision().unwrap().id, sha_f);
    assert!(feature.retry_delay() > std::time::Duration::ZERO);
}

#[tokio::test]
async fn empty_repositories_missing_paths_and_unreachable_remotes_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let empty = Repo::init_bare(tmp.path().join("empty.git"));
    let err = GitSource::new(config(&empty.file_url(), "main", &cache))
        .unwrap()
        .poll()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::EmptyRepository { .. }), "{err}");

    let remote = Repo::init(tmp.path().join("remote"));
    let sha = remote.commit(
        &[("deploy/other.yaml", "x\n"), ("README.md", "r\n")],
        "No topology yet",
    );
    let mut cfg = config(&remote.file_url(), "main", &cache);
    cfg.path = "deploy".into();
    let mut source = GitSource::new(cfg.clone()).unwrap();
    let err = source.poll().await.unwrap_err();
    assert!(matches!(err, SourceError::MissingTopologyFile { .. }), "{err}");
    assert!(
        err.to_string().contains("deploy/keelson.yaml") && err.to_string().contains(&sha),
        "{err}"
    );
    assert!(source.current_revision().is_none());

    cfg.path = "nowhere".into();
    let err = GitSource::new(cfg.clone()).unwrap().poll().await.unwrap_err();
    assert!(matches!(err, SourceError::MissingPath { .. }), "{err}");
    cfg.path = "README.md".into();
    let err = GitSource::new(cfg).unwrap().poll().await.unwrap_err();
    assert!(matches!(err, SourceError::MissingPath { .. }), "{err}");

    // The failed read is retried on the next poll (not remembered as seen), and succeeds once fixed.
    remote.commit(&[("deploy/keelson.yaml", TOPOLOGY)], "Add topology");
    assert!(matches!(
        source.poll().await.unwrap(),
        PollOutcome::Changed { .. }
    ));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = GitSource::new(config(
        &format!("git://127.0.0.1:{port}/none.git"),
        "main",
        &cache,
    ))
    .unwrap()
    .poll()
    .await
    .unwrap_err();
    assert!(
        matches!(err, SourceError::Unreachable { .. }) && err.is_transient(),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("git://127.0.0.1:{port}/none.git")),
        "{err}"
    );
}

#[tokio::test]
async fn symlinks_submodules_and_large_files_are_reported_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = Repo::init(tmp.path().join("remote"));
    remote.write("keelson.yaml", TOPOLOGY);
    remote.write("big.bin", &"x".repeat(2000));
    std::os::unix::fs::symlink("/etc/passwd", remote.path.join("link")).unwrap();
    remote.git(&["add", "-A"]);
    let other = remote.commit(&[], "base");
    remote.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{other},vendor/sub"),
    ]);
    remote.git(&["commit", "-q", "-m", "With a submodule"]);

    let mut cfg = config(&remote.file_url(), "main", &tmp.path().join("cache"));
    cfg.max_file_size = 1000;
    let (snap, _, _) = changed(GitSource::new(cfg).unwrap().poll().await.unwrap());
    assert_eq!(snap.get("big.bin"), Some(&SnapshotEntry::TooLarge { size: 2000 }));
    assert_eq!(
        snap.get("link"),
        Some(&SnapshotEntry::Symlink {
            target: "/etc/passwd".into()
        })
    );
    assert_eq!(snap.get("vendor/sub"), Some(&SnapshotEntry::Submodule));
}

#[tokio::test]
async fn corrupt_or_foreign_caches_are_wiped_and_cloned_again_once() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = Repo::init(tmp.path().join("remote"));
    let sha = remote.commit(&[("keelson.yaml", TOPOLOGY)], "A");
    let cache = tmp.path().join("cache");
    let cfg = config(&remote.file_url(), "main", &cache);
    let mut source = GitSource::new(cfg.clone()).unwrap();
    changed(source.poll().await.unwrap());
    let clone = source.cache_path();

    // Corrupt every object file in the clone.
    let mut corrupted = 0;
    for dir in [clone.join("objects/pack"), clone.join("objects")] {
        for entry in walk(&dir) {
            let name = entry.file_name().unwrap().to_string_lossy().to_string();
            if entry.is_file()
                && (name.ends_with(".pack") || entry.parent().unwrap().file_name().unwrap().len() == 2)
            {
                let mut perms = std::fs::metadata(&entry).unwrap().permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                perms.set_readonly(false);
                std::fs::set_permissions(&entry, perms).unwrap();
                std::fs::write(&entry, b"garbage").unwrap();
                corrupted += 1;
            }
        }
    }
    assert!(corrupted > 0);
    let mut fresh = GitSource::new(cfg.clone()).unwrap();
    let (snap, _, _) = changed(fresh.poll().await.unwrap());
    assert_eq!(snap.revision.id, sha);
    assert_eq!(fresh.stats().cache_resets, 1);

    // A directory that is not a git repository at all.
    std::fs::remove_dir_all(&clone).unwrap();
    std::fs::create_dir_all(clone.join("junk")).unwrap();
    std::fs::write(clone.join("HEAD"), "not a ref").unwrap();
    let mut fresh = GitSource::new(cfg.clone()).unwrap();
    assert_eq!(changed(fresh.poll().await.unwrap()).0.revision.id, sha);
    assert_eq!(fresh.stats().cache_resets, 1);

    // A clone of another remote at the same place.
    std::fs::remove_dir_all(&clone).unwrap();
    git(tmp.path(), &["init", "-q", "--bare", clone.to_str().unwrap()]);
    let mut fresh = GitSource::new(cfg).unwrap();
    assert_eq!(changed(fresh.poll().await.unwrap()).0.revision.id, sha);
    assert_eq!(fresh.stats().cache_resets, 1);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(read) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in read.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn git_daemon_protocol_fetches_shallow_and_polls_cheaply() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    let work = Repo::init(tmp.path().join("work"));
    for i in 0..5 {
        work.commit(
            &[("keelson.yaml", TOPOLOGY), ("counter", &i.to_string())],
            &format!("commit {i}"),
        );
    }
    std::fs::create_dir_all(&served).unwrap();
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.path.to_str().unwrap(),
            served.join("topo.git").to_str().unwrap(),
        ],
    );
    let daemon = GitDaemon::start(&served);
    let url = daemon.url("topo.git");

    let mut source = GitSource::new(config(&url, "main", &tmp.path().join("cache"))).unwrap();
    let (snap, _, _) = changed(source.poll().await.unwrap());
    assert_eq!(snap.revision.id, work.head());
    assert_eq!(file(&snap, "counter"), "4");
    // Shallow: only the tip commit's objects (commit, tree, two blobs), not five commits' worth.
    let first = source.last_poll_cost();
    assert!(
        first.objects_received <= 4,
        "received {} objects",
        first.objects_received
    );

    assert!(matches!(
        source.poll().await.unwrap(),
        PollOutcome::Unchanged { .. }
    ));
    let cost = source.last_poll_cost();
    assert_eq!((cost.ref_lookups, cost.fetches, cost.objects_received), (1, 0, 0));

    // A new commit arrives incrementally, and it descends from the shallow tip.
    work.commit(&[("counter", "5")], "commit 5");
    git(
        &work.path,
        &["push", "-q", served.join("topo.git").to_str().unwrap(), "main"],
    );
    let (snap, _, rewritten) = changed(source.poll().await.unwrap());
    assert_eq!(file(&snap, "counter"), "5");
    assert!(!rewritten);
    let cost = source.last_poll_cost();
    assert!(cost.fetches == 1 && cost.objects_received <= 3, "{cost:?}");

    // A force-push past the shallow boundary is still recognised as rewritten history.
    work.git(&["reset", "-q", "--hard", "HEAD~3"]);
    let rewritten_sha = work.commit(&[("counter", "rewritten")], "rewrite");
    git(
        &work.path,
        &[
            "push",
            "-q",
            "--force",
            served.join("topo.git").to_str().unwrap(),
            "main",
        ],
    );
    let (snap, _, rewritten) = changed(source.poll().await.unwrap());
    assert_eq!(snap.revision.id, rewritten_sha);
    assert_eq!(file(&snap, "counter"), "rewritten");
    assert!(rewritten, "force-push over git:// must be reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_http_with_token_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    let work = Repo::init(tmp.path().join("work"));
    let sha = work.commit(&[("keelson.yaml", TOPOLOGY)], "A");
    std::fs::create_dir_all(&served).unwrap();
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.path.to_str().unwrap(),
            served.join("topo.git").to_str().unwrap(),
        ],
    );
    let token = "glpat-very-secret-token";
    let server = HttpGit::start(&served, Some(("x-access-token", token))).await;
    let url = server.url("topo.git");
    let cache = tmp.path().join("cache");

    // No credentials, then a wrong token: authentication errors that never print the token.
    let err = GitSource::new(config(&url, "main", &cache))
        .unwrap()
        .poll()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::AuthFailed { .. }), "{err}");
    let mut cfg = config(&url, "main", &cache);
    cfg.credentials = GitCredentials {
        password: Some(Secret::new("wrong-token")),
        ..Default::default()
    };
    let err = GitSource::new(cfg).unwrap().poll().await.unwrap_err();
    assert!(matches!(err, SourceError::AuthFailed { .. }), "{err}");
    assert!(
        err.to_string().contains(&url) && !err.to_string().contains("wrong-token"),
        "{err}"
    );

    // A token read from a file.
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mut cfg = config(&url, "main", &cache);
    cfg.credentials = GitCredentials {
        password: Some(Secret::from_file(&token_file).unwrap()),
        ..Default::default()
    };
    let mut source = GitSource::new(cfg).unwrap();
    let (snap, _, _) = changed(source.poll().await.unwrap());
    assert_eq!(snap.revision.id, sha);
    assert!(server.upload_packs() >= 1);

    // An unchanged poll asks for the ref advertisement only: the server sees no upload-pack request.
    let (ads, packs) = (server.ref_advertisements(), server.upload_packs());
    assert!(matches!(
        source.poll().await.unwrap(),
        PollOutcome::Unchanged { .. }
    ));
    assert_eq!(
        server.upload_packs(),
        packs,
        "an unchanged poll must not request objects"
    );
    assert_eq!(server.ref_advertisements(), ads + 1);

    // Credentials embedded in the URL work and are never printed.
    let embedded = format!("http://x-access-token:{token}@{}/topo.git", server.addr);
    let mut source = GitSource::new(config(&embedded, "main", &cache)).unwrap();
    assert_eq!(source.remote(), url);
    let (snap, _, _) = changed(source.poll().await.unwrap());
    assert!(!snap.revision.origin.contains(token), "{}", snap.revision.origin);
    let err = GitSource::new(config(&embedded, "no-such-branch", &cache))
        .unwrap()
        .poll()
        .await
        .unwrap_err();
    assert!(
        !err.to_string().contains(token) && !format!("{err:?}").contains(token),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_plain_path_is_read_in_place_without_a_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let repo = Repo::init(tmp.path().join("topology"));
    let sha_a = repo.commit(&[("keelson.yaml", TOPOLOGY), ("services/a.yaml", "a\n")], "A");
    let path = repo.path.to_str().unwrap().to_string();
    let mut source = GitSource::new(config(&path, "main", &cache)).unwrap();
    let (snap, _, _) = changed(source.poll().await.unwrap());
    assert_eq!(snap.revision.id, sha_a);
    assert_eq!(snap.revision.origin, format!("{path}@main"));
    let cost = source.last_poll_cost();
    assert_eq!((cost.ref_lookups, cost.fetches, cost.bytes_received), (1, 0, 0));
    assert!(!cache.exists(), "a plain path needs no cache clone");

    // Uncommitted and staged edits are not commits.
    repo.write("services/a.yaml", "edited\n");
    repo.git(&["add", "-A"]);
    assert!(matches!(
        source.poll().await.unwrap(),
        PollOutcome::Unchanged { .. }
    ));
    let sha_b = repo.commit(&[], "B");
    let (snap, previous, rewritten) = changed(source.poll().await.unwrap());
    assert_eq!(
        (snap.revision.id.as_str(), previous.as_deref(), rewritten),
        (sha_b.as_str(), Some(sha_a.as_str()), false)
    );
    assert_eq!(file(&snap, "services/a.yaml"), "edited\n");

    repo.git(&["reset", "-q", "--hard", &sha_a]);
    repo.commit(&[("services/c.yaml", "c\n")], "C");
    let (_, _, rewritten) = changed(source.poll().await.unwrap());
    assert!(rewritten);

    let empty = Repo::init(tmp.path().join("empty"));
    let err = GitSource::new(config(empty.path.to_str().unwrap(), "HEAD", &cache))
        .unwrap()
        .poll()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::EmptyRepository { .. }), "{err}");
    let plain = tmp.path().join("not-a-repo");
    std::fs::create_dir_all(&plain).unwrap();
    let err = GitSource::new(config(plain.to_str().unwrap(), "HEAD", &cache))
        .unwrap()
        .poll()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::LocalRepository { .. }), "{err}");
}
