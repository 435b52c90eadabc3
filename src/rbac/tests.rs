use super::*;
use crate::model::Subscription;

fn info() -> PluginInfo {
    PluginInfo {
        name: "db".into(),
        version: "1".into(),
        subscriptions: vec![Subscription {
            namespaces: vec!["shop".into()],
            generation_changed_only: true,
            ..Subscription::to(Gvk::new("stable.example.com", "v1", "Database"))
        }],
        permissions: vec![
            Permission {
                group: "stable.example.com".into(),
                resource: "databases/status".into(),
                verbs: vec!["patch".into()],
                namespaces: vec!["shop".into()],
            },
            Permission {
                group: "".into(),
                resource: "configmaps".into(),
                verbs: vec!["create".into(), "get".into()],
                namespaces: vec![],
            },
        ],
    }
}

fn plural(g: &Gvk) -> Option<String> {
    (g.kind == "Database").then(|| "databases".to_owned())
}

/// A request, for the tables of cases here and in `request.rs`.
pub(super) fn req(
    verb: &str,
    group: &str,
    resource: &str,
    sub: Option<&str>,
    ns: Option<&str>,
    name: Option<&str>,
) -> Request {
    Request {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        subresource: sub.map(Into::into),
        namespace: ns.map(Into::into),
        name: name.map(Into::into),
    }
}

fn allowed(r: &Request) -> bool {
    check(&info(), r, &plural).is_ok()
}

#[test]
fn declared_writes_are_allowed_in_their_namespaces() {
    assert!(allowed(&req("patch", "stable.example.com", "databases", Some("status"), Some("shop"), Some("orders"))));
    assert!(allowed(&req("create", "", "configmaps", None, Some("anywhere"), Some("x"))));
}

#[test]
fn subscriptions_imply_reads_only() {
    assert!(allowed(&req("get", "stable.example.com", "databases", None, Some("shop"), Some("orders"))));
    assert!(allowed(&req("list", "stable.example.com", "databases", None, Some("shop"), None)));
    assert!(!allowed(&req("patch", "stable.example.com", "databases", None, Some("shop"), Some("orders"))));
    assert!(!allowed(&req("delete", "stable.example.com", "databases", None, Some("shop"), Some("orders"))));
}

#[test]
fn namespace_escapes_are_denied() {
    // Another namespace.
    assert!(!allowed(&req(
        "patch",
        "stable.example.com",
        "databases",
        Some("status"),
        Some("kube-system"),
        Some("orders")
    )));
    // Cluster-scoped target or all-namespace list from a namespaced grant.
    assert!(!allowed(&req("patch", "stable.example.com", "databases", Some("status"), None, Some("orders"))));
    assert!(!allowed(&req("list", "stable.example.com", "databases", None, None, None)));
    // Main resource versus status.
    assert!(!allowed(&req("patch", "stable.example.com", "databases", None, Some("shop"), Some("orders"))));
    // Malformed names and namespaces.
    for name in ["", "..", "../etc", "a/b", "UPPER"] {
        assert!(!allowed(&req("create", "", "configmaps", None, Some("shop"), Some(name))), "{name:?}");
    }
    assert!(!allowed(&req("create", "", "configmaps", None, Some("../x"), Some("a"))));
    // Another group with the same plural.
    assert!(!allowed(&req("create", "evil.example.com", "configmaps", None, Some("shop"), Some("a"))));
}

#[test]
fn denial_names_plugin_verb_resource_and_object() {
    let e = check(&info(), &req("delete", "", "secrets", None, Some("shop"), Some("db-pass")), &plural)
        .expect_err("denied");
    assert_eq!(
        e.to_string(),
        "plugin db may not delete secrets (group core) shop/db-pass: no declared permission or subscription covers it"
    );
}

#[test]
fn malformed_declarations_are_rejected_with_the_offending_entry() {
    let mut bad = info();
    bad.permissions[0].verbs.push("escalate".into());
    assert!(bad.validate().expect_err("bad verb").reason.contains("escalate"));
    let mut bad = info();
    bad.permissions[1].resource = "a/b/c".into();
    assert!(bad.validate().is_err());
    let mut bad = info();
    bad.permissions[1].namespaces = vec!["Bad_NS".into()];
    assert!(bad.validate().is_err());
    let mut bad = info();
    bad.subscriptions.clear();
    assert!(bad.validate().is_err());
    let mut bad = info();
    bad.name = "Not-A-Label".into();
    assert!(bad.validate().is_err());
    assert!(info().validate().is_ok());
    // Read-only plugins are fine.
    let mut ro = info();
    ro.permissions.clear();
    assert!(ro.validate().is_ok());
}

#[test]
fn a_subscription_grants_reads_of_what_it_selects_only() {
    let mut p = info();
    p.subscriptions = vec![Subscription {
        gvk: Gvk::new("", "v1", "Secret"),
        namespaces: vec!["default".into()],
        label_selector: Some("kreflex.io/public=true".into()),
        field_selector: None,
        generation_changed_only: false,
        finalizer: false,
    }];
    let policy = ReadPolicy::new(p, |g: &Gvk| Some(crate::model::guess_plural(&g.kind)));
    let secret = Gvk::new("", "v1", "Secret");
    let object = |ns: &str, public: bool| {
        let labels = if public { serde_json::json!({"kreflex.io/public": "true"}) } else { serde_json::json!({}) };
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": ns, "labels": labels}})
        .to_string()
    };
    assert!(policy.check_read("list", &secret, Some("default"), None).is_ok());
    assert!(policy.visible("list", &secret, Some("default"), &object("default", true)));
    assert!(!policy.visible("list", &secret, Some("default"), &object("default", false)), "label selector");
    assert!(!policy.visible("get", &secret, Some("default"), "not json"));
    // Declared reads are not narrowed: configmaps `get` is declared in all namespaces.
    let cm = Gvk::new("", "v1", "ConfigMap");
    let any = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}});
    assert!(policy.visible("get", &cm, Some("x"), &any.to_string()));
    // Undeclared verb on the same kind: the object is not visible through it.
    assert!(!policy.visible("list", &cm, Some("x"), &any.to_string()));
}

#[test]
fn an_action_is_checked_on_exactly_the_request_it_makes() {
    use crate::actions::{Action, PatchType};
    let on = crate::model::ObjectRef {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some("shop".into()),
        name: "c".into(),
    };
    let mut p = info();
    p.permissions.push(Permission {
        group: "".into(),
        resource: "configmaps".into(),
        verbs: vec!["patch".into()],
        namespaces: vec![],
    });
    let patch = |ns: Option<&str>| Action::Patch {
        target: crate::model::ObjectRef { namespace: ns.map(Into::into), ..on.clone() },
        subresource: None,
        patch_type: PatchType::Merge,
        body: serde_json::json!({}),
    };
    let scope = Some(ResourceScope { plural: "configmaps", namespaced: true });
    assert!(check_action(&p, &patch(Some("shop")), &on, scope, &plural).is_ok());
    let e = check_action(&p, &patch(None), &on, scope, &plural).expect_err("no namespace");
    assert!(e.reason.contains("names no namespace"), "{e}");
    assert_eq!(e.request.namespace, None);
    let requeue = Action::RequeueAfter { after_ms: 5 };
    assert_eq!(check_action(&p, &requeue, &on, None, &plural), Ok(None));
}
