//! `database-status`: the kreflex example plugin (specified in `plugins/README.md`).
//!
//! Watches `Database` objects (`stable.example.com/v1`) and walks their status from
//! `Provisioning` to `Ready`; an unsupported `spec.engine` gets status `Failed` and a
//! Warning Event. The decision is the pure function [`react`], so the benchmark can run the
//! same logic natively.

pub use kreflex_sdk::EventKind;
use kreflex_sdk::prelude::*;
use std::time::Duration;

/// Engines this plugin knows how to provision.
pub const ENGINES: [&str; 3] = ["postgres", "mysql", "mariadb"];

struct DatabaseStatus;

impl Plugin for DatabaseStatus {
    fn describe() -> PluginInfo {
        PluginInfo::new("database-status", "0.1.0")
            .subscribe(Subscription::to("stable.example.com", "v1", "Database").generation_changed_only())
            .permit(Permission::new("stable.example.com", "databases/status").verbs(["get", "patch"]))
            .permit(Permission::events())
    }

    fn on_event(event: Event) -> Result<Vec<Action>, PluginError> {
        Ok(react(event.kind, &event.object)
            .into_iter()
            .map(|d| match d {
                Decision::Status(body) => Action::patch_status(body),
                Decision::Warning(reason, message) => Action::warning_event(reason, message),
                Decision::Requeue(delay) => Action::requeue_after(delay),
            })
            .collect())
    }
}

export_plugin!(DatabaseStatus);

/// What the plugin decides for one event, independent of the WIT types.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Merge-patch the status subresource with this body.
    Status(Value),
    /// Emit a Warning Event (reason, message).
    Warning(&'static str, String),
    /// Call again after this delay.
    Requeue(Duration),
}

/// The plugin's logic: see `plugins/README.md` for the specification.
pub fn react(kind: EventKind, object: &Value) -> Vec<Decision> {
    if matches!(kind, EventKind::Deleted | EventKind::Finalizing) {
        return Vec::new();
    }
    let s = |p: &str| object.pointer(p).and_then(Value::as_str);
    let engine = s("/spec/engine").unwrap_or("");
    let name = s("/spec/name").or(s("/metadata/name")).unwrap_or("");
    let size = s("/spec/size").unwrap_or("default");
    let generation = object.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
    let observed = object.pointer("/status/observedGeneration").and_then(Value::as_i64);
    let state = s("/status/state");
    let status = |state: &str, message: String| {
        Decision::Status(json!({"status": {"state": state, "message": message, "observedGeneration": generation}}))
    };

    if !ENGINES.contains(&engine) {
        let msg = format!("unsupported engine \"{engine}\": expected one of postgres, mysql, mariadb");
        if state == Some("Failed") && s("/status/message") == Some(msg.as_str()) {
            return Vec::new();
        }
        return vec![status("Failed", msg.clone()), Decision::Warning("UnsupportedEngine", msg)];
    }
    let current = observed == Some(generation);
    match state {
        Some("Ready") if current => Vec::new(),
        Some("Provisioning") if current => {
            vec![status("Ready", format!("{engine} database \"{name}\" of size {size} is ready"))]
        }
        _ => vec![
            status("Provisioning", format!("provisioning {engine} database \"{name}\" of size {size}")),
            Decision::Requeue(Duration::from_millis(500)),
        ],
    }
}
