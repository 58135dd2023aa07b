//! One component's rollout, one method per step: apply a stage's objects, wait until they are healthy,
//! go on to the next stage (config -> services -> pre-jobs -> workload -> post-jobs).

use std::time::{Duration, Instant};

use crate::cluster::{
    ApplyOptions, ChangeKind, ChangeSet, ClusterError, DeleteOptions, HealthStatus, Kube, ObjectRef,
    PropagationPolicy, has_status_rules, health,
};
use crate::plan::{Action, Change, ComponentPlan};

use super::{ComponentOutcome, ComponentState, ProgressEvent, RolloutOptions, outcome, secrets};

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
) -> (ComponentOutcome, ChangeSet) {
    let started = Instant::now();
    let timeout = c.health_timeout;
    let mut step = Step {
        kube,
        component: c,
        opts,
        deadline: started + timeout,
        timeout,
        component_timeout: timeout,
        changes: ChangeSet::default(),
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
    /// The current step's deadline and length.
    deadline: Instant,
    timeout: Duration,
    component_timeout: Duration,
    changes: ChangeSet,
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
            for change in group {
                self.apply(change).await?;
            }
            if !self.opts.dry_run {
                let refs: Vec<ObjectRef> = group.iter().map(|c| c.reference.clone()).collect();
                self.wait_healthy(refs).await?;
            }
            start = end;
        }
        Ok(())
    }

    /// Apply one object (unless unchanged). The create guard runs for planned creates, so an object someone
    /// else made under the same name in the meantime is refused, not taken over.
    async fn apply(&mut self, change: &Change) -> Result<(), Stop> {
        if self.opts.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        let object = &change.reference;
        if let (Some(recipe), Some(body), false) =
            (&change.secret, &change.desired, change.action == Action::Delete)
        {
            // Values are made here, at apply time; an unchanged recipe still has its values checked (reads only).
            return match secrets::materialize(
                self.kube,
                object,
                body,
                recipe,
                &self.opts.age_keys,
                self.opts.dry_run,
            )
            .await
            {
                Ok(kind) => {
                    self.changes.push(object.clone(), kind, None);
                    if kind != ChangeKind::Unchanged {
                        self.opts.emit(ProgressEvent::ObjectApplied {
                            component: self.component.name.clone(),
                            object: object.clone(),
                            change: kind,
                        });
                    }
                    Ok(())
                }
                Err(reason) => self.fail(object, reason),
            };
        }
        match change.action {
            Action::Unchanged => {
                self.changes.push(object.clone(), ChangeKind::Unchanged, None);
                return Ok(());
            }
            Action::Delete => {
                // Deletions belong to the prune step; an apply wave never carries them.
                self.changes.push(
                    object.clone(),
                    ChangeKind::Skipped,
                    Some("deletion in an apply wave".into()),
                );
                return Ok(());
            }
            Action::Create | Action::Update => {}
        }
        let Some(body) = &change.desired else {
            return self.fail(object, format!("{object}: the plan carries no desired object"));
        };
        let apply_opts = ApplyOptions {
            dry_run: self.opts.dry_run,
            create_guard: change.action == Action::Create,
            ..ApplyOptions::default()
        };
        let result = match self.kube.apply(body, &apply_opts).await {
            Err(ClusterError::Immutable { field, .. })
                if self.component.recreate_on_immutable_change && !self.opts.dry_run =>
            {
                let note = format!("recreated: field {field} is immutable");
                self.recreate(object, &field, body, &apply_opts)
                    .await
                    .map(|k| (k, Some(note)))
            }
            other => other.map(|a| (a.change, None)),
        };
        match result {
            Ok((kind, note)) => {
                self.changes.push(object.clone(), kind, note);
                self.opts.emit(ProgressEvent::ObjectApplied {
                    component: self.component.name.clone(),
                    object: object.clone(),
                    change: kind,
                });
                Ok(())
            }
            Err(e) => self.fail(object, e.to_string()),
        }
    }

    fn fail(&mut self, object: &ObjectRef, reason: String) -> Result<(), Stop> {
        self.changes
            .push(object.clone(), ChangeKind::Failed, Some(reason.clone()));
        Err(Stop::Failed(reason))
    }

    /// The topology allows it: delete the object (dependents first), wait until it is gone, apply anew.
    async fn recreate(
        &mut self,
        object: &ObjectRef,
        field: &str,
        body: &serde_json::Value,
        apply_opts: &ApplyOptions,
    ) -> Result<ChangeKind, ClusterError> {
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
        self.kube.apply(body, apply_opts).await?;
        Ok(ChangeKind::Created)
    }

    /// Read the objects until all are Current; any Failed object fails the component; the component's
    /// health timeout bounds the wait; cancellation ends it at once (reads are safe to abandon).
    async fn wait_healthy(&mut self, refs: Vec<ObjectRef>) -> Result<(), Stop> {
        let cancel = self.opts.cancel.clone();
        // Existence is their health, and they exist (applied just now, or found live by the plan).
        let (mut remaining, present): (Vec<_>, Vec<_>) = refs
            .into_iter()
            .partition(|o| has_status_rules(&o.api_version, &o.kind));
        for object in present {
            self.opts.emit(ProgressEvent::ObjectHealthy {
                component: self.component.name.clone(),
                object,
                at: Instant::now(),
            });
        }
        if remaining.is_empty() {
            return Ok(());
        }
        loop {
            let mut still = Vec::new();
            let mut last = String::new();
            for object in remaining {
                let read = tokio::select! {
                    _ = cancel.cancelled() => return Err(Stop::Cancelled),
                    read = self.kube.get(&object) => read,
                };
                match read {
                    Ok(Some(live)) => {
                        let h = health(&live);
                        match h.status {
                            HealthStatus::Current => self.opts.emit(ProgressEvent::ObjectHealthy {
                                component: self.component.name.clone(),
                                object: object.clone(),
                                at: Instant::now(),
                            }),
                            HealthStatus::Failed => {
                                return Err(Stop::Failed(format!("{object}: {}", h.reason)));
                            }
                            HealthStatus::InProgress => {
                                last = format!("{object}: {}", h.reason);
                                still.push(object);
                            }
                        }
                    }
                    Ok(None) => {
                        last = format!("{object}: not found");
                        still.push(object);
                    }
                    // Retries are exhausted inside the client; the next poll tries again until the deadline.
                    Err(e) if e.is_transient() => {
                        last = e.to_string();
                        still.push(object);
                    }
                    Err(e) => return Err(Stop::Failed(e.to_string())),
                }
            }
            if still.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= self.deadline {
                let timeout = humantime::format_duration(self.timeout);
                return Err(Stop::TimedOut(format!("not healthy within {timeout}: {last}")));
            }
            let nap = self.opts.poll_interval.min(self.deadline - now);
            tokio::select! {
                _ = cancel.cancelled() => return Err(Stop::Cancelled),
                _ = tokio::time::sleep(nap) => {}
            }
            remaining = still;
        }
    }
}
