/* Handlers of stemedb.v1.StemeDB: writes (Assert, AssertBatch) and reads
 * (Get, Query); Status and Metrics live in handlers_admin.c. */
#include "convert.h"
#include "lens.h"
#include "records_internal.h"
#include "service.h"
#include "service_internal.h"

#include "../common/hex.h"
#include "../common/validate.h"
#include "grpc/health/v1/health.pb-c.h"
#include "stemedb/v1/admin.pb-c.h"
#include "stemedb/v1/cluster.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

grpc_status_code stm_service_status(int rc) {
  switch (rc) {
  case 0:
    return GRPC_STATUS_OK;
  case STM_EINVAL:
    return GRPC_STATUS_INVALID_ARGUMENT;
  case STM_ENOTFOUND:
    return GRPC_STATUS_NOT_FOUND;
  case STM_EREADONLY:
  case STM_ESHUTDOWN:
  case STM_EUNAVAIL:
  case STM_ENOSPC:
    return GRPC_STATUS_UNAVAILABLE;
  case STM_EPERM:
    return GRPC_STATUS_PERMISSION_DENIED;
  case STM_ETOOBIG:
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  case STM_EUNIMPL:
    return GRPC_STATUS_UNIMPLEMENTED;
  case STM_ERANGE:
    return GRPC_STATUS_OUT_OF_RANGE;
  case STM_ETIMEOUT:
    return GRPC_STATUS_DEADLINE_EXCEEDED;
  case STM_EEXIST:
    return GRPC_STATUS_ALREADY_EXISTS;
  default:
    return GRPC_STATUS_INTERNAL;
  }
}

void stm__fail_rc(struct stm_call *call, int rc, const struct stm_error *err) {
  const char *msg = err && err->message[0] ? err->message : stm_strerror(rc);
  struct stm_service *svc = stm_call_context(call);
  struct stm_store_stats st = {0};
  if (rc == STM_EREADONLY && svc)
    stm_store_get_stats(svc->store, &st);
  if (rc == STM_EREADONLY && st.disk_full)
    stm_call_fail(call, GRPC_STATUS_UNAVAILABLE,
                  "the disk was full when this node started: it serves "
                  "reads only and refuses writes until space is freed on "
                  "its data directory's disk and it is restarted");
  else if (rc == STM_EREADONLY)
    stm_call_fail(call, GRPC_STATUS_UNAVAILABLE,
                  "storage failed (%s); this node refuses writes until it is "
                  "restarted",
                  msg);
  else
    stm_call_fail(call, stm_service_status(rc), "%s", msg);
}

int stm__check_as_of_time(int64_t as_of_time_ns, struct stm_error *err) {
  if (as_of_time_ns >= 0)
    return 0;
  return stm_error_set(err, STM_EINVAL, "as_of_time_ns",
                       "as_of_time_ns must be 0 (now) or a commit time in "
                       "nanoseconds since 1970, got %lld",
                       (long long)as_of_time_ns);
}

/* --- Assert / AssertBatch ------------------------------------------------ */

struct write_ctx {
  struct stm_call *call;
  bool batch;
};

static void on_written(void *ctx, int rc, const struct stm_write_result *res,
                       size_t n, const struct stm_error *err) {
  struct write_ctx *w = ctx;
  if (rc != 0) {
    stm__fail_rc(w->call, rc, err);
    free(w);
    return;
  }
  Stemedb__V1__AssertResponse *items = calloc(n, sizeof *items);
  Stemedb__V1__AssertResponse **ptrs = calloc(n, sizeof *ptrs);
  char(*hex)[STM_HASH_HEX_LEN + 1] = calloc(n, sizeof *hex);
  if (!items || !ptrs || !hex) {
    stm_call_fail(w->call, GRPC_STATUS_INTERNAL,
                  "out of memory building the reply (the write is durable)");
  } else {
    for (size_t i = 0; i < n; i++) {
      stemedb__v1__assert_response__init(&items[i]);
      stm_hex_encode(res[i].hash, STM_HASH_LEN, hex[i]);
      items[i].hash = hex[i];
      items[i].sequence = res[i].sequence;
      items[i].created = res[i].created;
      ptrs[i] = &items[i];
    }
    if (w->batch) {
      Stemedb__V1__AssertBatchResponse resp =
          STEMEDB__V1__ASSERT_BATCH_RESPONSE__INIT;
      resp.n_results = n;
      resp.results = ptrs;
      stm_call_reply(w->call, &resp.base);
    } else {
      stm_call_reply(w->call, &items[0].base);
    }
  }
  free(items);
  free(ptrs);
  free(hex);
  free(w);
}

static void submit(struct stm_service *svc, struct stm_call *call,
                   struct stm_claim *claims, size_t n, bool batch) {
  struct write_ctx *w = malloc(sizeof *w);
  if (w == NULL) {
    for (size_t i = 0; i < n; i++)
      stm_claim_destroy(&claims[i]);
    free(claims);
    stm_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  w->call = call;
  w->batch = batch;
  char who[STM__CALLER_MAX];
  stm__call_identity(call, who, sizeof who);
  int rc = stm_store_submit_claims(svc->store, claims, n,
                                   batch ? "assert_batch" : "assert", who,
                                   on_written, w);
  if (rc != 0) {
    free(w);
    stm__fail_rc(call, rc, NULL);
  }
}

static void handle_assert(struct stm_call *call, const ProtobufCMessage *msg,
                          void *ctx) {
  const Stemedb__V1__AssertRequest *req =
      (const Stemedb__V1__AssertRequest *)msg;
  struct stm_claim *claim = malloc(sizeof *claim);
  struct stm_error err;
  stm_error_clear(&err);
  if (claim == NULL) {
    stm_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  stm_claim_init(claim);
  int rc = stm_convert_assert_request(req, "", claim, &err);
  if (rc == 0 && (rc = stm__check_source_key(ctx, claim, "signature", NULL, &err)))
    stm_claim_destroy(claim);
  if (rc != 0) {
    free(claim);
    stm__fail_rc(call, rc, &err);
    return;
  }
  submit(ctx, call, claim, 1, false);
}

static void handle_assert_batch(struct stm_call *call,
                                const ProtobufCMessage *msg, void *ctx) {
  const Stemedb__V1__AssertBatchRequest *req =
      (const Stemedb__V1__AssertBatchRequest *)msg;
  size_t n = req->n_assertions;
  if (n == 0) {
    stm_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                  "assertions must hold at least one assertion");
    return;
  }
  if (n > STM_MAX_BATCH) {
    stm_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                  "assertions holds %zu assertions; at most %d per batch", n,
                  STM_MAX_BATCH);
    return;
  }
  struct stm_claim *claims = calloc(n, sizeof *claims);
  if (claims == NULL) {
    stm_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_source_key_memo memo = {0};
  for (size_t i = 0; i < n; i++) {
    char prefix[48], f[48];
    stm_field_name_at(prefix, sizeof prefix, "assertions", i, "");
    stm_claim_init(&claims[i]);
    int rc = stm_convert_assert_request(req->assertions[i], prefix, &claims[i],
                                        &err);
    if (rc == 0 &&
        (rc = stm__check_source_key(ctx, &claims[i],
                                    stm_field_name_at(f, sizeof f, "assertions", i, "signature"), &memo,
                                    &err)))
      stm_claim_destroy(&claims[i]);
    if (rc != 0) {
      for (size_t k = 0; k < i; k++)
        stm_claim_destroy(&claims[k]);
      free(claims);
      stm__fail_rc(call, rc, &err);
      return;
    }
  }
  submit(ctx, call, claims, n, true);
}

/* --- Get ----------------------------------------------------------------- */

static void handle_get(struct stm_call *call, const ProtobufCMessage *msg,
                       void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__GetRequest *req = (const Stemedb__V1__GetRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  size_t len = strlen(req->hash);
  uint8_t hash[STM_HASH_LEN];
  int rc = stm_validate_hash_hex("hash", req->hash, len, false, &err);
  rc = rc ? rc : stm__check_as_of_time(req->as_of_time_ns, &err);
  if (rc) {
    stm__fail_rc(call, rc, &err);
    return;
  }
  stm_hex_decode(req->hash, len, hash, STM_HASH_LEN);
  struct stm_read_view view = {.as_of_sequence = req->as_of_sequence,
                               .as_of_time_ns = req->as_of_time_ns};
  struct stm_claim claim;
  stm_claim_init(&claim);
  rc = stm_store_get_claim(svc->store, hash, &view, &claim, &err);
  if (rc == STM_ENOTFOUND) {
    stm_call_fail(call, GRPC_STATUS_NOT_FOUND, "no assertion with hash %s%s",
                  req->hash,
                  view.as_of_sequence || view.as_of_time_ns
                      ? " as of the requested point"
                      : "");
  } else if (rc) {
    stm__fail_rc(call, rc, &err);
  } else {
    struct stm_arena a;
    stm_arena_init(&a);
    Stemedb__V1__Assertion *m = stm_convert_claim(&claim, &a);
    m->source_tier = stm__source_tier(svc, &view, claim.source_id);
    stm_call_reply(call, &m->base);
    stm_arena_destroy(&a);
  }
  stm_claim_destroy(&claim);
}

/* --- Query --------------------------------------------------------------- */

#define QUERY_DEFAULT_LIMIT 1000
#define QUERY_MAX_LIMIT 10000

struct query_state {
  struct stm_service *svc;
  struct stm_read_view view; /* fixed at the start: one consistent answer */
  bool current_epoch_only;
  struct stm_error *err;
  enum stm_lens lens;
  struct stm_claim *group; /* candidates of the current concept+predicate */
  size_t n, cap;
  Stemedb__V1__LensResult **results;
  size_t count, limit;
  struct stm_arena arena;
  int rc;
};

static void group_clear(struct query_state *q) {
  for (size_t i = 0; i < q->n; i++)
    stm_claim_destroy(&q->group[i]);
  q->n = 0;
}

static Stemedb__V1__RankedValue **convert_ranked(
    const struct stm_lens_result *r, const struct stm_claim *group,
    struct stm_arena *a) {
  Stemedb__V1__RankedValue **out =
      stm_arena_alloc(a, r->ranked_count * sizeof *out);
  for (size_t i = 0; i < r->ranked_count; i++) {
    const struct stm_lens_ranked *rv = &r->ranked[i];
    Stemedb__V1__RankedValue *m = stm_arena_alloc(a, sizeof *m);
    stemedb__v1__ranked_value__init(m);
    m->representative = stm_convert_claim(&group[rv->representative], a);
    m->value = m->representative->value;
    m->share = rv->share;
    m->weight = rv->weight;
    m->claims = (uint32_t)rv->claims;
    out[i] = m;
  }
  return out;
}

static Stemedb__V1__TierResult **convert_tiers(const struct stm_lens_result *r,
                                               const struct stm_claim *group,
                                               struct stm_arena *a) {
  Stemedb__V1__TierResult **out =
      stm_arena_alloc(a, r->tier_count * sizeof *out);
  for (size_t i = 0; i < r->tier_count; i++) {
    Stemedb__V1__TierResult *m = stm_arena_alloc(a, sizeof *m);
    stemedb__v1__tier_result__init(m);
    m->tier = r->tiers[i].tier;
    m->winner = stm_convert_claim(&group[r->tiers[i].winner], a);
    m->confidence = r->tiers[i].confidence;
    m->candidates_count = (uint32_t)r->tiers[i].candidates;
    out[i] = m;
  }
  return out;
}

/* Compact the claims of the current epoch to the front; returns how many. */
static size_t keep_current_epoch(struct stm_claim *group,
                                 struct stm_lens_candidate *cands, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!cands[i].in_current_epoch) {
      stm_claim_destroy(&group[i]);
      continue;
    }
    if (k != i) {
      group[k] = group[i];
      stm_claim_init(&group[i]);
      cands[k] = cands[i];
    }
    cands[k].claim = &group[k];
    k++;
  }
  return k;
}

/* The effective tier (registered source or URI scheme) on the claims. */
static void set_tiers(Stemedb__V1__LensResult *m,
                      const struct stm_lens_result *r,
                      const struct stm_lens_candidate *cands) {
  if (m->winner)
    m->winner->source_tier = cands[r->winner].tier;
  for (size_t i = 0; i < r->ranked_count; i++)
    m->ranked[i]->representative->source_tier =
        cands[r->ranked[i].representative].tier;
  for (size_t i = 0; i < r->tier_count; i++)
    m->tiers[i]->winner->source_tier = cands[r->tiers[i].winner].tier;
}

/* Resolve the finished group into one LensResult. */
static int group_flush(struct query_state *q) {
  if (q->n == 0)
    return 0;
  struct stm_lens_candidate *cands = malloc(q->n * sizeof *cands);
  if (cands == NULL)
    return q->rc = STM_ENOMEM;
  int rc = stm__fill_candidates(q->svc, &q->view, q->group, q->n, cands,
                                 q->err);
  if (rc == 0 && q->current_epoch_only) /* drop superseded claims */
    q->n = keep_current_epoch(q->group, cands, q->n);
  if (rc == 0 && q->n == 0) {
    free(cands);
    return 0;
  }
  struct stm_lens_result r;
  rc = rc ? rc : stm_lens_resolve(q->lens, cands, q->n, NULL, &r);
  if (rc != 0) {
    free(cands);
    return q->rc = rc;
  }
  struct stm_arena *a = &q->arena;
  Stemedb__V1__LensResult *m = stm_arena_alloc(a, sizeof *m);
  stemedb__v1__lens_result__init(m);
  m->concept_path = stm_arena_strdup(a, q->group[0].concept_path);
  m->predicate = stm_arena_strdup(a, q->group[0].predicate);
  if (r.has_winner)
    m->winner = stm_convert_claim(&q->group[r.winner], a);
  m->confidence = r.confidence;
  m->candidates_count = (uint32_t)r.candidates;
  m->conflict_score = r.conflict_score;
  m->lens = stm_arena_strdup(a, stm_lens_name(q->lens));
  m->status = stm_arena_strdup(a, stm_lens_status_name(r.status));
  m->ranked = convert_ranked(&r, q->group, a);
  m->n_ranked = r.ranked_count;
  m->tiers = convert_tiers(&r, q->group, a);
  m->n_tiers = r.tier_count;
  set_tiers(m, &r, cands);
  free(cands);
  stm_lens_result_destroy(&r);
  q->results[q->count++] = m;
  group_clear(q);
  return q->count >= q->limit ? 1 : 0;
}

static int on_claim(void *ctx, const struct stm_claim *c) {
  struct query_state *q = ctx;
  if (q->n > 0 && (strcmp(q->group[0].concept_path, c->concept_path) != 0 ||
                   strcmp(q->group[0].predicate, c->predicate) != 0)) {
    int rc = group_flush(q);
    if (rc)
      return rc;
  }
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    struct stm_claim *g = realloc(q->group, cap * sizeof *g);
    if (g == NULL)
      return q->rc = STM_ENOMEM;
    q->group = g;
    q->cap = cap;
  }
  int rc = stm_claim_copy(&q->group[q->n], c);
  if (rc)
    return q->rc = rc;
  q->n++;
  return 0;
}

static int query_validate(const Stemedb__V1__QueryRequest *req,
                          enum stm_lens *lens, struct stm_error *err) {
  int rc = stm_validate_concept_path("concept_path", req->concept_path,
                                     strlen(req->concept_path), err);
  if (rc == 0 && req->predicate[0])
    rc = stm_validate_predicate("predicate", req->predicate,
                                strlen(req->predicate), err);
  if (rc == 0)
    rc = stm_lens_parse(req->lens[0] ? req->lens : "recency", lens, err);
  if (rc == 0)
    rc = stm__check_as_of_time(req->as_of_time_ns, err);
  if (rc == 0 && req->limit > QUERY_MAX_LIMIT)
    rc = stm_error_set(err, STM_EINVAL, "limit",
                       "limit must be at most %d", QUERY_MAX_LIMIT);
  return rc;
}

static void handle_query(struct stm_call *call, const ProtobufCMessage *msg,
                         void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__QueryRequest *req = (const Stemedb__V1__QueryRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  struct query_state q = {.limit = req->limit ? req->limit
                                              : QUERY_DEFAULT_LIMIT,
                          .svc = svc, .err = &err,
                          .current_epoch_only = req->current_epoch_only};
  int rc = query_validate(req, &q.lens, &err);
  if (rc) {
    stm__fail_rc(call, rc, &err);
    return;
  }
  stm_arena_init(&q.arena);
  q.results = calloc(q.limit, sizeof *q.results);
  struct stm_read_view view = {.as_of_sequence = req->as_of_sequence,
                               .as_of_time_ns = req->as_of_time_ns};
  struct stm_store_stats stats;
  stm_store_get_stats(svc->store, &stats);
  /* Pin "now" to the last durable sequence, so the claims, votes, epochs
   * and sources of this answer all come from the same point. */
  if (view.as_of_sequence == 0 || view.as_of_sequence > stats.last_sequence)
    view.as_of_sequence = stats.last_sequence;
  q.view = view;
  rc = q.results ? stm_store_scan_concept(svc->store, req->concept_path,
                                          req->predicate,
                                          req->include_descendants, &view,
                                          on_claim, &q, &err)
                 : STM_ENOMEM;
  if (rc >= 0 && q.rc == 0)
    group_flush(&q);
  if (q.rc || rc < 0) {
    stm__fail_rc(call, q.rc ? q.rc : rc, &err);
  } else {
    Stemedb__V1__QueryResponse resp = STEMEDB__V1__QUERY_RESPONSE__INIT;
    resp.results = q.results;
    resp.n_results = q.count;
    resp.sequence = view.as_of_sequence && view.as_of_sequence <
                                               stats.last_sequence
                        ? view.as_of_sequence
                        : stats.last_sequence;
    stm_call_reply(call, &resp.base);
  }
  group_clear(&q);
  free(q.group);
  free(q.results);
  stm_arena_destroy(&q.arena);
}

/* --- the method table ---------------------------------------------------- */

#define SVC "/stemedb.v1.StemeDB/"
#define CLU "/stemedb.v1.Cluster/"
#define M(path, type, fn) {path, &type##__descriptor, fn}

static const struct stm_method methods[] = {
    M(SVC "Assert", stemedb__v1__assert_request, handle_assert),
    M(SVC "AssertBatch", stemedb__v1__assert_batch_request,
      handle_assert_batch),
    M(SVC "Get", stemedb__v1__get_request, handle_get),
    M(SVC "Query", stemedb__v1__query_request, handle_query),
    M(SVC "Trace", stemedb__v1__trace_request, stm__handle_trace),
    M(SVC "Vote", stemedb__v1__vote_request, stm__handle_vote),
    M(SVC "StartEpoch", stemedb__v1__start_epoch_request,
      stm__handle_start_epoch),
    M(SVC "PutSource", stemedb__v1__put_source_request, stm__handle_put_source),
    M(SVC "GetSource", stemedb__v1__get_source_request, stm__handle_get_source),
    M(SVC "ListSources", stemedb__v1__list_sources_request,
      stm__handle_list_sources),
    M(SVC "ListConcepts", stemedb__v1__list_concepts_request,
      stm__handle_list_concepts),
    M(SVC "Audit", stemedb__v1__audit_request, stm__handle_audit),
    M(SVC "Status", stemedb__v1__status_request, stm__handle_status),
    M(SVC "Metrics", stemedb__v1__metrics_request, stm__handle_metrics),
    M(SVC "Watch", stemedb__v1__watch_request, stm__handle_watch),
    M(CLU "Replicate", stemedb__v1__replicate_request, NULL),
    M(CLU "MerkleSummary", stemedb__v1__merkle_summary_request, NULL),
    M(CLU "FetchMissing", stemedb__v1__fetch_missing_request, NULL),
    M(CLU "Members", stemedb__v1__members_request, NULL),
    M(CLU "Health", stemedb__v1__cluster_health_request, NULL),
    M(CLU "Sync", stemedb__v1__sync_request, NULL),
    M(CLU "Shards", stemedb__v1__shards_request, NULL),
    M(CLU "RebalanceShard", stemedb__v1__rebalance_shard_request, NULL),
    M(CLU "RemoveNode", stemedb__v1__remove_node_request, NULL),
    M("/stemedb.v1.Admin/BackupBegin", stemedb__v1__backup_begin_request,
      stm__handle_backup_begin),
    M("/stemedb.v1.Admin/BackupRead", stemedb__v1__backup_read_request,
      stm__handle_backup_read),
    M("/grpc.health.v1.Health/Check", grpc__health__v1__health_check_request,
      stm__handle_health_check),
    M("/grpc.health.v1.Health/Watch", grpc__health__v1__health_check_request,
      NULL),
};

const struct stm_method *stm_service_methods(size_t *count) {
  *count = sizeof methods / sizeof methods[0];
  return methods;
}
