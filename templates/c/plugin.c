// `{{name}}`: a kreflex plugin. It watches `Database` objects (the example CRD,
// examples/crds/database.yaml) and writes which generation it saw into their status.
// Change `exports_reactor_describe` to subscribe to your own kinds and
// `exports_reactor_on_event` to react. Helpers: ../kreflex.h.
#define KREFLEX_IMPLEMENTATION
#include "kreflex.h"

#include <stdlib.h>

void exports_reactor_describe(reactor_plugin_info_t *ret) {
  static const char *const verbs[] = {"patch"};
  ret->name = kx_str("{{name}}");
  ret->version = kx_str("0.1.0");
  ret->subscriptions.len = 1;
  ret->subscriptions.ptr = malloc(sizeof *ret->subscriptions.ptr);
  ret->subscriptions.ptr[0] = kx_subscription("stable.example.com", "v1", "Database", true, false);
  ret->permissions.len = 1;
  ret->permissions.ptr = malloc(sizeof *ret->permissions.ptr);
  ret->permissions.ptr[0] = kx_permission("stable.example.com", "databases/status", verbs, 1);
}

bool exports_reactor_on_event(reactor_event_t *e, reactor_list_action_t *ret, reactor_plugin_error_t *err) {
  ret->ptr = NULL;
  ret->len = 0;
  if (e->kind == KREFLEX_PLUGIN_TYPES_EVENT_KIND_DELETED || e->kind == KREFLEX_PLUGIN_TYPES_EVENT_KIND_FINALIZING) {
    return true;
  }
  const char *o = (const char *)e->object.ptr;
  if (!kx_json_valid(o, e->object.len)) return kx_fail(err, "invalid object: not JSON", false);
  const char *path[] = {"metadata", "generation", NULL};
  int64_t generation = 0;
  kx_json_int(kx_json_get(o, e->object.len, path), &generation);
  kx_buf body = {0};
  kx_buf_puts(&body, "{\"status\":{\"message\":\"{{name}} saw generation ");
  kx_buf_int(&body, generation);
  kx_buf_puts(&body, "\"}}");
  kx_status_patch(ret, body);
  return true;
}
