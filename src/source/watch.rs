//! Wakes the reconciler when a local repository's refs move (`git commit`, `git reset`, `git fetch`, ...).
//!
//! Only HEAD, `packed-refs` and `refs/` are watched: edits in the working tree or the index are not commits and
//! cannot change what Keelson reads. Bursts (a rebase writes many refs) are debounced into one wake-up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::{Notify, mpsc};

use super::SourceError;

/// A running watch; dropping it stops watching.
pub struct LocalWatcher {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
    wakeups: Arc<AtomicU64>,
    git_dir: PathBuf,
}

impl LocalWatcher {
    /// Watches the repository at `repo` (a working tree or a bare repository). After the first ref change,
    /// waits until `debounce` passes without another change (at most ten windows), then calls
    /// `wake.notify_one()`. Must be called inside a Tokio runtime.
    pub fn spawn(repo: &Path, debounce: Duration, wake: Arc<Notify>) -> Result<Self, SourceError> {
        let opened = git2::Repository::open(repo).map_err(|source| SourceError::LocalRepository {
            path: repo.to_path_buf(),
            source,
        })?;
        let git_dir = opened.path().to_path_buf();
        let common_dir = opened.commondir().to_path_buf();
        drop(opened);

        let (tx, rx) = mpsc::unbounded_channel::<()>();
        let roots = [git_dir.clone(), common_dir.clone()];
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            if event.paths.iter().any(|p| is_ref_path(&roots, p)) {
                let _ = tx.send(());
            }
        })
        .map_err(|source| SourceError::Watch {
            path: git_dir.clone(),
            source,
        })?;
        let watch = |watcher: &mut notify::RecommendedWatcher, path: &Path, mode| {
            watcher.watch(path, mode).map_err(|source| SourceError::Watch {
                path: path.to_path_buf(),
                source,
            })
        };
        watch(&mut watcher, &git_dir, RecursiveMode::NonRecursive)?;
        let refs = common_dir.join("refs");
        watch(&mut watcher, &refs, RecursiveMode::Recursive)?;
        if common_dir != git_dir {
            watch(&mut watcher, &common_dir, RecursiveMode::NonRecursive)?;
        }

        let wakeups = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(debounce_loop(rx, debounce, wake, wakeups.clone()));
        tracing::debug!(git_dir = %git_dir.display(), "watching local repository refs");
        Ok(Self {
            _watcher: watcher,
            task,
            wakeups,
            git_dir,
        })
    }

    /// Wake-ups sent so far.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// The git directory being watched.
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }
}

impl Drop for LocalWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn debounce_loop(
    mut rx: mpsc::UnboundedReceiver<()>,
    debounce: Duration,
    wake: Arc<Notify>,
    wakeups: Arc<AtomicU64>,
) {
    // A steady stream of ref changes must still wake the reconciler now and then.
    let max_wait = debounce.saturating_mul(10);
    while rx.recv().await.is_some() {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let quiet = tokio::time::sleep(debounce);
            tokio::select! {
                event = rx.recv() => {
                    if event.is_none() || tokio::time::Instant::now() >= deadline {
                        break;
                    }
                }
                () = quiet => break,
            }
        }
        wakeups.fetch_add(1, Ordering::Relaxed);
        wake.notify_one();
    }
}

/// HEAD, packed-refs, and anything under refs/, but not lock files (a ref is complete only once renamed).
fn is_ref_path(roots: &[PathBuf], path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "lock") {
        return false;
    }
    roots.iter().any(|root| match path.strip_prefix(root) {
        Ok(rel) => rel == Path::new("HEAD") || rel == Path::new("packed-refs") || rel.starts_with("refs"),
        Err(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_ref_paths() {
        let roots = [PathBuf::from("/r/.git")];
        let rows = [
            ("/r/.git/HEAD", true),
            ("/r/.git/packed-refs", true),
            ("/r/.git/refs/heads/main", true),
            ("/r/.git/refs/heads/main.lock", false),
            ("/r/.git/HEAD.lock", false),
            ("/r/.git/index", false),
            ("/r/.git/ORIG_HEAD", false),
            ("/r/.git/objects/ab/cdef", false),
            ("/r/keelson.yaml", false),
            ("/r/.git/refsfoo", false),
        ];
        for (path, want) in rows {
            assert_eq!(is_ref_path(&roots, Path::new(path)), want, "{path}");
        }
    }
}
