/*
 * cluster/swim_udp: three real members on 127.0.0.1 (free ports chosen by
 * the kernel) in this process meet, see each other UP, and see a member
 * that leaves as LEFT. Timings are shortened (probe every 50 ms) so it
 * takes well under a second; waits poll a condition with a deadline.
 */
#include "cluster/swim_udp.h"
#include "common/clock.h"
#include "harness.h"
#include "test_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 3

static void fast(struct stm_cluster_config *c, const char *id,
                 const char *seed) {
  stm_cluster_config_init(c);
  c->enabled = true;
  stm_cluster_config_set_string(&c->node_id, id);
  stm_cluster_config_set_string(&c->swim_addr, "127.0.0.1:0");
  stm_cluster_config_set_string(&c->rpc_addr, "127.0.0.1:18182");
  stm_cluster_config_set_string(&c->cluster_key, "test key");
  if (seed)
    stm_cluster_config_set_seeds(c, &seed, 1);
  c->probe_interval_ms = 50;
  c->probe_timeout_ms = 25;
  c->push_pull_interval_ms = 500;
}

/* How many members `node` sees in `state`. */
static int count(struct stm_swim_node *node, enum stm_swim_state state) {
  struct stm_swim_member *m;
  size_t n = stm_swim_node_members(node, &m);
  int c = 0;
  for (size_t i = 0; i < n; i++)
    c += m[i].state == state;
  free(m);
  return c;
}

/* Poll until every node in [0, live) sees `want` members in `state`. */
static bool wait_for(struct stm_swim_node **nodes, int live,
                     enum stm_swim_state state, int want, int64_t limit_ms) {
  int64_t end = stm_clock_mono_ns() + limit_ms * 1000000;
  while (stm_clock_mono_ns() < end) {
    bool ok = true;
    for (int i = 0; i < live && ok; i++)
      ok = count(nodes[i], state) == want;
    if (ok)
      return true;
    nanosleep(&(struct timespec){0, 5000000}, NULL);
  }
  return false;
}

static void test_swim_udp_three_nodes_converge_and_one_leaves(void) {
  struct stm_cluster_config cfg[N];
  struct stm_swim_node *nodes[N] = {0};
  struct stm_error err;
  char seed[STM_ADDR_MAX + 1] = "";
  for (int i = 0; i < N; i++) {
    char id[16];
    snprintf(id, sizeof id, "udp%d", i);
    fast(&cfg[i], id, i ? seed : NULL);
    struct stm_swim_node_options opt = {.random_seed = stm_test_seed() + i};
    int rc = stm_swim_node_start(&cfg[i], &opt, &nodes[i], &err);
    if (rc)
      fprintf(stderr, "\nstart: %s\n", err.message);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    if (i == 0)
      snprintf(seed, sizeof seed, "%s", stm_swim_node_addr(nodes[0]));
  }
  CU_ASSERT_TRUE(strncmp(seed, "127.0.0.1:", 10) == 0 &&
                 strcmp(seed, "127.0.0.1:0") != 0);
  CU_ASSERT_TRUE(wait_for(nodes, N, STM_SWIM_UP, N, 10000));
  /* The snapshot's times are wall-clock. */
  struct stm_swim_member *m;
  size_t n = stm_swim_node_members(nodes[1], &m);
  CU_ASSERT_EQUAL(n, N);
  int64_t now = stm_clock_now_ns();
  /* 0 would mean "known from gossip only, never heard directly". */
  for (size_t i = 0; i < n; i++)
    CU_ASSERT_TRUE(m[i].last_seen_ns == 0 ||
                   (m[i].last_seen_ns > now - 60 * INT64_C(1000000000) &&
                    m[i].last_seen_ns <= now));
  CU_ASSERT_TRUE(m[0].last_seen_ns > now - 60 * INT64_C(1000000000));
  CU_ASSERT_STRING_EQUAL(m[0].id, "udp1");
  CU_ASSERT_TRUE(m[0].self);
  free(m);
  /* A member with another cluster_key knocks: node 0 drops its datagrams
   * (counted) and it joins nobody. */
  struct stm_cluster_config wrong;
  fast(&wrong, "stranger", seed);
  stm_cluster_config_set_string(&wrong.cluster_key, "not the key");
  struct stm_swim_node *stranger = NULL;
  CU_ASSERT_EQUAL_FATAL(stm_swim_node_start(&wrong, NULL, &stranger, &err), 0);
  struct stm_swim_stats st0 = {0};
  int64_t end = stm_clock_mono_ns() + 10 * INT64_C(1000000000);
  while (st0.dropped_auth == 0 && stm_clock_mono_ns() < end) {
    nanosleep(&(struct timespec){0, 5000000}, NULL);
    stm_swim_node_stats(nodes[0], &st0);
  }
  CU_ASSERT_TRUE(st0.dropped_auth > 0);
  CU_ASSERT_EQUAL(count(nodes[0], STM_SWIM_UP), N);
  CU_ASSERT_EQUAL(count(stranger, STM_SWIM_UP), 1);
  stm_swim_node_stop(stranger, 0);
  stm_cluster_config_destroy(&wrong);
  uint32_t meta = 42;
  CU_ASSERT_EQUAL(stm_swim_node_set_meta(nodes[0], &meta, sizeof meta), 0);
  /* node 2 says goodbye; the other two see it LEFT. */
  stm_swim_node_stop(nodes[2], 200);
  nodes[2] = NULL;
  CU_ASSERT_TRUE(wait_for(nodes, 2, STM_SWIM_LEFT, 1, 10000));
  struct stm_swim_stats st;
  stm_swim_node_stats(nodes[1], &st);
  CU_ASSERT_TRUE(st.received > 0);
  CU_ASSERT_EQUAL(st.dropped_auth, 0);
  for (int i = 0; i < N; i++) {
    stm_swim_node_stop(nodes[i], 0);
    stm_cluster_config_destroy(&cfg[i]);
  }
}

static void test_swim_udp_start_errors_name_the_key(void) {
  struct stm_cluster_config c;
  struct stm_swim_node *node = NULL;
  struct stm_error err;
  fast(&c, "x", NULL);
  stm_cluster_config_set_string(&c.swim_addr, "no-such-host.invalid:18183");
  CU_ASSERT_EQUAL(stm_swim_node_start(&c, NULL, &node, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "cluster.swim_addr");
  CU_ASSERT_PTR_NULL(node);
  stm_cluster_config_set_string(&c.node_id, NULL);
  CU_ASSERT_EQUAL(stm_swim_node_start(&c, NULL, &node, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "cluster.node_id");
  /* Two members cannot bind the same port. */
  stm_cluster_config_destroy(&c);
  fast(&c, "a", NULL);
  struct stm_swim_node *a = NULL, *b = NULL;
  CU_ASSERT_EQUAL_FATAL(stm_swim_node_start(&c, NULL, &a, &err), 0);
  stm_cluster_config_set_string(&c.swim_addr, stm_swim_node_addr(a));
  CU_ASSERT_EQUAL(stm_swim_node_start(&c, NULL, &b, &err), STM_EIO);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot bind"));
  stm_swim_node_stop(a, 0);
  stm_swim_node_stop(b, 0);
  stm_cluster_config_destroy(&c);
}

static const struct stm_test_case swim_udp_cases[] = {
    STM_TEST(test_swim_udp_three_nodes_converge_and_one_leaves),
    STM_TEST(test_swim_udp_start_errors_name_the_key), STM_TEST_END};

void stm_test_register_swim_udp(void) {
  stm_test_suite("swim_udp", swim_udp_cases);
}
