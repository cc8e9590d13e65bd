/*
 * index_shard.c - the per-shard record-hash index ('h' keys, index.h) and
 * what replication reads and rewrites through it: Merkle nodes over a
 * shard's hashes, the hashes under one node, any record by hash, and the
 * re-timing of a stored record to an earlier origin commit time.
 */
#include "index_records.h"

#include "index_internal.h"

#include <inttypes.h>
#include <string.h>

#define KEY_SHARD 'h'
#define KEY_RECORD 'r'
#define KEY_SEQUENCE 'q'

static void shard_key(uint8_t key[3 + STM_HASH_LEN], uint32_t shard,
                      const uint8_t *hash) {
  key[0] = KEY_SHARD;
  key[1] = (uint8_t)(shard >> 8);
  key[2] = (uint8_t)shard;
  if (hash)
    memcpy(key + 3, hash, STM_HASH_LEN);
}

int stm__index_put_shard(struct stm_index_batch *b, uint32_t shard,
                         const uint8_t hash[STM_HASH_LEN],
                         enum stm_record_kind kind) {
  uint8_t key[3 + STM_HASH_LEN], v = (uint8_t)kind;
  shard_key(key, shard, hash);
  stm__index_batch_put(b, key, sizeof key, &v, 1);
  return 0;
}

/* The key prefix of Merkle node (prefix, nibbles): whole bytes only; an
 * odd last nibble is filtered by the walk. */
static size_t node_prefix(uint8_t *key, uint32_t shard, const uint8_t *prefix,
                          unsigned nibbles) {
  shard_key(key, shard, NULL);
  size_t whole = nibbles / 2;
  if (whole)
    memcpy(key + 3, prefix, whole);
  return 3 + whole;
}

static unsigned nibble_at(const uint8_t *hash, unsigned i) {
  return i % 2 ? hash[i / 2] & 0x0f : hash[i / 2] >> 4;
}

struct shard_walk {
  const uint8_t *prefix;
  unsigned nibbles;
  struct stm_merkle_node *out; /* children, or NULL: list hashes */
  stm_store_hash_cb cb;
  void *ctx;
};

static int on_shard_key(void *ctx, const uint8_t *key, size_t klen,
                        const uint8_t *val, size_t vlen) {
  struct shard_walk *w = ctx;
  if (klen != 3 + STM_HASH_LEN || vlen != 1)
    return STM_ECORRUPT;
  const uint8_t *h = key + 3;
  if (w->nibbles % 2 &&
      nibble_at(h, w->nibbles - 1) != nibble_at(w->prefix, w->nibbles - 1))
    return 0;
  if (w->out == NULL)
    return w->cb(w->ctx, (enum stm_record_kind)val[0], h);
  struct stm_merkle_node *n = &w->out[nibble_at(h, w->nibbles)];
  for (size_t i = 0; i < STM_HASH_LEN; i++)
    n->digest[i] ^= h[i];
  n->count++;
  return 0;
}

static int shard_walk(struct stm_index *idx, uint32_t shard,
                      struct shard_walk *w, struct stm_error *err) {
  if (w->nibbles >= 2 * STM_HASH_LEN)
    return stm_error_set(err, STM_EINVAL, "nibbles", "at most %d nibbles",
                         2 * STM_HASH_LEN - 1);
  uint8_t key[3 + STM_HASH_LEN];
  size_t klen = node_prefix(key, shard, w->prefix, w->nibbles);
  struct stm__index_rd r;
  stm__index_rd_begin(&r, idx, true);
  int rc = stm__index_iterate(&r, key, klen, key, klen, on_shard_key, w, err);
  stm__index_rd_end(&r);
  if (rc == STM_ECORRUPT && (err == NULL || err->code == 0))
    stm_error_set(err, rc, NULL, "index: a shard key is malformed");
  return rc;
}

int stm_index_merkle_children(struct stm_index *idx, uint32_t shard,
                              const uint8_t *prefix, unsigned nibbles,
                              struct stm_merkle_node out[STM_MERKLE_FANOUT],
                              struct stm_error *err) {
  memset(out, 0, STM_MERKLE_FANOUT * sizeof *out);
  struct shard_walk w = {.prefix = prefix, .nibbles = nibbles, .out = out};
  return shard_walk(idx, shard, &w, err);
}

int stm_index_shard_hashes(struct stm_index *idx, uint32_t shard,
                           const uint8_t *prefix, unsigned nibbles,
                           stm_store_hash_cb cb, void *ctx,
                           struct stm_error *err) {
  struct shard_walk w = {
      .prefix = prefix, .nibbles = nibbles, .cb = cb, .ctx = ctx};
  return shard_walk(idx, shard, &w, err);
}

/* 'r' hash -> kind, sequence; then 'q' sequence -> audit + encoding. */
static int load_record(const struct stm__index_rd *r,
                       const uint8_t hash[STM_HASH_LEN], struct stm_record *out,
                       struct stm_audit_entry *audit, struct stm_error *err) {
  uint8_t key[1 + STM_HASH_LEN];
  key[0] = KEY_RECORD;
  memcpy(key + 1, hash, STM_HASH_LEN);
  struct stm_buf v;
  stm_buf_init(&v);
  int rc = stm__index_get(r, key, sizeof key, &v, err);
  if (rc == 0 && v.len != 9)
    rc = stm_error_set(err, STM_ECORRUPT, NULL, "a record key is malformed");
  uint8_t qkey[9];
  qkey[0] = KEY_SEQUENCE;
  if (rc == 0)
    memcpy(qkey + 1, v.data + 1, 8);
  rc = rc ? rc : stm__index_get(r, qkey, sizeof qkey, &v, err);
  const uint8_t *rest = NULL;
  size_t rest_len = 0;
  rc = rc ? rc
          : stm__index_parse_log(stm_buf_load_u64be(qkey + 1), v.data, v.len,
                                 audit, &rest, &rest_len, err);
  rc = rc ? rc : stm_record_decode(audit->kind, rest, rest_len, out, err);
  stm_buf_destroy(&v);
  return rc;
}

int stm_index_get_any(struct stm_index *idx, const uint8_t hash[STM_HASH_LEN],
                      enum stm_record_kind *kind, struct stm_claim *claim,
                      struct stm_record *rec, struct stm_error *err) {
  struct stm__index_rd r;
  stm__index_rd_begin(&r, idx, true);
  int rc = stm__index_load_claim(&r, hash, claim, err);
  if (rc == 0)
    *kind = STM_RECORD_CLAIM;
  if (rc == STM_ENOTFOUND) {
    struct stm_audit_entry a;
    rc = load_record(&r, hash, rec, &a, err);
    if (rc == 0)
      *kind = rec->kind;
  }
  stm__index_rd_end(&r);
  return rc;
}

int stm__index_retime_record(struct stm_index *idx, struct stm_index_batch *b,
                             const uint8_t hash[STM_HASH_LEN], int64_t time_ns,
                             bool *done, struct stm_error *err) {
  *done = false;
  struct stm__index_rd r;
  stm__index_rd_latest(&r, idx);
  struct stm_record rec;
  struct stm_audit_entry a;
  int rc = load_record(&r, hash, &rec, &a, err);
  stm__index_rd_end(&r);
  if (rc)
    return rc;
  if (time_ns < stm_record_commit_time(&rec)) {
    stm_record_set_commit(&rec, stm_record_sequence(&rec), time_ns);
    struct stm_buf enc;
    stm_buf_init(&enc);
    rc = stm_record_encode(&rec, &enc);
    rc = rc ? rc : stm__index_put_record(b, &rec, enc.data, enc.len);
    a.time_ns = time_ns;
    rc = rc ? rc : stm__index_put_audit(b, &a, enc.data, enc.len);
    stm_buf_destroy(&enc);
    *done = rc == 0;
  }
  stm_record_destroy(&rec);
  return rc;
}

struct records_walk {
  const struct stm__index_rd *rd;
  const uint8_t *prefix;
  unsigned nibbles;
  stm_store_encoded_cb cb;
  void *ctx;
  struct stm_buf val;
  struct stm_error *err;
};

static int on_record_key(void *ctx, const uint8_t *key, size_t klen,
                         const uint8_t *val, size_t vlen) {
  struct records_walk *w = ctx;
  if (klen != 3 + STM_HASH_LEN || vlen != 1)
    return stm_error_set(w->err, STM_ECORRUPT, NULL,
                         "index: a shard key is malformed");
  const uint8_t *h = key + 3;
  if (w->nibbles % 2 &&
      nibble_at(h, w->nibbles - 1) != nibble_at(w->prefix, w->nibbles - 1))
    return 0;
  enum stm_record_kind kind = (enum stm_record_kind)val[0];
  int rc;
  if (kind == STM_RECORD_CLAIM) { /* 'c' holds the storage encoding */
    uint8_t ck[1 + STM_HASH_LEN];
    ck[0] = 'c';
    memcpy(ck + 1, h, STM_HASH_LEN);
    rc = stm__index_get(w->rd, ck, sizeof ck, &w->val, w->err);
    return rc ? rc : w->cb(w->ctx, kind, h, w->val.data, w->val.len);
  }
  struct stm_record rec;
  struct stm_audit_entry a;
  rc = load_record(w->rd, h, &rec, &a, w->err);
  if (rc)
    return rc;
  stm_buf_reset(&w->val);
  rc = stm_record_encode(&rec, &w->val);
  stm_record_destroy(&rec);
  return rc ? rc : w->cb(w->ctx, kind, h, w->val.data, w->val.len);
}

int stm_index_shard_records(struct stm_index *idx, uint32_t shard,
                            const uint8_t *prefix, unsigned nibbles,
                            stm_store_encoded_cb cb, void *ctx,
                            struct stm_error *err) {
  if (nibbles >= 2 * STM_HASH_LEN)
    return stm_error_set(err, STM_EINVAL, "nibbles", "at most %d nibbles",
                         2 * STM_HASH_LEN - 1);
  uint8_t key[3 + STM_HASH_LEN];
  size_t klen = node_prefix(key, shard, prefix, nibbles);
  struct stm__index_rd r;
  stm__index_rd_begin(&r, idx, true);
  struct records_walk w = {.rd = &r,
                           .prefix = prefix,
                           .nibbles = nibbles,
                           .cb = cb,
                           .ctx = ctx,
                           .err = err};
  stm_buf_init(&w.val);
  int rc = stm__index_iterate(&r, key, klen, key, klen, on_record_key, &w, err);
  stm_buf_destroy(&w.val);
  stm__index_rd_end(&r);
  return rc;
}
