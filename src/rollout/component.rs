//! One component's rollout, one method per step: apply a stage's objects, wait until they are healthy,
//! go on to the next stage (config -> services -> pre-jobs -> workload -> post-jobs).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::Value;

use crate::cluster::pods::{self, Healing, PodReason, runs_pods};
use crate::cluster::{
    ApplyOptions, ChangeKind, ChangeSet, ClusterError, ClusterView, DeleteOptions, Health, HealthStatus,
    KindRef, Kube, ObjectRef, PropagationPolicy, has_status_rules, health,
};
use crate::object::ANNOTATION_HASH;
use crate::plan::{Action, Change, ComponentPlan};
use crate::render::Stage;

use super::{
    ComponentOutcome, ComponentState, Milestone, Milestones, ProgressEvent, RolloutOptions, outcome, secrets,
};

/// Without a view, a workload's Pods are listed at most this often while it is waited on.
const POD_LIST_INTERVAL: Duration = Duration::from_secs(2);

/// Between a workload's own reason and the one its Pods give.
const POD_REASON_SEPARATOR: &str = " — ";

/// One read of an object, judged.
enum Verdict {
    Healthy,
    /// Not yet; its status was read and is what the reason says.
    Waiting(String),
    /// Not yet, and its status says nothing yet (not found, or this write not visible yet).
    Unread(String),
    Failed(String),
}

/// Why a component stopped before becoming healthy.
enum Stop {
    Failed(String),
    /// Not healthy within the step's timeout.
    TimedOut(String),
    Cancelled,
}

pub(super) async fn run(
    kube: &Kube,
    c: &ComponentPlan,
    opts: &RolloutOptions,
    milestones: &Milestones,
) -> (ComponentOutcome, ChangeSet) {
    let started = Instant::now();
    let timeout = c.health_timeout;
    let mut step = Step {
        kube,
        component: c,
        opts,
        milestones,
        deadline: started + timeout,
        timeout,
        component_timeout: timeout,
        changes: ChangeSet::default(),
        applied: HashMap::new(),
        grace_since: HashMap::new(),
        pod_reads: HashMap::new(),
        pods_unreadable: false,
        pods_read: Vec::new(),
        wake_at: None,
        told_waiting: String::new(),
    };
    let result = step.all_stages().await;
    let timed_out = matches!(result, Err(Stop::TimedOut(_)));
    let (state, reason) = match result {
        Ok(()) => (
            ComponentState::Healthy,
            format!("{} object(s) healthy", c.changes.len()),
        ),
        Err(Stop::Failed(reason) | Stop::TimedOut(reason)) => (ComponentState::Failed, reason),
        Err(Stop::Cancelled) => (ComponentState::Skipped, opts.cancel_reason.text()),
    };
    let mut changes = step.changes;
    // Objects the component never reached are reported, so the change set accounts for every object.
    for change in &c.changes {
        if !changes.entries.iter().any(|e| e.object == change.reference) {
            changes.push(
                change.reference.clone(),
                ChangeKind::Skipped,
                Some(format!("not reached: {reason}")),
            );
        }
    }
    // Debug: the daemon logs one line per pass, not one per component.
    tracing::debug!(component = %c.name, %state, %reason, "component finished");
    let mut result = outcome(&c.name, state, &reason, started.elapsed());
    result.timed_out = timed_out;
    (result, changes)
}

struct Step<'a> {
    kube: &'a Kube,
    component: &'a ComponentPlan,
    opts: &'a RolloutOptions,
    milestones: &'a Milestones,
    /// The current step's deadline and length.
    deadline: Instant,
    timeout: Duration,
    component_timeout: Duration,
    changes: ChangeSet,
    /// What the server answered for each object written: a health wait judges an object only once the
    /// view shows this write (same uid, at least this generation), never an older copy.
    applied: HashMap<ObjectRef, Written>,
    /// Since when each object's Pods have shown a reason that heals only if someone acts (and which).
    grace_since: HashMap<ObjectRef, (&'static str, Instant)>,
    /// Without a view: when each workload's Pods were last listed, and what they said.
    pod_reads: HashMap<ObjectRef, (Instant, Option<PodReason>)>,
    /// Reading Pods failed once (not permitted, say): health goes on without their reasons.
    pods_unreadable: bool,
    /// Namespaces whose Pods the view was asked for since the wait last looked (it then watches them).
    pods_read: Vec<String>,
    /// When a grace ends: the wait looks again then even if nothing changes.
    wake_at: Option<Instant>,
    /// The waiting reason last sent as progress.
    told_waiting: String,
}

/// Identity, generation and content hash of an object as a write left it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    uid: Option<String>,
    generation: i64,
    hash: Option<String>,
}

impl Written {
    fn of(object: &Value) -> Self {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Written {
            uid: text("/metadata/uid"),
            generation: object
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            hash: object
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(ANNOTATION_HASH))
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }

    /// Whether `live` is this write or a later state of the same object: the same uid, at least this
    /// generation (kinds without one, like ConfigMaps, stay at 0), the same content hash.
    fn seen_in(&self, live: &Value) -> bool {
        let live = Written::of(live);
        (self.uid.is_none() || live.uid == self.uid)
            && live.generation >= self.generation
            && (self.hash.is_none() || live.hash == self.hash)
    }
}

/// One object's apply: what happened (or why it failed) and the object as the server returned it.
struct ApplyResult {
    object: ObjectRef,
    outcome: Result<(ChangeKind, Option<String>, Option<Written>), String>,
}

impl Step<'_> {
    /// Step by step: a step's objects (one stage, one `step` of it) are all applied, then all waited on,
    /// before the next starts. Each step has its own deadline: the longest `timeout` its objects carry (a
    /// 20-minute db-sync keeps its 20 minutes), or the component's health timeout.
    async fn all_stages(&mut self) -> Result<(), Stop> {
        let changes = &self.component.changes;
        let mut start = 0;
        while start < changes.len() {
            let key = (changes[start].stage, changes[start].step);
            let end = changes[start..]
                .iter()
                .position(|c| (c.stage, c.step) != key)
                .map_or(changes.len(), |n| start + n);
            let group = &changes[start..end];
            self.timeout = group
                .iter()
                .map(|c| c.timeout.unwrap_or(self.component_timeout))
                .max()
                .unwrap_or(self.component_timeout);
            self.deadline = Instant::now() + self.timeout;
            self.apply_all(group).await?;
            let workload = key.0 == Stage::Workload;
            if workload {
                self.milestones
                    .reach(&self.component.name, Milestone::WorkloadApplied);
            }
            if !self.opts.dry_run {
                let refs: Vec<ObjectRef> = group.iter().map(|c| c.reference.clone()).collect();
                self.wait_healthy(refs).await?;
            }
            let workload_done = changes.get(end).is_none_or(|next| next.stage != Stage::Workload);
            if workload && workload_done {
                self.milestones
                    .reach(&self.component.name, Milestone::WorkloadAvailable);
            }
            start = end;
        }
        Ok(())
    }

    /// Apply a step's objects, at most `write_concurrency` at once. After a failure no further write
    /// starts; those in flight finish and are recorded.
    async fn apply_all(&mut self, group: &[Change]) -> Result<(), Stop> {
        let failed = AtomicBool::new(false);
        let this = &*self;
        let failed = &failed;
        // Collected first: a lazy `map` over the group would make the spawned component future not `Send`.
        let writes: Vec<_> = group
            .iter()
            .map(|change| async move {
                if failed.load(Ordering::Relaxed) {
                    return None;
                }
                let result = this.apply(change).await;
                if result.outcome.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                Some(result)
            })
            .collect();
        let results: Vec<Option<ApplyResult>> = futures::stream::iter(writes)
            .buffered(self.opts.write_concurrency.max(1))
            .collect()
            .await;
        let mut first_failure = None;
        for result in results.into_iter().flatten() {
            match result.outcome {
                Ok((kind, note, written)) => {
                    if let Some(written) = written {
                        self.applied.insert(result.object.clone(), written);
                    }
                    self.changes.push(result.object, kind, note);
                }
                Err(reason) => {
                    self.changes
                        .push(result.object, ChangeKind::Failed, Some(reason.clone()));
                    first_failure.get_or_insert(reason);
                }
            }
        }
        if self.opts.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        match first_failure {
            Some(reason) => Err(Stop::Failed(reason)),
            None => Ok(()),
        }
    }

    fn emit_applied(&self, object: &ObjectRef, change: ChangeKind) {
        self.opts.emit(ProgressEvent::ObjectApplied {
            component: self.component.name.clone(),
            object: object.clone(),
            change,
        });
    }

    /// Apply one object (unless unchanged). The create guard runs for planned creates, so an object someone
    /// else made under the same name in the meantime is refused, not taken over: from the view's metadata
    /// watch of the kind when there is a view, else by a GET just before the write.
    async fn apply(&self, change: &Change) -> ApplyResult {
        let object = &change.reference;
        let done = |outcome| ApplyResult {
            object: object.clone(),
            outcome,
        };
        if self.opts.cancel.is_cancelled() {
            return done(Ok((
                ChangeKind::Skipped,
                Some(self.opts.cancel_reason.text()),
                None,
            )));
        }
        if let (Some(recipe), Some(body), false) =
            (&change.secret, &change.desired, change.action == Action::Delete)
        {
            // Values are made here, at apply time; an unchanged recipe still has its values checked (reads only).
            let made = secrets::materialize(
                self.kube,
                self.opts.view.as_ref(),
                object,
                body,
                recipe,
                &self.opts.age_keys,
                self.opts.dry_run,
            )
            .await;
            if let Ok(kind) = made {
                if kind != ChangeKind::Unchanged {
                    self.emit_applied(object, kind);
                }
            }
            return done(made.map(|kind| (kind, None, None)));
        }
        match change.action {
            Action::Unchanged => return done(Ok((ChangeKind::Unchanged, None, None))),
            // Deletions belong to the prune step; an apply wave never carries them.
            Action::Delete => {
                return done(Ok((
                    ChangeKind::Skipped,
                    Some("deletion in an apply wave".into()),
                    None,
                )));
            }
            Action::Create | Action::Update => {}
        }
        let Some(body) = &change.desired else {
            return done(Err(format!("{object}: the plan carries no desired object")));
        };
        let creating = change.action == Action::Create;
        let view = self.opts.view.as_ref();
        if let (true, Some(view)) = (creating, view) {
            match view.foreign(object).await {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    let refused = ClusterError::Foreign {
                        object: object.to_string(),
                        reason,
                    };
                    return done(Err(refused.to_string()));
                }
                Err(e) => return done(Err(e.to_string())),
            }
        }
        let apply_opts = ApplyOptions {
            dry_run: self.opts.dry_run,
            create_guard: creating && view.is_none(),
            ..ApplyOptions::default()
        };
        let kind = (object.api_version.clone(), object.kind.clone());
        let defined_here = self.opts.defined_kinds.contains(&kind);
        if defined_here && self.opts.dry_run {
            // A dry run creates no CRD, so the server cannot check an object of the kind it defines.
            match self
                .kube
                .resolve(&KindRef::new(kind.0.as_str(), kind.1.as_str()))
                .await
            {
                Err(ClusterError::UnknownKind { .. }) => {
                    let note = format!(
                        "not checked: kind {} {} does not exist yet; this revision's CustomResourceDefinition \
                         creates it",
                        object.kind, object.api_version
                    );
                    return done(Ok((ChangeKind::Skipped, Some(note), None)));
                }
                Err(e) => return done(Err(e.to_string())),
                Ok(_) => {}
            }
        }
        let result = match self.apply_when_served(body, &apply_opts, defined_here).await {
            Err(ClusterError::Immutable { field, .. })
                if self.component.recreate_on_immutable_change && !self.opts.dry_run =>
            {
                let note = format!("recreated: field {field} is immutable");
                self.recreate(object, &field, body, &apply_opts)
                    .await
                    .map(|(k, written)| (k, Some(note), written))
            }
            Ok(applied) => {
                let kind = if creating && view.is_some() {
                    ChangeKind::Created
                } else {
                    applied.change
                };
                Ok((kind, None, Some(Written::of(&applied.object))))
            }
            Err(e) => Err(e),
        };
        match result {
            Ok((kind, note, written)) => {
                self.emit_applied(object, kind);
                done(Ok((kind, note, written)))
            }
            Err(e) => done(Err(e.to_string())),
        }
    }

    /// Apply `body`; an object whose kind this plan's CustomResourceDefinition defines waits, until the
    /// step's deadline, for the kind to be served (its CRD may belong to a component running beside this one).
    async fn apply_when_served(
        &self,
        body: &Value,
        apply_opts: &ApplyOptions,
        defined_here: bool,
    ) -> Result<crate::cluster::Applied, ClusterError> {
        loop {
            match self.kube.apply(body, apply_opts).await {
                Err(ClusterError::UnknownKind { .. })
                    if defined_here && Instant::now() < self.deadline && !self.opts.cancel.is_cancelled() =>
                {
                    tokio::time::sleep(self.opts.poll_interval).await;
                }
                other => return other,
            }
        }
    }

    /// The topology allows it: delete the object (dependents first), wait until it is gone, apply anew.
    async fn recreate(
        &self,
        object: &ObjectRef,
        field: &str,
        body: &serde_json::Value,
        apply_opts: &ApplyOptions,
    ) -> Result<(ChangeKind, Option<Written>), ClusterError> {
        tracing::warn!(%object, field, "immutable field changed; recreating as the topology allows");
        let delete = DeleteOptions {
            propagation: PropagationPolicy::Foreground,
            dry_run: false,
        };
        self.kube.delete(object, &delete).await?;
        loop {
            if self.kube.get(object).await?.is_none() {
                break;
            }
            if Instant::now() >= self.deadline || self.opts.cancel.is_cancelled() {
                // Leave it deleted-in-progress; the next pass recreates it from live state.
                return Err(ClusterError::Recreate {
                    object: object.to_string(),
                    reason: format!("changing immutable field {field}: the old object is still present"),
                });
            }
            tokio::time::sleep(self.opts.poll_interval).await;
        }
        let applied = self.kube.apply(body, apply_opts).await?;
        Ok((ChangeKind::Created, Some(Written::of(&applied.object))))
    }

    /// Wait until the objects are all Current; any Failed object fails the component; the step's deadline
    /// bounds the wait; cancellation ends it at once (reads are safe to abandon). With a view, health is
    /// judged from watch events (no request); without one, the objects are read every poll interval.
    async fn wait_healthy(&mut self, refs: Vec<ObjectRef>) -> Result<(), Stop> {
        // Existence is their health, and they exist (applied just now, or found live by the plan). With a
        // view, those written are still waited on until the view shows the write: the next pass plans from
        // the view, and must not find the state before it.
        let view = self.opts.view.clone();
        let (remaining, present): (Vec<_>, Vec<_>) = refs.into_iter().partition(|o| {
            has_status_rules(&o.api_version, &o.kind) || (view.is_some() && self.applied.contains_key(o))
        });
        for object in present {
            self.healthy(object);
        }
        if remaining.is_empty() {
            return Ok(());
        }
        match view {
            Some(view) => self.wait_watched(&view, remaining).await,
            None => self.wait_polled(remaining).await,
        }
    }

    fn healthy(&self, object: ObjectRef) {
        self.opts.emit(ProgressEvent::ObjectHealthy {
            component: self.component.name.clone(),
            object,
            at: Instant::now(),
        });
    }

    /// Judges one read of `object`.
    fn judge(&self, object: &ObjectRef, live: Option<&Value>) -> Verdict {
        let Some(live) = live else {
            return Verdict::Unread(format!("{object}: not found"));
        };
        if let Some(written) = self.applied.get(object) {
            if !written.seen_in(live) {
                return Verdict::Unread(format!("{object}: the write is not visible yet"));
            }
        }
        if !has_status_rules(&object.api_version, &object.kind) {
            return Verdict::Healthy;
        }
        let Health { status, reason } = health(live);
        match status {
            HealthStatus::Current => Verdict::Healthy,
            HealthStatus::Failed => Verdict::Failed(format!("{object}: {reason}")),
            HealthStatus::InProgress => Verdict::Waiting(format!("{object}: {reason}")),
        }
    }

    /// Judges one read of `object` and, for a workload that is not ready, adds the reason its Pods give:
    /// `Ok(None)` when Current, `Ok(Some(why))` while waiting, `Err` when Failed for good. A reason that
    /// cannot heal fails at once, one that heals only if someone acts fails after the pod failure grace,
    /// any other is waited on (and named if the wait times out).
    async fn assess(&mut self, object: &ObjectRef, live: Option<&Value>) -> Result<Option<String>, Stop> {
        let (why, failed) = match self.judge(object, live) {
            Verdict::Healthy => {
                self.grace_since.remove(object);
                return Ok(None);
            }
            Verdict::Unread(why) => return Ok(Some(why)),
            Verdict::Waiting(why) => (why, false),
            Verdict::Failed(why) => (why, true),
        };
        let reason = match live {
            Some(live) if runs_pods(&object.api_version, &object.kind) => self.pod_reason(object, live).await,
            _ => None,
        };
        let Some(reason) = reason else {
            self.grace_since.remove(object);
            return if failed {
                Err(Stop::Failed(why))
            } else {
                Ok(Some(why))
            };
        };
        let text = format!("{why}{POD_REASON_SEPARATOR}{}", reason.text);
        if failed {
            return Err(Stop::Failed(text));
        }
        match reason.healing {
            Healing::Never => Err(Stop::Failed(format!("{text}; this cannot heal on its own"))),
            Healing::MayHeal => {
                self.grace_since.remove(object);
                Ok(Some(text))
            }
            Healing::AfterGrace => {
                let now = Instant::now();
                let since = match self.grace_since.get(object) {
                    Some((kind, since)) if *kind == reason.kind => *since,
                    _ => {
                        tracing::warn!(component = %self.component.name, %object, reason = %reason.text,
                            "a workload waits on something that heals only if someone acts");
                        self.grace_since.insert(object.clone(), (reason.kind, now));
                        now
                    }
                };
                let grace = self.opts.pod_failure_grace;
                if now.duration_since(since) >= grace {
                    let grace = humantime::format_duration(grace);
                    return Err(Stop::Failed(format!(
                        "{text} (for {grace}, --pod-failure-grace; it does not heal on its own)"
                    )));
                }
                let ends = since + grace;
                self.wake_at = Some(self.wake_at.map_or(ends, |w| w.min(ends)));
                Ok(Some(text))
            }
        }
    }

    /// The most telling reason the Pods of workload `object` give: from the view's Pod and ReplicaSet
    /// feeds, or, without a view, from a list of the Pods (and ReplicaSets) its selector picks, at most
    /// every [`POD_LIST_INTERVAL`]. A read that fails is logged once and health goes on without reasons.
    async fn pod_reason(&mut self, object: &ObjectRef, live: &Value) -> Option<PodReason> {
        if self.pods_unreadable {
            return None;
        }
        let namespace = object.namespace.clone()?;
        let read = match self.opts.view.clone() {
            Some(view) => {
                if !self.pods_read.contains(&namespace) {
                    self.pods_read.push(namespace.clone());
                }
                view.pods(&namespace).await.map(|(pods, sets)| {
                    let pods: Vec<&Value> = pods.iter().map(|p| p.as_ref()).collect();
                    let sets: Vec<&Value> = sets.iter().map(|r| r.as_ref()).collect();
                    pods::explain(live, &pods, &sets)
                })
            }
            None => {
                if let Some((at, said)) = self.pod_reads.get(object) {
                    if at.elapsed() < POD_LIST_INTERVAL.max(self.opts.poll_interval) {
                        return said.clone();
                    }
                }
                let read = self.list_pods(&namespace, live).await;
                // A failed list counts too: the next comes no sooner.
                let said = read.as_ref().ok().cloned().flatten();
                self.pod_reads.insert(object.clone(), (Instant::now(), said));
                read
            }
        };
        match read {
            Ok(reason) => reason,
            // The next look tries again.
            Err(e) if e.is_transient() => None,
            Err(e) => {
                tracing::warn!(component = %self.component.name, %object, error = %e,
                    "reading the workload's Pods failed; health goes on without their reasons");
                self.pods_unreadable = true;
                None
            }
        }
    }

    /// Without a view: the Pods (and, for a Deployment, ReplicaSets) `workload`'s selector picks.
    async fn list_pods(&self, namespace: &str, workload: &Value) -> Result<Option<PodReason>, ClusterError> {
        let Some(labels) = workload
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .filter(|l| !l.is_empty())
        else {
            return Ok(pods::explain(workload, &[], &[]));
        };
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",");
        let namespaces = [namespace.to_string()];
        let listed = self
            .kube
            .list_owned(&[KindRef::new("v1", "Pod")], &namespaces, &selector)
            .await?;
        let pods: Vec<Value> = listed.iter().map(pods::slim).collect();
        let sets: Vec<Value> = if workload.get("kind").and_then(Value::as_str) == Some("Deployment") {
            let listed = self
                .kube
                .list_owned(&[KindRef::new("apps/v1", "ReplicaSet")], &namespaces, &selector)
                .await?;
            listed.iter().map(pods::slim).collect()
        } else {
            Vec::new()
        };
        let pods: Vec<&Value> = pods.iter().collect();
        let sets: Vec<&Value> = sets.iter().collect();
        Ok(pods::explain(workload, &pods, &sets))
    }

    fn timed_out(&self, last: &str) -> Stop {
        let timeout = humantime::format_duration(self.timeout);
        Stop::TimedOut(format!("not healthy within {timeout}: {last}"))
    }

    /// Sends the waiting reason as progress when it changed.
    fn tell_waiting(&mut self, reason: &str) {
        if reason == self.told_waiting {
            return;
        }
        self.told_waiting = reason.to_string();
        self.opts.emit(ProgressEvent::ComponentWaiting {
            component: self.component.name.clone(),
            reason: reason.to_string(),
        });
    }

    /// When the wait should look again without an event: the step's deadline, or a grace's end.
    fn next_look(&self) -> Instant {
        self.wake_at.map_or(self.deadline, |w| w.min(self.deadline))
    }

    /// Health from the view: look at the objects as the view holds them, then sleep until one of their
    /// kinds (or, for workloads, their Pods) changes.
    async fn wait_watched(&mut self, view: &ClusterView, mut remaining: Vec<ObjectRef>) -> Result<(), Stop> {
        let cancel = self.opts.cancel.clone();
        let mut changes = view
            .subscribe(&remaining)
            .await
            .map_err(|e| Stop::Failed(e.to_string()))?;
        // Pods are watched only once a workload turned out not to be ready (a pass whose workloads are
        // all ready starts no feed of Pods).
        let mut pods_watched: Vec<String> = Vec::new();
        loop {
            let mut still = Vec::new();
            let mut last = String::new();
            let mut told = None;
            self.wake_at = None;
            for object in remaining {
                let live = match view.object(&object).await {
                    Ok(live) => live,
                    Err(e) if e.is_transient() => {
                        last = e.to_string();
                        still.push(object);
                        continue;
                    }
                    Err(e) => return Err(Stop::Failed(e.to_string())),
                };
                match self.assess(&object, live.as_deref()).await? {
                    None => self.healthy(object),
                    Some(why) => {
                        if told.is_none() && Self::names_pods_reason(&why) {
                            told = Some(why.clone());
                        }
                        last = why;
                        still.push(object);
                    }
                }
            }
            if still.is_empty() {
                return Ok(());
            }
            // The first reason that carries what the Pods said, else the last.
            let last = told.unwrap_or(last);
            if Instant::now() >= self.deadline {
                return Err(self.timed_out(&last));
            }
            for namespace in std::mem::take(&mut self.pods_read) {
                if self.pods_unreadable || pods_watched.contains(&namespace) {
                    continue;
                }
                match view.subscribe_pods(&namespace).await {
                    Ok(pods) => changes.merge(pods),
                    Err(e) => {
                        tracing::warn!(component = %self.component.name, %namespace, error = %e,
                            "watching the workloads' Pods failed; health goes on without their reasons");
                        self.pods_unreadable = true;
                    }
                }
                pods_watched.push(namespace);
            }
            if Self::names_pods_reason(&last) {
                self.tell_waiting(&last);
            }
            let wake = tokio::time::Instant::from_std(self.next_look());
            tokio::select! {
                _ = cancel.cancelled() => return Err(Stop::Cancelled),
                _ = tokio::time::sleep_until(wake) => {}
                _ = changes.next() => {}
            }
            remaining = still;
        }
    }

    /// Whether a waiting reason carries what a workload's Pods said.
    fn names_pods_reason(why: &str) -> bool {
        why.contains(POD_REASON_SEPARATOR)
    }

    /// Health by reading each object every poll interval (no view).
    async fn wait_polled(&mut self, mut remaining: Vec<ObjectRef>) -> Result<(), Stop> {
        let cancel = self.opts.cancel.clone();
        loop {
            let mut still = Vec::new();
            let mut last = String::new();
            let mut told = None;
            self.wake_at = None;
            for object in remaining {
                let read = tokio::select! {
                    _ = cancel.cancelled() => return Err(Stop::Cancelled),
                    read = self.kube.get(&object) => read,
                };
                let live = match read {
                    Ok(live) => live,
                    // Retries are exhausted inside the client; the next poll tries again until the deadline.
                    Err(e) if e.is_transient() => {
                        last = e.to_string();
                        still.push(object);
                        continue;
                    }
                    Err(e) => return Err(Stop::Failed(e.to_string())),
                };
                match self.assess(&object, live.as_ref()).await? {
                    None => self.healthy(object),
                    Some(why) => {
                        if told.is_none() && Self::names_pods_reason(&why) {
                            told = Some(why.clone());
                        }
                        last = why;
                        still.push(object);
                    }
                }
            }
            if still.is_empty() {
                return Ok(());
            }
            // The first reason that carries what the Pods said, else the last.
            let last = told.unwrap_or(last);
            let now = Instant::now();
            if now >= self.deadline {
                return Err(self.timed_out(&last));
            }
            if Self::names_pods_reason(&last) {
                self.tell_waiting(&last);
            }
            let nap = self
                .opts
                .poll_interval
                .min(self.next_look().saturating_duration_since(now));
            tokio::select! {
                _ = cancel.cancelled() => return Err(Stop::Cancelled),
                _ = tokio::time::sleep(nap) => {}
            }
            remaining = still;
        }
    }
}
