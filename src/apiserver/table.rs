//! `meta.k8s.io/v1` Table responses for `kubectl get`: NAME, the resource's printer
//! columns (a CRD's `additionalPrinterColumns`), and AGE.

use super::resources::ResourceDef;
use serde_json::{Value, json};
use std::sync::Arc;

/// A Table of `objects`.
pub fn table(def: &ResourceDef, objects: &[Arc<Value>], rv: &str, cont: Option<&str>) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    let has_age = def.columns.iter().any(|c| c.kind == "date");
    for c in &def.columns {
        columns.push(json!({"name": c.name, "type": if c.kind == "date" { "string" } else { c.kind.as_str() }, "format": "", "description": "", "priority": 0}));
    }
    if !has_age {
        columns.push(
            json!({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp", "priority": 0}),
        );
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            for c in &def.columns {
                let v = json_path(o, &c.json_path);
                cells.push(match (c.kind.as_str(), v) {
                    ("date", Some(Value::String(ts))) => Value::String(age(ts)),
                    (_, Some(v)) => v.clone(),
                    (_, None) => Value::Null,
                });
            }
            if !has_age {
                let ts = o.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("");
                cells.push(Value::String(age(ts)));
            }
            let meta = o.get("metadata").cloned().unwrap_or(json!({}));
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
        })
        .collect();
    let mut meta = json!({"resourceVersion": rv});
    if let Some(c) = cont {
        meta["continue"] = Value::String(c.to_owned());
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns, "rows": rows})
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
    fn evaluates_simple_json_paths() {
        let o = json!({"spec": {"engine": "postgres"}, "status": {"conditions": [{"type": "Ready"}]}});
        assert_eq!(json_path(&o, ".spec.engine"), Some(&json!("postgres")));
        assert_eq!(json_path(&o, ".status.conditions[0].type"), Some(&json!("Ready")));
        assert_eq!(json_path(&o, ".status.state"), None);
    }
}
