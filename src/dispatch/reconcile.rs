//! One event for one plugin, start to end: the object's latest state, the plugin's
//! finalizer added where it manages one, the sandboxed call, validation of the actions,
//! the all-or-nothing permission check, the apply, and the finalizer removed after a
//! successful `finalizing` call.
//!
//! A queued event in, a [`ReconcileOk`] or a typed [`ReconcileError`] out, with metrics and
//! audit lines on the way. What follows a failure is not decided here but by
//! [`error_policy`](super::policy::error_policy).

use super::{Dispatcher, QueueKey};
use crate::actions::{self, ActionError, EventContext};
use crate::apply::{Applied, ApplyError, EventTarget, audit};
use crate::model::{EventKind, Gvk, ObjectRef};
use crate::ops::PluginLabel;
use crate::plugins::LoadedPlugin;
use crate::queue::PendingEvent;
use crate::rbac::{self, Denied, ResourceScope};
use crate::wasm::{CallContext, CallError, RawEvent};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A reconcile that went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileOk {
    /// The plugin asked to be called again after this delay.
    pub requeue_after: Option<Duration>,
}

/// Why a reconcile stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The plugin's finalizer could not be added (nothing was called).
    #[error("plugin {plugin}: cannot add its finalizer to {object}: {source}")]
    AddFinalizer {
        /// Plugin name.
        plugin: String,
        /// The event's object.
        object: ObjectRef,
        /// The failed request.
        #[source]
        source: kube::Error,
    },
    /// The plugin finalized the object but its finalizer could not be removed.
    #[error("plugin {plugin}: cannot remove its finalizer from {object}: {source}")]
    RemoveFinalizer {
        /// Plugin name.
        plugin: String,
        /// The event's object.
        object: ObjectRef,
        /// The failed request.
        #[source]
        source: kube::Error,
    },
    /// The call did not produce a result (trap, timeout, out of memory, unavailable).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The plugin returned its own error.
    #[error("plugin {plugin}: {event} event for {object}: {message}")]
    Plugin {
        /// Plugin name.
        plugin: String,
        /// Event kind.
        event: EventKind,
        /// The event's object.
        object: ObjectRef,
        /// The plugin's message.
        message: String,
        /// Whether the plugin wants the event retried.
        retryable: bool,
    },
    /// An action is malformed; nothing was applied.
    #[error(transparent)]
    InvalidAction(#[from] ActionError),
    /// An action is not permitted; nothing was applied.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The plugin has no applier (not set up by the engine); nothing was applied.
    #[error("plugin {plugin} has no applier; actions dropped")]
    NoApplier {
        /// Plugin name.
        plugin: String,
    },
    /// An action failed at the API server; the ones before it were applied.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// This replica stopped owning the object (leadership or its shard moved to another
    /// replica, which replays it); nothing more was written.
    #[error("plugin {plugin}: {object} is no longer this replica's (leadership or shard moved); left to its new owner")]
    NotOwner {
        /// Plugin name.
        plugin: String,
        /// The event's object.
        object: ObjectRef,
    },
}

impl Dispatcher {
    /// Reconciles `item` for `lp`. `item.object` is replaced by the cached latest state of
    /// the same object first, so that a retry or requeue sees what changed since (e.g. the
    /// plugin's own status patch).
    pub(super) async fn reconcile(
        &self,
        lp: &LoadedPlugin,
        key: &QueueKey,
        item: &mut PendingEvent,
    ) -> Result<ReconcileOk, ReconcileError> {
        let plugin = lp.name();
        if item.kind != EventKind::Deleted
            && let Some(latest) = self.cache.get_object(&key.gvk, key.namespace.as_deref(), &key.name)
            && latest.uid() == item.object.uid()
        {
            item.object = latest;
        }
        let target = target_of(&key.gvk, item);
        if !self.owned(key) {
            return Err(ReconcileError::NotOwner { plugin: plugin.to_owned(), object: target.object });
        }
        let manages_finalizer = lp.routes.iter().find(|r| r.gvk == *key.gvk).is_some_and(|r| r.finalizer);
        if manages_finalizer
            && matches!(item.kind, EventKind::Added | EventKind::Modified | EventKind::Resync)
            && !item.object.deleting()
            && !item.object.has_finalizer(&lp.finalizer)
            && let Err(source) = self.finalizers.add(&key.gvk, &item.object, &lp.finalizer).await
        {
            return Err(ReconcileError::AddFinalizer { plugin: plugin.to_owned(), object: target.object, source });
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
        let label = PluginLabel { plugin: plugin.to_owned() };
        self.metrics.call_duration.get_or_create(&label).observe(started.elapsed().as_secs_f64());
        let dropped = lp.log_dropped_since_counted();
        if dropped > 0 {
            self.metrics.log_dropped.get_or_create(&label).inc_by(dropped);
        }
        let raw_actions = match result {
            Err(e) => {
                self.metrics.plugin_error(plugin, e.label());
                return Err(e.into());
            }
            Ok(Err(pe)) => {
                self.metrics.plugin_error(plugin, "plugin_error");
                return Err(ReconcileError::Plugin {
                    plugin: plugin.to_owned(),
                    event: item.kind,
                    object: target.object,
                    message: pe.message,
                    retryable: pe.retryable,
                });
            }
            Ok(Ok(raw)) => raw,
        };
        let ectx = EventContext { plugin, event: item.kind, object: &target.object };
        let actions = actions::validate(raw_actions, &ectx, &self.config.limits).inspect_err(|_| {
            self.metrics.plugin_error(plugin, "invalid_action");
        })?;

        // All or nothing: one denied action stops the whole list before any request.
        for a in &actions {
            let resolved = match rbac::kind_to_resolve(a) {
                Some(gvk) => self.resources.resolve(&gvk).await.ok(),
                None => None,
            };
            let scope = resolved.as_ref().map(|r| ResourceScope { plural: &r.api.plural, namespaced: r.namespaced });
            if let Err(denied) =
                rbac::check_action(lp.plugin.info(), a, &target.object, scope, &|g: &Gvk| self.resources.plural_of(g))
            {
                self.metrics.action(plugin, audit::action_label(a), "denied");
                audit::denied(plugin, &denied.request, &denied);
                return Err(denied.into());
            }
        }
        let Some(applier) = &lp.applier else {
            return Err(ReconcileError::NoApplier { plugin: plugin.to_owned() });
        };
        let mut requeue_after = None;
        for a in &actions {
            if !self.owned(key) {
                return Err(ReconcileError::NotOwner { plugin: plugin.to_owned(), object: target.object });
            }
            match applier.apply(a, &target).await {
                Ok(Applied::Requeue(d)) => requeue_after = Some(d),
                Ok(applied) => {
                    self.metrics.action(plugin, audit::action_label(a), "applied");
                    let outcome = if applied == Applied::Done { "applied" } else { "already-done" };
                    audit::action(plugin, a, &target, outcome, None);
                }
                Err(e) => {
                    audit::action(plugin, a, &target, e.decision.label(), e.code);
                    self.metrics.action(plugin, e.action, e.decision.label());
                    return Err(e.into());
                }
            }
        }
        if item.kind == EventKind::Finalizing
            && let Err(source) = self.finalizers.remove(&key.gvk, &item.object, &lp.finalizer).await
        {
            return Err(ReconcileError::RemoveFinalizer { plugin: plugin.to_owned(), object: target.object, source });
        }
        Ok(ReconcileOk { requeue_after })
    }

    /// Whether this replica still owns the object (leader election and shards): checked
    /// before the first write and before each action.
    fn owned(&self, key: &QueueKey) -> bool {
        self.ownership.owns(key.namespace.as_deref(), &key.name)
    }
}

/// The event's object as the apply stage and Events name it.
pub(super) fn target_of(gvk: &Gvk, item: &PendingEvent) -> EventTarget {
    EventTarget {
        object: item.object.object_ref(gvk),
        uid: item.object.uid().map(str::to_owned),
        resource_version: item.object.resource_version().map(str::to_owned),
    }
}
