/* Query of stemedb.v1.StemeDB: the claims of a concept (and below) as of
 * a view, grouped per predicate and resolved by a lens. */
#include "convert.h"
#include "forward.h"
#include "records_internal.h"
#include "service_internal.h"

#include "common/hex.h"
#include "common/validate.h"
#include "lens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static Stemedb__V1__RankedValue **
convert_ranked(const struct stm_lens_result *r, const struct stm_claim *group,
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
  int rc =
      stm__fill_candidates(q->svc, &q->view, q->group, q->n, cands, q->err);
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
    rc = stm_error_set(err, STM_EINVAL, "limit", "limit must be at most %d",
                       QUERY_MAX_LIMIT);
  return rc;
}

void stm__handle_query(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                       void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__QueryRequest *req = (const Stemedb__V1__QueryRequest *)msg;
  /* In a cluster a replica of the concept's shard answers (forward.h). */
  if (!req->include_descendants &&
      stm_forward_to_shard(call, msg, "/stemedb.v1.StemeDB/Query",
                           &stemedb__v1__query_response__descriptor,
                           req->concept_path))
    return;
  struct stm_error err;
  stm_error_clear(&err);
  struct query_state q = {.limit =
                              req->limit ? req->limit : QUERY_DEFAULT_LIMIT,
                          .svc = svc,
                          .err = &err,
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
  rc = q.results
           ? stm_store_scan_concept(svc->store, req->concept_path,
                                    req->predicate, req->include_descendants,
                                    &view, on_claim, &q, &err)
           : STM_ENOMEM;
  if (rc >= 0 && q.rc == 0)
    group_flush(&q);
  if (q.rc || rc < 0) {
    stm__fail_rc(call, q.rc ? q.rc : rc, &err);
  } else {
    Stemedb__V1__QueryResponse resp = STEMEDB__V1__QUERY_RESPONSE__INIT;
    resp.results = q.results;
    resp.n_results = q.count;
    resp.sequence =
        view.as_of_sequence && view.as_of_sequence < stats.last_sequence
            ? view.as_of_sequence
            : stats.last_sequence;
    /* descendants live in other shards: every node is asked (forward.h) */
    if (!req->include_descendants ||
        !stm_forward_merge_query(call, msg, &resp.base, q.limit))
      stm_grpc_call_reply(call, &resp.base);
  }
  group_clear(&q);
  free(q.group);
  free(q.results);
  stm_arena_destroy(&q.arena);
}
