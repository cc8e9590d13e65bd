/* Shared by the test files of test/cluster (one executable). */
#ifndef STM_TEST_CLUSTER_H
#define STM_TEST_CLUSTER_H

#include <stdint.h>

/* The seed's cluster.toml texts, verbatim (test_toml.c). */
#include "fixtures/seed_toml.h"
extern const char stm_test_seed_node2_toml[];

/* The random seed of this run: $STM_TEST_SEED or the time; printed once. */
uint64_t stm_test_seed(void);

void stm_test_register_toml(void);
void stm_test_register_cluster_config(void);
void stm_test_register_swim(void);
void stm_test_register_swim_format(void);
void stm_test_register_swim_udp(void);
void stm_test_register_placement(void);

#endif
