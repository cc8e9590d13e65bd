/*
 * libFuzzer target for the WAL framing (build with -DSTM_FUZZ=ON and
 * clang): walk arbitrary bytes as a segment body the way recovery does -
 * record frames, TXN payloads, entries - and never read out of bounds.
 */
#include "storage/wal_format.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t first;
  (void)stm_wal_header_decode(data, data + size, &first, NULL);
  const uint8_t *pos = data, *end = data + size;
  struct stm_wal_record rec;
  while (stm_wal_record_decode(pos, end, &rec, NULL) == STM_WAL_DECODE_OK) {
    struct stm_wal_txn txn;
    if (stm_wal_txn_decode(rec.payload, rec.payload + rec.payload_len, &txn,
                           NULL) == 0) {
      struct stm_wal_txn_iter it;
      struct stm_wal_entry e;
      uint32_t n = 0;
      stm_wal_txn_iter_init(&it, &txn);
      while (stm_wal_txn_next(&it, &e))
        n++;
      if (n != txn.count)
        abort();
    }
    pos += rec.size;
  }
  return 0;
}
