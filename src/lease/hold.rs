//! One Lease taken and kept through kube-lease-manager: a task that acquires the Lease when
//! it is free (a non-forced server-side apply of the holder, so two replicas cannot both
//! win), renews it every retry period, reports whether it holds it, and on stop releases
//! it so that a standby takes over at once instead of after the lease duration.
//!
//! The manager's own loop keeps trying after an API error without telling anyone; here an
//! error counts as "not held" at once (the holder cannot know whether its renewals still
//! land), and the manager is rebuilt after a backoff.

use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseParams};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Timings of one Lease, as client-go names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long a Lease stays valid after its last renewal (client-go: 15 s).
    pub lease_duration: Duration,
    /// A holder that has not seen its renewal land for this long stops acting (client-go:
    /// 10 s). Shorter than the lease duration, so it stops before anyone may take over.
    pub renew_deadline: Duration,
    /// How often the holder renews and a standby looks for free Leases (client-go: 2 s).
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why timings are unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimingsError {
    /// Lease Leases count whole seconds.
    #[error("lease timings are whole seconds of at least 1 (got duration {0:?}, retry period {1:?})")]
    NotWholeSeconds(Duration, Duration),
    /// The holder must stop acting before its Lease can expire, and renew before the deadline.
    #[error(
        "lease timings must satisfy retry period ({retry:?}) < renew deadline ({deadline:?}) < lease duration ({duration:?})"
    )]
    Order {
        /// Retry period.
        retry: Duration,
        /// Renew deadline.
        deadline: Duration,
        /// Lease duration.
        duration: Duration,
    },
}

impl Timings {
    /// Checks the client-go rules: retry period < renew deadline < lease duration, whole
    /// seconds for what the Lease records.
    pub fn validate(&self) -> Result<(), TimingsError> {
        let (d, r) = (self.lease_duration, self.retry_period);
        if d.subsec_nanos() != 0 || r.subsec_nanos() != 0 || d.as_secs() < 1 || r.as_secs() < 1 {
            return Err(TimingsError::NotWholeSeconds(d, r));
        }
        if !(r < self.renew_deadline && self.renew_deadline < d) {
            return Err(TimingsError::Order { retry: r, deadline: self.renew_deadline, duration: d });
        }
        Ok(())
    }

    /// kube-lease-manager's parameters: it renews `grace` seconds before expiry, so a grace
    /// of duration − retry period renews every retry period.
    fn params(&self, identity: &str) -> LeaseParams {
        let duration = self.lease_duration.as_secs();
        let grace = duration - self.retry_period.as_secs();
        LeaseParams::new(identity, duration, grace).with_field_manager(format!("kreflex-lease-{identity}"))
    }
}

/// A running attempt to hold one Lease.
pub struct Hold {
    /// Whether the Lease is held now (by the manager's account).
    pub held: watch::Receiver<bool>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Hold {
    /// Starts taking `name` in `namespace` as `identity`; `wake` is notified whenever
    /// [`Hold::held`] changes.
    pub fn start(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timings: Timings,
        wake: Arc<Notify>,
    ) -> Self {
        let (tx, held) = watch::channel(false);
        let stop = CancellationToken::new();
        let lease = LeaseRef { namespace: namespace.to_owned(), name: name.to_owned() };
        let task = tokio::spawn(run(client, lease, timings.params(identity), Held { tx, wake }, stop.clone()));
        Self { held, stop, task }
    }

    /// Stops: releases the Lease if held (bounded by `timeout`) and waits for the task.
    pub async fn release(self, timeout: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            tracing::warn!(?timeout, "releasing a Lease took too long; it will expire instead");
        }
    }
}

struct LeaseRef {
    namespace: String,
    name: String,
}

/// Publishes whether the Lease is held, waking the planner.
struct Held {
    tx: watch::Sender<bool>,
    wake: Arc<Notify>,
}

impl Held {
    fn send_replace(&self, held: bool) {
        if self.tx.send_replace(held) != held {
            self.wake.notify_waiters();
        }
    }
}

async fn run(client: kube::Client, lease: LeaseRef, params: LeaseParams, held: Held, stop: CancellationToken) {
    let LeaseRef { namespace, name } = lease;
    let backoff = crate::retry::Backoff { min: Duration::from_millis(200), ..Default::default() };
    let mut attempt = 0u32;
    loop {
        let manager = tokio::select! {
            _ = stop.cancelled() => return,
            m = LeaseManager::new(client.clone(), &name, &namespace, params.clone(), LeaseCreateMode::AutoCreate) => m,
        };
        let manager = match manager {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(lease = %name, error = %e, "cannot read or create the Lease; retrying");
                attempt += 1;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff.delay(attempt)) => continue,
                }
            }
        };
        loop {
            let changed = tokio::select! {
                _ = stop.cancelled() => {
                    if let Err(e) = manager.release().await {
                        tracing::warn!(lease = %name, error = %e, "cannot release the Lease; it will expire instead");
                    }
                    held.send_replace(false);
                    return;
                }
                c = manager.changed() => c,
            };
            match changed {
                Ok(now) => {
                    attempt = 0;
                    held.send_replace(now);
                    tracing::debug!(lease = %name, held = now, "Lease state changed");
                }
                Err(e) => {
                    held.send_replace(false);
                    tracing::warn!(lease = %name, error = %e, "Lease renewal failed; not acting on it until it is held again");
                    break;
                }
            }
        }
        attempt += 1;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff.delay(attempt)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_follow_client_go_rules() {
        assert_eq!(Timings::default().validate(), Ok(()));
        let s = Duration::from_secs;
        let bad = Timings { lease_duration: s(10), renew_deadline: s(10), retry_period: s(2) };
        assert!(matches!(bad.validate(), Err(TimingsError::Order { .. })));
        let frac = Timings { lease_duration: Duration::from_millis(1500), ..Timings::default() };
        assert!(matches!(frac.validate(), Err(TimingsError::NotWholeSeconds(..))));
        // Renewing every retry period: grace = duration − retry period.
        let p = Timings::default().params("me");
        assert_eq!(p, LeaseParams::new("me", 15, 13).with_field_manager("kreflex-lease-me"));
    }
}
