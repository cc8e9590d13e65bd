/* Tests for gateway/: JSON mapping both ways, the status table, the route
 * table and its responders, metrics, listen addresses and the async
 * upstream against servers that are down or mute. */
#include "gateway/http.h"
#include "gateway/json_map.h"
#include "gateway/metrics.h"
#include "gateway/routes.h"
#include "gateway/status_map.h"
#include "gateway/upstream.h"
#include "harness.h"

#include "common/validate.h"

#include <arpa/inet.h>
#include <grpc/grpc.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HASH64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

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
  CU_ASSERT_EQUAL(stm_gw_json_to_assert_request(j, "", &m, &err), STM_EINVAL);
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
  int rc = stm_gw_json_to_assert_request(j, "", &m, &err);
  if (rc)
    fprintf(stderr, "\nunexpected error for %s: %s\n", text, err.message);
  CU_ASSERT_EQUAL(rc, 0);
  json_decref(j);
  return m;
}

static void free_msg(void *m) {
  if (m)
    protobuf_c_message_free_unpacked(m, NULL);
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

/* ---- parsing a body --------------------------------------------------- */

static void expect_parse_error(const char *body, size_t len,
                               const char *needle) {
  struct stm_error err;
  stm_error_clear(&err);
  json_t *j = (void *)1;
  CU_ASSERT_EQUAL(stm_gw_json_parse(body, len, &j, &err), STM_EINVAL);
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
  CU_ASSERT_EQUAL(stm_gw_json_parse(ok, sizeof ok - 1, &j, NULL), 0);
  CU_ASSERT_TRUE(json_is_object(j));
  json_decref(j);
}

/* ---- JSON -> AssertRequest -------------------------------------------- */

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
  free_msg(m);
}

static void test_assert_maps_every_value_kind(void) {
  Stemedb__V1__AssertRequest *m =
      assert_maps("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":"
                  "\"h\xc3\xa9llo\"}");
  CU_ASSERT_EQUAL(m->value->kind_case, STEMEDB__V1__VALUE__KIND_STRING_VALUE);
  CU_ASSERT_STRING_EQUAL(m->value->string_value, "h\xc3\xa9llo");
  free_msg(m);
  m = assert_maps("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":42}");
  CU_ASSERT_EQUAL(m->value->kind_case, STEMEDB__V1__VALUE__KIND_NUMBER_VALUE);
  CU_ASSERT_DOUBLE_EQUAL(m->value->number_value, 42.0, 0);
  free_msg(m);
  m = assert_maps(
      "{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":-2.5e-3}");
  CU_ASSERT_DOUBLE_EQUAL(m->value->number_value, -2.5e-3, 0);
  free_msg(m);
  m = assert_maps(
      "{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":false}");
  CU_ASSERT_EQUAL(m->value->kind_case, STEMEDB__V1__VALUE__KIND_BOOL_VALUE);
  CU_ASSERT_FALSE(m->value->bool_value);
  free_msg(m);
  m = assert_maps("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":"
                  "{\"ref\":\"drugs/aspirin\"}}");
  CU_ASSERT_EQUAL(m->value->kind_case, STEMEDB__V1__VALUE__KIND_REF_VALUE);
  CU_ASSERT_STRING_EQUAL(m->value->ref_value, "drugs/aspirin");
  free_msg(m);
  m = assert_maps("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":"
                  "{\"ref\":\"" HASH64 "\"}}");
  CU_ASSERT_STRING_EQUAL(m->value->ref_value, HASH64);
  free_msg(m);
  m = assert_maps("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":\"\"}");
  CU_ASSERT_STRING_EQUAL(m->value->string_value, "");
  free_msg(m);
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
  free_msg(m);
  /* source_id is accepted too; a timestamp may be a string or a real. */
  m = assert_maps("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                  "\"source_id\":\"wiki://x\",\"source\":\"wiki://x\","
                  "\"timestamp_ns\":\"-9223372036854775808\",\"confidence\":0}");
  CU_ASSERT_STRING_EQUAL(m->source_id, "wiki://x");
  CU_ASSERT_EQUAL(m->timestamp_ns, INT64_MIN);
  CU_ASSERT_EQUAL(m->confidence_present_case,
                  STEMEDB__V1__ASSERT_REQUEST__CONFIDENCE_PRESENT_CONFIDENCE);
  CU_ASSERT_DOUBLE_EQUAL(m->confidence, 0.0, 0);
  free_msg(m);
  m = assert_maps("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                  "\"timestamp_ns\":1.5e9}");
  CU_ASSERT_EQUAL(m->timestamp_ns, 1500000000LL);
  free_msg(m);
  char body[512];
  snprintf(body, sizeof body,
           "{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
           "\"signature\":\"%s%s\",\"public_key\":\"%s\"}",
           HASH64, HASH64, HASH64);
  m = assert_maps(body);
  CU_ASSERT_EQUAL(strlen(m->signature), 128);
  CU_ASSERT_STRING_EQUAL(m->public_key, HASH64);
  free_msg(m);
}

static void test_assert_ignores_unknown_fields_and_nulls(void) {
  Stemedb__V1__AssertRequest *m = assert_maps(
      "{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":\"v\","
      "\"whatever\":[1,{\"x\":null}],\"source\":null,\"confidence\":null,"
      "\"parent_hash\":null,\"timestamp_ns\":null}");
  CU_ASSERT_STRING_EQUAL(m->source_id, "");
  CU_ASSERT_EQUAL(m->confidence_present_case,
                  STEMEDB__V1__ASSERT_REQUEST__CONFIDENCE_PRESENT__NOT_SET);
  free_msg(m);
}

static void test_assert_rejects_missing_fields(void) {
  assert_rejects("{\"predicate\":\"p\",\"value\":1}", "concept_path");
  assert_rejects("{\"concept_path\":\"a\",\"value\":1}", "predicate");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\"}", "value");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":null}",
                 "value");
  assert_rejects("{}", "concept_path");
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

static void test_assert_rejects_bad_paths_and_predicates(void) {
  assert_rejects("{\"concept_path\":\"\",\"predicate\":\"p\",\"value\":1}",
                 "concept_path");
  assert_rejects("{\"concept_path\":\"a//b\",\"predicate\":\"p\",\"value\":1}",
                 "concept_path");
  assert_rejects("{\"concept_path\":\"a b\",\"predicate\":\"p\",\"value\":1}",
                 "concept_path");
  assert_rejects("{\"concept_path\":\"/a\",\"predicate\":\"p\",\"value\":1}",
                 "concept_path");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"\",\"value\":1}",
                 "predicate");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"a/b\",\"value\":1}",
                 "predicate");
  char *longest = repeat('x', STM_MAX_CONCEPT_PATH);
  char *body = assert_body_with(longest, "p", "1");
  free_msg(assert_maps(body));
  free(body);
  free(longest);
  char *too_long = repeat('x', STM_MAX_CONCEPT_PATH + 1);
  body = assert_body_with(too_long, "p", "1");
  assert_rejects(body, "concept_path");
  free(body);
  free(too_long);
  char segments[100] = "";
  for (int i = 0; i < STM_MAX_PATH_SEGMENTS + 1; i++)
    strcat(segments, i ? "/s" : "s");
  body = assert_body_with(segments, "p", "1");
  assert_rejects(body, "concept_path");
  free(body);
  char *pred = repeat('p', STM_MAX_PREDICATE);
  body = assert_body_with("a", pred, "1");
  free_msg(assert_maps(body));
  free(body);
  free(pred);
  pred = repeat('p', STM_MAX_PREDICATE + 1);
  body = assert_body_with("a", pred, "1");
  assert_rejects(body, "predicate");
  free(body);
  free(pred);
}

static void test_assert_limits_string_values(void) {
  char *big = repeat('v', STM_MAX_STRING_VALUE);
  char *quoted = malloc(STM_MAX_STRING_VALUE + 4);
  snprintf(quoted, STM_MAX_STRING_VALUE + 4, "\"%s\"", big);
  char *body = assert_body_with("a", "p", quoted);
  free_msg(assert_maps(body));
  free(body);
  free(quoted);
  free(big);
  big = repeat('v', STM_MAX_STRING_VALUE + 1);
  quoted = malloc(STM_MAX_STRING_VALUE + 5);
  snprintf(quoted, STM_MAX_STRING_VALUE + 5, "\"%s\"", big);
  body = assert_body_with("a", "p", quoted);
  assert_rejects(body, "value");
  free(body);
  free(quoted);
  free(big);
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":"
                 "{\"ref\":\"not a path\"}}",
                 "value");
}

static void test_assert_rejects_confidence_out_of_range(void) {
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"confidence\":-0.1}",
                 "confidence");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"confidence\":1.0001}",
                 "confidence");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"confidence\":2}",
                 "confidence");
}

static void test_assert_rejects_bad_hashes_sources_and_signatures(void) {
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"parent_hash\":\"abc\"}",
                 "parent_hash");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"source\":\"has space\"}",
                 "source");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"source\":\"a://x\",\"source_id\":\"b://y\"}",
                 "source");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"signature\":\"" HASH64 HASH64 "\"}",
                 "public_key");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"signature\":\"zz\",\"public_key\":\"" HASH64 "\"}",
                 "signature");
  assert_rejects("{\"concept_path\":\"a\",\"predicate\":\"p\",\"value\":1,"
                 "\"signature\":\"" HASH64 HASH64 "\",\"public_key\":\"ab\"}",
                 "public_key");
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
  CU_ASSERT_EQUAL(stm_gw_json_to_assert_batch(j, &m, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(m->n_assertions, 2);
  CU_ASSERT_STRING_EQUAL(m->assertions[1]->source_id, "s://1");
  free_msg(m);
  json_decref(j);

  j = J("{\"assertions\":[{\"concept_path\":\"a\",\"predicate\":\"p\","
        "\"value\":1},{\"concept_path\":\"b\",\"predicate\":\"\",\"value\":1},"
        "{\"concept_path\":\"c\",\"predicate\":\"p\",\"value\":1}]}");
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(stm_gw_json_to_assert_batch(j, &m, &err), STM_EINVAL);
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT_STRING_EQUAL(err.field, "assertions[1].predicate");
  json_decref(j);

  j = J("{\"assertions\":[1]}");
  CU_ASSERT_EQUAL(stm_gw_json_to_assert_batch(j, &m, &err), STM_EINVAL);
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
    CU_ASSERT_EQUAL(stm_gw_json_to_assert_batch(j, &m, &err), STM_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.field, "assertions");
    json_decref(j);
  }
}

/* ---- JSON -> QueryRequest, GetRequest ---------------------------------- */

static void test_query_maps_every_field(void) {
  json_t *j = J("{\"concept_path\":\"test/cluster\",\"lens\":\"recency\","
                "\"predicate\":\"replicated\",\"as_of_sequence\":\"42\","
                "\"as_of_time_ns\":1700000000000000000,"
                "\"include_descendants\":true,\"limit\":10,"
                "\"current_epoch_only\":true,\"extra\":1}");
  Stemedb__V1__QueryRequest *m = NULL;
  CU_ASSERT_EQUAL_FATAL(stm_gw_json_to_query_request(j, &m, NULL), 0);
  CU_ASSERT_STRING_EQUAL(m->concept_path, "test/cluster");
  CU_ASSERT_STRING_EQUAL(m->lens, "recency");
  CU_ASSERT_STRING_EQUAL(m->predicate, "replicated");
  CU_ASSERT_EQUAL(m->as_of_sequence, 42);
  CU_ASSERT_EQUAL(m->as_of_time_ns, 1700000000000000000LL);
  CU_ASSERT_TRUE(m->include_descendants);
  CU_ASSERT_EQUAL(m->limit, 10);
  CU_ASSERT_TRUE(m->current_epoch_only);
  free_msg(m);
  json_decref(j);
  j = J("{\"concept_path\":\"a\"}");
  CU_ASSERT_EQUAL_FATAL(stm_gw_json_to_query_request(j, &m, NULL), 0);
  CU_ASSERT_STRING_EQUAL(m->lens, "");
  CU_ASSERT_STRING_EQUAL(m->predicate, "");
  free_msg(m);
  json_decref(j);
}

static void test_query_rejects_bad_fields(void) {
  const struct {
    const char *body, *field;
  } cases[] = {
      {"{\"lens\":\"recency\"}", "concept_path"},
      {"{\"concept_path\":\"a b\"}", "concept_path"},
      {"{\"concept_path\":\"a\",\"predicate\":\"a/b\"}", "predicate"},
      {"{\"concept_path\":\"a\",\"lens\":5}", "lens"},
      {"{\"concept_path\":\"a\",\"limit\":-1}", "limit"},
      {"{\"concept_path\":\"a\",\"limit\":4294967296}", "limit"},
      {"{\"concept_path\":\"a\",\"limit\":1.5}", "limit"},
      {"{\"concept_path\":\"a\",\"as_of_sequence\":-1}", "as_of_sequence"},
      {"{\"concept_path\":\"a\",\"as_of_sequence\":\"-1\"}", "as_of_sequence"},
      {"{\"concept_path\":\"a\",\"as_of_sequence\":\"18446744073709551616\"}",
       "as_of_sequence"},
      {"{\"concept_path\":\"a\",\"as_of_time_ns\":-5}", "as_of_time_ns"},
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
    CU_ASSERT_EQUAL(stm_gw_json_to_query_request(j, &m, &err), STM_EINVAL);
    CU_ASSERT_PTR_NULL(m);
    if (strcmp(err.field, cases[i].field) != 0)
      fprintf(stderr, "\n%s: field '%s'\n", cases[i].body, err.field);
    CU_ASSERT_STRING_EQUAL(err.field, cases[i].field);
    json_decref(j);
  }
}

static void test_get_request_validates_hash_and_as_of(void) {
  Stemedb__V1__GetRequest *m = NULL;
  CU_ASSERT_EQUAL(stm_gw_get_request_new(HASH64, 64, "7", "9", &m, NULL), 0);
  CU_ASSERT_STRING_EQUAL(m->hash, HASH64);
  CU_ASSERT_EQUAL(m->as_of_sequence, 7);
  CU_ASSERT_EQUAL(m->as_of_time_ns, 9);
  free_msg(m);
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(stm_gw_get_request_new("abc", 3, NULL, NULL, &m, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "hash");
  CU_ASSERT_EQUAL(stm_gw_get_request_new(HASH64, 64, "x", NULL, &m, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "as_of_sequence");
  CU_ASSERT_EQUAL(stm_gw_get_request_new(HASH64, 64, NULL, "-1", &m, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "as_of_time_ns");
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

/* ---- messages -> JSON -------------------------------------------------- */

static char *dump(json_t *j) {
  char *s = stm_gw_json_dump(j, NULL);
  json_decref(j);
  return s;
}

static void test_value_renders_each_kind(void) {
  Stemedb__V1__Value v = STEMEDB__V1__VALUE__INIT;
  char *s = dump(stm_gw_value_to_json(&v));
  CU_ASSERT_STRING_EQUAL(s, "null");
  free(s);
  v.kind_case = STEMEDB__V1__VALUE__KIND_STRING_VALUE;
  v.string_value = "x\"y";
  s = dump(stm_gw_value_to_json(&v));
  CU_ASSERT_STRING_EQUAL(s, "\"x\\\"y\"");
  free(s);
  v.kind_case = STEMEDB__V1__VALUE__KIND_NUMBER_VALUE;
  v.number_value = 0.9;
  s = dump(stm_gw_value_to_json(&v));
  CU_ASSERT_STRING_EQUAL(s, "0.9");
  free(s);
  v.kind_case = STEMEDB__V1__VALUE__KIND_BOOL_VALUE;
  v.bool_value = 1;
  s = dump(stm_gw_value_to_json(&v));
  CU_ASSERT_STRING_EQUAL(s, "true");
  free(s);
  v.kind_case = STEMEDB__V1__VALUE__KIND_REF_VALUE;
  v.ref_value = "a/b";
  s = dump(stm_gw_value_to_json(&v));
  CU_ASSERT_STRING_EQUAL(s, "{\"ref\":\"a/b\"}");
  free(s);
  s = dump(stm_gw_value_to_json(NULL));
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
  json_t *j = stm_gw_assertion_to_json(&a);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "hash")),
                         HASH64);
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
  j = stm_gw_assertion_to_json(&a);
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
  json_t *j = stm_gw_query_response_to_json(&q);
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
  char *s = dump(stm_gw_assert_response_to_json(&r1));
  CU_ASSERT_STRING_EQUAL(s, "{\"hash\":\"" HASH64
                            "\",\"sequence\":5,\"created\":true}");
  free(s);
  Stemedb__V1__AssertResponse *rs[] = {&r1, &r1};
  Stemedb__V1__AssertBatchResponse b = STEMEDB__V1__ASSERT_BATCH_RESPONSE__INIT;
  b.n_results = 2;
  b.results = rs;
  json_t *j = stm_gw_assert_batch_response_to_json(&b);
  CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "results")), 2);
  json_decref(j);
}

static void test_status_and_error_bodies_render(void) {
  Stemedb__V1__StatusResponse st = STEMEDB__V1__STATUS_RESPONSE__INIT;
  st.status = "healthy";
  st.assertion_count = 12;
  st.writable = 1;
  json_t *j = stm_gw_status_response_to_json(&st);
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "assertion_count")),
                  12);
  CU_ASSERT_TRUE(json_is_true(json_object_get(j, "writable")));
  json_decref(j);
  char *s = dump(stm_gw_error_json("NOT_FOUND", "no such claim", NULL));
  CU_ASSERT_STRING_EQUAL(
      s, "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"no such claim\"}}");
  free(s);
  s = dump(stm_gw_error_json("INVALID_ARGUMENT", "m", "predicate"));
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

/* ---- the status table -------------------------------------------------- */

static void test_status_table_maps_every_grpc_code(void) {
  const struct {
    grpc_status_code code;
    int http;
    const char *name;
  } want[] = {
      {GRPC_STATUS_OK, 200, "OK"},
      {GRPC_STATUS_CANCELLED, 499, "CANCELLED"},
      {GRPC_STATUS_UNKNOWN, 500, "UNKNOWN"},
      {GRPC_STATUS_INVALID_ARGUMENT, 400, "INVALID_ARGUMENT"},
      {GRPC_STATUS_DEADLINE_EXCEEDED, 504, "DEADLINE_EXCEEDED"},
      {GRPC_STATUS_NOT_FOUND, 404, "NOT_FOUND"},
      {GRPC_STATUS_ALREADY_EXISTS, 409, "ALREADY_EXISTS"},
      {GRPC_STATUS_PERMISSION_DENIED, 403, "PERMISSION_DENIED"},
      {GRPC_STATUS_RESOURCE_EXHAUSTED, 429, "RESOURCE_EXHAUSTED"},
      {GRPC_STATUS_FAILED_PRECONDITION, 400, "FAILED_PRECONDITION"},
      {GRPC_STATUS_ABORTED, 409, "ABORTED"},
      {GRPC_STATUS_OUT_OF_RANGE, 400, "OUT_OF_RANGE"},
      {GRPC_STATUS_UNIMPLEMENTED, 501, "UNIMPLEMENTED"},
      {GRPC_STATUS_INTERNAL, 500, "INTERNAL"},
      {GRPC_STATUS_UNAVAILABLE, 503, "UNAVAILABLE"},
      {GRPC_STATUS_DATA_LOSS, 500, "DATA_LOSS"},
      {GRPC_STATUS_UNAUTHENTICATED, 401, "UNAUTHENTICATED"},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    CU_ASSERT_EQUAL(stm_gw_http_status(want[i].code), want[i].http);
    CU_ASSERT_STRING_EQUAL(stm_gw_code_name(want[i].code), want[i].name);
  }
  CU_ASSERT_EQUAL(stm_gw_http_status((grpc_status_code)99), 500);
  CU_ASSERT_STRING_EQUAL(stm_gw_code_name((grpc_status_code)-1), "UNKNOWN");
}

/* ---- routes -------------------------------------------------------------- */

static const struct stm_gw_route *match(enum stm_gw_listener l,
                                        enum stm_gw_method m, const char *path,
                                        char *param, unsigned *allowed) {
  const char *p = NULL;
  size_t plen = 0;
  unsigned a = 0;
  const struct stm_gw_route *r = stm_gw_route_match(l, m, path, &p, &plen, &a);
  if (param) {
    memcpy(param, p ? p : "", plen);
    param[plen] = '\0';
  }
  if (allowed)
    *allowed = a;
  return r;
}

static void test_routes_match_fixed_paths(void) {
  const struct {
    enum stm_gw_method m;
    const char *path, *rpc;
  } cases[] = {
      {STM_GW_GET, "/v1/health", "/stemedb.v1.StemeDB/Status"},
      {STM_GW_GET, "/v1/status", "/stemedb.v1.StemeDB/Status"},
      {STM_GW_POST, "/v1/assert", "/stemedb.v1.StemeDB/Assert"},
      {STM_GW_POST, "/v1/assert/batch", "/stemedb.v1.StemeDB/AssertBatch"},
      {STM_GW_POST, "/v1/query", "/stemedb.v1.StemeDB/Query"},
      {STM_GW_GET, "/metrics", "/stemedb.v1.StemeDB/Metrics"},
      {STM_GW_GET, "/v1/health/", "/stemedb.v1.StemeDB/Status"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct stm_gw_route *r =
        match(STM_GW_LISTENER_API, cases[i].m, cases[i].path, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(r->rpc, cases[i].rpc);
  }
}

static void test_routes_capture_the_path_parameter(void) {
  char param[300];
  const struct stm_gw_route *r = match(
      STM_GW_LISTENER_API, STM_GW_GET, "/v1/assertions/" HASH64, param, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->pattern, "/v1/assertions/{hash}");
  CU_ASSERT_STRING_EQUAL(param, HASH64);
  r = match(STM_GW_LISTENER_API, STM_GW_GET, "/v1/assertions/abc/", param,
            NULL);
  CU_ASSERT_PTR_NOT_NULL(r);
  CU_ASSERT_STRING_EQUAL(param, "abc");
  unsigned allowed = 1;
  CU_ASSERT_PTR_NULL(match(STM_GW_LISTENER_API, STM_GW_GET, "/v1/assertions/",
                           NULL, &allowed));
  CU_ASSERT_EQUAL(allowed, 0);
  CU_ASSERT_PTR_NULL(match(STM_GW_LISTENER_API, STM_GW_GET,
                           "/v1/assertions/a/b", NULL, &allowed));
  CU_ASSERT_EQUAL(allowed, 0);
}

static void test_routes_report_allowed_methods_for_405(void) {
  unsigned allowed = 0;
  CU_ASSERT_PTR_NULL(
      match(STM_GW_LISTENER_API, STM_GW_DELETE, "/v1/assert", NULL, &allowed));
  CU_ASSERT_EQUAL(allowed, STM_GW_POST);
  CU_ASSERT_PTR_NULL(
      match(STM_GW_LISTENER_API, STM_GW_POST, "/v1/health", NULL, &allowed));
  CU_ASSERT_EQUAL(allowed, STM_GW_GET);
  char allow[64];
  stm_gw_allow_header(STM_GW_GET | STM_GW_HEAD | STM_GW_POST, allow,
                      sizeof allow);
  CU_ASSERT_STRING_EQUAL(allow, "GET, POST, HEAD");
  stm_gw_allow_header(0, allow, sizeof allow);
  CU_ASSERT_STRING_EQUAL(allow, "");
}

static void test_routes_keep_listeners_apart(void) {
  unsigned allowed = 1;
  CU_ASSERT_PTR_NULL(match(STM_GW_LISTENER_API, STM_GW_GET, "/cluster/members",
                           NULL, &allowed));
  CU_ASSERT_EQUAL(allowed, 0);
  CU_ASSERT_PTR_NULL(
      match(STM_GW_LISTENER_CLUSTER, STM_GW_GET, "/v1/health", NULL, &allowed));
  CU_ASSERT_EQUAL(allowed, 0);
  const char *cluster[] = {"/cluster/members", "/cluster/health",
                           "/cluster/shards"};
  for (size_t i = 0; i < 3; i++)
    CU_ASSERT_PTR_NOT_NULL(match(STM_GW_LISTENER_CLUSTER, STM_GW_GET,
                                 cluster[i], NULL, NULL));
  const char *admin[] = {"/cluster/sync", "/admin/shards/rebalance",
                         "/admin/cluster/remove"};
  for (size_t i = 0; i < 3; i++)
    CU_ASSERT_PTR_NOT_NULL(match(STM_GW_LISTENER_CLUSTER, STM_GW_POST,
                                 admin[i], NULL, NULL));
  CU_ASSERT_PTR_NULL(match(STM_GW_LISTENER_API, STM_GW_GET, "/", NULL, NULL));
  CU_ASSERT_PTR_NULL(
      match(STM_GW_LISTENER_API, STM_GW_GET, "/v1/healthz", NULL, NULL));
  CU_ASSERT_PTR_NULL(
      match(STM_GW_LISTENER_API, STM_GW_GET, "/v1/healt", NULL, NULL));
}

static void test_every_route_is_complete_and_unique(void) {
  size_t n;
  const struct stm_gw_route *r = stm_gw_routes(&n);
  CU_ASSERT_TRUE(n >= 13);
  for (size_t i = 0; i < n; i++) {
    CU_ASSERT_TRUE(r[i].rpc == NULL || (r[i].build && r[i].request &&
                                        r[i].reply &&
                                        (r[i].render || r[i].respond)));
    CU_ASSERT_TRUE(r[i].rpc != NULL || r[i].respond != NULL);
    CU_ASSERT_EQUAL(r[i].body, r[i].method == STM_GW_POST);
    for (size_t k = 0; k < i; k++)
      CU_ASSERT_FALSE(r[k].listener == r[i].listener &&
                      r[k].method == r[i].method &&
                      strcmp(r[k].pattern, r[i].pattern) == 0);
  }
  CU_ASSERT_EQUAL(stm_gw_method_parse("PATCH"), STM_GW_PATCH);
  CU_ASSERT_EQUAL(stm_gw_method_parse("BREW"), STM_GW_OTHER);
  CU_ASSERT_STRING_EQUAL(stm_gw_method_name(STM_GW_OPTIONS), "OPTIONS");
}

static void test_field_is_derived_from_server_messages(void) {
  char f[96];
  const ProtobufCMessageDescriptor *ar = &stemedb__v1__assert_request__descriptor;
  const ProtobufCMessageDescriptor *br =
      &stemedb__v1__assert_batch_request__descriptor;
  CU_ASSERT_TRUE(stm_gw_field_from_message(
      ar, "concept_path must not be empty", f, sizeof f));
  CU_ASSERT_STRING_EQUAL(f, "concept_path");
  CU_ASSERT_TRUE(stm_gw_field_from_message(
      br, "assertions[2].predicate has an invalid character", f, sizeof f));
  CU_ASSERT_STRING_EQUAL(f, "assertions[2].predicate");
  CU_ASSERT_TRUE(stm_gw_field_from_message(
      &stemedb__v1__query_request__descriptor, "lens: unknown lens \"magic\"",
      f, sizeof f));
  CU_ASSERT_STRING_EQUAL(f, "lens");
  CU_ASSERT_TRUE(
      stm_gw_field_from_message(ar, "value.ref_value is bad", f, sizeof f));
  CU_ASSERT_FALSE(
      stm_gw_field_from_message(ar, "cannot parse the request", f, sizeof f));
  CU_ASSERT_FALSE(stm_gw_field_from_message(ar, "concept_path.x is bad", f,
                                            sizeof f));
  CU_ASSERT_FALSE(
      stm_gw_field_from_message(ar, "predicate[1] is bad", f, sizeof f));
  CU_ASSERT_FALSE(stm_gw_field_from_message(br, "assertions[x].predicate bad",
                                            f, sizeof f));
  CU_ASSERT_FALSE(stm_gw_field_from_message(ar, "", f, sizeof f));
  CU_ASSERT_FALSE(stm_gw_field_from_message(NULL, "concept_path is bad", f,
                                            sizeof f));
  CU_ASSERT_FALSE(
      stm_gw_field_from_message(ar, "predicate-bad is wrong", f, sizeof f));
}

static void test_query_values_are_found_by_name(void) {
  char buf[8];
  CU_ASSERT_STRING_EQUAL(
      stm_gw_query_value("a=1&as_of_sequence=42", "as_of_sequence", buf,
                         sizeof buf),
      "42");
  CU_ASSERT_STRING_EQUAL(stm_gw_query_value("x=&y=2", "x", buf, sizeof buf),
                         "");
  CU_ASSERT_PTR_NULL(stm_gw_query_value("ab=1", "a", buf, sizeof buf));
  CU_ASSERT_PTR_NULL(stm_gw_query_value("", "a", buf, sizeof buf));
  CU_ASSERT_PTR_NULL(stm_gw_query_value("a=123456789", "a", buf, sizeof buf));
}

/* ---- responders ---------------------------------------------------------- */

static const struct stm_gw_route *route_for(enum stm_gw_method m,
                                            const char *path) {
  return match(STM_GW_LISTENER_API, m, path, NULL, NULL);
}

static json_t *response_json(const struct stm_gw_response *r) {
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL(j);
  return j;
}

static const struct stm_gw_env test_env = {"127.0.0.1:18182", NULL};

static void test_responses_map_grpc_failures(void) {
  const struct stm_gw_route *r = route_for(STM_GW_POST, "/v1/assert");
  struct stm_gw_response out = {0};
  struct stm_gw_reply rep = {GRPC_STATUS_UNAVAILABLE, "connection refused",
                             NULL};
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 503);
  CU_ASSERT_STRING_EQUAL(out.content_type, "application/json");
  json_t *j = response_json(&out);
  json_t *e = json_object_get(j, "error");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "code")),
                         "UNAVAILABLE");
  CU_ASSERT_PTR_NOT_NULL(strstr(
      json_string_value(json_object_get(e, "message")), "127.0.0.1:18182"));
  json_decref(j);

  rep = (struct stm_gw_reply){GRPC_STATUS_INVALID_ARGUMENT,
                              "predicate has an invalid character at byte 3",
                              NULL};
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 400);
  j = response_json(&out);
  e = json_object_get(j, "error");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "field")),
                         "predicate");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "message")),
                         rep.message);
  json_decref(j);

  rep = (struct stm_gw_reply){GRPC_STATUS_DEADLINE_EXCEEDED, "", NULL};
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 504);
  rep = (struct stm_gw_reply){GRPC_STATUS_RESOURCE_EXHAUSTED, "slow down",
                              NULL};
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 429);
  rep = (struct stm_gw_reply){GRPC_STATUS_OK, "", NULL}; /* undecodable */
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 500);
  stm_gw_response_destroy(&out);
}

static void test_assert_answers_201_only_when_created(void) {
  const struct stm_gw_route *r = route_for(STM_GW_POST, "/v1/assert");
  Stemedb__V1__AssertResponse a = STEMEDB__V1__ASSERT_RESPONSE__INIT;
  a.hash = HASH64;
  a.created = 1;
  struct stm_gw_reply rep = {GRPC_STATUS_OK, "", &a.base};
  struct stm_gw_response out = {0};
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 201);
  a.created = 0;
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 200);
  Stemedb__V1__AssertResponse b = a;
  Stemedb__V1__AssertResponse *rs[] = {&a, &b};
  Stemedb__V1__AssertBatchResponse batch =
      STEMEDB__V1__ASSERT_BATCH_RESPONSE__INIT;
  batch.n_results = 2;
  batch.results = rs;
  rep.msg = &batch.base;
  r = route_for(STM_GW_POST, "/v1/assert/batch");
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 200);
  b.created = 1;
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 201);
  stm_gw_response_destroy(&out);
}

static void test_health_is_healthy_only_when_writable(void) {
  const struct stm_gw_route *r = route_for(STM_GW_GET, "/v1/health");
  Stemedb__V1__StatusResponse st = STEMEDB__V1__STATUS_RESPONSE__INIT;
  st.status = "healthy";
  st.writable = 1;
  st.assertion_count = 3;
  st.node_id = "n1";
  st.version = "0.1.0";
  struct stm_gw_reply rep = {GRPC_STATUS_OK, "", &st.base};
  struct stm_gw_response out = {0};
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 200);
  json_t *j = response_json(&out);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "status")),
                         "healthy");
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "assertion_count")),
                  3);
  CU_ASSERT_PTR_NOT_NULL(json_object_get(j, "node_id"));
  CU_ASSERT_PTR_NULL(json_object_get(j, "error"));
  json_decref(j);

  st.status = "read_only";
  st.writable = 0;
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 503);
  j = response_json(&out);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "status")),
                         "unhealthy");
  CU_ASSERT_PTR_NOT_NULL(json_object_get(j, "error"));
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "assertion_count")),
                  3);
  json_decref(j);

  rep = (struct stm_gw_reply){GRPC_STATUS_UNAVAILABLE, "refused", NULL};
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 503);
  j = response_json(&out);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "status")),
                         "unhealthy");
  CU_ASSERT_STRING_EQUAL(
      json_string_value(json_object_get(json_object_get(j, "error"), "code")),
      "UNAVAILABLE");
  json_decref(j);
  stm_gw_response_destroy(&out);
}

static void test_metrics_route_appends_the_server_text(void) {
  struct stm_gw_metrics *m = stm_gw_metrics_new();
  struct stm_gw_env env = {"127.0.0.1:18182", m};
  const struct stm_gw_route *r = route_for(STM_GW_GET, "/metrics");
  Stemedb__V1__MetricsResponse mr = STEMEDB__V1__METRICS_RESPONSE__INIT;
  mr.text = "# TYPE stemedb_assertions_total counter\n"
            "stemedb_assertions_total 5";
  struct stm_gw_reply rep = {GRPC_STATUS_OK, "", &mr.base};
  struct stm_gw_response out = {0};
  stm_gw_respond(r, &rep, &env, &out);
  CU_ASSERT_EQUAL(out.status, 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(out.content_type, "text/plain"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out.body, "stemedb_gateway_upstream_up 1\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out.body, "stemedb_assertions_total 5\n"));
  CU_ASSERT_EQUAL(out.len, strlen(out.body));
  rep = (struct stm_gw_reply){GRPC_STATUS_UNAVAILABLE, "down", NULL};
  stm_gw_respond(r, &rep, &env, &out);
  CU_ASSERT_EQUAL(out.status, 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(out.body, "stemedb_gateway_upstream_up 0\n"));
  CU_ASSERT_PTR_NULL(strstr(out.body, "stemedb_assertions_total"));
  stm_gw_response_destroy(&out);
  stm_gw_metrics_delete(m);
}

static void test_get_route_builds_from_path_and_query(void) {
  const struct stm_gw_route *r =
      route_for(STM_GW_GET, "/v1/assertions/" HASH64);
  struct stm_gw_request rq = {HASH64, NULL, "as_of_sequence=3"};
  ProtobufCMessage *msg = NULL;
  CU_ASSERT_EQUAL_FATAL(r->build(&rq, &msg, NULL), 0);
  Stemedb__V1__GetRequest *g = (Stemedb__V1__GetRequest *)msg;
  CU_ASSERT_STRING_EQUAL(g->hash, HASH64);
  CU_ASSERT_EQUAL(g->as_of_sequence, 3);
  free_msg(msg);
  struct stm_error err;
  stm_error_clear(&err);
  rq.query = "as_of_sequence=123456789012345678901234567890123";
  CU_ASSERT_EQUAL(r->build(&rq, &msg, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "as_of_sequence");
}

/* ---- metrics --------------------------------------------------------------- */

static void test_metrics_count_requests_and_latency(void) {
  struct stm_gw_metrics *m = stm_gw_metrics_new();
  for (int i = 0; i < 3; i++)
    stm_gw_metrics_begin(m);
  CU_ASSERT_EQUAL(stm_gw_metrics_in_flight(m), 3);
  stm_gw_metrics_end(m, "/v1/assert", "POST", 201, 0.0004);
  stm_gw_metrics_end(m, "/v1/assert", "POST", 201, 0.003);
  stm_gw_metrics_end(m, "/v1/assert", "POST", 400, 20.0);
  stm_gw_metrics_upstream_call(m, "/stemedb.v1.StemeDB/Assert", "OK");
  CU_ASSERT_EQUAL(stm_gw_metrics_in_flight(m), 0);
  struct stm_buf b;
  stm_buf_init(&b);
  CU_ASSERT_EQUAL(stm_gw_metrics_render(m, false, &b), 0);
  stm_buf_append(&b, "", 1);
  const char *t = (const char *)b.data;
  CU_ASSERT_PTR_NOT_NULL(strstr(
      t, "stemedb_gateway_http_requests_total{route=\"/v1/assert\",method="
         "\"POST\",status=\"201\"} 2\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(
      t, "stemedb_gateway_http_requests_total{route=\"/v1/assert\",method="
         "\"POST\",status=\"400\"} 1\n"));
  /* Buckets are cumulative; 20 s only lands in +Inf. */
  CU_ASSERT_PTR_NOT_NULL(
      strstr(t, "_bucket{route=\"/v1/assert\",method=\"POST\",le=\"0.0005\"} "
                "1\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(
      t, "_bucket{route=\"/v1/assert\",method=\"POST\",le=\"0.005\"} 2\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(
      t, "_bucket{route=\"/v1/assert\",method=\"POST\",le=\"10\"} 2\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(
      t, "_bucket{route=\"/v1/assert\",method=\"POST\",le=\"+Inf\"} 3\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(
      t, "_count{route=\"/v1/assert\",method=\"POST\"} 3\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(t, "stemedb_gateway_http_requests_in_flight 0\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(t, "stemedb_gateway_upstream_up 0\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(t, "upstream_calls_total{rpc=\"/stemedb.v1.StemeDB/Assert\","
                "code=\"OK\"} 1\n"));
  stm_buf_destroy(&b);
  stm_gw_metrics_delete(m);
  stm_gw_metrics_delete(NULL);
}

/* ---- listen addresses -------------------------------------------------------- */

static void test_listen_addresses_parse(void) {
  char host[64];
  int port;
  CU_ASSERT_EQUAL(stm_gw_parse_listen("f", "0.0.0.0:18180", host, sizeof host,
                                      &port, NULL),
                  0);
  CU_ASSERT_STRING_EQUAL(host, "0.0.0.0");
  CU_ASSERT_EQUAL(port, 18180);
  CU_ASSERT_EQUAL(
      stm_gw_parse_listen("f", "[::1]:0", host, sizeof host, &port, NULL), 0);
  CU_ASSERT_STRING_EQUAL(host, "::1");
  CU_ASSERT_EQUAL(port, 0);
  CU_ASSERT_EQUAL(
      stm_gw_parse_listen("f", ":80", host, sizeof host, &port, NULL), 0);
  CU_ASSERT_STRING_EQUAL(host, "");
  const char *bad[] = {"18180", "host:", "h:65536", "h:-1", "h:12x", "::1:80",
                       ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct stm_error err;
    stm_error_clear(&err);
    CU_ASSERT_EQUAL(
        stm_gw_parse_listen("http-listen", bad[i], host, sizeof host, &port,
                            &err),
        STM_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.field, "http-listen");
  }
}

/* ---- the upstream, against servers that are down or never answer ------------ */

struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int wakes;
};

static void on_wake(void *arg) {
  struct waiter *w = arg;
  pthread_mutex_lock(&w->lock);
  w->wakes++;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

static bool wait_wake(struct waiter *w, int seconds) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += seconds;
  pthread_mutex_lock(&w->lock);
  while (w->wakes == 0 &&
         pthread_cond_timedwait(&w->cond, &w->lock, &until) == 0) {
  }
  bool woke = w->wakes > 0;
  w->wakes = 0;
  pthread_mutex_unlock(&w->lock);
  return woke;
}

struct done {
  int calls;
  grpc_status_code code;
  void *owner;
  char message[256];
};

static void on_done(struct stm_gw_call *c, void *owner, void *arg) {
  struct done *d = arg;
  d->calls++;
  d->code = stm_gw_call_code(c);
  d->owner = owner;
  snprintf(d->message, sizeof d->message, "%s", stm_gw_call_message(c));
  CU_ASSERT_PTR_NULL(
      stm_gw_call_reply(c, &stemedb__v1__status_response__descriptor));
  CU_ASSERT_STRING_EQUAL(stm_gw_call_method(c), "/stemedb.v1.StemeDB/Status");
}

/* A port that refuses connections: bind, then close. */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  bind(fd, (struct sockaddr *)&a, sizeof a);
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

static void test_upstream_reports_unavailable_asynchronously(void) {
  grpc_init();
  struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  char target[32];
  snprintf(target, sizeof target, "127.0.0.1:%d", closed_port());
  struct stm_gw_upstream *up = stm_gw_upstream_new(target, on_wake, &w);
  CU_ASSERT_PTR_NOT_NULL_FATAL(up);
  Stemedb__V1__StatusRequest req = STEMEDB__V1__STATUS_REQUEST__INIT;
  int owner = 0;
  struct stm_gw_call *c = NULL;
  CU_ASSERT_EQUAL(stm_gw_upstream_start(up, "/stemedb.v1.StemeDB/Status",
                                        &req.base, 5000, &owner, &c),
                  0);
  CU_ASSERT_EQUAL(stm_gw_upstream_active(up), 1);
  CU_ASSERT_TRUE(wait_wake(&w, 10));
  struct done d = {0};
  CU_ASSERT_EQUAL(stm_gw_upstream_poll(up, on_done, &d), 1);
  CU_ASSERT_EQUAL(d.code, GRPC_STATUS_UNAVAILABLE);
  CU_ASSERT_PTR_EQUAL(d.owner, &owner);
  CU_ASSERT_EQUAL(stm_gw_upstream_active(up), 0);

  /* A detached call finishes without calling back. */
  CU_ASSERT_EQUAL(stm_gw_upstream_start(up, "/stemedb.v1.StemeDB/Status",
                                        &req.base, 5000, &owner, &c),
                  0);
  stm_gw_call_detach(c);
  CU_ASSERT_TRUE(wait_wake(&w, 10));
  memset(&d, 0, sizeof d);
  CU_ASSERT_EQUAL(stm_gw_upstream_poll(up, on_done, &d), 0);
  CU_ASSERT_EQUAL(d.calls, 0);
  CU_ASSERT_EQUAL(stm_gw_upstream_active(up), 0);
  stm_gw_upstream_delete(up);
  grpc_shutdown();
}

static void test_upstream_deadline_and_stop_with_calls_in_flight(void) {
  grpc_init();
  /* A listener that accepts TCP but never speaks HTTP/2: calls hang. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  listen(fd, 16);
  getsockname(fd, (struct sockaddr *)&a, &len);
  char target[32];
  snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(a.sin_port));
  struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  struct stm_gw_upstream *up = stm_gw_upstream_new(target, on_wake, &w);
  Stemedb__V1__StatusRequest req = STEMEDB__V1__STATUS_REQUEST__INIT;
  int owner = 0;
  struct stm_gw_call *c = NULL;
  CU_ASSERT_EQUAL(stm_gw_upstream_start(up, "/stemedb.v1.StemeDB/Status",
                                        &req.base, 200, &owner, &c),
                  0);
  CU_ASSERT_TRUE(wait_wake(&w, 10));
  struct done d = {0};
  CU_ASSERT_EQUAL(stm_gw_upstream_poll(up, on_done, &d), 1);
  CU_ASSERT_EQUAL(d.code, GRPC_STATUS_DEADLINE_EXCEEDED);

  /* Stopping cancels what is in flight instead of waiting 60 s. */
  for (int i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(stm_gw_upstream_start(up, "/stemedb.v1.StemeDB/Status",
                                          &req.base, 60000, &owner, &c),
                    0);
  time_t t0 = time(NULL);
  stm_gw_upstream_stop(up);
  CU_ASSERT_TRUE(time(NULL) - t0 < 5);
  stm_gw_upstream_delete(up);
  close(fd);
  grpc_shutdown();
}

int main(void) {
  static const struct stm_test_case json_parse[] = {
      STM_TEST(test_json_parse_rejects_empty_and_malformed_bodies),
      STM_TEST(test_json_parse_rejects_invalid_utf8),
      STM_TEST(test_json_parse_rejects_numbers_out_of_range),
      STM_TEST(test_json_parse_accepts_an_object),
      STM_TEST_END};
  static const struct stm_test_case json_requests[] = {
      STM_TEST(test_assert_maps_the_seed_request),
      STM_TEST(test_assert_maps_every_value_kind),
      STM_TEST(test_assert_maps_optional_fields),
      STM_TEST(test_assert_ignores_unknown_fields_and_nulls),
      STM_TEST(test_assert_rejects_missing_fields),
      STM_TEST(test_assert_rejects_wrong_types),
      STM_TEST(test_assert_rejects_bad_paths_and_predicates),
      STM_TEST(test_assert_limits_string_values),
      STM_TEST(test_assert_rejects_confidence_out_of_range),
      STM_TEST(test_assert_rejects_bad_hashes_sources_and_signatures),
      STM_TEST(test_assert_rejects_out_of_range_timestamps),
      STM_TEST(test_batch_maps_and_names_the_failing_element),
      STM_TEST(test_batch_rejects_missing_empty_and_non_arrays),
      STM_TEST(test_query_maps_every_field),
      STM_TEST(test_query_rejects_bad_fields),
      STM_TEST(test_get_request_validates_hash_and_as_of),
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
  static const struct stm_test_case status_map[] = {
      STM_TEST(test_status_table_maps_every_grpc_code), STM_TEST_END};
  static const struct stm_test_case routes[] = {
      STM_TEST(test_routes_match_fixed_paths),
      STM_TEST(test_routes_capture_the_path_parameter),
      STM_TEST(test_routes_report_allowed_methods_for_405),
      STM_TEST(test_routes_keep_listeners_apart),
      STM_TEST(test_every_route_is_complete_and_unique),
      STM_TEST(test_field_is_derived_from_server_messages),
      STM_TEST(test_query_values_are_found_by_name),
      STM_TEST(test_responses_map_grpc_failures),
      STM_TEST(test_assert_answers_201_only_when_created),
      STM_TEST(test_health_is_healthy_only_when_writable),
      STM_TEST(test_metrics_route_appends_the_server_text),
      STM_TEST(test_get_route_builds_from_path_and_query),
      STM_TEST_END};
  static const struct stm_test_case metrics[] = {
      STM_TEST(test_metrics_count_requests_and_latency), STM_TEST_END};
  static const struct stm_test_case http[] = {
      STM_TEST(test_listen_addresses_parse), STM_TEST_END};
  static const struct stm_test_case upstream[] = {
      STM_TEST(test_upstream_reports_unavailable_asynchronously),
      STM_TEST(test_upstream_deadline_and_stop_with_calls_in_flight),
      STM_TEST_END};
  stm_test_suite("json_parse", json_parse);
  stm_test_suite("json_requests", json_requests);
  stm_test_suite("json_render", json_render);
  stm_test_suite("status_map", status_map);
  stm_test_suite("routes", routes);
  stm_test_suite("metrics", metrics);
  stm_test_suite("http", http);
  stm_test_suite("upstream", upstream);
  return stm_test_run_all();
}
