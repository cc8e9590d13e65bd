/*
 * store.h - the durable store: the WAL (source of truth, group commit) plus
 * the LevelDB indexes materialized from it. This is the whole interface that
 * service/ uses; WAL, index and I/O seam details stay inside storage/.
 *
 * Data directory layout: DIR/LOCK (flock: one process per directory),
 * DIR/wal/ (segments), DIR/index/ (LevelDB).
 *
 * Threads: one writer thread owned by the store drains the submission queue,
 * writes every queued record with one append and one fdatasync, applies them
 * to LevelDB, then calls the completion callbacks. Reads may be called from
 * any thread concurrently; each read uses one LevelDB snapshot.
 */
#ifndef STM_STORE_H
#define STM_STORE_H

#include "common/error.h"
#include "storage/claim.h"
#include "storage/records.h"
#include "storage/view.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stm_store;
struct stm_wal_io; /* storage/wal_io.h: the file I/O seam for fault tests */

struct stm_store_options {
  const char *data_dir;        /* required */
  uint64_t segment_bytes;      /* WAL segment rotation size; 0: 64 MiB */
  const struct stm_wal_io *io; /* NULL: the real POSIX I/O */
  size_t max_group_bytes;      /* cap of one group commit; 0: 8 MiB */
  /* Bytes kept in DIR/reserve so that a store on a full disk can still be
   * opened: LevelDB needs room to open. 0: no reserve. */
  uint64_t reserve_bytes;
  /* The shard count of the per-shard record-hash index (issue 12; 0: 64)
   * and the rule that maps a concept path to a shard (NULL:
   * stm_store_shard_of; a clustered server passes placement's). A change
   * of the count rebuilds the index from the WAL at open. */
  uint32_t shards;
  uint32_t (*shard_of)(const char *concept_path, uint32_t shards);
};

/*
 * Open (creating if needed) the store in opts->data_dir, recover: cut a torn
 * or corrupt WAL tail (logging how many bytes), replay WAL records after
 * LevelDB's last applied sequence, then start the writer thread.
 * Returns 0 and *out, or a negative code with err naming the file/problem
 * (STM_EIO for an unusable directory, STM_EEXIST when another process holds
 * the lock, STM_ECORRUPT for damage recovery cannot cut).
 *
 * A full disk: when opening fails for lack of space and DIR/reserve exists,
 * the reserve is deleted and the store opens READ-ONLY (stats.writable
 * false, stats.disk_full true: reads work, submissions are STM_EREADONLY)
 * until it is reopened with space. After a writable open the reserve is
 * (re)created at opts->reserve_bytes; when that fails for lack of space a
 * warning is logged and the store stays writable.
 * Caller owns *out; free with stm_store_delete.
 */
int stm_store_open(const struct stm_store_options *opts, struct stm_store **out,
                   struct stm_error *err);

/*
 * Stop accepting submissions, commit everything already queued (callbacks
 * run), stop the writer thread, close WAL and LevelDB. NULL is a no-op.
 */
void stm_store_delete(struct stm_store *s);

struct stm_write_result {
  uint8_t hash[STM_HASH_LEN];
  uint64_t sequence; /* the new sequence, or the existing claim's */
  bool created;      /* false when identical content already existed */
};

/*
 * Completion of a submission, called exactly once on the writer thread. A
 * submit that fails reports it by its return code and never calls cb.
 * rc 0: results[0..n) are durable (fdatasync'd) and visible to reads.
 * rc STM_EREADONLY: a write or fsync failed now or earlier; nothing of this
 * submission is acknowledged. STM_ESHUTDOWN: the store is closing.
 * `results` and `err` are borrowed for the duration of the call.
 * Rarely rc is STM_ENOMEM, or STM_EIO/STM_ECORRUPT from the dedupe lookup:
 * the group could not be prepared, nothing of it was written, and the
 * store stays writable (a retry may succeed).
 */
typedef void (*stm_store_write_cb)(void *ctx, int rc,
                                   const struct stm_write_result *results,
                                   size_t n, const struct stm_error *err);

/*
 * Submit n claims as one all-or-nothing unit (one WAL record), audited as
 * operation `op` by `caller` (copied, cut to their maximum lengths; NULL is
 * ""): each new claim's WAL entry carries them (records.h). The store
 * computes each hash not yet computed (stm_claim.hashed), assigns sequence
 * and commit time, and deduplicates:
 * a claim whose hash is already stored (or earlier in the same group) is
 * not written again and reports created = false with the existing sequence.
 * Takes ownership of `claims` (a malloc'd array of n claims) on success and
 * on failure. Content must already be validated by the caller.
 * Returns 0 (cb will be called), STM_EREADONLY, STM_ESHUTDOWN or STM_EINVAL
 * (n == 0); cb is not called when the return is non-zero.
 * Thread-safe.
 */
int stm_store_submit_claims(struct stm_store *s, struct stm_claim *claims,
                            size_t n, const char *op, const char *caller,
                            stm_store_write_cb cb, void *ctx);

/*
 * Read one claim by hash into an init'ed `out`. Returns 0, STM_ENOTFOUND
 * (absent, or committed after the view), or STM_EIO/STM_ECORRUPT.
 */
int stm_store_get_claim(struct stm_store *s, const uint8_t hash[STM_HASH_LEN],
                        const struct stm_read_view *view, struct stm_claim *out,
                        struct stm_error *err);

/*
 * Visit the claims of `concept_path` (and, with include_descendants, of
 * every path below it: "a/b" covers "a/b/c" but not "a/bc"), restricted to
 * `predicate` unless it is NULL or "". Only claims visible in `view`
 * (NULL: now) are visited. Reads the concept/predicate/time index from one
 * snapshot; never scans unrelated keys. Returns 0, the callback's non-zero
 * value, or a negative code.
 */
int stm_store_scan_concept(struct stm_store *s, const char *concept_path,
                           const char *predicate, bool include_descendants,
                           const struct stm_read_view *view,
                           stm_store_claim_cb cb, void *ctx,
                           struct stm_error *err);

/* Upper bounds (seconds) of the WAL fdatasync latency histogram buckets;
 * a sample above the last one counts only in fsync_count (le="+Inf"). */
#define STM_STORE_FSYNC_BUCKETS 12
extern const double stm_store_fsync_bucket_le[STM_STORE_FSYNC_BUCKETS];

struct stm_store_stats {
  uint64_t assertion_count; /* distinct claims stored */
  uint64_t last_sequence;   /* last durable sequence */
  bool writable;            /* false after a write/fsync failure, or when
                               opened read-only on a full disk */
  bool disk_full;           /* opened read-only: the disk was full */
  uint64_t group_commits;   /* WAL appends+fsyncs done by the writer */
  uint64_t records_committed;
  uint64_t wal_segments;
  uint64_t wal_bytes;         /* bytes in all segments */
  uint64_t recovered_records; /* replayed into LevelDB at open */
  uint64_t truncated_bytes;   /* torn tail cut at open */
  uint64_t sources_committed; /* source versions committed since open: a
                                 cache key for source lookups (it moves
                                 before the commit is acknowledged) */
  /* fdatasync of each group commit: per-bucket (NOT cumulative) counts,
   * total count and summed time, for a Prometheus histogram */
  uint64_t fsync_le[STM_STORE_FSYNC_BUCKETS];
  uint64_t fsync_count;
  uint64_t fsync_ns_sum;
  uint64_t wal_io_errors; /* failed WAL pwrite/fdatasync calls */
};

/* A consistent copy of the counters. Thread-safe, never blocks on I/O. */
void stm_store_get_stats(struct stm_store *s, struct stm_store_stats *out);

/* ==== records: votes, epochs, sources, audit ==============================
 *
 * Votes and epochs are immutable and content-addressed like claims; a
 * source is an immutable versioned record (PutSource appends a version,
 * the latest visible version per id wins). Every write (claim, vote,
 * epoch, source) gets the next sequence and the group's commit time, and
 * an audit entry at the SAME sequence carrying the operation and caller
 * (no sequence is spent on auditing; replay restores the audit log).
 * Strings are NUL-terminated heap copies owned by the struct; free with
 * the matching _destroy (records.h). Reads use one LevelDB snapshot each
 * and honour the read view (NULL: now).
 */

/* ---- submission ---------------------------------------------------------- */

/*
 * Completion of a record submission, on the writer thread. rc as for
 * stm_store_write_cb. On rc 0 `rec` holds the committed record (sequence,
 * commit time, hash, and for an epoch its number); created is false when
 * an identical vote was already stored (rec then has the stored sequence).
 * Borrowed for the call.
 */
typedef void (*stm_store_record_cb)(void *ctx, int rc,
                                    const struct stm_record *rec, bool created,
                                    const struct stm_error *err);

/*
 * Submit one vote, epoch or source as one TXN record, audited as `op` by
 * `caller` (copied; NULL is ""). Takes ownership of `rec` (malloc'd) on
 * success and failure. Content must be validated by the caller; for a
 * vote, the caller checked that the target claim exists. Returns 0 (cb
 * will be called) or STM_EINVAL / STM_EREADONLY / STM_ESHUTDOWN /
 * STM_ENOMEM (cb is not called). Thread-safe.
 */
int stm_store_submit_record(struct stm_store *s, struct stm_record *rec,
                            const char *op, const char *caller,
                            stm_store_record_cb cb, void *ctx);

/* ---- reads --------------------------------------------------------------- */

/* The latest version of source `id` visible in view into an uninitialized
 * *out (destroy after 0). Returns 0, STM_ENOTFOUND or an error. */
int stm_store_get_source(struct stm_store *s, const char *id,
                         const struct stm_read_view *view,
                         struct stm_source *out, struct stm_error *err);

/* The latest visible version of each source with id > after (NULL: all),
 * in id order. Callback contract as stm_store_claim_cb. */
int stm_store_list_sources(struct stm_store *s, const char *after,
                           const struct stm_read_view *view,
                           stm_store_source_cb cb, void *ctx,
                           struct stm_error *err);

/* The visible votes on claim `target`, in sequence order. */
int stm_store_scan_votes(struct stm_store *s,
                         const uint8_t target[STM_HASH_LEN],
                         const struct stm_read_view *view, stm_store_vote_cb cb,
                         void *ctx, struct stm_error *err);

/* The visible votes on each of targets[0..n), with one LevelDB iterator
 * for them all (a Query looks up the votes of every candidate): cb gets
 * the target's index i. Same order and contract as stm_store_scan_votes. */
int stm_store_scan_votes_many(struct stm_store *s,
                              const uint8_t (*targets)[STM_HASH_LEN], size_t n,
                              const struct stm_read_view *view,
                              stm_store_votes_cb cb, void *ctx,
                              struct stm_error *err);

/*
 * The newest visible epoch of exactly (concept_path, predicate); predicate
 * "" is the concept-wide epoch. With after_sequence > 0 instead the FIRST
 * visible epoch ordered after the claim logged at that sequence. Order is
 * (commit_time_ns, hash), the same on every node (issue 12), and *out's
 * number is its rank among the scope's visible epochs (1, 2, ...), never
 * arrival order. Returns 0 with *out (uninitialized before; destroy
 * after), STM_ENOTFOUND or an error.
 */
int stm_store_find_epoch(struct stm_store *s, const char *concept_path,
                         const char *predicate, uint64_t after_sequence,
                         const struct stm_read_view *view,
                         struct stm_epoch *out, struct stm_error *err);

/* The visible claims whose parent is `parent`, in hash order. */
int stm_store_scan_children(struct stm_store *s,
                            const uint8_t parent[STM_HASH_LEN],
                            const struct stm_read_view *view,
                            stm_store_claim_cb cb, void *ctx,
                            struct stm_error *err);

/* Concept paths holding claims, starting with `prefix` ("" all) and
 * greater than `after` (NULL: from the start), in byte order. */
int stm_store_list_concepts(struct stm_store *s, const char *prefix,
                            const char *after, stm_store_concept_cb cb,
                            void *ctx, struct stm_error *err);

/*
 * Called on the writer thread after each group commit that wrote anything
 * new: entries[0..n) are the group's new claims, votes, epochs and sources
 * (never duplicates) in sequence order, durable and already visible to
 * reads. It runs before the group's completion callbacks, so a change feed
 * never lags an acknowledgement. Borrowed for the call; keep it short and
 * never block on the store from it (no stm_store_delete; submitting is
 * fine).
 */
typedef void (*stm_store_log_listener_cb)(void *ctx,
                                          const struct stm_log_entry *entries,
                                          size_t n);
/* Set (cb NULL: clear) the one log listener; it takes effect from the
 * next group. Thread-safe. */
void stm_store_set_log_listener(struct stm_store *s,
                                stm_store_log_listener_cb cb, void *ctx);
/* API key records (kinds STM_RECORD_API_KEY, STM_RECORD_KEY_REVOKE) never
 * reach the log listener, the change-feed scans or data reads; they go to
 * this one key listener instead (service/auth.c), with the same contract
 * and called before the log listener, so a revocation is in force before
 * its submission (or any other of the group) is acknowledged. */
void stm_store_set_key_listener(struct stm_store *s,
                                stm_store_log_listener_cb cb, void *ctx);
/* Every stored API key and revocation record, latest state (no view), in
 * (key id, sequence) order; the record is borrowed for the call. Callback
 * contract as stm_store_claim_cb. */
typedef int (*stm_store_record_visit_cb)(void *ctx,
                                         const struct stm_record *rec);
int stm_store_scan_keys(struct stm_store *s, stm_store_record_visit_cb cb,
                        void *ctx, struct stm_error *err);
/*
 * Every write committed after `after_sequence` whose kind is in `kinds`
 * (STM_LOG_KIND bits), in sequence order, up to the view (NULL: all), from
 * one snapshot: how a change feed catches up on claims, votes, epochs and
 * sources alike. Entries are borrowed for the call; callback contract as
 * stm_store_claim_cb.
 */
int stm_store_scan_log(struct stm_store *s, uint64_t after_sequence,
                       unsigned kinds, const struct stm_read_view *view,
                       stm_store_log_cb cb, void *ctx, struct stm_error *err);

/* Audit entries with sequence > after_sequence, in sequence order. */
int stm_store_scan_audit(struct stm_store *s, uint64_t after_sequence,
                         stm_store_audit_cb cb, void *ctx,
                         struct stm_error *err);

/* ==== replication (issue 12) ==============================================
 *
 * Claims, votes and epochs are immutable content-addressed records and a
 * source version is one too: a grow-only set. A record that came from
 * another node keeps its ORIGIN commit_time_ns (the earliest wins when the
 * same content was committed on two nodes: a later-arriving earlier time
 * re-times the stored copy), so as_of_time_ns means the same on every
 * node; sequences stay local (this node's log order). Answers that depend
 * on order use (commit_time_ns, hash): the epoch in force, epoch numbers
 * (an epoch's number is its rank in its scope), Assertion.epoch, and the
 * winning source version ((timestamp_ns, commit_time_ns, hash), highest).
 *
 * Every stored record is also listed in a per-shard hash index: claims and
 * epochs in the shard of their concept, votes in their target's, sources
 * and API key records in STM_STORE_SHARD_ALL (every node holds them).
 */
#define STM_STORE_SHARD_ALL 0xffffu

/* The default shard rule: BLAKE2b-64 of the concept path (libsodium,
 * 8-byte output, little-endian), modulo shards (>= 1). */
uint32_t stm_store_shard_of(const char *concept_path, uint32_t shards);

/*
 * Apply n claims that another node committed (commit_time_ns set by the
 * origin; 0 means "now"), audited as op/caller. A claim already stored
 * reports created = false; when the incoming commit time is earlier the
 * stored copy takes it (one WAL entry of kind 6, formats.md). Same
 * ownership, callback and return contract as stm_store_submit_claims.
 */
int stm_store_apply_claims(struct stm_store *s, struct stm_claim *claims,
                           size_t n, const char *op, const char *caller,
                           stm_store_write_cb cb, void *ctx);

/*
 * Apply a vote, epoch or source version that another node committed, as
 * is: its commit_time_ns and content (an epoch keeps its origin number in
 * its content) are kept, duplicates (by hash) are idempotent and re-timed
 * as for claims. A vote whose target claim is not stored here completes
 * with STM_ENOTFOUND (send claims first; anti-entropy retries). Contract
 * as stm_store_submit_record.
 */
int stm_store_apply_record(struct stm_store *s, struct stm_record *rec,
                           const char *op, const char *caller,
                           stm_store_record_cb cb, void *ctx);

/* The Merkle fan-out: each level splits the hash space by one nibble. */
#define STM_MERKLE_FANOUT 16

struct stm_merkle_node {
  uint8_t digest[STM_HASH_LEN]; /* XOR of the record hashes below */
  uint64_t count;
};

/*
 * The 16 children of the Merkle node `prefix` (its first `nibbles` nibbles
 * of the record hash; 0: the root's children) of shard `shard`, computed
 * from the shard index in one prefix scan. Two stores hold the same
 * records of the shard below a node iff digest and count match (XOR over
 * BLAKE2b hashes). Returns 0 or an error.
 */
int stm_store_merkle_children(struct stm_store *s, uint32_t shard,
                              const uint8_t *prefix, unsigned nibbles,
                              struct stm_merkle_node out[STM_MERKLE_FANOUT],
                              struct stm_error *err);

/* The hashes (and kinds) of shard `shard` under Merkle node prefix/nibbles,
 * in hash order. Return non-zero from cb to stop. */
typedef int (*stm_store_hash_cb)(void *ctx, enum stm_record_kind kind,
                                 const uint8_t hash[STM_HASH_LEN]);
int stm_store_shard_hashes(struct stm_store *s, uint32_t shard,
                           const uint8_t *prefix, unsigned nibbles,
                           stm_store_hash_cb cb, void *ctx,
                           struct stm_error *err);

/* The records of shard `shard` under Merkle node prefix/nibbles with their
 * storage encodings (what stm_claim_encode / stm_record_encode write, with
 * this node's sequence and the commit time), in hash order, from one
 * snapshot: what anti-entropy sends. Borrowed for the call; non-zero from
 * cb stops. */
typedef int (*stm_store_encoded_cb)(void *ctx, enum stm_record_kind kind,
                                    const uint8_t hash[STM_HASH_LEN],
                                    const uint8_t *encoded, size_t len);
int stm_store_shard_records(struct stm_store *s, uint32_t shard,
                            const uint8_t *prefix, unsigned nibbles,
                            stm_store_encoded_cb cb, void *ctx,
                            struct stm_error *err);

/* Any stored record by hash (a replica's FetchMissing): *kind, and the
 * claim (into an init'ed *claim) or the record (into an uninitialized
 * *rec, destroy after) with its commit time. 0, STM_ENOTFOUND or error. */
int stm_store_get_any(struct stm_store *s, const uint8_t hash[STM_HASH_LEN],
                      enum stm_record_kind *kind, struct stm_claim *claim,
                      struct stm_record *rec, struct stm_error *err);

/* Does epoch e come before the write (time_ns, hash) in the cluster-wide
 * order (commit_time_ns, then hash)? */
bool stm_store_epoch_before(const struct stm_epoch *e, int64_t time_ns,
                            const uint8_t hash[STM_HASH_LEN]);

#endif
