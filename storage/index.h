/*
 * index.h - the LevelDB materialization of the WAL: one DB in DIR/index
 * with prefixed key spaces (docs/formats.md has the full layout):
 *
 *   'c' hash[32]                                  -> claim storage encoding
 *   'i' path 0x00 predicate 0x00 ts[8] hash[32]   -> (empty)
 *       ts = big-endian (uint64)timestamp_ns ^ 0x8000000000000000, so
 *       negative times sort first
 *   'q' sequence[8, big-endian]                   -> the log entry of that
 *       write: its audit entry (u8 kind, hash[32], time, op, caller) and,
 *       for a vote/epoch/source, the record (index_records.h)
 *   'm' name                                      -> meta value
 *       "last_applied_sequence" u64le, "assertion_count" u64le,
 *       "format_version" u32le, "shards" u32le
 *   'h' shard[2, big-endian] hash[32]             -> u8 record kind: the
 *       per-shard record-hash index (index_records.h)
 *
 * LevelDB is never the source of truth: it is written without sync, and
 * each commit carries the meta keys in the same write batch, so after any
 * crash the meta says exactly which WAL sequence to replay from.
 *
 * Threads: reads (find, get, scans) from any thread; each read uses one
 * LevelDB snapshot. Batches and commits belong to one writer thread.
 */
#ifndef STM_INDEX_H
#define STM_INDEX_H

#include "common/error.h"
#include "storage/claim.h"
#include "storage/view.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 2: records; 3: 'q' is the log; 4: the 'h' shard index (issue 12) */
#define STM_INDEX_FORMAT_VERSION 4u
#define STM_INDEX_DEFAULT_SHARDS 64u

struct stm_index;
struct stm_index_batch;

struct stm_index_meta {
  uint64_t last_applied_sequence;
  uint64_t assertion_count;
  uint32_t format_version;
  uint32_t shards; /* of the 'h' keys; another count rebuilds the index */
};

/*
 * Open or create the DB at `path`; an index of an older format is dropped
 * (logged) and comes back empty, for recovery to rebuild from the WAL.
 * Returns 0 and *out (free with
 * stm_index_delete), STM_EIO (cannot open, e.g. locked), STM_ECORRUPT or
 * STM_EUNIMPL (a format version this build does not know).
 */
int stm_index_open(const char *path, struct stm_index **out,
                   struct stm_error *err);
/* The same with the shard count of the 'h' keys (stm_index_open: 64). */
int stm_index_open_shards(const char *path, uint32_t shards,
                          struct stm_index **out, struct stm_error *err);
void stm_index_delete(struct stm_index *idx);

/* The meta as of open or the last commit (writer thread only). */
void stm_index_get_meta(const struct stm_index *idx,
                        struct stm_index_meta *out);

/* A write batch. Caller owns it; free with stm_index_batch_delete. */
struct stm_index_batch *stm_index_batch_new(void);
void stm_index_batch_delete(struct stm_index_batch *b);
void stm_index_batch_clear(struct stm_index_batch *b);
/* False when a put ran out of memory: commit then fails with STM_ENOMEM,
 * so check before making the group durable elsewhere. */
bool stm_index_batch_ok(const struct stm_index_batch *b);
/* Approximate bytes queued in the batch. */
size_t stm_index_batch_bytes(const struct stm_index_batch *b);

/*
 * Queue the 'c' and 'i' keys of a committed claim (hash and sequence set);
 * `encoded` is its storage encoding. Its 'q' entry carries the audit
 * (index_records.h). Returns 0 or STM_ENOMEM.
 */
int stm_index_batch_put_claim(struct stm_index_batch *b,
                              const struct stm_claim *c, const void *encoded,
                              size_t len);

/*
 * Write the batch plus the meta keys as one atomic LevelDB write (no sync)
 * and clear the batch. Returns 0 or STM_EIO.
 */
int stm_index_commit(struct stm_index *idx, struct stm_index_batch *b,
                     uint64_t last_applied_sequence, uint64_t assertion_count,
                     struct stm_error *err);

/*
 * The sequence of a stored claim: 0, STM_ENOTFOUND, STM_EIO/STM_ECORRUPT.
 * Reads the latest state without a snapshot (for the writer's dedupe).
 */
int stm_index_find(struct stm_index *idx, const uint8_t hash[STM_HASH_LEN],
                   uint64_t *sequence, struct stm_error *err);

/* stm_index_find plus the stored commit time. */
int stm_index_find_time(struct stm_index *idx, const uint8_t hash[STM_HASH_LEN],
                        uint64_t *sequence, int64_t *commit_time_ns,
                        struct stm_error *err);
/* Latest state (writer): when claim `hash` is stored with a commit time
 * later than time_ns, queue its keys re-encoded with time_ns (*done). */
int stm__index_retime_claim(struct stm_index *idx, struct stm_index_batch *b,
                            const uint8_t hash[STM_HASH_LEN], int64_t time_ns,
                            bool *done, struct stm_error *err);

/* The claim `hash` visible in view into an init'ed *out: 0,
 * STM_ENOTFOUND or an error (stm_store_get_claim). */
int stm_index_get_claim(struct stm_index *idx, const uint8_t hash[STM_HASH_LEN],
                        const struct stm_read_view *view, struct stm_claim *out,
                        struct stm_error *err);

/* The claims of a concept (stm_store_scan_concept). */
int stm_index_scan_concept(struct stm_index *idx, const char *concept_path,
                           const char *predicate, bool include_descendants,
                           const struct stm_read_view *view,
                           stm_store_claim_cb cb, void *ctx,
                           struct stm_error *err);

#endif
