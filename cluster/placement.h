/*
 * placement.h - which nodes hold which data: shards, rendezvous hashing and
 * the versioned shard map of explicit moves. Pure logic (no I/O except
 * the map's load/save), no gRPC.
 *
 *  - A claim (and its votes and epochs) lives in shard
 *    stm_placement_shard_of(concept_path, shards): BLAKE2b-64 of the full
 *    concept path, modulo the shard count (fixed for the cluster's life).
 *  - A shard's replicas are `factor` of the given live nodes, those with
 *    the highest score BLAKE2b-64("<shard>" || 0 || node_id) (rendezvous
 *    hashing): when a node joins or leaves, only the shards it gains or
 *    loses move.
 *  - An operator's move (POST /admin/shards/rebalance) pins a shard to an
 *    explicit replica list in the shard map. The map has a version that
 *    grows with every change; between nodes, the higher version wins.
 *    A move goes pending -> copying -> done: while it is not done the
 *    replicas are the old ones plus the target (writes reach both, the old
 *    replica keeps serving); when done, `drop` leaves the list.
 *
 * Shard names are "shard-<n>" (n = 0 .. shards-1); "<n>" is accepted too.
 *
 * The map's text form (stm_shard_map_format), one line each:
 *   stemedb-shard-map 1
 *   version <u64>
 *   shards <n>
 *   shard <n> <pending|copying|done> <target|-> <drop|-> <r1,r2,...>
 * Not thread-safe: callers lock.
 */
#ifndef STM_CLUSTER_PLACEMENT_H
#define STM_CLUSTER_PLACEMENT_H

#include "cluster_config.h"
#include "common/buf.h"
#include "common/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STM_PLACEMENT_MAX_REPLICAS (STM_CLUSTER_MAX_REPLICATION + 1)
#define STM_SHARD_NAME_MAX 24

/* Shard of a concept path: BLAKE2b-64 of the path, mod `shards` (>= 1). */
uint32_t stm_placement_shard_of(const char *concept_path, uint32_t shards);

/* "shard-17" into buf (at least STM_SHARD_NAME_MAX bytes). */
void stm_placement_shard_name(uint32_t shard, char *buf, size_t len);

/* "shard-17" or "17" -> 17, when < shards. 0 or STM_EINVAL naming
 * `field`. */
int stm_placement_shard_parse(const char *field, const char *name,
                              uint32_t shards, uint32_t *out,
                              struct stm_error *err);

/* The rendezvous score of a node for a shard. */
uint64_t stm_placement_score(uint32_t shard, const char *node_id);

/*
 * The min(factor, n) nodes of nodes[0..n) with the highest score for
 * `shard`, best first, as indexes into nodes (out has room for factor).
 * Ties (equal scores) go to the smaller id. Returns the count.
 */
size_t stm_placement_rendezvous(uint32_t shard, const char *const *nodes,
                                size_t n, size_t factor, size_t *out);

enum stm_shard_status {
  STM_SHARD_PENDING = 1, /* recorded, copy not started */
  STM_SHARD_COPYING = 2, /* the target is receiving the shard */
  STM_SHARD_DONE = 3,    /* the target has it; `drop` left the list */
};

/* "pending", "copying", "done"; "stable" for 0 (no explicit entry). */
const char *stm_shard_status_name(enum stm_shard_status s);

struct stm_shard_entry {
  uint32_t shard;
  enum stm_shard_status status;
  char target[STM_NODE_ID_MAX + 1]; /* "" when none */
  char drop[STM_NODE_ID_MAX + 1];   /* "" when none */
  char replicas[STM_PLACEMENT_MAX_REPLICAS][STM_NODE_ID_MAX + 1];
  size_t replica_count;
};

struct stm_shard_map {
  uint64_t version;
  uint32_t shards;
  struct stm_shard_entry *entries; /* sorted by shard */
  size_t count, cap;
};

void stm_shard_map_init(struct stm_shard_map *m, uint32_t shards);
void stm_shard_map_destroy(struct stm_shard_map *m);
/* Copy src into dst (dst initialized). 0 or STM_ENOMEM. */
int stm_shard_map_copy(struct stm_shard_map *dst,
                       const struct stm_shard_map *src);

/* The explicit entry of `shard`, or NULL. */
const struct stm_shard_entry *stm_shard_map_find(const struct stm_shard_map *m,
                                                 uint32_t shard);

/* Insert or replace e (by e->shard) and bump the version. 0, STM_EINVAL
 * (shard out of range) or STM_ENOMEM. */
int stm_shard_map_put(struct stm_shard_map *m, const struct stm_shard_entry *e);

/*
 * The replicas of `shard` among the live nodes up[0..n): an explicit
 * entry's replicas that are live first (in the entry's order), then the
 * rendezvous order of the other live nodes until there are `factor`.
 * Writes ids (borrowed from up[] or the map) into out[0..max); returns the
 * count.
 */
size_t stm_placement_replicas(const struct stm_shard_map *m, uint32_t shard,
                              const char *const *up, size_t n, size_t factor,
                              const char **out, size_t max);

/*
 * Start a move of `shard` to `target`: the entry becomes pending with the
 * current replicas (`current[0..count)`) plus target, and drop = the last
 * current replica (the lowest ranked) when there are already `factor`.
 * STM_EINVAL when target is already a replica and no move is running, or
 * a move of this shard is not done yet (a message says which).
 */
int stm_shard_map_move(struct stm_shard_map *m, uint32_t shard,
                       const char *target, const char *const *current,
                       size_t count, size_t factor, struct stm_error *err);

/* Set the status of a move (done also removes `drop` from the replicas);
 * bumps the version. STM_ENOTFOUND when the shard has no entry. */
int stm_shard_map_set_status(struct stm_shard_map *m, uint32_t shard,
                             enum stm_shard_status status);

/* Abandon a move that is not done (its target died): the entry keeps the
 * old replicas only, done, with no target; bumps the version.
 * STM_ENOTFOUND when no move of the shard is running. */
int stm_shard_map_cancel(struct stm_shard_map *m, uint32_t shard);

/* The text form (appended to out). 0 or STM_ENOMEM. */
int stm_shard_map_format(const struct stm_shard_map *m, struct stm_buf *out);
/* Parse the text form into m (initialized; replaced on success). 0 or
 * STM_EINVAL naming the line. */
int stm_shard_map_parse(struct stm_shard_map *m, const char *text, size_t len,
                        struct stm_error *err);

/* Load from a file: a missing file leaves m as is (returns 0). Save:
 * write path.tmp, fsync, rename. 0, STM_EIO or STM_EINVAL. */
int stm_shard_map_load(struct stm_shard_map *m, const char *path,
                       struct stm_error *err);
int stm_shard_map_save(const struct stm_shard_map *m, const char *path,
                       struct stm_error *err);

#endif
