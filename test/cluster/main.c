/* test_cluster: one executable for everything under cluster/. */
#include "harness.h"
#include "test_cluster.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

uint64_t stm_test_seed(void) {
  static uint64_t seed;
  if (seed == 0) {
    const char *env = getenv("STM_TEST_SEED");
    seed = env && *env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    if (seed == 0)
      seed = 1;
    fprintf(stderr, "test_cluster: STM_TEST_SEED=%" PRIu64 "\n", seed);
  }
  return seed;
}

int main(void) {
  stm_test_register_toml();
  stm_test_register_cluster_config();
  stm_test_register_swim_format();
  stm_test_register_swim();
  stm_test_register_swim_udp();
  stm_test_register_placement();
  return stm_test_run_all();
}
