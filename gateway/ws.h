/*
 * ws.h - GET /v1/watch: WebSocket change-feed subscriptions, each one a
 * stemedb.v1.StemeDB/Watch server stream to stemedb-server. The protocol
 * (frames, close codes, resume) is documented in api/watch.md.
 *
 * Every Watch stream runs on the gateway's one upstream channel and
 * completion queue (upstream.h), like the unary calls. The cq thread turns
 * each WatchEvent into its JSON text frame and appends it to the socket's
 * bounded queue, then wakes the event loop; the loop thread writes frames
 * when the socket is writable. Backpressure: when a socket's queue is
 * full its streams stop reading (gRPC flow control then holds the server
 * back) until the client drains half of it. A socket whose queue stays
 * full for slow_ms is a slow consumer: it is closed with code 4008 and a
 * reason naming the sequence each subscription resumes from. A closed socket
 * cancels its streams at once. Memory per socket is bounded by the queue limits
 * and at most STM_GW_WS_MAX_SUBS subscriptions.
 *
 * Threads: everything except the wake-up runs on the lws event-loop
 * thread. Requires grpc_init() before _new and grpc_shutdown() after
 * _delete.
 */
#ifndef STM_GW_WS_H
#define STM_GW_WS_H

#include "gateway/metrics.h"
#include "gateway/upstream.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>

#define STM_GW_WS_PATH "/v1/watch"
/* Subscriptions per socket at most (the per-socket limit can only be
 * lowered); per client address and in all by default. */
#define STM_GW_WS_MAX_SUBS 64
#define STM_GW_WS_DEFAULT_SUBS_PER_CLIENT 256
#define STM_GW_WS_DEFAULT_SUBS_TOTAL 4096
/* Close codes (api/watch.md). 4000 + a gRPC status code ends a socket
 * whose URL subscription failed (4003 INVALID_ARGUMENT, 4011 OUT_OF_RANGE,
 * 4014 UNAVAILABLE, ...). */
#define STM_GW_WS_CLOSE_SLOW 4008
#define STM_GW_WS_CLOSE_BASE 4000

struct stm_gw_ws;
struct stm_gw_clients;

struct stm_gw_ws_options {
  struct stm_gw_upstream *up; /* the gateway's channel and queue */
  size_t max_queue_frames;    /* per socket; 0: 4096 */
  size_t max_queue_bytes;     /* per socket; 0: 8 MiB */
  int ping_interval_ms;       /* 0: 20000; the peer is closed after 3 missed */
  int slow_ms;                /* 0: 10000; a socket whose queue stays full this
                              long is a slow consumer (close 4008) */
  size_t max_subs_per_socket; /* 0 or more than STM_GW_WS_MAX_SUBS: that */
  size_t max_subs_per_client; /* per client address; 0: 256 */
  size_t max_subs_total;      /* in the whole gateway; 0: 4096 */
  struct stm_gw_metrics *metrics; /* NULL or the open-sockets gauge's home */
  struct stm_gw_clients *clients; /* NULL or where open sockets are counted */
};

/* NULL when out of memory. Streams run on `up`, which must outlive this
 * module's stop (stop this first, then the upstream). */
struct stm_gw_ws *stm_gw_ws_new(struct lws_context *ctx,
                                const struct stm_gw_ws_options *o);

/* True for an upgrade request this module serves (path /v1/watch). */
bool stm_gw_ws_wants(struct lws *wsi);

/*
 * Handle one lws callback of a WebSocket connection (ESTABLISHED,
 * RECEIVE, RECEIVE_PONG, SERVER_WRITEABLE, CLOSED). Returns what the lws
 * callback must return.
 */
int stm_gw_ws_callback(struct stm_gw_ws *w, struct lws *wsi,
                       enum lws_callback_reasons reason, void *in, size_t len);

/* On LWS_CALLBACK_EVENT_WAIT_CANCELLED: deliver what the cq thread queued. */
void stm_gw_ws_service(struct stm_gw_ws *w);

/* Close every socket with 1001 (going away) and refuse new ones. */
void stm_gw_ws_shutdown(struct stm_gw_ws *w);
/* Sockets still open. */
size_t stm_gw_ws_open(const struct stm_gw_ws *w);

/* Cancel every stream and stop the timers; their last batches complete
 * on the upstream's cq thread (stop the upstream after this). */
void stm_gw_ws_stop(struct stm_gw_ws *w);
/* Stop if needed and free; call after lws_context_destroy. NULL: no-op. */
void stm_gw_ws_delete(struct stm_gw_ws *w);

#endif
