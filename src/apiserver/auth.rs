//! Authentication (bearer tokens → users), impersonation (`Impersonate-User`,
//! `Impersonate-Group`), and RBAC authorization evaluated from the
//! Role/ClusterRole/RoleBinding/ClusterRoleBinding objects stored in the server, so
//! `kubectl apply -f rbac.yaml` is how permissions are granted. In: request headers and
//! [`Attributes`]; out: a [`User`] or a 401/403, and allow/deny decisions (also answered as
//! `SelfSubjectAccessReview`s). The router calls it before any handler runs.

use super::status::ApiError;
use super::store::Store;
use axum::http::{HeaderMap, header};
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User name (`admin`, `system:serviceaccount:ns:name`).
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl User {
    /// A user with groups (`system:authenticated` is added).
    pub fn new(name: &str, groups: &[&str]) -> Self {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        if let Some(rest) = name.strip_prefix("system:serviceaccount:")
            && let Some((ns, _)) = rest.split_once(':')
        {
            for g in ["system:serviceaccounts".to_owned(), format!("system:serviceaccounts:{ns}")] {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
        Self { name: name.into(), groups }
    }

    /// Members of `system:masters` bypass authorization.
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// What is being asked, for authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// Verb.
    pub verb: String,
    /// API group.
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource.
    pub subresource: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
}

/// Tokens and whether RBAC is enforced. Cheap to clone.
#[derive(Clone, Default)]
pub struct Auth {
    tokens: Arc<RwLock<HashMap<String, User>>>,
    enforce: bool,
}

impl Auth {
    /// `enforce = false`: every authenticated user may do everything.
    pub fn new(enforce: bool) -> Self {
        Self { tokens: Arc::default(), enforce }
    }

    /// Adds (or replaces) a bearer token for a user.
    pub fn add_token(&self, token: &str, user: User) {
        self.tokens.write().insert(token.into(), user);
    }

    /// The user behind a bearer token.
    pub fn authenticate(&self, token: &str) -> Option<User> {
        self.tokens.read().get(token).cloned()
    }

    /// The user a request acts as: the bearer token's user, or the user it impersonates
    /// (with the impersonated groups) when RBAC lets it impersonate them. The store is
    /// locked only to judge an impersonation.
    pub fn request_user(&self, headers: &HeaderMap, store: &Mutex<Store>) -> Result<User, ApiError> {
        let unauthorized = || ApiError::new(401, "Unauthorized", "Unauthorized");
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(unauthorized)?;
        let user = self.authenticate(token.trim()).ok_or_else(unauthorized)?;
        let Some(as_user) = headers.get("impersonate-user").and_then(|v| v.to_str().ok()) else {
            return Ok(user);
        };
        let groups: Vec<&str> = headers.get_all("impersonate-group").iter().filter_map(|v| v.to_str().ok()).collect();
        let store = store.lock();
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
        if !self.allowed(&store, &user, &attrs) {
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
            if !self.allowed(&store, &user, &attrs) {
                return Err(ApiError::new(403, "Forbidden", forbidden_message(&user, &attrs)));
            }
        }
        Ok(User::new(as_user, &groups))
    }

    /// Answers a `SelfSubjectAccessReview` (JSON) asked by `user`: the review with its
    /// `status.allowed` filled in.
    pub fn access_review(&self, store: &Store, user: &User, review: &Value) -> Value {
        let ra = review.pointer("/spec/resourceAttributes").cloned().unwrap_or(json!({}));
        let s = |k: &str| ra.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
        let attrs = Attributes {
            verb: s("verb").unwrap_or_default(),
            group: s("group").unwrap_or_default(),
            resource: s("resource").unwrap_or_default(),
            subresource: s("subresource"),
            namespace: s("namespace"),
            name: s("name"),
        };
        let allowed = self.allowed(store, user, &attrs);
        let mut out = review.clone();
        out["apiVersion"] = json!("authorization.k8s.io/v1");
        out["kind"] = json!("SelfSubjectAccessReview");
        out["status"] = json!({"allowed": allowed});
        out
    }

    /// Whether `user` may do `attrs`, judged from the RBAC objects in `store`.
    pub fn allowed(&self, store: &Store, user: &User, attrs: &Attributes) -> bool {
        if !self.enforce || user.is_master() {
            return true;
        }
        let rules_of = |kind_plural: &str, ns: Option<&str>, name: &str| -> Vec<Value> {
            let def = match store.find("rbac.authorization.k8s.io", "v1", kind_plural) {
                Some(d) => d,
                None => return Vec::new(),
            };
            store
                .get(&def, ns, name)
                .and_then(|r| r.get("rules").and_then(Value::as_array).cloned())
                .unwrap_or_default()
        };
        let binds = |b: &Value| {
            b.get("subjects").and_then(Value::as_array).is_some_and(|subjects| {
                subjects.iter().any(|s| {
                    let kind = s.get("kind").and_then(Value::as_str).unwrap_or("");
                    let name = s.get("name").and_then(Value::as_str).unwrap_or("");
                    match kind {
                        "User" => name == user.name,
                        "Group" => user.groups.iter().any(|g| g == name),
                        "ServiceAccount" => {
                            let ns = s.get("namespace").and_then(Value::as_str).unwrap_or("");
                            user.name == format!("system:serviceaccount:{ns}:{name}")
                        }
                        _ => false,
                    }
                })
            })
        };
        let role_rules = |b: &Value, binding_ns: Option<&str>| -> Vec<Value> {
            let kind = b.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or("");
            let name = b.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("");
            match kind {
                "ClusterRole" => rules_of("clusterroles", None, name),
                "Role" => rules_of("roles", binding_ns, name),
                _ => Vec::new(),
            }
        };
        if let Some(def) = store.find("rbac.authorization.k8s.io", "v1", "clusterrolebindings") {
            for b in store.list(&def, None) {
                if binds(&b) && role_rules(&b, None).iter().any(|r| rule_allows(r, attrs)) {
                    return true;
                }
            }
        }
        if let (Some(ns), Some(def)) = (&attrs.namespace, store.find("rbac.authorization.k8s.io", "v1", "rolebindings"))
        {
            for b in store.list(&def, Some(ns)) {
                if binds(&b) && role_rules(&b, Some(ns)).iter().any(|r| rule_allows(r, attrs)) {
                    return true;
                }
            }
        }
        false
    }
}

/// The RBAC API group.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

impl Auth {
    /// Kubernetes' privilege-escalation prevention for RBAC writes
    /// (`pkg/registry/rbac/escalation_check.go` and `validation`), judged after the request
    /// itself was authorized: a Role or ClusterRole may be created or updated only with
    /// `escalate` on it or if the requester holds every permission it grants (in its
    /// namespace, or cluster-wide); a RoleBinding or ClusterRoleBinding only with `bind` on
    /// the role it references or if the requester holds every permission of that role where
    /// the binding applies. A patch of a role needs `escalate`, of a binding `bind` (the
    /// result is not known before it is applied), and a binding's `roleRef` is immutable.
    /// Other requests pass.
    pub fn check_escalation(
        &self,
        store: &Store,
        user: &User,
        attrs: &Attributes,
        body: &[u8],
    ) -> Result<(), ApiError> {
        if !self.enforce
            || user.is_master()
            || attrs.group != RBAC_GROUP
            || attrs.subresource.is_some()
            || !matches!(attrs.verb.as_str(), "create" | "update" | "patch")
        {
            return Ok(());
        }
        let object: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let name =
            attrs.name.clone().or_else(|| object.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned));
        let forbidden = |why: String| {
            let what = match &name {
                Some(n) => format!("{}.{RBAC_GROUP} {n:?}", attrs.resource),
                None => format!("{}.{RBAC_GROUP}", attrs.resource),
            };
            Err(ApiError::new(
                403,
                "Forbidden",
                format!("{what} is forbidden: user {:?} (groups={:?}) {why}", user.name, user.groups),
            ))
        };
        let may = |verb: &str, resource: &str, namespace: Option<&str>, name: Option<&str>| {
            let a = Attributes {
                verb: verb.into(),
                group: RBAC_GROUP.into(),
                resource: resource.into(),
                subresource: None,
                namespace: namespace.map(str::to_owned),
                name: name.map(str::to_owned),
            };
            self.allowed(store, user, &a)
        };
        let namespace = attrs.namespace.as_deref();
        match attrs.resource.as_str() {
            "roles" | "clusterroles" => {
                if may("escalate", &attrs.resource, namespace, name.as_deref()) {
                    return Ok(());
                }
                if attrs.verb == "patch" {
                    return forbidden("is attempting to patch a role without escalate on it".into());
                }
                let rules = object.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
                match rules.iter().find(|r| !self.holds(store, user, r, namespace)) {
                    Some(r) => forbidden(format!("is attempting to grant RBAC permissions not currently held: {r}")),
                    None => Ok(()),
                }
            }
            "rolebindings" | "clusterrolebindings" => {
                let current = match (&name, store.find(RBAC_GROUP, "v1", &attrs.resource)) {
                    (Some(n), Some(def)) => store.get(&def, namespace, n),
                    _ => None,
                };
                let role_ref = match (&attrs.verb[..], &current) {
                    ("patch", _) if object.get("roleRef").is_some() => {
                        return forbidden("is attempting to change the roleRef of a binding (it is immutable)".into());
                    }
                    ("patch", Some(current)) => current.get("roleRef").cloned(),
                    _ => object.get("roleRef").cloned(),
                };
                if let (Some(current), Some(new)) = (&current, &role_ref)
                    && current.get("roleRef").is_some_and(|old| old != new)
                {
                    return forbidden("is attempting to change the roleRef of a binding (it is immutable)".into());
                }
                let role_ref = role_ref.unwrap_or(Value::Null);
                let field = |k: &str| role_ref.get(k).and_then(Value::as_str).unwrap_or("");
                let (kind, role) = (field("kind"), field("name"));
                let (role_resource, role_ns) = match kind {
                    "ClusterRole" => ("clusterroles", None),
                    "Role" => ("roles", namespace),
                    _ => return forbidden(format!("is attempting to bind a role of kind {kind:?}")),
                };
                if field("apiGroup") == RBAC_GROUP && may("bind", role_resource, namespace, Some(role)) {
                    return Ok(());
                }
                if attrs.verb == "patch" {
                    return forbidden(format!("is attempting to patch a binding without bind on {kind} {role:?}"));
                }
                let Some(rules) = store
                    .find(RBAC_GROUP, "v1", role_resource)
                    .and_then(|def| store.get(&def, role_ns, role))
                    .map(|r| r.get("rules").and_then(Value::as_array).cloned().unwrap_or_default())
                else {
                    return forbidden(format!(
                        "is attempting to bind {kind} {role:?}, which does not exist, without bind on it"
                    ));
                };
                match rules.iter().find(|r| !self.holds(store, user, r, namespace)) {
                    Some(r) => forbidden(format!(
                        "is attempting to grant RBAC permissions not currently held by binding {kind} {role:?}: {r}"
                    )),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Whether `user` holds every permission `rule` grants, in `namespace` (`None`:
    /// cluster-wide). A wildcard is held only as a wildcard; non-resource URLs only by
    /// masters.
    fn holds(&self, store: &Store, user: &User, rule: &Value, namespace: Option<&str>) -> bool {
        let list = |k: &str| -> Vec<String> {
            rule.get(k)
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        if !list("nonResourceURLs").is_empty() {
            return false;
        }
        let names = list("resourceNames");
        let names: Vec<Option<String>> =
            if names.is_empty() { vec![None] } else { names.into_iter().map(Some).collect() };
        list("apiGroups").iter().all(|group| {
            list("resources").iter().all(|resource| {
                let (resource, subresource) = match resource.split_once('/') {
                    Some((r, s)) => (r.to_owned(), Some(s.to_owned())),
                    None => (resource.clone(), None),
                };
                list("verbs").iter().all(|verb| {
                    names.iter().all(|name| {
                        let a = Attributes {
                            verb: verb.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                            subresource: subresource.clone(),
                            namespace: namespace.map(str::to_owned),
                            name: name.clone(),
                        };
                        self.allowed(store, user, &a)
                    })
                })
            })
        })
    }
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let list = |k: &str| -> Vec<String> {
        rule.get(k)
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let has = |k: &str, want: &str| list(k).iter().any(|v| v == "*" || v == want);
    let resource = match &a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.clone(),
    };
    let names = list("resourceNames");
    has("apiGroups", &a.group)
        && (has("resources", &resource)
            || (a.subresource.is_some() && list("resources").iter().any(|r| r == &format!("{}/*", a.resource))))
        && has("verbs", &a.verb)
        && (names.is_empty() || a.name.as_ref().is_some_and(|n| names.contains(n)))
}

/// The 403 message kube-apiserver gives.
pub fn forbidden_message(user: &User, a: &Attributes) -> String {
    let qualified = if a.group.is_empty() { a.resource.clone() } else { format!("{}.{}", a.resource, a.group) };
    let subject = match &a.name {
        Some(n) => format!("{qualified} \"{n}\""),
        None => qualified,
    };
    let resource = match &a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.clone(),
    };
    let scope = match &a.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    format!(
        "{subject} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        user.name, a.verb, a.group
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_groups_resources_subresources_verbs_and_names() {
        let rule = json!({"apiGroups": ["stable.example.com"], "resources": ["databases/status"], "verbs": ["patch"], "resourceNames": ["orders"]});
        let mut a = Attributes {
            verb: "patch".into(),
            group: "stable.example.com".into(),
            resource: "databases".into(),
            subresource: Some("status".into()),
            namespace: Some("default".into()),
            name: Some("orders".into()),
        };
        assert!(rule_allows(&rule, &a));
        a.name = Some("other".into());
        assert!(!rule_allows(&rule, &a));
        a.name = Some("orders".into());
        a.subresource = None;
        assert!(!rule_allows(&rule, &a));
    }

    #[test]
    fn forbidden_message_matches_kube_apiserver() {
        let u = User::new("limited", &[]);
        let a = Attributes {
            verb: "list".into(),
            group: "stable.example.com".into(),
            resource: "databases".into(),
            subresource: None,
            namespace: Some("default".into()),
            name: None,
        };
        assert_eq!(
            forbidden_message(&u, &a),
            "databases.stable.example.com is forbidden: User \"limited\" cannot list resource \"databases\" in API group \"stable.example.com\" in the namespace \"default\""
        );
    }

    #[test]
    fn rbac_writes_cannot_grant_what_the_requester_does_not_hold() {
        let mut store = Store::new(16);
        let put = |store: &mut Store, plural: &str, ns: Option<&str>, body: Value| {
            let def = store.find(RBAC_GROUP, "v1", plural).expect("rbac kinds are built in");
            store.create(&def, ns, body, &super::super::store::WriteOpts::default()).expect("create");
        };
        let role = |kind: &str, name: &str, rules: Value| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": name}, "rules": rules});
        let binding = |kind: &str, name: &str, role_kind: &str, role: &str| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": name},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role},
                "subjects": [{"kind": "User", "name": "limited"}]})
        };
        let all = json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]);
        let cm_read = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]);
        put(&mut store, "clusterroles", None, role("ClusterRole", "cluster-admin", all.clone()));
        put(&mut store, "clusterroles", None, role("ClusterRole", "reader", cm_read.clone()));
        let writer = json!([{"apiGroups": [RBAC_GROUP], "resources": ["roles", "rolebindings"], "verbs": ["create", "patch"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]);
        put(&mut store, "roles", Some("default"), role("Role", "writer", writer));
        put(&mut store, "rolebindings", Some("default"), binding("RoleBinding", "writer", "Role", "writer"));
        let auth = Auth::new(true);
        let user = User::new("limited", &[]);
        let attrs = |verb: &str, resource: &str, name: Option<&str>| Attributes {
            verb: verb.into(),
            group: RBAC_GROUP.into(),
            resource: resource.into(),
            subresource: None,
            namespace: Some("default".into()),
            name: name.map(Into::into),
        };
        let judge = |verb: &str, resource: &str, name: Option<&str>, body: Value| {
            auth.check_escalation(&store, &user, &attrs(verb, resource, name), body.to_string().as_bytes())
                .map_err(|e| e.code)
        };
        #[rustfmt::skip]
        let table = [
            // Roles: only what the requester holds in the namespace.
            ("create", "roles", None, role("Role", "r", cm_read.clone()), Ok(())),
            ("create", "roles", None, role("Role", "r", all.clone()), Err(403)),
            ("create", "roles", None, role("Role", "r", json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}])), Err(403)),
            ("create", "roles", None, role("Role", "r", json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])), Err(403)),
            ("patch", "roles", Some("writer"), json!({"rules": all.clone()}), Err(403)),
            // Bindings: to a role whose permissions the requester holds where it applies.
            ("create", "rolebindings", None, binding("RoleBinding", "b", "ClusterRole", "reader"), Ok(())),
            ("create", "rolebindings", None, binding("RoleBinding", "b", "ClusterRole", "cluster-admin"), Err(403)),
            ("create", "rolebindings", None, binding("RoleBinding", "b", "ClusterRole", "missing"), Err(403)),
            ("patch", "rolebindings", Some("writer"), json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cluster-admin"}}), Err(403)),
            // Everything else passes.
            ("get", "roles", Some("writer"), Value::Null, Ok(())),
        ];
        for (i, (verb, resource, name, body, want)) in table.into_iter().enumerate() {
            assert_eq!(judge(verb, resource, name, body), want, "case {i}: {verb} {resource}");
        }
        // `escalate` and `bind` lift the rules, as in Kubernetes.
        let lift = json!([{"apiGroups": [RBAC_GROUP], "resources": ["roles"], "verbs": ["escalate"]},
            {"apiGroups": [RBAC_GROUP], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["cluster-admin"]}]);
        put(&mut store, "roles", Some("default"), role("Role", "lift", lift));
        put(&mut store, "rolebindings", Some("default"), binding("RoleBinding", "lift", "Role", "lift"));
        let judge = |verb: &str, resource: &str, body: Value| {
            auth.check_escalation(&store, &user, &attrs(verb, resource, None), body.to_string().as_bytes())
                .map_err(|e| e.code)
        };
        assert_eq!(judge("create", "roles", role("Role", "r", all.clone())), Ok(()));
        assert_eq!(
            judge("create", "rolebindings", binding("RoleBinding", "b", "ClusterRole", "cluster-admin")),
            Ok(())
        );
        // Masters and servers without RBAC are not judged.
        let master = User::new("admin", &["system:masters"]);
        let body = role("ClusterRole", "r", all).to_string();
        assert!(
            auth.check_escalation(&store, &master, &attrs("create", "clusterroles", None), body.as_bytes()).is_ok()
        );
        assert!(
            Auth::new(false)
                .check_escalation(&store, &user, &attrs("create", "clusterroles", None), body.as_bytes())
                .is_ok()
        );
    }

    #[test]
    fn service_accounts_get_their_groups() {
        let u = User::new("system:serviceaccount:ops:kreflex-db", &[]);
        assert!(u.groups.contains(&"system:serviceaccounts:ops".to_owned()));
    }
}
