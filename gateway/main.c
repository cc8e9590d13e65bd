/*
 * stemedb-gateway: REST/JSON on 18180 (and the cluster gateway on 18181)
 * in front of stemedb-server's gRPC API. See gateway/http.h for the
 * threads, api/openapi.yaml for the routes.
 */
#include "common/log.h"
#include "common/options.h"
#include "common/validate.h"
#include "gateway/clients.h"
#include "gateway/cors.h"
#include "gateway/http.h"
#include "gateway/tls_client.h"
#include "gateway/ws.h"
#include "json/json.h"

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
  char *server_ca, *server_cert, *server_key; /* TLS to the server */
  char *allowed_origins;                      /* CORS (cors.h) */
  char *tls_cert, *tls_key;                   /* HTTPS/WSS on both listeners */
  int64_t timeout_ms, grace_ms, max_conns_per_client;
  int64_t request_timeout_s, idle_timeout_s;
  int64_t max_body_bytes, max_json_depth, max_json_string_bytes;
  int64_t max_header_bytes;
  int64_t ws_subs_per_socket, ws_subs_per_client, ws_subs_total;
  int64_t ws_ping_interval_ms, ws_max_queue_frames, ws_slow_ms;
};

struct signal_waiter {
  pthread_t thread;
  sigset_t set;
  struct stm_gw_http *gw;
};

/* SIGHUP: new TLS connections use the certificate files as they are now. */
static void reload_tls(struct stm_gw_http *gw) {
  struct stm_error err;
  stm_error_clear(&err);
  int rc = stm_gw_http_reload_tls(gw, &err);
  if (rc == 0)
    stm_log_info("received SIGHUP: TLS certificates reloaded");
  else if (rc == STM_ENOTFOUND)
    stm_log_info("received SIGHUP: no TLS certificate to reload");
  else
    stm_log_error("TLS certificates not reloaded, the old ones stay: %s",
                  err.message);
}

/* Signals are blocked in every thread (gRPC's and lws' included) and
 * taken here, so no handler ever runs inside a library. */
static void *wait_for_signal(void *arg) {
  struct signal_waiter *w = arg;
  int sig = 0;
  while (sigwait(&w->set, &sig) == 0 && sig == SIGHUP)
    reload_tls(w->gw);
  if (sig == SIGINT || sig == SIGTERM)
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
  /* lws 4.1 logs every socket adopted with bytes already read (each
   * WebSocket handed over by http_conn.c) at error level. */
  if (strstr(line, "adopt_socket_readbuf"))
    l = STM_LOG_DEBUG;
  stm_log(l, "lws: %.*s", (int)n, line);
}

static int check_range(const char *name, int64_t v, int64_t min, int64_t max,
                       struct stm_error *err) {
  if (v >= min && v <= max)
    return 0;
  return stm_error_set(err, STM_EINVAL, name, "%s must be %lld..%lld", name,
                       (long long)min, (long long)max);
}

static int check_limits(const struct config *cfg, struct stm_error *err) {
  int rc = check_range("http-request-timeout-s", cfg->request_timeout_s, 1,
                       3600, err);
  if (rc == 0)
    rc = check_range("http-idle-timeout-s", cfg->idle_timeout_s, 1, 3600, err);
  if (rc == 0)
    rc = check_range("ws-max-subs-per-socket", cfg->ws_subs_per_socket, 1,
                     STM_GW_WS_MAX_SUBS, err);
  if (rc == 0)
    rc = check_range("ws-max-subs-per-client", cfg->ws_subs_per_client, 1,
                     1000000, err);
  if (rc == 0)
    rc = check_range("ws-max-subs-total", cfg->ws_subs_total, 1, 1000000, err);
  if (rc == 0)
    rc = check_range("ws-ping-interval-ms", cfg->ws_ping_interval_ms, 1,
                     3600000, err);
  if (rc == 0)
    rc = check_range("ws-max-queue-frames", cfg->ws_max_queue_frames, 1,
                     1000000, err);
  if (rc == 0)
    rc = check_range("ws-slow-ms", cfg->ws_slow_ms, 1, 3600000, err);
  if (rc == 0)
    rc = check_range("max-body-bytes", cfg->max_body_bytes, 1024,
                     STM_GW_MAX_BODY_CEIL, err);
  if (rc == 0)
    rc = check_range("max-json-depth", cfg->max_json_depth, 4, 1000, err);
  if (rc == 0)
    rc = check_range("max-json-string-bytes", cfg->max_json_string_bytes, 256,
                     STM_GW_MAX_BODY_CEIL, err);
  if (rc == 0)
    rc = check_range("max-header-bytes", cfg->max_header_bytes, 1024, 65535,
                     err);
  if (rc == 0)
    rc = check_range("max-connections-per-client", cfg->max_conns_per_client, 0,
                     1000000, err);
  return rc;
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
  if (rc == 0)
    rc = check_limits(cfg, &err);
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
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  bool debug = stm_log_get_level() == STM_LOG_DEBUG;
  gpr_set_log_verbosity(debug ? GPR_LOG_SEVERITY_INFO : GPR_LOG_SEVERITY_ERROR);
  lws_set_log_level(LLL_ERR | LLL_WARN | (debug ? LLL_NOTICE : 0),
                    lws_log_emit);
  grpc_init();
  struct stm_error err;
  stm_error_clear(&err);
  if (stm_gw_tls_client_setup(cfg->server_ca, cfg->server_cert, cfg->server_key,
                              &err) != 0) {
    stm_log_error("stemedb-gateway: %s", err.message);
    grpc_shutdown();
    return 2;
  }
  stm_gw_cors_configure(cfg->allowed_origins);
  struct stm_gw_http_options o = {
      .http_listen = cfg->http_listen,
      .cluster_listen = cfg->cluster_listen,
      .server = cfg->server,
      .timeout_ms = (int)cfg->timeout_ms,
      .grace_ms = (int)cfg->grace_ms,
      .request_timeout_s = (int)cfg->request_timeout_s,
      .idle_timeout_s = (int)cfg->idle_timeout_s,
      .max_body_bytes = (int)cfg->max_body_bytes,
      .max_json_depth = (int)cfg->max_json_depth,
      .max_json_string_bytes = (int)cfg->max_json_string_bytes,
      .max_header_bytes = (int)cfg->max_header_bytes,
      .ws_max_subs_per_socket = (int)cfg->ws_subs_per_socket,
      .ws_max_subs_per_client = (int)cfg->ws_subs_per_client,
      .ws_max_subs_total = (int)cfg->ws_subs_total,
      .ws_ping_interval_ms = (int)cfg->ws_ping_interval_ms,
      .ws_max_queue_frames = (int)cfg->ws_max_queue_frames,
      .ws_slow_ms = (int)cfg->ws_slow_ms,
      .tls_cert = cfg->tls_cert,
      .tls_key = cfg->tls_key,
      .max_conns_per_client = (int)cfg->max_conns_per_client,
  };
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
  bool tls = cfg->tls_cert && *cfg->tls_cert;
  stm_log_info("stemedb-gateway %s ready: %s %s (port %d), cluster %s, "
               "server %s",
               STM_VERSION, tls ? "https" : "http", cfg->http_listen,
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
      .request_timeout_s = 10,
      .idle_timeout_s = 60,
      .max_body_bytes = STM_MAX_REQUEST_BYTES,
      .max_json_depth = STM_JSON_DEFAULT_MAX_DEPTH,
      .max_json_string_bytes = STM_JSON_DEFAULT_MAX_STRING,
      .max_header_bytes = STM_GW_DEFAULT_MAX_HEADER_BYTES,
      .ws_subs_per_socket = STM_GW_WS_MAX_SUBS,
      .ws_subs_per_client = STM_GW_WS_DEFAULT_SUBS_PER_CLIENT,
      .ws_subs_total = STM_GW_WS_DEFAULT_SUBS_TOTAL,
      .ws_ping_interval_ms = 20000,
      .ws_max_queue_frames = 4096,
      .ws_slow_ms = 10000,
      .max_conns_per_client = STM_GW_DEFAULT_MAX_CONNS_PER_CLIENT,
  };
  const struct stm_opt opts[] = {
      {"http-listen", "STEMEDB_HTTP_LISTEN", NULL, STM_OPT_STRING,
       &cfg.http_listen, "REST API address, host:port (port 0: any free)"},
      {"cluster-listen", "STEMEDB_CLUSTER_LISTEN", NULL, STM_OPT_STRING,
       &cfg.cluster_listen,
       "cluster gateway address, host:port; empty: do not listen"},
      {"server", "STEMEDB_SERVER", NULL, STM_OPT_STRING, &cfg.server,
       "stemedb-server gRPC address, host:port"},
      {"server-ca", "STEMEDB_SERVER_CA", NULL, STM_OPT_STRING, &cfg.server_ca,
       "PEM CA that signed the server's certificate: reach it over TLS"},
      {"server-cert", "STEMEDB_SERVER_CERT", NULL, STM_OPT_STRING,
       &cfg.server_cert,
       "PEM certificate the gateway presents to a server that requires "
       "client certificates (with --server-key)"},
      {"server-key", "STEMEDB_SERVER_KEY", NULL, STM_OPT_STRING,
       &cfg.server_key, "PEM private key of --server-cert"},
      {"tls-cert", "STEMEDB_TLS_CERT", NULL, STM_OPT_STRING, &cfg.tls_cert,
       "PEM certificate (chain): serve HTTPS and WSS on both listeners "
       "(with --tls-key; reloaded on SIGHUP)"},
      {"tls-key", "STEMEDB_TLS_KEY", NULL, STM_OPT_STRING, &cfg.tls_key,
       "PEM private key of --tls-cert"},
      {"max-connections-per-client", "STEMEDB_MAX_CONNECTIONS_PER_CLIENT", NULL,
       STM_OPT_INT, &cfg.max_conns_per_client,
       "open connections (HTTP and WebSocket) per client address; more get "
       "429 and are closed; 0: no limit"},
      {"allowed-origins", "STEMEDB_ALLOWED_ORIGINS", NULL, STM_OPT_STRING,
       &cfg.allowed_origins,
       "comma-separated browser origins allowed by CORS "
       "(https://app.example.com); none by default"},
      {"log-level", "STEMEDB_LOG_LEVEL", NULL, STM_OPT_STRING, &cfg.log_level,
       "debug, info, warn or error"},
      {"upstream-timeout-ms", "STEMEDB_UPSTREAM_TIMEOUT_MS", NULL, STM_OPT_INT,
       &cfg.timeout_ms, "deadline of each call to stemedb-server (504 after)"},
      {"shutdown-grace-ms", "STEMEDB_SHUTDOWN_GRACE_MS", NULL, STM_OPT_INT,
       &cfg.grace_ms,
       "on SIGTERM, how long requests in flight may still finish"},
      {"http-request-timeout-s", "STEMEDB_HTTP_REQUEST_TIMEOUT_S", NULL,
       STM_OPT_INT, &cfg.request_timeout_s,
       "a request's head and body, and a TLS handshake, must arrive within "
       "this (slow clients are closed)"},
      {"http-idle-timeout-s", "STEMEDB_HTTP_IDLE_TIMEOUT_S", NULL, STM_OPT_INT,
       &cfg.idle_timeout_s, "a kept-alive connection may idle this long"},
      {"max-body-bytes", "STEMEDB_MAX_BODY_BYTES", NULL, STM_OPT_INT,
       &cfg.max_body_bytes, "request body bytes (413 above)"},
      {"max-json-depth", "STEMEDB_MAX_JSON_DEPTH", NULL, STM_OPT_INT,
       &cfg.max_json_depth,
       "nesting of JSON objects/arrays in a request body (400 above)"},
      {"max-json-string-bytes", "STEMEDB_MAX_JSON_STRING_BYTES", NULL,
       STM_OPT_INT, &cfg.max_json_string_bytes,
       "bytes of any JSON string in a request body (400 above, naming the "
       "field)"},
      {"max-header-bytes", "STEMEDB_MAX_HEADER_BYTES", NULL, STM_OPT_INT,
       &cfg.max_header_bytes,
       "bytes of a request line and headers (431 above; at most 65535)"},
      {"ws-max-subs-per-socket", "STEMEDB_WS_MAX_SUBS_PER_SOCKET", NULL,
       STM_OPT_INT, &cfg.ws_subs_per_socket,
       "WebSocket subscriptions per socket (at most 64)"},
      {"ws-max-subs-per-client", "STEMEDB_WS_MAX_SUBS_PER_CLIENT", NULL,
       STM_OPT_INT, &cfg.ws_subs_per_client,
       "WebSocket subscriptions per client address, over all its sockets"},
      {"ws-max-subs-total", "STEMEDB_WS_MAX_SUBS_TOTAL", NULL, STM_OPT_INT,
       &cfg.ws_subs_total,
       "WebSocket subscriptions in the whole gateway (keep it at most the "
       "server's --watch-max-per-connection)"},
      {"ws-ping-interval-ms", "STEMEDB_WS_PING_INTERVAL_MS", NULL, STM_OPT_INT,
       &cfg.ws_ping_interval_ms, "WebSocket ping interval"},
      {"ws-max-queue-frames", "STEMEDB_WS_MAX_QUEUE_FRAMES", NULL, STM_OPT_INT,
       &cfg.ws_max_queue_frames,
       "frames queued per WebSocket before the client counts as slow"},
      {"ws-slow-ms", "STEMEDB_WS_SLOW_MS", NULL, STM_OPT_INT, &cfg.ws_slow_ms,
       "how long a WebSocket client may stay slow before it is closed"},
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
