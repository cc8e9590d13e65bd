/*
 * test_model.c - the replication model (issue 12) as a property: the same
 * random records (claims, votes, epochs, sources, and the same claim
 * committed twice at different origin times) applied in many random
 * orders to separate stores give identical answers: every claim with its
 * commit time and Assertion.epoch, every lens's winner, votes, sources,
 * epochs and the shards' Merkle roots, now and as of several times. One
 * store is reopened half way (replay) and one rebuilds its index from the
 * WAL. A vote that arrives before its claim is refused (STM_ENOTFOUND)
 * and retried after the pass, as anti-entropy does.
 *
 * The seed is fixed and printed; STM_TEST_SEED overrides it.
 */
#include "harness.h"
#include "service/lens.h"
#include "service/records_internal.h"
#include "service/service.h"
#include "storage/store.h"

#include "common/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NCLAIMS 40
#define NVOTES 24
#define NEPOCHS 6
#define NSOURCES 8
#define NDUPS 6
#define NITEMS (NCLAIMS + NDUPS + NVOTES + NEPOCHS + NSOURCES)
#define ORDERS 6
#define SHARDS 8

static const char *const paths[] = {"m/a", "m/a/b", "m/c", "m/c/d", "m/e"};
static const char *const preds[] = {"p", "q"};
static const char *const source_ids[] = {"https://a", "fda://b", "blog://c"};

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1DULL;
}
static unsigned pick(unsigned n) { return (unsigned)(rnd() % n); }

/* One item to apply: a claim (index), or a record built fresh each time. */
struct item {
  enum stm_record_kind kind;
  unsigned i;    /* claim index / record index */
  int64_t ctime; /* origin commit time */
};

struct spec {
  struct {
    unsigned path, pred, parent;
    int value;
    int64_t ts;
  } c[NCLAIMS];
  struct {
    unsigned target;
    int voter;
    double w;
    int64_t ts;
  } v[NVOTES];
  struct {
    unsigned path;
    int pred;
    int64_t ts;
  } e[NEPOCHS];
  struct {
    unsigned id;
    unsigned tier;
    double trust;
    int64_t ts;
  } s[NSOURCES];
  struct item items[NITEMS];
  uint8_t hash[NCLAIMS][STM_HASH_LEN];
};

static void t_claim_fill(struct stm_claim *c, const char *path,
                         const char *pred, const char *value,
                         int64_t timestamp_ns) {
  CU_ASSERT_EQUAL_FATAL(stm_claim_set_str(&c->concept_path, path, strlen(path)),
                        0);
  CU_ASSERT_EQUAL_FATAL(stm_claim_set_str(&c->predicate, pred, strlen(pred)),
                        0);
  CU_ASSERT_EQUAL_FATAL(
      stm_value_set_str(&c->value, STM_VALUE_STRING, value, strlen(value)), 0);
  c->timestamp_ns = timestamp_ns;
}

static void claim_build(const struct spec *sp, unsigned i,
                        struct stm_claim *c) {
  char value[32];
  snprintf(value, sizeof value, "v%d", sp->c[i].value);
  stm_claim_init(c);
  t_claim_fill(c, paths[sp->c[i].path], preds[sp->c[i].pred], value,
               sp->c[i].ts);
  free(c->source_id);
  c->source_id = strdup(source_ids[i % 3]);
  c->confidence = 0.5 + (double)(i % 5) / 10.0;
  if (sp->c[i].parent < i) {
    c->has_parent = true;
    memcpy(c->parent_hash, sp->hash[sp->c[i].parent], STM_HASH_LEN);
  }
}

static void spec_make(struct spec *sp) {
  memset(sp, 0, sizeof *sp);
  size_t n = 0;
  for (unsigned i = 0; i < NCLAIMS; i++) {
    sp->c[i].path = pick(5);
    sp->c[i].pred = pick(2);
    sp->c[i].value = (int)pick(4); /* few values: lenses must choose */
    sp->c[i].ts = 1000 + (int64_t)pick(50);
    sp->c[i].parent = pick(4) == 0 && i > 0 ? pick(i) : UINT32_MAX;
    struct stm_claim c;
    claim_build(sp, i, &c);
    CU_ASSERT_EQUAL_FATAL(stm_claim_compute_hash(&c), 0);
    memcpy(sp->hash[i], c.hash, STM_HASH_LEN);
    stm_claim_destroy(&c);
    /* origin commit times collide on purpose: the hash breaks ties */
    sp->items[n++] = (struct item){STM_RECORD_CLAIM, i, 5000 + pick(20)};
  }
  for (unsigned d = 0; d < NDUPS; d++) /* the same claim, another origin */
    sp->items[n++] = (struct item){STM_RECORD_CLAIM, pick(NCLAIMS),
                                   5000 + (int64_t)pick(40)};
  for (unsigned i = 0; i < NVOTES; i++) {
    sp->v[i].target = pick(NCLAIMS);
    sp->v[i].voter = (int)pick(5);
    sp->v[i].w = pick(2) ? 1.0 : -0.5;
    sp->v[i].ts = 7000 + (int64_t)i;
    sp->items[n++] = (struct item){STM_RECORD_VOTE, i, 5000 + pick(40)};
  }
  for (unsigned i = 0; i < NEPOCHS; i++) {
    sp->e[i].path = pick(2);          /* few scopes: epochs compete in them */
    sp->e[i].pred = (int)pick(2) - 1; /* -1: concept-wide */
    sp->e[i].ts = 8000 + (int64_t)i;
    sp->items[n++] = (struct item){STM_RECORD_EPOCH, i, 5000 + pick(20)};
  }
  for (unsigned i = 0; i < NSOURCES; i++) {
    sp->s[i].id = pick(3);
    sp->s[i].tier = pick(6);
    sp->s[i].trust = (double)pick(10) / 10.0;
    sp->s[i].ts = 9000 + (int64_t)pick(3); /* versions may tie on time */
    sp->items[n++] = (struct item){STM_RECORD_SOURCE, i, 5000 + pick(20)};
  }
  CU_ASSERT_EQUAL_FATAL(n, NITEMS);
}

static struct stm_record *record_build(const struct spec *sp,
                                       const struct item *it) {
  struct stm_record *r = calloc(1, sizeof *r);
  stm_record_init(r, it->kind);
  unsigned i = it->i;
  if (it->kind == STM_RECORD_VOTE) {
    memcpy(r->u.vote.target, sp->hash[sp->v[i].target], STM_HASH_LEN);
    char voter[16];
    snprintf(voter, sizeof voter, "voter%d", sp->v[i].voter);
    r->u.vote.voter_id = strdup(voter);
    r->u.vote.weight = sp->v[i].w;
    r->u.vote.timestamp_ns = sp->v[i].ts;
    r->u.vote.commit_time_ns = it->ctime;
  } else if (it->kind == STM_RECORD_EPOCH) {
    r->u.epoch.concept_path = strdup(paths[sp->e[i].path]);
    r->u.epoch.predicate =
        strdup(sp->e[i].pred < 0 ? "" : preds[sp->e[i].pred]);
    r->u.epoch.reason = strdup("model");
    r->u.epoch.timestamp_ns = sp->e[i].ts;
    r->u.epoch.number = 1 + i % 2; /* the origin's number: content only */
    r->u.epoch.commit_time_ns = it->ctime;
  } else {
    r->u.source.id = strdup(source_ids[sp->s[i].id]);
    r->u.source.name = strdup("n");
    r->u.source.tier = sp->s[i].tier;
    r->u.source.trust = sp->s[i].trust;
    r->u.source.timestamp_ns = sp->s[i].ts;
    r->u.source.commit_time_ns = it->ctime;
  }
  return r;
}

/* ---- applying, synchronously ---- */

struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int rc;
};

static void w_done(struct waiter *w, int rc) {
  pthread_mutex_lock(&w->mu);
  w->rc = rc;
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}
static void on_claims(void *ctx, int rc, const struct stm_write_result *r,
                      size_t n, const struct stm_error *err) {
  (void)r, (void)n, (void)err;
  w_done(ctx, rc);
}
static void on_record(void *ctx, int rc, const struct stm_record *rec,
                      bool created, const struct stm_error *err) {
  (void)rec, (void)created, (void)err;
  w_done(ctx, rc);
}
static int w_wait(struct waiter *w) {
  pthread_mutex_lock(&w->mu);
  while (!w->done)
    pthread_cond_wait(&w->cv, &w->mu);
  w->done = false;
  pthread_mutex_unlock(&w->mu);
  return w->rc;
}

static int apply(struct stm_store *s, const struct spec *sp,
                 const struct item *it) {
  static struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                            false, 0};
  int rc;
  if (it->kind == STM_RECORD_CLAIM) {
    struct stm_claim *c = calloc(1, sizeof *c);
    claim_build(sp, it->i, c);
    c->commit_time_ns = it->ctime;
    rc = stm_store_apply_claims(s, c, 1, "replicate", "model", on_claims, &w);
  } else {
    rc = stm_store_apply_record(s, record_build(sp, it), "replicate", "model",
                                on_record, &w);
  }
  return rc ? rc : w_wait(&w);
}

static struct stm_store *open_store(const char *dir) {
  struct stm_store_options o = {.data_dir = dir, .shards = SHARDS};
  struct stm_store *s = NULL;
  CU_ASSERT_EQUAL_FATAL(stm_store_open(&o, &s, NULL), 0);
  return s;
}

/* Apply every item in a random order; votes refused for a missing target
 * are retried after the pass. `reopen`: close and reopen half way;
 * `rebuild`: also drop the index (rebuilt from the WAL). */
static struct stm_store *apply_all(const char *dir, const struct spec *sp,
                                   int reopen) {
  struct stm_store *s = open_store(dir);
  unsigned order[NITEMS];
  for (unsigned i = 0; i < NITEMS; i++)
    order[i] = i;
  for (unsigned i = NITEMS - 1; i > 0; i--) {
    unsigned j = pick(i + 1), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  unsigned later[NITEMS], nlater = 0;
  for (unsigned k = 0; k < NITEMS; k++) {
    if (reopen && k == NITEMS / 2) {
      stm_store_delete(s);
      if (reopen == 2) {
        char idx[600];
        snprintf(idx, sizeof idx, "%s/index", dir);
        stm_test_rmrf(idx);
      }
      s = open_store(dir);
    }
    int rc = apply(s, sp, &sp->items[order[k]]);
    if (rc == STM_ENOTFOUND)
      later[nlater++] = order[k];
    else
      CU_ASSERT_EQUAL(rc, 0);
  }
  for (unsigned k = 0; k < nlater; k++)
    CU_ASSERT_EQUAL(apply(s, sp, &sp->items[later[k]]), 0);
  return s;
}

/* ---- the answers, as text ---- */

struct dump {
  struct stm_buf out;
  struct stm_service svc;
  const struct stm_read_view *view;
  struct stm_claim group[NCLAIMS + NDUPS];
  size_t n;
};

static void put(struct dump *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(struct dump *d, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  stm_buf_append(&d->out, line, strlen(line));
}

static void hex8(const uint8_t *h, char out[17]) {
  for (int i = 0; i < 8; i++)
    snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static int on_claim(void *ctx, const struct stm_claim *c) {
  struct dump *d = ctx;
  char h[17];
  hex8(c->hash, h);
  put(d, " claim %s %s/%s t=%" PRId64 " epoch=%" PRIu64 "\n", h,
      c->concept_path, c->predicate, c->commit_time_ns, c->epoch);
  if (d->n < NCLAIMS + NDUPS) {
    stm_claim_init(&d->group[d->n]);
    stm_claim_copy(&d->group[d->n], c);
    d->n++;
  }
  return 0;
}

static int on_vote(void *ctx, const struct stm_vote *v) {
  struct dump *d = ctx;
  char h[17];
  hex8(v->hash, h);
  put(d, "  vote %s t=%" PRId64 "\n", h, v->commit_time_ns);
  return 0;
}

static int cmp_lines(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Votes come in local sequence order: compare them as a sorted set. */
static void votes_sorted(struct dump *d, const uint8_t *target) {
  struct dump v = {.view = d->view};
  stm_buf_init(&v.out);
  CU_ASSERT_EQUAL(
      stm_store_scan_votes(d->svc.store, target, d->view, on_vote, &v, NULL),
      0);
  stm_buf_put_u8(&v.out, 0);
  char *lines[NVOTES + 1] = {0}; /* cppcheck cannot follow strtok_r */
  size_t n = 0;
  for (char *p = (char *)v.out.data, *save = NULL;
       n <= NVOTES && (p = strtok_r(n ? NULL : p, "\n", &save)) != NULL;)
    lines[n++] = p;
  qsort(lines, n, sizeof *lines, cmp_lines);
  for (size_t i = 0; i < n; i++)
    put(d, "%s\n", lines[i]);
  stm_buf_destroy(&v.out);
}

static void lenses(struct dump *d) {
  /* one concept: group claims by predicate, resolve every lens */
  for (size_t p = 0; p < 2; p++) {
    struct stm_claim g[NCLAIMS + NDUPS];
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++)
      if (strcmp(d->group[i].predicate, preds[p]) == 0)
        g[n++] = d->group[i];
    if (n == 0)
      continue;
    struct stm_lens_candidate cands[NCLAIMS + NDUPS];
    CU_ASSERT_EQUAL_FATAL(
        stm__fill_candidates(&d->svc, d->view, g, n, cands, NULL), 0);
    for (int l = STM_LENS_RECENCY; l <= STM_LENS_LAYERED; l++) {
      struct stm_lens_result r;
      memset(&r, 0, sizeof r);
      CU_ASSERT_EQUAL_FATAL(stm_lens_resolve(l, cands, n, NULL, &r), 0);
      char h[17] = "-";
      if (r.has_winner)
        hex8(g[r.winner].hash, h);
      put(d, " lens %s/%s: %s %.9g %.9g %d\n", stm_lens_name(l), preds[p], h,
          r.confidence, r.conflict_score, (int)r.status);
      stm_lens_result_destroy(&r);
    }
  }
}

static int on_source(void *ctx, const struct stm_source *s) {
  char h[17];
  hex8(s->hash, h);
  put(ctx, " source %s %s tier=%u trust=%g t=%" PRId64 "\n", s->id, h, s->tier,
      s->trust, s->commit_time_ns);
  return 0;
}

static void dump_view(struct dump *d) {
  for (size_t i = 0; i < 5; i++) {
    put(d, "concept %s\n", paths[i]);
    d->n = 0;
    CU_ASSERT_EQUAL(stm_store_scan_concept(d->svc.store, paths[i], NULL, false,
                                           d->view, on_claim, d, NULL),
                    0);
    for (size_t k = 0; k < d->n; k++)
      votes_sorted(d, d->group[k].hash);
    lenses(d);
    for (size_t k = 0; k < d->n; k++)
      stm_claim_destroy(&d->group[k]);
    for (int p = -1; p < 2; p++) {
      struct stm_epoch e;
      int rc = stm_store_find_epoch(
          d->svc.store, paths[i], p < 0 ? "" : preds[p], 0, d->view, &e, NULL);
      if (rc == 0) {
        char h[17];
        hex8(e.hash, h);
        put(d, " epoch %s number=%" PRIu64 " t=%" PRId64 "\n", h, e.number,
            e.commit_time_ns);
        stm_epoch_destroy(&e);
      }
    }
  }
  CU_ASSERT_EQUAL(
      stm_store_list_sources(d->svc.store, NULL, d->view, on_source, d, NULL),
      0);
}

static char *answers(struct stm_store *s) {
  struct dump d = {.svc = {.store = s}};
  stm_buf_init(&d.out);
  int64_t times[] = {0, 5005, 5010, 5020, 5030};
  for (size_t t = 0; t < sizeof times / sizeof times[0]; t++) {
    struct stm_read_view v = {.as_of_time_ns = times[t] ? times[t] : 6000};
    d.view = &v;
    put(&d, "== as of %" PRId64 "\n", v.as_of_time_ns);
    dump_view(&d);
  }
  for (uint32_t sh = 0; sh < SHARDS; sh++) {
    struct stm_merkle_node kids[STM_MERKLE_FANOUT];
    CU_ASSERT_EQUAL(stm_store_merkle_children(s, sh, NULL, 0, kids, NULL), 0);
    for (int k = 0; k < STM_MERKLE_FANOUT; k++) {
      char h[17];
      hex8(kids[k].digest, h);
      put(&d, "merkle %u/%x %s %" PRIu64 "\n", sh, k, h, kids[k].count);
    }
  }
  stm_buf_put_u8(&d.out, 0);
  return (char *)d.out.data; /* the buffer's bytes, freed by the caller */
}

static void test_model_any_order_same_answers(void) {
  uint64_t seed = 0x5eed12;
  const char *env = getenv("STM_TEST_SEED");
  if (env && env[0])
    seed = strtoull(env, NULL, 0);
  printf("\n  test_model seed %" PRIu64 " (STM_TEST_SEED overrides)\n", seed);
  rng_state = seed ? seed : 1;
  struct spec *sp = malloc(sizeof *sp);
  spec_make(sp);
  char *first = NULL;
  for (int k = 0; k < ORDERS; k++) {
    char *dir = stm_test_tmpdir("model");
    struct stm_store *s = apply_all(dir, sp, k == 1 ? 1 : k == 2 ? 2 : 0);
    if (k == 3) { /* and once more after a plain restart */
      stm_store_delete(s);
      s = open_store(dir);
    }
    char *a = answers(s);
    struct stm_store_stats st;
    stm_store_get_stats(s, &st);
    if (first == NULL) {
      first = a;
      if (getenv("STM_TEST_MODEL_DUMP"))
        printf("%s", first);
      CU_ASSERT_TRUE(strstr(first, "epoch=1") != NULL); /* non-trivial */
      CU_ASSERT_TRUE(strstr(first, " lens ") != NULL);
    } else {
      CU_ASSERT_STRING_EQUAL(a, first);
      if (strcmp(a, first) != 0)
        printf("order %d differs:\n%s\n--- first:\n%s\n", k, a, first);
      free(a);
    }
    stm_store_delete(s);
    stm_test_rmrf(dir);
    free(dir);
  }
  free(first);
  free(sp);
}

/* Re-timing: the same claim applied late with an earlier origin time
 * takes it, and keeps it after a restart (the RETIME WAL entry). */
static void test_model_earliest_commit_time_wins_and_survives(void) {
  rng_state = 99;
  struct spec *sp = malloc(sizeof *sp);
  spec_make(sp);
  char *dir = stm_test_tmpdir("retime");
  struct stm_store *s = open_store(dir);
  struct item late = {STM_RECORD_CLAIM, 3, 6000}, early = late;
  early.ctime = 5001;
  CU_ASSERT_EQUAL(apply(s, sp, &late), 0);
  CU_ASSERT_EQUAL(apply(s, sp, &early), 0);
  struct item later = late;
  later.ctime = 7000; /* never moves forward */
  CU_ASSERT_EQUAL(apply(s, sp, &later), 0);
  for (int round = 0; round < 2; round++) {
    struct stm_claim c;
    stm_claim_init(&c);
    CU_ASSERT_EQUAL(stm_store_get_claim(s, sp->hash[3], NULL, &c, NULL), 0);
    CU_ASSERT_EQUAL(c.commit_time_ns, 5001);
    stm_claim_destroy(&c);
    struct stm_store_stats st;
    stm_store_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.assertion_count, 1);
    stm_store_delete(s);
    if (round == 0) { /* and once rebuilt from the WAL alone */
      char idx[600];
      snprintf(idx, sizeof idx, "%s/index", dir);
      stm_test_rmrf(idx);
    }
    s = open_store(dir);
  }
  stm_store_delete(s);
  stm_test_rmrf(dir);
  free(dir);
  free(sp);
}

static int count_hash(void *ctx, enum stm_record_kind kind,
                      const uint8_t hash[STM_HASH_LEN]) {
  (void)kind;
  (void)hash;
  (*(size_t *)ctx)++;
  return 0;
}

static int count_encoded(void *ctx, enum stm_record_kind kind,
                         const uint8_t hash[STM_HASH_LEN], const uint8_t *enc,
                         size_t len) {
  (void)hash;
  if (kind == STM_RECORD_CLAIM) { /* the encoding decodes to its hash */
    struct stm_claim c;
    stm_claim_init(&c);
    CU_ASSERT_EQUAL(stm_claim_decode(enc, len, &c, NULL), 0);
    CU_ASSERT_EQUAL(memcmp(c.hash, hash, STM_HASH_LEN), 0);
    stm_claim_destroy(&c);
  }
  (*(size_t *)ctx)++;
  return 0;
}

/* The Merkle summary finds exactly what one store lacks: a store without
 * one claim differs in one root child of that claim's shard and nowhere
 * else; listing that child's hashes (and encodings) finds it, and the
 * levels below narrow it to one bucket. */
static void test_model_merkle_finds_the_missing_record(void) {
  rng_state = 7;
  struct spec *sp = malloc(sizeof *sp);
  spec_make(sp);
  char *da = stm_test_tmpdir("merkle-a"), *db = stm_test_tmpdir("merkle-b");
  struct stm_store *a = open_store(da), *b = open_store(db);
  for (unsigned i = 0; i < NCLAIMS; i++) {
    CU_ASSERT_EQUAL(apply(a, sp, &sp->items[i]), 0);
    if (i != 5)
      CU_ASSERT_EQUAL(apply(b, sp, &sp->items[i]), 0);
  }
  uint32_t shard = stm_store_shard_of(paths[sp->c[5].path], SHARDS);
  unsigned top = sp->hash[5][0] >> 4;
  for (uint32_t sh = 0; sh < SHARDS; sh++) {
    struct stm_merkle_node ka[STM_MERKLE_FANOUT], kb[STM_MERKLE_FANOUT];
    CU_ASSERT_EQUAL(stm_store_merkle_children(a, sh, NULL, 0, ka, NULL), 0);
    CU_ASSERT_EQUAL(stm_store_merkle_children(b, sh, NULL, 0, kb, NULL), 0);
    for (unsigned k = 0; k < STM_MERKLE_FANOUT; k++) {
      bool differs = ka[k].count != kb[k].count ||
                     memcmp(ka[k].digest, kb[k].digest, STM_HASH_LEN) != 0;
      CU_ASSERT_EQUAL(differs, sh == shard && k == top);
    }
  }
  /* one level down, under the differing child: one bucket again */
  uint8_t prefix[STM_HASH_LEN] = {0};
  prefix[0] = sp->hash[5][0];
  struct stm_merkle_node ka[STM_MERKLE_FANOUT], kb[STM_MERKLE_FANOUT];
  CU_ASSERT_EQUAL(stm_store_merkle_children(a, shard, prefix, 1, ka, NULL), 0);
  CU_ASSERT_EQUAL(stm_store_merkle_children(b, shard, prefix, 1, kb, NULL), 0);
  for (unsigned k = 0; k < STM_MERKLE_FANOUT; k++)
    CU_ASSERT_EQUAL(ka[k].count != kb[k].count,
                    k == (unsigned)(sp->hash[5][0] & 0x0f));
  size_t na = 0, nb = 0, ne = 0;
  CU_ASSERT_EQUAL(
      stm_store_shard_hashes(a, shard, prefix, 2, count_hash, &na, NULL), 0);
  CU_ASSERT_EQUAL(
      stm_store_shard_hashes(b, shard, prefix, 2, count_hash, &nb, NULL), 0);
  CU_ASSERT_EQUAL(na, nb + 1);
  CU_ASSERT_EQUAL(
      stm_store_shard_records(a, shard, prefix, 2, count_encoded, &ne, NULL),
      0);
  CU_ASSERT_EQUAL(ne, na);
  stm_store_delete(a);
  stm_store_delete(b);
  stm_test_rmrf(da);
  stm_test_rmrf(db);
  free(da);
  free(db);
  free(sp);
}

int main(void) {
  stm_log_set_level((enum stm_log_level)(STM_LOG_ERROR + 1));
  static const struct stm_test_case cases[] = {
      STM_TEST(test_model_any_order_same_answers),
      STM_TEST(test_model_earliest_commit_time_wins_and_survives),
      STM_TEST(test_model_merkle_finds_the_missing_record), STM_TEST_END};
  stm_test_suite("model", cases);
  return stm_test_run_all();
}
