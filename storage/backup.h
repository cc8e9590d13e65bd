/*
 * backup.h - WAL-level pieces of online backup and point-in-time restore.
 *
 * A backup of a running store is a consistent prefix of its WAL: every
 * sealed segment whole, plus the segment that holds a durable sequence N
 * cut just after N's record. The WAL is the source of truth and the LevelDB
 * index is rebuilt from it at the first open, so that prefix is the whole
 * database as of N (docs/durability.md says why the index is not copied).
 * Nothing here needs the store or blocks its writer: sealed segments are
 * immutable and bytes before a durable position never change.
 *
 * All functions are thread-safe (no shared state) and use plain POSIX I/O.
 */
#ifndef STM_BACKUP_H
#define STM_BACKUP_H

#include "common/error.h"
#include "storage/claim.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STM_BACKUP_MAX_NAME 32

struct stm_backup_file {
  char name[STM_BACKUP_MAX_NAME]; /* "<20 digits>.wal" */
  uint64_t size;                  /* bytes of the prefix to copy */
};

struct stm_backup_plan {
  uint64_t last_sequence;        /* N: the backup holds 1..N */
  int64_t last_commit_time_ns;   /* commit time of N's record (0 when N = 0) */
  struct stm_backup_file *files; /* in sequence order; owned */
  size_t nfiles;
};

/*
 * Plan a backup of the WAL in `wal_dir` up to the durable sequence
 * `last_sequence` (the store's stats.last_sequence, read before the call):
 * the segments that hold 1..N and, for the one holding N, the size that
 * ends with N's record. Reads only that segment's records. Returns 0 and
 * *out (free with stm_backup_plan_destroy), STM_EIO, or STM_ECORRUPT when
 * the WAL does not hold N at a record boundary.
 */
int stm_backup_plan_make(const char *wal_dir, uint64_t last_sequence,
                         struct stm_backup_plan *out, struct stm_error *err);
void stm_backup_plan_destroy(struct stm_backup_plan *p);

/* True for a WAL segment name: exactly 20 digits then ".wal". */
bool stm_backup_segment_name_ok(const char *name);

struct stm_backup_cut {
  uint64_t last_sequence; /* the restored WAL ends here */
  int64_t last_commit_time_ns;
  uint64_t segments;         /* kept */
  uint64_t removed_segments; /* after the target */
  uint64_t cut_bytes;        /* truncated from the segment that holds it */
};

/*
 * Point-in-time target of a restored WAL directory (not in use by a
 * store): keep every TXN record whose last sequence <= to_sequence (0: no
 * limit) and whose commit time <= to_time_ns (0: no limit), stopping at the
 * first record that fails either; cut the segment there and delete every
 * later segment. Records are all-or-nothing, so a batch is kept or dropped
 * whole. Every kept segment is fully validated on the way (stm_wal_
 * segment_verify rules). Returns 0 and *out, STM_EIO or STM_ECORRUPT.
 */
int stm_backup_cut_wal(const char *wal_dir, uint64_t to_sequence,
                       int64_t to_time_ns, struct stm_backup_cut *out,
                       struct stm_error *err);

struct stm_backup_segment_info {
  uint64_t first_sequence;
  uint64_t last_sequence; /* first_sequence - 1 when it holds no record */
  int64_t last_commit_time_ns;
  uint64_t records;
  bool sealed;
};

/*
 * Check one whole segment file held in memory (an archived or backed-up
 * copy): header, every record's CRC and sequence continuity, and, when
 * require_seal, a SEAL with the right whole-file CRC at the end. `name`
 * only labels errors. Pure and thread-safe. Returns 0 and *out, or
 * STM_ECORRUPT / STM_EUNIMPL with err naming the file and offset.
 */
int stm_backup_segment_verify(const char *name, const uint8_t *data, size_t len,
                              bool require_seal,
                              struct stm_backup_segment_info *out,
                              struct stm_error *err);

/* Called per claim of a segment, in sequence order; the claim (with its
 * content hash recomputed) is borrowed for the call. Non-zero stops. */
typedef int (*stm_backup_claim_cb)(void *ctx, const struct stm_claim *c,
                                   uint64_t sequence);

/*
 * Decode every claim of a segment image that stm_backup_segment_verify
 * accepted (audited ones unwrapped; votes, epochs and sources are counted
 * in *entries but not decoded) and hand it to cb. *entries counts WAL
 * entries of every kind. Returns 0, cb's non-zero value, or STM_ECORRUPT
 * with err naming the file, offset and sequence of a claim that does not
 * decode.
 */
int stm_backup_segment_claims(const char *name, const uint8_t *data, size_t len,
                              stm_backup_claim_cb cb, void *ctx,
                              uint64_t *entries, struct stm_error *err);

#endif
