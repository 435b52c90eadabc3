//! Host-side domain types of the plugin contract (`wit/kreflex.wit`).
//!
//! The WIT bindings generated in [`crate::wasm`] are converted into these once, at the
//! boundary, so that the rest of kreflex (routing, queues, permission checks, apply) works
//! with plain Rust types that serialize to the JSON `kreflex inspect` prints. Names follow
//! the WIT names.

use crate::names;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A Kubernetes group/version/kind. The core group is `""`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Gvk {
    /// API group, `""` for core.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Database`.
    pub kind: String,
}

impl Gvk {
    /// Builds a GVK from its parts.
    pub fn new(group: impl Into<String>, version: impl Into<String>, kind: impl Into<String>) -> Self {
        Self { group: group.into(), version: version.into(), kind: kind.into() }
    }

    /// `group/version`, or just `version` for the core group (the `apiVersion` field).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The kind of a Kubernetes object given as JSON, from its `apiVersion` and `kind`
    /// (empty parts where they are missing).
    pub fn of(object: &serde_json::Value) -> Self {
        let field = |k: &str| object.get(k).and_then(serde_json::Value::as_str).unwrap_or_default();
        Self::from_api_version(field("apiVersion"), field("kind"))
    }

    /// Parses an `apiVersion` (`group/version` or `v1`) and a kind.
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        match api_version.split_once('/') {
            Some((group, version)) => Self::new(group, version, kind),
            None => Self::new("", api_version, kind),
        }
    }
}

impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.kind)
    }
}

/// What a plugin wants to be called for (WIT `subscription`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Kind to watch.
    pub gvk: Gvk,
    /// Namespaces; empty = all.
    pub namespaces: Vec<String>,
    /// Kubernetes label selector.
    pub label_selector: Option<String>,
    /// Kubernetes field selector.
    pub field_selector: Option<String>,
    /// Deliver `modified` only when `metadata.generation` changed.
    pub generation_changed_only: bool,
    /// Host manages the `kreflex.io/<plugin>` finalizer.
    pub finalizer: bool,
}

impl Subscription {
    /// A subscription to every object of `gvk`, with no filter and no finalizer.
    pub fn to(gvk: Gvk) -> Self {
        Self {
            gvk,
            namespaces: Vec::new(),
            label_selector: None,
            field_selector: None,
            generation_changed_only: false,
            finalizer: false,
        }
    }
}

/// One thing a plugin may do (WIT `permission`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Permission {
    /// API group, `""` for core.
    pub group: String,
    /// Resource plural, optionally `plural/subresource`.
    pub resource: String,
    /// Kubernetes verbs.
    pub verbs: Vec<String>,
    /// Namespaces; empty = all (and cluster-scoped objects).
    pub namespaces: Vec<String>,
}

impl Permission {
    /// The resource plural and the subresource, if any (`databases/status`).
    pub fn plural_and_subresource(&self) -> (&str, Option<&str>) {
        match self.resource.split_once('/') {
            Some((p, s)) => (p, Some(s)),
            None => (&self.resource, None),
        }
    }
}

/// Verbs a permission may name.
pub const VERBS: [&str; 8] = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

/// The most subscriptions a plugin may declare: each one is a watched kind (a discovery
/// lookup and an informer), so a plugin must not make kreflex watch the world.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// The most permissions a plugin may declare.
pub const MAX_PERMISSIONS: usize = 64;
/// The most namespaces one subscription or permission may list.
pub const MAX_NAMESPACES: usize = 64;
/// The longest version string, kind or API version a plugin may declare.
pub const MAX_SHORT_TEXT: usize = 63;
/// The longest label or field selector a subscription may carry.
pub const MAX_SELECTOR: usize = 1024;

/// Who a plugin is and what it needs (WIT `plugin-info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Unique plugin name (DNS label).
    pub name: String,
    /// Free-form version.
    pub version: String,
    /// What the plugin is called for.
    pub subscriptions: Vec<Subscription>,
    /// What it may do beyond reading what it subscribes to.
    pub permissions: Vec<Permission>,
}

/// A malformed `plugin-info`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("plugin {plugin:?}: {reason}")]
pub struct InvalidInfo {
    /// Plugin name as declared.
    pub plugin: String,
    /// What is wrong.
    pub reason: String,
}

impl PluginInfo {
    /// Checks what `describe()` declared: a valid name, at least one subscription, known
    /// verbs, well-formed resources, groups and namespaces, and that none of it is larger
    /// than its bound ([`MAX_SUBSCRIPTIONS`], [`MAX_PERMISSIONS`], [`MAX_NAMESPACES`],
    /// [`MAX_SHORT_TEXT`], [`MAX_SELECTOR`]). Whether the operator lets the plugin have what
    /// it declares is [`crate::rbac`]'s business.
    pub fn validate(&self) -> Result<(), InvalidInfo> {
        let err = |reason: String| InvalidInfo { plugin: self.name.chars().take(MAX_SHORT_TEXT).collect(), reason };
        if self.name.is_empty() {
            return Err(err("the name is empty".into()));
        }
        names::check_plugin_name(&self.name).map_err(|e| err(e.to_string()))?;
        if self.version.len() > MAX_SHORT_TEXT {
            return Err(err(format!("the version is longer than {MAX_SHORT_TEXT} bytes")));
        }
        if self.subscriptions.is_empty() {
            return Err(err("it subscribes to nothing".into()));
        }
        let counts = [
            ("subscriptions", self.subscriptions.len(), MAX_SUBSCRIPTIONS),
            ("permissions", self.permissions.len(), MAX_PERMISSIONS),
        ];
        if let Some((what, n, max)) = counts.into_iter().find(|(_, n, max)| n > max) {
            return Err(err(format!("it declares {n} {what}; at most {max} are allowed")));
        }
        let namespaces = |list: &[String]| {
            if list.len() > MAX_NAMESPACES {
                return Err(format!("{} namespaces; at most {MAX_NAMESPACES} are allowed", list.len()));
            }
            match list.iter().find(|n| names::check_namespace(n).is_err()) {
                Some(n) => Err(format!("{n:?} is not a valid namespace")),
                None => Ok(()),
            }
        };
        for s in &self.subscriptions {
            let short = |t: &str| !t.is_empty() && t.len() <= MAX_SHORT_TEXT;
            if !short(&s.gvk.version) || !short(&s.gvk.kind) || !names::is_group(&s.gvk.group) {
                return Err(err(format!("subscription {} is not a valid group/version/kind", s.gvk)));
            }
            namespaces(&s.namespaces).map_err(|r| err(format!("subscription {}: {r}", s.gvk)))?;
            let selectors = [&s.label_selector, &s.field_selector];
            if selectors.iter().any(|sel| sel.as_ref().is_some_and(|sel| sel.len() > MAX_SELECTOR)) {
                return Err(err(format!("subscription {}: a selector is longer than {MAX_SELECTOR} bytes", s.gvk)));
            }
        }
        for (i, p) in self.permissions.iter().enumerate() {
            let at = |r: String| err(format!("permission #{i} ({}/{}): {r}", p.group, p.resource));
            if p.verbs.len() > VERBS.len() {
                return Err(at(format!("{} verbs; at most {} are allowed", p.verbs.len(), VERBS.len())));
            }
            if !names::is_group(&p.group) {
                return Err(at("invalid API group".into()));
            }
            let (plural, sub) = p.plural_and_subresource();
            if !names::is_dns_label(plural)
                || sub.is_some_and(|s| !names::is_dns_label(s))
                || p.resource.matches('/').count() > 1
            {
                return Err(at("the resource must be a plural, optionally with one /subresource".into()));
            }
            if p.verbs.is_empty() {
                return Err(at("no verbs".into()));
            }
            if let Some(v) = p.verbs.iter().find(|v| !VERBS.contains(&v.as_str())) {
                return Err(at(format!("unknown verb {v:?} (allowed: {})", VERBS.join(", "))));
            }
            namespaces(&p.namespaces).map_err(at)?;
        }
        Ok(())
    }
}

/// Why a plugin is called (WIT `event-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Object appeared.
    Added,
    /// Object changed.
    Modified,
    /// Object is gone.
    Deleted,
    /// Periodic or requested re-delivery.
    Resync,
    /// Object is being deleted and carries the plugin's finalizer.
    Finalizing,
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventKind::Added => "added",
            EventKind::Modified => "modified",
            EventKind::Deleted => "deleted",
            EventKind::Resync => "resync",
            EventKind::Finalizing => "finalizing",
        })
    }
}

/// Names one object (WIT `object-ref`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// None for cluster-scoped objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

impl ObjectRef {
    /// The reference to a Kubernetes object given as JSON, if it has `apiVersion`, `kind`
    /// and `metadata.name`.
    pub fn of(object: &serde_json::Value) -> Option<Self> {
        let meta = object.get("metadata")?;
        Some(Self {
            api_version: object.get("apiVersion")?.as_str()?.to_owned(),
            kind: object.get("kind")?.as_str()?.to_owned(),
            namespace: meta.get("namespace").and_then(|n| n.as_str()).map(str::to_owned),
            name: meta.get("name")?.as_str()?.to_owned(),
        })
    }

    /// The object's GVK.
    pub fn gvk(&self) -> Gvk {
        Gvk::from_api_version(&self.api_version, &self.kind)
    }
}

/// An object reference that does not parse as `[GROUP/]VERSION/KIND/[NAMESPACE/]NAME`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?}: {reason}; expected [GROUP/]VERSION/KIND/[NAMESPACE/]NAME")]
pub struct ObjectRefParseError {
    input: String,
    reason: &'static str,
}

/// Parses `[GROUP/]VERSION/KIND/[NAMESPACE/]NAME` (how flags name an object). Four parts
/// are ambiguous (a grouped cluster-scoped object, or a core namespaced one): the first is a
/// group if it has a dot or is one of the dotless built-in groups.
impl std::str::FromStr for ObjectRef {
    type Err = ObjectRefParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ObjectRefParseError { input: s.to_owned(), reason };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err("empty part"));
        }
        let grouped = parts.len() == 5
            || parts[0].contains('.')
            || ["apps", "batch", "policy", "autoscaling"].contains(&parts[0]);
        let (api_version, rest) = match (grouped, parts.len()) {
            (true, 4 | 5) => (format!("{}/{}", parts[0], parts[1]), &parts[2..]),
            (false, 3 | 4) => (parts[0].to_owned(), &parts[1..]),
            _ => return Err(err("wrong number of parts")),
        };
        let (kind, namespace, name) = match rest {
            [kind, ns, name] => (kind, Some((*ns).to_owned()), name),
            [kind, name] => (kind, None, name),
            _ => unreachable!("lengths checked above"),
        };
        Ok(ObjectRef { api_version, kind: (*kind).to_owned(), namespace, name: (*name).to_owned() })
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// The resource plural Kubernetes guesses for a kind when discovery is not at hand
/// (`Database` → `databases`, `Policy` → `policies`, `Ingress` → `ingresses`), as kube's
/// `ApiResource::from_gvk` does.
pub fn guess_plural(kind: &str) -> String {
    let gvk = kube::core::GroupVersionKind::gvk("", "v1", kind);
    kube::core::ApiResource::from_gvk(&gvk).plural
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(subscriptions: usize) -> PluginInfo {
        let sub = |i: usize| Subscription {
            gvk: Gvk { group: "flood.example.com".into(), version: "v1".into(), kind: format!("Kind{i}") },
            namespaces: Vec::new(),
            label_selector: None,
            field_selector: None,
            generation_changed_only: false,
            finalizer: false,
        };
        PluginInfo {
            name: "greedy".into(),
            version: "0.1.0".into(),
            subscriptions: (0..subscriptions).map(sub).collect(),
            permissions: Vec::new(),
        }
    }

    #[test]
    fn describe_output_is_bounded() {
        assert_eq!(info(MAX_SUBSCRIPTIONS).validate(), Ok(()));
        let reason = |i: PluginInfo| i.validate().expect_err("over a bound").to_string();
        assert_eq!(reason(info(20_000)), "plugin \"greedy\": it declares 20000 subscriptions; at most 64 are allowed");
        let mut i = info(1);
        i.permissions = vec![
            Permission {
                group: String::new(),
                resource: "configmaps".into(),
                verbs: vec!["get".into()],
                namespaces: Vec::new()
            };
            MAX_PERMISSIONS + 1
        ];
        assert_eq!(reason(i), "plugin \"greedy\": it declares 65 permissions; at most 64 are allowed");
        let mut i = info(1);
        i.version = "9".repeat(1 << 20);
        assert_eq!(reason(i), "plugin \"greedy\": the version is longer than 63 bytes");
        let mut i = info(1);
        i.subscriptions[0].gvk.kind = "K".repeat(64);
        assert!(reason(i).contains("is not a valid group/version/kind"));
        let mut i = info(1);
        i.subscriptions[0].label_selector = Some(format!("a in ({})", "x,".repeat(1000)));
        assert!(reason(i).ends_with("a selector is longer than 1024 bytes"));
        let mut i = info(1);
        i.subscriptions[0].namespaces = (0..65).map(|n| format!("ns{n}")).collect();
        assert!(reason(i).ends_with("65 namespaces; at most 64 are allowed"));
        let mut i = info(1);
        i.permissions = vec![Permission {
            group: String::new(),
            resource: "pods".into(),
            verbs: vec!["get".into(); 9],
            namespaces: vec![],
        }];
        assert!(reason(i).ends_with("9 verbs; at most 8 are allowed"));
        let mut i = info(1);
        i.name = "x".repeat(1 << 20);
        assert!(
            i.validate().expect_err("long name").plugin.len() <= MAX_SHORT_TEXT,
            "the error does not carry it whole"
        );
    }

    #[test]
    fn api_version_round_trips_core_and_named_groups() {
        assert_eq!(Gvk::from_api_version("v1", "ConfigMap").api_version(), "v1");
        let g = Gvk::from_api_version("stable.example.com/v1", "Database");
        assert_eq!(g.group, "stable.example.com");
        assert_eq!(g.api_version(), "stable.example.com/v1");
    }

    #[test]
    fn object_ref_reads_json_and_names_namespace() {
        let obj = serde_json::json!({"apiVersion":"stable.example.com/v1","kind":"Database","metadata":{"name":"orders","namespace":"default"}});
        let r = ObjectRef::of(&obj).expect("complete object");
        assert_eq!(r.to_string(), "Database default/orders");
        assert!(ObjectRef::of(&serde_json::json!({"kind":"X"})).is_none());
        assert_eq!(Gvk::of(&obj), Gvk::new("stable.example.com", "v1", "Database"));
        assert_eq!(Gvk::of(&serde_json::json!({"kind":"X"})), Gvk::new("", "", "X"));
    }

    #[test]
    fn object_refs_parse_with_and_without_group_and_namespace() {
        let parse = |s: &str| s.parse::<ObjectRef>();
        let r = parse("v1/Pod/kreflex-system/kreflex-0").expect("core, namespaced");
        assert_eq!(
            (r.api_version.as_str(), r.kind.as_str(), r.namespace.as_deref(), r.name.as_str()),
            ("v1", "Pod", Some("kreflex-system"), "kreflex-0")
        );
        let r = parse("apps/v1/Deployment/ns/kreflex").expect("dotless group");
        assert_eq!((r.api_version.as_str(), r.namespace.as_deref()), ("apps/v1", Some("ns")));
        let r = parse("coordination.k8s.io/v1/Lease/ns/kreflex").expect("grouped");
        assert_eq!((r.api_version.as_str(), r.kind.as_str()), ("coordination.k8s.io/v1", "Lease"));
        let r = parse("v1/Namespace/kreflex-system").expect("cluster-scoped");
        assert_eq!((r.namespace, r.name.as_str()), (None, "kreflex-system"));
        assert!(parse("v1//x").is_err());
        assert!(parse("Pod").is_err());
    }
}
