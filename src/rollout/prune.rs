//! Deletions, after every component is healthy: deletion wave by deletion wave (dependents before
//! their dependencies), each wave's objects gone before the next starts. A failed delete is recorded
//! and the rest continue; the next pass plans it again.

use std::time::{Duration, Instant};

use crate::cluster::{ChangeKind, ChangeSet, DeleteOptions, Deleted, Kube, ObjectRef};
use crate::plan::Plan;

use super::{ProgressEvent, RolloutOptions};

/// Returns what was deleted and whether cancellation cut it short.
pub(super) async fn run(kube: &Kube, plan: &Plan, opts: &RolloutOptions) -> (ChangeSet, bool) {
    let mut changes = ChangeSet::default();
    let delete_opts = DeleteOptions {
        dry_run: opts.dry_run,
        ..DeleteOptions::default()
    };
    let mut cancelled = false;
    for wave in &plan.deletions {
        let mut deleted = Vec::new();
        for object in wave
            .components
            .iter()
            .flat_map(|c| c.changes.iter())
            .map(|c| &c.reference)
        {
            if cancelled || opts.cancel.is_cancelled() {
                cancelled = true;
                changes.push(
                    object.clone(),
                    ChangeKind::Skipped,
                    Some(opts.cancel_reason.text()),
                );
                continue;
            }
            match kube.delete(object, &delete_opts).await {
                Ok(result) => {
                    let note = (result == Deleted::AlreadyGone).then(|| "already gone".to_string());
                    changes.push(object.clone(), ChangeKind::Deleted, note);
                    opts.emit(ProgressEvent::ObjectDeleted {
                        object: object.clone(),
                        change: ChangeKind::Deleted,
                    });
                    deleted.push(object.clone());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "delete failed; the next pass retries it");
                    changes.push(object.clone(), ChangeKind::Failed, Some(e.to_string()));
                }
            }
        }
        let timeout = wave
            .components
            .iter()
            .map(|c| c.health_timeout)
            .max()
            .unwrap_or_default();
        if !opts.dry_run && !cancelled && !wait_gone(kube, deleted, timeout, opts).await {
            cancelled = opts.cancel.is_cancelled();
        }
    }
    (changes, cancelled)
}

/// Wait (bounded by the wave's longest health timeout) until the deleted objects are gone, so a dependency
/// is not removed while its dependents still run. Returns false when the wait ended early. With a view the
/// watch says when they are gone; without one each is read every poll interval.
async fn wait_gone(
    kube: &Kube,
    mut remaining: Vec<ObjectRef>,
    timeout: Duration,
    opts: &RolloutOptions,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut changes = match &opts.view {
        Some(view) => view.subscribe(&remaining).await.ok(),
        None => None,
    };
    while !remaining.is_empty() {
        let mut still = Vec::new();
        for object in remaining {
            let gone = match (&opts.view, &changes) {
                (Some(view), Some(_)) => matches!(view.object(&object).await, Ok(None)),
                _ => {
                    let read = tokio::select! {
                        _ = opts.cancel.cancelled() => return false,
                        read = kube.get(&object) => read,
                    };
                    matches!(read, Ok(None))
                }
            };
            // A read error is not a reason to stop deleting: keep waiting until the deadline.
            if !gone {
                still.push(object);
            }
        }
        remaining = still;
        if remaining.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                objects = remaining.len(),
                "deleted objects still present after the health timeout"
            );
            return false;
        }
        let nap = async {
            match changes.as_mut() {
                Some(changes) => changes.next().await,
                None => tokio::time::sleep(opts.poll_interval).await,
            }
        };
        tokio::select! {
            _ = opts.cancel.cancelled() => return false,
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {}
            _ = nap => {}
        }
    }
    true
}
