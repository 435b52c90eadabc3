//! Dispatch, as kube-runtime's controller: informer events are routed to the plugins that
//! subscribe to them ([`crate::route`]), queued per (plugin, object) ([`crate::queue`]), and
//! worked off by a bounded pool. Each event is one reconcile (finalizer added, plugin call,
//! validation, permission check, apply, finalizer removed) ending in a [`ReconcileOk`] or a
//! [`ReconcileError`]; a pure [`error_policy`](policy::error_policy) decides what follows
//! (retry, re-run on the fresh object, requeue, give up with a Warning Event, release the
//! finalizer), and the worker carries that out.
//!
//! Plugins share the workers fairly (the queue's [`Fairness`], one tenant per plugin): each
//! may hold at most its share of them, gets at most so many requeues and retries per
//! second (changes of objects are never held back), and takes turns with the others; a requeue delay is never shorter than
//! [`DispatcherConfig::requeue_floor`]; and a plugin whose calls keep exhausting their CPU
//! deadline is paused, longer each time, while the others keep their latency.
//!
//! In the data path: `watch` → here → `queue` → `wasm` → `actions` → `apply`.

pub mod policy;
mod reconcile;

pub use reconcile::{ReconcileError, ReconcileOk};

use crate::actions::{Limits, Severity};
use crate::apply::{EventTarget, Finalizers};
use crate::lease::Ownership;
use crate::model::{EventKind, Gvk};
use crate::ops::{Metrics, PluginLabel, PluginQueueGauges};
use crate::plugins::{LoadedPlugin, SharedRegistry};
use crate::queue::{Fairness, Outcome, PendingEvent, Rate, Taken, Tenant, WorkQueue};
use crate::route::{Delivery, Route, route};
use crate::watch::{Cache, InformerEvent, Resources};
use policy::{Conduct, Next, PolicyContext, Then};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Identifies one (plugin, object) queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    /// Plugin name.
    pub plugin: Arc<str>,
    /// Kind of the object.
    pub gvk: Arc<Gvk>,
    /// Namespace.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl Tenant for QueueKey {
    type Id = Arc<str>;

    /// Fair share is per plugin.
    fn tenant(&self) -> Arc<str> {
        self.plugin.clone()
    }
}

/// Tunables of the dispatcher.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Workers (plugin calls + applies in progress at once, across plugins).
    pub workers: usize,
    /// Distinct (plugin, object) keys waiting before the router blocks.
    pub queue_capacity: usize,
    /// How long a `finalizing` plugin may keep failing before kreflex removes its
    /// finalizer anyway (with a Warning Event).
    pub finalizer_timeout: Duration,
    /// Structural limits on actions.
    pub limits: Limits,
    /// Backoff of plugin re-runs after failures.
    pub backoff: crate::retry::Backoff,
    /// Workers one plugin may hold at once (`None`: half of `workers`, at least 1).
    pub plugin_workers: Option<usize>,
    /// Requeues and retries of one plugin per second, sustained, and in a burst (default
    /// 100/s, bursts of 200; `None`: no limit). Changes of objects are not counted.
    pub plugin_rate: Option<Rate>,
    /// The shortest requeue delay (default 500 ms, what the example plugin asks for while a
    /// database provisions): a plugin asking for less gets this, and it is counted in
    /// `kreflex_requeue_delays_raised_total`.
    pub requeue_floor: Duration,
    /// How long a plugin whose call exhausted its CPU deadline is paused: 1 s, doubling
    /// with each such call in a row (a pause counts one), up to 5 min; a call that does not
    /// fail ends the row.
    pub deadline_penalty: crate::retry::Backoff,
}

impl DispatcherConfig {
    /// The fair share of each plugin.
    pub fn fairness(&self) -> Fairness {
        Fairness {
            max_in_flight: self.plugin_workers.unwrap_or(self.workers / 2).max(1),
            rate: self.plugin_rate,
            penalty: self.deadline_penalty,
        }
    }
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            workers: 16,
            queue_capacity: 100_000,
            finalizer_timeout: Duration::from_secs(300),
            limits: Limits::default(),
            backoff: crate::retry::Backoff { min: Duration::from_millis(50), ..Default::default() },
            plugin_workers: None,
            plugin_rate: Some(Rate { per_second: 100.0, burst: 200 }),
            requeue_floor: Duration::from_millis(500),
            deadline_penalty: Fairness::unlimited().penalty,
        }
    }
}

/// Routes informer events into per-(plugin, object) queues and runs the workers.
#[derive(Clone)]
pub struct Dispatcher {
    registry: SharedRegistry,
    queue: WorkQueue<QueueKey, PendingEvent>,
    cache: Cache,
    resources: Resources,
    own_client: kube::Client,
    finalizers: Finalizers,
    metrics: Metrics,
    config: Arc<DispatcherConfig>,
    ownership: Ownership,
}

impl Dispatcher {
    /// A dispatcher over `registry`; `own_client` (kreflex's identity) manages finalizers
    /// and records Warning Events about plugin failures.
    pub fn new(
        registry: SharedRegistry,
        cache: Cache,
        resources: Resources,
        own_client: kube::Client,
        metrics: Metrics,
        config: DispatcherConfig,
    ) -> Self {
        let queue = WorkQueue::with_fairness(config.queue_capacity, config.backoff, config.fairness());
        metrics.observe_queues(queue_gauges(queue.clone(), registry.clone()));
        Self {
            queue,
            registry,
            cache,
            finalizers: Finalizers::new(own_client.clone(), resources.clone()),
            resources,
            own_client,
            metrics,
            config: Arc::new(config),
            ownership: Ownership::everything(),
        }
    }

    /// Acts only on the objects `ownership` says are this replica's (leader election,
    /// shards): others are neither queued, called nor applied.
    pub fn with_ownership(mut self, ownership: Ownership) -> Self {
        self.ownership = ownership;
        self
    }

    /// The queue (for tests and metrics).
    pub fn queue(&self) -> &WorkQueue<QueueKey, PendingEvent> {
        &self.queue
    }

    /// Routes events until the channel closes or `cancel` fires, then closes the queue.
    pub async fn route_events(&self, mut events: mpsc::Receiver<InformerEvent>, cancel: CancellationToken) {
        loop {
            let ev = tokio::select! {
                _ = cancel.cancelled() => break,
                ev = events.recv() => match ev { Some(ev) => ev, None => break },
            };
            // Another replica's object (leader election, shards): it acts on it.
            if !self.ownership.owns(ev.object.namespace(), ev.object.name()) {
                continue;
            }
            let registry = self.registry.load();
            for lp in registry.plugins.values() {
                for r in &lp.routes {
                    if let Delivery::Deliver(kind) = route(r, &ev, &lp.finalizer) {
                        let key = QueueKey {
                            plugin: Arc::from(lp.name()),
                            gvk: ev.gvk.clone(),
                            namespace: ev.object.namespace().map(str::to_owned),
                            name: ev.object.name().to_owned(),
                        };
                        let item = PendingEvent { kind, object: ev.object.clone(), old: ev.old.clone() };
                        let label = PluginLabel { plugin: lp.name().to_owned() };
                        let before = self.queue.stats().coalesced;
                        if !self.queue.push(key, item).await {
                            return;
                        }
                        self.metrics.dispatched.get_or_create(&label).inc();
                        if self.queue.stats().coalesced > before {
                            self.metrics.coalesced.get_or_create(&label).inc();
                        }
                    }
                }
            }
            self.metrics.queue_depth.set(self.queue.len() as i64);
        }
        self.queue.close();
    }

    /// Queues an event of `kind` for every cached object `route` selects, for one plugin:
    /// how a plugin loaded into a running engine gets to see what already exists.
    pub async fn replay(&self, lp: &LoadedPlugin, route: &Route, kind: EventKind) {
        self.replay_where(lp, route, kind, |_| true).await;
    }

    /// [`Dispatcher::replay`] of the cached objects `which` accepts (and this replica owns).
    pub async fn replay_where(
        &self,
        lp: &LoadedPlugin,
        route: &Route,
        kind: EventKind,
        which: impl Fn(&crate::watch::CachedObject) -> bool,
    ) {
        let gvk = Arc::new(route.gvk.clone());
        for object in self.cache.all(&route.gvk) {
            if !which(&object) || !self.ownership.owns(object.namespace(), object.name()) {
                continue;
            }
            // Routed like a live event: out-of-scope objects skipped, a deleting object
            // with the plugin's finalizer delivered as `finalizing`.
            let ev = InformerEvent { gvk: gvk.clone(), kind, object, old: None };
            let Delivery::Deliver(kind) = crate::route::route(route, &ev, &lp.finalizer) else { continue };
            let key = QueueKey {
                plugin: Arc::from(lp.name()),
                gvk: gvk.clone(),
                namespace: ev.object.namespace().map(str::to_owned),
                name: ev.object.name().to_owned(),
            };
            if !self.queue.push(key, PendingEvent { kind, object: ev.object, old: None }).await {
                return;
            }
        }
    }

    /// Runs the worker pool until the queue closes, then returns once in-flight work is
    /// done (graceful drain).
    pub async fn run_workers(&self) {
        let workers: Vec<_> = (0..self.config.workers.max(1))
            .map(|_| {
                let me = self.clone();
                tokio::spawn(async move { me.work().await })
            })
            .collect();
        for w in workers {
            if let Err(e) = w.await {
                tracing::error!(error = %e, "a dispatch worker panicked");
            }
        }
    }

    async fn work(&self) {
        while let Some(Taken { key, item, waited }) = self.queue.next().await {
            let label = PluginLabel { plugin: key.plugin.to_string() };
            self.metrics.queue_duration.get_or_create(&label).observe(waited.as_secs_f64());
            let started = tokio::time::Instant::now();
            let registry = self.registry.load();
            let outcome = match registry.get(&key.plugin) {
                // The plugin was unloaded while the event waited, or the object became
                // another replica's (it replays it).
                None => Outcome::Completed,
                Some(_) if !self.ownership.owns(key.namespace.as_deref(), &key.name) => Outcome::Completed,
                Some(lp) => {
                    let span = tracing::info_span!("event", plugin = %key.plugin, gvk = %key.gvk, ns = key.namespace.as_deref().unwrap_or(""), name = %key.name, kind = %item.kind, rv = item.object.resource_version().unwrap_or(""));
                    tracing::Instrument::instrument(self.handle(lp.clone(), &key, item), span).await
                }
            };
            self.metrics.work_duration.get_or_create(&label).observe(started.elapsed().as_secs_f64());
            let redelivered = match &outcome {
                Outcome::Completed => None,
                Outcome::RequeueAfter(..) => Some(&self.metrics.queue_requeues),
                Outcome::Retry(_) => Some(&self.metrics.queue_retries),
            };
            if let Some(counter) = redelivered {
                counter.get_or_create(&label).inc();
            }
            self.queue.done(&key, outcome);
            self.metrics.queue_depth.set(self.queue.len() as i64);
        }
    }

    /// One event for one plugin: reconcile, decide, carry out the decision.
    async fn handle(&self, lp: Arc<LoadedPlugin>, key: &QueueKey, mut item: PendingEvent) -> Outcome<PendingEvent> {
        let result = self.reconcile(&lp, key, &mut item).await;
        let target = reconcile::target_of(&key.gvk, &item);
        let ctx = PolicyContext {
            plugin: lp.name(),
            object: &target.object,
            event: item.kind,
            // Only a failed `finalizing` event looks at it; reading it parses the object.
            deleting_since: if result.is_err() && item.kind == EventKind::Finalizing {
                deletion_timestamp(&item)
            } else {
                None
            },
            now: jiff::Timestamp::now(),
            finalizer_timeout: self.config.finalizer_timeout,
            requeue_floor: self.config.requeue_floor,
        };
        let next = match &result {
            Ok(ok) => policy::requeue_policy(ok, &ctx),
            Err(e @ ReconcileError::NotOwner { .. }) => {
                tracing::debug!(error = %e, "event dropped");
                policy::error_policy(e, &ctx)
            }
            Err(e) => {
                let next = policy::error_policy(e, &ctx);
                if next.then == Then::Completed {
                    tracing::error!(error = %e, "event failed; not retried");
                } else {
                    tracing::warn!(error = %e, then = ?next.then, "event failed; retried with backoff");
                }
                next
            }
        };
        self.conduct(key, &next.conduct);
        self.execute(&lp, &target, item, next).await
    }

    /// Counts what the plugin's conduct earned it, and pauses a plugin that exhausted its
    /// deadline.
    fn conduct(&self, key: &QueueKey, conduct: &Conduct) {
        let label = || PluginLabel { plugin: key.plugin.to_string() };
        match conduct {
            Conduct::Ordinary => {}
            Conduct::RequeueRaised { asked } => {
                tracing::debug!(?asked, floor = ?self.config.requeue_floor, "requeue delay raised to the floor");
                self.metrics.requeues_raised.get_or_create(&label()).inc();
            }
            Conduct::DeadlineExhausted => {
                if let Some(pause) = self.queue.penalize(key) {
                    tracing::warn!(?pause, "plugin exhausted its CPU deadline; its events wait");
                    self.metrics.plugin_pauses.get_or_create(&label()).inc();
                }
            }
        }
    }

    /// Carries out a policy decision: Warning Events, finalizer release, the queue outcome.
    async fn execute(
        &self,
        lp: &LoadedPlugin,
        target: &EventTarget,
        item: PendingEvent,
        next: Next,
    ) -> Outcome<PendingEvent> {
        for w in &next.warnings {
            self.warn(lp.name(), target, w.reason, &w.message).await;
        }
        if next.release_finalizer
            && let Err(e) = self.finalizers.remove(&target.object.gvk(), &item.object, &lp.finalizer).await
        {
            tracing::error!(error = %e, "cannot remove the finalizer");
            return Outcome::Retry(item);
        }
        match next.then {
            Then::Retry => Outcome::Retry(item),
            Then::RetryOnFreshObject => {
                let fresh = self.finalizers.fetch(&target.object).await.ok().flatten();
                Outcome::Retry(PendingEvent { object: fresh.unwrap_or(item.object), ..item })
            }
            Then::RequeueAfter(d) => {
                Outcome::RequeueAfter(d, PendingEvent { kind: EventKind::Resync, object: item.object, old: None })
            }
            Then::Completed => Outcome::Completed,
        }
    }

    /// A Warning Event about a plugin failure, recorded with kreflex's own identity (the
    /// plugin may not be allowed to write Events, and its failure must be visible anyway).
    async fn warn(&self, plugin: &str, target: &EventTarget, reason: &str, message: &str) {
        let short: String = message.chars().take(1000).collect();
        if let Err(e) =
            crate::apply::record_event(&self.own_client, plugin, target, Severity::Warning, reason, &short).await
        {
            tracing::warn!(error = %e, reason, "cannot record a Warning Event");
        }
    }
}

/// The per-plugin queue gauges at scrape time: every loaded plugin (zeros when idle), and
/// any unloaded one that still has events in flight.
fn queue_gauges(
    queue: WorkQueue<QueueKey, PendingEvent>,
    registry: SharedRegistry,
) -> impl Fn() -> Vec<PluginQueueGauges> + Send + Sync + 'static {
    move || {
        let mut stats = queue.tenant_stats();
        let loaded = registry.load();
        let mut names: Vec<Arc<str>> = loaded.plugins.keys().map(|name| Arc::from(name.as_str())).collect();
        names.extend(stats.keys().filter(|n| loaded.get(n).is_none()).cloned());
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|plugin| {
                let t = stats.remove(&plugin).unwrap_or_default();
                PluginQueueGauges {
                    plugin: plugin.to_string(),
                    depth: t.waiting as u64,
                    delayed: t.delayed as u64,
                    oldest_waiting: t.oldest_waiting,
                    active: t.in_flight as u64,
                    unfinished_work: t.in_flight_total,
                    longest_running: t.longest_in_flight,
                }
            })
            .collect()
    }
}

fn deletion_timestamp(item: &PendingEvent) -> Option<jiff::Timestamp> {
    item.object.value().pointer("/metadata/deletionTimestamp")?.as_str()?.parse().ok()
}
