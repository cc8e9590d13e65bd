/* Tests for storage/wal_format: segment header, record framing, TXNs. */
#include "storage/crc32c.h"
#include "storage/wal_format.h"
#include "storage_test.h"

#include <stdlib.h>
#include <string.h>

static void test_wal_format_header_round_trips_and_rejects_damage(void) {
  uint8_t h[STM_WAL_HEADER_LEN];
  stm_wal_header_encode(h, 12345);
  CU_ASSERT_EQUAL(memcmp(h, "STMWAL01", 8), 0);
  uint64_t first = 0;
  CU_ASSERT_EQUAL(stm_wal_header_decode(h, h + sizeof h, &first, NULL), 0);
  CU_ASSERT_EQUAL(first, 12345u);
  for (size_t len = 0; len < sizeof h; len++)
    CU_ASSERT_EQUAL(stm_wal_header_decode(h, h + len, &first, NULL),
                    STM_ECORRUPT);
  for (size_t i = 0; i < sizeof h; i++) {
    h[i] ^= 0x10;
    CU_ASSERT_NOT_EQUAL(stm_wal_header_decode(h, h + sizeof h, &first, NULL),
                        0);
    h[i] ^= 0x10;
  }
}

static void test_wal_format_header_of_a_newer_version_is_unimplemented(void) {
  uint8_t h[STM_WAL_HEADER_LEN];
  stm_wal_header_encode(h, 1);
  stm_buf_store_u32le(h + 8, 2);
  /* Recompute the CRC so only the version is "wrong". */
  stm_buf_store_u32le(h + 20, stm_crc32c(h, 20));
  struct stm_error err;
  uint64_t first;
  CU_ASSERT_EQUAL(stm_wal_header_decode(h, h + sizeof h, &first, &err),
                  STM_EUNIMPL);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "version 2"));
}

static void test_wal_format_record_round_trips(void) {
  struct stm_buf b;
  stm_buf_init(&b);
  CU_ASSERT_EQUAL(stm_wal_record_append(&b, 7, "hello", 5), 0);
  CU_ASSERT_EQUAL(stm_wal_record_append(&b, 1, "", 0), 0);
  CU_ASSERT_EQUAL(b.len, 2 * STM_WAL_RECORD_HEADER_LEN + 5);
  struct stm_wal_record r;
  const uint8_t *end = b.data + b.len;
  CU_ASSERT_EQUAL(stm_wal_record_decode(b.data, end, &r, NULL),
                  STM_WAL_DECODE_OK);
  CU_ASSERT_EQUAL(r.type, 7);
  CU_ASSERT_EQUAL(r.payload_len, 5u);
  CU_ASSERT_EQUAL(memcmp(r.payload, "hello", 5), 0);
  CU_ASSERT_EQUAL(stm_wal_record_decode(b.data + r.size, end, &r, NULL),
                  STM_WAL_DECODE_OK);
  CU_ASSERT_EQUAL(r.type, 1);
  CU_ASSERT_EQUAL(r.payload_len, 0u);
  stm_buf_destroy(&b);
}

static void test_wal_format_every_truncation_is_classified_truncated(void) {
  struct stm_buf b;
  stm_buf_init(&b);
  stm_wal_record_append(&b, 1, "some payload bytes", 18);
  for (size_t len = 0; len < b.len; len++) {
    uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees overreads */
    memcpy(copy, b.data, len);
    struct stm_wal_record r;
    const char *why = NULL;
    CU_ASSERT_EQUAL(stm_wal_record_decode(copy, copy + len, &r, &why),
                    STM_WAL_DECODE_TRUNCATED);
    CU_ASSERT_PTR_NOT_NULL(why);
    free(copy);
  }
  stm_buf_destroy(&b);
}

static void test_wal_format_every_flipped_bit_is_detected(void) {
  struct stm_buf b;
  stm_buf_init(&b);
  stm_wal_record_append(&b, 1, "some payload bytes", 18);
  for (size_t i = 0; i < b.len; i++)
    for (int bit = 0; bit < 8; bit++) {
      b.data[i] ^= (uint8_t)(1u << bit);
      struct stm_wal_record r;
      CU_ASSERT_NOT_EQUAL(
          stm_wal_record_decode(b.data, b.data + b.len, &r, NULL),
          STM_WAL_DECODE_OK);
      b.data[i] ^= (uint8_t)(1u << bit);
    }
  stm_buf_destroy(&b);
}

static void test_wal_format_impossible_length_is_corrupt(void) {
  uint8_t rec[STM_WAL_RECORD_HEADER_LEN] = {0};
  stm_buf_store_u32le(rec, STM_WAL_MAX_PAYLOAD + 1);
  struct stm_wal_record r;
  CU_ASSERT_EQUAL(stm_wal_record_decode(rec, rec + sizeof rec, &r, NULL),
                  STM_WAL_DECODE_CORRUPT);
  /* All zeroes (a preallocated or zero-filled tail) fail the CRC. */
  memset(rec, 0, sizeof rec);
  CU_ASSERT_EQUAL(stm_wal_record_decode(rec, rec + sizeof rec, &r, NULL),
                  STM_WAL_DECODE_CORRUPT);
}

static void build_txn(struct stm_buf *b, uint64_t first, int entries) {
  struct stm_wal_txn_builder t;
  CU_ASSERT_EQUAL(stm_wal_txn_begin(&t, b, first, -7), 0);
  for (int i = 0; i < entries; i++) {
    CU_ASSERT_EQUAL(stm_wal_txn_entry_begin(&t, STM_WAL_ENTRY_CLAIM), 0);
    for (int j = 0; j < i; j++)
      stm_buf_put_u8(b, (uint8_t)('a' + j));
    CU_ASSERT_EQUAL(stm_wal_txn_entry_end(&t), 0);
  }
  CU_ASSERT_EQUAL(stm_wal_txn_finish(&t), entries > 0 ? 0 : STM_EINVAL);
  if (entries == 0)
    stm_wal_txn_abort(&t);
}

static void test_wal_format_txn_round_trips_its_entries(void) {
  struct stm_buf b;
  stm_buf_init(&b);
  build_txn(&b, 100, 4);
  struct stm_wal_record r;
  CU_ASSERT_EQUAL_FATAL(stm_wal_record_decode(b.data, b.data + b.len, &r, NULL),
                        STM_WAL_DECODE_OK);
  CU_ASSERT_EQUAL(r.type, STM_WAL_RECORD_TXN);
  CU_ASSERT_EQUAL(r.size, b.len);
  struct stm_wal_txn txn;
  CU_ASSERT_EQUAL_FATAL(
      stm_wal_txn_decode(r.payload, r.payload + r.payload_len, &txn, NULL), 0);
  CU_ASSERT_EQUAL(txn.first_sequence, 100u);
  CU_ASSERT_EQUAL(txn.commit_time_ns, -7);
  CU_ASSERT_EQUAL(txn.count, 4u);
  CU_ASSERT_EQUAL(stm_wal_txn_last_sequence(&txn), 103u);
  struct stm_wal_txn_iter it;
  struct stm_wal_entry e;
  stm_wal_txn_iter_init(&it, &txn);
  int n = 0;
  while (stm_wal_txn_next(&it, &e)) {
    CU_ASSERT_EQUAL(e.kind, STM_WAL_ENTRY_CLAIM);
    CU_ASSERT_EQUAL(e.sequence, 100u + (uint64_t)n);
    CU_ASSERT_EQUAL(e.len, (size_t)n);
    CU_ASSERT(n == 0 || memcmp(e.data, "abc", e.len) == 0);
    n++;
  }
  CU_ASSERT_EQUAL(n, 4);
  stm_buf_destroy(&b);
}

static void test_wal_format_empty_txn_is_never_written(void) {
  struct stm_buf b;
  stm_buf_init(&b);
  stm_buf_put_u8(&b, 0xEE);
  build_txn(&b, 1, 0);
  CU_ASSERT_EQUAL(b.len, 1u); /* abort restored the buffer */
  stm_buf_destroy(&b);
}

static void test_wal_format_txn_decoder_rejects_bad_payloads(void) {
  struct stm_buf b;
  stm_buf_init(&b);
  build_txn(&b, 5, 3);
  const uint8_t *p = b.data + STM_WAL_RECORD_HEADER_LEN;
  size_t len = b.len - STM_WAL_RECORD_HEADER_LEN;
  struct stm_wal_txn txn;
  for (size_t cut = 0; cut < len; cut++)
    CU_ASSERT_EQUAL(stm_wal_txn_decode(p, p + cut, &txn, NULL), STM_ECORRUPT);
  uint8_t *q = b.data + STM_WAL_RECORD_HEADER_LEN;
  stm_buf_store_u32le(q + 16, 4); /* count larger than the entries */
  CU_ASSERT_EQUAL(stm_wal_txn_decode(p, p + len, &txn, NULL), STM_ECORRUPT);
  stm_buf_store_u32le(q + 16, 2); /* count smaller: trailing bytes */
  CU_ASSERT_EQUAL(stm_wal_txn_decode(p, p + len, &txn, NULL), STM_ECORRUPT);
  stm_buf_store_u32le(q + 16, 0);
  CU_ASSERT_EQUAL(stm_wal_txn_decode(p, p + len, &txn, NULL), STM_ECORRUPT);
  stm_buf_store_u32le(q + 16, 3);
  stm_buf_store_u64le(q, 0); /* sequence 0 does not exist */
  CU_ASSERT_EQUAL(stm_wal_txn_decode(p, p + len, &txn, NULL), STM_ECORRUPT);
  stm_buf_store_u64le(q, UINT64_MAX - 1); /* the range would overflow */
  CU_ASSERT_EQUAL(stm_wal_txn_decode(p, p + len, &txn, NULL), STM_ECORRUPT);
  stm_buf_destroy(&b);
}

void stm_test_register_wal_format(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_wal_format_header_round_trips_and_rejects_damage),
      STM_TEST(test_wal_format_header_of_a_newer_version_is_unimplemented),
      STM_TEST(test_wal_format_record_round_trips),
      STM_TEST(test_wal_format_every_truncation_is_classified_truncated),
      STM_TEST(test_wal_format_every_flipped_bit_is_detected),
      STM_TEST(test_wal_format_impossible_length_is_corrupt),
      STM_TEST(test_wal_format_txn_round_trips_its_entries),
      STM_TEST(test_wal_format_empty_txn_is_never_written),
      STM_TEST(test_wal_format_txn_decoder_rejects_bad_payloads),
      STM_TEST_END};
  stm_test_suite("wal_format", cases);
}
