//! The `scale` subresource of Deployments (`autoscaling/v1` Scale), which `kubectl scale`
//! and autoscalers use: a view of the object's `spec.replicas`, `status.replicas` and
//! label selector. In: a stored Deployment, or a Scale a client sent; out: the Scale the
//! server answers with, or the replica count a write asks for. The handlers in `verbs`
//! turn a write of the Scale into a write of the Deployment's `spec.replicas`.

use super::status::ApiError;
use serde_json::{Value, json};

/// The Scale of `obj` (a Deployment), as kube-apiserver serves it.
pub fn view(obj: &Value) -> Value {
    let meta = |k: &str| obj.pointer(&format!("/metadata/{k}")).cloned().unwrap_or(Value::Null);
    let mut status = json!({"replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0)});
    if let Some(selector) = obj.pointer("/spec/selector").map(super::printers::selector_string) {
        status["selector"] = Value::String(selector);
    }
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta("name"), "namespace": meta("namespace"), "uid": meta("uid"),
            "resourceVersion": meta("resourceVersion"), "creationTimestamp": meta("creationTimestamp")},
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": status})
}

/// The Deployment a write of `scale` asks for: `current` with the Scale's
/// `spec.replicas`, and the Scale's `metadata.resourceVersion` (if any) as the write's
/// precondition.
pub fn apply_to(current: &Value, scale: &Value, name: &str) -> Result<Value, ApiError> {
    let invalid = |message: String| {
        ApiError::new(422, "Invalid", format!("Scale.autoscaling \"{name}\" is invalid: {message}"))
            .details(json!({"name": name, "group": "autoscaling", "kind": "Scale"}))
    };
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().ok_or_else(|| invalid(format!("spec.replicas: Invalid value: {v}")))?,
    };
    if replicas < 0 {
        return Err(invalid(format!("spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0")));
    }
    let mut doc = current.clone();
    doc["spec"]["replicas"] = json!(replicas);
    if let Some(rv) = scale.pointer("/metadata/resourceVersion").and_then(Value::as_str).filter(|rv| !rv.is_empty()) {
        doc["metadata"]["resourceVersion"] = Value::String(rv.to_owned());
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_views_and_sets_a_deployments_replicas() {
        let d = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 1}});
        let s = view(&d);
        assert_eq!(
            (s["spec"]["replicas"].clone(), s["status"].clone()),
            (json!(2), json!({"replicas": 1, "selector": "app=web"}))
        );
        let scaled = apply_to(&d, &json!({"spec": {"replicas": 5}}), "web").expect("scaled");
        assert_eq!(
            (scaled["spec"]["replicas"].clone(), scaled["metadata"]["resourceVersion"].clone()),
            (json!(5), json!("7"))
        );
        let pinned = apply_to(&d, &json!({"metadata": {"resourceVersion": "3"}, "spec": {"replicas": 1}}), "web");
        assert_eq!(pinned.expect("scaled")["metadata"]["resourceVersion"], "3");
        assert_eq!(apply_to(&d, &json!({"spec": {"replicas": -1}}), "web").expect_err("negative").code, 422);
    }
}
