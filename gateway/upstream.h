/*
 * upstream.h - the gateway's one gRPC channel to stemedb-server and its one
 * completion queue (DESIGN.md), for unary calls and for the Watch streams
 * of ws.c alike.
 *
 * One channel and one completion queue served by one thread (the "cq
 * thread"). Every tag on the queue starts with a struct
 * stm_gw_upstream_tag whose on_event the cq thread calls: unary calls use
 * the done queue below, streams (stm_gw_upstream_stream_call) handle their
 * batches themselves. The event-loop thread starts calls; each is one 6-op batch
 * (send metadata + message + close, receive metadata + message + status)
 * with its own deadline. When a batch completes, the cq thread appends the
 * call to a mutex-protected done queue and, if the queue was empty, calls
 * the wake callback (the gateway passes lws_cancel_service), so a burst of
 * completions costs one wake-up. The event-loop thread then drains the
 * queue with stm_gw_upstream_poll.
 *
 * Threads: stm_gw_upstream_start, _poll, _active, stm_gw_call_detach and
 * the stm_gw_call accessors belong to the event-loop thread only. The wake
 * callback runs on the cq thread. Requires grpc_init() before _new and
 * grpc_shutdown() only after _delete.
 */
#ifndef STM_GW_UPSTREAM_H
#define STM_GW_UPSTREAM_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

struct stm_gw_upstream;
struct stm_gw_call;

/* The head of every completion-queue tag: on_event runs on the cq thread
 * with the batch's success flag. */
struct stm_gw_upstream_tag {
  void (*on_event)(struct stm_gw_upstream_tag *tag, bool ok);
};

/* Called on the cq thread when finished calls are waiting to be polled. */
typedef void (*stm_gw_wake_cb)(void *arg);
/*
 * Called by stm_gw_upstream_poll for each finished call whose owner is
 * still attached. The call is freed right after the callback returns.
 */
typedef void (*stm_gw_done_cb)(struct stm_gw_call *call, void *owner,
                               void *arg);

/*
 * Open a channel to `target` ("host:port"; TLS when rpc/codec.h's channel
 * credentials are set) with short reconnect backoff (so a restarted server
 * is seen within a second) and start the cq
 * thread. Returns NULL when out of memory or the thread cannot start.
 * Connecting is lazy: an unreachable server shows up as UNAVAILABLE calls.
 */
struct stm_gw_upstream *
stm_gw_upstream_new(const char *target, stm_gw_wake_cb wake, void *wake_arg);

/*
 * Start `method` ("/stemedb.v1.StemeDB/Assert": a string that outlives the
 * upstream, e.g. a literal) with `req` (packed before return; stays the
 * caller's) and a deadline timeout_ms from now. `owner` is handed back to
 * the done callback. Returns 0 and *out (valid until the done callback
 * returns, or until detached), or STM_EIO when gRPC refused the batch.
 */
int stm_gw_upstream_start(struct stm_gw_upstream *up, const char *method,
                          const ProtobufCMessage *req, int timeout_ms,
                          void *owner, struct stm_gw_call **out);

/* As stm_gw_upstream_start, sending the HTTP client's address `client`
 * (copied; NULL or "": none) as metadata x-forwarded-for. */
int stm_gw_upstream_start_for(struct stm_gw_upstream *up, const char *method,
                              const ProtobufCMessage *req, int timeout_ms,
                              const char *client, void *owner,
                              struct stm_gw_call **out);

/* What the gateway forwards of its HTTP client (each copied; NULL or "":
 * none): its address as x-forwarded-for, its API key as authorization
 * ("Bearer KEY", checked by the server), its X-Agent-Id as x-agent-id. */
struct stm_gw_forward {
  const char *client, *authorization, *agent;
};

/* As stm_gw_upstream_start, forwarding `fw`. */
int stm_gw_upstream_start_as(struct stm_gw_upstream *up, const char *method,
                             const ProtobufCMessage *req, int timeout_ms,
                             const struct stm_gw_forward *fw, void *owner,
                             struct stm_gw_call **out);

/*
 * The owner is gone (its connection closed): cancel the RPC. The call is
 * then freed by a later poll without calling back. Do not use `call`
 * afterwards.
 */
void stm_gw_call_detach(struct stm_gw_call *call);

/* Drain the done queue; returns how many calls were handed to `cb`. */
size_t stm_gw_upstream_poll(struct stm_gw_upstream *up, stm_gw_done_cb cb,
                            void *arg);

/*
 * A streaming call of `method` (a string that outlives the upstream) on the
 * shared channel and queue, without deadline: the caller starts its
 * batches with tags that begin with a stm_gw_upstream_tag, cancels it when
 * done and unrefs it after its last batch. NULL when it cannot be created
 * (or after stm_gw_upstream_stop). Event-loop thread.
 */
grpc_call *stm_gw_upstream_stream_call(struct stm_gw_upstream *up,
                                       const char *method);

/* Calls started and not yet polled. */
size_t stm_gw_upstream_active(const struct stm_gw_upstream *up);

/* Accessors, valid inside the done callback. */
const char *stm_gw_call_method(const struct stm_gw_call *call);
grpc_status_code stm_gw_call_code(const struct stm_gw_call *call);
/* The server's rate-limit and quota trailers (x-ratelimit-*, x-quota-*,
 * retry-after) as HTTP header lines "name: value\r\n" into out; returns
 * the bytes written (lines that do not fit are left out). */
size_t stm_gw_call_limit_headers(const struct stm_gw_call *call, char *out,
                                 size_t len);
/* The status details (server message or transport error); "" if none. */
const char *stm_gw_call_message(const struct stm_gw_call *call);
/*
 * Decode the reply as `desc`. Caller owns the result; free with
 * protobuf_c_message_free_unpacked(msg, NULL). NULL when there was no
 * message or it did not decode.
 */
ProtobufCMessage *stm_gw_call_reply(const struct stm_gw_call *call,
                                    const ProtobufCMessageDescriptor *desc);

/*
 * Cancel every call in flight, shut the completion queue down and join the
 * cq thread: the wake callback is never called after this returns. Calls
 * stay queued (and detachable) until stm_gw_upstream_delete.
 */
void stm_gw_upstream_stop(struct stm_gw_upstream *up);

/* Stop if needed, free every remaining call and the channel. NULL is a
 * no-op. */
void stm_gw_upstream_delete(struct stm_gw_upstream *up);

#endif
