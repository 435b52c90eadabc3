// `database-status` in JavaScript: the kreflex example plugin (specified in plugins/README.md).
// Walks `Database` objects (stable.example.com/v1) from Provisioning to Ready; an unsupported
// `spec.engine` gets status Failed and a Warning Event.

import {
  eventsPermission, parseObject, permission, pluginInfo, requeueAfter, statusPatch, subscription, warningEvent,
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

const str = (v) => (typeof v === 'string' ? v : undefined);
const int = (v) => (Number.isInteger(v) ? v : undefined);

export function onEvent(e) {
  if (e.kind === 'deleted' || e.kind === 'finalizing') return [];
  const o = parseObject(e.object);
  const engine = str(o.spec?.engine) ?? '';
  const name = str(o.spec?.name) ?? str(o.metadata?.name) ?? '';
  const size = str(o.spec?.size) ?? 'default';
  const generation = int(o.metadata?.generation) ?? 0;
  const state = str(o.status?.state);
  const observed = int(o.status?.observedGeneration);
  const status = (state, message) => statusPatch({ status: { state, message, observedGeneration: generation } });

  if (!ENGINES.includes(engine)) {
    const msg = `unsupported engine "${engine}": expected one of postgres, mysql, mariadb`;
    if (state === 'Failed' && o.status?.message === msg) return [];
    return [status('Failed', msg), warningEvent('UnsupportedEngine', msg)];
  }
  const current = observed === generation;
  if (state === 'Ready' && current) return [];
  if (state === 'Provisioning' && current) {
    return [status('Ready', `${engine} database "${name}" of size ${size} is ready`)];
  }
  return [status('Provisioning', `provisioning ${engine} database "${name}" of size ${size}`), requeueAfter(500)];
}
