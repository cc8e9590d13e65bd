/* replication.c - anti-entropy (replication.h): the Merkle walk toward one
 * peer for one shard, pushes and pulls, the background thread and the jobs
 * Cluster.Sync queues. */
#include "repl_internal.h"

#include "forward.h"

#include "common/clock.h"
#include "common/hex.h"
#include "common/log.h"
#include "rpc/codec.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLU "/stemedb.v1.Cluster/"
#define SUMMARY_TIMEOUT_MS 10000
#define PUSH_TIMEOUT_MS 60000
#define MAX_DEPTH 8
#define MAX_JOBS 64

struct job {
  char target[STM_NODE_ID_MAX + 1];
  bool force;
};

static struct {
  struct stm_service *svc;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  bool running, stopping;
  int64_t interval_ms;
  struct job jobs[MAX_JOBS];
  size_t njobs;
  struct stm_repl_progress totals;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

void stm__repl_totals(struct stm_repl_progress *out) {
  pthread_mutex_lock(&R.mu);
  *out = R.totals;
  pthread_mutex_unlock(&R.mu);
}

static void add_totals(uint64_t sent, uint64_t received) {
  pthread_mutex_lock(&R.mu);
  R.totals.sent += sent;
  R.totals.received += received;
  pthread_mutex_unlock(&R.mu);
}

/* ---- replication lag ---- */

struct lag {
  char id[STM_NODE_ID_MAX + 1];
  int64_t since_ns;       /* wall clock of the oldest missed write; 0: none */
  int64_t sync_warned_ns; /* monotonic time of the last anti-entropy warning */
};
static struct lag lags[STM__REPL_MAX_PEERS];
static size_t nlags;

static struct lag *lag_of(const char *peer) { /* R.mu held */
  for (size_t i = 0; i < nlags; i++)
    if (strcmp(lags[i].id, peer) == 0)
      return &lags[i];
  if (nlags == STM__REPL_MAX_PEERS)
    return NULL;
  struct lag *l = &lags[nlags++];
  snprintf(l->id, sizeof l->id, "%s", peer);
  l->since_ns = 0;
  l->sync_warned_ns = 0;
  return l;
}

/* A peer that stays unreachable (down, or refusing our certificate) fails
 * every anti-entropy round: warn at most once a minute per peer. */
static bool sync_warn_due(const char *peer) {
  int64_t now = stm_clock_mono_ns();
  pthread_mutex_lock(&R.mu);
  struct lag *l = lag_of(peer);
  bool due = l == NULL || l->sync_warned_ns == 0 ||
             now - l->sync_warned_ns >= 60 * 1000000000LL;
  if (l && due)
    l->sync_warned_ns = now;
  pthread_mutex_unlock(&R.mu);
  return due;
}

void stm__repl_lag_note(const char *peer, bool ok, const char *why) {
  pthread_mutex_lock(&R.mu);
  struct lag *l = lag_of(peer);
  bool started = l && !ok && l->since_ns == 0;
  if (started)
    l->since_ns = stm_clock_now_ns();
  pthread_mutex_unlock(&R.mu);
  /* Once per outage, not per write. A TLS mismatch between nodes (another
   * CA, or one side without TLS) shows as a failed handshake or a closed
   * socket: point at the fix. */
  if (started)
    stm_log_warn(
        "replication to %s failing, it will be caught up once "
        "reachable: %s%s",
        peer, why ? why : "",
        why && (strstr(why, "andshake") || strstr(why, "Socket closed"))
            ? " (TLS between nodes: every node needs --tls-cert/"
              "--tls-key signed by a CA its peers trust; docs/tls.md)"
            : "");
}

/* Publish every peer's lag; return one lagging peer that is UP (to be
 * caught up now) into `out`, or false. */
static bool lag_publish(char out[STM_NODE_ID_MAX + 1]) {
  int64_t now = stm_clock_now_ns();
  bool found = false;
  pthread_mutex_lock(&R.mu);
  for (size_t i = 0; i < nlags; i++) {
    double s = lags[i].since_ns ? (double)(now - lags[i].since_ns) / 1e9 : 0;
    stm_cluster_set_peer_lag(lags[i].id, s);
    if (!found && lags[i].since_ns && stm_cluster_is_up(lags[i].id)) {
      memcpy(out, lags[i].id, STM_NODE_ID_MAX + 1);
      found = true;
    }
  }
  pthread_mutex_unlock(&R.mu);
  return found;
}

static void lag_clear(const char *peer, int64_t since_before) {
  pthread_mutex_lock(&R.mu);
  struct lag *l = lag_of(peer);
  if (l && l->since_ns && l->since_ns <= since_before)
    l->since_ns = 0;
  pthread_mutex_unlock(&R.mu);
}

static grpc_channel *peer(const char *target, struct stm_error *err) {
  grpc_channel *ch = stm_cluster_peer_channel(target);
  if (ch == NULL)
    stm_error_set(err, STM_EIO, "target", "no address known for node %s",
                  target);
  return ch;
}

static int rpc_fail(struct stm_error *err, const char *what, const char *target,
                    const struct stm_rpc_status *st) {
  return stm_error_set(err, STM_EIO, NULL, "%s to %s: %s %s", what, target,
                       stm_rpc_code_name(st->code), st->message);
}

int stm_repl_push(const char *target, const struct stm_buf *records,
                  const size_t *offsets, size_t n, int timeout_ms,
                  uint64_t *applied, struct stm_error *err) {
  grpc_channel *ch = peer(target, err);
  if (ch == NULL)
    return STM_EIO;
  struct stm__repl_set view = {
      .data = *records, .off = (size_t *)offsets, .n = n};
  struct stm__repl_msgs m;
  if (stm__repl_msgs_range(&m, &view, 0, n) != 0)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  Stemedb__V1__ReplicateRequest req = STEMEDB__V1__REPLICATE_REQUEST__INIT;
  req.from_node = (char *)stm_cluster_self_id();
  req.n_records = n;
  req.records = m.ptrs;
  ProtobufCMessage *resp = NULL;
  struct stm_rpc_status st;
  grpc_status_code code = stm_rpc_call(
      ch, CLU "Replicate", &req.base,
      &stemedb__v1__replicate_response__descriptor, timeout_ms, &resp, &st);
  stm__repl_msgs_free(&m);
  if (code != GRPC_STATUS_OK)
    return rpc_fail(err, "Replicate", target, &st);
  if (applied)
    *applied = ((Stemedb__V1__ReplicateResponse *)resp)->applied;
  protobuf_c_message_free_unpacked(resp, NULL);
  return 0;
}

/* ---- one shard toward one peer -------------------------------------------- */

struct syncer {
  struct stm_store *store;
  uint32_t shard;
  const char *target;
  grpc_channel *ch;
  bool push_only;
  struct stm_repl_progress *p;
  struct stm_error *err;
  struct stm__repl_set out; /* buckets to push, sent by flush_out */
};

static void path_prefix(const uint32_t *path, unsigned depth, uint8_t *prefix) {
  memset(prefix, 0, STM_HASH_LEN);
  for (unsigned i = 0; i < depth; i++)
    prefix[i / 2] |= (uint8_t)(i % 2 ? path[i] : path[i] << 4);
}

static int remote_children(struct syncer *y, uint32_t *path, unsigned depth,
                           struct stm_merkle_node out[STM_MERKLE_FANOUT]) {
  Stemedb__V1__MerkleSummaryRequest req =
      STEMEDB__V1__MERKLE_SUMMARY_REQUEST__INIT;
  req.shard = y->shard;
  req.depth = depth;
  req.n_buckets = depth;
  req.buckets = path;
  ProtobufCMessage *resp = NULL;
  struct stm_rpc_status st;
  if (stm_rpc_call(y->ch, CLU "MerkleSummary", &req.base,
                   &stemedb__v1__merkle_summary_response__descriptor,
                   SUMMARY_TIMEOUT_MS, &resp, &st) != GRPC_STATUS_OK)
    return rpc_fail(y->err, "MerkleSummary", y->target, &st);
  const Stemedb__V1__MerkleSummaryResponse *r =
      (const Stemedb__V1__MerkleSummaryResponse *)resp;
  memset(out, 0, STM_MERKLE_FANOUT * sizeof *out);
  int rc = 0;
  for (size_t i = 0; i < r->n_buckets; i++) {
    const Stemedb__V1__MerkleBucket *b = r->buckets[i];
    if (b->index >= STM_MERKLE_FANOUT ||
        stm_hex_decode(b->digest, strlen(b->digest), out[b->index].digest,
                       STM_HASH_LEN) != 0) {
      rc =
          stm_error_set(y->err, STM_EIO, NULL,
                        "MerkleSummary from %s: a malformed bucket", y->target);
      break;
    }
    out[b->index].count = b->count;
  }
  protobuf_c_message_free_unpacked(resp, NULL);
  return rc;
}

/* Batches of one bucket in flight at once: the target's writer then
 * commits several in one group while the next ones travel. */
#define PUSH_STREAMS 2

struct push_job {
  struct syncer *y;
  const struct stm__repl_set *set;
  pthread_mutex_t mu;
  size_t next; /* the next batch's first entry */
  int rc;
  struct stm_error err;
};

static void *push_worker(void *arg) {
  struct push_job *j = arg;
  for (;;) {
    pthread_mutex_lock(&j->mu);
    size_t from = j->next;
    bool stop = j->rc != 0 || from >= j->set->n;
    if (!stop)
      j->next += STM_REPL_BATCH;
    pthread_mutex_unlock(&j->mu);
    if (stop)
      return NULL;
    size_t n =
        j->set->n - from < STM_REPL_BATCH ? j->set->n - from : STM_REPL_BATCH;
    uint64_t applied = 0;
    struct stm_error err;
    stm_error_clear(&err);
    int rc = stm_repl_push(j->y->target, &j->set->data, j->set->off + from, n,
                           PUSH_TIMEOUT_MS, &applied, &err);
    pthread_mutex_lock(&j->mu);
    if (rc && j->rc == 0) {
      j->rc = rc;
      j->err = err;
    } else if (rc == 0) {
      j->y->p->sent += n;
      j->y->p->applied += applied;
    }
    pthread_mutex_unlock(&j->mu);
    if (rc == 0)
      add_totals(n, 0);
  }
}

/* Push what collect_bucket gathered, up to PUSH_STREAMS batches in
 * flight. A vote whose claim travels in a concurrent batch may be refused
 * (STM_ENOTFOUND there): the second walk of stm_repl_sync_shard sends it
 * again. */
static int flush_out(struct syncer *y) {
  struct stm__repl_set *set = &y->out;
  if (set->n == 0)
    return 0;
  struct push_job j = {.y = y, .set = set};
  pthread_mutex_init(&j.mu, NULL);
  stm_error_clear(&j.err);
  size_t batches = (set->n + STM_REPL_BATCH - 1) / STM_REPL_BATCH;
  pthread_t t[PUSH_STREAMS];
  size_t started = 0;
  while (started + 1 < PUSH_STREAMS && started + 1 < batches &&
         pthread_create(&t[started], NULL, push_worker, &j) == 0)
    started++;
  push_worker(&j);
  for (size_t i = 0; i < started; i++)
    pthread_join(t[i], NULL);
  int rc = j.rc;
  if (rc && y->err)
    *y->err = j.err;
  pthread_mutex_destroy(&j.mu);
  stm__repl_set_free(set);
  stm__repl_set_init(set);
  return rc;
}

/* Gather the records under Merkle node (path, depth) to push; small
 * buckets of many shards travel together (one Replicate, one fdatasync
 * on the target per batch instead of one per bucket). */
static int push_bucket(struct syncer *y, const uint32_t *path, unsigned depth) {
  uint8_t prefix[STM_HASH_LEN];
  path_prefix(path, depth, prefix);
  int rc =
      stm__repl_set_bucket(&y->out, y->store, y->shard, prefix, depth, y->err);
  if (rc == 0 && y->out.n >= STM_REPL_BATCH * PUSH_STREAMS)
    rc = flush_out(y);
  return rc;
}

struct apply_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t pending;
  int rc;
};

static void apply_settle(struct apply_wait *w, int rc) {
  pthread_mutex_lock(&w->mu);
  if (rc && rc != STM_ENOTFOUND && w->rc == 0)
    w->rc = rc;
  if (--w->pending == 0)
    pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}
static void on_pulled_claims(void *ctx, int rc,
                             const struct stm_write_result *r, size_t n,
                             const struct stm_error *err) {
  (void)r, (void)n, (void)err;
  apply_settle(ctx, rc);
}
static void on_pulled_record(void *ctx, int rc, const struct stm_record *rec,
                             bool created, const struct stm_error *err) {
  (void)rec, (void)created, (void)err;
  apply_settle(ctx, rc);
}

/* Apply received records here and wait until they are durable. */
static int apply_here(struct stm_store *store, struct stm_repl_decoded *d,
                      const char *from, struct stm_error *err) {
  struct apply_wait w = {.pending = 1};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  char caller[STM_NODE_ID_MAX + 16];
  snprintf(caller, sizeof caller, "node:%s", from);
  if (d->nclaims) {
    w.pending++;
    if (stm_store_apply_claims(store, d->claims, d->nclaims, "replicate",
                               caller, on_pulled_claims, &w) != 0)
      apply_settle(&w, STM_EREADONLY);
    d->claims = NULL;
    d->nclaims = 0;
  }
  for (size_t i = 0; i < d->nrecords; i++) {
    w.pending++;
    if (stm_store_apply_record(store, d->records[i], "replicate", caller,
                               on_pulled_record, &w) != 0)
      apply_settle(&w, STM_EREADONLY);
    d->records[i] = NULL;
  }
  apply_settle(&w, 0);
  pthread_mutex_lock(&w.mu);
  while (w.pending > 0)
    pthread_cond_wait(&w.cv, &w.mu);
  pthread_mutex_unlock(&w.mu);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cv);
  return w.rc ? stm_error_set(err, w.rc, NULL, "applying records from %s: %s",
                              from, stm_strerror(w.rc))
              : 0;
}

static int pull_bucket(struct syncer *y, uint32_t *path, unsigned depth) {
  Stemedb__V1__FetchMissingRequest req =
      STEMEDB__V1__FETCH_MISSING_REQUEST__INIT;
  req.shard = y->shard;
  req.n_buckets = depth;
  req.buckets = path;
  ProtobufCMessage *resp = NULL;
  struct stm_rpc_status st;
  if (stm_rpc_call(y->ch, CLU "FetchMissing", &req.base,
                   &stemedb__v1__fetch_missing_response__descriptor,
                   PUSH_TIMEOUT_MS, &resp, &st) != GRPC_STATUS_OK)
    return rpc_fail(y->err, "FetchMissing", y->target, &st);
  const Stemedb__V1__FetchMissingResponse *r =
      (const Stemedb__V1__FetchMissingResponse *)resp;
  struct stm_repl_decoded d;
  int rc = stm__repl_decode(r->records, r->n_records, &d, y->err);
  size_t n = r->n_records;
  protobuf_c_message_free_unpacked(resp, NULL);
  rc = rc ? rc : apply_here(y->store, &d, y->target, y->err);
  stm__repl_decoded_free(&d);
  if (rc == 0) {
    y->p->received += n;
    add_totals(0, n);
  }
  return rc;
}

static bool same(const struct stm_merkle_node *a,
                 const struct stm_merkle_node *b) {
  return a->count == b->count &&
         memcmp(a->digest, b->digest, STM_HASH_LEN) == 0;
}

/* Compare the children of node `path` and handle each that differs. */
static int sync_level(struct syncer *y, uint32_t *path, unsigned depth) {
  struct stm_merkle_node mine[STM_MERKLE_FANOUT], theirs[STM_MERKLE_FANOUT];
  uint8_t prefix[STM_HASH_LEN];
  path_prefix(path, depth, prefix);
  int rc = stm_store_merkle_children(y->store, y->shard, prefix, depth, mine,
                                     y->err);
  rc = rc ? rc : remote_children(y, path, depth, theirs);
  for (unsigned i = 0; rc == 0 && i < STM_MERKLE_FANOUT; i++) {
    if (same(&mine[i], &theirs[i]))
      continue;
    path[depth] = i;
    uint64_t most =
        mine[i].count > theirs[i].count ? mine[i].count : theirs[i].count;
    if (theirs[i].count == 0) {
      rc = push_bucket(y, path, depth + 1);
    } else if (mine[i].count == 0 && y->push_only) {
      continue;
    } else if (most <= STM_REPL_LEAF || depth + 1 >= MAX_DEPTH) {
      rc = mine[i].count ? push_bucket(y, path, depth + 1) : 0;
      if (rc == 0 && !y->push_only)
        rc = pull_bucket(y, path, depth + 1);
    } else {
      rc = sync_level(y, path, depth + 1);
    }
  }
  return rc;
}

int stm_repl_sync_shard(uint32_t shard, const char *target, bool push_only,
                        struct stm_repl_progress *progress,
                        struct stm_error *err) {
  struct stm_repl_progress local = {0};
  struct syncer y = {.store = R.svc ? R.svc->store : NULL,
                     .shard = shard,
                     .target = target,
                     .push_only = push_only,
                     .p = progress ? progress : &local,
                     .err = err};
  if (y.store == NULL)
    return stm_error_set(err, STM_EINVAL, NULL, "replication is not running");
  if ((y.ch = peer(target, err)) == NULL)
    return STM_EIO;
  uint32_t path[MAX_DEPTH + 1] = {0};
  uint64_t applied_before = y.p->applied, sent_before = y.p->sent;
  stm__repl_set_init(&y.out);
  int rc = sync_level(&y, path, 0);
  rc = rc ? rc : flush_out(&y);
  /* Votes pushed before their claim (another batch) were skipped by the
   * target: one more walk sends them now that the claims are there. */
  if (rc == 0 && y.p->sent - sent_before > y.p->applied - applied_before) {
    rc = sync_level(&y, path, 0);
    rc = rc ? rc : flush_out(&y);
  }
  stm__repl_set_free(&y.out);
  return rc;
}

/* ---- the thread ------------------------------------------------------------ */

static bool is_replica(uint32_t shard, const char *id, bool *self) {
  struct stm_cluster_peer reps[STM_PLACEMENT_MAX_REPLICAS];
  size_t n = stm_cluster_replicas(shard, reps, STM_PLACEMENT_MAX_REPLICAS);
  bool found = false;
  *self = false;
  for (size_t i = 0; i < n; i++) {
    found = found || strcmp(reps[i].id, id) == 0;
    *self = *self || reps[i].self;
  }
  return found;
}

static uint64_t local_count(uint32_t shard) {
  struct stm_merkle_node kids[STM_MERKLE_FANOUT];
  if (stm_store_merkle_children(R.svc->store, shard, NULL, 0, kids, NULL))
    return 0;
  uint64_t n = 0;
  for (int i = 0; i < STM_MERKLE_FANOUT; i++)
    n += kids[i].count;
  return n;
}

/* Every shard target replicates: sync where we replicate too, push where
 * we do not (force only), and the sources. */
static bool sync_target(const char *target, bool force) {
  struct stm_repl_progress p = {0};
  struct stm_error err;
  int failures = 0;
  for (uint32_t s = 0; s < stm_cluster_shard_count(); s++) {
    bool self = false;
    if (!is_replica(s, target, &self) || (!self && !force))
      continue;
    if (!self && local_count(s) == 0)
      continue;
    stm_error_clear(&err);
    if (stm_repl_sync_shard(s, target, !self, &p, &err) != 0 &&
        failures++ == 0 && sync_warn_due(target))
      stm_log_warn("anti-entropy: shard %u toward %s: %s (repeats are "
                   "logged once a minute)",
                   s, target, err.message);
  }
  stm_error_clear(&err);
  if (stm_repl_sync_shard(STM_STORE_SHARD_ALL, target, false, &p, &err) != 0 &&
      failures++ == 0 && sync_warn_due(target))
    stm_log_warn("anti-entropy: sources toward %s: %s (repeats are logged "
                 "once a minute)",
                 target, err.message);
  if (p.sent || p.received)
    stm_log_info("anti-entropy toward %s: %llu records sent (%llu new there), "
                 "%llu received",
                 target, (unsigned long long)p.sent,
                 (unsigned long long)p.applied, (unsigned long long)p.received);
  return failures == 0;
}

/* Anti-entropy toward `target`; when it all succeeds, every write it
 * missed before the pass began is there: its lag is 0 again. */
static void catch_up(const char *target, bool force) {
  int64_t t0 = stm_clock_now_ns();
  if (sync_target(target, force))
    lag_clear(target, t0);
}

static size_t up_peers(char ids[][STM_NODE_ID_MAX + 1], size_t max) {
  struct stm_cluster_member *m = NULL;
  size_t n = stm_cluster_members_snapshot(&m), k = 0;
  for (size_t i = 0; i < n && k < max; i++)
    if (!m[i].self && m[i].state == STM_SWIM_UP)
      snprintf(ids[k++], STM_NODE_ID_MAX + 1, "%s", m[i].id);
  free(m);
  return k;
}

static void *repl_main(void *arg) {
  (void)arg;
  int64_t next = stm_clock_mono_ns() + R.interval_ms * 1000000;
  pthread_mutex_lock(&R.mu);
  while (!R.stopping) {
    if (R.njobs == 0) {
      char lagging[STM_NODE_ID_MAX + 1];
      pthread_mutex_unlock(&R.mu);
      bool late = lag_publish(lagging);
      if (late)
        catch_up(lagging, true); /* what we hold of its shards */
      pthread_mutex_lock(&R.mu);
      int64_t now = stm_clock_mono_ns();
      if (R.interval_ms <= 0 || now < next) {
        int64_t wait = R.interval_ms > 0 && next - now < 1000000000
                           ? next - now
                           : 1000000000; /* lag: every second */
        struct timespec ts = stm_clock_deadline(CLOCK_REALTIME, wait);
        pthread_cond_timedwait(&R.cv, &R.mu, &ts);
        continue;
      }
      next = now + R.interval_ms * 1000000;
      pthread_mutex_unlock(&R.mu);
      char ids[STM__REPL_MAX_PEERS][STM_NODE_ID_MAX + 1];
      size_t n = up_peers(ids, STM__REPL_MAX_PEERS);
      for (size_t i = 0; i < n; i++)
        catch_up(ids[i], false);
      pthread_mutex_lock(&R.mu);
      continue;
    }
    struct job j = R.jobs[0];
    memmove(R.jobs, R.jobs + 1, --R.njobs * sizeof *R.jobs);
    pthread_mutex_unlock(&R.mu);
    catch_up(j.target, j.force);
    pthread_mutex_lock(&R.mu);
  }
  pthread_mutex_unlock(&R.mu);
  return NULL;
}

int stm__repl_queue_sync(const char *const *targets, size_t n, bool force,
                         char started[][STM_NODE_ID_MAX + 1], size_t *nstarted,
                         struct stm_error *err) {
  *nstarted = 0;
  if (!R.running)
    return stm_error_set(err, STM_EINVAL, NULL,
                         "this node is not clustered: nothing to sync");
  char ids[STM__REPL_MAX_PEERS][STM_NODE_ID_MAX + 1];
  size_t k = 0;
  if (n == 0) {
    k = up_peers(ids, STM__REPL_MAX_PEERS);
  } else {
    for (size_t i = 0; i < n && k < STM__REPL_MAX_PEERS; i++) {
      if (strcmp(targets[i], stm_cluster_self_id()) == 0)
        continue;
      if (!stm_cluster_is_up(targets[i]))
        return stm_error_set(err, STM_EINVAL, "target_nodes",
                             "node %s is not an UP member", targets[i]);
      snprintf(ids[k++], STM_NODE_ID_MAX + 1, "%s", targets[i]);
    }
  }
  pthread_mutex_lock(&R.mu);
  for (size_t i = 0; i < k && R.njobs < MAX_JOBS; i++) {
    memcpy(R.jobs[R.njobs].target, ids[i], STM_NODE_ID_MAX + 1);
    R.jobs[R.njobs++].force = force;
    memcpy(started[(*nstarted)++], ids[i], STM_NODE_ID_MAX + 1);
  }
  pthread_cond_signal(&R.cv);
  pthread_mutex_unlock(&R.mu);
  return 0;
}

/* ---- hooks for the cluster runtime ------------------------------------------ */

static int copy_shard(void *arg, uint32_t shard, const char *target,
                      struct stm_error *err) {
  (void)arg;
  return stm_repl_sync_shard(shard, target, true, NULL, err);
}

static uint64_t shard_count(void *arg, uint32_t shard) {
  (void)arg;
  return local_count(shard);
}

int stm_repl_start(struct stm_service *svc, struct stm_error *err) {
  R.svc = svc;
  if (!stm_cluster_enabled())
    return 0;
  const char *env = getenv("STEMEDB_ANTI_ENTROPY_INTERVAL_MS");
  R.interval_ms = env && env[0] ? strtoll(env, NULL, 10) : 30000;
  stm_cluster_set_sync_fn(copy_shard, NULL);
  stm_cluster_set_shard_count_fn(shard_count, NULL);
  R.stopping = false;
  if (pthread_create(&R.thread, NULL, repl_main, NULL) != 0)
    return stm_error_set(err, STM_ENOMEM, NULL,
                         "cannot start the anti-entropy thread");
  R.running = true;
  if (stm__repl_write_start(svc) != 0)
    return stm_error_set(err, STM_ENOMEM, NULL,
                         "cannot start the replication threads");
  stm_log_info("replication: anti-entropy every %lld ms",
               (long long)R.interval_ms);
  return 0;
}

void stm_repl_stop(void) {
  stm_forward_stop();
  if (!R.running)
    return;
  pthread_mutex_lock(&R.mu);
  R.stopping = true;
  pthread_cond_broadcast(&R.cv);
  pthread_mutex_unlock(&R.mu);
  pthread_join(R.thread, NULL);
  R.running = false;
  stm__repl_write_stop();
  stm_cluster_set_sync_fn(NULL, NULL);
  stm_cluster_set_shard_count_fn(NULL, NULL);
}
