/*
 * Tests for storage/store: the public interface end to end - group commit
 * under concurrency, dedupe, recovery and rebuilds, the failure model under
 * injected faults, locking, listeners and reads.
 */
#include "common/clock.h"
#include "fault_io.h"
#include "storage/records.h"
#include "storage/store.h"
#include "storage/wal.h"
#include "storage_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixtures --------------------------------------------------------------- */

struct sfx {
  char *root;
  struct stm_store_options opts;
  struct stm_store *s;
};

static int sfx_open(struct sfx *f, struct stm_error *err) {
  return stm_store_open(&f->opts, &f->s, err);
}

static void sfx_must_open(struct sfx *f) {
  struct stm_error err;
  stm_error_clear(&err);
  int rc = sfx_open(f, &err);
  if (rc)
    fprintf(stderr, "\n  store open: %s\n", err.message);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
}

static void sfx_init(struct sfx *f) {
  memset(f, 0, sizeof *f);
  f->root = stm_test_tmpdir("store");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f->root);
  f->opts.data_dir = f->root;
  sfx_must_open(f);
}

static void sfx_close(struct sfx *f) {
  stm_store_delete(f->s);
  f->s = NULL;
}

static void sfx_destroy(struct sfx *f) {
  sfx_close(f);
  stm_test_rmrf(f->root);
  free(f->root);
}

static void stats_of(struct sfx *f, struct stm_store_stats *st) {
  stm_store_get_stats(f->s, st);
}

/* ---- waiting for one submission ------------------------------------------------ */

struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int rc;
  size_t n;
  struct stm_write_result results[8];
  char message[256];
};

static void on_done(void *ctx, int rc, const struct stm_write_result *r,
                    size_t n, const struct stm_error *err) {
  struct waiter *w = ctx;
  pthread_mutex_lock(&w->mu);
  w->rc = rc;
  w->n = n;
  for (size_t i = 0; i < n && i < 8; i++)
    w->results[i] = r[i];
  snprintf(w->message, sizeof w->message, "%s", err ? err->message : "");
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Submit and wait: the submit's error, or the callback's rc. */
static int submit_wait(struct stm_store *s, struct stm_claim *claims, size_t n,
                       struct waiter *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  int rc = stm_store_submit_claims(s, claims, n, NULL, NULL, on_done, w);
  pthread_mutex_lock(&w->mu);
  while (rc == 0 && !w->done)
    pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  return rc ? rc : w->rc;
}

/* One claim ("k/<i % 7>", value from salt) submitted and waited for. */
static int submit_one(struct stm_store *s, uint64_t salt, struct waiter *w) {
  return submit_wait(s, t_claims_new(1, "k", salt), 1, w);
}

static int count_claims(void *ctx, const struct stm_claim *c) {
  (void)c;
  (*(int *)ctx)++;
  return 0;
}

static int scan_count(struct stm_store *s, const char *path, bool desc,
                      const struct stm_read_view *view) {
  int n = 0;
  CU_ASSERT_EQUAL(
      stm_store_scan_concept(s, path, NULL, desc, view, count_claims, &n, NULL),
      0);
  return n;
}

static bool has_claim(struct stm_store *s, const uint8_t *hash) {
  struct stm_claim c;
  stm_claim_init(&c);
  int rc = stm_store_get_claim(s, hash, NULL, &c, NULL);
  stm_claim_destroy(&c);
  CU_ASSERT(rc == 0 || rc == STM_ENOTFOUND);
  return rc == 0;
}

/* ---- basics ----------------------------------------------------------------- */

static void test_store_commit_is_readable_and_survives_reopen(void) {
  struct sfx f;
  sfx_init(&f);
  struct waiter w;
  uint8_t hashes[10][STM_HASH_LEN];
  for (uint64_t i = 0; i < 10; i++) {
    CU_ASSERT_EQUAL_FATAL(submit_one(f.s, i, &w), 0);
    CU_ASSERT_TRUE(w.results[0].created);
    CU_ASSERT_EQUAL(w.results[0].sequence, i + 1);
    memcpy(hashes[i], w.results[0].hash, STM_HASH_LEN);
  }
  struct stm_claim c;
  stm_claim_init(&c);
  CU_ASSERT_EQUAL(stm_store_get_claim(f.s, hashes[3], NULL, &c, NULL), 0);
  CU_ASSERT_STRING_EQUAL(c.value.str, "v-3-0");
  CU_ASSERT_EQUAL(c.sequence, 4u);
  CU_ASSERT(c.commit_time_ns > 0);
  sfx_close(&f);
  sfx_must_open(&f);
  struct stm_store_stats st;
  stats_of(&f, &st);
  CU_ASSERT_EQUAL(st.assertion_count, 10u);
  CU_ASSERT_EQUAL(st.last_sequence, 10u);
  CU_ASSERT_EQUAL(st.recovered_records, 0u); /* LevelDB was up to date */
  CU_ASSERT_TRUE(st.writable);
  for (int i = 0; i < 10; i++)
    CU_ASSERT_TRUE(has_claim(f.s, hashes[i]));
  CU_ASSERT_EQUAL(scan_count(f.s, "k", true, NULL), 10);
  CU_ASSERT_EQUAL(submit_one(f.s, 99, &w), 0);
  CU_ASSERT_EQUAL(w.results[0].sequence, 11u);
  stm_claim_destroy(&c);
  sfx_destroy(&f);
}

static void test_store_second_open_of_a_directory_is_refused(void) {
  struct sfx f;
  sfx_init(&f);
  struct stm_store *other = NULL;
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(stm_store_open(&f.opts, &other, &err), STM_EEXIST);
  CU_ASSERT_PTR_NULL(other);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "in use by another process"));
  sfx_close(&f);
  CU_ASSERT_EQUAL(stm_store_open(&f.opts, &other, &err), 0);
  stm_store_delete(other);
  sfx_destroy(&f);
}

static void test_store_creates_nested_data_directories(void) {
  char *root = stm_test_tmpdir("store-nested");
  char dir[600];
  snprintf(dir, sizeof dir, "%s/a/b/data", root);
  struct stm_store_options o = {.data_dir = dir};
  struct stm_store *s = NULL;
  CU_ASSERT_EQUAL(stm_store_open(&o, &s, NULL), 0);
  stm_store_delete(s);
  stm_test_rmrf(root);
  free(root);
}

static void test_store_unusable_data_dir_is_an_io_error(void) {
  char *root = stm_test_tmpdir("store-bad");
  char file[600];
  snprintf(file, sizeof file, "%s/not-a-dir", root);
  FILE *fp = fopen(file, "w");
  fclose(fp);
  struct stm_store_options o = {.data_dir = file};
  struct stm_store *s = NULL;
  struct stm_error err;
  CU_ASSERT_EQUAL(stm_store_open(&o, &s, &err), STM_EIO);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "not-a-dir"));
  o.data_dir = "";
  CU_ASSERT_EQUAL(stm_store_open(&o, &s, &err), STM_EINVAL);
  stm_test_rmrf(root);
  free(root);
}

static void test_store_submit_rejects_bad_input_and_frees_it(void) {
  struct sfx f;
  sfx_init(&f);
  struct waiter w;
  /* n == 0: the (empty) array is still taken and freed. */
  CU_ASSERT_EQUAL(stm_store_submit_claims(f.s,
                                          calloc(1, sizeof(struct stm_claim)),
                                          0, NULL, NULL, on_done, &w),
                  STM_EINVAL);
  struct stm_claim *bad = t_claims_new(2, "x", 1);
  stm_value_destroy(&bad[1].value); /* kind NONE cannot be hashed */
  CU_ASSERT_EQUAL(stm_store_submit_claims(f.s, bad, 2, NULL, NULL, on_done, &w),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_store_submit_claims(f.s, t_claims_new(1, "x", 1), 1, NULL,
                                          NULL, NULL, NULL),
                  STM_EINVAL);
  struct stm_store_stats st;
  stats_of(&f, &st);
  CU_ASSERT_EQUAL(st.last_sequence, 0u);
  sfx_destroy(&f); /* LSan proves the rejected claims were freed */
}

/* ---- dedupe ------------------------------------------------------------------ */

static void test_store_same_claim_twice_returns_the_first_sequence(void) {
  struct sfx f;
  sfx_init(&f);
  struct waiter w;
  CU_ASSERT_EQUAL(submit_one(f.s, 5, &w), 0);
  struct stm_write_result first = w.results[0];
  CU_ASSERT_TRUE(first.created);
  CU_ASSERT_EQUAL(submit_one(f.s, 5, &w), 0);
  CU_ASSERT_FALSE(w.results[0].created);
  CU_ASSERT_EQUAL(w.results[0].sequence, first.sequence);
  CU_ASSERT_EQUAL(memcmp(w.results[0].hash, first.hash, STM_HASH_LEN), 0);
  struct stm_store_stats st;
  stats_of(&f, &st);
  CU_ASSERT_EQUAL(st.assertion_count, 1u);
  CU_ASSERT_EQUAL(st.last_sequence, 1u);
  CU_ASSERT_EQUAL(st.group_commits, 1u); /* the duplicate wrote nothing */
  sfx_destroy(&f);
}

static void test_store_same_claim_twice_in_one_batch_is_stored_once(void) {
  struct sfx f;
  sfx_init(&f);
  struct stm_claim *claims = t_claims_new(3, "d", 1);
  stm_claim_destroy(&claims[1]);
  stm_claim_copy(&claims[1], &claims[0]);
  struct waiter w;
  CU_ASSERT_EQUAL_FATAL(submit_wait(f.s, claims, 3, &w), 0);
  CU_ASSERT_EQUAL_FATAL(w.n, 3u);
  CU_ASSERT_TRUE(w.results[0].created);
  CU_ASSERT_FALSE(w.results[1].created);
  CU_ASSERT_EQUAL(w.results[1].sequence, w.results[0].sequence);
  CU_ASSERT_TRUE(w.results[2].created);
  CU_ASSERT_EQUAL(w.results[2].sequence, w.results[0].sequence + 1);
  struct stm_store_stats st;
  stats_of(&f, &st);
  CU_ASSERT_EQUAL(st.assertion_count, 2u);
  CU_ASSERT_EQUAL(st.records_committed, 1u); /* one batch = one record */
  sfx_destroy(&f);
}

/* ---- group commit -------------------------------------------------------------- */

#define GC_THREADS 8
#define GC_PER_THREAD 200

struct gc_state {
  struct stm_store *s;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  long done, ok, created, submit_errors;
  uint8_t hashes[GC_THREADS * GC_PER_THREAD][STM_HASH_LEN];
};

struct gc_thread {
  struct gc_state *st;
  int id;
};

static void gc_done(void *ctx, int rc, const struct stm_write_result *r,
                    size_t n, const struct stm_error *err) {
  (void)err;
  struct gc_state *st = ctx;
  pthread_mutex_lock(&st->mu);
  if (rc == 0 && n == 1) {
    memcpy(st->hashes[st->ok], r[0].hash, STM_HASH_LEN);
    st->ok++;
    st->created += r[0].created;
  }
  st->done++;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
}

static void *gc_submitter(void *arg) {
  struct gc_thread *t = arg;
  for (int i = 0; i < GC_PER_THREAD; i++) {
    uint64_t salt = (uint64_t)t->id * 100000 + (uint64_t)i;
    if (stm_store_submit_claims(t->st->s, t_claims_new(1, "g", salt), 1, NULL,
                                NULL, gc_done, t->st) != 0) {
      pthread_mutex_lock(&t->st->mu);
      t->st->submit_errors++;
      t->st->done++;
      pthread_mutex_unlock(&t->st->mu);
    }
  }
  return NULL;
}

static void test_store_group_commit_merges_concurrent_submissions(void) {
  struct sfx f;
  sfx_init(&f);
  struct gc_state *st = calloc(1, sizeof *st);
  st->s = f.s;
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->cv, NULL);
  pthread_t th[GC_THREADS];
  struct gc_thread args[GC_THREADS];
  int64_t t0 = stm_clock_mono_ns();
  for (int i = 0; i < GC_THREADS; i++) {
    args[i] = (struct gc_thread){.st = st, .id = i};
    pthread_create(&th[i], NULL, gc_submitter, &args[i]);
  }
  for (int i = 0; i < GC_THREADS; i++)
    pthread_join(th[i], NULL);
  const long total = (long)GC_THREADS * GC_PER_THREAD;
  pthread_mutex_lock(&st->mu);
  while (st->done < total)
    pthread_cond_wait(&st->cv, &st->mu);
  pthread_mutex_unlock(&st->mu);
  double secs = (double)(stm_clock_mono_ns() - t0) / 1e9;
  CU_ASSERT_EQUAL(st->submit_errors, 0);
  CU_ASSERT_EQUAL(st->ok, total);
  CU_ASSERT_EQUAL(st->created, total);
  struct stm_store_stats s;
  stats_of(&f, &s);
  fprintf(
      stderr, "\n    %ld submissions in %.3f s (%.0f/s), %llu group commits ",
      total, secs, (double)total / secs, (unsigned long long)s.group_commits);
  CU_ASSERT(s.group_commits < (uint64_t)total);
  CU_ASSERT(s.group_commits >= 1);
  CU_ASSERT_EQUAL(s.records_committed, (uint64_t)total);
  CU_ASSERT_EQUAL(s.assertion_count, (uint64_t)total);
  CU_ASSERT_EQUAL(s.last_sequence, (uint64_t)total);
  long readable = 0;
  for (long i = 0; i < st->ok; i++)
    readable += has_claim(f.s, st->hashes[i]);
  CU_ASSERT_EQUAL(readable, total);
  CU_ASSERT_EQUAL(scan_count(f.s, "g", true, NULL), total);
  pthread_mutex_destroy(&st->mu);
  pthread_cond_destroy(&st->cv);
  free(st);
  sfx_destroy(&f);
}

static void test_store_delete_commits_everything_already_queued(void) {
  struct sfx f;
  sfx_init(&f);
  struct gc_state *st = calloc(1, sizeof *st);
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->cv, NULL);
  for (int i = 0; i < 300; i++)
    CU_ASSERT_EQUAL(stm_store_submit_claims(f.s,
                                            t_claims_new(2, "q", (uint64_t)i),
                                            2, NULL, NULL, gc_done, st),
                    0);
  sfx_close(&f); /* no waiting: delete drains the queue */
  CU_ASSERT_EQUAL(st->done, 300);
  sfx_must_open(&f);
  struct stm_store_stats s;
  stats_of(&f, &s);
  CU_ASSERT_EQUAL(s.assertion_count, 600u);
  pthread_mutex_destroy(&st->mu);
  pthread_cond_destroy(&st->cv);
  free(st);
  sfx_destroy(&f);
}

/* ---- reads -------------------------------------------------------------------- */

static void test_store_as_of_sequence_hides_later_claims(void) {
  struct sfx f;
  sfx_init(&f);
  struct waiter w;
  uint8_t third[STM_HASH_LEN];
  for (uint64_t i = 0; i < 3; i++) {
    struct stm_claim *c = t_claims_new(1, "v", i);
    CU_ASSERT_EQUAL_FATAL(submit_wait(f.s, c, 1, &w), 0);
  }
  memcpy(third, w.results[0].hash, STM_HASH_LEN);
  struct stm_read_view v = {.as_of_sequence = 2};
  CU_ASSERT_EQUAL(scan_count(f.s, "v/0", false, &v), 2);
  CU_ASSERT_EQUAL(scan_count(f.s, "v/0", false, NULL), 3);
  struct stm_claim c;
  stm_claim_init(&c);
  CU_ASSERT_EQUAL(stm_store_get_claim(f.s, third, &v, &c, NULL), STM_ENOTFOUND);
  v.as_of_sequence = 3;
  CU_ASSERT_EQUAL(stm_store_get_claim(f.s, third, &v, &c, NULL), 0);
  stm_claim_destroy(&c);
  sfx_destroy(&f);
}

static void test_store_scan_covers_descendants_but_not_prefix_siblings(void) {
  struct sfx f;
  sfx_init(&f);
  const char *paths[] = {"a/b", "a/b/c", "a/bc", "a/b/c/d", "a"};
  for (int i = 0; i < 5; i++) {
    struct stm_claim *c = calloc(1, sizeof *c);
    stm_claim_init(c);
    t_claim_fill(c, paths[i], "p", paths[i], 1);
    struct waiter w;
    CU_ASSERT_EQUAL(submit_wait(f.s, c, 1, &w), 0);
  }
  CU_ASSERT_EQUAL(scan_count(f.s, "a/b", true, NULL), 3);
  CU_ASSERT_EQUAL(scan_count(f.s, "a/b", false, NULL), 1);
  CU_ASSERT_EQUAL(scan_count(f.s, "a", true, NULL), 5);
  sfx_destroy(&f);
}

struct seqs {
  uint64_t v[16];
  char first_path[16], last_path[16];
  int n;
};

static int collect_seq(void *ctx, const struct stm_log_entry *e) {
  struct seqs *s = ctx;
  CU_ASSERT_EQUAL_FATAL(e->kind, STM_RECORD_CLAIM);
  CU_ASSERT_EQUAL(e->claim->sequence, e->sequence);
  if (s->n == 0)
    snprintf(s->first_path, sizeof s->first_path, "%s", e->claim->concept_path);
  snprintf(s->last_path, sizeof s->last_path, "%s", e->claim->concept_path);
  if (s->n < 16)
    s->v[s->n++] = e->sequence;
  return 0;
}

static void test_store_sequence_scan_resumes_a_change_feed(void) {
  struct sfx f;
  sfx_init(&f);
  struct waiter w;
  CU_ASSERT_EQUAL(submit_wait(f.s, t_claims_new(6, "feed", 1), 6, &w), 0);
  struct seqs s = {.n = 0};
  CU_ASSERT_EQUAL(stm_store_scan_log(f.s, 3, STM_LOG_KIND(STM_RECORD_CLAIM),
                                     NULL, collect_seq, &s, NULL),
                  0);
  CU_ASSERT_EQUAL_FATAL(s.n, 3);
  CU_ASSERT_EQUAL(s.v[0], 4u);
  CU_ASSERT_EQUAL(s.v[2], 6u);
  sfx_destroy(&f);
}

/* Sequence order, not key order: concepts z, a, m, b written one by one
 * come back in that order after a resume point, and a view stops at its
 * sequence. */
static void test_store_sequence_scan_follows_commit_order(void) {
  struct sfx f;
  sfx_init(&f);
  static const char *paths[] = {"z", "a", "m", "b"};
  for (int i = 0; i < 4; i++) {
    struct stm_claim *c = t_claims_new(1, "x", i + 1);
    free(c[0].concept_path);
    c[0].concept_path = strdup(paths[i]);
    struct waiter w;
    CU_ASSERT_EQUAL(submit_wait(f.s, c, 1, &w), 0);
  }
  struct seqs s = {.n = 0};
  CU_ASSERT_EQUAL(stm_store_scan_log(f.s, 1, STM_LOG_ALL_KINDS, NULL,
                                     collect_seq, &s, NULL),
                  0);
  CU_ASSERT_EQUAL_FATAL(s.n, 3);
  CU_ASSERT_STRING_EQUAL(s.first_path, "a");
  CU_ASSERT_STRING_EQUAL(s.last_path, "b");
  memset(&s, 0, sizeof s);
  struct stm_read_view v = {.as_of_sequence = 3};
  CU_ASSERT_EQUAL(
      stm_store_scan_log(f.s, 0, STM_LOG_ALL_KINDS, &v, collect_seq, &s, NULL),
      0);
  CU_ASSERT_EQUAL(s.n, 3);
  sfx_destroy(&f);
}

/* ---- listener ----------------------------------------------------------------- */

struct listen {
  uint64_t seqs[16];
  int n, calls;
  bool before_ack;
  struct waiter *w;
};

static void on_commit(void *ctx, const struct stm_log_entry *e, size_t n) {
  struct listen *l = ctx;
  l->calls++;
  pthread_mutex_lock(&l->w->mu);
  l->before_ack = !l->w->done;
  pthread_mutex_unlock(&l->w->mu);
  for (size_t i = 0; i < n && l->n < 16; i++) {
    CU_ASSERT_EQUAL(e[i].kind, STM_RECORD_CLAIM);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e[i].claim);
    CU_ASSERT_EQUAL(e[i].claim->sequence, e[i].sequence);
    l->seqs[l->n++] = e[i].sequence;
  }
}

static void test_store_log_listener_sees_new_claims_before_the_ack(void) {
  struct sfx f;
  sfx_init(&f);
  struct waiter w;
  struct listen l = {.w = &w};
  stm_store_set_log_listener(f.s, on_commit, &l);
  struct stm_claim *claims = t_claims_new(3, "l", 1);
  stm_claim_destroy(&claims[2]);
  stm_claim_copy(&claims[2], &claims[0]); /* a duplicate: not an event */
  CU_ASSERT_EQUAL(submit_wait(f.s, claims, 3, &w), 0);
  CU_ASSERT_EQUAL(l.calls, 1);
  CU_ASSERT_EQUAL_FATAL(l.n, 2);
  CU_ASSERT_EQUAL(l.seqs[0], 1u);
  CU_ASSERT_EQUAL(l.seqs[1], 2u);
  CU_ASSERT_TRUE(l.before_ack);
  /* "l/0" = "v-1-0" again: a duplicate, so no event. */
  CU_ASSERT_EQUAL(submit_wait(f.s, t_claims_new(1, "l", 1), 1, &w), 0);
  CU_ASSERT_FALSE(w.results[0].created);
  CU_ASSERT_EQUAL(l.calls, 1);
  stm_store_set_log_listener(f.s, NULL, NULL);
  CU_ASSERT_EQUAL(submit_one(f.s, 2, &w), 0);
  CU_ASSERT_EQUAL(l.calls, 1);
  sfx_destroy(&f);
}

/* ---- recovery ------------------------------------------------------------------ */

static void test_store_index_is_rebuilt_from_the_wal(void) {
  struct sfx f;
  sfx_init(&f);
  struct waiter w;
  for (uint64_t i = 0; i < 10; i++)
    CU_ASSERT_EQUAL(submit_wait(f.s, t_claims_new(5, "r", i), 5, &w), 0);
  sfx_close(&f);
  char index[600];
  snprintf(index, sizeof index, "%s/index", f.root);
  stm_test_rmrf(index);
  sfx_must_open(&f);
  struct stm_store_stats st;
  stats_of(&f, &st);
  CU_ASSERT_EQUAL(st.recovered_records, 10u);
  CU_ASSERT_EQUAL(st.assertion_count, 50u);
  CU_ASSERT_EQUAL(st.last_sequence, 50u);
  CU_ASSERT_EQUAL(scan_count(f.s, "r", true, NULL), 50);
  sfx_close(&f);
  sfx_must_open(&f); /* and the rebuilt index is now up to date */
  stats_of(&f, &st);
  CU_ASSERT_EQUAL(st.recovered_records, 0u);
  sfx_destroy(&f);
}

/* WAL records that never reached LevelDB (a crash between the two). */
static void test_store_replays_wal_records_missing_from_the_index(void) {
  struct sfx f;
  sfx_init(&f);
  struct waiter w;
  CU_ASSERT_EQUAL(submit_wait(f.s, t_claims_new(3, "m", 1), 3, &w), 0);
  sfx_close(&f);
  char dir[600];
  snprintf(dir, sizeof dir, "%s/wal", f.root);
  struct stm_wal_options wo = {.dir = dir};
  struct stm_wal *wal = NULL;
  CU_ASSERT_EQUAL_FATAL(stm_wal_open(&wo, &wal, NULL), 0);
  struct stm_claim *extra = t_claims_new(2, "m", 2);
  struct stm_buf b;
  stm_buf_init(&b);
  struct stm_wal_txn_builder t;
  stm_wal_txn_begin(&t, &b, 4, 12345);
  for (int i = 0; i < 2; i++) {
    extra[i].sequence = 4 + (uint64_t)i;
    extra[i].commit_time_ns = 12345;
    stm_wal_txn_entry_begin(&t, STM_WAL_ENTRY_CLAIM);
    stm_claim_encode(&extra[i], &b);
    stm_wal_txn_entry_end(&t);
  }
  stm_wal_txn_finish(&t);
  CU_ASSERT_EQUAL(stm_wal_append(wal, b.data, b.len, 4, 5, 12345, NULL), 0);
  stm_wal_delete(wal);
  sfx_must_open(&f);
  struct stm_store_stats st;
  stats_of(&f, &st);
  CU_ASSERT_EQUAL(st.recovered_records, 1u);
  CU_ASSERT_EQUAL(st.assertion_count, 5u);
  stm_claim_compute_hash(&extra[1]);
  CU_ASSERT_TRUE(has_claim(f.s, extra[1].hash));
  CU_ASSERT_EQUAL(submit_one(f.s, 77, &w), 0);
  CU_ASSERT_EQUAL(w.results[0].sequence, 6u);
  stm_buf_destroy(&b);
  t_claims_free(extra, 2);
  sfx_destroy(&f);
}

/* ---- injected faults ----------------------------------------------------------- */

struct faulty {
  struct sfx f;
  struct fault_io fio;
};

static void faulty_open(struct faulty *x) {
  memset(x, 0, sizeof *x);
  fault_io_init(&x->fio);
  x->f.root = stm_test_tmpdir("store-fault");
  x->f.opts.data_dir = x->f.root;
  x->f.opts.io = &x->fio.io;
}

/* Close, reopen with the real io; true when `hash` survived. */
static void faulty_reopen_real(struct faulty *x) {
  sfx_close(&x->f);
  x->f.opts.io = NULL;
  sfx_must_open(&x->f);
}

static void faulty_destroy(struct faulty *x) {
  sfx_destroy(&x->f);
  fault_io_destroy(&x->fio);
}

static void store_fails_on(struct faulty *x, const char *expect) {
  struct waiter w;
  uint8_t acked[3][STM_HASH_LEN];
  for (uint64_t i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL_FATAL(submit_one(x->f.s, i, &w), 0);
    memcpy(acked[i], w.results[0].hash, STM_HASH_LEN);
  }
  struct stm_claim *failed = t_claims_new(1, "k", 50);
  stm_claim_compute_hash(&failed[0]);
  uint8_t failed_hash[STM_HASH_LEN];
  memcpy(failed_hash, failed[0].hash, STM_HASH_LEN);
  CU_ASSERT_EQUAL(submit_wait(x->f.s, failed, 1, &w), STM_EREADONLY);
  CU_ASSERT_PTR_NOT_NULL(strstr(w.message, expect));
  /* Refused now, without a callback, and not retried behind our back. */
  CU_ASSERT_EQUAL(submit_one(x->f.s, 51, &w), STM_EREADONLY);
  struct stm_store_stats st;
  stats_of(&x->f, &st);
  CU_ASSERT_FALSE(st.writable);
  CU_ASSERT_EQUAL(st.last_sequence, 3u);
  CU_ASSERT_EQUAL(st.wal_io_errors, 1u); /* stemedb_wal_fsync_errors_total */
  CU_ASSERT_EQUAL(st.fsync_count, 3u);   /* the three good group commits */
  uint64_t in_buckets = 0;
  for (size_t i = 0; i < STM_STORE_FSYNC_BUCKETS; i++)
    in_buckets += st.fsync_le[i];
  CU_ASSERT(in_buckets <= st.fsync_count);
  CU_ASSERT_FALSE(has_claim(x->f.s, failed_hash));
  faulty_reopen_real(x);
  stats_of(&x->f, &st);
  CU_ASSERT_TRUE(st.writable);
  CU_ASSERT_EQUAL(st.assertion_count, 3u);
  CU_ASSERT_EQUAL(st.truncated_bytes, 0u);
  for (int i = 0; i < 3; i++)
    CU_ASSERT_TRUE(has_claim(x->f.s, acked[i]));
  CU_ASSERT_FALSE(has_claim(x->f.s, failed_hash));
}

static void test_store_fdatasync_failure_makes_the_store_read_only(void) {
  struct faulty x;
  faulty_open(&x);
  sfx_must_open(&x.f);
  fault_io_fail_fdatasync_after(&x.fio, 3, false);
  store_fails_on(&x, "fdatasync");
  CU_ASSERT_EQUAL(x.fio.failed_fdatasyncs, 1);
  faulty_destroy(&x);
}

static void test_store_enospc_on_write_fails_cleanly(void) {
  struct faulty x;
  faulty_open(&x);
  sfx_must_open(&x.f);
  /* Enough for the three good records, then the disk is full mid-record. */
  fault_io_fail_writes_after(&x.fio, 3 * 150 + 40, ENOSPC);
  store_fails_on(&x, "No space");
  faulty_destroy(&x);
}

/* Crash after k I/O calls (open included), for every k. */
static void test_store_crash_at_any_io_call_keeps_acknowledged_claims(void) {
  for (long k = 0;; k++) {
    struct faulty x;
    faulty_open(&x);
    fault_io_crash_after(&x.fio, k);
    uint8_t acked[5][STM_HASH_LEN];
    int nacked = 0;
    if (sfx_open(&x.f, NULL) == 0) {
      struct waiter w;
      while (nacked < 5 && submit_one(x.f.s, (uint64_t)nacked, &w) == 0)
        memcpy(acked[nacked++], w.results[0].hash, STM_HASH_LEN);
    }
    bool crashed = x.fio.crashed;
    faulty_reopen_real(&x);
    for (int i = 0; i < nacked; i++)
      CU_ASSERT_TRUE(has_claim(x.f.s, acked[i]));
    struct stm_store_stats st;
    stats_of(&x.f, &st);
    CU_ASSERT(st.assertion_count >= (uint64_t)nacked);
    CU_ASSERT(st.assertion_count <= (uint64_t)nacked + 1);
    faulty_destroy(&x);
    if (!crashed)
      break;
    CU_ASSERT_FATAL(k < 1000);
  }
}

void stm_test_register_store(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_store_commit_is_readable_and_survives_reopen),
      STM_TEST(test_store_second_open_of_a_directory_is_refused),
      STM_TEST(test_store_creates_nested_data_directories),
      STM_TEST(test_store_unusable_data_dir_is_an_io_error),
      STM_TEST(test_store_submit_rejects_bad_input_and_frees_it),
      STM_TEST(test_store_same_claim_twice_returns_the_first_sequence),
      STM_TEST(test_store_same_claim_twice_in_one_batch_is_stored_once),
      STM_TEST(test_store_group_commit_merges_concurrent_submissions),
      STM_TEST(test_store_delete_commits_everything_already_queued),
      STM_TEST(test_store_as_of_sequence_hides_later_claims),
      STM_TEST(test_store_scan_covers_descendants_but_not_prefix_siblings),
      STM_TEST(test_store_sequence_scan_resumes_a_change_feed),
      STM_TEST(test_store_sequence_scan_follows_commit_order),
      STM_TEST(test_store_log_listener_sees_new_claims_before_the_ack),
      STM_TEST(test_store_index_is_rebuilt_from_the_wal),
      STM_TEST(test_store_replays_wal_records_missing_from_the_index),
      STM_TEST(test_store_fdatasync_failure_makes_the_store_read_only),
      STM_TEST(test_store_enospc_on_write_fails_cleanly),
      STM_TEST(test_store_crash_at_any_io_call_keeps_acknowledged_claims),
      STM_TEST_END};
  stm_test_suite("store", cases);
}
