/*
 * auth.c - the API key table, its durable log and the server's gate
 * (auth.h). Keys live in DATA_DIR/keys.log rather than in the WAL because
 * the WAL's record kinds are being changed for replication (issue 12):
 * the log is small, appended with fsync, and read whole at start.
 */
#include "auth.h"
#include "ratelimit.h"
#include "service.h"

#include "common/clock.h"
#include "common/hex.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HASH_LEN 32
#define BOOTSTRAP_ID "bootstrap"

struct key_entry {
  struct stm_auth_key_info info;
  uint8_t hash[HASH_LEN];
};

struct stm_auth {
  bool required;
  char path[4096];
  bool has_admin;
  uint8_t admin_hash[HASH_LEN];
  pthread_mutex_t lock;
  struct key_entry *keys;
  size_t n, cap;
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

/* ---- the log -------------------------------------------------------------- */

static int add_entry(struct stm_auth *a, const struct key_entry *e) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 16;
    struct key_entry *k = realloc(a->keys, cap * sizeof *k);
    if (k == NULL)
      return STM_ENOMEM;
    a->keys = k;
    a->cap = cap;
  }
  a->keys[a->n++] = *e;
  return 0;
}

static struct key_entry *find_id(struct stm_auth *a, const char *id) {
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->keys[i].info.id, id) == 0)
      return &a->keys[i];
  return NULL;
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

/* One complete line of the log; unreadable lines are skipped with a
 * warning (a later version may add kinds). */
static void load_line(struct stm_auth *a, char *line) {
  char id[32], role[16], hash[80], when[24], name[STM_AUTH_NAME_MAX + 1];
  struct key_entry e;
  memset(&e, 0, sizeof e);
  long long created = 0;
  if (sscanf(line, "key %31s %15s %79s %23s %64s", id, role, hash, when,
             name) == 5 &&
      parse_time(when, &created) && strlen(id) == STM_AUTH_ID_LEN &&
      strlen(hash) == 2 * HASH_LEN &&
      stm_auth_role_parse(role) != STM_AUTH_OPEN) {
    memcpy(e.info.id, id, STM_AUTH_ID_LEN); /* length checked above */
    e.info.id[STM_AUTH_ID_LEN] = '\0';
    snprintf(e.info.name, sizeof e.info.name, "%s", name);
    e.info.role = stm_auth_role_parse(role);
    e.info.created_ns = created;
    stm_hex_decode(hash, 2 * HASH_LEN, e.hash, HASH_LEN);
    if (add_entry(a, &e) != 0)
      stm_log_error("out of memory loading API keys");
  } else if (sscanf(line, "revoke %31s", id) == 1 && find_id(a, id)) {
    find_id(a, id)->info.revoked = true;
  } else {
    stm_log_warn("%s: skipping an unreadable line", a->path);
  }
}

static int load(struct stm_auth *a, struct stm_error *err) {
  FILE *f = fopen(a->path, "r");
  if (f == NULL) {
    if (errno == ENOENT)
      return 0;
    return stm_error_set(err, STM_EIO, "data_dir", "cannot read %s: %s",
                         a->path, strerror(errno));
  }
  char line[512];
  while (fgets(line, sizeof line, f)) {
    size_t len = strlen(line);
    if (len == 0 || line[len - 1] != '\n')
      break; /* a torn last line: its RPC was never answered */
    line[len - 1] = '\0';
    load_line(a, line);
  }
  fclose(f);
  return 0;
}

/* Append one line and fsync it (and the directory when the file is new). */
static int append(struct stm_auth *a, const char *line, struct stm_error *err) {
  bool existed = access(a->path, F_OK) == 0;
  int fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  size_t len = strlen(line);
  bool ok = fd >= 0 && write(fd, line, len) == (ssize_t)len && fsync(fd) == 0;
  int e = errno;
  if (fd >= 0)
    close(fd);
  if (ok && !existed) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", a->path);
    char *slash = strrchr(dir, '/');
    if (slash)
      *slash = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
  }
  if (!ok)
    return stm_error_set(err, STM_EIO, NULL, "cannot write %s: %s", a->path,
                         strerror(e));
  return 0;
}

int stm_auth_open(const char *data_dir, bool required, const char *admin_key,
                  struct stm_auth **out, struct stm_error *err) {
  *out = NULL;
  if (sodium_init() < 0)
    return stm_error_set(err, STM_EIO, NULL, "libsodium cannot initialize");
  struct stm_auth *a = calloc(1, sizeof *a);
  if (a == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  a->required = required;
  snprintf(a->path, sizeof a->path, "%s/keys.log", data_dir);
  pthread_mutex_init(&a->lock, NULL);
  if (admin_key && *admin_key) {
    a->has_admin = true;
    hash_key(admin_key, a->admin_hash);
  }
  int rc = load(a, err);
  if (rc) {
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
                    const char *name, char *key_out,
                    struct stm_auth_key_info *info, struct stm_error *err) {
  if (role == STM_AUTH_OPEN)
    return stm_error_set(err, STM_EINVAL, "role",
                         "role must be reader, writer or admin");
  if (name == NULL || !name_ok(name))
    return stm_error_set(err, STM_EINVAL, "name",
                         "name must be 1..%d printable characters without "
                         "spaces",
                         STM_AUTH_NAME_MAX);
  uint8_t secret[20], idb[STM_AUTH_ID_LEN / 2];
  randombytes_buf(secret, sizeof secret);
  randombytes_buf(idb, sizeof idb);
  memcpy(key_out, "stm_", 4);
  stm_hex_encode(secret, sizeof secret, key_out + 4);
  sodium_memzero(secret, sizeof secret);
  struct key_entry e;
  memset(&e, 0, sizeof e);
  stm_hex_encode(idb, sizeof idb, e.info.id);
  snprintf(e.info.name, sizeof e.info.name, "%s", name);
  e.info.role = role;
  e.info.created_ns = stm_clock_now_ns();
  hash_key(key_out, e.hash);
  char hex[2 * HASH_LEN + 1], line[512];
  stm_hex_encode(e.hash, HASH_LEN, hex);
  snprintf(line, sizeof line, "key %s %s %s %lld %s\n", e.info.id,
           stm_auth_role_name(role), hex, (long long)e.info.created_ns, name);
  pthread_mutex_lock(&a->lock);
  int rc = append(a, line, err);
  if (rc == 0 && (rc = add_entry(a, &e)) != 0)
    stm_error_set(err, rc, NULL, "out of memory");
  pthread_mutex_unlock(&a->lock);
  if (rc == 0)
    *info = e.info;
  return rc;
}

int stm_auth_revoke(struct stm_auth *a, const char *id,
                    struct stm_auth_key_info *info, struct stm_error *err) {
  pthread_mutex_lock(&a->lock);
  struct key_entry *e = find_id(a, id);
  int rc = 0;
  if (e == NULL) {
    rc = stm_error_set(err, STM_ENOTFOUND, "id", "no API key has id %.40s", id);
  } else if (!e->info.revoked) {
    char line[64];
    snprintf(line, sizeof line, "revoke %s\n", e->info.id);
    rc = append(a, line, err);
    if (rc == 0)
      e->info.revoked = true;
  }
  if (rc == 0)
    *info = e->info;
  pthread_mutex_unlock(&a->lock);
  return rc;
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

static void add_trailer_u32(struct stm_grpc_call *call, const char *key,
                            uint32_t v) {
  char buf[16];
  snprintf(buf, sizeof buf, "%u", v);
  stm_grpc_call_add_trailer(call, key, buf);
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
  add_trailer_u32(call, "x-ratelimit-limit", v.limit);
  add_trailer_u32(call, "x-ratelimit-remaining", v.remaining);
  add_trailer_u32(call, "x-ratelimit-reset", v.reset_s);
  if (v.allowed)
    return true;
  add_trailer_u32(call, "retry-after", v.retry_after_s);
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
  enum stm_auth_role need = stm_auth_method_role(path);
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
