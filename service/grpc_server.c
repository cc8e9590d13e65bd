#include "grpc_server.h"
#include "request_ids.h"
#include "wire_check.h"

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "rpc/codec.h"

#include <assert.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Requests pre-posted per method and per completion queue. Each arrival
 * re-posts one at once, so this bounds only bursts, never concurrency. */
#define SLOTS_PER_METHOD 8
#define STATUS_CODES 17
#define HANDSHAKE_TIMEOUT_MS 10000

enum tag_kind {
  TAG_REQUEST,
  TAG_GENERIC,
  TAG_CALL_DONE,
  TAG_SHUTDOWN,
  TAG_STREAM_SEND,
  TAG_STREAM_CLOSE,
  TAG_STREAM_STATUS
};

/* A streaming call has several batches in flight, each with its own tag. */
struct stream_tag {
  enum tag_kind kind;
  struct stm_grpc_call *call;
};

struct worker {
  struct stm_grpc_server *srv;
  grpc_completion_queue *cq;
  pthread_t thread;
};

struct method_stats {
  atomic_uint_fast64_t by_code[STATUS_CODES];
  atomic_uint_fast64_t total_ns;
};

struct stm_grpc_server {
  grpc_server *server;
  struct worker *workers;
  int worker_count;
  const struct stm_grpc_method *methods;
  size_t method_count;
  void **handles;
  /* Per method: its request's request_id field, NULL when it has none. */
  const ProtobufCFieldDescriptor **rid_fields;
  struct stm_request_ids *request_ids; /* borrowed; NULL: off */
  struct method_stats *stats; /* method_count + 1: the last is "unknown" */
  void *ctx;
  atomic_bool shutting_down;
  atomic_int in_flight; /* calls accepted and not yet freed */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool shutdown_done;
  bool destroyed;
};

/* One posted request for a registered method. */
struct request_slot {
  enum tag_kind kind;
  struct worker *w;
  size_t method;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
};

/* One posted catch-all request for unregistered methods. */
struct generic_slot {
  enum tag_kind kind;
  struct worker *w;
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array md;
};

struct stm_grpc_call {
  enum tag_kind kind;
  struct stm_grpc_server *srv;
  size_t method; /* == method_count for unknown methods */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_call_details details; /* only for generic calls */
  bool generic;
  ProtobufCMessage *req;
  grpc_byte_buffer *resp;
  grpc_status_code code;
  int cancelled;
  int64_t start_ns;
  char *peer;
  char *rid; /* the request_id this call reports to request_ids, or NULL */
  /* Server streaming only. */
  stm_grpc_stream_cb stream_cb;
  void *stream_user;
  struct stream_tag send_tag, close_tag, status_tag;
  atomic_int stream_pending; /* RECV_CLOSE + final status batches */
  grpc_byte_buffer *send_bb;
  bool sent_initial;
};

static struct { enum tag_kind kind; } shutdown_tag = {TAG_SHUTDOWN};

#ifdef STM_TEST_HOOKS
/* Test hook, compiled only into stemedb-server-test-hooks (never shipped):
 * environment STEMEDB_TEST_STREAM_SEND_DELAY_US, read at server start,
 * sleeps that long right after a stream send's batch has started, which
 * widens the window in which a cancelled call can be completed and freed
 * by its completion-queue thread (test_watch.py). 0: off. */
static atomic_uint test_send_delay_us;

static void test_hook_read(void) {
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
static void test_hook_read(void) {}
static void test_hook_after_send(void) {}
#endif

static void post_request(struct worker *w, size_t method) {
  struct request_slot *slot = calloc(1, sizeof *slot);
  if (slot == NULL)
    abort(); /* cannot serve without request slots */
  slot->kind = TAG_REQUEST;
  slot->w = w;
  slot->method = method;
  grpc_metadata_array_init(&slot->md);
  grpc_call_error e = grpc_server_request_registered_call(
      w->srv->server, w->srv->handles[method], &slot->call, &slot->deadline,
      &slot->md, &slot->payload, w->cq, w->cq, slot);
  if (e != GRPC_CALL_OK) {
    grpc_metadata_array_destroy(&slot->md);
    free(slot);
  }
}

static void post_generic(struct worker *w) {
  struct generic_slot *slot = calloc(1, sizeof *slot);
  if (slot == NULL)
    abort();
  slot->kind = TAG_GENERIC;
  slot->w = w;
  grpc_call_details_init(&slot->details);
  grpc_metadata_array_init(&slot->md);
  grpc_call_error e =
      grpc_server_request_call(w->srv->server, &slot->call, &slot->details,
                               &slot->md, w->cq, w->cq, slot);
  if (e != GRPC_CALL_OK) {
    grpc_call_details_destroy(&slot->details);
    grpc_metadata_array_destroy(&slot->md);
    free(slot);
  }
}

static void call_free(struct stm_grpc_call *c) {
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
  grpc_metadata_array_destroy(&c->md);
  if (c->generic)
    grpc_call_details_destroy(&c->details);
  if (c->peer)
    gpr_free(c->peer);
  free(c->rid);
  grpc_call_unref(c->call);
  free(c);
}

static void start_answer(struct stm_grpc_call *c, grpc_status_code code,
                         const char *message, grpc_byte_buffer *resp);

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
    start_answer(waiters[i], code, message, copy);
  }
  free(waiters);
  grpc_slice_unref(bytes);
}

static void call_finish(struct stm_grpc_call *c, grpc_status_code code,
                        const char *message, grpc_byte_buffer *resp) {
  if (c->rid)
    report_request_id(c, code, message, resp);
  start_answer(c, code, message, resp);
}

static void start_answer(struct stm_grpc_call *c, grpc_status_code code,
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
  ops[n++].data.send_status_from_server.status_details = &details;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
  c->kind = TAG_CALL_DONE;
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);
  grpc_slice_unref(details);
  if (e != GRPC_CALL_OK) {
    stm_log_error("grpc: cannot send the answer (call error %d)", (int)e);
    call_free(c);
  }
}

void stm_grpc_call_reply(struct stm_grpc_call *call,
                         const ProtobufCMessage *resp) {
  call_finish(call, GRPC_STATUS_OK, NULL, stm_pb_pack(resp));
}

void stm_grpc_call_fail(struct stm_grpc_call *call, grpc_status_code code,
                        const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  call_finish(call, code, msg, NULL);
}

void *stm_grpc_call_context(const struct stm_grpc_call *call) {
  return call->srv->ctx;
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
    call_free(c);
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
  ops[n++].data.send_status_from_server.status_details = &details;
  call->sent_initial = true;
  grpc_call_error e =
      grpc_call_start_batch(call->call, ops, n, &call->status_tag, NULL);
  grpc_slice_unref(details);
  if (e != GRPC_CALL_OK) {
    stm_log_error("grpc: cannot end a stream (call error %d)", (int)e);
    stream_unpend(call);
  }
}

static void on_stream_event(struct stream_tag *t, bool ok) {
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

/* Decode a request after checking its string fields on the wire (see
 * wire_check.h: protobuf-c would cut them at a NUL). NULL: undecodable, or
 * a bad string with err set. */
static ProtobufCMessage *decode_request(const ProtobufCMessageDescriptor *desc,
                                        grpc_byte_buffer *bb,
                                        const ProtobufCFieldDescriptor *rid,
                                        uint8_t digest[STM_REQUEST_ID_DIGEST],
                                        struct stm_error *err) {
  grpc_byte_buffer_reader r;
  if (bb == NULL || !grpc_byte_buffer_reader_init(&r, bb))
    return NULL;
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  ProtobufCMessage *m = NULL;
  if (stm_wire_check_strings(desc, GRPC_SLICE_START_PTR(s),
                             GRPC_SLICE_LENGTH(s), err) == 0)
    m = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(s),
                                  GRPC_SLICE_START_PTR(s));
  /* Only requests that carry a request_id pay for the digest that tells
   * a retry from a different request reusing the id. */
  if (m && rid && (*(const char *const *)((const char *)m + rid->offset))[0])
    crypto_generichash(digest, STM_REQUEST_ID_DIGEST, GRPC_SLICE_START_PTR(s),
                       GRPC_SLICE_LENGTH(s), NULL, 0);
  grpc_slice_unref(s);
  return m;
}

/* A write with a request_id: answer a retry from the first outcome, or
 * queue it behind a first call still running. Returns true when the
 * handler should run. */
static bool check_request_id(struct stm_grpc_call *c,
                             const ProtobufCFieldDescriptor *rid,
                             const uint8_t digest[STM_REQUEST_ID_DIGEST]) {
  const char *id = *(const char *const *)((const char *)c->req + rid->offset);
  size_t len = strlen(id);
  if (len == 0)
    return true;
  bool printable = len <= STM_REQUEST_ID_MAX;
  for (size_t i = 0; printable && i < len; i++)
    printable = id[i] > 0x20 && id[i] < 0x7f;
  if (!printable) {
    stm_grpc_call_fail(
        c, GRPC_STATUS_INVALID_ARGUMENT,
        "request_id must be 1-%d bytes of printable ASCII without "
        "spaces",
        STM_REQUEST_ID_MAX);
    return false;
  }
  void *answer = NULL;
  size_t answer_len = 0;
  switch (stm_request_ids_begin(c->srv->request_ids, c->method, id, digest, c,
                                stm_clock_mono_ns(), &answer, &answer_len)) {
  case STM_REQUEST_ID_NEW:
    c->rid = strdup(id);
    if (c->rid == NULL) { /* without memory: run it, remembered by nobody */
      size_t n = 0;
      void **w = stm_request_ids_finish(c->srv->request_ids, c->method, id,
                                        false, NULL, 0, stm_clock_mono_ns(),
                                        &n);
      for (size_t i = 0; i < n; i++)
        stm_grpc_call_fail(w[i], GRPC_STATUS_UNAVAILABLE,
                           "out of memory; retry the request");
      free(w);
    }
    return true;
  case STM_REQUEST_ID_WAITING:
    return false; /* answered when the first call ends */
  case STM_REQUEST_ID_MISMATCH:
    stm_grpc_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT,
                       "request_id \"%s\" was already used for a different "
                       "request; use a new request_id per distinct write",
                       id);
    return false;
  case STM_REQUEST_ID_DONE:
  default: {
    grpc_slice s = grpc_slice_from_copied_buffer(answer, answer_len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    free(answer);
    start_answer(c, GRPC_STATUS_OK, NULL, bb);
    return false;
  }
  }
}

static void on_request(struct request_slot *slot, bool ok) {
  struct worker *w = slot->w;
  struct stm_grpc_server *srv = w->srv;
  if (!ok) { /* the server is shutting down: nothing arrived */
    grpc_metadata_array_destroy(&slot->md);
    free(slot);
    return;
  }
  if (!atomic_load(&srv->shutting_down))
    post_request(w, slot->method);
  struct stm_grpc_call *c = calloc(1, sizeof *c);
  if (c == NULL)
    abort();
  atomic_fetch_add(&srv->in_flight, 1);
  c->srv = srv;
  c->method = slot->method;
  c->call = slot->call;
  c->deadline = slot->deadline;
  c->md = slot->md;
  c->start_ns = stm_clock_mono_ns();
  const struct stm_grpc_method *m = &srv->methods[slot->method];
  size_t slot_method = slot->method;
  grpc_byte_buffer *payload = slot->payload;
  free(slot);
  if (m->handler == NULL) {
    if (payload)
      grpc_byte_buffer_destroy(payload);
    stm_grpc_call_fail(
        c, GRPC_STATUS_UNIMPLEMENTED,
        "%s is part of the API but not implemented by this server "
        "version yet",
        m->path);
    return;
  }
  struct stm_error err;
  stm_error_clear(&err);
  const ProtobufCFieldDescriptor *rid =
      srv->request_ids ? srv->rid_fields[slot_method] : NULL;
  uint8_t digest[STM_REQUEST_ID_DIGEST];
  c->req = decode_request(m->request, payload, rid, digest, &err);
  if (payload)
    grpc_byte_buffer_destroy(payload);
  if (c->req == NULL) {
    if (err.code)
      stm_grpc_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", err.message);
    else
      stm_grpc_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT,
                         "cannot parse the request as %s", m->request->name);
    return;
  }
  if (rid && !check_request_id(c, rid, digest))
    return;
  m->handler(c, c->req, srv->ctx);
}

static void on_generic(struct generic_slot *slot, bool ok) {
  struct worker *w = slot->w;
  struct stm_grpc_server *srv = w->srv;
  if (!ok) {
    grpc_call_details_destroy(&slot->details);
    grpc_metadata_array_destroy(&slot->md);
    free(slot);
    return;
  }
  if (!atomic_load(&srv->shutting_down))
    post_generic(w);
  struct stm_grpc_call *c = calloc(1, sizeof *c);
  if (c == NULL)
    abort();
  atomic_fetch_add(&srv->in_flight, 1);
  c->srv = srv;
  c->method = srv->method_count;
  c->call = slot->call;
  c->deadline = slot->details.deadline;
  c->md = slot->md;
  c->details = slot->details;
  c->generic = true;
  c->start_ns = stm_clock_mono_ns();
  free(slot);
  stm_grpc_call_fail(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method %.*s",
                     (int)GRPC_SLICE_LENGTH(c->details.method),
                     (const char *)GRPC_SLICE_START_PTR(c->details.method));
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  grpc_event ev;
  while (stm_rpc_cq_next(w->cq, &ev)) {
    switch (*(enum tag_kind *)ev.tag) {
    case TAG_REQUEST:
      on_request(ev.tag, ev.success);
      break;
    case TAG_GENERIC:
      on_generic(ev.tag, ev.success);
      break;
    case TAG_CALL_DONE:
      call_free(ev.tag);
      break;
    case TAG_STREAM_SEND:
    case TAG_STREAM_CLOSE:
    case TAG_STREAM_STATUS:
      on_stream_event(ev.tag, ev.success);
      break;
    case TAG_SHUTDOWN:
      pthread_mutex_lock(&w->srv->lock);
      w->srv->shutdown_done = true;
      pthread_cond_broadcast(&w->srv->cond);
      pthread_mutex_unlock(&w->srv->lock);
      break;
    }
  }
  return NULL;
}

static void server_free(struct stm_grpc_server *s) {
  free(s->workers);
  free(s->handles);
  free(s->rid_fields);
  free(s->stats);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->cond);
  free(s);
}

int stm_grpc_server_start(const struct stm_grpc_server_options *opts,
                          struct stm_grpc_server **out, int *bound_port,
                          struct stm_error *err) {
  struct stm_grpc_server *s = calloc(1, sizeof *s);
  if (s == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  test_hook_read();
  s->worker_count = opts->cq_threads < 1 ? 1 : opts->cq_threads;
  s->methods = opts->methods;
  s->method_count = opts->method_count;
  s->ctx = opts->ctx;
  s->workers = calloc((size_t)s->worker_count, sizeof *s->workers);
  s->handles = calloc(opts->method_count + 1, sizeof *s->handles);
  s->rid_fields = calloc(opts->method_count + 1, sizeof *s->rid_fields);
  s->request_ids = opts->request_ids;
  for (size_t i = 0; s->rid_fields && i < opts->method_count; i++)
    if (opts->methods[i].request)
      s->rid_fields[i] = protobuf_c_message_descriptor_get_field_by_name(
          opts->methods[i].request, "request_id");
  s->stats = calloc(opts->method_count + 1, sizeof *s->stats);
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->cond, NULL);
  if (!s->workers || !s->handles || !s->stats || !s->rid_fields) {
    server_free(s);
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  }
  grpc_arg args[] = {
      {.type = GRPC_ARG_INTEGER,
       .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
       .value.integer = opts->max_message_bytes},
      {.type = GRPC_ARG_INTEGER,
       .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
       .value.integer = 64 * 1024 * 1024},
      /* One listener per address: a second server on the same port must
       * fail instead of silently sharing it. */
      {.type = GRPC_ARG_INTEGER,
       .key = GRPC_ARG_ALLOW_REUSEPORT,
       .value.integer = 0},
      /* gRPC 1.51 cannot cap incoming connections, and running out of
       * descriptors kills its listener (listener_probe.h): a peer that
       * connects and never speaks HTTP/2 holds its descriptor for 10 s,
       * not the default 120 s. */
      {.type = GRPC_ARG_INTEGER,
       .key = GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
       .value.integer = HANDSHAKE_TIMEOUT_MS},
  };
  grpc_channel_args ca = {.num_args = sizeof args / sizeof args[0],
                          .args = args};
  s->server = grpc_server_create(&ca, NULL);
  for (size_t i = 0; i < s->method_count; i++)
    s->handles[i] = grpc_server_register_method(
        s->server, s->methods[i].path, NULL,
        GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  for (int i = 0; i < s->worker_count; i++) {
    s->workers[i].srv = s;
    s->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->workers[i].cq, NULL);
  }
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  int port = grpc_server_add_http2_port(s->server, opts->listen, creds);
  grpc_server_credentials_release(creds);
  if (port == 0) {
    grpc_server_destroy(s->server);
    for (int i = 0; i < s->worker_count; i++) {
      grpc_completion_queue_shutdown(s->workers[i].cq);
      stm_rpc_cq_drain(s->workers[i].cq);
      grpc_completion_queue_destroy(s->workers[i].cq);
    }
    server_free(s);
    return stm_error_set(err, STM_EUNAVAIL, "grpc-listen",
                         "cannot listen for gRPC on %s (address in use or "
                         "invalid)",
                         opts->listen);
  }
  grpc_server_start(s->server);
  for (int i = 0; i < s->worker_count; i++) {
    for (size_t m = 0; m < s->method_count; m++)
      for (int k = 0; k < SLOTS_PER_METHOD; k++)
        post_request(&s->workers[i], m);
    for (int k = 0; k < 2; k++)
      post_generic(&s->workers[i]);
    pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
  }
  if (bound_port)
    *bound_port = port;
  *out = s;
  return 0;
}

static bool wait_shutdown(struct stm_grpc_server *s, int ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&s->lock);
  while (!s->shutdown_done)
    if (pthread_cond_timedwait(&s->cond, &s->lock, &until) != 0)
      break;
  bool done = s->shutdown_done;
  pthread_mutex_unlock(&s->lock);
  return done;
}

/* Wait until the shutdown tag arrives or no call is in flight (idle client
 * connections alone hold the tag back until they close), at most ms. */
static bool wait_calls_done(struct stm_grpc_server *s, int ms) {
  for (int waited = 0; waited < ms; waited += 10) {
    if (wait_shutdown(s, 0) || atomic_load(&s->in_flight) == 0)
      return true;
    struct timespec tick = {0, 10 * 1000000L};
    nanosleep(&tick, NULL);
  }
  return atomic_load(&s->in_flight) == 0;
}

void stm_grpc_server_shutdown(struct stm_grpc_server *s, int grace_ms) {
  if (s == NULL || atomic_exchange(&s->shutting_down, true))
    return;
  grpc_server_shutdown_and_notify(s->server, s->workers[0].cq, &shutdown_tag);
  if (!wait_calls_done(s, grace_ms))
    stm_log_warn("shutdown: %d calls still running after %d ms; cancelling "
                 "them",
                 atomic_load(&s->in_flight), grace_ms);
  /* Every call we answered is done (or out of time): cancelling also
   * closes idle client connections, which releases the shutdown tag. */
  if (!wait_shutdown(s, 0)) {
    grpc_server_cancel_all_calls(s->server);
    wait_shutdown(s, 60000);
  }
}

void stm_grpc_server_delete(struct stm_grpc_server *s) {
  if (s == NULL)
    return;
  stm_grpc_server_shutdown(s, 0);
  grpc_server_destroy(s->server);
  for (int i = 0; i < s->worker_count; i++)
    grpc_completion_queue_shutdown(s->workers[i].cq);
  for (int i = 0; i < s->worker_count; i++) {
    pthread_join(s->workers[i].thread, NULL);
    grpc_completion_queue_destroy(s->workers[i].cq);
  }
  server_free(s);
}

char *stm_grpc_server_metrics(struct stm_grpc_server *s) {
  struct stm_buf b;
  stm_buf_init(&b);
  stm_buf_printf(&b, "# HELP stemedb_grpc_requests_total gRPC calls handled, "
                     "by method and status code.\n"
                     "# TYPE stemedb_grpc_requests_total counter\n");
  for (size_t m = 0; m <= s->method_count; m++) {
    const char *name = m < s->method_count ? s->methods[m].path : "unknown";
    for (int c = 0; c < STATUS_CODES; c++) {
      uint_fast64_t v = atomic_load(&s->stats[m].by_code[c]);
      if (v)
        stm_buf_printf(&b,
                       "stemedb_grpc_requests_total{method=\"%s\",code=\"%s\"}"
                       " %llu\n",
                       name, stm_rpc_code_name((grpc_status_code)c),
                       (unsigned long long)v);
    }
  }
  stm_buf_printf(&b, "# HELP stemedb_grpc_request_seconds_total Time spent "
                     "in gRPC calls, by method.\n"
                     "# TYPE stemedb_grpc_request_seconds_total counter\n");
  for (size_t m = 0; m < s->method_count; m++) {
    uint_fast64_t ns = atomic_load(&s->stats[m].total_ns);
    if (ns)
      stm_buf_printf(&b,
                     "stemedb_grpc_request_seconds_total{method=\"%s\"} "
                     "%.6f\n",
                     s->methods[m].path, (double)ns / 1e9);
  }
  if (stm_buf_put_u8(&b, 0) != 0) {
    stm_buf_destroy(&b);
    return NULL;
  }
  return (char *)b.data; /* ownership passes to the caller */
}
