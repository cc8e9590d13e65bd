/*
 * index_records.c - record key spaces (layout in index_records.h and
 * docs/formats.md): batch puts for the writer and snapshot reads.
 */
#include "index_records.h"

#include "index_internal.h"

#include "common/validate.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define KEY_VOTE 'v'
#define KEY_EPOCH 'e'
#define KEY_SOURCE 's'
#define KEY_RECORD 'r'
#define KEY_CHILD 'p'
#define KEY_CONCEPT 'k'
#define KEY_SEQUENCE 'q'
#define KEY_API_KEY 'y'

/* A scan callback's "stop here, no error" (never a stm error code). */
#define STOP_SCAN 0x53544f50

static int parse_log_value(uint64_t seq, const uint8_t *val, size_t vlen,
                           struct stm_audit_entry *a, const uint8_t **rest,
                           size_t *rest_len, struct stm_error *err);

/* ---- writes -----------------------------------------------------------------
 */

int stm__index_put_record(struct stm_index_batch *b, const struct stm_record *r,
                          const void *encoded, size_t len) {
  struct stm_buf k;
  stm_buf_init(&k);
  uint64_t seq = stm_record_sequence(r);
  int rc = 0;
  switch (r->kind) {
  case STM_RECORD_VOTE:
    rc = stm_buf_put_u8(&k, KEY_VOTE);
    rc = rc ? rc : stm_buf_append(&k, r->u.vote.target, STM_HASH_LEN);
    break;
  case STM_RECORD_EPOCH:
    rc = stm_buf_put_u8(&k, KEY_EPOCH);
    rc = rc ? rc
            : stm_buf_append(&k, r->u.epoch.concept_path,
                             strlen(r->u.epoch.concept_path) + 1);
    rc = rc ? rc
            : stm_buf_append(&k, r->u.epoch.predicate,
                             strlen(r->u.epoch.predicate) + 1);
    break;
  case STM_RECORD_SOURCE:
    rc = stm_buf_put_u8(&k, KEY_SOURCE);
    rc = rc ? rc
            : stm_buf_append(&k, r->u.source.id, strlen(r->u.source.id) + 1);
    break;
  case STM_RECORD_API_KEY:
  case STM_RECORD_KEY_REVOKE: { /* creations and revocations of one id */
    const char *id =
        r->kind == STM_RECORD_API_KEY ? r->u.key.id : r->u.revoke.id;
    rc = stm_buf_put_u8(&k, KEY_API_KEY);
    rc = rc ? rc : stm_buf_append(&k, id, strlen(id) + 1);
    break;
  }
  default:
    rc = STM_EINVAL;
  }
  rc = rc ? rc : stm_buf_put_u64be(&k, seq);
  if (rc == 0)
    stm__index_batch_put(b, k.data, k.len, encoded, len);
  uint8_t key[1 + STM_HASH_LEN], val[9];
  key[0] = KEY_RECORD;
  memcpy(key + 1, stm_record_hash(r), STM_HASH_LEN);
  val[0] = (uint8_t)r->kind;
  stm_buf_store_u64be(val + 1, seq);
  if (rc == 0)
    stm__index_batch_put(b, key, sizeof key, val, 9);
  stm_buf_destroy(&k);
  return rc;
}

int stm__index_put_claim_extras(struct stm_index_batch *b,
                                const struct stm_claim *c, bool concept) {
  if (c->has_parent) {
    uint8_t key[1 + 2 * STM_HASH_LEN];
    key[0] = KEY_CHILD;
    memcpy(key + 1, c->parent_hash, STM_HASH_LEN);
    memcpy(key + 1 + STM_HASH_LEN, c->hash, STM_HASH_LEN);
    stm__index_batch_put(b, key, sizeof key, "", 0);
  }
  if (!concept)
    return 0;
  struct stm_buf *k = stm__index_batch_scratch(b);
  stm_buf_reset(k);
  int rc = stm_buf_put_u8(k, KEY_CONCEPT);
  rc = rc ? rc : stm_buf_append(k, c->concept_path, strlen(c->concept_path));
  if (rc == 0)
    stm__index_batch_put(b, k->data, k->len, "", 0);
  return rc;
}

int stm__index_put_audit(struct stm_index_batch *b,
                         const struct stm_audit_entry *a, const void *record,
                         size_t record_len) {
  uint8_t key[9];
  key[0] = KEY_SEQUENCE;
  stm_buf_store_u64be(key + 1, a->sequence);
  size_t olen = strnlen(a->op, STM_AUDIT_OP_MAX - 1);
  size_t clen = strnlen(a->caller, STM_AUDIT_CALLER_MAX - 1);
  struct stm_buf *v = stm__index_batch_scratch(b);
  stm_buf_reset(v);
  int rc = stm_buf_put_u8(v, (uint8_t)a->kind);
  rc = rc ? rc : stm_buf_append(v, a->target, STM_HASH_LEN);
  rc = rc ? rc : stm_buf_put_u64le(v, (uint64_t)a->time_ns);
  rc = rc ? rc : stm_buf_put_u8(v, (uint8_t)olen);
  rc = rc ? rc : stm_buf_append(v, a->op, olen);
  rc = rc ? rc : stm_buf_put_u8(v, (uint8_t)(clen & 0xff));
  rc = rc ? rc : stm_buf_put_u8(v, (uint8_t)(clen >> 8));
  rc = rc ? rc : stm_buf_append(v, a->caller, clen);
  if (rc == 0 && record_len > 0)
    rc = stm_buf_append(v, record, record_len);
  if (rc == 0)
    stm__index_batch_put(b, key, sizeof key, v->data, v->len);
  return rc;
}

/* ---- reads ------------------------------------------------------------------
 */

int stm__index_find_record(struct stm_index *idx,
                           const uint8_t hash[STM_HASH_LEN], uint64_t *seq,
                           struct stm_error *err) {
  struct stm__index_rd r;
  stm__index_rd_latest(&r, idx); /* the writer's lookup */
  uint8_t key[1 + STM_HASH_LEN];
  key[0] = KEY_RECORD;
  memcpy(key + 1, hash, STM_HASH_LEN);
  struct stm_buf v;
  stm_buf_init(&v);
  int rc = stm__index_get(&r, key, sizeof key, &v, err);
  if (rc == 0 && v.len != 9)
    rc = stm_error_set(err, STM_ECORRUPT, NULL, "a record key is malformed");
  if (rc == 0)
    *seq = stm_buf_load_u64be(v.data + 1);
  stm_buf_destroy(&v);
  stm__index_rd_end(&r);
  return rc;
}

/* -- epochs -- */

static int epoch_prefix(struct stm_buf *p, const char *path, const char *pred) {
  int rc = stm_buf_put_u8(p, KEY_EPOCH);
  rc = rc ? rc : stm_buf_append(p, path, strlen(path) + 1);
  return rc ? rc : stm_buf_append(p, pred, strlen(pred) + 1);
}

struct epoch_find {
  const struct stm_read_view *view;
  bool has_after; /* else: the newest */
  int64_t after_time;
  uint8_t after_hash[STM_HASH_LEN];
  struct stm_record rec; /* the best so far */
  bool found;
  uint64_t visible;     /* visible epochs of the scope */
  struct stm_buf order; /* (i64le time, hash) of each visible epoch */
  struct stm_error *err;
};

/* The cluster-wide order of writes: commit time, then hash. */
static int order_cmp(int64_t ta, const uint8_t *ha, int64_t tb,
                     const uint8_t *hb) {
  if (ta != tb)
    return ta < tb ? -1 : 1;
  return memcmp(ha, hb, STM_HASH_LEN);
}

bool stm_store_epoch_before(const struct stm_epoch *e, int64_t time_ns,
                            const uint8_t hash[STM_HASH_LEN]) {
  return order_cmp(e->commit_time_ns, e->hash, time_ns, hash) < 0;
}

/* Epoch keys are in local sequence order, which is arrival order: the scan
 * reads the whole scope (a handful of epochs) and picks by (time, hash). */
static int on_epoch(void *ctx, const uint8_t *key, size_t klen,
                    const uint8_t *val, size_t vlen) {
  (void)key;
  (void)klen;
  struct epoch_find *f = ctx;
  struct stm_record rec;
  int rc = stm_record_decode(STM_RECORD_EPOCH, val, vlen, &rec, f->err);
  if (rc)
    return rc;
  const struct stm_epoch *e = &rec.u.epoch;
  bool take = false;
  if (stm_view_visible(f->view, e->sequence, e->commit_time_ns)) {
    f->visible++;
    rc = stm_buf_put_u64le(&f->order, (uint64_t)e->commit_time_ns);
    rc = rc ? rc : stm_buf_append(&f->order, e->hash, STM_HASH_LEN);
    const struct stm_epoch *b = f->found ? &f->rec.u.epoch : NULL;
    int vs_b =
        b ? order_cmp(e->commit_time_ns, e->hash, b->commit_time_ns, b->hash)
          : 0;
    if (!f->has_after)
      take = b == NULL || vs_b > 0;
    else if (order_cmp(e->commit_time_ns, e->hash, f->after_time,
                       f->after_hash) > 0)
      take = b == NULL || vs_b < 0;
  }
  if (take) {
    if (f->found)
      stm_record_destroy(&f->rec);
    f->rec = rec;
    f->found = true;
  } else {
    stm_record_destroy(&rec);
  }
  return rc;
}

/* The number of the chosen epoch: its rank among the visible ones. */
static uint64_t epoch_rank(const struct epoch_find *f) {
  const struct stm_epoch *b = &f->rec.u.epoch;
  uint64_t n = 0;
  for (size_t off = 0; off + 8 + STM_HASH_LEN <= f->order.len;
       off += 8 + STM_HASH_LEN) {
    int64_t t = (int64_t)stm_buf_load_u64le(f->order.data + off);
    if (order_cmp(t, f->order.data + off + 8, b->commit_time_ns, b->hash) <= 0)
      n++;
  }
  return n;
}

static int find_epoch_rd(const struct stm__index_rd *r, const char *path,
                         const char *pred, struct epoch_find *f,
                         struct stm_epoch *out, struct stm_error *err) {
  struct stm_buf p;
  stm_buf_init(&p);
  stm_buf_init(&f->order);
  int rc = epoch_prefix(&p, path, pred ? pred : "");
  if (rc == 0)
    rc = stm__index_iterate(r, p.data, p.len, p.data, p.len, on_epoch, f, err);
  stm_buf_destroy(&p);
  if (rc == 0 && f->found)
    f->rec.u.epoch.number = epoch_rank(f);
  stm_buf_destroy(&f->order);
  if (rc < 0) {
    if (f->found)
      stm_record_destroy(&f->rec);
    return rc;
  }
  if (!f->found)
    return STM_ENOTFOUND;
  *out = f->rec.u.epoch;
  return 0;
}

/* The claim logged at `seq` (its time and hash order it). */
static int claim_at(const struct stm__index_rd *r, uint64_t seq,
                    struct epoch_find *f, struct stm_error *err) {
  uint8_t key[9];
  key[0] = KEY_SEQUENCE;
  stm_buf_store_u64be(key + 1, seq);
  struct stm_buf v;
  stm_buf_init(&v);
  int rc = stm__index_get(r, key, sizeof key, &v, err);
  /* Zeroed: on an error a.time_ns is still read below (and ignored). */
  struct stm_audit_entry a;
  memset(&a, 0, sizeof a);
  const uint8_t *rest;
  size_t rest_len;
  rc = rc ? rc : parse_log_value(seq, v.data, v.len, &a, &rest, &rest_len, err);
  stm_buf_destroy(&v);
  struct stm_claim c;
  stm_claim_init(&c);
  if (rc == 0 && a.kind == STM_RECORD_CLAIM)
    rc = stm__index_load_claim(r, a.target, &c, err);
  f->has_after = true;
  f->after_time =
      rc == 0 && a.kind == STM_RECORD_CLAIM ? c.commit_time_ns : a.time_ns;
  memcpy(f->after_hash, rc == 0 ? a.target : f->after_hash, STM_HASH_LEN);
  stm_claim_destroy(&c);
  return rc;
}

static int find_epoch(struct stm_index *idx, bool snapshot, const char *path,
                      const char *pred, uint64_t after,
                      const struct stm_read_view *view, struct stm_epoch *out,
                      struct stm_error *err) {
  struct epoch_find f = {.view = view, .err = err};
  struct stm__index_rd r;
  if (snapshot)
    stm__index_rd_begin(&r, idx, true);
  else if (view == NULL && after == 0)
    stm__index_rd_latest(&r, idx);
  else
    stm__index_rd_begin(&r, idx, false);
  int rc = after ? claim_at(&r, after, &f, err) : 0;
  rc = rc ? rc : find_epoch_rd(&r, path, pred, &f, out, err);
  stm__index_rd_end(&r);
  return rc;
}

int stm__index_last_epoch(struct stm_index *idx, const char *path,
                          const char *predicate, struct stm_epoch *out,
                          struct stm_error *err) {
  return find_epoch(idx, false, path, predicate, 0, NULL, out, err);
}

int stm_index_find_epoch(struct stm_index *idx, const char *concept_path,
                         const char *predicate, uint64_t after_sequence,
                         const struct stm_read_view *view,
                         struct stm_epoch *out, struct stm_error *err) {
  return find_epoch(idx, stm__index_needs_snapshot(view), concept_path,
                    predicate, after_sequence, view, out, err);
}

int stm__index_claim_epoch(const struct stm__index_rd *r,
                           const struct stm_claim *c,
                           const struct stm_read_view *view, uint64_t *number,
                           struct stm_error *err) {
  struct epoch_find f = {.view = view, .err = err, .has_after = false};
  *number = 0;
  /* The newest epoch of the claim's scope that comes before the claim:
   * visible epochs ordered before (time, hash) of the claim. */
  struct stm_buf p;
  stm_buf_init(&p);
  stm_buf_init(&f.order);
  int rc = epoch_prefix(&p, c->concept_path, c->predicate ? c->predicate : "");
  if (rc == 0)
    rc = stm__index_iterate(r, p.data, p.len, p.data, p.len, on_epoch, &f, err);
  stm_buf_destroy(&p);
  for (size_t off = 0; rc == 0 && off + 8 + STM_HASH_LEN <= f.order.len;
       off += 8 + STM_HASH_LEN) {
    int64_t t = (int64_t)stm_buf_load_u64le(f.order.data + off);
    if (order_cmp(t, f.order.data + off + 8, c->commit_time_ns, c->hash) < 0)
      (*number)++;
  }
  stm_buf_destroy(&f.order);
  if (f.found)
    stm_record_destroy(&f.rec);
  return rc;
}

/* -- sources -- */

struct source_walk {
  const struct stm_read_view *view;
  struct stm_record cur; /* latest visible version of the current id */
  bool have;
  stm_store_source_cb cb;
  void *ctx;
  struct stm_error *err;
};

static int source_emit(struct source_walk *w) {
  if (!w->have)
    return 0;
  int rc = w->cb ? w->cb(w->ctx, &w->cur.u.source) : 0;
  stm_record_destroy(&w->cur);
  w->have = false;
  return rc;
}

/* Which source version wins, the same on every node: the higher
 * (timestamp_ns, commit_time_ns, hash). */
static bool source_newer(const struct stm_source *a,
                         const struct stm_source *b) {
  if (a->timestamp_ns != b->timestamp_ns)
    return a->timestamp_ns > b->timestamp_ns;
  return order_cmp(a->commit_time_ns, a->hash, b->commit_time_ns, b->hash) > 0;
}

static int on_source(void *ctx, const uint8_t *key, size_t klen,
                     const uint8_t *val, size_t vlen) {
  (void)key;
  (void)klen;
  struct source_walk *w = ctx;
  struct stm_record rec;
  int rc = stm_record_decode(STM_RECORD_SOURCE, val, vlen, &rec, w->err);
  if (rc)
    return rc;
  if (!stm_view_visible(w->view, rec.u.source.sequence,
                        rec.u.source.commit_time_ns)) {
    stm_record_destroy(&rec);
    return 0;
  }
  if (w->have && strcmp(w->cur.u.source.id, rec.u.source.id) != 0 &&
      (rc = source_emit(w)) != 0) {
    stm_record_destroy(&rec);
    return rc;
  }
  if (w->have && !source_newer(&rec.u.source, &w->cur.u.source)) {
    stm_record_destroy(&rec); /* arrival order is local: compare versions */
    return 0;
  }
  if (w->have)
    stm_record_destroy(&w->cur);
  w->cur = rec;
  w->have = true;
  return 0;
}

int stm_index_get_source(struct stm_index *idx, const char *id,
                         const struct stm_read_view *view,
                         struct stm_source *out, struct stm_error *err) {
  struct stm_buf p;
  stm_buf_init(&p);
  int rc = stm_buf_put_u8(&p, KEY_SOURCE);
  rc = rc ? rc : stm_buf_append(&p, id, strlen(id) + 1);
  struct source_walk w = {.view = view, .err = err};
  struct stm__index_rd r;
  stm__index_rd_begin(&r, idx, stm__index_needs_snapshot(view));
  if (rc == 0)
    rc = stm__index_iterate(&r, p.data, p.len, p.data, p.len, on_source, &w,
                            err);
  stm__index_rd_end(&r);
  stm_buf_destroy(&p);
  if (rc == 0 && !w.have)
    rc = STM_ENOTFOUND;
  if (rc == 0) {
    *out = w.cur.u.source;
    return 0;
  }
  if (w.have)
    stm_record_destroy(&w.cur);
  return rc;
}

int stm_index_list_sources(struct stm_index *idx, const char *after,
                           const struct stm_read_view *view,
                           stm_store_source_cb cb, void *ctx,
                           struct stm_error *err) {
  struct stm_buf start;
  stm_buf_init(&start);
  int rc = stm_buf_put_u8(&start, KEY_SOURCE);
  if (after && after[0]) /* past every version of `after` */
    rc = rc ? rc : stm_buf_append(&start, after, strlen(after) + 1);
  if (rc == 0 && after && after[0])
    start.data[start.len - 1] = 1;
  uint8_t prefix = KEY_SOURCE;
  struct source_walk w = {.view = view, .cb = cb, .ctx = ctx, .err = err};
  struct stm__index_rd r;
  stm__index_rd_begin(&r, idx, true);
  if (rc == 0)
    rc = stm__index_iterate(&r, &prefix, 1, start.data, start.len, on_source,
                            &w, err);
  if (rc == 0)
    rc = source_emit(&w);
  else if (w.have)
    stm_record_destroy(&w.cur);
  stm__index_rd_end(&r);
  stm_buf_destroy(&start);
  return rc;
}

/* -- votes -- */

struct vote_walk {
  const struct stm_read_view *view;
  stm_store_vote_cb cb;
  void *ctx;
  struct stm_error *err;
};

static int on_vote(void *ctx, const uint8_t *key, size_t klen,
                   const uint8_t *val, size_t vlen) {
  (void)key;
  (void)klen;
  struct vote_walk *w = ctx;
  struct stm_record rec;
  int rc = stm_record_decode(STM_RECORD_VOTE, val, vlen, &rec, w->err);
  if (rc)
    return rc;
  if (stm_view_visible(w->view, rec.u.vote.sequence, rec.u.vote.commit_time_ns))
    rc = w->cb(w->ctx, &rec.u.vote);
  else
    rc = 0; /* commit time and sequence rise together: keep it simple */
  stm_record_destroy(&rec);
  return rc;
}

int stm_index_scan_votes(struct stm_index *idx,
                         const uint8_t target[STM_HASH_LEN],
                         const struct stm_read_view *view, stm_store_vote_cb cb,
                         void *ctx, struct stm_error *err) {
  uint8_t p[1 + STM_HASH_LEN];
  p[0] = KEY_VOTE;
  memcpy(p + 1, target, STM_HASH_LEN);
  struct vote_walk w = {.view = view, .cb = cb, .ctx = ctx, .err = err};
  struct stm__index_rd r;
  stm__index_rd_begin(&r, idx, stm__index_needs_snapshot(view));
  int rc = stm__index_iterate(&r, p, sizeof p, p, sizeof p, on_vote, &w, err);
  stm__index_rd_end(&r);
  return rc;
}

int stm_index_scan_votes_many(struct stm_index *idx,
                              const uint8_t (*targets)[STM_HASH_LEN], size_t n,
                              const struct stm_read_view *view,
                              stm_store_votes_cb cb, void *ctx,
                              struct stm_error *err) {
  struct stm__index_rd r;
  stm__index_rd_begin(&r, idx, stm__index_needs_snapshot(view));
  leveldb_iterator_t *it = leveldb_create_iterator(r.db, r.ro);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    uint8_t p[1 + STM_HASH_LEN];
    p[0] = KEY_VOTE;
    memcpy(p + 1, targets[i], STM_HASH_LEN);
    leveldb_iter_seek(it, (const char *)p, sizeof p);
    for (; rc == 0 && leveldb_iter_valid(it); leveldb_iter_next(it)) {
      size_t klen, vlen;
      const char *key = leveldb_iter_key(it, &klen);
      if (klen < sizeof p || memcmp(key, p, sizeof p) != 0)
        break;
      const char *val = leveldb_iter_value(it, &vlen);
      struct stm_record rec;
      rc = stm_record_decode(STM_RECORD_VOTE, val, vlen, &rec, err);
      if (rc)
        break;
      if (stm_view_visible(view, rec.u.vote.sequence,
                           rec.u.vote.commit_time_ns))
        rc = cb(ctx, i, &rec.u.vote);
      stm_record_destroy(&rec);
    }
  }
  char *msg = NULL;
  if (rc == 0)
    leveldb_iter_get_error(it, &msg);
  leveldb_iter_destroy(it);
  stm__index_rd_end(&r);
  return msg ? stm__index_ldb_error(err, msg, "read") : rc;
}

/* -- children, concepts, audit -- */

struct child_walk {
  struct stm_index *idx;
  const struct stm_read_view *view;
  stm_store_claim_cb cb;
  void *ctx;
  struct stm_error *err;
};

static int on_child(void *ctx, const uint8_t *key, size_t klen,
                    const uint8_t *val, size_t vlen) {
  (void)val;
  (void)vlen;
  struct child_walk *w = ctx;
  if (klen != 1 + 2 * STM_HASH_LEN)
    return stm_error_set(w->err, STM_ECORRUPT, NULL, "bad child key");
  struct stm_claim c;
  stm_claim_init(&c);
  int rc =
      stm_index_get_claim(w->idx, key + 1 + STM_HASH_LEN, w->view, &c, w->err);
  if (rc == 0)
    rc = w->cb(w->ctx, &c);
  else if (rc == STM_ENOTFOUND)
    rc = 0;
  stm_claim_destroy(&c);
  return rc;
}

int stm_index_scan_children(struct stm_index *idx,
                            const uint8_t parent[STM_HASH_LEN],
                            const struct stm_read_view *view,
                            stm_store_claim_cb cb, void *ctx,
                            struct stm_error *err) {
  uint8_t p[1 + STM_HASH_LEN];
  p[0] = KEY_CHILD;
  memcpy(p + 1, parent, STM_HASH_LEN);
  struct child_walk w = {
      .idx = idx, .view = view, .cb = cb, .ctx = ctx, .err = err};
  struct stm__index_rd r;
  stm__index_rd_begin(&r, idx, true);
  int rc = stm__index_iterate(&r, p, sizeof p, p, sizeof p, on_child, &w, err);
  stm__index_rd_end(&r);
  return rc;
}

struct concept_walk {
  stm_store_concept_cb cb;
  void *ctx;
  /* Any path --max-concept-path-bytes allows (common/validate.h). */
  char buf[STM_LIMIT_CONCEPT_PATH_CEIL + 1];
};

static int on_concept(void *ctx, const uint8_t *key, size_t klen,
                      const uint8_t *val, size_t vlen) {
  (void)val;
  (void)vlen;
  struct concept_walk *w = ctx;
  if (klen - 1 >= sizeof w->buf)
    return 0;
  memcpy(w->buf, key + 1, klen - 1);
  w->buf[klen - 1] = '\0';
  return w->cb(w->ctx, w->buf);
}

int stm_index_list_concepts(struct stm_index *idx, const char *prefix,
                            const char *after, stm_store_concept_cb cb,
                            void *ctx, struct stm_error *err) {
  struct stm_buf p, start;
  stm_buf_init(&p);
  stm_buf_init(&start);
  int rc = stm_buf_put_u8(&p, KEY_CONCEPT);
  rc = rc ? rc : stm_buf_append(&p, prefix, strlen(prefix));
  rc = rc ? rc : stm_buf_append(&start, p.data, p.len);
  if (rc == 0 && after && after[0]) {
    stm_buf_reset(&start);
    rc = stm_buf_put_u8(&start, KEY_CONCEPT);
    rc = rc ? rc : stm_buf_append(&start, after, strlen(after) + 1);
  }
  struct concept_walk *w = malloc(sizeof *w);
  if (w == NULL)
    rc = STM_ENOMEM;
  struct stm__index_rd r;
  stm__index_rd_begin(&r, idx, true);
  if (rc == 0) {
    w->cb = cb;
    w->ctx = ctx;
    rc = stm__index_iterate(&r, p.data, p.len, start.data, start.len,
                            on_concept, w, err);
  }
  stm__index_rd_end(&r);
  free(w);
  stm_buf_destroy(&p);
  stm_buf_destroy(&start);
  return rc;
}

/*
 * Parse a 'q' value: the audit entry of the write at `seq`, and (for a
 * vote, epoch or source) the record's storage encoding that follows it.
 */
int stm__index_parse_log(uint64_t seq, const uint8_t *val, size_t vlen,
                         struct stm_audit_entry *a, const uint8_t **rest,
                         size_t *rest_len, struct stm_error *err) {
  return parse_log_value(seq, val, vlen, a, rest, rest_len, err);
}

static int parse_log_value(uint64_t seq, const uint8_t *val, size_t vlen,
                           struct stm_audit_entry *a, const uint8_t **rest,
                           size_t *rest_len, struct stm_error *err) {
  memset(a, 0, sizeof *a);
  struct stm_reader rd;
  stm_reader_init(&rd, val, vlen);
  a->kind = (enum stm_record_kind)stm_reader_u8(&rd);
  const uint8_t *h = stm_reader_bytes(&rd, STM_HASH_LEN);
  a->time_ns = (int64_t)stm_reader_u64le(&rd);
  size_t olen = stm_reader_u8(&rd);
  const uint8_t *o = stm_reader_bytes(&rd, olen);
  size_t clen = stm_reader_u8(&rd);
  clen |= (size_t)stm_reader_u8(&rd) << 8;
  const uint8_t *c = stm_reader_bytes(&rd, clen);
  if (rd.failed || olen >= STM_AUDIT_OP_MAX || clen >= STM_AUDIT_CALLER_MAX ||
      !stm_record_kind_valid(a->kind))
    return stm_error_set(
        err, STM_ECORRUPT, NULL,
        "index: the log entry at sequence %" PRIu64 " is malformed", seq);
  a->sequence = seq;
  memcpy(a->target, h, STM_HASH_LEN);
  memcpy(a->op, o, olen);
  memcpy(a->caller, c, clen);
  *rest = val + (vlen - stm_reader_remaining(&rd));
  *rest_len = stm_reader_remaining(&rd);
  return 0;
}

struct log_walk {
  struct stm__index_rd rd; /* the scan's read: claims load through it */
  unsigned kinds;
  const struct stm_read_view *view;
  stm_store_audit_cb audit_cb;
  stm_store_log_cb log_cb;
  void *ctx;
  struct stm_error *err;
};

static int on_log(void *ctx, const uint8_t *key, size_t klen,
                  const uint8_t *val, size_t vlen) {
  struct log_walk *w = ctx;
  if (klen != 9)
    return stm_error_set(w->err, STM_ECORRUPT, NULL,
                         "index: a log key has the wrong size");
  uint64_t seq = stm_buf_load_u64be(key + 1);
  if (w->view && w->view->as_of_sequence && seq > w->view->as_of_sequence)
    return STOP_SCAN;
  struct stm_audit_entry a;
  const uint8_t *rest = NULL;
  size_t rest_len = 0;
  int rc = parse_log_value(seq, val, vlen, &a, &rest, &rest_len, w->err);
  if (rc)
    return rc;
  if (w->audit_cb)
    return w->audit_cb(w->ctx, &a);
  if (!(w->kinds & (1u << a.kind)) || stm_record_kind_is_key(a.kind) ||
      (w->view && w->view->as_of_time_ns && a.time_ns > w->view->as_of_time_ns))
    return 0;
  struct stm_log_entry e = {.sequence = seq, .kind = a.kind};
  if (a.kind == STM_RECORD_CLAIM) {
    struct stm_claim c;
    stm_claim_init(&c);
    rc = stm__index_load_claim(&w->rd, a.target, &c, w->err);
    if (rc == STM_ENOTFOUND)
      rc = stm_error_set(w->err, STM_ECORRUPT, NULL,
                         "index: sequence %" PRIu64 " names a missing claim",
                         seq);
    e.claim = &c;
    rc = rc ? rc : w->log_cb(w->ctx, &e);
    stm_claim_destroy(&c);
    return rc;
  }
  struct stm_record rec;
  rc = stm_record_decode(a.kind, rest, rest_len, &rec, w->err);
  if (rc)
    return rc;
  e.record = &rec;
  rc = w->log_cb(w->ctx, &e);
  stm_record_destroy(&rec);
  return rc;
}

static int scan_log(struct stm_index *idx, uint64_t after_sequence,
                    struct log_walk *w) {
  if (after_sequence == UINT64_MAX)
    return 0;
  uint8_t start[9];
  start[0] = KEY_SEQUENCE;
  stm_buf_store_u64be(start + 1, after_sequence + 1);
  stm__index_rd_begin(&w->rd, idx, true);
  int rc = stm__index_iterate(&w->rd, start, 1, start, sizeof start, on_log, w,
                              w->err);
  stm__index_rd_end(&w->rd);
  return rc == STOP_SCAN ? 0 : rc;
}

int stm_index_scan_audit(struct stm_index *idx, uint64_t after_sequence,
                         stm_store_audit_cb cb, void *ctx,
                         struct stm_error *err) {
  struct log_walk w = {.audit_cb = cb, .ctx = ctx, .err = err};
  return scan_log(idx, after_sequence, &w);
}

int stm_index_scan_log(struct stm_index *idx, uint64_t after_sequence,
                       unsigned kinds, const struct stm_read_view *view,
                       stm_store_log_cb cb, void *ctx, struct stm_error *err) {
  if (cb == NULL)
    return stm_error_set(err, STM_EINVAL, NULL, "scan_log: no callback");
  struct log_walk w = {
      .kinds = kinds, .view = view, .log_cb = cb, .ctx = ctx, .err = err};
  return scan_log(idx, after_sequence, &w);
}
