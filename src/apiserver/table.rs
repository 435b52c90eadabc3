//! `meta.k8s.io/v1` Table responses for `kubectl get` (lists, single objects and watch
//! events): NAME, the resource's printer columns, and AGE. As kube-apiserver does it,
//! dates are sent as human-readable ages (`5m`); a custom resource's `date` columns (its
//! implicit Age included, when the CRD declares no columns) keep the type `date`, a
//! built-in kind's Age is a `string`. Built-in kinds with columns of their own take them
//! from `printers`.

use super::printers;
use super::resources::ResourceDef;
use serde_json::{Value, json};
use std::sync::Arc;

/// A Table of `objects` with the list metadata `meta`; `headers` false leaves out the
/// column definitions (watch events after the first).
pub fn table(def: &ResourceDef, objects: &[Arc<Value>], meta: Value, headers: bool) -> Value {
    let event = def.kind == "Event";
    let printer = if def.custom { None } else { printers::columns(&def.kind) };
    let columns: Vec<Value> = match (headers, event, printer) {
        (false, _, _) => Vec::new(),
        (true, true, _) => event_columns(),
        (true, false, Some(printed)) => printed_column_definitions(printed),
        (true, false, None) => column_definitions(def),
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| match (event, printer) {
            (true, _) => event_row(o),
            (false, Some(_)) => printed_row(&def.kind, o),
            (false, None) => row(def, o),
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns, "rows": rows})
}

/// Whether the server adds an Age column after the resource's own columns.
fn implicit_age(def: &ResourceDef) -> bool {
    if def.custom { def.columns.is_empty() } else { !def.columns.iter().any(|c| c.kind == "date") }
}

fn column_definitions(def: &ResourceDef) -> Vec<Value> {
    let mut columns = vec![name_column()];
    for c in &def.columns {
        let kind = if c.kind == "date" && !def.custom { "string" } else { c.kind.as_str() };
        columns.push(json!({"name": c.name, "type": kind, "format": "", "description": "", "priority": 0}));
    }
    if implicit_age(def) {
        let kind = if def.custom { "date" } else { "string" };
        columns.push(json!({"name": "Age", "type": kind, "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
    }
    columns
}

fn name_column() -> Value {
    json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0})
}

fn printed_column_definitions(printed: &[printers::Column]) -> Vec<Value> {
    let mut columns = vec![name_column()];
    columns.extend(
        printed
            .iter()
            .map(|c| json!({"name": c.name, "type": c.kind, "format": "", "description": "", "priority": c.priority})),
    );
    columns
}

/// A row of a kind with a printer in `printers`.
fn printed_row(kind: &str, o: &Value) -> Value {
    let created = o.pointer("/metadata/creationTimestamp").and_then(Value::as_str).map(age);
    let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
    cells.extend(printers::cells(kind, o, created.unwrap_or_else(|| "<unknown>".into())));
    let meta = o.get("metadata").cloned().unwrap_or(json!({}));
    json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
}

fn row(def: &ResourceDef, o: &Value) -> Value {
    let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
    for c in &def.columns {
        cells.push(match (c.kind.as_str(), json_path(o, &c.json_path)) {
            ("date", Some(Value::String(ts))) => Value::String(age(ts)),
            (_, Some(v)) => v.clone(),
            (_, None) => Value::Null,
        });
    }
    if implicit_age(def) {
        let created = o.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null);
        cells.push(match created {
            Value::String(ts) => Value::String(age(&ts)),
            other => other,
        });
    }
    let meta = o.get("metadata").cloned().unwrap_or(json!({}));
    json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
}

/// The columns kube-apiserver's Event printer sends (`kubectl get events`: LAST SEEN,
/// TYPE, REASON, OBJECT, MESSAGE; the rest with `-o wide`).
fn event_columns() -> Vec<Value> {
    [
        ("Last Seen", 0),
        ("Type", 0),
        ("Reason", 0),
        ("Object", 0),
        ("Subobject", 1),
        ("Source", 1),
        ("Message", 0),
        ("First Seen", 1),
        ("Count", 1),
        ("Name", 1),
    ]
    .iter()
    .map(|(name, priority)| json!({"name": name, "type": "string", "format": "", "description": "", "priority": priority}))
    .collect()
}

/// One Event row, from either form of an Event (core v1 or events.k8s.io/v1).
fn event_row(o: &Value) -> Value {
    let field = |core: &str, events: &str| o.pointer(core).or_else(|| o.pointer(events)).filter(|v| !v.is_null());
    let text = |core: &str, events: &str| field(core, events).and_then(Value::as_str).unwrap_or("").to_owned();
    let since = |v: Option<&Value>| v.and_then(Value::as_str).map(age);
    let first = since(field("/firstTimestamp", "/deprecatedFirstTimestamp")).or_else(|| since(o.get("eventTime")));
    let last = since(o.pointer("/series/lastObservedTime"))
        .or_else(|| since(field("/lastTimestamp", "/deprecatedLastTimestamp")))
        .or_else(|| first.clone())
        .unwrap_or_else(|| "<unknown>".into());
    let object = format!(
        "{}/{}",
        text("/involvedObject/kind", "/regarding/kind").to_lowercase(),
        text("/involvedObject/name", "/regarding/name")
    );
    let source = match text("/source/component", "/deprecatedSource/component") {
        s if s.is_empty() => text("/reportingComponent", "/reportingController"),
        s => s,
    };
    let count = field("/count", "/deprecatedCount").or_else(|| o.pointer("/series/count")).cloned().unwrap_or(json!(1));
    let cells = json!([
        last,
        text("/type", "/type"),
        text("/reason", "/reason"),
        object,
        text("/involvedObject/fieldPath", "/regarding/fieldPath"),
        source,
        text("/message", "/note"),
        first.unwrap_or_else(|| "<unknown>".into()),
        count.to_string(),
        text("/metadata/name", "/metadata/name"),
    ]);
    let meta = o.get("metadata").cloned().unwrap_or(json!({}));
    json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
}

/// Evaluates a simple JSONPath (`.spec.engine`, `.status.conditions[0].type`).
fn json_path<'a>(o: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = o;
    for part in path.trim_start_matches('.').split('.').filter(|p| !p.is_empty()) {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = cur.get(key)?;
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

/// Human-readable age as kubectl prints it (`45s`, `5m`, `3h`, `2d`).
fn age(ts: &str) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = jiff::Timestamp::now().as_second().saturating_sub(t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 3 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_resource_age_is_a_date_and_built_in_age_a_string() {
        let crd = crate::apiserver::resources::from_crd(&json!({"metadata": {"name": "things.x.io"}, "spec": {
            "group": "x.io", "names": {"plural": "things", "kind": "Thing"},
            "versions": [{"name": "v1", "served": true}]}}))
        .expect("crd");
        let thing = Arc::new(json!({"metadata": {"name": "a", "creationTimestamp": "2026-12-01T05:00:00Z"}}));
        let t = table(&crd[0], std::slice::from_ref(&thing), json!({}), true);
        assert_eq!(t["columnDefinitions"][1]["name"], "Age");
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        let age = t["rows"][0]["cells"][1].as_str().expect("an age");
        assert!(!age.is_empty() && !age.contains('T'), "{age}");
        let cm = crate::apiserver::resources::builtins().into_iter().find(|d| d.kind == "ConfigMap").expect("cm");
        let t = table(&cm, &[thing], json!({}), false);
        assert_eq!(t["columnDefinitions"], json!([]));
        let age = t["rows"][0]["cells"][1].as_str().expect("a string");
        assert!(!age.is_empty() && !age.contains('T'), "{age}");
    }

    #[test]
    fn evaluates_simple_json_paths() {
        let o = json!({"spec": {"engine": "postgres"}, "status": {"conditions": [{"type": "Ready"}]}});
        assert_eq!(json_path(&o, ".spec.engine"), Some(&json!("postgres")));
        assert_eq!(json_path(&o, ".status.conditions[0].type"), Some(&json!("Ready")));
        assert_eq!(json_path(&o, ".status.state"), None);
    }
}
