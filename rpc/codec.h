/*
 * codec.h - protobuf-c messages <-> gRPC byte buffers, and gRPC client
 * helpers shared by the gateway, the CLI, the benchmark and (later) the
 * replication transport. gRPC types stay in rpc/, service/ and gateway/.
 */
#ifndef STM_RPC_CODEC_H
#define STM_RPC_CODEC_H

#include "common/error.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

/* Pack a message into a new byte buffer. Caller owns it
 * (grpc_byte_buffer_destroy after the send batch completes). */
grpc_byte_buffer *stm_rpc_pack(const ProtobufCMessage *msg);

/*
 * Unpack a received buffer (may be NULL: returns NULL). Does not take
 * ownership of bb. Returns a message to free with
 * protobuf_c_message_free_unpacked(msg, NULL), or NULL on garbage.
 */
ProtobufCMessage *stm_rpc_unpack(const ProtobufCMessageDescriptor *desc,
                                 grpc_byte_buffer *bb);

/* Insecure channel to "host:port", 64 MiB receive limit, reconnect backoff
 * capped at 2 s (gRPC's default 120 s would leave a client of a restarted
 * server waiting for minutes). Requires grpc_init(). */
grpc_channel *stm_rpc_channel_new(const char *target);
/* The same with a connection of its own: gRPC shares subchannels between
 * channels to one target unless asked not to (benchmark clients that
 * want N connections open N of these). */
grpc_channel *stm_rpc_channel_new_unshared(const char *target);

struct stm_rpc_status {
  grpc_status_code code;
  char message[512];
};

/*
 * The API key that every later stm_rpc_call / stm_rpc_call_raw sends as
 * metadata "authorization: Bearer KEY" (NULL or "": none). Call before any
 * call starts (not thread-safe against calls in flight): the CLI sets
 * --api-key, the server its STEMEDB_ADMIN_KEY for calls to peers.
 */
void stm_rpc_set_api_key(const char *key);

/*
 * Credentials of every channel made afterwards by stm_rpc_channel_new*
 * (taken; NULL: plaintext again), e.g. TLS to a server (the gateway's
 * --server-ca). Thread-safe: channels made before keep the old ones (the
 * server replaces its peer credentials on SIGHUP).
 */
void stm_rpc_set_channel_credentials(grpc_channel_credentials *creds);
/* Incremented by each stm_rpc_set_channel_credentials: a cached channel
 * made under an older generation has stale credentials. */
unsigned stm_rpc_channel_credentials_generation(void);
/* A channel with exactly `args` (nullable) and the credentials above. */
grpc_channel *stm_rpc_channel_with_args(const char *target,
                                        const grpc_channel_args *args);

/* Option names that stm_rpc_tls_credentials' errors cite. */
struct stm_rpc_tls_names {
  const char *ca, *cert, *key; /* "server-ca", ... */
};

/*
 * TLS client credentials from PEM files: `ca` the roots that verify the
 * server's certificate against the name or IP dialled (NULL or "": gRPC's
 * default roots, GRPC_DEFAULT_SSL_ROOTS_FILE_PATH or the system bundle),
 * `cert` + `key` (both or neither) the client certificate for mTLS. Errors
 * name the option (STM_EINVAL). Requires grpc_init().
 */
int stm_rpc_tls_credentials(const char *ca, const char *cert, const char *key,
                            const struct stm_rpc_tls_names *names,
                            grpc_channel_credentials **out,
                            struct stm_error *err);

/*
 * One blocking unary call: `method` is "/pkg.Service/Method", `timeout_ms`
 * 0 means no deadline. On GRPC_STATUS_OK *resp receives the decoded reply
 * (caller frees with protobuf_c_message_free_unpacked). Returns the status
 * code; st (nullable) receives code and message. Thread-safe.
 */
grpc_status_code stm_rpc_call(grpc_channel *ch, const char *method,
                              const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc,
                              int timeout_ms, ProtobufCMessage **resp,
                              struct stm_rpc_status *st);

/*
 * The same blocking unary call on raw bytes (for peers whose messages we do
 * not generate code for, e.g. etcd in benchmarks). Does not take ownership
 * of `send`; on GRPC_STATUS_OK *recv receives the reply buffer (may be NULL
 * for an empty reply; caller destroys it).
 */
grpc_status_code stm_rpc_call_raw(grpc_channel *ch, const char *method,
                                  grpc_byte_buffer *send, int timeout_ms,
                                  grpc_byte_buffer **recv,
                                  struct stm_rpc_status *st);

/* Metadata entries stm_rpc_call_raw_md sends at most (more are dropped). */
#define STM_RPC_MAX_METADATA 8

/*
 * stm_rpc_call_raw with `nmd` extra metadata entries (borrowed for the
 * call). The process's default key (stm_rpc_set_api_key) is added unless
 * `md` carries an "authorization" entry of its own.
 */
grpc_status_code stm_rpc_call_raw_md(grpc_channel *ch, const char *method,
                                     const grpc_metadata *md, size_t nmd,
                                     grpc_byte_buffer *send, int timeout_ms,
                                     grpc_byte_buffer **recv,
                                     struct stm_rpc_status *st);

/* Block for the next completed operation on cq: true with *ev, false
 * once the queue is shut down and empty (the end of a serving loop). */
bool stm_rpc_cq_next(grpc_completion_queue *cq, grpc_event *ev);
/* Discard what is left on a queue already shut down, until it is empty
 * (for a queue no thread serves), so it can be destroyed. */
void stm_rpc_cq_drain(grpc_completion_queue *cq);

/* "OK", "INVALID_ARGUMENT", ... for a status code. */
const char *stm_rpc_code_name(grpc_status_code code);

#endif
