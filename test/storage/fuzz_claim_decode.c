/*
 * libFuzzer target for stm_claim_decode (build with -DSTM_FUZZ=ON and
 * clang). Property: the decoder accepts exactly what the encoder produces,
 * so every accepted input re-encodes to the same bytes.
 */
#include "storage/claim.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct stm_claim c;
  stm_claim_init(&c);
  if (stm_claim_decode(data, size, &c, NULL) == 0) {
    struct stm_buf b;
    stm_buf_init(&b);
    if (stm_claim_encode(&c, &b) != 0 || b.len != size ||
        memcmp(b.data, data, size) != 0)
      abort();
    stm_buf_destroy(&b);
  }
  stm_claim_destroy(&c);
  return 0;
}
