//! Kubernetes `Status` failures, shaped exactly as kube-apiserver sends them.

use super::resources::ResourceDef;
use serde_json::{Value, json};

/// A failed request: HTTP code, reason, message and optional details.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details`, if any.
    pub details: Option<Value>,
    /// `Retry-After` seconds, for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// Any failure.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None, retry_after: None }
    }

    /// With details.
    pub fn details(mut self, d: Value) -> Self {
        self.details = Some(d);
        self
    }

    /// The `Status` body.
    pub fn body(&self) -> Value {
        let mut v = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code});
        // An error with no reason (`StatusReasonUnknown`) is sent without the key.
        if self.reason.is_empty()
            && let Some(m) = v.as_object_mut()
        {
            m.remove("reason");
        }
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }

    /// 404 for an object.
    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", def.qualified()))
            .details(json!({"name": name, "group": def.group, "kind": def.plural}))
    }

    /// 409 AlreadyExists.
    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", def.qualified()))
            .details(json!({"name": name, "group": def.group, "kind": def.plural}))
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                def.qualified()
            ),
        )
        .details(json!({"name": name, "group": def.group, "kind": def.plural}))
    }

    /// 409 Conflict of a delete precondition (`rest.BeforeDelete`): the resource named in
    /// the message is the object's kind, qualified by its group.
    pub fn precondition_failed(def: &ResourceDef, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {why}", def.qualified_kind()),
        )
        .details(json!({"name": name, "group": def.group, "kind": def.kind}))
    }

    /// 500 with no reason: what kube-apiserver answers for an error of its storage layer.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 422 Invalid with field causes `(reason, message, field)`.
    pub fn invalid(def: &ResourceDef, kind: &str, name: &str, causes: &[(String, String, String)]) -> Self {
        let summary = causes.iter().map(|(_, m, f)| format!("{f}: {m}")).collect::<Vec<_>>();
        let summary = if summary.len() == 1 { summary[0].clone() } else { format!("[{}]", summary.join(", ")) };
        let qualified = if def.group.is_empty() { kind.to_owned() } else { format!("{kind}.{}", def.group) };
        Self::new(422, "Invalid", format!("{qualified} \"{name}\" is invalid: {summary}")).details(json!({
            "name": name, "group": def.group, "kind": kind,
            "causes": causes.iter().map(|(r, m, f)| json!({"reason": r, "message": m, "field": f})).collect::<Vec<_>>(),
        }))
    }

    /// 410 Expired.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
}
