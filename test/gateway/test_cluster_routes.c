/* Tests for gateway/cluster_routes: the cluster gateway's JSON (port
 * 18181) - the runbook's shapes, RFC 3339 last_seen, errors naming the
 * field. */
#include "gateway/cluster_routes.h"
#include "gateway/routes.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *J(const char *text) {
  json_error_t e;
  json_t *j = json_loads(text, 0, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  return j;
}

static const struct stm_gw_route *route(enum stm_gw_method m,
                                        const char *path) {
  const char *param;
  size_t plen;
  unsigned allowed;
  return stm_gw_route_match(STM_GW_LISTENER_CLUSTER, m, path, &param, &plen,
                            &allowed);
}

static void
test_cluster_routes_are_on_18181_and_call_the_cluster_service(void) {
  static const struct {
    enum stm_gw_method m;
    const char *path, *rpc;
  } want[] = {
      {STM_GW_GET, "/cluster/members", "/stemedb.v1.Cluster/Members"},
      {STM_GW_GET, "/cluster/health", "/stemedb.v1.Cluster/Health"},
      {STM_GW_POST, "/cluster/sync", "/stemedb.v1.Cluster/Sync"},
      {STM_GW_GET, "/cluster/shards", "/stemedb.v1.Cluster/Shards"},
      {STM_GW_POST, "/admin/shards/rebalance",
       "/stemedb.v1.Cluster/RebalanceShard"},
      {STM_GW_POST, "/admin/cluster/remove", "/stemedb.v1.Cluster/RemoveNode"},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const struct stm_gw_route *r = route(want[i].m, want[i].path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(r->rpc, want[i].rpc);
    CU_ASSERT_EQUAL(r->body, want[i].m == STM_GW_POST);
  }
}

static void test_cluster_routes_last_seen_is_rfc3339_utc(void) {
  char buf[40];
  stm_gw_rfc3339(INT64_C(1770804900) * 1000000000 + 999, buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf, "2026-02-11T10:15:00Z");
  stm_gw_rfc3339(0, buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf, "");
}

static void test_cluster_routes_render_the_runbook_shapes(void) {
  Stemedb__V1__Member m = STEMEDB__V1__MEMBER__INIT;
  m.id = "node2";
  m.status = "DOWN";
  m.assertion_count = 10234;
  m.last_seen_ns = INT64_C(1770804900) * 1000000000;
  m.rpc_addr = "10.0.1.52:18182";
  m.swim_addr = "10.0.1.52:18183";
  Stemedb__V1__Member *mp = &m;
  Stemedb__V1__MembersResponse r = STEMEDB__V1__MEMBERS_RESPONSE__INIT;
  r.n_members = 1;
  r.members = &mp;
  int status = 200;
  json_t *j = stm_gw_render_cluster_members(&r.base, &status);
  json_t *o = json_array_get(json_object_get(j, "members"), 0);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "id")), "node2");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "status")),
                         "DOWN");
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "assertion_count")),
                  10234);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "last_seen")),
                         "2026-02-11T10:15:00Z");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "swim_addr")),
                         "10.0.1.52:18183");
  json_decref(j);

  Stemedb__V1__ClusterHealthResponse h =
      STEMEDB__V1__CLUSTER_HEALTH_RESPONSE__INIT;
  h.status = "healthy";
  h.quorum = 1;
  j = stm_gw_render_cluster_health(&h.base, &status);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "status")),
                         "healthy");
  CU_ASSERT_TRUE(json_is_true(json_object_get(j, "quorum")));
  json_decref(j);

  char *reps[] = {"node1", "node4"};
  Stemedb__V1__Shard s = STEMEDB__V1__SHARD__INIT;
  s.id = "shard-17";
  s.n_replicas = 2;
  s.replicas = reps;
  s.rebalance_status = "copying";
  Stemedb__V1__RebalanceShardResponse rr =
      STEMEDB__V1__REBALANCE_SHARD_RESPONSE__INIT;
  rr.shard = &s;
  status = 200;
  j = stm_gw_render_cluster_rebalance(&rr.base, &status);
  CU_ASSERT_EQUAL(status, 202);
  o = json_object_get(j, "shard");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "id")),
                         "shard-17");
  CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "replicas")), 2);
  CU_ASSERT_STRING_EQUAL(
      json_string_value(json_object_get(o, "rebalance_status")), "copying");
  json_decref(j);
}

/* Build with `body`; returns the code, err->field in field. */
static int build(stm_gw_build_fn *fn, const char *body, char *field,
                 ProtobufCMessage **out) {
  json_t *j = J(body);
  struct stm_gw_request rq = {.param = "", .body = j, .query = ""};
  struct stm_error err;
  stm_error_clear(&err);
  *out = NULL;
  int rc = fn(&rq, out, &err);
  snprintf(field, 64, "%s", err.field);
  json_decref(j);
  return rc;
}

static void test_cluster_routes_bad_bodies_name_the_field(void) {
  char field[64];
  ProtobufCMessage *m;
  static const struct {
    stm_gw_build_fn *fn;
    const char *body, *field;
  } bad[] = {
      {stm_gw_build_cluster_rebalance, "{\"target_node\":\"node4\"}",
       "shard_id"},
      {stm_gw_build_cluster_rebalance,
       "{\"shard_id\":\"shard-1\",\"target_node\":4}", "target_node"},
      {stm_gw_build_cluster_rebalance,
       "{\"shard_id\":\"shard-1\",\"target_node\":\"n\",\"reason\":[]}",
       "reason"},
      {stm_gw_build_cluster_remove, "{\"force\":true}", "node_id"},
      {stm_gw_build_cluster_remove, "{\"node_id\":\"n\",\"force\":\"yes\"}",
       "force"},
      {stm_gw_build_cluster_sync, "{\"target_nodes\":\"node2\"}",
       "target_nodes"},
      {stm_gw_build_cluster_sync, "{\"target_nodes\":[\"a\",3]}",
       "target_nodes[1]"},
      {stm_gw_build_cluster_sync, "{\"force\":1}", "force"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CU_ASSERT_EQUAL(build(bad[i].fn, bad[i].body, field, &m), STM_EINVAL);
    CU_ASSERT_STRING_EQUAL(field, bad[i].field);
    CU_ASSERT_PTR_NULL(m);
  }
  CU_ASSERT_EQUAL(build(stm_gw_build_cluster_sync,
                        "{\"target_nodes\":[\"node2\",\"node3\"],"
                        "\"force\":true}",
                        field, &m),
                  0);
  Stemedb__V1__SyncRequest *s = (Stemedb__V1__SyncRequest *)m;
  CU_ASSERT_EQUAL(s->n_target_nodes, 2);
  CU_ASSERT_STRING_EQUAL(s->target_nodes[1], "node3");
  CU_ASSERT_TRUE(s->force);
  protobuf_c_message_free_unpacked(m, NULL);
  CU_ASSERT_EQUAL(build(stm_gw_build_cluster_rebalance,
                        "{\"shard_id\":\"shard-abc123\",\"target_node\":"
                        "\"node4\",\"reason\":\"add_capacity\"}",
                        field, &m),
                  0);
  Stemedb__V1__RebalanceShardRequest *r =
      (Stemedb__V1__RebalanceShardRequest *)m;
  CU_ASSERT_STRING_EQUAL(r->shard_id, "shard-abc123"); /* server judges */
  CU_ASSERT_STRING_EQUAL(r->reason, "add_capacity");
  protobuf_c_message_free_unpacked(m, NULL);
}

int main(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_cluster_routes_are_on_18181_and_call_the_cluster_service),
      STM_TEST(test_cluster_routes_last_seen_is_rfc3339_utc),
      STM_TEST(test_cluster_routes_render_the_runbook_shapes),
      STM_TEST(test_cluster_routes_bad_bodies_name_the_field), STM_TEST_END};
  stm_test_suite("cluster_routes", cases);
  return stm_test_run_all();
}
