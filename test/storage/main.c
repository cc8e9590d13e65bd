/* test_storage: every suite of storage/, one executable. */
#include "storage_test.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void t_claim_fill(struct stm_claim *c, const char *path, const char *pred,
                  const char *value, int64_t timestamp_ns) {
  CU_ASSERT_EQUAL_FATAL(stm_claim_set_str(&c->concept_path, path, strlen(path)),
                        0);
  CU_ASSERT_EQUAL_FATAL(stm_claim_set_str(&c->predicate, pred, strlen(pred)),
                        0);
  CU_ASSERT_EQUAL_FATAL(stm_claim_set_str(&c->source_id, "test://s", 8), 0);
  CU_ASSERT_EQUAL_FATAL(
      stm_value_set_str(&c->value, STM_VALUE_STRING, value, strlen(value)), 0);
  c->timestamp_ns = timestamp_ns;
}

struct stm_claim *t_claims_new(size_t n, const char *path_prefix,
                               uint64_t salt) {
  struct stm_claim *claims = calloc(n, sizeof *claims);
  CU_ASSERT_PTR_NOT_NULL_FATAL(claims);
  for (size_t i = 0; i < n; i++) {
    char path[64], value[64];
    snprintf(path, sizeof path, "%s/%zu", path_prefix, i % 7);
    snprintf(value, sizeof value, "v-%llu-%zu", (unsigned long long)salt, i);
    stm_claim_init(&claims[i]);
    t_claim_fill(&claims[i], path, "p", value, (int64_t)i);
  }
  return claims;
}

void t_claims_free(struct stm_claim *claims, size_t n) {
  for (size_t i = 0; claims && i < n; i++)
    stm_claim_destroy(&claims[i]);
  free(claims);
}

int main(void) {
  /* The fault cases log many expected warnings and errors; keep the output
   * readable unless asked (STM_TEST_LOG=debug|info|warn|error). One above
   * the highest level silences everything. */
  enum stm_log_level level = (enum stm_log_level)(STM_LOG_ERROR + 1);
  const char *env = getenv("STM_TEST_LOG");
  if (env)
    stm_log_parse_level(env, &level);
  stm_log_set_level(level);
  stm_test_register_crc32c();
  stm_test_register_claim();
  stm_test_register_wal_format();
  stm_test_register_wal();
  stm_test_register_wal_seal();
  stm_test_register_backup();
  stm_test_register_index();
  stm_test_register_store();
  stm_test_register_records();
  stm_test_register_key_records();
  return stm_test_run_all();
}
