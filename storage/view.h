/*
 * view.h - what reads see: the read view (a point in commit order or
 * commit time) and the visitor callbacks that scans call. Shared by the
 * index (which implements the reads) and store.h (which exports them).
 */
#ifndef STM_VIEW_H
#define STM_VIEW_H

#include "storage/claim.h"
#include "storage/records.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A point of view for reads: what the database knew then. 0 means now. */
struct stm_read_view {
  uint64_t as_of_sequence;
  int64_t as_of_time_ns; /* commit time */
};

/*
 * Called once per claim, in index order: concept path, then predicate,
 * then timestamp_ns ascending, then hash ascending. The claim is borrowed
 * for the call. Return 0 to continue, non-zero to stop the scan (the
 * non-zero value is returned by the scan).
 */
typedef int (*stm_store_claim_cb)(void *ctx, const struct stm_claim *c);

typedef int (*stm_store_source_cb)(void *ctx, const struct stm_source *src);

typedef int (*stm_store_vote_cb)(void *ctx, const struct stm_vote *v);

typedef int (*stm_store_votes_cb)(void *ctx, size_t i,
                                  const struct stm_vote *v);

typedef int (*stm_store_concept_cb)(void *ctx, const char *concept_path);

/* One committed write read back by sequence: a claim or a record. */
struct stm_log_entry {
  uint64_t sequence;
  enum stm_record_kind kind;
  const struct stm_claim *claim;   /* kind STM_RECORD_CLAIM, else NULL */
  const struct stm_record *record; /* the other kinds, else NULL */
};
#define STM_LOG_KIND(k) (1u << (k)) /* a bit of stm_store_scan_log's kinds */
#define STM_LOG_ALL_KINDS                                                      \
  (STM_LOG_KIND(STM_RECORD_CLAIM) | STM_LOG_KIND(STM_RECORD_VOTE) |            \
   STM_LOG_KIND(STM_RECORD_EPOCH) | STM_LOG_KIND(STM_RECORD_SOURCE))
typedef int (*stm_store_log_cb)(void *ctx, const struct stm_log_entry *e);

typedef int (*stm_store_audit_cb)(void *ctx, const struct stm_audit_entry *a);

/* Is a write of sequence `seq` committed at `commit_time_ns` visible in
 * view `v` (NULL: now)? The one visibility rule of every read. */
static inline bool stm_view_visible(const struct stm_read_view *v, uint64_t seq,
                                    int64_t commit_time_ns) {
  if (v == NULL)
    return true;
  if (v->as_of_sequence != 0 && seq > v->as_of_sequence)
    return false;
  return v->as_of_time_ns == 0 || commit_time_ns <= v->as_of_time_ns;
}

#endif
