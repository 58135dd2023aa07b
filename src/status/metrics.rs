//! Prometheus metrics under the `keelson_` prefix.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a pass ended (`succeeded`, `failed`, `stalled`, `error`, `cancelled`) and why, in one word:
/// `applied`, `unchanged`, `drift_corrected`, `cancelled`, `health`, `apply`, `invalid_topology`, `render`,
/// `refused`, `api`, ... (the error kinds of the pass and cluster errors).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassLabels {
    pub result: String,
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WaveLabel {
    pub wave: String,
}

/// Every metric the daemon exports, registered once.
pub struct Metrics {
    registry: Registry,
    pub passes: Family<PassLabels, Counter>,
    pub pass_duration: Histogram,
    pub wave_duration: Family<WaveLabel, Histogram>,
    pub objects: Family<ActionLabel, Counter>,
    pub drift_corrections: Counter,
    pub git_polls: Counter,
    pub git_fetches: Counter,
    pub git_poll_failures: Counter,
    pub last_applied_timestamp: Gauge<f64, AtomicU64>,
    pub suspended: Gauge,
    /// 1 while the sync windows hold a planned change back.
    pub change_pending: Gauge,
    pub leader: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn duration_histogram() -> Histogram {
    // 50 ms .. ~27 min: passes range from a no-op re-plan to a full cloud bring-up.
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keelson");
        let passes = Family::<PassLabels, Counter>::default();
        registry.register("passes", "Reconcile passes by result and reason", passes.clone());
        let pass_duration = duration_histogram();
        registry.register(
            "pass_duration_seconds",
            "Duration of reconcile passes",
            pass_duration.clone(),
        );
        let wave_duration =
            Family::<WaveLabel, Histogram>::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register(
            "wave_duration_seconds",
            "Duration of apply waves",
            wave_duration.clone(),
        );
        let objects = Family::<ActionLabel, Counter>::default();
        registry.register(
            "objects",
            "Objects written or deleted, by action",
            objects.clone(),
        );
        let drift_corrections = Counter::default();
        registry.register(
            "drift_corrections",
            "Owned objects re-applied because they drifted from Git",
            drift_corrections.clone(),
        );
        let git_polls = Counter::default();
        registry.register("git_polls", "Polls of the Git source", git_polls.clone());
        let git_fetches = Counter::default();
        registry.register("git_fetches", "Fetches from the Git remote", git_fetches.clone());
        let git_poll_failures = Counter::default();
        registry.register(
            "git_poll_failures",
            "Failed polls of the Git source",
            git_poll_failures.clone(),
        );
        let last_applied_timestamp = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_applied_timestamp_seconds",
            "Unix time of the last converged pass",
            last_applied_timestamp.clone(),
        );
        let suspended = Gauge::default();
        registry.register("suspended", "1 while applying is suspended", suspended.clone());
        let change_pending = Gauge::default();
        registry.register(
            "change_pending",
            "1 while the sync windows hold a planned change back",
            change_pending.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this instance may write", leader.clone());
        Self {
            registry,
            passes,
            pass_duration,
            wave_duration,
            objects,
            drift_corrections,
            git_polls,
            git_fetches,
            git_poll_failures,
            last_applied_timestamp,
            suspended,
            change_pending,
            leader,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            // Encoding into a String cannot fail short of a formatting bug; serve what was written.
            tracing::warn!("metrics: encoding failed");
        }
        text
    }

    pub fn pass(&self, result: &str, reason: &str) {
        self.passes
            .get_or_create(&PassLabels {
                result: result.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Objects a pass created, updated, deleted and left unchanged.
    pub fn counts(&self, counts: &super::ObjectCounts) {
        self.objects("created", counts.created);
        self.objects("updated", counts.updated);
        self.objects("deleted", counts.deleted);
        self.objects("unchanged", counts.unchanged);
    }

    /// Seconds from the first start to the last finish of wave `wave` (0-based).
    pub fn wave(&self, wave: usize, seconds: f64) {
        self.wave_duration
            .get_or_create(&WaveLabel {
                wave: wave.to_string(),
            })
            .observe(seconds);
    }

    /// A pass converged now.
    pub fn applied_now(&self) {
        if let Ok(since_epoch) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            self.last_applied_timestamp.set(since_epoch.as_secs_f64());
        }
    }

    pub fn objects(&self, action: &str, n: usize) {
        self.objects
            .get_or_create(&ActionLabel {
                action: action.to_string(),
            })
            .inc_by(n as u64);
    }
}
