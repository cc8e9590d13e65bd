/*
 * claim.c - claim lifetime, the canonical (hashed) encoding and the storage
 * encoding. docs/formats.md documents the bytes; the frozen test vector in
 * test/storage/test_claim.c makes any change to them fail loudly.
 *
 * Canonical encoding (all integers little-endian):
 *
 *   u8 0x01                                   format version
 *   u8 tag | u32 len | len bytes              x 7, tags 1..7 in order:
 *     1 concept_path   2 predicate   3 value   4 source_id
 *     5 confidence (f64)   6 timestamp_ns (i64)   7 parent_hash (0 or 32)
 *   value bytes: u8 kind (1 string, 2 number, 3 bool, 4 ref) + payload
 *
 * Storage encoding: canonical | u64 sequence | i64 commit_time_ns |
 * u64 epoch | u8 has_signature | [64 signature | 32 public key].
 *
 * The decoder accepts exactly what the encoder produces (fields in order,
 * -0.0 already normalized, no NUL inside C strings), so hashing the
 * canonical span of the input equals recomputing it from the fields.
 */
#include "claim.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static_assert(sizeof(double) == 8, "IEEE-754 binary64 doubles are required");
static_assert(crypto_generichash_BYTES_MAX >= STM_HASH_LEN, "hash length");

#define CANON_VERSION 0x01

enum canon_tag {
  TAG_CONCEPT_PATH = 1,
  TAG_PREDICATE = 2,
  TAG_VALUE = 3,
  TAG_SOURCE_ID = 4,
  TAG_CONFIDENCE = 5,
  TAG_TIMESTAMP = 6,
  TAG_PARENT_HASH = 7,
};

/*
 * libsodium picks its fastest implementations once. Hashing works even if
 * sodium_init fails (it can only fail to open the RNG, which we do not use).
 */
static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static void init_sodium(void) {
  int rc = sodium_init();
  (void)rc;
}

/* ---- lifetime ------------------------------------------------------- */

void stm_claim_init(struct stm_claim *c) {
  memset(c, 0, sizeof *c);
  c->value.kind = STM_VALUE_NONE;
  c->confidence = 1.0;
}

void stm_claim_destroy(struct stm_claim *c) {
  free(c->concept_path);
  free(c->predicate);
  free(c->source_id);
  stm_value_destroy(&c->value);
  stm_claim_init(c);
}

static char *dup_bytes(const char *data, size_t len) {
  char *p = malloc(len + 1);
  if (p == NULL)
    return NULL;
  if (len > 0)
    memcpy(p, data, len);
  p[len] = '\0';
  return p;
}

int stm_claim_set_str(char **slot, const char *data, size_t len) {
  char *p = dup_bytes(data, len);
  if (p == NULL)
    return STM_ENOMEM;
  free(*slot);
  *slot = p;
  return 0;
}

static int copy_opt_str(char **dst, const char *src) {
  *dst = NULL;
  return src ? stm_claim_set_str(dst, src, strlen(src)) : 0;
}

int stm_claim_copy(struct stm_claim *dst, const struct stm_claim *src) {
  *dst = *src;
  dst->concept_path = dst->predicate = dst->source_id = NULL;
  dst->value.str = NULL;
  if (copy_opt_str(&dst->concept_path, src->concept_path) ||
      copy_opt_str(&dst->predicate, src->predicate) ||
      copy_opt_str(&dst->source_id, src->source_id) ||
      stm_value_copy(&dst->value, &src->value)) {
    stm_claim_destroy(dst);
    return STM_ENOMEM;
  }
  return 0;
}

void stm_value_destroy(struct stm_value *v) {
  free(v->str);
  memset(v, 0, sizeof *v);
  v->kind = STM_VALUE_NONE;
}

int stm_value_set_str(struct stm_value *v, enum stm_value_kind kind,
                      const char *data, size_t len) {
  char *p = NULL;
  if (kind == STM_VALUE_STRING || kind == STM_VALUE_REF) {
    p = dup_bytes(data, len);
    if (p == NULL)
      return STM_ENOMEM;
  }
  free(v->str);
  v->kind = kind;
  v->str = p;
  v->str_len = p ? len : 0;
  return 0;
}

int stm_value_copy(struct stm_value *dst, const struct stm_value *src) {
  *dst = *src;
  dst->str = NULL;
  if (src->str == NULL)
    return 0;
  dst->str = dup_bytes(src->str, src->str_len);
  if (dst->str == NULL) {
    dst->str_len = 0;
    return STM_ENOMEM;
  }
  return 0;
}

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if (c != 0)
    return c < 0 ? -1 : 1;
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

int stm_value_compare(const struct stm_value *a, const struct stm_value *b) {
  if (a->kind != b->kind)
    return a->kind < b->kind ? -1 : 1;
  switch (a->kind) {
  case STM_VALUE_STRING:
  case STM_VALUE_REF:
    return cmp_bytes(a->str, a->str_len, b->str, b->str_len);
  case STM_VALUE_NUMBER:
    return a->number < b->number ? -1 : a->number > b->number ? 1 : 0;
  case STM_VALUE_BOOL:
    return (int)a->boolean - (int)b->boolean;
  default:
    return 0;
  }
}

/* ---- canonical encoding --------------------------------------------- */

static uint64_t double_bits(double d) {
  if (d == 0.0)
    d = 0.0; /* -0.0 == 0.0: both encode as +0.0 */
  uint64_t bits;
  memcpy(&bits, &d, 8);
  return bits;
}

static int put_field(struct stm_buf *out, uint8_t tag, const void *data,
                     size_t len) {
  int rc = stm_buf_put_u8(out, tag);
  return rc ? rc : stm_buf_put_lenbytes(out, data, len);
}

static int put_cstr_field(struct stm_buf *out, uint8_t tag, const char *s) {
  return put_field(out, tag, s, s ? strlen(s) : 0);
}

static int put_value_field(struct stm_buf *out, const struct stm_value *v) {
  uint8_t fixed[9];
  fixed[0] = (uint8_t)v->kind;
  switch (v->kind) {
  case STM_VALUE_STRING:
  case STM_VALUE_REF: {
    if (v->str_len > UINT32_MAX - 1)
      return STM_ETOOBIG;
    int rc = stm_buf_put_u8(out, TAG_VALUE);
    rc = rc ? rc : stm_buf_put_u32le(out, (uint32_t)(1 + v->str_len));
    rc = rc ? rc : stm_buf_put_u8(out, fixed[0]);
    return rc ? rc : stm_buf_append(out, v->str, v->str_len);
  }
  case STM_VALUE_NUMBER:
    if (!isfinite(v->number))
      return STM_EINVAL;
    stm_buf_store_u64le(fixed + 1, double_bits(v->number));
    return put_field(out, TAG_VALUE, fixed, 9);
  case STM_VALUE_BOOL:
    fixed[1] = v->boolean ? 1 : 0;
    return put_field(out, TAG_VALUE, fixed, 2);
  default:
    return STM_EINVAL;
  }
}

int stm_claim_canonical(const struct stm_claim *c, struct stm_buf *out) {
  if (!isfinite(c->confidence))
    return STM_EINVAL;
  size_t mark = out->len;
  uint8_t conf[8], ts[8];
  stm_buf_store_u64le(conf, double_bits(c->confidence));
  stm_buf_store_u64le(ts, (uint64_t)c->timestamp_ns);
  int rc = stm_buf_put_u8(out, CANON_VERSION);
  rc = rc ? rc : put_cstr_field(out, TAG_CONCEPT_PATH, c->concept_path);
  rc = rc ? rc : put_cstr_field(out, TAG_PREDICATE, c->predicate);
  rc = rc ? rc : put_value_field(out, &c->value);
  rc = rc ? rc : put_cstr_field(out, TAG_SOURCE_ID, c->source_id);
  rc = rc ? rc : put_field(out, TAG_CONFIDENCE, conf, 8);
  rc = rc ? rc : put_field(out, TAG_TIMESTAMP, ts, 8);
  rc = rc ? rc
          : put_field(out, TAG_PARENT_HASH, c->parent_hash,
                      c->has_parent ? STM_HASH_LEN : 0);
  if (rc)
    out->len = mark;
  return rc;
}

static void hash_bytes(const uint8_t *data, size_t len,
                       uint8_t hash[STM_HASH_LEN]) {
  pthread_once(&sodium_once, init_sodium);
  crypto_generichash(hash, STM_HASH_LEN, data, len, NULL, 0);
}

int stm_claim_compute_hash(struct stm_claim *c) {
  struct stm_buf b;
  stm_buf_init(&b);
  int rc = stm_claim_canonical(c, &b);
  if (rc == 0)
    hash_bytes(b.data, b.len, c->hash);
  c->hashed = rc == 0;
  stm_buf_destroy(&b);
  return rc;
}

/* ---- storage encoding ----------------------------------------------- */

int stm_claim_encode(const struct stm_claim *c, struct stm_buf *out) {
  size_t mark = out->len;
  int rc = stm_claim_canonical(c, out);
  rc = rc ? rc : stm_buf_put_u64le(out, c->sequence);
  rc = rc ? rc : stm_buf_put_u64le(out, (uint64_t)c->commit_time_ns);
  rc = rc ? rc : stm_buf_put_u64le(out, c->epoch);
  rc = rc ? rc : stm_buf_put_u8(out, c->has_signature ? 1 : 0);
  if (rc == 0 && c->has_signature) {
    rc = stm_buf_append(out, c->signature, STM_SIGNATURE_LEN);
    rc = rc ? rc : stm_buf_append(out, c->public_key, STM_PUBLIC_KEY_LEN);
  }
  if (rc)
    out->len = mark;
  return rc;
}

static size_t opt_strlen(const char *s) { return s ? strlen(s) : 0; }

size_t stm_claim_encoded_size(const struct stm_claim *c) {
  size_t value = 1;
  if (c->value.kind == STM_VALUE_STRING || c->value.kind == STM_VALUE_REF)
    value += c->value.str_len;
  else if (c->value.kind == STM_VALUE_NUMBER)
    value += 8;
  else if (c->value.kind == STM_VALUE_BOOL)
    value += 1;
  size_t canonical = 1 + 7 * 5 + opt_strlen(c->concept_path) +
                     opt_strlen(c->predicate) + value +
                     opt_strlen(c->source_id) + 8 + 8 +
                     (c->has_parent ? STM_HASH_LEN : 0);
  size_t trailer =
      8 + 8 + 8 + 1 +
      (c->has_signature ? STM_SIGNATURE_LEN + STM_PUBLIC_KEY_LEN : 0);
  return canonical + trailer;
}

/* ---- decoding --------------------------------------------------------- */

struct decoder {
  struct stm_reader r;
  struct stm_error *err;
};

static int corrupt(struct decoder *d, const char *what) {
  return stm_error_set(d->err, STM_ECORRUPT, NULL, "claim encoding: %s", what);
}

/* Reads `u8 tag | u32 len | bytes`; the bytes are borrowed from the input. */
static int read_field(struct decoder *d, uint8_t tag, const uint8_t **data,
                      size_t *len) {
  uint8_t got = stm_reader_u8(&d->r);
  *data = stm_reader_lenbytes(&d->r, len);
  if (d->r.failed)
    return corrupt(d, "truncated field");
  if (got != tag)
    return corrupt(d, "unexpected field tag");
  return 0;
}

static int read_cstr(struct decoder *d, uint8_t tag, char **slot) {
  const uint8_t *p;
  size_t len;
  int rc = read_field(d, tag, &p, &len);
  if (rc)
    return rc;
  if (len > 0 && memchr(p, 0, len) != NULL)
    return corrupt(d, "NUL byte inside a string field");
  return stm_claim_set_str(slot, (const char *)p, len) ? STM_ENOMEM : 0;
}

static int read_double(struct decoder *d, const uint8_t *p, double *out) {
  uint64_t bits = stm_buf_load_u64le(p);
  memcpy(out, &bits, 8);
  if (!isfinite(*out))
    return corrupt(d, "number is NaN or infinite");
  if (*out == 0.0 && signbit(*out))
    return corrupt(d, "negative zero is not canonical");
  return 0;
}

static int read_value(struct decoder *d, struct stm_value *v) {
  const uint8_t *p;
  size_t len;
  int rc = read_field(d, TAG_VALUE, &p, &len);
  if (rc)
    return rc;
  if (len < 1)
    return corrupt(d, "empty value");
  switch (p[0]) {
  case STM_VALUE_STRING:
  case STM_VALUE_REF:
    if (stm_value_set_str(v, (enum stm_value_kind)p[0], (const char *)p + 1,
                          len - 1))
      return STM_ENOMEM;
    return 0;
  case STM_VALUE_NUMBER:
    if (len != 9)
      return corrupt(d, "number value is not 8 bytes");
    v->kind = STM_VALUE_NUMBER;
    return read_double(d, p + 1, &v->number);
  case STM_VALUE_BOOL:
    if (len != 2 || p[1] > 1)
      return corrupt(d, "bool value is not one byte 0 or 1");
    v->kind = STM_VALUE_BOOL;
    v->boolean = p[1] == 1;
    return 0;
  default:
    return corrupt(d, "unknown value kind");
  }
}

static int read_fixed(struct decoder *d, uint8_t tag, size_t want,
                      const uint8_t **p) {
  size_t len;
  int rc = read_field(d, tag, p, &len);
  if (rc == 0 && len != want)
    rc = corrupt(d, "fixed-size field has the wrong length");
  return rc;
}

static int read_canonical(struct decoder *d, struct stm_claim *c) {
  if (stm_reader_u8(&d->r) != CANON_VERSION || d->r.failed)
    return corrupt(d, "unknown canonical format version");
  int rc = read_cstr(d, TAG_CONCEPT_PATH, &c->concept_path);
  rc = rc ? rc : read_cstr(d, TAG_PREDICATE, &c->predicate);
  rc = rc ? rc : read_value(d, &c->value);
  rc = rc ? rc : read_cstr(d, TAG_SOURCE_ID, &c->source_id);
  const uint8_t *p = NULL;
  rc = rc ? rc : read_fixed(d, TAG_CONFIDENCE, 8, &p);
  rc = rc ? rc : read_double(d, p, &c->confidence);
  rc = rc ? rc : read_fixed(d, TAG_TIMESTAMP, 8, &p);
  if (rc)
    return rc;
  c->timestamp_ns = (int64_t)stm_buf_load_u64le(p);
  size_t len;
  rc = read_field(d, TAG_PARENT_HASH, &p, &len);
  if (rc)
    return rc;
  if (len != 0 && len != STM_HASH_LEN)
    return corrupt(d, "parent hash is neither absent nor 32 bytes");
  c->has_parent = len == STM_HASH_LEN;
  if (c->has_parent)
    memcpy(c->parent_hash, p, STM_HASH_LEN);
  return 0;
}

static int read_trailer(struct decoder *d, struct stm_claim *c) {
  c->sequence = stm_reader_u64le(&d->r);
  c->commit_time_ns = (int64_t)stm_reader_u64le(&d->r);
  c->epoch = stm_reader_u64le(&d->r);
  uint8_t flag = stm_reader_u8(&d->r);
  if (d->r.failed)
    return corrupt(d, "truncated commit fields");
  if (flag > 1)
    return corrupt(d, "signature flag is not 0 or 1");
  c->has_signature = flag == 1;
  if (c->has_signature) {
    const uint8_t *sig = stm_reader_bytes(&d->r, STM_SIGNATURE_LEN);
    const uint8_t *key = stm_reader_bytes(&d->r, STM_PUBLIC_KEY_LEN);
    if (d->r.failed)
      return corrupt(d, "truncated signature");
    memcpy(c->signature, sig, STM_SIGNATURE_LEN);
    memcpy(c->public_key, key, STM_PUBLIC_KEY_LEN);
  }
  if (stm_reader_remaining(&d->r) != 0)
    return corrupt(d, "trailing bytes after the claim");
  return 0;
}

int stm_claim_decode(const void *data, size_t len, struct stm_claim *out,
                     struct stm_error *err) {
  stm_claim_destroy(out);
  struct decoder d = {.err = err};
  stm_reader_init(&d.r, data, len);
  int rc = read_canonical(&d, out);
  size_t canonical_len = (size_t)(d.r.pos - (const uint8_t *)data);
  rc = rc ? rc : read_trailer(&d, out);
  if (rc == STM_ENOMEM)
    stm_error_set(err, rc, NULL, "claim decoding: out of memory");
  if (rc) {
    stm_claim_destroy(out);
    return rc;
  }
  hash_bytes(data, canonical_len, out->hash);
  return 0;
}
