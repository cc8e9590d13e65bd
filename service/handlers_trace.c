/* Trace of stemedb.v1.StemeDB: a claim's provenance - its parent chain,
 * children, votes and the epoch that superseded it. */
#include "convert.h"
#include "forward.h"
#include "records_internal.h"
#include "service_internal.h"

#include "common/hex.h"
#include "common/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_MAX_PARENTS 256
#define TRACE_MAX_CHILDREN 1000
#define TRACE_MAX_VOTES 1000

struct child_ctx {
  struct stm__list *l;
  struct stm_service *svc;
  const struct stm_read_view *view;
};

static int on_child_item(void *ctx, const struct stm_claim *c) {
  struct child_ctx *k = ctx;
  Stemedb__V1__Assertion *m = stm_convert_claim(c, &k->l->arena);
  m->source_tier = stm__source_tier(k->svc, k->view, c->source_id);
  return stm__list_add(k->l, m);
}

static int on_vote_item(void *ctx, const struct stm_vote *v) {
  struct stm__list *l = ctx;
  return stm__list_add(l, stm_convert_vote(v, &l->arena));
}

/* The first epoch after the claim that covers it: of its predicate or of
 * its whole concept, whichever came first. */
static int superseding_epoch(struct stm_service *svc, const struct stm_claim *c,
                             const struct stm_read_view *view,
                             struct stm_arena *a, Stemedb__V1__Epoch **out,
                             struct stm_error *err) {
  struct stm_epoch e[2];
  int rc[2];
  rc[0] = stm_store_find_epoch(svc->store, c->concept_path, c->predicate,
                               c->sequence, view, &e[0], err);
  rc[1] = stm_store_find_epoch(svc->store, c->concept_path, "", c->sequence,
                               view, &e[1], err);
  int best = -1, bad = 0;
  for (int i = 0; i < 2; i++) {
    if (rc[i] == 0 &&
        (best < 0 ||
         stm_store_epoch_before(&e[i], e[best].commit_time_ns, e[best].hash)))
      best = i;
    else if (rc[i] != 0 && rc[i] != STM_ENOTFOUND)
      bad = rc[i];
  }
  if (best >= 0)
    *out = stm_convert_epoch(&e[best], a);
  for (int i = 0; i < 2; i++)
    if (rc[i] == 0)
      stm_epoch_destroy(&e[i]);
  return bad;
}

static int trace_build(struct stm_service *svc, const struct stm_claim *claim,
                       const struct stm_read_view *view, struct stm_arena *a,
                       Stemedb__V1__TraceResponse *m, struct stm__list *kids,
                       struct stm__list *votes, struct stm_error *err) {
  m->assertion = stm_convert_claim(claim, a);
  m->assertion->source_tier = stm__source_tier(svc, view, claim->source_id);
  m->parents = stm_arena_alloc(a, TRACE_MAX_PARENTS * sizeof *m->parents);
  struct stm_claim cur;
  stm_claim_init(&cur);
  int rc = 0;
  bool has = claim->has_parent;
  uint8_t next[STM_HASH_LEN];
  memcpy(next, claim->parent_hash, STM_HASH_LEN);
  while (rc == 0 && has && m->n_parents < TRACE_MAX_PARENTS) {
    rc = stm_store_get_claim(svc->store, next, view, &cur, err);
    if (rc == STM_ENOTFOUND) { /* a parent asserted elsewhere, or later */
      rc = 0;
      break;
    }
    if (rc == 0) {
      Stemedb__V1__Assertion *p = stm_convert_claim(&cur, a);
      p->source_tier = stm__source_tier(svc, view, cur.source_id);
      m->parents[m->n_parents++] = p;
      has = cur.has_parent;
      memcpy(next, cur.parent_hash, STM_HASH_LEN);
    }
  }
  stm_claim_destroy(&cur);
  struct child_ctx kc = {.l = kids, .svc = svc, .view = view};
  if (rc == 0)
    rc = stm_store_scan_children(svc->store, claim->hash, view, on_child_item,
                                 &kc, err);
  if (rc >= 0)
    rc = stm_store_scan_votes(svc->store, claim->hash, view, on_vote_item,
                              votes, err);
  if (rc >= 0)
    rc = superseding_epoch(svc, claim, view, a, &m->superseded_by, err);
  m->children = (Stemedb__V1__Assertion **)kids->items;
  m->n_children = kids->n;
  m->votes = (Stemedb__V1__Vote **)votes->items;
  m->n_votes = votes->n;
  return rc < 0 ? rc : 0;
}

void stm__handle_trace(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                       void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__TraceRequest *req = (const Stemedb__V1__TraceRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  uint8_t hash[STM_HASH_LEN];
  struct stm_read_view view = {.as_of_sequence = req->as_of_sequence,
                               .as_of_time_ns = req->as_of_time_ns};
  struct stm_claim claim;
  stm_claim_init(&claim);
  int rc = stm__parse_hash("hash", req->hash, hash, &err);
  rc = rc ? rc : stm__check_as_of_time(req->as_of_time_ns, &err);
  if (rc == 0) {
    rc = stm_store_get_claim(svc->store, hash, &view, &claim, &err);
    if (rc == STM_ENOTFOUND &&
        stm_forward_to_any(call, msg, "/stemedb.v1.StemeDB/Trace",
                           &stemedb__v1__trace_response__descriptor)) {
      stm_claim_destroy(&claim); /* a node that stores it answered */
      return;
    }
    if (rc == STM_ENOTFOUND)
      stm_error_set(&err, rc, NULL, "no assertion with hash %s%s", req->hash,
                    view.as_of_sequence || view.as_of_time_ns
                        ? " as of the requested point"
                        : "");
  }
  struct stm__list kids = {0}, votes = {0};
  struct stm_arena a;
  stm_arena_init(&a);
  rc = rc ? rc : stm__list_init(&kids, TRACE_MAX_CHILDREN);
  rc = rc ? rc : stm__list_init(&votes, TRACE_MAX_VOTES);
  Stemedb__V1__TraceResponse m = STEMEDB__V1__TRACE_RESPONSE__INIT;
  if (rc == 0)
    rc = trace_build(svc, &claim, &view, &a, &m, &kids, &votes, &err);
  if (rc)
    stm__fail_rc(call, rc, &err);
  else
    stm_grpc_call_reply(call, &m.base);
  stm__list_destroy(&kids);
  stm__list_destroy(&votes);
  stm_arena_destroy(&a);
  stm_claim_destroy(&claim);
}
