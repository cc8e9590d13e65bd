/*
 * store_read.c - the read view: every read of store.h, answered by the
 * index from one snapshot (or, for a view pinned to a sequence, the latest
 * state filtered by it). Reads never touch the writer's state.
 */
#include "store_internal.h"

#include "index_records.h"

#include <sodium.h>
#include <string.h>

int stm_store_get_claim(struct stm_store *s, const uint8_t hash[STM_HASH_LEN],
                        const struct stm_read_view *view, struct stm_claim *out,
                        struct stm_error *err) {
  return stm_index_get_claim(s->index, hash, view, out, err);
}

int stm_store_scan_concept(struct stm_store *s, const char *concept_path,
                           const char *predicate, bool include_descendants,
                           const struct stm_read_view *view,
                           stm_store_claim_cb cb, void *ctx,
                           struct stm_error *err) {
  return stm_index_scan_concept(s->index, concept_path, predicate,
                                include_descendants, view, cb, ctx, err);
}

int stm_store_scan_keys(struct stm_store *s, stm_store_record_visit_cb cb,
                        void *ctx, struct stm_error *err) {
  return stm_index_scan_keys(s->index, cb, ctx, err);
}

int stm_store_get_source(struct stm_store *s, const char *id,
                         const struct stm_read_view *view,
                         struct stm_source *out, struct stm_error *err) {
  return stm_index_get_source(s->index, id, view, out, err);
}

int stm_store_list_sources(struct stm_store *s, const char *after,
                           const struct stm_read_view *view,
                           stm_store_source_cb cb, void *ctx,
                           struct stm_error *err) {
  return stm_index_list_sources(s->index, after, view, cb, ctx, err);
}

int stm_store_scan_votes(struct stm_store *s,
                         const uint8_t target[STM_HASH_LEN],
                         const struct stm_read_view *view, stm_store_vote_cb cb,
                         void *ctx, struct stm_error *err) {
  return stm_index_scan_votes(s->index, target, view, cb, ctx, err);
}

int stm_store_scan_votes_many(struct stm_store *s,
                              const uint8_t (*targets)[STM_HASH_LEN], size_t n,
                              const struct stm_read_view *view,
                              stm_store_votes_cb cb, void *ctx,
                              struct stm_error *err) {
  return stm_index_scan_votes_many(s->index, targets, n, view, cb, ctx, err);
}

int stm_store_find_epoch(struct stm_store *s, const char *concept_path,
                         const char *predicate, uint64_t after_sequence,
                         const struct stm_read_view *view,
                         struct stm_epoch *out, struct stm_error *err) {
  return stm_index_find_epoch(s->index, concept_path, predicate, after_sequence,
                              view, out, err);
}

int stm_store_scan_children(struct stm_store *s,
                            const uint8_t parent[STM_HASH_LEN],
                            const struct stm_read_view *view,
                            stm_store_claim_cb cb, void *ctx,
                            struct stm_error *err) {
  return stm_index_scan_children(s->index, parent, view, cb, ctx, err);
}

int stm_store_list_concepts(struct stm_store *s, const char *prefix,
                            const char *after, stm_store_concept_cb cb,
                            void *ctx, struct stm_error *err) {
  return stm_index_list_concepts(s->index, prefix, after, cb, ctx, err);
}

int stm_store_scan_log(struct stm_store *s, uint64_t after_sequence,
                       unsigned kinds, const struct stm_read_view *view,
                       stm_store_log_cb cb, void *ctx, struct stm_error *err) {
  return stm_index_scan_log(s->index, after_sequence, kinds, view, cb, ctx,
                            err);
}

int stm_store_scan_audit(struct stm_store *s, uint64_t after_sequence,
                         stm_store_audit_cb cb, void *ctx,
                         struct stm_error *err) {
  return stm_index_scan_audit(s->index, after_sequence, cb, ctx, err);
}

/* ---- replication (issue 12) ---- */

uint32_t stm_store_shard_of(const char *concept_path, uint32_t shards) {
  uint8_t h[8];
  crypto_generichash(h, sizeof h, (const unsigned char *)concept_path,
                     strlen(concept_path), NULL, 0);
  return shards ? (uint32_t)(stm_buf_load_u64le(h) % shards) : 0;
}

int stm_store_merkle_children(struct stm_store *s, uint32_t shard,
                              const uint8_t *prefix, unsigned nibbles,
                              struct stm_merkle_node out[STM_MERKLE_FANOUT],
                              struct stm_error *err) {
  return stm_index_merkle_children(s->index, shard, prefix, nibbles, out, err);
}

int stm_store_shard_hashes(struct stm_store *s, uint32_t shard,
                           const uint8_t *prefix, unsigned nibbles,
                           stm_store_hash_cb cb, void *ctx,
                           struct stm_error *err) {
  return stm_index_shard_hashes(s->index, shard, prefix, nibbles, cb, ctx, err);
}

int stm_store_shard_records(struct stm_store *s, uint32_t shard,
                            const uint8_t *prefix, unsigned nibbles,
                            stm_store_encoded_cb cb, void *ctx,
                            struct stm_error *err) {
  return stm_index_shard_records(s->index, shard, prefix, nibbles, cb, ctx,
                                 err);
}

int stm_store_get_any(struct stm_store *s, const uint8_t hash[STM_HASH_LEN],
                      enum stm_record_kind *kind, struct stm_claim *claim,
                      struct stm_record *rec, struct stm_error *err) {
  return stm_index_get_any(s->index, hash, kind, claim, rec, err);
}
