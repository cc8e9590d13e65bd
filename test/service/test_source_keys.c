/* Tests for service/source_keys.c: hits only for the same id and version. */
#include "harness.h"
#include "service/source_keys.h"

#include <stdio.h>
#include <string.h>

static void test_source_keys_hit_needs_the_same_id_and_version(void) {
  struct stm_source_keys *c = stm_source_keys_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  uint8_t key[STM_PUBLIC_KEY_LEN], got[STM_PUBLIC_KEY_LEN];
  memset(key, 0xab, sizeof key);
  bool has = false;
  CU_ASSERT_FALSE(stm_source_keys_get(c, "lab://a", 0, &has, got));
  stm_source_keys_put(c, "lab://a", 3, true, key);
  CU_ASSERT_TRUE(stm_source_keys_get(c, "lab://a", 3, &has, got));
  CU_ASSERT_TRUE(has);
  CU_ASSERT_EQUAL(memcmp(got, key, sizeof key), 0);
  /* A source committed since: the entry is stale. */
  CU_ASSERT_FALSE(stm_source_keys_get(c, "lab://a", 4, &has, got));
  CU_ASSERT_FALSE(stm_source_keys_get(c, "lab://b", 3, &has, got));
  stm_source_keys_put(c, "lab://a", 4, false, key);
  CU_ASSERT_TRUE(stm_source_keys_get(c, "lab://a", 4, &has, got));
  CU_ASSERT_FALSE(has);
  stm_source_keys_delete(c);
}

static void test_source_keys_collisions_and_long_ids_only_miss(void) {
  struct stm_source_keys *c = stm_source_keys_new();
  uint8_t key[STM_PUBLIC_KEY_LEN] = {0}, got[STM_PUBLIC_KEY_LEN];
  bool has;
  char id[32];
  /* More ids than slots: every get is a miss or the right answer. */
  for (int i = 0; i < 1000; i++) {
    snprintf(id, sizeof id, "src://%d", i);
    key[0] = (uint8_t)i;
    stm_source_keys_put(c, id, 1, i % 2 == 0, key);
  }
  int hits = 0;
  for (int i = 0; i < 1000; i++) {
    snprintf(id, sizeof id, "src://%d", i);
    if (stm_source_keys_get(c, id, 1, &has, got)) {
      hits++;
      CU_ASSERT_EQUAL(has, i % 2 == 0);
      CU_ASSERT_EQUAL(got[0], (uint8_t)i);
    }
  }
  CU_ASSERT_TRUE(hits > 0 && hits <= 256);
  char long_id[300];
  memset(long_id, 'x', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  stm_source_keys_put(c, long_id, 1, true, key);
  CU_ASSERT_FALSE(stm_source_keys_get(c, long_id, 1, &has, got));
  /* NULL cache: always a miss, put is a no-op. */
  stm_source_keys_put(NULL, "a", 1, true, key);
  CU_ASSERT_FALSE(stm_source_keys_get(NULL, "a", 1, &has, got));
  stm_source_keys_delete(c);
}

void stm_test_register_source_keys(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_source_keys_hit_needs_the_same_id_and_version),
      STM_TEST(test_source_keys_collisions_and_long_ids_only_miss),
      STM_TEST_END};
  stm_test_suite("source_keys", cases);
}
