//! The in-memory object store: every object of every served resource, one global
//! monotonic resourceVersion, a bounded history of changes for watch resumption, and the
//! write semantics of kube-apiserver (uid, generation, status isolation, optimistic
//! concurrency, finalizers, CRDs that start and stop serving resources, server-side apply
//! that creates what is missing). In: decoded bodies and write options from the handlers;
//! out: stored objects and the [`Change`]s watchers see. Field-level semantics (managed
//! fields, apply merges, patches) come from `fields`.

use super::fields;
use super::resources::{self, ResourceDef};
use super::schema;
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

    /// One object.
    pub fn get(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> Option<Arc<Value>> {
        self.objects.get(&def.storage_key())?.get(&(ns.unwrap_or("").to_owned(), name.to_owned())).cloned()
    }

    /// Objects of a resource, in one namespace or all, in key order.
    pub fn list(&self, def: &ResourceDef, ns: Option<&str>) -> Vec<Arc<Value>> {
        let Some(m) = self.objects.get(&def.storage_key()) else {
            return Vec::new();
        };
        match ns {
            Some(ns) => m
                .range((ns.to_owned(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            None => m.values().cloned().collect(),
        }
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

    /// Checks identity fields of a body against the URL's resource.
    fn check_kind(def: &ResourceDef, body: &Value) -> Result<(), ApiError> {
        let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        if !kind.is_empty() && kind != def.kind {
            return Err(ApiError::invalid(
                def,
                kind,
                name,
                &[(
                    "FieldValueInvalid".into(),
                    format!("Invalid value: \"{kind}\": must be {}", def.kind),
                    "kind".into(),
                )],
            ));
        }
        if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
            && av != def.api_version()
            && !(av.split('/').next() == Some(def.group.as_str()) || (def.group.is_empty() && !av.contains('/')))
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                def.api_version()
            )));
        }
        Ok(())
    }

    /// Schema validation and pruning of a custom resource.
    fn validate(def: &ResourceDef, obj: &mut Value, strict: bool) -> Result<(), ApiError> {
        let Some(schema) = &def.schema else {
            return Ok(());
        };
        let checked = schema::check(schema, obj);
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
        if !checked.causes.is_empty() {
            return Err(ApiError::invalid(def, &def.kind, &name, &checked.causes));
        }
        if strict && !checked.unknown.is_empty() {
            let list = checked.unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect::<Vec<_>>().join(", ");
            return Err(ApiError::bad_request(format!("strict decoding error: {list}")));
        }
        Ok(())
    }

    /// Creates an object (POST).
    pub fn create(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        mut body: Value,
        opts: &WriteOpts,
    ) -> Result<Arc<Value>, ApiError> {
        Self::check_kind(def, &body)?;
        if !body.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        let meta = body.as_object_mut().expect("checked above").entry("metadata").or_insert_with(|| json!({}));
        if !meta.is_object() {
            return Err(ApiError::bad_request("metadata must be an object"));
        }
        let mut name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
        if name.is_empty() {
            let prefix = meta.get("generateName").and_then(Value::as_str).unwrap_or("");
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    def,
                    &def.kind,
                    "",
                    &[(
                        "FieldValueRequired".into(),
                        "Required value: name or generateName is required".into(),
                        "metadata.name".into(),
                    )],
                ));
            }
            name = format!("{prefix}{}", random_suffix());
        }
        if let Err(reason) = crate::actions::check_name(&name) {
            return Err(ApiError::invalid(
                def,
                &def.kind,
                &name,
                &[("FieldValueInvalid".into(), reason, "metadata.name".into())],
            ));
        }
        let ns = if def.namespaced { Some(ns.unwrap_or("default")) } else { None };
        if let Some(body_ns) = meta.get("namespace").and_then(Value::as_str)
            && Some(body_ns) != ns
            && def.namespaced
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let Some(ns) = ns
            && !self.namespace_exists(ns)
        {
            return Err(ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
                .details(json!({"name": ns, "kind": "namespaces"})));
        }
        if self.get(def, ns, &name).is_some() {
            return Err(ApiError::already_exists(def, &name));
        }
        let ts = now();
        {
            let meta = body["metadata"].as_object_mut().expect("metadata is an object");
            meta.insert("name".into(), Value::String(name.clone()));
            match ns {
                Some(ns) => meta.insert("namespace".into(), Value::String(ns.into())),
                None => meta.remove("namespace"),
            };
            meta.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), Value::String(ts.clone()));
            for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "managedFields", "selfLink"]
            {
                meta.remove(k);
            }
            if def.custom || def.kind == "CustomResourceDefinition" {
                meta.insert("generation".into(), json!(1));
            }
        }
        body["apiVersion"] = Value::String(def.api_version());
        body["kind"] = Value::String(def.kind.clone());
        if def.status
            && def.kind != "Namespace"
            && let Some(m) = body.as_object_mut()
        {
            m.remove("status");
        }
        if def.kind == "Namespace" {
            body["status"] = json!({"phase": "Active"});
        }
        Self::validate(def, &mut body, opts.strict)?;
        let new_defs = if def.kind == "CustomResourceDefinition" { Some(self.crd_defs(&body)?) } else { None };
        let mut entries = Vec::new();
        fields::record_update(&mut entries, &opts.manager, None, &def.api_version(), &fields::leaves(&body), &ts);
        fields::write(&mut body, &entries);
        if opts.dry_run {
            return Ok(Arc::new(body));
        }
        if let Some(defs) = new_defs {
            self.serve_crd(&mut body, defs);
        }
        let rv = self.next_rv();
        body["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let obj = Arc::new(body);
        self.objects.entry(def.storage_key()).or_default().insert((ns.unwrap_or("").to_owned(), name), obj.clone());
        self.record(def.storage_key(), "ADDED", obj.clone(), None);
        Ok(obj)
    }

    /// Replaces an object (PUT) or its status (`sub = Some("status")`). `body` carries the
    /// precondition `metadata.resourceVersion` if any.
    pub fn update(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Option<&str>,
        opts: &WriteOpts,
    ) -> Result<Arc<Value>, ApiError> {
        Self::check_kind(def, &body)?;
        let ns = if def.namespaced { ns } else { None };
        let old = self.get(def, ns, name).ok_or_else(|| ApiError::not_found(def, name))?;
        let body_name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(name);
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = body.pointer("/metadata/resourceVersion").and_then(Value::as_str)
            && !rv.is_empty()
            && Some(rv) != old.pointer("/metadata/resourceVersion").and_then(Value::as_str)
        {
            return Err(ApiError::conflict(def, name));
        }
        let mut new = match sub {
            Some("status") => {
                let mut n = (*old).clone();
                match body.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                n
            }
            _ => {
                let mut n = body;
                if def.status {
                    match old.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            if let Some(m) = n.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                if !n.get("metadata").is_some_and(Value::is_object) {
                    n["metadata"] = json!({});
                }
                // System-owned metadata comes from the stored object.
                for k in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                    "namespace",
                    "name",
                    "managedFields",
                ] {
                    match old["metadata"].get(k) {
                        Some(v) => n["metadata"][k] = v.clone(),
                        None => {
                            if let Some(m) = n["metadata"].as_object_mut() {
                                m.remove(k);
                            }
                        }
                    }
                }
                n
            }
        };
        new["apiVersion"] = Value::String(def.api_version());
        new["kind"] = Value::String(def.kind.clone());
        if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        Self::validate(def, &mut new, opts.strict)?;
        let deleting = old.pointer("/metadata/deletionTimestamp").is_some();
        if deleting {
            let before: Vec<&Value> = old
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let added: Vec<String> = new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter(|f| !before.contains(f)).map(|f| f.to_string()).collect())
                .unwrap_or_default();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    def,
                    &def.kind,
                    name,
                    &[(
                        "FieldValueForbidden".into(),
                        format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                            added.join(", ")
                        ),
                        "metadata.finalizers".into(),
                    )],
                ));
            }
        }
        let mut old_cmp = (*old).clone();
        strip_bookkeeping(&mut old_cmp);
        let mut new_cmp = new.clone();
        strip_bookkeeping(&mut new_cmp);
        if old_cmp == new_cmp {
            // A no-op write changes nothing, not even the resourceVersion.
            return Ok(old);
        }
        if (def.custom || def.kind == "CustomResourceDefinition") && sub.is_none() && spec_changed(&old, &new) {
            let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        let ts = now();
        let mut entries = fields::read(&old);
        fields::record_update(&mut entries, &opts.manager, sub, &def.api_version(), &fields::changed(&old, &new), &ts);
        fields::write(&mut new, &entries);
        let new_defs =
            if def.kind == "CustomResourceDefinition" && sub.is_none() { Some(self.crd_defs(&new)?) } else { None };
        if opts.dry_run {
            return Ok(Arc::new(new));
        }
        if let Some(defs) = new_defs {
            self.serve_crd(&mut new, defs);
        }
        self.commit(def, ns, name, new, Some(old))
    }

    /// Server-side apply of `config` by `opts.manager` to an object (or its status):
    /// conflicts with other managers are a 409 unless `opts.force`. A missing object is
    /// created and owned by the applier (as an Apply operation). Returns the object and
    /// whether it was created.
    pub fn apply(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        config: &Value,
        sub: Option<&str>,
        opts: &WriteOpts,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let ts = now();
        match self.get(def, ns, name) {
            None if sub.is_none() => {
                let mut body = config.clone();
                if body.get("metadata").is_none() {
                    body["metadata"] = json!({});
                }
                body["metadata"]["name"] = Value::String(name.to_owned());
                let created = self.create(def, ns, body, opts)?;
                // Ownership belongs to the applier, as an Apply operation.
                let mut owned = (*created).clone();
                owned["metadata"]["managedFields"] = Value::Null;
                if let Some(m) = owned["metadata"].as_object_mut() {
                    m.remove("managedFields");
                }
                let applied = fields::apply(&owned, config, &opts.manager, None, true, &ts)?;
                let update = WriteOpts { manager: opts.manager.clone(), ..Default::default() };
                Ok((self.update(def, ns, name, applied, None, &update)?, true))
            }
            None => Err(ApiError::not_found(def, name)),
            Some(cur) => {
                let mut merged = fields::apply(&cur, config, &opts.manager, sub, opts.force, &ts)?;
                // The apply is of the current object, not a precondition.
                if let Some(m) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                Ok((self.update(def, ns, name, merged, sub, opts)?, false))
            }
        }
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

    /// Deletes an object: with finalizers it is marked terminating, otherwise removed.
    pub fn delete(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        precondition_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let ns = if def.namespaced { ns } else { None };
        let old = self.get(def, ns, name).ok_or_else(|| ApiError::not_found(def, name))?;
        if let Some(rv) = precondition_rv
            && Some(rv) != old.pointer("/metadata/resourceVersion").and_then(Value::as_str)
        {
            return Err(ApiError::conflict(def, name));
        }
        if dry_run {
            return Ok(old);
        }
        let has_finalizers =
            old.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        if has_finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(old);
            }
            let mut new = (*old).clone();
            new["metadata"]["deletionTimestamp"] = Value::String(now());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if def.custom {
                let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
                new["metadata"]["generation"] = json!(g + 1);
            }
            return self.commit(def, ns, name, new, Some(old));
        }
        let rv = self.next_rv();
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let last = Arc::new(last);
        self.remove(def, &(ns.unwrap_or("").to_owned(), name.to_owned()), last.clone());
        Ok(last)
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

    fn crd_defs(&self, crd: &Value) -> Result<Vec<ResourceDef>, ApiError> {
        let crd_def = self.find("apiextensions.k8s.io", "v1", "customresourcedefinitions").expect("CRDs are built in");
        let name = crd.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let defs = resources::from_crd(crd).map_err(|reason| {
            ApiError::invalid(
                &crd_def,
                "CustomResourceDefinition",
                name,
                &[("FieldValueInvalid".into(), reason, "spec".into())],
            )
        })?;
        let taken =
            self.defs.iter().any(|d| !d.custom && defs.iter().any(|n| n.group == d.group && n.plural == d.plural));
        if taken {
            return Err(ApiError::invalid(
                &crd_def,
                "CustomResourceDefinition",
                name,
                &[("FieldValueInvalid".into(), "the resource is built in".into(), "spec.names.plural".into())],
            ));
        }
        Ok(defs)
    }

    /// Starts serving a CRD's resources and marks it Established.
    fn serve_crd(&mut self, crd: &mut Value, defs: Vec<ResourceDef>) {
        if let Some(first) = defs.first() {
            let key = first.storage_key();
            self.defs.retain(|d| d.storage_key() != key);
        }
        let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
        let ts = now();
        crd["status"] = json!({
            "acceptedNames": names,
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": ts},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": ts},
            ],
            "storedVersions": defs.iter().map(|d| d.version.clone()).collect::<Vec<_>>(),
        });
        self.defs.extend(defs.into_iter().map(Arc::new));
    }

    fn unserve_crd(&mut self, crd: &Value) {
        let Ok(defs) = resources::from_crd(crd) else {
            return;
        };
        let Some(first) = defs.first() else { return };
        let key = first.storage_key();
        self.defs.retain(|d| d.storage_key() != key || !d.custom);
        if let Some(objects) = self.objects.remove(&key) {
            for (_, obj) in objects {
                let rv = self.next_rv();
                let mut last = (*obj).clone();
                last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                self.record(key.clone(), "DELETED", Arc::new(last), None);
            }
        }
    }

    /// Loads objects saved by a snapshot (CRDs first, so their resources are served).
    pub fn restore(&mut self, rv: u64, objects: Vec<(StorageKey, Value)>) {
        let (crds, rest): (Vec<_>, Vec<_>) = objects.into_iter().partition(|(k, _)| k.1 == "customresourcedefinitions");
        for (key, mut obj) in crds.into_iter().chain(rest) {
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

fn strip_bookkeeping(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["resourceVersion", "managedFields", "generation"] {
            m.remove(k);
        }
    }
}

/// Whether anything but metadata and status differs.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

fn random_suffix() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}
