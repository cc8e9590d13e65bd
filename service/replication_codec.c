/* replication_codec.c - records on the wire between nodes: a kind byte and
 * the storage encoding (replication.h), decoded into claims and records
 * for the store, and sets of them read from the store to send. */
#include "repl_internal.h"

#include <stdlib.h>
#include <string.h>

int stm_repl_encode_claim(const struct stm_claim *c, struct stm_buf *out) {
  int rc = stm_buf_put_u8(out, STM_RECORD_CLAIM);
  return rc ? rc : stm_claim_encode(c, out);
}

int stm_repl_encode_record(const struct stm_record *r, struct stm_buf *out) {
  int rc = stm_buf_put_u8(out, (uint8_t)r->kind);
  return rc ? rc : stm_record_encode(r, out);
}

void stm__repl_decoded_free(struct stm_repl_decoded *d) {
  for (size_t i = 0; d->claims && i < d->nclaims; i++)
    stm_claim_destroy(&d->claims[i]);
  free(d->claims);
  for (size_t i = 0; d->records && i < d->nrecords; i++)
    if (d->records[i]) {
      stm_record_destroy(d->records[i]);
      free(d->records[i]);
    }
  free(d->records);
  memset(d, 0, sizeof *d);
}

static int decode_one(const Stemedb__V1__ReplicatedRecord *m, size_t i,
                      struct stm_repl_decoded *d, struct stm_error *err) {
  if (m->payload_case != STEMEDB__V1__REPLICATED_RECORD__PAYLOAD_STORED ||
      m->stored.len < 2)
    return stm_error_set(err, STM_EINVAL, "records",
                         "records[%zu] is not a stored encoding", i);
  const uint8_t *p = m->stored.data;
  size_t len = m->stored.len;
  if (p[0] == STM_RECORD_CLAIM) {
    struct stm_claim *c = &d->claims[d->nclaims];
    stm_claim_init(c);
    int rc = stm_claim_decode(p + 1, len - 1, c, err);
    if (rc) {
      stm_claim_destroy(c);
      return stm_error_set(err, STM_EINVAL, "records", "records[%zu]: %s", i,
                           err ? err->message : "");
    }
    d->nclaims++;
    return 0;
  }
  if (!stm_record_kind_valid(p[0]))
    return stm_error_set(err, STM_EINVAL, "records", "records[%zu] has kind %u",
                         i, p[0]);
  struct stm_record *r = malloc(sizeof *r);
  if (r == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  int rc =
      stm_record_decode((enum stm_record_kind)p[0], p + 1, len - 1, r, err);
  if (rc) {
    free(r);
    return stm_error_set(err, STM_EINVAL, "records", "records[%zu]: %s", i,
                         err ? err->message : "");
  }
  d->records[d->nrecords++] = r;
  return 0;
}

int stm__repl_decode(Stemedb__V1__ReplicatedRecord *const *recs, size_t n,
                     struct stm_repl_decoded *d, struct stm_error *err) {
  memset(d, 0, sizeof *d);
  d->claims = calloc(n ? n : 1, sizeof *d->claims);
  d->records = calloc(n ? n : 1, sizeof *d->records);
  if (d->claims == NULL || d->records == NULL) {
    stm__repl_decoded_free(d);
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    int rc = decode_one(recs[i], i, d, err);
    if (rc) {
      stm__repl_decoded_free(d);
      return rc;
    }
  }
  return 0;
}

/* ---- sets to send -------------------------------------------------------- */

void stm__repl_set_init(struct stm__repl_set *s) {
  memset(s, 0, sizeof *s);
  stm_buf_init(&s->data);
}

void stm__repl_set_free(struct stm__repl_set *s) {
  stm_buf_destroy(&s->data);
  free(s->off);
  memset(s, 0, sizeof *s);
}

static int set_close_entry(struct stm__repl_set *s) {
  if (s->n + 2 > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 256;
    size_t *p = realloc(s->off, cap * sizeof *p);
    if (p == NULL)
      return STM_ENOMEM;
    s->off = p;
    s->cap = cap;
  }
  if (s->n == 0)
    s->off[0] = 0;
  s->off[++s->n] = s->data.len;
  return 0;
}

int stm__repl_set_add(struct stm__repl_set *s, struct stm_store *store,
                      const uint8_t hash[STM_HASH_LEN], struct stm_error *err) {
  enum stm_record_kind kind;
  struct stm_claim c;
  struct stm_record r;
  stm_claim_init(&c);
  int rc = stm_store_get_any(store, hash, &kind, &c, &r, err);
  if (rc == 0) {
    size_t before = s->data.len;
    rc = kind == STM_RECORD_CLAIM ? stm_repl_encode_claim(&c, &s->data)
                                  : stm_repl_encode_record(&r, &s->data);
    rc = rc ? rc : set_close_entry(s);
    if (rc)
      s->data.len = before;
    if (kind != STM_RECORD_CLAIM)
      stm_record_destroy(&r);
  }
  stm_claim_destroy(&c);
  return rc;
}

static int set_put(struct stm__repl_set *s, enum stm_record_kind kind,
                   const uint8_t *enc, size_t len) {
  size_t before = s->data.len;
  int rc = stm_buf_put_u8(&s->data, (uint8_t)kind);
  rc = rc ? rc : stm_buf_append(&s->data, enc, len);
  rc = rc ? rc : set_close_entry(s);
  if (rc)
    s->data.len = before;
  return rc;
}

struct bucket_walk {
  struct stm__repl_set *claims, records;
};

static int on_encoded(void *ctx, enum stm_record_kind kind,
                      const uint8_t hash[STM_HASH_LEN], const uint8_t *enc,
                      size_t len) {
  (void)hash;
  struct bucket_walk *w = ctx;
  return set_put(kind == STM_RECORD_CLAIM ? w->claims : &w->records, kind, enc,
                 len);
}

int stm__repl_set_bucket(struct stm__repl_set *s, struct stm_store *store,
                         uint32_t shard, const uint8_t *prefix,
                         unsigned nibbles, struct stm_error *err) {
  /* claims first, then votes/epochs/sources: a vote must find its claim */
  struct bucket_walk w = {.claims = s};
  stm__repl_set_init(&w.records);
  int rc = stm_store_shard_records(store, shard, prefix, nibbles, on_encoded,
                                   &w, err);
  for (size_t i = 0; rc == 0 && i < w.records.n; i++)
    rc = set_put(s, (enum stm_record_kind)w.records.data.data[w.records.off[i]],
                 w.records.data.data + w.records.off[i] + 1,
                 w.records.off[i + 1] - w.records.off[i] - 1);
  if (rc == STM_ENOMEM)
    stm_error_set(err, rc, NULL, "out of memory");
  stm__repl_set_free(&w.records);
  return rc;
}

int stm__repl_msgs_range(struct stm__repl_msgs *m,
                         const struct stm__repl_set *s, size_t from, size_t n) {
  m->n = n;
  m->recs = calloc(n ? n : 1, sizeof *m->recs);
  m->ptrs = calloc(n ? n : 1, sizeof *m->ptrs);
  if (m->recs == NULL || m->ptrs == NULL) {
    stm__repl_msgs_free(m);
    return STM_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    Stemedb__V1__ReplicatedRecord *r = &m->recs[i];
    stemedb__v1__replicated_record__init(r);
    r->payload_case = STEMEDB__V1__REPLICATED_RECORD__PAYLOAD_STORED;
    r->stored.data = s->data.data + s->off[from + i];
    r->stored.len = s->off[from + i + 1] - s->off[from + i];
    m->ptrs[i] = r;
  }
  return 0;
}

int stm__repl_msgs_build(struct stm__repl_msgs *m,
                         const struct stm__repl_set *s) {
  return stm__repl_msgs_range(m, s, 0, s->n);
}

void stm__repl_msgs_free(struct stm__repl_msgs *m) {
  free(m->recs);
  free(m->ptrs);
  m->recs = NULL;
  m->ptrs = NULL;
}
