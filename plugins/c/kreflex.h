// kreflex.h: typed helpers for kreflex plugins written in C, on top of the bindings that
// `kreflex bindgen c` generates (bindings/reactor.h). Single header: include it in exactly
// one file after `#define KREFLEX_IMPLEMENTATION`, or everywhere for the declarations.
//
// Memory: everything handed back to kreflex (strings, lists) must be heap-allocated, because
// the generated bindings free it after the call. These helpers always allocate; never put a
// string literal into a reactor_string_t yourself (use kx_str).
//
// What is here:
//   - a small JSON reader for the event's object: kx_json_valid, kx_json_get (by path),
//     kx_json_string, kx_json_int;
//   - a JSON writer (kx_buf) with correct string escaping;
//   - builders for describe() (kx_subscription, kx_permission) and for actions
//     (kx_status_patch, kx_warning_event, kx_requeue_after, ...), and kx_fail for errors.
#ifndef KREFLEX_H
#define KREFLEX_H

#include "reactor.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef reactor_list_action_t kx_actions;

// ---- JSON reading ----------------------------------------------------------------------

typedef enum { KX_NONE = 0, KX_NULL, KX_BOOL, KX_NUMBER, KX_STRING, KX_ARRAY, KX_OBJECT } kx_type;

// A value inside a JSON text (points into it).
typedef struct {
  kx_type type;
  const char *p;
  size_t n;
} kx_value;

// Whether `json` is exactly one valid JSON value (surrounding whitespace allowed).
bool kx_json_valid(const char *json, size_t len);
// The value at `path` (object keys, NULL-terminated) inside a valid JSON text; type KX_NONE
// if any step is missing or not an object.
kx_value kx_json_get(const char *json, size_t len, const char *const *path);
// A string value unescaped into a new NUL-terminated heap string; NULL if not a string.
char *kx_json_string(kx_value v);
// An integer value (no fraction or exponent); false otherwise.
bool kx_json_int(kx_value v, int64_t *out);

// ---- JSON writing ----------------------------------------------------------------------

typedef struct {
  char *p;
  size_t len, cap;
} kx_buf;

void kx_buf_raw(kx_buf *b, const char *s, size_t n);
void kx_buf_puts(kx_buf *b, const char *s);
// `s` as a JSON string literal (quoted and escaped).
void kx_buf_str(kx_buf *b, const char *s);
void kx_buf_int(kx_buf *b, int64_t v);

// ---- contract values -------------------------------------------------------------------

// A heap copy of `s` as a contract string.
reactor_string_t kx_str(const char *s);
reactor_option_string_t kx_none(void);
reactor_list_string_t kx_strs(const char *const *items, size_t n);

kreflex_plugin_types_subscription_t kx_subscription(const char *group, const char *version, const char *kind,
                                                    bool generation_changed_only, bool finalizer);
kreflex_plugin_types_permission_t kx_permission(const char *group, const char *resource, const char *const *verbs,
                                                size_t n_verbs);

// Appends an action slot to `l` and returns it.
kreflex_plugin_types_action_t *kx_push(kx_actions *l);
// Merge-patch of the event object's status subresource; takes ownership of `body` (heap JSON).
void kx_status_patch(kx_actions *l, kx_buf body);
void kx_warning_event(kx_actions *l, const char *reason, const char *message);
void kx_normal_event(kx_actions *l, const char *reason, const char *message);
void kx_requeue_after(kx_actions *l, uint32_t ms);
// Fills `err` and returns false, so `return kx_fail(err, "...", false);` ends on-event.
bool kx_fail(reactor_plugin_error_t *err, const char *message, bool retryable);

#ifdef KREFLEX_IMPLEMENTATION
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *kx__ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

// Skips one JSON value starting at p; returns the end or NULL if invalid.
static const char *kx__skip(const char *p, const char *end, int depth) {
  if (depth > 512) return NULL;
  p = kx__ws(p, end);
  if (p >= end) return NULL;
  switch (*p) {
    case '"':
      for (p++; p < end; p++) {
        if (*p == '\\') {
          if (++p >= end) return NULL;
        } else if (*p == '"') {
          return p + 1;
        } else if ((unsigned char)*p < 0x20) {
          return NULL;
        }
      }
      return NULL;
    case '{':
    case '[': {
      char close = *p == '{' ? '}' : ']';
      bool object = *p == '{';
      p = kx__ws(p + 1, end);
      if (p < end && *p == close) return p + 1;
      for (;;) {
        if (object) {
          p = kx__ws(p, end);
          if (p >= end || *p != '"') return NULL;
          if (!(p = kx__skip(p, end, depth + 1))) return NULL;
          p = kx__ws(p, end);
          if (p >= end || *p != ':') return NULL;
          p++;
        }
        if (!(p = kx__skip(p, end, depth + 1))) return NULL;
        p = kx__ws(p, end);
        if (p < end && *p == ',') {
          p++;
          continue;
        }
        if (p < end && *p == close) return p + 1;
        return NULL;
      }
    }
    case 't': return (end - p >= 4 && !memcmp(p, "true", 4)) ? p + 4 : NULL;
    case 'f': return (end - p >= 5 && !memcmp(p, "false", 5)) ? p + 5 : NULL;
    case 'n': return (end - p >= 4 && !memcmp(p, "null", 4)) ? p + 4 : NULL;
    default: {
      const char *s = p;
      if (p < end && *p == '-') p++;
      if (p >= end || *p < '0' || *p > '9') return NULL;
      while (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-')) p++;
      return p > s ? p : NULL;
    }
  }
}

bool kx_json_valid(const char *json, size_t len) {
  const char *end = json + len;
  const char *p = kx__skip(json, end, 0);
  return p && kx__ws(p, end) == end;
}

static kx_value kx__value(const char *p, const char *end) {
  kx_value v = {KX_NONE, p, 0};
  const char *e = kx__skip(p, end, 0);
  if (!e) return v;
  v.n = (size_t)(e - p);
  switch (*p) {
    case '"': v.type = KX_STRING; break;
    case '{': v.type = KX_OBJECT; break;
    case '[': v.type = KX_ARRAY; break;
    case 't':
    case 'f': v.type = KX_BOOL; break;
    case 'n': v.type = KX_NULL; break;
    default: v.type = KX_NUMBER;
  }
  return v;
}

kx_value kx_json_get(const char *json, size_t len, const char *const *path) {
  const char *end = json + len;
  kx_value cur = kx__value(kx__ws(json, end), end);
  for (; *path; path++) {
    kx_value found = {KX_NONE, NULL, 0};
    if (cur.type != KX_OBJECT) return found;
    const char *p = kx__ws(cur.p + 1, end);
    while (p < end && *p == '"') {
      kx_value key = kx__value(p, end);
      char *name = kx_json_string(key);
      p = kx__ws(p + key.n, end) + 1;  // past ':'
      p = kx__ws(p, end);
      kx_value val = kx__value(p, end);
      bool match = name && strcmp(name, *path) == 0;
      free(name);
      if (match) {
        found = val;
        break;
      }
      p = kx__ws(p + val.n, end);
      if (p < end && *p == ',') p = kx__ws(p + 1, end);
    }
    if (found.type == KX_NONE) return found;
    cur = found;
  }
  return cur;
}

static int kx__hex(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

static size_t kx__utf8(char *out, uint32_t cp) {
  if (cp < 0x80) { out[0] = (char)cp; return 1; }
  if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

char *kx_json_string(kx_value v) {
  if (v.type != KX_STRING || v.n < 2) return NULL;
  char *out = malloc(v.n);  // unescaping never grows the text
  size_t o = 0;
  const char *p = v.p + 1, *end = v.p + v.n - 1;
  while (p < end) {
    if (*p != '\\') { out[o++] = *p++; continue; }
    p++;
    switch (*p) {
      case 'n': out[o++] = '\n'; break;
      case 't': out[o++] = '\t'; break;
      case 'r': out[o++] = '\r'; break;
      case 'b': out[o++] = '\b'; break;
      case 'f': out[o++] = '\f'; break;
      case 'u': {
        int cp = end - p >= 5 ? kx__hex(p + 1) : -1;
        if (cp < 0) { free(out); return NULL; }
        p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 7 && p[1] == '\\' && p[2] == 'u') {
          int lo = kx__hex(p + 3);
          if (lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
          }
        }
        o += kx__utf8(out + o, (uint32_t)cp);
        break;
      }
      default: out[o++] = *p;  // \" \\ \/
    }
    p++;
  }
  out[o] = 0;
  return out;
}

bool kx_json_int(kx_value v, int64_t *out) {
  if (v.type != KX_NUMBER) return false;
  for (size_t i = 0; i < v.n; i++) {
    char c = v.p[i];
    if (c == '.' || c == 'e' || c == 'E') return false;
  }
  char tmp[32];
  if (v.n >= sizeof tmp) return false;
  memcpy(tmp, v.p, v.n);
  tmp[v.n] = 0;
  *out = strtoll(tmp, NULL, 10);
  return true;
}

void kx_buf_raw(kx_buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

void kx_buf_puts(kx_buf *b, const char *s) { kx_buf_raw(b, s, strlen(s)); }

void kx_buf_str(kx_buf *b, const char *s) {
  kx_buf_raw(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"') kx_buf_raw(b, "\\\"", 2);
    else if (c == '\\') kx_buf_raw(b, "\\\\", 2);
    else if (c == '\n') kx_buf_raw(b, "\\n", 2);
    else if (c == '\r') kx_buf_raw(b, "\\r", 2);
    else if (c == '\t') kx_buf_raw(b, "\\t", 2);
    else if (c < 0x20) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      kx_buf_raw(b, esc, 6);
    } else kx_buf_raw(b, (const char *)&c, 1);
  }
  kx_buf_raw(b, "\"", 1);
}

void kx_buf_int(kx_buf *b, int64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
  kx_buf_raw(b, tmp, (size_t)n);
}

reactor_string_t kx_str(const char *s) {
  reactor_string_t r;
  reactor_string_dup(&r, s);
  return r;
}

reactor_option_string_t kx_none(void) {
  reactor_option_string_t o;
  memset(&o, 0, sizeof o);
  return o;
}

reactor_list_string_t kx_strs(const char *const *items, size_t n) {
  reactor_list_string_t l = {n ? malloc(n * sizeof(reactor_string_t)) : NULL, n};
  for (size_t i = 0; i < n; i++) l.ptr[i] = kx_str(items[i]);
  return l;
}

kreflex_plugin_types_subscription_t kx_subscription(const char *group, const char *version, const char *kind,
                                                    bool generation_changed_only, bool finalizer) {
  kreflex_plugin_types_subscription_t s;
  memset(&s, 0, sizeof s);
  s.gvk.group = kx_str(group);
  s.gvk.version = kx_str(version);
  s.gvk.kind = kx_str(kind);
  s.label_selector = kx_none();
  s.field_selector = kx_none();
  s.generation_changed_only = generation_changed_only;
  s.finalizer = finalizer;
  return s;
}

kreflex_plugin_types_permission_t kx_permission(const char *group, const char *resource, const char *const *verbs,
                                                size_t n_verbs) {
  kreflex_plugin_types_permission_t p;
  memset(&p, 0, sizeof p);
  p.group = kx_str(group);
  p.resource = kx_str(resource);
  p.verbs = kx_strs(verbs, n_verbs);
  return p;
}

kreflex_plugin_types_action_t *kx_push(kx_actions *l) {
  l->ptr = realloc(l->ptr, (l->len + 1) * sizeof *l->ptr);
  kreflex_plugin_types_action_t *a = &l->ptr[l->len++];
  memset(a, 0, sizeof *a);
  return a;
}

void kx_status_patch(kx_actions *l, kx_buf body) {
  kreflex_plugin_types_action_t *a = kx_push(l);
  a->tag = KREFLEX_PLUGIN_TYPES_ACTION_PATCH;
  a->val.patch.target.is_some = false;
  a->val.patch.subresource.is_some = true;
  a->val.patch.subresource.val = kx_str("status");
  a->val.patch.patch_type = KREFLEX_PLUGIN_TYPES_PATCH_TYPE_MERGE;
  a->val.patch.body.ptr = (uint8_t *)body.p;
  a->val.patch.body.len = body.len;
}

static void kx__event(kx_actions *l, kreflex_plugin_types_severity_t sev, const char *reason, const char *message) {
  kreflex_plugin_types_action_t *a = kx_push(l);
  a->tag = KREFLEX_PLUGIN_TYPES_ACTION_EMIT_EVENT;
  a->val.emit_event.severity = sev;
  a->val.emit_event.reason = kx_str(reason);
  a->val.emit_event.message = kx_str(message);
}

void kx_warning_event(kx_actions *l, const char *reason, const char *message) {
  kx__event(l, KREFLEX_PLUGIN_TYPES_SEVERITY_WARNING, reason, message);
}

void kx_normal_event(kx_actions *l, const char *reason, const char *message) {
  kx__event(l, KREFLEX_PLUGIN_TYPES_SEVERITY_NORMAL, reason, message);
}

void kx_requeue_after(kx_actions *l, uint32_t ms) {
  kreflex_plugin_types_action_t *a = kx_push(l);
  a->tag = KREFLEX_PLUGIN_TYPES_ACTION_REQUEUE_AFTER;
  a->val.requeue_after = ms;
}

bool kx_fail(reactor_plugin_error_t *err, const char *message, bool retryable) {
  err->message = kx_str(message);
  err->retryable = retryable;
  return false;
}
#endif  // KREFLEX_IMPLEMENTATION
#endif  // KREFLEX_H
