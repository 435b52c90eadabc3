//! The shared object cache the informers fill and everyone reads: routing, the host's
//! `get`/`list-objects`, the apply stage's owner references.
//!
//! Objects are kept as compact JSON text (what plugins receive anyway) plus the few
//! metadata fields routing needs, with `managedFields` and the kubectl last-applied
//! annotation pruned: a cached object costs about its compact JSON size, not the 3–5× a
//! parsed `serde_json::Value` tree would.

use crate::model::{Gvk, ObjectRef};
use crate::selector::Selector;
use crate::wasm::ObjectSource;
use parking_lot::RwLock;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The annotation `kubectl apply` keeps a full copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One cached object: its pruned compact JSON and the metadata routing needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedObject {
    /// The object as compact JSON.
    pub json: Arc<str>,
    /// Namespace, if namespaced.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
}

impl CachedObject {
    /// Prunes and indexes an object. `None` if it has no name.
    pub fn from_value(mut v: Value) -> Option<Self> {
        let meta = v.get_mut("metadata")?.as_object_mut()?;
        meta.remove("managedFields");
        if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
            ann.remove(LAST_APPLIED);
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
        let s = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_owned);
        let name = s("name")?;
        let obj = CachedObject {
            namespace: s("namespace"),
            uid: s("uid"),
            resource_version: s("resourceVersion"),
            generation: meta.get("generation").and_then(Value::as_i64),
            deleting: meta.get("deletionTimestamp").is_some_and(|d| !d.is_null()),
            finalizers: meta
                .get("finalizers")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            name,
            json: Arc::from(""),
        };
        Some(CachedObject { json: Arc::from(v.to_string()), ..obj })
    }

    /// The object parsed back into a JSON value.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }

    /// `namespace/name` (or `name`).
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Reference to this object, given its kind.
    pub fn object_ref(&self, gvk: &Gvk) -> ObjectRef {
        ObjectRef {
            api_version: gvk.api_version(),
            kind: gvk.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

type Key = (Option<String>, String);
type Kinds = HashMap<Gvk, HashMap<Key, Arc<CachedObject>>>;

/// Every cached object of every watched kind. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Cache {
    kinds: Arc<RwLock<Kinds>>,
}

impl Cache {
    /// Inserts or replaces an object; returns the previous version.
    pub fn apply(&self, gvk: &Gvk, obj: Arc<CachedObject>) -> Option<Arc<CachedObject>> {
        let key = (obj.namespace.clone(), obj.name.clone());
        self.kinds.write().entry(gvk.clone()).or_default().insert(key, obj)
    }

    /// Removes an object; returns the last cached version.
    pub fn delete(&self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<CachedObject>> {
        let key = (namespace.map(str::to_owned), name.to_owned());
        self.kinds.write().get_mut(gvk).and_then(|m| m.remove(&key))
    }

    /// One object.
    pub fn get_object(&self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<CachedObject>> {
        let key = (namespace.map(str::to_owned), name.to_owned());
        self.kinds.read().get(gvk).and_then(|m| m.get(&key).cloned())
    }

    /// Every object of a kind.
    pub fn all(&self, gvk: &Gvk) -> Vec<Arc<CachedObject>> {
        self.kinds.read().get(gvk).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Number of cached objects of a kind.
    pub fn len(&self, gvk: &Gvk) -> usize {
        self.kinds.read().get(gvk).map_or(0, HashMap::len)
    }

    /// Drops a whole kind (its informer stopped).
    pub fn forget(&self, gvk: &Gvk) {
        self.kinds.write().remove(gvk);
    }

    /// Keys of the cached objects of a kind, for relist reconciliation.
    pub(crate) fn keys(&self, gvk: &Gvk) -> Vec<Key> {
        self.kinds.read().get(gvk).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }
}

impl ObjectSource for Cache {
    fn get(&self, target: &ObjectRef) -> Option<Arc<str>> {
        self.get_object(&target.gvk(), target.namespace.as_deref(), &target.name).map(|o| o.json.clone())
    }

    fn list(&self, gvk: &Gvk, namespace: Option<&str>, label_selector: Option<&str>) -> Result<Vec<Arc<str>>, String> {
        let selector = label_selector.map(Selector::parse).transpose().map_err(|e| e.to_string())?;
        let mut out: BTreeMap<String, Arc<str>> = BTreeMap::new();
        for o in self.all(gvk) {
            if namespace.is_some_and(|ns| o.namespace.as_deref() != Some(ns)) {
                continue;
            }
            if let Some(sel) = &selector
                && !sel.is_empty()
                && !sel.matches_object(&o.value())
            {
                continue;
            }
            out.insert(o.key(), o.json.clone());
        }
        Ok(out.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prunes_managed_fields_and_last_applied_and_indexes_metadata() {
        let o = CachedObject::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns", "generation": 3, "uid": "u", "resourceVersion": "9",
                "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"],
                "managedFields": [{"manager": "kubectl"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}}
        }))
        .expect("named");
        assert!(!o.json.contains("managedFields") && !o.json.contains("last-applied"));
        assert_eq!((o.generation, o.deleting, o.finalizers.as_slice()), (Some(3), true, ["x".to_owned()].as_slice()));
        assert_eq!(o.key(), "ns/a");
    }

    #[test]
    fn serves_get_and_filtered_list() {
        let cache = Cache::default();
        let gvk = Gvk::new("", "v1", "ConfigMap");
        for (ns, name, team) in [("a", "x", "red"), ("a", "y", "blue"), ("b", "z", "red")] {
            let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "labels": {"team": team}}});
            cache.apply(&gvk, Arc::new(CachedObject::from_value(v).expect("named")));
        }
        let r = ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("a".into()),
            name: "x".into(),
        };
        assert!(ObjectSource::get(&cache, &r).is_some());
        assert_eq!(cache.list(&gvk, Some("a"), None).expect("list").len(), 2);
        assert_eq!(cache.list(&gvk, None, Some("team=red")).expect("list").len(), 2);
        assert!(cache.list(&gvk, None, Some("team in (")).is_err());
        assert!(cache.delete(&gvk, Some("a"), "x").is_some());
        assert_eq!(cache.len(&gvk), 2);
    }
}
