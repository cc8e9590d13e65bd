/* Tests for gateway/claims.c (JSON bodies -> requests: types and shapes)
 * and json/ (replies -> JSON). */
#include "gateway/resources.h"
#include "json/json.h"
#include "gateway_test.h"

#include "common/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *J(const char *text) {
  json_t *j = json_loads(text, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  return j;
}

/* Map `text` to an AssertRequest expecting failure on `field`. */
static void assert_rejects(const char *text, const char *field) {
  json_t *j = J(text);
  struct stm_error err;
  stm_error_clear(&err);
  Stemedb__V1__AssertRequest *m = (void *)1;
  CU_ASSERT_EQUAL(stm_gw_parse_assert_request(j, "", &m, &err), STM_EINVAL);
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT_STRING_EQUAL(err.field, field);
  /* The server's convention: the message begins with the field name. */
  CU_ASSERT_EQUAL(strncmp(err.message, field, strlen(field)), 0);
  json_decref(j);
}

static Stemedb__V1__AssertRequest *assert_maps(const char *text) {
  json_t *j = J(text);
  struct stm_error err;
  stm_error_clear(&err);
  Stemedb__V1__AssertRequest *m = NULL;
  int rc = stm_gw_parse_assert_request(j, "", &m, &err);
  if (rc)
    fprintf(stderr, "\nunexpected error for %s: %s\n", text, err.message);
  CU_ASSERT_EQUAL(rc, 0);
  json_decref(j);
  return m;
}

/* A JSON object {"concept_path":..,"predicate":..,"value":<value>}. */
static char *assert_body_with(const char *path, const char *pred,
                              const char *value) {
  size_t n = strlen(path) + strlen(pred) + strlen(value) + 64;
  char *s = malloc(n);
  snprintf(s, n, "{\"concept_path\":\"%s\",\"predicate\":\"%s\",\"value\":%s}",
           path, pred, value);
  return s;
}

static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

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
  const char nul[] = "{\"value\":\"a\\u0000b\"}";
  expect_parse_error(nul, sizeof nul - 1, "malformed JSON");
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

/* ---- JSON -> AssertRequest ----------------------------------------------- */

static void test_assert_maps_the_seed_request(void) {
  Stemedb__V1__AssertRequest *m = assert_maps(
      "{\"concept_path\": \"test/cluster\", \"predicate\": \"replicated\", "
      "\"value\": true}");
  CU_ASSERT_STRING_EQUAL(m->concept_path, "test/cluster");
  CU_ASSERT_STRING_EQUAL(m->predicate, "replicated");
  CU_ASSERT_EQUAL(m->value->kind_case, STEMEDB__V1__VALUE__KIND_BOOL_VALUE);
  CU_ASSERT_TRUE(m->value->bool_value);
  CU_ASSERT_STRING_EQUAL(m->source_id, "");
  CU_ASSERT_EQUAL(m->confidence_present_case,
                  STEMEDB__V1__ASSERT_REQUEST__CONFIDENCE_PRESENT__NOT_SET);
  CU_ASSERT_EQUAL(m->timestamp_ns, 0);
  CU_ASSERT_STRING_EQUAL(m->parent_hash, "");
  gw_test_free_msg(m);
}

static void test_assert_maps_every_value_kind(void) {
  Stemedb__V1__AssertRequest *m =
      assert_maps("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":"
                  "\"h\xc3\xa9llo\"}");
  CU_ASSERT_EQUAL(m->value->kind_case, STEMEDB__V1__VALUE__KIND_STRING_VALUE);
  CU_ASSERT_STRING_EQUAL(m->value->string_value, "h\xc3\xa9llo");
  gw_test_free_msg(m);
  m = assert_maps("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":42}");
  CU_ASSERT_EQUAL(m->value->kind_case, STEMEDB__V1__VALUE__KIND_NUMBER_VALUE);
  CU_ASSERT_DOUBLE_EQUAL(m->value->number_value, 42.0, 0);
  gw_test_free_msg(m);
  m = assert_maps(
      "{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":-2.5e-3}");
  CU_ASSERT_DOUBLE_EQUAL(m->value->number_value, -2.5e-3, 0);
  gw_test_free_msg(m);
  m = assert_maps(
      "{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":false}");
  CU_ASSERT_EQUAL(m->value->kind_case, STEMEDB__V1__VALUE__KIND_BOOL_VALUE);
  CU_ASSERT_FALSE(m->value->bool_value);
  gw_test_free_msg(m);
  m = assert_maps("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":"
                  "{\"ref\":\"drugs/aspirin\"}}");
  CU_ASSERT_EQUAL(m->value->kind_case, STEMEDB__V1__VALUE__KIND_REF_VALUE);
  CU_ASSERT_STRING_EQUAL(m->value->ref_value, "drugs/aspirin");
  gw_test_free_msg(m);
  m = assert_maps("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":"
                  "{\"ref\":\"" HASH64 "\"}}");
  CU_ASSERT_STRING_EQUAL(m->value->ref_value, HASH64);
  gw_test_free_msg(m);
  m = assert_maps(
      "{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":\"\"}");
  CU_ASSERT_STRING_EQUAL(m->value->string_value, "");
  gw_test_free_msg(m);
}

static void test_assert_maps_optional_fields(void) {
  Stemedb__V1__AssertRequest *m = assert_maps(
      "{\"concept_path\":\"drugs/aspirin\",\"predicate\":\"rdf:type\","
      "\"value\":1,\"source\":\"fda://label/1\",\"confidence\":0.25,"
      "\"parent_hash\":\"" HASH64 "\",\"timestamp_ns\":1700000000000000000}");
  CU_ASSERT_STRING_EQUAL(m->source_id, "fda://label/1");
  CU_ASSERT_EQUAL(m->confidence_present_case,
                  STEMEDB__V1__ASSERT_REQUEST__CONFIDENCE_PRESENT_CONFIDENCE);
  CU_ASSERT_DOUBLE_EQUAL(m->confidence, 0.25, 0);
  CU_ASSERT_STRING_EQUAL(m->parent_hash, HASH64);
  CU_ASSERT_EQUAL(m->timestamp_ns, 1700000000000000000LL);
  gw_test_free_msg(m);
  /* source_id is accepted too; a timestamp may be a string or a real. */
  m = assert_maps(
      "{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
      "\"source_id\":\"wiki://x\",\"source\":\"wiki://x\","
      "\"timestamp_ns\":\"-9223372036854775808\",\"confidence\":0}");
  CU_ASSERT_STRING_EQUAL(m->source_id, "wiki://x");
  CU_ASSERT_EQUAL(m->timestamp_ns, INT64_MIN);
  CU_ASSERT_EQUAL(m->confidence_present_case,
                  STEMEDB__V1__ASSERT_REQUEST__CONFIDENCE_PRESENT_CONFIDENCE);
  CU_ASSERT_DOUBLE_EQUAL(m->confidence, 0.0, 0);
  gw_test_free_msg(m);
  m = assert_maps("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                  "\"timestamp_ns\":1.5e9}");
  CU_ASSERT_EQUAL(m->timestamp_ns, 1500000000LL);
  gw_test_free_msg(m);
  char body[512];
  snprintf(body, sizeof body,
           "{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
           "\"signature\":\"%s%s\",\"public_key\":\"%s\"}",
           HASH64, HASH64, HASH64);
  m = assert_maps(body);
  CU_ASSERT_EQUAL(strlen(m->signature), 128);
  CU_ASSERT_STRING_EQUAL(m->public_key, HASH64);
  gw_test_free_msg(m);
}

static void test_assert_ignores_unknown_fields_and_nulls(void) {
  Stemedb__V1__AssertRequest *m = assert_maps(
      "{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":\"v\","
      "\"whatever\":[1,{\"x\":null}],\"source\":null,\"confidence\":null,"
      "\"parent_hash\":null,\"timestamp_ns\":null}");
  CU_ASSERT_STRING_EQUAL(m->source_id, "");
  CU_ASSERT_EQUAL(m->confidence_present_case,
                  STEMEDB__V1__ASSERT_REQUEST__CONFIDENCE_PRESENT__NOT_SET);
  gw_test_free_msg(m);
}

/* Issue 11: one set of rules, the server's. Missing or bad values map
 * as given; the server's INVALID_ARGUMENT names the field (test_routes.c
 * checks that answer, the integration tests the whole path). */
static void test_assert_leaves_values_to_the_server(void) {
  Stemedb__V1__AssertRequest *m = assert_maps("{}");
  CU_ASSERT_STRING_EQUAL(m->concept_path, "");
  CU_ASSERT_STRING_EQUAL(m->predicate, "");
  CU_ASSERT_PTR_NULL(m->value);
  gw_test_free_msg(m);
  m = assert_maps("{\"concept_path\":\"a//b\",\"predicate\":\"a/b\","
                  "\"value\":{\"ref\":\"not a path\"},\"confidence\":2,"
                  "\"parent_hash\":\"abc\",\"source\":\"has space\","
                  "\"signature\":\"zz\"}");
  CU_ASSERT_STRING_EQUAL(m->concept_path, "a//b");
  CU_ASSERT_STRING_EQUAL(m->predicate, "a/b");
  CU_ASSERT_STRING_EQUAL(m->value->ref_value, "not a path");
  CU_ASSERT_DOUBLE_EQUAL(m->confidence, 2.0, 0);
  CU_ASSERT_STRING_EQUAL(m->parent_hash, "abc");
  CU_ASSERT_STRING_EQUAL(m->source_id, "has space");
  CU_ASSERT_STRING_EQUAL(m->signature, "zz");
  CU_ASSERT_STRING_EQUAL(m->public_key, "");
  gw_test_free_msg(m);
  char *long_path = repeat('x', STM_MAX_CONCEPT_PATH + 1);
  char *body = assert_body_with(long_path, "p", "1");
  m = assert_maps(body);
  CU_ASSERT_EQUAL(strlen(m->concept_path), STM_MAX_CONCEPT_PATH + 1);
  gw_test_free_msg(m);
  free(body);
  free(long_path);
}

/* What cannot be carried into the request is refused here: two spellings
 * that disagree. (A NUL inside a string never gets this far: the body
 * parser refuses \u0000.) */
static void test_assert_refuses_what_cannot_be_carried(void) {
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"source\":\"a://x\",\"source_id\":\"b://y\"}",
                 "source");
}

static void test_assert_rejects_wrong_types(void) {
  assert_rejects("{\"concept_path\":5,\"predicate\":\"p\",\"value\":1}",
                 "concept_path");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":true,\"value\":1}",
                 "predicate");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":[1]}",
                 "value");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":{}}",
                 "value");
  assert_rejects(
      "{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":{\"ref\":1}}",
      "value");
  assert_rejects(
      "{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,\"source\":3}",
      "source");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"source_id\":[]}",
                 "source_id");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"confidence\":\"0.5\"}",
                 "confidence");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"timestamp_ns\":true}",
                 "timestamp_ns");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"timestamp_ns\":1.5}",
                 "timestamp_ns");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"timestamp_ns\":\"12abc\"}",
                 "timestamp_ns");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"parent_hash\":7}",
                 "parent_hash");
}

static void test_assert_rejects_out_of_range_timestamps(void) {
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"timestamp_ns\":\"9223372036854775808\"}",
                 "timestamp_ns");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"timestamp_ns\":1e19}",
                 "timestamp_ns");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"timestamp_ns\":\"\"}",
                 "timestamp_ns");
}

static void test_batch_maps_and_names_the_failing_element(void) {
  json_t *j = J("{\"assertions\":[{\"concept_path\":\"a\",\"predicate\":"
                "\"p\",\"value\":1},{\"concept_path\":\"b\",\"predicate\":"
                "\"q\",\"value\":\"x\",\"source\":\"s://1\"}]}");
  Stemedb__V1__AssertBatchRequest *m = NULL;
  CU_ASSERT_EQUAL(stm_gw_parse_assert_batch(j, &m, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(m->n_assertions, 2);
  CU_ASSERT_STRING_EQUAL(m->assertions[1]->source_id, "s://1");
  gw_test_free_msg(m);
  json_decref(j);

  j = J("{\"assertions\":[{\"concept_path\":\"a\",\"predicate\":\"p\","
        "\"value\":1},{\"concept_path\":\"b\",\"predicate\":5,\"value\":1},"
        "{\"concept_path\":\"c\",\"predicate\":\"p\",\"value\":1}]}");
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(stm_gw_parse_assert_batch(j, &m, &err), STM_EINVAL);
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT_STRING_EQUAL(err.field, "assertions[1].predicate");
  json_decref(j);

  j = J("{\"assertions\":[1]}");
  CU_ASSERT_EQUAL(stm_gw_parse_assert_batch(j, &m, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "assertions[0]");
  json_decref(j);
}

static void test_batch_rejects_missing_empty_and_non_arrays(void) {
  const char *bad[] = {"{}", "{\"assertions\":[]}", "{\"assertions\":{}}",
                       "{\"assertions\":\"x\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *j = J(bad[i]);
    struct stm_error err;
    stm_error_clear(&err);
    Stemedb__V1__AssertBatchRequest *m = NULL;
    CU_ASSERT_EQUAL(stm_gw_parse_assert_batch(j, &m, &err), STM_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.field, "assertions");
    json_decref(j);
  }
}

/* ---- JSON -> QueryRequest, GetRequest ------------------------------------ */

static void test_query_maps_every_field(void) {
  json_t *j = J("{\"concept_path\":\"test/cluster\",\"lens\":\"recency\","
                "\"predicate\":\"replicated\",\"as_of_sequence\":\"42\","
                "\"as_of_time_ns\":1700000000000000000,"
                "\"include_descendants\":true,\"limit\":10,"
                "\"current_epoch_only\":true,\"extra\":1}");
  Stemedb__V1__QueryRequest *m = NULL;
  CU_ASSERT_EQUAL_FATAL(stm_gw_parse_query_request(j, &m, NULL), 0);
  CU_ASSERT_STRING_EQUAL(m->concept_path, "test/cluster");
  CU_ASSERT_STRING_EQUAL(m->lens, "recency");
  CU_ASSERT_STRING_EQUAL(m->predicate, "replicated");
  CU_ASSERT_EQUAL(m->as_of_sequence, 42);
  CU_ASSERT_EQUAL(m->as_of_time_ns, 1700000000000000000LL);
  CU_ASSERT_TRUE(m->include_descendants);
  CU_ASSERT_EQUAL(m->limit, 10);
  CU_ASSERT_TRUE(m->current_epoch_only);
  gw_test_free_msg(m);
  json_decref(j);
  j = J("{\"concept_path\":\"a\"}");
  CU_ASSERT_EQUAL_FATAL(stm_gw_parse_query_request(j, &m, NULL), 0);
  CU_ASSERT_STRING_EQUAL(m->lens, "");
  CU_ASSERT_STRING_EQUAL(m->predicate, "");
  gw_test_free_msg(m);
  json_decref(j);
}

static void test_query_rejects_bad_fields(void) {
  const struct {
    const char *body, *field;
  } cases[] = {
      {"{\"concept_path\":5}", "concept_path"},
      {"{\"concept_path\":\"a\",\"predicate\":[]}", "predicate"},
      {"{\"concept_path\":\"a\",\"lens\":5}", "lens"},
      {"{\"concept_path\":\"a\",\"limit\":-1}", "limit"},
      {"{\"concept_path\":\"a\",\"limit\":4294967296}", "limit"},
      {"{\"concept_path\":\"a\",\"limit\":1.5}", "limit"},
      {"{\"concept_path\":\"a\",\"as_of_sequence\":-1}", "as_of_sequence"},
      {"{\"concept_path\":\"a\",\"as_of_sequence\":\"-1\"}", "as_of_sequence"},
      {"{\"concept_path\":\"a\",\"as_of_sequence\":\"18446744073709551616\"}",
       "as_of_sequence"},
      {"{\"concept_path\":\"a\",\"as_of_time_ns\":0.5}", "as_of_time_ns"},
      {"{\"concept_path\":\"a\",\"include_descendants\":\"yes\"}",
       "include_descendants"},
      {"{\"concept_path\":\"a\",\"current_epoch_only\":1}",
       "current_epoch_only"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *j = J(cases[i].body);
    struct stm_error err;
    stm_error_clear(&err);
    Stemedb__V1__QueryRequest *m = NULL;
    CU_ASSERT_EQUAL(stm_gw_parse_query_request(j, &m, &err), STM_EINVAL);
    CU_ASSERT_PTR_NULL(m);
    if (strcmp(err.field, cases[i].field) != 0)
      fprintf(stderr, "\n%s: field '%s'\n", cases[i].body, err.field);
    CU_ASSERT_STRING_EQUAL(err.field, cases[i].field);
    json_decref(j);
  }
}

static void test_get_request_parses_its_numbers(void) {
  Stemedb__V1__GetRequest *m = NULL;
  CU_ASSERT_EQUAL(stm_gw_parse_get_request(HASH64, 64, "7", "9", &m, NULL), 0);
  CU_ASSERT_STRING_EQUAL(m->hash, HASH64);
  CU_ASSERT_EQUAL(m->as_of_sequence, 7);
  CU_ASSERT_EQUAL(m->as_of_time_ns, 9);
  gw_test_free_msg(m);
  struct stm_error err;
  stm_error_clear(&err);
  /* The hash and the time are the server's to judge. */
  CU_ASSERT_EQUAL(stm_gw_parse_get_request("abc", 3, NULL, "-1", &m, &err), 0);
  CU_ASSERT_STRING_EQUAL(m->hash, "abc");
  gw_test_free_msg(m);
  CU_ASSERT_EQUAL(stm_gw_parse_get_request(HASH64, 64, "x", NULL, &m, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "as_of_sequence");
}

static void test_parse_int_checks_syntax_and_bounds(void) {
  int64_t v;
  uint64_t u;
  CU_ASSERT_EQUAL(stm_gw_parse_int("f", "-12", 3, -100, 100, &v, NULL), 0);
  CU_ASSERT_EQUAL(v, -12);
  CU_ASSERT_EQUAL(stm_gw_parse_int("f", "101", 3, -100, 100, &v, NULL),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_gw_parse_int("f", "+1", 2, -100, 100, &v, NULL),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_gw_parse_int("f", "-", 1, -100, 100, &v, NULL),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_gw_parse_int("f", " 1", 2, -100, 100, &v, NULL),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_gw_parse_uint("f", "18446744073709551615", 20, &u, NULL),
                  0);
  CU_ASSERT_EQUAL(u, UINT64_MAX);
  CU_ASSERT_EQUAL(stm_gw_parse_uint("f", "18446744073709551616", 20, &u, NULL),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_gw_parse_uint("f", "12", 1, &u, NULL), 0);
  CU_ASSERT_EQUAL(u, 1); /* length-bounded: need not be NUL-terminated */
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

void gw_test_register_json_map(void) {
  static const struct stm_test_case json_parse[] = {
      STM_TEST(test_json_parse_rejects_empty_and_malformed_bodies),
      STM_TEST(test_json_parse_rejects_invalid_utf8),
      STM_TEST(test_json_parse_rejects_numbers_out_of_range),
      STM_TEST(test_json_parse_accepts_an_object), STM_TEST_END};
  static const struct stm_test_case json_requests[] = {
      STM_TEST(test_assert_maps_the_seed_request),
      STM_TEST(test_assert_maps_every_value_kind),
      STM_TEST(test_assert_maps_optional_fields),
      STM_TEST(test_assert_ignores_unknown_fields_and_nulls),
      STM_TEST(test_assert_leaves_values_to_the_server),
      STM_TEST(test_assert_refuses_what_cannot_be_carried),
      STM_TEST(test_assert_rejects_wrong_types),
      STM_TEST(test_assert_rejects_out_of_range_timestamps),
      STM_TEST(test_batch_maps_and_names_the_failing_element),
      STM_TEST(test_batch_rejects_missing_empty_and_non_arrays),
      STM_TEST(test_query_maps_every_field),
      STM_TEST(test_query_rejects_bad_fields),
      STM_TEST(test_get_request_parses_its_numbers),
      STM_TEST(test_parse_int_checks_syntax_and_bounds),
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
  stm_test_suite("json_requests", json_requests);
  stm_test_suite("json_render", json_render);
}
