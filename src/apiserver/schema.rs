//! Structural-schema checks of custom resources against their CRD's `openAPIV3Schema`:
//! types, required fields, enums, and pruning of unknown fields (an error with
//! `fieldValidation=Strict`), with Kubernetes' messages.

use serde_json::Value;

/// A violation: (cause reason, message, field path).
pub type Cause = (String, String, String);

/// Outcome of checking one object.
#[derive(Debug, Default)]
pub struct Checked {
    /// Violations (→ 422).
    pub causes: Vec<Cause>,
    /// Paths of unknown fields that were pruned.
    pub unknown: Vec<String>,
}

/// Validates `obj` against `schema` (root = the object), pruning unknown fields in place.
pub fn check(schema: &Value, obj: &mut Value) -> Checked {
    let mut out = Checked::default();
    if let (Some(props), Some(map)) = (schema.get("properties"), obj.as_object_mut()) {
        for (key, sub) in props.as_object().into_iter().flatten() {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(v) = map.get_mut(key) {
                walk(sub, v, key, &mut out);
            }
        }
        required(schema, map, "", &mut out);
        if !preserves_unknown(schema) {
            let unknown: Vec<String> = map
                .keys()
                .filter(|k| {
                    !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") && props.get(k.as_str()).is_none()
                })
                .cloned()
                .collect();
            for k in unknown {
                map.remove(&k);
                out.unknown.push(k);
            }
        }
    }
    out
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true)
}

fn required(schema: &Value, map: &serde_json::Map<String, Value>, path: &str, out: &mut Checked) {
    for r in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !map.contains_key(r) {
            let field = if path.is_empty() { r.to_owned() } else { format!("{path}.{r}") };
            out.causes.push(("FieldValueRequired".into(), "Required value".into(), field));
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(schema: &Value, v: &mut Value, path: &str, out: &mut Checked) {
    if v.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        if !(v.is_string() || type_name(v) == "integer") {
            out.causes.push((
                "FieldValueTypeInvalid".into(),
                format!("Invalid value: \"{}\": spec.{path} must be an integer or string", type_name(v)),
                path.into(),
            ));
        }
        return;
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok {
            out.causes.push((
                "FieldValueTypeInvalid".into(),
                format!("Invalid value: \"{actual}\": {path} in body must be of type {t}: \"{actual}\""),
                path.into(),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list = allowed.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
        out.causes.push((
            "FieldValueNotSupported".into(),
            format!("Unsupported value: {v}: supported values: {list}"),
            path.into(),
        ));
    }
    match v {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if let Some(child) = map.get_mut(k) {
                        walk(sub, child, &format!("{path}.{k}"), out);
                    }
                }
                required(schema, map, path, out);
                if !preserves_unknown(schema) {
                    let unknown: Vec<String> = map.keys().filter(|k| !props.contains_key(*k)).cloned().collect();
                    for k in unknown {
                        map.remove(&k);
                        out.unknown.push(format!("{path}.{k}"));
                    }
                }
            } else if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in map.iter_mut() {
                    walk(extra, child, &format!("{path}.{k}"), out);
                }
            } else {
                required(schema, map, path, out);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["name", "engine"], "properties": {
                "name": {"type": "string"}, "engine": {"type": "string", "enum": ["postgres", "mysql"]}, "size": {"type": "string"}}},
            "status": {"type": "object", "properties": {"observedGeneration": {"type": "integer"}}}}})
    }

    #[test]
    fn reports_types_required_and_enums_like_kubernetes() {
        let mut o = json!({"spec": {"engine": "db2", "size": 5}});
        let c = check(&schema(), &mut o);
        let fields: Vec<&str> = c.causes.iter().map(|c| c.2.as_str()).collect();
        assert!(
            fields.contains(&"spec.engine") && fields.contains(&"spec.size") && fields.contains(&"spec.name"),
            "{c:?}"
        );
        assert!(c.causes.iter().any(|c| c.1.starts_with("Unsupported value: \"db2\"")));
    }

    #[test]
    fn prunes_unknown_fields() {
        let mut o = json!({"spec": {"name": "a", "engine": "mysql", "extra": 1}, "junk": true});
        let c = check(&schema(), &mut o);
        assert!(c.causes.is_empty());
        assert_eq!(c.unknown, vec!["spec.extra".to_owned(), "junk".to_owned()]);
        assert!(o["spec"].get("extra").is_none() && o.get("junk").is_none());
    }
}
