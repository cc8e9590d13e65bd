/* Tests for gateway/request.c (percent-decoding) and the resources of the
 * issue-4 routes (votes.c, epochs.c, sources.c, history.c): request
 * builders and renderers. */
#include "gateway/resources.h"
#include "gateway_test.h"
#include "json/json.h"

#include <stdlib.h>
#include <string.h>

static void test_percent_decode_handles_escapes_plus_and_errors(void) {
  char out[64];
  CU_ASSERT_TRUE(stm_gw_percent_decode("fda%3A%2F%2Fx", 13, false, out, 64));
  CU_ASSERT_STRING_EQUAL(out, "fda://x");
  CU_ASSERT_TRUE(stm_gw_percent_decode("a+b", 3, true, out, 64));
  CU_ASSERT_STRING_EQUAL(out, "a b");
  CU_ASSERT_TRUE(stm_gw_percent_decode("a+b", 3, false, out, 64));
  CU_ASSERT_STRING_EQUAL(out, "a+b");
  CU_ASSERT_FALSE(stm_gw_percent_decode("%4", 2, false, out, 64));
  CU_ASSERT_FALSE(stm_gw_percent_decode("%zz", 3, false, out, 64));
  CU_ASSERT_FALSE(stm_gw_percent_decode("%00", 3, false, out, 64));
  CU_ASSERT_FALSE(stm_gw_percent_decode("abcdef", 6, false, out, 4));
}

static json_t *parse(const char *s) {
  json_t *j = NULL;
  CU_ASSERT_EQUAL_FATAL(stm_json_parse(s, strlen(s), &j, NULL), 0);
  return j;
}

static void test_vote_builder_checks_types_and_names_fields(void) {
  json_t *ok = parse("{\"assertion_hash\":\"ab\",\"voter_id\":\"v\","
                     "\"weight\":-0.5}");
  struct stm_gw_request rq = {"", ok, ""};
  ProtobufCMessage *m = NULL;
  struct stm_error err;
  CU_ASSERT_EQUAL(stm_gw_build_vote(&rq, &m, &err), 0);
  Stemedb__V1__VoteRequest *v = (Stemedb__V1__VoteRequest *)m;
  CU_ASSERT_STRING_EQUAL(v->voter_id, "v");
  CU_ASSERT_EQUAL(v->weight, -0.5);
  protobuf_c_message_free_unpacked(m, NULL);
  json_decref(ok);
  json_t *bad = parse("{\"assertion_hash\":\"ab\",\"voter_id\":\"v\","
                      "\"weight\":\"1\"}");
  rq.body = bad;
  CU_ASSERT_EQUAL(stm_gw_build_vote(&rq, &m, &err), STM_EINVAL);
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT_STRING_EQUAL(err.field, "weight");
  json_decref(bad);
  /* A missing hash is the server's to refuse (one set of rules). */
  bad = parse("{\"voter_id\":\"v\",\"weight\":1}");
  rq.body = bad;
  CU_ASSERT_EQUAL(stm_gw_build_vote(&rq, &m, &err), 0);
  CU_ASSERT_STRING_EQUAL(((Stemedb__V1__VoteRequest *)m)->assertion_hash, "");
  protobuf_c_message_free_unpacked(m, NULL);
  json_decref(bad);
}

static void test_source_id_comes_from_path_query_or_body(void) {
  json_t *b = parse("{\"tier\":1,\"trust\":0.5,\"id\":\"body://id\"}");
  struct stm_gw_request rq = {"path%3Aid", b, ""};
  ProtobufCMessage *m = NULL;
  struct stm_error err;
  CU_ASSERT_EQUAL(stm_gw_build_put_source(&rq, &m, &err), 0);
  Stemedb__V1__PutSourceRequest *p = (Stemedb__V1__PutSourceRequest *)m;
  CU_ASSERT_STRING_EQUAL(p->source->id, "path:id");
  CU_ASSERT_EQUAL(p->source->tier, 1);
  CU_ASSERT_EQUAL(p->source->trust_present_case,
                  STEMEDB__V1__SOURCE__TRUST_PRESENT_TRUST);
  protobuf_c_message_free_unpacked(m, NULL);
  rq.param = "";
  rq.query = "id=fda%3A%2F%2Fx";
  CU_ASSERT_EQUAL(stm_gw_build_put_source(&rq, &m, &err), 0);
  CU_ASSERT_STRING_EQUAL(((Stemedb__V1__PutSourceRequest *)m)->source->id,
                         "fda://x");
  protobuf_c_message_free_unpacked(m, NULL);
  rq.query = "";
  CU_ASSERT_EQUAL(stm_gw_build_put_source(&rq, &m, &err), 0);
  CU_ASSERT_STRING_EQUAL(((Stemedb__V1__PutSourceRequest *)m)->source->id,
                         "body://id");
  protobuf_c_message_free_unpacked(m, NULL);
  json_decref(b);
  b = parse("{\"tier\":1.5}");
  rq.body = b;
  rq.param = "x";
  CU_ASSERT_EQUAL(stm_gw_build_put_source(&rq, &m, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "source.tier");
  json_decref(b);
}

static void test_query_string_builders(void) {
  struct stm_gw_request rq = {"", NULL,
                              "concept_path=a%2Fb&predicate=p&"
                              "current_epoch_only=true&as_of_sequence=7"};
  ProtobufCMessage *m = NULL;
  struct stm_error err;
  CU_ASSERT_EQUAL(stm_gw_build_skeptic(&rq, &m, &err), 0);
  Stemedb__V1__QueryRequest *q = (Stemedb__V1__QueryRequest *)m;
  CU_ASSERT_STRING_EQUAL(q->concept_path, "a/b");
  CU_ASSERT_STRING_EQUAL(q->lens, "skeptic");
  CU_ASSERT_TRUE(q->current_epoch_only);
  CU_ASSERT_EQUAL(q->as_of_sequence, 7);
  protobuf_c_message_free_unpacked(m, NULL);
  rq.query = "predicate=p"; /* no concept_path: the server's to refuse */
  CU_ASSERT_EQUAL(stm_gw_build_skeptic(&rq, &m, &err), 0);
  CU_ASSERT_STRING_EQUAL(((Stemedb__V1__QueryRequest *)m)->concept_path, "");
  protobuf_c_message_free_unpacked(m, NULL);
  rq.query = "after_sequence=-1";
  CU_ASSERT_EQUAL(stm_gw_build_audit(&rq, &m, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "after_sequence");
  rq.query = "prefix=a%2F&limit=5&page_token=a%2Fb";
  CU_ASSERT_EQUAL(stm_gw_build_list_concepts(&rq, &m, &err), 0);
  Stemedb__V1__ListConceptsRequest *l = (Stemedb__V1__ListConceptsRequest *)m;
  CU_ASSERT_STRING_EQUAL(l->prefix, "a/");
  CU_ASSERT_EQUAL(l->limit, 5);
  CU_ASSERT_STRING_EQUAL(l->page_token, "a/b");
  protobuf_c_message_free_unpacked(m, NULL);
}

static void test_trace_renders_a_missing_epoch_as_null(void) {
  Stemedb__V1__TraceResponse t = STEMEDB__V1__TRACE_RESPONSE__INIT;
  int status = 200;
  json_t *j = stm_gw_render_trace(&t.base, &status);
  CU_ASSERT_TRUE(json_is_null(json_object_get(j, "superseded_by")));
  CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "votes")), 0);
  json_decref(j);
  Stemedb__V1__VoteResponse v = STEMEDB__V1__VOTE_RESPONSE__INIT;
  v.created = 1;
  j = stm_gw_render_vote(&v.base, &status);
  CU_ASSERT_EQUAL(status, 201);
  json_decref(j);
}

void gw_test_register_json_records(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_percent_decode_handles_escapes_plus_and_errors),
      STM_TEST(test_vote_builder_checks_types_and_names_fields),
      STM_TEST(test_source_id_comes_from_path_query_or_body),
      STM_TEST(test_query_string_builders),
      STM_TEST(test_trace_renders_a_missing_epoch_as_null),
      STM_TEST_END};
  stm_test_suite("json_records", cases);
}
