//! How a write changes an object's fields, as functions over JSON: field ownership
//! (`metadata.managedFields`), server-side apply (which manager owns which field,
//! conflicts between managers, 409 unless forced, the merge of an applied configuration
//! into the live object, and the removal of what a manager stops applying), and merge and
//! JSON patches. Lists follow their list type: `set` and `map` lists
//! (`metadata.finalizers`, `metadata.ownerReferences`, and a CRD schema's
//! `x-kubernetes-list-type`) are merged and owned element by element, other lists are
//! atomic. The store calls it on every write; the HTTP layer only decodes bodies. Strategic
//! merge patches are applied by `strategic`.

use super::status::ApiError;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// A path to an owned field, e.g. `["spec", "size"]`. A segment inside a list names an
/// element as fieldsV1 does: `v:<json value>` in a set, `k:<json of the key fields>` in a
/// map list.
pub type Path = Vec<String>;

/// A CRD's `openAPIV3Schema`, where the list types of a custom resource are declared
/// (`x-kubernetes-list-type`); built-in kinds have none here.
pub type Schema<'a> = Option<&'a Value>;

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

/// How a list is merged and owned.
#[derive(Debug, Clone, PartialEq)]
enum ListKind {
    /// Replaced and owned as one value (the default).
    Atomic,
    /// `x-kubernetes-list-type: set`: each scalar element is owned on its own.
    Set,
    /// `x-kubernetes-list-type: map`: elements are identified by their key fields and
    /// merged field by field; `atomic` elements are owned whole.
    Map { keys: Vec<String>, atomic: bool },
}

/// The list type at `path`: metadata's lists are fixed by the API (`finalizers` is a set,
/// `ownerReferences` a map keyed by `uid` with atomic elements); other lists come from the
/// schema.
fn list_kind(schema: Schema, path: &[String]) -> ListKind {
    match path {
        [m, f] if m == "metadata" && f == "finalizers" => return ListKind::Set,
        [m, f] if m == "metadata" && f == "ownerReferences" => {
            return ListKind::Map { keys: vec!["uid".into()], atomic: true };
        }
        [m, ..] if m == "metadata" => return ListKind::Atomic,
        _ => {}
    }
    let Some(node) = schema_at(schema, path) else { return ListKind::Atomic };
    match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListKind::Set,
        Some("map") => ListKind::Map {
            keys: node
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            atomic: node.pointer("/items/x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic"),
        },
        _ => ListKind::Atomic,
    }
}

/// The schema node describing `path`.
fn schema_at<'a>(schema: Schema<'a>, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(schema?, |node, seg| {
        if is_element(seg) {
            node.get("items")
        } else {
            node.pointer(&format!("/properties/{}", seg.replace('~', "~0").replace('/', "~1")))
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
        }
    })
}

fn is_element(seg: &str) -> bool {
    seg.starts_with("v:") || seg.starts_with("k:")
}

/// The path segment of a list element.
fn element(item: &Value, kind: &ListKind) -> String {
    match kind {
        ListKind::Map { keys, .. } => {
            let key: Map<String, Value> =
                keys.iter().map(|k| (k.clone(), item.get(k).cloned().unwrap_or(Value::Null))).collect();
            format!("k:{}", Value::Object(key))
        }
        _ => format!("v:{item}"),
    }
}

/// Whether `item` is the element a segment names.
fn is_named(item: &Value, seg: &str) -> bool {
    if let Some(v) = seg.strip_prefix("v:") {
        return serde_json::from_str::<Value>(v).is_ok_and(|v| v == *item);
    }
    let Some(Ok(Value::Object(key))) = seg.strip_prefix("k:").map(serde_json::from_str::<Value>) else {
        return false;
    };
    key.iter().all(|(k, v)| item.get(k).unwrap_or(&Value::Null) == v)
}

/// Owned paths of a configuration, excluding identity fields (apiVersion, kind, name,
/// namespace, resourceVersion, uid and the like).
pub fn leaves(v: &Value, schema: Schema) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    if let Some(map) = v.as_object() {
        for (k, child) in map {
            if matches!(k.as_str(), "apiVersion" | "kind") {
                continue;
            }
            if k == "metadata" {
                for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(c) = child.get(key) {
                        collect(c, vec!["metadata".into(), key.into()], schema, &mut out);
                    }
                }
                continue;
            }
            collect(child, vec![k.clone()], schema, &mut out);
        }
    }
    out
}

fn collect(v: &Value, path: Path, schema: Schema, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                let mut p = path.clone();
                p.push(k.clone());
                collect(c, p, schema, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let kind = list_kind(schema, &path);
            if kind == ListKind::Atomic {
                out.insert(path);
                return;
            }
            for item in items {
                let mut p = path.clone();
                p.push(element(item, &kind));
                match (&kind, item) {
                    // The element itself (its key fields), then its other fields.
                    (ListKind::Map { keys, atomic: false }, Value::Object(fields)) => {
                        for (k, c) in fields.iter().filter(|(k, _)| !keys.contains(k)) {
                            let mut sub = p.clone();
                            sub.push(k.clone());
                            collect(c, sub, schema, out);
                        }
                        out.insert(p);
                    }
                    _ => {
                        out.insert(p);
                    }
                }
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

/// The value at a path (list elements by their segment).
pub fn get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, seg| match cur {
        Value::Array(items) => items.iter().find(|i| is_named(i, seg)),
        _ => cur.get(seg),
    })
}

/// Whether two objects agree on an owned path. A map-list element owned field by field
/// agrees when it is present in both (its fields are compared on their own paths).
fn agree(a: &Value, b: &Value, path: &[String], schema: Schema) -> bool {
    let (x, y) = (get(a, path), get(b, path));
    let granular_element = match path.split_last() {
        Some((last, parent)) if last.starts_with("k:") => {
            matches!(list_kind(schema, parent), ListKind::Map { atomic: false, .. })
        }
        _ => false,
    };
    if granular_element { x.is_some() == y.is_some() } else { x == y }
}

fn remove(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        let next = match cur {
            Value::Array(items) => items.iter_mut().find(|i| is_named(i, seg)),
            other => other.get_mut(seg),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match cur {
        Value::Array(items) => items.retain(|i| !is_named(i, last)),
        Value::Object(m) => {
            m.remove(last);
        }
        _ => {}
    }
}

/// Merges an applied configuration into the live object: objects field by field, sets as
/// a union, map lists element by element (by key), atomic lists and scalars replaced.
fn merge_applied(target: &mut Value, config: &Value, schema: Schema, path: &mut Path) {
    match (target, config) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, cv) in c {
                path.push(k.clone());
                match t.get_mut(k) {
                    Some(tv) if (tv.is_object() && cv.is_object()) || (tv.is_array() && cv.is_array()) => {
                        merge_applied(tv, cv, schema, path)
                    }
                    _ => {
                        t.insert(k.clone(), cv.clone());
                    }
                }
                path.pop();
            }
        }
        (Value::Array(t), Value::Array(c)) => match list_kind(schema, path) {
            ListKind::Atomic => *t = c.clone(),
            ListKind::Set => {
                for item in c {
                    if !t.contains(item) {
                        t.push(item.clone());
                    }
                }
            }
            kind @ ListKind::Map { atomic, .. } => {
                for item in c {
                    let seg = element(item, &kind);
                    match t.iter_mut().find(|i| is_named(i, &seg)) {
                        Some(existing) if !atomic => {
                            path.push(seg);
                            merge_applied(existing, item, schema, path);
                            path.pop();
                        }
                        Some(existing) => *existing = item.clone(),
                        None => t.push(item.clone()),
                    }
                }
            }
        },
        (t, c) => *t = c.clone(),
    }
}

/// What a write did to the owned fields of an object (identity and bookkeeping metadata
/// excluded).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Fields the write added or gave another value.
    pub set: BTreeSet<Path>,
    /// Fields the write removed.
    pub removed: BTreeSet<Path>,
}

impl Changes {
    /// Every field of `obj`, as its creation sets them.
    pub fn created(obj: &Value, schema: Schema) -> Self {
        Self { set: leaves(obj, schema), removed: BTreeSet::new() }
    }

    fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }
}

/// The owned fields a write from `old` to `new` set and removed.
pub fn changed(old: &Value, new: &Value, schema: Schema) -> Changes {
    let a = leaves(old, schema);
    let b = leaves(new, schema);
    let (set, removed) = a.union(&b).filter(|p| !agree(old, new, p, schema)).cloned().partition(|p| b.contains(p));
    Changes { set, removed }
}

/// Reads `metadata.managedFields`.
pub fn read(obj: &Value) -> Vec<Managed> {
    entries(obj.pointer("/metadata/managedFields"))
}

/// The ownership a write asks for with its `metadata.managedFields`, as the field manager
/// of kube-apiserver decodes it: `[{}]` resets it to nobody; entries that own fields
/// replace it; anything else (none, or entries owning nothing) leaves the stored ownership.
pub fn requested(managed_fields: Option<&Value>) -> Option<Vec<Managed>> {
    match managed_fields?.as_array()?.as_slice() {
        [Value::Object(only)] if only.is_empty() => Some(Vec::new()),
        _ => Some(entries(managed_fields)).filter(|e| e.iter().any(|m| !m.fields.is_empty())),
    }
}

fn entries(managed_fields: Option<&Value>) -> Vec<Managed> {
    managed_fields
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
    // "." marks a node owned itself; kept for list elements, whose fields are owned apart.
    let element_itself = m.contains_key(".") && path.last().is_some_and(|s| is_element(s));
    if (children.is_empty() || element_itself) && !path.is_empty() {
        out.insert(path.clone());
    }
    if children.is_empty() {
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
            let key = if is_element(seg) { seg.clone() } else { format!("f:{seg}") };
            let entry = cur.entry(key).or_insert_with(|| Value::Object(Map::new()));
            cur = match entry {
                Value::Object(m) => m,
                _ => unreachable!("entries are only ever created as objects"),
            };
        }
    }
    // A list element owned itself and through its fields: ".", as fieldsV1 writes it.
    for path in fields.iter().filter(|p| p.last().is_some_and(|s| is_element(s))) {
        let node = path.iter().try_fold(&mut root, |cur, seg| {
            let key = if is_element(seg) { seg.clone() } else { format!("f:{seg}") };
            cur.get_mut(&key).and_then(Value::as_object_mut)
        });
        if let Some(node) = node.filter(|n| !n.is_empty()) {
            node.insert(".".into(), Value::Object(Map::new()));
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

/// Records an `Update` by `manager`, as structured-merge-diff's updater does: it takes
/// ownership of every field it set, other managers lose those fields, and a removed field
/// is owned by nobody any more (so that a manager applying it later does not conflict with
/// the stale ownership of one that applied it before).
pub fn record_update(
    entries: &mut Vec<Managed>,
    manager: &str,
    sub: Option<&str>,
    api_version: &str,
    changes: &Changes,
    now: &str,
) {
    if changes.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        e.fields.retain(|p| !changes.set.contains(p) && !changes.removed.contains(p));
    }
    if !changes.set.is_empty() {
        let i = match entries
            .iter()
            .position(|e| e.manager == manager && e.operation == "Update" && e.subresource.as_deref() == sub)
        {
            Some(i) => i,
            None => {
                entries.push(Managed {
                    manager: manager.into(),
                    operation: "Update".into(),
                    subresource: sub.map(str::to_owned),
                    api_version: api_version.into(),
                    fields: BTreeSet::new(),
                    time: now.into(),
                });
                entries.len() - 1
            }
        };
        entries[i].fields.extend(changes.set.iter().cloned());
        entries[i].time = now.into();
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// A decoded PATCH body.
#[derive(Debug, Clone)]
pub enum Patch {
    /// JSON merge patch (RFC 7386).
    Merge(Value),
    /// Strategic merge patch (built-in kinds only), applied by `strategic`.
    Strategic(Value),
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
        Patch::Strategic(p) => {
            doc = super::strategic::apply(current, p).map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
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

/// A path as conflict messages print it: `.spec.size`, `.metadata.finalizers[="x"]`,
/// `.status.conditions[type="Ready"].status`.
fn display(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if let Some(v) = seg.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(Ok(Value::Object(key))) = seg.strip_prefix("k:").map(serde_json::from_str::<Value>) {
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else {
            out.push('.');
            out.push_str(seg);
        }
    }
    out
}

/// The fields of the configuration `kubectl apply` (client-side) recorded on `live`, when
/// `manager` is kubectl's server-side apply: kube-apiserver forces an apply whose conflicts
/// all lie there (its `lastAppliedManager`), so `kubectl apply --server-side` takes over
/// objects from `kubectl apply` although the stored values carry defaults.
fn last_applied(live: &Value, manager: &str, schema: Schema) -> Option<BTreeSet<Path>> {
    if manager != "kubectl" {
        return None;
    }
    let text = live.pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")?.as_str()?;
    Some(leaves(&serde_json::from_str(text).ok()?, schema))
}

/// Options of one server-side apply.
#[derive(Debug, Clone, Copy)]
pub struct Apply<'a> {
    /// The applying field manager.
    pub manager: &'a str,
    /// `status` for the status subresource.
    pub sub: Option<&'a str>,
    /// Take over conflicting fields.
    pub force: bool,
    /// The resource's schema (list types).
    pub schema: Schema<'a>,
    /// Timestamp for the manager's entry.
    pub now: &'a str,
}

/// Server-side apply of `config` onto `live`: returns the merged object with updated
/// `managedFields` (the manager's `Apply` entry owning exactly what it applied), or a 409
/// listing the conflicts (unless forced). Set and map lists are owned per element, so
/// managers applying different elements co-own the list; what the manager applied before
/// and no longer applies is removed unless another manager owns it too.
pub fn apply(live: &Value, config: &Value, a: &Apply) -> Result<Value, ApiError> {
    let Apply { manager, sub, force, schema, now } = *a;
    let mut entries = read(live);
    let wanted = leaves(config, schema);
    let mut conflicts: Vec<(String, String)> = Vec::new();
    let mut conflicting: BTreeSet<&Path> = BTreeSet::new();
    for e in entries.iter().filter(|e| e.manager != manager || e.operation != "Apply") {
        for p in e.fields.intersection(&wanted) {
            if !agree(live, config, p, schema) {
                conflicts.push((e.manager.clone(), display(p)));
                conflicting.insert(p);
            }
        }
    }
    let forgiven = || last_applied(live, manager, schema).is_some_and(|l| conflicting.iter().all(|p| l.contains(*p)));
    if !conflicts.is_empty() && !force && !forgiven() {
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
    merge_applied(&mut merged, config, schema, &mut Vec::new());
    // Fields applied with the value they already had are co-owned; fields whose value
    // changed (only possible with force) move to this manager.
    for e in entries.iter_mut() {
        if !(e.manager == manager && e.operation == "Apply") {
            e.fields.retain(|p| !wanted.contains(p) || agree(live, config, p, schema));
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

    fn by(manager: &str) -> Apply<'_> {
        Apply { manager, sub: None, force: false, schema: None, now: "t" }
    }

    fn db(size: &str) -> Value {
        json!({"apiVersion": "stable.example.com/v1", "kind": "Database", "metadata": {"name": "a"}, "spec": {"engine": "postgres", "size": size}})
    }

    #[test]
    fn apply_conflicts_with_another_manager_unless_forced() {
        let live = apply(&json!({"metadata": {"name": "a"}}), &db("1Gi"), &by("alice")).expect("first apply");
        let err = apply(&live, &db("2Gi"), &by("bob")).expect_err("conflict");
        assert_eq!(err.code, 409);
        assert_eq!(err.message, "Apply failed with 1 conflict: conflict with \"alice\": .spec.size");
        let forced = apply(&live, &db("2Gi"), &Apply { force: true, ..by("bob") }).expect("forced");
        assert_eq!(forced["spec"]["size"], "2Gi");
        let owners = read(&forced);
        let alice = owners.iter().find(|e| e.manager == "alice").expect("alice keeps engine");
        assert!(!alice.fields.contains(&vec!["spec".to_owned(), "size".to_owned()]));
        // Same values are not conflicts.
        assert!(apply(&live, &db("1Gi"), &by("bob")).is_ok());
    }

    #[test]
    fn fields_dropped_from_an_apply_are_removed() {
        let live = apply(&json!({"metadata": {"name": "a"}}), &db("1Gi"), &by("alice")).expect("apply");
        let mut smaller = db("1Gi");
        smaller["spec"].as_object_mut().expect("spec").remove("size");
        let after = apply(&live, &smaller, &by("alice")).expect("apply");
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
        let live = apply(&json!({"metadata": {"name": "a"}}), &db("1Gi"), &by("alice")).expect("apply");
        assert_eq!(live["metadata"]["managedFields"][0]["fieldsV1"], json!({"f:spec": {"f:engine": {}, "f:size": {}}}));
        assert_eq!(read(&live)[0].fields.len(), 2);
    }

    #[test]
    fn kubectl_takes_over_what_its_client_side_apply_recorded() {
        let recorded = r#"{"spec":{"ports":[{"port":53}]}}"#;
        let mut live = json!({"metadata": {"name": "p", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": recorded}},
            "spec": {"ports": [{"port": 53, "protocol": "TCP"}]}});
        let mut entries = Vec::new();
        record_update(&mut entries, "kubectl-client-side-apply", None, "v1", &Changes::created(&live, None), "t");
        write(&mut live, &entries);
        let config = json!({"spec": {"ports": [{"port": 53}]}});
        assert_eq!(apply(&live, &config, &by("someone")).expect_err("a conflict").code, 409);
        let taken = apply(&live, &config, &by("kubectl")).expect("kubectl takes over");
        assert_eq!(taken["spec"]["ports"], json!([{"port": 53}]));
        let other = json!({"spec": {"ports": [{"port": 54}]}, "metadata": {"labels": {"a": "b"}}});
        let mut elsewhere = live.clone();
        elsewhere["metadata"]["labels"] = json!({"a": "c"});
        record_update(&mut entries, "labeler", None, "v1", &changed(&live, &elsewhere, None), "t");
        write(&mut elsewhere, &entries);
        assert_eq!(apply(&elsewhere, &other, &by("kubectl")).expect_err("not recorded").code, 409);
    }

    #[test]
    fn a_removed_field_is_owned_by_nobody() {
        let lease = |holder: &str| {
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 2}})
        };
        let held = apply(&json!({"metadata": {"name": "l"}}), &lease("a"), &by("a")).expect("a acquires");
        let mut released = held.clone();
        released["spec"] = json!({"leaseTransitions": 1});
        let changes = changed(&held, &released, None);
        assert_eq!(changes.removed.len(), 2, "{changes:?}");
        let mut entries = read(&held);
        record_update(&mut entries, "b", None, "coordination.k8s.io/v1", &changes, "t");
        assert_eq!(entries.len(), 1, "a's apply lost what was removed; b owns what it set: {entries:?}");
        assert_eq!(entries[0].manager, "b");
        assert_eq!(entries[0].fields, BTreeSet::from([vec!["spec".to_owned(), "leaseTransitions".to_owned()]]));
        write(&mut released, &entries);
        let next = apply(&released, &lease("c"), &by("c")).expect("no stale ownership to conflict with");
        assert_eq!(next["spec"]["holderIdentity"], "c");
    }

    fn with_finalizer(f: &str) -> Value {
        json!({"apiVersion": "stable.example.com/v1", "kind": "Database", "metadata": {"name": "a", "finalizers": [f]}})
    }

    #[test]
    fn managers_co_own_a_set_list_element_by_element() {
        let live = apply(&db("1Gi"), &with_finalizer("a.io/x"), &by("alice")).expect("alice");
        let both = apply(&live, &with_finalizer("b.io/y"), &by("bob")).expect("no conflict");
        assert_eq!(both["metadata"]["finalizers"], json!(["a.io/x", "b.io/y"]));
        assert_eq!(
            both["metadata"]["managedFields"][1]["fieldsV1"],
            json!({"f:metadata": {"f:finalizers": {"v:\"b.io/y\"": {}}}})
        );
        // Alice stops applying hers: only hers goes.
        let alice_done = apply(&both, &json!({"metadata": {"name": "a"}}), &by("alice")).expect("alice again");
        assert_eq!(alice_done["metadata"]["finalizers"], json!(["b.io/y"]));
    }

    #[test]
    fn map_lists_merge_by_key_and_own_fields_per_element() {
        let schema = json!({"type": "object", "properties": {"status": {"type": "object", "properties": {
            "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object"}}}}}});
        let cond = |t: &str, s: &str| json!({"status": {"conditions": [{"type": t, "status": s}]}});
        let a = Apply { schema: Some(&schema), ..by("alice") };
        let b = Apply { schema: Some(&schema), ..by("bob") };
        let live = apply(&json!({"metadata": {"name": "a"}}), &cond("Ready", "True"), &a).expect("alice");
        let both = apply(&live, &cond("Synced", "False"), &b).expect("bob");
        assert_eq!(
            both["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}])
        );
        let err = apply(&both, &cond("Ready", "False"), &b).expect_err("alice owns Ready's status");
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"alice\": .status.conditions[type=\"Ready\"].status"
        );
        let read_back = read(&both);
        assert!(read_back[0].fields.contains(&vec![
            "status".into(),
            "conditions".into(),
            "k:{\"type\":\"Ready\"}".into()
        ]));
        assert_eq!(
            both["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}}}}})
        );
    }
}
