//! How events for one (plugin, object) merge while the plugin is busy or the event waits:
//! the plugin gets one event with the latest object, and `old` stays the version it last
//! saw.

use crate::model::EventKind;
use crate::watch::CachedObject;
use std::sync::Arc;

/// Items that can be merged with a newer item for the same key.
pub trait Coalesce {
    /// Merges `newer` into `self` (the older pending item).
    fn coalesce(self, newer: Self) -> Self;
}

/// An event waiting to be delivered to one plugin.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// What to deliver.
    pub kind: EventKind,
    /// The latest object.
    pub object: Arc<CachedObject>,
    /// The version the plugin last saw (for `modified`).
    pub old: Option<Arc<CachedObject>>,
}

impl Coalesce for PendingEvent {
    /// Rules, older ⊕ newer:
    /// - the latest object always wins; `old` stays the older item's `old` (what the
    ///   plugin last saw);
    /// - anything ⊕ `deleted` → `deleted` with the last known object;
    /// - `deleted` ⊕ `added` (re-created) → `added` of the new object, no `old` (a new
    ///   incarnation; if the uid is the same it was a relist, and `modified` is delivered);
    /// - `added` ⊕ `modified`/`resync` → `added` (the plugin never saw the object);
    /// - `finalizing` is sticky: a terminating object stays `finalizing`, unless deleted;
    /// - ⊕ `finalizing` → `finalizing`;
    /// - `resync` ⊕ `modified` → `modified`, `modified` ⊕ `resync` → `modified`.
    fn coalesce(self, newer: Self) -> Self {
        use EventKind::*;
        let kind = match (self.kind, newer.kind) {
            (_, Deleted) => Deleted,
            (Deleted, Added) => {
                let same = self.object.uid().is_some() && self.object.uid() == newer.object.uid();
                if same { Modified } else { Added }
            }
            (Deleted, other) => other,
            (Added, Modified | Resync | Added) => Added,
            (Finalizing, _) | (_, Finalizing) => Finalizing,
            (Modified, _) | (_, Modified) => Modified,
            (_, k) => k,
        };
        let old = match kind {
            Added => None,
            _ if self.kind == Deleted => Some(self.object.clone()),
            _ => self.old,
        };
        PendingEvent { kind, object: newer.object, old }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(rv: &str, uid: &str) -> Arc<CachedObject> {
        Arc::new(
            CachedObject::from_value(
                json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "resourceVersion": rv, "uid": uid}}),
            )
            .expect("named"),
        )
    }

    fn ev(kind: EventKind, rv: &str, old: Option<&str>) -> PendingEvent {
        PendingEvent { kind, object: obj(rv, "u1"), old: old.map(|o| obj(o, "u1")) }
    }

    fn rv(o: &Option<Arc<CachedObject>>) -> Option<&str> {
        o.as_ref().and_then(|o| o.resource_version())
    }

    #[test]
    fn latest_object_wins_and_old_is_what_the_plugin_last_saw() {
        let e = ev(EventKind::Modified, "2", Some("1")).coalesce(ev(EventKind::Modified, "3", Some("2")));
        assert_eq!((e.kind, e.object.resource_version(), rv(&e.old)), (EventKind::Modified, Some("3"), Some("1")));
    }

    #[test]
    fn added_then_modified_is_still_added() {
        let e = ev(EventKind::Added, "1", None).coalesce(ev(EventKind::Modified, "2", Some("1")));
        assert_eq!((e.kind, rv(&e.old)), (EventKind::Added, None));
    }

    #[test]
    fn deletion_wins_with_the_last_known_object() {
        let e = ev(EventKind::Modified, "2", Some("1")).coalesce(ev(EventKind::Deleted, "3", None));
        assert_eq!((e.kind, e.object.resource_version()), (EventKind::Deleted, Some("3")));
    }

    #[test]
    fn recreation_is_a_new_incarnation_unless_the_uid_is_the_same() {
        let deleted = ev(EventKind::Deleted, "3", None);
        let new = PendingEvent { kind: EventKind::Added, object: obj("4", "u2"), old: None };
        assert_eq!(deleted.clone().coalesce(new).kind, EventKind::Added);
        let relisted = ev(EventKind::Added, "4", None);
        let e = deleted.coalesce(relisted);
        assert_eq!((e.kind, rv(&e.old)), (EventKind::Modified, Some("3")));
    }

    #[test]
    fn finalizing_is_sticky_and_resync_yields_to_modified() {
        assert_eq!(
            ev(EventKind::Finalizing, "2", None).coalesce(ev(EventKind::Modified, "3", None)).kind,
            EventKind::Finalizing
        );
        assert_eq!(
            ev(EventKind::Modified, "2", None).coalesce(ev(EventKind::Finalizing, "3", None)).kind,
            EventKind::Finalizing
        );
        assert_eq!(
            ev(EventKind::Resync, "2", None).coalesce(ev(EventKind::Modified, "3", None)).kind,
            EventKind::Modified
        );
        assert_eq!(
            ev(EventKind::Modified, "2", None).coalesce(ev(EventKind::Resync, "3", None)).kind,
            EventKind::Modified
        );
        assert_eq!(ev(EventKind::Resync, "2", None).coalesce(ev(EventKind::Resync, "3", None)).kind, EventKind::Resync);
    }
}
