/* The method table of every service on the gRPC port: stemedb.v1.StemeDB,
 * stemedb.v1.Cluster (handlers to come), stemedb.v1.Admin and
 * grpc.health.v1.Health. A new RPC is one line here plus its handler in
 * the file of its family (service_internal.h lists them). */
#include "auth.h"
#include "replication.h"
#include "service.h"
#include "service_internal.h"

#include "grpc/health/v1/health.pb-c.h"
#include "stemedb/v1/admin.pb-c.h"
#include "stemedb/v1/cluster.pb-c.h"
#include "stemedb/v1/stemedb.pb-c.h"

#define SVC "/stemedb.v1.StemeDB/"
#define CLU "/stemedb.v1.Cluster/"
#define M(path, type, fn)                                                      \
  { path, &type##__descriptor, fn }

static const struct stm_grpc_method methods[] = {
    M(SVC "Assert", stemedb__v1__assert_request, stm__handle_assert),
    M(SVC "AssertBatch", stemedb__v1__assert_batch_request,
      stm__handle_assert_batch),
    M(SVC "Get", stemedb__v1__get_request, stm__handle_get),
    M(SVC "Query", stemedb__v1__query_request, stm__handle_query),
    M(SVC "Trace", stemedb__v1__trace_request, stm__handle_trace),
    M(SVC "Vote", stemedb__v1__vote_request, stm__handle_vote),
    M(SVC "StartEpoch", stemedb__v1__start_epoch_request,
      stm__handle_start_epoch),
    M(SVC "PutSource", stemedb__v1__put_source_request, stm__handle_put_source),
    M(SVC "GetSource", stemedb__v1__get_source_request, stm__handle_get_source),
    M(SVC "ListSources", stemedb__v1__list_sources_request,
      stm__handle_list_sources),
    M(SVC "ListConcepts", stemedb__v1__list_concepts_request,
      stm__handle_list_concepts),
    M(SVC "Audit", stemedb__v1__audit_request, stm__handle_audit),
    M(SVC "Status", stemedb__v1__status_request, stm__handle_status),
    M(SVC "Metrics", stemedb__v1__metrics_request, stm__handle_metrics),
    M(SVC "Watch", stemedb__v1__watch_request, stm__handle_watch),
    M(CLU "Replicate", stemedb__v1__replicate_request, stm__handle_replicate),
    M(CLU "MerkleSummary", stemedb__v1__merkle_summary_request,
      stm__handle_merkle_summary),
    M(CLU "FetchMissing", stemedb__v1__fetch_missing_request,
      stm__handle_fetch_missing),
    M(CLU "Members", stemedb__v1__members_request, stm__handle_cluster_members),
    M(CLU "Health", stemedb__v1__cluster_health_request,
      stm__handle_cluster_health),
    M(CLU "Sync", stemedb__v1__sync_request, stm__handle_sync),
    M(CLU "Shards", stemedb__v1__shards_request, stm__handle_cluster_shards),
    M(CLU "RebalanceShard", stemedb__v1__rebalance_shard_request,
      stm__handle_cluster_rebalance),
    M(CLU "RemoveNode", stemedb__v1__remove_node_request,
      stm__handle_cluster_remove),
    M("/stemedb.v1.Admin/BackupBegin", stemedb__v1__backup_begin_request,
      stm__handle_backup_begin),
    M("/stemedb.v1.Admin/BackupRead", stemedb__v1__backup_read_request,
      stm__handle_backup_read),
    M("/stemedb.v1.Admin/CreateKey", stemedb__v1__create_key_request,
      stm__handle_create_key),
    M("/stemedb.v1.Admin/ListKeys", stemedb__v1__list_keys_request,
      stm__handle_list_keys),
    M("/stemedb.v1.Admin/RevokeKey", stemedb__v1__revoke_key_request,
      stm__handle_revoke_key),
    M("/grpc.health.v1.Health/Check", grpc__health__v1__health_check_request,
      stm__handle_health_check),
    M("/grpc.health.v1.Health/Watch", grpc__health__v1__health_check_request,
      NULL),
};

const struct stm_grpc_method *stm_service_methods(size_t *count) {
  *count = sizeof methods / sizeof methods[0];
  return methods;
}
