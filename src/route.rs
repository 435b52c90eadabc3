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
        self.out_of_scope(o).is_none()
    }

    /// Why the object is out of scope (namespace, labels, fields), if it is.
    fn out_of_scope(&self, o: &CachedObject) -> Option<Skip> {
        if !self.namespaces.is_empty() && !o.namespace().is_some_and(|ns| self.namespaces.iter().any(|n| n == ns)) {
            return Some(Skip::Namespace);
        }
        if self.labels.is_none() && self.fields.is_none() {
            return None;
        }
        let v = o.value();
        if self.labels.as_ref().is_some_and(|s| !s.matches_object(&v)) {
            return Some(Skip::Labels);
        }
        if self.fields.as_ref().is_some_and(|s| !s.matches_object(&v)) {
            return Some(Skip::Fields);
        }
        None
    }
}

/// The finalizer kreflex manages for a plugin with `finalizer: true`.
pub fn finalizer_name(plugin: &str) -> String {
    format!("kreflex.io/{plugin}")
}

/// What to do for one plugin with one informer event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Not for this plugin, and why.
    Skip(Skip),
    /// Queue an event of this kind.
    Deliver(EventKind),
}

/// Why an event is not delivered through a route (`kreflex test` prints it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// The route is for another kind.
    #[error("the subscription is for another kind")]
    OtherKind,
    /// The object's namespace is not subscribed.
    #[error("the object's namespace is not subscribed")]
    Namespace,
    /// The label selector does not match.
    #[error("the labels do not match the subscription's label selector")]
    Labels,
    /// The field selector does not match.
    #[error("the fields do not match the subscription's field selector")]
    Fields,
    /// The object is terminating and no longer carries the plugin's finalizer.
    #[error("the object is being deleted and no longer carries the plugin's finalizer")]
    NotOurFinalizer,
    /// `generation-changed-only` and `metadata.generation` did not change.
    #[error("metadata.generation did not change (generation-changed-only)")]
    GenerationUnchanged,
}

/// Decides the delivery of `ev` through `route`, with `finalizer` the plugin's finalizer
/// name (`kreflex.io/<plugin>`).
pub fn route(route: &Route, ev: &InformerEvent, finalizer: &str) -> Delivery {
    if *ev.gvk != route.gvk {
        return Delivery::Skip(Skip::OtherKind);
    }
    if let Some(why) = route.out_of_scope(&ev.object) {
        return Delivery::Skip(why);
    }
    let o = &ev.object;
    if route.finalizer && ev.kind != EventKind::Deleted && o.deleting() {
        // Terminating: our turn to clean up if our finalizer is still there; otherwise
        // there is nothing for us until the object is gone.
        return if o.has_finalizer(finalizer) {
            Delivery::Deliver(EventKind::Finalizing)
        } else {
            Delivery::Skip(Skip::NotOurFinalizer)
        };
    }
    // An object still missing our finalizer is delivered even without a generation change,
    // so that the finalizer gets added.
    let finalizer_in_place = !route.finalizer || o.has_finalizer(finalizer);
    if ev.kind == EventKind::Modified
        && route.generation_changed_only
        && ev.old.as_ref().is_some_and(|old| old.generation() == o.generation())
        && finalizer_in_place
    {
        return Delivery::Skip(Skip::GenerationUnchanged);
    }
    Delivery::Deliver(ev.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn sub(f: impl FnOnce(&mut Subscription)) -> Route {
        let mut s = Subscription::to(Gvk::new("stable.example.com", "v1", "Database"));
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
    fn finalizer_names_carry_the_plugin_name() {
        assert_eq!(finalizer_name("p"), FIN);
    }

    #[test]
    fn kind_namespace_and_selectors_scope_delivery() {
        let e = ev(EventKind::Added, obj("prod", 1, json!({})), None);
        assert_eq!(route(&sub(|_| {}), &e, FIN), Delivery::Deliver(EventKind::Added));
        assert_eq!(route(&sub(|s| s.namespaces = vec!["dev".into()]), &e, FIN), Delivery::Skip(Skip::Namespace));
        assert_eq!(
            route(&sub(|s| s.label_selector = Some("team=shop".into())), &e, FIN),
            Delivery::Deliver(EventKind::Added)
        );
        assert_eq!(route(&sub(|s| s.label_selector = Some("team=data".into())), &e, FIN), Delivery::Skip(Skip::Labels));
        assert_eq!(
            route(&sub(|s| s.field_selector = Some("metadata.name=b".into())), &e, FIN),
            Delivery::Skip(Skip::Fields)
        );
        assert_eq!(route(&sub(|s| s.gvk.kind = "Cache".into()), &e, FIN), Delivery::Skip(Skip::OtherKind));
    }

    #[test]
    fn generation_filter_drops_status_only_updates() {
        let r = sub(|s| s.generation_changed_only = true);
        let status_only = ev(EventKind::Modified, obj("a", 1, json!({})), Some(obj("a", 1, json!({}))));
        assert_eq!(route(&r, &status_only, FIN), Delivery::Skip(Skip::GenerationUnchanged));
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
        assert_eq!(route(&r, &ev(EventKind::Modified, released, None), FIN), Delivery::Skip(Skip::NotOurFinalizer));
        // An object missing our finalizer is delivered even without a generation change, so
        // that the finalizer gets added.
        let bare = obj("a", 1, json!({}));
        assert_eq!(
            route(&r, &ev(EventKind::Modified, bare.clone(), Some(bare)), FIN),
            Delivery::Deliver(EventKind::Modified)
        );
    }
}
