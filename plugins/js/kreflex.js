// Typed helpers for kreflex plugins written in JavaScript (componentize-js).
//
// The contract is wit/kreflex.wit. componentize-js maps it to plain JS values: records are
// objects with camelCase fields, enums are their kebab-case names as strings, variants are
// `{ tag, val }`, an absent option is `undefined`, and a `result` export returns its ok value
// or throws its error (an object with a `payload`). These helpers build those values so a
// plugin never spells them out or concatenates JSON strings.
//
//   import { pluginInfo, subscription, permission, eventsPermission, parseObject, getString,
//            getInt, statusPatch, warningEvent, requeueAfter, fail } from '../kreflex.js';

import * as host from 'kreflex:plugin/host@0.1.0';

/** @typedef {{group: string, version: string, kind: string}} Gvk */
/** @typedef {{gvk: Gvk, namespaces: string[], labelSelector?: string, fieldSelector?: string, generationChangedOnly: boolean, finalizer: boolean}} Subscription */
/** @typedef {{group: string, resource: string, verbs: string[], namespaces: string[]}} Permission */
/** @typedef {{name: string, version: string, subscriptions: Subscription[], permissions: Permission[]}} PluginInfo */
/** @typedef {'added'|'modified'|'deleted'|'resync'|'finalizing'} EventKind */
/** @typedef {{kind: EventKind, object: string, oldObject?: string}} Event */
/** @typedef {{apiVersion: string, kind: string, namespace?: string, name: string}} ObjectRef */
/** @typedef {{tag: 'patch'|'create'|'delete'|'emit-event'|'requeue-after', val: any}} Action */

/**
 * What `describe()` returns.
 * @param {string} name @param {string} version
 * @param {Subscription[]} subscriptions @param {Permission[]} [permissions]
 * @returns {PluginInfo}
 */
export function pluginInfo(name, version, subscriptions, permissions = []) {
  return { name, version, subscriptions, permissions };
}

/**
 * A subscription to one kind (`group` is '' for the core group).
 * @param {string} group @param {string} version @param {string} kind
 * @param {{namespaces?: string[], labelSelector?: string, fieldSelector?: string, generationChangedOnly?: boolean, finalizer?: boolean}} [options]
 * @returns {Subscription}
 */
export function subscription(group, version, kind, options = {}) {
  return {
    gvk: { group, version, kind },
    namespaces: options.namespaces ?? [],
    labelSelector: options.labelSelector,
    fieldSelector: options.fieldSelector,
    generationChangedOnly: options.generationChangedOnly ?? false,
    finalizer: options.finalizer ?? false,
  };
}

/**
 * A permission: `resource` is a plural, optionally with a subresource (`databases/status`).
 * @param {string} group @param {string} resource @param {string[]} verbs @param {string[]} [namespaces]
 * @returns {Permission}
 */
export function permission(group, resource, verbs, namespaces = []) {
  return { group, resource, verbs, namespaces };
}

/** Permission to emit Kubernetes Events. @returns {Permission} */
export function eventsPermission() {
  return permission('events.k8s.io', 'events', ['create', 'patch']);
}

/**
 * An error to `throw` from `onEvent`.
 * @param {string} message @param {boolean} [retryable]
 */
export function fail(message, retryable = false) {
  const e = new Error(message);
  e.payload = { message, retryable };
  return e;
}

// Exact JSON numbers. `JSON.parse` turns every number into a float64, so a generation above
// 2^53 would silently change and `2.0` would look like the integer 2. The Rust SDK (serde_json)
// sees exact i64 values and treats `2.0` as a float; so that plugins in both languages decide
// alike, `parseObject` remembers the source text of every number (JSON.parse source text access,
// supported by the SpiderMonkey inside componentize-js) and `getInt` reads integers from it.
const numberSources = new WeakMap(); // parsed object or array -> Map(key -> number literal)
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const wellFormed = typeof ''.isWellFormed === 'function' ? (s) => s.isWellFormed() : () => true;

function reviveExact(key, value, context) {
  if (!wellFormed(key)) throw new SyntaxError('lone surrogate in a key');
  if (typeof value === 'number' && typeof context?.source === 'string') {
    let sources = numberSources.get(this);
    if (sources === undefined) numberSources.set(this, (sources = new Map()));
    sources.set(key, context.source);
  } else if (typeof value === 'string' && !wellFormed(value)) {
    throw new SyntaxError('lone surrogate in a string');
  }
  return value;
}

/**
 * Parses the event's object (any JSON value; kreflex always sends an object). Invalid JSON fails
 * the call with a non-retryable `invalid object: <reason>` error, as in the Rust SDK.
 * Read it with `getPath`, `getString` and `getInt`, which never throw on missing fields.
 * @param {string} text @returns {any}
 */
export function parseObject(text) {
  try {
    return JSON.parse(text, reviveExact);
  } catch (e) {
    throw fail(`invalid object: ${e.message}`);
  }
}

/**
 * `o[path[0]][path[1]]...`, or undefined as soon as a step is missing (like a JSON pointer:
 * object keys, or decimal indexes into arrays).
 * @param {any} o @param {...(string|number)} path @returns {any}
 */
export function getPath(o, ...path) {
  for (const step of path) {
    const key = String(step);
    if (o === null || typeof o !== 'object' || !Object.hasOwn(o, key)) return undefined;
    if (Array.isArray(o) && !/^(0|[1-9][0-9]*)$/.test(key)) return undefined; // not `length`
    o = o[key];
  }
  return o;
}

/**
 * The string at `path`, or undefined if it is missing or not a string.
 * @param {any} o @param {...(string|number)} path @returns {string|undefined}
 */
export function getString(o, ...path) {
  const v = getPath(o, ...path);
  return typeof v === 'string' ? v : undefined;
}

/**
 * The integer at `path` (a JSON integer that fits in 64 bits, like Kubernetes' int64 fields), or
 * undefined if it is missing, not a number, or written as a float (`2.0`, `1e2`). A number, or a
 * BigInt beyond 2^53 (the helpers serialize BigInts exactly).
 * @param {any} o @param {...(string|number)} path @returns {number|bigint|undefined}
 */
export function getInt(o, ...path) {
  if (path.length === 0) return undefined;
  const parent = getPath(o, ...path.slice(0, -1));
  const key = String(path[path.length - 1]);
  const v = getPath(parent, key);
  if (typeof v === 'bigint') return v >= I64_MIN && v <= I64_MAX ? v : undefined;
  if (typeof v !== 'number') return undefined;
  const source = numberSources.get(parent)?.get(key);
  if (source === undefined || Number(source) !== v) {
    // Not from parseObject (or changed since): all we have is the float64.
    return Number.isSafeInteger(v) ? v : undefined;
  }
  if (!/^-?[0-9]+$/.test(source) || source === '-0') return undefined; // a float in JSON
  const exact = BigInt(source);
  if (exact < I64_MIN || exact > I64_MAX) return undefined;
  return Number.isSafeInteger(v) ? v : exact;
}

/**
 * JSON text of `value`, with BigInts written exactly (as JSON numbers).
 * @param {any} value @returns {string}
 */
export function toJson(value) {
  return JSON.stringify(value, (_key, v) => {
    if (typeof v !== 'bigint') return v;
    return typeof JSON.rawJSON === 'function' ? JSON.rawJSON(v.toString()) : Number(v);
  });
}

function patch(body, target, subresource, patchType) {
  return { tag: 'patch', val: { target, subresource, patchType, body: toJson(body) } };
}

/**
 * Merge-patch the status subresource of the event's object: `statusPatch({ status: { ... } })`.
 * @param {Record<string, any>} body @returns {Action}
 */
export function statusPatch(body) {
  return patch(body, undefined, 'status', 'merge');
}

/**
 * Merge-patch the event's object (or `target`).
 * @param {Record<string, any>} body @param {ObjectRef} [target] @returns {Action}
 */
export function mergePatch(body, target) {
  return patch(body, target, undefined, 'merge');
}

/**
 * Server-side apply (field manager `kreflex/<plugin>`); `body` carries apiVersion and kind.
 * @param {Record<string, any>} body @param {ObjectRef} [target] @param {string} [subresource] @returns {Action}
 */
export function applyPatch(body, target, subresource) {
  return patch(body, target, subresource, 'apply');
}

/**
 * Create an object (owned by the event's object unless it sets its own owners).
 * @param {Record<string, any>} manifest @returns {Action}
 */
export function create(manifest) {
  return { tag: 'create', val: toJson(manifest) };
}

/** Delete an object. @param {ObjectRef} target @returns {Action} */
export function del(target) {
  return { tag: 'delete', val: target };
}

/** A Warning Kubernetes Event on the event's object. @param {string} reason @param {string} message @returns {Action} */
export function warningEvent(reason, message) {
  return { tag: 'emit-event', val: { severity: 'warning', reason, message } };
}

/** A Normal Kubernetes Event on the event's object. @param {string} reason @param {string} message @returns {Action} */
export function normalEvent(reason, message) {
  return { tag: 'emit-event', val: { severity: 'normal', reason, message } };
}

/** Deliver the object again (as a `resync` event) after `ms` milliseconds. @param {number} ms @returns {Action} */
export function requeueAfter(ms) {
  return { tag: 'requeue-after', val: ms };
}

/** The plugin's configuration (`NAME.json` → `config`), or undefined. */
export function config() {
  const text = host.getConfig();
  return text === undefined ? undefined : JSON.parse(text, reviveExact);
}

/** A line in kreflex's log, tagged with the plugin's name. @param {'trace'|'debug'|'info'|'warn'|'error'} [level] */
export function log(message, level = 'info') {
  host.log(level, message);
}

/** An object from kreflex's cache (needs a declared `get` permission), or undefined. @param {ObjectRef} target */
export function get(target) {
  let text;
  try {
    text = host.get(target);
  } catch (e) {
    throw fail(`get ${target.kind} ${target.name}: ${e.payload ?? e}`, true);
  }
  return text === undefined ? undefined : JSON.parse(text, reviveExact);
}

/** Objects of a kind from kreflex's cache (needs a declared `list` permission). */
export function listObjects(group, version, kind, namespace, labelSelector) {
  try {
    return host.listObjects({ group, version, kind }, namespace, labelSelector).map((t) => JSON.parse(t, reviveExact));
  } catch (e) {
    throw fail(`list ${kind}: ${e.payload ?? e}`, true);
  }
}
