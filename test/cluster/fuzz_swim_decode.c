/*
 * libFuzzer target for stm_swim_decode (build with -DSTM_FUZZ=ON and clang,
 * as test/storage/CMakeLists.txt shows). Each input is tried twice: as a
 * raw datagram (must be refused: it has no valid tag), and with a valid tag
 * appended, which reaches the protobuf parser and the field bounds.
 * Property: whatever decodes re-encodes and decodes to the same message.
 */
#include "cluster/swim_format.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct stm_swim_msg m, back;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct stm_swim_codec c;
  static int ready;
  if (!ready) {
    if (stm_swim_codec_init(&c, "stemedb", "fuzz", 4, NULL) != 0)
      abort();
    ready = 1;
  }
  if (stm_swim_decode(&c, data, data + size, &m, NULL) == 0)
    abort(); /* forged: a random input cannot carry a valid tag */
  if (size + STM_SWIM_TAG_BYTES > STM_SWIM_MAX_DATAGRAM)
    return 0;
  uint8_t buf[STM_SWIM_MAX_DATAGRAM];
  memcpy(buf, data, size);
  crypto_auth(buf + size, buf, size, c.key);
  if (stm_swim_decode(&c, buf, buf + size + STM_SWIM_TAG_BYTES, &m, NULL) != 0)
    return 0;
  uint8_t out[STM_SWIM_MAX_DATAGRAM];
  size_t len;
  if (stm_swim_encode(&c, &m, out, sizeof out, &len) != 0 ||
      stm_swim_decode(&c, out, out + len, &back, NULL) != 0 ||
      back.n_updates != m.n_updates || back.seq != m.seq ||
      strcmp(back.from_id, m.from_id) != 0)
    abort();
  return 0;
}
