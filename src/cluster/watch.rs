//! Watches as change signals: kube-runtime's watcher lists, then watches and resumes; Keelson only needs
//! to know *that* something changed (the next pass re-reads what it needs). A broken watch reconnects
//! after the delays of the same [`RetryPolicy`](super::RetryPolicy) every other request uses.

use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};

use super::{ClusterError, KindRef, Kube, RetryPolicy};

/// Which objects of a kind a watch follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFilter<'a> {
    /// Objects matching a label selector (`a=b,c=d`).
    Labels(&'a str),
    /// The one object of this name.
    Name(&'a str),
}

impl Kube {
    /// Calls `changed` for every change to the objects of `kind` in `namespace` (all namespaces, or a
    /// cluster-scoped kind, with `None`) that `filter` selects, after the first list: what exists at the
    /// start is no change. Runs until the task is dropped; fails only when the server does not serve the
    /// kind (an API server that is down at the start is waited for).
    pub async fn watch_changes(
        &self,
        kind: &KindRef,
        namespace: Option<&str>,
        filter: WatchFilter<'_>,
        changed: impl FnMut(),
    ) -> Result<(), ClusterError> {
        let mut backoff = RetryBackoff::new(self.retry_policy().clone());
        let resource = loop {
            match self.resolve(kind).await {
                Ok((resource, _)) => break resource,
                Err(e) if e.is_transient() => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(1));
                    tracing::debug!(%kind, error = %e, ?delay, "watch: discovery failed; trying again");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        };
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.watch_client().clone(), ns, &resource),
            None => Api::all_with(self.watch_client().clone(), &resource),
        };
        let config = match filter {
            WatchFilter::Labels(selector) => watcher::Config::default().labels(selector),
            WatchFilter::Name(name) => watcher::Config::default().fields(&format!("metadata.name={name}")),
        };
        let what = match namespace {
            Some(ns) => format!("watch of {kind} in namespace {ns}"),
            None => format!("watch of {kind}"),
        };
        let stream = watcher::watcher(api, config).backoff(RetryBackoff::new(self.retry_policy().clone()));
        on_changes(stream, &what, changed).await;
        Ok(())
    }
}

/// Calls `changed` for every change a watcher reports after its first list. A re-list after a watch error
/// may hide a change made in the gap, so it counts as one (the callers then re-read, which costs reads
/// only). Returns when the stream ends.
async fn on_changes<E: std::fmt::Display>(
    stream: impl futures::Stream<Item = Result<Event<DynamicObject>, E>> + Send,
    what: &str,
    mut changed: impl FnMut(),
) {
    let mut stream = std::pin::pin!(stream);
    let mut listed = false;
    let mut relisting = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listed = false,
            Ok(Event::InitDone) => {
                if std::mem::replace(&mut relisting, true) {
                    changed();
                }
                listed = true;
            }
            Ok(Event::Apply(object) | Event::Delete(object)) if listed => {
                tracing::debug!(what, name = ?object.metadata.name, "changed");
                changed();
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(what, error = %e, "watch restarting"),
        }
    }
}

/// The retry policy's exponential delays for a watch that broke; a watch never gives up.
pub(super) struct RetryBackoff {
    policy: RetryPolicy,
    retry: u32,
}

impl RetryBackoff {
    pub(super) fn new(policy: RetryPolicy) -> Self {
        Self { policy, retry: 0 }
    }
}

impl Iterator for RetryBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.policy.backoff(self.retry);
        self.retry = self.retry.saturating_add(1);
        Some(delay)
    }
}

impl Backoff for RetryBackoff {
    fn reset(&mut self) {
        self.retry = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str) -> DynamicObject {
        let resource = kube::discovery::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
        DynamicObject::new(name, &resource)
    }

    #[tokio::test]
    async fn only_changes_after_the_first_list_count_and_a_relist_counts_once() {
        let events: Vec<Result<Event<DynamicObject>, String>> = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(object("listed"))),
            Ok(Event::InitDone),
            Ok(Event::Apply(object("edited"))),
            Ok(Event::Delete(object("deleted"))),
            Err("connection reset".into()),
            Ok(Event::Init),
            Ok(Event::InitApply(object("listed"))),
            Ok(Event::InitDone),
        ];
        let mut count = 0;
        on_changes(futures::stream::iter(events), "test", || count += 1).await;
        assert_eq!(count, 3, "edit, delete, and the re-list that may hide a change");
    }

    #[test]
    fn a_broken_watch_backs_off_like_a_request_and_starts_over_when_it_works_again() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            ..RetryPolicy::default()
        };
        let mut backoff = RetryBackoff::new(policy);
        let delays: Vec<Duration> = backoff.by_ref().take(5).collect();
        let bounds = [(50, 100), (100, 200), (200, 400), (200, 400), (200, 400)];
        for (delay, (lo, hi)) in delays.iter().zip(bounds) {
            assert!((lo..=hi).contains(&(delay.as_millis() as u64)), "{delays:?}");
        }
        backoff.reset();
        assert!(backoff.next().is_some_and(|d| d <= Duration::from_millis(100)));
    }
}
