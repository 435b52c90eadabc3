//! One informer: a kube-runtime `watcher` over one kind (list, then watch from the list's
//! resourceVersion with bookmarks; on `410 Gone` or a dropped connection it relists with
//! backoff), feeding the shared [`Cache`] and turning what it sees into
//! [`InformerEvent`]s with the previous version of each object.

use super::cache::{Cache, CachedObject};
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
    pub cache: Cache,
    pub events: mpsc::Sender<InformerEvent>,
    pub synced: watch::Sender<bool>,
    pub resync: Option<Duration>,
    pub cancel: CancellationToken,
    pub metrics: crate::ops::Metrics,
}

impl InformerTask {
    /// Runs until cancelled. The watcher retries forever with backoff, so the stream only
    /// ends when kreflex stops.
    pub(crate) async fn run(self) {
        let api = self.resource.api(&self.client, None);
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut resync = self.resync.map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut relisting: Option<HashSet<(Option<String>, String)>> = None;
        let gvk_label = self.gvk.to_string();
        // The watcher retries on its own: one WARN per failure episode, INFO when it heals.
        let mut failing = crate::telemetry::RetryEpisode::default();
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
                    if let Some(Ok(_)) = &next
                        && let Some(retries) = failing.succeeded()
                    {
                        tracing::info!(gvk = %self.gvk, retries, "watch recovered");
                    }
                    match next {
                        None => {
                            tracing::error!(gvk = %self.gvk, "watch stream ended unexpectedly; the informer stops");
                            return;
                        }
                        Some(Err(e)) => {
                            self.metrics.watch_errors.get_or_create(&crate::ops::GvkLabel { gvk: gvk_label.clone() }).inc();
                            if failing.failed() {
                                tracing::warn!(gvk = %self.gvk, error = %e, "watch failed; retrying with backoff");
                            } else {
                                tracing::debug!(gvk = %self.gvk, error = %e, retries = failing.failures(), "watch still failing");
                            }
                        }
                        Some(Ok(Event::Init)) => relisting = Some(HashSet::new()),
                        Some(Ok(Event::InitApply(o))) => {
                            if let Some(obj) = self.prune(o) {
                                if let Some(seen) = relisting.as_mut() {
                                    seen.insert(obj.owned_key());
                                }
                                if !self.applied(obj).await { return; }
                            }
                        }
                        Some(Ok(Event::InitDone)) => {
                            // Objects that vanished while we were not watching are deleted now.
                            let seen = relisting.take().unwrap_or_default();
                            for key in self.cache.keys(&self.gvk) {
                                if !seen.contains(&key)
                                    && let Some(last) = self.cache.delete(&self.gvk, key.0.as_deref(), &key.1)
                                    && !self.send(EventKind::Deleted, last, None).await
                                {
                                    return;
                                }
                            }
                            self.synced.send_replace(true);
                            tracing::debug!(gvk = %self.gvk, objects = self.cache.len(&self.gvk), "informer synced");
                        }
                        Some(Ok(Event::Apply(o))) => {
                            if let Some(obj) = self.prune(o) && !self.applied(obj).await { return; }
                        }
                        Some(Ok(Event::Delete(o))) => {
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
