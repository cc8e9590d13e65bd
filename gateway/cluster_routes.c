/* The cluster gateway's routes (cluster_routes.h). */
#include "gateway/cluster_routes.h"

#include "gateway/request.h"
#include "json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EMPTY_BUILDER(fn, T, init)                                             \
  int fn(const struct stm_gw_request *rq, ProtobufCMessage **out,              \
         struct stm_error *err) {                                              \
    (void)rq;                                                                  \
    STM_GW_NEW_MSG(T, init, m, err);                                           \
    *out = &m->base;                                                           \
    return 0;                                                                  \
  }

EMPTY_BUILDER(stm_gw_build_cluster_members, Stemedb__V1__MembersRequest,
              stemedb__v1__members_request__init)
EMPTY_BUILDER(stm_gw_build_cluster_health, Stemedb__V1__ClusterHealthRequest,
              stemedb__v1__cluster_health_request__init)
EMPTY_BUILDER(stm_gw_build_cluster_shards, Stemedb__V1__ShardsRequest,
              stemedb__v1__shards_request__init)

static int body_bool(const json_t *obj, const char *key,
                     protobuf_c_boolean *out, struct stm_error *err) {
  const json_t *v = stm_gw_body_member(obj, key);
  if (v == NULL)
    return 0;
  if (!json_is_boolean(v))
    return stm_error_set(err, STM_EINVAL, key, "%s must be true or false", key);
  *out = json_is_true(v);
  return 0;
}

/* {"target_nodes":["node2",...],"force":true}; both optional (all peers). */
static int parse_sync(const json_t *body, Stemedb__V1__SyncRequest *m,
                      struct stm_error *err) {
  const json_t *t = stm_gw_body_member(body, "target_nodes");
  if (t && !json_is_array(t))
    return stm_error_set(err, STM_EINVAL, "target_nodes",
                         "target_nodes must be an array of node ids");
  size_t n = t ? json_array_size(t) : 0;
  if (n > 1024)
    return stm_error_set(err, STM_EINVAL, "target_nodes",
                         "target_nodes has more than 1024 entries");
  if (n && (m->target_nodes = calloc(n, sizeof *m->target_nodes)) == NULL)
    return stm_gw_error_oom(err);
  for (size_t i = 0; i < n; i++) {
    const json_t *v = json_array_get(t, i);
    char field[40];
    snprintf(field, sizeof field, "target_nodes[%zu]", i);
    if (!json_is_string(v) ||
        memchr(json_string_value(v), 0, json_string_length(v)))
      return stm_error_set(err, STM_EINVAL, field, "%s must be a node id",
                           field);
    if ((m->target_nodes[i] = strdup(json_string_value(v))) == NULL)
      return stm_gw_error_oom(err);
    m->n_target_nodes = i + 1;
  }
  return body_bool(body, "force", &m->force, err);
}

int stm_gw_build_cluster_sync(const struct stm_gw_request *rq,
                              ProtobufCMessage **out, struct stm_error *err) {
  STM_GW_NEW_MSG(Stemedb__V1__SyncRequest, stemedb__v1__sync_request__init, m,
                 err);
  return stm_gw_message_finish(&m->base, parse_sync(rq->body, m, err), out);
}

int stm_gw_build_cluster_rebalance(const struct stm_gw_request *rq,
                                   ProtobufCMessage **out,
                                   struct stm_error *err) {
  STM_GW_NEW_MSG(Stemedb__V1__RebalanceShardRequest,
                 stemedb__v1__rebalance_shard_request__init, m, err);
  int rc = stm_gw_body_string(rq->body, "shard_id", "shard_id", true,
                              &m->shard_id, err);
  if (rc == 0)
    rc = stm_gw_body_string(rq->body, "target_node", "target_node", true,
                            &m->target_node, err);
  if (rc == 0)
    rc = stm_gw_body_string(rq->body, "reason", "reason", false, &m->reason,
                            err);
  return stm_gw_message_finish(&m->base, rc, out);
}

int stm_gw_build_cluster_remove(const struct stm_gw_request *rq,
                                ProtobufCMessage **out, struct stm_error *err) {
  STM_GW_NEW_MSG(Stemedb__V1__RemoveNodeRequest,
                 stemedb__v1__remove_node_request__init, m, err);
  int rc = stm_gw_body_string(rq->body, "node_id", "node_id", true, &m->node_id,
                              err);
  if (rc == 0)
    rc = body_bool(rq->body, "force", &m->force, err);
  return stm_gw_message_finish(&m->base, rc, out);
}

/* ---- renderers ---------------------------------------------------------- */

void stm_gw_rfc3339(int64_t ns, char *buf, size_t len) {
  buf[0] = '\0';
  if (ns <= 0)
    return;
  time_t s = (time_t)(ns / 1000000000);
  struct tm tm;
  if (gmtime_r(&s, &tm))
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *member_json(const Stemedb__V1__Member *m) {
  char seen[40];
  stm_gw_rfc3339(m->last_seen_ns, seen, sizeof seen);
  json_t *o = json_object();
  stm_json_put(o, "id", stm_json_str(m->id));
  stm_json_put(o, "status", stm_json_str(m->status));
  stm_json_put(o, "assertion_count", stm_json_uint(m->assertion_count));
  stm_json_put(o, "last_seen", seen[0] ? stm_json_str(seen) : json_null());
  stm_json_put(o, "rpc_addr", stm_json_str(m->rpc_addr));
  stm_json_put(o, "swim_addr", stm_json_str(m->swim_addr));
  stm_json_put(o, "bind_addr", stm_json_str(m->bind_addr));
  stm_json_put(o, "incarnation", stm_json_uint(m->incarnation));
  stm_json_put(o, "replication_lag_seconds",
               json_real(m->replication_lag_seconds));
  return o;
}

json_t *stm_gw_render_cluster_members(const ProtobufCMessage *msg,
                                      int *status) {
  const Stemedb__V1__MembersResponse *r = (const void *)msg;
  json_t *a = json_array();
  for (size_t i = 0; i < r->n_members; i++)
    json_array_append_new(a, member_json(r->members[i]));
  json_t *o = json_object();
  stm_json_put(o, "members", a);
  return o;
}

json_t *stm_gw_render_cluster_health(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__ClusterHealthResponse *r = (const void *)msg;
  json_t *o = json_object();
  stm_json_put(o, "status", stm_json_str(r->status));
  stm_json_put(o, "quorum", json_boolean(r->quorum));
  stm_json_put(o, "members_up", stm_json_uint(r->members_up));
  stm_json_put(o, "members_total", stm_json_uint(r->members_total));
  return o;
}

static json_t *strings_json(char **s, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, stm_json_str(s[i]));
  return a;
}

json_t *stm_gw_render_cluster_sync(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__SyncResponse *r = (const void *)msg;
  json_t *o = json_object();
  stm_json_put(o, "started", strings_json(r->started, r->n_started));
  stm_json_put(o, "records_sent", stm_json_uint(r->records_sent));
  stm_json_put(o, "records_received", stm_json_uint(r->records_received));
  *status = 202;
  return o;
}

static json_t *shard_json(const Stemedb__V1__Shard *s) {
  json_t *o = json_object();
  stm_json_put(o, "id", stm_json_str(s->id));
  stm_json_put(o, "replicas", strings_json(s->replicas, s->n_replicas));
  stm_json_put(o, "assertion_count", stm_json_uint(s->assertion_count));
  stm_json_put(o, "rebalance_status", stm_json_str(s->rebalance_status));
  return o;
}

json_t *stm_gw_render_cluster_shards(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__ShardsResponse *r = (const void *)msg;
  json_t *a = json_array();
  for (size_t i = 0; i < r->n_shards; i++)
    json_array_append_new(a, shard_json(r->shards[i]));
  json_t *o = json_object();
  stm_json_put(o, "shards", a);
  stm_json_put(o, "map_version", stm_json_uint(r->map_version));
  return o;
}

json_t *stm_gw_render_cluster_rebalance(const ProtobufCMessage *msg,
                                        int *status) {
  const Stemedb__V1__RebalanceShardResponse *r = (const void *)msg;
  json_t *o = json_object();
  stm_json_put(o, "shard", r->shard ? shard_json(r->shard) : json_null());
  *status = 202;
  return o;
}

json_t *stm_gw_render_cluster_remove(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__RemoveNodeResponse *r = (const void *)msg;
  json_t *o = json_object();
  stm_json_put(o, "status", stm_json_str(r->status));
  *status = 202;
  return o;
}
