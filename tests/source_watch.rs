//! The local repository watcher against real `git commit`s.

mod source_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keelson::source::watch::LocalWatcher;
use source_support::Repo;
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_the_watcher_and_a_burst_wakes_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(tmp.path().join("topology"));
    repo.commit(&[("keelson.yaml", "kind: Topology\n")], "A");
    let wake = Arc::new(Notify::new());
    let debounce = Duration::from_millis(300);
    let watcher = LocalWatcher::spawn(&repo.path, debounce, wake.clone()).unwrap();

    // Editing and staging files is not a commit: no wake-up.
    repo.write("keelson.yaml", "kind: Topology\n# edited\n");
    repo.git(&["add", "-A"]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(watcher.wakeups(), 0);

    let started = Instant::now();
    repo.git(&["commit", "-q", "-m", "B"]);
    tokio::time::timeout(Duration::from_secs(5), wake.notified())
        .await
        .expect("no wake-up after a commit");
    let latency = started.elapsed();
    eprintln!("commit to wake-up: {latency:?}");
    assert!(latency < Duration::from_secs(1), "woke after {latency:?}");
    assert_eq!(watcher.wakeups(), 1);

    // Five commits in quick succession: one wake-up.
    for i in 0..5 {
        repo.commit(&[("counter", &i.to_string())], &format!("burst {i}"));
    }
    tokio::time::timeout(Duration::from_secs(5), wake.notified())
        .await
        .expect("no wake-up after a burst");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(watcher.wakeups(), 2, "a burst must be debounced into one wake-up");

    // Branch changes and resets move refs too.
    repo.git(&["checkout", "-q", "-b", "feature"]);
    tokio::time::timeout(Duration::from_secs(5), wake.notified())
        .await
        .expect("no wake-up after checkout");
    drop(watcher);
}

#[tokio::test]
async fn watching_something_that_is_not_a_repository_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let err = LocalWatcher::spawn(tmp.path(), Duration::from_millis(50), Arc::new(Notify::new()))
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("local repository "), "{err}");
}
