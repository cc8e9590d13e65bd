/*
 * stemedb.v1.Cluster administration: Members, Health, Shards,
 * RebalanceShard, RemoveNode (the data-path RPCs, Replicate, MerkleSummary,
 * FetchMissing and Sync, live with replication). Answers come from the
 * cluster runtime (cluster_node.h); a single node answers as a one-member
 * cluster.
 */
#include "cluster_node.h"
#include "service.h"
#include "service_internal.h"

#include "stemedb/v1/cluster.pb-c.h"

#include <stdlib.h>
#include <string.h>

void stm__handle_cluster_members(struct stm_grpc_call *call,
                                 const ProtobufCMessage *req, void *ctx) {
  struct stm_cluster_member *m = NULL;
  size_t n = stm_cluster_members_snapshot(&m);
  Stemedb__V1__Member *items = calloc(n ? n : 1, sizeof *items);
  Stemedb__V1__Member **ptrs = calloc(n ? n : 1, sizeof *ptrs);
  if (items == NULL || ptrs == NULL || (n == 0 && m == NULL)) {
    free(items);
    free(ptrs);
    free(m);
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++) {
    Stemedb__V1__Member *o = &items[i];
    stemedb__v1__member__init(o);
    o->id = m[i].id;
    o->status = (char *)stm_swim_state_name(m[i].state);
    o->rpc_addr = m[i].rpc_addr;
    o->swim_addr = m[i].swim_addr;
    o->bind_addr = m[i].bind_addr;
    o->incarnation = m[i].incarnation;
    o->assertion_count = m[i].assertion_count;
    o->last_seen_ns = m[i].last_seen_ns;
    o->replication_lag_seconds = m[i].lag_seconds;
    ptrs[i] = o;
  }
  Stemedb__V1__MembersResponse resp = STEMEDB__V1__MEMBERS_RESPONSE__INIT;
  resp.n_members = n;
  resp.members = ptrs;
  stm_grpc_call_reply(call, &resp.base);
  free(items);
  free(ptrs);
  free(m);
}

void stm__handle_cluster_health(struct stm_grpc_call *call,
                                const ProtobufCMessage *req, void *ctx) {
  struct stm_cluster_health h;
  stm_cluster_health(&h);
  Stemedb__V1__ClusterHealthResponse resp =
      STEMEDB__V1__CLUSTER_HEALTH_RESPONSE__INIT;
  resp.status = (char *)h.status;
  resp.quorum = h.quorum;
  resp.members_up = h.up;
  resp.members_total = h.total;
  stm_grpc_call_reply(call, &resp.base);
}

/* One Shard message; `names` holds the id string (STM_SHARD_NAME_MAX). */
static void shard_msg(const struct stm_cluster_shard_info *s,
                      Stemedb__V1__Shard *o, char *name, char **replicas) {
  stemedb__v1__shard__init(o);
  stm_placement_shard_name(s->shard, name, STM_SHARD_NAME_MAX);
  o->id = name;
  for (size_t i = 0; i < s->replica_count; i++)
    replicas[i] = (char *)s->replicas[i];
  o->n_replicas = s->replica_count;
  o->replicas = replicas;
  o->rebalance_status = (char *)s->rebalance_status;
  o->assertion_count = s->assertion_count;
  o->progress = strcmp(s->rebalance_status, "done") == 0 ||
                        strcmp(s->rebalance_status, "stable") == 0
                    ? 1.0
                    : 0.0;
}

struct shard_slot {
  Stemedb__V1__Shard msg;
  char name[STM_SHARD_NAME_MAX];
  char *replicas[STM_PLACEMENT_MAX_REPLICAS];
};

void stm__handle_cluster_shards(struct stm_grpc_call *call,
                                const ProtobufCMessage *req, void *ctx) {
  struct stm_cluster_shard_info *info = NULL;
  struct stm_buf text;
  stm_buf_init(&text);
  uint64_t version = 0;
  size_t n = stm_cluster_shards(&info, &version, &text);
  struct shard_slot *slots = calloc(n ? n : 1, sizeof *slots);
  Stemedb__V1__Shard **ptrs = calloc(n ? n : 1, sizeof *ptrs);
  if (info == NULL || slots == NULL || ptrs == NULL ||
      stm_buf_put_u8(&text, 0) != 0) {
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  } else {
    for (size_t i = 0; i < n; i++) {
      shard_msg(&info[i], &slots[i].msg, slots[i].name, slots[i].replicas);
      ptrs[i] = &slots[i].msg;
    }
    Stemedb__V1__ShardsResponse resp = STEMEDB__V1__SHARDS_RESPONSE__INIT;
    resp.n_shards = n;
    resp.shards = ptrs;
    resp.map_version = version;
    resp.shard_map = (char *)text.data;
    stm_grpc_call_reply(call, &resp.base);
  }
  stm_buf_destroy(&text);
  free(slots);
  free(ptrs);
  free(info);
}

void stm__handle_cluster_rebalance(struct stm_grpc_call *call,
                                   const ProtobufCMessage *msg, void *ctx) {
  const Stemedb__V1__RebalanceShardRequest *req = (const void *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_cluster_shard_info info;
  memset(&info, 0, sizeof info);
  int rc = req->shard_id[0] == '\0'
               ? stm_error_set(&err, STM_EINVAL, "shard_id",
                               "shard_id must name a shard (\"shard-17\")")
               : stm_cluster_rebalance(req->shard_id, req->target_node,
                                       req->reason, &info, &err);
  if (rc) {
    stm__fail_rc(call, rc, &err);
    return;
  }
  struct shard_slot slot;
  shard_msg(&info, &slot.msg, slot.name, slot.replicas);
  Stemedb__V1__RebalanceShardResponse resp =
      STEMEDB__V1__REBALANCE_SHARD_RESPONSE__INIT;
  resp.shard = &slot.msg;
  stm_grpc_call_reply(call, &resp.base);
}

void stm__handle_cluster_remove(struct stm_grpc_call *call,
                                const ProtobufCMessage *msg, void *ctx) {
  const Stemedb__V1__RemoveNodeRequest *req = (const void *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  const char *status = "";
  int rc = req->node_id[0] == '\0'
               ? stm_error_set(&err, STM_EINVAL, "node_id",
                               "node_id must name a member")
               : stm_cluster_remove(req->node_id, req->force, &status, &err);
  if (rc) {
    stm__fail_rc(call, rc, &err);
    return;
  }
  Stemedb__V1__RemoveNodeResponse resp =
      STEMEDB__V1__REMOVE_NODE_RESPONSE__INIT;
  resp.status = (char *)status;
  stm_grpc_call_reply(call, &resp.base);
}
