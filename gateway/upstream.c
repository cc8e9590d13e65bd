#include "gateway/upstream.h"

#include "common/error.h"
#include "rpc/codec.h"

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REGISTERED 32

struct stm_gw_call {
  struct stm_gw_upstream_tag tag; /* first: the cq thread's view */
  struct stm_gw_upstream *up;
  grpc_call *call;
  const char *method;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array init_md, trail_md;
  grpc_status_code code;
  grpc_slice details;
  char message[512];
  /* x-forwarded-for when a client address is known, authorization when
   * the client sent a key, x-agent-id when it named itself. */
  grpc_metadata md[3];
  size_t n_md;
  void *owner;                       /* event-loop thread only */
  struct stm_gw_call *next;          /* done queue, under up->lock */
  struct stm_gw_call *aprev, *anext; /* active list, event-loop thread */
};

struct stm_gw_upstream {
  grpc_channel *channel;
  grpc_completion_queue *cq;
  pthread_t thread;
  bool thread_running;
  bool cq_down; /* shut down and drained */
  stm_gw_wake_cb wake;
  void *wake_arg;

  pthread_mutex_t lock; /* guards the done queue */
  struct stm_gw_call *done_head, *done_tail;

  /* Event-loop thread only. */
  struct stm_gw_call *active;
  size_t n_active;
  struct {
    const char *method;
    void *handle;
  } registered[MAX_REGISTERED];
  size_t n_registered;
};

/* A unary call's one batch completed: queue it for the event loop. */
static void unary_done(struct stm_gw_upstream_tag *tag, bool ok) {
  struct stm_gw_call *c = (struct stm_gw_call *)tag;
  struct stm_gw_upstream *up = c->up;
  /* A client batch with RECV_STATUS normally succeeds even when the RPC
   * fails; guard anyway so a failed batch never reads as OK. */
  if (!ok && c->code == GRPC_STATUS_OK)
    c->code = GRPC_STATUS_UNKNOWN;
  pthread_mutex_lock(&up->lock);
  bool was_empty = up->done_head == NULL;
  c->next = NULL;
  if (up->done_tail)
    up->done_tail->next = c;
  else
    up->done_head = c;
  up->done_tail = c;
  pthread_mutex_unlock(&up->lock);
  if (was_empty && up->wake)
    up->wake(up->wake_arg);
}

/* Every tag on the queue starts with a stm_gw_upstream_tag: unary calls
 * and the batches of Watch streams (ws.c) alike. */
static void *cq_thread(void *arg) {
  struct stm_gw_upstream *up = arg;
  grpc_event ev;
  while (stm_rpc_cq_next(up->cq, &ev)) {
    struct stm_gw_upstream_tag *t = ev.tag;
    t->on_event(t, ev.success != 0);
  }
  return NULL;
}

struct stm_gw_upstream *
stm_gw_upstream_new(const char *target, stm_gw_wake_cb wake, void *wake_arg) {
  struct stm_gw_upstream *up = calloc(1, sizeof *up);
  if (up == NULL)
    return NULL;
  up->wake = wake;
  up->wake_arg = wake_arg;
  pthread_mutex_init(&up->lock, NULL);
  up->channel = stm_rpc_channel_new(target);
  up->cq = grpc_completion_queue_create_for_next(NULL);
  if (pthread_create(&up->thread, NULL, cq_thread, up) != 0) {
    stm_gw_upstream_delete(up);
    return NULL;
  }
  up->thread_running = true;
  return up;
}

static void *registered_handle(struct stm_gw_upstream *up, const char *method) {
  for (size_t i = 0; i < up->n_registered; i++)
    if (up->registered[i].method == method)
      return up->registered[i].handle;
  if (up->n_registered == MAX_REGISTERED)
    return NULL;
  void *h = grpc_channel_register_call(up->channel, method, NULL, NULL);
  up->registered[up->n_registered].method = method;
  up->registered[up->n_registered++].handle = h;
  return h;
}

static void call_free(struct stm_gw_call *c) {
  if (c->call)
    grpc_call_unref(c->call);
  if (c->send)
    grpc_byte_buffer_destroy(c->send);
  if (c->recv)
    grpc_byte_buffer_destroy(c->recv);
  grpc_metadata_array_destroy(&c->init_md);
  grpc_metadata_array_destroy(&c->trail_md);
  grpc_slice_unref(c->details);
  for (size_t i = 0; i < c->n_md; i++)
    grpc_slice_unref(c->md[i].value);
  free(c);
}

int stm_gw_upstream_start(struct stm_gw_upstream *up, const char *method,
                          const ProtobufCMessage *req, int timeout_ms,
                          void *owner, struct stm_gw_call **out) {
  return stm_gw_upstream_start_for(up, method, req, timeout_ms, NULL, owner,
                                   out);
}

int stm_gw_upstream_start_for(struct stm_gw_upstream *up, const char *method,
                              const ProtobufCMessage *req, int timeout_ms,
                              const char *client, void *owner,
                              struct stm_gw_call **out) {
  struct stm_gw_forward fw = {client, NULL, NULL};
  return stm_gw_upstream_start_as(up, method, req, timeout_ms, &fw, owner, out);
}

int stm_gw_upstream_start_as(struct stm_gw_upstream *up, const char *method,
                             const ProtobufCMessage *req, int timeout_ms,
                             const struct stm_gw_forward *fw, void *owner,
                             struct stm_gw_call **out) {
  const char *client = fw->client, *authorization = fw->authorization;
  *out = NULL;
  struct stm_gw_call *c = calloc(1, sizeof *c);
  if (c == NULL)
    return STM_ENOMEM;
  c->tag.on_event = unary_done;
  c->up = up;
  c->method = method;
  c->owner = owner;
  c->code = GRPC_STATUS_UNKNOWN;
  c->details = grpc_empty_slice();
  grpc_metadata_array_init(&c->init_md);
  grpc_metadata_array_init(&c->trail_md);
  c->send = stm_rpc_pack(req);
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                   gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
  void *handle = registered_handle(up, method);
  if (handle)
    c->call = grpc_channel_create_registered_call(
        up->channel, NULL, GRPC_PROPAGATE_DEFAULTS, up->cq, handle, deadline,
        NULL);
  else
    c->call = grpc_channel_create_call(
        up->channel, NULL, GRPC_PROPAGATE_DEFAULTS, up->cq,
        grpc_slice_from_static_string(method), NULL, deadline, NULL);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (client && *client) { /* the audit log records who asked */
    c->md[c->n_md].key = grpc_slice_from_static_string("x-forwarded-for");
    c->md[c->n_md++].value = grpc_slice_from_copied_string(client);
  }
  if (authorization && *authorization) { /* the server checks the key */
    c->md[c->n_md].key = grpc_slice_from_static_string("authorization");
    c->md[c->n_md++].value = grpc_slice_from_copied_string(authorization);
  }
  if (fw->agent && *fw->agent) { /* whom rate limits and quotas count */
    c->md[c->n_md].key = grpc_slice_from_static_string("x-agent-id");
    c->md[c->n_md++].value = grpc_slice_from_copied_string(fw->agent);
  }
  ops[0].data.send_initial_metadata.count = c->n_md;
  ops[0].data.send_initial_metadata.metadata = c->n_md ? c->md : NULL;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = c->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->init_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &c->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &c->trail_md;
  ops[5].data.recv_status_on_client.status = &c->code;
  ops[5].data.recv_status_on_client.status_details = &c->details;
  if (c->call == NULL ||
      grpc_call_start_batch(c->call, ops, 6, c, NULL) != GRPC_CALL_OK) {
    call_free(c);
    return STM_EIO;
  }
  c->anext = up->active;
  if (up->active)
    up->active->aprev = c;
  up->active = c;
  up->n_active++;
  *out = c;
  return 0;
}

void stm_gw_call_detach(struct stm_gw_call *call) {
  call->owner = NULL;
  grpc_call_cancel(call->call, NULL);
}

static void active_remove(struct stm_gw_upstream *up, struct stm_gw_call *c) {
  if (c->aprev)
    c->aprev->anext = c->anext;
  else
    up->active = c->anext;
  if (c->anext)
    c->anext->aprev = c->aprev;
  up->n_active--;
}

size_t stm_gw_upstream_poll(struct stm_gw_upstream *up, stm_gw_done_cb cb,
                            void *arg) {
  pthread_mutex_lock(&up->lock);
  struct stm_gw_call *c = up->done_head;
  up->done_head = up->done_tail = NULL;
  pthread_mutex_unlock(&up->lock);
  size_t n = 0;
  while (c) {
    struct stm_gw_call *next = c->next;
    active_remove(up, c);
    if (c->owner && cb) {
      size_t len = GRPC_SLICE_LENGTH(c->details);
      if (len >= sizeof c->message)
        len = sizeof c->message - 1;
      memcpy(c->message, GRPC_SLICE_START_PTR(c->details), len);
      c->message[len] = '\0';
      cb(c, c->owner, arg);
      n++;
    }
    call_free(c);
    c = next;
  }
  return n;
}

grpc_call *stm_gw_upstream_stream_call(struct stm_gw_upstream *up,
                                       const char *method) {
  void *handle = registered_handle(up, method);
  if (handle == NULL || up->cq_down)
    return NULL;
  return grpc_channel_create_registered_call(
      up->channel, NULL, GRPC_PROPAGATE_DEFAULTS, up->cq, handle,
      gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
}

size_t stm_gw_upstream_active(const struct stm_gw_upstream *up) {
  return up->n_active;
}

const char *stm_gw_call_method(const struct stm_gw_call *call) {
  return call->method;
}

grpc_status_code stm_gw_call_code(const struct stm_gw_call *call) {
  return call->code;
}

const char *stm_gw_call_message(const struct stm_gw_call *call) {
  return call->message;
}

/* A header may carry printable ASCII only (RFC 9110 5.5). */
static bool header_safe(grpc_slice v) {
  const uint8_t *p = GRPC_SLICE_START_PTR(v);
  for (size_t i = 0; i < GRPC_SLICE_LENGTH(v); i++)
    if (p[i] < 0x20 || p[i] > 0x7e)
      return false;
  return true;
}

size_t stm_gw_call_limit_headers(const struct stm_gw_call *call, char *out,
                                 size_t len) {
  static const char *const prefixes[] = {"x-ratelimit-", "x-quota-",
                                         "retry-after"};
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < call->trail_md.count; i++) {
    const grpc_metadata *m = &call->trail_md.metadata[i];
    size_t kl = GRPC_SLICE_LENGTH(m->key), vl = GRPC_SLICE_LENGTH(m->value);
    const char *k = (const char *)GRPC_SLICE_START_PTR(m->key);
    bool wanted = false;
    for (size_t j = 0; j < 3 && !wanted; j++)
      wanted = kl >= strlen(prefixes[j]) &&
               memcmp(k, prefixes[j], strlen(prefixes[j])) == 0;
    if (!wanted || !header_safe(m->value) || used + kl + vl + 5 > len)
      continue;
    used +=
        (size_t)snprintf(out + used, len - used, "%.*s: %.*s\r\n", (int)kl, k,
                         (int)vl, (const char *)GRPC_SLICE_START_PTR(m->value));
  }
  return used;
}

ProtobufCMessage *stm_gw_call_reply(const struct stm_gw_call *call,
                                    const ProtobufCMessageDescriptor *desc) {
  return stm_rpc_unpack(desc, call->recv);
}

void stm_gw_upstream_stop(struct stm_gw_upstream *up) {
  if (!up->thread_running)
    return;
  for (struct stm_gw_call *c = up->active; c; c = c->anext)
    grpc_call_cancel(c->call, NULL);
  /* The queue reports SHUTDOWN only after every started batch completed,
   * so after the join every call sits in the done queue. */
  grpc_completion_queue_shutdown(up->cq);
  pthread_join(up->thread, NULL);
  up->thread_running = false;
  up->cq_down = true;
}

void stm_gw_upstream_delete(struct stm_gw_upstream *up) {
  if (up == NULL)
    return;
  if (up->thread_running) {
    stm_gw_upstream_stop(up);
  } else if (up->cq && !up->cq_down) {
    grpc_completion_queue_shutdown(up->cq);
    stm_rpc_cq_drain(up->cq);
  }
  stm_gw_upstream_poll(up, NULL, NULL);
  if (up->cq)
    grpc_completion_queue_destroy(up->cq);
  if (up->channel)
    grpc_channel_destroy(up->channel);
  pthread_mutex_destroy(&up->lock);
  free(up);
}
