//! Versions of one stored kind. Events are stored once, as core `v1` Events, and served
//! also as `events.k8s.io/v1` Events, with the field mapping of kube-apiserver's
//! conversion (`pkg/apis/events/v1/conversion.go`): `regarding` is `involvedObject`,
//! `note` is `message`, `reportingController` is `reportingComponent`, and the
//! `deprecated*` fields are the core ones. In: an object as a client sent it (to the
//! store) or as stored (to a client); out: the same object in the other form. The store
//! converts at its public boundary; everything inside it sees the stored form.

use super::resources::ResourceDef;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// `(core v1 field, events.k8s.io/v1 field)`, the fields whose names differ.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Whether `def` is served from another resource's storage (events.k8s.io Events).
pub fn is_view(def: &ResourceDef) -> bool {
    def.group == "events.k8s.io" && def.plural == "events"
}

/// The `(group, version, plural)` a view is stored as.
pub fn storage_of(def: &ResourceDef) -> Option<(&'static str, &'static str, &'static str)> {
    is_view(def).then_some(("", "v1", "events"))
}

/// A body sent to `def`, in the stored form.
pub fn to_storage(def: &ResourceDef, mut obj: Value) -> Value {
    if !is_view(def) {
        return obj;
    }
    rename(&mut obj, |(core, events)| (events, core));
    if let Some(m) = obj.as_object_mut()
        && m.contains_key("apiVersion")
    {
        m.insert("apiVersion".into(), Value::String("v1".into()));
    }
    obj
}

/// A stored object as `def` serves it (with its apiVersion).
pub fn served<'a>(def: &ResourceDef, obj: &'a Value) -> Cow<'a, Value> {
    let api_version = def.api_version();
    if !is_view(def) && obj.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str()) {
        return Cow::Borrowed(obj);
    }
    let mut o = obj.clone();
    if is_view(def) {
        rename(&mut o, |pair| pair);
    }
    o["apiVersion"] = Value::String(api_version);
    Cow::Owned(o)
}

/// Renames top-level Event fields `from → to`, as `pick` orders each pair.
fn rename(obj: &mut Value, pick: impl Fn((&'static str, &'static str)) -> (&'static str, &'static str)) {
    let Some(m) = obj.as_object_mut() else { return };
    let mut moved = Map::new();
    for &pair in EVENT_FIELDS {
        let (from, to) = pick(pair);
        if let Some(v) = m.remove(from) {
            moved.insert(to.to_owned(), v);
        }
    }
    m.extend(moved);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::builtins;
    use serde_json::json;

    fn events_def() -> ResourceDef {
        builtins().into_iter().find(|d| d.group == "events.k8s.io").expect("served")
    }

    #[test]
    fn events_k8s_io_fields_map_to_core_fields_and_back() {
        let def = events_def();
        let sent = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Database", "name": "legacy"}, "note": "disk full", "reason": "Failed",
            "reportingController": "kreflex", "deprecatedCount": 2, "type": "Warning"});
        let stored = to_storage(&def, sent.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "legacy");
        assert_eq!(
            (stored["message"].as_str(), stored["reportingComponent"].as_str()),
            (Some("disk full"), Some("kreflex"))
        );
        assert_eq!(stored["count"], 2);
        assert!(stored.get("note").is_none() && stored.get("regarding").is_none());
        assert_eq!(*served(&def, &stored), sent);
    }
}
