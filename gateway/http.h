/*
 * http.h - the gateway's HTTP server: a libwebsockets 4.1 event loop with
 * one vhost per listening address (REST API and cluster gateway), wired to
 * the asynchronous upstream (upstream.h) and the route table (routes.h).
 *
 * Threads: stm_gw_http_run is the event loop and must be the only thread
 * using the server, except stm_gw_http_stop, which any thread may call.
 * The upstream's completion-queue thread wakes the loop with
 * lws_cancel_service; finished calls are matched to their connection on
 * the loop thread, so nothing here blocks on gRPC.
 *
 * Requires grpc_init() before stm_gw_http_new and grpc_shutdown() only
 * after stm_gw_http_delete.
 */
#ifndef STM_GW_HTTP_H
#define STM_GW_HTTP_H

#include "common/error.h"
#include "gateway/routes.h"

#include <stddef.h>

struct stm_gw_http;

/* The largest --max-body-bytes (a connection buffers one whole request). */
#define STM_GW_MAX_BODY_CEIL (64 * 1024 * 1024)
/* --max-header-bytes: request line and headers (431 above). */
#define STM_GW_DEFAULT_MAX_HEADER_BYTES 16384

struct stm_gw_http_options {
  const char *http_listen;    /* "host:port" of the REST API */
  const char *cluster_listen; /* "host:port", or NULL / "" for none */
  const char *server;         /* stemedb-server gRPC address */
  int timeout_ms;             /* deadline of each upstream call */
  int grace_ms;               /* how long stop waits for in-flight requests */
  /* Request limits (issue 13); 0: the defaults. Body: 413 above it (at most
   * STM_GW_MAX_BODY_CEIL); JSON nesting and string bytes: 400. */
  int max_body_bytes, max_json_depth, max_json_string_bytes;
  /* Request line + headers: 431 above; 0: 16 KiB. */
  int max_header_bytes;
  int request_timeout_s; /* a request must arrive within; 0: 10 */
  int idle_timeout_s;    /* keep-alive idle limit; 0: 60 */
  /* WebSocket subscription limits (ws.h); 0: the defaults there. */
  int ws_max_subs_per_socket, ws_max_subs_per_client, ws_max_subs_total;
  int ws_ping_interval_ms, ws_max_queue_frames, ws_slow_ms;
  /* HTTPS and WSS on both listeners when set (tls_server.h). */
  const char *tls_cert, *tls_key;
  /* Open connections per client address (0: no limit), clients.h. */
  int max_conns_per_client;
};

/*
 * Split "host:port", "[v6]:port" or ":port" into host (may be "", meaning
 * every interface) and port (0..65535; 0 picks a free port). Returns 0 or
 * STM_EINVAL naming `field`.
 */
int stm_gw_parse_listen(const char *field, const char *addr, char *host,
                        size_t host_len, int *port, struct stm_error *err);

/*
 * Bind every listener and start the upstream. Returns 0 and *out, or
 * STM_EUNAVAIL with a message naming the address and the reason (e.g.
 * "Address already in use"), STM_EINVAL for a bad address, STM_ENOMEM.
 */
int stm_gw_http_new(const struct stm_gw_http_options *opts,
                    struct stm_gw_http **out, struct stm_error *err);

/* The port a listener is bound to, or -1 when it is not listening. */
int stm_gw_http_port(const struct stm_gw_http *h,
                     enum stm_gw_listener listener);

/*
 * Serve until stm_gw_http_stop, then keep serving requests already in
 * flight for up to grace_ms. Returns 0, or STM_EIO if the loop failed.
 */
int stm_gw_http_run(struct stm_gw_http *h);

/*
 * Read the TLS certificate and key again (SIGHUP). Returns 0, STM_ENOTFOUND
 * when the gateway serves no TLS, or the error of the new files (the old
 * ones stay). Thread-safe.
 */
int stm_gw_http_reload_tls(struct stm_gw_http *h, struct stm_error *err);

/* Ask the loop to stop. Thread-safe; not async-signal-safe. */
void stm_gw_http_stop(struct stm_gw_http *h);

/* Stop the upstream, close every connection, free. NULL is a no-op. */
void stm_gw_http_delete(struct stm_gw_http *h);

#endif
