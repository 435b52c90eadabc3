//! Per-key work queue: strict order per key (one item in flight per key), coalescing of
//! items that arrive while a key is busy or waiting, delayed re-delivery (requeue-after),
//! per-key exponential backoff on failure, bounded size with backpressure, and graceful
//! close.
//!
//! In the data path it sits between the router and the plugin calls, keyed by
//! (plugin, object): ordering and coalescing per object and per plugin, parallelism across
//! objects and plugins. The logic is synchronous and free of I/O; only waiting is async
//! (tokio time, so tests run on a paused clock).

mod coalesce;

pub use coalesce::{Coalesce, PendingEvent};

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
}

struct Entry<T> {
    pending: Option<T>,
    in_flight: bool,
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
        Self { pending: None, in_flight: false, not_before: None, requeue: false, failures: 0, scheduled: false }
    }
}

struct State<K, T> {
    entries: HashMap<K, Entry<T>>,
    ready: VecDeque<K>,
    delayed: BinaryHeap<Reverse<(Instant, u64, K)>>,
    seq: u64,
    closed: bool,
    stats: Stats,
}

/// A per-key ordered, coalescing work queue. Cheap to clone (shared).
pub struct WorkQueue<K, T> {
    state: Arc<Mutex<State<K, T>>>,
    changed: Arc<Notify>,
    space: Arc<Notify>,
    capacity: usize,
    backoff: Backoff,
}

impl<K, T> Clone for WorkQueue<K, T> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            changed: self.changed.clone(),
            space: self.space.clone(),
            capacity: self.capacity,
            backoff: self.backoff,
        }
    }
}

impl<K, T> WorkQueue<K, T>
where
    K: Hash + Eq + Clone + Ord,
    T: Coalesce,
{
    /// A queue holding at most `capacity` keys with pending items; `backoff` paces retries.
    pub fn new(capacity: usize, backoff: Backoff) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                entries: HashMap::new(),
                ready: VecDeque::new(),
                delayed: BinaryHeap::new(),
                seq: 0,
                closed: false,
                stats: Stats::default(),
            })),
            changed: Arc::new(Notify::new()),
            space: Arc::new(Notify::new()),
            capacity: capacity.max(1),
            backoff,
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
        entry.pending = Some(match entry.pending.take() {
            Some(older) => {
                s.stats.coalesced += 1;
                older.coalesce(item)
            }
            None => item,
        });
        if entry.requeue {
            // A real change supersedes a requeue timer.
            entry.not_before = None;
            entry.requeue = false;
        }
        Self::schedule(s, &key, now);
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
                    s.ready.push_back(key.clone());
                }
            }
        }
    }

    /// The next item whose key is not in flight, marking the key in flight. `None` once the
    /// queue is closed.
    pub async fn next(&self) -> Option<(K, T)> {
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
                            s.ready.push_back(key);
                        }
                    }
                }
                while let Some(key) = s.ready.pop_front() {
                    let Some(e) = s.entries.get_mut(&key) else {
                        continue;
                    };
                    e.scheduled = false;
                    if e.in_flight || e.not_before.is_some_and(|nb| nb > now) {
                        continue;
                    }
                    if let Some(item) = e.pending.take() {
                        e.in_flight = true;
                        s.stats.delivered += 1;
                        return Some((key, item));
                    }
                }
                s.delayed.peek().map(|Reverse((at, _, _))| *at)
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

    /// Ends the item taken for `key`.
    pub fn done(&self, key: &K, outcome: Outcome<T>) {
        let mut s = self.state.lock();
        let now = Instant::now();
        let backoff = self.backoff;
        let Some(e) = s.entries.get_mut(key) else {
            return;
        };
        e.in_flight = false;
        match outcome {
            Outcome::Completed => e.failures = 0,
            Outcome::RequeueAfter(delay, item) => {
                e.failures = 0;
                if e.pending.is_none() {
                    e.pending = Some(item);
                    e.not_before = Some(now + delay);
                    e.requeue = true;
                }
            }
            Outcome::Retry(item) => {
                let delay = backoff.delay(e.failures);
                e.failures = e.failures.saturating_add(1);
                e.pending = Some(match e.pending.take() {
                    Some(newer) => item.coalesce(newer),
                    None => item,
                });
                e.not_before = Some(now + delay);
                e.requeue = false;
                s.stats.retries += 1;
            }
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
        s.entries.retain(|k, e| {
            if pred(k) {
                e.pending = None;
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
        self.state.lock().entries.values().filter(|e| e.pending.is_some()).count()
    }

    /// True if nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys in flight.
    pub fn in_flight(&self) -> usize {
        self.state.lock().entries.values().filter(|e| e.in_flight).count()
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
