/*
 * Cluster administration (cluster_node.h): health, the shard listing,
 * shard moves and node removal, run by a worker thread that asks the data
 * path's sync function (stm_cluster_set_sync_fn) to copy shards; and the
 * cluster lines of /metrics.
 */
#include "cluster_internal.h"

#include "common/clock.h"
#include "common/log.h"
#include "rpc/codec.h"
#include "stemedb/v1/cluster.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_MS 1000

void stm__cl_save_map(struct cl *c) {
  struct stm_error err;
  stm_error_clear(&err);
  if (stm_shard_map_save(&c->map, c->map_path, &err) != 0)
    stm_log_error("cluster: cannot persist the shard map: %s", err.message);
}

int stm__cl_queue(struct cl *c, const struct cl_job *job) {
  if (c->job_count == CL_MAX_JOBS)
    return STM_ENOMEM;
  c->jobs[c->job_count++] = *job;
  pthread_cond_broadcast(&c->cv);
  return 0;
}

static void wait_ms(struct cl *c, int ms) {
  struct timespec until =
      stm_clock_deadline(CLOCK_REALTIME, (int64_t)ms * 1000000);
  pthread_cond_timedwait(&c->cv, &c->mu, &until);
}

/* Copy `shard` to `target` with the data path's sync function; mu held on
 * entry and exit, released during the copy. */
static int copy_shard(struct cl *c, uint32_t shard, const char *target) {
  stm_cluster_sync_fn fn = c->sync_fn;
  void *arg = c->sync_arg;
  char name[STM_SHARD_NAME_MAX], to[STM_NODE_ID_MAX + 1];
  stm_placement_shard_name(shard, name, sizeof name);
  snprintf(to, sizeof to, "%s", target);
  pthread_mutex_unlock(&c->mu);
  struct stm_error err;
  stm_error_clear(&err);
  int rc = fn(arg, shard, to, &err);
  if (rc)
    stm_log_warn("cluster: copying %s to %s failed (retrying): %s", name, to,
                 err.message);
  pthread_mutex_lock(&c->mu);
  return rc;
}

/*
 * Who copies a moving shard: the first old replica (in the entry's order)
 * that is UP, so the copy comes from a node that holds the data, whichever
 * node accepted the request. Every node learns the map and runs this
 * check; two nodes that briefly both think they drive it do the same
 * idempotent copy and the same status changes. mu held.
 */
static bool is_driver(struct cl *c, const struct stm_shard_entry *e) {
  for (size_t i = 0; i < e->replica_count; i++) {
    if (strcmp(e->replicas[i], e->target) == 0)
      continue;
    for (size_t j = 0; j < c->member_count; j++)
      if (c->members[j].state == STM_SWIM_UP &&
          strcmp(c->members[j].id, e->replicas[i]) == 0)
        return strcmp(e->replicas[i], c->self) == 0;
  }
  return false;
}

static bool move_queued(const struct cl *c, uint32_t shard) {
  if (c->active_move == (int64_t)shard)
    return true;
  for (size_t i = 0; i < c->job_count; i++)
    if (c->jobs[i].kind == CL_JOB_MOVE && c->jobs[i].shard == shard)
      return true;
  return false;
}

void stm__cl_scan_moves(struct cl *c) {
  for (size_t i = 0; i < c->map.count; i++) {
    const struct stm_shard_entry *e = &c->map.entries[i];
    struct cl_job job = {.kind = CL_JOB_MOVE, .shard = e->shard};
    if (e->status != STM_SHARD_DONE && is_driver(c, e) &&
        !move_queued(c, e->shard))
      stm__cl_queue(c, &job);
  }
}

/* A move: pending -> copying -> done. false: try again later. */
static bool run_move(struct cl *c, uint32_t shard) {
  const struct stm_shard_entry *e = stm_shard_map_find(&c->map, shard);
  if (e == NULL || e->status == STM_SHARD_DONE || !is_driver(c, e))
    return true; /* superseded, or another replica drives it */
  if (c->sync_fn == NULL)
    return false; /* the copy plugs in here (repl's sync); stays pending */
  char target[STM_NODE_ID_MAX + 1];
  snprintf(target, sizeof target, "%s", e->target);
  if (e->status != STM_SHARD_COPYING) {
    stm_shard_map_set_status(&c->map, shard, STM_SHARD_COPYING);
    stm__cl_save_map(c);
  }
  if (copy_shard(c, shard, target) != 0)
    return false;
  e = stm_shard_map_find(&c->map, shard);
  if (e && e->status == STM_SHARD_COPYING && strcmp(e->target, target) == 0) {
    stm_shard_map_set_status(&c->map, shard, STM_SHARD_DONE);
    stm__cl_save_map(c);
    stm_log_info("cluster: shard %u moved to %s", (unsigned)shard, target);
  }
  return true;
}

/* Ids of the non-LEFT members (with or without `except`); mu held. */
static size_t live_ids(struct cl *c, const char **ids, size_t max,
                       const char *except, bool up_only) {
  size_t k = 0;
  for (size_t i = 0; i < c->member_count && k < max; i++) {
    const struct stm_cluster_member *m = &c->members[i];
    if (m->state == STM_SWIM_LEFT || (up_only && m->state != STM_SWIM_UP) ||
        (except && strcmp(m->id, except) == 0))
      continue;
    ids[k++] = m->id;
  }
  return k;
}

static bool in_list(const char *const *ids, size_t n, const char *id) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(ids[i], id) == 0)
      return true;
  return false;
}

#define MAX_ASKED 64
struct asked {
  char pair[MAX_ASKED][2 * STM_NODE_ID_MAX + 2]; /* "holder target" */
  size_t n;
};

/* Ask `holder` to bring `target` up to date (Cluster.Sync; it runs its
 * anti-entropy toward target for the shards they share), once per pair.
 * mu held on entry and exit, released during the call. */
static int ask_sync(struct cl *c, const char *holder, const char *target,
                    struct asked *a) {
  char pair[sizeof a->pair[0]];
  snprintf(pair, sizeof pair, "%.128s %.128s", holder, target);
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->pair[i], pair) == 0)
      return 0;
  char to[STM_NODE_ID_MAX + 1], from[STM_NODE_ID_MAX + 1];
  snprintf(to, sizeof to, "%.128s", target);
  snprintf(from, sizeof from, "%.128s", holder);
  pthread_mutex_unlock(&c->mu);
  grpc_channel *ch = stm_cluster_peer_channel(from);
  Stemedb__V1__SyncRequest req = STEMEDB__V1__SYNC_REQUEST__INIT;
  char *targets[1] = {to};
  req.n_target_nodes = 1;
  req.target_nodes = targets;
  ProtobufCMessage *resp = NULL;
  struct stm_rpc_status st = {.message = "no channel"};
  grpc_status_code code =
      ch ? stm_rpc_call(ch, "/stemedb.v1.Cluster/Sync", &req.base,
                        &stemedb__v1__sync_response__descriptor, 5000, &resp,
                        &st)
         : GRPC_STATUS_UNAVAILABLE;
  if (resp)
    protobuf_c_message_free_unpacked(resp, NULL);
  if (code != GRPC_STATUS_OK)
    stm_log_warn("cluster: asking %s to sync %s failed (retrying): %s", from,
                 to, st.message);
  else
    stm_log_info("cluster: asked %s to sync %s", from, to);
  pthread_mutex_lock(&c->mu);
  if (code != GRPC_STATUS_OK)
    return STM_EIO;
  if (a->n < MAX_ASKED)
    memcpy(a->pair[a->n++], pair, sizeof pair);
  return 0;
}

/* Re-replicate the shards `node` held from the survivors. mu held. */
static bool drain(struct cl *c, const char *node) {
  struct asked asked_pairs = {.n = 0};
  struct asked *asked = &asked_pairs;
  if (c->sync_fn == NULL) {
    stm_log_warn("cluster: removing %s without re-replicating its shards: "
                 "no sync function (replication) in this build",
                 node);
    return true;
  }
  for (uint32_t s = 0; s < c->shards; s++) {
    /* The lists point into c->members, which the tick thread replaces:
     * copy the ids first (copy_shard releases mu). */
    const char *all[256], *rest[256], *before[STM_PLACEMENT_MAX_REPLICAS],
        *after[STM_PLACEMENT_MAX_REPLICAS];
    size_t na = live_ids(c, all, 256, NULL, false);
    size_t nr = live_ids(c, rest, 256, node, true);
    size_t nb = stm_placement_replicas(&c->map, s, all, na, c->factor, before,
                                       STM_PLACEMENT_MAX_REPLICAS);
    if (!in_list(before, nb, node))
      continue;
    size_t nt = stm_placement_replicas(&c->map, s, rest, nr, c->factor, after,
                                       STM_PLACEMENT_MAX_REPLICAS);
    char targets[STM_PLACEMENT_MAX_REPLICAS][STM_NODE_ID_MAX + 1];
    size_t k = 0;
    for (size_t i = 0; i < nt; i++)
      if (!in_list(before, nb, after[i]))
        snprintf(targets[k++], sizeof targets[0], "%s", after[i]);
    /* The copy comes from a surviving old replica: this node when it is
     * one, else the first survivor, asked with Cluster.Sync. */
    const char *holder = NULL;
    for (size_t i = 0; i < nb && holder == NULL; i++)
      if (strcmp(before[i], node) != 0 && in_list(rest, nr, before[i]))
        holder = before[i];
    bool mine = holder && strcmp(holder, c->self) == 0;
    char from[STM_NODE_ID_MAX + 1];
    snprintf(from, sizeof from, "%s", holder ? holder : "");
    for (size_t i = 0; i < k; i++) {
      if (mine ? copy_shard(c, s, targets[i]) != 0
               : from[0] && ask_sync(c, from, targets[i], asked) != 0)
        return false;
    }
  }
  return true;
}

static bool run_remove(struct cl *c, const struct cl_job *job) {
  if (!job->force && !drain(c, job->node))
    return false;
  pthread_mutex_unlock(&c->mu);
  int rc = stm_swim_node_remove(c->swim, job->node);
  pthread_mutex_lock(&c->mu);
  stm_log_info("cluster: %s removed (%s)", job->node,
               rc == 0 ? "now LEFT" : stm_strerror(rc));
  return true;
}

void *stm__cl_worker(void *arg) {
  struct cl *c = arg;
  pthread_mutex_lock(&c->mu);
  while (!c->stopping) {
    if (c->job_count == 0) {
      pthread_cond_wait(&c->cv, &c->mu);
      continue;
    }
    struct cl_job job = c->jobs[0];
    memmove(&c->jobs[0], &c->jobs[1], --c->job_count * sizeof c->jobs[0]);
    if (job.kind == CL_JOB_MOVE)
      c->active_move = job.shard;
    bool done =
        job.kind == CL_JOB_MOVE ? run_move(c, job.shard) : run_remove(c, &job);
    c->active_move = -1;
    if (!done && !c->stopping) {
      /* To the back (others go first), and back off: a target that stays
       * unreachable is retried every 30 s, not every second. */
      int delay = RETRY_MS << (job.attempts < 5 ? job.attempts : 5);
      job.attempts++;
      stm__cl_queue(c, &job);
      wait_ms(c, delay < 30000 ? delay : 30000);
    }
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* ---- health, shards ----------------------------------------------------- */

void stm_cluster_health(struct stm_cluster_health *out) {
  struct stm_cluster_member *m = NULL;
  size_t n = stm_cluster_members_snapshot(&m);
  out->up = out->total = 0;
  for (size_t i = 0; i < n; i++) {
    if (m[i].state == STM_SWIM_LEFT)
      continue;
    out->total++;
    out->up += m[i].state == STM_SWIM_UP;
  }
  free(m);
  out->quorum = out->up * 2 > out->total;
  out->status = out->total && out->up == out->total ? "healthy"
                : out->quorum                       ? "degraded"
                                                    : "unhealthy";
}

static void fill_info(struct cl *c, uint32_t s, const char *const *up, size_t n,
                      struct stm_cluster_shard_info *o) {
  const char *picked[STM_PLACEMENT_MAX_REPLICAS];
  o->shard = s;
  o->replica_count = stm_placement_replicas(&c->map, s, up, n, c->factor,
                                            picked, STM_PLACEMENT_MAX_REPLICAS);
  for (size_t i = 0; i < o->replica_count; i++)
    snprintf(o->replicas[i], sizeof o->replicas[i], "%s", picked[i]);
  const struct stm_shard_entry *e = stm_shard_map_find(&c->map, s);
  o->rebalance_status = stm_shard_status_name(e ? e->status : 0);
  o->assertion_count = 0;
}

size_t stm_cluster_shards(struct stm_cluster_shard_info **out,
                          uint64_t *map_version, struct stm_buf *map_text) {
  struct cl *c = stm__cl;
  *out = NULL;
  if (c == NULL)
    return 0;
  struct stm_cluster_shard_info *info = calloc(c->shards, sizeof *info);
  if (info == NULL)
    return 0;
  pthread_mutex_lock(&c->mu);
  const char **up = calloc(c->member_count + 1, sizeof *up);
  size_t n = !c->enabled ? 1 : up ? stm__cl_up_ids(c, up, c->member_count) : 0;
  if (!c->enabled && up)
    up[0] = c->self;
  for (uint32_t s = 0; up && s < c->shards; s++)
    fill_info(c, s, up, n, &info[s]);
  if (map_version)
    *map_version = c->map.version;
  if (map_text && c->enabled)
    stm_shard_map_format(&c->map, map_text);
  stm_cluster_shard_count_fn fn = c->count_fn;
  void *arg = c->count_arg;
  pthread_mutex_unlock(&c->mu);
  free(up);
  for (uint32_t s = 0; fn && s < c->shards; s++)
    info[s].assertion_count = fn(arg, s);
  if (!c->enabled) /* one shard: everything this node stores */
    info[0].assertion_count = stm__cl_store_count(c);
  *out = info;
  return c->shards;
}

int stm_cluster_rebalance(const char *shard_id, const char *target,
                          const char *reason,
                          struct stm_cluster_shard_info *out,
                          struct stm_error *err) {
  struct cl *c = stm__cl;
  if (c == NULL || !c->enabled)
    return stm_error_set(err, STM_EINVAL, "target_node",
                         "target_node: this node is not clustered; there is "
                         "no other node to move a shard to");
  uint32_t shard;
  int rc =
      stm_placement_shard_parse("shard_id", shard_id, c->shards, &shard, err);
  if (rc)
    return rc;
  if (target[0] == '\0')
    return stm_error_set(err, STM_EINVAL, "target_node",
                         "target_node must name a member");
  if (!stm_cluster_is_up(target))
    return stm_error_set(err, STM_EINVAL, "target_node",
                         "target_node \"%.128s\" is not an UP member of the "
                         "cluster",
                         target);
  pthread_mutex_lock(&c->mu);
  const char **up = calloc(c->member_count + 1, sizeof *up);
  rc = up ? 0 : stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  if (rc == 0) {
    const char *cur[STM_PLACEMENT_MAX_REPLICAS];
    size_t n = stm__cl_up_ids(c, up, c->member_count);
    /* A move whose target is gone would retry forever: a new request
     * replaces it. */
    const struct stm_shard_entry *old = stm_shard_map_find(&c->map, shard);
    if (old && old->status != STM_SHARD_DONE && !in_list(up, n, old->target)) {
      stm_log_warn("cluster: abandoning the move of shard %u to %s (not UP)",
                   (unsigned)shard, old->target);
      stm_shard_map_cancel(&c->map, shard);
    }
    size_t k = stm_placement_replicas(&c->map, shard, up, n, c->factor, cur,
                                      STM_PLACEMENT_MAX_REPLICAS);
    rc = stm_shard_map_move(&c->map, shard, target, cur, k, c->factor, err);
    if (rc == 0) {
      stm__cl_save_map(c);
      stm__cl_scan_moves(c); /* queued here when this node drives it */
      stm_log_info("cluster: moving shard %u to %s (%s), map version %llu",
                   (unsigned)shard, target, reason && *reason ? reason : "-",
                   (unsigned long long)c->map.version);
    }
    if (out)
      fill_info(c, shard, up, n, out);
  }
  pthread_mutex_unlock(&c->mu);
  free(up);
  return rc;
}

int stm_cluster_remove(const char *node_id, bool force, const char **status,
                       struct stm_error *err) {
  struct cl *c = stm__cl;
  if (c == NULL || !c->enabled || c->swim == NULL)
    return stm_error_set(err, STM_EINVAL, "node_id",
                         "node_id: this node is not part of a running "
                         "cluster");
  if (strcmp(node_id, c->self) == 0)
    return stm_error_set(err, STM_EINVAL, "node_id",
                         "node_id \"%.128s\" is this node; stop it (SIGTERM) "
                         "to leave, or ask another member",
                         node_id);
  pthread_mutex_lock(&c->mu);
  int rc = 0;
  bool queued = false;
  const struct stm_cluster_member *m = NULL;
  for (size_t i = 0; i < c->member_count; i++)
    if (strcmp(c->members[i].id, node_id) == 0)
      m = &c->members[i];
  if (m == NULL)
    rc = stm_error_set(err, STM_ENOTFOUND, "node_id",
                       "node_id \"%.128s\" is not a member", node_id);
  else if (m->state == STM_SWIM_LEFT)
    *status = "left";
  else if (m->state == STM_SWIM_UP && !force)
    rc = stm_error_set(err, STM_EINVAL, "node_id",
                       "node_id \"%.128s\" is UP: stop it first (it would "
                       "refute its removal), or set force",
                       node_id);
  else {
    struct cl_job job = {.kind = CL_JOB_REMOVE, .force = force};
    snprintf(job.node, sizeof job.node, "%s", node_id);
    rc = stm__cl_queue(c, &job);
    if (rc)
      rc = stm_error_set(err, STM_EUNAVAIL, "node_id",
                         "too many cluster jobs queued; try again later");
    queued = rc == 0;
  }
  pthread_mutex_unlock(&c->mu);
  if (queued)
    *status = force ? "removing" : "draining";
  return rc;
}

/* ---- metrics ------------------------------------------------------------ */

int stm_cluster_metrics_append(struct stm_buf *out) {
  if (!stm_cluster_enabled())
    return 0;
  struct stm_cluster_member *m = NULL;
  size_t n = stm_cluster_members_snapshot(&m);
  size_t by[4] = {0};
  for (size_t i = 0; i < n; i++)
    if ((unsigned)m[i].state < 4)
      by[m[i].state]++;
  int rc = stm_buf_printf(out, "# HELP cluster_members Members of the "
                               "cluster by SWIM state, as this node sees "
                               "them.\n# TYPE cluster_members gauge\n");
  static const enum stm_swim_state states[] = {STM_SWIM_UP, STM_SWIM_SUSPECT,
                                               STM_SWIM_DOWN, STM_SWIM_LEFT};
  for (size_t i = 0; rc == 0 && i < 4; i++)
    rc = stm_buf_printf(out, "cluster_members{status=\"%s\"} %zu\n",
                        stm_swim_state_name(states[i]), by[states[i]]);
  if (rc == 0)
    rc = stm_buf_printf(out, "# HELP replication_lag_seconds Age of the "
                             "oldest write the peer has not acknowledged.\n"
                             "# TYPE replication_lag_seconds gauge\n");
  for (size_t i = 0; rc == 0 && i < n; i++)
    if (!m[i].self && m[i].state != STM_SWIM_LEFT)
      rc = stm_buf_printf(out, "replication_lag_seconds{peer=\"%s\"} %.3f\n",
                          m[i].id, m[i].lag_seconds);
  free(m);
  return rc;
}
