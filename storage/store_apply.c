/*
 * store_apply.c - what one write puts into the writer's group: the WAL
 * entry (audited: operation and caller around it) and the index keys of a
 * new claim or record, its audit log entry, and its note for the change
 * feed. Claims and records alike; recovery reuses the index side.
 *
 * For a vote the writer deduplicates by content hash like claims; for an
 * epoch it assigns the next number of its concept/predicate, counting
 * epochs earlier in the same group, or adopts the current one that a retry
 * repeats.
 */
#include "index_records.h"
#include "store_internal.h"
#include "wal_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void stm__store_copy_cut(char *dst, size_t size, const char *src) {
  size_t n = src ? strnlen(src, size - 1) : 0;
  memcpy(dst, src ? src : "", n);
  dst[n] = '\0';
}

int stm__store_put_audit(struct stm_store *s, uint64_t seq, int64_t t,
                         enum stm_record_kind kind, const uint8_t *hash,
                         const char *op, const char *caller, const void *record,
                         size_t record_len) {
  struct stm_audit_entry a;
  a.sequence = seq;
  a.time_ns = t;
  a.kind = kind;
  memcpy(a.target, hash, STM_HASH_LEN);
  stm__store_copy_cut(a.op, sizeof a.op, op && op[0] ? op : "assert");
  stm__store_copy_cut(a.caller, sizeof a.caller, caller);
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
  int rc = stm__index_put_claim_extras(s->w.batch, c,
                                       !concept_known(&s->w, c->concept_path));
  rc = rc ? rc
          : stm__index_put_shard(s->w.batch,
                                 s->shard_of(c->concept_path, s->shards),
                                 c->hash, STM_RECORD_CLAIM);
  return rc ? rc
            : stm__store_put_audit(s, c->sequence, c->commit_time_ns,
                                   STM_RECORD_CLAIM, c->hash, op, caller, NULL,
                                   0);
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
                        struct stm_store_sub *sub, bool stated, bool *repeat,
                        struct stm_error *err) {
  struct stm_epoch *e = &sub->rec->u.epoch;
  struct stm_epoch last;
  *repeat = false;
  int rc = stm__index_last_epoch(s->index, e->concept_path, e->predicate, &last,
                                 err);
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

static int put_record(struct stm_store *s, struct stm_store_sub *sub,
                      struct stm_wal_txn_builder *txn, int64_t now,
                      uint32_t shard);

int stm__store_record_shard(struct stm_store *s,
                            const struct stm_store_sub *group,
                            const struct stm_record *r, uint32_t *shard,
                            struct stm_error *err) {
  if (stm_record_kind_everywhere(r->kind)) {
    *shard = STM_STORE_SHARD_ALL;
    return 0;
  }
  if (r->kind == STM_RECORD_EPOCH) {
    *shard = s->shard_of(r->u.epoch.concept_path, s->shards);
    return 0;
  }
  for (; group; group = group->next) /* a target earlier in this group */
    for (size_t i = 0; group->claims && i < group->n; i++)
      if (group->results[i].created &&
          memcmp(group->claims[i].hash, r->u.vote.target, STM_HASH_LEN) == 0) {
        *shard = s->shard_of(group->claims[i].concept_path, s->shards);
        return 0;
      }
  struct stm_claim c;
  stm_claim_init(&c);
  struct stm_read_view now = {0};
  int rc = stm_index_get_claim(s->index, r->u.vote.target, &now, &c, err);
  if (rc == 0)
    *shard = s->shard_of(c.concept_path, s->shards);
  stm_claim_destroy(&c);
  return rc;
}

int stm__store_add_retime(struct stm_store *s, struct stm_wal_txn_builder *txn,
                          enum stm_record_kind kind, const uint8_t *hash,
                          int64_t time_ns) {
  struct stm_store_writer *w = &s->w;
  int rc = stm_wal_txn_entry_begin(txn, STM_WAL_ENTRY_RETIME);
  rc = rc ? rc : stm_buf_put_u8(&w->wal_buf, (uint8_t)kind);
  rc = rc ? rc : stm_buf_append(&w->wal_buf, hash, STM_HASH_LEN);
  rc = rc ? rc : stm_buf_put_u64le(&w->wal_buf, (uint64_t)time_ns);
  rc = rc ? rc : stm_wal_txn_entry_end(txn);
  if (rc == 0)
    w->next_sequence++;
  return rc;
}

/* A replicated vote/epoch/source: content as the origin wrote it; a copy
 * already stored is re-timed when this one is earlier. *done: handled
 * (a duplicate, or a failure of this submission alone). */
static int remote_record(struct stm_store *s, struct stm_store_sub *head,
                         struct stm_store_sub *sub,
                         struct stm_wal_txn_builder *txn, int64_t *t,
                         uint32_t *shard, bool *done, struct stm_error *err) {
  struct stm_store_writer *w = &s->w;
  struct stm_record *rec = sub->rec;
  struct stm_write_result *r = &sub->results[0];
  *done = true;
  if (stm_record_commit_time(rec) != 0) /* 0: the origin left it to us */
    *t = stm_record_commit_time(rec);
  int rc = stm_record_compute_hash(rec);
  if (rc)
    return rc;
  memcpy(r->hash, stm_record_hash(rec), STM_HASH_LEN);
  r->created = false;
  if (stm_hashset_get(&w->pending, r->hash, &r->sequence))
    return 0;
  rc = stm__index_find_record(s->index, r->hash, &r->sequence, err);
  if (rc == 0) {
    bool retimed = false;
    rc = stm__index_retime_record(s->index, w->batch, r->hash, *t, &retimed,
                                  err);
    if (rc == 0 && retimed)
      rc = stm__store_add_retime(s, txn, rec->kind, r->hash, *t);
    rc = rc ? rc : stm_hashset_put(&w->pending, r->hash, r->sequence);
    return rc;
  }
  if (rc != STM_ENOTFOUND)
    return rc;
  rc = stm__store_record_shard(s, head, rec, shard, err);
  if (rc == STM_ENOTFOUND) {
    sub->fail_rc = STM_ENOTFOUND;
    return 0;
  }
  *done = false;
  return rc;
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
  uint32_t shard = 0;
  if (sub->remote) {
    bool done = false;
    int rc = remote_record(s, head, sub, txn, &now, &shard, &done, err);
    if (rc || done)
      return rc;
    return put_record(s, sub, txn, now, shard);
  }
  int64_t *ts = stm_record_timestamp(rec);
  bool stated = *ts != 0;
  if (*ts == 0 && rec->kind != STM_RECORD_VOTE)
    *ts = now;
  bool repeat = false;
  int rc = rec->kind == STM_RECORD_EPOCH
               ? number_epoch(s, head, sub, stated, &repeat, err)
               : 0;
  if (rc == 0 && repeat) { /* a retried StartEpoch: answer the first one */
    memcpy(r->hash, stm_record_hash(rec), STM_HASH_LEN);
    r->sequence = rec->u.epoch.sequence;
    r->created = false;
    return 0;
  }
  rc = rc ? rc : stm_record_compute_hash(rec);
  if (rc)
    return rc;
  memcpy(r->hash, stm_record_hash(rec), STM_HASH_LEN);
  r->created = false;
  if (rec->kind == STM_RECORD_VOTE) { /* identical vote: idempotent */
    if (stm_hashset_get(&w->pending, r->hash, &r->sequence))
      return 0;
    rc = stm__index_find_record(s->index, r->hash, &r->sequence, err);
    if (rc != STM_ENOTFOUND) {
      if (rc == 0)
        stm_record_set_commit(rec, r->sequence, 0);
      return rc;
    }
  }
  rc = stm__store_record_shard(s, head, rec, &shard, err);
  return rc ? rc : put_record(s, sub, txn, now, shard);
}

/* The WAL entry and keys of a new record committed at `now`. */
static int put_record(struct stm_store *s, struct stm_store_sub *sub,
                      struct stm_wal_txn_builder *txn, int64_t now,
                      uint32_t shard) {
  struct stm_store_writer *w = &s->w;
  struct stm_record *rec = sub->rec;
  struct stm_write_result *r = &sub->results[0];
  uint64_t seq = w->next_sequence;
  stm_record_set_commit(rec, seq, now);
  int rc = stm_wal_txn_entry_begin(txn, STM_WAL_ENTRY_AUDIT);
  rc = rc ? rc
          : stm_audit_wrap_header(&w->wal_buf, rec->kind, sub->op, sub->caller);
  size_t start = w->wal_buf.len;
  rc = rc ? rc : stm_record_encode(rec, &w->wal_buf);
  rc = rc ? rc : stm_wal_txn_entry_end(txn);
  rc = rc ? rc
          : stm__index_put_record(w->batch, rec, w->wal_buf.data + start,
                                  w->wal_buf.len - start);
  rc = rc ? rc
          : stm__store_put_audit(s, seq, now, rec->kind, r->hash, sub->op,
                                 sub->caller, w->wal_buf.data + start,
                                 w->wal_buf.len - start);
  rc = rc ? rc : stm_hashset_put(&w->pending, r->hash, seq);
  rc = rc ? rc : stm__index_put_shard(w->batch, shard, r->hash, rec->kind);
  rc = rc ? rc : stm__store_note_log(w, seq, NULL, rec);
  if (rc)
    return rc;
  r->sequence = seq;
  r->created = true;
  w->next_sequence++;
  return 0;
}

/* Append to one of the writer's per-group note arrays. */
static int note(struct stm_log_entry **log, size_t *n, size_t *cap,
                struct stm_log_entry e) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 256;
    struct stm_log_entry *p = realloc(*log, c * sizeof *p);
    if (p == NULL)
      return STM_ENOMEM;
    *log = p;
    *cap = c;
  }
  (*log)[(*n)++] = e;
  return 0;
}

int stm__store_note_log(struct stm_store_writer *w, uint64_t sequence,
                        const struct stm_claim *claim,
                        const struct stm_record *record) {
  struct stm_log_entry e =
      (struct stm_log_entry){.sequence = sequence,
                             .kind = record ? record->kind : STM_RECORD_CLAIM,
                             .claim = claim,
                             .record = record};
  if (record && stm_record_kind_is_key(record->kind)) /* the key listener */
    return note(&w->keylog, &w->nkeylog, &w->keylog_cap, e);
  return note(&w->log, &w->nlog, &w->log_cap, e);
}

/* Encode a new claim as the next entry of the TXN and queue its keys. */
int stm__store_add_claim(struct stm_store *s, const struct stm_store_sub *sub,
                         struct stm_wal_txn_builder *txn, struct stm_claim *c,
                         int64_t now) {
  struct stm_store_writer *w = &s->w;
  c->sequence = w->next_sequence;
  c->commit_time_ns = now;
  int rc = stm_wal_txn_entry_begin(txn, sub->audited ? STM_WAL_ENTRY_AUDIT
                                                     : STM_WAL_ENTRY_CLAIM);
  if (rc == 0 && sub->audited)
    rc = stm_audit_wrap_header(&w->wal_buf, STM_RECORD_CLAIM, sub->op,
                               sub->caller);
  size_t start = w->wal_buf.len;
  rc = rc ? rc : stm_claim_encode(c, &w->wal_buf);
  rc = rc ? rc : stm_wal_txn_entry_end(txn);
  rc = rc ? rc
          : stm_index_batch_put_claim(w->batch, c, w->wal_buf.data + start,
                                      w->wal_buf.len - start);
  rc = rc ? rc : stm_hashset_put(&w->pending, c->hash, c->sequence);
  rc = rc ? rc : stm__store_claim_extras(s, c, sub->op, sub->caller);
  rc = rc ? rc : stm__store_note_log(w, c->sequence, c, NULL);
  if (rc == 0) {
    w->next_sequence++;
    w->assertion_count++;
  }
  return rc;
}
