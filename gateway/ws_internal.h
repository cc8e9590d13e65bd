/*
 * ws_internal.h - what the files of the WebSocket module share (not an
 * interface: ws.h is). ws.c: sockets, keepalive and the public calls;
 * ws_queue.c: frames and each socket's bounded queue; ws_stream.c: the
 * gRPC Watch stream of each subscription; ws_subs.c: client messages,
 * subscriptions and their limits.
 */
#ifndef STM_GW_WS_INTERNAL_H
#define STM_GW_WS_INTERNAL_H

#include "gateway/apikey.h"
#include "gateway/upstream.h"
#include "gateway/ws.h"

#include <grpc/grpc.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define WATCH_METHOD "/stemedb.v1.StemeDB/Watch"
#define MAX_RX (64 * 1024)
#define ID_MAX 64

enum tag_kind { TAG_START, TAG_RECV, TAG_STATUS };

struct conn;

struct tag {
  struct stm_gw_upstream_tag head; /* first: the upstream's cq thread */
  enum tag_kind kind;
  struct sub *sub;
};

struct sub {
  struct conn *c;
  int index;
  bool used;
  bool is_default; /* the subscription from the URL's query */
  char id[ID_MAX + 1];
  /* Under c->mu. */
  grpc_call *call;
  bool active; /* a call is in flight */
  bool unsubscribing;
  bool paused;            /* the next receive is held back (backpressure) */
  int pending;            /* batches in flight, plus a held receive */
  uint64_t first_dropped; /* sequence of the first event lost to overflow */
  /* cq thread only, while active. */
  struct tag start_tag, recv_tag, status_tag;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array init_md, trail_md;
  grpc_status_code code;
  grpc_slice details;
  /* Loop thread only. */
  uint64_t resume; /* next sequence the client needs; 0: none seen yet */
};

struct frame {
  struct frame *next;
  int sub;           /* index, or -1 */
  uint64_t next_seq; /* the sub's resume point once written; 0: none */
  int close_code;    /* close the socket after writing this frame */
  size_t len;
  unsigned char data[]; /* LWS_PRE bytes, then the JSON text */
};

struct conn {
  struct stm_gw_ws *w;
  atomic_int refs;
  pthread_mutex_t mu;
  /* Under mu. */
  struct frame *qhead, *qtail;
  size_t qn, qbytes;
  bool overflow;
  lws_usec_t full_since; /* the queue is full and streams paused since */
  bool dirty;
  bool gone; /* the socket closed */
  struct conn *dirty_next;
  struct sub subs[STM_GW_WS_MAX_SUBS];
  /* Loop thread only. */
  struct lws *wsi;
  char peer[64];                 /* the client's address, for its limit */
  bool counted;                  /* in the open connections of peer */
  char authz[STM_GW_APIKEY_MAX]; /* forwarded on every Watch; "" none */
  struct conn *prev, *next;      /* open list */
  bool ping_due;
  lws_usec_t last_alive;
  int closing; /* close code to send on the next writable; 0: none */
  char close_reason[124];
  char *rx;
  size_t rx_len;
};

struct stm_gw_ws {
  struct lws_context *ctx;
  struct stm_gw_ws_options o;
  bool running; /* timers scheduled, streams may start */
  pthread_mutex_t dirty_mu;
  struct conn *dirty;
  atomic_size_t n_calls; /* Watch calls in flight, all sockets */
  /* Loop thread only. */
  struct conn *open;
  size_t n_open;
  bool shutting_down;
  lws_sorted_usec_list_t ping_timer, slow_timer;
};

struct sub_req {
  const char *id;
  const char *concept_prefix, *predicate;
  uint64_t start_sequence;
  uint32_t progress_ms;
  int types[4];
  size_t n_types;
};

/* ws_queue.c: frames and the socket's queue. */
void stm_gw_ws_conn_unref(struct conn *c);
/* A frame from a JSON object (consumed); NULL when out of memory. */
struct frame *stm_gw_ws_frame_new(json_t *j, int sub, uint64_t next_seq);
/* Append (c->mu held); false on overflow (the frame is freed). */
bool stm_gw_ws_enqueue(struct conn *c, struct frame *f, bool control);
void stm_gw_ws_send_control(struct conn *c, int sub, json_t *j, int close_code);
json_t *stm_gw_ws_error_frame(const char *id, const char *code,
                              const char *message);
bool stm_gw_ws_queue_full(const struct conn *c);
/* Close with `code` and a reason naming where each subscription resumes. */
void stm_gw_ws_conn_close(struct conn *c, int code, const char *what);
/* SERVER_WRITEABLE: write queued frames (and pings). */
int stm_gw_ws_conn_writable(struct conn *c);

/* ws_stream.c: the Watch calls (loop thread unless noted). */
int stm_gw_ws_start_call(struct conn *c, struct sub *s,
                         const struct sub_req *r);
void stm_gw_ws_cancel_all(struct conn *c);
/* The client drained half its queue: read the paused streams again. */
void stm_gw_ws_resume_paused(struct conn *c);

/* ws_subs.c: client messages and the URL's subscription. */
void stm_gw_ws_client_message(struct conn *c, const char *text, size_t len);
void stm_gw_ws_subscribe_from_query(struct conn *c, struct lws *wsi);

#endif
