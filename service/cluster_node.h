/*
 * cluster_node.h - the server's cluster runtime: one per process, absent
 * when clustering is off (every query below then answers as a one-node
 * cluster: stm_cluster_enabled() false, this node the only replica).
 *
 * It runs the SWIM member (cluster/swim_udp.h) on cluster.swim_addr,
 * publishes this node's assertion_count and shard-map version in the SWIM
 * metadata (at most every 2 s, only when changed), keeps a snapshot of the
 * members for the queries below (no call here blocks on SWIM's lock), owns
 * the versioned shard map (DATA_DIR/cluster/shard-map; a peer announcing a
 * higher version is asked for its map with Cluster.Shards, whose
 * `shard_map` field carries the text form of placement.h), caches one gRPC
 * channel per peer, and runs the admin jobs (shard moves, node removal) on
 * a worker thread.
 *
 * The data path (replication, anti-entropy: `repl`) plugs in through:
 *   - stm_cluster_set_sync_fn: copy a shard to a node; the move and removal
 *     jobs call it (without it they stay at "copying"/"draining"),
 *   - stm_cluster_add_listener: membership changes,
 *   - stm_cluster_set_peer_lag: replication_lag_seconds{peer} in /metrics.
 *
 * Thread safety: every function may be called from any thread. Listeners
 * and the sync function are called on the runtime's own threads with no
 * lock held; they may call any stm_cluster_* query. A move is driven (the
 * copy made, the status advanced) by the shard's first UP old replica,
 * whichever node accepted it; run one operator's moves at a time (two
 * nodes changing the map at once may both reach the same version).
 */
#ifndef STM_SERVICE_CLUSTER_NODE_H
#define STM_SERVICE_CLUSTER_NODE_H

#include "cluster/cluster_config.h"
#include "cluster/placement.h"
#include "cluster/swim.h"
#include "common/buf.h"
#include "common/error.h"

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stm_store;

/* How long a LEFT announcement is gossiped on shutdown. */
#define STM_CLUSTER_LEAVE_MS 1000

/*
 * Start the runtime. Always called (clustered or not): `node_id` and
 * `rpc_addr` (the gRPC listen address) answer for a single node. When
 * cfg->enabled, SWIM starts on cfg->swim_addr. `data_dir` holds the shard
 * map; `store` gives assertion_count. Both are borrowed until
 * stm_cluster_stop. Returns 0 or an error naming the config key
 * (STM_EINVAL), the socket (STM_EIO) or STM_ENOMEM.
 */
int stm_cluster_start(const struct stm_cluster_config *cfg, const char *node_id,
                      const char *rpc_addr, const char *data_dir,
                      struct stm_store *store, struct stm_error *err);

/* Stop gossiping: announce LEFT for up to leave_ms (SIGTERM), stop the
 * threads and SWIM. Queries keep answering from the last snapshot and
 * peer channels stay valid until stm_cluster_stop. Idempotent. */
void stm_cluster_leave(int leave_ms);

/* stm_cluster_leave(0) if still running, then free everything. After the
 * gRPC server is gone (handlers use the channels). */
void stm_cluster_stop(void);

bool stm_cluster_enabled(void);
/* This node's id (the server's node id even when not clustered; "" before
 * stm_cluster_start). */
const char *stm_cluster_self_id(void);

uint32_t stm_cluster_shard_count(void);
uint32_t stm_cluster_shard_of(const char *concept_path);
size_t stm_cluster_factor(void);
enum stm_write_quorum stm_cluster_write_quorum(void);

struct stm_cluster_peer {
  char id[STM_NODE_ID_MAX + 1];
  char rpc_addr[STM_ADDR_MAX + 1];
  bool self;
};

/* The UP replicas of `shard` (placement over the UP members and the shard
 * map), best first, at most max. Single node: this node. */
size_t stm_cluster_replicas(uint32_t shard, struct stm_cluster_peer *out,
                            size_t max);

struct stm_cluster_member {
  char id[STM_NODE_ID_MAX + 1];
  enum stm_swim_state state;
  uint64_t incarnation;
  uint64_t assertion_count; /* self: the store's; peers: gossiped */
  int64_t last_seen_ns;     /* wall clock, ns since the epoch, when
                                    we last heard it directly (learned UP
                                    by gossip only: when we learned it) */
  char rpc_addr[STM_ADDR_MAX + 1];
  char swim_addr[STM_ADDR_MAX + 1];
  char bind_addr[STM_ADDR_MAX + 1]; /* "" when not gossiped (too long) */
  double lag_seconds;               /* from stm_cluster_set_peer_lag; 0 */
  bool self;
};

/* A copy of the members (self first). Returns the count; *out malloc'd,
 * caller frees. Single node: one member, UP. */
size_t stm_cluster_members_snapshot(struct stm_cluster_member **out);

bool stm_cluster_is_up(const char *id);

/* A cached channel to the member's rpc_addr (NULL: unknown member or no
 * address). Borrowed: valid until stm_cluster_stop; never destroy it. */
grpc_channel *stm_cluster_peer_channel(const char *id);

/* Membership changes, called on the runtime's thread in order (within a
 * tick, 100 ms, of SWIM's change). A listener sees the changes after it
 * was added; stm_cluster_members_snapshot gives the state before. */
typedef void (*stm_cluster_listener)(void *arg, const char *id,
                                     enum stm_swim_state old_state,
                                     enum stm_swim_state new_state, bool added);
/* At most 8 listeners. 0 or STM_ENOMEM. */
int stm_cluster_add_listener(stm_cluster_listener fn, void *arg);

/* Copy shard `shard` to node `target` until it has every record the
 * surviving replicas have. Returns 0 when done. Blocking; runs on the job
 * thread. */
typedef int (*stm_cluster_sync_fn)(void *arg, uint32_t shard,
                                   const char *target, struct stm_error *err);
void stm_cluster_set_sync_fn(stm_cluster_sync_fn fn, void *arg);

/* replication_lag_seconds{peer}: age of the oldest write `peer` has not
 * acknowledged (0 when none). */
void stm_cluster_set_peer_lag(const char *peer, double seconds);

/* ---- admin (handlers_cluster.c) ------------------------------------- */

struct stm_cluster_health {
  const char *status; /* "healthy", "degraded", "unhealthy" */
  bool quorum;        /* a majority of the non-LEFT members are UP */
  uint32_t up, total;
};
void stm_cluster_health(struct stm_cluster_health *out);

struct stm_cluster_shard_info {
  uint32_t shard;
  char replicas[STM_PLACEMENT_MAX_REPLICAS][STM_NODE_ID_MAX + 1];
  size_t replica_count;
  const char *rebalance_status; /* "stable", "pending", "copying", "done" */
  uint64_t assertion_count;     /* from the shard count function; 0 */
};

/* Claims this node stores in `shard` (repl's storage model knows). */
typedef uint64_t (*stm_cluster_shard_count_fn)(void *arg, uint32_t shard);
void stm_cluster_set_shard_count_fn(stm_cluster_shard_count_fn fn, void *arg);
/* Every shard (shard_count entries, *out malloc'd); the map's version and
 * text form into map_version / map_text (nullable). */
size_t stm_cluster_shards(struct stm_cluster_shard_info **out,
                          uint64_t *map_version, struct stm_buf *map_text);

/* Record a move of `shard_id` ("shard-17") to `target`; the shard's first
 * UP old replica copies it (stm_cluster_set_sync_fn) and completes it. STM_EINVAL naming shard_id / target_node (unknown
 * or not UP target, a move already running; single node: no target). */
int stm_cluster_rebalance(const char *shard_id, const char *target,
                          const char *reason,
                          struct stm_cluster_shard_info *out,
                          struct stm_error *err);

/* Drain `node_id` (re-replicate its shards from the survivors) and then
 * mark it LEFT. An UP node is refused unless `force`; with `force` the
 * drain is skipped. *status: "left" or "draining". */
int stm_cluster_remove(const char *node_id, bool force, const char **status,
                       struct stm_error *err);

/* cluster_members{status} and replication_lag_seconds{peer} lines
 * (nothing when not clustered). 0 or STM_ENOMEM. */
int stm_cluster_metrics_append(struct stm_buf *out);

#endif
