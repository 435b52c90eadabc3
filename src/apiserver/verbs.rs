//! The non-streaming verbs on a resource URL: get, list (selectors, `limit`/`continue`
//! pagination, Tables), create, update, patch (merge, JSON, strategic merge on built-in
//! kinds, server-side apply), a Deployment's Scale, delete and deletecollection (answering
//! a `Success` Status or the object, as the real registry does); and
//! `SelfSubjectAccessReview`.
//! In: an authorized request and its [`Target`]; out: the response. Handlers only decode
//! the request and encode the answer: write semantics live in `store`, field and patch
//! semantics in `fields`, permission decisions in `auth`.

use super::fields::{self, Patch};
use super::request::{Ctx, Target, error, json_response, object_key, output};
use super::scale;
use super::status::ApiError;
use super::store::{DeleteOpts, Deleted};
use super::table;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

/// The 415 message, listing what PATCH accepts.
const PATCH_TYPES: &str = "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

/// GET of one object (or its Table row, or its Scale).
pub fn get(cx: &Ctx, t: &Target) -> Response {
    let name = t.name.as_deref().unwrap_or_default();
    let store = cx.s.store.lock();
    match store.get(&t.def, t.namespace.as_deref(), name) {
        Some(o) if t.sub.as_deref() == Some("scale") => json_response(200, &scale::view(&o)),
        Some(o) if cx.wants_table() => {
            json_response(200, &table::table(&t.def, &[o], json!({"resourceVersion": store.rv().to_string()}), true))
        }
        Some(o) => json_response(200, &output(&t.def, &o)),
        None => error(&ApiError::not_found(&t.def, name)),
    }
}

/// GET of a collection: selectors, pagination, Tables.
pub fn list(cx: &Ctx, t: &Target) -> Response {
    let (labels, fields) = match cx.selectors(&t.def) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    // resourceVersion=0 is served from the watch cache, which does not paginate.
    let from_cache = cx.q("resourceVersion") == Some("0") && cx.q("continue").is_none();
    let limit: usize = if from_cache { 0 } else { cx.q("limit").and_then(|l| l.parse().ok()).unwrap_or(0) };
    let store = cx.s.store.lock();
    let rv = store.rv();
    let mut start: Option<(String, String)> = None;
    let mut list_rv = rv;
    if let Some(token) = cx.q("continue") {
        match decode_continue(token) {
            Some((token_rv, ns, name)) if token_rv >= store.compacted() => {
                start = Some((ns, name));
                list_rv = token_rv;
            }
            Some(_) => {
                return error(&ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            None => {
                return error(&ApiError::bad_request("continue key is not valid: illegal base64 data"));
            }
        }
    }
    let mut items: Vec<Arc<Value>> = store
        .list(&t.def, t.namespace.as_deref())
        .into_iter()
        .filter(|o| labels.matches_object(o) && fields.matches(o))
        .filter(|o| match &start {
            Some(s) => object_key(o) > *s,
            None => true,
        })
        .collect();
    let mut cont = None;
    let mut remaining = 0;
    if limit > 0 && items.len() > limit {
        remaining = items.len() - limit;
        items.truncate(limit);
        if let Some(last) = items.last() {
            let (ns, name) = object_key(last);
            cont = Some(encode_continue(list_rv, &ns, &name));
        }
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = Value::String(c);
        // etcd counts what is left only for lists without selectors.
        if labels.is_empty() && fields.is_empty() {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    if cx.wants_table() {
        return json_response(200, &table::table(&t.def, &items, meta, true));
    }
    let items: Vec<Value> = items.iter().map(|o| output(&t.def, o)).collect();
    json_response(
        200,
        &json!({"apiVersion": t.def.api_version(), "kind": format!("{}List", t.def.kind), "metadata": meta, "items": items}),
    )
}

/// POST to a collection.
pub fn create(cx: &Ctx, t: &Target) -> Response {
    let body = match cx.body_object() {
        Ok(b) => b,
        Err(e) => return error(&e),
    };
    let opts = cx.opts(&cx.user_agent_manager());
    let result = cx.s.store.lock().create(&t.def, t.namespace.as_deref(), body, &opts);
    match result {
        Ok(o) => json_response(201, &output(&t.def, &o)),
        Err(e) => error(&e),
    }
}

/// PUT of an object, its status or its Scale.
pub fn update(cx: &Ctx, t: &Target) -> Response {
    let body = match cx.body_object() {
        Ok(b) => b,
        Err(e) => return error(&e),
    };
    let name = t.name.as_deref().unwrap_or_default();
    if cx.s.faults.take_conflict() {
        return error(&ApiError::conflict(&t.def, name));
    }
    if t.sub.as_deref() == Some("scale") {
        return write_scale(cx, t, |_| Ok(body));
    }
    let opts = cx.opts(&cx.user_agent_manager());
    let result = cx.s.store.lock().update(&t.def, t.namespace.as_deref(), name, body, t.sub.as_deref(), &opts);
    match result {
        Ok(o) => json_response(200, &output(&t.def, &o)),
        Err(e) => error(&e),
    }
}

/// PATCH of an object or its status, by `Content-Type`.
pub fn patch(cx: &Ctx, t: &Target) -> Response {
    let name = t.name.as_deref().unwrap_or_default();
    if cx.s.faults.take_conflict() {
        return error(&ApiError::conflict(&t.def, name));
    }
    if t.sub.as_deref() == Some("scale") {
        let kind = cx.content_type();
        if kind.starts_with("application/apply-patch") {
            return error(&ApiError::new(
                415,
                "UnsupportedMediaType",
                "server-side apply of the scale subresource is not supported by this server",
            ));
        }
        return match decode_patch(&kind, &cx.body) {
            Ok(p) => write_scale(cx, t, |current| fields::patch(current, &p)),
            Err(e) => error(&e),
        };
    }
    // One lock from reading the current object to storing the patched one.
    let mut store = cx.s.store.lock();
    let result = match cx.content_type().as_str() {
        "application/apply-patch+yaml" | "application/apply-patch+json" => {
            let Some(manager) = cx.q("fieldManager") else {
                return error(&ApiError::new(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch").details(json!({
                    "group": "meta.k8s.io", "kind": "PatchOptions",
                    "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]})));
            };
            let config: Value = match serde_yaml::from_slice(&cx.body) {
                Ok(v) => v,
                Err(e) => return error(&ApiError::bad_request(format!("error decoding YAML: {e}"))),
            };
            let opts = cx.opts(manager);
            match store.apply(&t.def, t.namespace.as_deref(), name, &config, t.sub.as_deref(), &opts) {
                Ok((o, true)) => return json_response(201, &output(&t.def, &o)),
                Ok((o, false)) => Ok(o),
                Err(e) => Err(e),
            }
        }
        kind @ ("application/merge-patch+json"
        | "application/json-patch+json"
        | "application/strategic-merge-patch+json") => {
            if kind == "application/strategic-merge-patch+json" && t.def.custom {
                return error(&ApiError::new(415, "UnsupportedMediaType", PATCH_TYPES));
            }
            let Some(cur) = store.get(&t.def, t.namespace.as_deref(), name) else {
                return error(&ApiError::not_found(&t.def, name));
            };
            let patch = match decode_patch(kind, &cx.body) {
                Ok(p) => p,
                Err(e) => return error(&e),
            };
            let opts = cx.opts(&cx.user_agent_manager());
            fields::patch(&cur, &patch)
                .and_then(|doc| store.update(&t.def, t.namespace.as_deref(), name, doc, t.sub.as_deref(), &opts))
        }
        other => {
            return error(&ApiError::new(415, "UnsupportedMediaType", format!("{PATCH_TYPES} (got {other:?})")));
        }
    };
    match result {
        Ok(o) => json_response(200, &output(&t.def, &o)),
        Err(e) => error(&e),
    }
}

/// A write of a Scale (`new_scale` makes it from the current one): an update of the
/// object's `spec.replicas`, answered with the new Scale.
fn write_scale(cx: &Ctx, t: &Target, new_scale: impl FnOnce(&Value) -> Result<Value, ApiError>) -> Response {
    let name = t.name.as_deref().unwrap_or_default();
    let ns = t.namespace.as_deref();
    let opts = cx.opts(&cx.user_agent_manager());
    let mut store = cx.s.store.lock();
    let Some(current) = store.get(&t.def, ns, name) else {
        return error(&ApiError::not_found(&t.def, name));
    };
    let result = new_scale(&scale::view(&current))
        .and_then(|s| scale::apply_to(&current, &s, name))
        .and_then(|doc| store.update(&t.def, ns, name, doc, None, &opts));
    match result {
        Ok(o) => json_response(200, &scale::view(&o)),
        Err(e) => error(&e),
    }
}

/// A merge, strategic merge or JSON patch body.
fn decode_patch(content_type: &str, body: &[u8]) -> Result<Patch, ApiError> {
    let bad = |e: serde_json::Error| ApiError::bad_request(format!("error decoding patch: {e}"));
    let patch: Value = serde_json::from_slice(body).map_err(bad)?;
    match content_type {
        "application/json-patch+json" => Ok(Patch::Json(serde_json::from_value(patch).map_err(bad)?)),
        "application/strategic-merge-patch+json" => Ok(Patch::Strategic(patch)),
        _ => Ok(Patch::Merge(patch)),
    }
}

/// DELETE of an object, with the `DeleteOptions` of the body. An object removed now is
/// answered with a `Success` Status naming it (or with the object, for the kinds whose
/// registry returns it); a terminating one with its new state.
pub fn delete(cx: &Ctx, t: &Target) -> Response {
    let name = t.name.as_deref().unwrap_or_default();
    let opts = match cx.delete_opts() {
        Ok(o) => o,
        Err(e) => return error(&e),
    };
    let result = cx.s.store.lock().delete(&t.def, t.namespace.as_deref(), name, &opts);
    match result {
        Ok(Deleted::Removed(o)) if !t.def.returns_deleted_object() => json_response(200, &deleted_status(t, &o)),
        Ok(Deleted::Removed(o) | Deleted::Terminating(o)) => json_response(200, &output(&t.def, &o)),
        Err(e) => error(&e),
    }
}

/// The `Success` Status of an object removed by a delete.
fn deleted_status(t: &Target, o: &Value) -> Value {
    let (_, name) = object_key(o);
    let uid = o.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": name, "group": t.def.group, "kind": t.def.plural, "uid": uid}})
}

/// DELETE of a collection: every object matching the selectors.
pub fn delete_collection(cx: &Ctx, t: &Target) -> Response {
    let (labels, fields) = match cx.selectors(&t.def) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    // Preconditions name one object; a collection delete takes the rest of the options.
    let opts = match cx.delete_opts() {
        Ok(o) => DeleteOpts { uid: None, resource_version: None, ..o },
        Err(e) => return error(&e),
    };
    let mut store = cx.s.store.lock();
    let victims: Vec<Arc<Value>> = store
        .list(&t.def, t.namespace.as_deref())
        .into_iter()
        .filter(|o| labels.matches_object(o) && fields.matches(o))
        .collect();
    let mut deleted = Vec::new();
    for v in victims {
        let (ns, name) = object_key(&v);
        let ns = (!ns.is_empty()).then_some(ns);
        if let Ok(Deleted::Removed(o) | Deleted::Terminating(o)) = store.delete(&t.def, ns.as_deref(), &name, &opts) {
            deleted.push(output(&t.def, &o));
        }
    }
    json_response(
        200,
        &json!({"apiVersion": t.def.api_version(), "kind": format!("{}List", t.def.kind), "metadata": {"resourceVersion": store.rv().to_string()}, "items": deleted}),
    )
}

/// POST of a `SelfSubjectAccessReview` (JSON, or protobuf as kubectl sends it).
pub fn access_review(cx: &Ctx) -> Response {
    let body = match cx.body_object() {
        Ok(b) => b,
        Err(e) => return error(&e),
    };
    let answer = cx.s.auth.access_review(&cx.s.store.lock(), &cx.user(), &body);
    json_response(201, &answer)
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(json!({"rv": rv, "ns": ns, "name": name}).to_string())
}

fn decode_continue(token: &str) -> Option<(u64, String, String)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(token).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some((v.get("rv")?.as_u64()?, v.get("ns")?.as_str()?.to_owned(), v.get("name")?.as_str()?.to_owned()))
}
