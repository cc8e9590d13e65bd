/*
 * records.h - the records beside claims: votes, epochs, sources, and the
 * audit entry every write leaves. Domain structs, their encodings (WAL
 * entries and LevelDB values, docs/formats.md "Records"), submission and
 * the index reads over them.
 *
 * Votes and epochs are immutable and content-addressed like claims; a
 * source is an immutable versioned record (PutSource appends a version,
 * the latest visible version per id wins). Every write (claim, vote,
 * epoch, source) gets the next sequence and the group's commit time, and
 * an audit entry at the SAME sequence carrying the operation and caller:
 * the caller travels in a kind-5 WAL entry that wraps the record, so no
 * sequence is spent on auditing and replay restores the audit log.
 *
 * Strings are NUL-terminated heap copies owned by the struct; free with
 * the matching _destroy. Reads use one LevelDB snapshot each and honour
 * the read view (NULL: now): records committed after it are invisible.
 */
#ifndef STM_RECORDS_H
#define STM_RECORDS_H

#include "../common/buf.h"
#include "../common/error.h"
#include "claim.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STM_AUDIT_OP_MAX 32
#define STM_AUDIT_CALLER_MAX 256

enum stm_record_kind {
  STM_RECORD_CLAIM = 1,
  STM_RECORD_VOTE = 2,
  STM_RECORD_EPOCH = 3,
  STM_RECORD_SOURCE = 4,
};

struct stm_vote {
  uint8_t hash[STM_HASH_LEN]; /* of target, voter_id, weight, timestamp */
  uint8_t target[STM_HASH_LEN];
  char *voter_id;
  double weight; /* -1..1 */
  int64_t timestamp_ns;
  uint64_t sequence;
  int64_t commit_time_ns;
};

struct stm_epoch {
  uint8_t hash[STM_HASH_LEN]; /* of path, predicate, reason, ts, number */
  char *concept_path;
  char *predicate; /* "" : the whole concept */
  char *reason;
  int64_t timestamp_ns;
  uint64_t number; /* 1, 2, ... per concept/predicate; set by the writer */
  uint64_t sequence;
  int64_t commit_time_ns;
};

struct stm_source {
  uint8_t hash[STM_HASH_LEN]; /* of this version's content */
  char *id;
  char *name;
  uint32_t tier; /* 0..5 */
  double trust;  /* 0..1 */
  bool has_public_key;
  uint8_t public_key[STM_PUBLIC_KEY_LEN];
  int64_t timestamp_ns;
  uint64_t sequence;
  int64_t commit_time_ns;
};

/* One vote, epoch or source to submit (claims go through their own path). */
struct stm_record {
  enum stm_record_kind kind;
  union {
    struct stm_vote vote;
    struct stm_epoch epoch;
    struct stm_source source;
  } u;
};

struct stm_audit_entry {
  uint64_t sequence;
  int64_t time_ns;
  enum stm_record_kind kind;
  uint8_t target[STM_HASH_LEN];
  char op[STM_AUDIT_OP_MAX];
  char caller[STM_AUDIT_CALLER_MAX];
};

void stm_record_init(struct stm_record *r, enum stm_record_kind kind);
void stm_record_destroy(struct stm_record *r);
void stm_vote_destroy(struct stm_vote *v);
void stm_epoch_destroy(struct stm_epoch *e);
void stm_source_destroy(struct stm_source *s);

/* Compute r's content hash into its hash field. Returns 0 or STM_ENOMEM. */
int stm_record_compute_hash(struct stm_record *r);
/* Storage encoding (content, then sequence and commit time). */
int stm_record_encode(const struct stm_record *r, struct stm_buf *out);
/*
 * Decode a record of `kind` into an uninitialized *out (stm_record_destroy
 * it after a 0 return). Returns 0 or STM_ECORRUPT; never reads past len.
 * The hash is recomputed from the content.
 */
int stm_record_decode(enum stm_record_kind kind, const void *data, size_t len,
                      struct stm_record *out, struct stm_error *err);

/*
 * The kind-5 WAL wrapper: u8 inner kind | u8 op_len | op | u16le
 * caller_len | caller | inner entry bytes. Header only; the inner payload
 * follows. op and caller are cut to their maximum lengths.
 */
int stm_audit_wrap_header(struct stm_buf *out, enum stm_record_kind inner,
                          const char *op, const char *caller);
size_t stm_audit_wrap_header_size(const char *op, const char *caller);
/* Split a wrapper: fills *inner, op, caller and the inner payload span. */
int stm_audit_unwrap(const void *data, size_t len, enum stm_record_kind *inner,
                     char op[STM_AUDIT_OP_MAX],
                     char caller[STM_AUDIT_CALLER_MAX], const uint8_t **payload,
                     size_t *payload_len, struct stm_error *err);

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

typedef int (*stm_store_source_cb)(void *ctx, const struct stm_source *src);
/* The latest visible version of each source with id > after (NULL: all),
 * in id order. Callback contract as stm_store_claim_cb. */
int stm_store_list_sources(struct stm_store *s, const char *after,
                           const struct stm_read_view *view,
                           stm_store_source_cb cb, void *ctx,
                           struct stm_error *err);

typedef int (*stm_store_vote_cb)(void *ctx, const struct stm_vote *v);
/* The visible votes on claim `target`, in sequence order. */
int stm_store_scan_votes(struct stm_store *s,
                         const uint8_t target[STM_HASH_LEN],
                         const struct stm_read_view *view, stm_store_vote_cb cb,
                         void *ctx, struct stm_error *err);

typedef int (*stm_store_votes_cb)(void *ctx, size_t i,
                                  const struct stm_vote *v);
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
 * visible epoch committed after that sequence. Returns 0 with *out
 * (uninitialized before; destroy after), STM_ENOTFOUND or an error.
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

typedef int (*stm_store_concept_cb)(void *ctx, const char *concept_path);
/* Concept paths holding claims, starting with `prefix` ("" all) and
 * greater than `after` (NULL: from the start), in byte order. */
int stm_store_list_concepts(struct stm_store *s, const char *prefix,
                            const char *after, stm_store_concept_cb cb,
                            void *ctx, struct stm_error *err);

/* One committed write read back by sequence: a claim or a record. */
struct stm_log_entry {
  uint64_t sequence;
  enum stm_record_kind kind;
  const struct stm_claim *claim;   /* kind STM_RECORD_CLAIM, else NULL */
  const struct stm_record *record; /* the other kinds, else NULL */
};
#define STM_LOG_KIND(k) (1u << (k)) /* a bit of stm_store_scan_log's kinds */
#define STM_LOG_ALL_KINDS                                                      \
  (STM_LOG_KIND(STM_RECORD_CLAIM) | STM_LOG_KIND(STM_RECORD_VOTE) |           \
   STM_LOG_KIND(STM_RECORD_EPOCH) | STM_LOG_KIND(STM_RECORD_SOURCE))
typedef int (*stm_store_log_cb)(void *ctx, const struct stm_log_entry *e);

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

typedef int (*stm_store_audit_cb)(void *ctx, const struct stm_audit_entry *a);
/* Audit entries with sequence > after_sequence, in sequence order. */
int stm_store_scan_audit(struct stm_store *s, uint64_t after_sequence,
                         stm_store_audit_cb cb, void *ctx,
                         struct stm_error *err);

#endif
