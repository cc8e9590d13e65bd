/* stemedb.v1.StemeDB/Watch: validates the request and connects one gRPC
 * server stream to the watch hub (service/watch_hub.h). */
#include "auth.h"
#include "records_internal.h"
#include "service.h"
#include "service_internal.h"
#include "watch_hub.h"

#include "common/validate.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <grpc/slice.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* progress_interval_ms bounds: below 10 ms a progress event would cost
 * more than the events it stands for. */
#define PROGRESS_MIN_MS 10
#define PROGRESS_MAX_MS 3600000

struct watch_stream {
  struct stm_grpc_call *call;
  struct stm_watch_sub *sub;
  /* The API key the stream was opened with (auth required): a revocation
   * ends the stream before its next event. Written at subscribe, then
   * only by sink_send (one send at a time). */
  struct stm_auth *auth;
  char key_id[STM_AUTH_ID_LEN + 1];
  uint64_t revocations; /* stm_auth_revocations when last checked */
};

/* Has the stream's key been revoked since it was last checked? */
static bool key_revoked(struct watch_stream *w) {
  if (w->key_id[0] == '\0')
    return false;
  uint64_t n = stm_auth_revocations(w->auth);
  if (n == w->revocations)
    return false;
  w->revocations = n;
  return stm_auth_id_revoked(w->auth, w->key_id);
}

/* The key id of an authenticated call ("key:ID(name)", auth.c), if any;
 * false when it was revoked since the gate checked it (the count is read
 * first, so a later revocation is seen by key_revoked). */
static bool remember_key(struct watch_stream *w, struct stm_service *svc) {
  const char *who = stm_grpc_call_principal(w->call);
  if (!stm_auth_required(svc->auth) || who == NULL ||
      strncmp(who, "key:", 4) != 0)
    return true;
  size_t n = strcspn(who + 4, "(");
  if (n == 0 || n > STM_AUTH_ID_LEN)
    return true;
  w->auth = svc->auth;
  w->revocations = stm_auth_revocations(svc->auth);
  memcpy(w->key_id, who + 4, n);
  w->key_id[n] = '\0';
  return !stm_auth_id_revoked(w->auth, w->key_id);
}

static void buf_release(void *p) { stm_watch_buf_unref(p); }

static int sink_send(void *ctx, struct stm_watch_buf *b) {
  struct watch_stream *w = ctx;
  if (key_revoked(w)) {
    stm_watch_buf_unref(b);
    return STM_EPERM;
  }
  /* Zero-copy: the slice borrows the shared encoding and drops its
   * reference when gRPC is done with it. */
  grpc_slice s =
      grpc_slice_new_with_user_data((void *)b->data, b->len, buf_release, b);
  return stm_grpc_stream_send(w->call, s);
}

static grpc_status_code watch_status(int rc) {
  switch (rc) {
  case STM_ERANGE:
    return GRPC_STATUS_OUT_OF_RANGE;
  case STM_ETOOBIG:
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  case STM_ESHUTDOWN:
    return GRPC_STATUS_UNAVAILABLE;
  case STM_EUNAVAIL:
    return GRPC_STATUS_CANCELLED; /* the client went away: nobody reads it */
  case STM_EPERM:
    return GRPC_STATUS_UNAUTHENTICATED; /* its key was revoked (sink_send) */
  default:
    return stm_service_status(rc);
  }
}

static void sink_finish(void *ctx, int rc, const char *msg) {
  struct watch_stream *w = ctx;
  char why[96];
  if (rc == STM_EPERM && w->key_id[0]) {
    snprintf(why, sizeof why, "API key %s was revoked; this stream ends",
             w->key_id);
    msg = why;
  }
  if (w->call)
    stm_grpc_stream_finish(w->call, watch_status(rc), msg);
}

static const struct stm_watch_sink sink = {sink_send, sink_finish};

static void on_stream(void *user, enum stm_grpc_stream_event ev, bool ok) {
  struct watch_stream *w = user;
  switch (ev) {
  case STM_GRPC_STREAM_SENT:
    stm_watch_sub_sent(w->sub, ok);
    break;
  case STM_GRPC_STREAM_CLOSED:
    if (!ok)
      stm_watch_sub_close(w->sub);
    break;
  case STM_GRPC_STREAM_DONE:
    stm_watch_sub_unref(w->sub);
    free(w);
    break;
  }
}

static int parse_types(const Stemedb__V1__WatchRequest *req, uint32_t *mask,
                       struct stm_error *err) {
  *mask = 0;
  for (size_t i = 0; i < req->n_event_types; i++) {
    int t = (int)req->event_types[i];
    if (t < STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_CLAIM ||
        t > STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_SOURCE)
      return stm_error_set(err, STM_EINVAL, "event_types",
                           "event_types[%zu]: %d is not CLAIM, VOTE, EPOCH "
                           "or SOURCE",
                           i, t);
    *mask |= 1u << t;
  }
  return 0;
}

static int validate(const Stemedb__V1__WatchRequest *req,
                    struct stm_watch_filter *f, struct stm_error *err) {
  if (stm_validate_concept_prefix("concept_prefix", req->concept_prefix,
                                  strlen(req->concept_prefix), err) != 0)
    return STM_EINVAL;
  if (req->predicate[0] &&
      stm_validate_predicate("predicate", req->predicate,
                             strlen(req->predicate), err) != 0)
    return STM_EINVAL;
  uint32_t ms = req->progress_interval_ms;
  if (ms != 0 && (ms < PROGRESS_MIN_MS || ms > PROGRESS_MAX_MS))
    return stm_error_set(err, STM_EINVAL, "progress_interval_ms",
                         "progress_interval_ms: 0 (none) or %d..%d, got %u",
                         PROGRESS_MIN_MS, PROGRESS_MAX_MS, ms);
  *f = (struct stm_watch_filter){.concept_prefix = req->concept_prefix,
                                 .predicate = req->predicate,
                                 .progress_ms = ms,
                                 .start_sequence = req->start_sequence};
  return parse_types(req, &f->types, err);
}

void stm__handle_watch(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                       void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__WatchRequest *req = (const Stemedb__V1__WatchRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_watch_filter f;
  int rc = validate(req, &f, &err);
  if (rc) {
    stm__fail_rc(call, rc, &err);
    return;
  }
  if (svc->watch == NULL) {
    stm_grpc_call_fail(call, GRPC_STATUS_UNAVAILABLE, "watch hub not running");
    return;
  }
  struct watch_stream *w = calloc(1, sizeof *w);
  if (w == NULL) {
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  w->call = call;
  if (!remember_key(w, svc)) {
    free(w);
    stm_grpc_call_fail(call, GRPC_STATUS_UNAUTHENTICATED,
                       "unknown or revoked API key");
    return;
  }
  char client[STM__CALLER_MAX];
  stm__client_key(call, client, sizeof client);
  f.client = client;
  rc = stm_watch_hub_subscribe(svc->watch, &f, stm_grpc_call_peer(call), &sink,
                               w, &w->sub, &err);
  if (rc) {
    free(w);
    stm_grpc_call_fail(call, watch_status(rc), "%s",
                       err.message[0] ? err.message : stm_strerror(rc));
    return;
  }
  if (stm_grpc_stream_open(call, on_stream, w) != 0) {
    /* The call is answered; end the subscriber without touching it (finish
     * runs synchronously here, and never again after). */
    w->call = NULL;
    stm_watch_sub_close(w->sub);
    stm_watch_sub_unref(w->sub);
    free(w);
    return;
  }
  stm_watch_sub_start(w->sub);
}
