/*
 * Tests for service/cluster_node: the runtime against a real SWIM peer on
 * loopback (port 0), with a fake sync function standing in for
 * replication: a shard move goes pending -> copying -> done only once the
 * copy succeeds; removing a DOWN node marks it LEFT; the map survives on
 * disk.
 */
#include "cluster/swim_udp.h"
#include "harness.h"
#include "service/cluster_node.h"

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sleep_ms(int ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* Poll pred for up to 10 s. */
static bool eventually(bool (*pred)(void *), void *arg) {
  for (int i = 0; i < 1000; i++) {
    if (pred(arg))
      return true;
    sleep_ms(10);
  }
  return false;
}

/* The first of 16 shards whose single replica is this node, with its name
 * in sid; 16 when there is none. */
static uint32_t own_shard(char sid[STM_SHARD_NAME_MAX]) {
  struct stm_cluster_peer p[4];
  uint32_t s = 0;
  while (s < 16 && (stm_cluster_replicas(s, p, 4) != 1 || !p[0].self))
    s++;
  if (s < 16)
    stm_placement_shard_name(s, sid, STM_SHARD_NAME_MAX);
  return s;
}

static void fast(struct stm_cluster_config *c, const char *id,
                 const char *seed) {
  stm_cluster_config_init(c);
  c->enabled = true;
  stm_cluster_config_set_string(&c->node_id, id);
  stm_cluster_config_set_string(&c->rpc_addr, "127.0.0.1:1");
  stm_cluster_config_set_string(&c->swim_addr, "127.0.0.1:0");
  stm_cluster_config_set_seeds(c, &seed, 1);
  c->shards = 16;
  c->probe_interval_ms = 50;
  c->probe_timeout_ms = 25;
  c->suspicion_mult = 1;
  c->suspicion_max_mult = 2;
  c->push_pull_interval_ms = 500;
}

/* The fake replication: records (shard, target) pairs. */
static pthread_mutex_t calls_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  uint32_t shard;
  char target[32];
} calls[256];
static size_t n_calls;
static bool fail_to_b; /* copies to "b" fail (a target that died) */

static int fake_sync(void *arg, uint32_t shard, const char *target,
                     struct stm_error *err) {
  pthread_mutex_lock(&calls_mu);
  if (n_calls < 256) {
    calls[n_calls].shard = shard;
    snprintf(calls[n_calls].target, sizeof calls[0].target, "%s", target);
    n_calls++;
  }
  bool fail = strcmp(target, "b") == 0 && fail_to_b;
  pthread_mutex_unlock(&calls_mu);
  return fail ? stm_error_set(err, STM_EIO, NULL, "b unreachable") : 0;
}

static bool called(uint32_t shard, const char *target) {
  pthread_mutex_lock(&calls_mu);
  bool found = false;
  for (size_t i = 0; i < n_calls; i++)
    found |= calls[i].shard == shard && strcmp(calls[i].target, target) == 0;
  pthread_mutex_unlock(&calls_mu);
  return found;
}

static bool b_is_up(void *arg) { return stm_cluster_is_up("b"); }

static bool b_state(void *arg) {
  struct stm_cluster_member *m = NULL;
  size_t n = stm_cluster_members_snapshot(&m);
  bool ok = false;
  for (size_t i = 0; i < n; i++)
    ok |=
        strcmp(m[i].id, "b") == 0 && m[i].state == *(enum stm_swim_state *)arg;
  free(m);
  return ok;
}

static const char *status_of(uint32_t shard, struct stm_cluster_shard_info *o) {
  struct stm_cluster_shard_info *info = NULL;
  size_t n = stm_cluster_shards(&info, NULL, NULL);
  CU_ASSERT_FATAL(shard < n);
  *o = info[shard];
  free(info);
  return o->rebalance_status;
}

static bool move_done(void *arg) {
  struct stm_cluster_shard_info o;
  return strcmp(status_of(*(uint32_t *)arg, &o), "done") == 0;
}

static void test_cluster_node_move_and_remove_with_a_real_peer(void) {
  struct stm_cluster_config cb, ca;
  struct stm_error err;
  stm_error_clear(&err);
  fast(&cb, "b", "127.0.0.1:9");
  struct stm_swim_node *b = NULL;
  CU_ASSERT_EQUAL_FATAL(stm_swim_node_start(&cb, NULL, &b, &err), 0);
  fast(&ca, "a", stm_swim_node_addr(b));
  char *dir = stm_test_tmpdir("cluster-node");
  CU_ASSERT_EQUAL_FATAL(
      stm_cluster_start(&ca, "a", "127.0.0.1:1", dir, NULL, &err), 0);
  CU_ASSERT_TRUE(stm_cluster_enabled());
  CU_ASSERT_STRING_EQUAL(stm_cluster_self_id(), "a");
  CU_ASSERT_TRUE_FATAL(eventually(b_is_up, NULL));
  struct stm_cluster_health h;
  stm_cluster_health(&h);
  CU_ASSERT_STRING_EQUAL(h.status, "healthy");
  CU_ASSERT_TRUE(h.quorum);
  CU_ASSERT_EQUAL(h.total, 2);

  /* Factor 1: a shard "a" holds moves to "b". */
  char sid[STM_SHARD_NAME_MAX];
  uint32_t s = own_shard(sid);
  CU_ASSERT_FATAL(s < 16);
  struct stm_cluster_peer p[4];
  struct stm_cluster_shard_info o;
  CU_ASSERT_EQUAL(stm_cluster_rebalance(sid, "b", "test", &o, &err), 0);
  CU_ASSERT_STRING_EQUAL(o.rebalance_status, "pending");
  CU_ASSERT_EQUAL(o.replica_count, 2);
  /* Without a copy function it waits: never "done" without the data. */
  sleep_ms(300);
  CU_ASSERT_STRING_EQUAL(status_of(s, &o), "pending");
  CU_ASSERT_EQUAL(stm_cluster_rebalance(sid, "b", "again", &o, &err),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_cluster_rebalance("shard-99", "b", "", &o, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "shard_id");
  CU_ASSERT_EQUAL(stm_cluster_rebalance("shard-1", "zz", "", &o, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "target_node");
  stm_cluster_set_sync_fn(fake_sync, NULL);
  CU_ASSERT_TRUE_FATAL(eventually(move_done, &s));
  CU_ASSERT_TRUE(called(s, "b"));
  status_of(s, &o);
  CU_ASSERT_EQUAL(o.replica_count, 1);
  CU_ASSERT_STRING_EQUAL(o.replicas[0], "b");

  /* Persisted: pending, copying, done = version 3. */
  char path[600];
  snprintf(path, sizeof path, "%s/cluster/shard-map", dir);
  struct stm_shard_map m;
  stm_shard_map_init(&m, 16);
  CU_ASSERT_EQUAL(stm_shard_map_load(&m, path, &err), 0);
  CU_ASSERT_EQUAL(m.version, 3);
  stm_shard_map_destroy(&m);

  /* b's shards, then b dies: removal marks it LEFT. */
  bool held[16];
  for (uint32_t i = 0; i < 16; i++)
    held[i] = stm_cluster_replicas(i, p, 4) == 1 && strcmp(p[0].id, "b") == 0;
  const char *st = NULL;
  CU_ASSERT_EQUAL(stm_cluster_remove("b", false, &st, &err), STM_EINVAL);
  CU_ASSERT_EQUAL(stm_cluster_remove("a", false, &st, &err), STM_EINVAL);
  CU_ASSERT_EQUAL(stm_cluster_remove("q", false, &st, &err), STM_ENOTFOUND);
  stm_swim_node_stop(b, 0);
  enum stm_swim_state down = STM_SWIM_DOWN, left = STM_SWIM_LEFT;
  CU_ASSERT_TRUE_FATAL(eventually(b_state, &down));
  stm_cluster_health(&h);
  CU_ASSERT_STRING_EQUAL(h.status, "unhealthy"); /* 1 of 2 is no majority */
  CU_ASSERT_EQUAL(stm_cluster_remove("b", false, &st, &err), 0);
  CU_ASSERT_STRING_EQUAL(st, "draining");
  CU_ASSERT_TRUE_FATAL(eventually(b_state, &left));
  /* Factor 1: b held those shards alone; no survivor has them, so no
   * copy is pretended (the data path's real drains are in
   * test_cluster_membership.py, factor 2). */
  for (uint32_t i = 0; i < 16; i++)
    if (held[i])
      CU_ASSERT_FALSE(called(i, "a"));
  stm_cluster_health(&h);
  CU_ASSERT_STRING_EQUAL(h.status, "healthy");
  struct stm_buf text;
  stm_buf_init(&text);
  CU_ASSERT_EQUAL(stm_cluster_metrics_append(&text), 0);
  CU_ASSERT_PTR_NOT_NULL(
      strstr((char *)text.data, "cluster_members{status=\"LEFT\"} 1"));
  stm_buf_destroy(&text);

  stm_cluster_stop();
  CU_ASSERT_FALSE(stm_cluster_enabled());
  stm_cluster_config_destroy(&ca);
  stm_cluster_config_destroy(&cb);
  stm_test_rmrf(dir);
  free(dir);
}

static void test_cluster_node_single_node_answers_as_one_member(void) {
  struct stm_cluster_config c;
  stm_cluster_config_init(&c);
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL_FATAL(
      stm_cluster_start(&c, "solo", "127.0.0.1:5", "/nonexistent", NULL, &err),
      0);
  CU_ASSERT_FALSE(stm_cluster_enabled());
  struct stm_cluster_member *m = NULL;
  CU_ASSERT_EQUAL(stm_cluster_members_snapshot(&m), 1);
  CU_ASSERT_STRING_EQUAL(m[0].id, "solo");
  CU_ASSERT_EQUAL(m[0].state, STM_SWIM_UP);
  free(m);
  struct stm_cluster_health h;
  stm_cluster_health(&h);
  CU_ASSERT_TRUE(h.quorum);
  CU_ASSERT_STRING_EQUAL(h.status, "healthy");
  struct stm_cluster_peer p[2];
  CU_ASSERT_EQUAL(stm_cluster_replicas(0, p, 2), 1);
  CU_ASSERT_STRING_EQUAL(p[0].rpc_addr, "127.0.0.1:5");
  CU_ASSERT_PTR_NULL(stm_cluster_peer_channel("solo"));
  struct stm_buf text;
  stm_buf_init(&text);
  CU_ASSERT_EQUAL(stm_cluster_metrics_append(&text), 0);
  CU_ASSERT_EQUAL(text.len, 0); /* no cluster_members when not clustered */
  stm_buf_destroy(&text);
  const char *st;
  CU_ASSERT_EQUAL(stm_cluster_remove("x", false, &st, &err), STM_EINVAL);
  stm_cluster_stop();
  stm_cluster_config_destroy(&c);
}

static bool c_is_up(void *arg) { return stm_cluster_is_up("c"); }

static bool copying(void *arg) {
  struct stm_cluster_shard_info o;
  return strcmp(status_of(*(uint32_t *)arg, &o), "copying") == 0;
}

/* A move whose target dies is not stuck: a new request for the shard
 * abandons it and moves the shard elsewhere. */
static void test_cluster_node_a_move_to_a_dead_target_can_be_replaced(void) {
  struct stm_cluster_config cb, cc, ca;
  struct stm_error err;
  stm_error_clear(&err);
  fast(&cb, "b", "127.0.0.1:9");
  struct stm_swim_node *b = NULL, *cn = NULL;
  CU_ASSERT_EQUAL_FATAL(stm_swim_node_start(&cb, NULL, &b, &err), 0);
  fast(&cc, "c", stm_swim_node_addr(b));
  CU_ASSERT_EQUAL_FATAL(stm_swim_node_start(&cc, NULL, &cn, &err), 0);
  fast(&ca, "a", stm_swim_node_addr(b));
  char *dir = stm_test_tmpdir("cluster-node-dead");
  CU_ASSERT_EQUAL_FATAL(
      stm_cluster_start(&ca, "a", "127.0.0.1:1", dir, NULL, &err), 0);
  CU_ASSERT_TRUE_FATAL(eventually(b_is_up, NULL));
  CU_ASSERT_TRUE_FATAL(eventually(c_is_up, NULL));
  pthread_mutex_lock(&calls_mu);
  fail_to_b = true;
  pthread_mutex_unlock(&calls_mu);
  stm_cluster_set_sync_fn(fake_sync, NULL);
  char sid[STM_SHARD_NAME_MAX];
  uint32_t s = own_shard(sid);
  CU_ASSERT_FATAL(s < 16);
  struct stm_cluster_shard_info o;
  CU_ASSERT_EQUAL(stm_cluster_rebalance(sid, "b", "", &o, &err), 0);
  CU_ASSERT_TRUE_FATAL(eventually(copying, &s));
  /* While b is UP, the running move blocks another. */
  CU_ASSERT_EQUAL(stm_cluster_rebalance(sid, "c", "", &o, &err), STM_EINVAL);
  stm_swim_node_stop(b, 0);
  enum stm_swim_state down = STM_SWIM_DOWN;
  CU_ASSERT_TRUE_FATAL(eventually(b_state, &down));
  CU_ASSERT_EQUAL(stm_cluster_rebalance(sid, "c", "", &o, &err), 0);
  CU_ASSERT_TRUE_FATAL(eventually(move_done, &s));
  status_of(s, &o);
  CU_ASSERT_EQUAL(o.replica_count, 1);
  CU_ASSERT_STRING_EQUAL(o.replicas[0], "c");
  CU_ASSERT_TRUE(called(s, "c"));
  stm_cluster_stop();
  stm_swim_node_stop(cn, 0);
  stm_cluster_config_destroy(&ca);
  stm_cluster_config_destroy(&cb);
  stm_cluster_config_destroy(&cc);
  stm_test_rmrf(dir);
  free(dir);
}

int main(void) {
  grpc_init();
  static const struct stm_test_case cases[] = {
      STM_TEST(test_cluster_node_single_node_answers_as_one_member),
      STM_TEST(test_cluster_node_move_and_remove_with_a_real_peer),
      STM_TEST(test_cluster_node_a_move_to_a_dead_target_can_be_replaced),
      STM_TEST_END};
  stm_test_suite("cluster_node", cases);
  int rc = stm_test_run_all();
  grpc_shutdown();
  return rc;
}
