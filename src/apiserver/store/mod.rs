//! The in-memory object store: every object of every served resource, one global
//! monotonic resourceVersion, a bounded history of changes for watch resumption, and the
//! write semantics of kube-apiserver (`write`: uid, generation, status isolation,
//! optimistic concurrency, finalizers, server-side apply that creates what is missing;
//! `crd`: CRDs that start and stop serving resources). In: decoded bodies and write
//! options from the handlers; out: stored objects and the [`Change`]s watchers see.
//! Field-level semantics (managed fields, apply merges, patches) come from `fields`.
//! Reads of a view (events.k8s.io Events, stored as core Events) come back converted.

mod crd;
mod gc;
mod write;

use super::convert;
use super::resources::{self, ResourceDef};
use super::status::ApiError;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// `(group, plural)`: where every version of a resource is stored.
pub type StorageKey = (String, String);
/// `(namespace or "", name)`.
pub type ObjectKey = (String, String);

/// One change, as watchers see it.
#[derive(Debug, Clone)]
pub struct Change {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Which resource.
    pub key: StorageKey,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object after the change (for DELETED: its last state).
    pub object: Arc<Value>,
    /// The object before the change.
    pub old: Option<Arc<Value>>,
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// `fieldManager`.
    pub manager: String,
    /// `fieldValidation=Strict`: unknown fields are an error, not pruned.
    pub strict: bool,
    /// `dryRun=All`: validate, don't store.
    pub dry_run: bool,
    /// `force=true` on a server-side apply: take over fields other managers own.
    pub force: bool,
}

/// Options of a delete (`DeleteOptions`).
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `preconditions.uid`: delete only this incarnation of the object.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`: delete only this version of the object.
    pub resource_version: Option<String>,
    /// `dryRun=All`: check, don't delete.
    pub dry_run: bool,
    /// `propagationPolicy` (or the deprecated `orphanDependents`), if given.
    pub propagation: Option<Propagation>,
}

/// What happens to an object's dependents when it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents lose their owner reference (finalizer `orphan` until done).
    Orphan,
    /// The object goes now; the garbage collector deletes dependents afterwards.
    Background,
    /// Dependents are deleted first (finalizer `foregroundDeletion` until done).
    Foreground,
}

/// The finalizer of an orphaning delete.
pub const ORPHAN: &str = "orphan";
/// The finalizer of a foreground delete.
pub const FOREGROUND: &str = "foregroundDeletion";

/// What a delete did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The object is gone; its last state.
    Removed(Arc<Value>),
    /// The object is terminating, held by finalizers; its new state.
    Terminating(Arc<Value>),
}

/// The store.
pub struct Store {
    rv: u64,
    defs: Vec<Arc<ResourceDef>>,
    objects: HashMap<StorageKey, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    window: usize,
    compacted: u64,
    tx: broadcast::Sender<Arc<Change>>,
}

/// A stored object as `def` serves it (a no-op but for views).
fn served(def: &ResourceDef, o: Arc<Value>) -> Arc<Value> {
    if convert::is_view(def) { Arc::new(convert::served(def, &o).into_owned()) } else { o }
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Store {
    /// An empty store with the built-in kinds and the usual namespaces.
    pub fn new(window: usize) -> Self {
        // Watchers that fall this far behind are disconnected and relist.
        let (tx, _) = broadcast::channel(65_536);
        let mut s = Self {
            rv: 1,
            defs: resources::builtins().into_iter().map(Arc::new).collect(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            window: window.max(1),
            compacted: 0,
            tx,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let def = s.find("", "v1", "namespaces").expect("namespaces are built in");
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let _ =
                s.create(&def, None, body, &WriteOpts { manager: "kreflex-apiserver".into(), ..Default::default() });
        }
        s
    }

    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch can resume from.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Every served resource.
    pub fn defs(&self) -> &[Arc<ResourceDef>] {
        &self.defs
    }

    /// A served resource by group, version and plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.defs.iter().find(|d| d.group == group && d.version == version && d.plural == plural).cloned()
    }

    /// Subscribes to changes (before reading history, so nothing is missed).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Changes after `rv` for a resource, or `None` if `rv` is older than the history.
    pub fn since(&self, key: &StorageKey, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.compacted {
            return None;
        }
        Some(self.history.iter().filter(|c| c.rv > rv && &c.key == key).cloned().collect())
    }

    /// One object, as `def` serves it.
    pub fn get(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> Option<Arc<Value>> {
        let o = self.objects.get(&def.storage_key())?.get(&(ns.unwrap_or("").to_owned(), name.to_owned()))?;
        Some(served(def, o.clone()))
    }

    /// Objects of a resource, in one namespace or all, in key order, as `def` serves them.
    pub fn list(&self, def: &ResourceDef, ns: Option<&str>) -> Vec<Arc<Value>> {
        let Some(m) = self.objects.get(&def.storage_key()) else {
            return Vec::new();
        };
        let stored: Vec<Arc<Value>> = match ns {
            Some(ns) => m
                .range((ns.to_owned(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            None => m.values().cloned().collect(),
        };
        stored.into_iter().map(|o| served(def, o)).collect()
    }

    /// The resource a view (`def`) is stored as; writes to a view are writes to it.
    fn storage_def(&self, def: &ResourceDef) -> Option<Arc<ResourceDef>> {
        let (group, version, plural) = convert::storage_of(def)?;
        self.find(group, version, plural)
    }

    /// Every object of a resource with its key (for state snapshots).
    pub fn all_objects(&self) -> Vec<(StorageKey, Arc<Value>)> {
        self.objects.iter().flat_map(|(k, m)| m.values().map(move |v| (k.clone(), v.clone()))).collect()
    }

    fn record(&mut self, key: StorageKey, kind: &'static str, object: Arc<Value>, old: Option<Arc<Value>>) {
        let change = Arc::new(Change { rv: self.rv, key, kind, object, old });
        self.history.push_back(change.clone());
        while self.history.len() > self.window {
            if let Some(c) = self.history.pop_front() {
                self.compacted = c.rv;
            }
        }
        let _ = self.tx.send(change);
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.objects
            .get(&(String::new(), "namespaces".into()))
            .is_some_and(|m| m.contains_key(&(String::new(), ns.to_owned())))
    }

    /// Stores a changed object, or removes it if it is terminating with no finalizers left.
    fn commit(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        mut new: Value,
        old: Option<Arc<Value>>,
    ) -> Result<Arc<Value>, ApiError> {
        let rv = self.next_rv();
        new["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let done = new.pointer("/metadata/deletionTimestamp").is_some()
            && new.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(|a| a.is_empty());
        let obj = Arc::new(new);
        let key = (ns.unwrap_or("").to_owned(), name.to_owned());
        if done {
            self.remove(def, &key, obj.clone());
        } else {
            self.objects.entry(def.storage_key()).or_default().insert(key, obj.clone());
            self.record(def.storage_key(), "MODIFIED", obj.clone(), old);
        }
        Ok(obj)
    }

    fn remove(&mut self, def: &ResourceDef, key: &ObjectKey, last: Arc<Value>) {
        if let Some(m) = self.objects.get_mut(&def.storage_key()) {
            m.remove(key);
        }
        self.record(def.storage_key(), "DELETED", last.clone(), None);
        if def.kind == "CustomResourceDefinition" {
            self.unserve_crd(&last);
        }
        if def.kind == "Namespace" {
            self.delete_namespace_contents(&key.1);
        }
    }

    fn delete_namespace_contents(&mut self, ns: &str) {
        let defs: Vec<Arc<ResourceDef>> = self.defs.iter().filter(|d| d.namespaced).cloned().collect();
        let mut seen = std::collections::HashSet::new();
        for def in defs {
            if !seen.insert(def.storage_key()) {
                continue;
            }
            for obj in self.list(&def, Some(ns)) {
                let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
                let rv = self.next_rv();
                let mut last = (*obj).clone();
                last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                self.remove(&def, &(ns.to_owned(), name), Arc::new(last));
            }
        }
    }

    /// Loads objects saved by a snapshot (CRDs first, so their resources are served; objects
    /// saved under a view's own key, as older snapshots did, move to its storage).
    pub fn restore(&mut self, rv: u64, objects: Vec<(StorageKey, Value)>) {
        let (crds, rest): (Vec<_>, Vec<_>) = objects.into_iter().partition(|(k, _)| k.1 == "customresourcedefinitions");
        for (mut key, mut obj) in crds.into_iter().chain(rest) {
            if let Some(def) = self.defs.iter().find(|d| (&d.group, &d.plural) == (&key.0, &key.1)).cloned()
                && def.storage_key() != key
            {
                key = def.storage_key();
                obj = convert::to_storage(&def, obj);
            }
            if key.1 == "customresourcedefinitions"
                && let Ok(defs) = resources::from_crd(&obj)
            {
                self.serve_crd(&mut obj, defs);
            }
            let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_owned();
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
            self.objects.entry(key).or_default().insert((ns, name), Arc::new(obj));
        }
        self.rv = self.rv.max(rv);
        self.compacted = self.rv;
    }
}
