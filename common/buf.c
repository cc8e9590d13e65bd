#include "buf.h"

#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void stm_buf_init(struct stm_buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void stm_buf_destroy(struct stm_buf *b) {
  free(b->data);
  stm_buf_init(b);
}

void stm_buf_reset(struct stm_buf *b) { b->len = 0; }

int stm_buf_reserve(struct stm_buf *b, size_t extra) {
  if (b->cap - b->len >= extra)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap - b->len < extra) {
    if (cap > SIZE_MAX / 2)
      return STM_ENOMEM;
    cap *= 2;
  }
  uint8_t *p = realloc(b->data, cap);
  if (p == NULL)
    return STM_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int stm_buf_append(struct stm_buf *b, const void *data, size_t len) {
  if (len == 0)
    return 0;
  int rc = stm_buf_reserve(b, len);
  if (rc)
    return rc;
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

int stm_buf_put_u8(struct stm_buf *b, uint8_t v) {
  return stm_buf_append(b, &v, 1);
}

void stm_buf_store_u32le(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

void stm_buf_store_u64le(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

void stm_buf_store_u64be(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[7 - i] = (uint8_t)(v >> (8 * i));
}

uint32_t stm_buf_load_u32le(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

uint64_t stm_buf_load_u64le(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

uint64_t stm_buf_load_u64be(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

int stm_buf_put_u32le(struct stm_buf *b, uint32_t v) {
  uint8_t tmp[4];
  stm_buf_store_u32le(tmp, v);
  return stm_buf_append(b, tmp, 4);
}

int stm_buf_put_u64le(struct stm_buf *b, uint64_t v) {
  uint8_t tmp[8];
  stm_buf_store_u64le(tmp, v);
  return stm_buf_append(b, tmp, 8);
}

int stm_buf_put_u64be(struct stm_buf *b, uint64_t v) {
  uint8_t tmp[8];
  stm_buf_store_u64be(tmp, v);
  return stm_buf_append(b, tmp, 8);
}

int stm_buf_put_lenbytes(struct stm_buf *b, const void *data, size_t len) {
  if (len > UINT32_MAX)
    return STM_ETOOBIG;
  int rc = stm_buf_reserve(b, 4 + len);
  if (rc)
    return rc;
  stm_buf_put_u32le(b, (uint32_t)len);
  return stm_buf_append(b, data, len);
}

void stm_reader_init(struct stm_reader *r, const void *data, size_t len) {
  r->pos = data;
  r->end = r->pos + len;
  r->failed = false;
}

size_t stm_reader_remaining(const struct stm_reader *r) {
  return r->failed ? 0 : (size_t)(r->end - r->pos);
}

const uint8_t *stm_reader_bytes(struct stm_reader *r, size_t len) {
  if (r->failed || (size_t)(r->end - r->pos) < len) {
    r->failed = true;
    return NULL;
  }
  const uint8_t *p = r->pos;
  r->pos += len;
  return p;
}

uint8_t stm_reader_u8(struct stm_reader *r) {
  const uint8_t *p = stm_reader_bytes(r, 1);
  return p ? p[0] : 0;
}

uint32_t stm_reader_u32le(struct stm_reader *r) {
  const uint8_t *p = stm_reader_bytes(r, 4);
  return p ? stm_buf_load_u32le(p) : 0;
}

uint64_t stm_reader_u64le(struct stm_reader *r) {
  const uint8_t *p = stm_reader_bytes(r, 8);
  return p ? stm_buf_load_u64le(p) : 0;
}

const uint8_t *stm_reader_lenbytes(struct stm_reader *r, size_t *len) {
  uint32_t n = stm_reader_u32le(r);
  *len = r->failed ? 0 : n;
  return stm_reader_bytes(r, *len);
}

int stm_buf_printf(struct stm_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int need = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (need < 0)
    return STM_EINVAL;
  int rc = stm_buf_reserve(b, (size_t)need + 1);
  if (rc)
    return rc;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)need + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)need;
  return 0;
}
