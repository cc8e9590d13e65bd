/*
 * grpc_internal.h - the engine's pieces shared by grpc_server.c (the
 * server: request slots, dispatch, workers, lifetime, metrics) and
 * grpc_call.c (one call: answering, request_id reporting, streaming).
 * Inside service/ only.
 */
#ifndef STM_GRPC_INTERNAL_H
#define STM_GRPC_INTERNAL_H

#include "grpc_server.h"

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

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
  stm_grpc_gate_cb gate;               /* NULL: every call goes on */
  stm_grpc_admit_cb admit;             /* NULL: every call goes on */
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
  char principal[128]; /* set by the gate; "" when none */
  grpc_metadata trailers[STM_GRPC_MAX_TRAILERS]; /* sent with the status */
  size_t n_trailers;
  /* Server streaming only. */
  stm_grpc_stream_cb stream_cb;
  void *stream_user;
  struct stream_tag send_tag, close_tag, status_tag;
  atomic_int stream_pending; /* RECV_CLOSE + final status batches */
  grpc_byte_buffer *send_bb;
  bool sent_initial;
};

/* Free a call whose batches have all completed (counts its status). */
void stm__grpc_call_free(struct stm_grpc_call *c);
/* Answer a unary call: report it to request_ids when it carries an id,
 * then send. Takes `resp`. */
void stm__grpc_call_finish(struct stm_grpc_call *c, grpc_status_code code,
                           const char *message, grpc_byte_buffer *resp);
/* Send the answer only (a retry answered from a remembered outcome). */
void stm__grpc_start_answer(struct stm_grpc_call *c, grpc_status_code code,
                            const char *message, grpc_byte_buffer *resp);
/* A completion of one of a stream's batches (worker thread). */
void stm__grpc_on_stream_event(struct stream_tag *t, bool ok);
/* Read the test hooks (a no-op unless built with STM_TEST_HOOKS). */
void stm__grpc_test_hook_read(void);

#endif
