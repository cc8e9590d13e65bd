/*
 * store_recovery.c - recovery at open: replay every WAL entry after
 * LevelDB's last applied sequence into the index (claims, records and
 * their audit entries), in batches, and set the writer's position.
 */
#include "index_records.h"
#include "store_internal.h"
#include "wal_format.h"

#include "common/clock.h"
#include "common/log.h"

#include <inttypes.h>
#include <string.h>

/* Recovery applies the replayed WAL to LevelDB in batches of about this. */
#define REPLAY_BATCH_BYTES (4u << 20)

struct replay;
static int flush_replay(struct replay *r, struct stm_error *err);
static int replay_retime(struct replay *r, const uint8_t *data, size_t len,
                         uint64_t sequence, struct stm_error *err);

/* The shard of a replayed record; a vote whose target claim sits in the
 * unflushed batch flushes it first (LevelDB then has the claim). */
static int replay_shard(struct replay *r, struct stm_store *s,
                        const struct stm_record *rec, uint32_t *shard,
                        struct stm_error *err) {
  int rc = stm__store_record_shard(s, NULL, rec, shard, err);
  uint64_t seq;
  if (rc == STM_ENOTFOUND && rec->kind == STM_RECORD_VOTE &&
      stm_hashset_get(&s->w.pending, rec->u.vote.target, &seq)) {
    rc = flush_replay(r, err);
    rc = rc ? rc : stm__store_record_shard(s, NULL, rec, shard, err);
  }
  if (rc == STM_ENOTFOUND) { /* an orphan vote: keep it unsharded */
    *shard = STM_STORE_SHARD_ALL - 1;
    rc = 0;
  }
  return rc;
}

static int replay_record(struct replay *rp, struct stm_store *s, uint8_t kind,
                         const uint8_t *data, size_t len, uint64_t sequence,
                         const uint8_t **claim_payload, size_t *claim_len,
                         char *op, char *caller, struct stm_error *err) {
  *claim_payload = NULL;
  op[0] = caller[0] = '\0';
  enum stm_record_kind inner = (enum stm_record_kind)kind;
  if (kind == STM_WAL_ENTRY_AUDIT) {
    int rc = stm_audit_unwrap(data, len, &inner, op, caller, &data, &len, err);
    if (rc)
      return rc;
    if (inner == STM_RECORD_CLAIM) {
      *claim_payload = data;
      *claim_len = len;
      return 0;
    }
  } else if (kind == STM_WAL_ENTRY_RETIME) {
    return replay_retime(rp, data, len, sequence, err);
  } else if (kind == STM_WAL_ENTRY_CLAIM || !stm_record_kind_valid(kind)) {
    return stm_error_set(err, STM_EUNIMPL, NULL,
                         "WAL entry of kind %u at sequence %" PRIu64
                         " is not supported by this build",
                         kind, sequence);
  }
  struct stm_record rec;
  int rc = stm_record_decode(inner, data, len, &rec, err);
  if (rc)
    return rc;
  uint64_t seq = stm_record_sequence(&rec);
  int64_t t = stm_record_commit_time(&rec);
  if (seq != sequence)
    rc = stm_error_set(err, STM_ECORRUPT, NULL,
                       "WAL record says sequence %" PRIu64 " at %" PRIu64, seq,
                       sequence);
  uint64_t old;
  const uint8_t *h = stm_record_hash(&rec);
  bool dup = rc == 0 && (stm_hashset_get(&s->w.pending, h, &old) ||
                         stm__index_find_record(s->index, h, &old, err) == 0);
  uint32_t shard = 0;
  if (rc == 0 && !dup)
    rc = replay_shard(rp, s, &rec, &shard, err);
  if (rc == 0 && !dup) {
    rc = stm__index_put_shard(s->w.batch, shard, h, inner);
    rc = rc ? rc : stm__index_put_record(s->w.batch, &rec, data, len);
    rc = rc ? rc
            : stm__store_put_audit(s, seq, t, inner, h, op, caller, data, len);
    rc = rc ? rc : stm_hashset_put(&s->w.pending, h, seq);
  }
  stm_record_destroy(&rec);
  return rc;
}

struct replay {
  struct stm_store *s;
  uint64_t after;   /* LevelDB's last applied sequence */
  uint64_t applied; /* last sequence of the last replayed record */
  uint64_t records;
  uint64_t claims;
  struct stm_claim claim;
  struct stm_buf enc;
};

static int flush_replay(struct replay *r, struct stm_error *err) {
  struct stm_store_writer *w = &r->s->w;
  int rc = stm_index_commit(r->s->index, w->batch, r->applied,
                            w->assertion_count, err);
  stm_hashset_clear(&w->pending);
  return rc;
}

/* A RETIME entry: the stored record takes the earlier origin time. */
static int replay_retime(struct replay *r, const uint8_t *data, size_t len,
                         uint64_t sequence, struct stm_error *err) {
  if (len != STM_WAL_RETIME_LEN)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL retime entry at sequence %" PRIu64
                         " has %zu bytes",
                         sequence, len);
  struct stm_store *s = r->s;
  const uint8_t *hash = data + 1;
  int64_t t = (int64_t)stm_buf_load_u64le(data + 1 + STM_HASH_LEN);
  uint64_t seq;
  int rc = 0;
  if (stm_hashset_get(&s->w.pending, hash, &seq)) /* re-time what LevelDB */
    rc = flush_replay(r, err);                    /* holds, not the batch */
  bool done = false;
  if (rc == 0)
    rc =
        data[0] == STM_RECORD_CLAIM
            ? stm__index_retime_claim(s->index, s->w.batch, hash, t, &done, err)
            : stm__index_retime_record(s->index, s->w.batch, hash, t, &done,
                                       err);
  if (rc == STM_ENOTFOUND) /* cannot be: it was stored before */
    rc = stm_error_set(err, STM_ECORRUPT, NULL,
                       "WAL retime at sequence %" PRIu64
                       " names a record that is not stored",
                       sequence);
  /* no record of its own: a later entry re-timing it again must read it
   * back from LevelDB, so the batch is flushed before that (pending) */
  return rc ? rc : stm_hashset_put(&s->w.pending, hash, sequence);
}

static int replay_entry(struct replay *r, const struct stm_wal_entry *e,
                        struct stm_error *err) {
  struct stm_store_writer *w = &r->s->w;
  const uint8_t *data = e->data;
  size_t len = e->len;
  char op[STM_AUDIT_OP_MAX] = "", caller[STM_AUDIT_CALLER_MAX] = "";
  if (e->kind != STM_WAL_ENTRY_CLAIM) { /* records, audited entries */
    int rc = replay_record(r, r->s, e->kind, e->data, e->len, e->sequence,
                           &data, &len, op, caller, err);
    if (rc || data == NULL)
      return rc;
  }
  int rc = stm_claim_decode(data, len, &r->claim, err);
  if (rc == 0 && r->claim.sequence != e->sequence)
    rc = stm_error_set(err, STM_ECORRUPT, NULL,
                       "WAL claim says sequence %" PRIu64 " at %" PRIu64,
                       r->claim.sequence, e->sequence);
  if (rc)
    return rc;
  uint64_t seq;
  if (stm_hashset_get(&w->pending, r->claim.hash, &seq))
    return 0; /* a duplicate never reaches the WAL; be lenient anyway */
  rc = stm_index_find(r->s->index, r->claim.hash, &seq, err);
  if (rc != STM_ENOTFOUND)
    return rc;
  rc = stm_index_batch_put_claim(w->batch, &r->claim, data, len);
  rc = rc ? rc : stm__store_claim_extras(r->s, &r->claim, op, caller);
  rc = rc ? rc : stm_hashset_put(&w->pending, r->claim.hash, e->sequence);
  if (rc)
    return stm_error_set(err, rc, NULL, "replay: out of memory");
  w->assertion_count++;
  r->claims++;
  return 0;
}

static int replay_txn(void *ctx, const struct stm_wal_txn *txn,
                      struct stm_error *err) {
  struct replay *r = ctx;
  struct stm_wal_txn_iter it;
  struct stm_wal_entry e;
  stm_wal_txn_iter_init(&it, txn);
  while (stm_wal_txn_next(&it, &e)) {
    if (e.sequence <= r->after)
      continue;
    int rc = replay_entry(r, &e, err);
    if (rc)
      return rc;
  }
  r->applied = stm_wal_txn_last_sequence(txn);
  r->records++;
  if (stm_index_batch_bytes(r->s->w.batch) >= REPLAY_BATCH_BYTES)
    return flush_replay(r, err);
  return 0;
}

int stm__store_recover(struct stm_store *s, struct stm_error *err) {
  struct stm_index_meta meta;
  struct stm_wal_info wal;
  stm_index_get_meta(s->index, &meta);
  stm_wal_get_info(s->wal, &wal);
  if (meta.last_applied_sequence > wal.last_sequence)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "the index of %s has applied sequence %" PRIu64
                         " but the WAL ends at %" PRIu64
                         ": WAL data is missing",
                         s->dir, meta.last_applied_sequence, wal.last_sequence);
  int64_t t0 = stm_clock_mono_ns();
  s->w.assertion_count = meta.assertion_count;
  struct replay r = {.s = s,
                     .after = meta.last_applied_sequence,
                     .applied = meta.last_applied_sequence};
  stm_claim_init(&r.claim);
  int rc = stm_wal_replay(s->wal, r.after, replay_txn, &r, err);
  if (rc == 0 && r.records > 0)
    rc = flush_replay(&r, err);
  stm_claim_destroy(&r.claim);
  stm_index_batch_clear(s->w.batch);
  stm_hashset_clear(&s->w.pending);
  if (rc)
    return rc;
  s->w.next_sequence = wal.last_sequence + 1;
  s->w.last_commit_time_ns = wal.last_commit_time_ns;
  s->stats = (struct stm_store_stats){.assertion_count = s->w.assertion_count,
                                      .last_sequence = wal.last_sequence,
                                      .writable = !s->read_only,
                                      .disk_full = s->read_only,
                                      .wal_segments = wal.segments,
                                      .wal_bytes = wal.bytes,
                                      .recovered_records = r.records,
                                      .truncated_bytes = wal.truncated_bytes};
  stm_log_info("storage %s: opened; WAL %" PRIu64 " segments, %" PRIu64
               " bytes, last sequence %" PRIu64 "; replayed %" PRIu64
               " records (%" PRIu64 " claims) after sequence %" PRIu64
               " in %.1f ms; cut %" PRIu64 " torn bytes; %" PRIu64 " claims",
               s->dir, wal.segments, wal.bytes, wal.last_sequence, r.records,
               r.claims, meta.last_applied_sequence,
               (double)(stm_clock_mono_ns() - t0) / 1e6, wal.truncated_bytes,
               s->w.assertion_count);
  return 0;
}
