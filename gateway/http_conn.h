/*
 * http_conn.h - one HTTP/1.1 connection of the gateway: reading raw bytes
 * (libwebsockets "raw-skt" sockets), parsing each request head with
 * http_parse.h, routing it (routes.h), calling stemedb-server through the
 * upstream (upstream.h) and writing the answer byte for byte.
 *
 * Pipelined requests are answered in order: the next request is parsed
 * only once the previous answer is written, so a write is never committed
 * without its answer going out. A request that cannot be framed (bad head,
 * Content-Length with Transfer-Encoding, chunked, too large) is answered
 * with our JSON error and the connection is closed after it.
 *
 * A WebSocket upgrade on /v1/watch is checked here (426 for a version
 * other than 13) and then handed, with the bytes read so far, to an HTTP
 * vhost of libwebsockets that does the handshake and framing (ws.h).
 *
 * Threads: the lws event-loop thread only.
 */
#ifndef STM_GW_HTTP_CONN_H
#define STM_GW_HTTP_CONN_H

#include "gateway/routes.h"
#include "gateway/upstream.h"
#include "json/json.h"

#include <libwebsockets.h>
#include <stdatomic.h>
#include <stdbool.h>

#define STM_GW_WRITE_CHUNK (32 * 1024)
/* Header bytes one request may carry (all headers together); a request
 * with more is answered 431. */
#define STM_GW_MAX_HEADER_BYTES 16384

struct stm_gw_ws;
struct stm_gw_clients;

/* What every connection shares: owned by http.c. */
struct stm_gw_conn_ctx {
  struct lws_vhost *ws_vhost; /* where WebSocket upgrades are handed */
  struct stm_gw_upstream *up;
  struct stm_gw_ws *ws;
  struct stm_gw_clients *clients; /* open connections per client address */
  size_t max_conns_per_client;    /* 0: no limit */
  struct stm_gw_env env;
  int timeout_ms;        /* upstream deadline */
  size_t max_body_bytes; /* 413 above; STM_MAX_REQUEST_BYTES by default */
  /* 431 above; STM_GW_DEFAULT_MAX_HEADER_BYTES by default */
  size_t max_header_bytes;
  struct stm_json_limits json_limits; /* JSON request bodies (400 above) */
  int request_timeout_s; /* a request's head and body must arrive in this */
  int idle_timeout_s;    /* a kept-alive connection may idle this long */
  atomic_bool stop;      /* stopping: new requests get 503 */
  long draining;         /* requests begun before the stop, unanswered */
  unsigned char wbuf[LWS_PRE + STM_GW_WRITE_CHUNK];
};

/* Per-connection memory lws allocates (per_session_data_size). */
size_t stm_gw_conn_size(void);

/*
 * Handle a raw-socket callback (RAW_ADOPT, RAW_RX, RAW_WRITEABLE,
 * RAW_CLOSE) of a connection accepted on a listener of `kind`. Returns
 * what the lws callback must return.
 */
int stm_gw_conn_callback(struct stm_gw_conn_ctx *g, enum stm_gw_listener kind,
                         struct lws *wsi, enum lws_callback_reasons reason,
                         void *user, void *in, size_t len);

/* stm_gw_upstream_poll's callback: a call of a connection finished. */
void stm_gw_conn_call_done(struct stm_gw_call *call, void *owner, void *arg);

#endif
