/*
 * storage_test.h - what the storage test files share: suite registration
 * and small claim builders.
 */
#ifndef STM_TEST_STORAGE_H
#define STM_TEST_STORAGE_H

#include "harness.h"
#include "storage/claim.h"

#include <stdint.h>

void stm_test_register_crc32c(void);
void stm_test_register_claim(void);
void stm_test_register_wal_format(void);
void stm_test_register_wal(void);
void stm_test_register_wal_seal(void);
void stm_test_register_backup(void);
void stm_test_register_index(void);
void stm_test_register_store(void);
void stm_test_register_records(void);
void stm_test_register_key_records(void);

/* Fill an init'ed claim: a string value, source "test://s", confidence 1. */
void t_claim_fill(struct stm_claim *c, const char *path, const char *pred,
                  const char *value, int64_t timestamp_ns);
/* A malloc'd array of n claims "t/<i>" with distinct values. */
struct stm_claim *t_claims_new(size_t n, const char *path_prefix,
                               uint64_t salt);
void t_claims_free(struct stm_claim *claims, size_t n);

#endif
