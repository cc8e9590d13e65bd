/*
 * Tests for storage/records.c, index_records.c and store_records.c: the
 * record encodings, the audit wrapper, and votes, epochs and sources
 * through the store (group commit, reads as of a view, replay).
 */
#include "storage/records.h"
#include "storage/store.h"
#include "storage_test.h"

#include <leveldb/c.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- encodings
 * ---------------------------------------------------------------- */

static void vote_fill(struct stm_record *r, uint8_t target0, const char *voter,
                      double w) {
  stm_record_init(r, STM_RECORD_VOTE);
  memset(r->u.vote.target, target0, STM_HASH_LEN);
  r->u.vote.voter_id = strdup(voter);
  r->u.vote.weight = w;
  r->u.vote.timestamp_ns = 42;
}

static void test_records_round_trip_and_hash_only_content(void) {
  struct stm_record v, out;
  vote_fill(&v, 7, "alice", -0.5);
  v.u.vote.sequence = 9;
  v.u.vote.commit_time_ns = 11;
  CU_ASSERT_EQUAL(stm_record_compute_hash(&v), 0);
  struct stm_buf b;
  stm_buf_init(&b);
  CU_ASSERT_EQUAL(stm_record_encode(&v, &b), 0);
  CU_ASSERT_EQUAL(stm_record_decode(STM_RECORD_VOTE, b.data, b.len, &out, NULL),
                  0);
  CU_ASSERT_EQUAL(memcmp(out.u.vote.hash, v.u.vote.hash, STM_HASH_LEN), 0);
  CU_ASSERT_STRING_EQUAL(out.u.vote.voter_id, "alice");
  CU_ASSERT_EQUAL(out.u.vote.weight, -0.5);
  CU_ASSERT_EQUAL(out.u.vote.sequence, 9);
  CU_ASSERT_EQUAL(out.u.vote.commit_time_ns, 11);
  stm_record_destroy(&out);
  /* The sequence is not content: same hash. The weight is. */
  uint8_t h[STM_HASH_LEN];
  memcpy(h, v.u.vote.hash, STM_HASH_LEN);
  v.u.vote.sequence = 100;
  stm_record_compute_hash(&v);
  CU_ASSERT_EQUAL(memcmp(h, v.u.vote.hash, STM_HASH_LEN), 0);
  v.u.vote.weight = 0.5;
  stm_record_compute_hash(&v);
  CU_ASSERT_NOT_EQUAL(memcmp(h, v.u.vote.hash, STM_HASH_LEN), 0);
  /* Every truncation and a trailing byte are corrupt; so is the wrong kind. */
  for (size_t n = 0; n < b.len; n++)
    CU_ASSERT_EQUAL(stm_record_decode(STM_RECORD_VOTE, b.data, n, &out, NULL),
                    STM_ECORRUPT);
  CU_ASSERT_EQUAL(
      stm_record_decode(STM_RECORD_EPOCH, b.data, b.len, &out, NULL),
      STM_ECORRUPT);
  stm_buf_put_u8(&b, 0);
  CU_ASSERT_EQUAL(stm_record_decode(STM_RECORD_VOTE, b.data, b.len, &out, NULL),
                  STM_ECORRUPT);
  stm_buf_destroy(&b);
  stm_record_destroy(&v);
}

static void test_source_and_epoch_round_trip(void) {
  struct stm_record s, out;
  stm_record_init(&s, STM_RECORD_SOURCE);
  s.u.source.id = strdup("fda://x");
  s.u.source.name = strdup("FDA");
  s.u.source.tier = 0;
  s.u.source.trust = 0.25;
  s.u.source.has_public_key = true;
  memset(s.u.source.public_key, 3, STM_PUBLIC_KEY_LEN);
  struct stm_buf b;
  stm_buf_init(&b);
  CU_ASSERT_EQUAL(stm_record_encode(&s, &b), 0);
  CU_ASSERT_EQUAL(
      stm_record_decode(STM_RECORD_SOURCE, b.data, b.len, &out, NULL), 0);
  CU_ASSERT_STRING_EQUAL(out.u.source.name, "FDA");
  CU_ASSERT_EQUAL(out.u.source.trust, 0.25);
  CU_ASSERT_TRUE(out.u.source.has_public_key);
  CU_ASSERT_EQUAL(out.u.source.public_key[31], 3);
  stm_record_destroy(&out);
  stm_record_destroy(&s);
  stm_buf_reset(&b);
  struct stm_record e;
  stm_record_init(&e, STM_RECORD_EPOCH);
  e.u.epoch.concept_path = strdup("a/b");
  e.u.epoch.predicate = strdup("");
  e.u.epoch.reason = strdup("why");
  e.u.epoch.number = 3;
  CU_ASSERT_EQUAL(stm_record_encode(&e, &b), 0);
  CU_ASSERT_EQUAL(
      stm_record_decode(STM_RECORD_EPOCH, b.data, b.len, &out, NULL), 0);
  CU_ASSERT_EQUAL(out.u.epoch.number, 3);
  CU_ASSERT_STRING_EQUAL(out.u.epoch.predicate, "");
  stm_record_destroy(&out);
  stm_record_destroy(&e);
  stm_buf_destroy(&b);
}

static void test_audit_wrapper_round_trips_and_rejects_damage(void) {
  struct stm_buf b;
  stm_buf_init(&b);
  CU_ASSERT_EQUAL(
      stm_audit_wrap_header(&b, STM_RECORD_VOTE, "vote", "ipv4:127.0.0.1:1"),
      0);
  CU_ASSERT_EQUAL(b.len,
                  stm_audit_wrap_header_size("vote", "ipv4:127.0.0.1:1"));
  stm_buf_append(&b, "xyz", 3);
  enum stm_record_kind k;
  char op[STM_AUDIT_OP_MAX], caller[STM_AUDIT_CALLER_MAX];
  const uint8_t *p;
  size_t n;
  CU_ASSERT_EQUAL(stm_audit_unwrap(b.data, b.len, &k, op, caller, &p, &n, NULL),
                  0);
  CU_ASSERT_EQUAL(k, STM_RECORD_VOTE);
  CU_ASSERT_STRING_EQUAL(op, "vote");
  CU_ASSERT_STRING_EQUAL(caller, "ipv4:127.0.0.1:1");
  CU_ASSERT_EQUAL(n, 3);
  CU_ASSERT_EQUAL(memcmp(p, "xyz", 3), 0);
  CU_ASSERT_EQUAL(stm_audit_unwrap(b.data, 3, &k, op, caller, &p, &n, NULL),
                  STM_ECORRUPT);
  b.data[0] = 9; /* unknown inner kind */
  CU_ASSERT_EQUAL(stm_audit_unwrap(b.data, b.len, &k, op, caller, &p, &n, NULL),
                  STM_ECORRUPT);
  stm_buf_destroy(&b);
}

/* ---- through the store
 * ------------------------------------------------------------ */

struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int rc;
  bool created;
  uint64_t seq;
  uint64_t number;
  uint8_t hash[STM_HASH_LEN];
};

static void waiter_init(struct waiter *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
}

static void waiter_destroy(struct waiter *w) {
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
}

static void on_rec(void *ctx, int rc, const struct stm_record *rec,
                   bool created, const struct stm_error *err) {
  struct waiter *w = ctx;
  pthread_mutex_lock(&w->mu);
  w->rc = rc;
  w->created = created;
  if (rc == 0) {
    w->seq = rec->kind == STM_RECORD_VOTE    ? rec->u.vote.sequence
             : rec->kind == STM_RECORD_EPOCH ? rec->u.epoch.sequence
                                             : rec->u.source.sequence;
    w->number = rec->kind == STM_RECORD_EPOCH ? rec->u.epoch.number : 0;
  }
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void on_claims(void *ctx, int rc, const struct stm_write_result *r,
                      size_t n, const struct stm_error *err) {
  struct waiter *w = ctx;
  pthread_mutex_lock(&w->mu);
  w->rc = rc;
  if (rc == 0 && n > 0) {
    w->seq = r[0].sequence;
    memcpy(w->hash, r[0].hash, STM_HASH_LEN);
  }
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void wait_for(struct waiter *w) {
  pthread_mutex_lock(&w->mu);
  while (!w->done)
    pthread_cond_wait(&w->cv, &w->mu);
  w->done = false;
  pthread_mutex_unlock(&w->mu);
}

static uint64_t submit(struct stm_store *s, struct stm_record *r,
                       struct waiter *w) {
  struct stm_record *heap = malloc(sizeof *heap);
  *heap = *r;
  CU_ASSERT_EQUAL_FATAL(stm_store_submit_record(s, heap, "op", "me", on_rec, w),
                        0);
  wait_for(w);
  CU_ASSERT_EQUAL(w->rc, 0);
  return w->seq;
}

struct sums {
  double weight;
  size_t votes;
};

static int sum_votes(void *ctx, const struct stm_vote *v) {
  struct sums *s = ctx;
  s->weight += v->weight;
  s->votes++;
  return 0;
}

static int count_audit(void *ctx, const struct stm_audit_entry *a) {
  size_t *n = ctx;
  (*n)++;
  CU_ASSERT_STRING_EQUAL(a->caller, a->kind == STM_RECORD_CLAIM ? "c" : "me");
  return 0;
}

struct log_seen {
  size_t n;
  enum stm_record_kind kinds[16];
  uint64_t seqs[16];
  uint32_t last_source_tier;
};

static int on_log(void *ctx, const struct stm_log_entry *e) {
  struct log_seen *l = ctx;
  CU_ASSERT_TRUE_FATAL(l->n < 16);
  CU_ASSERT_EQUAL(e->claim != NULL, e->kind == STM_RECORD_CLAIM);
  CU_ASSERT_EQUAL(e->record != NULL, e->kind != STM_RECORD_CLAIM);
  if (e->claim)
    CU_ASSERT_STRING_EQUAL(e->claim->concept_path, "r/x");
  if (e->record) {
    CU_ASSERT_EQUAL(e->record->kind, e->kind);
    if (e->kind == STM_RECORD_SOURCE)
      l->last_source_tier = e->record->u.source.tier;
    if (e->kind == STM_RECORD_VOTE)
      CU_ASSERT_EQUAL(e->record->u.vote.sequence, e->sequence);
  }
  l->kinds[l->n] = e->kind;
  l->seqs[l->n++] = e->sequence;
  return 0;
}

/* The log by sequence: every kind, in order, filtered by kind and view. */
static void check_log(struct stm_store *s, uint64_t first_vote) {
  static const enum stm_record_kind want[] = {
      STM_RECORD_CLAIM, STM_RECORD_SOURCE, STM_RECORD_VOTE,  STM_RECORD_VOTE,
      STM_RECORD_EPOCH, STM_RECORD_EPOCH,  STM_RECORD_SOURCE};
  struct log_seen l = {0};
  CU_ASSERT_EQUAL(
      stm_store_scan_log(s, 0, STM_LOG_ALL_KINDS, NULL, on_log, &l, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(l.n, 7);
  for (size_t i = 0; i < 7; i++) {
    CU_ASSERT_EQUAL(l.kinds[i], want[i]);
    CU_ASSERT_EQUAL(l.seqs[i], i + 1);
  }
  CU_ASSERT_EQUAL(l.last_source_tier, 2);
  memset(&l, 0, sizeof l);
  stm_store_scan_log(s, 0, STM_LOG_KIND(STM_RECORD_VOTE), NULL, on_log, &l,
                     NULL);
  CU_ASSERT_EQUAL(l.n, 2);
  memset(&l, 0, sizeof l);
  struct stm_read_view v = {.as_of_sequence = first_vote};
  stm_store_scan_log(s, 1, STM_LOG_ALL_KINDS, &v, on_log, &l, NULL);
  CU_ASSERT_EQUAL(l.n, 2); /* the source, then the first vote */
  CU_ASSERT_EQUAL(l.seqs[l.n - 1], first_vote);
  CU_ASSERT_EQUAL(l.last_source_tier, 1);
}

/* Make the index look like one of format 2 (before 'q' held the log). */
static void set_index_format(const char *root, uint32_t version) {
  char path[4096];
  snprintf(path, sizeof path, "%s/index", root);
  leveldb_options_t *o = leveldb_options_create();
  char *msg = NULL;
  leveldb_t *db = leveldb_open(o, path, &msg);
  CU_ASSERT_PTR_NULL_FATAL(msg);
  uint8_t v[4] = {(uint8_t)version, 0, 0, 0};
  leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
  leveldb_put(db, wo, "mformat_version", 15, (const char *)v, 4, &msg);
  CU_ASSERT_PTR_NULL(msg);
  leveldb_writeoptions_destroy(wo);
  leveldb_close(db);
  leveldb_options_destroy(o);
}

static void check_state(struct stm_store *s, const uint8_t *claim,
                        uint64_t first_vote, uint64_t epoch_seq) {
  struct sums sm = {0};
  CU_ASSERT_EQUAL(stm_store_scan_votes(s, claim, NULL, sum_votes, &sm, NULL),
                  0);
  CU_ASSERT_EQUAL(sm.votes, 2);
  CU_ASSERT_DOUBLE_EQUAL(sm.weight, 0.5, 1e-12);
  struct stm_read_view v = {.as_of_sequence = first_vote};
  memset(&sm, 0, sizeof sm);
  stm_store_scan_votes(s, claim, &v, sum_votes, &sm, NULL);
  CU_ASSERT_EQUAL(sm.votes, 1);
  struct stm_epoch e;
  CU_ASSERT_EQUAL(stm_store_find_epoch(s, "r/x", "p", 0, NULL, &e, NULL), 0);
  CU_ASSERT_EQUAL(e.number, 2);
  stm_epoch_destroy(&e);
  CU_ASSERT_EQUAL(stm_store_find_epoch(s, "r/x", "p", 1, NULL, &e, NULL), 0);
  CU_ASSERT_EQUAL(e.sequence, epoch_seq);
  CU_ASSERT_EQUAL(e.number, 1);
  stm_epoch_destroy(&e);
  CU_ASSERT_EQUAL(stm_store_find_epoch(s, "r/x", "p", 0, &v, &e, NULL),
                  STM_ENOTFOUND);
  struct stm_source src;
  CU_ASSERT_EQUAL(stm_store_get_source(s, "s1", NULL, &src, NULL), 0);
  CU_ASSERT_EQUAL(src.tier, 2);
  stm_source_destroy(&src);
  CU_ASSERT_EQUAL(stm_store_get_source(s, "s1", &v, &src, NULL), 0);
  CU_ASSERT_EQUAL(src.tier, 1);
  stm_source_destroy(&src);
  size_t n = 0;
  CU_ASSERT_EQUAL(stm_store_scan_audit(s, 0, count_audit, &n, NULL), 0);
  CU_ASSERT_EQUAL(n, 7); /* claim, source, vote, vote, epoch, epoch, source */
  check_log(s, first_vote);
}

struct heard {
  size_t n;
  uint64_t last_seq;
  bool in_order;
};

/* The log listener (writer thread; read after the completions): every
 * new write once, in sequence order, claims and records alike. */
static void on_log_entries(void *ctx, const struct stm_log_entry *e, size_t n) {
  struct heard *h = ctx;
  for (size_t i = 0; i < n; i++) {
    CU_ASSERT_TRUE(e[i].kind >= STM_RECORD_CLAIM &&
                   e[i].kind <= STM_RECORD_SOURCE);
    CU_ASSERT_EQUAL(e[i].record != NULL, e[i].kind != STM_RECORD_CLAIM);
    h->in_order = h->in_order && e[i].sequence == h->last_seq + 1;
    h->last_seq = e[i].sequence;
    h->n++;
  }
}

static void test_store_records_are_read_as_of_and_survive_reopen(void) {
  char *root = stm_test_tmpdir("records");
  struct stm_store_options o = {.data_dir = root};
  struct stm_store *s;
  CU_ASSERT_EQUAL_FATAL(stm_store_open(&o, &s, NULL), 0);
  struct waiter w;
  waiter_init(&w);
  struct heard heard = {.in_order = true};
  stm_store_set_log_listener(s, on_log_entries, &heard);
  struct stm_claim *c = t_claims_new(1, "r", 1);
  free(c[0].concept_path);
  c[0].concept_path = strdup("r/x");
  CU_ASSERT_EQUAL_FATAL(
      stm_store_submit_claims(s, c, 1, "assert", "c", on_claims, &w), 0);
  wait_for(&w);
  uint8_t claim[STM_HASH_LEN];
  memcpy(claim, w.hash, STM_HASH_LEN);
  struct stm_record r;
  stm_record_init(&r, STM_RECORD_SOURCE);
  r.u.source.id = strdup("s1");
  r.u.source.name = strdup("");
  r.u.source.tier = 1;
  submit(s, &r, &w);
  vote_fill(&r, 0, "alice", 1.0);
  memcpy(r.u.vote.target, claim, STM_HASH_LEN);
  r.u.vote.timestamp_ns = 0;
  uint64_t first_vote = submit(s, &r, &w);
  vote_fill(&r, 0, "bob", -0.5);
  memcpy(r.u.vote.target, claim, STM_HASH_LEN);
  submit(s, &r, &w);
  CU_ASSERT_TRUE(w.created);
  /* An identical vote (same timestamp) is a no-op with the first sequence. */
  uint64_t bob = w.seq;
  vote_fill(&r, 0, "bob", -0.5);
  memcpy(r.u.vote.target, claim, STM_HASH_LEN);
  CU_ASSERT_EQUAL(submit(s, &r, &w), bob);
  CU_ASSERT_FALSE(w.created);
  stm_record_init(&r, STM_RECORD_EPOCH);
  r.u.epoch.concept_path = strdup("r/x");
  r.u.epoch.predicate = strdup("p");
  r.u.epoch.reason = strdup("");
  uint64_t epoch_seq = submit(s, &r, &w);
  CU_ASSERT_EQUAL(w.number, 1);
  stm_record_init(&r, STM_RECORD_EPOCH);
  r.u.epoch.concept_path = strdup("r/x");
  r.u.epoch.predicate = strdup("p");
  r.u.epoch.reason = strdup("");
  submit(s, &r, &w);
  CU_ASSERT_EQUAL(w.number, 2);
  stm_record_init(&r, STM_RECORD_SOURCE);
  r.u.source.id = strdup("s1");
  r.u.source.name = strdup("");
  r.u.source.tier = 2;
  submit(s, &r, &w);
  check_state(s, claim, first_vote, epoch_seq);
  stm_store_delete(s);
  CU_ASSERT_EQUAL(heard.n, 7); /* every new write once; not the duplicate */
  CU_ASSERT_TRUE(heard.in_order);
  /* Reopen, then rebuild the index from the WAL (deleted; then of an
   * older format, which open drops): the same answers. */
  for (int round = 0; round < 3; round++) {
    if (round == 1) {
      char idx[4096];
      snprintf(idx, sizeof idx, "%s/index", root);
      stm_test_rmrf(idx);
    }
    if (round == 2)
      set_index_format(root, 2);
    CU_ASSERT_EQUAL_FATAL(stm_store_open(&o, &s, NULL), 0);
    struct stm_store_stats st;
    stm_store_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.recovered_records, round == 0 ? 0 : 7); /* rebuilt */
    check_state(s, claim, first_vote, epoch_seq);
    stm_store_delete(s);
  }
  waiter_destroy(&w);
  stm_test_rmrf(root);
  free(root);
}

void stm_test_register_records(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_records_round_trip_and_hash_only_content),
      STM_TEST(test_source_and_epoch_round_trip),
      STM_TEST(test_audit_wrapper_round_trips_and_rejects_damage),
      STM_TEST(test_store_records_are_read_as_of_and_survive_reopen),
      STM_TEST_END};
  stm_test_suite("records", cases);
}
