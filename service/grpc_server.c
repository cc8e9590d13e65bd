#include "grpc_internal.h"
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

static struct { enum tag_kind kind; } shutdown_tag = {TAG_SHUTDOWN};

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
      void **w =
          stm_request_ids_finish(c->srv->request_ids, c->method, id, false,
                                 NULL, 0, stm_clock_mono_ns(), &n);
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
    stm__grpc_start_answer(c, GRPC_STATUS_OK, NULL, bb);
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
  if (srv->gate && !srv->gate(c, m->path, srv->ctx)) {
    if (payload)
      grpc_byte_buffer_destroy(payload);
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
  if (srv->admit && !srv->admit(c, m->path, c->req, srv->ctx))
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
      stm__grpc_call_free(ev.tag);
      break;
    case TAG_STREAM_SEND:
    case TAG_STREAM_CLOSE:
    case TAG_STREAM_STATUS:
      stm__grpc_on_stream_event(ev.tag, ev.success);
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

/* The server object and its tables, before any gRPC object exists. */
static struct stm_grpc_server *
server_alloc(const struct stm_grpc_server_options *opts) {
  struct stm_grpc_server *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->worker_count = opts->cq_threads < 1 ? 1 : opts->cq_threads;
  s->methods = opts->methods;
  s->method_count = opts->method_count;
  s->ctx = opts->ctx;
  s->request_ids = opts->request_ids;
  s->gate = opts->gate;
  s->admit = opts->admit;
  s->workers = calloc((size_t)s->worker_count, sizeof *s->workers);
  s->handles = calloc(opts->method_count + 1, sizeof *s->handles);
  s->rid_fields = calloc(opts->method_count + 1, sizeof *s->rid_fields);
  s->stats = calloc(opts->method_count + 1, sizeof *s->stats);
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->cond, NULL);
  if (!s->workers || !s->handles || !s->stats || !s->rid_fields) {
    server_free(s);
    return NULL;
  }
  for (size_t i = 0; i < opts->method_count; i++)
    if (opts->methods[i].request)
      s->rid_fields[i] = protobuf_c_message_descriptor_get_field_by_name(
          opts->methods[i].request, "request_id");
  return s;
}

/* Create the C core server with our channel arguments, register every
 * method and a completion queue per worker. */
static void server_create(struct stm_grpc_server *s, int max_message_bytes) {
  grpc_arg args[] = {
      {.type = GRPC_ARG_INTEGER,
       .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
       .value.integer = max_message_bytes},
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
}

/* Undo server_create after a failed bind (nothing was started). */
static void server_uncreate(struct stm_grpc_server *s) {
  grpc_server_destroy(s->server);
  for (int i = 0; i < s->worker_count; i++) {
    grpc_completion_queue_shutdown(s->workers[i].cq);
    stm_rpc_cq_drain(s->workers[i].cq);
    grpc_completion_queue_destroy(s->workers[i].cq);
  }
}

int stm_grpc_server_start(const struct stm_grpc_server_options *opts,
                          struct stm_grpc_server **out, int *bound_port,
                          struct stm_error *err) {
  stm__grpc_test_hook_read();
  struct stm_grpc_server *s = server_alloc(opts);
  if (s == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  server_create(s, opts->max_message_bytes);
  grpc_server_credentials *creds =
      opts->creds ? opts->creds : grpc_insecure_server_credentials_create();
  int port = grpc_server_add_http2_port(s->server, opts->listen, creds);
  if (creds != opts->creds)
    grpc_server_credentials_release(creds);
  if (port == 0) {
    server_uncreate(s);
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
  struct timespec until =
      stm_clock_deadline(CLOCK_REALTIME, (int64_t)ms * 1000000);
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
  int64_t start = stm_clock_mono_ns();
  grpc_server_shutdown_and_notify(s->server, s->workers[0].cq, &shutdown_tag);
  if (!wait_calls_done(s, grace_ms))
    stm_log_warn("shutdown: %d calls still running after %d ms; cancelling "
                 "them",
                 atomic_load(&s->in_flight), grace_ms);
  /* Every call we answered is done (or out of time), but a stream's final
   * status may still sit behind flow-controlled messages a slow client has
   * not read yet: the rest of the grace lets it read them and leave on the
   * GOAWAY. Then cancelling closes connections held idle, which releases
   * the tag. */
  int64_t left_ms = grace_ms - (stm_clock_mono_ns() - start) / 1000000;
  if (!wait_shutdown(s, left_ms > 0 ? (int)left_ms : 0)) {
    grpc_server_cancel_all_calls(s->server);
    wait_shutdown(s, 60000);
  }
  /* The tag can arrive before the workers have handled the last queued
   * completions of our calls (a failed send, after which the stream still
   * starts its status batch): the queues must not shut down under them. */
  for (int waited = 0; atomic_load(&s->in_flight) > 0 && waited < 10000;
       waited += 10) {
    struct timespec tick = {0, 10 * 1000000L};
    nanosleep(&tick, NULL);
  }
  if (atomic_load(&s->in_flight) > 0)
    stm_log_error("shutdown: %d calls still unfinished after cancelling",
                  atomic_load(&s->in_flight));
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
