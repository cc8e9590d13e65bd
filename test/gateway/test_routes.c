/* Tests for gateway/status_map.c, gateway/routes.c (matching, building,
 * responding) and gateway/metrics.c. */
#include "gateway/metrics.h"
#include "gateway/routes.h"
#include "gateway/status_map.h"
#include "gateway_test.h"
#include "rpc/codec.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the status table ---------------------------------------------------- */

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
    CU_ASSERT_STRING_EQUAL(stm_rpc_code_name(want[i].code), want[i].name);
  }
  CU_ASSERT_EQUAL(stm_gw_http_status((grpc_status_code)99), 500);
  CU_ASSERT_STRING_EQUAL(stm_rpc_code_name((grpc_status_code)-1), "UNKNOWN");
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
  const struct stm_gw_route *r = match(STM_GW_LISTENER_API, STM_GW_GET,
                                       "/v1/assertions/" HASH64, param, NULL);
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
    CU_ASSERT_PTR_NOT_NULL(
        match(STM_GW_LISTENER_CLUSTER, STM_GW_GET, cluster[i], NULL, NULL));
  const char *admin[] = {"/cluster/sync", "/admin/shards/rebalance",
                         "/admin/cluster/remove"};
  for (size_t i = 0; i < 3; i++)
    CU_ASSERT_PTR_NOT_NULL(
        match(STM_GW_LISTENER_CLUSTER, STM_GW_POST, admin[i], NULL, NULL));
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
    CU_ASSERT_TRUE(r[i].rpc == NULL ||
                   (r[i].build && r[i].request && r[i].reply &&
                    (r[i].render || r[i].respond)));
    CU_ASSERT_TRUE(r[i].rpc != NULL || r[i].respond != NULL);
    CU_ASSERT_EQUAL(r[i].body,
                    r[i].method == STM_GW_POST || r[i].method == STM_GW_PUT);
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
  const ProtobufCMessageDescriptor *ar =
      &stemedb__v1__assert_request__descriptor;
  const ProtobufCMessageDescriptor *br =
      &stemedb__v1__assert_batch_request__descriptor;
  CU_ASSERT_TRUE(stm_gw_field_from_message(ar, "concept_path must not be empty",
                                           f, sizeof f));
  CU_ASSERT_STRING_EQUAL(f, "concept_path");
  CU_ASSERT_TRUE(stm_gw_field_from_message(
      br, "assertions[2].predicate has an invalid character", f, sizeof f));
  CU_ASSERT_STRING_EQUAL(f, "assertions[2].predicate");
  CU_ASSERT_TRUE(
      stm_gw_field_from_message(&stemedb__v1__query_request__descriptor,
                                "lens: unknown lens \"magic\"", f, sizeof f));
  CU_ASSERT_STRING_EQUAL(f, "lens");
  CU_ASSERT_TRUE(
      stm_gw_field_from_message(ar, "value.ref_value is bad", f, sizeof f));
  CU_ASSERT_FALSE(
      stm_gw_field_from_message(ar, "cannot parse the request", f, sizeof f));
  CU_ASSERT_FALSE(
      stm_gw_field_from_message(ar, "concept_path.x is bad", f, sizeof f));
  CU_ASSERT_FALSE(
      stm_gw_field_from_message(ar, "predicate[1] is bad", f, sizeof f));
  CU_ASSERT_FALSE(stm_gw_field_from_message(br, "assertions[x].predicate bad",
                                            f, sizeof f));
  CU_ASSERT_FALSE(stm_gw_field_from_message(ar, "", f, sizeof f));
  CU_ASSERT_FALSE(
      stm_gw_field_from_message(NULL, "concept_path is bad", f, sizeof f));
  CU_ASSERT_FALSE(
      stm_gw_field_from_message(ar, "predicate-bad is wrong", f, sizeof f));
}

static void test_query_values_are_found_by_name(void) {
  char buf[8];
  CU_ASSERT_STRING_EQUAL(stm_gw_query_value("a=1&as_of_sequence=42",
                                            "as_of_sequence", buf, sizeof buf),
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
  /* Issue 10: gRPC's transport text names the server's internal address;
   * the answer says which hop failed, never where it is. */
  struct stm_gw_reply rep = {
      GRPC_STATUS_UNAVAILABLE,
      "failed to connect to all addresses; last error: UNKNOWN: "
      "ipv4:127.0.0.1:18182: Failed to connect to remote host",
      NULL};
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_EQUAL(out.status, 503);
  CU_ASSERT_STRING_EQUAL(out.content_type, "application/json");
  json_t *j = response_json(&out);
  json_t *e = json_object_get(j, "error");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "code")),
                         "UNAVAILABLE");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "message")),
                         "cannot reach stemedb-server");
  CU_ASSERT_PTR_NULL(strstr(out.body, "127.0.0.1"));
  json_decref(j);
  /* A message of the server's own passes through. */
  rep.message = "the disk is full";
  stm_gw_respond(r, &rep, &test_env, &out);
  CU_ASSERT_PTR_NOT_NULL(strstr(out.body, "stemedb-server: the disk is full"));

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
  rep =
      (struct stm_gw_reply){GRPC_STATUS_RESOURCE_EXHAUSTED, "slow down", NULL};
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
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "assertion_count")), 3);
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
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "assertion_count")), 3);
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
  gw_test_free_msg(msg);
  struct stm_error err;
  stm_error_clear(&err);
  rq.query = "as_of_sequence=123456789012345678901234567890123";
  CU_ASSERT_EQUAL(r->build(&rq, &msg, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "as_of_sequence");
}

/* ---- metrics ------------------------------------------------------------- */

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
  CU_ASSERT_PTR_NOT_NULL(
      strstr(t, "_bucket{route=\"/v1/assert\",method=\"POST\",le=\"10\"} 2\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(
      t, "_bucket{route=\"/v1/assert\",method=\"POST\",le=\"+Inf\"} 3\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(t, "_count{route=\"/v1/assert\",method=\"POST\"} 3\n"));
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

/* ---- api/openapi.yaml against the route table ------------------------- */

#define MAX_DOC_OPS 64

struct doc_op {
  char method[8];
  char path[100];
};

/* The operations of openapi.yaml's `paths`: "  /path:" lines, then
 * "    get:" lines under them (the file keeps this layout). */
static size_t read_openapi(struct doc_op *ops) {
  FILE *f = fopen(STM_SOURCE_DIR "/api/openapi.yaml", "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char line[512], path[100] = "";
  size_t n = 0;
  bool in_paths = false;
  while (fgets(line, sizeof line, f)) {
    if (line[0] != ' ' && line[0] != '\n')
      in_paths = strncmp(line, "paths:", 6) == 0;
    char word[96];
    if (!in_paths)
      continue;
    if (sscanf(line, "  /%94[^:]:", word) == 1 && line[2] == '/')
      snprintf(path, sizeof path, "/%s", word);
    else if (line[4] != ' ' && sscanf(line, "    %7[a-z]:", word) == 1) {
      char upper[8];
      size_t k = 0;
      for (; k < sizeof upper - 1 && word[k]; k++)
        upper[k] = (char)(word[k] - 'a' + 'A');
      upper[k] = '\0';
      if (stm_gw_method_parse(upper) != STM_GW_OTHER && n < MAX_DOC_OPS) {
        snprintf(ops[n].method, sizeof ops[n].method, "%s", upper);
        snprintf(ops[n].path, sizeof ops[n].path, "%s", path);
        n++;
      }
    }
  }
  fclose(f);
  return n;
}

static bool documented(const struct doc_op *ops, size_t n, const char *method,
                       const char *path) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(ops[i].method, method) == 0 && strcmp(ops[i].path, path) == 0)
      return true;
  return false;
}

/* Issue 11: every route is documented, every documented operation is a
 * route, and GET /v1/watch (ws.c, outside the table) is documented. */
static void test_openapi_matches_the_route_table(void) {
  struct doc_op ops[MAX_DOC_OPS];
  size_t n_ops = read_openapi(ops), n_routes;
  const struct stm_gw_route *routes = stm_gw_routes(&n_routes);
  CU_ASSERT_TRUE(n_ops > 10);
  for (size_t i = 0; i < n_routes; i++) {
    const char *m = stm_gw_method_name(routes[i].method);
    if (!documented(ops, n_ops, m, routes[i].pattern)) {
      fprintf(stderr, "\nroute %s %s is not in api/openapi.yaml\n", m,
              routes[i].pattern);
      CU_FAIL("a route is missing from api/openapi.yaml");
    }
  }
  CU_ASSERT_TRUE(documented(ops, n_ops, "GET", "/v1/watch"));
  for (size_t i = 0; i < n_ops; i++) {
    bool found = strcmp(ops[i].path, "/v1/watch") == 0;
    for (size_t k = 0; k < n_routes && !found; k++)
      found = strcmp(routes[k].pattern, ops[i].path) == 0 &&
              strcmp(stm_gw_method_name(routes[k].method), ops[i].method) == 0;
    if (!found) {
      fprintf(stderr,
              "\napi/openapi.yaml documents %s %s, no route serves it\n",
              ops[i].method, ops[i].path);
      CU_FAIL("api/openapi.yaml documents an operation no route serves");
    }
  }
}

void gw_test_register_routes(void) {
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
  static const struct stm_test_case openapi[] = {
      STM_TEST(test_openapi_matches_the_route_table), STM_TEST_END};
  static const struct stm_test_case metrics[] = {
      STM_TEST(test_metrics_count_requests_and_latency), STM_TEST_END};
  stm_test_suite("status_map", status_map);
  stm_test_suite("routes", routes);
  stm_test_suite("metrics", metrics);
  stm_test_suite("openapi", openapi);
}
