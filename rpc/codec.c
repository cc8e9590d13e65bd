#include "rpc/codec.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

grpc_byte_buffer *stm_rpc_pack(const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  grpc_slice s = grpc_slice_malloc(len);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

ProtobufCMessage *stm_rpc_unpack(const ProtobufCMessageDescriptor *desc,
                                 grpc_byte_buffer *bb) {
  if (bb == NULL)
    return NULL;
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb))
    return NULL;
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  ProtobufCMessage *m = protobuf_c_message_unpack(
      desc, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  return m;
}

/* stm_rpc_set_channel_credentials; NULL: plaintext. Replaced while channels
 * are being made (the server's peer credentials on SIGHUP), hence the lock;
 * grpc_channel_create takes its own reference. */
static pthread_mutex_t creds_lock = PTHREAD_MUTEX_INITIALIZER;
static grpc_channel_credentials *default_channel_creds;
static atomic_uint creds_generation;

void stm_rpc_set_channel_credentials(grpc_channel_credentials *creds) {
  pthread_mutex_lock(&creds_lock);
  grpc_channel_credentials *old = default_channel_creds;
  default_channel_creds = creds;
  atomic_fetch_add(&creds_generation, 1);
  pthread_mutex_unlock(&creds_lock);
  if (old)
    grpc_channel_credentials_release(old);
}

unsigned stm_rpc_channel_credentials_generation(void) {
  return atomic_load(&creds_generation);
}

grpc_channel *stm_rpc_channel_with_args(const char *target,
                                        const grpc_channel_args *args) {
  pthread_mutex_lock(&creds_lock);
  grpc_channel_credentials *creds = default_channel_creds
                                        ? default_channel_creds
                                        : grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(target, creds, args);
  if (creds != default_channel_creds)
    grpc_channel_credentials_release(creds);
  pthread_mutex_unlock(&creds_lock);
  return ch;
}

static grpc_channel *channel_new(const char *target, bool own_connection) {
  grpc_arg args[] = {
      {.type = GRPC_ARG_INTEGER,
       .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
       .value.integer = 64 * 1024 * 1024},
      {.type = GRPC_ARG_INTEGER,
       .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
       .value.integer = 250},
      {.type = GRPC_ARG_INTEGER,
       .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
       .value.integer = 250},
      /* A restarted server is reached again within a second (the gateway
       * answers 503 + Retry-After: 1 meanwhile); 800 ms + gRPC's 20 %
       * jitter stays under it. */
      {.type = GRPC_ARG_INTEGER,
       .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
       .value.integer = 800},
      {.type = GRPC_ARG_INTEGER,
       .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
       .value.integer = 1},
  };
  /* The last argument only for channels that want their own connection. */
  grpc_channel_args ca = {.num_args = sizeof args / sizeof args[0] -
                                      (own_connection ? 0 : 1),
                          .args = args};
  return stm_rpc_channel_with_args(target, &ca);
}

grpc_channel *stm_rpc_channel_new(const char *target) {
  return channel_new(target, false);
}

grpc_channel *stm_rpc_channel_new_unshared(const char *target) {
  return channel_new(target, true);
}

const char *stm_rpc_code_name(grpc_status_code code) {
  static const char *const names[] = {"OK",
                                      "CANCELLED",
                                      "UNKNOWN",
                                      "INVALID_ARGUMENT",
                                      "DEADLINE_EXCEEDED",
                                      "NOT_FOUND",
                                      "ALREADY_EXISTS",
                                      "PERMISSION_DENIED",
                                      "RESOURCE_EXHAUSTED",
                                      "FAILED_PRECONDITION",
                                      "ABORTED",
                                      "OUT_OF_RANGE",
                                      "UNIMPLEMENTED",
                                      "INTERNAL",
                                      "UNAVAILABLE",
                                      "DATA_LOSS",
                                      "UNAUTHENTICATED"};
  if ((int)code >= 0 && (size_t)code < sizeof names / sizeof names[0])
    return names[code];
  return "UNKNOWN";
}

/* Set once before any call (CLI start, server start); read-only after. */
static char *default_authorization;

void stm_rpc_set_api_key(const char *key) {
  free(default_authorization);
  default_authorization = NULL;
  if (key && *key) {
    size_t n = strlen(key) + 8;
    default_authorization = malloc(n);
    if (default_authorization)
      snprintf(default_authorization, n, "Bearer %s", key);
  }
}

grpc_status_code stm_rpc_call_raw(grpc_channel *ch, const char *method,
                                  grpc_byte_buffer *send, int timeout_ms,
                                  grpc_byte_buffer **recv,
                                  struct stm_rpc_status *st) {
  return stm_rpc_call_raw_md(ch, method, NULL, 0, send, timeout_ms, recv, st);
}

grpc_status_code stm_rpc_call_raw_md(grpc_channel *ch, const char *method,
                                     const grpc_metadata *md, size_t nmd,
                                     grpc_byte_buffer *send, int timeout_ms,
                                     grpc_byte_buffer **recv,
                                     struct stm_rpc_status *st) {
  *recv = NULL;
  if (nmd > STM_RPC_MAX_METADATA)
    nmd = STM_RPC_MAX_METADATA;
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  gpr_timespec deadline =
      timeout_ms > 0
          ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                         gpr_time_from_millis(timeout_ms, GPR_TIMESPAN))
          : gpr_inf_future(GPR_CLOCK_MONOTONIC);
  grpc_slice mslice = grpc_slice_from_static_string(method);
  grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS,
                                             cq, mslice, NULL, deadline, NULL);
  grpc_metadata_array init_md, trail_md;
  grpc_metadata_array_init(&init_md);
  grpc_metadata_array_init(&trail_md);
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  /* The caller's metadata, then the process's default key unless the
   * caller sent an authorization of its own. */
  grpc_metadata all[STM_RPC_MAX_METADATA + 1];
  size_t n_all = 0;
  bool has_auth = false;
  for (size_t i = 0; i < nmd; i++) {
    has_auth |= grpc_slice_str_cmp(md[i].key, "authorization") == 0;
    all[n_all++] = md[i];
  }
  if (default_authorization && !has_auth) {
    all[n_all].key = grpc_slice_from_static_string("authorization");
    all[n_all++].value = grpc_slice_from_static_string(default_authorization);
  }
  ops[0].data.send_initial_metadata.count = n_all;
  ops[0].data.send_initial_metadata.metadata = n_all ? all : NULL;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
  ops[5].data.recv_status_on_client.status = &code;
  ops[5].data.recv_status_on_client.status_details = &details;
  int tag = 0;
  grpc_call_error ce = grpc_call_start_batch(call, ops, 6, &tag, NULL);
  if (ce == GRPC_CALL_OK)
    grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME),
                                NULL);
  else
    code = GRPC_STATUS_INTERNAL;
  if (st) {
    st->code = code;
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n >= sizeof st->message)
      n = sizeof st->message - 1;
    memcpy(st->message, GRPC_SLICE_START_PTR(details), n);
    st->message[n] = '\0';
  }
  if (code != GRPC_STATUS_OK && *recv) {
    grpc_byte_buffer_destroy(*recv);
    *recv = NULL;
  }
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&init_md);
  grpc_metadata_array_destroy(&trail_md);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL,
                                     gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
             .type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  return code;
}

grpc_status_code stm_rpc_call(grpc_channel *ch, const char *method,
                              const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc,
                              int timeout_ms, ProtobufCMessage **resp,
                              struct stm_rpc_status *st) {
  *resp = NULL;
  grpc_byte_buffer *send = stm_rpc_pack(req), *recv = NULL;
  grpc_status_code code =
      stm_rpc_call_raw(ch, method, send, timeout_ms, &recv, st);
  grpc_byte_buffer_destroy(send);
  if (code == GRPC_STATUS_OK) {
    *resp = stm_rpc_unpack(resp_desc, recv);
    if (*resp == NULL) {
      code = GRPC_STATUS_INTERNAL;
      if (st) {
        st->code = code;
        snprintf(st->message, sizeof st->message, "cannot decode the reply");
      }
    }
  }
  if (recv)
    grpc_byte_buffer_destroy(recv);
  return code;
}

bool stm_rpc_cq_next(grpc_completion_queue *cq, grpc_event *ev) {
  for (;;) {
    *ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                     NULL);
    if (ev->type == GRPC_QUEUE_SHUTDOWN)
      return false;
    if (ev->type == GRPC_OP_COMPLETE)
      return true;
  }
}

void stm_rpc_cq_drain(grpc_completion_queue *cq) {
  grpc_event ev;
  while (stm_rpc_cq_next(cq, &ev)) {
  }
}
