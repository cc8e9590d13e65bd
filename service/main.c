/*
 * stemedb-server: opens the store, serves every gRPC service, and shuts
 * down cleanly on SIGTERM/SIGINT (stop accepting, finish in-flight calls,
 * flush, exit 0).
 */
#include "archiver.h"
#include "auth.h"
#include "cluster_node.h"
#include "config.h"
#include "listener_probe.h"
#include "quota.h"
#include "ratelimit.h"
#include "replication.h"
#include "request_ids.h"
#include "service.h"
#include "source_keys.h"
#include "tls.h"
#include "watch_hub.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/validate.h"
#include "rpc/codec.h"
#include "storage/store.h"

#include <errno.h>
#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Route gRPC's own log lines through ours so every line has level and time. */
static void grpc_log(gpr_log_func_args *args) {
  enum stm_log_level level =
      args->severity == GPR_LOG_SEVERITY_ERROR  ? STM_LOG_ERROR
      : args->severity == GPR_LOG_SEVERITY_INFO ? STM_LOG_INFO
                                                : STM_LOG_DEBUG;
  stm_log(level, "grpc: %s", args->message);
}

static int wait_for_signal(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  int sig = 0;
  while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
    stm_log_info("received SIGHUP: TLS certificates are read again at the "
                 "next handshake");
    stm_tls_request_reload();
    stm_tls_peer_reload();
  }
  return sig;
}

/* gRPC C core 1.51 stops accepting for good after one EMFILE (see
 * listener_probe.h): use every descriptor the hard limit allows, and say
 * what it is, so an operator can see how much room there is. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    stm_log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    return;
  }
  rlim_t was = rl.rlim_cur;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      stm_log_warn("cannot raise the open-file limit to %llu: %s",
                   (unsigned long long)rl.rlim_max, strerror(errno));
      rl.rlim_cur = was;
    }
  }
  stm_log_info("open-file limit: soft %llu (was %llu), hard %llu",
               (unsigned long long)rl.rlim_cur, (unsigned long long)was,
               (unsigned long long)rl.rlim_max);
}

static struct stm_store *open_store(const struct stm_server_config *cfg) {
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_store_options so = {
      .data_dir = cfg->data_dir,
      .segment_bytes = (uint64_t)cfg->wal_segment_bytes,
      .reserve_bytes = (uint64_t)cfg->disk_reserve_bytes};
  if (cfg->cluster.enabled) { /* the shard index follows placement */
    so.shards = (uint32_t)cfg->cluster.shards;
    so.shard_of = stm_placement_shard_of;
  }
  struct stm_store *store = NULL;
  int64_t t0 = stm_clock_mono_ns();
  int rc = stm_store_open(&so, &store, &err);
  if (rc != 0) {
    stm_log_error("cannot open the data directory %s: %s", cfg->data_dir,
                  err.message[0] ? err.message : stm_strerror(rc));
    return NULL;
  }
  struct stm_store_stats st;
  stm_store_get_stats(store, &st);
  stm_log_info("store open in %s: %llu assertions, last sequence %llu, "
               "%llu records replayed, %.1f ms",
               cfg->data_dir, (unsigned long long)st.assertion_count,
               (unsigned long long)st.last_sequence,
               (unsigned long long)st.recovered_records,
               (double)(stm_clock_mono_ns() - t0) / 1e6);
  return store;
}

static struct stm_watch_hub *start_hub(const struct stm_server_config *cfg,
                                       struct stm_store *store) {
  struct stm_watch_hub_options wo = {
      .store = store,
      .history_events = (size_t)cfg->watch_history_events,
      .buffer_events = (size_t)cfg->watch_buffer_events,
      .max_total = (size_t)cfg->watch_max_total,
      .max_per_connection = (size_t)cfg->watch_max_per_connection,
      .max_per_client = (size_t)cfg->watch_max_per_client,
      .max_lag = (size_t)cfg->watch_max_lag_events,
      .retention_events = (uint64_t)cfg->watch_retention_events,
      .memory_only = cfg->watch_memory_only};
  struct stm_watch_hub *hub = NULL;
  struct stm_error err;
  stm_error_clear(&err);
  if (stm_watch_hub_new(&wo, &hub, &err) != 0) {
    stm_log_error("cannot start the watch hub: %s", err.message);
    return NULL;
  }
  return hub;
}

/* Bounds of the request_id memory: a burst of retried writes may not grow
 * it without limit (the oldest are forgotten first). */
#define REQUEST_IDS_MAX 200000
#define REQUEST_IDS_MAX_BYTES (INT64_C(64) * 1024 * 1024)

/* Everything serve() starts, in start order; stop_all() undoes it. */
struct node {
  struct stm_store *store;
  struct stm_watch_hub *hub;
  struct stm_archiver *archiver;
  struct stm_grpc_server *server;
  struct stm_listener_probe *probe;
  struct stm_request_ids *request_ids;
  struct stm_service svc;
};

static atomic_bool listener_dead;

static void on_listener_dead(void *ctx, const char *why) {
  struct stm_service *svc = ctx;
  stm_log_error("the gRPC listener stopped accepting new connections (%s); "
                "file descriptors exhausted? Exiting with status 3 so the "
                "node is restarted",
                why);
  atomic_store(&listener_dead, true);
  atomic_store(&svc->shutting_down, true);
  kill(getpid(), SIGTERM);
}

static int start_archiver(const struct stm_server_config *cfg, struct node *n) {
  if (!cfg->wal_archive_command || !cfg->wal_archive_command[0])
    return 0;
  struct stm_error err;
  stm_error_clear(&err);
  char wal_dir[4096];
  snprintf(wal_dir, sizeof wal_dir, "%s/wal", cfg->data_dir);
  if (stm_archiver_start(wal_dir, cfg->wal_archive_command, &n->archiver,
                         &err) != 0) {
    stm_log_error("%s", err.message);
    return -1;
  }
  return 0;
}

static int start_grpc(const struct stm_server_config *cfg, struct node *n) {
  struct stm_error err;
  stm_error_clear(&err);
  size_t method_count;
  struct stm_grpc_server_options go = {
      .listen = cfg->grpc_listen,
      .methods = stm_service_methods(&method_count),
      .cq_threads = (int)cfg->cq_threads,
      .max_message_bytes = (int)cfg->max_message_bytes,
      .ctx = &n->svc,
      .gate = stm_auth_gate,
      .admit = stm_quota_admit};
  go.method_count = method_count;
  bool tls = cfg->tls_cert && *cfg->tls_cert;
  if (tls &&
      stm_tls_server_credentials(cfg->tls_cert, cfg->tls_key,
                                 cfg->tls_client_ca, &go.creds, &err) != 0) {
    stm_log_error("%s", err.message);
    return -1;
  }
  /* Peers are dialled over TLS with the same files (docs/tls.md). */
  if (tls && stm_tls_peer_setup(cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca,
                                cfg->peer_ca, &err) != 0) {
    grpc_server_credentials_release(go.creds);
    stm_log_error("%s", err.message);
    return -1;
  }
  if (cfg->request_id_window_s > 0) {
    n->request_ids =
        stm_request_ids_new(cfg->request_id_window_s * INT64_C(1000000000),
                            REQUEST_IDS_MAX, REQUEST_IDS_MAX_BYTES);
    if (n->request_ids == NULL) {
      stm_log_error("out of memory");
      return -1;
    }
    go.request_ids = n->request_ids;
  }
  int port = 0;
  int started = stm_grpc_server_start(&go, &n->server, &port, &err);
  if (go.creds)
    grpc_server_credentials_release(go.creds);
  if (started != 0) {
    stm_log_error("%s", err.message);
    return -1;
  }
  n->svc.grpc = n->server;
  if (cfg->listener_probe_ms > 0) {
    struct stm_listener_probe_options po = {
        .listen = cfg->grpc_listen,
        .port = port,
        .interval_ms = (int)cfg->listener_probe_ms,
        .timeout_ms =
            (int)(cfg->listener_probe_ms < 2000 ? 2000
                                                : cfg->listener_probe_ms),
        .failures = 3,
        .tls = tls,
        .on_dead = on_listener_dead,
        .ctx = &n->svc};
    if (stm_listener_probe_start(&po, &n->probe, &err) != 0) {
      stm_log_error("%s", err.message);
      return -1;
    }
  }
  stm_log_info("stemedb-server %s ready: node %s, gRPC on %s (port %d), "
               "data in %s",
               STM_VERSION, cfg->node_id, cfg->grpc_listen, port,
               cfg->data_dir);
  return 0;
}

/* The API key table; peers are called with STEMEDB_ADMIN_KEY, the one
 * credential every node of a cluster shares (docs/security.md). */
static int start_auth(const struct stm_server_config *cfg, struct node *n) {
  struct stm_error err;
  stm_error_clear(&err);
  const char *admin = getenv("STEMEDB_ADMIN_KEY");
  bool required = strcmp(cfg->auth, "required") == 0;
  if (stm_auth_open(cfg->data_dir, n->store, required, admin, &n->svc.auth,
                    &err)) {
    stm_log_error("API keys: %s", err.message);
    return -1;
  }
  stm_auth_set_open(n->svc.auth, cfg->auth_open_mask);
  stm_rpc_set_api_key(admin);
  if (stm_quota_open(cfg->data_dir, cfg->quota_per_hour, cfg->quota_overrides,
                     &n->svc.quota, &err)) {
    stm_log_error("%s", err.message);
    return -1;
  }
  if (stm_ratelimit_new(cfg->rate_limits, &n->svc.ratelimit, &err)) {
    stm_log_error("%s", err.message);
    return -1;
  }
  bool loopback = strncmp(cfg->grpc_listen, "127.", 4) == 0 ||
                  strncmp(cfg->grpc_listen, "localhost:", 10) == 0 ||
                  strncmp(cfg->grpc_listen, "[::1]:", 6) == 0;
  if (!required && !loopback)
    stm_log_warn("**** AUTH IS OFF on %s, a non-loopback address: anyone who "
                 "reaches this port can read, write and take backups. Set "
                 "--auth required (STEMEDB_AUTH) and STEMEDB_ADMIN_KEY ****",
                 cfg->grpc_listen);
  if (required && (admin == NULL || *admin == '\0'))
    stm_log_warn("auth is required and STEMEDB_ADMIN_KEY is not set: only "
                 "keys already stored can call");
  return 0;
}

static int start_all(const struct stm_server_config *cfg, struct node *n) {
  if ((n->store = open_store(cfg)) == NULL ||
      (n->hub = start_hub(cfg, n->store)) == NULL ||
      start_archiver(cfg, n) != 0)
    return -1;
  n->svc = (struct stm_service){.store = n->store,
                                .archiver = n->archiver,
                                .watch = n->hub,
                                .node_id = cfg->node_id,
                                .data_dir = cfg->data_dir,
                                .start_mono_ns = stm_clock_mono_ns(),
                                .source_keys = stm_source_keys_new(),
                                .trusted_proxies = cfg->trusted_proxies,
                                .trust_half_life_ns = cfg->trust_half_life_s *
                                                      INT64_C(1000000000)};
  if (start_auth(cfg, n) != 0)
    return -1;
  struct stm_error err;
  stm_error_clear(&err);
  /* The cluster before the gRPC port: a SWIM port in use refuses the start
   * like a gRPC port in use. */
  if (stm_cluster_start(&cfg->cluster, cfg->node_id, cfg->grpc_listen,
                        cfg->data_dir, n->store, &err) != 0) {
    stm_log_error("cannot join the cluster: %s", err.message);
    return -1;
  }
  if (stm_repl_start(&n->svc, &err) != 0) {
    stm_log_error("cannot start replication: %s", err.message);
    return -1;
  }
  return start_grpc(cfg, n);
}

/* Stop in the order that keeps every callback's target alive. */
static void stop_all(const struct stm_server_config *cfg, struct node *n) {
  stm_listener_probe_stop(n->probe);
  /* Health turns NOT_SERVING first, so load balancers stop sending new
   * work before the port closes. */
  atomic_store(&n->svc.shutting_down, true);
  /* Peers hear LEFT at once instead of suspecting us for seconds. */
  stm_cluster_leave(STM_CLUSTER_LEAVE_MS);
  if (n->server && cfg->shutdown_delay_ms > 0) {
    struct timespec delay = {.tv_sec = cfg->shutdown_delay_ms / 1000,
                             .tv_nsec =
                                 (cfg->shutdown_delay_ms % 1000) * 1000000L};
    nanosleep(&delay, NULL);
  }
  /* Watch streams never end by themselves: end them (UNAVAILABLE, with
   * the sequence to resume from) so the grace period is for unary calls. */
  if (n->hub)
    stm_watch_hub_stop(n->hub);
  if (n->server)
    stm_grpc_server_shutdown(n->server, (int)cfg->shutdown_grace_ms);
  /* Commits still queued complete (and answer their calls) before the
   * completion queues go away. */
  stm_archiver_stop(n->archiver);
  stm_repl_stop();
  stm_cluster_stop();
  stm_store_delete(n->store);
  stm_grpc_server_delete(n->server);
  stm_request_ids_delete(n->request_ids);
  stm_watch_hub_delete(n->hub);
  stm_source_keys_delete(n->svc.source_keys);
  stm_auth_delete(n->svc.auth);
  stm_ratelimit_delete(n->svc.ratelimit);
  stm_quota_close(n->svc.quota);
}

static int serve(const struct stm_server_config *cfg) {
  raise_fd_limit();
  struct node n = {0};
  if (start_all(cfg, &n) != 0) {
    stop_all(cfg, &n);
    return 1;
  }
  int sig = wait_for_signal();
  stm_log_info("received %s: shutting down (grace %lld ms)",
               sig == SIGINT ? "SIGINT" : "SIGTERM",
               (long long)cfg->shutdown_grace_ms);
  stop_all(cfg, &n);
  stm_log_info("shutdown complete");
  return atomic_load(&listener_dead) ? 3 : 0;
}

int main(int argc, char **argv) {
  /* Block the signals before any thread exists (gRPC starts its own) so
   * only sigwait in the main thread sees them. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
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
  struct stm_limits limits = *stm_limits_get();
  limits.concept_path = (uint32_t)cfg.max_concept_path_bytes;
  limits.predicate = (uint32_t)cfg.max_predicate_bytes;
  limits.string_value = (uint32_t)cfg.max_value_bytes;
  limits.source_id = (uint32_t)cfg.max_source_id_bytes;
  limits.batch = (uint32_t)cfg.max_batch;
  stm_limits_set(&limits); /* before any thread validates */
  enum stm_log_level level;
  if (stm_log_parse_level(cfg.log_level, &level) == 0)
    stm_log_set_level(level);
  gpr_set_log_function(grpc_log);
  gpr_set_log_verbosity(level <= STM_LOG_DEBUG ? GPR_LOG_SEVERITY_INFO
                                               : GPR_LOG_SEVERITY_ERROR);
  grpc_init();
  rc = serve(&cfg);
  stm_rpc_set_channel_credentials(NULL); /* the peers' TLS, if any */
  grpc_shutdown();
  stm_server_config_destroy(&cfg);
  return rc;
}
