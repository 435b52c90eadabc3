//! Retry timing shared by the work queue and the appliers.
//!
//! Jittered exponential backoff: the delay before retry number `attempt`, between a floor
//! and a ceiling, with "full jitter" (uniform in `[0, min(max, min·factorⁿ)]`, never below
//! the floor) so that many clients failing together do not retry together.

use rand::Rng;
use std::time::Duration;

/// A backoff policy.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Smallest delay.
    pub min: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Growth per attempt.
    pub factor: f64,
    /// Attempts before giving up (for in-place API retries).
    pub attempts: u32,
}

impl Default for Backoff {
    /// 5 ms doubling to 5 min, 6 in-place attempts.
    fn default() -> Self {
        Self { min: Duration::from_millis(5), max: Duration::from_secs(300), factor: 2.0, attempts: 6 }
    }
}

impl Backoff {
    /// Upper bound of the delay for `attempt` (0-based), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let grown = self.min.as_secs_f64() * self.factor.powi(attempt.min(64) as i32);
        Duration::from_secs_f64(grown.min(self.max.as_secs_f64()))
    }

    /// A jittered delay for `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jittered = rand::rng().random_range(0.0..=ceiling.as_secs_f64());
        Duration::from_secs_f64(jittered).max(self.min)
    }

    /// Attempts before giving up.
    pub fn max_attempts(&self) -> u32 {
        self.attempts.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), Duration::from_millis(5));
        assert_eq!(b.ceiling(3), Duration::from_millis(40));
        assert_eq!(b.ceiling(40), Duration::from_secs(300));
    }

    #[test]
    fn jitter_stays_within_floor_and_ceiling() {
        let b = Backoff::default();
        for attempt in 0..20 {
            for _ in 0..50 {
                let d = b.delay(attempt);
                assert!(d >= b.min && d <= b.ceiling(attempt).max(b.min), "{attempt}: {d:?}");
            }
        }
    }
}
