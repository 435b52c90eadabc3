//! Deterministic fault injection for tests: failed writes (429 with Retry-After, 500,
//! 503), added latency, watches closed after N events or at random, a forced 410 on the
//! next watch, a 409 on the next update. Seeded, so a failing test can be replayed.
//! The handlers ask it at fixed points (before a write, before a watch, after each watch
//! event); it decides, and shapes an injected failure the way kube-apiserver sends it.

use super::status::ApiError;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Duration;

/// Faults configured at start (all off by default).
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// RNG seed.
    pub seed: u64,
    /// Fraction (0–1) of writes (POST/PUT/PATCH/DELETE) that fail.
    pub write_error_rate: f64,
    /// Status codes failed writes get, chosen at random (default 429, 500, 503).
    pub write_error_codes: Vec<u16>,
    /// Latency added to every request.
    pub latency: Duration,
    /// Close every watch after this many events.
    pub close_watch_after: Option<usize>,
    /// Fraction (0–1) of watch events after which the watch is closed.
    pub watch_drop_rate: f64,
}

/// Runtime control of the faults. Cheap to clone.
#[derive(Clone)]
pub struct FaultHandle {
    inner: Arc<Mutex<State>>,
}

struct State {
    config: FaultConfig,
    rng: StdRng,
    force_gone: usize,
    conflict_next_update: usize,
    injected: u64,
}

impl FaultHandle {
    /// Faults from a configuration.
    pub fn new(config: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Self { inner: Arc::new(Mutex::new(State { config, rng, force_gone: 0, conflict_next_update: 0, injected: 0 })) }
    }

    /// Replaces the configuration (keeps the RNG stream).
    pub fn set(&self, config: FaultConfig) {
        self.inner.lock().config = config;
    }

    /// Sets the write failure rate and codes.
    pub fn fail_writes(&self, rate: f64, codes: &[u16]) {
        let mut s = self.inner.lock();
        s.config.write_error_rate = rate;
        s.config.write_error_codes = codes.to_vec();
    }

    /// Sets the random watch drop rate.
    pub fn drop_watches(&self, rate: f64) {
        self.inner.lock().config.watch_drop_rate = rate;
    }

    /// Closes every watch after `n` events (None = never).
    pub fn close_watches_after(&self, n: Option<usize>) {
        self.inner.lock().config.close_watch_after = n;
    }

    /// Sets the added latency.
    pub fn latency(&self, d: Duration) {
        self.inner.lock().config.latency = d;
    }

    /// The next `n` watches get `410 Gone`.
    pub fn force_gone(&self, n: usize) {
        self.inner.lock().force_gone += n;
    }

    /// The next `n` updates/patches get `409 Conflict`.
    pub fn conflict_next_updates(&self, n: usize) {
        self.inner.lock().conflict_next_update += n;
    }

    /// Turns everything off.
    pub fn clear(&self) {
        let mut s = self.inner.lock();
        s.config = FaultConfig { seed: s.config.seed, ..FaultConfig::default() };
        s.force_gone = 0;
        s.conflict_next_update = 0;
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.inner.lock().injected
    }

    pub(crate) fn latency_now(&self) -> Duration {
        self.inner.lock().config.latency
    }

    /// The failure to answer this write with, if one is injected.
    pub(crate) fn write_failure(&self) -> Option<ApiError> {
        let mut s = self.inner.lock();
        let rate = s.config.write_error_rate;
        if rate <= 0.0 || !s.rng.random_bool(rate.min(1.0)) {
            return None;
        }
        let codes = if s.config.write_error_codes.is_empty() {
            vec![429, 500, 503]
        } else {
            s.config.write_error_codes.clone()
        };
        let i = s.rng.random_range(0..codes.len());
        s.injected += 1;
        Some(injected_error(codes[i]))
    }

    pub(crate) fn take_conflict(&self) -> bool {
        let mut s = self.inner.lock();
        if s.conflict_next_update > 0 {
            s.conflict_next_update -= 1;
            s.injected += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn take_gone(&self) -> bool {
        let mut s = self.inner.lock();
        if s.force_gone > 0 {
            s.force_gone -= 1;
            s.injected += 1;
            true
        } else {
            false
        }
    }

    /// Whether a watch that has sent `sent` events should be closed now.
    pub(crate) fn close_watch(&self, sent: usize) -> bool {
        let mut s = self.inner.lock();
        let by_count = s.config.close_watch_after.is_some_and(|n| sent >= n);
        let rate = s.config.watch_drop_rate;
        let random = rate > 0.0 && s.rng.random_bool(rate.min(1.0));
        if by_count || random {
            s.injected += 1;
        }
        by_count || random
    }
}

/// An injected failure with `code`, with the reason and message kube-apiserver gives it
/// (429 also carries Retry-After).
fn injected_error(code: u16) -> ApiError {
    let (reason, msg) = match code {
        429 => ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
        500 => {
            ("InternalError", "an error on the server (\"injected fault\") has prevented the request from succeeding")
        }
        503 => ("ServiceUnavailable", "the server is currently unable to handle the request"),
        _ => ("InternalError", "injected fault"),
    };
    let mut e = ApiError::new(code, reason, msg);
    if code == 429 {
        e = e.details(serde_json::json!({"retryAfterSeconds": 1}));
        e.retry_after = Some(1);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_429_carries_retry_after() {
        let e = injected_error(429);
        assert_eq!((e.code, e.reason, e.retry_after), (429, "TooManyRequests", Some(1)));
        assert_eq!(e.details, Some(serde_json::json!({"retryAfterSeconds": 1})));
        let e = injected_error(503);
        assert_eq!((e.code, e.reason, e.retry_after), (503, "ServiceUnavailable", None));
    }
}
