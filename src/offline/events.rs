//! Reading events for `kreflex test`: one event, a JSON stream of events, or the exact
//! output of `kubectl get <res> -w --output-watch-events -o json` (pretty-printed objects
//! one after another, or one per line).

use super::OfflineError;
use crate::model::{EventKind, ObjectRef};
use serde_json::Value;
use std::collections::HashMap;

/// One event to deliver, with the previous version of the object when known.
#[derive(Debug, Clone, PartialEq)]
pub struct InputEvent {
    /// Kind of event.
    pub kind: EventKind,
    /// The object.
    pub object: Value,
    /// The previous version seen earlier in the stream (or given explicitly).
    pub old_object: Option<Value>,
}

/// Parses every JSON document in `text`. Accepted documents:
/// - a kubectl watch event `{"type": "ADDED|MODIFIED|DELETED", "object": {...}}`
///   (`BOOKMARK` is skipped; `ERROR` is an error);
/// - an explicit event `{"kind": "added|modified|deleted|resync|finalizing", "object": {...},
///   "oldObject": {...}}`;
/// - a bare object (delivered as `added`) or a `List` of objects.
///
/// Within the stream, `old_object` of a modified/deleted event is the previous version of
/// the same object, exactly as the engine would deliver it.
pub fn parse_events(text: &str) -> Result<Vec<InputEvent>, OfflineError> {
    let mut out = Vec::new();
    let mut last: HashMap<ObjectRef, Value> = HashMap::new();
    let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    for (i, doc) in stream.enumerate() {
        let doc = doc.map_err(|source| OfflineError::Json { index: i, source })?;
        for (kind, object, explicit_old) in classify(doc).map_err(|reason| OfflineError::Event { index: i, reason })? {
            let key = ObjectRef::of(&object);
            let previous = key.as_ref().and_then(|k| last.get(k).cloned());
            let old_object = explicit_old.or(match kind {
                EventKind::Added => None,
                _ => previous,
            });
            if let Some(k) = key {
                if kind == EventKind::Deleted {
                    last.remove(&k);
                } else {
                    last.insert(k, object.clone());
                }
            }
            out.push(InputEvent { kind, object, old_object });
        }
    }
    if out.is_empty() {
        return Err(OfflineError::NoEvents);
    }
    Ok(out)
}

type Parsed = (EventKind, Value, Option<Value>);

fn classify(doc: Value) -> Result<Vec<Parsed>, String> {
    let Value::Object(mut map) = doc else {
        return Err("expected a JSON object".into());
    };
    if let Some(object) = map.remove("object") {
        if let Some(t) = map.get("type").and_then(Value::as_str) {
            let kind = match t {
                "ADDED" => EventKind::Added,
                "MODIFIED" => EventKind::Modified,
                "DELETED" => EventKind::Deleted,
                "BOOKMARK" => return Ok(Vec::new()),
                "ERROR" => return Err(format!("the watch reported an error: {object}")),
                other => return Err(format!("unknown watch event type {other:?}")),
            };
            return Ok(vec![(kind, object, None)]);
        }
        let kind = match map.get("kind").and_then(Value::as_str) {
            Some(k) => serde_json::from_value(Value::String(k.to_owned()))
                .map_err(|_| format!("unknown event kind {k:?} (added, modified, deleted, resync, finalizing)"))?,
            None => EventKind::Added,
        };
        return Ok(vec![(kind, object, map.remove("oldObject"))]);
    }
    if map.get("kind").and_then(Value::as_str) == Some("List") {
        let items = match map.remove("items") {
            Some(Value::Array(items)) => items,
            _ => return Err("a List without items".into()),
        };
        return Ok(items.into_iter().map(|o| (EventKind::Added, o, None)).collect());
    }
    if map.contains_key("apiVersion") && map.contains_key("metadata") {
        return Ok(vec![(EventKind::Added, Value::Object(map), None)]);
    }
    Err("neither a watch event ({\"type\",\"object\"}), an event ({\"kind\",\"object\"}) nor a Kubernetes object"
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = r#"{
    "type": "ADDED",
    "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "1"}}
}
{"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": "2"}}}
{"type":"MODIFIED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"ns","resourceVersion":"3"}}}
{"type":"DELETED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"ns","resourceVersion":"4"}}}
"#;

    #[test]
    fn reads_a_kubectl_watch_stream_and_tracks_old_objects() {
        let evs = parse_events(STREAM).expect("stream parses");
        let kinds: Vec<_> = evs.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Added, EventKind::Modified, EventKind::Deleted]);
        assert!(evs[0].old_object.is_none());
        let rv = |v: &Option<Value>| v.as_ref().and_then(|o| o.pointer("/metadata/resourceVersion").cloned());
        assert_eq!(rv(&evs[1].old_object), Some(Value::from("1")));
        assert_eq!(rv(&evs[2].old_object), Some(Value::from("3")));
    }

    #[test]
    fn reads_explicit_events_bare_objects_and_lists() {
        let explicit = r#"{"kind":"finalizing","object":{"apiVersion":"v1","kind":"X","metadata":{"name":"a"}}}"#;
        assert_eq!(parse_events(explicit).expect("explicit")[0].kind, EventKind::Finalizing);
        let bare = r#"{"apiVersion":"v1","kind":"X","metadata":{"name":"a"}}"#;
        assert_eq!(parse_events(bare).expect("bare")[0].kind, EventKind::Added);
        let list = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"X","metadata":{"name":"a"}},{"apiVersion":"v1","kind":"X","metadata":{"name":"b"}}]}"#;
        assert_eq!(parse_events(list).expect("list").len(), 2);
    }

    #[test]
    fn malformed_input_is_a_clear_error() {
        assert!(parse_events("{\"type\":\"ADDED\"").expect_err("truncated").to_string().contains("document #0"));
        assert!(parse_events("[1,2]").is_err());
        assert!(
            parse_events(r#"{"kind":"exploded","object":{}}"#).expect_err("bad kind").to_string().contains("exploded")
        );
        assert!(parse_events("").is_err());
    }
}
