//! One informer: the kube-runtime `watcher`s of one kind (each lists, then watches from the
//! list's resourceVersion with bookmarks; on `410 Gone` or a dropped connection it relists
//! with backoff), one cluster-wide or one per watched namespace, merged into one task that
//! feeds the kind's part of the shared [`Cache`] and turns what it sees into
//! [`InformerEvent`]s with the previous version of each object. A relist reconciles only
//! the relisting watch's namespace; the kind is synced when all its watches have listed.

use super::cache::{Cache, CachedObject, Key};
use super::resources::Resource;
use crate::model::{EventKind, Gvk};
use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// A change the informer saw, with the object's previous cached version.
#[derive(Debug, Clone)]
pub struct InformerEvent {
    /// Kind of object.
    pub gvk: Arc<Gvk>,
    /// `Added`, `Modified`, `Deleted` or `Resync`.
    pub kind: EventKind,
    /// The object now (for `Deleted`: its last state).
    pub object: Arc<CachedObject>,
    /// The version cached before this change.
    pub old: Option<Arc<CachedObject>>,
}

/// What an informer task needs.
pub(crate) struct InformerTask {
    pub client: kube::Client,
    pub gvk: Arc<Gvk>,
    pub resource: Arc<Resource>,
    /// One watch per entry: the namespace it is limited to, or `None` for the cluster.
    pub namespaces: Vec<Option<String>>,
    pub cache: Cache,
    pub events: mpsc::Sender<InformerEvent>,
    pub synced: watch::Sender<bool>,
    pub resync: Option<Duration>,
    pub cancel: CancellationToken,
    pub metrics: crate::ops::Metrics,
}

/// The state of one of the kind's watches.
#[derive(Default)]
struct WatchState {
    /// Keys seen by the (re)list in progress, if one is.
    relisting: Option<HashSet<Key>>,
    /// Whether its first list completed.
    synced: bool,
    /// The watcher retries on its own: one WARN per failure episode, INFO when it heals.
    failing: crate::telemetry::RetryEpisode,
}

impl InformerTask {
    /// Runs until cancelled. Every watcher retries forever with backoff, so the merged
    /// stream only ends when kreflex stops.
    pub(crate) async fn run(self) {
        let watches = self.namespaces.iter().enumerate().map(|(i, ns)| {
            let api = self.resource.api(&self.client, ns.as_deref());
            watcher::watcher(api, watcher::Config::default()).default_backoff().map(move |e| (i, e)).boxed()
        });
        let mut stream = futures::stream::select_all(watches);
        let mut state: Vec<WatchState> = self.namespaces.iter().map(|_| WatchState::default()).collect();
        let mut resync = self.resync.map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let gvk_label = self.gvk.to_string();
        loop {
            let tick = async {
                match resync.as_mut() {
                    Some(i) => i.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tick => {
                    for o in self.cache.all(&self.gvk) {
                        if !self.send(EventKind::Resync, o, None).await { return; }
                    }
                }
                next = stream.next() => {
                    let Some((i, next)) = next else {
                        tracing::error!(gvk = %self.gvk, "watch streams ended unexpectedly; the informer stops");
                        return;
                    };
                    let ns = self.namespaces[i].as_deref();
                    let watch = &mut state[i];
                    if next.is_ok()
                        && let Some(retries) = watch.failing.succeeded()
                    {
                        tracing::info!(gvk = %self.gvk, namespace = ns, retries, "watch recovered");
                    }
                    match next {
                        Err(e) => {
                            self.metrics.watch_errors.get_or_create(&crate::ops::GvkLabel { gvk: gvk_label.clone() }).inc();
                            if watch.failing.failed() {
                                tracing::warn!(gvk = %self.gvk, namespace = ns, error = %e, "watch failed; retrying with backoff");
                            } else {
                                tracing::debug!(gvk = %self.gvk, namespace = ns, error = %e, retries = watch.failing.failures(), "watch still failing");
                            }
                        }
                        Ok(Event::Init) => watch.relisting = Some(HashSet::new()),
                        Ok(Event::InitApply(o)) => {
                            if let Some(obj) = self.prune(o) {
                                if let Some(seen) = watch.relisting.as_mut() {
                                    seen.insert(obj.owned_key());
                                }
                                if !self.applied(obj).await { return; }
                            }
                        }
                        Ok(Event::InitDone) => {
                            // Objects that vanished while this watch was down are deleted now:
                            // only its own namespace's, the other watches are not relisting.
                            let seen = watch.relisting.take().unwrap_or_default();
                            watch.synced = true;
                            for key in self.cache.keys(&self.gvk, ns) {
                                if !seen.contains(&key)
                                    && let Some(last) = self.cache.delete(&self.gvk, key.0.as_deref(), &key.1)
                                    && !self.send(EventKind::Deleted, last, None).await
                                {
                                    return;
                                }
                            }
                            if state.iter().all(|w| w.synced) && !*self.synced.borrow() {
                                self.synced.send_replace(true);
                                tracing::debug!(gvk = %self.gvk, objects = self.cache.len(&self.gvk), watches = state.len(), "informer synced");
                            }
                        }
                        Ok(Event::Apply(o)) => {
                            if let Some(obj) = self.prune(o) && !self.applied(obj).await { return; }
                        }
                        Ok(Event::Delete(o)) => {
                            if let Some(obj) = self.prune(o) {
                                let old = self.cache.delete(&self.gvk, obj.namespace(), obj.name());
                                if !self.send(EventKind::Deleted, obj, old).await { return; }
                            }
                        }
                    }
                }
            }
        }
    }

    fn prune(&self, o: DynamicObject) -> Option<Arc<CachedObject>> {
        let mut v = serde_json::to_value(&o).ok()?;
        // Watch events always carry apiVersion/kind, but be robust to a server that omits them.
        if let Some(map) = v.as_object_mut() {
            map.entry("apiVersion").or_insert_with(|| self.gvk.api_version().into());
            map.entry("kind").or_insert_with(|| self.gvk.kind.clone().into());
        }
        CachedObject::from_value(v).map(Arc::new)
    }

    /// Caches an added/modified object and emits the event (nothing if the relist brought
    /// back exactly the version already cached).
    async fn applied(&self, obj: Arc<CachedObject>) -> bool {
        let old = self.cache.apply(&self.gvk, obj.clone());
        match &old {
            Some(prev) if prev.resource_version().is_some() && prev.resource_version() == obj.resource_version() => {
                true
            }
            Some(_) => self.send(EventKind::Modified, obj, old).await,
            None => self.send(EventKind::Added, obj, None).await,
        }
    }

    /// Hands an event to the router; false when kreflex is shutting down.
    async fn send(&self, kind: EventKind, object: Arc<CachedObject>, old: Option<Arc<CachedObject>>) -> bool {
        self.metrics
            .events
            .get_or_create(&crate::ops::EventLabels { gvk: self.gvk.to_string(), kind: kind.to_string() })
            .inc();
        let ev = InformerEvent { gvk: self.gvk.clone(), kind, object, old };
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            sent = self.events.send(ev) => sent.is_ok(),
        }
    }
}
