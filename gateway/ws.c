/*
 * ws.c - WebSocket subscriptions over gRPC Watch streams. See ws.h and
 * api/watch.md.
 *
 * Lifetimes: a connection (struct conn) is refcounted: one reference while
 * its socket is open (dropped on LWS_CALLBACK_CLOSED), one per gRPC call in
 * flight (dropped when the call's last batch completes) and one while it
 * sits in the dirty list. Subscriptions live inside their connection.
 * Each call has three batches: start (send the request, half-close,
 * receive metadata), receive one message (re-posted by the cq thread after
 * each message), and receive the status.
 */
#include "gateway/ws.h"

#include "common/log.h"
#include "json/json.h"
#include "rpc/codec.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  char peer[64];            /* the client's address, for its limit */
  struct conn *prev, *next; /* open list */
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

/* --- connections and frames ---------------------------------------------- */

static void frame_free_list(struct frame *f) {
  while (f) {
    struct frame *n = f->next;
    free(f);
    f = n;
  }
}

static void conn_unref(struct conn *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1)
    return;
  frame_free_list(c->qhead);
  pthread_mutex_destroy(&c->mu);
  free(c->rx);
  free(c);
}

/* Mark the connection as having work for the loop thread (mu held). */
static void mark_dirty(struct conn *c) {
  if (c->dirty)
    return;
  c->dirty = true;
  atomic_fetch_add(&c->refs, 1);
  struct stm_gw_ws *w = c->w;
  pthread_mutex_lock(&w->dirty_mu);
  bool was_empty = w->dirty == NULL;
  c->dirty_next = w->dirty;
  w->dirty = c;
  pthread_mutex_unlock(&w->dirty_mu);
  if (was_empty)
    lws_cancel_service(w->ctx);
}

/* Build a frame from a JSON object (consumed). NULL when out of memory. */
static struct frame *frame_new(json_t *j, int sub, uint64_t next_seq) {
  size_t len = 0;
  char *s = j ? stm_json_dump(j, &len) : NULL;
  json_decref(j);
  if (s == NULL)
    return NULL;
  struct frame *f = malloc(sizeof *f + LWS_PRE + len);
  if (f) {
    *f = (struct frame){.sub = sub, .next_seq = next_seq, .len = len};
    memcpy(f->data + LWS_PRE, s, len);
  }
  free(s);
  return f;
}

/* Append (mu held). Returns false on overflow: the frame is freed and the
 * connection becomes a slow consumer. Control frames always fit. */
static bool enqueue(struct conn *c, struct frame *f, bool control) {
  const struct stm_gw_ws_options *o = &c->w->o;
  /* Backpressure keeps the queue near the limits; the hard cap adds room
   * for the one message each stream may still have in flight. */
  if (c->overflow ||
      (!control &&
       (c->qn + 1 > o->max_queue_frames + STM_GW_WS_MAX_SUBS ||
        c->qbytes + f->len >
            o->max_queue_bytes + STM_GW_WS_MAX_SUBS * (size_t)1048576))) {
    free(f);
    return false;
  }
  f->next = NULL;
  if (c->qtail)
    c->qtail->next = f;
  else
    c->qhead = f;
  c->qtail = f;
  c->qn++;
  c->qbytes += f->len;
  mark_dirty(c);
  return true;
}

static void send_control(struct conn *c, int sub, json_t *j, int close_code) {
  struct frame *f = frame_new(j, sub, 0);
  if (f == NULL)
    return;
  f->close_code = close_code;
  pthread_mutex_lock(&c->mu);
  enqueue(c, f, true);
  pthread_mutex_unlock(&c->mu);
}

static json_t *error_frame(const char *id, const char *code,
                           const char *message) {
  json_t *j = json_object();
  if (id)
    json_object_set_new(j, "id", json_string(id));
  json_object_set_new(j, "type", json_string("error"));
  json_object_set_new(j, "code", json_string(code));
  json_object_set_new(j, "message", json_string(message));
  return j;
}

/* --- the cq thread -------------------------------------------------------- */

static void call_release(struct sub *s) {
  struct conn *c = s->c;
  pthread_mutex_lock(&c->mu);
  grpc_call *call = s->call;
  s->call = NULL;
  s->active = false;
  pthread_mutex_unlock(&c->mu);
  grpc_call_unref(call);
  if (s->send)
    grpc_byte_buffer_destroy(s->send);
  s->send = NULL;
  grpc_metadata_array_destroy(&s->init_md);
  grpc_metadata_array_destroy(&s->trail_md);
  grpc_slice_unref(s->details);
  atomic_fetch_sub(&c->w->n_calls, 1);
  conn_unref(c);
}

static const char *type_name(int t) {
  switch (t) {
  case STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_CLAIM:
    return "claim";
  case STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_VOTE:
    return "vote";
  case STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_EPOCH:
    return "epoch";
  case STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_SOURCE:
    return "source";
  case STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_PROGRESS:
    return "progress";
  default:
    return "unknown";
  }
}

/* One WatchEvent as its JSON text frame. */
static json_t *event_json(const struct sub *s,
                          const Stemedb__V1__WatchEvent *ev) {
  json_t *j = json_object();
  json_object_set_new(j, "id", json_string(s->id));
  json_object_set_new(j, "sequence", json_integer((json_int_t)ev->sequence));
  json_object_set_new(j, "type", json_string(type_name((int)ev->type)));
  switch (ev->payload_case) {
  case STEMEDB__V1__WATCH_EVENT__PAYLOAD_CLAIM:
    json_object_set_new(j, "claim", stm_json_render_assertion(ev->claim));
    break;
  case STEMEDB__V1__WATCH_EVENT__PAYLOAD_VOTE:
    json_object_set_new(j, "vote", stm_json_render_vote(ev->vote));
    break;
  case STEMEDB__V1__WATCH_EVENT__PAYLOAD_EPOCH:
    json_object_set_new(j, "epoch", stm_json_render_epoch(ev->epoch));
    break;
  case STEMEDB__V1__WATCH_EVENT__PAYLOAD_SOURCE:
    json_object_set_new(j, "source", stm_json_render_source(ev->source));
    break;
  default:
    break;
  }
  return j;
}

/* Drop one in-flight batch; true when it was the call's last (mu held). */
static bool unpend_locked(struct sub *s) { return --s->pending == 0; }

static bool unpend(struct sub *s) {
  pthread_mutex_lock(&s->c->mu);
  bool last = unpend_locked(s);
  pthread_mutex_unlock(&s->c->mu);
  return last;
}

/* Post the next receive; true when that failed and was the last batch. */
static bool post_recv(struct sub *s) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &s->recv;
  if (grpc_call_start_batch(s->call, &op, 1, &s->recv_tag, NULL) ==
      GRPC_CALL_OK)
    return false;
  return unpend(s);
}

static bool queue_full(const struct conn *c) {
  return c->qn >= c->w->o.max_queue_frames ||
         c->qbytes >= c->w->o.max_queue_bytes;
}

/*
 * One message arrived. Backpressure: when the socket's queue is full the
 * next receive is not posted (the sub is "paused", its slot still counted
 * in pending); gRPC flow control then holds the server back, and the loop
 * thread resumes reading once the client has drained half the queue. A
 * socket that stays full for slow_ms is a slow consumer.
 */
static bool on_message(struct sub *s) {
  struct conn *c = s->c;
  if (s->recv == NULL) /* end of stream: the status follows */
    return unpend(s);
  Stemedb__V1__WatchEvent *ev = (Stemedb__V1__WatchEvent *)stm_pb_unpack(
      &stemedb__v1__watch_event__descriptor, s->recv);
  grpc_byte_buffer_destroy(s->recv);
  s->recv = NULL;
  struct frame *f =
      ev ? frame_new(event_json(s, ev), s->index, ev->sequence + 1) : NULL;
  uint64_t seq = ev ? ev->sequence : 0;
  if (ev)
    protobuf_c_message_free_unpacked(&ev->base, NULL);
  pthread_mutex_lock(&c->mu);
  bool ok = f && !c->gone && enqueue(c, f, false);
  if (!ok && s->first_dropped == 0)
    s->first_dropped = seq;
  bool more = ok && s->call && !s->unsubscribing;
  bool last = false;
  if (more && queue_full(c)) {
    s->paused = true;
    if (c->full_since == 0)
      c->full_since = lws_now_usecs();
    more = false;
  } else if (!more) {
    last = unpend_locked(s);
  }
  pthread_mutex_unlock(&c->mu);
  return more ? post_recv(s) : last;
}

static bool on_status(struct sub *s) {
  struct conn *c = s->c;
  char msg[512];
  size_t n = GRPC_SLICE_LENGTH(s->details);
  n = n < sizeof msg - 1 ? n : sizeof msg - 1;
  memcpy(msg, GRPC_SLICE_START_PTR(s->details), n);
  msg[n] = '\0';
  pthread_mutex_lock(&c->mu);
  bool quiet = c->gone || c->overflow;
  bool unsub = s->unsubscribing;
  bool last = unpend_locked(s);
  if (s->paused) { /* the held receive slot will never be posted now */
    s->paused = false;
    last = unpend_locked(s);
  }
  pthread_mutex_unlock(&c->mu);
  if (quiet)
    return last;
  if (unsub) {
    json_t *j = json_object();
    json_object_set_new(j, "id", json_string(s->id));
    json_object_set_new(j, "type", json_string("unsubscribed"));
    send_control(c, s->index, j, 0);
    return last;
  }
  /* Every Watch stream ends with an error (they never end by themselves). */
  if (n == 0)
    snprintf(msg, sizeof msg, "the watch ended");
  send_control(c, s->index, error_frame(s->id, stm_rpc_code_name(s->code), msg),
               s->is_default ? STM_GW_WS_CLOSE_BASE + (int)s->code : 0);
  return last;
}

/* On the upstream's cq thread: one batch of a Watch stream completed. */
static void on_tag(struct stm_gw_upstream_tag *head, bool ok) {
  (void)ok; /* a failed batch still runs its handler: the status follows */
  struct tag *t = (struct tag *)head;
  struct sub *s = t->sub;
  bool last = t->kind == TAG_START  ? unpend(s)
              : t->kind == TAG_RECV ? on_message(s)
                                    : on_status(s);
  if (last)
    call_release(s);
}

/* Loop thread: the client drained half its queue; read the streams again. */
static void resume_paused(struct conn *c) {
  struct sub *go[STM_GW_WS_MAX_SUBS];
  size_t n = 0;
  pthread_mutex_lock(&c->mu);
  if (c->full_since == 0 || c->qn > c->w->o.max_queue_frames / 2 ||
      c->qbytes > c->w->o.max_queue_bytes / 2) {
    pthread_mutex_unlock(&c->mu);
    return;
  }
  c->full_since = 0;
  for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++)
    if (c->subs[i].paused && c->subs[i].call) {
      c->subs[i].paused = false;
      go[n++] = &c->subs[i];
    }
  pthread_mutex_unlock(&c->mu);
  for (size_t i = 0; i < n; i++)
    if (post_recv(go[i]))
      call_release(go[i]);
}

/* --- starting a subscription (loop thread) ------------------------------- */

struct sub_req {
  const char *id;
  const char *concept_prefix, *predicate;
  uint64_t start_sequence;
  uint32_t progress_ms;
  int types[4];
  size_t n_types;
};

static int start_call(struct conn *c, struct sub *s, const struct sub_req *r) {
  struct stm_gw_ws *w = c->w;
  Stemedb__V1__WatchRequest req = STEMEDB__V1__WATCH_REQUEST__INIT;
  req.concept_prefix = (char *)(r->concept_prefix ? r->concept_prefix : "");
  req.predicate = (char *)(r->predicate ? r->predicate : "");
  req.start_sequence = r->start_sequence;
  req.progress_interval_ms = r->progress_ms;
  Stemedb__V1__EventType types[4];
  for (size_t i = 0; i < r->n_types; i++)
    types[i] = (Stemedb__V1__EventType)r->types[i];
  req.event_types = types;
  req.n_event_types = r->n_types;
  s->send = stm_pb_pack(&req.base);
  s->recv = NULL;
  s->code = GRPC_STATUS_UNKNOWN;
  s->details = grpc_empty_slice();
  grpc_metadata_array_init(&s->init_md);
  grpc_metadata_array_init(&s->trail_md);
  s->start_tag = (struct tag){{on_tag}, TAG_START, s};
  s->recv_tag = (struct tag){{on_tag}, TAG_RECV, s};
  s->status_tag = (struct tag){{on_tag}, TAG_STATUS, s};
  s->resume = r->start_sequence;
  s->first_dropped = 0;
  s->unsubscribing = false;
  grpc_call *call = w->running
                        ? stm_gw_upstream_stream_call(w->o.up, WATCH_METHOD)
                        : NULL;
  if (call == NULL)
    return -1;
  pthread_mutex_lock(&c->mu);
  s->call = call;
  s->active = true;
  s->pending = 3;
  pthread_mutex_unlock(&c->mu);
  atomic_fetch_add(&c->refs, 1);
  atomic_fetch_add(&w->n_calls, 1);
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
  grpc_op st;
  memset(&st, 0, sizeof st);
  st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  st.data.recv_status_on_client.trailing_metadata = &s->trail_md;
  st.data.recv_status_on_client.status = &s->code;
  st.data.recv_status_on_client.status_details = &s->details;
  /* The status batch first: once the receive batch is started the cq
   * thread may post the next one, and this thread must be done by then. */
  int failed = 0;
  if (grpc_call_start_batch(call, ops, 4, &s->start_tag, NULL) != GRPC_CALL_OK)
    failed++;
  if (grpc_call_start_batch(call, &st, 1, &s->status_tag, NULL) != GRPC_CALL_OK)
    failed++;
  if (failed) {
    /* Never expected with a fresh call; give up on it cleanly. */
    grpc_call_cancel(call, NULL);
  }
  pthread_mutex_lock(&c->mu);
  s->pending -= failed;
  pthread_mutex_unlock(&c->mu);
  grpc_op rv;
  memset(&rv, 0, sizeof rv);
  rv.op = GRPC_OP_RECV_MESSAGE;
  rv.data.recv_message.recv_message = &s->recv;
  if (grpc_call_start_batch(call, &rv, 1, &s->recv_tag, NULL) != GRPC_CALL_OK) {
    pthread_mutex_lock(&c->mu);
    bool last = --s->pending == 0;
    pthread_mutex_unlock(&c->mu);
    if (last)
      call_release(s);
  }
  return 0;
}

/* --- parsing subscriptions ------------------------------------------------ */

static bool valid_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > ID_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char ch = id[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
      return false;
  }
  return true;
}

/* Parse "claim,vote" (or one name) into r->types. */
static int parse_types(const char *s, struct sub_req *r, char *err,
                       size_t errlen) {
  static const char *names[] = {"claim", "vote", "epoch", "source"};
  r->n_types = 0;
  while (*s) {
    size_t n = strcspn(s, ",");
    bool found = false;
    for (int i = 0; i < 4; i++)
      if (strlen(names[i]) == n && strncmp(s, names[i], n) == 0) {
        if (r->n_types < 4)
          r->types[r->n_types++] = i + 1;
        found = true;
      }
    if (!found) {
      snprintf(err, errlen,
               "types: \"%.*s\" is not claim, vote, epoch or source",
               (int)(n < 32 ? n : 32), s);
      return -1;
    }
    s += n;
    if (*s == ',')
      s++;
  }
  return 0;
}

/* The slot for `id`: its own if it exists and is idle, else an unused
 * one, else an idle one of another id. NULL (err set) when none. */
static struct sub *sub_slot(struct conn *c, const char *id, char *err,
                            size_t errlen) {
  struct sub *unused = NULL, *idle = NULL;
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++) {
    struct sub *s = &c->subs[i];
    if (s->used && strcmp(s->id, id) == 0) {
      pthread_mutex_unlock(&c->mu);
      if (s->active) /* read racily, but only this thread sets it true */
        snprintf(err, errlen, "subscription id \"%s\" is already in use", id);
      return s->active ? NULL : s;
    }
    if (!s->used && unused == NULL)
      unused = s;
    if (s->used && !s->active && idle == NULL)
      idle = s;
  }
  pthread_mutex_unlock(&c->mu);
  if (unused == NULL && idle == NULL)
    snprintf(err, errlen, "at most %d subscriptions per socket",
             STM_GW_WS_MAX_SUBS);
  return unused ? unused : idle;
}

static size_t active_subs(struct conn *c) {
  size_t n = 0;
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++)
    n += c->subs[i].active;
  pthread_mutex_unlock(&c->mu);
  return n;
}

/*
 * Issue 10: every socket of the gateway shares one upstream connection,
 * whose watches the server limits (--watch-max-per-connection). These
 * limits keep one client from using them up: per socket, per client
 * address (all its sockets) and in all, each refused with an error naming
 * the limit and its flag. Returns false with err set when one is reached.
 */
static bool within_limits(struct conn *c, char *err, size_t errlen) {
  const struct stm_gw_ws_options *o = &c->w->o;
  if (active_subs(c) >= o->max_subs_per_socket) {
    snprintf(err, errlen,
             "at most %zu subscriptions per socket (--ws-max-subs-per-socket)",
             o->max_subs_per_socket);
    return false;
  }
  size_t same_client = 0;
  for (struct conn *x = c->w->open; x; x = x->next)
    if (strcmp(x->peer, c->peer) == 0)
      same_client += active_subs(x);
  if (same_client >= o->max_subs_per_client) {
    snprintf(err, errlen,
             "at most %zu subscriptions per client address "
             "(--ws-max-subs-per-client)",
             o->max_subs_per_client);
    return false;
  }
  if (atomic_load(&c->w->n_calls) >= o->max_subs_total) {
    snprintf(err, errlen,
             "all %zu subscriptions of this gateway are in use "
             "(--ws-max-subs-total); try again later",
             o->max_subs_total);
    return false;
  }
  return true;
}

static void subscribe(struct conn *c, const struct sub_req *r,
                      bool is_default) {
  char err[200];
  struct sub *s =
      within_limits(c, err, sizeof err) ? sub_slot(c, r->id, err, sizeof err)
                                        : NULL;
  if (s == NULL) {
    send_control(c, -1, error_frame(r->id, "RESOURCE_EXHAUSTED", err),
                 is_default ? STM_GW_WS_CLOSE_BASE + 8 : 0);
    return;
  }
  s->used = true;
  s->is_default = is_default;
  snprintf(s->id, sizeof s->id, "%s", r->id);
  if (start_call(c, s, r) != 0)
    send_control(c, s->index,
                 error_frame(r->id, "UNAVAILABLE", "cannot start the watch"),
                 is_default ? STM_GW_WS_CLOSE_BASE + 14 : 0);
}

static void unsubscribe(struct conn *c, const char *id) {
  for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++) {
    struct sub *s = &c->subs[i];
    if (!s->used || strcmp(s->id, id) != 0)
      continue;
    pthread_mutex_lock(&c->mu);
    bool active = s->active && s->call;
    if (active) {
      s->unsubscribing = true;
      grpc_call_cancel(s->call, NULL);
    }
    pthread_mutex_unlock(&c->mu);
    if (active)
      return;
  }
  send_control(
      c, -1, error_frame(id, "NOT_FOUND", "no active subscription has this id"),
      0);
}

/* A client message: {"op":"subscribe",...} or {"op":"unsubscribe",...}. */
static void on_client_message(struct conn *c, const char *text, size_t len) {
  json_error_t jerr;
  json_t *j = json_loadb(text, len, 0, &jerr);
  char err[200] = "";
  const char *op = NULL, *id = NULL;
  struct sub_req r = {0};
  if (j == NULL || !json_is_object(j)) {
    snprintf(err, sizeof err, "a client message must be a JSON object");
    goto fail;
  }
  op = json_string_value(json_object_get(j, "op"));
  id = json_string_value(json_object_get(j, "id"));
  if (op == NULL || (strcmp(op, "subscribe") && strcmp(op, "unsubscribe"))) {
    snprintf(err, sizeof err, "op: must be \"subscribe\" or \"unsubscribe\"");
    goto fail;
  }
  if (id == NULL || !valid_id(id)) {
    snprintf(err, sizeof err,
             "id: 1-%d characters of [A-Za-z0-9_.-] are required", ID_MAX);
    id = NULL;
    goto fail;
  }
  if (strcmp(op, "unsubscribe") == 0) {
    unsubscribe(c, id);
    json_decref(j);
    return;
  }
  r.id = id;
  const char *key;
  json_t *v;
  json_object_foreach(j, key, v) {
    if (!strcmp(key, "op") || !strcmp(key, "id"))
      continue;
    if (!strcmp(key, "concept_prefix") && json_is_string(v))
      r.concept_prefix = json_string_value(v);
    else if (!strcmp(key, "predicate") && json_is_string(v))
      r.predicate = json_string_value(v);
    else if (!strcmp(key, "start_sequence") && json_is_integer(v) &&
             json_integer_value(v) >= 0)
      r.start_sequence = (uint64_t)json_integer_value(v);
    else if (!strcmp(key, "progress_interval_ms") && json_is_integer(v) &&
             json_integer_value(v) >= 0 && json_integer_value(v) <= 3600000)
      r.progress_ms = (uint32_t)json_integer_value(v);
    else if (!strcmp(key, "types") && json_is_string(v)) {
      if (parse_types(json_string_value(v), &r, err, sizeof err))
        goto fail;
    } else {
      snprintf(err, sizeof err, "%.40s: unknown field or wrong type", key);
      goto fail;
    }
  }
  subscribe(c, &r, false);
  json_decref(j);
  return;
fail:
  send_control(c, -1, error_frame(id, "INVALID_ARGUMENT", err), 0);
  json_decref(j);
}

/* The URL's query: a subscription "default" when any parameter is given. */
static void subscribe_from_query(struct conn *c, struct lws *wsi) {
  static char prefix[600], predicate[200], types[100];
  struct sub_req r = {.id = "default"};
  bool any = false;
  char err[200] = "";
  char frag[700];
  for (int i = 0; lws_hdr_copy_fragment(wsi, frag, sizeof frag,
                                        WSI_TOKEN_HTTP_URI_ARGS, i) > 0;
       i++) {
    char *eq = strchr(frag, '=');
    const char *val = eq ? eq + 1 : "";
    if (eq)
      *eq = '\0';
    any = true;
    if (!strcmp(frag, "concept_prefix")) {
      snprintf(prefix, sizeof prefix, "%s", val);
      r.concept_prefix = prefix;
    } else if (!strcmp(frag, "predicate")) {
      snprintf(predicate, sizeof predicate, "%s", val);
      r.predicate = predicate;
    } else if (!strcmp(frag, "start_sequence")) {
      char *end = NULL;
      r.start_sequence = strtoull(val, &end, 10);
      if (!*val || *end || val[0] == '-')
        snprintf(err, sizeof err, "start_sequence: not a number");
    } else if (!strcmp(frag, "progress_interval_ms")) {
      char *end = NULL;
      unsigned long v = strtoul(val, &end, 10);
      if (!*val || *end || v > 3600000)
        snprintf(err, sizeof err, "progress_interval_ms: 0..3600000");
      r.progress_ms = (uint32_t)v;
    } else if (!strcmp(frag, "types")) {
      snprintf(types, sizeof types, "%s", val);
      parse_types(types, &r, err, sizeof err);
    } else {
      snprintf(err, sizeof err, "%.40s: unknown query parameter", frag);
    }
    if (err[0])
      break;
  }
  if (err[0])
    send_control(c, -1, error_frame("default", "INVALID_ARGUMENT", err),
                 STM_GW_WS_CLOSE_BASE + 3);
  else if (any)
    subscribe(c, &r, true);
}

/* --- the loop thread ------------------------------------------------------ */

static void conn_close_with(struct conn *c, int code, const char *what) {
  if (c->closing)
    return;
  c->closing = code;
  /* "resume default=12 a=40": where each subscription resumes. */
  size_t n =
      (size_t)snprintf(c->close_reason, sizeof c->close_reason, "%s", what);
  bool first = true;
  for (int i = 0; i < STM_GW_WS_MAX_SUBS && n < sizeof c->close_reason; i++) {
    struct sub *s = &c->subs[i];
    if (!s->used)
      continue;
    uint64_t r = s->resume ? s->resume : s->first_dropped;
    if (r == 0)
      continue;
    int k =
        snprintf(c->close_reason + n, sizeof c->close_reason - n, "%s%s=%llu",
                 first ? "; resume " : " ", s->id, (unsigned long long)r);
    if (k < 0 || (size_t)k >= sizeof c->close_reason - n) {
      c->close_reason[n] = '\0';
      break;
    }
    n += (size_t)k;
    first = false;
  }
  lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 5);
  lws_callback_on_writable(c->wsi);
}

static void cancel_all(struct conn *c) {
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++)
    if (c->subs[i].active && c->subs[i].call)
      grpc_call_cancel(c->subs[i].call, NULL);
  pthread_mutex_unlock(&c->mu);
}

void stm_gw_ws_service(struct stm_gw_ws *w) {
  pthread_mutex_lock(&w->dirty_mu);
  struct conn *c = w->dirty;
  w->dirty = NULL;
  pthread_mutex_unlock(&w->dirty_mu);
  while (c) {
    struct conn *next = c->dirty_next;
    pthread_mutex_lock(&c->mu);
    c->dirty = false;
    bool overflow = c->overflow;
    pthread_mutex_unlock(&c->mu);
    if (c->wsi) {
      if (overflow)
        conn_close_with(c, STM_GW_WS_CLOSE_SLOW, "slow consumer");
      else
        lws_callback_on_writable(c->wsi);
    }
    conn_unref(c);
    c = next;
  }
}

static int on_writable(struct conn *c) {
  if (c->closing) {
    lws_close_reason(c->wsi, (enum lws_close_status)c->closing,
                     (unsigned char *)c->close_reason, strlen(c->close_reason));
    return -1;
  }
  if (c->ping_due) {
    /* A payload, because lws 4.1.6 does not report empty pongs
     * (LWS_CALLBACK_RECEIVE_PONG never comes for them). */
    unsigned char buf[LWS_PRE + 4];
    memcpy(buf + LWS_PRE, "stm", 4);
    c->ping_due = false;
    if (lws_write(c->wsi, buf + LWS_PRE, 4, LWS_WRITE_PING) < 0)
      return -1;
    lws_callback_on_writable(c->wsi);
    return 0;
  }
  /* Several frames per callback while the socket takes them. */
  for (int k = 0; k < 64; k++) {
    pthread_mutex_lock(&c->mu);
    struct frame *f = c->qhead;
    if (f) {
      c->qhead = f->next;
      if (c->qhead == NULL)
        c->qtail = NULL;
      c->qn--;
      c->qbytes -= f->len;
    }
    bool more = c->qhead != NULL;
    pthread_mutex_unlock(&c->mu);
    if (f == NULL)
      break;
    int rc = lws_write(c->wsi, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT);
    if (f->sub >= 0 && f->next_seq)
      c->subs[f->sub].resume = f->next_seq;
    int close_code = f->close_code;
    free(f);
    if (rc < 0)
      return -1;
    if (close_code) {
      conn_close_with(c, close_code, "the subscription ended");
      return 0;
    }
    if (!more)
      break;
    if (lws_send_pipe_choked(c->wsi)) {
      lws_callback_on_writable(c->wsi);
      break;
    }
    if (k == 63)
      lws_callback_on_writable(c->wsi);
  }
  resume_paused(c);
  return 0;
}

static void on_established(struct stm_gw_ws *w, struct lws *wsi) {
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    return;
  }
  c->w = w;
  atomic_init(&c->refs, 1);
  pthread_mutex_init(&c->mu, NULL);
  for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++) {
    c->subs[i].c = c;
    c->subs[i].index = i;
  }
  c->wsi = wsi;
  lws_get_peer_simple(wsi, c->peer, sizeof c->peer);
  c->last_alive = lws_now_usecs();
  c->next = w->open;
  if (w->open)
    w->open->prev = c;
  w->open = c;
  w->n_open++;
  lws_set_opaque_user_data(wsi, c);
  if (w->shutting_down)
    conn_close_with(c, LWS_CLOSE_STATUS_GOINGAWAY, "gateway shutting down");
  else
    subscribe_from_query(c, wsi);
}

static void on_closed(struct stm_gw_ws *w, struct conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    w->open = c->next;
  if (c->next)
    c->next->prev = c->prev;
  w->n_open--;
  c->wsi = NULL;
  pthread_mutex_lock(&c->mu);
  c->gone = true;
  pthread_mutex_unlock(&c->mu);
  cancel_all(c); /* frees the server's streams at once */
  conn_unref(c);
}

static void on_receive(struct conn *c, struct lws *wsi, const void *in,
                       size_t len) {
  c->last_alive = lws_now_usecs();
  if (c->rx_len + len > MAX_RX) {
    conn_close_with(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                    "client messages are limited to 64 KiB");
    return;
  }
  char *nrx = realloc(c->rx, c->rx_len + len + 1);
  if (nrx == NULL)
    return;
  c->rx = nrx;
  memcpy(c->rx + c->rx_len, in, len);
  c->rx_len += len;
  if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
    return;
  c->rx[c->rx_len] = '\0';
  if (!c->w->shutting_down)
    on_client_message(c, c->rx, c->rx_len);
  c->rx_len = 0;
}

/* --- keepalive ------------------------------------------------------------ */

static void ping_tick(lws_sorted_usec_list_t *sul) {
  struct stm_gw_ws *w = lws_container_of(sul, struct stm_gw_ws, ping_timer);
  lws_usec_t now = lws_now_usecs();
  lws_usec_t every = (lws_usec_t)w->o.ping_interval_ms * 1000;
  for (struct conn *c = w->open; c; c = c->next) {
    if (c->closing)
      continue;
    if (now - c->last_alive > 3 * every) {
      /* Three pings unanswered: the peer is gone. */
      lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
      continue;
    }
    c->ping_due = true;
    lws_callback_on_writable(c->wsi);
  }
  lws_sul_schedule(w->ctx, 0, &w->ping_timer, ping_tick, every);
}

/* A socket whose queue stayed full for slow_ms: close it as slow. */
static void slow_tick(lws_sorted_usec_list_t *sul) {
  struct stm_gw_ws *w = lws_container_of(sul, struct stm_gw_ws, slow_timer);
  lws_usec_t now = lws_now_usecs();
  for (struct conn *c = w->open; c; c = c->next) {
    pthread_mutex_lock(&c->mu);
    bool slow =
        c->full_since && now - c->full_since > (lws_usec_t)w->o.slow_ms * 1000;
    if (slow && !c->overflow) {
      c->overflow = true;
      for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++)
        if (c->subs[i].active && c->subs[i].call)
          grpc_call_cancel(c->subs[i].call, NULL);
    }
    pthread_mutex_unlock(&c->mu);
    if (slow)
      conn_close_with(c, STM_GW_WS_CLOSE_SLOW, "slow consumer");
  }
  lws_sul_schedule(w->ctx, 0, &w->slow_timer, slow_tick, 100 * 1000);
}

/* --- public --------------------------------------------------------------- */

bool stm_gw_ws_wants(struct lws *wsi) {
  char uri[64];
  if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
    return false;
  return strcmp(uri, STM_GW_WS_PATH) == 0;
}

int stm_gw_ws_callback(struct stm_gw_ws *w, struct lws *wsi,
                       enum lws_callback_reasons reason, void *in, size_t len) {
  struct conn *c = lws_get_opaque_user_data(wsi);
  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED:
    on_established(w, wsi);
    return 0;
  case LWS_CALLBACK_RECEIVE:
    if (c)
      on_receive(c, wsi, in, len);
    return 0;
  case LWS_CALLBACK_RECEIVE_PONG:
    if (c)
      c->last_alive = lws_now_usecs();
    return 0;
  case LWS_CALLBACK_SERVER_WRITEABLE:
    return c ? on_writable(c) : -1;
  case LWS_CALLBACK_CLOSED:
    if (c) {
      lws_set_opaque_user_data(wsi, NULL);
      on_closed(w, c);
    }
    return 0;
  default:
    return 0;
  }
}

struct stm_gw_ws *stm_gw_ws_new(struct lws_context *ctx,
                                const struct stm_gw_ws_options *o) {
  struct stm_gw_ws *w = calloc(1, sizeof *w);
  if (w == NULL)
    return NULL;
  w->ctx = ctx;
  w->o = *o;
  if (w->o.max_queue_frames == 0)
    w->o.max_queue_frames = 4096;
  if (w->o.max_queue_bytes == 0)
    w->o.max_queue_bytes = 8 * 1024 * 1024;
  if (w->o.ping_interval_ms <= 0)
    w->o.ping_interval_ms = 20000;
  if (w->o.slow_ms <= 0)
    w->o.slow_ms = 10000;
  if (w->o.max_subs_per_socket == 0 ||
      w->o.max_subs_per_socket > STM_GW_WS_MAX_SUBS)
    w->o.max_subs_per_socket = STM_GW_WS_MAX_SUBS;
  if (w->o.max_subs_per_client == 0)
    w->o.max_subs_per_client = STM_GW_WS_DEFAULT_SUBS_PER_CLIENT;
  if (w->o.max_subs_total == 0)
    w->o.max_subs_total = STM_GW_WS_DEFAULT_SUBS_TOTAL;
  pthread_mutex_init(&w->dirty_mu, NULL);
  w->running = true;
  lws_sul_schedule(ctx, 0, &w->ping_timer, ping_tick,
                   (lws_usec_t)w->o.ping_interval_ms * 1000);
  lws_sul_schedule(ctx, 0, &w->slow_timer, slow_tick, 100 * 1000);
  return w;
}

void stm_gw_ws_shutdown(struct stm_gw_ws *w) {
  if (w == NULL || w->shutting_down)
    return;
  w->shutting_down = true;
  for (struct conn *c = w->open; c; c = c->next)
    conn_close_with(c, LWS_CLOSE_STATUS_GOINGAWAY, "gateway shutting down");
}

size_t stm_gw_ws_open(const struct stm_gw_ws *w) { return w ? w->n_open : 0; }

void stm_gw_ws_stop(struct stm_gw_ws *w) {
  if (w == NULL || !w->running)
    return;
  w->running = false;
  lws_sul_cancel(&w->ping_timer);
  lws_sul_cancel(&w->slow_timer);
  /* The streams' last batches complete on the upstream's cq thread, which
   * stm_gw_upstream_stop drains and joins. */
  for (struct conn *c = w->open; c; c = c->next)
    cancel_all(c);
}

void stm_gw_ws_delete(struct stm_gw_ws *w) {
  if (w == NULL)
    return;
  stm_gw_ws_stop(w);
  /* Connections still open lost their socket with the context. */
  while (w->open)
    on_closed(w, w->open);
  pthread_mutex_lock(&w->dirty_mu);
  struct conn *c = w->dirty;
  w->dirty = NULL;
  pthread_mutex_unlock(&w->dirty_mu);
  while (c) {
    struct conn *next = c->dirty_next;
    conn_unref(c);
    c = next;
  }
  pthread_mutex_destroy(&w->dirty_mu);
  free(w);
}
