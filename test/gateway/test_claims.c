/* Tests for gateway/claims.c: JSON bodies -> requests (types and shapes;
 * the server validates values). json/ has test/json. */
#include "gateway/resources.h"
#include "gateway_test.h"
#include "json/json.h"

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

void gw_test_register_json_map(void) {
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
  stm_test_suite("json_requests", json_requests);
}
