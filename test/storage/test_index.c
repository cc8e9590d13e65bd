/*
 * Tests for storage/index: key order (path, predicate, time incl. negative,
 * hash), the include_descendants boundary, read views, meta, and the
 * sequence scan.
 */
#include "storage/index.h"
#include "storage/index_records.h"
#include "storage_test.h"

#include "common/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ifx {
  char *root;
  char path[512];
  struct stm_index *idx;
  struct stm_index_batch *batch;
  uint64_t seq;
};

static void ifx_open(struct ifx *f) {
  struct stm_error err;
  int rc = stm_index_open(f->path, &f->idx, &err);
  if (rc)
    fprintf(stderr, "\n  index open: %s\n", err.message);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
}

static void ifx_init(struct ifx *f) {
  memset(f, 0, sizeof *f);
  f->root = stm_test_tmpdir("index");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f->root);
  snprintf(f->path, sizeof f->path, "%s/index", f->root);
  ifx_open(f);
  f->batch = stm_index_batch_new();
}

static void ifx_destroy(struct ifx *f) {
  stm_index_batch_delete(f->batch);
  stm_index_delete(f->idx);
  stm_test_rmrf(f->root);
  free(f->root);
}

/* Store one claim with the next sequence and commit time seq * 100. */
static void put(struct ifx *f, const char *path, const char *pred,
                const char *value, int64_t ts) {
  struct stm_claim c;
  stm_claim_init(&c);
  t_claim_fill(&c, path, pred, value, ts);
  c.sequence = ++f->seq;
  c.commit_time_ns = (int64_t)c.sequence * 100;
  CU_ASSERT_EQUAL_FATAL(stm_claim_compute_hash(&c), 0);
  struct stm_buf enc;
  stm_buf_init(&enc);
  CU_ASSERT_EQUAL_FATAL(stm_claim_encode(&c, &enc), 0);
  CU_ASSERT_EQUAL(stm_index_batch_put_claim(f->batch, &c, enc.data, enc.len),
                  0);
  struct stm_audit_entry a = {.sequence = c.sequence,
                              .time_ns = c.commit_time_ns,
                              .kind = STM_RECORD_CLAIM,
                              .op = "assert"};
  memcpy(a.target, c.hash, STM_HASH_LEN);
  CU_ASSERT_EQUAL(stm__index_put_audit(f->batch, &a, NULL, 0), 0);
  CU_ASSERT_EQUAL(stm_index_commit(f->idx, f->batch, f->seq, f->seq, NULL), 0);
  stm_buf_destroy(&enc);
  stm_claim_destroy(&c);
}

struct seen {
  char lines[32][96];
  uint8_t hashes[32][STM_HASH_LEN];
  int n;
  int stop_after;
};

static int collect(void *ctx, const struct stm_claim *c) {
  struct seen *s = ctx;
  if (s->n < 32) {
    snprintf(s->lines[s->n], sizeof s->lines[0], "%s|%s|%lld|%s",
             c->concept_path, c->predicate, (long long)c->timestamp_ns,
             c->value.str);
    memcpy(s->hashes[s->n], c->hash, STM_HASH_LEN);
  }
  s->n++;
  return s->stop_after && s->n == s->stop_after ? 77 : 0;
}

static int scan(struct ifx *f, const char *path, const char *pred, bool desc,
                const struct stm_read_view *view, struct seen *s) {
  memset(s, 0, sizeof *s);
  return stm_index_scan_concept(f->idx, path, pred, desc, view, collect, s,
                                NULL);
}

static void test_index_scan_orders_by_predicate_time_then_hash(void) {
  struct ifx f;
  ifx_init(&f);
  put(&f, "a/b", "q", "q1", 1);
  put(&f, "a/b", "p", "late", 7);
  put(&f, "a/b", "p", "negative", -5);
  put(&f, "a/b", "p", "zero", 0);
  put(&f, "a/b", "p", "tie-1", 3);
  put(&f, "a/b", "p", "tie-2", 3);
  struct seen s;
  CU_ASSERT_EQUAL(scan(&f, "a/b", NULL, false, NULL, &s), 0);
  CU_ASSERT_EQUAL_FATAL(s.n, 6);
  CU_ASSERT_STRING_EQUAL(s.lines[0], "a/b|p|-5|negative");
  CU_ASSERT_STRING_EQUAL(s.lines[1], "a/b|p|0|zero");
  CU_ASSERT_PTR_NOT_NULL(strstr(s.lines[2], "a/b|p|3|tie-"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s.lines[3], "a/b|p|3|tie-"));
  CU_ASSERT(memcmp(s.hashes[2], s.hashes[3], STM_HASH_LEN) < 0);
  CU_ASSERT_STRING_EQUAL(s.lines[4], "a/b|p|7|late");
  CU_ASSERT_STRING_EQUAL(s.lines[5], "a/b|q|1|q1");
  CU_ASSERT_EQUAL(scan(&f, "a/b", "q", false, NULL, &s), 0);
  CU_ASSERT_EQUAL(s.n, 1);
  CU_ASSERT_EQUAL(scan(&f, "a/b", "", false, NULL, &s), 0); /* "" = all */
  CU_ASSERT_EQUAL(s.n, 6);
  CU_ASSERT_EQUAL(scan(&f, "a", NULL, false, NULL, &s), 0);
  CU_ASSERT_EQUAL(s.n, 0);
  ifx_destroy(&f);
}

static void test_index_include_descendants_stops_at_the_path_boundary(void) {
  struct ifx f;
  ifx_init(&f);
  put(&f, "a/bc", "p", "sibling with the same prefix", 1);
  put(&f, "a/b.x", "p", "sibling sorting before a/b/", 1);
  put(&f, "a/b/c/d", "p", "grandchild", 1);
  put(&f, "a/b/c", "q", "child q", 1);
  put(&f, "a/b/c", "p", "child p", 1);
  put(&f, "a/b", "p", "self", 1);
  put(&f, "a", "p", "parent", 1);
  struct seen s;
  CU_ASSERT_EQUAL(scan(&f, "a/b", NULL, true, NULL, &s), 0);
  CU_ASSERT_EQUAL_FATAL(s.n, 4);
  CU_ASSERT_STRING_EQUAL(s.lines[0], "a/b|p|1|self");
  CU_ASSERT_STRING_EQUAL(s.lines[1], "a/b/c|p|1|child p");
  CU_ASSERT_STRING_EQUAL(s.lines[2], "a/b/c|q|1|child q");
  CU_ASSERT_STRING_EQUAL(s.lines[3], "a/b/c/d|p|1|grandchild");
  CU_ASSERT_EQUAL(scan(&f, "a/b", "p", true, NULL, &s), 0);
  CU_ASSERT_EQUAL(s.n, 3); /* the predicate filter applies below, too */
  CU_ASSERT_EQUAL(scan(&f, "a/b", "q", true, NULL, &s), 0);
  CU_ASSERT_EQUAL(s.n, 1);
  CU_ASSERT_EQUAL(scan(&f, "a", NULL, true, NULL, &s), 0);
  CU_ASSERT_EQUAL(s.n, 7);
  CU_ASSERT_EQUAL(scan(&f, "a/b", NULL, false, NULL, &s), 0);
  CU_ASSERT_EQUAL(s.n, 1);
  ifx_destroy(&f);
}

static void test_index_read_views_hide_later_commits(void) {
  struct ifx f;
  ifx_init(&f);
  put(&f, "x", "p", "one", 1);   /* sequence 1, commit time 100 */
  put(&f, "x", "p", "two", 2);   /* 2, 200 */
  put(&f, "x", "p", "three", 3); /* 3, 300 */
  struct seen s;
  struct stm_read_view v = {.as_of_sequence = 2};
  CU_ASSERT_EQUAL(scan(&f, "x", NULL, false, &v, &s), 0);
  CU_ASSERT_EQUAL(s.n, 2);
  v = (struct stm_read_view){.as_of_time_ns = 100};
  CU_ASSERT_EQUAL(scan(&f, "x", NULL, false, &v, &s), 0);
  CU_ASSERT_EQUAL(s.n, 1);
  v = (struct stm_read_view){.as_of_sequence = 3, .as_of_time_ns = 250};
  CU_ASSERT_EQUAL(scan(&f, "x", NULL, false, &v, &s), 0);
  CU_ASSERT_EQUAL(s.n, 2);
  v = (struct stm_read_view){0}; /* zero = now */
  CU_ASSERT_EQUAL(scan(&f, "x", NULL, false, &v, &s), 0);
  CU_ASSERT_EQUAL(s.n, 3);

  CU_ASSERT_EQUAL(scan(&f, "x", NULL, false, NULL, &s), 0);
  struct stm_claim c;
  stm_claim_init(&c);
  v = (struct stm_read_view){.as_of_sequence = 2};
  CU_ASSERT_EQUAL(stm_index_get_claim(f.idx, s.hashes[2], &v, &c, NULL),
                  STM_ENOTFOUND);
  CU_ASSERT_EQUAL(stm_index_get_claim(f.idx, s.hashes[1], &v, &c, NULL), 0);
  CU_ASSERT_STRING_EQUAL(c.value.str, "two");
  CU_ASSERT_EQUAL(c.sequence, 2u);
  uint64_t seq = 0;
  CU_ASSERT_EQUAL(stm_index_find(f.idx, s.hashes[2], &seq, NULL), 0);
  CU_ASSERT_EQUAL(seq, 3u);
  uint8_t absent[STM_HASH_LEN] = {0};
  CU_ASSERT_EQUAL(stm_index_find(f.idx, absent, &seq, NULL), STM_ENOTFOUND);
  stm_claim_destroy(&c);
  ifx_destroy(&f);
}

static void test_index_scan_stops_when_the_callback_says_so(void) {
  struct ifx f;
  ifx_init(&f);
  for (int i = 0; i < 5; i++)
    put(&f, "s", "p", "v", i);
  struct seen s;
  memset(&s, 0, sizeof s);
  s.stop_after = 2;
  CU_ASSERT_EQUAL(
      stm_index_scan_concept(f.idx, "s", NULL, false, NULL, collect, &s, NULL),
      77);
  CU_ASSERT_EQUAL(s.n, 2);
  CU_ASSERT_EQUAL(
      stm_index_scan_concept(f.idx, "", NULL, false, NULL, collect, &s, NULL),
      STM_EINVAL);
  ifx_destroy(&f);
}

static void test_index_meta_moves_with_each_commit_and_survives_reopen(void) {
  struct ifx f;
  ifx_init(&f);
  struct stm_index_meta m;
  stm_index_get_meta(f.idx, &m);
  CU_ASSERT_EQUAL(m.last_applied_sequence, 0u);
  CU_ASSERT_EQUAL(m.format_version, STM_INDEX_FORMAT_VERSION);
  put(&f, "m", "p", "a", 1);
  put(&f, "m", "p", "b", 2);
  stm_index_delete(f.idx);
  ifx_open(&f);
  stm_index_get_meta(f.idx, &m);
  CU_ASSERT_EQUAL(m.last_applied_sequence, 2u);
  CU_ASSERT_EQUAL(m.assertion_count, 2u);
  struct seen s;
  CU_ASSERT_EQUAL(scan(&f, "m", NULL, false, NULL, &s), 0);
  CU_ASSERT_EQUAL(s.n, 2);
  ifx_destroy(&f);
}

static int on_listed(void *ctx, const char *path) {
  size_t *longest = ctx;
  if (strlen(path) > *longest)
    *longest = strlen(path);
  return 0;
}

/* --max-concept-path-bytes may go up to STM_LIMIT_CONCEPT_PATH_CEIL: a
 * concept that long is listed like any other (was skipped above 599). */
static void test_index_lists_concepts_up_to_the_path_ceiling(void) {
  struct ifx f;
  ifx_init(&f);
  char *path = malloc(STM_LIMIT_CONCEPT_PATH_CEIL + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(path);
  memset(path, 'a', STM_LIMIT_CONCEPT_PATH_CEIL);
  for (size_t i = 100; i < STM_LIMIT_CONCEPT_PATH_CEIL; i += 200)
    path[i] = '/';
  path[STM_LIMIT_CONCEPT_PATH_CEIL] = '\0';
  struct stm_claim c;
  stm_claim_init(&c);
  t_claim_fill(&c, path, "p", "v", 1);
  CU_ASSERT_EQUAL(stm__index_put_claim_extras(f.batch, &c, true), 0);
  CU_ASSERT_EQUAL(stm_index_commit(f.idx, f.batch, 1, 0, NULL), 0);
  size_t longest = 0;
  CU_ASSERT_EQUAL(
      stm_index_list_concepts(f.idx, "", NULL, on_listed, &longest, NULL), 0);
  CU_ASSERT_EQUAL(longest, STM_LIMIT_CONCEPT_PATH_CEIL);
  stm_claim_destroy(&c);
  free(path);
  ifx_destroy(&f);
}

void stm_test_register_index(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_index_scan_orders_by_predicate_time_then_hash),
      STM_TEST(test_index_include_descendants_stops_at_the_path_boundary),
      STM_TEST(test_index_read_views_hide_later_commits),
      STM_TEST(test_index_scan_stops_when_the_callback_says_so),
      STM_TEST(test_index_meta_moves_with_each_commit_and_survives_reopen),
      STM_TEST(test_index_lists_concepts_up_to_the_path_ceiling),
      STM_TEST_END};
  stm_test_suite("index", cases);
}
