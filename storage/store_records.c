/*
 * store_records.c - votes, epochs and sources through the one group-commit
 * path of store_writer.c, their audit entries, and their recovery.
 *
 * A record submission is one TXN record holding one kind-5 entry (the
 * audit wrapper: operation, caller, then the record's storage encoding).
 * The writer assigns sequence and commit time; for a vote it deduplicates
 * by content hash like claims; for an epoch it assigns the next number of
 * its concept/predicate, counting epochs earlier in the same group.
 */
#include "index_records.h"
#include "store_internal.h"
#include "wal_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copy a NUL-terminated string, cut to size - 1 (snprintf("%s") costs ten
 * times as much, and this runs for every claim). */
static void copy_cut(char *dst, size_t size, const char *src) {
  size_t n = src ? strnlen(src, size - 1) : 0;
  memcpy(dst, src ? src : "", n);
  dst[n] = '\0';
}

int stm_store_submit_record(struct stm_store *s, struct stm_record *rec,
                            const char *op, const char *caller,
                            stm_store_record_cb cb, void *ctx) {
  int rc = (s && rec && cb && rec->kind >= STM_RECORD_VOTE &&
            rec->kind <= STM_RECORD_SOURCE)
               ? 0
               : STM_EINVAL;
  struct stm_store_sub *sub =
      rc ? NULL : calloc(1, sizeof *sub + sizeof sub->results[0]);
  struct stm_buf enc;
  stm_buf_init(&enc);
  if (rc == 0 && sub == NULL)
    rc = STM_ENOMEM;
  if (rc == 0)
    rc = stm_record_encode(rec, &enc);
  if (rc) {
    if (rec)
      stm_record_destroy(rec);
    free(rec);
    free(sub);
    stm_buf_destroy(&enc);
    return rc;
  }
  sub->rec = rec;
  sub->n = 1;
  sub->rcb = cb;
  sub->ctx = ctx;
  sub->audited = true;
  copy_cut(sub->op, sizeof sub->op, op);
  copy_cut(sub->caller, sizeof sub->caller, caller);
  sub->bytes = STM_WAL_RECORD_HEADER_LEN + STM_WAL_TXN_HEADER_LEN +
               STM_WAL_ENTRY_HEADER_LEN +
               stm_audit_wrap_header_size(op, caller) + enc.len;
  stm_buf_destroy(&enc);
  return stm__store_enqueue(s, sub);
}

/* ---- the writer
 * --------------------------------------------------------------- */

/* Queue the 'q' log entry of a write: its audit, and for a record the
 * record itself (record_len 0 for a claim). */
static int put_audit(struct stm_store *s, uint64_t seq, int64_t t,
                     enum stm_record_kind kind, const uint8_t *hash,
                     const char *op, const char *caller, const void *record,
                     size_t record_len) {
  struct stm_audit_entry a;
  a.sequence = seq;
  a.time_ns = t;
  a.kind = kind;
  memcpy(a.target, hash, STM_HASH_LEN);
  copy_cut(a.op, sizeof a.op, op && op[0] ? op : "assert");
  copy_cut(a.caller, sizeof a.caller, caller);
  return stm__index_put_audit(s->w.batch, &a, record, record_len);
}

/* FNV-1a of a concept path, for the writer's cache of known concepts. */
static size_t concept_slot(const char *path) {
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)path; *p; p++)
    h = (h ^ *p) * 16777619u;
  return h % STM_STORE_CONCEPT_CACHE;
}

/*
 * Is the concept's 'k' key already in LevelDB (or queued in this group)?
 * A miss (collision, eviction) only costs a redundant put of the same
 * empty key; the cache is cleared when a group is abandoned.
 */
static bool concept_known(struct stm_store_writer *w, const char *path) {
  char **slot = &w->concepts[concept_slot(path)];
  if (*slot && strcmp(*slot, path) == 0)
    return true;
  char *copy = strdup(path);
  if (copy) {
    free(*slot);
    *slot = copy;
  }
  return false;
}

void stm__store_forget_concepts(struct stm_store_writer *w) {
  for (size_t i = 0; i < STM_STORE_CONCEPT_CACHE; i++) {
    free(w->concepts[i]);
    w->concepts[i] = NULL;
  }
}

int stm__store_claim_extras(struct stm_store *s, const struct stm_claim *c,
                            const char *op, const char *caller) {
  int rc = stm__index_put_claim_extras(
      s->w.batch, c, !concept_known(&s->w, c->concept_path));
  return rc ? rc
            : put_audit(s, c->sequence, c->commit_time_ns, STM_RECORD_CLAIM,
                        c->hash, op, caller, NULL, 0);
}

static uint8_t *rec_hash(struct stm_record *r) {
  return r->kind == STM_RECORD_VOTE    ? r->u.vote.hash
         : r->kind == STM_RECORD_EPOCH ? r->u.epoch.hash
                                       : r->u.source.hash;
}

static void set_commit(struct stm_record *r, uint64_t seq, int64_t now) {
  switch (r->kind) {
  case STM_RECORD_VOTE:
    r->u.vote.sequence = seq;
    r->u.vote.commit_time_ns = now;
    break;
  case STM_RECORD_EPOCH:
    r->u.epoch.sequence = seq;
    r->u.epoch.commit_time_ns = now;
    break;
  default:
    r->u.source.sequence = seq;
    r->u.source.commit_time_ns = now;
  }
}

/* Does a new epoch with a client-stated time repeat `o` (a retry)? */
static bool epoch_repeats(const struct stm_epoch *e, const struct stm_epoch *o,
                          bool stated) {
  return stated && o->timestamp_ns == e->timestamp_ns &&
         strcmp(o->reason, e->reason) == 0;
}

/* Take over the identity of the epoch it repeats. */
static void epoch_adopt(struct stm_epoch *e, const struct stm_epoch *o) {
  memcpy(e->hash, o->hash, STM_HASH_LEN);
  e->number = o->number;
  e->sequence = o->sequence;
  e->commit_time_ns = o->commit_time_ns;
}

/* The next number for an epoch: after the stored ones and those earlier
 * in this group. *repeat: the epoch repeats the current one of its scope
 * (same reason and client-stated timestamp_ns), which it then adopts. */
static int number_epoch(struct stm_store *s, struct stm_store_sub *head,
                        struct stm_store_sub *sub, bool stated,
                        bool *repeat, struct stm_error *err) {
  struct stm_epoch *e = &sub->rec->u.epoch;
  struct stm_epoch last;
  *repeat = false;
  int rc = stm__index_last_epoch(s->index, e->concept_path, e->predicate,
                                 &last, err);
  if (rc && rc != STM_ENOTFOUND)
    return rc;
  uint64_t n = rc == 0 ? last.number : 0;
  if (rc == 0) {
    if (epoch_repeats(e, &last, stated)) {
      epoch_adopt(e, &last);
      *repeat = true;
    }
    stm_epoch_destroy(&last);
  }
  for (struct stm_store_sub *p = head; p && p != sub; p = p->next) {
    if (p->rec == NULL || p->rec->kind != STM_RECORD_EPOCH)
      continue;
    const struct stm_epoch *o = &p->rec->u.epoch;
    if (strcmp(o->concept_path, e->concept_path) == 0 &&
        strcmp(o->predicate, e->predicate) == 0 && o->number > n) {
      n = o->number;
      *repeat = epoch_repeats(e, o, stated);
      if (*repeat)
        epoch_adopt(e, o);
    }
  }
  if (!*repeat)
    e->number = n + 1;
  return 0;
}

static int64_t *rec_timestamp(struct stm_record *r) {
  return r->kind == STM_RECORD_VOTE    ? &r->u.vote.timestamp_ns
         : r->kind == STM_RECORD_EPOCH ? &r->u.epoch.timestamp_ns
                                       : &r->u.source.timestamp_ns;
}

int stm__store_build_record(struct stm_store *s, struct stm_store_sub *head,
                            struct stm_store_sub *sub,
                            struct stm_wal_txn_builder *txn, int64_t now,
                            struct stm_error *err) {
  struct stm_store_writer *w = &s->w;
  struct stm_record *rec = sub->rec;
  struct stm_write_result *r = &sub->results[0];
  /* A vote's content hash covers the time its client stated, 0 when none:
   * the same vote sent twice (a retry) is one vote. Epochs and sources
   * without a stated time take the commit's. */
  int64_t *ts = rec_timestamp(rec);
  bool stated = *ts != 0;
  if (*ts == 0 && rec->kind != STM_RECORD_VOTE)
    *ts = now;
  bool repeat = false;
  int rc = rec->kind == STM_RECORD_EPOCH
               ? number_epoch(s, head, sub, stated, &repeat, err)
               : 0;
  if (rc == 0 && repeat) { /* a retried StartEpoch: answer the first one */
    memcpy(r->hash, rec_hash(rec), STM_HASH_LEN);
    r->sequence = rec->u.epoch.sequence;
    r->created = false;
    return 0;
  }
  rc = rc ? rc : stm_record_compute_hash(rec);
  if (rc)
    return rc;
  memcpy(r->hash, rec_hash(rec), STM_HASH_LEN);
  r->created = false;
  if (rec->kind == STM_RECORD_VOTE) { /* identical vote: idempotent */
    if (stm_hashset_get(&w->pending, r->hash, &r->sequence))
      return 0;
    rc = stm__index_find_record(s->index, r->hash, &r->sequence, err);
    if (rc != STM_ENOTFOUND) {
      if (rc == 0)
        set_commit(rec, r->sequence, 0);
      return rc;
    }
  }
  uint64_t seq = w->next_sequence;
  set_commit(rec, seq, now);
  rc = stm_wal_txn_entry_begin(txn, STM_WAL_ENTRY_AUDIT);
  rc = rc ? rc
          : stm_audit_wrap_header(&w->wal_buf, rec->kind, sub->op, sub->caller);
  size_t start = w->wal_buf.len;
  rc = rc ? rc : stm_record_encode(rec, &w->wal_buf);
  rc = rc ? rc : stm_wal_txn_entry_end(txn);
  rc = rc ? rc
          : stm__index_put_record(w->batch, rec, w->wal_buf.data + start,
                                  w->wal_buf.len - start);
  rc = rc ? rc
          : put_audit(s, seq, now, rec->kind, r->hash, sub->op, sub->caller,
                      w->wal_buf.data + start, w->wal_buf.len - start);
  rc = rc ? rc : stm_hashset_put(&w->pending, r->hash, seq);
  rc = rc ? rc : stm__store_note_log(w, seq, NULL, rec);
  if (rc)
    return rc;
  r->sequence = seq;
  r->created = true;
  w->next_sequence++;
  return 0;
}

/* ---- recovery
 * ------------------------------------------------------------------ */

int stm__store_replay_record(struct stm_store *s, uint8_t kind,
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
  } else if (kind < STM_WAL_ENTRY_VOTE || kind > STM_WAL_ENTRY_SOURCE) {
    return stm_error_set(err, STM_EUNIMPL, NULL,
                         "WAL entry of kind %u at sequence %" PRIu64
                         " is not supported by this build",
                         kind, sequence);
  }
  struct stm_record rec;
  int rc = stm_record_decode(inner, data, len, &rec, err);
  if (rc)
    return rc;
  uint64_t seq = 0;
  int64_t t = 0;
  switch (inner) {
  case STM_RECORD_VOTE:
    seq = rec.u.vote.sequence, t = rec.u.vote.commit_time_ns;
    break;
  case STM_RECORD_EPOCH:
    seq = rec.u.epoch.sequence, t = rec.u.epoch.commit_time_ns;
    break;
  default:
    seq = rec.u.source.sequence, t = rec.u.source.commit_time_ns;
  }
  if (seq != sequence)
    rc = stm_error_set(err, STM_ECORRUPT, NULL,
                       "WAL record says sequence %" PRIu64 " at %" PRIu64, seq,
                       sequence);
  uint64_t old;
  const uint8_t *h = rec_hash(&rec);
  bool dup = rc == 0 && (stm_hashset_get(&s->w.pending, h, &old) ||
                         stm__index_find_record(s->index, h, &old, err) == 0);
  if (rc == 0 && !dup) {
    rc = stm__index_put_record(s->w.batch, &rec, data, len);
    rc = rc ? rc : put_audit(s, seq, t, inner, h, op, caller, data, len);
    rc = rc ? rc : stm_hashset_put(&s->w.pending, h, seq);
  }
  stm_record_destroy(&rec);
  return rc;
}
