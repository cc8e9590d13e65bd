/*
 * Tests for storage/wal: recovery of torn and corrupt tails, sealed-segment
 * damage, rotation and replay, and the failure model under injected faults
 * (test/storage/fault_io.h).
 */
#include "fault_io.h"
#include "storage/wal.h"
#include "storage_test.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENTRY_LEN 40

struct fx {
  char *root;
  char dir[512];
};

static void fx_init(struct fx *f) {
  f->root = stm_test_tmpdir("wal");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f->root);
  snprintf(f->dir, sizeof f->dir, "%s/wal", f->root);
}

static void fx_destroy(struct fx *f) {
  stm_test_rmrf(f->root);
  free(f->root);
}

static int open_wal(const struct fx *f, uint64_t segment_bytes,
                    const struct stm_wal_io *io, struct stm_wal **w,
                    struct stm_error *err) {
  struct stm_wal_options o = {
      .dir = f->dir, .segment_bytes = segment_bytes, .io = io};
  return stm_wal_open(&o, w, err);
}

static struct stm_wal *must_open(const struct fx *f, uint64_t segment_bytes) {
  struct stm_wal *w = NULL;
  struct stm_error err;
  int rc = open_wal(f, segment_bytes, NULL, &w, &err);
  if (rc)
    fprintf(stderr, "\n  open: %s\n", err.message);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  return w;
}

/* One TXN record of one ENTRY_LEN-byte entry for sequence `seq`. */
static int append_one(struct stm_wal *w, uint64_t seq, struct stm_error *err) {
  struct stm_buf b;
  stm_buf_init(&b);
  struct stm_wal_txn_builder t;
  stm_wal_txn_begin(&t, &b, seq, (int64_t)seq * 10);
  stm_wal_txn_entry_begin(&t, STM_WAL_ENTRY_CLAIM);
  for (int i = 0; i < ENTRY_LEN; i++)
    stm_buf_put_u8(&b, (uint8_t)(seq + (uint64_t)i));
  stm_wal_txn_entry_end(&t);
  stm_wal_txn_finish(&t);
  int rc = stm_wal_append(w, b.data, b.len, seq, seq, (int64_t)seq * 10, err);
  stm_buf_destroy(&b);
  return rc;
}

static void append_n(struct stm_wal *w, uint64_t first, uint64_t n) {
  for (uint64_t s = first; s < first + n; s++)
    CU_ASSERT_EQUAL_FATAL(append_one(w, s, NULL), 0);
}

struct seen {
  uint64_t firsts[512];
  size_t n;
};

static int collect(void *ctx, const struct stm_wal_txn *txn,
                   struct stm_error *err) {
  (void)err;
  struct seen *s = ctx;
  if (s->n < 512)
    s->firsts[s->n] = txn->first_sequence;
  s->n++;
  return 0;
}

/* Replay after `after`; check the records are consecutive; return count. */
static size_t replay_count(struct stm_wal *w, uint64_t after) {
  struct seen s = {.n = 0};
  CU_ASSERT_EQUAL(stm_wal_replay(w, after, collect, &s, NULL), 0);
  for (size_t i = 0; i < s.n && i < 512; i++)
    CU_ASSERT_EQUAL(s.firsts[i], after + 1 + i);
  return s.n;
}

static void seg_file(const struct fx *f, uint64_t first, char *out,
                     size_t cap) {
  snprintf(out, cap, "%s/%020" PRIu64 ".wal", f->dir, first);
}

static uint64_t size_of(const char *path) {
  struct stat st;
  CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
  return (uint64_t)st.st_size;
}

static void flip_byte(const char *path, uint64_t offset) {
  int fd = open(path, O_RDWR);
  CU_ASSERT_FATAL(fd >= 0);
  uint8_t b;
  CU_ASSERT_EQUAL(pread(fd, &b, 1, (off_t)offset), 1);
  b ^= 0x40;
  CU_ASSERT_EQUAL(pwrite(fd, &b, 1, (off_t)offset), 1);
  close(fd);
}

static void info_of(struct stm_wal *w, struct stm_wal_info *i) {
  stm_wal_get_info(w, i);
}

/* ---- basics -------------------------------------------------------------- */

static void test_wal_open_creates_the_first_segment(void) {
  struct fx f;
  fx_init(&f);
  struct stm_wal *w = must_open(&f, 0);
  struct stm_wal_info i;
  info_of(w, &i);
  CU_ASSERT_EQUAL(i.segments, 1u);
  CU_ASSERT_EQUAL(i.bytes, (uint64_t)STM_WAL_HEADER_LEN);
  CU_ASSERT_EQUAL(i.last_sequence, 0u);
  stm_wal_delete(w);
  char path[600];
  seg_file(&f, 1, path, sizeof path);
  CU_ASSERT_EQUAL(size_of(path), (uint64_t)STM_WAL_HEADER_LEN);
  fx_destroy(&f);
}

static void test_wal_appended_records_replay_in_order_after_reopen(void) {
  struct fx f;
  fx_init(&f);
  struct stm_wal *w = must_open(&f, 0);
  append_n(w, 1, 10);
  CU_ASSERT_EQUAL(replay_count(w, 0), 10u);
  CU_ASSERT_EQUAL(replay_count(w, 7), 3u);
  CU_ASSERT_EQUAL(replay_count(w, 10), 0u);
  stm_wal_delete(w);
  w = must_open(&f, 0);
  struct stm_wal_info i;
  info_of(w, &i);
  CU_ASSERT_EQUAL(i.last_sequence, 10u);
  CU_ASSERT_EQUAL(i.last_commit_time_ns, 100);
  CU_ASSERT_EQUAL(i.records_scanned, 10u);
  CU_ASSERT_EQUAL(i.truncated_bytes, 0u);
  CU_ASSERT_EQUAL(replay_count(w, 0), 10u);
  stm_wal_delete(w);
  fx_destroy(&f);
}

static void test_wal_append_must_continue_the_log(void) {
  struct fx f;
  fx_init(&f);
  struct stm_wal *w = must_open(&f, 0);
  append_n(w, 1, 2);
  CU_ASSERT_EQUAL(append_one(w, 4, NULL), STM_EINVAL); /* gap */
  CU_ASSERT_EQUAL(append_one(w, 2, NULL), STM_EINVAL); /* repeat */
  CU_ASSERT_EQUAL(append_one(w, 3, NULL), 0);          /* still writable */
  stm_wal_delete(w);
  fx_destroy(&f);
}

/* ---- recovery ------------------------------------------------------------ */

/* Sizes of the single segment after 2 and after 3 records. */
static void reference_sizes(uint64_t *s2, uint64_t *s3) {
  struct fx f;
  fx_init(&f);
  struct stm_wal *w = must_open(&f, 0);
  append_n(w, 1, 2);
  struct stm_wal_info i;
  info_of(w, &i);
  *s2 = i.bytes;
  append_n(w, 3, 1);
  info_of(w, &i);
  *s3 = i.bytes;
  stm_wal_delete(w);
  fx_destroy(&f);
}

static void test_wal_recovery_cuts_torn_tail(void) {
  uint64_t s2, s3;
  reference_sizes(&s2, &s3);
  for (uint64_t cut = s2; cut < s3; cut++) {
    struct fx f;
    fx_init(&f);
    struct stm_wal *w = must_open(&f, 0);
    append_n(w, 1, 3);
    stm_wal_delete(w);
    char path[600];
    seg_file(&f, 1, path, sizeof path);
    CU_ASSERT_EQUAL_FATAL(truncate(path, (off_t)cut), 0);
    w = must_open(&f, 0);
    struct stm_wal_info i;
    info_of(w, &i);
    CU_ASSERT_EQUAL(i.records_scanned, 2u);
    CU_ASSERT_EQUAL(i.last_sequence, 2u);
    CU_ASSERT_EQUAL(i.truncated_bytes, cut - s2);
    CU_ASSERT_EQUAL(size_of(path), s2);
    /* The log continues where the durable part ended. */
    CU_ASSERT_EQUAL(append_one(w, 3, NULL), 0);
    stm_wal_delete(w);
    w = must_open(&f, 0);
    info_of(w, &i);
    CU_ASSERT_EQUAL(i.records_scanned, 3u);
    CU_ASSERT_EQUAL(i.truncated_bytes, 0u);
    stm_wal_delete(w);
    fx_destroy(&f);
  }
}

static void
test_wal_recovery_detects_and_cuts_a_flipped_byte_in_the_tail(void) {
  uint64_t s2, s3;
  reference_sizes(&s2, &s3);
  for (uint64_t at = s2; at < s3; at++) {
    struct fx f;
    fx_init(&f);
    struct stm_wal *w = must_open(&f, 0);
    append_n(w, 1, 3);
    stm_wal_delete(w);
    char path[600];
    seg_file(&f, 1, path, sizeof path);
    flip_byte(path, at);
    w = must_open(&f, 0);
    struct stm_wal_info i;
    info_of(w, &i);
    CU_ASSERT_EQUAL(i.records_scanned, 2u);
    CU_ASSERT_EQUAL(i.truncated_bytes, s3 - s2);
    CU_ASSERT_EQUAL(size_of(path), s2);
    CU_ASSERT_EQUAL(replay_count(w, 0), 2u);
    stm_wal_delete(w);
    fx_destroy(&f);
  }
}

static void
test_wal_corrupt_sealed_segment_is_reported_with_file_and_offset(void) {
  struct fx f;
  fx_init(&f);
  struct stm_wal *w = must_open(&f, 100); /* two records per segment */
  append_n(w, 1, 6);
  struct stm_wal_info i;
  info_of(w, &i);
  CU_ASSERT_EQUAL(i.segments, 3u);
  stm_wal_delete(w);
  char path[600];
  seg_file(&f, 1, path, sizeof path);
  uint64_t seal_size = STM_WAL_RECORD_HEADER_LEN + STM_WAL_SEAL_LEN;
  uint64_t rec_size = (size_of(path) - STM_WAL_HEADER_LEN - seal_size) / 2;
  flip_byte(path, STM_WAL_HEADER_LEN + rec_size + 12);
  /* The open checks only a sealed segment's seal; the replay that reads
   * it refuses the damage. */
  w = must_open(&f, 100);
  struct seen s = {.n = 0};
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(stm_wal_replay(w, 0, collect, &s, &err), STM_ECORRUPT);
  CU_ASSERT_EQUAL(s.n, 0u); /* nothing of the damaged segment */
  stm_wal_delete(w);
  char where[64];
  snprintf(where, sizeof where, "offset %" PRIu64,
           STM_WAL_HEADER_LEN + rec_size);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "00000000000000000001.wal"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, where));
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "sealed"));
  /* Nothing was cut: the damage is still there for an operator to see. */
  CU_ASSERT_EQUAL(size_of(path), STM_WAL_HEADER_LEN + 2 * rec_size + seal_size);
  fx_destroy(&f);
}

static void test_wal_missing_middle_segment_is_reported_as_a_gap(void) {
  struct fx f;
  fx_init(&f);
  struct stm_wal *w = must_open(&f, 100);
  append_n(w, 1, 6);
  stm_wal_delete(w);
  char path[600];
  seg_file(&f, 3, path, sizeof path);
  CU_ASSERT_EQUAL_FATAL(unlink(path), 0);
  struct stm_error err;
  CU_ASSERT_EQUAL(open_wal(&f, 100, NULL, &w, &err), STM_ECORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "previous one ends at 2"));
  fx_destroy(&f);
}

static void test_wal_valid_record_of_unknown_type_is_refused_not_cut(void) {
  struct fx f;
  fx_init(&f);
  struct stm_wal *w = must_open(&f, 0);
  append_n(w, 1, 2);
  stm_wal_delete(w);
  char path[600];
  seg_file(&f, 1, path, sizeof path);
  uint64_t size = size_of(path);
  struct stm_buf b;
  stm_buf_init(&b);
  stm_wal_record_append(&b, 42, "from the future", 15);
  FILE *fp = fopen(path, "ab");
  fwrite(b.data, 1, b.len, fp);
  fclose(fp);
  struct stm_error err;
  CU_ASSERT_EQUAL(open_wal(&f, 0, NULL, &w, &err), STM_ECORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "unknown type 42"));
  CU_ASSERT_EQUAL(size_of(path), size + b.len);
  stm_buf_destroy(&b);
  fx_destroy(&f);
}

static void test_wal_torn_header_of_a_new_last_segment_is_rewritten(void) {
  struct fx f;
  fx_init(&f);
  struct stm_wal *w = must_open(&f, 100);
  append_n(w, 1, 3); /* seals segment 1, creates segment 3 */
  stm_wal_delete(w);
  /* A crash while creating segment 3 left 10 bytes of its header. */
  char path[600];
  seg_file(&f, 3, path, sizeof path);
  CU_ASSERT_EQUAL_FATAL(truncate(path, 10), 0);
  w = must_open(&f, 100);
  struct stm_wal_info i;
  info_of(w, &i);
  CU_ASSERT_EQUAL(i.truncated_bytes, 10u);
  CU_ASSERT_EQUAL(i.segments, 2u);
  CU_ASSERT_EQUAL(size_of(path), (uint64_t)STM_WAL_HEADER_LEN);
  append_n(w, 3, 3);
  CU_ASSERT_EQUAL(replay_count(w, 0), 5u);
  stm_wal_delete(w);
  fx_destroy(&f);
}

/* ---- rotation -------------------------------------------------------------- */

static void test_wal_rotation_produces_several_segments_and_replays_all(void) {
  struct fx f;
  fx_init(&f);
  struct stm_wal *w = must_open(&f, 200);
  append_n(w, 1, 20);
  struct stm_wal_info i;
  info_of(w, &i);
  CU_ASSERT(i.segments >= 5);
  uint64_t segments = i.segments, bytes = i.bytes;
  CU_ASSERT_EQUAL(replay_count(w, 0), 20u);
  CU_ASSERT_EQUAL(replay_count(w, 15), 5u);
  stm_wal_delete(w);
  w = must_open(&f, 200);
  info_of(w, &i);
  CU_ASSERT_EQUAL(i.segments, segments);
  CU_ASSERT_EQUAL(i.bytes, bytes);
  CU_ASSERT_EQUAL(i.last_sequence, 20u);
  CU_ASSERT_EQUAL(replay_count(w, 0), 20u);
  append_n(w, 21, 5);
  CU_ASSERT_EQUAL(replay_count(w, 0), 25u);
  stm_wal_delete(w);
  /* Every segment is named after its first sequence and starts with it. */
  char path[600];
  seg_file(&f, 1, path, sizeof path);
  CU_ASSERT_EQUAL(access(path, F_OK), 0);
  fx_destroy(&f);
}

/* ---- injected faults ------------------------------------------------------ */

static void fdatasync_failure_case(bool lose_unsynced) {
  struct fx f;
  fx_init(&f);
  struct fault_io fio;
  fault_io_init(&fio);
  struct stm_wal *w = NULL;
  CU_ASSERT_EQUAL_FATAL(open_wal(&f, 0, &fio.io, &w, NULL), 0);
  append_n(w, 1, 2);
  fault_io_fail_fdatasync_after(&fio, 0, lose_unsynced);
  struct stm_error err;
  CU_ASSERT_EQUAL(append_one(w, 3, &err), STM_EIO);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "fdatasync"));
  CU_ASSERT_EQUAL(fio.failed_fdatasyncs, 1);
  /* Never retried: the next append is refused without touching the disk. */
  CU_ASSERT_EQUAL(append_one(w, 3, &err), STM_EREADONLY);
  CU_ASSERT_EQUAL(append_one(w, 4, NULL), STM_EREADONLY);
  CU_ASSERT_EQUAL(fio.failed_fdatasyncs, 1);
  struct stm_wal_info i;
  info_of(w, &i);
  CU_ASSERT_TRUE(i.poisoned);
  CU_ASSERT_EQUAL(i.last_sequence, 2u);
  stm_wal_delete(w);
  w = must_open(&f, 0);
  info_of(w, &i);
  CU_ASSERT_EQUAL(i.last_sequence, 2u); /* the failed record is gone */
  CU_ASSERT_EQUAL(replay_count(w, 0), 2u);
  stm_wal_delete(w);
  fault_io_destroy(&fio);
  fx_destroy(&f);
}

static void test_wal_fdatasync_failure_poisons_and_is_never_retried(void) {
  fdatasync_failure_case(false);
  fdatasync_failure_case(true); /* the kernel also dropped the dirty pages */
}

static void test_wal_short_writes_are_completed(void) {
  struct fx f;
  fx_init(&f);
  struct fault_io fio;
  fault_io_init(&fio);
  fault_io_short_writes(&fio, 3);
  struct stm_wal *w = NULL;
  CU_ASSERT_EQUAL_FATAL(open_wal(&f, 150, &fio.io, &w, NULL), 0);
  append_n(w, 1, 6);
  stm_wal_delete(w);
  w = must_open(&f, 150);
  CU_ASSERT_EQUAL(replay_count(w, 0), 6u);
  stm_wal_delete(w);
  fault_io_destroy(&fio);
  fx_destroy(&f);
}

static void test_wal_enospc_on_write_leaves_no_torn_record(void) {
  struct fx f;
  fx_init(&f);
  struct fault_io fio;
  fault_io_init(&fio);
  struct stm_wal *w = NULL;
  CU_ASSERT_EQUAL_FATAL(open_wal(&f, 0, &fio.io, &w, NULL), 0);
  append_n(w, 1, 2);
  fault_io_fail_writes_after(&fio, 30, ENOSPC); /* mid-record */
  struct stm_error err;
  CU_ASSERT_EQUAL(append_one(w, 3, &err), STM_ENOSPC);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "No space"));
  CU_ASSERT_EQUAL(append_one(w, 3, NULL), STM_EREADONLY);
  stm_wal_delete(w);
  w = must_open(&f, 0);
  struct stm_wal_info i;
  info_of(w, &i);
  CU_ASSERT_EQUAL(i.truncated_bytes,
                  0u); /* the WAL cut its own partial write */
  CU_ASSERT_EQUAL(i.last_sequence, 2u);
  stm_wal_delete(w);
  fault_io_destroy(&fio);
  fx_destroy(&f);
}

/* Crash after k I/O calls, for every k until a run completes untouched. */
static void test_wal_crash_at_any_call_keeps_every_acknowledged_record(void) {
  for (long k = 0;; k++) {
    struct fx f;
    fx_init(&f);
    struct fault_io fio;
    fault_io_init(&fio);
    fault_io_crash_after(&fio, k);
    struct stm_wal *w = NULL;
    uint64_t acked = 0;
    if (open_wal(&f, 150, &fio.io, &w, NULL) == 0) {
      while (acked < 6 && append_one(w, acked + 1, NULL) == 0)
        acked++;
      stm_wal_delete(w);
    }
    bool crashed = fio.crashed;
    w = must_open(&f, 150); /* recovery always succeeds */
    struct stm_wal_info i;
    info_of(w, &i);
    CU_ASSERT(i.last_sequence >= acked);
    CU_ASSERT(i.last_sequence <= acked + 1); /* at most the one in flight */
    CU_ASSERT_EQUAL(replay_count(w, 0), i.last_sequence);
    stm_wal_delete(w);
    fault_io_destroy(&fio);
    fx_destroy(&f);
    if (!crashed)
      break;
    CU_ASSERT_FATAL(k < 1000);
  }
}

void stm_test_register_wal(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_wal_open_creates_the_first_segment),
      STM_TEST(test_wal_appended_records_replay_in_order_after_reopen),
      STM_TEST(test_wal_append_must_continue_the_log),
      STM_TEST(test_wal_recovery_cuts_torn_tail),
      STM_TEST(test_wal_recovery_detects_and_cuts_a_flipped_byte_in_the_tail),
      STM_TEST(
          test_wal_corrupt_sealed_segment_is_reported_with_file_and_offset),
      STM_TEST(test_wal_missing_middle_segment_is_reported_as_a_gap),
      STM_TEST(test_wal_valid_record_of_unknown_type_is_refused_not_cut),
      STM_TEST(test_wal_torn_header_of_a_new_last_segment_is_rewritten),
      STM_TEST(test_wal_rotation_produces_several_segments_and_replays_all),
      STM_TEST(test_wal_fdatasync_failure_poisons_and_is_never_retried),
      STM_TEST(test_wal_short_writes_are_completed),
      STM_TEST(test_wal_enospc_on_write_leaves_no_torn_record),
      STM_TEST(test_wal_crash_at_any_call_keeps_every_acknowledged_record),
      STM_TEST_END};
  stm_test_suite("wal", cases);
}
