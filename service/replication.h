/*
 * replication.h - the data path of a cluster (issue 12): the server side of
 * Cluster.Replicate / MerkleSummary / FetchMissing / Sync, and anti-entropy
 * between the replicas of each shard.
 *
 * Records travel as ReplicatedRecord.stored: a kind byte and the storage
 * encoding (docs/formats.md), which carries every hashed field and the
 * origin's commit time; the receiver applies them with
 * stm_store_apply_claims/_record (idempotent: present records are counted
 * as already_present).
 *
 * Anti-entropy of shard S toward node N (stm_repl_sync_shard): compare the
 * Merkle nodes of S (16 children per level, storage/store.h) level by
 * level, descending only into children whose (digest, count) differ; under
 * a differing child that N lacks entirely, push everything (Replicate, in
 * batches); under one small enough (<= 4096 records on both sides) or deep
 * enough, push ours and pull theirs (FetchMissing of that bucket). Sources
 * are shard 0xffff and go to every node.
 *
 * A background thread runs it every `interval` (STEMEDB_ANTI_ENTROPY_
 * INTERVAL_MS, default 30000; 0 turns it off) for each shard this node
 * replicates, toward each other UP replica, and Cluster.Sync queues it at
 * once (force: also the shards this node holds but does not replicate,
 * pushed to their replicas: the runbook's bootstrap from one full node).
 */
#ifndef STM_SERVICE_REPLICATION_H
#define STM_SERVICE_REPLICATION_H

#include "grpc_server.h"
#include "service.h"

#include "common/buf.h"
#include "storage/store.h"

#include <stdbool.h>
#include <stdint.h>

#define STM_REPL_BATCH 8192 /* records per Replicate call */
#define STM_REPL_LEAF 4096  /* a Merkle bucket this small is exchanged */

/* Start the anti-entropy thread and plug into the cluster runtime (sync
 * function, shard counts). A no-op when clustering is off. 0 or an error. */
int stm_repl_start(struct stm_service *svc, struct stm_error *err);
/* Stop the thread (before the store and the cluster runtime go). */
void stm_repl_stop(void);

/* Append kind byte + storage encoding of a claim / record to out. */
int stm_repl_encode_claim(const struct stm_claim *c, struct stm_buf *out);
int stm_repl_encode_record(const struct stm_record *r, struct stm_buf *out);

struct stm_repl_progress {
  uint64_t sent;     /* records pushed (new on the target or not) */
  uint64_t applied;  /* of them, new on the target */
  uint64_t received; /* records pulled and applied here */
};

/*
 * Bring node `target` and this node to the same records of `shard`
 * (push_only: only send ours). Blocking; progress (nullable) is updated
 * as it goes. Returns 0, or an error naming the peer (STM_EIO for RPC
 * failures).
 */
int stm_repl_sync_shard(uint32_t shard, const char *target, bool push_only,
                        struct stm_repl_progress *progress,
                        struct stm_error *err);

/* Push records (stored encodings, each a kind byte + encoding) to node
 * `target` with Cluster.Replicate. *applied: how many were new there. */
int stm_repl_push(const char *target, const struct stm_buf *records,
                  const size_t *offsets, size_t n, int timeout_ms,
                  uint64_t *applied, struct stm_error *err);
/* A client write waits this long for a replica (a frozen one fails it
 * after this; SWIM then marks it DOWN and writes no longer wait). */
#define STM_REPL_WRITE_TIMEOUT_MS 3000

/*
 * Answer a client write (Assert, AssertBatch, Vote, StartEpoch, PutSource)
 * whose records hashes[0..n) (every `stride` bytes) are durable here:
 * not clustered, reply at once; clustered, send them to the other
 * replicas of their shards (a source: every UP node) on the replication
 * threads and reply `msg` (packed now) once every live replica has them
 * durable and at least write_quorum of `factor` copies exist, else
 * UNAVAILABLE with a message (what was stored stays; anti-entropy
 * completes it; a retry is safe). Any thread; never blocks.
 */
void stm_repl_reply_write(struct stm_grpc_call *call,
                          const ProtobufCMessage *msg, const uint8_t *hashes,
                          size_t stride, size_t n);

/* Server side (methods.c). */
void stm__handle_replicate(struct stm_grpc_call *call,
                           const ProtobufCMessage *msg, void *ctx);
void stm__handle_merkle_summary(struct stm_grpc_call *call,
                                const ProtobufCMessage *msg, void *ctx);
void stm__handle_fetch_missing(struct stm_grpc_call *call,
                               const ProtobufCMessage *msg, void *ctx);
void stm__handle_sync(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                      void *ctx);

#endif
