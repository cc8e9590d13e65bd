/*
 * auth.c - the API key table and the server's gate (auth.h). Keys are
 * records in the WAL (storage/records.h: STM_RECORD_API_KEY and
 * STM_RECORD_KEY_REVOKE), so they survive restarts, are in backups and
 * replicate; this file keeps the table in memory for fast checks, loaded
 * from the store at open and updated by the store's key listener on every
 * commit (a local CreateKey/RevokeKey, or a record replicated from a peer),
 * before the commit is acknowledged.
 */
#include "auth.h"
#include "ratelimit.h"
#include "service.h"

#include "common/clock.h"
#include "common/hex.h"
#include "common/log.h"
#include "storage/store.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HASH_LEN 32
#define BOOTSTRAP_ID "bootstrap"

struct key_entry {
  struct stm_auth_key_info info;
  uint8_t hash[HASH_LEN];            /* of the secret */
  uint8_t record_hash[STM_HASH_LEN]; /* of the record: dedupe */
};

struct stm_auth {
  bool required;
  struct stm_store *store;
  bool has_admin;
  uint8_t admin_hash[HASH_LEN];
  pthread_mutex_t lock;
  struct key_entry *keys; /* in (created_ns, id) order */
  size_t n, cap;
  /* Every revoked id, also one whose creation has not arrived yet: a
   * revocation wins whatever the order records arrive in. */
  char (*revoked)[STM_AUTH_ID_LEN + 1];
  size_t nrevoked, revoked_cap;
  /* Bumped under lock at each revocation applied, read without it by
   * open streams (stm_auth_revocations). */
  atomic_uint_fast64_t revocations;
  unsigned open_mask; /* STM_AUTH_OPEN_*: set once before serving */
};

static void hash_key(const char *key, uint8_t out[HASH_LEN]) {
  crypto_generichash(out, HASH_LEN, (const uint8_t *)key, strlen(key), NULL, 0);
}
const char *stm_auth_role_name(enum stm_auth_role r) {
  switch (r) {
  case STM_AUTH_READER:
    return "reader";
  case STM_AUTH_WRITER:
    return "writer";
  case STM_AUTH_ADMIN:
    return "admin";
  default:
    return "none";
  }
}

enum stm_auth_role stm_auth_role_parse(const char *s) {
  for (int r = STM_AUTH_READER; r <= STM_AUTH_ADMIN; r++)
    if (s && strcmp(s, stm_auth_role_name((enum stm_auth_role)r)) == 0)
      return (enum stm_auth_role)r;
  return STM_AUTH_OPEN;
}

enum stm_auth_role stm_auth_method_role(const char *path) {
  static const struct {
    const char *path;
    enum stm_auth_role role;
  } table[] = {
      {"/stemedb.v1.StemeDB/Status", STM_AUTH_OPEN},
      {"/stemedb.v1.StemeDB/Metrics", STM_AUTH_OPEN},
      {"/stemedb.v1.StemeDB/Get", STM_AUTH_READER},
      {"/stemedb.v1.StemeDB/Query", STM_AUTH_READER},
      {"/stemedb.v1.StemeDB/Trace", STM_AUTH_READER},
      {"/stemedb.v1.StemeDB/Watch", STM_AUTH_READER},
      {"/stemedb.v1.StemeDB/Audit", STM_AUTH_READER},
      {"/stemedb.v1.StemeDB/GetSource", STM_AUTH_READER},
      {"/stemedb.v1.StemeDB/ListSources", STM_AUTH_READER},
      {"/stemedb.v1.StemeDB/ListConcepts", STM_AUTH_READER},
      {"/stemedb.v1.StemeDB/Assert", STM_AUTH_WRITER},
      {"/stemedb.v1.StemeDB/AssertBatch", STM_AUTH_WRITER},
      {"/stemedb.v1.StemeDB/Vote", STM_AUTH_WRITER},
      {"/stemedb.v1.StemeDB/StartEpoch", STM_AUTH_WRITER},
      {"/stemedb.v1.StemeDB/PutSource", STM_AUTH_WRITER},
      {"/stemedb.v1.Cluster/Members", STM_AUTH_READER},
      {"/stemedb.v1.Cluster/Health", STM_AUTH_READER},
      {"/stemedb.v1.Cluster/Shards", STM_AUTH_READER},
  };
  if (strncmp(path, "/grpc.health.v1.Health/", 23) == 0)
    return STM_AUTH_OPEN;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(path, table[i].path) == 0)
      return table[i].role;
  return STM_AUTH_ADMIN; /* Admin, cluster administration, peers */
}

void stm_auth_set_open(struct stm_auth *a, unsigned mask) {
  a->open_mask = mask;
}

/* The need of `path` under this node's --auth-open. */
static enum stm_auth_role need_of(const struct stm_auth *a, const char *path) {
  enum stm_auth_role need = stm_auth_method_role(path);
  if (need != STM_AUTH_OPEN)
    return need;
  unsigned bit =
      strncmp(path, "/grpc.health.v1.Health/", 23) == 0 ? STM_AUTH_OPEN_HEALTH
      : strcmp(path, "/stemedb.v1.StemeDB/Status") == 0 ? STM_AUTH_OPEN_STATUS
                                                        : STM_AUTH_OPEN_METRICS;
  return a->open_mask & bit ? STM_AUTH_OPEN : STM_AUTH_READER;
}

/* ---- the table ------------------------------------------------------------ */

static bool is_revoked(const struct stm_auth *a, const char *id) {
  for (size_t i = 0; i < a->nrevoked; i++)
    if (strcmp(a->revoked[i], id) == 0)
      return true;
  return false;
}

static bool grow(void **p, size_t *cap, size_t n, size_t size) {
  if (n < *cap)
    return true;
  size_t c = *cap ? *cap * 2 : 16;
  void *q = realloc(*p, c * size);
  if (q == NULL)
    return false;
  *p = q;
  *cap = c;
  return true;
}

static bool id_ok(const char *id) {
  return id && strlen(id) == STM_AUTH_ID_LEN &&
         strspn(id, "0123456789abcdef") == STM_AUTH_ID_LEN;
}

/* A creation: insert in (created_ns, id) order, the same on every node. */
static void apply_key(struct stm_auth *a, const struct stm_api_key *k) {
  if (!id_ok(k->id) || k->role < STM_AUTH_READER || k->role > STM_AUTH_ADMIN) {
    stm_log_warn("API keys: skipping a malformed key record");
    return;
  }
  for (size_t i = 0; i < a->n; i++)
    if (memcmp(a->keys[i].record_hash, k->hash, STM_HASH_LEN) == 0)
      return; /* already applied (the scan at open met the listener) */
  if (!grow((void **)&a->keys, &a->cap, a->n, sizeof *a->keys)) {
    stm_log_error("API keys: out of memory");
    return;
  }
  struct key_entry e;
  memset(&e, 0, sizeof e);
  memcpy(e.info.id, k->id, STM_AUTH_ID_LEN);
  snprintf(e.info.name, sizeof e.info.name, "%s", k->name ? k->name : "");
  e.info.role = (enum stm_auth_role)k->role;
  e.info.created_ns = k->created_ns;
  e.info.revoked = is_revoked(a, k->id);
  memcpy(e.hash, k->secret_hash, HASH_LEN);
  memcpy(e.record_hash, k->hash, STM_HASH_LEN);
  size_t at = a->n;
  while (at > 0 && (a->keys[at - 1].info.created_ns > e.info.created_ns ||
                    (a->keys[at - 1].info.created_ns == e.info.created_ns &&
                     strcmp(a->keys[at - 1].info.id, e.info.id) > 0)))
    at--;
  memmove(&a->keys[at + 1], &a->keys[at], (a->n - at) * sizeof *a->keys);
  a->keys[at] = e;
  a->n++;
}

static void apply_revoke(struct stm_auth *a, const struct stm_key_revoke *r) {
  if (!id_ok(r->id)) {
    stm_log_warn("API keys: skipping a malformed revocation record");
    return;
  }
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->keys[i].info.id, r->id) == 0)
      a->keys[i].info.revoked = true;
  if (!is_revoked(a, r->id)) {
    if (grow((void **)&a->revoked, &a->revoked_cap, a->nrevoked,
             sizeof *a->revoked))
      memcpy(a->revoked[a->nrevoked++], r->id, STM_AUTH_ID_LEN + 1);
    else
      stm_log_error("API keys: out of memory");
  }
  atomic_fetch_add(&a->revocations, 1); /* open streams re-check */
}

static void apply_locked(struct stm_auth *a, const struct stm_record *rec) {
  if (rec->kind == STM_RECORD_API_KEY)
    apply_key(a, &rec->u.key);
  else if (rec->kind == STM_RECORD_KEY_REVOKE)
    apply_revoke(a, &rec->u.revoke);
}

/* The store's key listener (writer thread): every new key record. */
static void on_key_records(void *ctx, const struct stm_log_entry *e, size_t n) {
  struct stm_auth *a = ctx;
  pthread_mutex_lock(&a->lock);
  for (size_t i = 0; i < n; i++)
    if (e[i].record)
      apply_locked(a, e[i].record);
  pthread_mutex_unlock(&a->lock);
}

static int on_stored_key(void *ctx, const struct stm_record *rec) {
  on_key_records(ctx, &(struct stm_log_entry){.kind = rec->kind, .record = rec},
                 1);
  return 0;
}

static struct key_entry *find_id(struct stm_auth *a, const char *id) {
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->keys[i].info.id, id) == 0)
      return &a->keys[i];
  return NULL;
}

/* ---- writing records ------------------------------------------------------- */

struct pending {
  struct stm_auth *a;
  stm_auth_done_cb cb;
  void *ctx;
  char id[STM_AUTH_ID_LEN + 1];
};

/* Completion of a key record (writer thread): the key listener has put it
 * in the table already. */
static void on_written(void *ctx, int rc, const struct stm_record *rec,
                       bool created, const struct stm_error *err) {
  (void)created;
  struct pending *p = ctx;
  struct stm_auth_key_info info;
  memset(&info, 0, sizeof info);
  struct stm_error nf;
  stm_error_clear(&nf);
  if (rc == 0) {
    pthread_mutex_lock(&p->a->lock);
    struct key_entry *e = find_id(p->a, p->id);
    if (e)
      info = e->info;
    pthread_mutex_unlock(&p->a->lock);
    if (e == NULL) /* cannot be: the listener ran before this */
    {
      rc = stm_error_set(&nf, STM_EIO, NULL,
                         "API key %s is not in the table after its commit",
                         p->id);
      err = &nf;
    }
  }
  p->cb(p->ctx, rc, rc ? NULL : &info, rc ? NULL : stm_record_hash(rec), err);
  free(p);
}

static int submit(struct stm_auth *a, struct stm_record *rec, const char *op,
                  const char *caller, const char *id, stm_auth_done_cb cb,
                  void *ctx, struct stm_error *err) {
  struct pending *p = calloc(1, sizeof *p);
  if (p == NULL) {
    stm_record_destroy(rec);
    free(rec);
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  }
  *p = (struct pending){.a = a, .cb = cb, .ctx = ctx};
  memcpy(p->id, id, STM_AUTH_ID_LEN + 1);
  int rc = stm_store_submit_record(a->store, rec, op, caller, on_written, p);
  if (rc) {
    free(p);
    return stm_error_set(err, rc, NULL, "cannot store the API key record: %s",
                         stm_strerror(rc));
  }
  return 0;
}

static struct stm_record *key_record(const char *id, const char *name,
                                     enum stm_auth_role role,
                                     const uint8_t hash[HASH_LEN],
                                     int64_t created_ns, const char *creator) {
  struct stm_record *r = malloc(sizeof *r);
  if (r == NULL)
    return NULL;
  stm_record_init(r, STM_RECORD_API_KEY);
  struct stm_api_key *k = &r->u.key;
  k->id = strdup(id);
  k->name = strdup(name);
  k->creator = strdup(creator ? creator : "");
  k->role = (uint8_t)role;
  memcpy(k->secret_hash, hash, HASH_LEN);
  k->created_ns = created_ns;
  if (k->id == NULL || k->name == NULL || k->creator == NULL) {
    stm_record_destroy(r);
    free(r);
    return NULL;
  }
  return r;
}

static struct stm_record *revoke_record(const char *id, const char *by) {
  struct stm_record *r = malloc(sizeof *r);
  if (r == NULL)
    return NULL;
  stm_record_init(r, STM_RECORD_KEY_REVOKE);
  r->u.revoke.id = strdup(id);
  r->u.revoke.by = strdup(by ? by : "");
  r->u.revoke.timestamp_ns = stm_clock_now_ns();
  if (r->u.revoke.id == NULL || r->u.revoke.by == NULL) {
    stm_record_destroy(r);
    free(r);
    return NULL;
  }
  return r;
}

static bool name_ok(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > STM_AUTH_NAME_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] >= 0x7f)
      return false;
  return true;
}

int stm_auth_create(struct stm_auth *a, enum stm_auth_role role,
                    const char *name, const char *creator, char *key_out,
                    stm_auth_done_cb cb, void *ctx, struct stm_error *err) {
  if (role == STM_AUTH_OPEN)
    return stm_error_set(err, STM_EINVAL, "role",
                         "role must be reader, writer or admin");
  if (name == NULL || !name_ok(name))
    return stm_error_set(err, STM_EINVAL, "name",
                         "name must be 1..%d printable characters without "
                         "spaces",
                         STM_AUTH_NAME_MAX);
  uint8_t secret[20], idb[STM_AUTH_ID_LEN / 2], hash[HASH_LEN];
  char id[STM_AUTH_ID_LEN + 1];
  randombytes_buf(secret, sizeof secret);
  randombytes_buf(idb, sizeof idb);
  memcpy(key_out, "stm_", 4);
  stm_hex_encode(secret, sizeof secret, key_out + 4);
  sodium_memzero(secret, sizeof secret);
  stm_hex_encode(idb, sizeof idb, id);
  hash_key(key_out, hash);
  struct stm_record *r =
      key_record(id, name, role, hash, stm_clock_now_ns(), creator);
  if (r == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  return submit(a, r, "create_key", creator, id, cb, ctx, err);
}

int stm_auth_revoke(struct stm_auth *a, const char *id, const char *by,
                    stm_auth_done_cb cb, void *ctx, struct stm_error *err) {
  pthread_mutex_lock(&a->lock);
  bool known = id && find_id(a, id) != NULL;
  pthread_mutex_unlock(&a->lock);
  if (!known)
    return stm_error_set(err, STM_ENOTFOUND, "id", "no API key has id %.40s",
                         id ? id : "");
  struct stm_record *r = revoke_record(id, by);
  if (r == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  return submit(a, r, "revoke_key", by, id, cb, ctx, err);
}

/* ---- keys.log of earlier versions ------------------------------------------ */

struct sync_done {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int rc;
  char message[256];
};

static void on_sync(void *ctx, int rc, const struct stm_auth_key_info *info,
                    const uint8_t *record_hash, const struct stm_error *err) {
  (void)info;
  (void)record_hash;
  struct sync_done *d = ctx;
  pthread_mutex_lock(&d->mu);
  d->rc = rc;
  snprintf(d->message, sizeof d->message, "%s",
           err && err->code ? err->message : stm_strerror(rc));
  d->done = true;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
}

/* Submit one record and wait for its commit (the import at open). */
static int submit_wait(struct stm_auth *a, struct stm_record *r, const char *op,
                       const char *id, struct stm_error *err) {
  struct sync_done d = {.done = false};
  pthread_mutex_init(&d.mu, NULL);
  pthread_cond_init(&d.cv, NULL);
  int rc = submit(a, r, op, "keys.log", id, on_sync, &d, err);
  if (rc == 0) {
    pthread_mutex_lock(&d.mu);
    while (!d.done)
      pthread_cond_wait(&d.cv, &d.mu);
    pthread_mutex_unlock(&d.mu);
    if ((rc = d.rc) != 0)
      stm_error_set(err, rc, NULL, "%s", d.message);
  }
  pthread_cond_destroy(&d.cv);
  pthread_mutex_destroy(&d.mu);
  return rc;
}

/* A whole decimal int64 (sscanf's %lld would take "12x" and wrap). */
static bool parse_time(const char *s, long long *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0')
    return false;
  *out = v;
  return true;
}

/* One line of keys.log ("key ID ROLE HASH CREATED_NS NAME" or "revoke
 * ID") into the WAL unless the store has it already. *n counts imports. */
static int import_line(struct stm_auth *a, const char *path, const char *line,
                       size_t *n, struct stm_error *err) {
  char id[32], role[16], hex[80], when[24], name[STM_AUTH_NAME_MAX + 1];
  long long created = 0;
  uint8_t hash[HASH_LEN];
  bool have, revoked;
  if (sscanf(line, "key %31s %15s %79s %23s %64s", id, role, hex, when, name) ==
          5 &&
      parse_time(when, &created) && id_ok(id) && strlen(hex) == 2 * HASH_LEN &&
      stm_hex_decode(hex, 2 * HASH_LEN, hash, HASH_LEN) == 0 &&
      stm_auth_role_parse(role) != STM_AUTH_OPEN) {
    pthread_mutex_lock(&a->lock);
    have = find_id(a, id) != NULL;
    pthread_mutex_unlock(&a->lock);
    if (have)
      return 0;
    struct stm_record *r = key_record(id, name, stm_auth_role_parse(role), hash,
                                      created, "keys.log");
    if (r == NULL)
      return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
    ++*n;
    return submit_wait(a, r, "import_key", id, err);
  }
  if (sscanf(line, "revoke %31s", id) == 1 && id_ok(id)) {
    pthread_mutex_lock(&a->lock);
    have = find_id(a, id) != NULL;
    revoked = is_revoked(a, id);
    pthread_mutex_unlock(&a->lock);
    if (!have || revoked)
      return 0;
    struct stm_record *r = revoke_record(id, "keys.log");
    if (r == NULL)
      return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
    ++*n;
    return submit_wait(a, r, "import_revoke", id, err);
  }
  stm_log_warn("%s: skipping an unreadable line", path);
  return 0;
}

/* DATA_DIR/keys.log of a version that kept keys beside the WAL: import
 * it once, then rename it keys.log.imported. A crash midway imports the
 * rest at the next start (each line is skipped once stored). */
static int import_keys_log(struct stm_auth *a, const char *data_dir,
                           struct stm_error *err) {
  char path[4096], done[4200];
  snprintf(path, sizeof path, "%s/keys.log", data_dir);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return errno == ENOENT
               ? 0
               : stm_error_set(err, STM_EIO, "data_dir", "cannot read %s: %s",
                               path, strerror(errno));
  char line[512];
  size_t n = 0;
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    size_t len = strlen(line);
    if (len == 0 || line[len - 1] != '\n')
      break; /* a torn last line: its RPC was never answered */
    line[len - 1] = '\0';
    rc = import_line(a, path, line, &n, err);
  }
  fclose(f);
  if (rc)
    return rc;
  snprintf(done, sizeof done, "%s.imported", path);
  if (rename(path, done) != 0)
    return stm_error_set(err, STM_EIO, "data_dir", "cannot rename %s: %s", path,
                         strerror(errno));
  stm_log_info("API keys: imported %zu record(s) of %s into the WAL; the file "
               "is now %s",
               n, path, done);
  return 0;
}

/* ---- open, lookups ----------------------------------------------------------- */

int stm_auth_open(const char *data_dir, struct stm_store *store, bool required,
                  const char *admin_key, struct stm_auth **out,
                  struct stm_error *err) {
  *out = NULL;
  if (sodium_init() < 0)
    return stm_error_set(err, STM_EIO, NULL, "libsodium cannot initialize");
  struct stm_auth *a = calloc(1, sizeof *a);
  if (a == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  a->required = required;
  a->open_mask = STM_AUTH_OPEN_DEFAULT;
  a->store = store;
  atomic_init(&a->revocations, 0);
  pthread_mutex_init(&a->lock, NULL);
  if (admin_key && *admin_key) {
    a->has_admin = true;
    hash_key(admin_key, a->admin_hash);
  }
  /* Listen first, then read what is stored: nothing falls in between
   * (a record seen twice is applied once). */
  stm_store_set_key_listener(store, on_key_records, a);
  int rc = stm_store_scan_keys(store, on_stored_key, a, err);
  rc = rc ? rc : import_keys_log(a, data_dir, err);
  if (rc) {
    stm_store_set_key_listener(store, NULL, NULL);
    stm_auth_delete(a);
    return rc;
  }
  *out = a;
  return 0;
}

void stm_auth_delete(struct stm_auth *a) {
  if (a == NULL)
    return;
  pthread_mutex_destroy(&a->lock);
  free(a->keys);
  free(a->revoked);
  free(a);
}

bool stm_auth_required(const struct stm_auth *a) { return a && a->required; }

bool stm_auth_lookup(struct stm_auth *a, const char *key,
                     struct stm_auth_key_info *info) {
  uint8_t h[HASH_LEN];
  hash_key(key, h);
  if (a->has_admin && sodium_memcmp(h, a->admin_hash, HASH_LEN) == 0) {
    memset(info, 0, sizeof *info);
    snprintf(info->id, sizeof info->id, BOOTSTRAP_ID);
    snprintf(info->name, sizeof info->name, "STEMEDB_ADMIN_KEY");
    info->role = STM_AUTH_ADMIN;
    return true;
  }
  bool found = false;
  pthread_mutex_lock(&a->lock);
  for (size_t i = 0; i < a->n && !found; i++)
    if (!a->keys[i].info.revoked &&
        sodium_memcmp(h, a->keys[i].hash, HASH_LEN) == 0) {
      *info = a->keys[i].info;
      found = true;
    }
  pthread_mutex_unlock(&a->lock);
  return found;
}

uint64_t stm_auth_revocations(struct stm_auth *a) {
  return a ? (uint64_t)atomic_load(&a->revocations) : 0;
}

bool stm_auth_id_revoked(struct stm_auth *a, const char *id) {
  if (a == NULL || id == NULL)
    return false;
  pthread_mutex_lock(&a->lock);
  struct key_entry *e = find_id(a, id);
  bool r = is_revoked(a, id) || (e && e->info.revoked);
  pthread_mutex_unlock(&a->lock);
  return r;
}

int stm_auth_list(struct stm_auth *a, struct stm_auth_key_info **out,
                  size_t *n) {
  pthread_mutex_lock(&a->lock);
  *n = a->n;
  *out = malloc((a->n + 1) * sizeof **out);
  for (size_t i = 0; *out && i < a->n; i++)
    (*out)[i] = a->keys[i].info;
  pthread_mutex_unlock(&a->lock);
  return *out ? 0 : STM_ENOMEM;
}

static bool authenticate(struct stm_grpc_call *call, const char *path,
                         struct stm_service *svc);

/* ---- the gate --------------------------------------------------------------- */

/* The key of a call: "authorization: Bearer KEY", else "x-api-key". */
static bool call_key(struct stm_grpc_call *call, char *key, size_t len) {
  char v[256];
  if (stm_grpc_call_metadata(call, "authorization", v, sizeof v)) {
    const char *p = v;
    if (strncasecmp(p, "bearer ", 7) != 0)
      return false;
    p += 7;
    while (*p == ' ')
      p++;
    snprintf(key, len, "%s", p);
    return *key != '\0';
  }
  return stm_grpc_call_metadata(call, "x-api-key", key, len) && *key;
}

/* Is the peer ("ipv4:1.2.3.4:5", "ipv6:[::1]:5") one of `list`'s hosts?
 * `host` receives its host part. */
static bool peer_host_trusted(const char *peer, const char *list, char *host,
                              size_t len) {
  const char *p = peer ? strchr(peer, ':') : NULL;
  p = p ? p + 1 : (peer ? peer : "");
  size_t n = strlen(p);
  const char *colon = strrchr(p, ':');
  if (colon && peer && strncmp(peer, "unix:", 5) != 0)
    n = (size_t)(colon - p);
  if (n >= 2 && p[0] == '[' && p[n - 1] == ']')
    p++, n -= 2;
  snprintf(host, len, "%.*s", (int)n, p);
  size_t hl = strlen(host);
  for (const char *q = list ? list : ""; *q;) {
    q += strspn(q, ", \t");
    size_t m = strcspn(q, ", \t");
    if (m && m == hl && memcmp(q, host, m) == 0)
      return true;
    q += m;
  }
  return false;
}

/* Whom a rate limit counts: the key, else x-agent-id, else the client
 * address (a trusted proxy's x-forwarded-for, else the peer's host). */
static void client_identity(struct stm_grpc_call *call,
                            const struct stm_service *svc, char *out,
                            size_t len) {
  const char *who = stm_grpc_call_principal(call);
  char v[128], host[80];
  if (who) {
    snprintf(out, len, "%s", who);
  } else if (stm_grpc_call_metadata(call, "x-agent-id", v, sizeof v) && *v) {
    snprintf(out, len, "agent:%s", v);
  } else if (peer_host_trusted(stm_grpc_call_peer(call), svc->trusted_proxies,
                               host, sizeof host) &&
             stm_grpc_call_metadata(call, "x-forwarded-for", v, sizeof v) &&
             *v) {
    v[strcspn(v, ", ")] = '\0'; /* the first hop is the client */
    snprintf(out, len, "addr:%s", v);
  } else {
    snprintf(out, len, "addr:%s", host);
  }
}

/* Node-to-node replication is bounded by its own batching, and health
 * probes must never be refused. */
static bool rate_exempt(const char *path) {
  return strncmp(path, "/grpc.health.v1.Health/", 23) == 0 ||
         strcmp(path, "/stemedb.v1.Cluster/Replicate") == 0 ||
         strcmp(path, "/stemedb.v1.Cluster/MerkleSummary") == 0 ||
         strcmp(path, "/stemedb.v1.Cluster/FetchMissing") == 0;
}

/* Take a token; false after answering RESOURCE_EXHAUSTED. */
static bool rate_check(struct stm_grpc_call *call, const char *path,
                       struct stm_service *svc) {
  if (svc->ratelimit == NULL || rate_exempt(path))
    return true;
  const char *method = strrchr(path, '/');
  method = method ? method + 1 : path;
  char who[160];
  client_identity(call, svc, who, sizeof who);
  struct stm_ratelimit_verdict v;
  if (!stm_ratelimit_take(svc->ratelimit, method, who, stm_clock_mono_ns(), &v))
    return true;
  stm_grpc_call_add_trailer_u64(call, "x-ratelimit-limit", v.limit);
  stm_grpc_call_add_trailer_u64(call, "x-ratelimit-remaining", v.remaining);
  stm_grpc_call_add_trailer_u64(call, "x-ratelimit-reset", v.reset_s);
  if (v.allowed)
    return true;
  stm_grpc_call_add_trailer_u64(call, "retry-after", v.retry_after_s);
  stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                     "rate limit exceeded: %s may make %u %s calls at once "
                     "(--rate-limits); retry after %u s",
                     who, v.limit, method, v.retry_after_s);
  return false;
}

bool stm_auth_gate(struct stm_grpc_call *call, const char *path, void *ctx) {
  struct stm_service *svc = ctx;
  if (!authenticate(call, path, svc))
    return false;
  return rate_check(call, path, svc);
}

/* Check the call's key against the method's role; false after answering. */
static bool authenticate(struct stm_grpc_call *call, const char *path,
                         struct stm_service *svc) {
  struct stm_auth *a = svc->auth;
  if (!stm_auth_required(a))
    return true;
  enum stm_auth_role need = need_of(a, path);
  if (need == STM_AUTH_OPEN)
    return true;
  char key[256];
  if (!call_key(call, key, sizeof key)) {
    stm_grpc_call_fail(call, GRPC_STATUS_UNAUTHENTICATED,
                       "an API key is required (metadata authorization: "
                       "Bearer KEY; REST X-API-Key or Authorization: Bearer)");
    return false;
  }
  struct stm_auth_key_info info;
  bool ok = stm_auth_lookup(a, key, &info);
  sodium_memzero(key, sizeof key);
  if (!ok) {
    stm_grpc_call_fail(call, GRPC_STATUS_UNAUTHENTICATED,
                       "unknown or revoked API key");
    return false;
  }
  if (info.role < need) {
    stm_grpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED,
                       "API key %s has role %s; %s needs role %s", info.id,
                       stm_auth_role_name(info.role), path,
                       stm_auth_role_name(need));
    return false;
  }
  char who[128];
  snprintf(who, sizeof who, "key:%s(%s)", info.id, info.name);
  stm_grpc_call_set_principal(call, who);
  return true;
}
