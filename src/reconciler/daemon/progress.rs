//! Follows a rollout's progress events: keeps the per-component state of the shared status current, writes
//! it to the status object at most once per [`WRITE_INTERVAL`] (so that `keelson status` shows what a
//! rollout waits on), and measures waves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::MissedTickBehavior;

use super::record::component_phase;
use crate::cluster::Kube;
use crate::rollout::ProgressEvent;
use crate::status::{self, ComponentPhase, Shared};

/// How often a rollout in progress writes its component states to the status object.
const WRITE_INTERVAL: Duration = Duration::from_secs(1);

pub struct ProgressTracker {
    shared: Arc<Shared>,
    kube: Kube,
    namespace: String,
}

impl ProgressTracker {
    pub fn new(shared: Arc<Shared>, kube: &Kube, namespace: &str) -> Self {
        Self {
            shared,
            kube: kube.clone(),
            namespace: namespace.to_string(),
        }
    }

    /// Seconds from the first start to the last finish of each wave. Returns when the rollout drops its
    /// sender, after the last progress write: the pass's final status write always comes later.
    pub async fn run(self, mut rx: UnboundedReceiver<ProgressEvent>) -> Vec<(usize, f64)> {
        let mut spans: HashMap<usize, (Instant, Instant)> = HashMap::new();
        let mut flush = tokio::time::interval(WRITE_INTERVAL);
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut dirty = false;
        loop {
            let event = tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                _ = flush.tick() => {
                    if std::mem::take(&mut dirty) {
                        self.write().await;
                    }
                    continue;
                }
            };
            let (component, phase, reason) = match event {
                ProgressEvent::ComponentStarted { component, wave, at } => {
                    spans.entry(wave).or_insert((at, at));
                    let reason = "applying and waiting for health".to_string();
                    (component, ComponentPhase::Progressing, reason)
                }
                ProgressEvent::ComponentFinished {
                    component,
                    wave,
                    state,
                    reason,
                } => {
                    if let Some(span) = spans.get_mut(&wave) {
                        span.1 = Instant::now();
                    }
                    (component, component_phase(state), reason)
                }
                // What the component waits on, as its workload's Pods tell it, while it waits.
                ProgressEvent::ComponentWaiting { component, reason } => {
                    (component, ComponentPhase::Progressing, reason)
                }
                _ => continue,
            };
            self.shared.update(|s| {
                if let Some(c) = s.components.iter_mut().find(|c| c.name == component) {
                    c.state = phase;
                    c.reason = reason;
                }
            });
            dirty = true;
        }
        let mut waves: Vec<(usize, f64)> = spans
            .into_iter()
            .map(|(w, (a, b))| (w, b.duration_since(a).as_secs_f64()))
            .collect();
        waves.sort_by_key(|(w, _)| *w);
        waves
    }

    async fn write(&self) {
        if let Err(e) = status::write_status(&self.kube, &self.namespace, &self.shared.status()).await {
            tracing::debug!(error = %e, "writing rollout progress to the status failed");
        }
    }
}
