//! Actions a plugin returns, decoded and validated before anything would be applied.
//!
//! In the data path this sits right after the WASM call: raw WIT actions go in, typed
//! [`Action`]s come out, or an [`ActionError`] that names the plugin, the event and the
//! object. Validation is structural (valid JSON of the right shape for the patch type,
//! complete targets, valid names, bounded sizes); whether the plugin is *allowed* to do it
//! is decided by [`crate::rbac`].

use crate::model::{EventKind, ObjectRef};
use crate::names;
use crate::wasm::{RawAction, wit};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// Upper bounds on what one event's actions may contain.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Actions per event (default 100).
    pub max_actions: usize,
    /// Bytes of one patch body or created object (default 1 MiB, etcd's own object limit
    /// is 1.5 MiB).
    pub max_body_bytes: usize,
    /// Characters of an Event message (default 1024, what Kubernetes keeps); longer
    /// messages are truncated, not rejected.
    pub max_event_message: usize,
    /// Longest requeue delay (default 24 h).
    pub max_requeue: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_actions: 100,
            max_body_bytes: 1 << 20,
            max_event_message: 1024,
            max_requeue: Duration::from_secs(24 * 3600),
        }
    }
}

/// Kubernetes patch types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PatchType {
    /// JSON merge patch (RFC 7386).
    Merge,
    /// JSON patch (RFC 6902).
    Json,
    /// Server-side apply.
    Apply,
}

/// Severity of a Kubernetes Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Severity {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

/// A validated action. Targets are resolved: a patch without a target names the event's
/// object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Action {
    /// Patch an object or its status.
    #[serde(rename_all = "camelCase")]
    Patch {
        /// Object patched.
        target: ObjectRef,
        /// `status` (or `scale`), or none for the object itself.
        #[serde(skip_serializing_if = "Option::is_none")]
        subresource: Option<String>,
        /// How `body` is interpreted.
        patch_type: PatchType,
        /// The patch document.
        body: Value,
    },
    /// Create an object.
    Create {
        /// The object to create.
        object: Value,
    },
    /// Delete an object.
    Delete {
        /// Object deleted.
        target: ObjectRef,
    },
    /// Record a Kubernetes Event on the event's object.
    #[serde(rename = "emitEvent")]
    EmitEvent {
        /// Normal or Warning.
        severity: Severity,
        /// CamelCase reason.
        reason: String,
        /// Message (truncated to the limit).
        message: String,
    },
    /// Call the plugin again for this object after a delay.
    #[serde(rename = "requeueAfter")]
    RequeueAfter {
        /// Delay in milliseconds.
        #[serde(rename = "ms")]
        after_ms: u64,
    },
}

impl Action {
    /// The delay of a `RequeueAfter`.
    pub fn requeue_delay(&self) -> Option<Duration> {
        match self {
            Action::RequeueAfter { after_ms } => Some(Duration::from_millis(*after_ms)),
            _ => None,
        }
    }
}

/// What the actions are about, for validation and error messages.
#[derive(Debug, Clone, Copy)]
pub struct EventContext<'a> {
    /// The plugin that returned the actions.
    pub plugin: &'a str,
    /// The event it was called for.
    pub event: EventKind,
    /// The event's object.
    pub object: &'a ObjectRef,
}

/// An action that cannot be applied. Nothing of an event whose actions fail validation is
/// applied: the list is all or nothing.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("plugin {plugin}: {event} event for {object}: action #{index} ({action}) is invalid: {reason}")]
pub struct ActionError {
    /// Plugin name.
    pub plugin: String,
    /// Event kind.
    pub event: EventKind,
    /// `Kind namespace/name` of the event's object.
    pub object: String,
    /// Position of the action in the returned list (0-based); for "too many actions" the limit.
    pub index: usize,
    /// `patch`, `create`, `delete`, `emit-event`, `requeue-after`, or `list`.
    pub action: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// Validates every raw action of one event. All or nothing.
pub fn validate(raw: Vec<RawAction>, ctx: &EventContext<'_>, limits: &Limits) -> Result<Vec<Action>, ActionError> {
    let err = |index: usize, action: &'static str, reason: String| ActionError {
        plugin: ctx.plugin.to_owned(),
        event: ctx.event,
        object: ctx.object.to_string(),
        index,
        action,
        reason,
    };
    if raw.len() > limits.max_actions {
        return Err(err(
            limits.max_actions,
            "list",
            format!("{} actions returned, at most {} are allowed per event", raw.len(), limits.max_actions),
        ));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let name = raw_name(&a);
            validate_one(a, ctx, limits).map_err(|reason| err(i, name, reason))
        })
        .collect()
}

fn raw_name(a: &RawAction) -> &'static str {
    match a {
        wit::Action::Patch(_) => "patch",
        wit::Action::Create(_) => "create",
        wit::Action::Delete(_) => "delete",
        wit::Action::EmitEvent(_) => "emit-event",
        wit::Action::RequeueAfter(_) => "requeue-after",
    }
}

fn validate_one(a: RawAction, ctx: &EventContext<'_>, limits: &Limits) -> Result<Action, String> {
    match a {
        wit::Action::Patch(p) => {
            let target = match p.target {
                Some(t) => valid_ref(t.into())?,
                None => ctx.object.clone(),
            };
            let subresource = match p.subresource.as_deref() {
                None | Some("") => None,
                Some(s @ ("status" | "scale")) => Some(s.to_owned()),
                Some(other) => {
                    return Err(format!("subresource {other:?} is not supported (use \"status\" or \"scale\")"));
                }
            };
            let body = parse_body(&p.body, limits)?;
            let patch_type = match p.patch_type {
                wit::PatchType::Merge => PatchType::Merge,
                wit::PatchType::Json => PatchType::Json,
                wit::PatchType::Apply => PatchType::Apply,
            };
            check_patch_body(patch_type, &body, &target)?;
            Ok(Action::Patch { target, subresource, patch_type, body })
        }
        wit::Action::Create(json) => {
            let object = parse_body(&json, limits)?;
            check_new_object(&object)?;
            Ok(Action::Create { object })
        }
        wit::Action::Delete(t) => Ok(Action::Delete { target: valid_ref(t.into())? }),
        wit::Action::EmitEvent(e) => {
            if !is_reason(&e.reason) {
                return Err(format!(
                    "reason {:?} must be 1-128 characters of letters and digits in CamelCase (e.g. \"UnsupportedEngine\")",
                    e.reason
                ));
            }
            let message = truncate_chars(&e.message, limits.max_event_message);
            let severity = match e.severity {
                wit::Severity::Normal => Severity::Normal,
                wit::Severity::Warning => Severity::Warning,
            };
            Ok(Action::EmitEvent { severity, reason: e.reason, message })
        }
        wit::Action::RequeueAfter(ms) => {
            let max = limits.max_requeue.as_millis() as u64;
            if ms == 0 || u64::from(ms) > max {
                return Err(format!("requeue-after {ms} ms must be between 1 and {max} ms"));
            }
            Ok(Action::RequeueAfter { after_ms: u64::from(ms) })
        }
    }
}

fn parse_body(text: &str, limits: &Limits) -> Result<Value, String> {
    if text.len() > limits.max_body_bytes {
        return Err(format!("body is {} bytes, at most {} are allowed", text.len(), limits.max_body_bytes));
    }
    serde_json::from_str(text).map_err(|e| format!("body is not valid JSON: {e}"))
}

fn check_patch_body(patch_type: PatchType, body: &Value, target: &ObjectRef) -> Result<(), String> {
    match patch_type {
        PatchType::Merge => {
            if !body.is_object() {
                return Err("a merge patch body must be a JSON object".into());
            }
        }
        PatchType::Json => {
            serde_json::from_value::<json_patch::Patch>(body.clone())
                .map_err(|e| format!("a JSON patch body must be an array of RFC 6902 operations: {e}"))?;
        }
        PatchType::Apply => {
            let obj = body.as_object().ok_or("an apply patch body must be a JSON object")?;
            let api_version = obj.get("apiVersion").and_then(Value::as_str);
            let kind = obj.get("kind").and_then(Value::as_str);
            if api_version != Some(target.api_version.as_str()) || kind != Some(target.kind.as_str()) {
                return Err(format!(
                    "an apply patch body must carry apiVersion {:?} and kind {:?} of its target (found {:?} / {:?})",
                    target.api_version, target.kind, api_version, kind
                ));
            }
            if let Some(name) = obj.get("metadata").and_then(|m| m.get("name"))
                && name.as_str() != Some(target.name.as_str())
            {
                return Err(format!(
                    "metadata.name {name} in the apply body differs from the target {:?}",
                    target.name
                ));
            }
        }
    }
    Ok(())
}

fn check_new_object(object: &Value) -> Result<(), String> {
    let obj = object.as_object().ok_or("the object to create must be a JSON object")?;
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    check_api_version(api_version)?;
    if obj.get("kind").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err("the object to create has no kind".into());
    }
    let meta = obj.get("metadata").and_then(Value::as_object).ok_or("the object to create has no metadata")?;
    let text = |key: &str| match meta.get(key) {
        None => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or_else(|| format!("metadata.{key} must be a string")),
    };
    let (name, prefix) = (text("name")?, text("generateName")?);
    if let Some(prefix) = prefix {
        check_generate_name(prefix)?;
    }
    match (name, prefix) {
        (Some(name), _) => names::check_object_name(name).map_err(|e| e.to_string())?,
        (None, Some(_)) => {}
        (None, None) => {
            return Err("the object to create has neither metadata.name nor metadata.generateName".into());
        }
    }
    if let Some(ns) = text("namespace")? {
        names::check_namespace(ns).map_err(|e| e.to_string())?;
    }
    if let Some(owners) = meta.get("ownerReferences") {
        check_owner_references(owners)?;
    }
    Ok(())
}

/// Characters the API server appends to a `generateName` prefix.
const GENERATED_SUFFIX: usize = 5;

/// A `generateName` prefix: what the API server accepts (a trailing `-` allowed), short
/// enough that the generated name is still a valid object name.
fn check_generate_name(prefix: &str) -> Result<(), String> {
    let stem = prefix.strip_suffix('-').unwrap_or(prefix);
    if stem.is_empty() || !names::is_dns_subdomain(stem) || prefix.len() + GENERATED_SUFFIX > 253 {
        return Err(format!(
            "metadata.generateName {prefix:?} must be a DNS subdomain (a trailing '-' allowed) of at most {} characters",
            253 - GENERATED_SUFFIX
        ));
    }
    Ok(())
}

/// Owner references as the API server demands them (apiVersion, kind, a valid name and a
/// uid each, at most one controller), and none that blocks its owner's deletion: that
/// needs a write on the owner the plugin was never checked for (the API server's
/// `OwnerReferencesPermissionEnforcement`).
fn check_owner_references(owners: &Value) -> Result<(), String> {
    let list = owners.as_array().ok_or("metadata.ownerReferences must be a list")?;
    let mut controllers = 0;
    for (i, o) in list.iter().enumerate() {
        let at = |reason: String| format!("metadata.ownerReferences[{i}]: {reason}");
        let field = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("");
        check_api_version(field("apiVersion")).map_err(at)?;
        if field("kind").is_empty() {
            return Err(at("kind is empty".into()));
        }
        names::check_object_name(field("name")).map_err(|e| at(e.to_string()))?;
        if field("uid").is_empty() {
            return Err(at("uid is empty".into()));
        }
        if o.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
            return Err(at("blockOwnerDeletion is not allowed (it needs a write on the owner)".into()));
        }
        controllers += usize::from(o.get("controller").and_then(Value::as_bool) == Some(true));
    }
    if controllers > 1 {
        return Err("metadata.ownerReferences: at most one may be the controller".into());
    }
    Ok(())
}

fn valid_ref(r: ObjectRef) -> Result<ObjectRef, String> {
    check_api_version(&r.api_version)?;
    if r.kind.is_empty() {
        return Err("target has an empty kind".into());
    }
    names::check_object_name(&r.name).map_err(|e| e.to_string())?;
    if let Some(ns) = &r.namespace {
        names::check_namespace(ns).map_err(|e| e.to_string())?;
    }
    Ok(r)
}

fn check_api_version(v: &str) -> Result<(), String> {
    let version = match v.split_once('/') {
        Some((group, version)) if !group.is_empty() => version,
        Some(_) => return Err(format!("apiVersion {v:?} has an empty group")),
        None => v,
    };
    if version.is_empty() || version.contains('/') {
        return Err(format!("apiVersion {v:?} must be \"group/version\" or \"v1\""));
    }
    Ok(())
}

fn is_reason(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 128
        && r.as_bytes()[0].is_ascii_uppercase()
        && r.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj() -> ObjectRef {
        ObjectRef {
            api_version: "stable.example.com/v1".into(),
            kind: "Database".into(),
            namespace: Some("default".into()),
            name: "orders".into(),
        }
    }

    fn run(raw: Vec<RawAction>) -> Result<Vec<Action>, ActionError> {
        let o = obj();
        validate(raw, &EventContext { plugin: "p", event: EventKind::Added, object: &o }, &Limits::default())
    }

    fn patch(pt: wit::PatchType, body: &str) -> RawAction {
        wit::Action::Patch(wit::Patch {
            target: None,
            subresource: Some("status".into()),
            patch_type: pt,
            body: body.into(),
        })
    }

    #[test]
    fn patch_without_target_names_the_event_object() {
        let out = run(vec![patch(wit::PatchType::Merge, r#"{"status":{"state":"Ready"}}"#)]).expect("valid");
        match &out[0] {
            Action::Patch { target, subresource, .. } => {
                assert_eq!(target, &obj());
                assert_eq!(subresource.as_deref(), Some("status"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_bodies_of_the_wrong_shape_for_their_patch_type() {
        assert!(run(vec![patch(wit::PatchType::Merge, "[1]")]).is_err());
        assert!(run(vec![patch(wit::PatchType::Merge, "{not json")]).is_err());
        assert!(run(vec![patch(wit::PatchType::Json, r#"{"op":"add"}"#)]).is_err());
        assert!(run(vec![patch(wit::PatchType::Json, r#"[{"op":"frobnicate","path":"/a"}]"#)]).is_err());
        assert!(
            run(vec![patch(wit::PatchType::Json, r#"[{"op":"replace","path":"/spec/size","value":"1Gi"}]"#)]).is_ok()
        );
        assert!(run(vec![patch(wit::PatchType::Apply, r#"{"spec":{}}"#)]).is_err());
        assert!(
            run(vec![patch(
                wit::PatchType::Apply,
                r#"{"apiVersion":"stable.example.com/v1","kind":"Database","spec":{}}"#
            )])
            .is_ok()
        );
    }

    #[test]
    fn error_names_plugin_event_object_and_position() {
        let e = run(vec![wit::Action::RequeueAfter(5), patch(wit::PatchType::Merge, "7")]).expect_err("invalid");
        let text = e.to_string();
        assert!(text.contains("plugin p"), "{text}");
        assert!(text.contains("added event"), "{text}");
        assert!(text.contains("Database default/orders"), "{text}");
        assert!(text.contains("action #1 (patch)"), "{text}");
    }

    #[test]
    fn rejects_incomplete_or_escaping_targets() {
        let target = |ns: Option<&str>, name: &str| {
            wit::Action::Delete(wit::ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: ns.map(Into::into),
                name: name.into(),
            })
        };
        assert!(run(vec![target(Some("default"), "")]).is_err());
        assert!(run(vec![target(Some("default"), "../secret")]).is_err());
        assert!(run(vec![target(Some(""), "x")]).is_err());
        assert!(run(vec![target(Some("Default"), "x")]).is_err());
        assert!(run(vec![target(None, "x")]).is_ok());
    }

    #[test]
    fn bounds_sizes_and_counts() {
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(2 << 20));
        assert!(run(vec![patch(wit::PatchType::Merge, &big)]).expect_err("too big").reason.contains("bytes"));
        let many = (0..101).map(|_| wit::Action::RequeueAfter(10)).collect();
        assert!(run(many).is_err());
        assert!(run(vec![wit::Action::RequeueAfter(0)]).is_err());
        let long = wit::Action::EmitEvent(wit::K8sEvent {
            severity: wit::Severity::Warning,
            reason: "Long".into(),
            message: "é".repeat(5000),
        });
        match &run(vec![long]).expect("truncated, not rejected")[0] {
            Action::EmitEvent { message, .. } => assert_eq!(message.chars().count(), 1025),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn create_needs_kind_and_a_name() {
        let create = |s: &str| wit::Action::Create(s.into());
        assert!(run(vec![create(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#)]).is_ok());
        assert!(
            run(vec![create(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"a-"}}"#)]).is_ok()
        );
        assert!(run(vec![create(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#)]).is_err());
        assert!(run(vec![create(r#"{"apiVersion":"v1","metadata":{"name":"a"}}"#)]).is_err());
        assert!(run(vec![create(r#"{"apiVersion":"/v1","kind":"X","metadata":{"name":"a"}}"#)]).is_err());
    }

    #[test]
    fn generate_name_and_owner_references_are_validated_like_names_and_targets() {
        let create = |meta: serde_json::Value| {
            let o = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta});
            run(vec![wit::Action::Create(o.to_string())])
        };
        let owner = |extra: serde_json::Value| {
            let mut o = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "name": "shop", "uid": "u1"});
            if let (Some(m), Some(e)) = (o.as_object_mut(), extra.as_object()) {
                m.extend(e.clone());
            }
            o
        };
        let long = "a".repeat(249);
        #[rustfmt::skip]
        let table = [
            (serde_json::json!({"generateName": "cm-"}), true),
            (serde_json::json!({"generateName": "cm"}), true),
            (serde_json::json!({"generateName": "../x-"}), false),
            (serde_json::json!({"generateName": "A-"}), false),
            (serde_json::json!({"generateName": "-"}), false),
            (serde_json::json!({"generateName": long}), false),
            (serde_json::json!({"generateName": 5}), false),
            // A name wins, but a bad prefix next to it is still refused.
            (serde_json::json!({"name": "a", "generateName": "x/y"}), false),
            (serde_json::json!({"name": "a", "ownerReferences": [owner(serde_json::json!({}))]}), true),
            (serde_json::json!({"name": "a", "ownerReferences": {}}), false),
            (serde_json::json!({"name": "a", "ownerReferences": [owner(serde_json::json!({"name": "../etc"}))]}), false),
            (serde_json::json!({"name": "a", "ownerReferences": [owner(serde_json::json!({"uid": ""}))]}), false),
            (serde_json::json!({"name": "a", "ownerReferences": [owner(serde_json::json!({"kind": ""}))]}), false),
            (serde_json::json!({"name": "a", "ownerReferences": [owner(serde_json::json!({"apiVersion": "/v1"}))]}), false),
            (serde_json::json!({"name": "a", "ownerReferences": [owner(serde_json::json!({"blockOwnerDeletion": true}))]}), false),
            (serde_json::json!({"name": "a", "ownerReferences": [owner(serde_json::json!({"controller": true})), owner(serde_json::json!({"controller": true, "name": "b"}))]}), false),
        ];
        for (i, (meta, ok)) in table.into_iter().enumerate() {
            assert_eq!(create(meta.clone()).is_ok(), ok, "case {i}: {meta}");
        }
    }

    #[test]
    fn event_reason_must_be_camel_case() {
        let ev = |r: &str| {
            wit::Action::EmitEvent(wit::K8sEvent {
                severity: wit::Severity::Normal,
                reason: r.into(),
                message: "m".into(),
            })
        };
        assert!(run(vec![ev("UnsupportedEngine")]).is_ok());
        assert!(run(vec![ev("")]).is_err());
        assert!(run(vec![ev("bad reason")]).is_err());
    }
}
