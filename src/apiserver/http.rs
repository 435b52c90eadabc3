//! The HTTP front: every request enters at [`handle`]. In: an HTTP request; out: its
//! response. It reads the body (413 beyond the limit), authenticates (`auth`), routes the
//! path in the Kubernetes REST layout to discovery/OpenAPI (`discovery`) or to a resource
//! URL, which it parses into a [`Target`] and a verb, authorizes, passes past injected
//! write failures (`faults`), and hands to `verbs` or `watch`. Counts every answer in the
//! request statistics.

use super::auth::{Attributes, forbidden_message};
use super::discovery;
use super::request::{Ctx, Shared, Target, error, json_response};
use super::status::ApiError;
use super::store::Store;
use super::{StatKey, verbs, watch};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

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
    let mut cx = Ctx {
        s: s.clone(),
        method: parts.method,
        query,
        headers: parts.headers,
        body: bytes,
        user: None,
        stat: StatKey::default(),
    };
    let response = route(&mut cx, &path);
    cx.stat.code = response.status().as_u16();
    s.stats.record(cx.stat);
    response
}

/// Query parameters, decoded.
fn url_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (decode(k), decode(v))
    })
}

/// `application/x-www-form-urlencoded` decoding; a bad escape stays as it is.
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

fn route(cx: &mut Ctx, path: &str) -> Response {
    let user = match cx.s.auth.request_user(&cx.headers, &cx.s.store) {
        Ok(u) => u,
        Err(e) => return error(&e),
    };
    cx.stat.user = user.name.clone();
    cx.user = Some(user);
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    cx.stat.verb = cx.method.as_str().to_owned();
    let s = &cx.s;
    match segs.as_slice() {
        ["version"] => json_response(200, &discovery::version()),
        ["healthz"] | ["readyz"] | ["livez"] => (StatusCode::OK, "ok").into_response(),
        ["api"] => json_response(200, &discovery::core_versions(&s.address)),
        ["apis"] => json_response(200, &discovery::groups(&s.store.lock())),
        ["openapi", "v3"] => json_response(200, &discovery::openapi_index(&s.store.lock())),
        ["openapi", "v3", rest @ ..] => match discovery::openapi_doc(&s.store.lock(), rest) {
            Some(doc) => json_response(200, &doc),
            None => not_found_path(),
        },
        ["api", "v1"] => json_response(200, &discovery::resource_list(&s.store.lock(), "", "v1")),
        ["apis", g] => match discovery::group(&s.store.lock(), g) {
            Some(doc) => json_response(200, &doc),
            None => not_found_path(),
        },
        ["apis", "authorization.k8s.io", "v1"] => json_response(200, &discovery::authorization_resources()),
        ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"] if cx.method == Method::POST => {
            verbs::access_review(cx)
        }
        ["apis", g, v] => {
            let store = s.store.lock();
            if store.defs().iter().any(|d| d.group == *g && d.version == *v) {
                json_response(200, &discovery::resource_list(&store, g, v))
            } else {
                not_found_path()
            }
        }
        ["api", "v1", rest @ ..] => resource(cx, "", "v1", rest),
        ["apis", g, v, rest @ ..] => resource(cx, g, v, rest),
        _ => not_found_path(),
    }
}

/// A resource URL, `[namespaces/NS/]PLURAL[/NAME[/SUB]]` after the group and version.
fn parse_target(store: &Store, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let not_found = || ApiError::new(404, "NotFound", "the server could not find the requested resource");
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
        _ => return Err(not_found()),
    };
    let def = store.find(group, version, plural).ok_or_else(not_found)?;
    if let Some(s) = &sub
        && !((s == "status" && def.status) || (s == "scale" && def.scale()))
    {
        return Err(not_found());
    }
    if def.namespaced && namespace.is_none() && name.is_some() {
        return Err(not_found());
    }
    let namespace = if def.namespaced { namespace } else { None };
    Ok(Target { def, namespace, name, sub })
}

/// A resource request: its verb from the method and URL, RBAC, injected write failures,
/// then the handler.
fn resource(cx: &mut Ctx, group: &str, version: &str, rest: &[&str]) -> Response {
    let parsed = parse_target(&cx.s.store.lock(), group, version, rest);
    let t = match parsed {
        Ok(t) => t,
        Err(e) => return error(&e),
    };
    let watch = matches!(cx.q("watch"), Some("true" | "1"));
    let verb = match (&cx.method, &t.name) {
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
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    cx.stat.verb = verb.into();
    cx.stat.resource = t.def.plural.clone();
    cx.stat.subresource = t.sub.clone().unwrap_or_default();
    let attrs = Attributes {
        verb: verb.into(),
        group: t.def.group.clone(),
        resource: t.def.plural.clone(),
        subresource: t.sub.clone(),
        namespace: t.namespace.clone(),
        name: t.name.clone(),
    };
    let user = cx.user();
    if !cx.s.auth.allowed(&cx.s.store.lock(), &user, &attrs) {
        return error(&ApiError::new(403, "Forbidden", forbidden_message(&user, &attrs)).details(status_details(&t)));
    }
    if let Err(e) = cx.s.auth.check_escalation(&cx.s.store.lock(), &user, &attrs, &cx.body) {
        return error(&e.details(status_details(&t)));
    }
    if matches!(verb, "create" | "update" | "patch" | "delete" | "deletecollection")
        && let Some(e) = cx.s.faults.write_failure()
    {
        return error(&e);
    }
    match verb {
        "get" => verbs::get(cx, &t),
        "list" => verbs::list(cx, &t),
        "watch" => watch::watch(cx, &t),
        "create" => verbs::create(cx, &t),
        "update" => verbs::update(cx, &t),
        "patch" => verbs::patch(cx, &t),
        "delete" => verbs::delete(cx, &t),
        _ => verbs::delete_collection(cx, &t),
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

fn not_found_path() -> Response {
    error(&ApiError::new(404, "NotFound", "the server could not find the requested resource"))
}
