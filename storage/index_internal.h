/*
 * index_internal.h - what index.c (meta, batches, claim keys) and
 * index_records.c (the record key spaces) share, inside storage/ only: the
 * index object, one read (snapshot or latest), and the one LevelDB error
 * translator, value copy and prefix scan.
 */
#ifndef STM_INDEX_INTERNAL_H
#define STM_INDEX_INTERNAL_H

#include "common/buf.h"
#include "storage/index.h"

#include <leveldb/c.h>

struct stm_index {
  leveldb_t *db;
  leveldb_options_t *options;
  leveldb_cache_t *cache;
  leveldb_filterpolicy_t *filter;
  leveldb_writeoptions_t *wopts;
  leveldb_readoptions_t *ro_latest; /* no snapshot: the writer's lookups */
  struct stm_index_meta meta;
};

/* One read: a snapshot of its own, or the latest state. */
struct stm__index_rd {
  leveldb_t *db;
  const leveldb_snapshot_t *snap;
  leveldb_readoptions_t *ro;
  bool own_ro;
};

/* Begin a read with its own snapshot (snapshot true) or on the latest
 * state (false: for views pinned to a sequence, which filter later writes
 * themselves); end it with stm__index_rd_end. */
void stm__index_rd_begin(struct stm__index_rd *r, struct stm_index *idx,
                         bool snapshot);
/* The writer's lookups: the latest state through the shared read options
 * (the writer thread only: no allocation, no DB mutex). */
void stm__index_rd_latest(struct stm__index_rd *r, struct stm_index *idx);
void stm__index_rd_end(struct stm__index_rd *r);

/* A view pinned to a sequence needs no snapshot: records are immutable and
 * keyed once, and anything committed later has a larger sequence that the
 * view filters out (saves a snapshot per lookup in a Query). */
static inline bool stm__index_needs_snapshot(const struct stm_read_view *v) {
  return v == NULL || v->as_of_sequence == 0;
}

/* Translate a LevelDB error string (and free it): the one translator. */
int stm__index_ldb_error(struct stm_error *err, char *msg, const char *what);
/* Get `key` into out: the one place a LevelDB value is copied into our own
 * buffer (scans decode straight from the iterator). Returns 0,
 * STM_ENOTFOUND, STM_ENOMEM or the translated error. */
int stm__index_get(const struct stm__index_rd *r, const void *key, size_t klen,
                   struct stm_buf *out, struct stm_error *err);

typedef int (*stm__index_kv_cb)(void *ctx, const uint8_t *key, size_t klen,
                                const uint8_t *val, size_t vlen);
/* Visit every key starting with prefix, from `start` (>= prefix), until
 * the callback returns non-zero (returned) or an error. */
int stm__index_iterate(const struct stm__index_rd *r, const void *prefix,
                       size_t plen, const void *start, size_t slen,
                       stm__index_kv_cb cb, void *ctx, struct stm_error *err);

/* A raw put into a batch, and a value buffer the batch owns for building
 * one value at a time. */
void stm__index_batch_put(struct stm_index_batch *b, const void *key,
                          size_t klen, const void *v, size_t vlen);
struct stm_buf *stm__index_batch_scratch(struct stm_index_batch *b);

/* Load the claim `hash` into an init'ed *out within read r (scans share
 * their snapshot). Returns 0, STM_ENOTFOUND or an error. */
int stm__index_load_claim(const struct stm__index_rd *r,
                          const uint8_t hash[STM_HASH_LEN],
                          struct stm_claim *out, struct stm_error *err);

#endif
