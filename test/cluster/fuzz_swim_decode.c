/*
 * libFuzzer target for stm_swim_decode (build with -DSTM_FUZZ=ON and clang,
 * as test/storage/CMakeLists.txt shows). Each input is tried twice: as a
 * raw datagram (must be refused: it has no valid tag), and with a valid tag
 * appended, which reaches the protobuf parser and the field bounds.
 * A third try splices the input into a valid message at an offset named
 * by its first byte, so the fuzzer starts deep inside the format instead
 * of having to discover protobuf from nothing.
 * Property: whatever decodes re-encodes and decodes to the same message.
 */
#include "cluster/swim_format.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct stm_swim_msg m, back;
static struct stm_swim_codec c;
static uint8_t valid[STM_SWIM_MAX_DATAGRAM];
static size_t valid_len; /* without its tag */

static void init(void) {
  if (stm_swim_codec_init(&c, "stemedb", "fuzz", 4, NULL) != 0)
    abort();
  m.kind = STM_SWIM_PING_REQ;
  strcpy(m.from_id, "node1");
  strcpy(m.from_addr, "10.0.0.1:18183");
  strcpy(m.from_rpc_addr, "10.0.0.1:18182");
  strcpy(m.target_id, "node2");
  strcpy(m.target_addr, "10.0.0.2:18183");
  m.from_meta_len = 3;
  m.n_updates = 2;
  for (int i = 0; i < 2; i++) {
    strcpy(m.updates[i].id, i ? "node3" : "node4");
    strcpy(m.updates[i].swim_addr, "10.0.0.3:18183");
    strcpy(m.updates[i].suspector, "node1");
    m.updates[i].state = STM_SWIM_SUSPECT;
    m.updates[i].meta_len = 2;
  }
  if (stm_swim_encode(&c, &m, valid, sizeof valid, &valid_len) != 0)
    abort();
  valid_len -= STM_SWIM_TAG_BYTES;
}

/* Tag buf[0, n) and check the decode/encode property. */
static void try_tagged(uint8_t *buf, size_t n) {
  crypto_auth(buf + n, buf, n, c.key);
  if (stm_swim_decode(&c, buf, buf + n + STM_SWIM_TAG_BYTES, &m, NULL) != 0)
    return;
  uint8_t out[STM_SWIM_MAX_DATAGRAM];
  size_t len;
  if (stm_swim_encode(&c, &m, out, sizeof out, &len) != 0 ||
      stm_swim_decode(&c, out, out + len, &back, NULL) != 0 ||
      back.n_updates != m.n_updates || back.seq != m.seq ||
      strcmp(back.from_id, m.from_id) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    init();
    ready = 1;
  }
  if (stm_swim_decode(&c, data, data + size, &m, NULL) == 0)
    abort(); /* forged: a random input cannot carry a valid tag */
  uint8_t buf[STM_SWIM_MAX_DATAGRAM];
  if (size >= 1) {
    size_t off = data[0] % valid_len, n = off + size - 1;
    if (n + STM_SWIM_TAG_BYTES <= sizeof buf) {
      memcpy(buf, valid, off);
      memcpy(buf + off, data + 1, size - 1);
      try_tagged(buf, n);
    }
  }
  if (size + STM_SWIM_TAG_BYTES > STM_SWIM_MAX_DATAGRAM)
    return 0;
  memcpy(buf, data, size);
  try_tagged(buf, size);
  return 0;
}
