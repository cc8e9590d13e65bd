#include "hex.h"

#include "error.h"

void stm_hex_encode(const void *data, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";
  const uint8_t *p = data;
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * len] = '\0';
}

int stm_hex_digit(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int stm_hex_decode(const char *hex, size_t hex_len, uint8_t *out,
                   size_t out_len) {
  if (hex_len != 2 * out_len)
    return STM_EINVAL;
  for (size_t i = 0; i < out_len; i++) {
    int hi = stm_hex_digit(hex[2 * i]), lo = stm_hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return STM_EINVAL;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}
