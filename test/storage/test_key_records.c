/*
 * Tests for the API key records (storage/records.h STM_RECORD_API_KEY and
 * STM_RECORD_KEY_REVOKE): their encodings, and through the store: the key
 * listener (and never the log listener or the change-feed scan), the 'y'
 * scan, the audit log, replay, the shard-ALL Merkle index, idempotent
 * replicated applies and the same state whatever the arrival order.
 */
#include "storage/records.h"
#include "storage/store.h"
#include "storage_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void key_fill(struct stm_record *r, const char *id, uint8_t role,
                     uint8_t secret0) {
  stm_record_init(r, STM_RECORD_API_KEY);
  r->u.key.id = strdup(id);
  r->u.key.name = strdup("ci-bot");
  r->u.key.creator = strdup("key:bootstrap(admin)");
  r->u.key.role = role;
  memset(r->u.key.secret_hash, secret0, STM_HASH_LEN);
  r->u.key.created_ns = 1000;
}

static void revoke_fill(struct stm_record *r, const char *id) {
  stm_record_init(r, STM_RECORD_KEY_REVOKE);
  r->u.revoke.id = strdup(id);
  r->u.revoke.by = strdup("key:bootstrap(admin)");
  r->u.revoke.timestamp_ns = 2000;
}

/* Every truncation, a trailing byte and the wrong kind are corrupt. */
static void check_damage(enum stm_record_kind kind, struct stm_buf *b) {
  struct stm_record out;
  for (size_t n = 0; n < b->len; n++)
    CU_ASSERT_EQUAL(stm_record_decode(kind, b->data, n, &out, NULL),
                    STM_ECORRUPT);
  CU_ASSERT_EQUAL(
      stm_record_decode(STM_RECORD_SOURCE, b->data, b->len, &out, NULL),
      STM_ECORRUPT);
  stm_buf_put_u8(b, 0);
  CU_ASSERT_EQUAL(stm_record_decode(kind, b->data, b->len, &out, NULL),
                  STM_ECORRUPT);
  b->len--;
}

static void test_key_records_round_trip_and_reject_damage(void) {
  struct stm_record k, out;
  key_fill(&k, "0123456789ab", 2, 7);
  stm_record_set_commit(&k, 5, 6);
  CU_ASSERT_EQUAL(stm_record_compute_hash(&k), 0);
  struct stm_buf b;
  stm_buf_init(&b);
  CU_ASSERT_EQUAL(stm_record_encode(&k, &b), 0);
  CU_ASSERT_EQUAL_FATAL(
      stm_record_decode(STM_RECORD_API_KEY, b.data, b.len, &out, NULL), 0);
  CU_ASSERT_STRING_EQUAL(out.u.key.id, "0123456789ab");
  CU_ASSERT_STRING_EQUAL(out.u.key.name, "ci-bot");
  CU_ASSERT_STRING_EQUAL(out.u.key.creator, "key:bootstrap(admin)");
  CU_ASSERT_EQUAL(out.u.key.role, 2);
  CU_ASSERT_EQUAL(out.u.key.secret_hash[31], 7);
  CU_ASSERT_EQUAL(out.u.key.created_ns, 1000);
  CU_ASSERT_EQUAL(stm_record_sequence(&out), 5);
  CU_ASSERT_EQUAL(stm_record_commit_time(&out), 6);
  CU_ASSERT_EQUAL(memcmp(stm_record_hash(&out), k.u.key.hash, STM_HASH_LEN), 0);
  stm_record_destroy(&out);
  check_damage(STM_RECORD_API_KEY, &b);
  /* The secret's hash is content; the commit is not. */
  uint8_t h[STM_HASH_LEN];
  memcpy(h, k.u.key.hash, STM_HASH_LEN);
  stm_record_set_commit(&k, 9, 9);
  stm_record_compute_hash(&k);
  CU_ASSERT_EQUAL(memcmp(h, k.u.key.hash, STM_HASH_LEN), 0);
  k.u.key.secret_hash[0] ^= 1;
  stm_record_compute_hash(&k);
  CU_ASSERT_NOT_EQUAL(memcmp(h, k.u.key.hash, STM_HASH_LEN), 0);
  /* A role outside reader..admin does not decode. */
  for (uint8_t role = 0; role < 5; role += 4) {
    k.u.key.role = role;
    stm_buf_reset(&b);
    CU_ASSERT_EQUAL(stm_record_encode(&k, &b), 0);
    CU_ASSERT_EQUAL(
        stm_record_decode(STM_RECORD_API_KEY, b.data, b.len, &out, NULL),
        STM_ECORRUPT);
  }
  stm_record_destroy(&k);
  struct stm_record r;
  revoke_fill(&r, "0123456789ab");
  CU_ASSERT_EQUAL(stm_record_compute_hash(&r), 0);
  stm_buf_reset(&b);
  CU_ASSERT_EQUAL(stm_record_encode(&r, &b), 0);
  CU_ASSERT_EQUAL_FATAL(
      stm_record_decode(STM_RECORD_KEY_REVOKE, b.data, b.len, &out, NULL), 0);
  CU_ASSERT_STRING_EQUAL(out.u.revoke.id, "0123456789ab");
  CU_ASSERT_STRING_EQUAL(out.u.revoke.by, "key:bootstrap(admin)");
  CU_ASSERT_EQUAL(out.u.revoke.timestamp_ns, 2000);
  stm_record_destroy(&out);
  check_damage(STM_RECORD_KEY_REVOKE, &b);
  stm_record_destroy(&r);
  stm_buf_destroy(&b);
  CU_ASSERT_TRUE(stm_record_kind_valid(STM_RECORD_API_KEY));
  CU_ASSERT_FALSE(stm_record_kind_valid(5));
  CU_ASSERT_FALSE(stm_record_kind_valid(6));
  CU_ASSERT_FALSE(stm_record_kind_valid(9));
}

/* A replicated or restored key record is untrusted: every single-byte
 * change of a valid encoding (length fields included) decodes to a valid
 * record or to STM_ECORRUPT, never reads past the input (ASan), and a
 * record that decodes has NUL-terminated strings and a role 1..3. */
static void check_mutations(enum stm_record_kind kind,
                            const struct stm_buf *b) {
  static const uint8_t values[] = {0x00, 0x01, 0x03, 0x04, 0x7f, 0xff};
  for (size_t i = 0; i < b->len; i++)
    for (size_t v = 0; v < sizeof values; v++) {
      uint8_t *copy = malloc(b->len); /* exact size: ASan sees overreads */
      CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
      memcpy(copy, b->data, b->len);
      copy[i] = values[v];
      struct stm_record out;
      int rc = stm_record_decode(kind, copy, b->len, &out, NULL);
      CU_ASSERT(rc == 0 || rc == STM_ECORRUPT);
      if (rc == 0 && kind == STM_RECORD_API_KEY) {
        CU_ASSERT(out.u.key.role >= 1 && out.u.key.role <= 3);
        CU_ASSERT(strlen(out.u.key.id) + strlen(out.u.key.name) +
                      strlen(out.u.key.creator) <
                  b->len);
      } else if (rc == 0) {
        CU_ASSERT(strlen(out.u.revoke.id) + strlen(out.u.revoke.by) < b->len);
      }
      stm_record_destroy(&out);
      free(copy);
    }
}

static void test_key_records_survive_every_byte_change(void) {
  struct stm_record k, r;
  key_fill(&k, "0123456789ab", 3, 9);
  revoke_fill(&r, "0123456789ab");
  struct stm_buf b;
  stm_buf_init(&b);
  CU_ASSERT_EQUAL(stm_record_encode(&k, &b), 0);
  check_mutations(STM_RECORD_API_KEY, &b);
  stm_buf_reset(&b);
  CU_ASSERT_EQUAL(stm_record_encode(&r, &b), 0);
  check_mutations(STM_RECORD_KEY_REVOKE, &b);
  stm_buf_destroy(&b);
  stm_record_destroy(&k);
  stm_record_destroy(&r);
}

/* ---- through the store ---------------------------------------------------- */

struct done {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done, created;
  int rc;
};

static void on_done(void *ctx, int rc, const struct stm_record *rec,
                    bool created, const struct stm_error *err) {
  (void)rec;
  (void)err;
  struct done *d = ctx;
  pthread_mutex_lock(&d->mu);
  d->rc = rc;
  d->created = created;
  d->done = true;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
}

static void on_claims_done(void *ctx, int rc, const struct stm_write_result *r,
                           size_t n, const struct stm_error *err) {
  (void)r;
  (void)n;
  on_done(ctx, rc, NULL, true, err);
}

static int wait_done(struct done *d) {
  pthread_mutex_lock(&d->mu);
  while (!d->done)
    pthread_cond_wait(&d->cv, &d->mu);
  d->done = false;
  pthread_mutex_unlock(&d->mu);
  return d->rc;
}

/* Submit (or, remote, apply) a copy of r; true when it was new. */
static bool put(struct stm_store *s, const struct stm_record *r, bool remote) {
  struct stm_buf b;
  stm_buf_init(&b);
  CU_ASSERT_EQUAL_FATAL(stm_record_encode(r, &b), 0);
  struct stm_record *heap = malloc(sizeof *heap);
  CU_ASSERT_EQUAL_FATAL(stm_record_decode(r->kind, b.data, b.len, heap, NULL),
                        0);
  stm_buf_destroy(&b);
  struct done d = {.done = false};
  pthread_mutex_init(&d.mu, NULL);
  pthread_cond_init(&d.cv, NULL);
  int rc = remote ? stm_store_apply_record(s, heap, "replicate", "node:x",
                                           on_done, &d)
                  : stm_store_submit_record(s, heap, "create_key", "admin",
                                            on_done, &d);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT_EQUAL(wait_done(&d), 0);
  pthread_cond_destroy(&d.cv);
  pthread_mutex_destroy(&d.mu);
  return d.created;
}

struct heard {
  size_t keys, data;
};

static void on_keys(void *ctx, const struct stm_log_entry *e, size_t n) {
  struct heard *h = ctx;
  for (size_t i = 0; i < n; i++) {
    CU_ASSERT_TRUE(stm_record_kind_is_key(e[i].kind));
    CU_ASSERT_PTR_NOT_NULL(e[i].record);
    h->keys++;
  }
}

static void on_data(void *ctx, const struct stm_log_entry *e, size_t n) {
  struct heard *h = ctx;
  for (size_t i = 0; i < n; i++)
    CU_ASSERT_FALSE(stm_record_kind_is_key(e[i].kind));
  h->data += n;
}

struct key_set {
  size_t n;
  enum stm_record_kind kinds[8];
  uint8_t hashes[8][STM_HASH_LEN];
};

static int collect_key(void *ctx, const struct stm_record *r) {
  struct key_set *k = ctx;
  CU_ASSERT_TRUE_FATAL(k->n < 8);
  k->kinds[k->n] = r->kind;
  memcpy(k->hashes[k->n++], stm_record_hash(r), STM_HASH_LEN);
  return 0;
}

static int count_log(void *ctx, const struct stm_log_entry *e) {
  CU_ASSERT_FALSE(stm_record_kind_is_key(e->kind));
  ++*(size_t *)ctx;
  return 0;
}

static int count_audit_keys(void *ctx, const struct stm_audit_entry *a) {
  size_t *n = ctx;
  n[0]++;
  n[1] += stm_record_kind_is_key(a->kind);
  return 0;
}

/* Keys, audit, log scan and the shard-ALL Merkle root of a store holding
 * one key, its revocation and one claim. */
static void check_store(struct stm_store *s, uint8_t root[STM_HASH_LEN]) {
  struct key_set k = {0};
  CU_ASSERT_EQUAL(stm_store_scan_keys(s, collect_key, &k, NULL), 0);
  CU_ASSERT_EQUAL(k.n, 2);
  size_t logged = 0, audit[2] = {0, 0};
  CU_ASSERT_EQUAL(stm_store_scan_log(s, 0, ~0u, NULL, count_log, &logged, NULL),
                  0);
  CU_ASSERT_EQUAL(logged, 1); /* the claim only: no change feed of keys */
  CU_ASSERT_EQUAL(stm_store_scan_audit(s, 0, count_audit_keys, audit, NULL), 0);
  CU_ASSERT_EQUAL(audit[0], 3);
  CU_ASSERT_EQUAL(audit[1], 2); /* who made and revoked keys is audited */
  struct stm_merkle_node kids[STM_MERKLE_FANOUT];
  CU_ASSERT_EQUAL(
      stm_store_merkle_children(s, STM_STORE_SHARD_ALL, NULL, 0, kids, NULL),
      0);
  uint64_t count = 0;
  memset(root, 0, STM_HASH_LEN);
  for (size_t i = 0; i < STM_MERKLE_FANOUT; i++) {
    count += kids[i].count;
    for (size_t j = 0; j < STM_HASH_LEN; j++)
      root[j] ^= kids[i].digest[j];
  }
  CU_ASSERT_EQUAL(count, 2); /* every node holds keys: shard ALL */
  for (size_t i = 0; i < k.n; i++) {
    enum stm_record_kind kind;
    struct stm_claim c;
    struct stm_record r;
    stm_claim_init(&c);
    CU_ASSERT_EQUAL_FATAL(
        stm_store_get_any(s, k.hashes[i], &kind, &c, &r, NULL), 0);
    CU_ASSERT_EQUAL(kind, k.kinds[i]);
    stm_record_destroy(&r);
    stm_claim_destroy(&c);
  }
}

static struct stm_store *open_store(const char *dir, struct heard *h) {
  struct stm_store_options o = {.data_dir = dir};
  struct stm_store *s = NULL;
  CU_ASSERT_EQUAL_FATAL(stm_store_open(&o, &s, NULL), 0);
  stm_store_set_key_listener(s, on_keys, h);
  stm_store_set_log_listener(s, on_data, h);
  return s;
}

static void add_claim(struct stm_store *s) {
  struct done d = {.done = false};
  pthread_mutex_init(&d.mu, NULL);
  pthread_cond_init(&d.cv, NULL);
  struct stm_claim *c = t_claims_new(1, "k", 1);
  CU_ASSERT_EQUAL_FATAL(
      stm_store_submit_claims(s, c, 1, "assert", "c", on_claims_done, &d), 0);
  CU_ASSERT_EQUAL(wait_done(&d), 0);
  pthread_cond_destroy(&d.cv);
  pthread_mutex_destroy(&d.mu);
}

static void test_key_records_through_the_store_in_any_order(void) {
  char *a_dir = stm_test_tmpdir("keys-a"), *b_dir = stm_test_tmpdir("keys-b");
  struct heard ha = {0}, hb = {0};
  struct stm_store *a = open_store(a_dir, &ha), *b = open_store(b_dir, &hb);
  struct stm_record key, rev;
  key_fill(&key, "00112233aabb", 1, 3);
  revoke_fill(&rev, "00112233aabb");
  add_claim(a);
  CU_ASSERT_TRUE(put(a, &key, false));
  CU_ASSERT_TRUE(put(a, &rev, false));
  CU_ASSERT_FALSE(put(a, &key, true)); /* replicated back: idempotent */
  CU_ASSERT_EQUAL(ha.keys, 2);
  CU_ASSERT_EQUAL(ha.data, 1);
  /* B hears the revocation first, then the key: the same record set. */
  stm_record_set_commit(&key, 0, 1500);
  stm_record_set_commit(&rev, 0, 2500);
  add_claim(b);
  CU_ASSERT_TRUE(put(b, &rev, true));
  CU_ASSERT_TRUE(put(b, &key, true));
  CU_ASSERT_EQUAL(hb.keys, 2);
  uint8_t ra[STM_HASH_LEN], rb[STM_HASH_LEN];
  check_store(a, ra);
  check_store(b, rb);
  CU_ASSERT_EQUAL(memcmp(ra, rb, STM_HASH_LEN), 0);
  stm_store_delete(a);
  stm_store_delete(b);
  /* Reopen, then rebuild the index from the WAL: the same records. */
  for (int round = 0; round < 2; round++) {
    if (round == 1) {
      char idx[4096];
      snprintf(idx, sizeof idx, "%s/index", a_dir);
      stm_test_rmrf(idx);
    }
    struct heard h = {0};
    a = open_store(a_dir, &h);
    struct stm_store_stats st;
    stm_store_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.recovered_records, round == 0 ? 0 : 3);
    check_store(a, rb);
    CU_ASSERT_EQUAL(memcmp(ra, rb, STM_HASH_LEN), 0);
    stm_store_delete(a);
    CU_ASSERT_EQUAL(h.keys + h.data, 0); /* replay is not a commit */
  }
  stm_record_destroy(&key);
  stm_record_destroy(&rev);
  stm_test_rmrf(a_dir);
  stm_test_rmrf(b_dir);
  free(a_dir);
  free(b_dir);
}

void stm_test_register_key_records(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_key_records_round_trip_and_reject_damage),
      STM_TEST(test_key_records_survive_every_byte_change),
      STM_TEST(test_key_records_through_the_store_in_any_order), STM_TEST_END};
  stm_test_suite("key_records", cases);
}
