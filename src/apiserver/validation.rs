//! The size limits kube-apiserver enforces on every write of built-in objects
//! (`ValidateAnnotations`, `ValidateConfigMap`, `ValidateSecret`): annotations of at most
//! 256 KiB in all (what makes a client-side `kubectl apply` of a ConfigMap holding a large
//! plugin fail, since its last-applied annotation copies the data), and a ConfigMap's
//! `data` and `binaryData`, or a Secret's `data`, of at most 1 MiB. In: an object about to
//! be stored; out: the causes of a 422 Invalid, as `(reason, message, field)` (a pure
//! function; `store::write` calls it on creates and updates).

use super::resources::ResourceDef;
use serde_json::Value;

/// Total size of an object's annotations (keys and values).
pub const MAX_ANNOTATIONS_BYTES: usize = 256 << 10;
/// Largest ConfigMap or Secret payload.
pub const MAX_DATA_BYTES: usize = 1 << 20;

/// The limits `obj`, a `def`, exceeds.
pub fn check(def: &ResourceDef, obj: &Value) -> Vec<(String, String, String)> {
    let mut causes = Vec::new();
    let too_long = |limit: usize, field: &str| {
        ("FieldValueTooLong".to_owned(), format!("Too long: must have at most {limit} bytes"), field.to_owned())
    };
    let annotations: usize = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum())
        .unwrap_or(0);
    if annotations > MAX_ANNOTATIONS_BYTES {
        causes.push(too_long(MAX_ANNOTATIONS_BYTES, "metadata.annotations"));
    }
    if !def.group.is_empty() {
        return causes;
    }
    let payload = |key: &str, decode: bool| -> usize {
        obj.get(key)
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| k.len() + value_len(v, decode)).sum())
            .unwrap_or(0)
    };
    match def.kind.as_str() {
        "ConfigMap" if payload("data", false) + payload("binaryData", true) > MAX_DATA_BYTES => {
            // The whole object is too large: the real server names no field ("[]").
            causes.push(too_long(MAX_DATA_BYTES, "[]"));
        }
        "Secret" if payload("data", true) > MAX_DATA_BYTES => causes.push(too_long(MAX_DATA_BYTES, "data")),
        _ => {}
    }
    causes
}

/// The length of a string value, or of the bytes it encodes in base64.
fn value_len(v: &Value, base64: bool) -> usize {
    let s = v.as_str().unwrap_or_default();
    if base64 { s.trim_end_matches('=').len() * 3 / 4 } else { s.len() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::builtins;
    use serde_json::json;

    fn def(kind: &str) -> ResourceDef {
        builtins().into_iter().find(|d| d.kind == kind).expect("built in")
    }

    #[test]
    fn large_annotations_and_payloads_are_too_long() {
        let big = "A".repeat(MAX_DATA_BYTES);
        let cm = json!({"metadata": {"name": "p"}, "binaryData": {"p.wasm": big}});
        assert!(check(&def("ConfigMap"), &cm).is_empty(), "1 MiB of base64 is 768 KiB of bytes");
        let cm = json!({"metadata": {"name": "p"}, "data": {"p": big}});
        assert_eq!(check(&def("ConfigMap"), &cm)[0].2, "[]");
        let applied = json!({"metadata": {"name": "p", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(MAX_ANNOTATIONS_BYTES)}}});
        let causes = check(&def("Deployment"), &applied);
        assert_eq!(
            causes,
            [(
                "FieldValueTooLong".to_owned(),
                "Too long: must have at most 262144 bytes".to_owned(),
                "metadata.annotations".to_owned()
            )]
        );
    }
}
