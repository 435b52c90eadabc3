//! How a write changes an object's fields, as functions over JSON: field ownership
//! (`metadata.managedFields`), server-side apply (which manager owns which leaf field,
//! conflicts between managers, 409 unless forced, and the merge of an applied
//! configuration into the live object), and merge and JSON patches. Lists are treated as
//! atomic values. The store calls it on every write; the HTTP layer only decodes bodies.

use super::status::ApiError;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// A leaf path, e.g. `["spec", "size"]`.
pub type Path = Vec<String>;

/// One entry of `managedFields`.
#[derive(Debug, Clone, PartialEq)]
pub struct Managed {
    /// Manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `status` or none.
    pub subresource: Option<String>,
    /// apiVersion the fields refer to.
    pub api_version: String,
    /// Owned leaf fields.
    pub fields: BTreeSet<Path>,
    /// When it last changed.
    pub time: String,
}

/// Leaf paths of a configuration, excluding identity fields (apiVersion, kind, name,
/// namespace, resourceVersion, uid and the like).
pub fn leaves(v: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    if let Some(map) = v.as_object() {
        for (k, child) in map {
            if matches!(k.as_str(), "apiVersion" | "kind") {
                continue;
            }
            if k == "metadata" {
                for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(c) = child.get(key) {
                        collect(c, vec!["metadata".into(), key.into()], &mut out);
                    }
                }
                continue;
            }
            collect(child, vec![k.clone()], &mut out);
        }
    }
    out
}

fn collect(v: &Value, path: Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() && path.last().is_none_or(|l| l != "finalizers") => {
            for (k, c) in m {
                let mut p = path.clone();
                p.push(k.clone());
                collect(c, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

/// The value at a path.
pub fn get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

fn remove(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for k in parents {
        match cur.get_mut(k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// Deep-merges `patch` into `target` (objects merged, everything else replaced).
pub fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => deep_merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Leaf paths whose values differ between two objects (either side), excluding identity
/// and bookkeeping metadata.
pub fn changed(old: &Value, new: &Value) -> BTreeSet<Path> {
    let a = leaves(old);
    let b = leaves(new);
    a.union(&b).filter(|p| get(old, p) != get(new, p)).cloned().collect()
}

/// Reads `metadata.managedFields`.
pub fn read(obj: &Value) -> Vec<Managed> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
                    let mut fields = BTreeSet::new();
                    if let Some(f) = e.get("fieldsV1") {
                        decode(f, Vec::new(), &mut fields);
                    }
                    Managed {
                        manager: s("manager").unwrap_or_default(),
                        operation: s("operation").unwrap_or_else(|| "Update".into()),
                        subresource: s("subresource"),
                        api_version: s("apiVersion").unwrap_or_default(),
                        fields,
                        time: s("time").unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn decode(v: &Value, path: Path, out: &mut BTreeSet<Path>) {
    let Some(m) = v.as_object() else { return };
    let children: Vec<_> = m.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if children.is_empty() && !path.is_empty() {
        out.insert(path);
        return;
    }
    for (k, c) in children {
        let seg = k.strip_prefix("f:").unwrap_or(k).to_owned();
        let mut p = path.clone();
        p.push(seg);
        decode(c, p, out);
    }
}

fn encode(fields: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut cur = &mut root;
        for seg in path {
            let entry = cur.entry(format!("f:{seg}")).or_insert_with(|| Value::Object(Map::new()));
            cur = match entry {
                Value::Object(m) => m,
                _ => unreachable!("entries are only ever created as objects"),
            };
        }
    }
    Value::Object(root)
}

/// Writes `metadata.managedFields` (entries with no fields are dropped, as Kubernetes does).
pub fn write(obj: &mut Value, entries: &[Managed]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({"apiVersion": e.api_version, "fieldsType": "FieldsV1", "fieldsV1": encode(&e.fields),
                "manager": e.manager, "operation": e.operation, "time": e.time});
            if let Some(s) = &e.subresource {
                v["subresource"] = Value::String(s.clone());
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Records an `Update` by `manager`: it takes ownership of every field it changed, and other
/// managers lose those fields.
pub fn record_update(
    entries: &mut Vec<Managed>,
    manager: &str,
    sub: Option<&str>,
    api_version: &str,
    changed: &BTreeSet<Path>,
    now: &str,
) {
    if changed.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        e.fields.retain(|p| !changed.contains(p));
    }
    let entry = match entries
        .iter_mut()
        .position(|e| e.manager == manager && e.operation == "Update" && e.subresource.as_deref() == sub)
    {
        Some(i) => &mut entries[i],
        None => {
            entries.push(Managed {
                manager: manager.into(),
                operation: "Update".into(),
                subresource: sub.map(str::to_owned),
                api_version: api_version.into(),
                fields: BTreeSet::new(),
                time: now.into(),
            });
            let last = entries.len() - 1;
            &mut entries[last]
        }
    };
    entry.fields.extend(changed.iter().cloned());
    entry.time = now.into();
    entries.retain(|e| !e.fields.is_empty());
}

/// A decoded PATCH body.
#[derive(Debug, Clone)]
pub enum Patch {
    /// JSON merge patch (RFC 7386); also what a strategic merge patch is served as.
    Merge(Value),
    /// JSON patch (RFC 6902).
    Json(json_patch::Patch),
}

/// `current` with `patch` applied, ready for the store's update: a `resourceVersion` set
/// by a merge patch is kept as the update's precondition; otherwise the patch applies to
/// `current` whatever its version (the caller holds the store lock).
pub fn patch(current: &Value, patch: &Patch) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    let precondition = match patch {
        Patch::Merge(p) => {
            json_patch::merge(&mut doc, p);
            p.pointer("/metadata/resourceVersion").cloned()
        }
        Patch::Json(ops) => {
            if let Err(e) = json_patch::patch(&mut doc, ops) {
                tracing::debug!(error = %e, "JSON patch failed");
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                ));
            }
            None
        }
    };
    let rv_in_doc = match precondition {
        Some(Value::String(rv)) => Value::String(rv),
        _ => current.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
    };
    if doc.get("metadata").is_some_and(Value::is_object) {
        doc["metadata"]["resourceVersion"] = rv_in_doc;
    }
    Ok(doc)
}

/// Server-side apply of `config` by `manager` onto `live`: returns the merged object with
/// updated `managedFields`, or a 409 listing the conflicts (unless `force`).
pub fn apply(
    live: &Value,
    config: &Value,
    manager: &str,
    sub: Option<&str>,
    force: bool,
    now: &str,
) -> Result<Value, ApiError> {
    let mut entries = read(live);
    let wanted = leaves(config);
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for e in entries.iter().filter(|e| e.manager != manager || e.operation != "Apply") {
        for p in e.fields.intersection(&wanted) {
            if get(live, p) != get(config, p) {
                conflicts.push((e.manager.clone(), format!(".{}", p.join("."))));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let n = conflicts.len();
        let list = conflicts.iter().map(|(m, f)| format!("conflict with \"{m}\": {f}")).collect::<Vec<_>>();
        let message = if n == 1 {
            format!("Apply failed with 1 conflict: {}", list[0])
        } else {
            format!("Apply failed with {n} conflicts: {}", list.join("\n"))
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": f}))
            .collect();
        return Err(ApiError::new(409, "Conflict", message).details(json!({"causes": causes})));
    }
    let mut merged = live.clone();
    let previous: BTreeSet<Path> = entries
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply" && e.subresource.as_deref() == sub)
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let owned_by_others: BTreeSet<Path> = entries
        .iter()
        .filter(|e| !(e.manager == manager && e.operation == "Apply"))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    // Fields this manager applied before and no longer applies are removed, unless
    // someone else also owns them.
    for p in previous.difference(&wanted) {
        if !owned_by_others.contains(p) {
            remove(&mut merged, p);
        }
    }
    deep_merge(&mut merged, config);
    // Fields applied with the value they already had are co-owned; fields whose value
    // changed (only possible with force) move to this manager.
    for e in entries.iter_mut() {
        if !(e.manager == manager && e.operation == "Apply") {
            e.fields.retain(|p| !(wanted.contains(p) && get(live, p) != get(config, p)));
        }
    }
    let api_version = config.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
    entries.retain(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource.as_deref() == sub));
    entries.push(Managed {
        manager: manager.into(),
        operation: "Apply".into(),
        subresource: sub.map(str::to_owned),
        api_version,
        fields: wanted,
        time: now.into(),
    });
    entries.retain(|e| !e.fields.is_empty());
    write(&mut merged, &entries);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(size: &str) -> Value {
        json!({"apiVersion": "stable.example.com/v1", "kind": "Database", "metadata": {"name": "a"}, "spec": {"engine": "postgres", "size": size}})
    }

    #[test]
    fn apply_conflicts_with_another_manager_unless_forced() {
        let live =
            apply(&json!({"metadata": {"name": "a"}}), &db("1Gi"), "alice", None, false, "t").expect("first apply");
        let err = apply(&live, &db("2Gi"), "bob", None, false, "t").expect_err("conflict");
        assert_eq!(err.code, 409);
        assert_eq!(err.message, "Apply failed with 1 conflict: conflict with \"alice\": .spec.size");
        let forced = apply(&live, &db("2Gi"), "bob", None, true, "t").expect("forced");
        assert_eq!(forced["spec"]["size"], "2Gi");
        let owners = read(&forced);
        let alice = owners.iter().find(|e| e.manager == "alice").expect("alice keeps engine");
        assert!(!alice.fields.contains(&vec!["spec".to_owned(), "size".to_owned()]));
        // Same values are not conflicts.
        assert!(apply(&live, &db("1Gi"), "bob", None, false, "t").is_ok());
    }

    #[test]
    fn fields_dropped_from_an_apply_are_removed() {
        let live = apply(&json!({"metadata": {"name": "a"}}), &db("1Gi"), "alice", None, false, "t").expect("apply");
        let mut smaller = db("1Gi");
        smaller["spec"].as_object_mut().expect("spec").remove("size");
        let after = apply(&live, &smaller, "alice", None, false, "t").expect("apply");
        assert!(after["spec"].get("size").is_none());
    }

    #[test]
    fn merge_patch_keeps_its_resource_version_as_precondition() {
        let cur = json!({"metadata": {"name": "a", "resourceVersion": "7"}, "spec": {"size": "1Gi"}});
        let plain = patch(&cur, &Patch::Merge(json!({"spec": {"size": "2Gi"}}))).expect("merge");
        assert_eq!(
            (plain["spec"]["size"].clone(), plain["metadata"]["resourceVersion"].clone()),
            (json!("2Gi"), json!("7"))
        );
        let pinned = patch(&cur, &Patch::Merge(json!({"metadata": {"resourceVersion": "3"}}))).expect("merge");
        assert_eq!(pinned["metadata"]["resourceVersion"], "3");
        let ops: json_patch::Patch =
            serde_json::from_value(json!([{"op": "test", "path": "/spec/size", "value": "9Gi"}])).expect("ops");
        assert_eq!(patch(&cur, &Patch::Json(ops)).expect_err("failed test op").code, 422);
    }

    #[test]
    fn managed_fields_round_trip() {
        let live = apply(&json!({"metadata": {"name": "a"}}), &db("1Gi"), "alice", None, false, "t").expect("apply");
        assert_eq!(live["metadata"]["managedFields"][0]["fieldsV1"], json!({"f:spec": {"f:engine": {}, "f:size": {}}}));
        assert_eq!(read(&live)[0].fields.len(), 2);
    }
}
