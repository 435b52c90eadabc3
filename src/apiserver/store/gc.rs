//! Garbage collection over the store, as kube-controller-manager's garbage collector
//! does it: an object whose owners (`metadata.ownerReferences`, by uid) are all gone is
//! deleted in the background; one whose owner is being deleted in the foreground is
//! deleted in the foreground too, and the owner keeps its `foregroundDeletion` finalizer
//! until no dependent with `blockOwnerDeletion` is left; an owner deleted with `orphan`
//! has its dependents' references to it removed, then its finalizer. References to
//! missing owners next to live ones are dropped. In: the store; out: the deletes and
//! updates, made as ordinary writes (watchers see them). `apiserver::gc` runs a pass
//! after the changes that can call for one.

use super::{DeleteOpts, FOREGROUND, ORPHAN, ObjectKey, Propagation, StorageKey, Store, WriteOpts};
use crate::apiserver::resources::ResourceDef;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The field manager of the collector's writes.
const MANAGER: &str = "generic-garbage-collector";

/// One thing the collector does.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    /// Delete a dependent.
    Delete(StorageKey, ObjectKey, Propagation),
    /// Remove owner references (by uid) from an object.
    DropOwners(StorageKey, ObjectKey, Vec<String>),
    /// Remove a propagation finalizer from an owner whose dependents are dealt with.
    Release(StorageKey, ObjectKey, &'static str),
}

fn s<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn has_finalizer(o: &Value, f: &str) -> bool {
    o.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == f))
}

fn deleting(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp").is_some()
}

fn owner_refs(o: &Value) -> &[Value] {
    o.pointer("/metadata/ownerReferences").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// The dependents of one owner, and whether one of them blocks the owner's deletion.
#[derive(Debug, Clone, Default)]
struct Dependents<'a> {
    of: Vec<(&'a StorageKey, &'a ObjectKey)>,
    blocking: bool,
}

/// What one pass must do, from every stored object.
fn plan(objects: &[(&StorageKey, &ObjectKey, &Value)]) -> Vec<Action> {
    let by_uid: HashMap<&str, &Value> =
        objects.iter().map(|(_, _, o)| (s(o, "/metadata/uid"), *o)).filter(|(u, _)| !u.is_empty()).collect();
    let mut dependents: HashMap<&str, Dependents> = HashMap::new();
    let mut actions = Vec::new();
    for (key, okey, o) in objects {
        let refs = owner_refs(o);
        if refs.is_empty() {
            continue;
        }
        let (mut solid, mut absent, mut foreground) = (0, Vec::new(), 0);
        for r in refs {
            let uid = s(r, "/uid");
            let entry = dependents.entry(uid).or_default();
            entry.of.push((*key, *okey));
            entry.blocking |= r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true);
            match by_uid.get(uid) {
                None => absent.push(uid.to_owned()),
                Some(owner) if deleting(owner) && has_finalizer(owner, FOREGROUND) => foreground += 1,
                Some(_) => solid += 1,
            }
        }
        if deleting(o) {
            continue;
        }
        if solid == 0 && foreground > 0 {
            actions.push(Action::Delete((*key).clone(), (*okey).clone(), Propagation::Foreground));
        } else if solid == 0 {
            actions.push(Action::Delete((*key).clone(), (*okey).clone(), Propagation::Background));
        } else if !absent.is_empty() {
            actions.push(Action::DropOwners((*key).clone(), (*okey).clone(), absent));
        }
    }
    for (key, okey, o) in objects.iter().filter(|(_, _, o)| deleting(o)) {
        let uid = s(o, "/metadata/uid");
        let deps = dependents.get(uid).cloned().unwrap_or_default();
        if has_finalizer(o, ORPHAN) {
            for (dk, dok) in deps.of {
                actions.push(Action::DropOwners(dk.clone(), dok.clone(), vec![uid.to_owned()]));
            }
            actions.push(Action::Release((*key).clone(), (*okey).clone(), ORPHAN));
        } else if has_finalizer(o, FOREGROUND) && !deps.blocking {
            actions.push(Action::Release((*key).clone(), (*okey).clone(), FOREGROUND));
        }
    }
    actions
}

impl Store {
    /// One garbage-collection pass; returns how many writes it made.
    pub fn collect_garbage(&mut self) -> usize {
        let objects: Vec<(&StorageKey, &ObjectKey, &Value)> =
            self.objects.iter().flat_map(|(key, m)| m.iter().map(move |(okey, o)| (key, okey, &**o))).collect();
        let actions = plan(&objects);
        let mut done = 0;
        for action in actions {
            let result = match &action {
                Action::Delete(key, okey, propagation) => self.storage_def_of(key).map(|def| {
                    let opts = DeleteOpts { propagation: Some(*propagation), ..Default::default() };
                    self.delete(&def, ns(okey), &okey.1, &opts).map(|_| ())
                }),
                Action::DropOwners(key, okey, uids) => self.rewrite(key, okey, |o| {
                    let kept: Vec<Value> =
                        owner_refs(o).iter().filter(|r| !uids.iter().any(|u| u == s(r, "/uid"))).cloned().collect();
                    match o["metadata"].as_object_mut() {
                        Some(m) if kept.is_empty() => {
                            m.remove("ownerReferences");
                        }
                        Some(m) => {
                            m.insert("ownerReferences".into(), Value::Array(kept));
                        }
                        None => {}
                    }
                }),
                Action::Release(key, okey, finalizer) => self.rewrite(key, okey, |o| {
                    if let Some(list) = o.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                        list.retain(|f| f != finalizer);
                    }
                }),
            };
            match result {
                Some(Ok(())) => done += 1,
                Some(Err(e)) => tracing::debug!(?action, error = %e.message, "garbage collection step failed"),
                None => {}
            }
        }
        done
    }

    /// A served resource stored under `key` (not a view of another's storage).
    fn storage_def_of(&self, key: &StorageKey) -> Option<Arc<ResourceDef>> {
        self.defs.iter().find(|d| (&d.group, &d.plural) == (&key.0, &key.1)).cloned()
    }

    /// Updates a stored object with `change` applied, as the collector.
    fn rewrite(
        &mut self,
        key: &StorageKey,
        okey: &ObjectKey,
        change: impl FnOnce(&mut Value),
    ) -> Option<Result<(), crate::apiserver::status::ApiError>> {
        let def = self.storage_def_of(key)?;
        let mut o = (*self.get(&def, ns(okey), &okey.1)?).clone();
        change(&mut o);
        let opts = WriteOpts { manager: MANAGER.into(), ..Default::default() };
        Some(self.update(&def, ns(okey), &okey.1, o, None, &opts).map(|_| ()))
    }
}

fn ns(okey: &ObjectKey) -> Option<&str> {
    (!okey.0.is_empty()).then_some(okey.0.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(uid: &str, owners: &[(&str, bool)], finalizers: &[&str], deleting: bool) -> Arc<Value> {
        let mut o = json!({"metadata": {"name": uid, "uid": uid}});
        if !owners.is_empty() {
            o["metadata"]["ownerReferences"] =
                owners.iter().map(|(u, block)| json!({"uid": u, "blockOwnerDeletion": block})).collect();
        }
        if !finalizers.is_empty() {
            o["metadata"]["finalizers"] = json!(finalizers);
        }
        if deleting {
            o["metadata"]["deletionTimestamp"] = json!("2026-12-01T05:00:00Z");
        }
        Arc::new(o)
    }

    fn keys(objects: &[Arc<Value>]) -> Vec<(StorageKey, ObjectKey)> {
        objects
            .iter()
            .map(|o| ((String::new(), "configmaps".to_owned()), (String::new(), s(o, "/metadata/name").to_owned())))
            .collect()
    }

    fn names(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Delete(_, k, p) => format!("delete {} {p:?}", k.1),
                Action::DropOwners(_, k, u) => format!("drop {} {u:?}", k.1),
                Action::Release(_, k, f) => format!("release {} {f}", k.1),
            })
            .collect()
    }

    #[test]
    fn decides_like_the_cluster_garbage_collector() {
        type Case = (&'static str, Vec<Arc<Value>>, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            ("owner alive", vec![obj("o", &[], &[], false), obj("d", &[("o", false)], &[], false)], vec![]),
            ("owner gone", vec![obj("d", &[("o", false)], &[], false)], vec!["delete d Background"]),
            (
                "one of two owners gone",
                vec![obj("o", &[], &[], false), obj("d", &[("o", false), ("x", false)], &[], false)],
                vec![r#"drop d ["x"]"#],
            ),
            (
                "foreground owner waits for a blocking dependent",
                vec![obj("o", &[], &[FOREGROUND], true), obj("d", &[("o", true)], &[], false)],
                vec!["delete d Foreground"],
            ),
            (
                "foreground owner released when no dependent blocks",
                vec![obj("o", &[], &[FOREGROUND], true)],
                vec!["release o foregroundDeletion"],
            ),
            (
                "orphaning owner",
                vec![obj("o", &[], &[ORPHAN], true), obj("d", &[("o", false)], &[], false)],
                vec![r#"drop d ["o"]"#, "release o orphan"],
            ),
            ("terminating dependent is left alone", vec![obj("d", &[("o", false)], &["x.io/hold"], true)], vec![]),
        ];
        for (what, objects, expected) in cases {
            let keys = keys(&objects);
            let at: Vec<_> = keys.iter().zip(&objects).map(|((k, ok), o)| (k, ok, &**o)).collect();
            assert_eq!(names(&plan(&at)), expected, "{what}");
        }
    }
}
