/*
 * hex.h - lowercase hex encoding of byte strings (hashes, keys, signatures).
 */
#ifndef STM_HEX_H
#define STM_HEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The value 0..15 of one hex digit (either case), or -1. */
int stm_hex_digit(int c);

/* Writes 2*len lowercase hex chars plus a NUL into out (2*len+1 bytes). */
void stm_hex_encode(const void *data, size_t len, char *out);

/*
 * Decodes exactly `out_len` bytes from a string of exactly 2*out_len hex
 * characters (either case). Returns 0, or STM_EINVAL on a wrong length or a
 * non-hex character.
 */
int stm_hex_decode(const char *hex, size_t hex_len, uint8_t *out,
                   size_t out_len);

#endif
