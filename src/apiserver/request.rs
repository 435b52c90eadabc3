//! One request as the handlers see it. In: the server's [`Shared`] state and a decoded
//! request (method, query, headers, body, the authenticated user); out: the query and
//! body read the Kubernetes way (selectors over the kind's field labels, write and delete
//! options, the field manager, JSON or protobuf bodies through `proto`) and the two
//! response shapes every handler answers with, a JSON object or a `Status` failure.
//! Sits between the router (`http`) and the handlers (`verbs`, `watch`).

use super::auth::{Auth, User};
use super::convert;
use super::faults::FaultHandle;
use super::field_selector::FieldSelector;
use super::proto;
use super::resources::ResourceDef;
use super::status::ApiError;
use super::store::{DeleteOpts, Propagation, Store, WriteOpts};
use super::{RequestStats, StatKey};
use crate::selector::Selector;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The Kubernetes protobuf media type.
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

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

/// One request being answered.
pub struct Ctx {
    /// Server state.
    pub s: Shared,
    /// HTTP method.
    pub method: Method,
    /// Decoded query parameters.
    pub query: HashMap<String, String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The authenticated (or impersonated) user, once known.
    pub user: Option<User>,
    /// What the request is counted as.
    pub stat: StatKey,
}

/// A parsed resource URL.
pub struct Target {
    /// The resource.
    pub def: Arc<ResourceDef>,
    /// Namespace, for namespaced resources.
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
    /// Subresource (`status`).
    pub sub: Option<String>,
}

impl Ctx {
    /// A non-empty query parameter.
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The user, or anonymous before authentication.
    pub fn user(&self) -> User {
        self.user.clone().unwrap_or_else(|| User::new("system:anonymous", &[]))
    }

    /// Whether kubectl asked for a Table.
    pub fn wants_table(&self) -> bool {
        self.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("as=Table"))
    }

    /// `labelSelector` and `fieldSelector` (over the field labels of `def`).
    pub fn selectors(&self, def: &ResourceDef) -> Result<(Selector, FieldSelector), ApiError> {
        let labels =
            Selector::parse(self.q("labelSelector").unwrap_or("")).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(def, self.q("fieldSelector").unwrap_or(""))?;
        Ok((labels, fields))
    }

    /// The body of a create or update: Kubernetes protobuf (what kubectl sends for
    /// built-in kinds) or JSON.
    pub fn body_object(&self) -> Result<Value, ApiError> {
        if self.body.starts_with(proto::MAGIC) || self.content_type() == PROTOBUF {
            return proto::decode(&self.body).map_err(|e| match e {
                proto::ProtoError::Unsupported { .. } => ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
                ),
                other => ApiError::bad_request(other.to_string()),
            });
        }
        self.body_json()
    }

    /// The body as JSON.
    fn body_json(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e} ({})",
                self.stat.resource,
                String::from_utf8_lossy(&self.body[..self.body.len().min(64)])
            ))
        })
    }

    /// Write options from the query, with `default_manager` when no `fieldManager` is given.
    pub fn opts(&self, default_manager: &str) -> WriteOpts {
        WriteOpts {
            manager: self.q("fieldManager").unwrap_or(default_manager).to_owned(),
            strict: self.q("fieldValidation") == Some("Strict"),
            dry_run: self.q("dryRun").is_some(),
            force: self.q("force") == Some("true"),
        }
    }

    /// `DeleteOptions`, from the body (JSON) and the query (`dryRun`).
    pub fn delete_opts(&self) -> Result<DeleteOpts, ApiError> {
        let body: Value = if self.body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else if self.body.starts_with(proto::MAGIC) {
            self.body_object()?
        } else {
            serde_json::from_slice(&self.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
        };
        let s = |p: &str| body.pointer(p).and_then(Value::as_str).map(str::to_owned);
        let dry_run_in_body = body.get("dryRun").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        let policy = s("/propagationPolicy").or_else(|| self.q("propagationPolicy").map(str::to_owned));
        let orphan = body
            .get("orphanDependents")
            .and_then(Value::as_bool)
            .or_else(|| self.q("orphanDependents").map(|v| v == "true"));
        let propagation = match (orphan, policy.as_deref()) {
            (Some(true), _) => Some(Propagation::Orphan),
            (Some(false), _) => Some(Propagation::Background),
            (None, Some("Orphan")) => Some(Propagation::Orphan),
            (None, Some("Background")) => Some(Propagation::Background),
            (None, Some("Foreground")) => Some(Propagation::Foreground),
            (None, None) => None,
            (None, Some(other)) => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                ));
            }
        };
        Ok(DeleteOpts {
            uid: s("/preconditions/uid"),
            resource_version: s("/preconditions/resourceVersion"),
            dry_run: self.q("dryRun").is_some() || dry_run_in_body,
            propagation,
        })
    }

    /// The manager of non-apply writes without `fieldManager`: the User-Agent's program name.
    pub fn user_agent_manager(&self) -> String {
        self.headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|m| !m.is_empty())
            .unwrap_or("unknown")
            .to_owned()
    }

    /// The `Content-Type` media type, without parameters.
    pub fn content_type(&self) -> String {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    }
}

/// An object as served: in the URL's version.
pub fn output(def: &ResourceDef, obj: &Value) -> Value {
    convert::served(def, obj).into_owned()
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

/// Object keys in list order: `(namespace or "", name)`.
pub fn object_key(o: &Value) -> (String, String) {
    let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("").to_owned();
    (s("/metadata/namespace"), s("/metadata/name"))
}
