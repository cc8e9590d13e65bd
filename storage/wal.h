/*
 * wal.h - the write-ahead log: the source of truth of the store.
 *
 * A directory of segment files <20-digit first sequence>.wal, each a header
 * and framed records (storage/wal_format.h). Appends go to the last
 * segment; a new one is started (and the directory fsync'd) once the last
 * reaches segment_bytes. Every append is followed by one fdatasync before
 * it returns, so a successful return means durable.
 *
 * Recovery at open: every sealed segment's header and SEAL record (its
 * last sequence and whole-file CRC) are checked, and the LAST segment is
 * read and validated record by record. A torn or corrupt tail of the last
 * segment (the only place an interrupted append can leave one) is cut with
 * ftruncate + fdatasync and logged with the file, offset and byte count.
 * Damage anywhere else - a missing or bad seal, a sequence gap between
 * records or segments, a valid record of an unknown type - is not
 * guessable and fails the open with STM_ECORRUPT naming the file and
 * offset. The body of a sealed segment is verified (every record CRC and
 * the whole-file CRC) whenever it is read - stm_wal_replay, backup,
 * archival, stm_wal_segment_verify - so its damage is refused there, never
 * replayed, and a start does not read the whole WAL.
 *
 * Failure model (the PostgreSQL "fsyncgate" lesson): after any failed write
 * or fdatasync the WAL is poisoned. It never retries the sync; the failing
 * append returns the error, every later append STM_EREADONLY. It makes a
 * best-effort ftruncate back to the last durable size so that records that
 * were never acknowledged do not come back at the next open.
 *
 * Threads: a WAL is used by one thread at a time (the store's writer).
 */
#ifndef STM_WAL_H
#define STM_WAL_H

#include "common/error.h"
#include "wal_format.h"
#include "wal_io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stm_wal;

struct stm_wal_options {
  const char *dir;             /* the WAL directory; created if missing */
  uint64_t segment_bytes;      /* rotation size; 0: 64 MiB */
  const struct stm_wal_io *io; /* NULL: stm_wal_io_posix() */
};

struct stm_wal_info {
  uint64_t segments;
  uint64_t bytes;              /* sum of all segment sizes */
  uint64_t last_sequence;      /* last durable sequence, 0 when empty */
  int64_t last_commit_time_ns; /* of the last record found at open */
  uint64_t records_scanned;    /* valid records found at open */
  uint64_t truncated_bytes;    /* cut at open */
  bool poisoned;
  int64_t last_fsync_ns; /* fdatasync time of the last successful append */
  uint64_t io_errors;    /* append pwrite/fdatasync calls that failed */
};

/*
 * Open (creating the directory and a first segment if needed) and recover.
 * Returns 0 and *out (free with stm_wal_delete), or STM_EIO (unusable
 * directory or I/O failure during recovery), STM_ECORRUPT / STM_EUNIMPL
 * (damage recovery must not cut, or a newer format) with err naming the
 * file and offset.
 */
int stm_wal_open(const struct stm_wal_options *opts, struct stm_wal **out,
                 struct stm_error *err);

/* Close the segment file. Nothing is buffered, so nothing is lost. */
void stm_wal_delete(struct stm_wal *w);

/*
 * Append (data, len): one or more complete framed records covering the
 * sequences first_sequence..last_sequence, which must continue the log
 * (first_sequence == info.last_sequence + 1, else STM_EINVAL), the last
 * of them committed at last_commit_time_ns (the seal records it; the
 * caller framed the records and knows it, so they are not parsed again). Writes them
 * at the end of the last segment (rotating first if it is full) and
 * fdatasyncs once. Returns 0 when durable; STM_EIO or STM_ENOSPC when this
 * append failed (the WAL is then poisoned); STM_EREADONLY when an earlier
 * append failed.
 */
int stm_wal_append(struct stm_wal *w, const void *data, size_t len,
                   uint64_t first_sequence, uint64_t last_sequence,
                   int64_t last_commit_time_ns, struct stm_error *err);

/*
 * Called once per TXN record, in log order. The txn and its entries are
 * borrowed for the call. Return 0 to go on; anything else stops the replay
 * and is returned by it.
 */
typedef int (*stm_wal_replay_cb)(void *ctx, const struct stm_wal_txn *txn,
                                 struct stm_error *err);

/*
 * Visit every TXN record that holds a sequence > after_sequence, reading
 * only the segments that can hold one. A record that straddles
 * after_sequence is visited whole; the callback skips what it has. Returns
 * 0, the callback's value, or STM_EIO / STM_ECORRUPT.
 */
int stm_wal_replay(struct stm_wal *w, uint64_t after_sequence,
                   stm_wal_replay_cb cb, void *ctx, struct stm_error *err);

void stm_wal_get_info(const struct stm_wal *w, struct stm_wal_info *out);

struct stm_wal_segment_info {
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
 * only labels errors. Visits nothing; pure and thread-safe. Returns 0 and
 * *out, or STM_ECORRUPT / STM_EUNIMPL with err naming the file and offset.
 */
int stm_wal_segment_verify(const char *name, const uint8_t *data, size_t len,
                           bool require_seal, struct stm_wal_segment_info *out,
                           struct stm_error *err);

#endif
