/* The data RPCs of stemedb.v1.Cluster (replication.h): Replicate applies
 * records another node committed, MerkleSummary answers one level of a
 * shard's Merkle tree, FetchMissing returns records by hash or by bucket,
 * Sync queues anti-entropy. */
#include "repl_internal.h"
#include "replication.h"
#include "service_internal.h"

#include "cluster_node.h"
#include "common/hex.h"
#include "stemedb/v1/cluster.pb-c.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Replicate ------------------------------------------------------------ */

struct rep_call {
  struct stm_grpc_call *call;
  pthread_mutex_t mu;
  size_t pending;
  uint32_t applied, present, skipped;
  int rc;
  char msg[256];
};

static void rep_done(struct rep_call *r) {
  if (r->rc)
    stm_grpc_call_fail(r->call, stm_service_status(r->rc), "replicate: %s",
                       r->msg);
  else {
    Stemedb__V1__ReplicateResponse resp = STEMEDB__V1__REPLICATE_RESPONSE__INIT;
    resp.applied = r->applied;
    resp.already_present = r->present;
    stm_grpc_call_reply(r->call, &resp.base);
  }
  pthread_mutex_destroy(&r->mu);
  free(r);
}

/* One completion (or a failed submission); the last one answers. */
static void rep_settle(struct rep_call *r, int rc, uint32_t applied,
                       uint32_t present, const struct stm_error *err) {
  pthread_mutex_lock(&r->mu);
  if (rc == STM_ENOTFOUND) { /* a vote before its claim: anti-entropy */
    r->skipped++;
  } else if (rc && r->rc == 0) {
    r->rc = rc;
    snprintf(r->msg, sizeof r->msg, "%s",
             err && err->message[0] ? err->message : stm_strerror(rc));
  }
  r->applied += applied;
  r->present += present;
  bool last = --r->pending == 0;
  pthread_mutex_unlock(&r->mu);
  if (last)
    rep_done(r);
}

static void on_claims_applied(void *ctx, int rc,
                              const struct stm_write_result *res, size_t n,
                              const struct stm_error *err) {
  uint32_t created = 0;
  for (size_t i = 0; rc == 0 && i < n; i++)
    created += res[i].created;
  rep_settle(ctx, rc, created, rc == 0 ? (uint32_t)n - created : 0, err);
}

static void on_record_applied(void *ctx, int rc, const struct stm_record *rec,
                              bool created, const struct stm_error *err) {
  (void)rec;
  rep_settle(ctx, rc, rc == 0 && created, rc == 0 && !created, err);
}

void stm__handle_replicate(struct stm_grpc_call *call,
                           const ProtobufCMessage *msg, void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__ReplicateRequest *req =
      (const Stemedb__V1__ReplicateRequest *)msg;
  struct stm_repl_decoded d;
  struct stm_error err;
  stm_error_clear(&err);
  int rc = stm__repl_decode(req->records, req->n_records, &d, &err);
  if (rc) {
    stm__fail_rc(call, rc, &err);
    return;
  }
  struct rep_call *r = calloc(1, sizeof *r);
  if (r == NULL) {
    stm__repl_decoded_free(&d);
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  r->call = call;
  pthread_mutex_init(&r->mu, NULL);
  r->pending = 1 + (d.nclaims > 0) + d.nrecords; /* 1: this function */
  char caller[STM_NODE_ID_MAX + 16];
  snprintf(caller, sizeof caller, "node:%s", req->from_node);
  if (d.nclaims > 0) {
    rc = stm_store_apply_claims(svc->store, d.claims, d.nclaims, "replicate",
                                caller, on_claims_applied, r);
    d.claims = NULL; /* taken */
    if (rc)
      rep_settle(r, rc, 0, 0, NULL);
  }
  /* r lives until the last of r->pending settles, and this function holds
   * one of them until its final rep_settle. The analyzer loses the count
   * at pthread_mutex_lock (r escapes) and assumes an earlier settle freed
   * r: the two NOLINTs below. */
  for (size_t i = 0; i < d.nrecords; i++) {
    rc = stm_store_apply_record( // NOLINT(clang-analyzer-unix.Malloc)
        svc->store, d.records[i], "replicate", caller, on_record_applied, r);
    d.records[i] = NULL;
    if (rc)
      rep_settle(r, rc, 0, 0, NULL);
  }
  stm__repl_decoded_free(&d);
  rep_settle(r, 0, 0, 0, NULL); // NOLINT(clang-analyzer-unix.Malloc)
}

/* ---- MerkleSummary ---------------------------------------------------- */

/* buckets[] of a request: the nibbles of the node's prefix, root first. */
static int parse_prefix(const uint32_t *b, size_t n, uint8_t *prefix,
                        struct stm_error *err) {
  if (n >= 2 * STM_HASH_LEN)
    return stm_error_set(err, STM_EINVAL, "buckets", "at most %d levels",
                         2 * STM_HASH_LEN - 1);
  memset(prefix, 0, STM_HASH_LEN);
  for (size_t i = 0; i < n; i++) {
    if (b[i] >= STM_MERKLE_FANOUT)
      return stm_error_set(err, STM_EINVAL, "buckets",
                           "buckets[%zu] is %u; each is a nibble 0..15", i,
                           b[i]);
    prefix[i / 2] |= (uint8_t)(i % 2 ? b[i] : b[i] << 4);
  }
  return 0;
}

static int check_shard(uint32_t shard, struct stm_error *err) {
  if (shard == STM_STORE_SHARD_ALL || shard < stm_cluster_shard_count())
    return 0;
  return stm_error_set(err, STM_EINVAL, "shard",
                       "shard %u does not exist (%u shards; %u: sources)",
                       shard, stm_cluster_shard_count(), STM_STORE_SHARD_ALL);
}

void stm__handle_merkle_summary(struct stm_grpc_call *call,
                                const ProtobufCMessage *msg, void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__MerkleSummaryRequest *req =
      (const Stemedb__V1__MerkleSummaryRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  uint8_t prefix[STM_HASH_LEN];
  struct stm_merkle_node kids[STM_MERKLE_FANOUT];
  int rc = check_shard(req->shard, &err);
  rc = rc ? rc : parse_prefix(req->buckets, req->n_buckets, prefix, &err);
  rc = rc ? rc
          : stm_store_merkle_children(svc->store, req->shard, prefix,
                                      (unsigned)req->n_buckets, kids, &err);
  if (rc) {
    stm__fail_rc(call, rc, &err);
    return;
  }
  Stemedb__V1__MerkleSummaryResponse resp =
      STEMEDB__V1__MERKLE_SUMMARY_RESPONSE__INIT;
  Stemedb__V1__MerkleBucket b[STM_MERKLE_FANOUT], *bp[STM_MERKLE_FANOUT];
  char hex[STM_MERKLE_FANOUT][2 * STM_HASH_LEN + 1], root[2 * STM_HASH_LEN + 1];
  uint8_t all[STM_HASH_LEN] = {0};
  for (int i = 0; i < STM_MERKLE_FANOUT; i++) {
    stemedb__v1__merkle_bucket__init(&b[i]);
    b[i].index = (uint32_t)i;
    stm_hex_encode(kids[i].digest, STM_HASH_LEN, hex[i]);
    b[i].digest = hex[i];
    b[i].count = kids[i].count;
    bp[i] = &b[i];
    for (int k = 0; k < STM_HASH_LEN; k++)
      all[k] ^= kids[i].digest[k];
  }
  stm_hex_encode(all, STM_HASH_LEN, root);
  resp.shard = req->shard;
  resp.root = root;
  resp.n_buckets = STM_MERKLE_FANOUT;
  resp.buckets = bp;
  stm_grpc_call_reply(call, &resp.base);
}

/* ---- FetchMissing ------------------------------------------------------------ */

void stm__handle_fetch_missing(struct stm_grpc_call *call,
                               const ProtobufCMessage *msg, void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__FetchMissingRequest *req =
      (const Stemedb__V1__FetchMissingRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  struct stm__repl_set set;
  stm__repl_set_init(&set);
  int rc = 0;
  if (req->n_hashes > 0) {
    for (size_t i = 0; rc == 0 && i < req->n_hashes; i++) {
      uint8_t h[STM_HASH_LEN];
      char field[32];
      snprintf(field, sizeof field, "hashes[%zu]", i);
      rc = stm__parse_hash(field, req->hashes[i], h, &err);
      if (rc == 0) {
        rc = stm__repl_set_add(&set, svc->store, h, &err);
        if (rc == STM_ENOTFOUND)
          rc = 0; /* not here: the caller asks elsewhere */
      }
    }
  } else {
    uint8_t prefix[STM_HASH_LEN];
    rc = check_shard(req->shard, &err);
    rc = rc ? rc : parse_prefix(req->buckets, req->n_buckets, prefix, &err);
    rc = rc ? rc
            : stm__repl_set_bucket(&set, svc->store, req->shard, prefix,
                                   (unsigned)req->n_buckets, &err);
  }
  if (rc) {
    stm__repl_set_free(&set);
    stm__fail_rc(call, rc, &err);
    return;
  }
  Stemedb__V1__FetchMissingResponse resp =
      STEMEDB__V1__FETCH_MISSING_RESPONSE__INIT;
  struct stm__repl_msgs m;
  if (stm__repl_msgs_build(&m, &set) != 0) {
    stm__repl_set_free(&set);
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  resp.n_records = m.n;
  resp.records = m.ptrs;
  stm_grpc_call_reply(call, &resp.base);
  stm__repl_msgs_free(&m);
  stm__repl_set_free(&set);
}

/* ---- Sync ------------------------------------------------------------------------ */

void stm__handle_sync(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                      void *ctx) {
  (void)ctx;
  const Stemedb__V1__SyncRequest *req = (const Stemedb__V1__SyncRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  char started[STM__REPL_MAX_PEERS][STM_NODE_ID_MAX + 1];
  size_t n = 0;
  int rc =
      stm__repl_queue_sync((const char *const *)req->target_nodes,
                           req->n_target_nodes, req->force, started, &n, &err);
  if (rc) {
    stm__fail_rc(call, rc, &err);
    return;
  }
  Stemedb__V1__SyncResponse resp = STEMEDB__V1__SYNC_RESPONSE__INIT;
  char *ptrs[STM__REPL_MAX_PEERS];
  for (size_t i = 0; i < n; i++)
    ptrs[i] = started[i];
  resp.n_started = n;
  resp.started = ptrs;
  struct stm_repl_progress p;
  stm__repl_totals(&p);
  resp.records_sent = p.sent;
  resp.records_received = p.received;
  stm_grpc_call_reply(call, &resp.base);
}
