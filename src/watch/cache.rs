//! The shared object cache the informers fill and everyone reads: routing, the host's
//! `get`/`list-objects`, the apply stage's owner references.
//!
//! Memory is the point of this module's shape. An object is kept as its compact JSON (what
//! plugins receive anyway), with `managedFields` and the kubectl last-applied annotation
//! pruned, in one allocation. The metadata routing needs (namespace, name, uid,
//! resourceVersion, finalizers) is not copied out: it is held as byte spans into that JSON,
//! found while writing it. The index is a hash table of pointers hashed by
//! (namespace, name), so the key is not stored a second time either. A cached object costs
//! its JSON plus a fixed ~150 bytes (see `cargo bench --bench engine`), not the 3–5× a
//! parsed `serde_json::Value` tree would.

use super::scope::WatchScope;
use crate::model::{Gvk, ObjectRef};
use crate::selector::{Selector, SelectorError};
use crate::wasm::{ObjectSource, Unwatched};
use hashbrown::HashTable;
use parking_lot::RwLock;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

/// The annotation `kubectl apply` keeps a full copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Where a metadata string sits in [`CachedObject::buf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    const ABSENT: Span = Span { start: u32::MAX, len: 0 };
}

/// Indexes into [`CachedObject::spans`].
const NAMESPACE: usize = 0;
const NAME: usize = 1;
const UID: usize = 2;
const RESOURCE_VERSION: usize = 3;

/// One cached object: its pruned compact JSON and the metadata routing needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedObject {
    /// The compact JSON, then (rarely) metadata strings whose JSON form has escapes and so
    /// cannot be pointed at inside it.
    buf: Box<str>,
    json_len: u32,
    /// namespace, name, uid, resourceVersion.
    spans: [Span; 4],
    generation: Option<i64>,
    deleting: bool,
    finalizers: Box<[Span]>,
}

/// A metadata string found while writing the JSON.
enum Found {
    InJson(Span),
    Escaped(String),
}

/// Writes compact JSON, remembering where the metadata strings are.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    spans: [Option<Found>; 4],
    finalizers: Vec<Found>,
}

impl Writer {
    fn value<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        serde_json::to_writer(&mut self.out, v).expect("invariant: serializing a JSON value into a Vec cannot fail");
    }

    /// Writes a string value and says where its unescaped text is.
    fn string(&mut self, s: &str) -> Found {
        let at = self.out.len();
        self.value(s);
        match u32::try_from(at + 1) {
            Ok(start) if self.out.len() - at == s.len() + 2 => Found::InJson(Span { start, len: s.len() as u32 }),
            _ => Found::Escaped(s.to_owned()),
        }
    }

    fn object(&mut self, map: &Map<String, Value>, mut each: impl FnMut(&mut Self, &str, &Value)) {
        self.out.push(b'{');
        for (i, (k, v)) in map.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.value(k);
            self.out.push(b':');
            each(self, k, v);
        }
        self.out.push(b'}');
    }

    fn metadata(&mut self, k: &str, v: &Value) {
        let slot = match k {
            "namespace" => NAMESPACE,
            "name" => NAME,
            "uid" => UID,
            "resourceVersion" => RESOURCE_VERSION,
            "finalizers" => {
                let Value::Array(items) = v else { return self.value(v) };
                self.out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    match item.as_str() {
                        Some(f) => {
                            let found = self.string(f);
                            self.finalizers.push(found);
                        }
                        None => self.value(item),
                    }
                }
                return self.out.push(b']');
            }
            _ => return self.value(v),
        };
        match v.as_str() {
            Some(s) => self.spans[slot] = Some(self.string(s)),
            None => self.value(v),
        }
    }
}

impl CachedObject {
    /// Prunes and indexes an object. `None` if it has no name (or is over 4 GiB).
    pub fn from_value(mut v: Value) -> Option<Self> {
        let meta = v.get_mut("metadata")?.as_object_mut()?;
        meta.remove("managedFields");
        if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
            ann.remove(LAST_APPLIED);
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
        let generation = meta.get("generation").and_then(Value::as_i64);
        let deleting = meta.get("deletionTimestamp").is_some_and(|d| !d.is_null());
        let Value::Object(top) = &v else { return None };
        let mut w = Writer::default();
        w.object(top, |w, k, v| match v {
            Value::Object(meta) if k == "metadata" => w.object(meta, Writer::metadata),
            _ => w.value(v),
        });
        w.spans[NAME].as_ref()?;
        let json_len = u32::try_from(w.out.len()).ok()?;
        let mut out = w.out;
        let mut place = |found: Found| match found {
            Found::InJson(span) => Some(span),
            Found::Escaped(s) => {
                let span = Span { start: u32::try_from(out.len()).ok()?, len: u32::try_from(s.len()).ok()? };
                out.extend_from_slice(s.as_bytes());
                Some(span)
            }
        };
        let mut spans = [Span::ABSENT; 4];
        for (slot, found) in w.spans.into_iter().enumerate() {
            if let Some(found) = found {
                spans[slot] = place(found)?;
            }
        }
        let finalizers = w.finalizers.into_iter().map(&mut place).collect::<Option<Box<[Span]>>>()?;
        let buf = String::from_utf8(out).expect("invariant: serde_json writes UTF-8 and only str was appended");
        Some(CachedObject { buf: buf.into_boxed_str(), json_len, spans, generation, deleting, finalizers })
    }

    fn text(&self, span: Span) -> Option<&str> {
        if span == Span::ABSENT {
            return None;
        }
        let start = span.start as usize;
        self.buf.get(start..start + span.len as usize)
    }

    /// The object as compact JSON.
    pub fn json(&self) -> &str {
        &self.buf[..self.json_len as usize]
    }

    /// The object parsed back into a JSON value.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.json()).unwrap_or(Value::Null)
    }

    /// Namespace, if namespaced.
    pub fn namespace(&self) -> Option<&str> {
        self.text(self.spans[NAMESPACE])
    }

    /// Name.
    pub fn name(&self) -> &str {
        self.text(self.spans[NAME]).unwrap_or_default()
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> Option<&str> {
        self.text(self.spans[UID])
    }

    /// `metadata.resourceVersion`.
    pub fn resource_version(&self) -> Option<&str> {
        self.text(self.spans[RESOURCE_VERSION])
    }

    /// `metadata.generation`.
    pub fn generation(&self) -> Option<i64> {
        self.generation
    }

    /// Whether `metadata.deletionTimestamp` is set.
    pub fn deleting(&self) -> bool {
        self.deleting
    }

    /// `metadata.finalizers`.
    pub fn finalizers(&self) -> impl Iterator<Item = &str> {
        self.finalizers.iter().filter_map(|s| self.text(*s))
    }

    /// Whether `metadata.finalizers` holds `finalizer`.
    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers().any(|f| f == finalizer)
    }

    /// Whether this is the object `namespace`/`name`.
    pub fn is_named(&self, namespace: Option<&str>, name: &str) -> bool {
        self.namespace() == namespace && self.name() == name
    }

    /// `(namespace, name)`, owned.
    pub(crate) fn owned_key(&self) -> Key {
        (self.namespace().map(str::to_owned), self.name().to_owned())
    }

    /// `namespace/name` (or `name`).
    pub fn key(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{ns}/{}", self.name()),
            None => self.name().to_owned(),
        }
    }

    /// Reference to this object, given its kind.
    pub fn object_ref(&self, gvk: &Gvk) -> ObjectRef {
        ObjectRef {
            api_version: gvk.api_version(),
            kind: gvk.kind.clone(),
            namespace: self.namespace().map(str::to_owned),
            name: self.name().to_owned(),
        }
    }
}

/// `(namespace, name)`, owned: what relist reconciliation compares.
pub(crate) type Key = (Option<String>, String);

/// The objects of one kind.
#[derive(Debug, Default)]
struct Objects {
    table: HashTable<Arc<CachedObject>>,
}

impl Objects {
    fn find(&self, hash: u64, namespace: Option<&str>, name: &str) -> Option<&Arc<CachedObject>> {
        self.table.find(hash, |o| o.is_named(namespace, name))
    }
}

#[derive(Debug, Default)]
struct Kinds {
    kinds: HashMap<Gvk, Objects>,
    hasher: RandomState,
}

/// The table hash of the object `namespace`/`name`.
fn key_hash(hasher: &RandomState, namespace: Option<&str>, name: &str) -> u64 {
    hasher.hash_one((namespace, name))
}

/// Every cached object of every watched kind, in the watched namespaces. Cheap to clone
/// (shared).
#[derive(Debug, Clone, Default)]
pub struct Cache {
    kinds: Arc<RwLock<Kinds>>,
    scope: WatchScope,
}

impl Cache {
    /// An empty cache for the objects of `scope` (the informers fill it from those
    /// namespaces only; [`Cache::default`] is the whole cluster).
    pub fn new(scope: WatchScope) -> Self {
        Self { kinds: Arc::default(), scope }
    }

    /// The namespaces this cache holds objects of.
    pub fn scope(&self) -> &WatchScope {
        &self.scope
    }

    /// Inserts or replaces an object; returns the previous version.
    pub fn apply(&self, gvk: &Gvk, obj: Arc<CachedObject>) -> Option<Arc<CachedObject>> {
        let mut guard = self.kinds.write();
        let Kinds { kinds, hasher } = &mut *guard;
        let hash = key_hash(hasher, obj.namespace(), obj.name());
        let objects = kinds.entry(gvk.clone()).or_default();
        let rehash = |o: &Arc<CachedObject>| key_hash(hasher, o.namespace(), o.name());
        match objects.table.entry(hash, |o| o.is_named(obj.namespace(), obj.name()), rehash) {
            hashbrown::hash_table::Entry::Occupied(mut e) => Some(std::mem::replace(e.get_mut(), obj)),
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(obj);
                None
            }
        }
    }

    /// Removes an object; returns the last cached version.
    pub fn delete(&self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<CachedObject>> {
        let mut guard = self.kinds.write();
        let hash = key_hash(&guard.hasher, namespace, name);
        let objects = guard.kinds.get_mut(gvk)?;
        let entry = objects.table.find_entry(hash, |o| o.is_named(namespace, name)).ok()?;
        Some(entry.remove().0)
    }

    /// One object.
    pub fn get_object(&self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<CachedObject>> {
        let guard = self.kinds.read();
        guard.kinds.get(gvk)?.find(key_hash(&guard.hasher, namespace, name), namespace, name).cloned()
    }

    /// Every object of a kind.
    pub fn all(&self, gvk: &Gvk) -> Vec<Arc<CachedObject>> {
        self.kinds.read().kinds.get(gvk).map(|m| m.table.iter().cloned().collect()).unwrap_or_default()
    }

    /// Number of cached objects of a kind.
    pub fn len(&self, gvk: &Gvk) -> usize {
        self.kinds.read().kinds.get(gvk).map_or(0, |m| m.table.len())
    }

    /// Drops a whole kind (its informer stopped).
    pub fn forget(&self, gvk: &Gvk) {
        self.kinds.write().kinds.remove(gvk);
    }

    /// Keys of the cached objects of a kind, for relist reconciliation: all of them, or
    /// (`within`) those of one namespace, when the relisting watch covers only that one.
    pub(crate) fn keys(&self, gvk: &Gvk, within: Option<&str>) -> Vec<Key> {
        let guard = self.kinds.read();
        let Some(objects) = guard.kinds.get(gvk) else { return Vec::new() };
        let mine = |o: &&Arc<CachedObject>| within.is_none_or(|ns| o.namespace() == Some(ns));
        objects.table.iter().filter(mine).map(|o| o.owned_key()).collect()
    }
}

impl ObjectSource for Cache {
    fn get(&self, target: &ObjectRef) -> Option<String> {
        self.get_object(&target.gvk(), target.namespace.as_deref(), &target.name).map(|o| o.json().to_owned())
    }

    fn list(
        &self,
        gvk: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, SelectorError> {
        let selector = label_selector.map(Selector::parse).transpose()?;
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for o in self.all(gvk) {
            if namespace.is_some_and(|ns| o.namespace() != Some(ns)) {
                continue;
            }
            if let Some(sel) = &selector
                && !sel.is_empty()
                && !sel.matches_object(&o.value())
            {
                continue;
            }
            out.insert(o.key(), o.json().to_owned());
        }
        Ok(out.into_values().collect())
    }

    fn watches(&self, namespace: &str) -> Result<(), Unwatched> {
        if self.scope.includes(namespace) { Ok(()) } else { Err(Unwatched { watched: self.scope.to_string() }) }
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
        assert!(!o.json().contains("managedFields") && !o.json().contains("last-applied"));
        assert_eq!((o.generation(), o.deleting(), o.finalizers().collect::<Vec<_>>()), (Some(3), true, vec!["x"]));
        assert_eq!((o.key(), o.uid(), o.resource_version()), ("ns/a".to_owned(), Some("u"), Some("9")));
        let back = o.value();
        assert_eq!(
            (back["metadata"]["name"].as_str(), back["metadata"]["finalizers"][0].as_str()),
            (Some("a"), Some("x"))
        );
    }

    #[test]
    fn metadata_that_needs_escaping_in_json_reads_back_unescaped() {
        let o = CachedObject::from_value(json!({
            "kind": "Odd", "metadata": {"name": "a\"b", "namespace": "n\u{1}s", "finalizers": ["x\\y", "plain"]},
            "spec": {"name": "not-the-name"}
        }))
        .expect("named");
        assert_eq!((o.name(), o.namespace(), o.uid()), ("a\"b", Some("n\u{1}s"), None));
        assert_eq!(o.finalizers().collect::<Vec<_>>(), ["x\\y", "plain"]);
        assert_eq!(o.value()["metadata"]["name"], "a\"b");
        assert!(CachedObject::from_value(json!({"metadata": {"namespace": "a"}})).is_none(), "no name");
    }

    #[test]
    fn replaces_and_deletes_by_namespace_and_name() {
        let cache = Cache::default();
        let gvk = Gvk::new("", "v1", "ConfigMap");
        let cm = |ns: Option<&str>, rv: &str| {
            let mut v = json!({"metadata": {"name": "x", "resourceVersion": rv}});
            if let Some(ns) = ns {
                v["metadata"]["namespace"] = json!(ns);
            }
            Arc::new(CachedObject::from_value(v).expect("named"))
        };
        assert!(cache.apply(&gvk, cm(Some("a"), "1")).is_none());
        assert!(cache.apply(&gvk, cm(None, "2")).is_none(), "cluster-scoped x is another object");
        let prev = cache.apply(&gvk, cm(Some("a"), "3")).expect("replaced");
        assert_eq!(prev.resource_version(), Some("1"));
        assert_eq!(cache.len(&gvk), 2);
        assert_eq!(
            cache.get_object(&gvk, Some("a"), "x").and_then(|o| o.resource_version().map(str::to_owned)),
            Some("3".into())
        );
        assert_eq!(cache.delete(&gvk, None, "x").map(|o| o.key()), Some("x".into()));
        assert_eq!(cache.keys(&gvk, None), vec![(Some("a".to_owned()), "x".to_owned())]);
        assert_eq!(cache.keys(&gvk, Some("a")), vec![(Some("a".to_owned()), "x".to_owned())]);
        assert!(cache.keys(&gvk, Some("b")).is_empty(), "a relist of b reconciles only b's objects");
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

    #[test]
    fn says_which_namespaces_it_holds() {
        assert_eq!(ObjectSource::watches(&Cache::default(), "any"), Ok(()));
        let cache = Cache::new(WatchScope::namespaces(["a", "b"]));
        assert_eq!(ObjectSource::watches(&cache, "a"), Ok(()));
        let refused = ObjectSource::watches(&cache, "c").expect_err("c is not watched");
        assert_eq!(refused.to_string(), "kreflex watches only namespaces a, b (--watch-namespace)");
    }
}
