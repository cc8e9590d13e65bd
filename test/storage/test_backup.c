/*
 * Tests for storage/backup: a backup plan is exactly the durable prefix up
 * to N even with bytes in flight after it; a point-in-time cut keeps whole
 * records up to a sequence or a commit time and refuses a WAL with a
 * missing segment.
 */
#include "storage/backup.h"
#include "storage/wal.h"
#include "storage_test.h"

#include "common/buf.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fx {
  char *root;
  char dir[512];
  char copy[512];
};

static void fx_init(struct fx *f) {
  f->root = stm_test_tmpdir("backup");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f->root);
  snprintf(f->dir, sizeof f->dir, "%s/wal", f->root);
  snprintf(f->copy, sizeof f->copy, "%s/copy", f->root);
}

static void fx_destroy(struct fx *f) {
  stm_test_rmrf(f->root);
  free(f->root);
}

static struct stm_wal *open_at(const char *dir) {
  struct stm_wal_options o = {.dir = dir, .segment_bytes = 300};
  struct stm_wal *w = NULL;
  struct stm_error err;
  int rc = stm_wal_open(&o, &w, &err);
  if (rc)
    fprintf(stderr, "\n  open: %s\n", err.message);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  return w;
}

/* One TXN of `count` entries from `seq`, committed at seq * 10 ns. */
static void encode_txn(struct stm_buf *b, uint64_t seq, uint32_t count) {
  struct stm_wal_txn_builder t;
  stm_wal_txn_begin(&t, b, seq, (int64_t)(seq + count - 1) * 10);
  for (uint32_t i = 0; i < count; i++) {
    stm_wal_txn_entry_begin(&t, STM_WAL_ENTRY_CLAIM);
    for (int k = 0; k < 30; k++)
      stm_buf_put_u8(b, (uint8_t)(seq + i + (uint64_t)k));
    stm_wal_txn_entry_end(&t);
  }
  stm_wal_txn_finish(&t);
}

static void append(struct stm_wal *w, uint64_t seq, uint32_t count) {
  struct stm_buf b;
  stm_buf_init(&b);
  encode_txn(&b, seq, count);
  CU_ASSERT_EQUAL_FATAL(stm_wal_append(w, b.data, b.len, seq, seq + count - 1,
                                       (int64_t)(seq + count - 1) * 10, NULL),
                        0);
  stm_buf_destroy(&b);
}

/* Singles 1..10, a batch 11..15, singles 16..25. */
static void fill(struct stm_wal *w) {
  for (uint64_t s = 1; s <= 10; s++)
    append(w, s, 1);
  append(w, 11, 5);
  for (uint64_t s = 16; s <= 25; s++)
    append(w, s, 1);
}

static void copy_prefix(const char *from, const char *to, uint64_t size) {
  int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT, 0644);
  CU_ASSERT_FATAL(in >= 0 && out >= 0);
  uint8_t *p = malloc(size + 1);
  CU_ASSERT_EQUAL(read(in, p, size), (ssize_t)size);
  CU_ASSERT_EQUAL(write(out, p, size), (ssize_t)size);
  free(p);
  close(in);
  close(out);
}

static void test_backup_plan_is_the_durable_prefix_up_to_n(void) {
  struct fx f;
  fx_init(&f);
  struct stm_wal *w = open_at(f.dir);
  fill(w);
  struct stm_wal_info info;
  stm_wal_get_info(w, &info);
  CU_ASSERT(info.segments >= 3);
  stm_wal_delete(w);
  /* A record in flight after N = 25: written, never acknowledged. */
  char last[600];
  snprintf(last, sizeof last, "%s/%020" PRIu64 ".wal", f.dir, (uint64_t)0);
  struct stm_backup_plan plan;
  struct stm_error err;
  CU_ASSERT_EQUAL_FATAL(stm_backup_plan_make(f.dir, 25, &plan, &err), 0);
  CU_ASSERT_EQUAL(plan.last_sequence, 25u);
  CU_ASSERT_EQUAL(plan.last_commit_time_ns, 250);
  CU_ASSERT_EQUAL(plan.nfiles, info.segments);
  snprintf(last, sizeof last, "%s/%s", f.dir, plan.files[plan.nfiles - 1].name);
  struct stm_buf b;
  stm_buf_init(&b);
  encode_txn(&b, 26, 1);
  FILE *fp = fopen(last, "ab");
  fwrite(b.data, 1, b.len / 2, fp); /* torn */
  fclose(fp);
  stm_buf_destroy(&b);
  struct stm_backup_plan again;
  CU_ASSERT_EQUAL_FATAL(stm_backup_plan_make(f.dir, 25, &again, &err), 0);
  CU_ASSERT_EQUAL(again.files[again.nfiles - 1].size,
                  plan.files[plan.nfiles - 1].size);
  /* The prefix is a WAL that opens at exactly N. */
  mkdir(f.copy, 0755);
  for (size_t i = 0; i < again.nfiles; i++) {
    char from[600], to[600];
    snprintf(from, sizeof from, "%s/%s", f.dir, again.files[i].name);
    snprintf(to, sizeof to, "%s/%s", f.copy, again.files[i].name);
    copy_prefix(from, to, again.files[i].size);
  }
  w = open_at(f.copy);
  stm_wal_get_info(w, &info);
  CU_ASSERT_EQUAL(info.last_sequence, 25u);
  CU_ASSERT_EQUAL(info.truncated_bytes, 0u);
  stm_wal_delete(w);
  /* An older N ends inside an earlier segment. */
  stm_backup_plan_destroy(&again);
  CU_ASSERT_EQUAL_FATAL(stm_backup_plan_make(f.dir, 3, &again, &err), 0);
  CU_ASSERT_EQUAL(again.nfiles, 1u);
  CU_ASSERT_EQUAL(again.last_commit_time_ns, 30);
  stm_backup_plan_destroy(&again);
  /* N inside a batch is not a record boundary. */
  CU_ASSERT_EQUAL(stm_backup_plan_make(f.dir, 12, &again, &err), STM_ECORRUPT);
  stm_backup_plan_destroy(&plan);
  fx_destroy(&f);
}

static uint64_t reopen_last(const char *dir) {
  struct stm_wal *w = open_at(dir);
  struct stm_wal_info info;
  stm_wal_get_info(w, &info);
  stm_wal_delete(w);
  return info.last_sequence;
}

static void test_backup_cut_keeps_whole_records_up_to_the_target(void) {
  struct {
    uint64_t to_seq;
    int64_t to_time;
    uint64_t expect;
  } cases[] = {
      {0, 0, 25},  {25, 0, 25},  {7, 0, 7},    {12, 0, 10}, /* batch dropped */
      {15, 0, 15}, {0, 150, 15}, {0, 149, 10}, {0, 5, 0},   {20, 175, 17},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    struct fx f;
    fx_init(&f);
    struct stm_wal *w = open_at(f.dir);
    fill(w);
    stm_wal_delete(w);
    struct stm_backup_cut cut;
    struct stm_error err;
    CU_ASSERT_EQUAL_FATAL(stm_backup_cut_wal(f.dir, cases[c].to_seq,
                                             cases[c].to_time, &cut, &err),
                          0);
    CU_ASSERT_EQUAL(cut.last_sequence, cases[c].expect);
    CU_ASSERT_EQUAL(reopen_last(f.dir), cases[c].expect);
    /* And the cut WAL takes new writes where it ends. */
    w = open_at(f.dir);
    append(w, cases[c].expect + 1, 1);
    stm_wal_delete(w);
    CU_ASSERT_EQUAL(reopen_last(f.dir), cases[c].expect + 1);
    fx_destroy(&f);
  }
}

static void test_backup_cut_refuses_a_missing_segment(void) {
  struct fx f;
  fx_init(&f);
  struct stm_wal *w = open_at(f.dir);
  fill(w);
  stm_wal_delete(w);
  struct stm_backup_plan plan;
  CU_ASSERT_EQUAL_FATAL(stm_backup_plan_make(f.dir, 25, &plan, NULL), 0);
  CU_ASSERT_FATAL(plan.nfiles >= 3);
  char path[600];
  snprintf(path, sizeof path, "%s/%s", f.dir, plan.files[1].name);
  CU_ASSERT_EQUAL_FATAL(unlink(path), 0);
  struct stm_backup_cut cut;
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(stm_backup_cut_wal(f.dir, 0, 0, &cut, &err), STM_ECORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "missing"));
  stm_backup_plan_destroy(&plan);
  fx_destroy(&f);
}

void stm_test_register_backup(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_backup_plan_is_the_durable_prefix_up_to_n),
      STM_TEST(test_backup_cut_keeps_whole_records_up_to_the_target),
      STM_TEST(test_backup_cut_refuses_a_missing_segment), STM_TEST_END};
  stm_test_suite("backup", cases);
}
