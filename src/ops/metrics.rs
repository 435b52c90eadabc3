//! Prometheus metrics (`/metrics`), named the way controller-runtime and shell-operator
//! users expect. One [`Metrics`] per process, cheap to clone, registered once.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

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
