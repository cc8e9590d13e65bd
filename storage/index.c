/*
 * index.c - LevelDB key spaces, atomic group commits and snapshot reads.
 * The key layout is in index.h and docs/formats.md.
 */
#include "index_internal.h"
#include "index_records.h"

#include "common/log.h"
#include "wal_format.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_CLAIM 'c'
#define KEY_INDEX 'i'
#define KEY_SEQUENCE 'q'
#define KEY_META 'm'
#define TIME_BIAS 0x8000000000000000ull
#define NOT_VISIBLE 1  /* load_claim: stored, but not in the read view */
#define STALE_FORMAT 2 /* load_meta: an older layout, to rebuild */

static const char META_LAST_APPLIED[] = "mlast_applied_sequence";
static const char META_COUNT[] = "massertion_count";
static const char META_VERSION[] = "mformat_version";
static const char META_SHARDS[] = "mshards"; /* u32le: the 'h' shard count */

/*
 * A batch collects its puts (u32 klen | u32 vlen | key | value records in
 * `kv`) and hands them to LevelDB sorted by key at commit: the memtable is
 * a skiplist, and inserting a group's random hash keys in key order keeps
 * each insert's search path in cache (the unsorted inserts' cache misses
 * were half of the writer thread's time, docs/benchmarks.md).
 */
struct stm_index_batch {
  leveldb_writebatch_t *wb;
  struct stm_buf key;
  struct stm_buf scratch; /* one value at a time (index_records.c) */
  struct stm_buf kv;
  union entry_ref {
    size_t off;
    const uint8_t *p;
  } * refs; /* off, then p */
  size_t n, cap;
  bool failed; /* a put ran out of memory: the batch must not commit */
  size_t bytes;
};

int stm__index_ldb_error(struct stm_error *err, char *msg, const char *what) {
  int code = msg && strstr(msg, "Corruption") ? STM_ECORRUPT : STM_EIO;
  stm_error_set(err, code, NULL, "LevelDB %s: %s", what,
                msg ? msg : "unknown error");
  leveldb_free(msg);
  return code;
}

void stm__index_rd_begin(struct stm__index_rd *r, struct stm_index *idx,
                         bool snapshot) {
  r->db = idx->db;
  r->ro = leveldb_readoptions_create();
  r->own_ro = true;
  r->snap = snapshot ? leveldb_create_snapshot(r->db) : NULL;
  if (r->snap)
    leveldb_readoptions_set_snapshot(r->ro, r->snap);
}

void stm__index_rd_latest(struct stm__index_rd *r, struct stm_index *idx) {
  r->db = idx->db;
  r->ro = idx->ro_latest;
  r->own_ro = false;
  r->snap = NULL;
}

void stm__index_rd_end(struct stm__index_rd *r) {
  if (r->own_ro)
    leveldb_readoptions_destroy(r->ro);
  if (r->snap)
    leveldb_release_snapshot(r->db, r->snap);
}

int stm__index_get(const struct stm__index_rd *r, const void *key, size_t klen,
                   struct stm_buf *out, struct stm_error *err) {
  char *errmsg = NULL;
  size_t vlen = 0;
  char *v = leveldb_get(r->db, r->ro, key, klen, &vlen, &errmsg);
  if (errmsg)
    return stm__index_ldb_error(err, errmsg, "read");
  if (v == NULL)
    return STM_ENOTFOUND;
  stm_buf_reset(out);
  int rc = stm_buf_append(out, v, vlen);
  leveldb_free(v);
  if (rc)
    return stm_error_set(err, rc, NULL, "index read: out of memory");
  return 0;
}

int stm__index_iterate(const struct stm__index_rd *r, const void *prefix,
                       size_t plen, const void *start, size_t slen,
                       stm__index_kv_cb cb, void *ctx, struct stm_error *err) {
  leveldb_iterator_t *it = leveldb_create_iterator(r->db, r->ro);
  int rc = 0;
  leveldb_iter_seek(it, (const char *)start, slen);
  for (; rc == 0 && leveldb_iter_valid(it); leveldb_iter_next(it)) {
    size_t klen, vlen;
    const uint8_t *key = (const uint8_t *)leveldb_iter_key(it, &klen);
    if (klen < plen || memcmp(key, prefix, plen) != 0)
      break;
    const uint8_t *val = (const uint8_t *)leveldb_iter_value(it, &vlen);
    rc = cb(ctx, key, klen, val, vlen);
  }
  char *msg = NULL;
  if (rc == 0)
    leveldb_iter_get_error(it, &msg);
  leveldb_iter_destroy(it);
  return msg ? stm__index_ldb_error(err, msg, "read") : rc;
}

/* ---- open / meta --------------------------------------------------------- */

static int read_meta_u64(const struct stm__index_rd *r, const char *key,
                         size_t width, uint64_t *out, struct stm_error *err) {
  struct stm_buf v;
  stm_buf_init(&v);
  int rc = stm__index_get(r, key, strlen(key), &v, err);
  if (rc == 0 && v.len != width)
    rc = stm_error_set(err, STM_ECORRUPT, NULL, "index meta %s has %zu bytes",
                       key + 1, v.len);
  if (rc == 0)
    *out = width == 8 ? stm_buf_load_u64le(v.data) : stm_buf_load_u32le(v.data);
  if (rc == STM_ENOTFOUND) {
    *out = 0;
    rc = 0;
  }
  stm_buf_destroy(&v);
  return rc;
}

static int put_meta(struct stm_index *idx, leveldb_writebatch_t *wb,
                    struct stm_error *err) {
  (void)err;
  uint8_t v[8];
  stm_buf_store_u64le(v, idx->meta.last_applied_sequence);
  leveldb_writebatch_put(wb, META_LAST_APPLIED, strlen(META_LAST_APPLIED),
                         (const char *)v, 8);
  stm_buf_store_u64le(v, idx->meta.assertion_count);
  leveldb_writebatch_put(wb, META_COUNT, strlen(META_COUNT), (const char *)v,
                         8);
  stm_buf_store_u32le(v, idx->meta.format_version);
  leveldb_writebatch_put(wb, META_VERSION, strlen(META_VERSION),
                         (const char *)v, 4);
  stm_buf_store_u32le(v, idx->meta.shards);
  leveldb_writebatch_put(wb, META_SHARDS, strlen(META_SHARDS), (const char *)v,
                         4);
  return 0;
}

static int write_batch(struct stm_index *idx, leveldb_writebatch_t *wb,
                       struct stm_error *err) {
  char *errmsg = NULL;
  leveldb_write(idx->db, idx->wopts, wb, &errmsg);
  return errmsg ? stm__index_ldb_error(err, errmsg, "write") : 0;
}

static int load_meta(struct stm_index *idx, uint32_t shards,
                     struct stm_error *err) {
  struct stm__index_rd r;
  stm__index_rd_begin(&r, idx, false);
  uint64_t version = 0, old_shards = 0;
  int rc = read_meta_u64(&r, META_VERSION, 4, &version, err);
  rc = rc ? rc : read_meta_u64(&r, META_SHARDS, 4, &old_shards, err);
  rc = rc ? rc
          : read_meta_u64(&r, META_LAST_APPLIED, 8,
                          &idx->meta.last_applied_sequence, err);
  rc = rc ? rc
          : read_meta_u64(&r, META_COUNT, 8, &idx->meta.assertion_count, err);
  stm__index_rd_end(&r);
  if (rc)
    return rc;
  if (version != 0 && version < STM_INDEX_FORMAT_VERSION)
    return STALE_FORMAT;
  /* The shard index is keyed by shard: another count means another layout,
   * rebuilt from the WAL like an older format. */
  if (version != 0 && version == STM_INDEX_FORMAT_VERSION &&
      old_shards != shards)
    return STALE_FORMAT;
  idx->meta.shards = shards;
  if (version > STM_INDEX_FORMAT_VERSION)
    return stm_error_set(err, STM_EUNIMPL, NULL,
                         "index format version %u is not supported (this "
                         "build uses %u); delete DIR/index to rebuild it "
                         "from the WAL",
                         (unsigned)version, STM_INDEX_FORMAT_VERSION);
  idx->meta.format_version = STM_INDEX_FORMAT_VERSION;
  if (version != 0)
    return 0;
  leveldb_writebatch_t *wb = leveldb_writebatch_create();
  put_meta(idx, wb, err);
  rc = write_batch(idx, wb, err);
  leveldb_writebatch_destroy(wb);
  return rc;
}

static int open_db(struct stm_index *idx, const char *path,
                   struct stm_error *err) {
  char *errmsg = NULL;
  idx->db = leveldb_open(idx->options, path, &errmsg);
  if (errmsg == NULL)
    return 0;
  char what[300];
  snprintf(what, sizeof what, "cannot open %s", path);
  return stm__index_ldb_error(err, errmsg, what);
}

int stm_index_open(const char *path, struct stm_index **out,
                   struct stm_error *err) {
  return stm_index_open_shards(path, STM_INDEX_DEFAULT_SHARDS, out, err);
}

int stm_index_open_shards(const char *path, uint32_t shards,
                          struct stm_index **out, struct stm_error *err) {
  *out = NULL;
  struct stm_index *idx = calloc(1, sizeof *idx);
  if (idx == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "index: out of memory");
  idx->options = leveldb_options_create();
  idx->cache = leveldb_cache_create_lru(32u << 20);
  idx->filter = leveldb_filterpolicy_create_bloom(10);
  idx->wopts = leveldb_writeoptions_create();
  idx->ro_latest = leveldb_readoptions_create();
  leveldb_writeoptions_set_sync(idx->wopts, 0); /* the WAL is the truth */
  leveldb_options_set_create_if_missing(idx->options, 1);
  leveldb_options_set_cache(idx->options, idx->cache);
  leveldb_options_set_filter_policy(idx->options, idx->filter);
  /* 16 MiB memtables: 64 MiB wrote no faster and made every read search a
   * bigger skiplist first (Query throughput -30 % at 1 M claims). No
   * Snappy: claims are small and their hashes incompressible, and CPU,
   * not disk, is what the writer runs out of (docs/benchmarks.md). */
  leveldb_options_set_write_buffer_size(idx->options, 16u << 20);
  leveldb_options_set_compression(idx->options, leveldb_no_compression);
  int rc = open_db(idx, path, err);
  rc = rc ? rc : load_meta(idx, shards, err);
  if (rc == STALE_FORMAT) {
    /* LevelDB is derived data: an index of an older layout is dropped and
     * rebuilt from the WAL by the store's recovery (meta starts at 0). */
    stm_log_warn("index %s has an older format than %u or another shard "
                 "count than %u: rebuilding it from the WAL",
                 path, STM_INDEX_FORMAT_VERSION, (unsigned)shards);
    leveldb_close(idx->db);
    idx->db = NULL;
    char *errmsg = NULL;
    leveldb_destroy_db(idx->options, path, &errmsg);
    rc = errmsg ? stm__index_ldb_error(err, errmsg, "drop the old index") : 0;
    memset(&idx->meta, 0, sizeof idx->meta);
    rc = rc ? rc : open_db(idx, path, err);
    rc = rc ? rc : load_meta(idx, shards, err);
  }
  if (rc) {
    stm_index_delete(idx);
    return rc;
  }
  *out = idx;
  return 0;
}

void stm_index_delete(struct stm_index *idx) {
  if (idx == NULL)
    return;
  if (idx->db)
    leveldb_close(idx->db);
  leveldb_writeoptions_destroy(idx->wopts);
  leveldb_readoptions_destroy(idx->ro_latest);
  leveldb_options_destroy(idx->options);
  leveldb_filterpolicy_destroy(idx->filter);
  leveldb_cache_destroy(idx->cache);
  free(idx);
}

void stm_index_get_meta(const struct stm_index *idx,
                        struct stm_index_meta *out) {
  *out = idx->meta;
}

/* ---- writes -------------------------------------------------------------- */

struct stm_index_batch *stm_index_batch_new(void) {
  struct stm_index_batch *b = calloc(1, sizeof *b);
  if (b == NULL)
    return NULL;
  b->wb = leveldb_writebatch_create();
  stm_buf_init(&b->key);
  stm_buf_init(&b->scratch);
  return b;
}

void stm_index_batch_delete(struct stm_index_batch *b) {
  if (b == NULL)
    return;
  leveldb_writebatch_destroy(b->wb);
  stm_buf_destroy(&b->key);
  stm_buf_destroy(&b->scratch);
  stm_buf_destroy(&b->kv);
  free(b->refs);
  free(b);
}

void stm_index_batch_clear(struct stm_index_batch *b) {
  leveldb_writebatch_clear(b->wb);
  stm_buf_reset(&b->kv);
  b->n = 0;
  b->failed = false;
  b->bytes = 0;
}

bool stm_index_batch_ok(const struct stm_index_batch *b) { return !b->failed; }

static void entry_put(struct stm_index_batch *b, const void *k, size_t klen,
                      const void *v, size_t vlen) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 1024;
    union entry_ref *p = realloc(b->refs, cap * sizeof *p);
    if (p == NULL) {
      b->failed = true;
      return;
    }
    b->refs = p;
    b->cap = cap;
  }
  size_t off = b->kv.len;
  int rc = stm_buf_put_u32le(&b->kv, (uint32_t)klen);
  rc = rc ? rc : stm_buf_put_u32le(&b->kv, (uint32_t)vlen);
  rc = rc ? rc : stm_buf_append(&b->kv, k, klen);
  rc = rc ? rc : stm_buf_append(&b->kv, v, vlen);
  if (rc) {
    b->failed = true;
    return;
  }
  b->refs[b->n++].off = off;
  b->bytes += klen + vlen;
}

/* Entries compare by key; the same key keeps the order of its puts (so
 * the last one wins in LevelDB): later entries sit at higher addresses. */
static int cmp_entry(const void *a, const void *b) {
  const uint8_t *pa = ((const union entry_ref *)a)->p;
  const uint8_t *pb = ((const union entry_ref *)b)->p;
  uint32_t la = stm_buf_load_u32le(pa), lb = stm_buf_load_u32le(pb);
  int c = memcmp(pa + 8, pb + 8, la < lb ? la : lb);
  if (c == 0 && la != lb)
    c = la < lb ? -1 : 1;
  if (c == 0)
    c = pa < pb ? -1 : 1;
  return c;
}

/* Move the collected puts into the LevelDB batch in key order. */
static void entries_to_writebatch(struct stm_index_batch *b) {
  /* Offsets become pointers now that the buffer no longer moves. */
  for (size_t i = 0; i < b->n; i++)
    b->refs[i].p = b->kv.data + b->refs[i].off;
  qsort(b->refs, b->n, sizeof *b->refs, cmp_entry);
  for (size_t i = 0; i < b->n; i++) {
    const uint8_t *p = b->refs[i].p;
    uint32_t kl = stm_buf_load_u32le(p), vl = stm_buf_load_u32le(p + 4);
    leveldb_writebatch_put(b->wb, (const char *)p + 8, kl,
                           (const char *)p + 8 + kl, vl);
  }
}

size_t stm_index_batch_bytes(const struct stm_index_batch *b) {
  return b->bytes;
}

static void batch_put(struct stm_index_batch *b, const void *v, size_t vlen) {
  entry_put(b, b->key.data, b->key.len, v, vlen);
}

static int index_key(struct stm_buf *k, const struct stm_claim *c) {
  const char *path = c->concept_path ? c->concept_path : "";
  const char *pred = c->predicate ? c->predicate : "";
  stm_buf_reset(k);
  int rc = stm_buf_put_u8(k, KEY_INDEX);
  rc = rc ? rc : stm_buf_append(k, path, strlen(path) + 1);
  rc = rc ? rc : stm_buf_append(k, pred, strlen(pred) + 1);
  rc = rc ? rc : stm_buf_put_u64be(k, (uint64_t)c->timestamp_ns ^ TIME_BIAS);
  return rc ? rc : stm_buf_append(k, c->hash, STM_HASH_LEN);
}

int stm_index_batch_put_claim(struct stm_index_batch *b,
                              const struct stm_claim *c, const void *encoded,
                              size_t len) {
  struct stm_buf *k = &b->key;
  stm_buf_reset(k);
  int rc = stm_buf_put_u8(k, KEY_CLAIM);
  rc = rc ? rc : stm_buf_append(k, c->hash, STM_HASH_LEN);
  if (rc)
    return rc;
  batch_put(b, encoded, len);
  if ((rc = index_key(k, c)) != 0)
    return rc;
  batch_put(b, "", 0);
  return 0;
}

int stm_index_commit(struct stm_index *idx, struct stm_index_batch *b,
                     uint64_t last_applied_sequence, uint64_t assertion_count,
                     struct stm_error *err) {
  if (b->failed) {
    stm_index_batch_clear(b);
    return stm_error_set(err, STM_ENOMEM, NULL,
                         "index: out of memory building a write batch");
  }
  struct stm_index_meta old = idx->meta;
  idx->meta.last_applied_sequence = last_applied_sequence;
  idx->meta.assertion_count = assertion_count;
  entries_to_writebatch(b);
  put_meta(idx, b->wb, err);
  int rc = write_batch(idx, b->wb, err);
  if (rc)
    idx->meta = old;
  stm_index_batch_clear(b);
  return rc;
}

/* ---- reads --------------------------------------------------------------- */

/* One read of claims: a snapshot (or, for the writer's lookups, the
 * latest state) with the view to filter by and a claim to decode into. */
struct reader {
  struct stm__index_rd rd;
  const struct stm_read_view *view;
  struct stm_buf val;
  struct stm_claim claim;
};

static void reader_begin(struct reader *r, struct stm_index *idx,
                         const struct stm_read_view *view) {
  stm__index_rd_begin(&r->rd, idx, true);
  r->view = view;
  stm_buf_init(&r->val);
  stm_claim_init(&r->claim);
}

/*
 * The writer's dedupe lookups need no snapshot: it is the only writer, and
 * a single get is atomic. Skipping the snapshot saves two allocations and
 * the DB mutex per submitted claim.
 */
static void reader_begin_latest(struct reader *r, struct stm_index *idx) {
  stm__index_rd_latest(&r->rd, idx);
  r->view = NULL;
  stm_buf_init(&r->val);
  stm_claim_init(&r->claim);
}

static void reader_end(struct reader *r) {
  stm__index_rd_end(&r->rd);
  stm_buf_destroy(&r->val);
  stm_claim_destroy(&r->claim);
}

/*
 * Load the claim with `hash` into r->claim. Returns 0, NOT_VISIBLE,
 * STM_ENOTFOUND, or an error.
 */
static int load_claim(struct reader *r, const uint8_t *hash,
                      struct stm_error *err) {
  uint8_t key[1 + STM_HASH_LEN];
  key[0] = KEY_CLAIM;
  memcpy(key + 1, hash, STM_HASH_LEN);
  int rc = stm__index_get(&r->rd, key, sizeof key, &r->val, err);
  if (rc)
    return rc;
  rc = stm_claim_decode(r->val.data, r->val.len, &r->claim, err);
  if (rc)
    return rc;
  if (memcmp(r->claim.hash, hash, STM_HASH_LEN) != 0)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "index: a stored claim does not match its hash");
  return stm_view_visible(r->view, r->claim.sequence, r->claim.commit_time_ns)
             ? 0
             : NOT_VISIBLE;
}

int stm_index_find(struct stm_index *idx, const uint8_t hash[STM_HASH_LEN],
                   uint64_t *sequence, struct stm_error *err) {
  struct reader r;
  reader_begin_latest(&r, idx);
  int rc = load_claim(&r, hash, err);
  if (rc == 0)
    *sequence = r.claim.sequence;
  reader_end(&r);
  return rc;
}

int stm_index_find_time(struct stm_index *idx, const uint8_t hash[STM_HASH_LEN],
                        uint64_t *sequence, int64_t *commit_time_ns,
                        struct stm_error *err) {
  struct reader r;
  reader_begin_latest(&r, idx);
  int rc = load_claim(&r, hash, err);
  if (rc == 0) {
    *sequence = r.claim.sequence;
    *commit_time_ns = r.claim.commit_time_ns;
  }
  reader_end(&r);
  return rc;
}

int stm__index_retime_claim(struct stm_index *idx, struct stm_index_batch *b,
                            const uint8_t hash[STM_HASH_LEN], int64_t time_ns,
                            bool *done, struct stm_error *err) {
  *done = false;
  struct reader r;
  reader_begin_latest(&r, idx);
  int rc = load_claim(&r, hash, err);
  if (rc == 0 && time_ns < r.claim.commit_time_ns) {
    r.claim.commit_time_ns = time_ns;
    stm_buf_reset(&r.val);
    rc = stm_claim_encode(&r.claim, &r.val);
    rc =
        rc ? rc : stm_index_batch_put_claim(b, &r.claim, r.val.data, r.val.len);
    *done = rc == 0;
  }
  reader_end(&r);
  return rc;
}

int stm_index_get_claim(struct stm_index *idx, const uint8_t hash[STM_HASH_LEN],
                        const struct stm_read_view *view, struct stm_claim *out,
                        struct stm_error *err) {
  struct reader r;
  reader_begin(&r, idx, view);
  int rc = load_claim(&r, hash, err);
  if (rc == NOT_VISIBLE)
    rc = STM_ENOTFOUND;
  if (rc == 0)
    rc = stm__index_claim_epoch(&r.rd, &r.claim, view, &r.claim.epoch, err);
  if (rc == 0) {
    stm_claim_destroy(out);
    *out = r.claim; /* move: the reader's copy is re-inited below */
    stm_claim_init(&r.claim);
  }
  reader_end(&r);
  return rc;
}

/* ---- scans --------------------------------------------------------------- */

struct scan {
  struct reader r;
  const char *predicate; /* NULL: every predicate */
  size_t pred_len;
  size_t prefix_len;     /* of the keys being scanned */
  bool filter_predicate; /* descendants: match the predicate in the key */
  stm_store_claim_cb cb;
  void *ctx;
  struct stm_error *err;
  struct stm_buf scope;  /* path 0 predicate of the last claim visited */
  uint64_t scope_epochs; /* epochs seen in that scope (0: skip lookups) */
};

/* Assertion.epoch of the visited claim; a scope without epochs (the
 * common case) is looked up once per scan, not once per claim. */
static int claim_epoch(struct scan *s) {
  struct stm_claim *c = &s->r.claim;
  const char *pred = c->predicate ? c->predicate : "";
  size_t pl = strlen(c->concept_path) + 1, ql = strlen(pred) + 1;
  bool same = s->scope.len == pl + ql &&
              memcmp(s->scope.data, c->concept_path, pl) == 0 &&
              memcmp(s->scope.data + pl, pred, ql) == 0;
  if (same && s->scope_epochs == 0) {
    c->epoch = 0;
    return 0;
  }
  int rc = stm__index_claim_epoch(&s->r.rd, c, s->r.view, &c->epoch, s->err);
  if (rc == 0 && !same) {
    stm_buf_reset(&s->scope);
    rc = stm_buf_append(&s->scope, c->concept_path, pl);
    rc = rc ? rc : stm_buf_append(&s->scope, pred, ql);
    struct stm_claim last = *c; /* epochs of the scope, before anything */
    last.commit_time_ns = INT64_MAX;
    memset(last.hash, 0xff, STM_HASH_LEN);
    uint64_t n = 0;
    rc = rc ? rc : stm__index_claim_epoch(&s->r.rd, &last, NULL, &n, s->err);
    s->scope_epochs = n;
  }
  return rc;
}

static int scan_corrupt(struct scan *s, const char *what) {
  return stm_error_set(s->err, STM_ECORRUPT, NULL, "index: %s", what);
}

/* Visit the claim an index entry points to, if the view shows it. */
static int visit(struct scan *s, const uint8_t *key_hash) {
  uint8_t hash[STM_HASH_LEN];
  memcpy(hash, key_hash, STM_HASH_LEN);
  int rc = load_claim(&s->r, hash, s->err);
  if (rc == NOT_VISIBLE)
    return 0;
  if (rc == STM_ENOTFOUND) /* index and claim are written in one batch */
    return scan_corrupt(s, "an index entry points to a missing claim");
  rc = rc ? rc : claim_epoch(s);
  return rc ? rc : s->cb(s->ctx, &s->r.claim);
}

/*
 * In an 'i' key whose concept path starts at `from`, is the predicate the
 * one asked for? Layout after `from`: path 0x00 predicate 0x00 ts hash.
 */
static bool predicate_matches(const struct scan *s, const uint8_t *key,
                              size_t klen, size_t from) {
  const uint8_t *end = key + klen - 8 - STM_HASH_LEN; /* after pred's NUL */
  const uint8_t *nul = memchr(key + from, 0, (size_t)(end - (key + from)));
  if (nul == NULL || end - nul < 2 || end[-1] != 0)
    return false;
  size_t len = (size_t)(end - nul) - 2;
  return len == s->pred_len && memcmp(nul + 1, s->predicate, len) == 0;
}

static int on_index_key(void *ctx, const uint8_t *key, size_t klen,
                        const uint8_t *val, size_t vlen) {
  (void)val;
  (void)vlen;
  struct scan *s = ctx;
  if (klen < s->prefix_len + 8 + STM_HASH_LEN)
    return scan_corrupt(s, "an index key is too short");
  if (s->filter_predicate && !predicate_matches(s, key, klen, 1))
    return 0;
  return visit(s, key + klen - STM_HASH_LEN);
}

/* Visit every 'i' key starting with `prefix`, in key order. */
static int scan_prefix(struct scan *s, const struct stm_buf *prefix,
                       bool filter_predicate) {
  s->prefix_len = prefix->len;
  s->filter_predicate = filter_predicate;
  return stm__index_iterate(&s->r.rd, prefix->data, prefix->len, prefix->data,
                            prefix->len, on_index_key, s, s->err);
}

static int build_prefix(struct stm_buf *p, const char *path, const char *pred,
                        char path_end) {
  stm_buf_reset(p);
  int rc = stm_buf_put_u8(p, KEY_INDEX);
  rc = rc ? rc : stm_buf_append(p, path, strlen(path));
  rc = rc ? rc : stm_buf_put_u8(p, (uint8_t)path_end);
  if (rc == 0 && pred != NULL)
    rc = stm_buf_append(p, pred, strlen(pred) + 1);
  return rc;
}

int stm_index_scan_concept(struct stm_index *idx, const char *concept_path,
                           const char *predicate, bool include_descendants,
                           const struct stm_read_view *view,
                           stm_store_claim_cb cb, void *ctx,
                           struct stm_error *err) {
  if (concept_path == NULL || concept_path[0] == '\0' || cb == NULL)
    return stm_error_set(err, STM_EINVAL, "concept_path",
                         "a concept path and a callback are required");
  if (predicate != NULL && predicate[0] == '\0')
    predicate = NULL;
  struct scan s = {.predicate = predicate,
                   .pred_len = predicate ? strlen(predicate) : 0,
                   .cb = cb,
                   .ctx = ctx,
                   .err = err};
  stm_buf_init(&s.scope);
  struct stm_buf prefix;
  stm_buf_init(&prefix);
  reader_begin(&s.r, idx, view);
  /* path 0x00 sorts before path '/', so the exact path comes first. */
  int rc = build_prefix(&prefix, concept_path, predicate, '\0');
  rc = rc ? rc : scan_prefix(&s, &prefix, false);
  if (rc == 0 && include_descendants) {
    rc = build_prefix(&prefix, concept_path, NULL, '/');
    rc = rc ? rc : scan_prefix(&s, &prefix, predicate != NULL);
  }
  if (rc == STM_ENOMEM)
    stm_error_set(err, rc, NULL, "index scan: out of memory");
  reader_end(&s.r);
  stm_buf_destroy(&s.scope);
  stm_buf_destroy(&prefix);
  return rc;
}

/* ---- for index_records.c ---------------------------------------------- */

struct stm_buf *stm__index_batch_scratch(struct stm_index_batch *b) {
  return &b->scratch;
}

int stm__index_load_claim(const struct stm__index_rd *rd,
                          const uint8_t hash[STM_HASH_LEN],
                          struct stm_claim *out, struct stm_error *err) {
  struct reader r = {.rd = *rd, .view = NULL};
  stm_buf_init(&r.val);
  stm_claim_init(&r.claim);
  int rc = load_claim(&r, hash, err);
  if (rc == 0) {
    stm_claim_destroy(out);
    *out = r.claim; /* move */
    stm_claim_init(&r.claim);
  }
  stm_buf_destroy(&r.val); /* r.rd is borrowed: not ended here */
  stm_claim_destroy(&r.claim);
  return rc;
}

void stm__index_batch_put(struct stm_index_batch *b, const void *key,
                          size_t klen, const void *v, size_t vlen) {
  entry_put(b, key, klen, v, vlen);
}
