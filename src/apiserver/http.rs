//! The HTTP front: URL routing in the Kubernetes REST layout, authentication and
//! authorization, the verbs (get, list, watch, create, update, patch, delete), tables for
//! kubectl, discovery and OpenAPI, and request statistics.

use super::auth::{Attributes, Auth, User, forbidden_message};
use super::discovery;
use super::faults::FaultHandle;
use super::fields;
use super::resources::ResourceDef;
use super::status::ApiError;
use super::store::{Store, WriteOpts};
use super::table;
use super::{RequestStats, StatKey};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Shared server state.
#[derive(Clone)]
pub struct Shared {
    /// The store; one lock serializes writes (and gives atomic read-modify-write patches).
    pub store: Arc<Mutex<Store>>,
    /// Tokens and RBAC.
    pub auth: Auth,
    /// Fault injection.
    pub faults: FaultHandle,
    /// Request statistics.
    pub stats: RequestStats,
    /// Largest accepted body.
    pub max_body: usize,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// `host:port` for discovery documents.
    pub address: String,
}

/// Every request goes through here.
pub async fn handle(State(s): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query: HashMap<String, String> = parts.uri.query().map(|q| url_pairs(q).collect()).unwrap_or_default();
    let latency = s.faults.latency_now();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let bytes = match axum::body::to_bytes(body, s.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return error(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("the request body is larger than the server's limit of {} bytes", s.max_body),
            ));
        }
    };
    let mut ctx = Ctx {
        s: s.clone(),
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body: bytes,
        user: None,
        stat: StatKey::default(),
    };
    let response = ctx.route().await;
    ctx.stat.code = response.status().as_u16();
    s.stats.record(ctx.stat);
    response
}

fn url_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (decode(k), decode(v))
    })
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON response.
pub fn json_response(code: u16, v: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    (status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

/// A `Status` failure response.
pub fn error(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.body());
    if let Some(after) = e.retry_after
        && let Ok(v) = after.to_string().parse()
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

struct Ctx {
    s: Shared,
    method: Method,
    path: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
    user: Option<User>,
    stat: StatKey,
}

/// A parsed resource URL.
struct Target {
    def: Arc<ResourceDef>,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

impl Ctx {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    async fn route(&mut self) -> Response {
        let user = match self.authenticate() {
            Ok(u) => u,
            Err(e) => return error(&e),
        };
        self.stat.user = user.name.clone();
        self.user = Some(user);
        let segs: Vec<String> =
            self.path.trim_matches('/').split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        self.stat.verb = self.method.as_str().to_owned();
        match segs.as_slice() {
            ["version"] => json_response(200, &discovery::version()),
            ["healthz"] | ["readyz"] | ["livez"] => (StatusCode::OK, "ok").into_response(),
            ["api"] => json_response(200, &discovery::core_versions(&self.s.address)),
            ["apis"] => json_response(200, &discovery::groups(&self.s.store.lock())),
            ["openapi", "v3"] => json_response(200, &discovery::openapi_index(&self.s.store.lock())),
            ["openapi", "v3", rest @ ..] => match discovery::openapi_doc(&self.s.store.lock(), rest) {
                Some(doc) => json_response(200, &doc),
                None => error(&ApiError::new(404, "NotFound", "the server could not find the requested resource")),
            },
            ["api", "v1"] => json_response(200, &discovery::resource_list(&self.s.store.lock(), "", "v1")),
            ["apis", g] => match discovery::group(&self.s.store.lock(), g) {
                Some(doc) => json_response(200, &doc),
                None => not_found_path(),
            },
            ["apis", "authorization.k8s.io", "v1"] => json_response(200, &discovery::authorization_resources()),
            ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"] if self.method == Method::POST => {
                self.access_review()
            }
            ["apis", g, v] => {
                let store = self.s.store.lock();
                if store.defs().iter().any(|d| d.group == *g && d.version == *v) {
                    json_response(200, &discovery::resource_list(&store, g, v))
                } else {
                    not_found_path()
                }
            }
            ["api", "v1", rest @ ..] => self.resource("", "v1", rest).await,
            ["apis", g, v, rest @ ..] => {
                let (g, v) = (g.to_string(), v.to_string());
                self.resource(&g, &v, rest).await
            }
            _ => not_found_path(),
        }
    }

    fn authenticate(&self) -> Result<User, ApiError> {
        let unauthorized = || ApiError::new(401, "Unauthorized", "Unauthorized");
        let token = self
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(unauthorized)?;
        let user = self.s.auth.authenticate(token.trim()).ok_or_else(unauthorized)?;
        let Some(as_user) = self.headers.get("impersonate-user").and_then(|v| v.to_str().ok()) else {
            return Ok(user);
        };
        let groups: Vec<&str> =
            self.headers.get_all("impersonate-group").iter().filter_map(|v| v.to_str().ok()).collect();
        let store = self.s.store.lock();
        let (resource, namespace, name) =
            match as_user.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
                Some((ns, n)) => ("serviceaccounts", Some(ns.to_owned()), n.to_owned()),
                None => ("users", None, as_user.to_owned()),
            };
        let attrs = Attributes {
            verb: "impersonate".into(),
            group: String::new(),
            resource: resource.into(),
            subresource: None,
            namespace,
            name: Some(name),
        };
        if !self.s.auth.allowed(&store, &user, &attrs) {
            return Err(ApiError::new(403, "Forbidden", forbidden_message(&user, &attrs)));
        }
        for g in &groups {
            let attrs = Attributes {
                verb: "impersonate".into(),
                group: String::new(),
                resource: "groups".into(),
                subresource: None,
                namespace: None,
                name: Some(g.to_string()),
            };
            if !self.s.auth.allowed(&store, &user, &attrs) {
                return Err(ApiError::new(403, "Forbidden", forbidden_message(&user, &attrs)));
            }
        }
        Ok(User::new(as_user, &groups))
    }

    fn parse_target(&self, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
        let store = self.s.store.lock();
        let (namespace, rest) = match rest {
            ["namespaces", ns, r @ ..] if !r.is_empty() && !matches!(r[0], "status" | "finalize") => {
                (Some(ns.to_string()), r)
            }
            r => (None, r),
        };
        let (plural, name, sub) = match rest {
            [p] => (*p, None, None),
            [p, n] => (*p, Some(n.to_string()), None),
            [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
            _ => {
                return Err(ApiError::new(404, "NotFound", "the server could not find the requested resource"));
            }
        };
        let def = store
            .find(group, version, plural)
            .ok_or_else(|| ApiError::new(404, "NotFound", "the server could not find the requested resource"))?;
        if let Some(s) = &sub
            && !(s == "status" && def.status)
        {
            return Err(ApiError::new(404, "NotFound", "the server could not find the requested resource"));
        }
        if def.namespaced && namespace.is_none() && name.is_some() {
            return Err(ApiError::new(404, "NotFound", "the server could not find the requested resource"));
        }
        Ok(Target {
            def,
            namespace: if def_namespaced(&store, group, version, plural) { namespace } else { None },
            name,
            sub,
        })
    }

    async fn resource(&mut self, group: &str, version: &str, rest: &[&str]) -> Response {
        let t = match self.parse_target(group, version, rest) {
            Ok(t) => t,
            Err(e) => return error(&e),
        };
        let watch = matches!(self.q("watch"), Some("true" | "1"));
        let verb = match (&self.method, &t.name) {
            (&Method::GET, Some(_)) => "get",
            (&Method::GET, None) if watch => "watch",
            (&Method::GET, None) => "list",
            (&Method::POST, None) => "create",
            (&Method::PUT, Some(_)) => "update",
            (&Method::PATCH, Some(_)) => "patch",
            (&Method::DELETE, Some(_)) => "delete",
            (&Method::DELETE, None) => "deletecollection",
            _ => {
                return error(&ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource".to_string(),
                ));
            }
        };
        self.stat.verb = verb.into();
        self.stat.resource = t.def.plural.clone();
        self.stat.subresource = t.sub.clone().unwrap_or_default();
        let attrs = Attributes {
            verb: verb.into(),
            group: t.def.group.clone(),
            resource: t.def.plural.clone(),
            subresource: t.sub.clone(),
            namespace: t.namespace.clone(),
            name: t.name.clone(),
        };
        let user = self.user.clone().unwrap_or_else(|| User::new("system:anonymous", &[]));
        if !self.s.auth.allowed(&self.s.store.lock(), &user, &attrs) {
            return error(
                &ApiError::new(403, "Forbidden", forbidden_message(&user, &attrs)).details(status_details(&t)),
            );
        }
        if matches!(verb, "create" | "update" | "patch" | "delete" | "deletecollection")
            && let Some(code) = self.s.faults.write_failure()
        {
            let (reason, msg) = match code {
                429 => {
                    ("TooManyRequests", "the server has received too many requests and has asked us to try again later")
                }
                500 => (
                    "InternalError",
                    "an error on the server (\"injected fault\") has prevented the request from succeeding",
                ),
                503 => ("ServiceUnavailable", "the server is currently unable to handle the request"),
                _ => ("InternalError", "injected fault"),
            };
            let mut e = ApiError::new(code, reason, msg);
            if code == 429 {
                e = e.details(json!({"retryAfterSeconds": 1}));
                e.retry_after = Some(1);
            }
            return error(&e);
        }
        match verb {
            "get" => self.get(&t),
            "list" => self.list(&t),
            "watch" => self.watch(&t),
            "create" => self.create(&t),
            "update" => self.update(&t),
            "patch" => self.patch(&t),
            "delete" => self.delete(&t),
            _ => self.delete_collection(&t),
        }
    }

    fn wants_table(&self) -> bool {
        self.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("as=Table"))
    }

    fn output(&self, def: &ResourceDef, obj: &Value) -> Value {
        let mut o = obj.clone();
        o["apiVersion"] = Value::String(def.api_version());
        o
    }

    fn get(&self, t: &Target) -> Response {
        let name = t.name.as_deref().unwrap_or_default();
        let store = self.s.store.lock();
        match store.get(&t.def, t.namespace.as_deref(), name) {
            Some(o) if self.wants_table() => {
                json_response(200, &table::table(&t.def, &[o], &store.rv().to_string(), None))
            }
            Some(o) => json_response(200, &self.output(&t.def, &o)),
            None => error(&ApiError::not_found(&t.def, name)),
        }
    }

    fn selectors(&self) -> Result<(crate::selector::Selector, crate::selector::FieldSelector), ApiError> {
        let labels = crate::selector::Selector::parse(self.q("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = crate::selector::FieldSelector::parse(self.q("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.reason.to_string()))?;
        Ok((labels, fields))
    }

    fn list(&self, t: &Target) -> Response {
        let (labels, fields) = match self.selectors() {
            Ok(s) => s,
            Err(e) => return error(&e),
        };
        let limit: usize = self.q("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
        let store = self.s.store.lock();
        let rv = store.rv();
        let mut start: Option<(String, String)> = None;
        let mut list_rv = rv;
        if let Some(token) = self.q("continue") {
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
            .filter(|o| labels.matches_object(o) && fields.matches_object(o))
            .filter(|o| match &start {
                Some(s) => object_key(o) > *s,
                None => true,
            })
            .collect();
        let mut cont = None;
        if limit > 0 && items.len() > limit {
            items.truncate(limit);
            if let Some(last) = items.last() {
                let (ns, name) = object_key(last);
                cont = Some(encode_continue(list_rv, &ns, &name));
            }
        }
        let rv_s = list_rv.to_string();
        if self.wants_table() {
            return json_response(200, &table::table(&t.def, &items, &rv_s, cont.as_deref()));
        }
        let mut meta = json!({"resourceVersion": rv_s});
        if let Some(c) = cont {
            meta["continue"] = Value::String(c);
            meta["remainingItemCount"] = json!(0);
        }
        let items: Vec<Value> = items.iter().map(|o| self.output(&t.def, o)).collect();
        json_response(
            200,
            &json!({"apiVersion": t.def.api_version(), "kind": format!("{}List", t.def.kind), "metadata": meta, "items": items}),
        )
    }

    fn body_json(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e} ({})",
                self.stat.resource,
                String::from_utf8_lossy(&self.body[..self.body.len().min(64)])
            ))
        })
    }

    fn opts(&self, default_manager: &str) -> WriteOpts {
        WriteOpts {
            manager: self.q("fieldManager").unwrap_or(default_manager).to_owned(),
            strict: self.q("fieldValidation") == Some("Strict"),
            dry_run: self.q("dryRun").is_some(),
        }
    }

    fn user_agent_manager(&self) -> String {
        self.headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|m| !m.is_empty())
            .unwrap_or("unknown")
            .to_owned()
    }

    fn create(&self, t: &Target) -> Response {
        let body = match self.body_json() {
            Ok(b) => b,
            Err(e) => return error(&e),
        };
        let opts = self.opts(&self.user_agent_manager());
        let result = self.s.store.lock().create(&t.def, t.namespace.as_deref(), body, &opts);
        match result {
            Ok(o) => json_response(201, &self.output(&t.def, &o)),
            Err(e) => error(&e),
        }
    }

    fn update(&self, t: &Target) -> Response {
        let body = match self.body_json() {
            Ok(b) => b,
            Err(e) => return error(&e),
        };
        let name = t.name.as_deref().unwrap_or_default();
        if self.s.faults.take_conflict() {
            return error(&ApiError::conflict(&t.def, name));
        }
        let opts = self.opts(&self.user_agent_manager());
        let result = self.s.store.lock().update(&t.def, t.namespace.as_deref(), name, body, t.sub.as_deref(), &opts);
        match result {
            Ok(o) => json_response(200, &self.output(&t.def, &o)),
            Err(e) => error(&e),
        }
    }

    fn patch(&self, t: &Target) -> Response {
        let name = t.name.as_deref().unwrap_or_default().to_owned();
        if self.s.faults.take_conflict() {
            return error(&ApiError::conflict(&t.def, &name));
        }
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let mut store = self.s.store.lock();
        let current = store.get(&t.def, t.namespace.as_deref(), &name);
        let result = match content_type.as_str() {
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                let Some(manager) = self.q("fieldManager") else {
                    return error(&ApiError::new(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch").details(json!({
                        "group": "meta.k8s.io", "kind": "PatchOptions",
                        "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]})));
                };
                let config: Value = match serde_yaml::from_slice(&self.body) {
                    Ok(v) => v,
                    Err(e) => {
                        return error(&ApiError::bad_request(format!("error decoding YAML: {e}")));
                    }
                };
                let opts = WriteOpts {
                    manager: manager.to_owned(),
                    strict: self.q("fieldValidation") == Some("Strict"),
                    dry_run: self.q("dryRun").is_some(),
                };
                let force = self.q("force") == Some("true");
                let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                match current {
                    None if t.sub.is_none() => {
                        let mut body = config.clone();
                        if body.get("metadata").is_none() {
                            body["metadata"] = json!({});
                        }
                        body["metadata"]["name"] = Value::String(name.clone());
                        match store.create(&t.def, t.namespace.as_deref(), body, &opts) {
                            Ok(created) => {
                                // Ownership belongs to the applier, as an Apply operation.
                                let mut owned = (*created).clone();
                                owned["metadata"]["managedFields"] = Value::Null;
                                if let Some(m) = owned["metadata"].as_object_mut() {
                                    m.remove("managedFields");
                                }
                                let applied = match fields::apply(&owned, &config, manager, None, true, &now) {
                                    Ok(v) => v,
                                    Err(e) => return error(&e),
                                };
                                let result = store.update(
                                    &t.def,
                                    t.namespace.as_deref(),
                                    &name,
                                    applied,
                                    None,
                                    &WriteOpts { manager: manager.into(), ..Default::default() },
                                );
                                return match result {
                                    Ok(o) => json_response(201, &self.output(&t.def, &o)),
                                    Err(e) => error(&e),
                                };
                            }
                            Err(e) => return error(&e),
                        }
                    }
                    None => return error(&ApiError::not_found(&t.def, &name)),
                    Some(cur) => match fields::apply(&cur, &config, manager, t.sub.as_deref(), force, &now) {
                        Ok(merged) => store.update(
                            &t.def,
                            t.namespace.as_deref(),
                            &name,
                            strip_rv(merged),
                            t.sub.as_deref(),
                            &opts,
                        ),
                        Err(e) => Err(e),
                    },
                }
            }
            kind @ ("application/merge-patch+json"
            | "application/json-patch+json"
            | "application/strategic-merge-patch+json") => {
                if kind == "application/strategic-merge-patch+json" && t.def.custom {
                    return error(&ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                    ));
                }
                let Some(cur) = current else {
                    return error(&ApiError::not_found(&t.def, &name));
                };
                let patch: Value = match serde_json::from_slice(&self.body) {
                    Ok(p) => p,
                    Err(e) => {
                        return error(&ApiError::bad_request(format!("error decoding patch: {e}")));
                    }
                };
                let mut doc = (*cur).clone();
                let precondition = patch.pointer("/metadata/resourceVersion").cloned();
                if kind == "application/json-patch+json" {
                    let ops: json_patch::Patch = match serde_json::from_value(patch) {
                        Ok(p) => p,
                        Err(e) => {
                            return error(&ApiError::bad_request(format!("error decoding patch: {e}")));
                        }
                    };
                    if let Err(e) = json_patch::patch(&mut doc, &ops) {
                        tracing::debug!(error = %e, "JSON patch failed");
                        return error(&ApiError::new(
                            422,
                            "Invalid",
                            "the server rejected our request due to an error in our request",
                        ));
                    }
                } else {
                    json_patch::merge(&mut doc, &patch);
                }
                // A resourceVersion in the patch is a precondition; otherwise the patch
                // applies to whatever is current (we hold the lock).
                let rv_in_doc = match precondition {
                    Some(Value::String(rv)) => Value::String(rv),
                    _ => cur.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
                };
                if doc.get("metadata").is_some_and(Value::is_object) {
                    doc["metadata"]["resourceVersion"] = rv_in_doc;
                }
                let opts = self.opts(&self.user_agent_manager());
                store.update(&t.def, t.namespace.as_deref(), &name, doc, t.sub.as_deref(), &opts)
            }
            other => {
                return error(&ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                    ),
                ));
            }
        };
        match result {
            Ok(o) => json_response(200, &self.output(&t.def, &o)),
            Err(e) => error(&e),
        }
    }

    fn delete(&self, t: &Target) -> Response {
        let name = t.name.as_deref().unwrap_or_default();
        let precondition: Option<String> = serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|b| b.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_owned));
        let result = self.s.store.lock().delete(
            &t.def,
            t.namespace.as_deref(),
            name,
            precondition.as_deref(),
            self.q("dryRun").is_some(),
        );
        match result {
            Ok(o) => json_response(200, &self.output(&t.def, &o)),
            Err(e) => error(&e),
        }
    }

    fn delete_collection(&self, t: &Target) -> Response {
        let (labels, fields) = match self.selectors() {
            Ok(s) => s,
            Err(e) => return error(&e),
        };
        let mut store = self.s.store.lock();
        let victims: Vec<Arc<Value>> = store
            .list(&t.def, t.namespace.as_deref())
            .into_iter()
            .filter(|o| labels.matches_object(o) && fields.matches_object(o))
            .collect();
        let mut deleted = Vec::new();
        for v in victims {
            let (ns, name) = object_key(&v);
            let ns = (!ns.is_empty()).then_some(ns);
            if let Ok(o) = store.delete(&t.def, ns.as_deref(), &name, None, false) {
                deleted.push(self.output(&t.def, &o));
            }
        }
        json_response(
            200,
            &json!({"apiVersion": t.def.api_version(), "kind": format!("{}List", t.def.kind), "metadata": {"resourceVersion": store.rv().to_string()}, "items": deleted}),
        )
    }

    fn watch(&self, t: &Target) -> Response {
        let (labels, fields) = match self.selectors() {
            Ok(s) => s,
            Err(e) => return error(&e),
        };
        let timeout = self
            .q("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1800));
        let bookmarks = self.q("allowWatchBookmarks") == Some("true");
        let rv_param = self.q("resourceVersion").map(str::to_owned);
        let store = self.s.store.lock();
        let rx = store.subscribe();
        let key = t.def.storage_key();
        let ns = t.namespace.clone();
        let matches = move |o: &Value| {
            labels.matches_object(o)
                && fields.matches_object(o)
                && ns.as_deref().is_none_or(|n| o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(n))
        };
        let mut initial: Vec<Value> = Vec::new();
        let def = t.def.clone();
        let event = move |kind: &str, o: &Value| {
            let mut o = o.clone();
            o["apiVersion"] = Value::String(def.api_version());
            json!({"type": kind, "object": o})
        };
        let gone = self.s.faults.take_gone();
        let from_rv: u64 = match rv_param.as_deref() {
            None | Some("0") | Some("") => {
                for o in store.list(&t.def, t.namespace.as_deref()) {
                    if matches(&o) {
                        initial.push(event("ADDED", &o));
                    }
                }
                store.rv()
            }
            Some(rv) => {
                let rv: u64 = match rv.parse() {
                    Ok(r) => r,
                    Err(_) => {
                        return error(&ApiError::bad_request(format!("invalid resource version: {rv}")));
                    }
                };
                match store.since(&key, rv) {
                    Some(changes) if !gone => {
                        for c in changes {
                            if let Some(e) = transition(&c, &matches) {
                                initial.push(event(e.0, e.1));
                            }
                        }
                        rv.max(store.rv())
                    }
                    _ => {
                        let status = ApiError::expired(format!(
                            "too old resource version: {rv} ({})",
                            store.compacted().max(rv + 1)
                        ))
                        .body();
                        initial.push(json!({"type": "ERROR", "object": status}));
                        let body = initial.iter().map(|e| format!("{e}\n")).collect::<String>();
                        drop(store);
                        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response();
                    }
                }
            }
        };
        drop(store);
        let (tx, out) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(256);
        let faults = self.s.faults.clone();
        let interval = self.s.bookmark_interval;
        let api_version = t.def.api_version();
        let kind = t.def.kind.clone();
        let store = self.s.store.clone();
        tokio::spawn(async move {
            let mut rx = rx;
            let mut sent = 0usize;
            let mut last_rv = from_rv;
            let send = |v: Value| {
                let tx = tx.clone();
                async move { tx.send(Ok(Bytes::from(format!("{v}\n")))).await.is_ok() }
            };
            for e in initial {
                if !send(e).await {
                    return;
                }
                sent += 1;
                if faults.close_watch(sent) {
                    return;
                }
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            loop {
                tokio::select! {
                    _ = &mut deadline => return,
                    _ = tick.tick(), if bookmarks => {
                        let rv = store.lock().rv().max(last_rv);
                        let b = json!({"type": "BOOKMARK", "object": {"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": rv.to_string()}}});
                        if !send(b).await { return; }
                    }
                    msg = rx.recv() => match msg {
                        Ok(c) => {
                            if c.key != key || c.rv <= last_rv { continue; }
                            last_rv = c.rv;
                            if let Some((k, o)) = transition(&c, &matches) {
                                if !send(event(k, o)).await { return; }
                                sent += 1;
                                if faults.close_watch(sent) { return; }
                            }
                        }
                        // A watcher that fell behind is closed; the client resumes or relists.
                        Err(_) => return,
                    }
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(out);
        Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::TRANSFER_ENCODING, "chunked")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| error(&ApiError::new(500, "InternalError", "cannot build the watch response")))
    }

    fn access_review(&self) -> Response {
        let body = if self.body.starts_with(b"k8s\0") {
            // kubectl sends built-in kinds as protobuf.
            match super::proto::access_review(&self.body) {
                Some(b) => b,
                None => {
                    return error(&ApiError::bad_request("cannot decode the SelfSubjectAccessReview"));
                }
            }
        } else {
            match self.body_json() {
                Ok(b) => b,
                Err(e) => return error(&e),
            }
        };
        let ra = body.pointer("/spec/resourceAttributes").cloned().unwrap_or(json!({}));
        let s = |k: &str| ra.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
        let attrs = Attributes {
            verb: s("verb").unwrap_or_default(),
            group: s("group").unwrap_or_default(),
            resource: s("resource").unwrap_or_default(),
            subresource: s("subresource"),
            namespace: s("namespace"),
            name: s("name"),
        };
        let user = self.user.clone().unwrap_or_else(|| User::new("system:anonymous", &[]));
        let allowed = self.s.auth.allowed(&self.s.store.lock(), &user, &attrs);
        let mut out = body.clone();
        out["apiVersion"] = json!("authorization.k8s.io/v1");
        out["kind"] = json!("SelfSubjectAccessReview");
        out["status"] = json!({"allowed": allowed});
        json_response(201, &out)
    }
}

/// `details` of a Status about a target: `name` only when there is one (kube-rs requires
/// a string if the key is present).
fn status_details(t: &Target) -> Value {
    let mut d = json!({"group": t.def.group, "kind": t.def.plural});
    if let Some(n) = &t.name {
        d["name"] = Value::String(n.clone());
    }
    d
}

fn def_namespaced(store: &Store, group: &str, version: &str, plural: &str) -> bool {
    store.find(group, version, plural).is_some_and(|d| d.namespaced)
}

fn not_found_path() -> Response {
    error(&ApiError::new(404, "NotFound", "the server could not find the requested resource"))
}

fn strip_rv(mut v: Value) -> Value {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

fn object_key(o: &Value) -> (String, String) {
    let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("").to_owned();
    (s("/metadata/namespace"), s("/metadata/name"))
}

/// The event a watcher sees for a change, given its filter: objects moving into the
/// selection are ADDED, moving out are DELETED.
fn transition<'a>(c: &'a super::store::Change, matches: &impl Fn(&Value) -> bool) -> Option<(&'static str, &'a Value)> {
    let now = matches(&c.object);
    let before = c.old.as_deref().map(matches);
    match (c.kind, before, now) {
        ("MODIFIED", Some(false), true) => Some(("ADDED", &c.object)),
        ("MODIFIED", Some(true), false) => Some(("DELETED", &c.object)),
        (_, _, true) => Some((c.kind, &c.object)),
        _ => None,
    }
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
