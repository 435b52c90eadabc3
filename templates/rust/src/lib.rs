//! `{{name}}`: a kreflex plugin. It watches `Database` objects (the example CRD,
//! `examples/crds/database.yaml`) and writes which generation it saw into their status.
//! Change `describe` to subscribe to your own kinds and `on_event` to react.

use kreflex_sdk::prelude::*;

struct Reactor;

impl Plugin for Reactor {
    fn describe() -> PluginInfo {
        PluginInfo::new("{{name}}", "0.1.0")
            .subscribe(Subscription::to("stable.example.com", "v1", "Database").generation_changed_only())
            .permit(Permission::new("stable.example.com", "databases/status").verbs(["patch"]))
    }

    fn on_event(event: Event) -> Result<Vec<Action>, PluginError> {
        if matches!(event.kind, EventKind::Deleted | EventKind::Finalizing) {
            return Ok(Vec::new());
        }
        let generation = event.object.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        Ok(vec![Action::patch_status(json!({"status": {"message": format!("{{name}} saw generation {generation}")}}))])
    }
}

export_plugin!(Reactor);
