/*
 * cluster_config.h - the cluster settings of a node, as the runbook writes
 * them in cluster.toml:
 *
 *   [cluster]
 *   enabled = true
 *   node_id = "node1"
 *   bind_addr = "10.0.1.51:18181"   # the gateway's cluster address
 *   rpc_addr = "10.0.1.51:18182"    # this server's gRPC address
 *   swim_addr = "10.0.1.51:18183"   # this server's SWIM (UDP) address
 *   seeds = ["10.0.1.52:18183", "10.0.1.53:18183"]
 *   shards = 64                     # optional; fixed for the cluster's life
 *
 *   [replication]
 *   factor = 2
 *
 * and these optional keys, with their defaults:
 *
 *   [cluster]
 *   name = "stemedb"            # carried by every SWIM datagram; members of
 *                               # another cluster are ignored
 *   cluster_key = "..."         # shared secret; SWIM datagrams carry an
 *                               # HMAC under a key derived from it. Unset:
 *                               # no secret (anyone who can reach the port
 *                               # can join), allowed but logged
 *   probe_interval_ms = 1000    # SWIM: one probe per member per interval
 *   probe_timeout_ms = 500      # direct ack wait, < probe_interval_ms
 *   suspicion_mult = 4          # suspicion timeout, min =
 *                               #   mult * max(1, log10 n) * probe interval
 *   suspicion_max_mult = 6      # max = this * min, before confirmations
 *   push_pull_interval_ms = 30000  # full-state sync with a random member
 *
 *   [replication]
 *   write_quorum = "one"        # one | majority | all: replicas that must
 *                               # have a write before it is acknowledged
 *
 * Contradictions are errors naming the key: cluster.enabled without
 * node_id, replication.factor 0, seeds that name only this node.
 *
 * Caller-embedded: stm_cluster_config_init() sets the defaults,
 * stm_cluster_config_destroy() frees the strings. String fields are
 * malloc'd (or NULL when unset) and owned by the struct; a caller replacing
 * one frees the old value. Not thread-safe; fill it in once at start-up and
 * then treat it as read-only.
 */
#ifndef STM_CLUSTER_CONFIG_H
#define STM_CLUSTER_CONFIG_H

#include "common/error.h"
#include "toml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STM_CLUSTER_DEFAULT_SHARDS 64
#define STM_CLUSTER_MAX_SHARDS 65536
#define STM_CLUSTER_DEFAULT_REPLICATION 1
#define STM_CLUSTER_MAX_REPLICATION 16
#define STM_CLUSTER_MAX_SEEDS 256
#define STM_CLUSTER_DEFAULT_SWIM_PORT 18183
#define STM_NODE_ID_MAX 128
/* Longest host name plus ":65535" and IPv6 brackets. */
#define STM_ADDR_MAX 263
#define STM_CLUSTER_DEFAULT_NAME "stemedb"
#define STM_CLUSTER_NAME_MAX 64
#define STM_CLUSTER_DEFAULT_PROBE_INTERVAL_MS 1000
#define STM_CLUSTER_DEFAULT_PROBE_TIMEOUT_MS 500
#define STM_CLUSTER_DEFAULT_SUSPICION_MULT 4
#define STM_CLUSTER_DEFAULT_SUSPICION_MAX_MULT 6
#define STM_CLUSTER_DEFAULT_PUSH_PULL_MS 30000

enum stm_write_quorum {
  STM_WRITE_QUORUM_ONE = 0,
  STM_WRITE_QUORUM_MAJORITY = 1,
  STM_WRITE_QUORUM_ALL = 2,
};
/* "one", "majority", "all". */
const char *stm_write_quorum_name(enum stm_write_quorum q);
/* The inverse; 0 or STM_EINVAL. */
int stm_write_quorum_parse(const char *name, enum stm_write_quorum *out);

struct stm_cluster_config {
  bool enabled;    /* default false: a single node */
  char *node_id;   /* NULL: the server's node id */
  char *bind_addr; /* gateway cluster address, host:port */
  char *rpc_addr;  /* gRPC address peers dial, host:port */
  char *swim_addr; /* SWIM UDP address, host:port */
  char **seeds;    /* seed_count SWIM addresses */
  size_t seed_count;
  int64_t replication_factor;         /* [replication] factor, default 1 */
  int64_t shards;                     /* default STM_CLUSTER_DEFAULT_SHARDS */
  char *name;                         /* NULL: STM_CLUSTER_DEFAULT_NAME */
  char *cluster_key;                  /* NULL: no secret */
  enum stm_write_quorum write_quorum; /* [replication] write_quorum */
  int64_t probe_interval_ms;
  int64_t probe_timeout_ms;
  int64_t suspicion_mult;
  int64_t suspicion_max_mult;
  int64_t push_pull_interval_ms;
};

/* Defaults: disabled, nothing set, factor 1, 64 shards, quorum one, the
 * SWIM timings above. */
void stm_cluster_config_init(struct stm_cluster_config *c);
/* Free the strings and reset to the defaults. */
void stm_cluster_config_destroy(struct stm_cluster_config *c);

/*
 * Copy the [cluster] and [replication] keys present in `doc` into `c`,
 * replacing earlier values; keys not present leave fields untouched.
 * A value of the wrong type is STM_EINVAL with the key as err->field
 * ("cluster.seeds must be an array of strings, got string (line 7)").
 * Does not validate values (see stm_cluster_config_validate); unknown keys
 * are ignored here (see stm_cluster_config_is_key).
 */
int stm_cluster_config_from_toml(struct stm_cluster_config *c,
                                 const struct stm_toml_doc *doc,
                                 struct stm_error *err);

/* True when `key` ("cluster.seeds") is a key this module reads. */
bool stm_cluster_config_is_key(const char *key);

/*
 * Check every field: addresses are host:port, seeds too (and at most
 * STM_CLUSTER_MAX_SEEDS), node_id is a valid node id when set, factor in
 * 1..16, shards in 1..65536, name 1..64 bytes of node-id characters,
 * probe_interval_ms 10..60000 with probe_timeout_ms in 1..interval-1,
 * suspicion_mult 1..100, suspicion_max_mult 1..100, push_pull_interval_ms
 * 100..3600000. When enabled, node_id, rpc_addr and swim_addr must be set
 * and the seeds must name some node other than swim_addr. Returns 0 or STM_EINVAL with err->field = the config key
 * ("cluster.seeds[1]") and a message quoting the bad value.
 */
int stm_cluster_config_validate(const struct stm_cluster_config *c,
                                struct stm_error *err);

/* Replace the seed list with a copy of `seeds`. 0 or STM_ENOMEM. */
int stm_cluster_config_set_seeds(struct stm_cluster_config *c,
                                 const char *const *seeds, size_t count);

/* Replace a string field (*slot) with a copy of `value` (NULL clears).
 * 0 or STM_ENOMEM (then *slot is unchanged). */
int stm_cluster_config_set_string(char **slot, const char *value);

/*
 * Split "host:port" or "[v6]:port" into host (brackets removed, at most
 * host_cap-1 bytes) and port. The host is a DNS name, an IPv4 address or a
 * bracketed IPv6 address; the port is 1..65535, or 0 too when
 * `allow_port_zero` (listen addresses: "pick a free port"). Returns 0 or
 * STM_EINVAL with err->field = `field` and a message saying what is wrong.
 * host may be NULL when only checking.
 */
int stm_addr_parse(const char *field, const char *addr, bool allow_port_zero,
                   char *host, size_t host_cap, uint16_t *port,
                   struct stm_error *err);

/* True for a wildcard host a peer cannot dial: "", 0.0.0.0, ::, [::]. */
bool stm_addr_host_is_wildcard(const char *host);

/* 1-128 bytes of [A-Za-z0-9_.:-]. 0 or STM_EINVAL naming `field`. */
int stm_node_id_validate(const char *field, const char *id,
                         struct stm_error *err);

#endif
