//! The one place transient API errors are retried: exponential backoff with jitter, honouring the
//! server's Retry-After within a bound, giving up after a bounded number of attempts.

use std::future::Future;
use std::time::Duration;

use super::ClusterError;

/// How transient errors are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first; 1 disables retries.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub base_delay: Duration,
    /// Upper bound of the exponential delay.
    pub max_delay: Duration,
    /// Upper bound on a server-requested Retry-After, so a misbehaving server cannot stall a pass.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `retry` (0-based) after `error`: the server's Retry-After when given
    /// (bounded), else full-range jitter over the upper half of the exponential delay, so concurrent
    /// clients spread out instead of retrying in lockstep.
    pub fn delay(&self, retry: u32, error: &ClusterError) -> Duration {
        match error.retry_after() {
            Some(after) => after.min(self.max_retry_after),
            None => self.backoff(retry),
        }
    }

    /// The exponential part of [`RetryPolicy::delay`], also used when a watch reconnects.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(2u32.saturating_pow(retry.min(20)));
        let cap = exp.min(self.max_delay);
        let half = cap / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(if jitter_ms == 0 {
            0
        } else {
            rand::random_range(0..=jitter_ms)
        })
    }

    /// Run `op` until it succeeds, fails permanently, or the attempts are used up.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClusterError>>,
    {
        self.run_while(op, |_| true).await
    }

    /// [`RetryPolicy::run`], retrying a transient error only when `may_retry` says so.
    pub async fn run_while<T, F, Fut>(
        &self,
        mut op: F,
        may_retry: impl Fn(&ClusterError) -> bool,
    ) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClusterError>>,
    {
        let mut retry = 0u32;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && may_retry(&e) && retry + 1 < self.max_attempts.max(1) => {
                    let delay = self.delay(retry, &e);
                    tracing::debug!(error = %e, retry, ?delay, "transient API error, retrying");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::error::Verb;
    use kube::core::Status;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn err(code: u16, retry_after: u32) -> ClusterError {
        let mut s = Status::failure("boom", "x").with_code(code);
        if retry_after > 0 {
            s.details = serde_json::from_value(serde_json::json!({"retryAfterSeconds": retry_after})).ok();
        }
        ClusterError::from_kube("ConfigMap a/b", Verb::Apply, kube::Error::Api(s.boxed()))
    }

    #[test]
    fn delays_grow_and_are_bounded() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..Default::default()
        };
        let e = err(503, 0);
        for (retry, lo, hi) in [
            (0, 50, 100),
            (1, 100, 200),
            (2, 200, 400),
            (3, 400, 800),
            (10, 500, 1000),
        ] {
            for _ in 0..50 {
                let d = p.delay(retry, &e).as_millis();
                assert!((lo..=hi).contains(&d), "retry {retry}: {d}ms not in {lo}..={hi}");
            }
        }
    }

    #[test]
    fn honours_retry_after_within_bound() {
        let p = RetryPolicy {
            max_retry_after: Duration::from_secs(5),
            ..Default::default()
        };
        assert_eq!(p.delay(0, &err(429, 2)), Duration::from_secs(2));
        assert_eq!(p.delay(0, &err(429, 600)), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn retries_transient_until_success_and_stops_on_permanent() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(1),
            ..Default::default()
        };
        let calls = AtomicU32::new(0);
        let out = p
            .run(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move { if n < 3 { Err(err(500, 0)) } else { Ok(n) } }
            })
            .await;
        assert_eq!(out.ok(), Some(3));

        let calls = AtomicU32::new(0);
        let out: Result<(), _> = p
            .run(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(err(404, 0)) }
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let out: Result<(), _> = RetryPolicy {
            max_attempts: 4,
            ..p.clone()
        }
        .run(|| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(err(503, 0)) }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
