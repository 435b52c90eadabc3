//! The size limits kube-apiserver enforces on every write of built-in objects
//! (`ValidateAnnotations`, `ValidateConfigMap`, `ValidateSecret`): annotations of at most
//! 256 KiB in all (what makes a client-side `kubectl apply` of a ConfigMap holding a large
//! plugin fail, since its last-applied annotation copies the data), and a ConfigMap's
//! `data` and `binaryData`, or a Secret's `data`, of at most 1 MiB; and, for writes with
//! `fieldValidation=Strict` (kubectl's), fields the kind does not have. In: an object about
//! to be stored; out: the causes of a 422 Invalid, as `(reason, message, field)`, or the
//! unknown fields (pure functions; `store::write` calls them on creates and updates).

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

/// Fields of `obj` that its kind's Go type (here: its k8s-openapi type) does not have, as
/// `fieldValidation=Strict` reports them (`spec.template.spec.containers[0].imagePulPolicy`);
/// `None` for kinds without a typed form here, or a body that does not decode into it (the
/// other checks answer for those).
pub fn unknown_fields(def: &ResourceDef, obj: &Value) -> Option<Vec<String>> {
    use k8s_openapi::api::{apps, coordination, core, networking, policy, rbac};
    let typed = match (def.group.as_str(), def.kind.as_str()) {
        ("", "Namespace") => round_trip::<core::v1::Namespace>(obj),
        ("", "ConfigMap") => round_trip::<core::v1::ConfigMap>(obj),
        ("", "Secret") => round_trip::<core::v1::Secret>(obj),
        ("", "ServiceAccount") => round_trip::<core::v1::ServiceAccount>(obj),
        ("", "Service") => round_trip::<core::v1::Service>(obj),
        ("apps", "Deployment") => round_trip::<apps::v1::Deployment>(obj),
        ("policy", "PodDisruptionBudget") => round_trip::<policy::v1::PodDisruptionBudget>(obj),
        ("networking.k8s.io", "NetworkPolicy") => round_trip::<networking::v1::NetworkPolicy>(obj),
        ("coordination.k8s.io", "Lease") => round_trip::<coordination::v1::Lease>(obj),
        ("rbac.authorization.k8s.io", "Role") => round_trip::<rbac::v1::Role>(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => round_trip::<rbac::v1::RoleBinding>(obj),
        ("rbac.authorization.k8s.io", "ClusterRole") => round_trip::<rbac::v1::ClusterRole>(obj),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => round_trip::<rbac::v1::ClusterRoleBinding>(obj),
        _ => None,
    }?;
    let mut unknown = Vec::new();
    missing(obj, &typed, String::new(), &mut unknown);
    Some(unknown)
}

/// `obj` decoded into `T` and encoded again: what `T` knows of it.
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(obj: &Value) -> Option<Value> {
    serde_json::to_value(serde_json::from_value::<T>(obj.clone()).ok()?).ok()
}

/// Paths of `sent` that `known` lacks (`null`s, which decode to nothing, aside).
fn missing(sent: &Value, known: &Value, path: String, out: &mut Vec<String>) {
    match (sent, known) {
        (Value::Object(s), Value::Object(k)) => {
            for (key, v) in s.iter().filter(|(_, v)| !v.is_null()) {
                let p = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match k.get(key) {
                    Some(kv) => missing(v, kv, p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(s), Value::Array(k)) => {
            for (i, (v, kv)) in s.iter().zip(k).enumerate() {
                missing(v, kv, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
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
    fn fields_a_kind_does_not_have_are_unknown() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"a": "b"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}, "replica": 2,
                "template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": [
                    {"name": "a", "image": "a", "resources": {}},
                    {"name": "b", "image": "b", "imagePulPolicy": "Always"}]}}}});
        assert_eq!(
            unknown_fields(&def("Deployment"), &d),
            Some(vec!["spec.replica".to_owned(), "spec.template.spec.containers[1].imagePulPolicy".to_owned()])
        );
        let cm = json!({"metadata": {"name": "c"}, "data": {"x": "y"}, "binaryData": {"p.wasm": "AGFzbQ=="}});
        assert_eq!(unknown_fields(&def("ConfigMap"), &cm), Some(vec![]));
        assert_eq!(unknown_fields(&def("Event"), &cm), None);
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
