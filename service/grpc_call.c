/*
 * grpc_call.c - one call of the engine: its answer (unary: one batch with
 * status; a request_id's outcome reported first), its metadata and peer,
 * and server streaming (one send at a time, a final status).
 */
#include "grpc_internal.h"
#include "request_ids.h"

#include "common/clock.h"
#include "common/log.h"
#include "rpc/codec.h"

#include <assert.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef STM_TEST_HOOKS
/* Test hook, compiled only into stemedb-server-test-hooks (never shipped):
 * environment STEMEDB_TEST_STREAM_SEND_DELAY_US, read at server start,
 * sleeps that long right after a stream send's batch has started, which
 * widens the window in which a cancelled call can be completed and freed
 * by its completion-queue thread (test_watch.py). 0: off. */
static atomic_uint test_send_delay_us;

void stm__grpc_test_hook_read(void) {
  const char *delay = getenv("STEMEDB_TEST_STREAM_SEND_DELAY_US");
  if (delay)
    atomic_store(&test_send_delay_us, (unsigned)strtoul(delay, NULL, 10));
}

static void test_hook_after_send(void) {
  unsigned delay_us =
      atomic_load_explicit(&test_send_delay_us, memory_order_relaxed);
  if (delay_us) {
    struct timespec d = {delay_us / 1000000, (long)(delay_us % 1000000) * 1000};
    nanosleep(&d, NULL);
  }
}
#else
void stm__grpc_test_hook_read(void) {}
static void test_hook_after_send(void) {}
#endif

void stm__grpc_call_free(struct stm_grpc_call *c) {
  atomic_fetch_sub(&c->srv->in_flight, 1);
  struct method_stats *st = &c->srv->stats[c->method];
  int code = (int)c->code < STATUS_CODES ? (int)c->code : GRPC_STATUS_UNKNOWN;
  atomic_fetch_add(&st->by_code[code], 1);
  atomic_fetch_add(&st->total_ns,
                   (uint_fast64_t)(stm_clock_mono_ns() - c->start_ns));
  if (c->req)
    protobuf_c_message_free_unpacked(c->req, NULL);
  if (c->resp)
    grpc_byte_buffer_destroy(c->resp);
  for (size_t i = 0; i < c->n_trailers; i++)
    grpc_slice_unref(c->trailers[i].value);
  grpc_metadata_array_destroy(&c->md);
  if (c->generic)
    grpc_call_details_destroy(&c->details);
  if (c->peer)
    gpr_free(c->peer);
  free(c->rid);
  grpc_call_unref(c->call);
  free(c);
}

/* The first call of a request_id ended: remember a success, answer the
 * retries that waited for it the same way. */
static void report_request_id(struct stm_grpc_call *c, grpc_status_code code,
                              const char *message, grpc_byte_buffer *resp) {
  grpc_slice bytes = grpc_empty_slice();
  grpc_byte_buffer_reader r;
  if (resp && grpc_byte_buffer_reader_init(&r, resp)) {
    bytes = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
  }
  size_t n = 0;
  void **waiters = stm_request_ids_finish(
      c->srv->request_ids, c->method, c->rid, code == GRPC_STATUS_OK,
      GRPC_SLICE_START_PTR(bytes), GRPC_SLICE_LENGTH(bytes),
      stm_clock_mono_ns(), &n);
  for (size_t i = 0; i < n; i++) {
    grpc_byte_buffer *copy = NULL;
    if (resp) {
      grpc_slice s = grpc_slice_ref(bytes);
      copy = grpc_raw_byte_buffer_create(&s, 1);
      grpc_slice_unref(s);
    }
    stm__grpc_start_answer(waiters[i], code, message, copy);
  }
  free(waiters);
  grpc_slice_unref(bytes);
}

void stm__grpc_call_finish(struct stm_grpc_call *c, grpc_status_code code,
                           const char *message, grpc_byte_buffer *resp) {
  if (c->rid)
    report_request_id(c, code, message, resp);
  stm__grpc_start_answer(c, code, message, resp);
}

void stm__grpc_start_answer(struct stm_grpc_call *c, grpc_status_code code,
                            const char *message, grpc_byte_buffer *resp) {
  c->code = code;
  c->resp = resp;
  grpc_slice details = grpc_slice_from_copied_string(message ? message : "");
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (resp) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = resp;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n].data.send_status_from_server.status_details = &details;
  ops[n].data.send_status_from_server.trailing_metadata_count = c->n_trailers;
  ops[n++].data.send_status_from_server.trailing_metadata = c->trailers;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
  c->kind = TAG_CALL_DONE;
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);
  grpc_slice_unref(details);
  if (e != GRPC_CALL_OK) {
    stm_log_error("grpc: cannot send the answer (call error %d)", (int)e);
    stm__grpc_call_free(c);
  }
}

void stm_grpc_call_reply(struct stm_grpc_call *call,
                         const ProtobufCMessage *resp) {
  stm__grpc_call_finish(call, GRPC_STATUS_OK, NULL, stm_rpc_pack(resp));
}

void stm_grpc_call_fail(struct stm_grpc_call *call, grpc_status_code code,
                        const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  stm__grpc_call_finish(call, code, msg, NULL);
}

void *stm_grpc_call_context(const struct stm_grpc_call *call) {
  return call->srv->ctx;
}

void stm_grpc_call_set_principal(struct stm_grpc_call *call, const char *who) {
  snprintf(call->principal, sizeof call->principal, "%s", who ? who : "");
}

const char *stm_grpc_call_principal(const struct stm_grpc_call *call) {
  return call->principal[0] ? call->principal : NULL;
}

void stm_grpc_call_add_trailer(struct stm_grpc_call *call, const char *key,
                               const char *value) {
  if (call->n_trailers == STM_GRPC_MAX_TRAILERS)
    return;
  grpc_metadata *m = &call->trailers[call->n_trailers++];
  m->key = grpc_slice_from_static_string(key);
  m->value = grpc_slice_from_copied_string(value);
}

void stm_grpc_call_add_trailer_u64(struct stm_grpc_call *call, const char *key,
                                   uint64_t value) {
  char buf[24];
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)value);
  stm_grpc_call_add_trailer(call, key, buf);
}

const char *stm_grpc_call_peer(struct stm_grpc_call *call) {
  if (call->peer == NULL)
    call->peer = grpc_call_get_peer(call->call);
  return call->peer;
}

bool stm_grpc_call_metadata(const struct stm_grpc_call *call, const char *key,
                            char *buf, size_t len) {
  size_t klen = strlen(key);
  for (size_t i = 0; i < call->md.count; i++) {
    const grpc_metadata *m = &call->md.metadata[i];
    if (GRPC_SLICE_LENGTH(m->key) != klen ||
        memcmp(GRPC_SLICE_START_PTR(m->key), key, klen) != 0)
      continue;
    size_t vlen = GRPC_SLICE_LENGTH(m->value);
    if (vlen >= len)
      vlen = len - 1;
    memcpy(buf, GRPC_SLICE_START_PTR(m->value), vlen);
    buf[vlen] = '\0';
    return true;
  }
  return false;
}

/* --- server streaming ---------------------------------------------------- */

int stm_grpc_stream_open(struct stm_grpc_call *call, stm_grpc_stream_cb cb,
                         void *user) {
  call->stream_cb = cb;
  call->stream_user = user;
  call->send_tag = (struct stream_tag){TAG_STREAM_SEND, call};
  call->close_tag = (struct stream_tag){TAG_STREAM_CLOSE, call};
  call->status_tag = (struct stream_tag){TAG_STREAM_STATUS, call};
  atomic_init(&call->stream_pending, 2);
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &call->cancelled;
  grpc_call_error e =
      grpc_call_start_batch(call->call, &op, 1, &call->close_tag, NULL);
  if (e != GRPC_CALL_OK) {
    call->stream_cb = NULL;
    stm_grpc_call_fail(call, GRPC_STATUS_INTERNAL, "cannot start the stream");
    return -1;
  }
  return 0;
}

int stm_grpc_stream_send(struct stm_grpc_call *call, grpc_slice msg) {
  assert(call->send_bb == NULL);
  call->send_bb = grpc_raw_byte_buffer_create(&msg, 1);
  grpc_slice_unref(msg);
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  bool first = !call->sent_initial;
  if (first)
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n++].data.send_message.send_message = call->send_bb;
  /* Everything the call needs is written before the batch starts: once it
   * has started, the call may already be gone. On a cancelled call the
   * batch fails at once, and the completion-queue thread can run
   * STM_GRPC_STREAM_SENT, stm_grpc_stream_finish, the status completion and
   * STM_GRPC_STREAM_DONE (which frees the call) before start_batch returns here
   * (the watch hub sends from its own thread). */
  call->sent_initial = true;
  grpc_call_error e =
      grpc_call_start_batch(call->call, ops, n, &call->send_tag, NULL);
  test_hook_after_send();
  if (e != GRPC_CALL_OK) {
    /* Rejected: nothing was sent and no completion follows. */
    call->sent_initial = !first;
    grpc_byte_buffer_destroy(call->send_bb);
    call->send_bb = NULL;
    return -1;
  }
  return 0;
}

static void stream_unpend(struct stm_grpc_call *c) {
  if (atomic_fetch_sub(&c->stream_pending, 1) == 1) {
    c->stream_cb(c->stream_user, STM_GRPC_STREAM_DONE, true);
    stm__grpc_call_free(c);
  }
}

void stm_grpc_stream_finish(struct stm_grpc_call *call, grpc_status_code code,
                            const char *msg) {
  call->code = code;
  grpc_slice details = grpc_slice_from_copied_string(msg ? msg : "");
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (!call->sent_initial)
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n].data.send_status_from_server.status_details = &details;
  ops[n].data.send_status_from_server.trailing_metadata_count =
      call->n_trailers;
  ops[n++].data.send_status_from_server.trailing_metadata = call->trailers;
  call->sent_initial = true;
  grpc_call_error e =
      grpc_call_start_batch(call->call, ops, n, &call->status_tag, NULL);
  grpc_slice_unref(details);
  if (e != GRPC_CALL_OK) {
    stm_log_error("grpc: cannot end a stream (call error %d)", (int)e);
    stream_unpend(call);
  }
}

void stm__grpc_on_stream_event(struct stream_tag *t, bool ok) {
  struct stm_grpc_call *c = t->call;
  switch (t->kind) {
  case TAG_STREAM_SEND:
    grpc_byte_buffer_destroy(c->send_bb);
    c->send_bb = NULL;
    c->stream_cb(c->stream_user, STM_GRPC_STREAM_SENT, ok);
    break;
  case TAG_STREAM_CLOSE:
    if (c->cancelled && c->code == GRPC_STATUS_OK)
      c->code = GRPC_STATUS_CANCELLED;
    c->stream_cb(c->stream_user, STM_GRPC_STREAM_CLOSED, !c->cancelled);
    stream_unpend(c);
    break;
  default:
    stream_unpend(c);
    break;
  }
}
