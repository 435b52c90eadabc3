//! The router task and the worker pool.

use crate::actions::{self, Action, EventContext, Limits, Severity};
use crate::apply::classify::Decision;
use crate::apply::{Applied, ApplyError, EventTarget};
use crate::model::{EventKind, Gvk, ObjectRef};
use crate::ops::{Metrics, PluginLabel};
use crate::plugins::{LoadedPlugin, SharedRegistry};
use crate::queue::{Outcome, PendingEvent, WorkQueue};
use crate::rbac;
use crate::route::{Delivery, Route, route};
use crate::wasm::{CallContext, CallError, RawEvent};
use crate::watch::{Cache, CachedObject, InformerEvent, Resources};
use std::sync::Arc;
use std::time::{Duration, Instant};
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
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            workers: 16,
            queue_capacity: 100_000,
            finalizer_timeout: Duration::from_secs(300),
            limits: Limits::default(),
            backoff: crate::retry::Backoff { min: Duration::from_millis(50), ..Default::default() },
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
    metrics: Metrics,
    config: Arc<DispatcherConfig>,
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
        Self {
            queue: WorkQueue::new(config.queue_capacity, config.backoff),
            registry,
            cache,
            resources,
            own_client,
            metrics,
            config: Arc::new(config),
        }
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
        for object in self.cache.all(&route.gvk) {
            if !route.selects(&object) {
                continue;
            }
            let key = QueueKey {
                plugin: Arc::from(lp.name()),
                gvk: Arc::new(route.gvk.clone()),
                namespace: object.namespace().map(str::to_owned),
                name: object.name().to_owned(),
            };
            if !self.queue.push(key, PendingEvent { kind, object, old: None }).await {
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
        while let Some((key, item)) = self.queue.next().await {
            let registry = self.registry.load();
            let outcome = match registry.get(&key.plugin) {
                // The plugin was unloaded while the event waited.
                None => Outcome::Completed,
                Some(lp) => {
                    let span = tracing::info_span!("event", plugin = %key.plugin, gvk = %key.gvk, ns = key.namespace.as_deref().unwrap_or(""), name = %key.name, kind = %item.kind, rv = item.object.resource_version().unwrap_or(""));
                    let _ = &span;
                    tracing::Instrument::instrument(self.handle(lp.clone(), &key, item), span).await
                }
            };
            self.queue.done(&key, outcome);
            self.metrics.queue_depth.set(self.queue.len() as i64);
        }
    }

    /// One event for one plugin, start to end.
    async fn handle(&self, lp: Arc<LoadedPlugin>, key: &QueueKey, mut item: PendingEvent) -> Outcome<PendingEvent> {
        let plugin = lp.name().to_owned();
        // Deliver the latest state: a requeued or retried event may carry an object that
        // has changed since (e.g. by the plugin's own status patch).
        if item.kind != EventKind::Deleted
            && let Some(latest) = self.cache.get_object(&key.gvk, key.namespace.as_deref(), &key.name)
            && latest.uid() == item.object.uid()
        {
            item.object = latest;
        }
        let target = EventTarget {
            object: item.object.object_ref(&key.gvk),
            uid: item.object.uid().map(str::to_owned),
            resource_version: item.object.resource_version().map(str::to_owned),
        };
        let route = lp.routes.iter().find(|r| r.gvk == *key.gvk);
        let manages_finalizer = route.is_some_and(|r| r.finalizer);

        if manages_finalizer
            && matches!(item.kind, EventKind::Added | EventKind::Modified | EventKind::Resync)
            && !item.object.deleting()
            && !item.object.has_finalizer(&lp.finalizer)
            && let Err(e) = self.add_finalizer(key, &item.object, &lp.finalizer).await
        {
            return self.after_api_error(&plugin, &target, item, e, "AddFinalizerFailed").await;
        }

        let ctx = CallContext {
            source: Arc::new(self.cache.clone()),
            policy: rbac::ReadPolicy::shared(lp.plugin.info().clone(), {
                let resources = self.resources.clone();
                move |g: &Gvk| resources.plural_of(g)
            }),
            config: lp.config.clone(),
        };
        let raw = RawEvent {
            kind: item.kind,
            object: item.object.json().to_owned(),
            old_object: item.old.as_ref().map(|o| o.json().to_owned()),
        };
        let started = Instant::now();
        let result = lp.plugin.call(raw, ctx).await;
        self.metrics
            .call_duration
            .get_or_create(&PluginLabel { plugin: plugin.clone() })
            .observe(started.elapsed().as_secs_f64());

        let raw_actions = match result {
            Err(e) => {
                self.metrics.plugin_error(&plugin, e.label());
                tracing::error!(error = %e, "plugin call failed");
                if matches!(e, CallError::Unavailable { .. }) {
                    return Outcome::Retry(item);
                }
                self.warn(&plugin, &target, "PluginFailed", &e.to_string()).await;
                return self.failed(&lp, &target, item, &e.to_string()).await;
            }
            Ok(Err(pe)) => {
                self.metrics.plugin_error(&plugin, "plugin_error");
                let msg = format!("plugin {plugin}: {} event for {}: {}", item.kind, target.object, pe.message);
                tracing::warn!(retryable = pe.retryable, "{msg}");
                if pe.retryable {
                    return self.failed(&lp, &target, item, &msg).await;
                }
                self.warn(&plugin, &target, "PluginError", &msg).await;
                return Outcome::Completed;
            }
            Ok(Ok(raw)) => raw,
        };
        let ectx = EventContext { plugin: &plugin, event: item.kind, object: &target.object };
        let actions = match actions::validate(raw_actions, &ectx, &self.config.limits) {
            Ok(a) => a,
            Err(e) => {
                self.metrics.plugin_error(&plugin, "invalid_action");
                tracing::error!(error = %e, "invalid action; nothing applied");
                self.warn(&plugin, &target, "InvalidAction", &e.to_string()).await;
                return Outcome::Completed;
            }
        };
        // All or nothing: one denied action stops the whole list before any request.
        for a in &actions {
            if let Some(req) = self.request_for(a, &target).await
                && let Err(denied) = rbac::check(lp.plugin.info(), &req, &|g: &Gvk| self.resources.plural_of(g))
            {
                self.metrics.action(&plugin, action_label(a), "denied");
                tracing::warn!(target: "kreflex::audit", plugin = %plugin, verb = %req.verb, resource = %req.resource,
                    subresource = req.subresource.as_deref().unwrap_or(""), namespace = req.namespace.as_deref().unwrap_or(""),
                    name = req.name.as_deref().unwrap_or(""), outcome = "denied", reason = %denied.reason, "action denied");
                self.warn(&plugin, &target, "ActionDenied", &denied.to_string()).await;
                return Outcome::Completed;
            }
        }
        let Some(applier) = &lp.applier else {
            tracing::error!("plugin has no applier; actions dropped");
            return Outcome::Completed;
        };
        let mut requeue = None;
        for a in &actions {
            match applier.apply(a, &target).await {
                Ok(Applied::Requeue(d)) => requeue = Some(d),
                Ok(applied) => {
                    self.metrics.action(&plugin, action_label(a), "applied");
                    audit(&plugin, a, &target, if applied == Applied::Done { "applied" } else { "already-done" }, None);
                }
                Err(e) => {
                    audit(&plugin, a, &target, e.decision.label(), e.code);
                    return self.after_apply_error(&lp, &target, item, e).await;
                }
            }
        }
        if item.kind == EventKind::Finalizing
            && let Err(e) = self.remove_finalizer(key, &item.object, &lp.finalizer).await
        {
            return self.after_api_error(&plugin, &target, item, e, "RemoveFinalizerFailed").await;
        }
        match requeue {
            Some(d) if item.kind != EventKind::Deleted => Outcome::RequeueAfter(
                d,
                PendingEvent { kind: EventKind::Resync, object: item.object.clone(), old: None },
            ),
            _ => Outcome::Completed,
        }
    }

    /// The request an action will make, for the permission check.
    async fn request_for(&self, a: &Action, on: &EventTarget) -> Option<rbac::Request> {
        let (verb, target, sub) = match a {
            Action::Patch { target, subresource, .. } => ("patch", target.clone(), subresource.clone()),
            Action::Delete { target } => ("delete", target.clone(), None),
            Action::Create { object } => {
                let r = ObjectRef::of(object).unwrap_or(ObjectRef {
                    api_version: object.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
                    kind: object.get("kind").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
                    namespace: object.pointer("/metadata/namespace").and_then(|v| v.as_str()).map(str::to_owned),
                    name: String::new(),
                });
                ("create", r, None)
            }
            Action::EmitEvent { .. } => {
                return Some(rbac::Request {
                    verb: "create".into(),
                    group: "events.k8s.io".into(),
                    resource: "events".into(),
                    subresource: None,
                    namespace: on.object.namespace.clone().or_else(|| Some("default".into())),
                    name: None,
                });
            }
            Action::RequeueAfter { .. } => return None,
        };
        let gvk = target.gvk();
        let resource = match self.resources.resolve(&gvk).await {
            Ok(r) => r,
            // Unknown kind: check against the guessed plural; the apply fails with 404 if
            // it is allowed at all.
            Err(_) => {
                return Some(rbac::Request {
                    verb: verb.into(),
                    group: gvk.group.clone(),
                    resource: crate::model::guess_plural(&gvk.kind),
                    subresource: sub,
                    namespace: target.namespace.clone(),
                    name: Some(target.name).filter(|n| !n.is_empty()),
                });
            }
        };
        let namespace =
            if resource.namespaced { target.namespace.clone().or_else(|| on.object.namespace.clone()) } else { None };
        Some(rbac::Request {
            verb: verb.into(),
            group: gvk.group.clone(),
            resource: resource.api.plural.clone(),
            subresource: sub,
            namespace,
            name: Some(target.name).filter(|n| !n.is_empty()),
        })
    }

    async fn after_apply_error(
        &self,
        lp: &LoadedPlugin,
        target: &EventTarget,
        item: PendingEvent,
        e: ApplyError,
    ) -> Outcome<PendingEvent> {
        let plugin = lp.name();
        self.metrics.action(plugin, e.action, e.decision.label());
        match &e.decision {
            Decision::Conflict => {
                // The object changed under the plugin: re-run it on the fresh object.
                tracing::info!(error = %e, "conflict; re-running the plugin on the fresh object");
                let fresh = self.fetch(&target.object).await.unwrap_or(item.object.clone());
                Outcome::Retry(PendingEvent { kind: item.kind, object: fresh, old: item.old })
            }
            Decision::Retry { .. } => {
                tracing::warn!(error = %e, "transient failure persisted; the event is retried with backoff");
                Outcome::Retry(item)
            }
            Decision::AlreadyExists | Decision::GiveUp { .. } => {
                tracing::error!(error = %e, "action rejected; not retried");
                self.warn(plugin, target, "ActionFailed", &e.to_string()).await;
                Outcome::Completed
            }
        }
    }

    async fn after_api_error(
        &self,
        plugin: &str,
        target: &EventTarget,
        item: PendingEvent,
        e: kube::Error,
        reason: &str,
    ) -> Outcome<PendingEvent> {
        match crate::apply::classify::classify(&e) {
            Decision::Retry { .. } | Decision::Conflict => Outcome::Retry(item),
            _ => {
                let msg = format!("plugin {plugin}: {reason} on {}: {e}", target.object);
                tracing::error!("{msg}");
                self.warn(plugin, target, reason, &msg).await;
                Outcome::Completed
            }
        }
    }

    /// A failed call or plugin error: retry with backoff, except that a terminating object
    /// is released once its finalizer has been held for longer than the timeout.
    async fn failed(
        &self,
        lp: &LoadedPlugin,
        target: &EventTarget,
        item: PendingEvent,
        msg: &str,
    ) -> Outcome<PendingEvent> {
        if item.kind == EventKind::Finalizing
            && deletion_age(&item.object).is_some_and(|age| age > self.config.finalizer_timeout)
        {
            let key = QueueKey {
                plugin: Arc::from(lp.name()),
                gvk: Arc::new(target.object.gvk()),
                namespace: target.object.namespace.clone(),
                name: target.object.name.clone(),
            };
            let note = format!(
                "plugin {} did not finalize {} within {:?}; removing its finalizer anyway. Last error: {msg}",
                lp.name(),
                target.object,
                self.config.finalizer_timeout
            );
            tracing::warn!("{note}");
            self.warn(lp.name(), target, "FinalizerTimeout", &note).await;
            if let Err(e) = self.remove_finalizer(&key, &item.object, &lp.finalizer).await {
                tracing::error!(error = %e, "cannot remove the finalizer");
                return Outcome::Retry(item);
            }
            return Outcome::Completed;
        }
        Outcome::Retry(item)
    }

    async fn fetch(&self, r: &ObjectRef) -> Option<Arc<CachedObject>> {
        let res = self.resources.resolve(&r.gvk()).await.ok()?;
        let api: kube::Api<kube::api::DynamicObject> = match (&r.namespace, res.namespaced) {
            (Some(ns), true) => kube::Api::namespaced_with(self.own_client.clone(), ns, &res.api),
            _ => kube::Api::all_with(self.own_client.clone(), &res.api),
        };
        let obj = api.get(&r.name).await.ok()?;
        CachedObject::from_value(serde_json::to_value(obj).ok()?).map(Arc::new)
    }

    async fn add_finalizer(&self, key: &QueueKey, o: &CachedObject, finalizer: &str) -> Result<(), kube::Error> {
        let mut patch =
            vec![serde_json::json!({"op": "test", "path": "/metadata/resourceVersion", "value": o.resource_version()})];
        if o.finalizers().next().is_none() {
            patch.push(serde_json::json!({"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}));
        } else {
            patch.push(serde_json::json!({"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}));
        }
        self.patch_metadata(key, patch).await
    }

    async fn remove_finalizer(&self, key: &QueueKey, o: &CachedObject, finalizer: &str) -> Result<(), kube::Error> {
        // Read the current list: the cached one may be stale.
        let current = self.fetch(&o.object_ref(&key.gvk)).await;
        let Some(current) = current else {
            return Ok(());
        };
        let Some(index) = current.finalizers().position(|f| f == finalizer) else {
            return Ok(());
        };
        let patch = vec![
            serde_json::json!({"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": finalizer}),
            serde_json::json!({"op": "remove", "path": format!("/metadata/finalizers/{index}")}),
        ];
        match self.patch_metadata(key, patch).await {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other,
        }
    }

    async fn patch_metadata(&self, key: &QueueKey, patch: Vec<serde_json::Value>) -> Result<(), kube::Error> {
        let res = self.resources.resolve(&key.gvk).await?;
        let api: kube::Api<kube::api::DynamicObject> = match (&key.namespace, res.namespaced) {
            (Some(ns), true) => kube::Api::namespaced_with(self.own_client.clone(), ns, &res.api),
            _ => kube::Api::all_with(self.own_client.clone(), &res.api),
        };
        let p: json_patch::Patch =
            serde_json::from_value(serde_json::Value::Array(patch)).map_err(kube::Error::SerdeError)?;
        let params = kube::api::PatchParams { field_manager: Some("kreflex".into()), ..Default::default() };
        api.patch(&key.name, &params, &kube::api::Patch::Json::<()>(p)).await.map(|_| ())
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

fn deletion_age(o: &CachedObject) -> Option<Duration> {
    let v = o.value();
    let ts: jiff::Timestamp = v.pointer("/metadata/deletionTimestamp")?.as_str()?.parse().ok()?;
    let age = jiff::Timestamp::now().duration_since(ts);
    Duration::try_from(age).ok()
}

fn action_label(a: &Action) -> &'static str {
    match a {
        Action::Patch { .. } => "patch",
        Action::Create { .. } => "create",
        Action::Delete { .. } => "delete",
        Action::EmitEvent { .. } => "event",
        Action::RequeueAfter { .. } => "requeue",
    }
}

/// One structured line per applied (or failed) action: what a security reviewer greps for.
fn audit(plugin: &str, a: &Action, on: &EventTarget, outcome: &str, code: Option<u16>) {
    let (verb, target, patch_type) = match a {
        Action::Patch { target, subresource, patch_type, .. } => (
            "patch",
            match subresource {
                Some(s) => format!("{target} ({s})"),
                None => target.to_string(),
            },
            format!("{patch_type:?}").to_lowercase(),
        ),
        Action::Create { object } => (
            "create",
            ObjectRef::of(object).map(|r| r.to_string()).unwrap_or_else(|| "object with generateName".into()),
            String::new(),
        ),
        Action::Delete { target } => ("delete", target.to_string(), String::new()),
        Action::EmitEvent { reason, .. } => ("event", format!("{} ({reason})", on.object), String::new()),
        Action::RequeueAfter { .. } => return,
    };
    // `http_status` is the status of a failed request. A successful one is only known to have
    // been a 2xx (the client does not hand the exact code back), and then the field is absent
    // rather than a made-up number.
    tracing::info!(target: "kreflex::audit", plugin, verb, object = %target, patch_type, outcome, http_status = code, "action");
}
