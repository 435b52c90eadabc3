//! Offline plugin runs (`kreflex test`): events from a file or a recorded
//! `kubectl get -w --output-watch-events -o json` stream go through a plugin with the same
//! routing rules the engine applies, and the validated actions come out as JSON. Nothing
//! touches a cluster; host reads come from a directory of objects.

mod events;
mod objects;

pub use events::{InputEvent, parse_events};
pub use objects::{DirObjects, parse_documents};

use crate::actions::{self, Action, EventContext, Limits};
use crate::model::{EventKind, ObjectRef, PluginInfo};
use crate::wasm::{CallContext, Plugin, RawEvent};
use serde::Serialize;

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

/// Why an event is not delivered to a plugin, or `None` if it is. The same rules the
/// router applies to live events: kind, namespaces, selectors, `generation-changed-only`.
pub fn skip_reason(info: &PluginInfo, event: &InputEvent) -> Option<String> {
    let Some(r) = ObjectRef::of(&event.object) else {
        return Some("the object has no apiVersion, kind or metadata.name".into());
    };
    let gvk = r.gvk();
    let Some(sub) = info.subscriptions.iter().find(|s| s.gvk == gvk) else {
        return Some(format!("plugin {} does not subscribe to {gvk}", info.name));
    };
    if !sub.namespaces.is_empty() && !r.namespace.as_ref().is_some_and(|ns| sub.namespaces.contains(ns)) {
        return Some(format!("namespace {:?} is not subscribed", r.namespace.as_deref().unwrap_or("")));
    }
    if let Some(sel) = &sub.label_selector {
        match crate::selector::Selector::parse(sel) {
            Ok(s) if !s.matches_object(&event.object) => {
                return Some(format!("labels do not match {sel:?}"));
            }
            Err(e) => return Some(e.to_string()),
            Ok(_) => {}
        }
    }
    if let Some(sel) = &sub.field_selector {
        match crate::selector::FieldSelector::parse(sel) {
            Ok(s) if !s.matches_object(&event.object) => {
                return Some(format!("fields do not match {sel:?}"));
            }
            Err(e) => return Some(e.to_string()),
            Ok(_) => {}
        }
    }
    if sub.generation_changed_only && event.kind == EventKind::Modified {
        let generation = |o: &serde_json::Value| o.pointer("/metadata/generation").and_then(|g| g.as_i64());
        if let Some(old) = &event.old_object
            && generation(old) == generation(&event.object)
        {
            return Some("metadata.generation did not change (generation-changed-only)".into());
        }
    }
    None
}

/// Runs every event through the plugin, in order. With `filter` the routing rules of
/// [`skip_reason`] apply; without it every event is delivered.
pub fn run(plugin: &Plugin, events: &[InputEvent], ctx: &CallContext, filter: bool, limits: &Limits) -> Vec<Report> {
    events
        .iter()
        .enumerate()
        .map(|(index, ev)| {
            let object_ref = ObjectRef::of(&ev.object);
            let label = object_ref.as_ref().map_or_else(|| "<unnamed object>".to_owned(), ToString::to_string);
            let mut report =
                Report { index, kind: ev.kind, object: label.clone(), skipped: None, actions: None, error: None };
            if filter && let Some(reason) = skip_reason(plugin.info(), ev) {
                report.skipped = Some(reason);
                return report;
            }
            let raw = RawEvent {
                kind: ev.kind,
                object: ev.object.to_string(),
                old_object: ev.old_object.as_ref().map(ToString::to_string),
            };
            match plugin.call_blocking(&raw, ctx.clone()) {
                Err(e) => report.error = Some(e.to_string()),
                Ok(Err(pe)) => {
                    report.error = Some(format!(
                        "plugin {}: {} event for {label}: returned an error{}: {}",
                        plugin.name(),
                        ev.kind,
                        if pe.retryable { " (retryable)" } else { "" },
                        pe.message
                    ))
                }
                Ok(Ok(raw_actions)) => match &object_ref {
                    None => {
                        report.error = Some(format!(
                            "plugin {}: {} event: the object has no apiVersion, kind or metadata.name",
                            plugin.name(),
                            ev.kind
                        ))
                    }
                    Some(obj) => {
                        let ectx = EventContext { plugin: plugin.name(), event: ev.kind, object: obj };
                        match actions::validate(raw_actions, &ectx, limits) {
                            Ok(a) => report.actions = Some(a),
                            Err(e) => report.error = Some(e.to_string()),
                        }
                    }
                },
            }
            report
        })
        .collect()
}

/// The read policy of a plugin outside a cluster: what its subscriptions and declared
/// permissions allow ([`crate::rbac::check`]), with resource plurals guessed from kinds the
/// way Kubernetes does when no discovery is at hand.
pub fn declared_reads(info: &PluginInfo) -> std::sync::Arc<dyn crate::wasm::AccessPolicy> {
    crate::rbac::ReadPolicy::shared(info.clone(), |g| Some(crate::model::guess_plural(&g.kind)))
}
