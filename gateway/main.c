/*
 * stemedb-gateway: REST/JSON on 18180 (and the cluster gateway on 18181)
 * in front of stemedb-server's gRPC API. See gateway/http.h for the
 * threads, api/openapi.yaml for the routes.
 */
#include "common/log.h"
#include "common/options.h"
#include "http.h"

#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE "stemedb-gateway [options]"

struct config {
  char *http_listen, *cluster_listen, *server, *log_level;
  int64_t timeout_ms, grace_ms;
};

struct signal_waiter {
  pthread_t thread;
  sigset_t set;
  struct stm_gw_http *gw;
};

/* Signals are blocked in every thread (gRPC's and lws' included) and
 * taken here, so no handler ever runs inside a library. */
static void *wait_for_signal(void *arg) {
  struct signal_waiter *w = arg;
  int sig = 0;
  if (sigwait(&w->set, &sig) == 0 && sig != SIGUSR1)
    stm_log_info("received %s, shutting down",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
  stm_gw_http_stop(w->gw);
  return NULL;
}

/* libwebsockets' own log lines go through ours. */
static void lws_log_emit(int level, const char *line) {
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    n--;
  enum stm_log_level l = level & LLL_ERR    ? STM_LOG_ERROR
                         : level & LLL_WARN ? STM_LOG_WARN
                                            : STM_LOG_DEBUG;
  stm_log(l, "lws: %.*s", (int)n, line);
}

static int parse_config(int argc, char **argv, struct config *cfg,
                        const struct stm_opt *opts, size_t n) {
  struct stm_error err;
  stm_error_clear(&err);
  int first = argc;
  int rc = stm_opts_apply_env(opts, n, &err);
  if (rc == 0)
    rc = stm_opts_apply_flags(opts, n, argc, argv, &first, &err);
  if (rc == STM_ENOTFOUND) {
    stm_opts_usage(stdout, USAGE, opts, n);
    return 1;
  }
  if (rc == 0 && first < argc)
    rc = stm_error_set(&err, STM_EINVAL, NULL, "unexpected argument \"%s\"",
                       argv[first]);
  enum stm_log_level level;
  if (rc == 0 && stm_log_parse_level(cfg->log_level, &level) != 0)
    rc = stm_error_set(&err, STM_EINVAL, "log-level",
                       "log-level must be debug, info, warn or error, got "
                       "\"%s\"",
                       cfg->log_level);
  if (rc == 0 && (cfg->timeout_ms < 1 || cfg->timeout_ms > 600000))
    rc = stm_error_set(&err, STM_EINVAL, "upstream-timeout-ms",
                       "upstream-timeout-ms must be 1..600000");
  if (rc == 0 && (cfg->grace_ms < 0 || cfg->grace_ms > 600000))
    rc = stm_error_set(&err, STM_EINVAL, "shutdown-grace-ms",
                       "shutdown-grace-ms must be 0..600000");
  if (rc) {
    fprintf(stderr, "stemedb-gateway: %s (see --help)\n", err.message);
    return 2;
  }
  stm_log_set_level(level);
  return 0;
}

static int serve(const struct config *cfg) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  bool debug = stm_log_get_level() == STM_LOG_DEBUG;
  gpr_set_log_verbosity(debug ? GPR_LOG_SEVERITY_INFO : GPR_LOG_SEVERITY_ERROR);
  lws_set_log_level(LLL_ERR | LLL_WARN | (debug ? LLL_NOTICE : 0),
                    lws_log_emit);
  grpc_init();
  struct stm_gw_http_options o = {
      .http_listen = cfg->http_listen,
      .cluster_listen = cfg->cluster_listen,
      .server = cfg->server,
      .timeout_ms = (int)cfg->timeout_ms,
      .grace_ms = (int)cfg->grace_ms,
  };
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_gw_http *gw = NULL;
  if (stm_gw_http_new(&o, &gw, &err) != 0) {
    stm_log_error("stemedb-gateway: %s", err.message);
    grpc_shutdown();
    return 1;
  }
  char cluster[300] = "off";
  if (stm_gw_http_port(gw, STM_GW_LISTENER_CLUSTER) >= 0)
    snprintf(cluster, sizeof cluster, "%s (port %d)", cfg->cluster_listen,
             stm_gw_http_port(gw, STM_GW_LISTENER_CLUSTER));
  stm_log_info("stemedb-gateway %s ready: http %s (port %d), cluster %s, "
               "server %s",
               STM_VERSION, cfg->http_listen,
               stm_gw_http_port(gw, STM_GW_LISTENER_API), cluster, cfg->server);

  struct signal_waiter w = {.set = set, .gw = gw};
  pthread_create(&w.thread, NULL, wait_for_signal, &w);
  int rc = stm_gw_http_run(gw);
  /* If the loop ended on its own, release the waiter. */
  pthread_kill(w.thread, SIGUSR1);
  pthread_join(w.thread, NULL);
  stm_gw_http_delete(gw);
  grpc_shutdown();
  if (rc) {
    stm_log_error("stemedb-gateway: the event loop failed");
    return 1;
  }
  stm_log_info("stemedb-gateway stopped");
  return 0;
}

int main(int argc, char **argv) {
  struct config cfg = {
      .http_listen = strdup("0.0.0.0:18180"),
      .cluster_listen = strdup("0.0.0.0:18181"),
      .server = strdup("127.0.0.1:18182"),
      .log_level = strdup("info"),
      .timeout_ms = 10000,
      .grace_ms = 5000,
  };
  const struct stm_opt opts[] = {
      {"http-listen", "STEMEDB_HTTP_LISTEN", NULL, STM_OPT_STRING,
       &cfg.http_listen, "REST API address, host:port (port 0: any free)"},
      {"cluster-listen", "STEMEDB_CLUSTER_LISTEN", NULL, STM_OPT_STRING,
       &cfg.cluster_listen,
       "cluster gateway address, host:port; empty: do not listen"},
      {"server", "STEMEDB_SERVER", NULL, STM_OPT_STRING, &cfg.server,
       "stemedb-server gRPC address, host:port"},
      {"log-level", "STEMEDB_LOG_LEVEL", NULL, STM_OPT_STRING, &cfg.log_level,
       "debug, info, warn or error"},
      {"upstream-timeout-ms", "STEMEDB_UPSTREAM_TIMEOUT_MS", NULL, STM_OPT_INT,
       &cfg.timeout_ms, "deadline of each call to stemedb-server (504 after)"},
      {"shutdown-grace-ms", "STEMEDB_SHUTDOWN_GRACE_MS", NULL, STM_OPT_INT,
       &cfg.grace_ms,
       "on SIGTERM, how long requests in flight may still finish"},
  };
  size_t n = sizeof opts / sizeof opts[0];
  int rc = parse_config(argc, argv, &cfg, opts, n);
  if (rc == 0)
    rc = serve(&cfg);
  else if (rc == 1)
    rc = 0; /* --help */
  stm_opts_free_strings(opts, n);
  return rc;
}
