//! Putting plugin sets in service: each new plugin gets its scoped applier, the whole
//! [`Registry`] is swapped at once, informers are reconciled with the subscribed kinds, and
//! plugins that are new (or new versions) are replayed the objects already cached. Load
//! results are reported here too: logs, `kreflex_reloads_total{result}`, Kubernetes Events
//! and the `/plugins` status.
//!
//! In: loaded plugins and verdicts from the reconciler. Out: the registry the dispatcher
//! reads. It knows nothing of the dispatcher beyond [`Replay`], which the engine wires.

use super::registry::{LoadedPlugin, Registry, SharedRegistry};
use super::status::PluginStatus;
use crate::actions::Severity;
use crate::apply::{Applier, EventTarget, ScopedClients, record_event};
use crate::model::ObjectRef;
use crate::ops::{Health, Metrics, ReloadLabels};
use crate::retry::Backoff;
use crate::route::Route;
use crate::watch::{Informers, Resources, WatchScope};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Hands a plugin the objects already cached for one of its routes, as `resync` events:
/// kinds that were already watched produce no new events by themselves, and a new plugin
/// (or version) must reconcile everything. The engine implements it with the dispatcher.
#[async_trait::async_trait]
pub trait Replay: Send + Sync {
    /// Queues every cached object `route` selects for `plugin`.
    async fn replay(&self, plugin: &Arc<LoadedPlugin>, route: &Route);
}

/// Installs plugin sets and reports load results.
#[derive(Clone)]
pub struct Installer {
    /// The registry everyone reads.
    pub registry: SharedRegistry,
    scoped: ScopedClients,
    resources: Resources,
    informers: Arc<Mutex<Informers>>,
    replay: Arc<dyn Replay>,
    metrics: Metrics,
    health: Health,
    /// Where load results are recorded as Kubernetes Events (kreflex's own Pod, say).
    report: Option<(kube::Client, EventTarget)>,
}

impl Installer {
    /// An installer over the engine's parts.
    pub(crate) fn new(
        registry: SharedRegistry,
        scoped: ScopedClients,
        resources: Resources,
        informers: Arc<Mutex<Informers>>,
        replay: Arc<dyn Replay>,
        metrics: Metrics,
        health: Health,
    ) -> Self {
        Self { registry, scoped, resources, informers, replay, metrics, health, report: None }
    }

    /// Records every load result as a Kubernetes Event on `target` (Normal `PluginLoaded`,
    /// Warning `PluginLoadFailed`), written with `client` (kreflex's own identity).
    pub(crate) fn report_to(mut self, client: kube::Client, target: ObjectRef) -> Self {
        self.report = Some((client, EventTarget { object: target, uid: None, resource_version: None }));
        self
    }

    /// Gives a freshly loaded plugin the applier that writes with its scoped client.
    pub(crate) fn equip(&self, lp: &mut LoadedPlugin) -> Result<(), kube::Error> {
        let client = self.scoped.client_for(lp.name())?;
        lp.applier =
            Some(Applier::new(lp.name(), client, self.resources.clone(), Backoff::default(), self.metrics.clone()));
        Ok(())
    }

    /// Reports that `lp` was loaded from `file` (replacing a version, or not).
    pub(crate) fn loaded(&self, file: &Path, lp: &LoadedPlugin, replaced: bool) {
        let (info, hash) = (lp.plugin.info(), lp.plugin.hash());
        tracing::info!(plugin = lp.name(), version = %info.version, hash = %&hash[..12],
            from_cache = lp.plugin.loaded_from_cache(), load_ms = lp.plugin.load_time().as_millis() as u64,
            replaced, "plugin loaded");
        self.count("ok");
        let message =
            format!("{}: plugin {} {} loaded (sha256 {})", file.display(), lp.name(), info.version, &hash[..12]);
        self.record(Severity::Normal, "PluginLoaded", message);
    }

    /// Reports that a file's content did not load; `kept` is what keeps running from it.
    pub(crate) fn failed(&self, error: &str, kept: Option<&LoadedPlugin>) {
        tracing::error!(
            error,
            keeps_running = kept.map(LoadedPlugin::name),
            "plugin not loaded; the last good version (if any) keeps running"
        );
        self.count("error");
        let kept = kept.map_or_else(
            || "nothing from this file is running".to_owned(),
            |p| format!("{} {} keeps running", p.name(), p.plugin.info().version),
        );
        self.record(Severity::Warning, "PluginLoadFailed", format!("{error}; {kept}"));
    }

    /// Reports that `file` is gone and `lp` unloaded.
    pub(crate) fn removed(&self, file: &Path, lp: &LoadedPlugin) {
        tracing::info!(plugin = lp.name(), file = %file.display(), "plugin file removed; plugin unloaded");
        self.count("removed");
    }

    /// Swaps in `registry`, starts/stops informers, and replays cached objects to the
    /// plugins named in `fresh` (new or new versions).
    pub(crate) async fn install(&self, registry: Registry, fresh: &[String]) {
        let kinds = registry.kinds();
        self.metrics.plugins_loaded.set(registry.plugins.len() as i64);
        let fresh_plugins: Vec<Arc<LoadedPlugin>> = fresh.iter().filter_map(|n| registry.get(n).cloned()).collect();
        self.registry.store(Arc::new(registry));
        let mut informers = self.informers.lock().await;
        let running_before = informers.kinds();
        for lp in &fresh_plugins {
            warn_unwatched(lp, informers.scope());
        }
        for (gvk, e) in informers.reconcile(&kinds).await {
            tracing::error!(%gvk, error = %e, "subscribed kind is not served by the API server");
        }
        drop(informers);
        // A newly watched kind lists everything anyway; an already watched one needs a replay.
        for lp in fresh_plugins {
            for r in lp.routes.iter().filter(|r| running_before.contains(&r.gvk)) {
                self.replay.replay(&lp, r).await;
            }
        }
    }

    /// Publishes the status of every plugin file on `/plugins`.
    pub(crate) fn publish(&self, statuses: &[PluginStatus]) {
        if let Err(e) = self.health.set_plugins(&statuses) {
            tracing::error!(error = %e, "cannot publish the plugin status");
        }
    }

    /// Records a load result as an Event, in the background (a slow API server must not
    /// hold up loading).
    fn record(&self, severity: Severity, reason: &'static str, message: String) {
        let Some((client, target)) = self.report.clone() else { return };
        tokio::spawn(async move {
            if let Err(e) = record_event(&client, "reload", &target, severity, reason, &message).await {
                tracing::warn!(object = %target.object, error = %e, reason, "cannot record the plugin load Event");
            }
        });
    }

    fn count(&self, result: &str) {
        self.metrics.reloads.get_or_create(&ReloadLabels { result: result.into() }).inc();
    }
}

/// Warns about subscriptions naming namespaces kreflex does not watch: the plugin loads,
/// but no event comes from there until `--watch-namespace` includes them.
fn warn_unwatched(lp: &LoadedPlugin, scope: &WatchScope) {
    for s in &lp.plugin.info().subscriptions {
        let missing = scope.unwatched(&s.namespaces);
        if !missing.is_empty() {
            tracing::warn!(plugin = lp.name(), gvk = %s.gvk, namespaces = ?missing, watched = %scope,
                "subscription names namespaces kreflex does not watch (--watch-namespace); no events come from them");
        }
    }
}
