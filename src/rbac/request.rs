//! The request an action will make, for the permission check: verb, group, resource,
//! subresource, namespace and name, derived from the action and the event's object.
//!
//! Pure. The caller resolves the action's kind through discovery ([`kind_to_resolve`])
//! and hands in what it learned; with nothing resolved the plural is guessed from the kind
//! (the apply then fails with 404 if the check lets it through at all).

use super::Request;
use crate::actions::Action;
use crate::model::{Gvk, ObjectRef, guess_plural};

/// What discovery says about an action's kind, as far as the permission check cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceScope<'a> {
    /// Resource plural.
    pub plural: &'a str,
    /// Whether objects of the kind live in namespaces.
    pub namespaced: bool,
}

/// The kind whose resource [`request_for`] needs, if the action makes a request that
/// names one (patch, create, delete).
pub fn kind_to_resolve(action: &Action) -> Option<Gvk> {
    aim(action).map(|(_, target, _)| target.gvk())
}

/// The request `action` makes when it is applied to the event's object `on`, with
/// `resource` the resolved resource of [`kind_to_resolve`] (`None` if it could not be
/// resolved). `None` for actions that make no request (requeue).
pub fn request_for(action: &Action, on: &ObjectRef, resource: Option<ResourceScope<'_>>) -> Option<Request> {
    if let Action::EmitEvent { .. } = action {
        return Some(Request {
            verb: "create".into(),
            group: "events.k8s.io".into(),
            resource: "events".into(),
            subresource: None,
            namespace: on.namespace.clone().or_else(|| Some("default".into())),
            name: None,
        });
    }
    let (verb, target, subresource) = aim(action)?;
    let gvk = target.gvk();
    let (plural, namespace) = match resource {
        // A created object lands where the applier puts it; a patched or deleted one is
        // addressed by its target alone: no namespace is defaulted, so that the check and
        // the request see the same object ([`super::check_action`] refuses the gap).
        Some(r) => (
            r.plural.to_owned(),
            match action {
                _ if !r.namespaced => None,
                Action::Create { object } => Some(create_namespace(object, on)),
                _ => target.namespace.clone(),
            },
        ),
        None => (guess_plural(&gvk.kind), target.namespace.clone()),
    };
    Some(Request {
        verb: verb.into(),
        group: gvk.group,
        resource: plural,
        subresource,
        namespace,
        name: Some(target.name).filter(|n| !n.is_empty()),
    })
}

/// The namespace a namespaced object is created in: its own `metadata.namespace`, else the
/// event's object's, else `default`. The applier and the permission check both use it.
pub fn create_namespace(object: &serde_json::Value, on: &ObjectRef) -> String {
    object
        .pointer("/metadata/namespace")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .or_else(|| on.namespace.clone())
        .unwrap_or_else(|| "default".into())
}

/// Verb, target and subresource of an action aimed at an object.
fn aim(action: &Action) -> Option<(&'static str, ObjectRef, Option<String>)> {
    match action {
        Action::Patch { target, subresource, .. } => Some(("patch", target.clone(), subresource.clone())),
        Action::Delete { target } => Some(("delete", target.clone(), None)),
        Action::Create { object } => {
            let text = |pointer: &str| object.pointer(pointer).and_then(|v| v.as_str());
            let target = ObjectRef::of(object).unwrap_or(ObjectRef {
                api_version: text("/apiVersion").unwrap_or_default().to_owned(),
                kind: text("/kind").unwrap_or_default().to_owned(),
                namespace: text("/metadata/namespace").map(str::to_owned),
                name: String::new(),
            });
            Some(("create", target, None))
        }
        Action::EmitEvent { .. } | Action::RequeueAfter { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::{PatchType, Severity};
    use crate::rbac::tests::req;
    use serde_json::json;

    fn on() -> ObjectRef {
        ObjectRef {
            api_version: "stable.example.com/v1".into(),
            kind: "Database".into(),
            namespace: Some("shop".into()),
            name: "orders".into(),
        }
    }

    fn target(ns: Option<&str>, kind: &str, name: &str) -> ObjectRef {
        ObjectRef { api_version: "v1".into(), kind: kind.into(), namespace: ns.map(Into::into), name: name.into() }
    }

    const NAMESPACED: Option<ResourceScope<'static>> = Some(ResourceScope { plural: "configmaps", namespaced: true });
    const CLUSTER: Option<ResourceScope<'static>> = Some(ResourceScope { plural: "namespaces", namespaced: false });

    #[test]
    fn requests_follow_the_action_and_the_resolved_resource() {
        let status = Action::Patch {
            target: on(),
            subresource: Some("status".into()),
            patch_type: PatchType::Merge,
            body: json!({}),
        };
        let databases = Some(ResourceScope { plural: "databases", namespaced: true });
        let delete_cm = Action::Delete { target: target(None, "ConfigMap", "x") };
        let create_cm =
            Action::Create { object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}) };
        let generated = Action::Create {
            object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "c-", "namespace": "ops"}}),
        };
        let delete_ns = Action::Delete { target: target(Some("shop"), "Namespace", "old") };
        let event = Action::EmitEvent { severity: Severity::Normal, reason: "R".into(), message: "m".into() };
        let cluster_object = ObjectRef { namespace: None, ..on() };
        #[rustfmt::skip]
        let table = [
            (&status, on(), databases, Some(req("patch", "stable.example.com", "databases", Some("status"), Some("shop"), Some("orders")))),
            // A namespaced target without a namespace is not defaulted (check_action refuses it).
            (&delete_cm, on(), NAMESPACED, Some(req("delete", "", "configmaps", None, None, Some("x")))),
            // A created object without one goes where the applier puts it.
            (&create_cm, on(), NAMESPACED, Some(req("create", "", "configmaps", None, Some("shop"), Some("c")))),
            (&create_cm, ObjectRef { namespace: None, ..on() }, NAMESPACED, Some(req("create", "", "configmaps", None, Some("default"), Some("c")))),
            (&generated, on(), NAMESPACED, Some(req("create", "", "configmaps", None, Some("ops"), None))),
            // A cluster-scoped kind has no namespace, whatever the target says.
            (&delete_ns, on(), CLUSTER, Some(req("delete", "", "namespaces", None, None, Some("old")))),
            // Unresolved: the guessed plural, and no namespace defaulting.
            (&delete_cm, on(), None, Some(req("delete", "", "configmaps", None, None, Some("x")))),
            (&generated, on(), None, Some(req("create", "", "configmaps", None, Some("ops"), None))),
            // Events go to the event's object's namespace, or `default`.
            (&event, on(), None, Some(req("create", "events.k8s.io", "events", None, Some("shop"), None))),
            (&event, cluster_object, None, Some(req("create", "events.k8s.io", "events", None, Some("default"), None))),
            (&Action::RequeueAfter { after_ms: 5 }, on(), None, None),
        ];
        for (i, (action, on, resource, want)) in table.into_iter().enumerate() {
            assert_eq!(request_for(action, &on, resource), want, "case {i}: {action:?}");
        }
    }

    #[test]
    fn the_kind_to_resolve_is_the_targets() {
        let create = Action::Create { object: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}) };
        assert_eq!(kind_to_resolve(&create), Some(Gvk::new("apps", "v1", "Deployment")));
        let event = Action::EmitEvent { severity: Severity::Warning, reason: "R".into(), message: "m".into() };
        assert_eq!(kind_to_resolve(&event), None);
    }
}
