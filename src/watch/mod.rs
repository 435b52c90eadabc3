//! Shared informers: one informer and one cache per kind, shared by every plugin that
//! subscribes to it; the informer has one watch across the cluster, or one per namespace
//! of the [`WatchScope`] (`--watch-namespace`). First stage of the data path: API server →
//! [`InformerEvent`]s for the router, and a [`Cache`] everyone reads.

mod cache;
mod informer;
mod resources;
mod scope;

pub use cache::{Cache, CachedObject};
pub use informer::InformerEvent;
pub use resources::{Resource, Resources};
pub use scope::{InvalidNamespace, WATCH_NAMESPACE_FLAG, WatchScope, parse_namespace};

use crate::model::Gvk;
use informer::InformerTask;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

struct Running {
    cancel: CancellationToken,
    synced: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The set of running informers. Informers start when a plugin subscribes to a kind and
/// stop (all their watches) when no plugin does any more. They watch the namespaces of
/// the cache's [`Cache::scope`].
pub struct Informers {
    client: kube::Client,
    resources: Resources,
    cache: Cache,
    events: mpsc::Sender<InformerEvent>,
    resync: Option<Duration>,
    cancel: CancellationToken,
    metrics: crate::ops::Metrics,
    running: HashMap<Gvk, Running>,
}

impl Informers {
    /// Informers reading through `client`, sending events to `events`.
    pub fn new(
        client: kube::Client,
        resources: Resources,
        cache: Cache,
        events: mpsc::Sender<InformerEvent>,
        resync: Option<Duration>,
        cancel: CancellationToken,
        metrics: crate::ops::Metrics,
    ) -> Self {
        Self { client, resources, cache, events, resync, cancel, metrics, running: HashMap::new() }
    }

    /// Makes the running set exactly `wanted`: starts what is missing (resolving each kind
    /// through discovery), stops what nobody needs. A kind that cannot be resolved is
    /// reported and skipped; the others still start.
    pub async fn reconcile(&mut self, wanted: &BTreeSet<Gvk>) -> Vec<(Gvk, kube::Error)> {
        let stale: Vec<Gvk> = self.running.keys().filter(|g| !wanted.contains(*g)).cloned().collect();
        for gvk in stale {
            if let Some(r) = self.running.remove(&gvk) {
                r.cancel.cancel();
                self.cache.forget(&gvk);
                tracing::info!(%gvk, "informer stopped: no plugin subscribes any more");
            }
        }
        let mut failed = Vec::new();
        for gvk in wanted {
            if self.running.contains_key(gvk) {
                continue;
            }
            let resource = match self.resources.resolve(gvk).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(%gvk, error = %e, "cannot resolve subscribed kind; its plugins get no events until it exists");
                    failed.push((gvk.clone(), e));
                    continue;
                }
            };
            let cancel = self.cancel.child_token();
            let (synced_tx, synced) = watch::channel(false);
            let namespaces = self.cache.scope().watches(resource.namespaced);
            if !resource.namespaced && *self.cache.scope() != WatchScope::Cluster {
                tracing::info!(%gvk, "kind is cluster-scoped: watched across the cluster, whatever --watch-namespace says");
            }
            let watches = namespaces.len();
            let task = InformerTask {
                client: self.client.clone(),
                gvk: Arc::new(gvk.clone()),
                resource,
                namespaces,
                cache: self.cache.clone(),
                events: self.events.clone(),
                synced: synced_tx,
                resync: self.resync,
                cancel: cancel.clone(),
                metrics: self.metrics.clone(),
            };
            let handle = tokio::spawn(task.run());
            tracing::info!(%gvk, watches, scope = %self.cache.scope(), "informer started");
            self.running.insert(gvk.clone(), Running { cancel, synced, task: handle });
        }
        failed
    }

    /// True when every running informer has completed its initial list.
    pub fn all_synced(&self) -> bool {
        self.running.values().all(|r| *r.synced.borrow())
    }

    /// Waits until every running informer has synced (or kreflex stops).
    pub async fn wait_synced(&self) {
        for r in self.running.values() {
            let mut rx = r.synced.clone();
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// The namespaces watched.
    pub fn scope(&self) -> &WatchScope {
        self.cache.scope()
    }

    /// Kinds being watched.
    pub fn kinds(&self) -> Vec<Gvk> {
        self.running.keys().cloned().collect()
    }

    /// Informers whose task ended although nobody stopped them (a fatal condition).
    pub fn dead(&self) -> Vec<Gvk> {
        self.running
            .iter()
            .filter(|(_, r)| r.task.is_finished() && !r.cancel.is_cancelled())
            .map(|(g, _)| g.clone())
            .collect()
    }
}
