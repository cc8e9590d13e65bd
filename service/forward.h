/*
 * forward.h - read forwarding in a cluster (issue 12): a node that holds
 * no replica of a concept's shard sends the read to one that does, and a
 * read by hash that misses here is asked of the other UP nodes. A
 * forwarded call carries the metadata `x-stemedb-forwarded: <node id>`
 * and is always answered locally, so forwarding never loops. The peers
 * are called on forwarding threads (never on the handler's
 * completion-queue thread); a function that returns true has taken the
 * call and answers it from there.
 */
#ifndef STM_SERVICE_FORWARD_H
#define STM_SERVICE_FORWARD_H

#include "grpc_server.h"

#include <stdbool.h>

#define STM_FORWARD_HEADER "x-stemedb-forwarded"
#define STM_FORWARD_TIMEOUT_MS 10000

/* Was this call forwarded by another node? */
bool stm_forward_was_forwarded(const struct stm_grpc_call *call);

/* When clustered, not forwarded, and this node is not a replica of the
 * shard of concept_path: answer the call with a replica's answer to
 * `method` and return true. Else false (answer it locally). */
bool stm_forward_to_shard(struct stm_grpc_call *call,
                          const ProtobufCMessage *msg, const char *method,
                          const ProtobufCMessageDescriptor *resp_desc,
                          const char *concept_path);

/* After a local NOT_FOUND: ask each other UP node in turn; the first
 * answer other than NOT_FOUND answers the call, else NOT_FOUND with a
 * peer's message (true). False when not clustered, forwarded, or no other
 * node is UP (answer NOT_FOUND locally). */
bool stm_forward_to_any(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                        const char *method,
                        const ProtobufCMessageDescriptor *resp_desc);

/* ListConcepts in a cluster: this node's page (local[0..n), more) merged
 * with every other UP node's answer to the same request (sorted, unique,
 * cut to limit). True when it answered the call. */
bool stm_forward_list_concepts(struct stm_grpc_call *call,
                               const ProtobufCMessage *msg, char **local,
                               size_t n, bool more, size_t limit);

/* Query with include_descendants in a cluster: the descendants live in
 * other shards, so every UP node is asked and the results merged, one per
 * (concept, predicate), in path order, cut to limit. True when answered. */
bool stm_forward_merge_query(struct stm_grpc_call *call,
                             const ProtobufCMessage *msg,
                             const ProtobufCMessage *local_resp, size_t limit);

/* Stop the forwarding threads (the jobs queued are answered first). */
void stm_forward_stop(void);

#endif
