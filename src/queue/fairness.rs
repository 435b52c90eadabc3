//! Fair share between the tenants of a [`super::WorkQueue`] (for the dispatcher: plugins),
//! so that one tenant's behaviour costs the others nothing but their turn: a bound on its
//! items in flight (its share of the workers), a token bucket on the re-deliveries it asks
//! for (requeues and retries; client-go's `MaxOfRateLimiter` of the per-item backoff and a
//! `BucketRateLimiter`, here per tenant — new items are never held back by it), and a
//! pause that grows while it keeps being penalized (a plugin that keeps exhausting its CPU
//! deadline).
//!
//! Pure bookkeeping on tokio's clock; the queue decides with it whose turn it is.

use crate::retry::Backoff;
use std::collections::VecDeque;
use std::hash::Hash;
use std::time::Duration;
use tokio::time::Instant;

/// Keys that belong to a tenant; fair share is per tenant.
pub trait Tenant {
    /// The tenant's identity.
    type Id: Hash + Eq + Clone;
    /// The tenant this key belongs to.
    fn tenant(&self) -> Self::Id;
}

/// A sustained rate with a burst (a token bucket).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Items per second, sustained.
    pub per_second: f64,
    /// Items handed out at once after a quiet period (the bucket's size, at least 1).
    pub burst: u32,
}

/// What each tenant is held to.
#[derive(Debug, Clone, Copy)]
pub struct Fairness {
    /// Items of one tenant in flight at once (its share of the workers).
    pub max_in_flight: usize,
    /// Re-deliveries (requeues and retries) per tenant (`None`: no limit).
    pub rate: Option<Rate>,
    /// The pause of a penalized tenant, by penalties in a row (the ceiling, without jitter:
    /// `min · factorⁿ` up to `max`).
    pub penalty: Backoff,
}

impl Fairness {
    /// Tenants take turns and nothing else: no bound, no bucket; a penalty pauses a tenant
    /// for 1 s doubling up to 5 min.
    pub fn unlimited() -> Self {
        Self {
            max_in_flight: usize::MAX,
            rate: None,
            penalty: Backoff { min: Duration::from_secs(1), max: Duration::from_secs(300), factor: 2.0, attempts: 1 },
        }
    }
}

/// One tenant's ready keys and its use of its share.
pub(super) struct TenantState<K> {
    /// Its keys ready to be handed out, in order.
    pub(super) ready: VecDeque<K>,
    /// Whether it is in the queue's turns.
    pub(super) in_turns: bool,
    in_flight: usize,
    /// Tokens taken from the bucket and not yet refilled.
    used: f64,
    refilled: Instant,
    paused_until: Option<Instant>,
    /// Penalties in a row.
    strikes: u32,
}

impl<K> Default for TenantState<K> {
    fn default() -> Self {
        Self {
            ready: VecDeque::new(),
            in_turns: false,
            in_flight: 0,
            used: 0.0,
            refilled: Instant::now(),
            paused_until: None,
            strikes: 0,
        }
    }
}

impl<K> TenantState<K> {
    fn refill(&mut self, fairness: &Fairness, now: Instant) {
        if let Some(rate) = fairness.rate {
            let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
            self.used = (self.used - elapsed * rate.per_second).max(0.0);
        }
        self.refilled = now;
    }

    /// Whether one more item may be handed out now; if not, when it may (`None`: when one
    /// of its items in flight is done).
    pub(super) fn admits(&self, fairness: &Fairness, now: Instant) -> Result<(), Option<Instant>> {
        if self.in_flight >= fairness.max_in_flight.max(1) {
            return Err(None);
        }
        match self.paused_until.filter(|until| *until > now) {
            Some(until) => Err(Some(until)),
            None => Ok(()),
        }
    }

    /// Takes a token for one re-delivery: how long it must wait for it (zero while the
    /// bucket holds one; tokens taken ahead are owed, as with Go's `rate.Limiter.Reserve`).
    pub(super) fn reserve(&mut self, fairness: &Fairness, now: Instant) -> Duration {
        self.refill(fairness, now);
        let Some(rate) = fairness.rate else {
            return Duration::ZERO;
        };
        self.used += 1.0;
        let over = self.used - f64::from(rate.burst.max(1));
        if over <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((over / rate.per_second.max(f64::MIN_POSITIVE)).min(3600.0))
    }

    /// One of its items was handed out.
    pub(super) fn started(&mut self) {
        self.in_flight += 1;
    }

    /// One of its items is done; one that did not fail ends a row of penalties.
    pub(super) fn finished(&mut self, failed: bool) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if !failed {
            self.strikes = 0;
        }
    }

    /// Pauses it, unless it is paused already. Returns the pause.
    pub(super) fn penalize(&mut self, fairness: &Fairness, now: Instant) -> Option<Duration> {
        if self.paused_until.is_some_and(|until| until > now) {
            return None;
        }
        let pause = fairness.penalty.ceiling(self.strikes);
        self.strikes = self.strikes.saturating_add(1);
        self.paused_until = Some(now + pause);
        Some(pause)
    }

    /// Nothing ready, nothing in flight, no penalty and a full bucket: forgetting it
    /// changes nothing.
    pub(super) fn idle(&mut self, fairness: &Fairness, now: Instant) -> bool {
        self.refill(fairness, now);
        self.ready.is_empty()
            && !self.in_turns
            && self.in_flight == 0
            && self.strikes == 0
            && self.paused_until.is_none_or(|until| until <= now)
            && self.used == 0.0
    }
}
