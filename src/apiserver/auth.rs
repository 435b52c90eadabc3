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
    fn service_accounts_get_their_groups() {
        let u = User::new("system:serviceaccount:ops:kreflex-db", &[]);
        assert!(u.groups.contains(&"system:serviceaccounts:ops".to_owned()));
    }
}
