//! Which declared permissions an operator must see before a plugin gets them, and which no
//! plugin gets at all: the load-time judgment of a plugin's `describe()` output.
//!
//! In: a [`PluginInfo`] and the operator's allow list ([`Allowed`]). Out: `Ok`, or the first
//! [`Refused`] permission. Pure; the plugin loader (`kreflex run`, `plugins --dir`) and the
//! CLI (`test`, `inspect`, `rbac`) call it after the shape check of
//! [`PluginInfo::validate`].
//!
//! Three rules:
//! - **Unreachable**: a subresource no action can use (everything but `status`, `scale` and
//!   `finalizers`: `pods/exec`, `nodes/proxy`, `serviceaccounts/token`, …) is refused
//!   outright; granting it would hand the plugin's service account a power kreflex never
//!   exercises for it.
//! - **Sensitive**: reading credentials or gaining privileges (Secrets, service accounts,
//!   RBAC objects, certificate signing, token and access reviews, admission webhooks, the
//!   verbs `escalate`, `bind`, `impersonate`) is refused unless the operator allows the
//!   resource for the plugin by name. Subscriptions count as the `get`/`list` they grant.
//! - **Finalizers are writes**: `finalizer: true` needs a declared `patch` or `update` on
//!   the subscribed resource or its `finalizers` subresource.

use crate::model::{Gvk, Permission, PluginInfo};
use std::collections::BTreeSet;
use std::fmt;

/// Subresources an action can reach (`status`, `scale` through patches; `finalizers` is
/// what a finalizer subscription writes).
pub const REACHABLE_SUBRESOURCES: [&str; 3] = ["status", "scale", "finalizers"];

/// Verbs that grant privileges rather than access. None is declarable today (see
/// [`crate::model::VERBS`]); should one become so it is sensitive on any resource.
const PRIVILEGE_VERBS: [&str; 3] = ["escalate", "bind", "impersonate"];

/// `(group, resource plural)` of the kinds that hold credentials or decide privileges.
const SENSITIVE: [(&str, &str); 16] = [
    ("", "secrets"),
    ("", "serviceaccounts"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("certificates.k8s.io", "certificatesigningrequests"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
];

/// How much a permission needs the operator's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Nothing special.
    Ordinary,
    /// Reads credentials or grants privileges: only with the operator's allowance.
    Sensitive,
    /// No action can use it: never granted.
    Unreachable,
}

/// Classifies one permission.
pub fn classify(p: &Permission) -> Class {
    let (plural, sub) = p.plural_and_subresource();
    if sub.is_some_and(|s| !REACHABLE_SUBRESOURCES.contains(&s)) {
        return Class::Unreachable;
    }
    if SENSITIVE.contains(&(p.group.as_str(), plural)) || p.verbs.iter().any(|v| PRIVILEGE_VERBS.contains(&v.as_str()))
    {
        return Class::Sensitive;
    }
    Class::Ordinary
}

/// A resource of an allow list: `RESOURCE[.GROUP]`, as `kubectl create role --resource`
/// names it (`secrets`, `clusterrolebindings.rbac.authorization.k8s.io`). It covers the
/// resource's subresources too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct GroupResource {
    /// API group, `""` for core.
    pub group: String,
    /// Resource plural.
    pub resource: String,
}

impl GroupResource {
    /// The group and plural of a permission (its subresource dropped).
    pub fn of(p: &Permission) -> Self {
        Self { group: p.group.clone(), resource: p.plural_and_subresource().0.to_owned() }
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() { f.write_str(&self.resource) } else { write!(f, "{}.{}", self.resource, self.group) }
    }
}

/// A malformed allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?}: expected {expected}")]
pub struct AllowParseError {
    input: String,
    expected: &'static str,
}

impl std::str::FromStr for GroupResource {
    type Err = AllowParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || AllowParseError { input: s.to_owned(), expected: "RESOURCE[.GROUP] (e.g. secrets)" };
        let (resource, group) = s.split_once('.').unwrap_or((s, ""));
        if !crate::names::is_dns_label(resource) || !crate::names::is_group(group) {
            return Err(err());
        }
        Ok(Self { group: group.to_owned(), resource: resource.to_owned() })
    }
}

impl TryFrom<String> for GroupResource {
    type Error = AllowParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// One operator allowance from the command line: `PLUGIN:RESOURCE[.GROUP]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SensitiveGrant {
    /// The plugin allowed.
    pub plugin: String,
    /// What it is allowed.
    pub resource: GroupResource,
}

impl std::str::FromStr for SensitiveGrant {
    type Err = AllowParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err =
            || AllowParseError { input: s.to_owned(), expected: "PLUGIN:RESOURCE[.GROUP] (e.g. vault-sync:secrets)" };
        let (plugin, resource) = s.split_once(':').ok_or_else(err)?;
        if crate::names::check_plugin_name(plugin).is_err() {
            return Err(err());
        }
        Ok(Self { plugin: plugin.to_owned(), resource: resource.parse().map_err(|_| err())? })
    }
}

/// What the operator allows: global grants (flags) for named plugins. A plugin's own
/// `NAME.json` list is added with [`Allowed::with_file`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    grants: BTreeSet<SensitiveGrant>,
}

impl Allowed {
    /// An allow list of the given grants.
    pub fn new(grants: impl IntoIterator<Item = SensitiveGrant>) -> Self {
        Self { grants: grants.into_iter().collect() }
    }

    /// This list plus `resources` allowed to `plugin` (its `NAME.json` `allowSensitive`).
    pub fn with_file(&self, plugin: &str, resources: &[GroupResource]) -> Self {
        let mut out = self.clone();
        out.grants.extend(resources.iter().map(|r| SensitiveGrant { plugin: plugin.to_owned(), resource: r.clone() }));
        out
    }

    /// Whether `plugin` may have sensitive permissions on `resource`.
    pub fn allows(&self, plugin: &str, resource: &GroupResource) -> bool {
        self.grants.iter().any(|g| g.plugin == plugin && g.resource == *resource)
    }
}

/// A declared permission kreflex will not give the plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A subresource no action can reach.
    #[error(
        "plugin {plugin}: permission {permission} is refused: no action can use the subresource (only status, scale and finalizers are reachable)"
    )]
    Unreachable {
        /// Plugin name.
        plugin: String,
        /// The permission, `verbs RESOURCE[.GROUP]/SUB`.
        permission: String,
    },
    /// A sensitive permission the operator did not allow.
    #[error(
        "plugin {plugin}: permission {permission} is sensitive (credentials or privileges) and is refused unless the operator allows it: --allow-sensitive {plugin}:{resource} or \"allowSensitive\": [\"{resource}\"] in {plugin}.json"
    )]
    Sensitive {
        /// Plugin name.
        plugin: String,
        /// The permission, `verbs RESOURCE[.GROUP]`, or the subscription.
        permission: String,
        /// What to allow.
        resource: GroupResource,
    },
    /// `finalizer: true` without a declared write to manage it with.
    #[error(
        "plugin {plugin}: subscription {gvk} asks kreflex to manage a finalizer, which is a write: declare patch (or update) on {resource} or {resource}/finalizers"
    )]
    FinalizerWithoutWrite {
        /// Plugin name.
        plugin: String,
        /// The subscribed kind (`group/version/Kind`).
        gvk: String,
        /// Its resource, `RESOURCE[.GROUP]`.
        resource: GroupResource,
    },
}

/// Every sensitive permission of a plugin (declared ones, then subscriptions as the
/// `get, list` they grant), as `(what, resource)`; what `kreflex inspect` and `rbac` flag.
pub fn sensitive(info: &PluginInfo, plural_of: &dyn Fn(&Gvk) -> String) -> Vec<(String, GroupResource)> {
    let declared = info.permissions.iter().filter(|p| classify(p) == Class::Sensitive).map(|p| {
        let r = GroupResource::of(p);
        (format!("{} {}", p.verbs.join(","), describe(p)), r)
    });
    let subscribed = info.subscriptions.iter().filter_map(|s| {
        let p = Permission {
            group: s.gvk.group.clone(),
            resource: plural_of(&s.gvk),
            verbs: vec!["get".into(), "list".into()],
            namespaces: s.namespaces.clone(),
        };
        (classify(&p) == Class::Sensitive)
            .then(|| (format!("get,list {} (subscription)", describe(&p)), GroupResource::of(&p)))
    });
    declared.chain(subscribed).collect()
}

/// Judges what a plugin declared against the operator's allow list. `plural_of` maps a
/// subscribed kind to its resource (guessed at load, where no discovery is at hand).
pub fn check_declared(info: &PluginInfo, allowed: &Allowed, plural_of: &dyn Fn(&Gvk) -> String) -> Result<(), Refused> {
    let plugin = || info.name.clone();
    if let Some(p) = info.permissions.iter().find(|p| classify(p) == Class::Unreachable) {
        return Err(Refused::Unreachable {
            plugin: plugin(),
            permission: format!("{} {}", p.verbs.join(","), describe(p)),
        });
    }
    if let Some((permission, resource)) =
        sensitive(info, plural_of).into_iter().find(|(_, r)| !allowed.allows(&info.name, r))
    {
        return Err(Refused::Sensitive { plugin: plugin(), permission, resource });
    }
    for s in info.subscriptions.iter().filter(|s| s.finalizer) {
        let plural = plural_of(&s.gvk);
        let writes = info.permissions.iter().any(|p| {
            let (pl, sub) = p.plural_and_subresource();
            p.group == s.gvk.group
                && pl == plural
                && matches!(sub, None | Some("finalizers"))
                && p.verbs.iter().any(|v| v == "patch" || v == "update")
                && (p.namespaces.is_empty()
                    || (!s.namespaces.is_empty() && s.namespaces.iter().all(|n| p.namespaces.contains(n))))
        });
        if !writes {
            let resource = GroupResource { group: s.gvk.group.clone(), resource: plural };
            return Err(Refused::FinalizerWithoutWrite { plugin: plugin(), gvk: s.gvk.to_string(), resource });
        }
    }
    Ok(())
}

/// `RESOURCE[.GROUP][/SUB]` of a permission.
fn describe(p: &Permission) -> String {
    let r = GroupResource::of(p);
    match p.plural_and_subresource().1 {
        Some(sub) => format!("{r}/{sub}"),
        None => r.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Subscription;

    fn perm(group: &str, resource: &str, verbs: &[&str], namespaces: &[&str]) -> Permission {
        Permission {
            group: group.into(),
            resource: resource.into(),
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            namespaces: namespaces.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    fn plugin(subs: Vec<Subscription>, permissions: Vec<Permission>) -> PluginInfo {
        PluginInfo { name: "p".into(), version: "1".into(), subscriptions: subs, permissions }
    }

    fn sub(group: &str, kind: &str, namespaces: &[&str], finalizer: bool) -> Subscription {
        Subscription {
            gvk: Gvk::new(group, "v1", kind),
            namespaces: namespaces.iter().map(|v| (*v).to_owned()).collect(),
            label_selector: None,
            field_selector: None,
            generation_changed_only: false,
            finalizer,
        }
    }

    fn guess(g: &Gvk) -> String {
        crate::model::guess_plural(&g.kind)
    }

    #[test]
    fn permissions_are_classified_by_resource_subresource_and_verb() {
        #[rustfmt::skip]
        let table = [
            (perm("", "configmaps", &["get"], &[]), Class::Ordinary),
            (perm("stable.example.com", "databases/status", &["patch"], &[]), Class::Ordinary),
            (perm("apps", "deployments/scale", &["patch"], &[]), Class::Ordinary),
            (perm("stable.example.com", "databases/finalizers", &["update"], &[]), Class::Ordinary),
            (perm("", "secrets", &["get"], &["default"]), Class::Sensitive),
            (perm("", "serviceaccounts", &["create"], &[]), Class::Sensitive),
            (perm("rbac.authorization.k8s.io", "clusterrolebindings", &["create"], &[]), Class::Sensitive),
            (perm("rbac.authorization.k8s.io", "roles", &["list"], &["a"]), Class::Sensitive),
            (perm("certificates.k8s.io", "certificatesigningrequests", &["create"], &[]), Class::Sensitive),
            (perm("authentication.k8s.io", "tokenreviews", &["create"], &[]), Class::Sensitive),
            (perm("authorization.k8s.io", "subjectaccessreviews", &["create"], &[]), Class::Sensitive),
            (perm("admissionregistration.k8s.io", "mutatingwebhookconfigurations", &["patch"], &[]), Class::Sensitive),
            (perm("", "secrets/status", &["patch"], &[]), Class::Sensitive),
            (perm("", "configmaps", &["escalate"], &[]), Class::Sensitive),
            (perm("", "pods/exec", &["create"], &[]), Class::Unreachable),
            (perm("", "nodes/proxy", &["get"], &[]), Class::Unreachable),
            (perm("", "serviceaccounts/token", &["create"], &[]), Class::Unreachable),
            (perm("", "pods/log", &["get"], &[]), Class::Unreachable),
            // A Secret in another group is just a custom resource.
            (perm("example.com", "secrets", &["get"], &[]), Class::Ordinary),
        ];
        for (i, (p, want)) in table.into_iter().enumerate() {
            assert_eq!(classify(&p), want, "case {i}: {p:?}");
        }
    }

    #[test]
    fn sensitive_permissions_need_the_operators_allowance_by_name() {
        let info = plugin(
            vec![sub("stable.example.com", "Database", &[], false)],
            vec![perm("rbac.authorization.k8s.io", "clusterrolebindings", &["create"], &[])],
        );
        let e = check_declared(&info, &Allowed::default(), &guess).expect_err("refused");
        assert!(
            matches!(&e, Refused::Sensitive { resource, .. } if resource.to_string() == "clusterrolebindings.rbac.authorization.k8s.io"),
            "{e}"
        );
        assert!(e.to_string().contains("--allow-sensitive p:clusterrolebindings.rbac.authorization.k8s.io"), "{e}");
        let grant: SensitiveGrant = "p:clusterrolebindings.rbac.authorization.k8s.io".parse().expect("grant");
        assert_eq!(check_declared(&info, &Allowed::new([grant.clone()]), &guess), Ok(()));
        // Another plugin's allowance does not count.
        let other = SensitiveGrant { plugin: "q".into(), ..grant };
        assert!(check_declared(&info, &Allowed::new([other]), &guess).is_err());
        // The plugin file's own list does.
        let file =
            [GroupResource { group: "rbac.authorization.k8s.io".into(), resource: "clusterrolebindings".into() }];
        assert_eq!(check_declared(&info, &Allowed::default().with_file("p", &file), &guess), Ok(()));
    }

    #[test]
    fn subscribing_to_secrets_is_reading_them() {
        let info = plugin(vec![sub("", "Secret", &["default"], false)], vec![]);
        let e = check_declared(&info, &Allowed::default(), &guess).expect_err("refused");
        assert!(e.to_string().contains("get,list secrets (subscription)"), "{e}");
        assert_eq!(sensitive(&info, &guess).len(), 1);
        let file: [GroupResource; 1] = ["secrets".parse().expect("parses")];
        assert_eq!(check_declared(&info, &Allowed::default().with_file("p", &file), &guess), Ok(()));
    }

    #[test]
    fn unreachable_subresources_are_refused_even_when_allowed() {
        let info = plugin(
            vec![sub("stable.example.com", "Database", &[], false)],
            vec![perm("", "pods/exec", &["create"], &[])],
        );
        let allowed = Allowed::new(["p:pods".parse().expect("grant")]);
        let e = check_declared(&info, &allowed, &guess).expect_err("refused");
        assert!(matches!(e, Refused::Unreachable { .. }), "{e}");
    }

    #[test]
    fn a_finalizer_needs_a_declared_write_on_the_resource_or_its_finalizers() {
        let finalizing = |perms| plugin(vec![sub("", "Namespace", &[], true)], perms);
        let e = check_declared(&finalizing(vec![]), &Allowed::default(), &guess).expect_err("no write");
        assert!(matches!(e, Refused::FinalizerWithoutWrite { .. }), "{e}");
        let status_only = finalizing(vec![perm("", "namespaces/status", &["patch"], &[])]);
        assert!(check_declared(&status_only, &Allowed::default(), &guess).is_err());
        let read_only = finalizing(vec![perm("", "namespaces", &["get"], &[])]);
        assert!(check_declared(&read_only, &Allowed::default(), &guess).is_err());
        for ok in [perm("", "namespaces", &["patch"], &[]), perm("", "namespaces/finalizers", &["update"], &[])] {
            assert_eq!(check_declared(&finalizing(vec![ok]), &Allowed::default(), &guess), Ok(()));
        }
        // The write must cover every subscribed namespace.
        let narrow = plugin(
            vec![sub("stable.example.com", "Database", &["a", "b"], true)],
            vec![perm("stable.example.com", "databases", &["patch"], &["a"])],
        );
        assert!(check_declared(&narrow, &Allowed::default(), &guess).is_err());
        let all_ns = plugin(
            vec![sub("stable.example.com", "Database", &[], true)],
            vec![perm("stable.example.com", "databases", &["patch"], &["a"])],
        );
        assert!(check_declared(&all_ns, &Allowed::default(), &guess).is_err());
    }

    #[test]
    fn allow_list_entries_parse_like_kubectl_resources() {
        let g: SensitiveGrant = "vault-sync:secrets".parse().expect("core");
        assert_eq!(
            (g.plugin.as_str(), g.resource.group.as_str(), g.resource.resource.as_str()),
            ("vault-sync", "", "secrets")
        );
        let g: SensitiveGrant = "p:roles.rbac.authorization.k8s.io".parse().expect("grouped");
        assert_eq!(g.resource.group, "rbac.authorization.k8s.io");
        for bad in ["secrets", "p:", "P:secrets", "p:se/crets", "p:*"] {
            assert!(bad.parse::<SensitiveGrant>().is_err(), "{bad}");
        }
    }
}
