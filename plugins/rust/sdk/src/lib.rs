//! Write kreflex plugins in typed Rust.
//!
//! A plugin implements [`Plugin`] and exports it with [`export_plugin!`]:
//!
//! ```ignore
//! use kreflex_sdk::prelude::*;
//!
//! struct Hello;
//! impl Plugin for Hello {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("hello", "0.1.0")
//!             .subscribe(Subscription::to("stable.example.com", "v1", "Database").generation_changed_only())
//!             .permit(Permission::new("stable.example.com", "databases/status").verbs(["patch"]))
//!     }
//!     fn on_event(event: Event) -> Result<Vec<Action>, PluginError> {
//!         Ok(vec![Action::patch_status(json!({"status": {"state": "Seen"}}))])
//!     }
//! }
//! export_plugin!(Hello);
//! ```
//!
//! Objects arrive as [`serde_json::Value`] (or any `Deserialize` type via
//! [`Event::object_as`]); actions are built with the constructors on [`Action`] instead of
//! hand-written JSON strings. The contract itself is `wit/kreflex.wit`.

/// Bindings generated from `wit/kreflex.wit`. Plugin authors rarely need them directly.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "reactor",
        path: "../../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_reactor",
        default_bindings_module: "kreflex_sdk::bindings",
    });
}

use bindings::kreflex::plugin::{host as wit_host, types as wit};
pub use serde_json::{Value, json};
use std::time::Duration;

pub use wit::{EventKind, LogLevel, ObjectRef, PatchType, PluginError, Severity};

/// Everything a plugin usually needs.
pub mod prelude {
    pub use crate::{
        Action, Event, EventKind, ObjectRef, Permission, Plugin, PluginError, PluginInfo, Severity, Subscription,
        Value, export_plugin, host, json,
    };
}

/// What a plugin implements.
pub trait Plugin {
    /// Name, version, subscriptions and permissions. Called once at load.
    fn describe() -> PluginInfo;
    /// React to one event.
    fn on_event(event: Event) -> Result<Vec<Action>, PluginError>;
}

/// One event, with the objects parsed.
#[derive(Debug, Clone)]
pub struct Event {
    /// Why the plugin is called.
    pub kind: EventKind,
    /// The object.
    pub object: Value,
    /// The previous version the plugin saw (for `modified`).
    pub old_object: Option<Value>,
}

impl Event {
    /// The object as a typed struct.
    pub fn object_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, PluginError> {
        T::deserialize(&self.object)
            .map_err(|e| PluginError::fatal(format!("object does not match the expected type: {e}")))
    }

    /// A string at a JSON pointer in the object (`/spec/engine`), if present.
    pub fn str_at(&self, pointer: &str) -> Option<&str> {
        self.object.pointer(pointer).and_then(Value::as_str)
    }

    /// An integer at a JSON pointer in the object (`/metadata/generation`), if present.
    pub fn i64_at(&self, pointer: &str) -> Option<i64> {
        self.object.pointer(pointer).and_then(Value::as_i64)
    }

    /// A reference to the event's object, if it names itself.
    pub fn object_ref(&self) -> Option<ObjectRef> {
        let o = &self.object;
        Some(ObjectRef {
            api_version: o.get("apiVersion")?.as_str()?.to_owned(),
            kind: o.get("kind")?.as_str()?.to_owned(),
            namespace: o.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_owned),
            name: o.pointer("/metadata/name")?.as_str()?.to_owned(),
        })
    }
}

impl PluginError {
    /// An error kreflex will not retry.
    pub fn fatal(message: impl Into<String>) -> Self {
        PluginError { message: message.into(), retryable: false }
    }

    /// An error kreflex retries with exponential backoff.
    pub fn retryable(message: impl Into<String>) -> Self {
        PluginError { message: message.into(), retryable: true }
    }
}

impl ObjectRef {
    /// A reference to `kind` `name` in `api_version`, optionally namespaced.
    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }
}

/// What the plugin asks kreflex to do (builders over the WIT `action`).
#[derive(Debug, Clone)]
pub struct Action(pub wit::Action);

impl Action {
    /// A JSON merge patch of the event object's `status` subresource.
    pub fn patch_status(body: Value) -> Self {
        Self::patch(None, Some("status"), PatchType::Merge, body)
    }

    /// A JSON merge patch of the event's object.
    pub fn merge_patch(body: Value) -> Self {
        Self::patch(None, None, PatchType::Merge, body)
    }

    /// A server-side apply of `body` (which carries apiVersion and kind) to `target`
    /// (`None` = the event's object), field manager `kreflex/<plugin>`.
    pub fn apply(target: Option<ObjectRef>, body: Value) -> Self {
        Self::patch(target, None, PatchType::Apply, body)
    }

    /// Any patch.
    pub fn patch(target: Option<ObjectRef>, subresource: Option<&str>, patch_type: PatchType, body: Value) -> Self {
        Action(wit::Action::Patch(wit::Patch {
            target,
            subresource: subresource.map(Into::into),
            patch_type,
            body: body.to_string(),
        }))
    }

    /// Create an object (owned by the event's object by default).
    pub fn create(object: Value) -> Self {
        Action(wit::Action::Create(object.to_string()))
    }

    /// Delete an object.
    pub fn delete(target: ObjectRef) -> Self {
        Action(wit::Action::Delete(target))
    }

    /// A Normal Kubernetes Event on the event's object.
    pub fn normal_event(reason: &str, message: impl Into<String>) -> Self {
        Self::event(Severity::Normal, reason, message)
    }

    /// A Warning Kubernetes Event on the event's object.
    pub fn warning_event(reason: &str, message: impl Into<String>) -> Self {
        Self::event(Severity::Warning, reason, message)
    }

    fn event(severity: Severity, reason: &str, message: impl Into<String>) -> Self {
        Action(wit::Action::EmitEvent(wit::K8sEvent { severity, reason: reason.into(), message: message.into() }))
    }

    /// Call the plugin again for this object after `delay` (a `resync` event).
    pub fn requeue_after(delay: Duration) -> Self {
        Action(wit::Action::RequeueAfter(delay.as_millis().min(u128::from(u32::MAX)) as u32))
    }
}

/// What a plugin subscribes to (builder over the WIT `subscription`).
#[derive(Debug, Clone)]
pub struct Subscription(pub wit::Subscription);

impl Subscription {
    /// Every object of `group`/`version`/`kind` in every namespace.
    pub fn to(group: &str, version: &str, kind: &str) -> Self {
        Subscription(wit::Subscription {
            gvk: wit::Gvk { group: group.into(), version: version.into(), kind: kind.into() },
            namespaces: Vec::new(),
            label_selector: None,
            field_selector: None,
            generation_changed_only: false,
            finalizer: false,
        })
    }

    /// Only these namespaces.
    pub fn in_namespaces<I: IntoIterator<Item = S>, S: Into<String>>(mut self, namespaces: I) -> Self {
        self.0.namespaces = namespaces.into_iter().map(Into::into).collect();
        self
    }

    /// Only objects matching a label selector.
    pub fn labels(mut self, selector: &str) -> Self {
        self.0.label_selector = Some(selector.into());
        self
    }

    /// Only objects matching a field selector.
    pub fn fields(mut self, selector: &str) -> Self {
        self.0.field_selector = Some(selector.into());
        self
    }

    /// Skip updates that did not change `metadata.generation`.
    pub fn generation_changed_only(mut self) -> Self {
        self.0.generation_changed_only = true;
        self
    }

    /// Let kreflex manage a finalizer and deliver `finalizing` events.
    pub fn with_finalizer(mut self) -> Self {
        self.0.finalizer = true;
        self
    }
}

/// Something the plugin may do (builder over the WIT `permission`).
#[derive(Debug, Clone)]
pub struct Permission(pub wit::Permission);

impl Permission {
    /// A permission on `resource` (plural, optionally `/subresource`) of `group`, with no
    /// verbs yet, in every namespace.
    pub fn new(group: &str, resource: &str) -> Self {
        Permission(wit::Permission {
            group: group.into(),
            resource: resource.into(),
            verbs: Vec::new(),
            namespaces: Vec::new(),
        })
    }

    /// The verbs allowed.
    pub fn verbs<I: IntoIterator<Item = S>, S: Into<String>>(mut self, verbs: I) -> Self {
        self.0.verbs = verbs.into_iter().map(Into::into).collect();
        self
    }

    /// Only in these namespaces.
    pub fn in_namespaces<I: IntoIterator<Item = S>, S: Into<String>>(mut self, namespaces: I) -> Self {
        self.0.namespaces = namespaces.into_iter().map(Into::into).collect();
        self
    }

    /// Permission to record Kubernetes Events (what `Action::warning_event` needs).
    pub fn events() -> Self {
        Self::new("events.k8s.io", "events").verbs(["create", "patch"])
    }
}

/// Who the plugin is (builder over the WIT `plugin-info`).
#[derive(Debug, Clone)]
pub struct PluginInfo(pub wit::PluginInfo);

impl PluginInfo {
    /// A plugin with a name (a DNS label) and a version.
    pub fn new(name: &str, version: &str) -> Self {
        PluginInfo(wit::PluginInfo {
            name: name.into(),
            version: version.into(),
            subscriptions: Vec::new(),
            permissions: Vec::new(),
        })
    }

    /// Adds a subscription.
    pub fn subscribe(mut self, s: Subscription) -> Self {
        self.0.subscriptions.push(s.0);
        self
    }

    /// Adds a permission.
    pub fn permit(mut self, p: Permission) -> Self {
        self.0.permissions.push(p.0);
        self
    }
}

/// What the host offers: logging, reading the cache, the plugin's configuration.
pub mod host {
    use super::*;

    /// Writes to kreflex's log, tagged with the plugin and the current object.
    pub fn log(level: LogLevel, message: &str) {
        wit_host::log(level, message);
    }

    /// Reads one object from kreflex's cache (needs `get` permission or a subscription).
    pub fn get(target: &ObjectRef) -> Result<Option<Value>, String> {
        match wit_host::get(target)? {
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    /// Lists objects of a kind from kreflex's cache.
    pub fn list(
        group: &str,
        version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, String> {
        let gvk = wit::Gvk { group: group.into(), version: version.into(), kind: kind.into() };
        wit_host::list_objects(&gvk, namespace, label_selector)?
            .iter()
            .map(|t| serde_json::from_str(t).map_err(|e| e.to_string()))
            .collect()
    }

    /// The plugin's configuration (`<plugin>.json` next to the `.wasm`), parsed.
    pub fn config() -> Option<Value> {
        wit_host::get_config().and_then(|t| serde_json::from_str(&t).ok())
    }
}

#[doc(hidden)]
pub fn __describe<P: Plugin>() -> wit::PluginInfo {
    P::describe().0
}

#[doc(hidden)]
pub fn __on_event<P: Plugin>(e: wit::Event) -> Result<Vec<wit::Action>, PluginError> {
    let object = serde_json::from_str(&e.object).map_err(|err| PluginError::fatal(format!("invalid object: {err}")))?;
    let old_object = match e.old_object {
        Some(t) => {
            Some(serde_json::from_str(&t).map_err(|err| PluginError::fatal(format!("invalid old object: {err}")))?)
        }
        None => None,
    };
    P::on_event(Event { kind: e.kind, object, old_object }).map(|v| v.into_iter().map(|a| a.0).collect())
}

/// Exports a [`Plugin`] implementation as the component's `describe` and `on-event`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            struct KreflexGuest;
            impl $crate::bindings::Guest for KreflexGuest {
                fn describe() -> $crate::bindings::PluginInfo {
                    $crate::__describe::<$plugin>()
                }
                fn on_event(
                    e: $crate::bindings::Event,
                ) -> ::core::result::Result<::std::vec::Vec<$crate::bindings::Action>, $crate::bindings::PluginError>
                {
                    $crate::__on_event::<$plugin>(e)
                }
            }
    $crate::bindings::__export_reactor!(KreflexGuest with_types_in $crate::bindings);
        };
    };
}
