// Typed helpers for kreflex plugins written in JavaScript (componentize-js).
//
// The contract is wit/kreflex.wit. componentize-js maps it to plain JS values: records are
// objects with camelCase fields, enums are their kebab-case names as strings, variants are
// `{ tag, val }`, an absent option is `undefined`, and a `result` export returns its ok value
// or throws its error (an object with a `payload`). These helpers build those values so a
// plugin never spells them out or concatenates JSON strings.
//
//   import { pluginInfo, subscription, permission, eventsPermission, parseObject,
//            statusPatch, warningEvent, requeueAfter, fail } from '../kreflex.js';

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

/**
 * Parses the event's object; an invalid one fails the call (not retryable).
 * @param {string} text @returns {Record<string, any>}
 */
export function parseObject(text) {
  let o;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw fail(`invalid object: ${e.message}`);
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw fail('invalid object: not a JSON object');
  return o;
}

function patch(body, target, subresource, patchType) {
  return { tag: 'patch', val: { target, subresource, patchType, body: JSON.stringify(body) } };
}

/** Merge-patch the status subresource of the event's object. @returns {Action} */
export function statusPatch(body) {
  return patch(body, undefined, 'status', 'merge');
}

/** Merge-patch the event's object (or `target`). @param {object} body @param {ObjectRef} [target] */
export function mergePatch(body, target) {
  return patch(body, target, undefined, 'merge');
}

/** Server-side apply (field manager `kreflex/<plugin>`). */
export function applyPatch(body, target, subresource) {
  return patch(body, target, subresource, 'apply');
}

/** Create an object (owned by the event's object unless it sets its own owners). */
export function create(manifest) {
  return { tag: 'create', val: JSON.stringify(manifest) };
}

/** Delete an object. @param {ObjectRef} target */
export function del(target) {
  return { tag: 'delete', val: target };
}

/** A Warning Kubernetes Event on the event's object. */
export function warningEvent(reason, message) {
  return { tag: 'emit-event', val: { severity: 'warning', reason, message } };
}

/** A Normal Kubernetes Event on the event's object. */
export function normalEvent(reason, message) {
  return { tag: 'emit-event', val: { severity: 'normal', reason, message } };
}

/** Deliver the object again after `ms` milliseconds. */
export function requeueAfter(ms) {
  return { tag: 'requeue-after', val: ms };
}

/** The plugin's configuration (`NAME.json` → `config`), or undefined. */
export function config() {
  const text = host.getConfig();
  return text === undefined ? undefined : JSON.parse(text);
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
  return text === undefined ? undefined : JSON.parse(text);
}

/** Objects of a kind from kreflex's cache (needs a declared `list` permission). */
export function listObjects(group, version, kind, namespace, labelSelector) {
  try {
    return host.listObjects({ group, version, kind }, namespace, labelSelector).map((t) => JSON.parse(t));
  } catch (e) {
    throw fail(`list ${kind}: ${e.payload ?? e}`, true);
  }
}
