//! A watch-fed view of the cluster: one kube-runtime watcher per kind and namespace, started on demand and
//! shared by planning (the live set), the create guard (is a name taken by someone else?), health waits
//! and prune waits. After its first list a feed costs no request: the API server pushes every change.
//!
//! Two forms of feed:
//! - **owned**: the topology's objects (ownership label selector), kept as the plan needs them: without
//!   `managedFields`, and without `status` for kinds whose health is their existence;
//! - **names**: every object of a kind in a namespace, metadata only (a metadata watch), so that a name
//!   someone else holds is seen without a GET per object;
//! - **pods**: the Pods and ReplicaSets made from the topology's pod templates (by the topology label),
//!   slimmed to what [`super::pods::explain`] reads, so that a health wait can say why a workload is not
//!   ready without a request per Pod.
//!
//! A feed whose watch breaks re-lists (kube-runtime does this on a `410 Gone` or a lost connection) and
//! replaces its contents at once, so the view never keeps an object that went away while it was blind.
//! Until a feed has listed once, nothing is answered from it: reads wait, and fail with the list's error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::discovery::Scope;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::watch as signal;

use super::inventory::{inventory_ref, parse_inventory};
use super::pods;
use super::watch::RetryBackoff;
use super::{ClusterError, KindRef, Kube, ObjectRef, Verb, foreign_reason, has_status_rules, is_owned};
use super::{owned_selector, to_value};
use crate::object::{LABEL_MANAGED_BY, LABEL_TOPOLOGY, MANAGED_BY_VALUE};

/// Objects per page of a feed's first list: large, so a kind of a big topology is one request.
const PAGE_SIZE: u32 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Form {
    Owned,
    Names,
    Pods,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FeedKey {
    form: Form,
    kind: KindRef,
    /// `None` for a cluster-scoped kind.
    namespace: Option<String>,
}

/// A shared, watch-fed view of one topology's objects (and of the names of their kinds). Cheap to clone;
/// its watches stop when the last clone is dropped.
#[derive(Clone)]
pub struct ClusterView {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClusterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterView")
            .field("topology", &self.inner.topology)
            .finish_non_exhaustive()
    }
}

struct Inner {
    kube: Kube,
    topology: String,
    selector: String,
    /// Where the topology's inventory ConfigMap lives: ConfigMaps there are fed by the `managed-by` label
    /// alone, so that the inventory (which carries no topology label) comes with the same list and watch.
    inventory_namespace: Option<String>,
    feeds: Mutex<HashMap<FeedKey, Arc<Feed>>>,
    on_change: Arc<Mutex<Option<Callback>>>,
}

/// Called after an owned feed took in a change (not its first list).
type Callback = Arc<dyn Fn() + Send + Sync>;

impl Drop for Inner {
    fn drop(&mut self) {
        let feeds = self.feeds.get_mut().unwrap_or_else(|p| p.into_inner());
        for feed in feeds.values() {
            feed.stop();
        }
    }
}

/// One watcher's store.
struct Feed {
    what: String,
    state: Mutex<FeedState>,
    /// Bumped after every event the store took in; waiters look again when it moves.
    changed: signal::Sender<u64>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The view's change callback (owned feeds only).
    on_change: Option<Arc<Mutex<Option<Callback>>>>,
}

#[derive(Default)]
struct FeedState {
    objects: HashMap<String, Arc<Value>>,
    /// Filled between a (re-)list's `Init` and `InitDone`, then swapped in whole.
    relist: Option<HashMap<String, Arc<Value>>>,
    listed: bool,
    /// Errors since the last successful list, and the last one.
    failures: u32,
    error: Option<ClusterError>,
}

impl Feed {
    fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_in(&self, event: Result<Event<(String, Value)>, ClusterError>) {
        let changed = {
            let mut state = self.lock();
            // A re-list may hide a change made while the watch was down, so it counts as one.
            let change = match &event {
                Ok(Event::Apply(_) | Event::Delete(_) | Event::InitDone) => state.listed,
                _ => false,
            };
            match event {
                Ok(Event::Init) => state.relist = Some(HashMap::new()),
                Ok(Event::InitApply((name, object))) => {
                    state
                        .relist
                        .get_or_insert_default()
                        .insert(name, Arc::new(object));
                }
                Ok(Event::InitDone) => {
                    state.objects = state.relist.take().unwrap_or_default();
                    state.listed = true;
                    state.failures = 0;
                    state.error = None;
                }
                Ok(Event::Apply((name, object))) => {
                    state.objects.insert(name, Arc::new(object));
                }
                Ok(Event::Delete((name, _))) => {
                    state.objects.remove(&name);
                }
                Err(e) => {
                    tracing::debug!(feed = %self.what, error = %e, "watch failed; it restarts with a re-list");
                    state.failures = state.failures.saturating_add(1);
                    state.error = Some(e);
                }
            }
            change
        };
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        if changed {
            let callback = self
                .on_change
                .as_ref()
                .and_then(|c| c.lock().unwrap_or_else(|p| p.into_inner()).clone());
            if let Some(callback) = callback {
                callback();
            }
        }
    }
}

/// Wakes when any of a set of feeds took in an event.
pub struct Changes {
    receivers: Vec<signal::Receiver<u64>>,
}

impl Changes {
    /// Also wake on `other`'s feeds.
    pub fn merge(&mut self, other: Changes) {
        self.receivers.extend(other.receivers);
    }

    /// Returns after the next event of any feed (at once if one came since the last call). A view that is
    /// gone never wakes.
    pub async fn next(&mut self) {
        if self.receivers.is_empty() {
            return futures::future::pending().await;
        }
        let waits = self.receivers.iter_mut().map(|r| Box::pin(r.changed()));
        let (result, _, _) = futures::future::select_all(waits).await;
        if result.is_err() {
            futures::future::pending::<()>().await;
        }
        for r in &mut self.receivers {
            r.borrow_and_update();
        }
    }
}

impl Kube {
    /// A watch-fed view of `topology`'s objects; no request is sent until something is asked of it.
    pub fn view(&self, topology: &str) -> ClusterView {
        self.view_with_inventory(topology, None)
    }

    /// Like [`Kube::view`], also holding the topology's inventory, stored in `inventory_namespace`.
    pub fn view_with_inventory(&self, topology: &str, inventory_namespace: Option<&str>) -> ClusterView {
        ClusterView {
            inner: Arc::new(Inner {
                kube: self.clone(),
                topology: topology.to_string(),
                selector: owned_selector(topology),
                inventory_namespace: inventory_namespace.map(str::to_string),
                feeds: Mutex::default(),
                on_change: Arc::default(),
            }),
        }
    }
}

impl ClusterView {
    pub fn topology(&self) -> &str {
        &self.inner.topology
    }

    /// Where this view looks for the inventory, if it does.
    pub fn inventory_namespace(&self) -> Option<&str> {
        self.inner.inventory_namespace.as_deref()
    }

    /// The stored inventory text (see [`Kube::read_inventory`]), from the ConfigMap feed of the
    /// inventory namespace: no request of its own. `None` when none was written yet.
    pub async fn inventory(&self) -> Result<Option<String>, ClusterError> {
        let Some(namespace) = self.inner.inventory_namespace.clone() else {
            return Err(ClusterError::InvalidObject {
                object: format!("inventory of topology {}", self.inner.topology),
                reason: "this view was made without an inventory namespace".into(),
            });
        };
        let reference = inventory_ref(&namespace, &self.inner.topology);
        let Some(feed) = self.feed_of(Form::Owned, &reference).await? else {
            return Ok(None);
        };
        self.listed(&feed).await?;
        let live = feed.lock().objects.get(&reference.name).cloned();
        parse_inventory(&reference, live.as_deref(), &self.inner.topology)
    }

    /// Calls `callback` after every change an owned feed sees once it has listed (an object written,
    /// deleted, or a re-list after a broken watch): the drift signal of a daemon, raised only once the view
    /// holds the change, so the re-plan it wakes reads it. Replaces an earlier callback.
    pub fn on_change(&self, callback: impl Fn() + Send + Sync + 'static) {
        *self.inner.on_change.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(callback));
    }

    /// Whether `other` is this very view (a clone of it).
    pub fn same_as(&self, other: &ClusterView) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn owns(&self, live: &Value) -> bool {
        is_owned(live, Some(&self.inner.topology))
    }

    fn kube(&self) -> &Kube {
        &self.inner.kube
    }

    /// Every owned object of `kinds` in `namespaces` (cluster-scoped kinds once), as the view holds them:
    /// the first call per kind and namespace lists it (one request) and starts its watch; later calls send
    /// nothing. Kinds the server does not serve have no objects. Any feed that cannot list fails the read,
    /// so a partial view never drives a prune.
    pub async fn owned(&self, kinds: &[KindRef], namespaces: &[String]) -> Result<Vec<Value>, ClusterError> {
        let mut feeds = Vec::new();
        for kind in kinds {
            let Some(scope) = self.scope_of(kind).await? else {
                continue;
            };
            let scopes: Vec<Option<String>> = match scope {
                Scope::Cluster => vec![None],
                Scope::Namespaced => namespaces.iter().cloned().map(Some).collect(),
            };
            for namespace in scopes {
                let key = FeedKey {
                    form: Form::Owned,
                    kind: kind.clone(),
                    namespace,
                };
                feeds.push(self.feed(key).await?);
            }
        }
        let mut out = Vec::new();
        for feed in feeds {
            self.listed(&feed).await?;
            let state = feed.lock();
            let mut objects: Vec<&Arc<Value>> = state.objects.values().filter(|o| self.owns(o)).collect();
            objects.sort_by(|a, b| name_of(a).cmp(name_of(b)));
            out.extend(objects.into_iter().map(|o| Value::clone(o)));
        }
        Ok(out)
    }

    /// The owned object `reference` names, as the view holds it now (`None`: not there, or not owned).
    pub async fn object(&self, reference: &ObjectRef) -> Result<Option<Arc<Value>>, ClusterError> {
        let Some(feed) = self.feed_of(Form::Owned, reference).await? else {
            return Ok(None);
        };
        self.listed(&feed).await?;
        let found = feed.lock().objects.get(&reference.name).cloned();
        Ok(found.filter(|o| self.owns(o)))
    }

    /// Why the name `reference` gives is not free for Keelson to create: `Some(reason)` when an object
    /// of that name exists and is not this topology's. Answered from a metadata watch of every object of
    /// the kind in the namespace (one list the first time, then nothing).
    pub async fn foreign(&self, reference: &ObjectRef) -> Result<Option<String>, ClusterError> {
        let Some(feed) = self.feed_of(Form::Names, reference).await? else {
            return Ok(None);
        };
        self.listed(&feed).await?;
        let state = feed.lock();
        let Some(live) = state.objects.get(&reference.name) else {
            return Ok(None);
        };
        let topology = Some(self.inner.topology.as_str());
        Ok((!is_owned(live, topology)).then(|| foreign_reason(live, topology)))
    }

    /// The names of every object of `kind` in `namespace` (`None` for a cluster-scoped kind), from the same
    /// metadata watch the create guard reads: one list the first time, then nothing. `None` when the server
    /// does not serve the kind.
    pub async fn names(
        &self,
        kind: &KindRef,
        namespace: Option<&str>,
    ) -> Result<Option<std::collections::BTreeSet<String>>, ClusterError> {
        let Some(scope) = self.scope_of(kind).await? else {
            return Ok(None);
        };
        let key = FeedKey {
            form: Form::Names,
            kind: kind.clone(),
            namespace: match scope {
                Scope::Cluster => None,
                Scope::Namespaced => namespace.map(str::to_string),
            },
        };
        let feed = self.feed(key).await?;
        self.listed(&feed).await?;
        let names = feed.lock().objects.keys().cloned().collect();
        Ok(Some(names))
    }

    /// Whether the server serves `kind` (discovery, cached; a miss asks again).
    pub async fn served(&self, kind: &KindRef) -> Result<bool, ClusterError> {
        Ok(self.scope_of(kind).await?.is_some())
    }

    /// Wakes on every change to the owned feeds of `references` (starting them when needed). Subscribe
    /// first, then read: a change made in between still wakes the next [`Changes::next`].
    pub async fn subscribe(&self, references: &[ObjectRef]) -> Result<Changes, ClusterError> {
        let mut seen: Vec<FeedKey> = Vec::new();
        let mut receivers = Vec::new();
        for reference in references {
            let Some(key) = self.key_of(Form::Owned, reference).await? else {
                continue;
            };
            if seen.contains(&key) {
                continue;
            }
            let feed = self.feed(key.clone()).await?;
            let mut receiver = feed.changed.subscribe();
            receiver.borrow_and_update();
            receivers.push(receiver);
            seen.push(key);
        }
        Ok(Changes { receivers })
    }

    /// The Pods and the ReplicaSets of `namespace` made from this topology's pod templates, as
    /// [`super::pods::slim`] keeps them: one list and one watch per kind and namespace the first time,
    /// then nothing.
    pub async fn pods(&self, namespace: &str) -> Result<(Vec<Arc<Value>>, Vec<Arc<Value>>), ClusterError> {
        let mut out = Vec::new();
        for kind in pod_kinds() {
            let key = FeedKey {
                form: Form::Pods,
                kind,
                namespace: Some(namespace.to_string()),
            };
            let feed = self.feed(key).await?;
            self.listed(&feed).await?;
            let mut objects: Vec<Arc<Value>> = feed.lock().objects.values().cloned().collect();
            objects.sort_by(|a, b| name_of(a).cmp(name_of(b)));
            out.push(objects);
        }
        let replica_sets = out.pop().unwrap_or_default();
        let pods = out.pop().unwrap_or_default();
        Ok((pods, replica_sets))
    }

    /// Wakes on every change to the Pods and ReplicaSets of `namespace` (see [`ClusterView::pods`]),
    /// starting their feeds when needed. The first [`Changes::next`] returns at once, so a change that
    /// came between an earlier read of [`ClusterView::pods`] and this call is not missed.
    pub async fn subscribe_pods(&self, namespace: &str) -> Result<Changes, ClusterError> {
        let mut receivers = Vec::new();
        for kind in pod_kinds() {
            let key = FeedKey {
                form: Form::Pods,
                kind,
                namespace: Some(namespace.to_string()),
            };
            let feed = self.feed(key).await?;
            let mut receiver = feed.changed.subscribe();
            receiver.mark_changed();
            receivers.push(receiver);
        }
        Ok(Changes { receivers })
    }

    /// The feed key for `reference`'s kind and namespace; `None` when the server does not serve the kind.
    async fn key_of(&self, form: Form, reference: &ObjectRef) -> Result<Option<FeedKey>, ClusterError> {
        let kind = KindRef::of(reference);
        let Some(scope) = self.scope_of(&kind).await? else {
            return Ok(None);
        };
        let namespace = match scope {
            Scope::Cluster => None,
            Scope::Namespaced => match &reference.namespace {
                Some(ns) => Some(ns.clone()),
                None => {
                    return Err(ClusterError::InvalidObject {
                        object: reference.to_string(),
                        reason: "metadata.namespace missing for a namespaced kind".into(),
                    });
                }
            },
        };
        Ok(Some(FeedKey {
            form,
            kind,
            namespace,
        }))
    }

    async fn feed_of(&self, form: Form, reference: &ObjectRef) -> Result<Option<Arc<Feed>>, ClusterError> {
        match self.key_of(form, reference).await? {
            Some(key) => Ok(Some(self.feed(key).await?)),
            None => Ok(None),
        }
    }

    async fn scope_of(&self, kind: &KindRef) -> Result<Option<Scope>, ClusterError> {
        match self.kube().resolve(kind).await {
            Ok((_, caps)) => Ok(Some(caps.scope)),
            Err(ClusterError::UnknownKind { .. }) => {
                tracing::debug!(%kind, "kind not served; nothing to watch");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The feed for `key`, started when there is none yet.
    async fn feed(&self, key: FeedKey) -> Result<Arc<Feed>, ClusterError> {
        if let Some(feed) = self.feeds().get(&key) {
            return Ok(feed.clone());
        }
        let (resource, _) = self.kube().resolve(&key.kind).await?;
        let mut feeds = self.feeds();
        if let Some(feed) = feeds.get(&key) {
            return Ok(feed.clone());
        }
        let what = match (&key.form, &key.namespace) {
            (Form::Owned, Some(ns)) => format!("owned {} in namespace {ns}", resource.plural),
            (Form::Owned, None) => format!("owned {}", resource.plural),
            (Form::Names, Some(ns)) => format!("names of {} in namespace {ns}", resource.plural),
            (Form::Names, None) => format!("names of {}", resource.plural),
            (Form::Pods, Some(ns)) => format!(
                "{} of topology {} in namespace {ns}",
                resource.plural, self.inner.topology
            ),
            (Form::Pods, None) => format!("{} of topology {}", resource.plural, self.inner.topology),
        };
        let (changed, _) = signal::channel(0);
        let feed = Arc::new(Feed {
            what: what.clone(),
            state: Mutex::default(),
            changed,
            task: Mutex::new(None),
            on_change: (key.form == Form::Owned).then(|| self.inner.on_change.clone()),
        });
        let client = self.kube().watch_client().clone();
        let api: Api<DynamicObject> = match &key.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let backoff = RetryBackoff::new(self.kube().retry_policy().clone());
        let task = match key.form {
            Form::Owned => {
                let holds_inventory = resource.api_version == "v1"
                    && resource.kind == "ConfigMap"
                    && key.namespace.is_some()
                    && key.namespace == self.inner.inventory_namespace;
                let selector = if holds_inventory {
                    format!("{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}")
                } else {
                    self.inner.selector.clone()
                };
                let config = watcher::Config::default().labels(&selector).page_size(PAGE_SIZE);
                let keep_status = has_status_rules(&resource.api_version, &resource.kind);
                let (api_version, kind) = (resource.api_version.clone(), resource.kind.clone());
                let stream = watcher::watcher(api, config).backoff(backoff).map(move |event| {
                    event.map_err(|e| watch_error(&what, e)).and_then(|event| {
                        map_event(event, |o| slim(&what, o, &api_version, &kind, keep_status))
                    })
                });
                tokio::spawn(run_feed(Arc::downgrade(&feed), stream))
            }
            Form::Names => {
                let config = watcher::Config::default().page_size(PAGE_SIZE);
                // `PartialObjectMeta` asks for metadata only (`as=PartialObjectMetadataList`).
                let api: Api<PartialObjectMeta<DynamicObject>> = match &key.namespace {
                    Some(ns) => Api::namespaced_with(client, ns, &resource),
                    None => Api::all_with(client, &resource),
                };
                let stream = watcher::watcher(api, config).backoff(backoff).map(move |event| {
                    event.map_err(|e| watch_error(&what, e)).and_then(|event| {
                        map_event(event, |o| {
                            let name = o.metadata.name.clone().unwrap_or_default();
                            let metadata = serde_json::to_value(&o.metadata).unwrap_or_default();
                            Ok((name, serde_json::json!({ "metadata": metadata })))
                        })
                    })
                });
                tokio::spawn(run_feed(Arc::downgrade(&feed), stream))
            }
            Form::Pods => {
                let selector = format!("{LABEL_TOPOLOGY}={}", self.inner.topology);
                let config = watcher::Config::default().labels(&selector).page_size(PAGE_SIZE);
                let (api_version, kind) = (resource.api_version.clone(), resource.kind.clone());
                let stream = watcher::watcher(api, config).backoff(backoff).map(move |event| {
                    event.map_err(|e| watch_error(&what, e)).and_then(|event| {
                        map_event(event, |o| {
                            let (name, value) = slim(&what, o, &api_version, &kind, true)?;
                            Ok((name, pods::slim(&value)))
                        })
                    })
                });
                tokio::spawn(run_feed(Arc::downgrade(&feed), stream))
            }
        };
        *feed.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        feeds.insert(key, feed.clone());
        Ok(feed)
    }

    fn feeds(&self) -> std::sync::MutexGuard<'_, HashMap<FeedKey, Arc<Feed>>> {
        self.inner.feeds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `feed` has listed once. A list that fails for good (forbidden, bad request), or keeps
    /// failing for as many attempts as the retry policy allows a request, fails the read; the feed is then
    /// dropped, so the next read starts afresh.
    async fn listed(&self, feed: &Arc<Feed>) -> Result<(), ClusterError> {
        let attempts = self.kube().retry_policy().max_attempts.max(1);
        let mut changes = feed.changed.subscribe();
        loop {
            {
                let mut state = feed.lock();
                if state.listed {
                    return Ok(());
                }
                let give_up = state
                    .error
                    .as_ref()
                    .is_some_and(|e| !e.is_transient() || state.failures >= attempts);
                if give_up {
                    let error = state.error.take();
                    drop(state);
                    feed.stop();
                    self.feeds().retain(|_, f| !Arc::ptr_eq(f, feed));
                    if let Some(error) = error {
                        return Err(error);
                    }
                }
            }
            if changes.changed().await.is_err() {
                // Unreachable while `feed` is held; wait a moment rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Feeds `stream` into the feed while the feed exists.
async fn run_feed(
    feed: std::sync::Weak<Feed>,
    stream: impl futures::Stream<Item = Result<Event<(String, Value)>, ClusterError>> + Send,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let Some(feed) = feed.upgrade() else {
            return;
        };
        feed.take_in(event);
    }
}

fn map_event<K>(
    event: Event<K>,
    convert: impl Fn(K) -> Result<(String, Value), ClusterError>,
) -> Result<Event<(String, Value)>, ClusterError> {
    Ok(match event {
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
        Event::InitApply(o) => Event::InitApply(convert(o)?),
        Event::Apply(o) => Event::Apply(convert(o)?),
        Event::Delete(o) => Event::Delete(convert(o)?),
    })
}

/// What the plan, the create guard and health need of an owned object: no `managedFields` (often the
/// biggest part of a stored object), no `status` where health is existence.
fn slim(
    what: &str,
    object: DynamicObject,
    api_version: &str,
    kind: &str,
    keep_status: bool,
) -> Result<(String, Value), ClusterError> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let mut value = to_value(what, object)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(api_version.to_string()));
        map.insert("kind".into(), Value::String(kind.to_string()));
        if !keep_status {
            map.remove("status");
        }
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    }
    Ok((name, value))
}

fn watch_error(what: &str, error: watcher::Error) -> ClusterError {
    match error {
        watcher::Error::InitialListFailed(e) => ClusterError::from_kube(what, Verb::List, e),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            ClusterError::from_kube(what, Verb::Watch, e)
        }
        watcher::Error::WatchError(status) => {
            ClusterError::from_kube(what, Verb::Watch, kube::Error::Api(status))
        }
        watcher::Error::NoResourceVersion => ClusterError::InvalidObject {
            object: what.to_string(),
            reason: "the server sent no resourceVersion; the kind cannot be watched".into(),
        },
    }
}

/// The kinds of the pods feeds, Pods first.
fn pod_kinds() -> [KindRef; 2] {
    [KindRef::new("v1", "Pod"), KindRef::new("apps/v1", "ReplicaSet")]
}

fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}
