/* Status, Metrics and the standard grpc.health.v1 Check. */
#include "service.h"
#include "service_internal.h"

#include "archiver.h"
#include "cluster_node.h"

#include "common/buf.h"
#include "common/clock.h"
#include "grpc/health/v1/health.pb-c.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "watch_hub.h"

#include <stdlib.h>
#include <string.h>

static const char *status_word(struct stm_service *svc,
                               const struct stm_store_stats *st) {
  if (atomic_load(&svc->shutting_down))
    return "shutting_down";
  return st->writable ? "healthy" : "read_only";
}

void stm__handle_status(struct stm_grpc_call *call, const ProtobufCMessage *req,
                        void *ctx) {
  struct stm_service *svc = ctx;
  struct stm_store_stats st;
  stm_store_get_stats(svc->store, &st);
  Stemedb__V1__StatusResponse resp = STEMEDB__V1__STATUS_RESPONSE__INIT;
  resp.status = (char *)status_word(svc, &st);
  resp.assertion_count = st.assertion_count;
  resp.last_sequence = st.last_sequence;
  resp.version = (char *)STM_VERSION;
  resp.node_id = (char *)svc->node_id;
  resp.uptime_seconds =
      (uint64_t)((stm_clock_mono_ns() - svc->start_mono_ns) / 1000000000);
  resp.writable = st.writable && !atomic_load(&svc->shutting_down);
  stm_grpc_call_reply(call, &resp.base);
}

/* The WAL fdatasync histogram and error counter (store stats). */
static void fsync_metrics(struct stm_buf *b, const struct stm_store_stats *st) {
  const char *name = "stemedb_wal_fsync_seconds";
  stm_buf_printf(b,
                 "# HELP %s fdatasync latency of each WAL group commit.\n"
                 "# TYPE %s histogram\n",
                 name, name);
  uint64_t cum = 0;
  for (size_t i = 0; i < STM_STORE_FSYNC_BUCKETS; i++) {
    cum += st->fsync_le[i];
    stm_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
                   stm_store_fsync_bucket_le[i], (unsigned long long)cum);
  }
  stm_buf_printf(b,
                 "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n"
                 "# HELP stemedb_wal_fsync_errors_total Failed WAL "
                 "pwrite/fdatasync calls (writes are refused after one).\n"
                 "# TYPE stemedb_wal_fsync_errors_total counter\n"
                 "stemedb_wal_fsync_errors_total %llu\n",
                 name, (unsigned long long)st->fsync_count, name,
                 (double)st->fsync_ns_sum / 1e9, name,
                 (unsigned long long)st->fsync_count,
                 (unsigned long long)st->wal_io_errors);
}

static void store_metrics(struct stm_buf *b, struct stm_service *svc) {
  struct stm_store_stats st;
  stm_store_get_stats(svc->store, &st);
  static const char *const fmt =
      "# HELP stemedb_assertions_total Distinct assertions stored.\n"
      "# TYPE stemedb_assertions_total counter\n"
      "stemedb_assertions_total %llu\n"
      "# HELP stemedb_last_sequence Last durable commit sequence.\n"
      "# TYPE stemedb_last_sequence gauge\n"
      "stemedb_last_sequence %llu\n"
      "# HELP stemedb_writable 1 while the node accepts writes, 0 after a "
      "storage failure.\n"
      "# TYPE stemedb_writable gauge\n"
      "stemedb_writable %d\n"
      "# HELP stemedb_wal_group_commits_total WAL appends, each followed by "
      "one fdatasync.\n"
      "# TYPE stemedb_wal_group_commits_total counter\n"
      "stemedb_wal_group_commits_total %llu\n"
      "# HELP stemedb_wal_records_total Records committed to the WAL.\n"
      "# TYPE stemedb_wal_records_total counter\n"
      "stemedb_wal_records_total %llu\n"
      "# HELP stemedb_wal_segments WAL segment files on disk.\n"
      "# TYPE stemedb_wal_segments gauge\n"
      "stemedb_wal_segments %llu\n"
      "# HELP stemedb_wal_bytes Bytes in WAL segment files.\n"
      "# TYPE stemedb_wal_bytes gauge\n"
      "stemedb_wal_bytes %llu\n"
      "# HELP stemedb_uptime_seconds Seconds since the server started.\n"
      "# TYPE stemedb_uptime_seconds gauge\n"
      "stemedb_uptime_seconds %lld\n";
  stm_buf_printf(
      b, fmt, (unsigned long long)st.assertion_count,
      (unsigned long long)st.last_sequence, st.writable ? 1 : 0,
      (unsigned long long)st.group_commits,
      (unsigned long long)st.records_committed,
      (unsigned long long)st.wal_segments, (unsigned long long)st.wal_bytes,
      (long long)((stm_clock_mono_ns() - svc->start_mono_ns) / 1000000000));
  fsync_metrics(b, &st);
}

void stm__handle_metrics(struct stm_grpc_call *call,
                         const ProtobufCMessage *req, void *ctx) {
  struct stm_service *svc = ctx;
  struct stm_buf b;
  stm_buf_init(&b);
  store_metrics(&b, svc);
  struct stm_watch_hub_stats ws = {.subscribers = 0};
  if (svc->watch)
    stm_watch_hub_get_stats(svc->watch, &ws);
  stm_buf_printf(&b,
                 "# HELP stemedb_watch_streams Open Watch streams.\n"
                 "# TYPE stemedb_watch_streams gauge\n"
                 "stemedb_watch_streams %llu\n",
                 (unsigned long long)ws.subscribers);
  stm_archiver_metrics(svc->archiver, &b);
  stm_cluster_metrics_append(&b);
  char *grpc_text = svc->grpc ? stm_grpc_server_metrics(svc->grpc) : NULL;
  if (grpc_text)
    stm_buf_printf(&b, "%s", grpc_text);
  free(grpc_text);
  if (stm_buf_put_u8(&b, 0) != 0) {
    stm_buf_destroy(&b);
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  Stemedb__V1__MetricsResponse resp = STEMEDB__V1__METRICS_RESPONSE__INIT;
  resp.text = (char *)b.data;
  stm_grpc_call_reply(call, &resp.base);
  stm_buf_destroy(&b);
}

void stm__handle_health_check(struct stm_grpc_call *call,
                              const ProtobufCMessage *msg, void *ctx) {
  struct stm_service *svc = ctx;
  const Grpc__Health__V1__HealthCheckRequest *req =
      (const Grpc__Health__V1__HealthCheckRequest *)msg;
  if (req->service[0] && strcmp(req->service, "stemedb.v1.StemeDB") != 0 &&
      strcmp(req->service, "stemedb.v1.Cluster") != 0) {
    stm_grpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "unknown service \"%s\"",
                       req->service);
    return;
  }
  struct stm_store_stats st;
  stm_store_get_stats(svc->store, &st);
  Grpc__Health__V1__HealthCheckResponse resp =
      GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  /* stemedb.v1.Cluster serves only as a member of a running cluster. */
  bool cluster_off =
      strcmp(req->service, "stemedb.v1.Cluster") == 0 && !stm_cluster_enabled();
  resp.status =
      atomic_load(&svc->shutting_down) || !st.writable || cluster_off
          ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
          : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  stm_grpc_call_reply(call, &resp.base);
}
