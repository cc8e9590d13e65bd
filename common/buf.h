/*
 * buf.h - a growable byte buffer and little-endian put/get helpers used by
 * every encoder (WAL records, canonical claim encoding, index keys).
 *
 * Caller-embedded: stm_buf_init(&b) ... stm_buf_destroy(&b). Appends return
 * 0 or STM_ENOMEM and leave the buffer unchanged on failure.
 */
#ifndef STM_BUF_H
#define STM_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stm_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
};

void stm_buf_init(struct stm_buf *b);
void stm_buf_destroy(struct stm_buf *b);
/* Drop the contents, keep the allocation. */
void stm_buf_reset(struct stm_buf *b);
int stm_buf_reserve(struct stm_buf *b, size_t extra);
int stm_buf_append(struct stm_buf *b, const void *data, size_t len);
int stm_buf_put_u8(struct stm_buf *b, uint8_t v);
int stm_buf_put_u32le(struct stm_buf *b, uint32_t v);
int stm_buf_put_u64le(struct stm_buf *b, uint64_t v);
int stm_buf_put_u64be(struct stm_buf *b, uint64_t v);
/* Append printf-formatted text (no NUL is counted in len, but one is kept
 * after the data so b->data can be used as a C string). */
int stm_buf_printf(struct stm_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* u32le length followed by the bytes. */
int stm_buf_put_lenbytes(struct stm_buf *b, const void *data, size_t len);

void stm_buf_store_u32le(uint8_t *p, uint32_t v);
void stm_buf_store_u64le(uint8_t *p, uint64_t v);
void stm_buf_store_u64be(uint8_t *p, uint64_t v);
uint32_t stm_buf_load_u32le(const uint8_t *p);
uint64_t stm_buf_load_u64le(const uint8_t *p);
uint64_t stm_buf_load_u64be(const uint8_t *p);

/*
 * A bounded reader over [pos, end): every get checks the bounds and sets
 * `failed` instead of reading past the end, so decoders check once at the
 * end of a record.
 */
struct stm_reader {
  const uint8_t *pos;
  const uint8_t *end;
  bool failed;
};

void stm_reader_init(struct stm_reader *r, const void *data, size_t len);
uint8_t stm_reader_u8(struct stm_reader *r);
uint32_t stm_reader_u32le(struct stm_reader *r);
uint64_t stm_reader_u64le(struct stm_reader *r);
/* Returns a pointer into the input (borrowed) and its length. */
const uint8_t *stm_reader_bytes(struct stm_reader *r, size_t len);
const uint8_t *stm_reader_lenbytes(struct stm_reader *r, size_t *len);
size_t stm_reader_remaining(const struct stm_reader *r);

#endif
