// `{{name}}`: a kreflex plugin. It watches `Database` objects (the example CRD,
// examples/crds/database.yaml) and writes which generation it saw into their status.
// Change `describe` to subscribe to your own kinds and `onEvent` to react.

import { parseObject, permission, pluginInfo, statusPatch, subscription } from '../kreflex.js';

export function describe() {
  return pluginInfo(
    '{{name}}',
    '0.1.0',
    [subscription('stable.example.com', 'v1', 'Database', { generationChangedOnly: true })],
    [permission('stable.example.com', 'databases/status', ['patch'])],
  );
}

export function onEvent(e) {
  if (e.kind === 'deleted' || e.kind === 'finalizing') return [];
  const o = parseObject(e.object);
  const generation = Number.isInteger(o.metadata?.generation) ? o.metadata.generation : 0;
  return [statusPatch({ status: { message: `{{name}} saw generation ${generation}` } })];
}
