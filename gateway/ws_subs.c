/* ws_subs.c - client messages and the URL query turned into
 * subscriptions, and the subscription limits (see ws_internal.h). */
#include "gateway/ws_internal.h"

#include "common/log.h"
#include "rpc/codec.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool valid_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > ID_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char ch = id[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
      return false;
  }
  return true;
}

/* Parse "claim,vote" (or one name) into r->types. */
static int parse_types(const char *s, struct sub_req *r, char *err,
                       size_t errlen) {
  static const char *names[] = {"claim", "vote", "epoch", "source"};
  r->n_types = 0;
  while (*s) {
    size_t n = strcspn(s, ",");
    bool found = false;
    for (int i = 0; i < 4; i++)
      if (strlen(names[i]) == n && strncmp(s, names[i], n) == 0) {
        if (r->n_types < 4)
          r->types[r->n_types++] = i + 1;
        found = true;
      }
    if (!found) {
      snprintf(err, errlen,
               "types: \"%.*s\" is not claim, vote, epoch or source",
               (int)(n < 32 ? n : 32), s);
      return -1;
    }
    s += n;
    if (*s == ',')
      s++;
  }
  return 0;
}

/* The slot for `id`: its own if it exists and is idle, else an unused
 * one, else an idle one of another id. NULL (err set) when none. */
static struct sub *sub_slot(struct conn *c, const char *id, char *err,
                            size_t errlen) {
  struct sub *unused = NULL, *idle = NULL;
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++) {
    struct sub *s = &c->subs[i];
    if (s->used && strcmp(s->id, id) == 0) {
      pthread_mutex_unlock(&c->mu);
      if (s->active) /* read racily, but only this thread sets it true */
        snprintf(err, errlen, "subscription id \"%s\" is already in use", id);
      return s->active ? NULL : s;
    }
    if (!s->used && unused == NULL)
      unused = s;
    if (s->used && !s->active && idle == NULL)
      idle = s;
  }
  pthread_mutex_unlock(&c->mu);
  if (unused == NULL && idle == NULL)
    snprintf(err, errlen, "at most %d subscriptions per socket",
             STM_GW_WS_MAX_SUBS);
  return unused ? unused : idle;
}

static size_t active_subs(struct conn *c) {
  size_t n = 0;
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++)
    n += c->subs[i].active;
  pthread_mutex_unlock(&c->mu);
  return n;
}

/*
 * Issue 10: every socket of the gateway shares one upstream connection,
 * whose watches the server limits (--watch-max-per-connection). These
 * limits keep one client from using them up: per socket, per client
 * address (all its sockets) and in all, each refused with an error naming
 * the limit and its flag. Returns false with err set when one is reached.
 */
static bool within_limits(struct conn *c, char *err, size_t errlen) {
  const struct stm_gw_ws_options *o = &c->w->o;
  if (active_subs(c) >= o->max_subs_per_socket) {
    snprintf(err, errlen,
             "at most %zu subscriptions per socket (--ws-max-subs-per-socket)",
             o->max_subs_per_socket);
    return false;
  }
  size_t same_client = 0;
  for (struct conn *x = c->w->open; x; x = x->next)
    if (strcmp(x->peer, c->peer) == 0)
      same_client += active_subs(x);
  if (same_client >= o->max_subs_per_client) {
    snprintf(err, errlen,
             "at most %zu subscriptions per client address "
             "(--ws-max-subs-per-client)",
             o->max_subs_per_client);
    return false;
  }
  if (atomic_load(&c->w->n_calls) >= o->max_subs_total) {
    snprintf(err, errlen,
             "all %zu subscriptions of this gateway are in use "
             "(--ws-max-subs-total); try again later",
             o->max_subs_total);
    return false;
  }
  return true;
}

static void subscribe(struct conn *c, const struct sub_req *r,
                      bool is_default) {
  char err[200];
  struct sub *s = within_limits(c, err, sizeof err)
                      ? sub_slot(c, r->id, err, sizeof err)
                      : NULL;
  if (s == NULL) {
    stm_gw_ws_send_control(
        c, -1, stm_gw_ws_error_frame(r->id, "RESOURCE_EXHAUSTED", err),
        is_default ? STM_GW_WS_CLOSE_BASE + 8 : 0);
    return;
  }
  s->used = true;
  s->is_default = is_default;
  snprintf(s->id, sizeof s->id, "%s", r->id);
  if (stm_gw_ws_start_call(c, s, r) != 0)
    stm_gw_ws_send_control(
        c, s->index,
        stm_gw_ws_error_frame(r->id, "UNAVAILABLE", "cannot start the watch"),
        is_default ? STM_GW_WS_CLOSE_BASE + 14 : 0);
}

static void unsubscribe(struct conn *c, const char *id) {
  for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++) {
    struct sub *s = &c->subs[i];
    if (!s->used || strcmp(s->id, id) != 0)
      continue;
    pthread_mutex_lock(&c->mu);
    bool active = s->active && s->call;
    if (active) {
      s->unsubscribing = true;
      grpc_call_cancel(s->call, NULL);
    }
    pthread_mutex_unlock(&c->mu);
    if (active)
      return;
  }
  stm_gw_ws_send_control(
      c, -1,
      stm_gw_ws_error_frame(id, "NOT_FOUND",
                            "no active subscription has this id"),
      0);
}

/* A client message: {"op":"subscribe",...} or {"op":"unsubscribe",...}. */
void stm_gw_ws_client_message(struct conn *c, const char *text, size_t len) {
  json_error_t jerr;
  json_t *j = json_loadb(text, len, 0, &jerr);
  char err[200] = "";
  const char *op = NULL, *id = NULL;
  struct sub_req r = {0};
  if (j == NULL || !json_is_object(j)) {
    snprintf(err, sizeof err, "a client message must be a JSON object");
    goto fail;
  }
  op = json_string_value(json_object_get(j, "op"));
  id = json_string_value(json_object_get(j, "id"));
  if (op == NULL ||
      (strcmp(op, "subscribe") != 0 && strcmp(op, "unsubscribe") != 0)) {
    snprintf(err, sizeof err, "op: must be \"subscribe\" or \"unsubscribe\"");
    goto fail;
  }
  if (id == NULL || !valid_id(id)) {
    snprintf(err, sizeof err,
             "id: 1-%d characters of [A-Za-z0-9_.-] are required", ID_MAX);
    id = NULL;
    goto fail;
  }
  if (strcmp(op, "unsubscribe") == 0) {
    unsubscribe(c, id);
    json_decref(j);
    return;
  }
  r.id = id;
  const char *key;
  json_t *v;
  json_object_foreach(j, key, v) {
    if (!strcmp(key, "op") || !strcmp(key, "id"))
      continue;
    if (!strcmp(key, "concept_prefix") && json_is_string(v))
      r.concept_prefix = json_string_value(v);
    else if (!strcmp(key, "predicate") && json_is_string(v))
      r.predicate = json_string_value(v);
    else if (!strcmp(key, "start_sequence") && json_is_integer(v) &&
             json_integer_value(v) >= 0)
      r.start_sequence = (uint64_t)json_integer_value(v);
    else if (!strcmp(key, "progress_interval_ms") && json_is_integer(v) &&
             json_integer_value(v) >= 0 && json_integer_value(v) <= 3600000)
      r.progress_ms = (uint32_t)json_integer_value(v);
    else if (!strcmp(key, "types") && json_is_string(v)) {
      if (parse_types(json_string_value(v), &r, err, sizeof err))
        goto fail;
    } else {
      snprintf(err, sizeof err, "%.40s: unknown field or wrong type", key);
      goto fail;
    }
  }
  subscribe(c, &r, false);
  json_decref(j);
  return;
fail:
  stm_gw_ws_send_control(c, -1,
                         stm_gw_ws_error_frame(id, "INVALID_ARGUMENT", err), 0);
  json_decref(j);
}

/* The URL's query: a subscription "default" when any parameter is given. */
void stm_gw_ws_subscribe_from_query(struct conn *c, struct lws *wsi) {
  static char prefix[600], predicate[200], types[100];
  struct sub_req r = {.id = "default"};
  bool any = false;
  char err[200] = "";
  char frag[700];
  for (int i = 0; lws_hdr_copy_fragment(wsi, frag, sizeof frag,
                                        WSI_TOKEN_HTTP_URI_ARGS, i) > 0;
       i++) {
    char *eq = strchr(frag, '=');
    const char *val = eq ? eq + 1 : "";
    if (eq)
      *eq = '\0';
    any = true;
    if (!strcmp(frag, "concept_prefix")) {
      snprintf(prefix, sizeof prefix, "%s", val);
      r.concept_prefix = prefix;
    } else if (!strcmp(frag, "predicate")) {
      snprintf(predicate, sizeof predicate, "%s", val);
      r.predicate = predicate;
    } else if (!strcmp(frag, "start_sequence")) {
      char *end = NULL;
      r.start_sequence = strtoull(val, &end, 10);
      if (!*val || *end || val[0] == '-')
        snprintf(err, sizeof err, "start_sequence: not a number");
    } else if (!strcmp(frag, "progress_interval_ms")) {
      char *end = NULL;
      unsigned long v = strtoul(val, &end, 10);
      if (!*val || *end || v > 3600000)
        snprintf(err, sizeof err, "progress_interval_ms: 0..3600000");
      r.progress_ms = (uint32_t)v;
    } else if (!strcmp(frag, "types")) {
      snprintf(types, sizeof types, "%s", val);
      parse_types(types, &r, err, sizeof err);
    } else {
      snprintf(err, sizeof err, "%.40s: unknown query parameter", frag);
    }
    if (err[0])
      break;
  }
  if (err[0])
    stm_gw_ws_send_control(
        c, -1, stm_gw_ws_error_frame("default", "INVALID_ARGUMENT", err),
        STM_GW_WS_CLOSE_BASE + 3);
  else if (any)
    subscribe(c, &r, true);
}
