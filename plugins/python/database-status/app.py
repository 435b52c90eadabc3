"""`database-status` in Python: the kreflex example plugin (specified in plugins/README.md).

Walks `Database` objects (stable.example.com/v1) from Provisioning to Ready; an unsupported
`spec.engine` gets status Failed and a Warning Event.
"""

from typing import List

import wit_world
from kreflex import (Action, Event, EventKind, PluginInfo, events_permission, get_int, get_str, obj, permission,
                     plugin_info, requeue_after, status_patch, subscription, warning_event)

ENGINES = ["postgres", "mysql", "mariadb"]


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return plugin_info(
            "database-status", "0.1.0",
            [subscription("stable.example.com", "v1", "Database", generation_changed_only=True)],
            [permission("stable.example.com", "databases/status", ["get", "patch"]), events_permission()],
        )

    def on_event(self, e: Event) -> List[Action]:
        if e.kind in (EventKind.DELETED, EventKind.FINALIZING):
            return []
        o = obj(e.object)  # invalid JSON: raises Err(PluginError("invalid object: ...", retryable=False))
        engine = _or(get_str(o, "spec", "engine"), "")
        name = _or(get_str(o, "spec", "name"), _or(get_str(o, "metadata", "name"), ""))
        size = _or(get_str(o, "spec", "size"), "default")
        generation = _or(get_int(o, "metadata", "generation"), 0)
        state = get_str(o, "status", "state")
        observed = get_int(o, "status", "observedGeneration")

        def status(state: str, message: str) -> Action:
            # Keys in the order the Rust plugin writes them (serde_json sorts them).
            return status_patch({"status": {"message": message, "observedGeneration": generation, "state": state}})

        if engine not in ENGINES:
            msg = f'unsupported engine "{engine}": expected one of postgres, mysql, mariadb'
            if state == "Failed" and get_str(o, "status", "message") == msg:
                return []
            return [status("Failed", msg), warning_event("UnsupportedEngine", msg)]
        current = observed == generation
        if state == "Ready" and current:
            return []
        if state == "Provisioning" and current:
            return [status("Ready", f'{engine} database "{name}" of size {size} is ready')]
        return [status("Provisioning", f'provisioning {engine} database "{name}" of size {size}'), requeue_after(500)]


def _or(value, default):
    """`value`, or `default` if it is None (an empty string stays empty)."""
    return default if value is None else value
