// `database-status` in C: the kreflex example plugin (specified in plugins/README.md).
// Walks `Database` objects (stable.example.com/v1) from Provisioning to Ready; an unsupported
// `spec.engine` gets status Failed and a Warning Event.
#define KREFLEX_IMPLEMENTATION
#include "kreflex.h"

#include <stdlib.h>
#include <string.h>

void exports_reactor_describe(reactor_plugin_info_t *ret) {
  static const char *const status_verbs[] = {"get", "patch"};
  static const char *const event_verbs[] = {"create", "patch"};
  ret->name = kx_str("database-status");
  ret->version = kx_str("0.1.0");
  ret->subscriptions.len = 1;
  ret->subscriptions.ptr = malloc(sizeof *ret->subscriptions.ptr);
  ret->subscriptions.ptr[0] = kx_subscription("stable.example.com", "v1", "Database", true, false);
  ret->permissions.len = 2;
  ret->permissions.ptr = malloc(2 * sizeof *ret->permissions.ptr);
  ret->permissions.ptr[0] = kx_permission("stable.example.com", "databases/status", status_verbs, 2);
  ret->permissions.ptr[1] = kx_permission("events.k8s.io", "events", event_verbs, 2);
}

// A string field, or NULL if missing or not a string (caller frees).
static char *field(const char *json, size_t len, const char *a, const char *b) {
  const char *path[] = {a, b, NULL};
  return kx_json_string(kx_json_get(json, len, path));
}

static bool int_field(const char *json, size_t len, const char *a, const char *b, int64_t *out) {
  const char *path[] = {a, b, NULL};
  return kx_json_int(kx_json_get(json, len, path), out);
}

static kx_buf status_body(const char *state, const char *message, int64_t generation) {
  kx_buf b = {0};
  kx_buf_puts(&b, "{\"status\":{\"state\":");
  kx_buf_str(&b, state);
  kx_buf_puts(&b, ",\"message\":");
  kx_buf_str(&b, message);
  kx_buf_puts(&b, ",\"observedGeneration\":");
  kx_buf_int(&b, generation);
  kx_buf_puts(&b, "}}");
  return b;
}

static char *concat(const char *const *parts) {
  kx_buf b = {0};
  kx_buf_puts(&b, "");
  for (; *parts; parts++) kx_buf_puts(&b, *parts);
  return b.p;
}

bool exports_reactor_on_event(reactor_event_t *e, reactor_list_action_t *ret, reactor_plugin_error_t *err) {
  ret->ptr = NULL;
  ret->len = 0;
  if (e->kind == KREFLEX_PLUGIN_TYPES_EVENT_KIND_DELETED || e->kind == KREFLEX_PLUGIN_TYPES_EVENT_KIND_FINALIZING) {
    return true;
  }
  const char *o = (const char *)e->object.ptr;
  size_t n = e->object.len;
  const char *top[] = {NULL};
  if (!kx_json_valid(o, n) || kx_json_get(o, n, top).type != KX_OBJECT) {
    return kx_fail(err, "invalid object: not a JSON object", false);
  }
  char *engine = field(o, n, "spec", "engine");
  char *name = field(o, n, "spec", "name");
  char *size = field(o, n, "spec", "size");
  char *state = field(o, n, "status", "state");
  char *message = field(o, n, "status", "message");
  if (!engine) engine = strdup("");
  if (!name) name = field(o, n, "metadata", "name");
  if (!name) name = strdup("");
  if (!size) size = strdup("default");
  int64_t generation = 0, observed = 0;
  int_field(o, n, "metadata", "generation", &generation);
  bool has_observed = int_field(o, n, "status", "observedGeneration", &observed);
  bool current = has_observed && observed == generation;

  if (strcmp(engine, "postgres") && strcmp(engine, "mysql") && strcmp(engine, "mariadb")) {
    const char *parts[] = {"unsupported engine \"", engine, "\": expected one of postgres, mysql, mariadb", NULL};
    char *msg = concat(parts);
    if (!(state && !strcmp(state, "Failed") && message && !strcmp(message, msg))) {
      kx_status_patch(ret, status_body("Failed", msg, generation));
      kx_warning_event(ret, "UnsupportedEngine", msg);
    }
    free(msg);
  } else if (state && !strcmp(state, "Ready") && current) {
    // Nothing to do.
  } else if (state && !strcmp(state, "Provisioning") && current) {
    const char *parts[] = {engine, " database \"", name, "\" of size ", size, " is ready", NULL};
    char *msg = concat(parts);
    kx_status_patch(ret, status_body("Ready", msg, generation));
    free(msg);
  } else {
    const char *parts[] = {"provisioning ", engine, " database \"", name, "\" of size ", size, NULL};
    char *msg = concat(parts);
    kx_status_patch(ret, status_body("Provisioning", msg, generation));
    kx_requeue_after(ret, 500);
    free(msg);
  }
  free(engine);
  free(name);
  free(size);
  free(state);
  free(message);
  return true;
}
