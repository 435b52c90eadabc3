//! Routing: which plugins get an informer event, as what kind: the subscription rules (kind,
//! namespaces, label and field selectors, `generation-changed-only`, finalizers) as a pure
//! function over compiled subscriptions.

use crate::model::{EventKind, Gvk, Subscription};
use crate::selector::{FieldSelector, Selector, SelectorError};
use crate::watch::{CachedObject, InformerEvent};

/// A subscription with its selectors parsed once at load.
#[derive(Debug, Clone)]
pub struct Route {
    /// Kind subscribed to.
    pub gvk: Gvk,
    namespaces: Vec<String>,
    labels: Option<Selector>,
    fields: Option<FieldSelector>,
    generation_changed_only: bool,
    /// Whether kreflex manages the plugin's finalizer on these objects.
    pub finalizer: bool,
}

impl Route {
    /// Compiles a subscription; fails on a malformed selector.
    pub fn compile(s: &Subscription) -> Result<Self, SelectorError> {
        Ok(Self {
            gvk: s.gvk.clone(),
            namespaces: s.namespaces.clone(),
            labels: s.label_selector.as_deref().map(Selector::parse).transpose()?,
            fields: s.field_selector.as_deref().map(FieldSelector::parse).transpose()?,
            generation_changed_only: s.generation_changed_only,
            finalizer: s.finalizer,
        })
    }

    /// Whether the object is in scope (namespace and selectors), ignoring the event kind.
    pub fn selects(&self, o: &CachedObject) -> bool {
        if !self.namespaces.is_empty() && !o.namespace().is_some_and(|ns| self.namespaces.iter().any(|n| n == ns)) {
            return false;
        }
        if self.labels.is_none() && self.fields.is_none() {
            return true;
        }
        let v = o.value();
        self.labels.as_ref().is_none_or(|s| s.matches_object(&v))
            && self.fields.as_ref().is_none_or(|s| s.matches_object(&v))
    }
}

/// What to do for one plugin with one informer event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Not for this plugin.
    Skip,
    /// Queue an event of this kind.
    Deliver(EventKind),
}

/// Decides the delivery of `ev` through `route`, with `finalizer` the plugin's finalizer
/// name (`kreflex.io/<plugin>`).
pub fn route(route: &Route, ev: &InformerEvent, finalizer: &str) -> Delivery {
    if *ev.gvk != route.gvk || !route.selects(&ev.object) {
        return Delivery::Skip;
    }
    let o = &ev.object;
    if route.finalizer && ev.kind != EventKind::Deleted && o.deleting() {
        // Terminating: our turn to clean up if our finalizer is still there; otherwise
        // there is nothing for us until the object is gone.
        return if o.has_finalizer(finalizer) { Delivery::Deliver(EventKind::Finalizing) } else { Delivery::Skip };
    }
    // An object still missing our finalizer is delivered even without a generation change,
    // so that the finalizer gets added.
    let finalizer_in_place = !route.finalizer || o.has_finalizer(finalizer);
    if ev.kind == EventKind::Modified
        && route.generation_changed_only
        && ev.old.as_ref().is_some_and(|old| old.generation() == o.generation())
        && finalizer_in_place
    {
        return Delivery::Skip;
    }
    Delivery::Deliver(ev.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn sub(f: impl FnOnce(&mut Subscription)) -> Route {
        let mut s = Subscription {
            gvk: Gvk::new("stable.example.com", "v1", "Database"),
            namespaces: vec![],
            label_selector: None,
            field_selector: None,
            generation_changed_only: false,
            finalizer: false,
        };
        f(&mut s);
        Route::compile(&s).expect("compiles")
    }

    fn obj(ns: &str, generation: i64, extra: serde_json::Value) -> Arc<CachedObject> {
        let mut v = json!({"apiVersion": "stable.example.com/v1", "kind": "Database",
            "metadata": {"name": "a", "namespace": ns, "generation": generation, "labels": {"team": "shop"}}});
        if let (Some(m), Some(e)) = (v["metadata"].as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        Arc::new(CachedObject::from_value(v).expect("named"))
    }

    fn ev(kind: EventKind, object: Arc<CachedObject>, old: Option<Arc<CachedObject>>) -> InformerEvent {
        InformerEvent { gvk: Arc::new(Gvk::new("stable.example.com", "v1", "Database")), kind, object, old }
    }

    const FIN: &str = "kreflex.io/p";

    #[test]
    fn kind_namespace_and_selectors_scope_delivery() {
        let e = ev(EventKind::Added, obj("prod", 1, json!({})), None);
        assert_eq!(route(&sub(|_| {}), &e, FIN), Delivery::Deliver(EventKind::Added));
        assert_eq!(route(&sub(|s| s.namespaces = vec!["dev".into()]), &e, FIN), Delivery::Skip);
        assert_eq!(
            route(&sub(|s| s.label_selector = Some("team=shop".into())), &e, FIN),
            Delivery::Deliver(EventKind::Added)
        );
        assert_eq!(route(&sub(|s| s.label_selector = Some("team=data".into())), &e, FIN), Delivery::Skip);
        assert_eq!(route(&sub(|s| s.field_selector = Some("metadata.name=b".into())), &e, FIN), Delivery::Skip);
        assert_eq!(route(&sub(|s| s.gvk.kind = "Cache".into()), &e, FIN), Delivery::Skip);
    }

    #[test]
    fn generation_filter_drops_status_only_updates() {
        let r = sub(|s| s.generation_changed_only = true);
        let status_only = ev(EventKind::Modified, obj("a", 1, json!({})), Some(obj("a", 1, json!({}))));
        assert_eq!(route(&r, &status_only, FIN), Delivery::Skip);
        let spec_change = ev(EventKind::Modified, obj("a", 2, json!({})), Some(obj("a", 1, json!({}))));
        assert_eq!(route(&r, &spec_change, FIN), Delivery::Deliver(EventKind::Modified));
        assert_eq!(
            route(&r, &ev(EventKind::Resync, obj("a", 1, json!({})), None), FIN),
            Delivery::Deliver(EventKind::Resync)
        );
    }

    #[test]
    fn terminating_objects_with_our_finalizer_are_finalizing() {
        let r = sub(|s| {
            s.finalizer = true;
            s.generation_changed_only = true;
        });
        let deleting = obj("a", 1, json!({"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": [FIN]}));
        assert_eq!(
            route(&r, &ev(EventKind::Modified, deleting.clone(), Some(deleting)), FIN),
            Delivery::Deliver(EventKind::Finalizing)
        );
        let released = obj("a", 1, json!({"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["other"]}));
        assert_eq!(route(&r, &ev(EventKind::Modified, released, None), FIN), Delivery::Skip);
        // An object missing our finalizer is delivered even without a generation change, so
        // that the finalizer gets added.
        let bare = obj("a", 1, json!({}));
        assert_eq!(
            route(&r, &ev(EventKind::Modified, bare.clone(), Some(bare)), FIN),
            Delivery::Deliver(EventKind::Modified)
        );
    }
}
