#include "cluster_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void stm_cluster_config_init(struct stm_cluster_config *c) {
  memset(c, 0, sizeof *c);
  c->replication_factor = STM_CLUSTER_DEFAULT_REPLICATION;
  c->shards = STM_CLUSTER_DEFAULT_SHARDS;
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
};
#define N_STRING_KEYS (sizeof string_keys / sizeof string_keys[0])

static const char *const other_keys[] = {
    "cluster.enabled", "cluster.seeds", "cluster.shards", "replication.factor"};

bool stm_cluster_config_is_key(const char *key) {
  for (size_t i = 0; i < N_STRING_KEYS; i++)
    if (strcmp(key, string_keys[i].key) == 0)
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

int stm_cluster_config_from_toml(struct stm_cluster_config *c,
                                 const struct stm_toml_doc *doc,
                                 struct stm_error *err) {
  int rc;
  const char *const *seeds;
  size_t n;
  if ((rc = present(stm_toml_get_bool(doc, "cluster.enabled", &c->enabled,
                                      err))) ||
      (rc = read_strings(c, doc, err)) ||
      (rc = present(stm_toml_get_int(doc, "cluster.shards", &c->shards,
                                     err))) ||
      (rc = present(stm_toml_get_int(doc, "replication.factor",
                                     &c->replication_factor, err))))
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
    return stm_error_set(err, STM_EINVAL, field, "%s must not be empty",
                         field);
  if (n > STM_NODE_ID_MAX)
    return stm_error_set(err, STM_EINVAL, field,
                         "%s is longer than %d bytes", field, STM_NODE_ID_MAX);
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

int stm_cluster_config_validate(const struct stm_cluster_config *c,
                                struct stm_error *err) {
  int rc = 0;
  if (c->node_id)
    rc = stm_node_id_validate("cluster.node_id", c->node_id, err);
  if (rc == 0 && c->bind_addr)
    rc = stm_addr_parse("cluster.bind_addr", c->bind_addr, false, NULL, 0,
                        NULL, err);
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
  return rc;
}
