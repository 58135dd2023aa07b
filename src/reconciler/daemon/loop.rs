//! The daemon's `select!`s and nothing else: waiting to lead, waiting for the next trigger, and watching a
//! rollout for what interrupts it.

use std::future::Future;

use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::Daemon;
use super::policy::Trigger;
use crate::rollout::CancelReason;
use crate::source::Snapshot;

impl Daemon {
    /// The loop until it ends or `shutdown` resolves; then `stop` lets the pass in progress finish its
    /// writes in flight and record itself.
    pub(super) async fn run_until(&mut self, shutdown: impl Future<Output = ()>, stop: CancellationToken) {
        let main = self.main_loop(stop.clone());
        tokio::pin!(main);
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut main => {}
            () = &mut shutdown => {
                tracing::info!("shutting down");
                stop.cancel();
                main.await;
            }
        }
    }

    /// Iterations until `stop`: the first at once (the start-up pass), then one per trigger.
    async fn main_loop(&mut self, stop: CancellationToken) {
        let mut interval = tokio::time::interval(self.config.interval);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick completes at once: that is the start-up pass.
        interval.tick().await;
        let mut trigger = Trigger::Start;
        loop {
            if let Some(rx) = self.leader.as_mut()
                && !*rx.borrow()
            {
                self.shared.metrics.leader.set(0);
                // A standby is ready: it serves and takes over when the leader goes.
                self.shared.set_ready();
                tracing::info!("waiting to become the leader");
                tokio::select! {
                    () = stop.cancelled() => return,
                    result = rx.wait_for(|leader| *leader) => if result.is_err() { return },
                }
                self.took_over().await;
                trigger = Trigger::Start;
            }
            self.shared.metrics.leader.set(1);
            self.iteration(trigger, &mut interval, &stop).await;
            if stop.is_cancelled() {
                return;
            }
            // A control request or drift seen during the pass (whose wake-up went to the pass).
            if let Some(next) = self.pending_trigger() {
                trigger = next;
                continue;
            }
            let (retry_at, poll_at) = (self.retry, self.source_backoff);
            trigger = tokio::select! {
                () = stop.cancelled() => return,
                _ = interval.tick() => Trigger::Poll,
                () = self.wake.notified() => Trigger::Wake,
                () = sleep_until_opt(retry_at) => Trigger::Retry,
                // The Git source's backoff ends: the poll its log announced.
                () = sleep_until_opt(poll_at) => Trigger::Poll,
            };
            if trigger == Trigger::Wake && self.drift_signal.take() {
                trigger = Trigger::Drift;
            }
            tracing::debug!(trigger = trigger.as_str(), "woken");
        }
    }

    /// Runs `execution` to its end. Meanwhile a suspend request or lost leadership cancels it, and a newer
    /// revision cancels it and is returned, to be applied next (invariant 6).
    pub(super) async fn supervise<T>(
        &mut self,
        execution: impl Future<Output = T>,
        cancel: &CancellationToken,
        reason: &CancelReason,
        interval: &mut Interval,
    ) -> (T, Option<Snapshot>) {
        tokio::pin!(execution);
        let mut newer = None;
        loop {
            tokio::select! {
                result = &mut execution => return (result, newer),
                _ = interval.tick(), if newer.is_none() => {}
                () = self.wake.notified(), if newer.is_none() => {
                    if self.suspend_requested_during_rollout().await {
                        reason.set("cancelled: suspend requested");
                        cancel.cancel();
                        continue;
                    }
                }
                () = leadership_lost(&mut self.leader), if !cancel.is_cancelled() => {
                    tracing::warn!("lost leadership: cancelling the rollout in progress");
                    reason.set("cancelled: this replica lost the leadership");
                    cancel.cancel();
                    continue;
                }
            }
            if let Some(fresh) = self.poll_during_rollout().await {
                newer = Some(fresh);
                reason.set("cancelled by a newer revision");
                cancel.cancel();
            }
        }
    }
}

async fn leadership_lost(leader: &mut Option<watch::Receiver<bool>>) {
    match leader {
        // A closed channel means the elector is gone: no longer allowed to write either.
        Some(rx) => {
            let _ = rx.wait_for(|leader| !*leader).await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
