/*
 * libFuzzer target for cluster/toml. Build and run (clang only):
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DSTM_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_toml && build-fuzz/test/cluster/fuzz_toml
 * Every input must parse or fail with a "line L, column C" message, and
 * every key of a parsed document must be found again by name.
 */
#include "cluster/toml.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct stm_toml_doc *doc = NULL;
  struct stm_error err;
  stm_error_clear(&err);
  int rc = stm_toml_parse((const char *)data, size, &doc, &err);
  if (rc != 0 && (rc != STM_EINVAL || strncmp(err.message, "line ", 5) != 0))
    abort();
  for (size_t i = 0; doc && i < stm_toml_count(doc); i++) {
    const struct stm_toml_item *it = stm_toml_item_at(doc, i);
    if (stm_toml_find(doc, it->key) != it)
      abort();
  }
  stm_toml_delete(doc);
  return 0;
}
