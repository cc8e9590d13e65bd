/*
 * records.c - vote, epoch and source records: content hash, storage
 * encoding and decoding; the kind-5 audit wrapper of WAL entries.
 *
 * Layouts (docs/formats.md "Records"); str = u32le len | bytes,
 * f64 = IEEE-754 binary64 little-endian:
 *
 *   vote    u8 2 | target[32] | str voter_id | f64 weight | i64 ts
 *   epoch   u8 3 | str path | str predicate | str reason | i64 ts | u64 number
 *   source  u8 4 | str id | str name | u32 tier | f64 trust | u8 has_key
 *           | [key 32] | i64 ts
 *   api key u8 7 | str id | str name | u8 role | secret_hash[32]
 *           | i64 created_ns | str creator
 *   revoke  u8 8 | str id | i64 ts | str by
 *   then (not hashed) u64 sequence | i64 commit_time_ns
 *
 * An API key record stores the BLAKE2b-256 hash of the secret, never the
 * secret. The content hash is BLAKE2b-256 of the content part. The leading kind
 * byte keeps the hashes of different kinds (and of claims, whose canonical
 * encoding starts with 0x01) apart.
 */
#include "records.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

void stm_vote_destroy(struct stm_vote *v) {
  free(v->voter_id);
  memset(v, 0, sizeof *v);
}

void stm_epoch_destroy(struct stm_epoch *e) {
  free(e->concept_path);
  free(e->predicate);
  free(e->reason);
  memset(e, 0, sizeof *e);
}

void stm_source_destroy(struct stm_source *s) {
  free(s->id);
  free(s->name);
  memset(s, 0, sizeof *s);
}

static void api_key_destroy(struct stm_api_key *k) {
  free(k->id);
  free(k->name);
  free(k->creator);
  memset(k, 0, sizeof *k);
}

static void key_revoke_destroy(struct stm_key_revoke *k) {
  free(k->id);
  free(k->by);
  memset(k, 0, sizeof *k);
}

void stm_record_init(struct stm_record *r, enum stm_record_kind kind) {
  memset(r, 0, sizeof *r);
  r->kind = kind;
  if (kind == STM_RECORD_SOURCE)
    r->u.source.trust = 1.0;
}

void stm_record_destroy(struct stm_record *r) {
  switch (r->kind) {
  case STM_RECORD_VOTE:
    stm_vote_destroy(&r->u.vote);
    break;
  case STM_RECORD_EPOCH:
    stm_epoch_destroy(&r->u.epoch);
    break;
  case STM_RECORD_SOURCE:
    stm_source_destroy(&r->u.source);
    break;
  case STM_RECORD_API_KEY:
    api_key_destroy(&r->u.key);
    break;
  case STM_RECORD_KEY_REVOKE:
    key_revoke_destroy(&r->u.revoke);
    break;
  default:
    break;
  }
}

/* ---- encoding -------------------------------------------------------------
 */

static int put_str(struct stm_buf *b, const char *s) {
  return stm_buf_put_lenbytes(b, s ? s : "", s ? strlen(s) : 0);
}

static int put_f64(struct stm_buf *b, double d) {
  uint64_t bits;
  if (d == 0.0)
    d = 0.0; /* -0.0 encodes as +0.0 */
  memcpy(&bits, &d, 8);
  return stm_buf_put_u64le(b, bits);
}

static int encode_content(const struct stm_record *r, struct stm_buf *b) {
  int rc = stm_buf_put_u8(b, (uint8_t)r->kind);
  switch (r->kind) {
  case STM_RECORD_VOTE: {
    const struct stm_vote *v = &r->u.vote;
    rc = rc ? rc : stm_buf_append(b, v->target, STM_HASH_LEN);
    rc = rc ? rc : put_str(b, v->voter_id);
    rc = rc ? rc : put_f64(b, v->weight);
    return rc ? rc : stm_buf_put_u64le(b, (uint64_t)v->timestamp_ns);
  }
  case STM_RECORD_EPOCH: {
    const struct stm_epoch *e = &r->u.epoch;
    rc = rc ? rc : put_str(b, e->concept_path);
    rc = rc ? rc : put_str(b, e->predicate);
    rc = rc ? rc : put_str(b, e->reason);
    rc = rc ? rc : stm_buf_put_u64le(b, (uint64_t)e->timestamp_ns);
    return rc ? rc : stm_buf_put_u64le(b, e->number);
  }
  case STM_RECORD_SOURCE: {
    const struct stm_source *s = &r->u.source;
    rc = rc ? rc : put_str(b, s->id);
    rc = rc ? rc : put_str(b, s->name);
    rc = rc ? rc : stm_buf_put_u32le(b, s->tier);
    rc = rc ? rc : put_f64(b, s->trust);
    rc = rc ? rc : stm_buf_put_u8(b, s->has_public_key ? 1 : 0);
    if (rc == 0 && s->has_public_key)
      rc = stm_buf_append(b, s->public_key, STM_PUBLIC_KEY_LEN);
    return rc ? rc : stm_buf_put_u64le(b, (uint64_t)s->timestamp_ns);
  }
  case STM_RECORD_API_KEY: {
    const struct stm_api_key *k = &r->u.key;
    rc = rc ? rc : put_str(b, k->id);
    rc = rc ? rc : put_str(b, k->name);
    rc = rc ? rc : stm_buf_put_u8(b, k->role);
    rc = rc ? rc : stm_buf_append(b, k->secret_hash, STM_HASH_LEN);
    rc = rc ? rc : stm_buf_put_u64le(b, (uint64_t)k->created_ns);
    return rc ? rc : put_str(b, k->creator);
  }
  case STM_RECORD_KEY_REVOKE: {
    const struct stm_key_revoke *k = &r->u.revoke;
    rc = rc ? rc : put_str(b, k->id);
    rc = rc ? rc : stm_buf_put_u64le(b, (uint64_t)k->timestamp_ns);
    return rc ? rc : put_str(b, k->by);
  }
  default:
    return STM_EINVAL;
  }
}

/* The fields every record kind has. */
struct common {
  uint8_t *hash;
  uint64_t *sequence;
  int64_t *commit_time_ns;
  int64_t *timestamp_ns;
};

static struct common common_of(const struct stm_record *cr) {
  struct stm_record *r = (struct stm_record *)cr;
#define COMMON(f, ts)                                                          \
  { f.hash, &f.sequence, &f.commit_time_ns, &f.ts }
  switch (r->kind) {
  case STM_RECORD_VOTE:
    return (struct common)COMMON(r->u.vote, timestamp_ns);
  case STM_RECORD_EPOCH:
    return (struct common)COMMON(r->u.epoch, timestamp_ns);
  case STM_RECORD_API_KEY:
    return (struct common)COMMON(r->u.key, created_ns);
  case STM_RECORD_KEY_REVOKE:
    return (struct common)COMMON(r->u.revoke, timestamp_ns);
  default:
    return (struct common)COMMON(r->u.source, timestamp_ns);
  }
#undef COMMON
}

const uint8_t *stm_record_hash(const struct stm_record *r) {
  return common_of(r).hash;
}

uint64_t stm_record_sequence(const struct stm_record *r) {
  return *common_of(r).sequence;
}

int64_t stm_record_commit_time(const struct stm_record *r) {
  return *common_of(r).commit_time_ns;
}

void stm_record_set_commit(struct stm_record *r, uint64_t seq, int64_t t) {
  struct common c = common_of(r);
  *c.sequence = seq;
  *c.commit_time_ns = t;
}

int64_t *stm_record_timestamp(struct stm_record *r) {
  return common_of(r).timestamp_ns;
}

int stm_record_compute_hash(struct stm_record *r) {
  struct stm_buf b;
  stm_buf_init(&b);
  int rc = encode_content(r, &b);
  if (rc == 0)
    crypto_generichash((uint8_t *)stm_record_hash(r), STM_HASH_LEN, b.data,
                       b.len, NULL, 0);
  stm_buf_destroy(&b);
  return rc;
}

int stm_record_encode(const struct stm_record *r, struct stm_buf *out) {
  size_t start = out->len;
  uint64_t seq = stm_record_sequence(r);
  int64_t t = stm_record_commit_time(r);
  int rc = encode_content(r, out);
  rc = rc ? rc : stm_buf_put_u64le(out, seq);
  rc = rc ? rc : stm_buf_put_u64le(out, (uint64_t)t);
  if (rc)
    out->len = start;
  return rc;
}

/* ---- decoding -------------------------------------------------------------
 */

static char *get_str(struct stm_reader *rd, bool *bad) {
  size_t n;
  const uint8_t *p = stm_reader_lenbytes(rd, &n);
  if (p == NULL || memchr(p, 0, n) != NULL) {
    *bad = true;
    return NULL;
  }
  char *s = malloc(n + 1);
  if (s == NULL) {
    *bad = true;
    return NULL;
  }
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

static double get_f64(struct stm_reader *rd) {
  uint64_t bits = stm_reader_u64le(rd);
  double d;
  memcpy(&d, &bits, 8);
  return d;
}

static void decode_body(struct stm_reader *rd, struct stm_record *r,
                        bool *bad) {
  switch (r->kind) {
  case STM_RECORD_VOTE: {
    struct stm_vote *v = &r->u.vote;
    const uint8_t *t = stm_reader_bytes(rd, STM_HASH_LEN);
    if (t)
      memcpy(v->target, t, STM_HASH_LEN);
    v->voter_id = get_str(rd, bad);
    v->weight = get_f64(rd);
    v->timestamp_ns = (int64_t)stm_reader_u64le(rd);
    break;
  }
  case STM_RECORD_EPOCH: {
    struct stm_epoch *e = &r->u.epoch;
    e->concept_path = get_str(rd, bad);
    e->predicate = get_str(rd, bad);
    e->reason = get_str(rd, bad);
    e->timestamp_ns = (int64_t)stm_reader_u64le(rd);
    e->number = stm_reader_u64le(rd);
    break;
  }
  case STM_RECORD_SOURCE: {
    struct stm_source *s = &r->u.source;
    s->id = get_str(rd, bad);
    s->name = get_str(rd, bad);
    s->tier = stm_reader_u32le(rd);
    s->trust = get_f64(rd);
    uint8_t has = stm_reader_u8(rd);
    if (has > 1)
      *bad = true;
    s->has_public_key = has == 1;
    if (s->has_public_key) {
      const uint8_t *k = stm_reader_bytes(rd, STM_PUBLIC_KEY_LEN);
      if (k)
        memcpy(s->public_key, k, STM_PUBLIC_KEY_LEN);
    }
    s->timestamp_ns = (int64_t)stm_reader_u64le(rd);
    break;
  }
  case STM_RECORD_API_KEY: {
    struct stm_api_key *k = &r->u.key;
    k->id = get_str(rd, bad);
    k->name = get_str(rd, bad);
    k->role = stm_reader_u8(rd);
    if (k->role < 1 || k->role > 3)
      *bad = true;
    const uint8_t *h = stm_reader_bytes(rd, STM_HASH_LEN);
    if (h)
      memcpy(k->secret_hash, h, STM_HASH_LEN);
    k->created_ns = (int64_t)stm_reader_u64le(rd);
    k->creator = get_str(rd, bad);
    break;
  }
  case STM_RECORD_KEY_REVOKE: {
    struct stm_key_revoke *k = &r->u.revoke;
    k->id = get_str(rd, bad);
    k->timestamp_ns = (int64_t)stm_reader_u64le(rd);
    k->by = get_str(rd, bad);
    break;
  }
  default:
    *bad = true;
    return;
  }
  uint64_t seq = stm_reader_u64le(rd);
  int64_t t = (int64_t)stm_reader_u64le(rd);
  stm_record_set_commit(r, seq, t);
}

int stm_record_decode(enum stm_record_kind kind, const void *data, size_t len,
                      struct stm_record *out, struct stm_error *err) {
  stm_record_init(out, kind);
  struct stm_reader rd;
  stm_reader_init(&rd, data, len);
  bool bad = stm_reader_u8(&rd) != (uint8_t)kind;
  if (!bad)
    decode_body(&rd, out, &bad);
  if (bad || rd.failed || stm_reader_remaining(&rd) != 0 ||
      stm_record_compute_hash(out) != 0) {
    stm_record_destroy(out);
    stm_record_init(out, kind);
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "a stored record of kind %d does not decode",
                         (int)kind);
  }
  return 0;
}

/* ---- the audit wrapper ------------------------------------------------------
 */

static size_t cut(const char *s, size_t max) {
  size_t n = s ? strlen(s) : 0;
  return n < max ? n : max - 1;
}

size_t stm_audit_wrap_header_size(const char *op, const char *caller) {
  return 1 + 1 + cut(op, STM_AUDIT_OP_MAX) + 2 +
         cut(caller, STM_AUDIT_CALLER_MAX);
}

int stm_audit_wrap_header(struct stm_buf *out, enum stm_record_kind inner,
                          const char *op, const char *caller) {
  size_t olen = cut(op, STM_AUDIT_OP_MAX),
         clen = cut(caller, STM_AUDIT_CALLER_MAX);
  int rc = stm_buf_put_u8(out, (uint8_t)inner);
  rc = rc ? rc : stm_buf_put_u8(out, (uint8_t)olen);
  rc = rc ? rc : stm_buf_append(out, op ? op : "", olen);
  rc = rc ? rc : stm_buf_put_u8(out, (uint8_t)(clen & 0xff));
  rc = rc ? rc : stm_buf_put_u8(out, (uint8_t)(clen >> 8));
  return rc ? rc : stm_buf_append(out, caller ? caller : "", clen);
}

int stm_audit_unwrap(const void *data, size_t len, enum stm_record_kind *inner,
                     char op[STM_AUDIT_OP_MAX],
                     char caller[STM_AUDIT_CALLER_MAX], const uint8_t **payload,
                     size_t *payload_len, struct stm_error *err) {
  struct stm_reader rd;
  stm_reader_init(&rd, data, len);
  uint8_t kind = stm_reader_u8(&rd);
  size_t olen = stm_reader_u8(&rd);
  const uint8_t *o = stm_reader_bytes(&rd, olen);
  size_t clen = stm_reader_u8(&rd);
  clen |= (size_t)stm_reader_u8(&rd) << 8;
  const uint8_t *c = stm_reader_bytes(&rd, clen);
  if (rd.failed || !stm_record_kind_valid(kind) || olen >= STM_AUDIT_OP_MAX ||
      clen >= STM_AUDIT_CALLER_MAX)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "an audited WAL entry has a bad header");
  memcpy(op, o, olen);
  op[olen] = '\0';
  memcpy(caller, c, clen);
  caller[clen] = '\0';
  *inner = (enum stm_record_kind)kind;
  *payload = rd.pos;
  *payload_len = stm_reader_remaining(&rd);
  return 0;
}
