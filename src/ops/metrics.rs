//! Prometheus metrics (`/metrics`), named the way controller-runtime and shell-operator
//! users expect. One [`Metrics`] per process, cheap to clone, registered once.
//!
//! Most metrics are updated where things happen (informers, dispatcher, appliers, the API
//! client layer, [`super::ApiMetricsLayer`]). The queue gauges that change with time alone —
//! depth per plugin, the age of the oldest waiting item, how long the calls in progress
//! have run — are read from the dispatcher's queue at scrape time, through the source it
//! hands to [`Metrics::observe_queues`] (as controller-runtime's workqueue computes
//! "unfinished work" from the items in progress).

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// `gvk` and event `kind`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `group/version/Kind`.
    pub gvk: String,
    /// added, modified, deleted, resync.
    pub kind: String,
}

/// `gvk` alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GvkLabel {
    /// `group/version/Kind`.
    pub gvk: String,
}

/// `plugin` alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabel {
    /// Plugin name.
    pub plugin: String,
}

/// `plugin` and failure `kind`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginErrorLabels {
    /// Plugin name.
    pub plugin: String,
    /// trap, timeout, oom, plugin_error, invalid_action.
    pub kind: String,
}

/// One applied (or refused) action.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// Plugin name.
    pub plugin: String,
    /// patch, create, delete, event, requeue.
    pub action: String,
    /// applied, denied, failed, conflict, retried.
    pub outcome: String,
}

/// Result of a plugin (re)load.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// ok, error, removed.
    pub result: String,
}

/// One request kreflex sent to the API server, as the API server's authorizer names it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    /// get, list, watch, create, update, patch, delete, deletecollection (`other` for
    /// another method).
    pub verb: String,
    /// API group (empty for the core group and for discovery).
    pub group: String,
    /// Resource, with its subresource (`databases/status`); empty for discovery and other
    /// paths that are not resources.
    pub resource: String,
    /// HTTP status code, `<error>` if no response came (connection error, timeout).
    pub code: String,
}

/// Latency of the requests of one verb on one resource.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLatencyLabels {
    /// As in [`ApiRequestLabels`].
    pub verb: String,
    /// As in [`ApiRequestLabels`].
    pub group: String,
    /// As in [`ApiRequestLabels`].
    pub resource: String,
}

/// One plugin's queue at one instant, as the dispatcher reports it at scrape time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PluginQueueGauges {
    /// Plugin name.
    pub plugin: String,
    /// Events due and waiting for a worker (their key, or the plugin's share).
    pub depth: u64,
    /// Events waiting for a requeue delay or a retry backoff.
    pub delayed: u64,
    /// How long the oldest waiting event has waited.
    pub oldest_waiting: Duration,
    /// Events being worked on.
    pub active: u64,
    /// Sum of how long the events being worked on have been.
    pub unfinished_work: Duration,
    /// How long the longest-running event being worked on has been.
    pub longest_running: Duration,
}

/// What [`Metrics::observe_queues`] calls at each scrape.
type QueueSource = Arc<dyn Fn() -> Vec<PluginQueueGauges> + Send + Sync>;

/// Every metric kreflex exports.
#[derive(Clone)]
pub struct Metrics {
    /// Events received from informers.
    pub events: Family<EventLabels, Counter>,
    /// Watch failures (each followed by a relist with backoff).
    pub watch_errors: Family<GvkLabel, Counter>,
    /// Events queued for a plugin.
    pub dispatched: Family<PluginLabel, Counter>,
    /// Events merged into one already pending for the same object.
    pub coalesced: Family<PluginLabel, Counter>,
    /// Duration of plugin calls.
    pub call_duration: Family<PluginLabel, Histogram>,
    /// Failed plugin calls by kind.
    pub plugin_errors: Family<PluginErrorLabels, Counter>,
    /// Actions by outcome.
    pub actions: Family<ActionLabels, Counter>,
    /// API requests retried after a transient failure.
    pub retries: Family<PluginLabel, Counter>,
    /// Objects waiting in the queues.
    pub queue_depth: Gauge,
    /// Plugin loads and reloads by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Plugins currently loaded.
    pub plugins_loaded: Gauge,
    /// Requeue delays a plugin asked for below the floor, raised to it.
    pub requeues_raised: Family<PluginLabel, Counter>,
    /// Pauses of a plugin whose call exhausted its CPU deadline.
    pub plugin_pauses: Family<PluginLabel, Counter>,
    /// Bytes of plugin log and output dropped by the sandbox's caps.
    pub log_dropped: Family<PluginLabel, Counter>,
    /// 1 while this replica acts on objects (it is the leader, holds a shard, or no leader
    /// election runs).
    pub leader: Gauge,
    /// Shards this replica holds (leader election: 1 or 0; none configured: 1).
    pub shards_held: Gauge,
    /// How long an event waited in the queue before a worker took it.
    pub queue_duration: Family<PluginLabel, Histogram>,
    /// How long a worker took over one event (the call, its actions, finalizers).
    pub work_duration: Family<PluginLabel, Histogram>,
    /// Events that failed and wait for a retry with backoff.
    pub queue_retries: Family<PluginLabel, Counter>,
    /// Events requeued after a delay (the plugin asked for it).
    pub queue_requeues: Family<PluginLabel, Counter>,
    /// API requests by verb, resource and status code.
    pub api_requests: Family<ApiRequestLabels, Counter>,
    /// API request latency (until the response headers; for a watch, until it is open).
    pub api_request_duration: Family<ApiLatencyLabels, Histogram>,
    queues: Arc<RwLock<Option<QueueSource>>>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("kreflex");
        let events = Family::default();
        let watch_errors = Family::default();
        let dispatched = Family::default();
        let coalesced = Family::default();
        let call_duration = Family::<PluginLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
        });
        let plugin_errors = Family::default();
        let actions = Family::default();
        let retries = Family::default();
        let queue_depth = Gauge::default();
        let reloads = Family::default();
        let plugins_loaded = Gauge::default();
        let requeues_raised = Family::default();
        let plugin_pauses = Family::default();
        let log_dropped = Family::default();
        let leader = Gauge::default();
        let shards_held = Gauge::default();
        // Waits from sub-millisecond (an idle engine) to minutes (a backlog after a relist).
        let queue_duration = Family::<PluginLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ])
        });
        // A call is bounded by its deadline (at most 10 s); its applies add API round trips.
        let work_duration = Family::<PluginLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
        });
        let queue_retries = Family::default();
        let queue_requeues = Family::default();
        let api_requests = Family::default();
        // client-go's `rest_client_request_duration_seconds` buckets.
        let api_request_duration = Family::<ApiLatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0])
        });
        let queues: Arc<RwLock<Option<QueueSource>>> = Arc::default();
        r.register("events", "Events received from informers", events.clone());
        r.register("watch_errors", "Watch failures, each followed by a relist with backoff", watch_errors.clone());
        r.register("events_dispatched", "Events queued for a plugin", dispatched.clone());
        r.register("events_coalesced", "Events merged into one already pending for the same object", coalesced.clone());
        r.register("plugin_call_duration_seconds", "Duration of plugin calls", call_duration.clone());
        r.register("plugin_errors", "Failed plugin calls by kind", plugin_errors.clone());
        r.register("actions", "Plugin actions by outcome", actions.clone());
        r.register("apply_retries", "API requests retried after a transient failure", retries.clone());
        r.register("queue_depth", "Objects waiting in the queues", queue_depth.clone());
        r.register("reloads", "Plugin loads and reloads by result", reloads.clone());
        r.register("plugins_loaded", "Plugins currently loaded", plugins_loaded.clone());
        r.register(
            "requeue_delays_raised",
            "Requeue delays a plugin asked for below the floor, raised to it",
            requeues_raised.clone(),
        );
        r.register(
            "plugin_pauses",
            "Pauses of a plugin whose call exhausted its deadline (its events wait)",
            plugin_pauses.clone(),
        );
        r.register(
            "plugin_log_dropped_bytes",
            "Bytes of plugin log and stdout/stderr dropped by the per-call and per-second caps",
            log_dropped.clone(),
        );
        r.register(
            "leader",
            "1 while this replica acts on objects (leader, shard holder, or no leader election)",
            leader.clone(),
        );
        r.register("shards_held", "Shards this replica holds", shards_held.clone());
        r.register(
            "workqueue_queue_duration_seconds",
            "How long an event waited in the queue before a worker took it (a coalesced event: since the first of its changes; a requeued or retried one: since its delay ended)",
            queue_duration.clone(),
        );
        r.register(
            "workqueue_work_duration_seconds",
            "How long a worker took over one event: the plugin call, its actions and finalizers",
            work_duration.clone(),
        );
        r.register("workqueue_retries", "Events that failed and wait for a retry with backoff", queue_retries.clone());
        r.register(
            "workqueue_requeues",
            "Events requeued after the delay their plugin asked for",
            queue_requeues.clone(),
        );
        r.register(
            "rest_client_requests",
            "Requests to the API server by verb, group, resource and status code (<error>: no response)",
            api_requests.clone(),
        );
        r.register(
            "rest_client_request_duration_seconds",
            "Latency of requests to the API server until the response headers (a watch: until it is open)",
            api_request_duration.clone(),
        );
        r.register_collector(Box::new(QueueCollector { source: queues.clone() }));
        Self {
            events,
            watch_errors,
            dispatched,
            coalesced,
            call_duration,
            plugin_errors,
            actions,
            retries,
            queue_depth,
            reloads,
            plugins_loaded,
            requeues_raised,
            plugin_pauses,
            log_dropped,
            leader,
            shards_held,
            queue_duration,
            work_duration,
            queue_retries,
            queue_requeues,
            api_requests,
            api_request_duration,
            queues,
            registry: Arc::new(r),
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }

    /// Counts one action outcome.
    pub fn action(&self, plugin: &str, action: &str, outcome: &str) {
        self.actions
            .get_or_create(&ActionLabels {
                plugin: plugin.to_owned(),
                action: action.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Reads the queue gauges from `source` at each scrape (the dispatcher calls this once;
    /// a later call replaces the source).
    pub fn observe_queues(&self, source: impl Fn() -> Vec<PluginQueueGauges> + Send + Sync + 'static) {
        *self.queues.write() = Some(Arc::new(source));
    }

    /// Counts one API request that took `elapsed`.
    pub fn api_request(&self, labels: ApiRequestLabels, elapsed: Duration) {
        let latency = ApiLatencyLabels {
            verb: labels.verb.clone(),
            group: labels.group.clone(),
            resource: labels.resource.clone(),
        };
        self.api_request_duration.get_or_create(&latency).observe(elapsed.as_secs_f64());
        self.api_requests.get_or_create(&labels).inc();
    }

    /// Counts one failed plugin call.
    pub fn plugin_error(&self, plugin: &str, kind: &str) {
        self.plugin_errors.get_or_create(&PluginErrorLabels { plugin: plugin.to_owned(), kind: kind.to_owned() }).inc();
    }

    /// Sum of the `kreflex_actions_total` values whose labels satisfy `filter` (for tests).
    pub fn action_count(&self, filter: impl Fn(&ActionLabels) -> bool) -> u64 {
        let text = self.encode();
        text.lines()
            .filter(|l| l.starts_with("kreflex_actions_total{"))
            .filter_map(|l| {
                let (labels, value) = l.rsplit_once(' ')?;
                let get = |k: &str| {
                    let start = labels.find(&format!("{k}=\""))? + k.len() + 2;
                    let end = labels[start..].find('"')? + start;
                    Some(labels[start..end].to_owned())
                };
                let l = ActionLabels { plugin: get("plugin")?, action: get("action")?, outcome: get("outcome")? };
                filter(&l).then(|| value.parse::<f64>().ok().map(|v| v as u64)).flatten()
            })
            .sum()
    }
}

/// The per-plugin queue gauges, computed from the dispatcher's queue at each scrape: no
/// series outlives its plugin, and the ages are exact at the moment of the scrape.
struct QueueCollector {
    source: Arc<RwLock<Option<QueueSource>>>,
}

impl std::fmt::Debug for QueueCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueCollector").finish_non_exhaustive()
    }
}

/// One gauge of [`PluginQueueGauges`]: name, help, value.
type QueueGauge = (&'static str, &'static str, fn(&PluginQueueGauges) -> f64);

const QUEUE_GAUGES: [QueueGauge; 6] = [
    ("workqueue_depth", "Events due and waiting for a worker, per plugin.", |g| g.depth as f64),
    ("workqueue_delayed", "Events waiting for a requeue delay or a retry backoff, per plugin.", |g| g.delayed as f64),
    ("workqueue_oldest_waiting_seconds", "How long the oldest waiting event has waited, per plugin.", |g| {
        g.oldest_waiting.as_secs_f64()
    }),
    ("active_workers", "Workers busy with an event, per plugin.", |g| g.active as f64),
    (
        "workqueue_unfinished_work_seconds",
        "Sum of how long the events being worked on have been, per plugin (grows while a call hangs).",
        |g| g.unfinished_work.as_secs_f64(),
    ),
    (
        "workqueue_longest_running_processor_seconds",
        "How long the longest-running event being worked on has been, per plugin.",
        |g| g.longest_running.as_secs_f64(),
    ),
];

impl Collector for QueueCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(source) = self.source.read().clone() else {
            return Ok(());
        };
        let plugins = source();
        for (name, help, value) in QUEUE_GAUGES {
            let family = Family::<PluginLabel, Gauge<f64, AtomicU64>>::default();
            for p in &plugins {
                family.get_or_create(&PluginLabel { plugin: p.plugin.clone() }).set(value(p));
            }
            // Registered metrics get their help's full stop from the registry; these bring it.
            family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)?;
        }
        Ok(())
    }
}
