//! Strategic merge patches (`application/strategic-merge-patch+json`) on built-in kinds, as
//! `k8s.io/apimachinery/pkg/util/strategicpatch` applies them, so that `kubectl apply` (which
//! computes such patches from its compiled-in Go types) and clients like
//! `kube-lease-manager` work unchanged. In: the stored object and the patch; out: the
//! patched object (a pure function, called by `fields::patch`).
//!
//! Lists with a patch merge key in the kind's `structure` (a Deployment's `containers` by
//! `name`, a container's `env` by `name`, a Service's `ports` by `port`, ...) are merged
//! element by element; `metadata.finalizers` is merged as a set; other lists are replaced,
//! and so is a map declared `replace` (a PodDisruptionBudget's `spec.selector`).
//! The directives kubectl sends are honoured: `$patch` (`merge`, `replace`, `delete`, in a
//! map or as a list element), `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>`; `null` removes a field. Where the order of elements
//! that only the server knows is unspecified by the patch, they follow the ordered ones.

use super::structure;
use serde_json::{Map, Value};

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// Replaced by the patch's list (no patch strategy).
    Replace,
    /// A list of scalars merged as a set (`patchStrategy:"merge"` without a key).
    Primitives,
    /// A list of objects merged by the value of this field (`patchMergeKey`).
    Key(&'static str),
}

/// The patch strategy of the list at `path` (field names from the object's root; list
/// elements add no segment): `metadata`'s lists as `ObjectMeta` declares them, others from
/// the kind's `structure`.
fn list_strategy(schema: Option<&'static Value>, path: &[&str]) -> ListStrategy {
    match path {
        ["metadata", "finalizers"] => return ListStrategy::Primitives,
        ["metadata", "ownerReferences"] => return ListStrategy::Key("uid"),
        _ => {}
    }
    let Some(node) = schema.and_then(|s| structure::at(s, path)) else {
        return ListStrategy::Replace;
    };
    let merges = node
        .get("x-kubernetes-patch-strategy")
        .and_then(Value::as_str)
        .is_some_and(|s| s.split(',').any(|p| p == "merge"));
    match node.get("x-kubernetes-patch-merge-key").and_then(Value::as_str) {
        Some(key) if merges => ListStrategy::Key(key),
        None if merges => ListStrategy::Primitives,
        _ => ListStrategy::Replace,
    }
}

/// Whether the object at `path` is replaced whole rather than merged
/// (`patchStrategy:"replace"`: a PodDisruptionBudget's selector).
fn replaced_whole(schema: Option<&Value>, path: &[&str]) -> bool {
    schema
        .and_then(|s| structure::at(s, path))
        .and_then(|n| n.get("x-kubernetes-patch-strategy"))
        .and_then(Value::as_str)
        == Some("replace")
}

/// Why a strategic merge patch could not be applied (kube-apiserver answers 422 or 400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StrategicError {
    /// The patch is not a JSON object.
    #[error("the patch must be a JSON object")]
    NotAnObject,
    /// An element of a list merged by key lacks the key.
    #[error("map: {element} does not contain declared merge key: {key}")]
    MissingKey {
        /// The element, as JSON.
        element: String,
        /// The merge key.
        key: &'static str,
    },
    /// A `$patch` directive with an unknown value.
    #[error("Unknown patch type: {0}")]
    UnknownDirective(String),
}

/// `original` with the strategic merge patch `patch` applied. The object's `apiVersion`
/// and `kind` select the list strategies (`structure`).
pub fn apply(original: &Value, patch: &Value) -> Result<Value, StrategicError> {
    let Value::Object(p) = patch else {
        return Err(StrategicError::NotAnObject);
    };
    let schema = structure::of_object(original);
    let mut out = match original {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    match merge_map(schema, &mut Vec::new(), &mut out, p)? {
        true => Ok(Value::Object(out)),
        false => Ok(Value::Object(Map::new())),
    }
}

const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

/// Merges `patch` into `target`; false when the patch deletes the whole map.
fn merge_map<'a>(
    schema: Option<&'static Value>,
    path: &mut Vec<&'a str>,
    target: &mut Map<String, Value>,
    patch: &'a Map<String, Value>,
) -> Result<bool, StrategicError> {
    match patch.get("$patch").map(|d| d.as_str().unwrap_or_default()) {
        None | Some("merge") => {}
        Some("replace") => {
            *target = patch.iter().filter(|(k, v)| *k != "$patch" && !v.is_null()).map(clone_entry).collect();
            return Ok(true);
        }
        Some("delete") => return Ok(false),
        Some(other) => return Err(StrategicError::UnknownDirective(other.to_owned())),
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        target.retain(|k, _| keep.iter().any(|r| r.as_str() == Some(k)));
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        path.push(key);
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(child) => {
                let mut base = match target.remove(key) {
                    Some(Value::Object(m)) if !replaced_whole(schema, path) => m,
                    _ => Map::new(),
                };
                if merge_map(schema, path, &mut base, child)? {
                    target.insert(key.clone(), Value::Object(base));
                }
            }
            Value::Array(items) => {
                let base = match target.remove(key) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                target.insert(key.clone(), Value::Array(merge_list(schema, path, base, items)?));
            }
            scalar => {
                target.insert(key.clone(), scalar.clone());
            }
        }
        path.pop();
    }
    for (key, value) in patch {
        if let (Some(field), Value::Array(gone)) = (key.strip_prefix(DELETE_FROM), value)
            && let Some(Value::Array(list)) = target.get_mut(field)
        {
            list.retain(|v| !gone.contains(v));
        }
    }
    for (key, value) in patch {
        if let (Some(field), Value::Array(order)) = (key.strip_prefix(SET_ORDER), value)
            && let Some(Value::Array(list)) = target.get_mut(field)
        {
            path.push(field);
            let strategy = list_strategy(schema, path);
            path.pop();
            reorder(list, order, strategy);
        }
    }
    Ok(true)
}

fn clone_entry((k, v): (&String, &Value)) -> (String, Value) {
    (k.clone(), v.clone())
}

/// Merges a patch list into a list by the list's strategy.
fn merge_list<'a>(
    schema: Option<&'static Value>,
    path: &mut Vec<&'a str>,
    mut base: Vec<Value>,
    items: &'a [Value],
) -> Result<Vec<Value>, StrategicError> {
    match list_strategy(schema, path) {
        ListStrategy::Replace => Ok(items.to_vec()),
        ListStrategy::Primitives => {
            for item in items {
                if !base.contains(item) {
                    base.push(item.clone());
                }
            }
            Ok(base)
        }
        ListStrategy::Key(key) => {
            if items.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace")) {
                base.clear();
            }
            for item in items {
                let Value::Object(element) = item else { continue };
                if element.len() == 1 && element.contains_key("$patch") {
                    continue;
                }
                let Some(id) = element.get(key) else {
                    return Err(StrategicError::MissingKey { element: item.to_string(), key });
                };
                let at = base.iter().position(|b| b.get(key) == Some(id));
                if element.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = at {
                        base.remove(i);
                    }
                    continue;
                }
                let mut merged = match at.map(|i| base.remove(i)) {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                let kept = merge_map(schema, path, &mut merged, element)?;
                match (at, kept) {
                    (Some(i), true) => base.insert(i, Value::Object(merged)),
                    (None, true) => base.push(Value::Object(merged)),
                    (_, false) => {}
                }
            }
            Ok(base)
        }
    }
}

/// Orders `list` as `order` says (`$setElementOrder`): the listed elements in that order,
/// then the elements the order does not name, in their previous order.
fn reorder(list: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let names = |item: &Value, wanted: &Value| match strategy {
        ListStrategy::Key(key) => item.get(key).is_some() && item.get(key) == wanted.get(key),
        _ => item == wanted,
    };
    let mut rest = std::mem::take(list);
    for wanted in order {
        if let Some(i) = rest.iter().position(|item| names(item, wanted)) {
            list.push(rest.remove(i));
        }
    }
    list.extend(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "finalizers": ["a"]},
            "spec": {"replicas": 2, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                "template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn containers_merge_by_name_and_their_env_and_ports_by_key() {
        let live = deployment(json!([
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 8080, "name": "http"}]},
            {"name": "side", "image": "side:1"}]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
            "containers": [{"name": "app", "image": "app:2",
                "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                "env": [{"name": "A", "value": "10"}, {"name": "C", "value": "3"}, {"name": "B", "$patch": "delete"}],
                "ports": [{"containerPort": 9090}]}]}}}});
        let out = apply(&live, &patch).expect("patch");
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "app:2");
        assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "10"}, {"name": "C", "value": "3"}]));
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 8080, "name": "http"}, {"containerPort": 9090}]));
        assert_eq!(containers[1], json!({"name": "side", "image": "side:1"}));
    }

    #[test]
    fn directives_replace_delete_retain_and_reorder() {
        let live = deployment(json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]));
        let patch = json!({"metadata": {"finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"]},
            "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                "template": {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                    "containers": [{"name": "c", "image": "c"}]}}}});
        let out = apply(&live, &patch).expect("patch");
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["b", "a", "c"]);
        let replaced = apply(
            &live,
            &json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"}, {"name": "z", "image": "z"}]}}}}),
        )
        .expect("replace list");
        assert_eq!(replaced["spec"]["template"]["spec"]["containers"], json!([{"name": "z", "image": "z"}]));
        let whole = apply(&live, &json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}))
            .expect("replace map");
        assert_eq!(whole["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced_and_null_removes() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}], "ipFamilies": ["IPv4"], "selector": {"app": "a"}}});
        let out = apply(&svc, &json!({"spec": {"ports": [{"port": 443}], "ipFamilies": ["IPv6"], "selector": null}}))
            .expect("patch");
        assert_eq!(out["spec"]["ports"], json!([{"port": 80, "targetPort": 8080}, {"port": 443}]));
        assert_eq!(out["spec"]["ipFamilies"], json!(["IPv6"]));
        assert!(out["spec"].get("selector").is_none());
        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}}});
        let narrowed = apply(&pdb, &json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}})).expect("selector");
        assert_eq!(narrowed["spec"]["selector"], json!({"matchLabels": {"a": "1"}}));
        let lease = json!({"kind": "Lease", "spec": {"holderIdentity": "a", "leaseTransitions": 1}});
        let released = apply(&lease, &json!({"spec": {"holderIdentity": null}})).expect("release");
        assert_eq!(released, json!({"kind": "Lease", "spec": {"leaseTransitions": 1}}));
    }

    #[test]
    fn an_element_without_its_merge_key_is_an_error() {
        let live = deployment(json!([{"name": "a"}]));
        let err = apply(&live, &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}))
            .expect_err("no name");
        assert_eq!(err, StrategicError::MissingKey { element: "{\"image\":\"x\"}".into(), key: "name" });
    }
}
