#include "cluster_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void stm_cluster_config_init(struct stm_cluster_config *c) {
  memset(c, 0, sizeof *c);
  c->replication_factor = STM_CLUSTER_DEFAULT_REPLICATION;
  c->shards = STM_CLUSTER_DEFAULT_SHARDS;
  c->write_quorum = STM_WRITE_QUORUM_ONE;
  c->probe_interval_ms = STM_CLUSTER_DEFAULT_PROBE_INTERVAL_MS;
  c->probe_timeout_ms = STM_CLUSTER_DEFAULT_PROBE_TIMEOUT_MS;
  c->suspicion_mult = STM_CLUSTER_DEFAULT_SUSPICION_MULT;
  c->suspicion_max_mult = STM_CLUSTER_DEFAULT_SUSPICION_MAX_MULT;
  c->push_pull_interval_ms = STM_CLUSTER_DEFAULT_PUSH_PULL_MS;
}

static const char *const quorum_names[] = {"one", "majority", "all"};

const char *stm_write_quorum_name(enum stm_write_quorum q) {
  return (unsigned)q < 3 ? quorum_names[q] : "?";
}

static void free_seeds(struct stm_cluster_config *c) {
  for (size_t i = 0; i < c->seed_count; i++)
    free(c->seeds[i]);
  free(c->seeds);
  c->seeds = NULL;
  c->seed_count = 0;
}

void stm_cluster_config_destroy(struct stm_cluster_config *c) {
  free(c->node_id);
  free(c->bind_addr);
  free(c->rpc_addr);
  free(c->swim_addr);
  free(c->name);
  if (c->cluster_key) /* a secret: do not leave it in freed memory */
    memset(c->cluster_key, 0, strlen(c->cluster_key));
  free(c->cluster_key);
  free_seeds(c);
  stm_cluster_config_init(c);
}

int stm_cluster_config_set_string(char **slot, const char *value) {
  char *copy = NULL;
  if (value && (copy = strdup(value)) == NULL)
    return STM_ENOMEM;
  free(*slot);
  *slot = copy;
  return 0;
}

int stm_cluster_config_set_seeds(struct stm_cluster_config *c,
                                 const char *const *seeds, size_t count) {
  char **copy = count ? calloc(count, sizeof *copy) : NULL;
  if (count && copy == NULL)
    return STM_ENOMEM;
  for (size_t i = 0; i < count; i++) {
    if ((copy[i] = strdup(seeds[i])) == NULL) {
      while (i > 0)
        free(copy[--i]);
      free(copy);
      return STM_ENOMEM;
    }
  }
  free_seeds(c);
  c->seeds = copy;
  c->seed_count = count;
  return 0;
}

/* The string keys: config key and the field it fills. */
struct string_key {
  const char *key;
  size_t offset;
};

static const struct string_key string_keys[] = {
    {"cluster.node_id", offsetof(struct stm_cluster_config, node_id)},
    {"cluster.bind_addr", offsetof(struct stm_cluster_config, bind_addr)},
    {"cluster.rpc_addr", offsetof(struct stm_cluster_config, rpc_addr)},
    {"cluster.swim_addr", offsetof(struct stm_cluster_config, swim_addr)},
    {"cluster.name", offsetof(struct stm_cluster_config, name)},
    {"cluster.cluster_key", offsetof(struct stm_cluster_config, cluster_key)},
};
#define N_STRING_KEYS (sizeof string_keys / sizeof string_keys[0])

/* The integer keys besides shards and factor: the SWIM timings. */
static const struct string_key int_keys[] = {
    {"cluster.probe_interval_ms",
     offsetof(struct stm_cluster_config, probe_interval_ms)},
    {"cluster.probe_timeout_ms",
     offsetof(struct stm_cluster_config, probe_timeout_ms)},
    {"cluster.suspicion_mult",
     offsetof(struct stm_cluster_config, suspicion_mult)},
    {"cluster.suspicion_max_mult",
     offsetof(struct stm_cluster_config, suspicion_max_mult)},
    {"cluster.push_pull_interval_ms",
     offsetof(struct stm_cluster_config, push_pull_interval_ms)},
};
#define N_INT_KEYS (sizeof int_keys / sizeof int_keys[0])

static const char *const other_keys[] = {"cluster.enabled", "cluster.seeds",
                                         "cluster.shards", "replication.factor",
                                         "replication.write_quorum"};

bool stm_cluster_config_is_key(const char *key) {
  for (size_t i = 0; i < N_STRING_KEYS; i++)
    if (strcmp(key, string_keys[i].key) == 0)
      return true;
  for (size_t i = 0; i < N_INT_KEYS; i++)
    if (strcmp(key, int_keys[i].key) == 0)
      return true;
  for (size_t i = 0; i < sizeof other_keys / sizeof other_keys[0]; i++)
    if (strcmp(key, other_keys[i]) == 0)
      return true;
  return false;
}

/* A lookup result that is "absent" is fine: the field keeps its value. */
static int present(int rc) { return rc == STM_ENOTFOUND ? 0 : rc; }

static int oom(struct stm_error *err, const char *key) {
  return stm_error_set(err, STM_ENOMEM, key, "out of memory");
}

static int read_strings(struct stm_cluster_config *c,
                        const struct stm_toml_doc *doc, struct stm_error *err) {
  for (size_t i = 0; i < N_STRING_KEYS; i++) {
    const char *v;
    int rc = stm_toml_get_string(doc, string_keys[i].key, &v, err);
    if (rc == STM_ENOTFOUND)
      continue;
    if (rc)
      return rc;
    char **slot = (char **)((char *)c + string_keys[i].offset);
    if (stm_cluster_config_set_string(slot, v))
      return oom(err, string_keys[i].key);
  }
  return 0;
}

static int read_ints(struct stm_cluster_config *c,
                     const struct stm_toml_doc *doc, struct stm_error *err) {
  for (size_t i = 0; i < N_INT_KEYS; i++) {
    int64_t *slot = (int64_t *)((char *)c + int_keys[i].offset);
    int rc = present(stm_toml_get_int(doc, int_keys[i].key, slot, err));
    if (rc)
      return rc;
  }
  return 0;
}

int stm_write_quorum_parse(const char *name, enum stm_write_quorum *out) {
  for (int i = 0; i < 3; i++)
    if (strcmp(name, quorum_names[i]) == 0) {
      *out = (enum stm_write_quorum)i;
      return 0;
    }
  return STM_EINVAL;
}

static int read_quorum(struct stm_cluster_config *c,
                       const struct stm_toml_doc *doc, struct stm_error *err) {
  const char *v;
  int rc = stm_toml_get_string(doc, "replication.write_quorum", &v, err);
  if (rc)
    return present(rc);
  if (stm_write_quorum_parse(v, &c->write_quorum) != 0)
    return stm_error_set(err, STM_EINVAL, "replication.write_quorum",
                         "replication.write_quorum must be \"one\", "
                         "\"majority\" or \"all\", got \"%.64s\"",
                         v);
  return 0;
}

int stm_cluster_config_from_toml(struct stm_cluster_config *c,
                                 const struct stm_toml_doc *doc,
                                 struct stm_error *err) {
  int rc;
  const char *const *seeds;
  size_t n;
  if ((rc = present(
           stm_toml_get_bool(doc, "cluster.enabled", &c->enabled, err))) ||
      (rc = read_strings(c, doc, err)) ||
      (rc =
           present(stm_toml_get_int(doc, "cluster.shards", &c->shards, err))) ||
      (rc = present(stm_toml_get_int(doc, "replication.factor",
                                     &c->replication_factor, err))) ||
      (rc = read_ints(c, doc, err)) || (rc = read_quorum(c, doc, err)))
    return rc;
  rc = stm_toml_get_string_array(doc, "cluster.seeds", &seeds, &n, err);
  if (rc == 0 && stm_cluster_config_set_seeds(c, seeds, n))
    return oom(err, "cluster.seeds");
  return present(rc);
}

/* ------------------------------------------------------------------ */
/* validation                                                           */

static bool is_host_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

static bool is_v6_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
         (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

static int bad_addr(struct stm_error *err, const char *field, const char *addr,
                    const char *why) {
  stm_error_set(err, STM_EINVAL, field, "%s: \"%.*s\" is not host:port: %s",
                field, 100, addr, why);
  return STM_EINVAL;
}

/* Checks the host part [h, h+n); returns the reason it is bad or NULL. */
static const char *host_problem(const char *h, size_t n, bool bracketed) {
  if (n == 0)
    return "the host is missing";
  if (n > 253)
    return "the host is longer than 253 bytes";
  for (size_t i = 0; i < n; i++) {
    if (bracketed ? !is_v6_char(h[i]) : !is_host_char(h[i]))
      return bracketed ? "the IPv6 address has a character that is not hex, "
                         "':' or '.'"
                       : "the host has a character that is not a letter, "
                         "digit, '-', '_' or '.'";
    if (!bracketed && h[i] == '.' && (i == 0 || h[i - 1] == '.'))
      return "the host has an empty label";
  }
  if (bracketed && memchr(h, ':', n) == NULL)
    return "brackets are only for IPv6 addresses";
  return NULL;
}

static const char *port_problem(const char *s, bool allow_zero, uint16_t *out) {
  size_t n = strlen(s);
  if (n == 0)
    return "the port is missing";
  if (n > 5 || strspn(s, "0123456789") != n)
    return "the port must be a number from 1 to 65535";
  long v = strtol(s, NULL, 10);
  if (v > 65535 || (v == 0 && !allow_zero))
    return allow_zero ? "the port must be a number from 0 to 65535"
                      : "the port must be a number from 1 to 65535";
  *out = (uint16_t)v;
  return NULL;
}

int stm_addr_parse(const char *field, const char *addr, bool allow_port_zero,
                   char *host, size_t host_cap, uint16_t *port,
                   struct stm_error *err) {
  if (addr == NULL || addr[0] == '\0') {
    stm_error_set(err, STM_EINVAL, field,
                  "%s must be host:port, got an empty value", field);
    return STM_EINVAL;
  }
  if (strlen(addr) > STM_ADDR_MAX)
    return bad_addr(err, field, addr, "it is too long");
  const char *h = addr, *colon;
  bool bracketed = addr[0] == '[';
  if (bracketed) {
    const char *close = strchr(addr, ']');
    if (close == NULL)
      return bad_addr(err, field, addr, "']' is missing");
    if (close[1] != ':')
      return bad_addr(err, field, addr, "the port is missing");
    h = addr + 1;
    colon = close + 1;
  } else {
    colon = strrchr(addr, ':');
    if (colon == NULL)
      return bad_addr(err, field, addr, "the port is missing");
    if (memchr(addr, ':', (size_t)(colon - addr)))
      return bad_addr(err, field, addr,
                      "an IPv6 address needs brackets, as in [::1]:18182");
  }
  size_t hlen = (size_t)(colon - h) - (bracketed ? 1 : 0);
  uint16_t p = 0;
  const char *why = host_problem(h, hlen, bracketed);
  if (why == NULL)
    why = port_problem(colon + 1, allow_port_zero, &p);
  if (why == NULL && host && hlen >= host_cap)
    why = "the host is too long";
  if (why)
    return bad_addr(err, field, addr, why);
  if (host) {
    memcpy(host, h, hlen);
    host[hlen] = '\0';
  }
  if (port)
    *port = p;
  return 0;
}

bool stm_addr_host_is_wildcard(const char *host) {
  return host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
         strcmp(host, "::") == 0 || strcmp(host, "[::]") == 0;
}

int stm_node_id_validate(const char *field, const char *id,
                         struct stm_error *err) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0)
    return stm_error_set(err, STM_EINVAL, field, "%s must not be empty", field);
  if (n > STM_NODE_ID_MAX)
    return stm_error_set(err, STM_EINVAL, field, "%s is longer than %d bytes",
                         field, STM_NODE_ID_MAX);
  for (size_t i = 0; i < n; i++)
    if (!is_host_char(id[i]) && id[i] != ':')
      return stm_error_set(err, STM_EINVAL, field,
                           "%s: \"%.*s\" may only contain letters, digits and "
                           "'_', '.', ':', '-'",
                           field, 100, id);
  return 0;
}

/* An advertised address: required when clustering, dialable by peers. */
static int check_advertised(const struct stm_cluster_config *c,
                            const char *field, const char *addr,
                            struct stm_error *err) {
  if (addr == NULL) {
    if (!c->enabled)
      return 0;
    return stm_error_set(err, STM_EINVAL, field,
                         "%s is required when cluster.enabled = true", field);
  }
  char host[STM_ADDR_MAX + 1];
  int rc = stm_addr_parse(field, addr, false, host, sizeof host, NULL, err);
  if (rc == 0 && c->enabled && stm_addr_host_is_wildcard(host))
    rc = stm_error_set(err, STM_EINVAL, field,
                       "%s: \"%s\" is not an address other nodes can reach; "
                       "give this node's own IP or DNS name",
                       field, addr);
  return rc;
}

static int check_range(const char *field, int64_t v, int64_t lo, int64_t hi,
                       struct stm_error *err) {
  if (v >= lo && v <= hi)
    return 0;
  return stm_error_set(err, STM_EINVAL, field,
                       "%s must be between %lld and %lld, got %lld", field,
                       (long long)lo, (long long)hi, (long long)v);
}

static int check_seeds(const struct stm_cluster_config *c,
                       struct stm_error *err) {
  if (c->seed_count > STM_CLUSTER_MAX_SEEDS)
    return stm_error_set(err, STM_EINVAL, "cluster.seeds",
                         "cluster.seeds has %zu entries; at most %d allowed",
                         c->seed_count, STM_CLUSTER_MAX_SEEDS);
  for (size_t i = 0; i < c->seed_count; i++) {
    char field[40];
    snprintf(field, sizeof field, "cluster.seeds[%zu]", i);
    int rc = stm_addr_parse(field, c->seeds[i], false, NULL, 0, NULL, err);
    if (rc)
      return rc;
  }
  return 0;
}

/* Seeds that name only ourselves cannot lead anywhere: a typo, most likely
 * (a first node with no seeds at all is fine). */
static int check_seeds_not_only_self(const struct stm_cluster_config *c,
                                     struct stm_error *err) {
  if (!c->enabled || c->seed_count == 0 || c->swim_addr == NULL)
    return 0;
  for (size_t i = 0; i < c->seed_count; i++)
    if (strcmp(c->seeds[i], c->swim_addr) != 0)
      return 0;
  return stm_error_set(err, STM_EINVAL, "cluster.seeds",
                       "cluster.seeds names only this node's own swim_addr "
                       "(\"%.100s\"); list other members, or none on the "
                       "first node",
                       c->swim_addr);
}

static int check_swim(const struct stm_cluster_config *c,
                      struct stm_error *err) {
  int rc = check_range("cluster.probe_interval_ms", c->probe_interval_ms, 10,
                       60000, err);
  if (rc == 0)
    rc = check_range("cluster.probe_timeout_ms", c->probe_timeout_ms, 1,
                     c->probe_interval_ms - 1, err);
  if (rc == 0)
    rc = check_range("cluster.suspicion_mult", c->suspicion_mult, 1, 100, err);
  if (rc == 0)
    rc = check_range("cluster.suspicion_max_mult", c->suspicion_max_mult, 1,
                     100, err);
  if (rc == 0)
    rc = check_range("cluster.push_pull_interval_ms", c->push_pull_interval_ms,
                     100, 3600000, err);
  if (rc == 0 && c->name &&
      (strlen(c->name) > STM_CLUSTER_NAME_MAX ||
       stm_node_id_validate("cluster.name", c->name, NULL) != 0))
    rc = stm_error_set(err, STM_EINVAL, "cluster.name",
                       "cluster.name must be 1 to %d letters, digits or "
                       "'_', '.', ':', '-'",
                       STM_CLUSTER_NAME_MAX);
  if (rc == 0 && (unsigned)c->write_quorum > STM_WRITE_QUORUM_ALL)
    rc = stm_error_set(err, STM_EINVAL, "replication.write_quorum",
                       "replication.write_quorum must be one, majority or "
                       "all");
  return rc;
}

int stm_cluster_config_validate(const struct stm_cluster_config *c,
                                struct stm_error *err) {
  int rc = 0;
  if (c->node_id)
    rc = stm_node_id_validate("cluster.node_id", c->node_id, err);
  else if (c->enabled)
    rc = stm_error_set(err, STM_EINVAL, "cluster.node_id",
                       "cluster.node_id is required when cluster.enabled = "
                       "true");
  if (rc == 0 && c->bind_addr)
    rc = stm_addr_parse("cluster.bind_addr", c->bind_addr, false, NULL, 0, NULL,
                        err);
  if (rc == 0)
    rc = check_advertised(c, "cluster.rpc_addr", c->rpc_addr, err);
  if (rc == 0)
    rc = check_advertised(c, "cluster.swim_addr", c->swim_addr, err);
  if (rc == 0)
    rc = check_seeds(c, err);
  if (rc == 0)
    rc = check_range("replication.factor", c->replication_factor, 1,
                     STM_CLUSTER_MAX_REPLICATION, err);
  if (rc == 0)
    rc = check_range("cluster.shards", c->shards, 1, STM_CLUSTER_MAX_SHARDS,
                     err);
  if (rc == 0)
    rc = check_seeds_not_only_self(c, err);
  if (rc == 0)
    rc = check_swim(c, err);
  return rc;
}
