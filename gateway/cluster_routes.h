/*
 * cluster_routes.h - the cluster gateway's routes (port 18181, the
 * runbook's "Add Node to Cluster"): builders and renderers for
 * stemedb.v1.Cluster, put in the route table by routes.c.
 *
 *   GET  /cluster/members          Cluster.Members
 *        {"members":[{"id","status","assertion_count","last_seen"
 *                     (RFC 3339 UTC),"rpc_addr","swim_addr","bind_addr"}]}
 *   GET  /cluster/health           Cluster.Health {"status","quorum",...}
 *   POST /cluster/sync             Cluster.Sync {"target_nodes":[..],"force"}
 *   GET  /cluster/shards           Cluster.Shards {"shards":[{"id",
 *                                  "replicas","assertion_count",
 *                                  "rebalance_status"}]}
 *   POST /admin/shards/rebalance   Cluster.RebalanceShard (202)
 *                                  {"shard_id","target_node","reason"}
 *   POST /admin/cluster/remove     Cluster.RemoveNode (202) {"node_id","force"}
 *
 * Pure functions; thread-safe.
 */
#ifndef STM_GW_CLUSTER_ROUTES_H
#define STM_GW_CLUSTER_ROUTES_H

#include "gateway/resources.h"
#include "stemedb/v1/cluster.pb-c.h"

#include <stddef.h>
#include <stdint.h>

stm_gw_build_fn stm_gw_build_cluster_members, stm_gw_build_cluster_health,
    stm_gw_build_cluster_sync, stm_gw_build_cluster_shards,
    stm_gw_build_cluster_rebalance, stm_gw_build_cluster_remove;
stm_gw_render_fn stm_gw_render_cluster_members, stm_gw_render_cluster_health,
    stm_gw_render_cluster_sync, stm_gw_render_cluster_shards,
    stm_gw_render_cluster_rebalance, stm_gw_render_cluster_remove;

/* "2026-02-11T10:15:00Z" for ns since the epoch (0: ""). buf >= 32. */
void stm_gw_rfc3339(int64_t ns, char *buf, size_t len);

#endif
