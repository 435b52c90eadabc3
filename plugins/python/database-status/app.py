"""`database-status` in Python: the kreflex example plugin (specified in plugins/README.md).

Walks `Database` objects (stable.example.com/v1) from Provisioning to Ready; an unsupported
`spec.engine` gets status Failed and a Warning Event.
"""

from typing import List

import wit_world
from kreflex import (Action, Event, EventKind, PluginInfo, events_permission, get_path, obj, permission,
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
        o = obj(e.object)
        engine = _str(get_path(o, "spec", "engine")) or ""
        name = _str(get_path(o, "spec", "name"))
        name = name if name is not None else (_str(get_path(o, "metadata", "name")) or "")
        size = _str(get_path(o, "spec", "size"))
        size = size if size is not None else "default"
        generation = _int(get_path(o, "metadata", "generation"))
        generation = generation if generation is not None else 0
        state = _str(get_path(o, "status", "state"))
        observed = _int(get_path(o, "status", "observedGeneration"))

        def status(state: str, message: str) -> Action:
            return status_patch({"status": {"state": state, "message": message, "observedGeneration": generation}})

        if engine not in ENGINES:
            msg = f'unsupported engine "{engine}": expected one of postgres, mysql, mariadb'
            if state == "Failed" and get_path(o, "status", "message") == msg:
                return []
            return [status("Failed", msg), warning_event("UnsupportedEngine", msg)]
        current = observed == generation
        if state == "Ready" and current:
            return []
        if state == "Provisioning" and current:
            return [status("Ready", f'{engine} database "{name}" of size {size} is ready')]
        return [status("Provisioning", f'provisioning {engine} database "{name}" of size {size}'), requeue_after(500)]


def _str(v):
    return v if isinstance(v, str) else None


def _int(v):
    # JSON integers only (bool is an int in Python, and not a generation).
    return v if isinstance(v, int) and not isinstance(v, bool) else None
