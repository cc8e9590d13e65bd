/* Tests for cluster/cluster_config: cluster.toml as the runbook writes it. */
#include "cluster/cluster_config.h"
#include "harness.h"
#include "test_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Load `text` into a fresh config; returns the loader's code. */
static int load(const char *text, struct stm_cluster_config *c,
                struct stm_error *err) {
  stm_cluster_config_init(c);
  struct stm_toml_doc *doc = NULL;
  int rc = stm_toml_parse(text, strlen(text), &doc, err);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  rc = stm_cluster_config_from_toml(c, doc, err);
  stm_toml_delete(doc);
  return rc;
}

/* Load and validate; the error must name `field` and contain `want`. */
static void invalid(const char *text, const char *field, const char *want) {
  struct stm_cluster_config c;
  struct stm_error err;
  stm_error_clear(&err);
  int rc = load(text, &c, &err);
  if (rc == 0)
    rc = stm_cluster_config_validate(&c, &err);
  CU_ASSERT_EQUAL(rc, STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, field);
  if (strstr(err.message, want) == NULL)
    fprintf(stderr, "\nwanted \"%s\", got \"%s\"\n", want, err.message);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, want));
  stm_cluster_config_destroy(&c);
}

static void test_cluster_config_loads_the_seed_cluster_toml(void) {
  struct stm_cluster_config c;
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(load(stm_test_seed_node1_toml, &c, &err), 0);
  CU_ASSERT_EQUAL(stm_cluster_config_validate(&c, &err), 0);
  CU_ASSERT_TRUE(c.enabled);
  CU_ASSERT_STRING_EQUAL(c.node_id, "node1");
  CU_ASSERT_STRING_EQUAL(c.bind_addr, "10.0.1.51:18181");
  CU_ASSERT_STRING_EQUAL(c.rpc_addr, "10.0.1.51:18182");
  CU_ASSERT_STRING_EQUAL(c.swim_addr, "10.0.1.51:18183");
  CU_ASSERT_EQUAL_FATAL(c.seed_count, 2);
  CU_ASSERT_STRING_EQUAL(c.seeds[0], "10.0.1.52:18183");
  CU_ASSERT_STRING_EQUAL(c.seeds[1], "10.0.1.53:18183");
  CU_ASSERT_EQUAL(c.replication_factor, 2);
  CU_ASSERT_EQUAL(c.shards, STM_CLUSTER_DEFAULT_SHARDS);
  stm_cluster_config_destroy(&c);
  CU_ASSERT_EQUAL(load(stm_test_seed_node2_toml, &c, &err), 0);
  CU_ASSERT_EQUAL(stm_cluster_config_validate(&c, &err), 0);
  CU_ASSERT_STRING_EQUAL(c.node_id, "node2");
  stm_cluster_config_destroy(&c);
}

static void test_cluster_config_defaults_to_a_single_node(void) {
  struct stm_cluster_config c;
  CU_ASSERT_EQUAL(load("[server]\ndata_dir = '/x'\n", &c, NULL), 0);
  CU_ASSERT_FALSE(c.enabled);
  CU_ASSERT_PTR_NULL(c.node_id);
  CU_ASSERT_PTR_NULL(c.rpc_addr);
  CU_ASSERT_EQUAL(c.seed_count, 0);
  CU_ASSERT_EQUAL(c.replication_factor, STM_CLUSTER_DEFAULT_REPLICATION);
  CU_ASSERT_EQUAL(c.shards, 64);
  CU_ASSERT_EQUAL(stm_cluster_config_validate(&c, NULL), 0);
  stm_cluster_config_destroy(&c);
}

static void test_cluster_config_later_documents_replace_values(void) {
  struct stm_cluster_config c;
  CU_ASSERT_EQUAL(load(stm_test_seed_node1_toml, &c, NULL), 0);
  struct stm_toml_doc *doc = NULL;
  const char *more = "[cluster]\nseeds = []\nshards = 128\n";
  CU_ASSERT_EQUAL_FATAL(stm_toml_parse(more, strlen(more), &doc, NULL), 0);
  CU_ASSERT_EQUAL(stm_cluster_config_from_toml(&c, doc, NULL), 0);
  CU_ASSERT_EQUAL(c.seed_count, 0);
  CU_ASSERT_EQUAL(c.shards, 128);
  CU_ASSERT_STRING_EQUAL(c.node_id, "node1"); /* untouched */
  stm_toml_delete(doc);
  stm_cluster_config_destroy(&c);
}

static void test_cluster_config_wrong_types_name_the_key(void) {
  struct stm_cluster_config c;
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(load("[cluster]\nenabled = 'true'\n", &c, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "cluster.enabled");
  stm_cluster_config_destroy(&c);
  CU_ASSERT_EQUAL(load("[cluster]\nseeds = '10.0.1.52:18183'\n", &c, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "cluster.seeds");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "array of strings"));
  stm_cluster_config_destroy(&c);
  CU_ASSERT_EQUAL(load("[cluster]\nseeds = [1, 2]\n", &c, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "cluster.seeds");
  stm_cluster_config_destroy(&c);
  CU_ASSERT_EQUAL(load("[replication]\nfactor = '2'\n", &c, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "replication.factor");
  stm_cluster_config_destroy(&c);
  CU_ASSERT_EQUAL(load("[cluster]\nnode_id = 7\n", &c, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "cluster.node_id");
  stm_cluster_config_destroy(&c);
}

static void test_cluster_config_validation_names_the_bad_key(void) {
  invalid("[cluster]\nseeds = ['10.0.1.52:18183', '10.0.1.53']\n",
          "cluster.seeds[1]",
          "\"10.0.1.53\" is not host:port: the port is "
          "missing");
  invalid("[cluster]\nseeds = ['10.0.1.52:70000']\n", "cluster.seeds[0]",
          "from 1 to 65535");
  invalid("[cluster]\nseeds = ['10.0.1.52:0']\n", "cluster.seeds[0]",
          "from 1 to 65535");
  invalid("[cluster]\nseeds = [':18183']\n", "cluster.seeds[0]",
          "host is missing");
  invalid("[cluster]\nseeds = ['::1:18183']\n", "cluster.seeds[0]",
          "needs brackets");
  invalid("[cluster]\nbind_addr = 'node 1:18181'\n", "cluster.bind_addr",
          "not a letter");
  invalid("[replication]\nfactor = 0\n", "replication.factor",
          "between 1 and 16, got 0");
  invalid("[cluster]\nshards = 0\n", "cluster.shards", "got 0");
  invalid("[cluster]\nnode_id = 'node one'\n", "cluster.node_id",
          "may only contain");
  invalid("[cluster]\nnode_id = ''\n", "cluster.node_id", "must not be empty");
  invalid("[cluster]\nenabled = true\nnode_id = 'n1'\n"
          "swim_addr = '10.0.0.1:18183'\n",
          "cluster.rpc_addr", "required when cluster.enabled = true");
  invalid("[cluster]\nenabled = true\nnode_id = 'n1'\n"
          "rpc_addr = '0.0.0.0:18182'\nswim_addr = '10.0.0.1:18183'\n",
          "cluster.rpc_addr", "not an address other nodes can reach");
}

#define ENABLED                                                                \
  "[cluster]\nenabled = true\nnode_id = 'n1'\nrpc_addr = '10.0.0.1:18182'\n"   \
  "swim_addr = '10.0.0.1:18183'\n"

static void test_cluster_config_refuses_contradictions_naming_the_key(void) {
  invalid("[cluster]\nenabled = true\nrpc_addr = '10.0.0.1:18182'\n"
          "swim_addr = '10.0.0.1:18183'\n",
          "cluster.node_id", "required when cluster.enabled = true");
  invalid(ENABLED "seeds = ['10.0.0.1:18183']\n", "cluster.seeds",
          "names only this node's own swim_addr");
  invalid(ENABLED "seeds = ['10.0.0.1:18183', '10.0.0.1:18183']\n",
          "cluster.seeds", "only this node");
  invalid(ENABLED "[replication]\nfactor = 0\n", "replication.factor", "got 0");
  invalid(ENABLED "probe_interval_ms = 1000\nprobe_timeout_ms = 1000\n",
          "cluster.probe_timeout_ms", "between 1 and 999");
  invalid(ENABLED "probe_interval_ms = 5\n", "cluster.probe_interval_ms",
          "between 10 and 60000");
  invalid(ENABLED "suspicion_mult = 0\n", "cluster.suspicion_mult", "got 0");
  invalid(ENABLED "suspicion_max_mult = 1000\n", "cluster.suspicion_max_mult",
          "got 1000");
  invalid(ENABLED "push_pull_interval_ms = 1\n",
          "cluster.push_pull_interval_ms", "got 1");
  invalid(ENABLED "name = 'my cluster'\n", "cluster.name", "1 to 64");
  invalid(ENABLED "[replication]\nwrite_quorum = 'most'\n",
          "replication.write_quorum", "got \"most\"");
  invalid(ENABLED "cluster_key = 42\n", "cluster.cluster_key", "");
}

static void test_cluster_config_reads_swim_keys_with_documented_defaults(void) {
  struct stm_cluster_config c;
  CU_ASSERT_EQUAL(load(ENABLED, &c, NULL), 0);
  CU_ASSERT_EQUAL(stm_cluster_config_validate(&c, NULL), 0);
  CU_ASSERT_EQUAL(c.write_quorum, STM_WRITE_QUORUM_ONE);
  CU_ASSERT_EQUAL(c.probe_interval_ms, 1000);
  CU_ASSERT_EQUAL(c.probe_timeout_ms, 500);
  CU_ASSERT_EQUAL(c.suspicion_mult, 4);
  CU_ASSERT_EQUAL(c.suspicion_max_mult, 6);
  CU_ASSERT_EQUAL(c.push_pull_interval_ms, 30000);
  CU_ASSERT_PTR_NULL(c.name);
  CU_ASSERT_PTR_NULL(c.cluster_key);
  stm_cluster_config_destroy(&c);
  CU_ASSERT_EQUAL(load(ENABLED "name = 'prod-eu'\ncluster_key = 's3cret'\n"
                               "probe_interval_ms = 200\n"
                               "probe_timeout_ms = 80\nsuspicion_mult = 5\n"
                               "seeds = ['10.0.0.1:18183', '10.0.0.2:18183']\n"
                               "[replication]\nwrite_quorum = 'majority'\n",
                       &c, NULL),
                  0);
  CU_ASSERT_EQUAL(stm_cluster_config_validate(&c, NULL), 0);
  CU_ASSERT_STRING_EQUAL(c.name, "prod-eu");
  CU_ASSERT_STRING_EQUAL(c.cluster_key, "s3cret");
  CU_ASSERT_EQUAL(c.write_quorum, STM_WRITE_QUORUM_MAJORITY);
  CU_ASSERT_STRING_EQUAL(stm_write_quorum_name(c.write_quorum), "majority");
  CU_ASSERT_EQUAL(c.probe_interval_ms, 200);
  CU_ASSERT_EQUAL(c.probe_timeout_ms, 80);
  CU_ASSERT_EQUAL(c.suspicion_mult, 5);
  CU_ASSERT_TRUE(stm_cluster_config_is_key("cluster.cluster_key"));
  CU_ASSERT_TRUE(stm_cluster_config_is_key("replication.write_quorum"));
  CU_ASSERT_TRUE(stm_cluster_config_is_key("cluster.probe_interval_ms"));
  stm_cluster_config_destroy(&c);
}

static void test_cluster_config_addresses_accept_names_and_ipv6(void) {
  char host[STM_ADDR_MAX + 1];
  uint16_t port = 0;
  CU_ASSERT_EQUAL(stm_addr_parse("a", "[fe80::1]:18183", false, host,
                                 sizeof host, &port, NULL),
                  0);
  CU_ASSERT_STRING_EQUAL(host, "fe80::1");
  CU_ASSERT_EQUAL(port, 18183);
  CU_ASSERT_EQUAL(stm_addr_parse("a", "node1.example.com:18182", false, host,
                                 sizeof host, &port, NULL),
                  0);
  CU_ASSERT_STRING_EQUAL(host, "node1.example.com");
  CU_ASSERT_EQUAL(
      stm_addr_parse("a", "127.0.0.1:0", true, host, sizeof host, &port, NULL),
      0);
  CU_ASSERT_EQUAL(port, 0);
  CU_ASSERT_EQUAL(
      stm_addr_parse("a", "127.0.0.1:0", false, NULL, 0, NULL, NULL),
      STM_EINVAL);
  CU_ASSERT_EQUAL(
      stm_addr_parse("a", "[fe80::1]18183", false, NULL, 0, NULL, NULL),
      STM_EINVAL);
  CU_ASSERT_EQUAL(stm_addr_parse("a", "[host]:1", false, NULL, 0, NULL, NULL),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_addr_parse("a", "h:1x", false, NULL, 0, NULL, NULL),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_addr_parse("a", "a..b:1", false, NULL, 0, NULL, NULL),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_addr_parse("a", "", false, NULL, 0, NULL, NULL),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_addr_parse("a", "h:123456", false, NULL, 0, NULL, NULL),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_addr_parse("a", "abcdef:1", false, host, 4, NULL, NULL),
                  STM_EINVAL);
  CU_ASSERT_TRUE(stm_addr_host_is_wildcard("0.0.0.0"));
  CU_ASSERT_TRUE(stm_addr_host_is_wildcard("::"));
  CU_ASSERT_FALSE(stm_addr_host_is_wildcard("127.0.0.1"));
}

static void test_cluster_config_knows_its_keys(void) {
  CU_ASSERT_TRUE(stm_cluster_config_is_key("cluster.seeds"));
  CU_ASSERT_TRUE(stm_cluster_config_is_key("cluster.node_id"));
  CU_ASSERT_TRUE(stm_cluster_config_is_key("replication.factor"));
  CU_ASSERT_FALSE(stm_cluster_config_is_key("cluster.sedes"));
  CU_ASSERT_FALSE(stm_cluster_config_is_key("server.data_dir"));
}

static const struct stm_test_case cluster_config_cases[] = {
    STM_TEST(test_cluster_config_loads_the_seed_cluster_toml),
    STM_TEST(test_cluster_config_defaults_to_a_single_node),
    STM_TEST(test_cluster_config_later_documents_replace_values),
    STM_TEST(test_cluster_config_wrong_types_name_the_key),
    STM_TEST(test_cluster_config_validation_names_the_bad_key),
    STM_TEST(test_cluster_config_refuses_contradictions_naming_the_key),
    STM_TEST(test_cluster_config_reads_swim_keys_with_documented_defaults),
    STM_TEST(test_cluster_config_addresses_accept_names_and_ipv6),
    STM_TEST(test_cluster_config_knows_its_keys),
    STM_TEST_END};

void stm_test_register_cluster_config(void) {
  stm_test_suite("cluster_config", cluster_config_cases);
}
