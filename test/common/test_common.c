/* Tests for common/: validation rules, hex, buffers and readers. */
#include "common/buf.h"
#include "common/hex.h"
#include "common/validate.h"
#include "harness.h"

#include <math.h>
#include <string.h>

#define OK(call) CU_ASSERT_EQUAL(call, 0)
#define BAD(call) CU_ASSERT_EQUAL(call, STM_EINVAL)

static void test_field_names_are_joined_and_cut(void) {
  char b[48];
  CU_ASSERT_STRING_EQUAL(stm_field_name(b, sizeof b, "", "value"), "value");
  CU_ASSERT_STRING_EQUAL(stm_field_name(b, sizeof b, "a.", "b"), "a.b");
  CU_ASSERT_STRING_EQUAL(stm_field_name(b, 4, "abc", "def"), "abc");
  CU_ASSERT_STRING_EQUAL(stm_field_name(b, 5, "abc", "def"), "abcd");
  CU_ASSERT_STRING_EQUAL(
      stm_field_name_at(b, sizeof b, "assertions", 0, "value"),
      "assertions[0].value");
  CU_ASSERT_STRING_EQUAL(stm_field_name_at(b, sizeof b, "assertions", 9999, ""),
                         "assertions[9999].");
  CU_ASSERT_STRING_EQUAL(stm_field_name_at(b, 12, "assertions", 12, "x"),
                         "assertions[");
  CU_ASSERT_STRING_EQUAL(
      stm_field_name_at(b, sizeof b, "a", 18446744073709551615u, "z"),
      "a[18446744073709551615].z");
}

static void test_validate_accepts_good_concept_paths(void) {
  OK(stm_validate_concept_path("concept_path", "test/cluster", 12, NULL));
  OK(stm_validate_concept_path("concept_path", "a", 1, NULL));
  OK(stm_validate_concept_path("concept_path", "A-b_c.d/9", 9, NULL));
}

static void test_validate_rejects_bad_concept_paths_naming_field(void) {
  struct stm_error err;
  stm_error_clear(&err);
  BAD(stm_validate_concept_path("concept_path", "", 0, &err));
  CU_ASSERT_STRING_EQUAL(err.field, "concept_path");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "empty"));
  BAD(stm_validate_concept_path("concept_path", "a//b", 4, &err));
  BAD(stm_validate_concept_path("concept_path", "/a", 2, &err));
  BAD(stm_validate_concept_path("concept_path", "a/", 2, &err));
  BAD(stm_validate_concept_path("concept_path", "a b", 3, &err));
  BAD(stm_validate_concept_path("concept_path", "a\0b", 3, &err));
  char long_path[600];
  memset(long_path, 'x', sizeof long_path);
  BAD(stm_validate_concept_path("concept_path", long_path, 513, &err));
  OK(stm_validate_concept_path("concept_path", long_path, 512, &err));
  char many[100];
  size_t n = 0;
  for (int i = 0; i < 33; i++) {
    many[n++] = 'a';
    many[n++] = '/';
  }
  BAD(stm_validate_concept_path("concept_path", many, n - 1, &err));
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "segments"));
  OK(stm_validate_concept_path("concept_path", many, 63, &err));
}

/* The configured limits (stemedb-server --max-*-bytes) replace the
 * defaults, and the message names the flag to change. */
static void test_validate_configured_limits(void) {
  struct stm_limits saved = *stm_limits_get();
  struct stm_limits l = saved;
  l.concept_path = 8;
  l.string_value = 4;
  stm_limits_set(&l);
  struct stm_error err;
  CU_ASSERT_EQUAL(
      stm_validate_concept_path("concept_path", "abcd/efg", 8, &err), 0);
  CU_ASSERT_EQUAL(
      stm_validate_concept_path("concept_path", "abcd/efgh", 9, &err),
      STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.message, "concept_path is 9 bytes; at most 8 are "
                                      "allowed (--max-concept-path-bytes)");
  CU_ASSERT_EQUAL(stm_validate_string_value("value", "hello", 5, &err),
                  STM_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "--max-value-bytes"));
  stm_limits_set(&saved);
  CU_ASSERT_EQUAL(stm_validate_string_value("value", "hello", 5, &err), 0);
}

static void test_validate_predicate_rules(void) {
  OK(stm_validate_predicate("predicate", "rdf:type", 8, NULL));
  BAD(stm_validate_predicate("predicate", "", 0, NULL));
  BAD(stm_validate_predicate("predicate", "a/b", 3, NULL));
  char p[200];
  memset(p, 'p', sizeof p);
  OK(stm_validate_predicate("predicate", p, 128, NULL));
  BAD(stm_validate_predicate("predicate", p, 129, NULL));
}

static void test_validate_utf8_rejects_malformed_sequences(void) {
  CU_ASSERT_TRUE(
      stm_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
  CU_ASSERT_FALSE(stm_utf8_valid("\xc3", 1));         /* truncated */
  CU_ASSERT_FALSE(stm_utf8_valid("\xc0\xaf", 2));     /* overlong */
  CU_ASSERT_FALSE(stm_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
  CU_ASSERT_FALSE(stm_utf8_valid("\xff", 1));
  CU_ASSERT_FALSE(stm_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  BAD(stm_validate_string_value("value", "\xff", 1, NULL));
}

static void test_validate_numbers_and_hashes(void) {
  BAD(stm_validate_number("value", NAN, NULL));
  BAD(stm_validate_number("value", INFINITY, NULL));
  OK(stm_validate_number("value", -1e300, NULL));
  BAD(stm_validate_unit_interval("confidence", 1.5, NULL));
  BAD(stm_validate_unit_interval("confidence", -0.1, NULL));
  OK(stm_validate_unit_interval("confidence", 0.0, NULL));
  char h[65];
  memset(h, 'a', 64);
  h[64] = 0;
  OK(stm_validate_hash_hex("hash", h, 64, false, NULL));
  BAD(stm_validate_hash_hex("hash", h, 63, false, NULL));
  OK(stm_validate_hash_hex("parent_hash", "", 0, true, NULL));
  h[3] = 'g';
  BAD(stm_validate_hash_hex("hash", h, 64, false, NULL));
  OK(stm_validate_ref_value("value", "drugs/x", 7, NULL));
  BAD(stm_validate_ref_value("value", "not a ref", 9, NULL));
}

static void test_hex_round_trips(void) {
  uint8_t in[4] = {0x00, 0xab, 0x10, 0xff}, out[4];
  char hex[9];
  stm_hex_encode(in, 4, hex);
  CU_ASSERT_STRING_EQUAL(hex, "00ab10ff");
  OK(stm_hex_decode("00AB10ff", 8, out, 4));
  CU_ASSERT_EQUAL(memcmp(in, out, 4), 0);
  BAD(stm_hex_decode("00ab10f", 7, out, 4));
  BAD(stm_hex_decode("00ab10fz", 8, out, 4));
}

static void test_reader_never_reads_past_end(void) {
  struct stm_buf b;
  stm_buf_init(&b);
  OK(stm_buf_put_u64le(&b, 0x0102030405060708ull));
  OK(stm_buf_put_lenbytes(&b, "xyz", 3));
  struct stm_reader r;
  stm_reader_init(&r, b.data, b.len);
  CU_ASSERT_EQUAL(stm_reader_u64le(&r), 0x0102030405060708ull);
  size_t n;
  const uint8_t *p = stm_reader_lenbytes(&r, &n);
  CU_ASSERT_EQUAL(n, 3);
  CU_ASSERT_EQUAL(memcmp(p, "xyz", 3), 0);
  CU_ASSERT_FALSE(r.failed);
  stm_reader_u8(&r);
  CU_ASSERT_TRUE(r.failed);
  /* A length prefix larger than the input fails instead of over-reading. */
  stm_reader_init(&r, b.data + 8, 5);
  CU_ASSERT_PTR_NULL(stm_reader_lenbytes(&r, &n));
  CU_ASSERT_TRUE(r.failed);
  stm_buf_destroy(&b);
}

int main(void) {
  static const struct stm_test_case validate[] = {
      STM_TEST(test_field_names_are_joined_and_cut),
      STM_TEST(test_validate_accepts_good_concept_paths),
      STM_TEST(test_validate_rejects_bad_concept_paths_naming_field),
      STM_TEST(test_validate_configured_limits),
      STM_TEST(test_validate_predicate_rules),
      STM_TEST(test_validate_utf8_rejects_malformed_sequences),
      STM_TEST(test_validate_numbers_and_hashes),
      STM_TEST_END};
  static const struct stm_test_case codec[] = {
      STM_TEST(test_hex_round_trips),
      STM_TEST(test_reader_never_reads_past_end), STM_TEST_END};
  stm_test_suite("validate", validate);
  stm_test_suite("codec", codec);
  return stm_test_run_all();
}
