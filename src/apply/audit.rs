//! The audit trail of plugin actions: one structured line (`target: kreflex::audit`) per
//! applied, failed or denied action, and the short action labels that name actions in
//! those lines, in metrics and in errors.
//!
//! Called by the dispatcher around the permission check and the apply stage; writes to
//! `tracing` only.

use super::EventTarget;
use crate::actions::Action;
use crate::model::ObjectRef;
use crate::rbac::{Denied, Request};

/// The label of an action: `patch`, `create`, `delete`, `event` or `requeue`.
pub fn action_label(a: &Action) -> &'static str {
    match a {
        Action::Patch { .. } => "patch",
        Action::Create { .. } => "create",
        Action::Delete { .. } => "delete",
        Action::EmitEvent { .. } => "event",
        Action::RequeueAfter { .. } => "requeue",
    }
}

/// One line per applied (or failed) action: what a security reviewer greps for. `outcome`
/// is `applied`, `already-done` or the failure's decision label; `code` the status of a
/// failed request.
pub fn action(plugin: &str, a: &Action, on: &EventTarget, outcome: &str, code: Option<u16>) {
    let (verb, target, patch_type) = match a {
        Action::Patch { target, subresource, patch_type, .. } => (
            "patch",
            match subresource {
                Some(s) => format!("{target} ({s})"),
                None => target.to_string(),
            },
            format!("{patch_type:?}").to_lowercase(),
        ),
        Action::Create { object } => (
            "create",
            ObjectRef::of(object).map(|r| r.to_string()).unwrap_or_else(|| "object with generateName".into()),
            String::new(),
        ),
        Action::Delete { target } => ("delete", target.to_string(), String::new()),
        Action::EmitEvent { reason, .. } => ("event", format!("{} ({reason})", on.object), String::new()),
        Action::RequeueAfter { .. } => return,
    };
    // `http_status` is the status of a failed request. A successful one is only known to have
    // been a 2xx (the client does not hand the exact code back), and then the field is absent
    // rather than a made-up number.
    tracing::info!(target: "kreflex::audit", plugin, verb, object = %target, patch_type, outcome, http_status = code, "action");
}

/// One line for an action the permission check stopped before any request.
pub fn denied(plugin: &str, req: &Request, denied: &Denied) {
    tracing::warn!(target: "kreflex::audit", plugin = %plugin, verb = %req.verb, resource = %req.resource,
        subresource = req.subresource.as_deref().unwrap_or(""), namespace = req.namespace.as_deref().unwrap_or(""),
        name = req.name.as_deref().unwrap_or(""), outcome = "denied", reason = %denied.reason, "action denied");
}
