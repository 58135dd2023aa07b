//! Leader election on a `coordination.k8s.io/v1` Lease: with several replicas exactly one writes.
//!
//! The holder renews the Lease every `retry_period`. Another replica takes over only after it has seen the
//! same record unchanged for a whole `lease_duration` on its own clock (clocks of different nodes are never
//! compared). A holder that cannot renew within `renew_deadline` (shorter than the lease duration) stops
//! writing before anyone else may start. Updates carry the resourceVersion they read, so two replicas
//! racing for an expired Lease cannot both win. On shutdown the holder releases the Lease at once.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::{ClusterError, Kube, LeaseWrite};

pub const DEFAULT_LEASE_NAME: &str = "keelson-leader";

#[derive(Debug, Clone)]
pub struct LeaderConfig {
    pub lease_name: String,
    /// This replica's name in the Lease (the pod name in a cluster).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// Kubernetes' usual timings (15s / 10s / 2s); identity from POD_NAME or HOSTNAME plus a random
    /// suffix, so that two processes on one host never share an identity.
    pub fn from_env() -> Self {
        let base = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "keelson".to_string());
        Self::new(format!("{base}-{:08x}", rand::random::<u32>()))
    }

    pub fn new(identity: impl Into<String>) -> Self {
        Self {
            lease_name: DEFAULT_LEASE_NAME.to_string(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What this replica last saw of the Lease, and when (on its own clock).
struct Observed {
    record: (Option<String>, Option<String>),
    at: Instant,
}

/// Runs the election until `stop` is cancelled; `leader` says whether this replica may write. Releases the
/// Lease on the way out if it holds it.
pub async fn run(
    kube: Kube,
    namespace: String,
    config: LeaderConfig,
    leader: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let mut observed: Option<Observed> = None;
    let mut last_renewed: Option<Instant> = None;
    loop {
        // A leader's request may take only until its renew deadline: a hung API call must not keep it
        // writing past the point where a standby may take over.
        let attempt_started = Instant::now();
        let limit = match last_renewed {
            Some(t) if *leader.borrow() => t + config.renew_deadline,
            _ => attempt_started + config.lease_duration,
        };
        let attempt = try_acquire_or_renew(&kube, &namespace, &config, &mut observed);
        let held = match tokio::time::timeout_at(limit, attempt).await {
            Ok(Ok(held)) => held,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, lease = %config.lease_name, "leader election: lease request failed");
                false
            }
            Err(_) => {
                tracing::warn!(lease = %config.lease_name, "leader election: lease request timed out");
                false
            }
        };
        let now = Instant::now();
        if held {
            // The server wrote the renewal after the request started: counting from the start errs on the
            // safe side.
            last_renewed = Some(attempt_started);
        }
        // A holder keeps writing through failed renewals only until the renew deadline.
        let is_leader =
            held || last_renewed.is_some_and(|t| *leader.borrow() && now - t < config.renew_deadline);
        if !is_leader {
            last_renewed = None;
        }
        if *leader.borrow() != is_leader {
            if is_leader {
                tracing::info!(identity = %config.identity, "leader election: became the leader");
            } else {
                tracing::warn!(identity = %config.identity, "leader election: not the leader any more");
            }
            leader.send_replace(is_leader);
        }
        // A leader wakes at its renew deadline at the latest, to step down in time.
        let mut wake = now + config.retry_period;
        if is_leader && let Some(t) = last_renewed {
            wake = wake.min(t + config.renew_deadline);
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(wake) => {}
        }
    }
    if *leader.borrow() {
        leader.send_replace(false);
        // Bounded: a shutdown must not wait on an API that is down (the Lease then expires on its own).
        match tokio::time::timeout(config.renew_deadline, release(&kube, &namespace, &config)).await {
            Ok(Ok(())) => tracing::info!(identity = %config.identity, "leader election: lease released"),
            Ok(Err(e)) => tracing::warn!(error = %e, "leader election: releasing the lease failed"),
            Err(_) => tracing::warn!("leader election: releasing the lease timed out"),
        }
    }
}

/// Whole seconds for the Lease, rounded up: a standby must never see a shorter lease than the holder keeps.
fn seconds(d: Duration) -> i32 {
    let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(whole.max(1)).unwrap_or(i32::MAX)
}

async fn try_acquire_or_renew(
    kube: &Kube,
    namespace: &str,
    config: &LeaderConfig,
    observed: &mut Option<Observed>,
) -> Result<bool, ClusterError> {
    let duration = seconds(config.lease_duration);
    let Some(lease) = kube.read_lease(namespace, &config.lease_name).await? else {
        // A conflict: another replica created it first.
        let created = kube
            .create_lease(namespace, &config.lease_name, &config.identity, duration)
            .await?;
        return Ok(created == LeaseWrite::Written);
    };
    let record = (lease.holder.clone(), lease.renew_time.clone());
    let now = Instant::now();
    let fresh_observation = observed.as_ref().is_none_or(|o| o.record != record);
    if fresh_observation {
        *observed = Some(Observed { record, at: now });
    }
    let mine = lease.holder.as_deref() == Some(config.identity.as_str());
    let held_for = lease
        .duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(config.lease_duration, Duration::from_secs);
    let expired = lease.holder.is_none() || observed.as_ref().is_some_and(|o| now - o.at >= held_for);
    if !mine && !expired {
        return Ok(false);
    }
    let written = kube
        .update_lease(&lease, Some(&config.identity), duration)
        .await?;
    Ok(written == LeaseWrite::Written)
}

async fn release(kube: &Kube, namespace: &str, config: &LeaderConfig) -> Result<(), ClusterError> {
    let Some(lease) = kube.read_lease(namespace, &config.lease_name).await? else {
        return Ok(());
    };
    if lease.holder.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    kube.update_lease(&lease, None, 1).await.map(|_| ())
}

/// The holder recorded in the Lease, if any.
pub async fn holder(kube: &Kube, namespace: &str, lease_name: &str) -> Result<Option<String>, ClusterError> {
    Ok(kube
        .read_lease(namespace, lease_name)
        .await?
        .and_then(|lease| lease.holder))
}
