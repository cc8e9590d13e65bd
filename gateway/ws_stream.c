/* ws_stream.c - the gRPC Watch stream of each subscription: its batches
 * on the upstream's cq thread and backpressure (see ws_internal.h). */
#include "gateway/ws_internal.h"

#include "common/log.h"
#include "rpc/codec.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  stm_gw_ws_conn_unref(c);
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
  Stemedb__V1__WatchEvent *ev = (Stemedb__V1__WatchEvent *)stm_rpc_unpack(
      &stemedb__v1__watch_event__descriptor, s->recv);
  grpc_byte_buffer_destroy(s->recv);
  s->recv = NULL;
  struct frame *f =
      ev ? stm_gw_ws_frame_new(event_json(s, ev), s->index, ev->sequence + 1)
         : NULL;
  uint64_t seq = ev ? ev->sequence : 0;
  if (ev)
    protobuf_c_message_free_unpacked(&ev->base, NULL);
  pthread_mutex_lock(&c->mu);
  bool ok = false;
  if (f && c->gone)
    free(f); /* the client closed: nobody will send it (was leaked) */
  else if (f)
    ok = stm_gw_ws_enqueue(c, f, false); /* frees f itself when full */
  if (!ok && s->first_dropped == 0)
    s->first_dropped = seq;
  bool more = ok && s->call && !s->unsubscribing;
  bool last = false;
  if (more && stm_gw_ws_queue_full(c)) {
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
    stm_gw_ws_send_control(c, s->index, j, 0);
    return last;
  }
  /* Every Watch stream ends with an error (they never end by themselves). */
  if (n == 0)
    snprintf(msg, sizeof msg, "the watch ended");
  stm_gw_ws_send_control(
      c, s->index,
      stm_gw_ws_error_frame(s->id, stm_rpc_code_name(s->code), msg),
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
void stm_gw_ws_resume_paused(struct conn *c) {
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

int stm_gw_ws_start_call(struct conn *c, struct sub *s,
                         const struct sub_req *r) {
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
  s->send = stm_rpc_pack(&req.base);
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
  grpc_call *call =
      w->running ? stm_gw_upstream_stream_call(w->o.up, WATCH_METHOD) : NULL;
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
  grpc_metadata auth; /* copied into the call when the batch starts */
  if (c->authz[0]) {
    auth.key = grpc_slice_from_static_string("authorization");
    auth.value = grpc_slice_from_copied_string(c->authz);
    ops[0].data.send_initial_metadata.count = 1;
    ops[0].data.send_initial_metadata.metadata = &auth;
  }
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
  if (c->authz[0])
    grpc_slice_unref(auth.value);
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

void stm_gw_ws_cancel_all(struct conn *c) {
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++)
    if (c->subs[i].active && c->subs[i].call)
      grpc_call_cancel(c->subs[i].call, NULL);
  pthread_mutex_unlock(&c->mu);
}
