/*
 * index_records.h - the LevelDB key spaces of records (internal to
 * storage/). Layout, beside the claim keys of index.h:
 *
 *   'v' target[32] seq[8be]                 -> vote storage encoding
 *   'e' path 0x00 predicate 0x00 seq[8be]   -> epoch storage encoding
 *   's' id 0x00 seq[8be]                    -> source storage encoding
 *   'r' hash[32]                            -> u8 kind | u64be sequence
 *   'a' seq[8be]                            -> audit: u8 kind | hash[32]
 *        | i64le time | u8 op_len | op | u16le caller_len | caller
 *   'p' parent[32] child[32]                -> (empty)
 *   'k' concept_path                        -> (empty)
 *   'q' seq[8be]                            -> u8 kind | hash[32] (shared
 *                                              with claims, index.h)
 *
 * All written in the same batch as the group's claims and meta keys.
 */
#ifndef STM_INDEX_RECORDS_H
#define STM_INDEX_RECORDS_H

#include "index.h"
#include "records.h"

/* index.c: the raw DB handle and a raw batch put. */
void *stm__index_db(struct stm_index *idx);
void stm__index_batch_raw_put(struct stm_index_batch *b, const void *key,
                              size_t klen, const void *v, size_t vlen);

/* Queue the keys of a committed vote/epoch/source ('v'/'e'/'s', 'r', 'q'). */
int stm__index_put_record(struct stm_index_batch *b, const struct stm_record *r,
                          const void *encoded, size_t len);
/* Queue a claim's 'p' and 'k' keys. */
int stm__index_put_claim_extras(struct stm_index_batch *b,
                                const struct stm_claim *c);
/* Queue the audit entry of one write. */
int stm__index_put_audit(struct stm_index_batch *b,
                         const struct stm_audit_entry *a);
/* Latest state (writer): the kind and sequence of a stored record hash. */
int stm__index_find_record(struct stm_index *idx,
                           const uint8_t hash[STM_HASH_LEN], uint64_t *seq,
                           struct stm_error *err);
/* Latest state (writer): the number of the newest epoch of exactly
 * (path, predicate), 0 when none. */
int stm__index_last_epoch_number(struct stm_index *idx, const char *path,
                                 const char *predicate, uint64_t *number,
                                 struct stm_error *err);

#endif
