//! Per-key work queue: strict order per key (one item in flight per key), coalescing of
//! items that arrive while a key is busy or waiting, delayed re-delivery (requeue-after),
//! per-key exponential backoff on failure, bounded size with backpressure, and graceful
//! close.
//!
//! Keys belong to tenants (for the dispatcher: plugins), and tenants get a fair share (see
//! [`Fairness`]): ready tenants take turns (one busy tenant's thousand ready keys do not
//! queue ahead of another's one), each has a bound on its items in flight and a token
//! bucket on its re-deliveries (requeues and retries wait for the later of their own delay
//! and a token: client-go's workqueue rate limiters, per item and per tenant), and a tenant
//! can be paused with a growing penalty ([`WorkQueue::penalize`]) while the others carry
//! on.
//!
//! It keeps the times its metrics need: when each waiting item was queued (a coalesced item
//! keeps the earliest; a requeued or retried one counts from the end of its delay) and when
//! each item in flight was taken. [`WorkQueue::next`] hands out how long an item waited;
//! [`WorkQueue::tenant_stats`] reports depth, the oldest wait and the work in progress per
//! tenant at one instant (for gauges computed at scrape time).
//!
//! In the data path it sits between the router and the plugin calls, keyed by
//! (plugin, object): ordering and coalescing per object and per plugin, parallelism across
//! objects and plugins. The logic is synchronous and free of I/O; only waiting is async
//! (tokio time, so tests run on a paused clock).

mod coalesce;
mod fairness;

pub use coalesce::{Coalesce, PendingEvent};
pub use fairness::{Fairness, Rate, Tenant};

use fairness::TenantState;

use crate::retry::Backoff;
use parking_lot::Mutex;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How a taken item ended.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Done; the key's failure count resets.
    Completed,
    /// Deliver `item` again after the delay, unless a newer item arrives first (which is
    /// then delivered at once, coalesced with it).
    RequeueAfter(Duration, T),
    /// Failed: deliver `item` again after the key's next backoff delay (newer items
    /// coalesce into it but wait for the backoff too, so a failing plugin cannot spin).
    Retry(T),
}

/// Counters of what the queue did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Items pushed.
    pub pushed: u64,
    /// Pushes merged into an item already pending for the same key.
    pub coalesced: u64,
    /// Items handed out.
    pub delivered: u64,
    /// Retries scheduled.
    pub retries: u64,
    /// Tenant pauses started by [`WorkQueue::penalize`].
    pub penalties: u64,
}

/// An item handed out by [`WorkQueue::next`], its key marked in flight.
#[derive(Debug, PartialEq)]
pub struct Taken<K, T> {
    /// Its key.
    pub key: K,
    /// The item.
    pub item: T,
    /// How long it waited to be handed out: since it was pushed (an item that coalesced
    /// several pushes: since the first of them), or for a requeue or retry, since its delay
    /// ended (a push that supersedes a requeue delay counts from the push).
    pub waited: Duration,
}

/// One tenant's items at one instant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TenantStats {
    /// Items due and waiting to be handed out (behind their key in flight, their tenant's
    /// share, or the other tenants' turns).
    pub waiting: usize,
    /// Items waiting for a requeue delay or a retry backoff.
    pub delayed: usize,
    /// How long the item queued earliest has waited (zero if none): items due, and pushes
    /// coalesced into an item that waits for its backoff; not requeues before their delay ends.
    pub oldest_waiting: Duration,
    /// Items in flight.
    pub in_flight: usize,
    /// Sum of how long the items in flight have been.
    pub in_flight_total: Duration,
    /// How long the item in flight longest has been.
    pub longest_in_flight: Duration,
}

struct Entry<T> {
    pending: Option<T>,
    /// When `pending` was queued (in the future while it waits for a requeue or retry delay).
    queued_at: Option<Instant>,
    in_flight: bool,
    /// When the item in flight was handed out.
    started: Option<Instant>,
    /// Not to be delivered before this instant.
    not_before: Option<Instant>,
    /// Whether `not_before` is a requeue delay (superseded by a newer item) rather than a
    /// failure backoff (kept).
    requeue: bool,
    failures: u32,
    scheduled: bool,
}

impl<T> Entry<T> {
    fn new() -> Self {
        Self {
            pending: None,
            queued_at: None,
            in_flight: false,
            started: None,
            not_before: None,
            requeue: false,
            failures: 0,
            scheduled: false,
        }
    }
}

struct State<K: Tenant, T> {
    entries: HashMap<K, Entry<T>>,
    /// Per tenant: its ready keys, in order, and its share.
    tenants: HashMap<K::Id, TenantState<K>>,
    /// Tenants with ready keys, in turn order.
    turns: VecDeque<K::Id>,
    delayed: BinaryHeap<Reverse<(Instant, u64, K)>>,
    seq: u64,
    closed: bool,
    stats: Stats,
    /// Entries with a pending item (kept, not counted, so that the depth gauge updated after
    /// every event costs nothing however deep the queue).
    waiting: usize,
}

/// A per-key ordered, coalescing work queue with a fair share per tenant. Cheap to clone
/// (shared).
pub struct WorkQueue<K: Tenant, T> {
    state: Arc<Mutex<State<K, T>>>,
    changed: Arc<Notify>,
    space: Arc<Notify>,
    capacity: usize,
    backoff: Backoff,
    fairness: Fairness,
}

impl<K: Tenant, T> Clone for WorkQueue<K, T> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            changed: self.changed.clone(),
            space: self.space.clone(),
            capacity: self.capacity,
            backoff: self.backoff,
            fairness: self.fairness,
        }
    }
}

impl<K, T> WorkQueue<K, T>
where
    K: Hash + Eq + Clone + Ord + Tenant,
    T: Coalesce,
{
    /// A queue holding at most `capacity` keys with pending items; `backoff` paces retries.
    /// Tenants take turns but are otherwise unlimited.
    pub fn new(capacity: usize, backoff: Backoff) -> Self {
        Self::with_fairness(capacity, backoff, Fairness::unlimited())
    }

    /// [`WorkQueue::new`], with each tenant held to `fairness`.
    pub fn with_fairness(capacity: usize, backoff: Backoff, fairness: Fairness) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                entries: HashMap::new(),
                tenants: HashMap::new(),
                turns: VecDeque::new(),
                delayed: BinaryHeap::new(),
                seq: 0,
                closed: false,
                stats: Stats::default(),
                waiting: 0,
            })),
            changed: Arc::new(Notify::new()),
            space: Arc::new(Notify::new()),
            capacity: capacity.max(1),
            backoff,
            fairness,
        }
    }

    /// Adds an item for `key`, coalescing with what is pending for it. Waits while the
    /// queue is full (backpressure on the informers: nothing is dropped). Returns false if
    /// the queue is closed (the item is dropped: kreflex is stopping and the next start
    /// relists everything).
    pub async fn push(&self, key: K, item: T) -> bool {
        let mut item = Some(item);
        loop {
            let space = self.space.notified();
            {
                let mut s = self.state.lock();
                if s.closed {
                    return false;
                }
                let known = s.entries.get(&key).is_some_and(|e| e.pending.is_some() || e.in_flight);
                if known || s.entries.len() < self.capacity {
                    let item = item.take().expect("item is only taken once, right before returning");
                    Self::push_locked(&mut s, key, item);
                    drop(s);
                    self.changed.notify_waiters();
                    self.changed.notify_one();
                    return true;
                }
            }
            space.await;
        }
    }

    fn push_locked(s: &mut State<K, T>, key: K, item: T) {
        s.stats.pushed += 1;
        let now = Instant::now();
        let entry = s.entries.entry(key.clone()).or_insert_with(Entry::new);
        entry.queued_at = Some(match (&entry.pending, entry.queued_at) {
            (Some(_), Some(queued)) => queued.min(now),
            _ => now,
        });
        entry.pending = Some(match entry.pending.take() {
            Some(older) => {
                s.stats.coalesced += 1;
                older.coalesce(item)
            }
            None => {
                s.waiting += 1;
                item
            }
        });
        if entry.requeue {
            // A real change supersedes a requeue timer.
            entry.not_before = None;
            entry.requeue = false;
        }
        Self::schedule(s, &key, now);
    }

    /// Puts `key` on its tenant's ready list, and the tenant in the turns if it is not.
    fn make_ready(s: &mut State<K, T>, key: K) {
        let id = key.tenant();
        let tenant = s.tenants.entry(id.clone()).or_default();
        tenant.ready.push_back(key);
        if !tenant.in_turns {
            tenant.in_turns = true;
            s.turns.push_back(id);
        }
    }

    /// Puts a key with a pending item on the ready list or the timer heap, once.
    fn schedule(s: &mut State<K, T>, key: &K, now: Instant) {
        let Some(entry) = s.entries.get_mut(key) else {
            return;
        };
        if entry.in_flight || entry.pending.is_none() {
            return;
        }
        match entry.not_before {
            Some(at) if at > now => {
                s.seq += 1;
                s.delayed.push(Reverse((at, s.seq, key.clone())));
            }
            _ => {
                if !entry.scheduled {
                    entry.scheduled = true;
                    Self::make_ready(s, key.clone());
                }
            }
        }
    }

    /// The next item whose key is not in flight and whose tenant may have one more (tenants
    /// in turn), marking the key in flight. `None` once the queue is closed.
    pub async fn next(&self) -> Option<Taken<K, T>> {
        loop {
            let changed = self.changed.notified();
            let wake_at = {
                let mut s = self.state.lock();
                if s.closed {
                    return None;
                }
                let now = Instant::now();
                while let Some(Reverse((at, _, _))) = s.delayed.peek() {
                    if *at > now {
                        break;
                    }
                    let Some(Reverse((_, _, key))) = s.delayed.pop() else {
                        break;
                    };
                    let due = s.entries.get(&key).is_some_and(|e| e.not_before.is_none_or(|nb| nb <= now));
                    if due && let Some(e) = s.entries.get_mut(&key) {
                        e.not_before = None;
                        e.requeue = false;
                        if !e.scheduled && !e.in_flight && e.pending.is_some() {
                            e.scheduled = true;
                            Self::make_ready(&mut s, key);
                        }
                    }
                }
                let (taken, tenant_wake) = self.take_ready(&mut s, now);
                if let Some(taken) = taken {
                    return Some(taken);
                }
                let timer = s.delayed.peek().map(|Reverse((at, _, _))| *at);
                match (timer, tenant_wake) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Tenants in turn: the first whose share allows one more item hands out its first
    /// deliverable key. Else: when a tenant held back by its bucket or its pause may go on
    /// (one held back by its items in flight goes on when one is done).
    fn take_ready(&self, s: &mut State<K, T>, now: Instant) -> (Option<Taken<K, T>>, Option<Instant>) {
        let State { entries, tenants, turns, stats, waiting, .. } = s;
        let mut wake: Option<Instant> = None;
        for _ in 0..turns.len() {
            let Some(id) = turns.pop_front() else {
                break;
            };
            let Some(tenant) = tenants.get_mut(&id) else {
                continue;
            };
            if tenant.ready.is_empty() {
                tenant.in_turns = false;
                continue;
            }
            if let Err(until) = tenant.admits(&self.fairness, now) {
                wake = match (wake, until) {
                    (Some(w), Some(u)) => Some(w.min(u)),
                    (w, u) => w.or(u),
                };
                turns.push_back(id);
                continue;
            }
            while let Some(key) = tenant.ready.pop_front() {
                let Some(e) = entries.get_mut(&key) else {
                    continue;
                };
                e.scheduled = false;
                if e.in_flight || e.not_before.is_some_and(|nb| nb > now) {
                    continue;
                }
                if let Some(item) = e.pending.take() {
                    let waited = e.queued_at.take().map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
                    e.in_flight = true;
                    e.started = Some(now);
                    *waiting -= 1;
                    stats.delivered += 1;
                    tenant.started();
                    if tenant.ready.is_empty() {
                        tenant.in_turns = false;
                    } else {
                        turns.push_back(id);
                    }
                    return (Some(Taken { key, item, waited }), None);
                }
            }
            tenant.in_turns = false;
        }
        (None, wake)
    }

    /// Pauses the tenant of `key` (a plugin that exhausted its deadline): none of its items
    /// is handed out for the tenant's next penalty delay, growing with each penalty in a row
    /// (see [`Fairness::penalty`]); a completed item of the tenant ends the row. A penalty
    /// while the tenant is paused is not counted (its items in flight when the pause began
    /// fail together). Returns the pause started, if one did.
    pub fn penalize(&self, key: &K) -> Option<Duration> {
        let mut s = self.state.lock();
        let pause = s.tenants.entry(key.tenant()).or_default().penalize(&self.fairness, Instant::now());
        if pause.is_some() {
            s.stats.penalties += 1;
        }
        pause
    }

    /// Ends the item taken for `key`.
    pub fn done(&self, key: &K, outcome: Outcome<T>) {
        let mut s = self.state.lock();
        let now = Instant::now();
        let backoff = self.backoff;
        let id = key.tenant();
        let fairness = self.fairness;
        let mut token_wait = Duration::ZERO;
        if let Some(tenant) = s.tenants.get_mut(&id) {
            tenant.finished(matches!(outcome, Outcome::Retry(_)));
            if !matches!(outcome, Outcome::Completed) {
                token_wait = tenant.reserve(&fairness, now);
            }
            if tenant.idle(&fairness, now) {
                s.tenants.remove(&id);
            }
        }
        let Some(e) = s.entries.get_mut(key) else {
            return;
        };
        e.in_flight = false;
        e.started = None;
        let was_waiting = e.pending.is_some();
        match outcome {
            Outcome::Completed => e.failures = 0,
            Outcome::RequeueAfter(delay, item) => {
                e.failures = 0;
                if e.pending.is_none() {
                    e.pending = Some(item);
                    e.not_before = Some(now + delay.max(token_wait));
                    e.queued_at = e.not_before;
                    e.requeue = true;
                }
            }
            Outcome::Retry(item) => {
                let delay = backoff.delay(e.failures).max(token_wait);
                e.failures = e.failures.saturating_add(1);
                e.not_before = Some(now + delay);
                e.pending = Some(match e.pending.take() {
                    Some(newer) => item.coalesce(newer),
                    None => {
                        e.queued_at = e.not_before;
                        item
                    }
                });
                e.requeue = false;
                s.stats.retries += 1;
            }
        }
        if !was_waiting && s.entries.get(key).is_some_and(|e| e.pending.is_some()) {
            s.waiting += 1;
        }
        let idle = s.entries.get(key).is_some_and(|e| e.pending.is_none() && !e.in_flight && e.failures == 0);
        if idle {
            s.entries.remove(key);
            drop(s);
            self.space.notify_waiters();
        } else {
            Self::schedule(&mut s, key, now);
            drop(s);
        }
        self.changed.notify_waiters();
        self.changed.notify_one();
    }

    /// Drops everything pending for keys matching `pred` (a plugin was unloaded).
    pub fn remove_where(&self, pred: impl Fn(&K) -> bool) {
        let mut s = self.state.lock();
        let State { entries, waiting, .. } = &mut *s;
        entries.retain(|k, e| {
            if pred(k) {
                if e.pending.take().is_some() {
                    *waiting -= 1;
                }
                e.queued_at = None;
                e.in_flight
            } else {
                true
            }
        });
        drop(s);
        self.space.notify_waiters();
    }

    /// Keys with an item waiting (not counting items in flight).
    pub fn len(&self) -> usize {
        self.state.lock().waiting
    }

    /// True if nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys in flight.
    pub fn in_flight(&self) -> usize {
        self.state.lock().entries.values().filter(|e| e.in_flight).count()
    }

    /// Each tenant's waiting and in-flight items now (tenants with neither are left out).
    /// One pass over the waiting and in-flight keys under the queue's lock (70 ms per
    /// 100,000 keys in a debug build; nothing for an idle queue): for a scrape every few
    /// seconds, not for the event path.
    pub fn tenant_stats(&self) -> HashMap<K::Id, TenantStats> {
        let s = self.state.lock();
        let now = Instant::now();
        let mut out: HashMap<K::Id, TenantStats> = HashMap::new();
        for (key, e) in &s.entries {
            if e.pending.is_none() && !e.in_flight {
                continue;
            }
            let t = out.entry(key.tenant()).or_default();
            if e.pending.is_some() {
                if e.not_before.is_some_and(|nb| nb > now) {
                    t.delayed += 1;
                } else {
                    t.waiting += 1;
                }
                if let Some(queued) = e.queued_at.filter(|q| *q <= now) {
                    t.oldest_waiting = t.oldest_waiting.max(now - queued);
                }
            }
            if let Some(started) = e.started.filter(|_| e.in_flight) {
                let running = now.saturating_duration_since(started);
                t.in_flight += 1;
                t.in_flight_total += running;
                t.longest_in_flight = t.longest_in_flight.max(running);
            }
        }
        out
    }

    /// What the queue did so far.
    pub fn stats(&self) -> Stats {
        self.state.lock().stats
    }

    /// Stops intake and hand-out: `push` returns false, `next` returns `None`. Items in
    /// flight can still be marked `done`.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.changed.notify_waiters();
        self.space.notify_waiters();
    }
}

#[cfg(test)]
mod tests;
