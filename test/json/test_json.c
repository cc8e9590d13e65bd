/* test_json: the JSON module (json/json.h) on its own - strict body
 * parsing, the renderers of stemedb.v1 messages, compact dumping. It links
 * stm_json only, as the CLI does. */
#include "harness.h"
#include "json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH64                                                                 \
  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- parsing a body ------------------------------------------------------ */

static void expect_parse_error(const char *body, size_t len,
                               const char *needle) {
  struct stm_error err;
  stm_error_clear(&err);
  json_t *j = (void *)1;
  CU_ASSERT_EQUAL(stm_json_parse(body, len, &j, &err), STM_EINVAL);
  CU_ASSERT_PTR_NULL(j);
  if (strstr(err.message, needle) == NULL)
    fprintf(stderr, "\n'%s' not in '%s'\n", needle, err.message);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, needle));
}

static void test_json_parse_rejects_empty_and_malformed_bodies(void) {
  expect_parse_error("", 0, "empty");
  expect_parse_error("{\"concept_path\":", 16, "line 1, column");
  expect_parse_error("{\"a\":1,}", 8, "malformed JSON");
  expect_parse_error("   ", 3, "malformed JSON");
  expect_parse_error("{\"a\":1} x", 9, "malformed JSON");
  expect_parse_error("[1,2]", 5, "must be a JSON object");
  expect_parse_error("\"text\"", 6, "malformed JSON");
  expect_parse_error("{\"a\":1,\"a\":2}", 13, "duplicate");
}

static void test_json_parse_rejects_invalid_utf8(void) {
  const char bad[] = "{\"value\":\"\xff\xfe\"}";
  expect_parse_error(bad, sizeof bad - 1, "UTF-8");
  const char overlong[] = "{\"value\":\"\xc0\xaf\"}";
  expect_parse_error(overlong, sizeof overlong - 1, "UTF-8");
  const char lone_surrogate[] = "{\"value\":\"\\ud800\"}";
  expect_parse_error(lone_surrogate, sizeof lone_surrogate - 1,
                     "malformed JSON");
}

/* A \u0000 is refused naming the field, as the server names a gRPC string
 * with a NUL (service/wire_check.c), not with jansson's message. */
static void expect_nul_field(const char *body, const char *field,
                             const char *at) {
  struct stm_error err;
  stm_error_clear(&err);
  json_t *j = (void *)1;
  CU_ASSERT_EQUAL(stm_json_parse(body, strlen(body), &j, &err), STM_EINVAL);
  CU_ASSERT_PTR_NULL(j);
  CU_ASSERT_STRING_EQUAL(err.field, field);
  char want[160];
  snprintf(want, sizeof want,
           "%s contains a NUL byte (at byte %s); no string field may "
           "contain NUL",
           field, at);
  CU_ASSERT_STRING_EQUAL(err.message, want);
}

static void test_json_parse_names_the_field_with_a_nul(void) {
  expect_nul_field("{\"value\":\"a\\u0000b\"}", "value", "1");
  expect_nul_field("{\"a\":\"x\",\"predicate\":\"\\u0000\"}", "predicate", "0");
  expect_nul_field("{\"assertions\":[{\"value\":1},"
                   "{\"value\":{\"ref\":\"ab\\u0000\"}}]}",
                   "assertions[1].value.ref", "2");
  /* A NUL in a key is still jansson's refusal (keys are not fields). */
  const char key[] = "{\"a\\u0000\":1}";
  expect_parse_error(key, sizeof key - 1, "malformed JSON");
  /* Escaped but not NUL: accepted. */
  json_t *j = NULL;
  const char ok[] = "{\"value\":\"a\\u0001\"}";
  CU_ASSERT_EQUAL(stm_json_parse(ok, sizeof ok - 1, &j, NULL), 0);
  json_decref(j);
}

/* --max-json-depth is checked before jansson parses; --max-json-string-bytes
 * names the field; both 400 (STM_EINVAL) with the flag in the message. */
static void test_json_parse_limited_depth_and_strings(void) {
  struct stm_json_limits lim = {.max_depth = 4, .max_string = 8};
  struct stm_error err;
  json_t *j = NULL;
  const char *ok = "{\"a\":[{\"b\":[1]}],\"s\":\"12345678\"}";
  CU_ASSERT_EQUAL(stm_json_parse_limited(ok, strlen(ok), &lim, &j, &err), 0);
  json_decref(j);
  const char *deep = "{\"a\":[{\"b\":[[1]]}]}";
  CU_ASSERT_EQUAL(stm_json_parse_limited(deep, strlen(deep), &lim, &j, &err),
                  STM_EINVAL);
  CU_ASSERT_PTR_NULL(j);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "--max-json-depth"));
  const char *in_string = "{\"a\":\"[[[[[[[[\"}";
  CU_ASSERT_EQUAL(
      stm_json_parse_limited(in_string, strlen(in_string), &lim, &j, &err), 0);
  json_decref(j);
  const char *lng = "{\"a\":[{\"v\":\"123456789\"}]}";
  CU_ASSERT_EQUAL(stm_json_parse_limited(lng, strlen(lng), &lim, &j, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "a[0].v");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "--max-json-string-bytes"));
  /* The default depth (32) stops a 100 000-deep body at once. */
  size_t n = 100000;
  char *b = malloc(n + 2);
  b[0] = '{';
  memset(b + 1, '[', n);
  b[n + 1] = '\0';
  CU_ASSERT_EQUAL(stm_json_parse_limited(b, n + 1, NULL, &j, &err), STM_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "32 levels"));
  free(b);
}

/* The depth pre-check skips brackets inside strings, escaped quotes and
 * backslashes included, and still counts those after a string ends. */
static void test_json_parse_limited_depth_around_escapes(void) {
  struct stm_json_limits lim = {.max_depth = 2};
  struct stm_error err;
  json_t *j = NULL;
  const char *fine[] = {
      "{\"a\":\"\\\"[[[[[\"}",      /* an escaped quote, then brackets */
      "{\"a\":\"\\\\\",\"b\":[1]}", /* an escaped backslash ends it */
      "{\"[[[[\":\"]]]]{{{{\",\"c\":[\"\\u005b[\"]}",
  };
  for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
    CU_ASSERT_EQUAL(
        stm_json_parse_limited(fine[i], strlen(fine[i]), &lim, &j, &err), 0);
    json_decref(j);
    j = NULL;
  }
  const char *deep[] = {
      "{\"a\":\"\\\\\",\"b\":[[1]]}", /* the string ends after \\ */
      "{\"a\":\"\\\"\",\"b\":[[1]]}", /* and after \" */
      "[\"]\",[[1]]]",
  };
  for (size_t i = 0; i < sizeof deep / sizeof deep[0]; i++) {
    CU_ASSERT_EQUAL(
        stm_json_parse_limited(deep[i], strlen(deep[i]), &lim, &j, &err),
        STM_EINVAL);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "--max-json-depth"));
  }
}

static void test_json_parse_rejects_numbers_out_of_range(void) {
  const char big_real[] = "{\"value\":1e999}";
  expect_parse_error(big_real, sizeof big_real - 1, "overflow");
  const char big_int[] = "{\"value\":99999999999999999999999}";
  expect_parse_error(big_int, sizeof big_int - 1, "too big");
  const char nan[] = "{\"value\":NaN}";
  expect_parse_error(nan, sizeof nan - 1, "malformed JSON");
}

static void test_json_parse_accepts_an_object(void) {
  const char ok[] = " {\"concept_path\":\"h\xc3\xa9\"} ";
  json_t *j = NULL;
  CU_ASSERT_EQUAL(stm_json_parse(ok, sizeof ok - 1, &j, NULL), 0);
  CU_ASSERT_TRUE(json_is_object(j));
  json_decref(j);
}

/* ---- messages -> JSON ---------------------------------------------------- */

static char *dump(json_t *j) {
  char *s = stm_json_dump(j, NULL);
  json_decref(j);
  return s;
}

static void test_value_renders_each_kind(void) {
  Stemedb__V1__Value v = STEMEDB__V1__VALUE__INIT;
  char *s = dump(stm_json_render_value(&v));
  CU_ASSERT_STRING_EQUAL(s, "null");
  free(s);
  v.kind_case = STEMEDB__V1__VALUE__KIND_STRING_VALUE;
  v.string_value = "x\"y";
  s = dump(stm_json_render_value(&v));
  CU_ASSERT_STRING_EQUAL(s, "\"x\\\"y\"");
  free(s);
  v.kind_case = STEMEDB__V1__VALUE__KIND_NUMBER_VALUE;
  v.number_value = 0.9;
  s = dump(stm_json_render_value(&v));
  CU_ASSERT_STRING_EQUAL(s, "0.9");
  free(s);
  v.kind_case = STEMEDB__V1__VALUE__KIND_BOOL_VALUE;
  v.bool_value = 1;
  s = dump(stm_json_render_value(&v));
  CU_ASSERT_STRING_EQUAL(s, "true");
  free(s);
  v.kind_case = STEMEDB__V1__VALUE__KIND_REF_VALUE;
  v.ref_value = "a/b";
  s = dump(stm_json_render_value(&v));
  CU_ASSERT_STRING_EQUAL(s, "{\"ref\":\"a/b\"}");
  free(s);
  s = dump(stm_json_render_value(NULL));
  CU_ASSERT_STRING_EQUAL(s, "null");
  free(s);
}

static Stemedb__V1__Assertion sample_assertion(Stemedb__V1__Value *v) {
  Stemedb__V1__Assertion a = STEMEDB__V1__ASSERTION__INIT;
  stemedb__v1__value__init(v);
  v->kind_case = STEMEDB__V1__VALUE__KIND_BOOL_VALUE;
  v->bool_value = 1;
  a.hash = HASH64;
  a.concept_path = "test/cluster";
  a.predicate = "replicated";
  a.value = v;
  a.source_id = "wiki://x";
  a.confidence = 0.9;
  a.timestamp_ns = 1700000000123456789LL;
  a.sequence = 7;
  a.epoch = 1;
  a.commit_time_ns = 1700000000999999999LL;
  a.source_tier = 3;
  return a;
}

static void test_assertion_renders_fields_and_omits_empty_optionals(void) {
  Stemedb__V1__Value v;
  Stemedb__V1__Assertion a = sample_assertion(&v);
  json_t *j = stm_json_render_assertion(&a);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "hash")), HASH64);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "source")),
                         "wiki://x");
  CU_ASSERT_TRUE(json_is_true(json_object_get(j, "value")));
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "timestamp_ns")),
                  1700000000123456789LL);
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "sequence")), 7);
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "source_tier")), 3);
  CU_ASSERT_PTR_NULL(json_object_get(j, "parent_hash"));
  CU_ASSERT_PTR_NULL(json_object_get(j, "signature"));
  char *s = dump(j);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"confidence\":0.9,"));
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"timestamp_ns\":1700000000123456789"));
  free(s);
  a.parent_hash = HASH64;
  j = stm_json_render_assertion(&a);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "parent_hash")),
                         HASH64);
  json_decref(j);
}

static void test_query_response_renders_results_with_winner(void) {
  Stemedb__V1__Value v;
  Stemedb__V1__Assertion a = sample_assertion(&v);
  Stemedb__V1__LensResult r = STEMEDB__V1__LENS_RESULT__INIT;
  r.concept_path = "test/cluster";
  r.predicate = "replicated";
  r.winner = &a;
  r.confidence = 1.0;
  r.candidates_count = 3;
  r.conflict_score = 0.25;
  r.lens = "recency";
  Stemedb__V1__LensResult empty = STEMEDB__V1__LENS_RESULT__INIT;
  Stemedb__V1__LensResult *results[] = {&r, &empty};
  Stemedb__V1__QueryResponse q = STEMEDB__V1__QUERY_RESPONSE__INIT;
  q.n_results = 2;
  q.results = results;
  q.sequence = 9;
  json_t *j = stm_json_render_query_response(&q);
  json_t *res = json_object_get(j, "results");
  CU_ASSERT_EQUAL_FATAL(json_array_size(res), 2);
  json_t *r0 = json_array_get(res, 0);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r0, "concept_path")),
                         "test/cluster");
  CU_ASSERT_TRUE(json_is_true(json_object_get(r0, "value")));
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(r0, "candidates_count")),
                  3);
  CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(r0, "conflict_score")),
                         0.25, 0);
  json_t *w = json_object_get(r0, "winner");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(w, "hash")), HASH64);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(w, "source")),
                         "wiki://x");
  json_t *r1 = json_array_get(res, 1);
  CU_ASSERT_TRUE(json_is_null(json_object_get(r1, "winner")));
  CU_ASSERT_TRUE(json_is_null(json_object_get(r1, "value")));
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "sequence")), 9);
  json_decref(j);
}

static void test_assert_responses_render(void) {
  Stemedb__V1__AssertResponse r1 = STEMEDB__V1__ASSERT_RESPONSE__INIT;
  r1.hash = HASH64;
  r1.sequence = 5;
  r1.created = 1;
  char *s = dump(stm_json_render_assert_response(&r1));
  CU_ASSERT_STRING_EQUAL(s, "{\"hash\":\"" HASH64
                            "\",\"sequence\":5,\"created\":true}");
  free(s);
  Stemedb__V1__AssertResponse *rs[] = {&r1, &r1};
  Stemedb__V1__AssertBatchResponse b = STEMEDB__V1__ASSERT_BATCH_RESPONSE__INIT;
  b.n_results = 2;
  b.results = rs;
  json_t *j = stm_json_render_assert_batch_response(&b);
  CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "results")), 2);
  json_decref(j);
}

static void test_status_and_error_bodies_render(void) {
  Stemedb__V1__StatusResponse st = STEMEDB__V1__STATUS_RESPONSE__INIT;
  st.status = "healthy";
  st.assertion_count = 12;
  st.writable = 1;
  json_t *j = stm_json_render_status_response(&st);
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "assertion_count")),
                  12);
  CU_ASSERT_TRUE(json_is_true(json_object_get(j, "writable")));
  json_decref(j);
  char *s = dump(stm_json_render_error("NOT_FOUND", "no such claim", NULL));
  CU_ASSERT_STRING_EQUAL(
      s, "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"no such claim\"}}");
  free(s);
  s = dump(stm_json_render_error("INVALID_ARGUMENT", "m", "predicate"));
  CU_ASSERT_STRING_EQUAL(s, "{\"error\":{\"code\":\"INVALID_ARGUMENT\","
                            "\"message\":\"m\",\"field\":\"predicate\"}}");
  free(s);
}

static void test_dump_prints_doubles_that_read_back_exactly(void) {
  double values[] = {0.9, 1.0, 0.1 + 0.2, 1e300, -2.5e-7, 5e-324};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    json_t *j = json_pack("{s:f}", "x", values[i]);
    char *s = dump(j);
    json_t *back = json_loads(s, JSON_DECODE_INT_AS_REAL, NULL);
    CU_ASSERT_EQUAL(json_real_value(json_object_get(back, "x")), values[i]);
    json_decref(back);
    free(s);
  }
  char *s = dump(json_pack("[f,f]", 0.9, 0.25));
  CU_ASSERT_STRING_EQUAL(s, "[0.9,0.25]");
  free(s);
}

int main(void) {
  static const struct stm_test_case json_parse[] = {
      STM_TEST(test_json_parse_rejects_empty_and_malformed_bodies),
      STM_TEST(test_json_parse_rejects_invalid_utf8),
      STM_TEST(test_json_parse_names_the_field_with_a_nul),
      STM_TEST(test_json_parse_limited_depth_and_strings),
      STM_TEST(test_json_parse_limited_depth_around_escapes),
      STM_TEST(test_json_parse_rejects_numbers_out_of_range),
      STM_TEST(test_json_parse_accepts_an_object),
      STM_TEST_END};
  static const struct stm_test_case json_render[] = {
      STM_TEST(test_value_renders_each_kind),
      STM_TEST(test_assertion_renders_fields_and_omits_empty_optionals),
      STM_TEST(test_query_response_renders_results_with_winner),
      STM_TEST(test_assert_responses_render),
      STM_TEST(test_status_and_error_bodies_render),
      STM_TEST(test_dump_prints_doubles_that_read_back_exactly),
      STM_TEST_END};
  stm_test_suite("json_parse", json_parse);
  stm_test_suite("json_render", json_render);
  return stm_test_run_all();
}
