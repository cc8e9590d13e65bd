#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u

/* tables[k][b]: the CRC register after byte b followed by k zero bytes. */
static uint32_t tables[8][256];
static int use_hw;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define STM_CRC32C_HAVE_HW 1

__attribute__((target("sse4.2"))) static uint32_t
extend_hw(uint32_t crc, const uint8_t *p, size_t len) {
  uint64_t c = crc;
  while (len > 0 && ((uintptr_t)p & 7) != 0) {
    c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    len--;
  }
  while (len >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    len -= 8;
  }
  while (len > 0) {
    c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    len--;
  }
  return (uint32_t)c;
}
#endif

static void init_tables(void) {
  for (uint32_t b = 0; b < 256; b++) {
    uint32_t c = b;
    for (int i = 0; i < 8; i++)
      c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
    tables[0][b] = c;
  }
  for (int k = 1; k < 8; k++)
    for (int b = 0; b < 256; b++)
      tables[k][b] =
          (tables[k - 1][b] >> 8) ^ tables[0][tables[k - 1][b] & 0xFF];
#ifdef STM_CRC32C_HAVE_HW
  __builtin_cpu_init();
  use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t extend_sw(uint32_t c, const uint8_t *p, size_t len) {
  while (len > 0 && ((uintptr_t)p & 7) != 0) {
    c = (c >> 8) ^ tables[0][(c ^ *p++) & 0xFF];
    len--;
  }
  while (len >= 8) {
    /* Little-endian assembly of the two words keeps this byte-order free. */
    uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                       (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    c = tables[7][lo & 0xFF] ^ tables[6][(lo >> 8) & 0xFF] ^
        tables[5][(lo >> 16) & 0xFF] ^ tables[4][lo >> 24] ^ tables[3][p[4]] ^
        tables[2][p[5]] ^ tables[1][p[6]] ^ tables[0][p[7]];
    p += 8;
    len -= 8;
  }
  while (len > 0) {
    c = (c >> 8) ^ tables[0][(c ^ *p++) & 0xFF];
    len--;
  }
  return c;
}

uint32_t stm__crc32c_extend_sw(uint32_t crc, const void *data, size_t len) {
  pthread_once(&init_once, init_tables);
  return ~extend_sw(~crc, data, len);
}

int stm__crc32c_hw_available(void) {
  pthread_once(&init_once, init_tables);
  return use_hw;
}

uint32_t stm_crc32c_extend(uint32_t crc, const void *data, size_t len) {
  pthread_once(&init_once, init_tables);
#ifdef STM_CRC32C_HAVE_HW
  if (use_hw)
    return ~extend_hw(~crc, data, len);
#endif
  return ~extend_sw(~crc, data, len);
}

uint32_t stm_crc32c(const void *data, size_t len) {
  return stm_crc32c_extend(0, data, len);
}
