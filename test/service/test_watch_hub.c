/* Tests for service/watch_hub.c over a real store in a temporary directory
 * and a fake sink: the test decides when each send completes, so a slow
 * consumer is exact, not timing-dependent. */
#include "common/clock.h"
#include "fakes/clock_seam.h"
#include "harness.h"
#include "service/watch_hub.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "storage/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- a fake transport ---------------------------------------------------- */

#define MAX_SEEN 4096

struct fake {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct stm_watch_sub *sub;
  bool outstanding; /* a send waits for the test to complete it */
  uint64_t seqs[MAX_SEEN];
  int types[MAX_SEEN];
  size_t n;
  bool finished;
  int rc;
  char msg[256];
};

static int fake_send(void *ctx, struct stm_watch_buf *b) {
  struct fake *f = ctx;
  Stemedb__V1__WatchEvent *ev =
      stemedb__v1__watch_event__unpack(NULL, b->len, b->data);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
  CU_ASSERT_EQUAL(ev->sequence, b->sequence);
  pthread_mutex_lock(&f->mu);
  CU_ASSERT_FALSE(f->outstanding); /* never two sends at once */
  f->outstanding = true;
  if (f->n < MAX_SEEN) {
    f->seqs[f->n] = ev->sequence;
    f->types[f->n++] = (int)ev->type;
  }
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  stemedb__v1__watch_event__free_unpacked(ev, NULL);
  stm_watch_buf_unref(b);
  return 0;
}

static void fake_finish(void *ctx, int rc, const char *msg) {
  struct fake *f = ctx;
  pthread_mutex_lock(&f->mu);
  CU_ASSERT_FALSE(f->outstanding);
  CU_ASSERT_FALSE(f->finished);
  f->finished = true;
  f->rc = rc;
  snprintf(f->msg, sizeof f->msg, "%s", msg);
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

static const struct stm_watch_sink fake_sink = {fake_send, fake_finish};

static void fake_init(struct fake *f) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
}

/* Wait (at most `ms`) until a send is outstanding or the stream finished. */
static bool fake_wait_ms(struct fake *f, int64_t ms) {
  struct timespec until = stm_clock_deadline(CLOCK_REALTIME, ms * 1000000);
  pthread_mutex_lock(&f->mu);
  while (!f->outstanding && !f->finished)
    if (pthread_cond_timedwait(&f->cv, &f->mu, &until) != 0)
      break;
  bool ok = f->outstanding || f->finished;
  pthread_mutex_unlock(&f->mu);
  return ok;
}

static bool fake_wait(struct fake *f) { return fake_wait_ms(f, 10000); }

/* Complete the outstanding send (the client read it). */
static void fake_ack(struct fake *f) {
  pthread_mutex_lock(&f->mu);
  bool had = f->outstanding;
  f->outstanding = false;
  pthread_mutex_unlock(&f->mu);
  if (had)
    stm_watch_sub_sent(f->sub, true);
}

/* Read until `claims` claim events have arrived (or the stream ended). */
static size_t fake_drain(struct fake *f, size_t claims) {
  size_t got = 0;
  while (got < claims && fake_wait(f) && !f->finished) {
    pthread_mutex_lock(&f->mu);
    got += f->types[f->n - 1] == STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_CLAIM;
    pthread_mutex_unlock(&f->mu);
    fake_ack(f);
  }
  return got;
}

static void fake_destroy(struct fake *f) {
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cv);
}

/* --- a real store -------------------------------------------------------- */

struct fixture {
  char *dir;
  struct stm_store *store;
  struct stm_watch_hub *hub;
};

static void fixture_open_with(struct fixture *fx,
                              struct stm_watch_hub_options ho) {
  fx->dir = stm_test_tmpdir("watch");
  struct stm_store_options so = {.data_dir = fx->dir};
  CU_ASSERT_EQUAL_FATAL(stm_store_open(&so, &fx->store, NULL), 0);
  ho.store = fx->store;
  CU_ASSERT_EQUAL_FATAL(stm_watch_hub_new(&ho, &fx->hub, NULL), 0);
}

static void fixture_open(struct fixture *fx, size_t history, size_t buffer,
                         bool memory_only, size_t max_lag) {
  fixture_open_with(fx,
                    (struct stm_watch_hub_options){.history_events = history,
                                                   .buffer_events = buffer,
                                                   .max_total = 4,
                                                   .max_per_connection = 3,
                                                   .memory_only = memory_only,
                                                   .max_lag = max_lag});
}

static void fixture_close(struct fixture *fx) {
  stm_watch_hub_stop(fx->hub);
  stm_store_delete(fx->store);
  stm_watch_hub_delete(fx->hub);
  stm_test_rmrf(fx->dir);
  free(fx->dir);
}

struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  uint64_t first, last;
};

static void on_written(void *ctx, int rc, const struct stm_write_result *r,
                       size_t n, const struct stm_error *err) {
  (void)err;
  struct waiter *w = ctx;
  CU_ASSERT_EQUAL(rc, 0);
  pthread_mutex_lock(&w->mu);
  w->first = n ? r[0].sequence : 0;
  w->last = n ? r[n - 1].sequence : 0;
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Write n claims under "<path>/<i>" in one commit; returns the last seq. */
static uint64_t write_claims(struct stm_store *s, const char *path, size_t n,
                             int salt) {
  struct stm_claim *c = calloc(n, sizeof *c);
  for (size_t i = 0; i < n; i++) {
    char p[64], v[64];
    snprintf(p, sizeof p, "%s/%zu", path, i % 3);
    snprintf(v, sizeof v, "v%d-%zu", salt, i);
    stm_claim_init(&c[i]);
    CU_ASSERT_EQUAL_FATAL(stm_claim_set_str(&c[i].concept_path, p, strlen(p)),
                          0);
    CU_ASSERT_EQUAL_FATAL(stm_claim_set_str(&c[i].predicate, "p", 1), 0);
    CU_ASSERT_EQUAL_FATAL(stm_claim_set_str(&c[i].source_id, "test://s", 8), 0);
    CU_ASSERT_EQUAL_FATAL(
        stm_value_set_str(&c[i].value, STM_VALUE_STRING, v, strlen(v)), 0);
    c[i].timestamp_ns = (int64_t)i + 1;
  }
  struct waiter w = {.done = false};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  CU_ASSERT_EQUAL_FATAL(
      stm_store_submit_claims(s, c, n, NULL, NULL, on_written, &w), 0);
  pthread_mutex_lock(&w.mu);
  while (!w.done)
    pthread_cond_wait(&w.cv, &w.mu);
  pthread_mutex_unlock(&w.mu);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cv);
  return w.last;
}

static struct stm_watch_sub *subscribe_to(struct fixture *fx, struct fake *f,
                                          struct stm_watch_filter flt,
                                          const char *peer) {
  CU_ASSERT_EQUAL_FATAL(stm_watch_hub_subscribe(fx->hub, &flt, peer, &fake_sink,
                                                f, &f->sub, NULL),
                        0);
  stm_watch_sub_start(f->sub);
  return f->sub;
}

static struct stm_watch_sub *subscribe(struct fixture *fx, struct fake *f,
                                       const char *prefix, uint64_t start) {
  return subscribe_to(fx, f,
                      (struct stm_watch_filter){.concept_prefix = prefix,
                                                .start_sequence = start},
                      "peer-a");
}

static void on_record_written(void *ctx, int rc, const struct stm_record *rec,
                              bool created, const struct stm_error *err) {
  (void)rec;
  (void)err;
  struct waiter *w = ctx;
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_TRUE(created);
  pthread_mutex_lock(&w->mu);
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Submit one vote, epoch or source (taking `r`) and wait for it. */
static void write_record(struct stm_store *s, struct stm_record r) {
  struct stm_record *heap = malloc(sizeof *heap);
  *heap = r;
  struct waiter w = {.done = false};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  CU_ASSERT_EQUAL_FATAL(
      stm_store_submit_record(s, heap, "test", "me", on_record_written, &w), 0);
  pthread_mutex_lock(&w.mu);
  while (!w.done)
    pthread_cond_wait(&w.cv, &w.mu);
  pthread_mutex_unlock(&w.mu);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cv);
}

static void write_epoch(struct stm_store *s, const char *path,
                        const char *pred) {
  struct stm_record r;
  stm_record_init(&r, STM_RECORD_EPOCH);
  r.u.epoch.concept_path = strdup(path);
  r.u.epoch.predicate = strdup(pred);
  r.u.epoch.reason = strdup("test");
  write_record(s, r);
}

/* Drain until `n` non-progress events arrived (or the stream ended). */
static size_t fake_drain_events(struct fake *f, size_t n) {
  size_t got = 0;
  while (got < n && fake_wait(f) && !f->finished) {
    pthread_mutex_lock(&f->mu);
    got += f->types[f->n - 1] != STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_PROGRESS;
    pthread_mutex_unlock(&f->mu);
    fake_ack(f);
  }
  return got;
}

/* The non-progress events received: "c1 s2 v3 ..." (type letter, seq). */
static void event_list(const struct fake *f, char *out, size_t size) {
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = 0; i < f->n && len + 24 < size; i++) {
    static const char letter[] = "?cvesp";
    if (f->types[i] == STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_PROGRESS)
      continue;
    len += (size_t)snprintf(out + len, size - len, "%s%c%llu", len ? " " : "",
                            letter[f->types[i] < 6 ? f->types[i] : 0],
                            (unsigned long long)f->seqs[i]);
  }
}

static void end_and_release(struct fake *f) {
  stm_watch_sub_close(f->sub);
  fake_ack(f);
  CU_ASSERT_TRUE(fake_wait(f));
  CU_ASSERT_TRUE(f->finished);
  stm_watch_sub_unref(f->sub);
}

/* Claims only, in the order received. */
static size_t claim_seqs(const struct fake *f, uint64_t *out) {
  size_t k = 0;
  for (size_t i = 0; i < f->n; i++)
    if (f->types[i] == STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_CLAIM)
      out[k++] = f->seqs[i];
  return k;
}

/* Log scan callback: copy the first claim's hash and stop. */
static int first_hash(void *ctx, const struct stm_log_entry *e) {
  memcpy(ctx, e->claim->hash, STM_HASH_LEN);
  return 1;
}

/* --- cases --------------------------------------------------------------- */

/* Also covers a live burst (30) larger than the queue (8): the subscriber
 * drops back to catch-up instead of being cut. */
static void test_watch_catch_up_from_storage_ring_and_live_has_no_gap(void) {
  struct fixture fx;
  fixture_open(&fx, 16, 8, false, 0);
  uint64_t last = write_claims(fx.store, "a", 100, 1); /* 16 stay in memory */
  struct fake f;
  fake_init(&f);
  subscribe(&fx, &f, "a", 1);
  CU_ASSERT_EQUAL(fake_drain(&f, 100), 100);
  /* Live: written after the switch. */
  uint64_t last2 = write_claims(fx.store, "a", 30, 2);
  CU_ASSERT_EQUAL(fake_drain(&f, 30), 30);
  uint64_t *seqs = calloc(MAX_SEEN, sizeof *seqs);
  size_t k = claim_seqs(&f, seqs);
  CU_ASSERT_EQUAL(k, 130);
  for (size_t i = 0; i < k; i++)
    CU_ASSERT_EQUAL(seqs[i], i + 1);
  CU_ASSERT_EQUAL(last, 100);
  CU_ASSERT_EQUAL(last2, 130);
  /* A progress event at each switch to live (the first says "up to 100");
   * each covers exactly the claims before it. */
  size_t progress = 0;
  uint64_t prev = 0;
  for (size_t i = 0; i < f.n; i++) {
    if (f.types[i] == STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_PROGRESS) {
      if (progress++ == 0)
        CU_ASSERT_EQUAL(f.seqs[i], 100);
      CU_ASSERT_EQUAL(f.seqs[i], prev);
    } else {
      prev = f.seqs[i];
    }
  }
  CU_ASSERT_TRUE(progress >= 1);
  free(seqs);
  end_and_release(&f);
  fake_destroy(&f);
  fixture_close(&fx);
}

static void test_watch_prefix_names_a_subtree(void) {
  struct fixture fx;
  fixture_open(&fx, 64, 64, false, 0);
  struct fake f;
  fake_init(&f);
  subscribe(&fx, &f, "x/1", 0);
  CU_ASSERT_TRUE(fake_wait(&f)); /* the first progress */
  fake_ack(&f);
  write_claims(fx.store, "x/1", 3, 1);  /* x/1/0, x/1/1, x/1/2 */
  write_claims(fx.store, "x/10", 3, 2); /* never */
  write_claims(fx.store, "x", 3, 3);    /* x/1 once */
  CU_ASSERT_EQUAL(fake_drain(&f, 4), 4);
  uint64_t seqs[16];
  CU_ASSERT_EQUAL(claim_seqs(&f, seqs), 4);
  CU_ASSERT_EQUAL(seqs[0], 1);
  CU_ASSERT_EQUAL(seqs[2], 3);
  CU_ASSERT_EQUAL(seqs[3], 8);
  end_and_release(&f);
  fake_destroy(&f);
  fixture_close(&fx);
}

static void test_watch_slow_subscriber_is_cut_with_the_resume_point(void) {
  struct fixture fx;
  fixture_open(&fx, 64, 4, false, 10);
  struct fake f;
  fake_init(&f);
  subscribe(&fx, &f, NULL, 0);
  CU_ASSERT_TRUE(fake_wait(&f)); /* progress in flight, never acked yet */
  write_claims(fx.store, "s", 20, 1);
  /* The hub thread cuts it; finish waits for the send in flight. */
  struct timespec d = {0, 50 * 1000000L};
  for (int i = 0; i < 100; i++) {
    struct stm_watch_hub_stats st;
    stm_watch_hub_get_stats(fx.hub, &st);
    if (st.cut_slow)
      break;
    nanosleep(&d, NULL);
  }
  CU_ASSERT_FALSE(f.finished);
  fake_ack(&f);
  CU_ASSERT_TRUE(fake_wait(&f));
  CU_ASSERT_TRUE(f.finished);
  CU_ASSERT_EQUAL(f.rc, STM_ETOOBIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(f.msg, "start_sequence=1"));
  stm_watch_sub_unref(f.sub);
  fake_destroy(&f);
  fixture_close(&fx);
}

/* A watch from `start` ends at once with STM_ERANGE naming `oldest`. */
static void expect_out_of_range(struct fixture *fx, uint64_t start,
                                uint64_t oldest) {
  struct fake f;
  fake_init(&f);
  subscribe(fx, &f, NULL, start);
  CU_ASSERT_TRUE(fake_wait(&f));
  CU_ASSERT_TRUE(f.finished);
  CU_ASSERT_EQUAL(f.rc, STM_ERANGE);
  char want[64];
  snprintf(want, sizeof want, "oldest available sequence is %llu",
           (unsigned long long)oldest);
  CU_ASSERT_PTR_NOT_NULL(strstr(f.msg, want));
  stm_watch_sub_unref(f.sub);
  fake_destroy(&f);
}

static void test_watch_pruned_start_is_out_of_range(void) {
  struct fixture fx;
  fixture_open(&fx, 10, 8, true, 0);
  write_claims(fx.store, "p", 25, 1);
  expect_out_of_range(&fx, 3, 16);
  fixture_close(&fx);
}

static void test_watch_limits_and_stop(void) {
  struct fixture fx;
  fixture_open(&fx, 8, 8, false, 0);
  struct fake f[4];
  for (int i = 0; i < 3; i++) {
    fake_init(&f[i]);
    subscribe(&fx, &f[i], NULL, 0);
  }
  struct stm_error err;
  struct stm_watch_filter flt = {.concept_prefix = NULL};
  struct stm_watch_sub *s = NULL;
  fake_init(&f[3]);
  CU_ASSERT_EQUAL(stm_watch_hub_subscribe(fx.hub, &flt, "peer-a", &fake_sink,
                                          &f[3], &s, &err),
                  STM_ETOOBIG);
  CU_ASSERT_STRING_EQUAL(err.field, "watch-max-per-connection");
  CU_ASSERT_EQUAL(stm_watch_hub_subscribe(fx.hub, &flt, "peer-b", &fake_sink,
                                          &f[3], &f[3].sub, &err),
                  0);
  CU_ASSERT_EQUAL(stm_watch_hub_subscribe(fx.hub, &flt, "peer-c", &fake_sink,
                                          &f[3], &s, &err),
                  STM_ETOOBIG);
  CU_ASSERT_STRING_EQUAL(err.field, "watch-max-total");
  stm_watch_sub_start(f[3].sub);
  stm_watch_hub_stop(fx.hub);
  for (int i = 0; i < 4; i++) {
    fake_ack(&f[i]);
    CU_ASSERT_TRUE(fake_wait(&f[i]));
    CU_ASSERT_TRUE(f[i].finished);
    CU_ASSERT_EQUAL(f[i].rc, STM_ESHUTDOWN);
    CU_ASSERT_PTR_NOT_NULL(strstr(f[i].msg, "start_sequence=1"));
    stm_watch_sub_unref(f[i].sub);
    fake_destroy(&f[i]);
  }
  fixture_close(&fx);
}

/* --watch-max-per-client counts a client's streams over all its
 * connections (peers); other clients and uncounted streams still open. */
static void test_watch_per_client_limit(void) {
  struct fixture fx;
  fixture_open_with(&fx,
                    (struct stm_watch_hub_options){.history_events = 8,
                                                   .buffer_events = 8,
                                                   .max_total = 16,
                                                   .max_per_connection = 16,
                                                   .max_per_client = 2});
  struct fake f[4];
  const char *peers[] = {"peer-1", "peer-2", "peer-3", "peer-3"};
  const char *clients[] = {"key:a", "key:a", "key:b", NULL};
  for (int i = 0; i < 4; i++) {
    fake_init(&f[i]);
    subscribe_to(&fx, &f[i], (struct stm_watch_filter){.client = clients[i]},
                 peers[i]);
  }
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_watch_filter flt = {.client = "key:a"};
  struct stm_watch_sub *s = NULL;
  CU_ASSERT_EQUAL(stm_watch_hub_subscribe(fx.hub, &flt, "peer-4", &fake_sink,
                                          &f[0], &s, &err),
                  STM_ETOOBIG);
  CU_ASSERT_STRING_EQUAL(err.field, "watch-max-per-client");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "key:a"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "--watch-max-per-client"));
  stm_watch_hub_stop(fx.hub);
  for (int i = 0; i < 4; i++) {
    fake_ack(&f[i]);
    CU_ASSERT_TRUE(fake_wait(&f[i]));
    stm_watch_sub_unref(f[i].sub);
    fake_destroy(&f[i]);
  }
  fixture_close(&fx);
}

/*
 * Votes, epochs and sources are events too, in sequence order with the
 * claims, live and caught up (from the ring and from storage): a vote is
 * filtered under its claim's concept, an epoch under its own (predicate ""
 * matches any predicate filter), a source only reaches unfiltered watches.
 */
static void test_watch_records_are_events_in_sequence_order(void) {
  struct fixture fx;
  fixture_open_with(&fx, (struct stm_watch_hub_options){
                             .history_events = 3, /* 4..6 in memory */
                             .buffer_events = 64,
                             .max_total = 16,
                             .max_per_connection = 16});
  struct fake all, sub_r, pred_p;
  fake_init(&all);
  fake_init(&sub_r);
  fake_init(&pred_p);
  subscribe_to(&fx, &all, (struct stm_watch_filter){0}, "peer-a");
  subscribe_to(&fx, &sub_r, (struct stm_watch_filter){.concept_prefix = "r"},
               "peer-b");
  subscribe_to(&fx, &pred_p, (struct stm_watch_filter){.predicate = "q"},
               "peer-c");
  uint64_t c1 = write_claims(fx.store, "r", 1, 1); /* r/0 p, seq 1 */
  struct stm_record r;
  stm_record_init(&r, STM_RECORD_SOURCE);
  r.u.source.id = strdup("lab://x");
  r.u.source.name = strdup("");
  r.u.source.tier = 2;
  write_record(fx.store, r); /* 2 */
  stm_record_init(&r, STM_RECORD_VOTE);
  /* The vote's target: the claim at sequence 1 (read back its hash). */
  uint8_t target[STM_HASH_LEN];
  CU_ASSERT_EQUAL_FATAL(stm_store_scan_log(fx.store, c1 - 1,
                                           STM_LOG_KIND(STM_RECORD_CLAIM), NULL,
                                           first_hash, target, NULL),
                        1);
  memcpy(r.u.vote.target, target, STM_HASH_LEN);
  r.u.vote.voter_id = strdup("alice");
  r.u.vote.weight = 1.0;
  write_record(fx.store, r);          /* 3 */
  write_epoch(fx.store, "r/0", "p");  /* 4 */
  write_epoch(fx.store, "zz", "");    /* 5: concept-wide */
  write_claims(fx.store, "zz", 1, 2); /* 6 */
  CU_ASSERT_EQUAL(fake_drain_events(&all, 6), 6);
  CU_ASSERT_EQUAL(fake_drain_events(&sub_r, 3), 3);
  CU_ASSERT_EQUAL(fake_drain_events(&pred_p, 1), 1);
  char list[256];
  event_list(&all, list, sizeof list);
  CU_ASSERT_STRING_EQUAL(list, "c1 s2 v3 e4 e5 c6");
  event_list(&sub_r, list, sizeof list);
  CU_ASSERT_STRING_EQUAL(list, "c1 v3 e4");
  event_list(&pred_p, list, sizeof list);
  CU_ASSERT_STRING_EQUAL(list, "e5");
  /* Catch-up: 1..3 from storage, 4..6 from the ring; then by type. */
  struct fake again, votes;
  fake_init(&again);
  fake_init(&votes);
  subscribe_to(&fx, &again, (struct stm_watch_filter){.start_sequence = 1},
               "peer-d");
  CU_ASSERT_EQUAL(fake_drain_events(&again, 6), 6);
  event_list(&again, list, sizeof list);
  CU_ASSERT_STRING_EQUAL(list, "c1 s2 v3 e4 e5 c6");
  end_and_release(&all);
  subscribe_to(
      &fx, &votes,
      (struct stm_watch_filter){.start_sequence = 1,
                                .concept_prefix = "r",
                                .types = STM_WATCH_VOTE | STM_WATCH_EPOCH},
      "peer-a");
  CU_ASSERT_EQUAL(fake_drain_events(&votes, 2), 2);
  event_list(&votes, list, sizeof list);
  CU_ASSERT_STRING_EQUAL(list, "v3 e4");
  struct fake *each[] = {&sub_r, &pred_p, &again, &votes};
  for (size_t i = 0; i < 4; i++)
    end_and_release(each[i]);
  fake_destroy(&all);
  for (size_t i = 0; i < 4; i++)
    fake_destroy(each[i]);
  fixture_close(&fx);
}

/* With a retention window of 5, a start further back is OUT_OF_RANGE and
 * names the oldest sequence still served; a start inside it catches up. */
static void test_watch_retention_window_bounds_the_start(void) {
  struct fixture fx;
  fixture_open_with(&fx, (struct stm_watch_hub_options){.history_events = 4,
                                                        .retention_events = 5});
  write_claims(fx.store, "w", 20, 1);
  expect_out_of_range(&fx, 15, 16);
  struct fake inside;
  fake_init(&inside);
  subscribe(&fx, &inside, NULL, 16);
  CU_ASSERT_EQUAL(fake_drain(&inside, 5), 5);
  uint64_t seqs[16];
  CU_ASSERT_EQUAL(claim_seqs(&inside, seqs), 5);
  CU_ASSERT_EQUAL(seqs[0], 16);
  CU_ASSERT_EQUAL(seqs[4], 20);
  end_and_release(&inside);
  fake_destroy(&inside);
  fixture_close(&fx);
}

/* Idle progress is timed on the clock seam (test/fakes/clock_seam.c): with
 * time frozen the hub ticks on but sends nothing until a simulated minute
 * has passed since the last send, and then sends exactly one progress. */
static void test_watch_idle_progress_follows_the_clock_seam(void) {
  stm_clock_seam_freeze(INT64_C(1000) * 1000000000);
  struct fixture fx;
  fixture_open(&fx, 64, 64, false, 0);
  struct fake f;
  fake_init(&f);
  subscribe_to(&fx, &f, (struct stm_watch_filter){.progress_ms = 60000},
               "peer-a");
  CU_ASSERT_TRUE_FATAL(fake_wait(&f)); /* the progress on going live */
  fake_ack(&f);
  pthread_mutex_lock(&f.mu);
  size_t before = f.n;
  pthread_mutex_unlock(&f.mu);
  stm_clock_seam_advance(INT64_C(59999) * 1000000);
  /* Several hub ticks of real time: the interval is not up yet. */
  CU_ASSERT_FALSE(fake_wait_ms(&f, 500));
  stm_clock_seam_advance(1000000);
  CU_ASSERT_TRUE(fake_wait(&f));
  pthread_mutex_lock(&f.mu);
  CU_ASSERT_EQUAL(f.n, before + 1);
  CU_ASSERT_EQUAL(f.types[f.n - 1],
                  STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_PROGRESS);
  pthread_mutex_unlock(&f.mu);
  end_and_release(&f);
  fake_destroy(&f);
  fixture_close(&fx);
  stm_clock_seam_thaw();
}

int main(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_watch_catch_up_from_storage_ring_and_live_has_no_gap),
      STM_TEST(test_watch_prefix_names_a_subtree),
      STM_TEST(test_watch_slow_subscriber_is_cut_with_the_resume_point),
      STM_TEST(test_watch_pruned_start_is_out_of_range),
      STM_TEST(test_watch_limits_and_stop),
      STM_TEST(test_watch_per_client_limit),
      STM_TEST(test_watch_records_are_events_in_sequence_order),
      STM_TEST(test_watch_retention_window_bounds_the_start),
      STM_TEST(test_watch_idle_progress_follows_the_clock_seam),
      STM_TEST_END};
  stm_test_suite("watch_hub", cases);
  return stm_test_run_all();
}
