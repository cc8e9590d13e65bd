/* Tests for cluster/placement: shards, rendezvous and the shard map. */
#include "cluster/placement.h"
#include "harness.h"
#include "test_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const five[] = {"node1", "node2", "node3", "node4", "node5"};

static void test_placement_shard_of_is_stable_and_in_range(void) {
  uint32_t a = stm_placement_shard_of("test/cluster", 64);
  CU_ASSERT_EQUAL(a, stm_placement_shard_of("test/cluster", 64));
  CU_ASSERT_TRUE(a < 64);
  CU_ASSERT_EQUAL(stm_placement_shard_of("anything", 1), 0);
  /* 6400 paths spread over 64 shards: none empty, none above 3x mean. */
  unsigned counts[64] = {0};
  for (int i = 0; i < 6400; i++) {
    char path[32];
    snprintf(path, sizeof path, "c/%d", i);
    counts[stm_placement_shard_of(path, 64)]++;
  }
  for (int i = 0; i < 64; i++) {
    CU_ASSERT_TRUE(counts[i] > 0);
    CU_ASSERT_TRUE(counts[i] < 300);
  }
}

static void test_placement_shard_names_round_trip(void) {
  char name[STM_SHARD_NAME_MAX];
  stm_placement_shard_name(17, name, sizeof name);
  CU_ASSERT_STRING_EQUAL(name, "shard-17");
  uint32_t s = 99;
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(stm_placement_shard_parse("shard_id", name, 64, &s, &err), 0);
  CU_ASSERT_EQUAL(s, 17);
  CU_ASSERT_EQUAL(stm_placement_shard_parse("shard_id", "3", 64, &s, &err), 0);
  CU_ASSERT_EQUAL(s, 3);
  CU_ASSERT_EQUAL(
      stm_placement_shard_parse("shard_id", "shard-64", 64, &s, &err),
      STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "shard_id");
  CU_ASSERT_EQUAL(
      stm_placement_shard_parse("shard_id", "shard-abc123", 64, &s, &err),
      STM_EINVAL);
  CU_ASSERT_EQUAL(stm_placement_shard_parse("shard_id", "", 64, &s, &err),
                  STM_EINVAL);
}

static void test_placement_rendezvous_picks_the_top_scores(void) {
  for (uint32_t shard = 0; shard < 32; shard++) {
    size_t out[3];
    size_t k = stm_placement_rendezvous(shard, five, 5, 3, out);
    CU_ASSERT_EQUAL_FATAL(k, 3);
    /* Best first, and nobody left out scores higher than the last. */
    uint64_t last = stm_placement_score(shard, five[out[2]]);
    CU_ASSERT_TRUE(stm_placement_score(shard, five[out[0]]) >=
                   stm_placement_score(shard, five[out[1]]));
    CU_ASSERT_TRUE(stm_placement_score(shard, five[out[1]]) >= last);
    for (size_t i = 0; i < 5; i++)
      if (i != out[0] && i != out[1] && i != out[2])
        CU_ASSERT_TRUE(stm_placement_score(shard, five[i]) <= last);
  }
  size_t out[4];
  CU_ASSERT_EQUAL(stm_placement_rendezvous(0, five, 2, 4, out), 2);
  CU_ASSERT_EQUAL(stm_placement_rendezvous(0, five, 0, 4, out), 0);
}

/* Removing a node moves only the shards it held (the rendezvous promise). */
static void test_placement_leaving_node_moves_only_its_shards(void) {
  unsigned moved = 0;
  for (uint32_t shard = 0; shard < 64; shard++) {
    const char *before[2], *after[2];
    size_t nb = stm_placement_replicas(NULL, shard, five, 5, 2, before, 2);
    size_t na = stm_placement_replicas(NULL, shard, five, 4, 2, after, 2);
    CU_ASSERT_EQUAL(nb, 2);
    CU_ASSERT_EQUAL(na, 2);
    bool held =
        strcmp(before[0], "node5") == 0 || strcmp(before[1], "node5") == 0;
    if (!held) {
      CU_ASSERT_STRING_EQUAL(before[0], after[0]);
      CU_ASSERT_STRING_EQUAL(before[1], after[1]);
    } else {
      moved++;
    }
  }
  CU_ASSERT_TRUE(moved > 0 && moved < 64);
}

static void test_placement_move_pending_to_done(void) {
  struct stm_shard_map m;
  stm_shard_map_init(&m, 64);
  struct stm_error err;
  stm_error_clear(&err);
  const char *cur[2];
  size_t n = stm_placement_replicas(&m, 5, five, 3, 2, cur, 2);
  CU_ASSERT_EQUAL_FATAL(n, 2);
  CU_ASSERT_EQUAL(stm_shard_map_move(&m, 5, "node4", cur, n, 2, &err), 0);
  CU_ASSERT_EQUAL(m.version, 1);
  const struct stm_shard_entry *e = stm_shard_map_find(&m, 5);
  CU_ASSERT_PTR_NOT_NULL_FATAL(e);
  CU_ASSERT_EQUAL(e->status, STM_SHARD_PENDING);
  CU_ASSERT_EQUAL(e->replica_count, 3);
  CU_ASSERT_STRING_EQUAL(e->drop, cur[1]);
  char dropped[STM_NODE_ID_MAX + 1];
  snprintf(dropped, sizeof dropped, "%s", cur[1]);
  /* While copying, writes reach the old replicas and the target. */
  const char *now[4];
  CU_ASSERT_EQUAL(stm_placement_replicas(&m, 5, five, 4, 2, now, 4), 3);
  /* A second move of the same shard waits for the first. */
  CU_ASSERT_EQUAL(stm_shard_map_move(&m, 5, "node5", now, 3, 2, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "shard_id");
  CU_ASSERT_EQUAL(stm_shard_map_set_status(&m, 5, STM_SHARD_COPYING), 0);
  CU_ASSERT_EQUAL(stm_shard_map_set_status(&m, 5, STM_SHARD_DONE), 0);
  CU_ASSERT_EQUAL(m.version, 3);
  CU_ASSERT_EQUAL(stm_placement_replicas(&m, 5, five, 4, 2, now, 4), 2);
  CU_ASSERT_TRUE(strcmp(now[0], "node4") == 0 || strcmp(now[1], "node4") == 0);
  CU_ASSERT_TRUE(strcmp(now[0], dropped) != 0 && strcmp(now[1], dropped) != 0);
  /* Already a replica: refused, naming target_node. */
  CU_ASSERT_EQUAL(stm_shard_map_move(&m, 5, "node4", now, 2, 2, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "target_node");
  CU_ASSERT_EQUAL(stm_shard_map_set_status(&m, 6, STM_SHARD_DONE),
                  STM_ENOTFOUND);
  /* A move whose target died is abandoned: old replicas only. */
  const char *two[] = {"node1", "node2"};
  CU_ASSERT_EQUAL(stm_shard_map_move(&m, 7, "node5", two, 2, 2, &err), 0);
  CU_ASSERT_EQUAL(stm_shard_map_cancel(&m, 7), 0);
  e = stm_shard_map_find(&m, 7);
  CU_ASSERT_EQUAL(e->status, STM_SHARD_DONE);
  CU_ASSERT_EQUAL(e->replica_count, 2);
  CU_ASSERT_STRING_EQUAL(e->replicas[1], "node2");
  CU_ASSERT_STRING_EQUAL(e->target, "");
  CU_ASSERT_EQUAL(stm_shard_map_cancel(&m, 7), STM_ENOTFOUND);
  CU_ASSERT_EQUAL(stm_shard_map_move(&m, 7, "node4", two, 2, 2, &err), 0);
  stm_shard_map_destroy(&m);
}

static void test_placement_map_text_and_file_round_trip(void) {
  struct stm_shard_map m, back;
  stm_shard_map_init(&m, 64);
  stm_shard_map_init(&back, 64);
  struct stm_error err;
  stm_error_clear(&err);
  const char *cur[] = {"node1", "node2"};
  CU_ASSERT_EQUAL(stm_shard_map_move(&m, 9, "node4", cur, 2, 2, &err), 0);
  CU_ASSERT_EQUAL(stm_shard_map_move(&m, 2, "node3", cur, 1, 2, &err), 0);
  char *dir = stm_test_tmpdir("placement");
  char path[512];
  snprintf(path, sizeof path, "%s/shard-map", dir);
  CU_ASSERT_EQUAL(stm_shard_map_load(&back, path, &err), 0); /* missing */
  CU_ASSERT_EQUAL(back.version, 0);
  CU_ASSERT_EQUAL(stm_shard_map_save(&m, path, &err), 0);
  CU_ASSERT_EQUAL(stm_shard_map_load(&back, path, &err), 0);
  CU_ASSERT_EQUAL(back.version, 2);
  CU_ASSERT_EQUAL(back.count, 2);
  CU_ASSERT_EQUAL(back.entries[0].shard, 2);
  CU_ASSERT_STRING_EQUAL(back.entries[0].drop, "");
  CU_ASSERT_EQUAL(back.entries[1].replica_count, 3);
  CU_ASSERT_STRING_EQUAL(back.entries[1].replicas[2], "node4");
  CU_ASSERT_STRING_EQUAL(back.entries[1].drop, "node2");
  static const char *bad[] = {
      "", "stemedb-shard-map 2\nversion 1\nshards 64\n",
      "stemedb-shard-map 1\nversion 1\nshards 64\nshard 64 done - - a\n",
      "stemedb-shard-map 1\nversion 1\nshards 64\nshard 1 moving - - a\n",
      "stemedb-shard-map 1\nversion 1\nshards 64\nshard 1 done - - a b\n",
      /* counters are digits only: sscanf took a sign, a tail, a wrap */
      "stemedb-shard-map 1\nversion -1\nshards 64\n",
      "stemedb-shard-map 1\nversion 3x\nshards 64\n",
      "stemedb-shard-map 1\nversion 99999999999999999999\nshards 64\n",
      "stemedb-shard-map 1\nversion 1\nshards 64 \n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CU_ASSERT_EQUAL(stm_shard_map_parse(&back, bad[i], strlen(bad[i]), &err),
                    STM_EINVAL);
    CU_ASSERT_EQUAL(back.version, 2); /* unchanged on failure */
  }
  stm_test_rmrf(dir);
  free(dir);
  stm_shard_map_destroy(&m);
  stm_shard_map_destroy(&back);
}

void stm_test_register_placement(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_placement_shard_of_is_stable_and_in_range),
      STM_TEST(test_placement_shard_names_round_trip),
      STM_TEST(test_placement_rendezvous_picks_the_top_scores),
      STM_TEST(test_placement_leaving_node_moves_only_its_shards),
      STM_TEST(test_placement_move_pending_to_done),
      STM_TEST(test_placement_map_text_and_file_round_trip),
      STM_TEST_END};
  stm_test_suite("placement", cases);
}
