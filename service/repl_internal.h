/* Shared by replication.c (anti-entropy, the client side) and
 * handlers_replication.c (the server side). Not an interface: see
 * replication.h. */
#ifndef STM_SERVICE_REPL_INTERNAL_H
#define STM_SERVICE_REPL_INTERNAL_H

#include "replication.h"

#include "cluster_node.h"
#include "stemedb/v1/cluster.pb-c.h"

#define STM__REPL_MAX_PEERS 64

/* Received records, decoded: claims (one apply_claims call) and records
 * (one apply_record each), every pointer owned until taken. */
struct stm_repl_decoded {
  struct stm_claim *claims; /* malloc'd array */
  size_t nclaims;
  struct stm_record **records;
  size_t nrecords;
};
/* Decode ReplicatedRecord.stored values. 0 or STM_EINVAL naming
 * records[i] (another payload, a bad kind or a corrupt encoding). */
int stm__repl_decode(Stemedb__V1__ReplicatedRecord *const *recs, size_t n,
                     struct stm_repl_decoded *d, struct stm_error *err);
void stm__repl_decoded_free(struct stm_repl_decoded *d);

/* Encoded records to send (kind byte + storage encoding each). */
struct stm__repl_set {
  struct stm_buf data;
  size_t *off; /* n + 1 offsets into data */
  size_t n, cap;
};
void stm__repl_set_init(struct stm__repl_set *s);
void stm__repl_set_free(struct stm__repl_set *s);
/* Add the stored record `hash`: 0, STM_ENOTFOUND or an error. */
int stm__repl_set_add(struct stm__repl_set *s, struct stm_store *store,
                      const uint8_t hash[STM_HASH_LEN], struct stm_error *err);
/* Add every record of shard under Merkle node (prefix, nibbles), claims
 * first (a vote must find its claim). */
int stm__repl_set_bucket(struct stm__repl_set *s, struct stm_store *store,
                         uint32_t shard, const uint8_t *prefix,
                         unsigned nibbles, struct stm_error *err);

/* Protobuf views of set entries [from, from + n) (borrowing the set). */
struct stm__repl_msgs {
  Stemedb__V1__ReplicatedRecord *recs;
  Stemedb__V1__ReplicatedRecord **ptrs;
  size_t n;
};
int stm__repl_msgs_range(struct stm__repl_msgs *m,
                         const struct stm__repl_set *s, size_t from, size_t n);
int stm__repl_msgs_build(struct stm__repl_msgs *m,
                         const struct stm__repl_set *s);
void stm__repl_msgs_free(struct stm__repl_msgs *m);

/* Cluster.Sync: queue anti-entropy toward targets (none: every UP peer);
 * started[] gets their ids. 0 or STM_EINVAL naming target_nodes. */
int stm__repl_queue_sync(const char *const *targets, size_t n, bool force,
                         char started[][STM_NODE_ID_MAX + 1], size_t *nstarted,
                         struct stm_error *err);
/* Records sent / received by anti-entropy since start. */
void stm__repl_totals(struct stm_repl_progress *out);

/* Write coordination (repl_write.c): its threads. */
int stm__repl_write_start(struct stm_service *svc);
void stm__repl_write_stop(void);
/* A write to `peer` succeeded or failed: replication_lag_seconds{peer} is
 * the age of the oldest write it missed, until anti-entropy toward it
 * succeeds (replication.c retries a lagging UP peer every second). `why`
 * (nullable): the failure, logged once when the peer starts lagging. */
void stm__repl_lag_note(const char *peer, bool ok, const char *why);

#endif
