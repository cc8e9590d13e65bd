/*
 * index_records.h - the LevelDB key spaces of records (internal to
 * storage/). Layout, beside the claim keys of index.h:
 *
 *   'v' target[32] seq[8be]                 -> vote storage encoding
 *   'e' path 0x00 predicate 0x00 seq[8be]   -> epoch storage encoding
 *   's' id 0x00 seq[8be]                    -> source storage encoding
 *   'y' key_id 0x00 seq[8be]                -> API key or key revocation
 *        storage encoding (index_keys.c)
 *   'r' hash[32]                            -> u8 kind | u64be sequence
 *   'p' parent[32] child[32]                -> (empty)
 *   'k' concept_path                        -> (empty)
 *   'q' seq[8be]                            -> the log (index.h): the
 *        audit entry u8 kind | hash[32] | i64le time | u8 op_len | op |
 *        u16le caller_len | caller, then for a vote, epoch or source its
 *        storage encoding (so a change feed reads any write by sequence)
 *   'h' shard[2be] hash[32]                 -> u8 kind: the per-shard
 *        record-hash index (index_shard.c; sources in shard 0xffff)
 *
 * All written in the same batch as the group's claims and meta keys.
 */
#ifndef STM_INDEX_RECORDS_H
#define STM_INDEX_RECORDS_H

#include "storage/index.h"
#include "storage/records.h"
#include "storage/store.h"
#include "storage/view.h"

/* Queue the keys of a committed vote/epoch/source ('v'/'e'/'s', 'r'); its
 * 'q' entry comes from stm__index_put_audit. */
int stm__index_put_record(struct stm_index_batch *b, const struct stm_record *r,
                          const void *encoded, size_t len);
/* Queue a claim's 'p' key, and its 'k' key unless `concept` is false (the
 * writer knows the concept is stored already). */
int stm__index_put_claim_extras(struct stm_index_batch *b,
                                const struct stm_claim *c, bool concept);
/* Queue the 'q' log entry of one write: its audit entry plus, for a
 * record, its storage encoding (record_len 0 for a claim). */
int stm__index_put_audit(struct stm_index_batch *b,
                         const struct stm_audit_entry *a, const void *record,
                         size_t record_len);
/* Latest state (writer): the kind and sequence of a stored record hash. */
int stm__index_find_record(struct stm_index *idx,
                           const uint8_t hash[STM_HASH_LEN], uint64_t *seq,
                           struct stm_error *err);
/* Latest state (writer): the newest epoch of exactly (path, predicate)
 * into an uninitialized *out (destroy after 0); STM_ENOTFOUND when none. */
int stm__index_last_epoch(struct stm_index *idx, const char *path,
                          const char *predicate, struct stm_epoch *out,
                          struct stm_error *err);

/* ---- the shard index and replication (index_shard.c) ---- */

int stm__index_put_shard(struct stm_index_batch *b, uint32_t shard,
                         const uint8_t hash[STM_HASH_LEN],
                         enum stm_record_kind kind);
/* Latest state (writer): when record `hash` is stored with a later commit
 * time than time_ns, queue its keys ('v'/'e'/'s', 'q') re-timed (*done). */
int stm__index_retime_record(struct stm_index *idx, struct stm_index_batch *b,
                             const uint8_t hash[STM_HASH_LEN], int64_t time_ns,
                             bool *done, struct stm_error *err);
/* Parse a 'q' value (the audit, then a record's encoding in *rest). */
int stm__index_parse_log(uint64_t seq, const uint8_t *val, size_t vlen,
                         struct stm_audit_entry *a, const uint8_t **rest,
                         size_t *rest_len, struct stm_error *err);
/* Assertion.epoch of claim c: how many visible epochs of its exact
 * (concept, predicate) scope come before it in (time, hash) order. */
struct stm__index_rd;
int stm__index_claim_epoch(const struct stm__index_rd *r,
                           const struct stm_claim *c,
                           const struct stm_read_view *view, uint64_t *number,
                           struct stm_error *err);
int stm_index_merkle_children(struct stm_index *idx, uint32_t shard,
                              const uint8_t *prefix, unsigned nibbles,
                              struct stm_merkle_node out[STM_MERKLE_FANOUT],
                              struct stm_error *err);
int stm_index_shard_hashes(struct stm_index *idx, uint32_t shard,
                           const uint8_t *prefix, unsigned nibbles,
                           stm_store_hash_cb cb, void *ctx,
                           struct stm_error *err);
int stm_index_shard_records(struct stm_index *idx, uint32_t shard,
                            const uint8_t *prefix, unsigned nibbles,
                            stm_store_encoded_cb cb, void *ctx,
                            struct stm_error *err);
int stm_index_get_any(struct stm_index *idx, const uint8_t hash[STM_HASH_LEN],
                      enum stm_record_kind *kind, struct stm_claim *claim,
                      struct stm_record *rec, struct stm_error *err);

/* ---- reads: each as its stm_store_* counterpart in store.h ---- */

int stm_index_get_source(struct stm_index *idx, const char *id,
                         const struct stm_read_view *view,
                         struct stm_source *out, struct stm_error *err);
int stm_index_list_sources(struct stm_index *idx, const char *after,
                           const struct stm_read_view *view,
                           stm_store_source_cb cb, void *ctx,
                           struct stm_error *err);
int stm_index_scan_votes(struct stm_index *idx,
                         const uint8_t target[STM_HASH_LEN],
                         const struct stm_read_view *view, stm_store_vote_cb cb,
                         void *ctx, struct stm_error *err);
int stm_index_scan_votes_many(struct stm_index *idx,
                              const uint8_t (*targets)[STM_HASH_LEN], size_t n,
                              const struct stm_read_view *view,
                              stm_store_votes_cb cb, void *ctx,
                              struct stm_error *err);
int stm_index_find_epoch(struct stm_index *idx, const char *concept_path,
                         const char *predicate, uint64_t after_sequence,
                         const struct stm_read_view *view,
                         struct stm_epoch *out, struct stm_error *err);
int stm_index_scan_children(struct stm_index *idx,
                            const uint8_t parent[STM_HASH_LEN],
                            const struct stm_read_view *view,
                            stm_store_claim_cb cb, void *ctx,
                            struct stm_error *err);
int stm_index_list_concepts(struct stm_index *idx, const char *prefix,
                            const char *after, stm_store_concept_cb cb,
                            void *ctx, struct stm_error *err);
int stm_index_scan_log(struct stm_index *idx, uint64_t after_sequence,
                       unsigned kinds, const struct stm_read_view *view,
                       stm_store_log_cb cb, void *ctx, struct stm_error *err);
int stm_index_scan_keys(struct stm_index *idx, stm_store_record_visit_cb cb,
                        void *ctx, struct stm_error *err);
int stm_index_scan_audit(struct stm_index *idx, uint64_t after_sequence,
                         stm_store_audit_cb cb, void *ctx,
                         struct stm_error *err);

#endif
