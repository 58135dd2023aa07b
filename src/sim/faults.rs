//! Fault injection: errors by verb, throttling, latency and dropped connections, changeable at run time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Faults applied to Kubernetes API requests (never to `/_sim/...`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    /// Verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or `*` for
    /// all) -> probability 0..=1 that the request fails with `error_status`.
    pub error_rates: BTreeMap<String, f64>,
    /// 500 or 503 (anything else is treated as 500).
    pub error_status: u16,
    /// Probability that a request is answered 429 TooManyRequests with Retry-After.
    pub throttle_rate: f64,
    /// Seconds in the Retry-After header of a 429.
    pub retry_after_secs: u64,
    /// Delay added before every request is handled.
    #[serde(with = "humantime_serde_ms")]
    pub latency: Duration,
    /// Probability that the connection is cut before a response is complete.
    pub drop_rate: f64,
}

/// Durations as milliseconds on the wire, so the control endpoint takes plain JSON numbers.
mod humantime_serde_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fault {
    Error(u16),
    Throttle(u64),
    Drop,
}

/// What the fault configuration says about one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    pub latency: Duration,
    pub fault: Option<Fault>,
}

impl FaultConfig {
    /// Checks ranges; the control endpoint rejects configurations that fail.
    pub fn validate(&self) -> Result<(), String> {
        let prob = |name: &str, p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(format!("{name}: {p} is not a probability in 0..=1"))
            }
        };
        for (verb, p) in &self.error_rates {
            prob(&format!("errorRates.{verb}"), *p)?;
        }
        prob("throttleRate", self.throttle_rate)?;
        prob("dropRate", self.drop_rate)?;
        if self.latency > Duration::from_secs(60) {
            return Err("latency: at most 60s".into());
        }
        Ok(())
    }

    pub(crate) fn decide(&self, verb: &str, rng: &mut impl Rng) -> Decision {
        let mut fault = None;
        let rate = self
            .error_rates
            .get(verb)
            .or_else(|| self.error_rates.get("*"))
            .copied()
            .unwrap_or(0.0);
        if self.drop_rate > 0.0 && rng.random_bool(self.drop_rate.clamp(0.0, 1.0)) {
            fault = Some(Fault::Drop);
        } else if self.throttle_rate > 0.0 && rng.random_bool(self.throttle_rate.clamp(0.0, 1.0)) {
            fault = Some(Fault::Throttle(self.retry_after_secs.max(1)));
        } else if rate > 0.0 && rng.random_bool(rate.clamp(0.0, 1.0)) {
            fault = Some(Fault::Error(if self.error_status == 503 { 503 } else { 500 }));
        }
        Decision {
            latency: self.latency,
            fault,
        }
    }
}

/// A handle to change faults while the cluster runs.
#[derive(Debug, Clone, Default)]
pub struct FaultControl {
    inner: Arc<Mutex<FaultConfig>>,
}

impl FaultControl {
    pub(crate) fn new(initial: FaultConfig) -> Self {
        FaultControl {
            inner: Arc::new(Mutex::new(initial)),
        }
    }

    pub fn get(&self) -> FaultConfig {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the configuration; an invalid one is refused.
    pub fn set(&self, config: FaultConfig) -> Result<(), String> {
        config.validate()?;
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    /// No faults from now on.
    pub fn clear(&self) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = FaultConfig::default();
    }

    /// Makes every request of `verb` (`*` for all) fail with `status` (500 or 503).
    pub fn fail_verb(&self, verb: &str, status: u16) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.error_rates.insert(verb.to_string(), 1.0);
        g.error_status = status;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certain_faults_always_fire_and_none_never() {
        let mut rng = rand::rng();
        let none = FaultConfig::default();
        assert_eq!(none.decide("get", &mut rng).fault, None);
        let mut errs = FaultConfig {
            error_status: 503,
            ..Default::default()
        };
        errs.error_rates.insert("patch".into(), 1.0);
        assert_eq!(errs.decide("patch", &mut rng).fault, Some(Fault::Error(503)));
        assert_eq!(errs.decide("get", &mut rng).fault, None);
        let throttle = FaultConfig {
            throttle_rate: 1.0,
            retry_after_secs: 3,
            ..Default::default()
        };
        assert_eq!(throttle.decide("list", &mut rng).fault, Some(Fault::Throttle(3)));
        let drop = FaultConfig {
            drop_rate: 1.0,
            ..Default::default()
        };
        assert_eq!(drop.decide("list", &mut rng).fault, Some(Fault::Drop));
    }

    #[test]
    fn validation_rejects_bad_probabilities() {
        let mut c = FaultConfig::default();
        c.error_rates.insert("get".into(), 1.5);
        assert!(c.validate().is_err());
        let c = FaultConfig {
            drop_rate: -0.1,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        assert!(FaultConfig::default().validate().is_ok());
    }

    #[test]
    fn config_parses_from_json() {
        let c: FaultConfig = serde_json::from_str(r#"{"errorRates": {"*": 0.5}, "latency": 20}"#).unwrap();
        assert_eq!(c.latency, Duration::from_millis(20));
        assert!(serde_json::from_str::<FaultConfig>(r#"{"bogus": 1}"#).is_err());
    }
}
