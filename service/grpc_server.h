/*
 * grpc_server.h - the gRPC C core completion-queue engine of the server:
 * registered unary methods dispatched to handlers, a generic catch-all that
 * answers UNIMPLEMENTED (unknown methods would otherwise hang, see
 * docs/dev-notes.md), per-method request counters, and orderly shutdown.
 *
 * Threads: `cq_threads` threads each own a completion queue and run the
 * handlers of the calls that arrive on it. A handler may answer at once or
 * later from any thread (e.g. the storage writer thread after fdatasync),
 * with exactly one stm_grpc_call_reply / stm_grpc_call_fail per call.
 */
#ifndef STM_GRPC_SERVER_H
#define STM_GRPC_SERVER_H

#include "common/error.h"

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stm_grpc_server;
struct stm_grpc_call;
struct stm_request_ids;

/*
 * A unary handler. `req` is the decoded request, owned by the call (freed
 * when the call ends). `ctx` is the server's user context.
 */
typedef void (*stm_grpc_unary_cb)(struct stm_grpc_call *call,
                                  const ProtobufCMessage *req, void *ctx);

struct stm_grpc_method {
  const char *path; /* "/stemedb.v1.StemeDB/Assert" */
  const ProtobufCMessageDescriptor *request;
  stm_grpc_unary_cb handler; /* NULL: answers UNIMPLEMENTED */
};

/*
 * Called on the completion-queue thread for every call of a registered
 * method before its request is decoded (authentication, rate limits).
 * Returns true to go on; false after answering the call itself
 * (stm_grpc_call_fail).
 */
typedef bool (*stm_grpc_gate_cb)(struct stm_grpc_call *call, const char *path,
                                 void *ctx);

/*
 * Called like the gate, after the request is decoded (`req`) and a retried
 * request_id was answered from memory (quotas that depend on the request).
 * Returns true to go on; false after answering the call itself.
 */
typedef bool (*stm_grpc_admit_cb)(struct stm_grpc_call *call, const char *path,
                                  const ProtobufCMessage *req, void *ctx);

struct stm_grpc_server_options {
  const char *listen; /* "host:port"; port 0 picks a free one */
  const struct stm_grpc_method *methods; /* borrowed; must outlive the server */
  size_t method_count;
  int cq_threads;        /* 1..16 */
  int max_message_bytes; /* larger requests are RESOURCE_EXHAUSTED */
  void *ctx;             /* handed to every handler */
  /* Borrowed, nullable: remembers the outcome of requests whose message
   * has a non-empty `request_id` field (request_ids.h). */
  struct stm_request_ids *request_ids;
  stm_grpc_gate_cb gate;   /* nullable; ctx is its context too */
  stm_grpc_admit_cb admit; /* nullable */
  /* Borrowed, nullable: the listener's credentials (TLS); NULL: insecure. */
  grpc_server_credentials *creds;
};

/*
 * Create, bind and start serving. Requires grpc_init(). On success returns 0
 * and *out; *bound_port receives the port actually bound. Returns
 * STM_EUNAVAIL (with a message) when the address cannot be bound.
 */
int stm_grpc_server_start(const struct stm_grpc_server_options *opts,
                          struct stm_grpc_server **out, int *bound_port,
                          struct stm_error *err);

/*
 * Stop accepting new calls and wait up to grace_ms for in-flight calls to
 * finish, then cancel the rest. Handlers may still complete calls after
 * this returns; call stm_grpc_server_delete once they cannot any more.
 */
void stm_grpc_server_shutdown(struct stm_grpc_server *s, int grace_ms);
/* Destroy the server, drain and join the completion-queue threads. */
void stm_grpc_server_delete(struct stm_grpc_server *s);

/*
 * Answer a call with a message (packed before return; `resp` stays the
 * caller's) and status OK. Thread-safe; ends the call.
 */
void stm_grpc_call_reply(struct stm_grpc_call *call,
                         const ProtobufCMessage *resp);
/* Answer with an error status and a message. Thread-safe; ends the call. */
void stm_grpc_call_fail(struct stm_grpc_call *call, grpc_status_code code,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The server's user context (stm_grpc_server_options.ctx). */
void *stm_grpc_call_context(const struct stm_grpc_call *call);
/* Who the gate authenticated ("key:ID name"), or NULL; the value is
 * copied (cut to 127 bytes). */
void stm_grpc_call_set_principal(struct stm_grpc_call *call, const char *who);
const char *stm_grpc_call_principal(const struct stm_grpc_call *call);
/* Add trailing metadata sent with the call's status, whatever it is
 * (rate-limit and quota counters). `key` is a static lowercase string,
 * `value` is copied; beyond STM_GRPC_MAX_TRAILERS entries it is dropped.
 * Only before the call is answered, from the thread that owns it. */
#define STM_GRPC_MAX_TRAILERS 8
void stm_grpc_call_add_trailer(struct stm_grpc_call *call, const char *key,
                               const char *value);
/* The same with a decimal number as the value. */
void stm_grpc_call_add_trailer_u64(struct stm_grpc_call *call, const char *key,
                                   uint64_t value);
/* Peer address ("ipv4:127.0.0.1:5555"), owned by the call. */
const char *stm_grpc_call_peer(struct stm_grpc_call *call);
/* Copy the first value of request metadata `key` (lowercase) into buf,
 * cut to len - 1 bytes and NUL-terminated. False when absent. */
bool stm_grpc_call_metadata(const struct stm_grpc_call *call, const char *key,
                            char *buf, size_t len);

/*
 * Server streaming. A handler turns its call into a stream with
 * stm_grpc_stream_open instead of answering; then it may have at most one
 * stm_grpc_stream_send outstanding (the callback reports its completion)
 * and ends with exactly one stm_grpc_stream_finish, issued while no send
 * is outstanding. Callbacks run on completion-queue threads:
 *   STM_GRPC_STREAM_SENT   the last send completed; ok false: the client is gone
 *   STM_GRPC_STREAM_CLOSED the client closed or cancelled (ok false) the call,
 *                     or the call ended after finish (ok true)
 *   STM_GRPC_STREAM_DONE   every batch has completed; the call is freed right
 *                     after the callback returns. Always the last one.
 */
enum stm_grpc_stream_event {
  STM_GRPC_STREAM_SENT,
  STM_GRPC_STREAM_CLOSED,
  STM_GRPC_STREAM_DONE
};
typedef void (*stm_grpc_stream_cb)(void *user, enum stm_grpc_stream_event ev,
                                   bool ok);

/* Returns 0; or non-zero after answering the call with INTERNAL itself
 * (the callback is then never called). */
int stm_grpc_stream_open(struct stm_grpc_call *call, stm_grpc_stream_cb cb,
                         void *user);
/* Send one message; takes ownership of `msg` in every case. Returns 0 (a
 * STM_GRPC_STREAM_SENT follows) or non-zero (none follows: treat as gone).
 * Called from a thread other than the call's completion-queue thread, the
 * call may already be freed when it returns 0 (a cancelled call's batches
 * fail at once, and SENT, finish and DONE can all run meanwhile): touch
 * neither the call nor the callback's state after it. */
int stm_grpc_stream_send(struct stm_grpc_call *call, grpc_slice msg);
/* End the stream with a status. `msg` is copied. */
void stm_grpc_stream_finish(struct stm_grpc_call *call, grpc_status_code code,
                            const char *msg);

/* Append Prometheus text for the per-method counters to a malloc'd string
 * builder: returns a malloc'd NUL-terminated string the caller frees. */
char *stm_grpc_server_metrics(struct stm_grpc_server *s);

#endif
