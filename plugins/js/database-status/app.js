// `database-status` in JavaScript: the kreflex example plugin (specified in plugins/README.md).
// Walks `Database` objects (stable.example.com/v1) from Provisioning to Ready; an unsupported
// `spec.engine` gets status Failed and a Warning Event.

import {
  eventsPermission, getInt, getString, parseObject, permission, pluginInfo, requeueAfter, statusPatch, subscription,
  warningEvent,
} from '../kreflex.js';

const ENGINES = ['postgres', 'mysql', 'mariadb'];

export function describe() {
  return pluginInfo(
    'database-status',
    '0.1.0',
    [subscription('stable.example.com', 'v1', 'Database', { generationChangedOnly: true })],
    [permission('stable.example.com', 'databases/status', ['get', 'patch']), eventsPermission()],
  );
}

export function onEvent(e) {
  if (e.kind === 'deleted' || e.kind === 'finalizing') return [];
  const o = parseObject(e.object); // invalid JSON: throws err({message: "invalid object: ...", retryable: false})
  const engine = getString(o, 'spec', 'engine') ?? '';
  const name = getString(o, 'spec', 'name') ?? getString(o, 'metadata', 'name') ?? '';
  const size = getString(o, 'spec', 'size') ?? 'default';
  const generation = getInt(o, 'metadata', 'generation') ?? 0;
  const state = getString(o, 'status', 'state');
  const observed = getInt(o, 'status', 'observedGeneration');
  // Keys in the order the Rust plugin writes them (serde_json sorts them).
  const status = (state, message) => statusPatch({ status: { message, observedGeneration: generation, state } });

  if (!ENGINES.includes(engine)) {
    const msg = `unsupported engine "${engine}": expected one of postgres, mysql, mariadb`;
    if (state === 'Failed' && getString(o, 'status', 'message') === msg) return [];
    return [status('Failed', msg), warningEvent('UnsupportedEngine', msg)];
  }
  const current = observed === generation;
  if (state === 'Ready' && current) return [];
  if (state === 'Provisioning' && current) {
    return [status('Ready', `${engine} database "${name}" of size ${size} is ready`)];
  }
  return [status('Provisioning', `provisioning ${engine} database "${name}" of size ${size}`), requeueAfter(500)];
}
