//! Offline plugin runs (`kreflex test`): events from a file or a recorded
//! `kubectl get -w --output-watch-events -o json` stream go through a plugin with the
//! engine's own router, and the validated actions come out as JSON, after the engine's
//! permission check (a denied action is an error, as `kreflex run` would deny it). Nothing
//! touches a cluster; host reads come from a directory of objects, scoped as the engine
//! scopes them.

mod error;
mod events;
mod objects;

pub use error::OfflineError;
pub use events::{InputEvent, parse_events};
pub use objects::{DirObjects, parse_documents};

use crate::actions::{self, Action, EventContext, Limits};
use crate::model::{EventKind, Gvk, ObjectRef, PluginInfo};
use crate::route::{Delivery, Route, finalizer_name, route};
use crate::wasm::{CallContext, Plugin, RawEvent};
use crate::watch::{CachedObject, InformerEvent};
use serde::Serialize;
use std::sync::Arc;

/// What happened to one input event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Position of the event in the input (0-based).
    pub index: usize,
    /// Event kind delivered (after routing).
    pub kind: EventKind,
    /// `Kind namespace/name`.
    pub object: String,
    /// Why the event was not delivered, if it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The validated actions, if the plugin ran and succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<Action>>,
    /// The failure (plugin error, trap, invalid action), naming plugin, event and object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How the engine's router ([`crate::route`]) treats `event` for the plugin: the kind it
/// delivers (`finalizing` for a terminating object that carries the plugin's finalizer), or
/// why it skips it. Every subscription of the plugin is tried, as the engine does.
pub fn routed_kind(info: &PluginInfo, event: &InputEvent) -> Result<EventKind, String> {
    let cached = |v: &serde_json::Value| CachedObject::from_value(v.clone()).map(Arc::new);
    let (Some(_), Some(object)) = (ObjectRef::of(&event.object), cached(&event.object)) else {
        return Err("the object has no apiVersion, kind or metadata.name".into());
    };
    let gvk = Arc::new(Gvk::of(&event.object));
    let ev =
        InformerEvent { gvk: gvk.clone(), kind: event.kind, object, old: event.old_object.as_ref().and_then(cached) };
    let finalizer = finalizer_name(&info.name);
    let mut why = None;
    for s in info.subscriptions.iter().filter(|s| s.gvk == *gvk) {
        let r = Route::compile(s).map_err(|e| format!("plugin {}: subscription {}: {e}", info.name, s.gvk))?;
        match route(&r, &ev, &finalizer) {
            Delivery::Deliver(kind) => return Ok(kind),
            Delivery::Skip(skip) => why = why.or(Some(skip)),
        }
    }
    Err(why.map_or_else(|| format!("plugin {} does not subscribe to {gvk}", info.name), |w| w.to_string()))
}

/// Runs every event through the plugin, in order. With `filter` the engine's routing
/// applies ([`routed_kind`]); without it every event is delivered as it is.
pub fn run(plugin: &Plugin, events: &[InputEvent], ctx: &CallContext, filter: bool, limits: &Limits) -> Vec<Report> {
    events
        .iter()
        .enumerate()
        .map(|(index, ev)| {
            let object_ref = ObjectRef::of(&ev.object);
            let label = object_ref.as_ref().map_or_else(|| "<unnamed object>".to_owned(), ToString::to_string);
            let mut report =
                Report { index, kind: ev.kind, object: label.clone(), skipped: None, actions: None, error: None };
            if filter {
                match routed_kind(plugin.info(), ev) {
                    Ok(kind) => report.kind = kind,
                    Err(reason) => {
                        report.skipped = Some(reason);
                        return report;
                    }
                }
            }
            let raw = RawEvent {
                kind: report.kind,
                object: ev.object.to_string(),
                old_object: ev.old_object.as_ref().map(ToString::to_string),
            };
            match plugin.call_blocking(&raw, ctx.clone()) {
                Err(e) => report.error = Some(e.to_string()),
                Ok(Err(pe)) => {
                    report.error = Some(format!(
                        "plugin {}: {} event for {label}: returned an error{}: {}",
                        plugin.name(),
                        report.kind,
                        if pe.retryable { " (retryable)" } else { "" },
                        pe.message
                    ))
                }
                Ok(Ok(raw_actions)) => match &object_ref {
                    None => {
                        report.error = Some(format!(
                            "plugin {}: {} event: the object has no apiVersion, kind or metadata.name",
                            plugin.name(),
                            report.kind
                        ))
                    }
                    Some(obj) => {
                        let ectx = EventContext { plugin: plugin.name(), event: report.kind, object: obj };
                        match actions::validate(raw_actions, &ectx, limits) {
                            Ok(a) => match a.iter().try_for_each(|a| permitted(plugin.info(), a, obj)) {
                                Ok(()) => report.actions = Some(a),
                                Err(denied) => report.error = Some(denied.to_string()),
                            },
                            Err(e) => report.error = Some(e.to_string()),
                        }
                    }
                },
            }
            report
        })
        .collect()
}

/// Built-in kinds the API server serves cluster-scoped (what discovery would say).
const CLUSTER_SCOPED: [&str; 20] = [
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "APIService",
    "CertificateSigningRequest",
    "IngressClass",
    "RuntimeClass",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "FlowSchema",
];

/// The engine's all-or-nothing permission check of one action ([`crate::rbac::check_action`])
/// without discovery: plurals guessed from kinds, and a kind namespaced unless it is the
/// event's own cluster-scoped kind or a built-in cluster-scoped one. `kreflex test`
/// reports what `kreflex run` would deny.
fn permitted(info: &PluginInfo, action: &Action, on: &ObjectRef) -> Result<(), crate::rbac::Denied> {
    let guess = |g: &Gvk| Some(crate::model::guess_plural(&g.kind));
    let resolved = crate::rbac::kind_to_resolve(action).map(|gvk| {
        let namespaced =
            if gvk == on.gvk() { on.namespace.is_some() } else { !CLUSTER_SCOPED.contains(&gvk.kind.as_str()) };
        (crate::model::guess_plural(&gvk.kind), namespaced)
    });
    let scope =
        resolved.as_ref().map(|(plural, namespaced)| crate::rbac::ResourceScope { plural, namespaced: *namespaced });
    crate::rbac::check_action(info, action, on, scope, &guess).map(drop)
}

/// The read policy of a plugin outside a cluster: what its subscriptions and declared
/// permissions allow ([`crate::rbac::check`]), with resource plurals guessed from kinds the
/// way Kubernetes does when no discovery is at hand.
pub fn declared_reads(info: &PluginInfo) -> std::sync::Arc<dyn crate::wasm::AccessPolicy> {
    crate::rbac::ReadPolicy::shared(info.clone(), |g| Some(crate::model::guess_plural(&g.kind)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Subscription;
    use serde_json::json;

    fn info(subs: Vec<Subscription>) -> PluginInfo {
        PluginInfo { name: "p".into(), version: "1".into(), subscriptions: subs, permissions: vec![] }
    }

    fn sub(f: impl FnOnce(&mut Subscription)) -> Subscription {
        let mut s = Subscription::to(Gvk::new("stable.example.com", "v1", "Database"));
        f(&mut s);
        s
    }

    fn event(kind: EventKind, ns: &str, meta: serde_json::Value) -> InputEvent {
        let mut object = json!({"apiVersion": "stable.example.com/v1", "kind": "Database",
            "metadata": {"name": "a", "namespace": ns, "generation": 1}});
        if let (Some(m), Some(extra)) = (object["metadata"].as_object_mut(), meta.as_object()) {
            m.extend(extra.clone());
        }
        InputEvent { kind, old_object: Some(object.clone()), object }
    }

    #[test]
    fn every_subscription_to_the_kind_is_tried_as_the_engine_does() {
        let p = info(vec![sub(|s| s.namespaces = vec!["a".into()]), sub(|s| s.namespaces = vec!["b".into()])]);
        assert_eq!(routed_kind(&p, &event(EventKind::Modified, "b", json!({}))), Ok(EventKind::Modified));
        let skipped = routed_kind(&p, &event(EventKind::Modified, "c", json!({}))).expect_err("no namespace matches");
        assert!(skipped.contains("namespace"), "{skipped}");
    }

    #[test]
    fn finalizer_rules_apply_offline_too() {
        let p = info(vec![sub(|s| {
            s.finalizer = true;
            s.generation_changed_only = true;
        })]);
        let deleting = json!({"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["kreflex.io/p"]});
        assert_eq!(routed_kind(&p, &event(EventKind::Modified, "a", deleting)), Ok(EventKind::Finalizing));
        // Not yet carrying the finalizer: delivered although the generation did not change,
        // so that the engine adds it.
        assert_eq!(routed_kind(&p, &event(EventKind::Modified, "a", json!({}))), Ok(EventKind::Modified));
        let held = json!({"finalizers": ["kreflex.io/p"]});
        let skipped = routed_kind(&p, &event(EventKind::Modified, "a", held)).expect_err("generation unchanged");
        assert!(skipped.contains("generation"), "{skipped}");
    }

    #[test]
    fn other_kinds_and_nameless_objects_are_skipped_with_a_reason() {
        let p = info(vec![sub(|_| {})]);
        let mut other = event(EventKind::Added, "a", json!({}));
        other.object["kind"] = json!("Cache");
        assert!(routed_kind(&p, &other).expect_err("other kind").contains("does not subscribe"));
        let nameless = InputEvent { kind: EventKind::Added, object: json!({"kind": "Database"}), old_object: None };
        assert!(routed_kind(&p, &nameless).is_err());
    }
}
