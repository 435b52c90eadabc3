//! What a plugin may do: the load-time judgment of its declared permissions ([`sensitive`]:
//! sensitive ones only with the operator's allowance, unreachable ones never, finalizers
//! only with a declared write), the host-side check of every action ([`check_action`]) and
//! every host read ([`ReadPolicy`], narrowed to what a subscription selects) before
//! anything leaves the process, and (in [`manifests`]) least-privilege RBAC for the
//! cluster to enforce the same boundary. [`request_for`] turns an action into the request
//! it will make.
//!
//! Pure functions, no I/O: the rules are here and only here. Imports the model, names,
//! the router's compiled [`Route`] and the cache's object type (for read scoping).

pub mod manifests;
mod request;
pub mod sensitive;

pub use request::{ResourceScope, create_namespace, kind_to_resolve, request_for};
pub use sensitive::{Allowed, Refused, SensitiveGrant, check_declared};

use crate::model::{Gvk, Permission, PluginInfo};
use crate::names::{self, is_dns_label};
use crate::route::Route;
use crate::watch::CachedObject;
use std::fmt;

/// One request a plugin wants made (an action or a host read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Kubernetes verb.
    pub verb: String,
    /// API group (`""` for core).
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource (`status`), if any.
    pub subresource: Option<String>,
    /// Namespace; `None` for cluster-scoped objects or all-namespace lists.
    pub namespace: Option<String>,
    /// Object name; `None` for list/create-with-generateName.
    pub name: Option<String>,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let res = match &self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.clone(),
        };
        let group = if self.group.is_empty() { "core".to_owned() } else { self.group.clone() };
        write!(f, "{} {res} (group {group})", self.verb)?;
        match (&self.namespace, &self.name) {
            (Some(ns), Some(n)) => write!(f, " {ns}/{n}"),
            (Some(ns), None) => write!(f, " in namespace {ns}"),
            (None, Some(n)) => write!(f, " {n} (cluster-scoped)"),
            (None, None) => write!(f, " in all namespaces"),
        }
    }
}

/// A request the plugin is not allowed to make.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("plugin {plugin} may not {request}: {reason}")]
pub struct Denied {
    /// Plugin name.
    pub plugin: String,
    /// What was asked.
    pub request: Box<Request>,
    /// Why not.
    pub reason: String,
}

/// Checks one request against what the plugin declared. `plural_of` maps a subscribed kind
/// to its resource plural (from discovery). Subscriptions grant get/list/watch on their
/// resource in their namespaces (host reads are further narrowed to the objects they
/// select, see [`ReadPolicy`]); everything else must be declared, with the subresource
/// matching exactly.
pub fn check(info: &PluginInfo, req: &Request, plural_of: &dyn Fn(&Gvk) -> Option<String>) -> Result<(), Denied> {
    let deny = |reason: String| Denied { plugin: info.name.clone(), request: Box::new(req.clone()), reason };
    if let Some(name) = &req.name
        && !names::is_dns_subdomain(name)
    {
        return Err(deny(format!("{name:?} is not a valid object name")));
    }
    if let Some(ns) = &req.namespace
        && !is_dns_label(ns)
    {
        return Err(deny(format!("{ns:?} is not a valid namespace")));
    }
    if subscribed(info, req, plural_of) || declared(info, req) {
        Ok(())
    } else {
        Err(deny("no declared permission or subscription covers it".into()))
    }
}

/// Whether a namespace-restricted grant covers the request's namespace. It never covers
/// cluster-scoped objects or all-namespace lists.
fn in_scope(namespaces: &[String], req: &Request) -> bool {
    match &req.namespace {
        _ if namespaces.is_empty() => true,
        Some(ns) => namespaces.contains(ns),
        None => false,
    }
}

/// Whether a subscription covers a read (`get`, `list`, `watch` of the main resource).
fn subscribed(info: &PluginInfo, req: &Request, plural_of: &dyn Fn(&Gvk) -> Option<String>) -> bool {
    matches!(req.verb.as_str(), "get" | "list" | "watch")
        && req.subresource.is_none()
        && info.subscriptions.iter().any(|s| {
            s.gvk.group == req.group
                && plural_of(&s.gvk).is_some_and(|p| p == req.resource)
                && in_scope(&s.namespaces, req)
        })
}

/// Whether a declared permission covers the request.
fn declared(info: &PluginInfo, req: &Request) -> bool {
    info.permissions.iter().any(|p: &Permission| {
        let (plural, sub) = p.plural_and_subresource();
        p.group == req.group
            && plural == req.resource
            && sub == req.subresource.as_deref()
            && p.verbs.contains(&req.verb)
            && in_scope(&p.namespaces, req)
    })
}

/// The permission check of one action, as the engine and `kreflex test` make it: the
/// request [`request_for`] derives (`None`: the action makes none), checked with
/// [`check`]. A patch or delete of a namespaced kind whose target names no namespace is
/// refused rather than defaulted: what is checked is exactly what would be requested.
pub fn check_action(
    info: &PluginInfo,
    action: &crate::actions::Action,
    on: &crate::model::ObjectRef,
    resource: Option<ResourceScope<'_>>,
    plural_of: &dyn Fn(&Gvk) -> Option<String>,
) -> Result<Option<Request>, Denied> {
    let Some(req) = request_for(action, on, resource) else { return Ok(None) };
    if resource.is_some_and(|r| r.namespaced) && req.namespace.is_none() {
        return Err(Denied {
            plugin: info.name.clone(),
            request: Box::new(req),
            reason: "the kind is namespaced and the target names no namespace (it is not defaulted)".into(),
        });
    }
    check(info, &req, plural_of)?;
    Ok(Some(req))
}

/// The host-read policy of one plugin: [`check`] applied to the host's `get` and
/// `list-objects`, with plurals resolved by `plural_of`, and objects read through a
/// subscription alone narrowed to what it selects (namespaces, label and field selectors,
/// with the router's own [`Route::selects`]): RBAC cannot express selectors, so kreflex
/// enforces them. A declared `get`/`list` grants its whole resource.
pub struct ReadPolicy<F> {
    info: PluginInfo,
    routes: Vec<Route>,
    plural_of: F,
}

impl<F: Fn(&Gvk) -> Option<String> + Send + Sync + 'static> ReadPolicy<F> {
    /// The policy of `info`. A subscription whose selectors do not parse grants nothing
    /// (the loader refuses such a plugin anyway).
    pub fn new(info: PluginInfo, plural_of: F) -> Self {
        let routes = info.subscriptions.iter().filter_map(|s| Route::compile(s).ok()).collect();
        Self { info, routes, plural_of }
    }

    /// A shareable policy for the sandbox's host reads.
    pub fn shared(info: PluginInfo, plural_of: F) -> std::sync::Arc<dyn crate::wasm::AccessPolicy> {
        std::sync::Arc::new(Self::new(info, plural_of))
    }

    fn request(&self, verb: &str, gvk: &Gvk, namespace: Option<&str>, name: Option<&str>) -> Request {
        Request {
            verb: verb.to_owned(),
            group: gvk.group.clone(),
            resource: (self.plural_of)(gvk).unwrap_or_else(|| crate::model::guess_plural(&gvk.kind)),
            subresource: None,
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
        }
    }

    /// Checks one read: `verb` (`get`/`list`) of `gvk`, in `namespace`, of `name`.
    pub fn check_read(&self, verb: &str, gvk: &Gvk, namespace: Option<&str>, name: Option<&str>) -> Result<(), Denied> {
        check(&self.info, &self.request(verb, gvk, namespace, name), &self.plural_of)
    }

    /// Whether `object`, found by an allowed read of `gvk`, may be handed to the plugin:
    /// always under a declared permission, else only if a subscription selects it.
    pub fn visible(&self, verb: &str, gvk: &Gvk, namespace: Option<&str>, object: &str) -> bool {
        if declared(&self.info, &self.request(verb, gvk, namespace, None)) {
            return true;
        }
        let Some(cached) = serde_json::from_str(object).ok().and_then(CachedObject::from_value) else {
            return false;
        };
        self.routes.iter().any(|r| r.gvk == *gvk && r.selects(&cached))
    }
}

impl<F: Fn(&Gvk) -> Option<String> + Send + Sync + 'static> crate::wasm::AccessPolicy for ReadPolicy<F> {
    fn check_read(&self, r: &crate::wasm::ReadRequest<'_>) -> Result<(), crate::wasm::ReadError> {
        ReadPolicy::check_read(self, r.verb, r.gvk, r.namespace, r.name)
            .map_err(|d| crate::wasm::ReadError::Denied { reason: d.to_string() })
    }

    fn visible(&self, r: &crate::wasm::ReadRequest<'_>, object: &str) -> bool {
        ReadPolicy::visible(self, r.verb, r.gvk, r.namespace, object)
    }
}

/// The identity a plugin's requests carry when impersonating: `template` with
/// `{namespace}` and `{plugin}` replaced.
pub fn plugin_user(template: &str, namespace: &str, plugin: &str) -> String {
    template.replace("{namespace}", namespace).replace("{plugin}", plugin)
}

/// The default impersonation template.
pub const DEFAULT_USER_TEMPLATE: &str = "system:serviceaccount:{namespace}:kreflex-{plugin}";

#[cfg(test)]
mod tests;
