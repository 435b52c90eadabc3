//! Writes to the store, as kube-apiserver does them: create (generateName, uid,
//! generation 1, namespace checks, no resourceVersion), update (optimistic concurrency,
//! a required resourceVersion for custom resources, status isolation,
//! system-owned metadata, generation on spec changes, no-op writes that change nothing),
//! server-side apply (creating what is missing) and delete (uid and resourceVersion
//! preconditions; finalizers mark an object terminating). Each write validates custom
//! resources against their schema and records field ownership through `fields`. A write
//! to a view (events.k8s.io Events) is converted (`convert`) and made to its storage.

use super::{DeleteOpts, Deleted, FOREGROUND, ORPHAN, Propagation, Store, WriteOpts, now, served};
use crate::apiserver::convert;
use crate::apiserver::defaults;
use crate::apiserver::fields;
use crate::apiserver::resources::ResourceDef;
use crate::apiserver::schema;
use crate::apiserver::status::ApiError;
use crate::apiserver::validation;
use serde_json::{Value, json};
use std::sync::Arc;

impl Store {
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

    /// Size limits of every object, unknown fields of a built-in kind (with `strict`), then
    /// schema validation and pruning of a custom resource.
    fn validate(def: &ResourceDef, obj: &mut Value, strict: bool) -> Result<(), ApiError> {
        let too_large = validation::check(def, obj);
        if !too_large.is_empty() {
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
            return Err(ApiError::invalid(def, &def.kind, &name, &too_large));
        }
        if strict
            && let Some(unknown) = validation::unknown_fields(def, obj)
            && !unknown.is_empty()
        {
            let list = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect::<Vec<_>>().join(", ");
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {list}",
                kind = def.kind,
                version = def.version
            )));
        }
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

    /// What the stored Services other than `ns/name` hold (for a Service's defaults).
    fn allocated(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> defaults::Allocated {
        if !(def.group.is_empty() && def.kind == "Service") {
            return defaults::Allocated::default();
        }
        let services = self.list(def, None);
        let others = services.iter().filter(|s| {
            s.pointer("/metadata/namespace").and_then(Value::as_str) != ns
                || s.pointer("/metadata/name").and_then(Value::as_str) != Some(name)
        });
        defaults::Allocated::of(others.map(|s| s.as_ref()))
    }

    /// Creates an object (POST).
    pub fn create(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<Arc<Value>, ApiError> {
        self.create_owned(def, ns, body, opts, Ownership::Update)
    }

    fn create_owned(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        mut body: Value,
        opts: &WriteOpts,
        ownership: Ownership,
    ) -> Result<Arc<Value>, ApiError> {
        if let Some(stored) = self.storage_def(def) {
            let body = convert::to_storage(def, body);
            return self.create_owned(&stored, ns, body, opts, ownership).map(|o| served(def, o));
        }
        Self::check_kind(def, &body)?;
        if !body.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        // etcd3's store refuses a create that names a version (a body copied from a read).
        if body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|rv| rv.parse::<u64>().ok())
            .is_some_and(|rv| rv != 0)
        {
            return Err(ApiError::internal("resourceVersion should not be set on objects to be created"));
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
        if let Err(e) = crate::names::check_object_name(&name) {
            return Err(ApiError::invalid(
                def,
                &def.kind,
                &name,
                &[("FieldValueInvalid".into(), e.to_string(), "metadata.name".into())],
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
            if def.tracks_generation() {
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
        // An applier owns what it applied, not the defaults.
        let applied = (ownership == Ownership::Applied).then(|| body.clone());
        let allocated = self.allocated(def, ns, &name);
        defaults::apply(def, &mut body, None, &allocated);
        Self::validate(def, &mut body, opts.strict)?;
        let new_defs = if def.kind == "CustomResourceDefinition" { Some(self.crd_defs(&body)?) } else { None };
        match ownership {
            Ownership::Update => {
                let mut entries = Vec::new();
                let owned = fields::Changes::created(&body, def.structure());
                fields::record_update(&mut entries, &opts.manager, None, &def.api_version(), &owned, &ts);
                fields::write(&mut body, &entries);
            }
            // The applier owns what it created, as an Apply (of the object as stored).
            Ownership::Applied => {
                let apply =
                    fields::Apply { manager: &opts.manager, sub: None, force: true, schema: def.structure(), now: &ts };
                let config = applied.as_ref().expect("an apply keeps its configuration");
                let applied = fields::apply(config, config, &apply)?;
                fields::write(&mut body, &fields::read(&applied));
            }
        }
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
        self.update_owned(def, ns, name, body, sub, opts, Ownership::Update)
    }

    #[allow(clippy::too_many_arguments)]
    fn update_owned(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Option<&str>,
        opts: &WriteOpts,
        ownership: Ownership,
    ) -> Result<Arc<Value>, ApiError> {
        if let Some(stored) = self.storage_def(def) {
            let body = convert::to_storage(def, body);
            return self.update_owned(&stored, ns, name, body, sub, opts, ownership).map(|o| served(def, o));
        }
        let applied_fields = body.pointer("/metadata/managedFields").cloned();
        Self::check_kind(def, &body)?;
        let ns = if def.namespaced { ns } else { None };
        let old = self.get(def, ns, name).ok_or_else(|| ApiError::not_found(def, name))?;
        let body_name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(name);
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        match body.pointer("/metadata/resourceVersion").and_then(Value::as_str).filter(|rv| !rv.is_empty()) {
            Some(rv) if Some(rv) != old.pointer("/metadata/resourceVersion").and_then(Value::as_str) => {
                return Err(ApiError::conflict(def, name));
            }
            Some(_) => {}
            None if def.allows_unconditional_update() => {}
            None => {
                // The generic registry names the resource, not the kind, in this one.
                return Err(ApiError::invalid(
                    def,
                    &def.plural,
                    name,
                    &[(
                        "FieldValueInvalid".into(),
                        "Invalid value: 0x0: must be specified for an update".into(),
                        "metadata.resourceVersion".into(),
                    )],
                ));
            }
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
        let allocated = self.allocated(def, ns, name);
        defaults::apply(def, &mut new, Some(&old), &allocated);
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
        if ownership == Ownership::Applied {
            // The apply computed the ownership; an apply that changes only it is a write.
            match &applied_fields {
                Some(f) => new["metadata"]["managedFields"] = f.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove("managedFields");
                    }
                }
            }
        }
        // A client may write the ownership itself (kubectl's migration from client- to
        // server-side apply); a subresource write may not.
        let requested = match (ownership, sub) {
            (Ownership::Update, None) => fields::requested(applied_fields.as_ref()),
            _ => None,
        };
        if let Some(entries) = &requested {
            fields::write(&mut new, entries);
        }
        let mut old_cmp = (*old).clone();
        strip_bookkeeping(&mut old_cmp);
        let mut new_cmp = new.clone();
        strip_bookkeeping(&mut new_cmp);
        let owners_kept = match ownership {
            Ownership::Update if requested.is_none() => true,
            _ => same_owners(&old, &new),
        };
        if old_cmp == new_cmp && owners_kept {
            // A no-op write changes nothing, not even the resourceVersion.
            return Ok(old);
        }
        let annotations_changed = || old.pointer("/metadata/annotations") != new.pointer("/metadata/annotations");
        if def.tracks_generation()
            && sub.is_none()
            && (spec_changed(&old, &new) || (def.annotations_move_generation() && annotations_changed()))
        {
            let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if ownership == Ownership::Update {
            let ts = now();
            let mut entries = requested.unwrap_or_else(|| fields::read(&old));
            let changed = fields::changed(&old, &new, def.structure());
            fields::record_update(&mut entries, &opts.manager, sub, &def.api_version(), &changed, &ts);
            fields::write(&mut new, &entries);
        }
        let new_defs =
            if def.kind == "CustomResourceDefinition" && sub.is_none() { Some(self.crd_defs(&new)?) } else { None };
        if opts.dry_run {
            // Nothing was written: the object keeps the version it has.
            new["metadata"]["resourceVersion"] =
                old.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
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
        if let Some(stored) = self.storage_def(def) {
            let config = convert::to_storage(def, config.clone());
            return self.apply(&stored, ns, name, &config, sub, opts).map(|(o, created)| (served(def, o), created));
        }
        let ts = now();
        match self.get(def, ns, name) {
            None if sub.is_none() => {
                let mut body = config.clone();
                if !body.get("metadata").is_some_and(Value::is_object) {
                    body["metadata"] = json!({});
                }
                body["metadata"]["name"] = Value::String(name.to_owned());
                if let Some(m) = body["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                    m.remove("managedFields");
                }
                Ok((self.create_owned(def, ns, body, opts, Ownership::Applied)?, true))
            }
            None => Err(ApiError::not_found(def, name)),
            Some(cur) => {
                // The merge starts from the live object, so its resourceVersion is the
                // current one unless the configuration names one as a precondition.
                let apply =
                    fields::Apply { manager: &opts.manager, sub, force: opts.force, schema: def.structure(), now: &ts };
                let merged = fields::apply(&cur, config, &apply)?;
                Ok((self.update_owned(def, ns, name, merged, sub, opts, Ownership::Applied)?, false))
            }
        }
    }

    /// Deletes an object after checking the preconditions (409 as `rest.BeforeDelete`
    /// words it): with finalizers it is marked terminating, otherwise removed.
    pub fn delete(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Deleted, ApiError> {
        if let Some(stored) = self.storage_def(def) {
            return self.delete(&stored, ns, name, opts).map(|d| match d {
                Deleted::Removed(o) => Deleted::Removed(served(def, o)),
                Deleted::Terminating(o) => Deleted::Terminating(served(def, o)),
            });
        }
        let ns = if def.namespaced { ns } else { None };
        let old = self.get(def, ns, name).ok_or_else(|| ApiError::not_found(def, name))?;
        let meta = |k: &str| old.pointer(&format!("/metadata/{k}")).and_then(Value::as_str).unwrap_or("").to_owned();
        if let Some(uid) = &opts.uid
            && *uid != meta("uid")
        {
            let why = format!(
                "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                meta("uid")
            );
            return Err(ApiError::precondition_failed(def, name, &why));
        }
        if let Some(rv) = &opts.resource_version
            && *rv != meta("resourceVersion")
        {
            let why = format!(
                "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                meta("resourceVersion")
            );
            return Err(ApiError::precondition_failed(def, name, &why));
        }
        let before: Vec<Value> =
            old.pointer("/metadata/finalizers").and_then(Value::as_array).cloned().unwrap_or_default();
        let finalizers = gc_finalizers(&before, opts.propagation);
        if opts.dry_run {
            return Ok(if finalizers.is_empty() { Deleted::Removed(old) } else { Deleted::Terminating(old) });
        }
        if !finalizers.is_empty() {
            let deleting = old.pointer("/metadata/deletionTimestamp").is_some();
            if deleting && finalizers == before {
                return Ok(Deleted::Terminating(old));
            }
            let mut new = (*old).clone();
            new["metadata"]["finalizers"] = Value::Array(finalizers);
            if deleting {
                // Only the propagation finalizers change on a second delete.
                return self.commit(def, ns, name, new, Some(old)).map(Deleted::Terminating);
            }
            new["metadata"]["deletionTimestamp"] = Value::String(now());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if def.tracks_generation() {
                let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
                new["metadata"]["generation"] = json!(g + 1);
            }
            return self.commit(def, ns, name, new, Some(old)).map(Deleted::Terminating);
        }
        let rv = self.next_rv();
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let last = Arc::new(last);
        self.remove(def, &(ns.unwrap_or("").to_owned(), name.to_owned()), last.clone());
        Ok(Deleted::Removed(last))
    }
}

/// An object's finalizers once a delete with `propagation` asked for its dependents'
/// fate (as the generic registry's `deletionFinalizersForGarbageCollection`): `orphan`
/// or `foregroundDeletion` is added, and the other removed; Background removes both; no
/// policy keeps what is there.
fn gc_finalizers(current: &[Value], propagation: Option<Propagation>) -> Vec<Value> {
    let wanted = match propagation {
        None => return current.to_vec(),
        Some(Propagation::Orphan) => Some(ORPHAN),
        Some(Propagation::Foreground) => Some(FOREGROUND),
        Some(Propagation::Background) => None,
    };
    let mut out: Vec<Value> =
        current.iter().filter(|f| !matches!(f.as_str(), Some(ORPHAN | FOREGROUND))).cloned().collect();
    if let Some(f) = wanted {
        out.push(Value::String(f.to_owned()));
    }
    out
}

/// Who a write's fields belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ownership {
    /// An `Update` by the write's manager, of the fields it changed.
    Update,
    /// A server-side apply: the body's `managedFields` were computed by `fields::apply`.
    Applied,
}

/// Whether two versions of an object have the same owners of the same fields (the time
/// of an entry alone is no change).
fn same_owners(a: &Value, b: &Value) -> bool {
    let untimed = |v: &Value| {
        let mut entries = fields::read(v);
        for e in &mut entries {
            e.time.clear();
        }
        entries
    };
    untimed(a) == untimed(b)
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
