//! What the Leases of this replica set say, watched (kube-runtime `watcher`, so a dropped
//! watch relists): who holds each, and when this process last saw it renewed. Expiry is
//! judged as client-go does, on this process's own monotonic clock from the moment a
//! change was observed — never by comparing another machine's `renewTime` with ours.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One Lease as last observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `spec.holderIdentity` (`None`: released).
    pub holder: Option<String>,
    /// `spec.renewTime` as written (compared only for change).
    pub renew_time: Option<String>,
    /// `spec.leaseDurationSeconds`.
    pub duration: Duration,
    /// When this process saw the holder or the renew time change.
    pub changed_at: Instant,
}

impl Observed {
    /// The holder, if it has renewed within the lease duration (by our clock).
    pub fn live_holder(&self, now: Instant) -> Option<&str> {
        let holder = self.holder.as_deref()?;
        (now < self.changed_at + self.duration).then_some(holder)
    }
}

/// The observed Leases, shared with the watch task.
#[derive(Clone, Default)]
pub struct Observer {
    leases: Arc<Mutex<HashMap<String, Observed>>>,
    synced: Arc<std::sync::atomic::AtomicBool>,
    /// Woken on every change.
    pub changed: Arc<Notify>,
}

impl Observer {
    /// A copy of what is known now.
    pub fn snapshot(&self) -> HashMap<String, Observed> {
        self.leases.lock().clone()
    }

    /// Whether the first list completed.
    pub fn synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records a Lease as seen now (a no-op if neither holder nor renew time changed).
    pub fn record(&self, name: &str, lease: &Lease, now: Instant) {
        let spec = lease.spec.as_ref();
        let holder = spec.and_then(|s| s.holder_identity.clone());
        let renew_time = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0.to_string());
        let duration =
            Duration::from_secs(spec.and_then(|s| s.lease_duration_seconds).unwrap_or(0).max(0).unsigned_abs().into());
        let mut leases = self.leases.lock();
        match leases.get_mut(name) {
            Some(o) if o.holder == holder && o.renew_time == renew_time => o.duration = duration,
            _ => {
                leases.insert(name.to_owned(), Observed { holder, renew_time, duration, changed_at: now });
            }
        }
        drop(leases);
        self.changed.notify_waiters();
    }

    /// Forgets a deleted Lease.
    pub fn forget(&self, name: &str) {
        self.leases.lock().remove(name);
        self.changed.notify_waiters();
    }

    /// Watches the Leases of `namespace` whose names `ours` accepts until `cancel`.
    pub async fn run(self, api: Api<Lease>, ours: impl Fn(&str) -> bool, cancel: CancellationToken) {
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut failing = crate::telemetry::RetryEpisode::default();
        let mut listed: Option<Vec<String>> = None;
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return,
                next = stream.next() => next,
            };
            let now = Instant::now();
            let name_of = |l: &Lease| l.metadata.name.clone().unwrap_or_default();
            match next {
                None => return,
                Some(Err(e)) => {
                    if failing.failed() {
                        tracing::warn!(error = %e, "watching Leases failed; retrying with backoff (held shards lapse after the renew deadline)");
                    }
                }
                Some(Ok(event)) => {
                    if let Some(retries) = failing.succeeded() {
                        tracing::info!(retries, "watching Leases recovered");
                    }
                    match event {
                        Event::Init => listed = Some(Vec::new()),
                        Event::InitApply(l) | Event::Apply(l) => {
                            let name = name_of(&l);
                            if ours(&name) {
                                self.record(&name, &l, now);
                                if let Some(seen) = listed.as_mut() {
                                    seen.push(name);
                                }
                            }
                        }
                        Event::Delete(l) => self.forget(&name_of(&l)),
                        Event::InitDone => {
                            let seen = listed.take().unwrap_or_default();
                            let gone: Vec<String> =
                                self.leases.lock().keys().filter(|k| !seen.contains(k)).cloned().collect();
                            for name in gone {
                                self.forget(&name);
                            }
                            self.synced.store(true, std::sync::atomic::Ordering::Release);
                            self.changed.notify_waiters();
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: Option<&str>, renew: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                renew_time: Some(MicroTime(jiff::Timestamp::from_second(renew).unwrap())),
                lease_duration_seconds: Some(15),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_holder_is_live_until_it_stops_renewing_for_the_lease_duration() {
        let o = Observer::default();
        let t0 = Instant::now();
        o.record("l", &lease(Some("a"), 100), t0);
        let seen = |at| o.snapshot()["l"].live_holder(at).map(str::to_owned);
        assert_eq!(seen(t0 + Duration::from_secs(14)), Some("a".into()));
        assert_eq!(seen(t0 + Duration::from_secs(15)), None);
        // A renewal observed later moves the expiry; the same renew time seen again does not.
        o.record("l", &lease(Some("a"), 102), t0 + Duration::from_secs(10));
        o.record("l", &lease(Some("a"), 102), t0 + Duration::from_secs(20));
        assert_eq!(seen(t0 + Duration::from_secs(24)), Some("a".into()));
        assert_eq!(seen(t0 + Duration::from_secs(25)), None);
        // Released: free at once.
        o.record("l", &lease(None, 102), t0 + Duration::from_secs(11));
        assert_eq!(seen(t0 + Duration::from_secs(11)), None);
    }
}
