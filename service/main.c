/*
 * stemedb-server: opens the store, serves every gRPC service, and shuts
 * down cleanly on SIGTERM/SIGINT (stop accepting, finish in-flight calls,
 * flush, exit 0).
 */
#include "archiver.h"
#include "config.h"
#include "service.h"
#include "source_keys.h"
#include "watch_hub.h"

#include "../common/clock.h"
#include "../common/log.h"
#include "../storage/store.h"

#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Route gRPC's own log lines through ours so every line has level and time. */
static void grpc_log(gpr_log_func_args *args) {
  enum stm_log_level level = args->severity == GPR_LOG_SEVERITY_ERROR
                                 ? STM_LOG_ERROR
                             : args->severity == GPR_LOG_SEVERITY_INFO
                                 ? STM_LOG_INFO
                                 : STM_LOG_DEBUG;
  stm_log(level, "grpc: %s", args->message);
}

static int wait_for_signal(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

static int serve(const struct stm_server_config *cfg) {
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_store_options so = {.data_dir = cfg->data_dir,
                                 .segment_bytes =
                                     (uint64_t)cfg->wal_segment_bytes};
  struct stm_store *store = NULL;
  int64_t t0 = stm_clock_mono_ns();
  int rc = stm_store_open(&so, &store, &err);
  if (rc != 0) {
    stm_log_error("cannot open the data directory %s: %s", cfg->data_dir,
                  err.message[0] ? err.message : stm_strerror(rc));
    return 1;
  }
  struct stm_store_stats st;
  stm_store_get_stats(store, &st);
  stm_log_info("store open in %s: %llu assertions, last sequence %llu, "
               "%llu records replayed, %.1f ms",
               cfg->data_dir, (unsigned long long)st.assertion_count,
               (unsigned long long)st.last_sequence,
               (unsigned long long)st.recovered_records,
               (double)(stm_clock_mono_ns() - t0) / 1e6);

  struct stm_watch_hub_options wo = {
      .store = store,
      .history_events = (size_t)cfg->watch_history_events,
      .buffer_events = (size_t)cfg->watch_buffer_events,
      .max_total = (size_t)cfg->watch_max_total,
      .max_per_connection = (size_t)cfg->watch_max_per_connection,
      .max_lag = (size_t)cfg->watch_max_lag_events,
      .retention_events = (uint64_t)cfg->watch_retention_events,
      .memory_only = cfg->watch_memory_only};
  struct stm_watch_hub *hub = NULL;
  rc = stm_watch_hub_new(&wo, &hub, &err);
  if (rc != 0) {
    stm_log_error("cannot start the watch hub: %s", err.message);
    stm_store_delete(store);
    return 1;
  }
  struct stm_archiver *archiver = NULL;
  if (cfg->wal_archive_command && cfg->wal_archive_command[0]) {
    char wal_dir[4096];
    snprintf(wal_dir, sizeof wal_dir, "%s/wal", cfg->data_dir);
    if (stm_archiver_start(wal_dir, cfg->wal_archive_command, &archiver,
                           &err) != 0) {
      stm_log_error("%s", err.message);
      stm_store_delete(store);
      stm_watch_hub_delete(hub);
      return 1;
    }
  }
  struct stm_service svc = {.store = store,
                            .archiver = archiver,
                            .watch = hub,
                            .node_id = cfg->node_id,
                            .data_dir = cfg->data_dir,
                            .start_mono_ns = stm_clock_mono_ns(),
                            .source_keys = stm_source_keys_new(),
                            .trust_half_life_ns =
                                cfg->trust_half_life_s * INT64_C(1000000000)};
  size_t method_count;
  struct stm_grpc_server_options go = {
      .listen = cfg->grpc_listen,
      .methods = stm_service_methods(&method_count),
      .cq_threads = (int)cfg->cq_threads,
      .max_message_bytes = (int)cfg->max_message_bytes,
      .ctx = &svc};
  go.method_count = method_count;
  struct stm_grpc_server *server = NULL;
  int port = 0;
  rc = stm_grpc_server_start(&go, &server, &port, &err);
  if (rc != 0) {
    stm_log_error("%s", err.message);
    stm_archiver_stop(archiver);
    stm_store_delete(store);
    stm_watch_hub_delete(hub);
    stm_source_keys_delete(svc.source_keys);
    return 1;
  }
  svc.grpc = server;
  stm_log_info("stemedb-server %s ready: node %s, gRPC on %s (port %d), "
               "data in %s",
               STM_VERSION, cfg->node_id, cfg->grpc_listen, port,
               cfg->data_dir);

  int sig = wait_for_signal();
  stm_log_info("received %s: shutting down (grace %lld ms)",
               sig == SIGINT ? "SIGINT" : "SIGTERM",
               (long long)cfg->shutdown_grace_ms);
  /* Health turns NOT_SERVING first, so load balancers stop sending new
   * work before the port closes. */
  atomic_store(&svc.shutting_down, true);
  if (cfg->shutdown_delay_ms > 0) {
    struct timespec delay = {.tv_sec = cfg->shutdown_delay_ms / 1000,
                             .tv_nsec = (cfg->shutdown_delay_ms % 1000) *
                                        1000000L};
    nanosleep(&delay, NULL);
  }
  /* Watch streams never end by themselves: end them (UNAVAILABLE, with
   * the sequence to resume from) so the grace period is for unary calls. */
  stm_watch_hub_stop(hub);
  stm_grpc_server_shutdown(server, (int)cfg->shutdown_grace_ms);
  /* Commits still queued complete (and answer their calls) before the
   * completion queues go away. */
  stm_archiver_stop(archiver);
  stm_store_delete(store);
  stm_grpc_server_delete(server);
  stm_watch_hub_delete(hub);
  stm_source_keys_delete(svc.source_keys);
  stm_log_info("shutdown complete");
  return 0;
}

int main(int argc, char **argv) {
  /* Block the signals before any thread exists (gRPC starts its own) so
   * only sigwait in the main thread sees them. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct stm_server_config cfg;
  struct stm_error err;
  stm_error_clear(&err);
  int rc = stm_server_config_load(&cfg, argc, argv, &err);
  if (rc == STM_SERVER_CONFIG_HELP) {
    stm_server_config_destroy(&cfg);
    return 0;
  }
  if (rc != 0) {
    fprintf(stderr, "stemedb-server: %s\n", err.message);
    stm_server_config_destroy(&cfg);
    return 2;
  }
  enum stm_log_level level;
  if (stm_log_parse_level(cfg.log_level, &level) == 0)
    stm_log_set_level(level);
  gpr_set_log_function(grpc_log);
  gpr_set_log_verbosity(level <= STM_LOG_DEBUG ? GPR_LOG_SEVERITY_INFO
                                               : GPR_LOG_SEVERITY_ERROR);
  grpc_init();
  rc = serve(&cfg);
  grpc_shutdown();
  stm_server_config_destroy(&cfg);
  return rc;
}
