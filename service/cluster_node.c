/*
 * The server's cluster runtime (cluster_node.h): SWIM, the member
 * snapshot, metadata, the shard map's spread, peer channels. The admin
 * jobs live in cluster_jobs.c.
 */
#include "cluster_internal.h"

#include "common/clock.h"
#include "common/log.h"
#include "rpc/codec.h"
#include "stemedb/v1/cluster.pb-c.h"
#include "storage/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct cl *stm__cl;

/* Tick of the snapshot thread; metadata goes out at most every 2 s. */
#define TICK_MS 100
#define META_EVERY_NS (INT64_C(2000) * 1000000)
#define MAP_FETCH_EVERY_NS (INT64_C(1000) * 1000000)
#define MAP_FETCH_TIMEOUT_MS 2000
/* Metadata v1: [1][count u64le][map version u64le][len u8][bind_addr]. */
#define META_HEAD 18

/* ---- SWIM callback: on SWIM's thread, with SWIM's lock held ------------ */

static void on_member(void *arg, const struct stm_swim_member *m,
                      enum stm_swim_state old_state, bool added) {
  struct cl *c = arg;
  pthread_mutex_lock(&c->mu);
  if (added || old_state != m->state) {
    if (c->ev_count == CL_EVENT_RING) { /* drop the oldest */
      c->ev_head = (c->ev_head + 1) % CL_EVENT_RING;
      c->ev_count--;
    }
    struct cl_event *e =
        &c->events[(c->ev_head + c->ev_count++) % CL_EVENT_RING];
    snprintf(e->id, sizeof e->id, "%s", m->id);
    e->old_state = old_state;
    e->new_state = m->state;
    e->added = added;
  }
  pthread_mutex_unlock(&c->mu);
  if (!m->self && (added || old_state != m->state))
    stm_log_info("cluster: member %s %s%s", m->id,
                 added ? "joined as " : "is now ",
                 stm_swim_state_name(m->state));
}

/* ---- metadata ----------------------------------------------------------- */

static size_t meta_encode(const struct cl *c, uint64_t count, uint64_t version,
                          uint8_t *out) {
  out[0] = 1;
  stm_buf_store_u64le(out + 1, count);
  stm_buf_store_u64le(out + 9, version);
  size_t bl = strlen(c->self_bind);
  if (bl > STM_SWIM_META_MAX - META_HEAD)
    bl = 0; /* too long to gossip: peers show "" */
  out[17] = (uint8_t)bl;
  memcpy(out + META_HEAD, c->self_bind, bl);
  return META_HEAD + bl;
}

static void meta_decode(const struct stm_swim_member *m,
                        struct stm_cluster_member *out, uint64_t *version) {
  *version = 0;
  if (m->meta_len < META_HEAD || m->meta[0] != 1)
    return;
  out->assertion_count = stm_buf_load_u64le(m->meta + 1);
  *version = stm_buf_load_u64le(m->meta + 9);
  size_t bl = m->meta[17];
  if (META_HEAD + bl <= m->meta_len && bl < sizeof out->bind_addr) {
    memcpy(out->bind_addr, m->meta + META_HEAD, bl);
    out->bind_addr[bl] = '\0';
  }
}

uint64_t stm__cl_store_count(const struct cl *c) {
  if (c->store == NULL)
    return 0;
  struct stm_store_stats st;
  stm_store_get_stats(c->store, &st);
  return st.assertion_count;
}

/* ---- the snapshot thread ------------------------------------------------ */

static double lag_of(const struct cl *c, const char *id) {
  for (size_t i = 0; i < c->lag_count; i++)
    if (strcmp(c->lags[i].id, id) == 0)
      return c->lags[i].seconds;
  return 0;
}

/* Convert SWIM's members; self gets the store's count. */
static struct stm_cluster_member *
convert(struct cl *c, const struct stm_swim_member *raw, size_t n,
        uint64_t self_count, uint64_t *best_version, char *best_peer) {
  struct stm_cluster_member *out = calloc(n ? n : 1, sizeof *out);
  *best_version = 0;
  for (size_t i = 0; out && i < n; i++) {
    struct stm_cluster_member *o = &out[i];
    uint64_t version;
    snprintf(o->id, sizeof o->id, "%s", raw[i].id);
    o->state = raw[i].state;
    o->incarnation = raw[i].incarnation;
    o->last_seen_ns = raw[i].last_seen_ns;
    /* Learned UP through gossip, not yet heard directly: a peer saw it
     * alive when we learned it, which beats "never". */
    if (o->last_seen_ns == 0 && raw[i].state == STM_SWIM_UP)
      o->last_seen_ns = raw[i].state_changed_ns;
    snprintf(o->rpc_addr, sizeof o->rpc_addr, "%s", raw[i].rpc_addr);
    snprintf(o->swim_addr, sizeof o->swim_addr, "%s", raw[i].swim_addr);
    meta_decode(&raw[i], o, &version);
    o->self = raw[i].self;
    if (o->self) {
      o->assertion_count = self_count;
      snprintf(o->bind_addr, sizeof o->bind_addr, "%s", c->self_bind);
    } else if (o->state == STM_SWIM_UP && version > *best_version) {
      *best_version = version;
      snprintf(best_peer, STM_NODE_ID_MAX + 1, "%s", o->id);
    }
  }
  return out;
}

static void dispatch_events(struct cl *c) {
  for (;;) {
    pthread_mutex_lock(&c->mu);
    if (c->ev_count == 0) {
      pthread_mutex_unlock(&c->mu);
      return;
    }
    struct cl_event e = c->events[c->ev_head];
    c->ev_head = (c->ev_head + 1) % CL_EVENT_RING;
    c->ev_count--;
    size_t n = c->listener_count;
    __typeof__(c->listeners[0]) ls[CL_MAX_LISTENERS];
    memcpy(ls, c->listeners, sizeof ls);
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < n; i++)
      ls[i].fn(ls[i].arg, e.id, e.old_state, e.new_state, e.added);
  }
}

/* Ask `peer` for its shard map; adopt it when newer. */
static void fetch_map(struct cl *c, const char *peer) {
  grpc_channel *ch = stm_cluster_peer_channel(peer);
  if (ch == NULL)
    return;
  Stemedb__V1__ShardsRequest req = STEMEDB__V1__SHARDS_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  struct stm_rpc_status st;
  if (stm_rpc_call(ch, "/stemedb.v1.Cluster/Shards", &req.base,
                   &stemedb__v1__shards_response__descriptor,
                   MAP_FETCH_TIMEOUT_MS, &resp, &st) != GRPC_STATUS_OK) {
    stm_log_debug("cluster: shard map from %s: %s", peer, st.message);
    return;
  }
  const Stemedb__V1__ShardsResponse *r = (const void *)resp;
  struct stm_shard_map m;
  struct stm_error err;
  stm_error_clear(&err);
  stm_shard_map_init(&m, c->shards);
  int rc = stm_shard_map_parse(&m, r->shard_map, strlen(r->shard_map), &err);
  pthread_mutex_lock(&c->mu);
  if (rc == 0 && m.shards == c->shards && m.version > c->map.version) {
    stm_log_info("cluster: shard map version %llu from %s (was %llu)",
                 (unsigned long long)m.version, peer,
                 (unsigned long long)c->map.version);
    stm_shard_map_destroy(&c->map);
    c->map = m;
    stm_shard_map_init(&m, c->shards);
    stm__cl_save_map(c);
  } else if (rc) {
    stm_log_warn("cluster: shard map from %s: %s", peer, err.message);
  }
  pthread_mutex_unlock(&c->mu);
  stm_shard_map_destroy(&m);
  protobuf_c_message_free_unpacked(resp, NULL);
}

struct tick_state {
  uint64_t meta_count, meta_version;
  int64_t meta_ns, fetch_ns;
  bool meta_sent;
};

static void publish_meta(struct cl *c, struct tick_state *t, uint64_t count,
                         uint64_t version, int64_t now) {
  if (t->meta_sent && (now - t->meta_ns < META_EVERY_NS ||
                       (count == t->meta_count && version == t->meta_version)))
    return;
  uint8_t meta[STM_SWIM_META_MAX];
  size_t len = meta_encode(c, count, version, meta);
  if (stm_swim_node_set_meta(c->swim, meta, len) == 0) {
    t->meta_sent = true;
    t->meta_ns = now;
    t->meta_count = count;
    t->meta_version = version;
  }
}

static void tick_once(struct cl *c, struct tick_state *t) {
  struct stm_swim_member *raw = NULL;
  size_t n = stm_swim_node_members(c->swim, &raw);
  uint64_t count = stm__cl_store_count(c), best = 0;
  char best_peer[STM_NODE_ID_MAX + 1] = "";
  pthread_mutex_lock(&c->mu);
  struct stm_cluster_member *snap =
      raw ? convert(c, raw, n, count, &best, best_peer) : NULL;
  if (snap) {
    for (size_t i = 0; i < n; i++)
      snap[i].lag_seconds = snap[i].self ? 0 : lag_of(c, snap[i].id);
    free(c->members);
    c->members = snap;
    c->member_count = n;
  }
  uint64_t version = c->map.version;
  stm__cl_scan_moves(c); /* a learned map may name this node the driver */
  c->best_peer_version = best;
  snprintf(c->best_peer, sizeof c->best_peer, "%s", best_peer);
  pthread_mutex_unlock(&c->mu);
  free(raw);
  int64_t now = stm_clock_mono_ns();
  publish_meta(c, t, count, version, now);
  dispatch_events(c);
  if (best > version && now - t->fetch_ns >= MAP_FETCH_EVERY_NS) {
    t->fetch_ns = now;
    fetch_map(c, best_peer);
  }
}

static void *tick_main(void *arg) {
  struct cl *c = arg;
  struct tick_state t = {0};
  pthread_mutex_lock(&c->mu);
  while (!c->stopping) {
    pthread_mutex_unlock(&c->mu);
    tick_once(c, &t);
    pthread_mutex_lock(&c->mu);
    struct timespec until =
        stm_clock_deadline(CLOCK_REALTIME, (int64_t)TICK_MS * 1000000);
    if (!c->stopping)
      pthread_cond_timedwait(&c->cv, &c->mu, &until);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* ---- start / leave / stop ----------------------------------------------- */

static void self_from(struct cl *c, const char *node_id, const char *rpc) {
  snprintf(c->self, sizeof c->self, "%s", node_id ? node_id : "");
  snprintf(c->self_rpc, sizeof c->self_rpc, "%s", rpc ? rpc : "");
}

static int load_map(struct cl *c, const char *data_dir, struct stm_error *err) {
  char dir[4100];
  snprintf(dir, sizeof dir, "%s/cluster", data_dir);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return stm_error_set(err, STM_EIO, "data-dir", "cannot create %s: %s", dir,
                         strerror(errno));
  snprintf(c->map_path, sizeof c->map_path, "%s/shard-map", dir);
  int rc = stm_shard_map_load(&c->map, c->map_path, err);
  if (rc == 0 && c->map.shards != c->shards)
    rc = stm_error_set(err, STM_EINVAL, "cluster.shards",
                       "cluster.shards is %u but %s was written for %u "
                       "shards; the shard count is fixed for the cluster's "
                       "life",
                       (unsigned)c->shards, c->map_path,
                       (unsigned)c->map.shards);
  return rc;
}

static int start_swim(struct cl *c, const struct stm_cluster_config *cfg,
                      struct stm_error *err) {
  struct stm_swim_node_options opt = {.on_change = on_member, .cb_arg = c};
  int rc = stm_swim_node_start(cfg, &opt, &c->swim, err);
  if (rc)
    return rc;
  c->threads_running = true;
  if (pthread_create(&c->tick, NULL, tick_main, c) != 0) {
    c->threads_running = false;
    return stm_error_set(err, STM_ENOMEM, NULL, "cannot start a thread");
  }
  if (pthread_create(&c->worker, NULL, stm__cl_worker, c) != 0) {
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->tick, NULL);
    c->threads_running = false;
    return stm_error_set(err, STM_ENOMEM, NULL, "cannot start a thread");
  }
  stm_log_info("cluster: node %s, SWIM on %s, gRPC peers dial %s, %u shards, "
               "factor %zu, write_quorum %s, %zu seeds%s",
               c->self, stm_swim_node_addr(c->swim), c->self_rpc,
               (unsigned)c->shards, c->factor, stm_write_quorum_name(c->quorum),
               cfg->seed_count,
               cfg->cluster_key ? "" : " (no cluster_key: unauthenticated)");
  return 0;
}

int stm_cluster_start(const struct stm_cluster_config *cfg, const char *node_id,
                      const char *rpc_addr, const char *data_dir,
                      struct stm_store *store, struct stm_error *err) {
  struct cl *c = calloc(1, sizeof *c);
  if (c == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  c->store = store;
  c->enabled = cfg->enabled;
  c->shards = cfg->enabled ? (uint32_t)cfg->shards : 1;
  c->factor = cfg->enabled ? (size_t)cfg->replication_factor : 1;
  c->quorum = cfg->write_quorum;
  c->active_move = -1;
  stm_shard_map_init(&c->map, c->shards);
  self_from(c, node_id,
            cfg->enabled && cfg->rpc_addr ? cfg->rpc_addr : rpc_addr);
  snprintf(c->self_bind, sizeof c->self_bind, "%s",
           cfg->bind_addr ? cfg->bind_addr : "");
  int rc = 0;
  if (cfg->enabled && (rc = load_map(c, data_dir, err)) == 0)
    rc = start_swim(c, cfg, err);
  if (rc) {
    stm__cl = c;
    stm_cluster_stop();
    return rc;
  }
  stm__cl = c;
  return 0;
}

void stm_cluster_leave(int leave_ms) {
  struct cl *c = stm__cl;
  if (c == NULL || c->swim == NULL)
    return;
  if (c->threads_running) {
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->tick, NULL);
    pthread_join(c->worker, NULL);
    c->threads_running = false;
  }
  stm_swim_node_stop(c->swim, leave_ms);
  c->swim = NULL;
  /* From now on this node is LEFT to itself too. */
  pthread_mutex_lock(&c->mu);
  if (c->member_count && c->members[0].self)
    c->members[0].state = STM_SWIM_LEFT;
  pthread_mutex_unlock(&c->mu);
}

void stm_cluster_stop(void) {
  struct cl *c = stm__cl;
  if (c == NULL)
    return;
  stm_cluster_leave(0);
  stm__cl = NULL;
  for (size_t i = 0; i < c->chan_count; i++)
    grpc_channel_destroy(c->chans[i].ch);
  for (size_t i = 0; i < c->grave_count; i++)
    grpc_channel_destroy(c->graveyard[i]);
  free(c->chans);
  free(c->graveyard);
  free(c->lags);
  free(c->members);
  stm_shard_map_destroy(&c->map);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* ---- queries ------------------------------------------------------------ */

bool stm_cluster_enabled(void) { return stm__cl && stm__cl->enabled; }

const char *stm_cluster_self_id(void) { return stm__cl ? stm__cl->self : ""; }

uint32_t stm_cluster_shard_count(void) { return stm__cl ? stm__cl->shards : 1; }

uint32_t stm_cluster_shard_of(const char *concept_path) {
  return stm_placement_shard_of(concept_path, stm_cluster_shard_count());
}

size_t stm_cluster_factor(void) { return stm__cl ? stm__cl->factor : 1; }

enum stm_write_quorum stm_cluster_write_quorum(void) {
  return stm__cl ? stm__cl->quorum : STM_WRITE_QUORUM_ONE;
}

size_t stm__cl_up_ids(struct cl *c, const char **ids, size_t max) {
  size_t k = 0;
  for (size_t i = 0; i < c->member_count && k < max; i++)
    if (c->members[i].state == STM_SWIM_UP)
      ids[k++] = c->members[i].id;
  return k;
}

static const struct stm_cluster_member *find_member(const struct cl *c,
                                                    const char *id) {
  for (size_t i = 0; i < c->member_count; i++)
    if (strcmp(c->members[i].id, id) == 0)
      return &c->members[i];
  return NULL;
}

size_t stm_cluster_replicas(uint32_t shard, struct stm_cluster_peer *out,
                            size_t max) {
  struct cl *c = stm__cl;
  if (c == NULL || max == 0)
    return 0;
  if (!c->enabled) {
    snprintf(out[0].id, sizeof out[0].id, "%s", c->self);
    snprintf(out[0].rpc_addr, sizeof out[0].rpc_addr, "%s", c->self_rpc);
    out[0].self = true;
    return 1;
  }
  pthread_mutex_lock(&c->mu);
  const char **up = calloc(c->member_count + 1, sizeof *up);
  const char *picked[STM_PLACEMENT_MAX_REPLICAS];
  size_t k = 0;
  if (up) {
    size_t n = stm__cl_up_ids(c, up, c->member_count);
    k = stm_placement_replicas(
        &c->map, shard, up, n, c->factor, picked,
        max < STM_PLACEMENT_MAX_REPLICAS ? max : STM_PLACEMENT_MAX_REPLICAS);
  }
  for (size_t i = 0; i < k; i++) {
    const struct stm_cluster_member *m = find_member(c, picked[i]);
    snprintf(out[i].id, sizeof out[i].id, "%s", picked[i]);
    snprintf(out[i].rpc_addr, sizeof out[i].rpc_addr, "%s",
             m ? m->rpc_addr : "");
    out[i].self = m && m->self;
  }
  pthread_mutex_unlock(&c->mu);
  free(up);
  return k;
}

size_t stm_cluster_members_snapshot(struct stm_cluster_member **out) {
  struct cl *c = stm__cl;
  *out = NULL;
  if (c == NULL)
    return 0;
  if (!c->enabled || c->member_count == 0) {
    struct stm_cluster_member *m = calloc(1, sizeof *m);
    if (m == NULL)
      return 0;
    snprintf(m->id, sizeof m->id, "%s", c->self);
    m->state = c->swim || !c->enabled ? STM_SWIM_UP : STM_SWIM_LEFT;
    m->assertion_count = stm__cl_store_count(c);
    m->last_seen_ns = stm_clock_now_ns();
    snprintf(m->rpc_addr, sizeof m->rpc_addr, "%s", c->self_rpc);
    snprintf(m->bind_addr, sizeof m->bind_addr, "%s", c->self_bind);
    m->self = true;
    *out = m;
    return 1;
  }
  pthread_mutex_lock(&c->mu);
  size_t n = c->member_count;
  struct stm_cluster_member *copy = malloc(n * sizeof *copy);
  if (copy)
    memcpy(copy, c->members, n * sizeof *copy);
  pthread_mutex_unlock(&c->mu);
  if (copy == NULL)
    return 0;
  /* The snapshot is up to a tick old; self's count is read now. */
  copy[0].assertion_count = stm__cl_store_count(c);
  copy[0].last_seen_ns = stm_clock_now_ns();
  *out = copy;
  return n;
}

bool stm_cluster_is_up(const char *id) {
  struct cl *c = stm__cl;
  if (c == NULL)
    return false;
  if (!c->enabled)
    return strcmp(id, c->self) == 0;
  pthread_mutex_lock(&c->mu);
  const struct stm_cluster_member *m = find_member(c, id);
  bool up = m && m->state == STM_SWIM_UP;
  pthread_mutex_unlock(&c->mu);
  return up;
}

grpc_channel *stm_cluster_peer_channel(const char *id) {
  struct cl *c = stm__cl;
  if (c == NULL || !c->enabled)
    return NULL;
  pthread_mutex_lock(&c->mu);
  grpc_channel *ch = NULL;
  const struct stm_cluster_member *m = find_member(c, id);
  if (m == NULL || m->rpc_addr[0] == '\0')
    goto out;
  for (size_t i = 0; i < c->chan_count; i++) {
    struct cl_chan *cc = &c->chans[i];
    if (strcmp(cc->id, id) != 0)
      continue;
    unsigned gen = stm_rpc_channel_credentials_generation();
    if (strcmp(cc->addr, m->rpc_addr) == 0 && cc->creds_gen == gen) {
      ch = cc->ch;
      goto out;
    }
    /* Moved (a restarted pod), or TLS certificates reloaded (SIGHUP): keep
     * the old channel until stop, since callers may still hold it. */
    grpc_channel **g = realloc(c->graveyard, (c->grave_count + 1) * sizeof *g);
    if (g == NULL)
      goto out;
    c->graveyard = g;
    g[c->grave_count++] = cc->ch;
    snprintf(cc->addr, sizeof cc->addr, "%s", m->rpc_addr);
    cc->creds_gen = gen;
    ch = cc->ch = stm_rpc_channel_new(cc->addr);
    goto out;
  }
  struct cl_chan *grown =
      realloc(c->chans, (c->chan_count + 1) * sizeof *grown);
  if (grown == NULL)
    goto out;
  c->chans = grown;
  struct cl_chan *cc = &grown[c->chan_count];
  snprintf(cc->id, sizeof cc->id, "%s", id);
  snprintf(cc->addr, sizeof cc->addr, "%s", m->rpc_addr);
  cc->creds_gen = stm_rpc_channel_credentials_generation();
  if ((cc->ch = stm_rpc_channel_new(cc->addr)) != NULL) {
    c->chan_count++;
    ch = cc->ch;
  }
out:
  pthread_mutex_unlock(&c->mu);
  return ch;
}

int stm_cluster_add_listener(stm_cluster_listener fn, void *arg) {
  struct cl *c = stm__cl;
  if (c == NULL)
    return 0;
  pthread_mutex_lock(&c->mu);
  int rc = STM_ENOMEM;
  if (c->listener_count < CL_MAX_LISTENERS) {
    c->listeners[c->listener_count].fn = fn;
    c->listeners[c->listener_count++].arg = arg;
    rc = 0;
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

void stm_cluster_set_sync_fn(stm_cluster_sync_fn fn, void *arg) {
  struct cl *c = stm__cl;
  if (c == NULL)
    return;
  pthread_mutex_lock(&c->mu);
  c->sync_fn = fn;
  c->sync_arg = arg;
  pthread_cond_broadcast(&c->cv); /* waiting moves can go on */
  pthread_mutex_unlock(&c->mu);
}

void stm_cluster_set_shard_count_fn(stm_cluster_shard_count_fn fn, void *arg) {
  struct cl *c = stm__cl;
  if (c == NULL)
    return;
  pthread_mutex_lock(&c->mu);
  c->count_fn = fn;
  c->count_arg = arg;
  pthread_mutex_unlock(&c->mu);
}

void stm_cluster_set_peer_lag(const char *peer, double seconds) {
  struct cl *c = stm__cl;
  if (c == NULL)
    return;
  pthread_mutex_lock(&c->mu);
  size_t i = 0;
  while (i < c->lag_count && strcmp(c->lags[i].id, peer) != 0)
    i++;
  if (i == c->lag_count) {
    struct cl_lag *g = realloc(c->lags, (i + 1) * sizeof *g);
    if (g) {
      c->lags = g;
      snprintf(g[i].id, sizeof g[i].id, "%s", peer);
      c->lag_count++;
    }
  }
  if (i < c->lag_count)
    c->lags[i].seconds = seconds;
  pthread_mutex_unlock(&c->mu);
}
