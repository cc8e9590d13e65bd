/* Tests for service/request_ids.c and service/wire_check.c. */
#include "harness.h"
#include "service/request_ids.h"
#include "service/wire_check.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <stdlib.h>
#include <string.h>

#define SEC INT64_C(1000000000)

static const uint8_t D1[STM_REQUEST_ID_DIGEST] = {1};
static const uint8_t D2[STM_REQUEST_ID_DIGEST] = {2};

static void test_request_ids_remember_a_success_for_the_window(void) {
  struct stm_request_ids *r = stm_request_ids_new(10 * SEC, 100, 1 << 20);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  void *a = NULL;
  size_t n = 0;
  CU_ASSERT_EQUAL(stm_request_ids_begin(r, 1, "x", D1, NULL, 0, &a, &n),
                  STM_REQUEST_ID_NEW);
  size_t nw = 9;
  void **w = stm_request_ids_finish(r, 1, "x", true, "answer", 6, SEC, &nw);
  CU_ASSERT_PTR_NULL(w);
  CU_ASSERT_EQUAL(nw, 0);
  CU_ASSERT_EQUAL(stm_request_ids_begin(r, 1, "x", D1, NULL, 5 * SEC, &a, &n),
                  STM_REQUEST_ID_DONE);
  CU_ASSERT_EQUAL(n, 6);
  CU_ASSERT_EQUAL(memcmp(a, "answer", 6), 0);
  free(a);
  /* Another method is another key; another request is a mismatch. */
  CU_ASSERT_EQUAL(stm_request_ids_begin(r, 2, "x", D2, NULL, 5 * SEC, &a, &n),
                  STM_REQUEST_ID_NEW);
  CU_ASSERT_EQUAL(stm_request_ids_begin(r, 1, "x", D2, NULL, 5 * SEC, &a, &n),
                  STM_REQUEST_ID_MISMATCH);
  /* Past the window it is forgotten. */
  CU_ASSERT_EQUAL(stm_request_ids_begin(r, 1, "x", D2, NULL, 12 * SEC, &a, &n),
                  STM_REQUEST_ID_NEW);
  stm_request_ids_finish(r, 1, "x", false, NULL, 0, 12 * SEC, &nw);
  stm_request_ids_finish(r, 2, "x", false, NULL, 0, 12 * SEC, &nw);
  stm_request_ids_delete(r);
}

static void test_request_ids_queue_retries_behind_a_running_call(void) {
  struct stm_request_ids *r = stm_request_ids_new(10 * SEC, 100, 1 << 20);
  void *a = NULL;
  size_t n = 0, nw = 0;
  int w1 = 1, w2 = 2;
  CU_ASSERT_EQUAL(stm_request_ids_begin(r, 0, "y", D1, NULL, 0, &a, &n),
                  STM_REQUEST_ID_NEW);
  CU_ASSERT_EQUAL(stm_request_ids_begin(r, 0, "y", D1, &w1, 0, &a, &n),
                  STM_REQUEST_ID_WAITING);
  CU_ASSERT_EQUAL(stm_request_ids_begin(r, 0, "y", D1, &w2, 0, &a, &n),
                  STM_REQUEST_ID_WAITING);
  /* A failure hands the waiters back and is forgotten. */
  void **w = stm_request_ids_finish(r, 0, "y", false, NULL, 0, 0, &nw);
  CU_ASSERT_EQUAL_FATAL(nw, 2);
  CU_ASSERT_PTR_EQUAL(w[0], &w1);
  CU_ASSERT_PTR_EQUAL(w[1], &w2);
  free(w);
  CU_ASSERT_EQUAL(stm_request_ids_begin(r, 0, "y", D1, NULL, 0, &a, &n),
                  STM_REQUEST_ID_NEW);
  stm_request_ids_finish(r, 0, "y", true, NULL, 0, 0, &nw);
  CU_ASSERT_EQUAL(stm_request_ids_begin(r, 0, "y", D1, NULL, 0, &a, &n),
                  STM_REQUEST_ID_DONE);
  CU_ASSERT_PTR_NULL(a);
  CU_ASSERT_EQUAL(n, 0);
  stm_request_ids_delete(r);
}

static void test_request_ids_forget_the_oldest_past_the_bounds(void) {
  struct stm_request_ids *r = stm_request_ids_new(100 * SEC, 3, 1 << 20);
  void *a = NULL;
  size_t n = 0, nw = 0;
  const char *ids[] = {"a", "b", "c", "d"};
  for (int i = 0; i < 4; i++) {
    stm_request_ids_begin(r, 0, ids[i], D1, NULL, i, &a, &n);
    stm_request_ids_finish(r, 0, ids[i], true, "z", 1, i, &nw);
  }
  CU_ASSERT_EQUAL(stm_request_ids_begin(r, 0, "a", D1, NULL, 5, &a, &n),
                  STM_REQUEST_ID_NEW);
  CU_ASSERT_EQUAL(stm_request_ids_begin(r, 0, "d", D1, NULL, 5, &a, &n),
                  STM_REQUEST_ID_DONE);
  free(a);
  stm_request_ids_delete(r); /* frees the pending "a" too */
}

/* An AssertRequest packed with protobuf-c, then one byte patched. */
static size_t packed_assert(uint8_t *buf, const char *pred) {
  Stemedb__V1__AssertRequest m = STEMEDB__V1__ASSERT_REQUEST__INIT;
  Stemedb__V1__Value v = STEMEDB__V1__VALUE__INIT;
  v.kind_case = STEMEDB__V1__VALUE__KIND_STRING_VALUE;
  v.string_value = "val";
  m.concept_path = "a/b";
  m.predicate = (char *)pred;
  m.value = &v;
  return stemedb__v1__assert_request__pack(&m, buf);
}

static void test_wire_check_names_the_string_with_a_nul(void) {
  uint8_t buf[256];
  struct stm_error err;
  stm_error_clear(&err);
  size_t len = packed_assert(buf, "pXzzz");
  CU_ASSERT_EQUAL(stm_wire_check_strings(
                      &stemedb__v1__assert_request__descriptor, buf, len, &err),
                  0);
  uint8_t *x = memchr(buf, 'X', len);
  *x = 0;
  CU_ASSERT_EQUAL(stm_wire_check_strings(
                      &stemedb__v1__assert_request__descriptor, buf, len, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "predicate");
  *x = 'X';
  x = memchr(buf, 'v', len); /* the value's string, nested in Value */
  *x = 0xff;
  CU_ASSERT_EQUAL(stm_wire_check_strings(
                      &stemedb__v1__assert_request__descriptor, buf, len, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "value.string_value");
  /* Truncated wire data is left to the decoder. */
  CU_ASSERT_EQUAL(stm_wire_check_strings(
                      &stemedb__v1__assert_request__descriptor, buf, 3, &err),
                  0);
}

/* protobuf-c takes a field numbered 0 with an over-long tag (80 00) and
 * writes it back as 00, which it refuses: found by fuzz_proto_requests. */
static void test_wire_check_refuses_field_number_zero(void) {
  uint8_t buf[256];
  struct stm_error err;
  stm_error_clear(&err);
  size_t len = packed_assert(buf, "p");
  const uint8_t field0[] = {0x80, 0x00, 0x70};
  memcpy(buf + len, field0, sizeof field0);
  CU_ASSERT_EQUAL(
      stm_wire_check_strings(&stemedb__v1__assert_request__descriptor, buf,
                             len + sizeof field0, &err),
      STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "field numbered 0"));
  /* Inside the Value (field 3, length-delimited), named by its path. */
  const uint8_t nested[] = {0x1a, 0x03, 0x80, 0x00, 0x70};
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(
      stm_wire_check_strings(&stemedb__v1__assert_request__descriptor, nested,
                             sizeof nested, &err),
      STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "value");
}

void stm_test_register_request_ids(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_request_ids_remember_a_success_for_the_window),
      STM_TEST(test_request_ids_queue_retries_behind_a_running_call),
      STM_TEST(test_request_ids_forget_the_oldest_past_the_bounds),
      STM_TEST(test_wire_check_names_the_string_with_a_nul),
      STM_TEST(test_wire_check_refuses_field_number_zero),
      STM_TEST_END};
  stm_test_suite("request_ids", cases);
}
