#include "gateway/routes.h"

#include "common/buf.h"
#include "common/log.h"
#include "gateway/cluster_routes.h"
#include "gateway/metrics.h"
#include "gateway/resources.h"
#include "gateway/status_map.h"
#include "rpc/codec.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_TYPE "application/json"
#define PROM_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define FIELD_MAX 96

/* ---- build: HTTP request -> gRPC request --------------------------------- */

static int build_status(const struct stm_gw_request *rq, ProtobufCMessage **out,
                        struct stm_error *err) {
  Stemedb__V1__StatusRequest *m = malloc(sizeof *m);
  if (m == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  stemedb__v1__status_request__init(m);
  *out = &m->base;
  return 0;
}

static int build_metrics(const struct stm_gw_request *rq,
                         ProtobufCMessage **out, struct stm_error *err) {
  Stemedb__V1__MetricsRequest *m = malloc(sizeof *m);
  if (m == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  stemedb__v1__metrics_request__init(m);
  *out = &m->base;
  return 0;
}

/* ---- render: gRPC reply -> JSON ------------------------------------------ */

static json_t *render_status(const ProtobufCMessage *msg, int *status) {
  return stm_json_render_status_response(
      (const Stemedb__V1__StatusResponse *)msg);
}

/* ---- responses ----------------------------------------------------------- */

void stm_gw_response_destroy(struct stm_gw_response *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
}

static const char oom_body[] =
    "{\"error\":{\"code\":\"RESOURCE_EXHAUSTED\",\"message\":\"the gateway "
    "is out of memory\"}}";

/* Takes the reference to j. */
static void respond_json(struct stm_gw_response *out, int status, json_t *j) {
  stm_gw_response_destroy(out);
  out->status = status;
  out->content_type = JSON_TYPE;
  out->body = j ? stm_json_dump(j, &out->len) : NULL;
  json_decref(j);
  if (out->body == NULL) {
    out->status = 500;
    out->body = strdup(oom_body);
    out->len = out->body ? strlen(out->body) : 0;
  }
}

void stm_gw_respond_error(struct stm_gw_response *out, int status,
                          const char *code, const char *message,
                          const char *field) {
  respond_json(out, status, stm_json_render_error(code, message, field));
}

/*
 * Transport-level failures say which hop failed ("stemedb-server: ...")
 * but never where it is: gRPC's own texts name the internal address
 * ("ipv4:10.0.0.5:18182: Connection refused"), which clients must not
 * learn (issue 10); the gateway logs the full text instead. The server's
 * own messages pass through unchanged so that INVALID_ARGUMENT texts still
 * begin with the field name.
 */
static bool names_an_address(const char *detail, const char *server) {
  return strstr(detail, "ipv4:") || strstr(detail, "ipv6:") ||
         strstr(detail, "unix:") ||
         (server && *server && strstr(detail, server));
}

static const char *generic_failure(grpc_status_code code) {
  switch (code) {
  case GRPC_STATUS_UNAVAILABLE:
    return "cannot reach stemedb-server";
  case GRPC_STATUS_DEADLINE_EXCEEDED:
    return "stemedb-server did not answer in time";
  case GRPC_STATUS_CANCELLED:
    return "the call to stemedb-server was cancelled";
  default:
    return "the call to stemedb-server failed";
  }
}

static void describe_failure(const struct stm_gw_reply *rep,
                             const struct stm_gw_env *env, char *buf,
                             size_t len) {
  const char *detail = rep->message && *rep->message
                           ? rep->message
                           : stm_rpc_code_name(rep->code);
  switch (rep->code) {
  case GRPC_STATUS_UNAVAILABLE:
  case GRPC_STATUS_DEADLINE_EXCEEDED:
  case GRPC_STATUS_CANCELLED:
  case GRPC_STATUS_UNKNOWN:
  case GRPC_STATUS_INTERNAL:
    if (names_an_address(detail, env->server)) {
      stm_log_warn("stemedb-server at %s: %s: %s", env->server,
                   stm_rpc_code_name(rep->code), detail);
      snprintf(buf, len, "%s", generic_failure(rep->code));
    } else {
      snprintf(buf, len, "stemedb-server: %s", detail);
    }
    break;
  default:
    snprintf(buf, len, "%s", detail);
  }
}

static void respond_failure(const struct stm_gw_route *route,
                            const struct stm_gw_reply *rep,
                            const struct stm_gw_env *env,
                            struct stm_gw_response *out) {
  char message[700], field[FIELD_MAX];
  describe_failure(rep, env, message, sizeof message);
  bool has_field =
      (rep->code == GRPC_STATUS_INVALID_ARGUMENT ||
       rep->code == GRPC_STATUS_OUT_OF_RANGE) &&
      stm_gw_field_from_message(route->request, message, field, sizeof field);
  stm_gw_respond_error(out, stm_gw_http_status(rep->code),
                       stm_rpc_code_name(rep->code), message,
                       has_field ? field : NULL);
}

void stm_gw_respond(const struct stm_gw_route *route,
                    const struct stm_gw_reply *rep,
                    const struct stm_gw_env *env, struct stm_gw_response *out) {
  /* A refused key is the caller's answer on every route, even those
   * that answer for themselves when the server is down (/v1/health and
   * /metrics, when --auth-open closes them). */
  bool refused = rep->code == GRPC_STATUS_UNAUTHENTICATED ||
                 rep->code == GRPC_STATUS_PERMISSION_DENIED;
  if (route->respond && !refused) {
    route->respond(route, rep, env, out);
  } else if (rep->code != GRPC_STATUS_OK) {
    respond_failure(route, rep, env, out);
  } else if (rep->msg == NULL) {
    stm_gw_respond_error(out, 500, "INTERNAL",
                         "the reply of stemedb-server did not decode", NULL);
  } else {
    int status = 200;
    json_t *j = route->render(rep->msg, &status);
    respond_json(out, status, j);
  }
}

/* GET /v1/health: 200 only when the server answers and accepts writes, so
 * load balancers take a read-only node out of rotation. */
static void respond_health(const struct stm_gw_route *route,
                           const struct stm_gw_reply *rep,
                           const struct stm_gw_env *env,
                           struct stm_gw_response *out) {
  json_t *j = json_object();
  const Stemedb__V1__StatusResponse *st =
      rep->code == GRPC_STATUS_OK ? (const void *)rep->msg : NULL;
  bool healthy = st && strcmp(st->status, "healthy") == 0 && st->writable;
  json_object_set_new(j, "status",
                      json_string(healthy ? "healthy" : "unhealthy"));
  if (st) {
    json_t *full = stm_json_render_status_response(st);
    json_object_set(j, "assertion_count",
                    json_object_get(full, "assertion_count"));
    json_object_set(j, "last_sequence", json_object_get(full, "last_sequence"));
    json_object_set(j, "node_id", json_object_get(full, "node_id"));
    json_object_set(j, "version", json_object_get(full, "version"));
    if (!healthy) {
      json_object_set(j, "server_status", json_object_get(full, "status"));
      json_object_set(j, "writable", json_object_get(full, "writable"));
    }
    json_decref(full);
  }
  if (!healthy) {
    char message[700];
    if (st)
      snprintf(message, sizeof message,
               "stemedb-server reports status \"%s\" and %s writes", st->status,
               st->writable ? "accepts" : "refuses");
    else
      describe_failure(rep, env, message, sizeof message);
    json_t *e = stm_json_render_error(
        st ? "UNAVAILABLE" : stm_rpc_code_name(rep->code), message, NULL);
    json_object_set(j, "error", json_object_get(e, "error"));
    json_decref(e);
  }
  respond_json(out, healthy ? 200 : 503, j);
}

/* GET /metrics: the gateway's metrics, then the server's own text. The
 * scrape still succeeds when the server is down (upstream_up 0). */
static void respond_metrics(const struct stm_gw_route *route,
                            const struct stm_gw_reply *rep,
                            const struct stm_gw_env *env,
                            struct stm_gw_response *out) {
  const Stemedb__V1__MetricsResponse *m =
      rep->code == GRPC_STATUS_OK ? (const void *)rep->msg : NULL;
  struct stm_buf b;
  stm_buf_init(&b);
  int rc = stm_gw_metrics_render(env->metrics, m != NULL, &b);
  if (rc == 0 && m) {
    size_t n = strlen(m->text);
    rc = stm_buf_append(&b, m->text, n);
    if (rc == 0 && n && m->text[n - 1] != '\n')
      rc = stm_buf_append(&b, "\n", 1);
  }
  if (rc == 0)
    rc = stm_buf_append(&b, "", 1); /* NUL-terminate */
  if (rc) {
    stm_buf_destroy(&b);
    stm_gw_respond_error(out, 500, "RESOURCE_EXHAUSTED",
                         "the gateway is out of memory", NULL);
    return;
  }
  stm_gw_response_destroy(out);
  out->status = 200;
  out->content_type = PROM_TYPE;
  out->body = (char *)b.data;
  out->len = b.len - 1;
}

/* ---- the table ----------------------------------------------------------- */

#define RPC(name) "/stemedb.v1.StemeDB/" name
#define MSG(name) &stemedb__v1__##name##__descriptor

static const struct stm_gw_route routes[] = {
    {STM_GW_LISTENER_API, STM_GW_GET, "/v1/health", RPC("Status"),
     MSG(status_request), MSG(status_response), false, build_status, NULL,
     respond_health},
    {STM_GW_LISTENER_API, STM_GW_GET, "/v1/status", RPC("Status"),
     MSG(status_request), MSG(status_response), false, build_status,
     render_status, NULL},
    {STM_GW_LISTENER_API, STM_GW_POST, "/v1/assert", RPC("Assert"),
     MSG(assert_request), MSG(assert_response), true, stm_gw_build_assert,
     stm_gw_render_assert, NULL},
    {STM_GW_LISTENER_API, STM_GW_POST, "/v1/assert/batch", RPC("AssertBatch"),
     MSG(assert_batch_request), MSG(assert_batch_response), true,
     stm_gw_build_assert_batch, stm_gw_render_assert_batch, NULL},
    {STM_GW_LISTENER_API, STM_GW_GET, "/v1/assertions/{hash}", RPC("Get"),
     MSG(get_request), MSG(assertion), false, stm_gw_build_get,
     stm_gw_render_assertion, NULL},
    {STM_GW_LISTENER_API, STM_GW_POST, "/v1/query", RPC("Query"),
     MSG(query_request), MSG(query_response), true, stm_gw_build_query,
     stm_gw_render_query, NULL},
    /* Issue 4: json_records.h. */
    {STM_GW_LISTENER_API, STM_GW_POST, "/v1/votes", RPC("Vote"),
     MSG(vote_request), MSG(vote_response), true, stm_gw_build_vote,
     stm_gw_render_vote, NULL},
    {STM_GW_LISTENER_API, STM_GW_POST, "/v1/epochs", RPC("StartEpoch"),
     MSG(start_epoch_request), MSG(start_epoch_response), true,
     stm_gw_build_start_epoch, stm_gw_render_start_epoch, NULL},
    {STM_GW_LISTENER_API, STM_GW_PUT, "/v1/sources/{id}", RPC("PutSource"),
     MSG(put_source_request), MSG(put_source_response), true,
     stm_gw_build_put_source, stm_gw_render_put_source, NULL},
    {STM_GW_LISTENER_API, STM_GW_GET, "/v1/sources/{id}", RPC("GetSource"),
     MSG(get_source_request), MSG(source), false, stm_gw_build_get_source,
     stm_gw_render_source, NULL},
    /* Ids with '/' ("fda://x"): ?id= or the body's "id". */
    {STM_GW_LISTENER_API, STM_GW_PUT, "/v1/sources", RPC("PutSource"),
     MSG(put_source_request), MSG(put_source_response), true,
     stm_gw_build_put_source, stm_gw_render_put_source, NULL},
    {STM_GW_LISTENER_API, STM_GW_GET, "/v1/source", RPC("GetSource"),
     MSG(get_source_request), MSG(source), false, stm_gw_build_get_source,
     stm_gw_render_source, NULL},
    {STM_GW_LISTENER_API, STM_GW_GET, "/v1/sources", RPC("ListSources"),
     MSG(list_sources_request), MSG(list_sources_response), false,
     stm_gw_build_list_sources, stm_gw_render_list_sources, NULL},
    {STM_GW_LISTENER_API, STM_GW_GET, "/v1/trace/{hash}", RPC("Trace"),
     MSG(trace_request), MSG(trace_response), false, stm_gw_build_trace,
     stm_gw_render_trace, NULL},
    {STM_GW_LISTENER_API, STM_GW_GET, "/v1/audit", RPC("Audit"),
     MSG(audit_request), MSG(audit_response), false, stm_gw_build_audit,
     stm_gw_render_audit, NULL},
    {STM_GW_LISTENER_API, STM_GW_GET, "/v1/concepts", RPC("ListConcepts"),
     MSG(list_concepts_request), MSG(list_concepts_response), false,
     stm_gw_build_list_concepts, stm_gw_render_list_concepts, NULL},
    {STM_GW_LISTENER_API, STM_GW_GET, "/v1/skeptic", RPC("Query"),
     MSG(query_request), MSG(query_response), false, stm_gw_build_skeptic,
     stm_gw_render_query, NULL},
    {STM_GW_LISTENER_API, STM_GW_GET, "/metrics", RPC("Metrics"),
     MSG(metrics_request), MSG(metrics_response), false, build_metrics, NULL,
     respond_metrics},
/* Port 18181: the cluster gateway (cluster_routes.h). */
#define CLU(name) "/stemedb.v1.Cluster/" name
#define CLUSTER_ROUTE(m, pattern, rpc, req, rep, body, fn)                     \
  {                                                                            \
    STM_GW_LISTENER_CLUSTER, m, pattern, CLU(rpc), MSG(req), MSG(rep), body,   \
        stm_gw_build_cluster_##fn, stm_gw_render_cluster_##fn, NULL            \
  }
    CLUSTER_ROUTE(STM_GW_GET, "/cluster/members", "Members", members_request,
                  members_response, false, members),
    CLUSTER_ROUTE(STM_GW_GET, "/cluster/health", "Health",
                  cluster_health_request, cluster_health_response, false,
                  health),
    CLUSTER_ROUTE(STM_GW_POST, "/cluster/sync", "Sync", sync_request,
                  sync_response, true, sync),
    CLUSTER_ROUTE(STM_GW_GET, "/cluster/shards", "Shards", shards_request,
                  shards_response, false, shards),
    CLUSTER_ROUTE(STM_GW_POST, "/admin/shards/rebalance", "RebalanceShard",
                  rebalance_shard_request, rebalance_shard_response, true,
                  rebalance),
    CLUSTER_ROUTE(STM_GW_POST, "/admin/cluster/remove", "RemoveNode",
                  remove_node_request, remove_node_response, true, remove),
};

#define N_ROUTES (sizeof routes / sizeof routes[0])

const struct stm_gw_route *stm_gw_routes(size_t *n) {
  *n = N_ROUTES;
  return routes;
}

/* ---- matching ------------------------------------------------------------ */

/* Literal characters must match; "{name}" matches one non-empty segment. */
static bool match_pattern(const char *pat, const char *s, const char *end,
                          const char **param, size_t *param_len) {
  while (*pat && s < end) {
    if (*pat == '{') {
      const char *close = strchr(pat, '}');
      const char *seg_end = memchr(s, '/', (size_t)(end - s));
      if (seg_end == NULL)
        seg_end = end;
      if (close == NULL || seg_end == s)
        return false;
      *param = s;
      *param_len = (size_t)(seg_end - s);
      pat = close + 1;
      s = seg_end;
    } else if (*pat++ != *s++) {
      return false;
    }
  }
  return *pat == '\0' && s == end;
}

const struct stm_gw_route *
stm_gw_route_match(enum stm_gw_listener listener, enum stm_gw_method method,
                   const char *path, const char **param, size_t *param_len,
                   unsigned *allowed) {
  size_t len = strlen(path);
  if (len > 1 && path[len - 1] == '/')
    len--;
  *allowed = 0;
  const struct stm_gw_route *found = NULL;
  for (size_t i = 0; i < N_ROUTES; i++) {
    const char *p = "";
    size_t plen = 0;
    if (routes[i].listener != listener ||
        !match_pattern(routes[i].pattern, path, path + len, &p, &plen))
      continue;
    *allowed |= routes[i].method;
    if (routes[i].method == method && found == NULL) {
      found = &routes[i];
      *param = p;
      *param_len = plen;
    }
  }
  return found;
}

static const struct {
  enum stm_gw_method bit;
  const char *name;
} method_names[] = {
    {STM_GW_GET, "GET"},         {STM_GW_POST, "POST"},
    {STM_GW_PUT, "PUT"},         {STM_GW_PATCH, "PATCH"},
    {STM_GW_DELETE, "DELETE"},   {STM_GW_HEAD, "HEAD"},
    {STM_GW_OPTIONS, "OPTIONS"},
};

#define N_METHODS (sizeof method_names / sizeof method_names[0])

const char *stm_gw_method_name(enum stm_gw_method m) {
  for (size_t i = 0; i < N_METHODS; i++)
    if (method_names[i].bit == m)
      return method_names[i].name;
  return "OTHER";
}

enum stm_gw_method stm_gw_method_parse(const char *name) {
  for (size_t i = 0; i < N_METHODS; i++)
    if (strcmp(method_names[i].name, name) == 0)
      return method_names[i].bit;
  return STM_GW_OTHER;
}

void stm_gw_allow_header(unsigned methods, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < N_METHODS; i++) {
    if (!(methods & method_names[i].bit))
      continue;
    int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
                     method_names[i].name);
    if (n < 0 || (size_t)n >= len - used)
      break;
    used += (size_t)n;
  }
}

/* ---- helpers ------------------------------------------------------------- */

static bool is_field_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '[' || c == ']';
}

/* Walk "a[1].b" through the descriptors: every name must be a field, an
 * index only on a repeated field, and only message fields have children. */
static bool is_field_path(const ProtobufCMessageDescriptor *d, char *path) {
  for (char *comp = path; comp && d;) {
    char *dot = strchr(comp, '.');
    if (dot)
      *dot = '\0';
    char *br = strchr(comp, '[');
    if (br) {
      size_t digits = strspn(br + 1, "0123456789");
      if (digits == 0 || br[1 + digits] != ']' || br[2 + digits] != '\0')
        return false;
      *br = '\0';
    }
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(d, comp);
    if (f == NULL || (br && f->label != PROTOBUF_C_LABEL_REPEATED))
      return false;
    if (dot == NULL)
      return true;
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
      return false;
    d = f->descriptor;
    comp = dot + 1;
  }
  return false;
}

bool stm_gw_field_from_message(const ProtobufCMessageDescriptor *request,
                               const char *message, char *field, size_t len) {
  size_t n = 0;
  while (is_field_char(message[n]))
    n++;
  if (request == NULL || n == 0 || n >= len ||
      (message[n] != ' ' && message[n] != ':' && message[n] != '\0'))
    return false;
  char path[FIELD_MAX];
  if (n >= sizeof path)
    return false;
  memcpy(path, message, n);
  path[n] = '\0';
  if (!is_field_path(request, path))
    return false;
  memcpy(field, message, n);
  field[n] = '\0';
  return true;
}
