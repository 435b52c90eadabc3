"""`{{name}}`: a kreflex plugin. It watches `Database` objects (the example CRD,
examples/crds/database.yaml) and writes which generation it saw into their status.
Change `describe` to subscribe to your own kinds and `on_event` to react."""

from typing import List

import wit_world
from kreflex import Action, Event, EventKind, PluginInfo, get_path, obj, permission, plugin_info, status_patch, subscription


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return plugin_info(
            "{{name}}", "0.1.0",
            [subscription("stable.example.com", "v1", "Database", generation_changed_only=True)],
            [permission("stable.example.com", "databases/status", ["patch"])],
        )

    def on_event(self, e: Event) -> List[Action]:
        if e.kind in (EventKind.DELETED, EventKind.FINALIZING):
            return []
        generation = get_path(obj(e.object), "metadata", "generation")
        if not isinstance(generation, int) or isinstance(generation, bool):
            generation = 0
        return [status_patch({"status": {"message": f"{{name}} saw generation {generation}"}})]
