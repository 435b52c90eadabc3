//! How the lists and maps of built-in kinds merge, as a schema fragment with the OpenAPI
//! extensions kube-apiserver publishes for them (from the Go types' struct tags):
//! `x-kubernetes-list-type: map` with `x-kubernetes-list-map-keys` for server-side apply,
//! `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` for strategic merge
//! patches. A Deployment's `containers` merge by `name`, a container's `ports` by
//! `containerPort` and `env` by `name`, a Service's `ports` by `port`, conditions by `type`.
//! In: a group and kind; out: the fragment (`fields` and `strategic` read it; a custom
//! resource's schema plays the same part for its kind). Fields the fragment does not name
//! are atomic lists and merged maps.
//!
//! Where the real server keys a list by two fields with a default (a port's `protocol`),
//! the fragment keys it by the patch merge key alone, which is what clients send.

use serde_json::{Value, json};
use std::sync::LazyLock;

/// A list merged element by element, keyed by `key`; `items` describes an element.
fn keyed(key: &str, items: Value) -> Value {
    json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key],
        "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": key, "items": items})
}

fn conditions() -> Value {
    keyed("type", json!({"type": "object"}))
}

/// `core/v1` PodSpec.
fn pod_spec() -> Value {
    let container = json!({"type": "object", "properties": {
        "ports": keyed("containerPort", json!({"type": "object"})),
        "env": keyed("name", json!({"type": "object"})),
        "volumeMounts": keyed("mountPath", json!({"type": "object"})),
        "volumeDevices": keyed("devicePath", json!({"type": "object"}))}});
    let mut volumes = keyed("name", json!({"type": "object"}));
    volumes["x-kubernetes-patch-strategy"] = json!("merge,retainKeys");
    json!({"type": "object", "properties": {
        "containers": keyed("name", container.clone()),
        "initContainers": keyed("name", container.clone()),
        "ephemeralContainers": keyed("name", container),
        "volumes": volumes,
        "imagePullSecrets": keyed("name", json!({"type": "object"})),
        "hostAliases": keyed("ip", json!({"type": "object"})),
        "topologySpreadConstraints": keyed("topologyKey", json!({"type": "object"})),
        "schedulingGates": keyed("name", json!({"type": "object"})),
        "resourceClaims": keyed("name", json!({"type": "object"}))}})
}

static DEPLOYMENT: LazyLock<Value> = LazyLock::new(|| {
    json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "strategy": {"type": "object", "x-kubernetes-patch-strategy": "retainKeys"},
            "template": {"type": "object", "properties": {"spec": pod_spec()}}}},
        "status": {"type": "object", "properties": {"conditions": conditions()}}}})
});

static SERVICE: LazyLock<Value> = LazyLock::new(|| {
    json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"ports": keyed("port", json!({"type": "object"}))}},
        "status": {"type": "object", "properties": {"conditions": conditions()}}}})
});

static POD_DISRUPTION_BUDGET: LazyLock<Value> = LazyLock::new(|| {
    json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "selector": {"type": "object", "x-kubernetes-patch-strategy": "replace"}}},
        "status": {"type": "object", "properties": {"conditions": conditions()}}}})
});

static SERVICE_ACCOUNT: LazyLock<Value> =
    LazyLock::new(|| json!({"type": "object", "properties": {"secrets": keyed("name", json!({"type": "object"}))}}));

/// The fragment of a built-in kind (by group and kind), if any of its fields merges
/// otherwise than the defaults.
pub fn of(group: &str, kind: &str) -> Option<&'static Value> {
    match (group, kind) {
        ("apps", "Deployment") => Some(&DEPLOYMENT),
        ("", "Service") => Some(&SERVICE),
        ("policy", "PodDisruptionBudget") => Some(&POD_DISRUPTION_BUDGET),
        ("", "ServiceAccount") => Some(&SERVICE_ACCOUNT),
        _ => None,
    }
}

/// The fragment of an object, from its `apiVersion` and `kind`.
pub fn of_object(obj: &Value) -> Option<&'static Value> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    of(group, obj.get("kind").and_then(Value::as_str).unwrap_or_default())
}

/// The node describing the field at `path` (field names; elements of a list are described
/// by its `items`).
pub fn at<'a>(schema: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(schema, |node, seg| {
        let node = node.get("items").unwrap_or(node);
        node.get("properties")?.get(*seg)
    })
}
