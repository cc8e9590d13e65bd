/*
 * Tests for service/auth.c's key table over WAL records: the same table on
 * every store whatever order the key and revocation records arrive in (a
 * revocation that arrives before its key still wins), the table loaded
 * back at open, and the one-time import of a previous version's keys.log.
 */
#include "harness.h"
#include "service/auth.h"
#include "storage/store.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIVE "stm_1111111111111111111111111111111111111111"
#define DEAD "stm_2222222222222222222222222222222222222222"

struct done {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int rc;
};

static void on_done(void *ctx, int rc, const struct stm_record *rec,
                    bool created, const struct stm_error *err) {
  (void)rec;
  (void)created;
  (void)err;
  struct done *d = ctx;
  pthread_mutex_lock(&d->mu);
  d->rc = rc;
  d->done = true;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
}

/* Apply a record as a replica would (remote, origin commit time kept). */
static void apply(struct stm_store *s, struct stm_record *r) {
  struct done d = {.done = false};
  pthread_mutex_init(&d.mu, NULL);
  pthread_cond_init(&d.cv, NULL);
  CU_ASSERT_EQUAL_FATAL(
      stm_store_apply_record(s, r, "replicate", "node:x", on_done, &d), 0);
  pthread_mutex_lock(&d.mu);
  while (!d.done)
    pthread_cond_wait(&d.cv, &d.mu);
  pthread_mutex_unlock(&d.mu);
  CU_ASSERT_EQUAL(d.rc, 0);
  pthread_cond_destroy(&d.cv);
  pthread_mutex_destroy(&d.mu);
}

static struct stm_record *key_rec(const char *id, const char *secret,
                                  int64_t created) {
  struct stm_record *r = malloc(sizeof *r);
  stm_record_init(r, STM_RECORD_API_KEY);
  r->u.key.id = strdup(id);
  r->u.key.name = strdup(id);
  r->u.key.creator = strdup("test");
  r->u.key.role = STM_AUTH_WRITER;
  crypto_generichash(r->u.key.secret_hash, STM_HASH_LEN,
                     (const uint8_t *)secret, strlen(secret), NULL, 0);
  r->u.key.created_ns = created;
  stm_record_set_commit(r, 0, created);
  return r;
}

static struct stm_record *revoke_rec(const char *id) {
  struct stm_record *r = malloc(sizeof *r);
  stm_record_init(r, STM_RECORD_KEY_REVOKE);
  r->u.revoke.id = strdup(id);
  r->u.revoke.by = strdup("test");
  r->u.revoke.timestamp_ns = 5000;
  stm_record_set_commit(r, 0, 5000);
  return r;
}

struct node {
  char *dir;
  struct stm_store *store;
  struct stm_auth *auth;
};

static void node_open(struct node *n) {
  struct stm_store_options o = {.data_dir = n->dir};
  CU_ASSERT_EQUAL_FATAL(stm_store_open(&o, &n->store, NULL), 0);
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL_FATAL(
      stm_auth_open(n->dir, n->store, true, NULL, &n->auth, &err), 0);
}

static void node_close(struct node *n) {
  stm_store_delete(n->store);
  stm_auth_delete(n->auth);
}

static bool live(struct node *n, const char *secret) {
  struct stm_auth_key_info info;
  return stm_auth_lookup(n->auth, secret, &info);
}

/* Both tables list the same keys in the same order and state. */
static void same_list(struct node *a, struct node *b) {
  struct stm_auth_key_info *ka, *kb;
  size_t na, nb;
  CU_ASSERT_EQUAL_FATAL(stm_auth_list(a->auth, &ka, &na), 0);
  CU_ASSERT_EQUAL_FATAL(stm_auth_list(b->auth, &kb, &nb), 0);
  CU_ASSERT_EQUAL(na, nb);
  for (size_t i = 0; i < na && i < nb; i++) {
    CU_ASSERT_STRING_EQUAL(ka[i].id, kb[i].id);
    CU_ASSERT_EQUAL(ka[i].revoked, kb[i].revoked);
    CU_ASSERT_EQUAL(ka[i].created_ns, kb[i].created_ns);
  }
  free(ka);
  free(kb);
}

static void test_auth_revocation_wins_in_any_arrival_order(void) {
  struct node a = {.dir = stm_test_tmpdir("auth-a")},
              b = {.dir = stm_test_tmpdir("auth-b")};
  node_open(&a);
  node_open(&b);
  /* a: in commit order. b: the revocation first, the later key first. */
  apply(a.store, key_rec("aaaaaaaaaaaa", DEAD, 1000));
  apply(a.store, key_rec("bbbbbbbbbbbb", LIVE, 2000));
  CU_ASSERT_TRUE(live(&a, DEAD));
  apply(a.store, revoke_rec("aaaaaaaaaaaa"));
  CU_ASSERT_FALSE(live(&a, DEAD)); /* in force when the apply completed */
  apply(b.store, revoke_rec("aaaaaaaaaaaa"));
  apply(b.store, key_rec("bbbbbbbbbbbb", LIVE, 2000));
  apply(b.store, key_rec("aaaaaaaaaaaa", DEAD, 1000));
  CU_ASSERT_FALSE(live(&b, DEAD));
  for (int round = 0; round < 2; round++) {
    CU_ASSERT_TRUE(live(&a, LIVE));
    CU_ASSERT_TRUE(live(&b, LIVE));
    CU_ASSERT_FALSE(live(&a, DEAD));
    CU_ASSERT_FALSE(live(&b, DEAD));
    same_list(&a, &b);
    /* Reopened: the table is loaded back from the store. */
    node_close(&a);
    node_close(&b);
    node_open(&a);
    node_open(&b);
  }
  node_close(&a);
  node_close(&b);
  stm_test_rmrf(a.dir);
  stm_test_rmrf(b.dir);
  free(a.dir);
  free(b.dir);
}

static void test_auth_imports_keys_log_once(void) {
  struct node n = {.dir = stm_test_tmpdir("auth-import")};
  char path[4096], done[4200];
  snprintf(path, sizeof path, "%s/keys.log", n.dir);
  snprintf(done, sizeof done, "%s.imported", path);
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  const char *secrets[2] = {LIVE, DEAD},
             *ids[2] = {"0a0a0a0a0a0a", "0b0b0b0b0b0b"};
  for (int i = 0; i < 2; i++) {
    uint8_t h[32];
    crypto_generichash(h, 32, (const uint8_t *)secrets[i], strlen(secrets[i]),
                       NULL, 0);
    fprintf(f, "key %s reader ", ids[i]);
    for (int j = 0; j < 32; j++)
      fprintf(f, "%02x", h[j]);
    fprintf(f, " 17 old%d\n", i);
  }
  fprintf(f, "revoke 0b0b0b0b0b0b\nkey torn"); /* a torn last line */
  fclose(f);
  for (int round = 0; round < 2; round++) {
    node_open(&n);
    CU_ASSERT_TRUE(live(&n, LIVE));
    CU_ASSERT_FALSE(live(&n, DEAD));
    CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
    CU_ASSERT_EQUAL(access(done, F_OK), 0);
    struct stm_store_stats st;
    stm_store_get_stats(n.store, &st);
    CU_ASSERT_EQUAL(st.last_sequence, 3); /* imported once */
    node_close(&n);
  }
  stm_test_rmrf(n.dir);
  free(n.dir);
}

void stm_test_register_auth(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_auth_revocation_wins_in_any_arrival_order),
      STM_TEST(test_auth_imports_keys_log_once), STM_TEST_END};
  stm_test_suite("auth", cases);
}
