/*
 * store_writer.c - the submission queue and the writer thread.
 *
 * Group commit: the writer takes everything queued (up to max_group_bytes),
 * deduplicates each claim against LevelDB and against the hashes pending in
 * this group, assigns sequences and one commit time, encodes one TXN record
 * per submission, then does ONE WAL append + ONE fdatasync for the whole
 * group, applies the group to LevelDB in one write batch, updates the
 * stats, tells the log listener, and completes every submission.
 *
 * Groups are processed strictly one after another, so a duplicate is never
 * acknowledged before the write that first stored its hash is durable: that
 * write is either in the same group (acknowledged together, after the
 * fdatasync) or in an earlier, already durable one.
 */
#include "store_internal.h"

#include "common/clock.h"
#include "common/log.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_claims(struct stm_claim *claims, size_t n) {
  for (size_t i = 0; claims && i < n; i++)
    stm_claim_destroy(&claims[i]);
  free(claims);
}

void stm__store_sub_free(struct stm_store_sub *sub) {
  free_claims(sub->claims, sub->n);
  if (sub->rec)
    stm_record_destroy(sub->rec);
  free(sub->rec);
  free(sub);
}

/* ---- submit (any thread) --------------------------------------------------- */

static int submit_claims(struct stm_store *s, struct stm_claim *claims,
                         size_t n, const char *op, const char *caller,
                         stm_store_write_cb cb, void *ctx, bool remote);
static int submit_record(struct stm_store *s, struct stm_record *rec,
                         const char *op, const char *caller,
                         stm_store_record_cb cb, void *ctx, bool remote);

/* Hash every claim not hashed yet (here, so hashing runs in parallel on
 * the callers; a signed claim was hashed to verify its signature) and size
 * the record. */
static int prepare(struct stm_claim *claims, size_t n, size_t *bytes) {
  size_t total = STM_WAL_RECORD_HEADER_LEN + STM_WAL_TXN_HEADER_LEN;
  for (size_t i = 0; i < n; i++) {
    int rc = claims[i].hashed ? 0 : stm_claim_compute_hash(&claims[i]);
    if (rc)
      return rc == STM_ENOMEM ? rc : STM_EINVAL;
    total += STM_WAL_ENTRY_HEADER_LEN + stm_claim_encoded_size(&claims[i]);
    if (total > STM_WAL_MAX_PAYLOAD)
      return STM_EINVAL;
  }
  *bytes = total;
  return 0;
}

static int submit_claims(struct stm_store *s, struct stm_claim *claims,
                         size_t n, const char *op, const char *caller,
                         stm_store_write_cb cb, void *ctx, bool remote) {
  size_t bytes = 0;
  int rc =
      (s && claims && n > 0 && cb) ? prepare(claims, n, &bytes) : STM_EINVAL;
  struct stm_store_sub *sub = NULL;
  if (rc == 0) {
    sub = calloc(1, sizeof *sub + n * sizeof sub->results[0]);
    rc = sub ? 0 : STM_ENOMEM;
  }
  if (rc) {
    free_claims(claims, n);
    free(sub);
    return rc;
  }
  sub->claims = claims;
  sub->n = n;
  sub->bytes = bytes + n * stm_audit_wrap_header_size(op, caller);
  sub->cb = cb;
  sub->ctx = ctx;
  sub->audited = true;
  sub->remote = remote;
  stm__store_copy_cut(sub->op, sizeof sub->op, op);
  stm__store_copy_cut(sub->caller, sizeof sub->caller, caller);
  return stm__store_enqueue(s, sub);
}

int stm_store_apply_claims(struct stm_store *s, struct stm_claim *claims,
                           size_t n, const char *op, const char *caller,
                           stm_store_write_cb cb, void *ctx) {
  return submit_claims(s, claims, n, op, caller, cb, ctx, true);
}

int stm_store_submit_claims(struct stm_store *s, struct stm_claim *claims,
                            size_t n, const char *op, const char *caller,
                            stm_store_write_cb cb, void *ctx) {
  return submit_claims(s, claims, n, op, caller, cb, ctx, false);
}

int stm_store_apply_record(struct stm_store *s, struct stm_record *rec,
                           const char *op, const char *caller,
                           stm_store_record_cb cb, void *ctx) {
  return submit_record(s, rec, op, caller, cb, ctx, true);
}

int stm_store_submit_record(struct stm_store *s, struct stm_record *rec,
                            const char *op, const char *caller,
                            stm_store_record_cb cb, void *ctx) {
  return submit_record(s, rec, op, caller, cb, ctx, false);
}

static int submit_record(struct stm_store *s, struct stm_record *rec,
                         const char *op, const char *caller,
                         stm_store_record_cb cb, void *ctx, bool remote) {
  int rc = (s && rec && cb && rec->kind != STM_RECORD_CLAIM &&
            stm_record_kind_valid(rec->kind))
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
  sub->remote = remote;
  stm__store_copy_cut(sub->op, sizeof sub->op, op);
  stm__store_copy_cut(sub->caller, sizeof sub->caller, caller);
  sub->bytes = STM_WAL_RECORD_HEADER_LEN + STM_WAL_TXN_HEADER_LEN +
               STM_WAL_ENTRY_HEADER_LEN +
               stm_audit_wrap_header_size(op, caller) + enc.len;
  stm_buf_destroy(&enc);
  return stm__store_enqueue(s, sub);
}

int stm__store_enqueue(struct stm_store *s, struct stm_store_sub *sub) {
  int rc;
  pthread_mutex_lock(&s->mu);
  rc = s->closing ? STM_ESHUTDOWN : !s->stats.writable ? STM_EREADONLY : 0;
  if (rc == 0) {
    if (s->tail)
      s->tail->next = sub;
    else
      s->head = sub;
    s->tail = sub;
    if (s->writer_idle) /* a busy writer looks at the queue before waiting */
      pthread_cond_signal(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  if (rc)
    stm__store_sub_free(sub);
  return rc;
}

/* ---- building a group (writer thread) -------------------------------------- */

/* A replicated claim already stored: it takes an earlier origin time
 * (the earliest wins). Returns 0 (stored), STM_ENOTFOUND (new) or error. */
static int remote_dup(struct stm_store *s, struct stm_wal_txn_builder *txn,
                      const struct stm_claim *c, struct stm_write_result *r,
                      int64_t t, struct stm_error *err) {
  int64_t stored = 0;
  int rc = stm_index_find_time(s->index, c->hash, &r->sequence, &stored, err);
  if (rc || stored <= t)
    return rc;
  bool done = false;
  rc = stm__index_retime_claim(s->index, s->w.batch, c->hash, t, &done, err);
  if (rc == 0 && done)
    rc = stm__store_add_retime(s, txn, STM_RECORD_CLAIM, c->hash, t);
  /* later copies in this group see it as pending, never re-time twice */
  return rc ? rc : stm_hashset_put(&s->w.pending, c->hash, r->sequence);
}

/* One submission -> results and (unless all duplicates) one TXN record. */
static int build_sub(struct stm_store *s, struct stm_store_sub *head,
                     struct stm_store_sub *sub, int64_t now,
                     struct stm_error *err) {
  struct stm_store_writer *w = &s->w;
  struct stm_wal_txn_builder txn;
  int rc = stm_wal_txn_begin(&txn, &w->wal_buf, w->next_sequence, now);
  if (rc == 0 && sub->rec)
    rc = stm__store_build_record(s, head, sub, &txn, now, err);
  for (size_t i = 0; rc == 0 && sub->claims && i < sub->n; i++) {
    struct stm_claim *c = &sub->claims[i];
    struct stm_write_result *r = &sub->results[i];
    memcpy(r->hash, c->hash, STM_HASH_LEN);
    r->created = false;
    if (stm_hashset_get(&w->pending, c->hash, &r->sequence))
      continue;
    int64_t t = sub->remote && c->commit_time_ns ? c->commit_time_ns : now;
    rc = sub->remote ? remote_dup(s, &txn, c, r, t, err)
                     : stm_index_find(s->index, c->hash, &r->sequence, err);
    if (rc != STM_ENOTFOUND)
      continue; /* 0: already stored; < 0: a read error ends the loop */
    r->sequence = w->next_sequence;
    r->created = true;
    rc = stm__store_add_claim(s, sub, &txn, c, t);
  }
  if (rc == 0 && txn.count > 0)
    rc = stm_wal_txn_finish(&txn);
  else
    stm_wal_txn_abort(&txn);
  if (rc == STM_ENOMEM || rc == STM_ETOOBIG)
    stm_error_set(err, rc, NULL, "group commit: cannot encode: %s",
                  stm_strerror(rc));
  return rc;
}

static void reset_group(struct stm_store_writer *w) {
  stm_buf_reset(&w->wal_buf);
  stm_index_batch_clear(w->batch);
  stm_hashset_clear(&w->pending);
  w->nlog = 0;
  w->nkeylog = 0;
}

/* ---- completing a group ------------------------------------------------------ */

static void complete_all(struct stm_store_sub *list, int rc,
                         const struct stm_error *err) {
  while (list) {
    struct stm_store_sub *next = list->next;
    if (list->rec && rc == 0 && list->fail_rc) {
      struct stm_error e;
      stm_error_set(&e, list->fail_rc, NULL,
                    "the vote's target claim is not stored on this node yet");
      list->rcb(list->ctx, list->fail_rc, NULL, false, &e);
      stm__store_sub_free(list);
      list = next;
      continue;
    }
    if (list->rec) {
      list->rcb(list->ctx, rc, rc == 0 ? list->rec : NULL,
                rc == 0 && list->results[0].created, rc == 0 ? NULL : err);
      stm__store_sub_free(list);
      list = next;
      continue;
    }
    list->cb(list->ctx, rc, rc == 0 ? list->results : NULL,
             rc == 0 ? list->n : 0, rc == 0 ? NULL : err);
    stm__store_sub_free(list);
    list = next;
  }
}

const double stm_store_fsync_bucket_le[STM_STORE_FSYNC_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

/* Count one group-commit fdatasync (writer thread, under s->mu). */
static void observe_fsync(struct stm_store_stats *st, int64_t ns) {
  if (ns < 0)
    ns = 0;
  double sec = (double)ns / 1e9;
  for (size_t i = 0; i < STM_STORE_FSYNC_BUCKETS; i++)
    if (sec <= stm_store_fsync_bucket_le[i]) {
      st->fsync_le[i]++;
      break;
    }
  st->fsync_count++;
  st->fsync_ns_sum += (uint64_t)ns;
}

static void mark_unwritable(struct stm_store *s, const struct stm_error *err) {
  struct stm_wal_info info;
  stm_wal_get_info(s->wal, &info);
  pthread_mutex_lock(&s->mu);
  s->stats.wal_io_errors = info.io_errors;
  bool was = s->stats.writable;
  s->stats.writable = false;
  pthread_mutex_unlock(&s->mu);
  if (was)
    stm_log_error("storage %s: writes are refused from now on: %s", s->dir,
                  err->message);
}

static void publish(struct stm_store *s, size_t records, bool appended) {
  struct stm_store_writer *w = &s->w;
  struct stm_wal_info info;
  stm_wal_get_info(s->wal, &info);
  uint64_t sources = 0;
  for (size_t i = 0; i < w->nlog; i++)
    sources += w->log[i].kind == STM_RECORD_SOURCE;
  pthread_mutex_lock(&s->mu);
  s->stats.group_commits += appended ? 1 : 0;
  if (appended)
    observe_fsync(&s->stats, info.last_fsync_ns);
  s->stats.records_committed += records;
  s->stats.last_sequence = w->next_sequence - 1;
  s->stats.assertion_count = w->assertion_count;
  s->stats.wal_segments = info.segments;
  s->stats.wal_bytes = info.bytes;
  s->stats.sources_committed += sources;
  stm_store_log_listener_cb listener = s->listener;
  void *lctx = s->listener_ctx;
  stm_store_log_listener_cb key_listener = s->key_listener;
  void *kctx = s->key_listener_ctx;
  pthread_mutex_unlock(&s->mu);
  if (key_listener && w->nkeylog > 0) /* a revocation before any answer */
    key_listener(kctx, w->keylog, w->nkeylog);
  if (listener && w->nlog > 0)
    listener(lctx, w->log, w->nlog);
}

/* Count the TXN records in the group buffer (one per non-duplicate sub). */
static size_t count_records(const struct stm_store_sub *list) {
  size_t n = 0;
  for (; list; list = list->next)
    for (size_t i = 0; i < list->n; i++)
      if (list->results[i].created) {
        n++;
        break;
      }
  return n;
}

static void run_group(struct stm_store *s, struct stm_store_sub *list,
                      bool writable) {
  struct stm_store_writer *w = &s->w;
  struct stm_error err;
  stm_error_clear(&err);
  if (!writable) {
    stm_error_set(&err, STM_EREADONLY, NULL,
                  "storage failed earlier; writes are refused");
    complete_all(list, STM_EREADONLY, &err);
    return;
  }
  uint64_t first = w->next_sequence, count_before = w->assertion_count;
  int64_t now = stm_clock_now_ns();
  if (now < w->last_commit_time_ns)
    now = w->last_commit_time_ns; /* commit time never goes backwards */
  int rc = 0;
  for (struct stm_store_sub *sub = list; rc == 0 && sub; sub = sub->next)
    rc = build_sub(s, list, sub, now, &err);
  if (rc == 0 && !stm_index_batch_ok(w->batch))
    rc = stm_error_set(&err, STM_ENOMEM, NULL,
                       "group commit: out of memory for the index batch");
  if (rc) { /* nothing written yet: undo the group, stay writable */
    w->next_sequence = first;
    w->assertion_count = count_before;
    reset_group(w);
    stm__store_forget_concepts(w); /* its 'k' keys were never written */
    complete_all(list, rc, &err);
    return;
  }
  bool appended = w->next_sequence > first;
  if (appended)
    rc = stm_wal_append(s->wal, w->wal_buf.data, w->wal_buf.len, first,
                        w->next_sequence - 1, now, &err);
  if (rc == 0 && appended)
    rc = stm_index_commit(s->index, w->batch, w->next_sequence - 1,
                          w->assertion_count, &err);
  if (rc) {
    mark_unwritable(s, &err);
    reset_group(w);
    stm__store_forget_concepts(w);
    complete_all(list, STM_EREADONLY, &err);
    return;
  }
  w->last_commit_time_ns = now;
  publish(s, appended ? count_records(list) : 0, appended);
  reset_group(w);
  complete_all(list, 0, NULL);
}

/* ---- the thread ---------------------------------------------------------------- */

/* Detach the head of the queue, up to max_group_bytes (at least one). */
static struct stm_store_sub *take_group(struct stm_store *s) {
  struct stm_store_sub *first = s->head, *last = first;
  size_t bytes = first->bytes;
  while (last->next && bytes + last->next->bytes <= s->max_group_bytes) {
    last = last->next;
    bytes += last->bytes;
  }
  s->head = last->next;
  if (s->head == NULL)
    s->tail = NULL;
  last->next = NULL;
  return first;
}

static void *writer_main(void *arg) {
  struct stm_store *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (s->head == NULL && !s->closing) {
      s->writer_idle = true;
      pthread_cond_wait(&s->cv, &s->mu);
      s->writer_idle = false;
    }
    if (s->head == NULL)
      break; /* closing and drained */
    struct stm_store_sub *group = take_group(s);
    bool writable = s->stats.writable;
    pthread_mutex_unlock(&s->mu);
    run_group(s, group, writable);
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

int stm__store_writer_init(struct stm_store *s) {
  struct stm_store_writer *w = &s->w;
  memset(w, 0, sizeof *w);
  stm_buf_init(&w->wal_buf);
  stm_hashset_init(&w->pending);
  w->batch = stm_index_batch_new();
  return w->batch ? 0 : STM_ENOMEM;
}

void stm__store_writer_destroy(struct stm_store *s) {
  struct stm_store_writer *w = &s->w;
  stm_buf_destroy(&w->wal_buf);
  stm_hashset_destroy(&w->pending);
  stm_index_batch_delete(w->batch);
  free(w->log);
  free(w->keylog);
  stm__store_forget_concepts(w);
  memset(w, 0, sizeof *w);
}

int stm__store_writer_start(struct stm_store *s) {
  if (pthread_create(&s->thread, NULL, writer_main, s) != 0)
    return STM_ENOMEM;
  s->thread_started = true;
  return 0;
}

void stm__store_writer_stop(struct stm_store *s) {
  if (!s->thread_started)
    return;
  assert(!pthread_equal(pthread_self(), s->thread)); /* not from a callback */
  pthread_mutex_lock(&s->mu);
  s->closing = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  s->thread_started = false;
}
