/*
 * archiver.h - WAL archival, PostgreSQL archive_command style.
 *
 * A thread watches DATA/wal. Every sealed segment (all but the last) that
 * has no DATA/wal/archive_status/<name>.done marker is verified
 * (stm_wal_segment_verify: a damaged segment is never shipped),
 * zstd-compressed to DATA/wal/archive_status/<name>.zst, and handed to the
 * configured shell command with %p replaced by that file's path, %f by the
 * archived file name "<name>.zst" and %% by %. Exit status 0 means
 * archived: the marker is written (and its directory fsync'd) and the
 * compressed copy removed. Anything else is a failure: counted, logged with
 * the exit status, and retried after a backoff doubling from 500 ms to
 * 30 s. Segments are archived in order; a failing one holds back the later
 * ones. Nothing here deletes a WAL segment; any future retention must keep
 * every segment without a marker.
 */
#ifndef STM_SERVICE_ARCHIVER_H
#define STM_SERVICE_ARCHIVER_H

#include "common/error.h"

#include <stdint.h>

struct stm_archiver;

struct stm_archiver_stats {
  uint64_t archived_total;
  uint64_t failures_total;
  uint64_t pending;            /* sealed segments not archived yet */
  double oldest_pending_age_s; /* 0 when none is pending */
};

/*
 * Start archiving wal_dir with `command` (copied). Returns 0 and *out
 * (stop and free with stm_archiver_stop), or STM_EIO / STM_ENOMEM.
 */
int stm_archiver_start(const char *wal_dir, const char *command,
                       struct stm_archiver **out, struct stm_error *err);

/* Stop the thread (an archive command already running is waited for) and
 * free. NULL is a no-op. */
void stm_archiver_stop(struct stm_archiver *a);

/* Thread-safe. NULL gives zeros. */
void stm_archiver_get_stats(struct stm_archiver *a,
                            struct stm_archiver_stats *out);

struct stm_buf;
/* Append the archive metrics in Prometheus text (zeros for NULL). */
void stm_archiver_metrics(struct stm_archiver *a, struct stm_buf *b);

#endif
