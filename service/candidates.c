/*
 * candidates.c - the lens inputs of each competing claim, looked up in the
 * store as of the query's read view (docs/lenses.md "Inputs"):
 *
 *  tier          the registered source's tier, else stm_lens_default_tier
 *  source_trust  the registered source's trust, decayed since its latest
 *                version (service/trust.h); 1 for unregistered sources
 *  vote_sum      sum over the claim's votes of weight x voter trust, where
 *                a voter registered as a source has that source's decayed
 *                trust and any other voter trust 1 decayed since the vote
 *  in_current_epoch  committed after the newest epoch of its predicate and
 *                of its whole concept (true when there is none)
 *
 * Decay is measured at the view's time: as_of_time_ns, else now. The
 * half-life is svc->trust_half_life_ns (--trust-half-life-s, default 30
 * days; 0 disables decay).
 */
#include "records_internal.h"
#include "source_keys.h"

#include "common/clock.h"
#include "storage/store.h"
#include "trust.h"

#include <stdlib.h>
#include <string.h>

/* A small per-query cache of source lookups (sources are few). */
#define SOURCE_CACHE 16

struct src_info {
  const char *id; /* borrowed from a claim or vote of this query */
  bool registered;
  unsigned tier;
  double trust; /* decayed */
};

struct fill {
  struct stm_service *svc;
  const struct stm_read_view *view;
  int64_t now;
  struct src_info cache[SOURCE_CACHE];
  size_t ncache;
  char *owned[SOURCE_CACHE]; /* ids copied from votes */
  struct stm_error *err;
};

static int lookup(struct fill *f, const char *id, struct src_info *out) {
  for (size_t i = 0; i < f->ncache; i++)
    if (strcmp(f->cache[i].id, id) == 0) {
      *out = f->cache[i];
      return 0;
    }
  struct src_info info = {
      .id = id, .tier = stm_lens_default_tier(id), .trust = 1.0};
  if (id[0]) {
    struct stm_source s;
    int rc = stm_store_get_source(f->svc->store, id, f->view, &s, f->err);
    if (rc == 0) {
      info.registered = true;
      info.tier = s.tier;
      info.trust = stm_trust_decay(s.trust, s.commit_time_ns, f->now,
                                   f->svc->trust_half_life_ns);
      stm_source_destroy(&s);
    } else if (rc != STM_ENOTFOUND) {
      return rc;
    }
  }
  if (f->ncache < SOURCE_CACHE) {
    char *copy = strdup(id);
    if (copy) {
      info.id = copy;
      f->owned[f->ncache] = copy;
      f->cache[f->ncache++] = info;
    }
  }
  *out = info;
  return 0;
}

struct vote_sum {
  struct fill *f;
  struct stm_lens_candidate *cands;
};

static int on_vote(void *ctx, size_t i, const struct stm_vote *v) {
  struct vote_sum *vs = ctx;
  struct src_info voter;
  int rc = lookup(vs->f, v->voter_id, &voter);
  if (rc)
    return rc;
  double trust = voter.registered
                     ? voter.trust
                     : stm_trust_decay(1.0, v->commit_time_ns, vs->f->now,
                                       vs->f->svc->trust_half_life_ns);
  vs->cands[i].vote_sum += v->weight * trust;
  return 0;
}

/* The newest epoch covering (path, predicate), by the cluster-wide order
 * (commit time, then hash; storage/store.h); *found false: none. */
static int epoch_floor(struct fill *f, const struct stm_claim *c,
                       struct stm_epoch *floor, bool *found) {
  *found = false;
  const char *preds[2] = {c->predicate, ""};
  for (int i = 0; i < 2; i++) {
    struct stm_epoch e;
    int rc = stm_store_find_epoch(f->svc->store, c->concept_path, preds[i], 0,
                                  f->view, &e, f->err);
    if (rc == STM_ENOTFOUND)
      continue;
    if (rc)
      return rc;
    if (*found && !stm_store_epoch_before(floor, e.commit_time_ns, e.hash)) {
      stm_epoch_destroy(&e);
      continue;
    }
    if (*found)
      stm_epoch_destroy(floor);
    *floor = e;
    *found = true;
  }
  return 0;
}

int stm__fill_candidates(struct stm_service *svc,
                         const struct stm_read_view *view,
                         const struct stm_claim *claims, size_t n,
                         struct stm_lens_candidate *cands,
                         struct stm_error *err) {
  struct fill f = {.svc = svc, .view = view, .err = err};
  f.now =
      view && view->as_of_time_ns ? view->as_of_time_ns : stm_clock_now_ns();
  struct stm_epoch floor;
  bool has_floor = false;
  int rc = n ? epoch_floor(&f, &claims[0], &floor, &has_floor) : 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const struct stm_claim *c = &claims[i];
    stm_lens_candidate_init(&cands[i], c);
    struct src_info src;
    rc = lookup(&f, c->source_id ? c->source_id : "", &src);
    if (rc)
      break;
    cands[i].tier = src.tier;
    cands[i].source_trust = src.trust;
    cands[i].in_current_epoch =
        !has_floor ||
        stm_store_epoch_before(&floor, c->commit_time_ns, c->hash);
  }
  /* Every candidate's votes through one iterator. */
  uint8_t(*targets)[STM_HASH_LEN] = rc ? NULL : malloc(n * sizeof *targets);
  if (rc == 0 && targets == NULL && n > 0)
    rc = stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  for (size_t i = 0; rc == 0 && i < n; i++)
    memcpy(targets[i], claims[i].hash, STM_HASH_LEN);
  struct vote_sum vs = {.f = &f, .cands = cands};
  if (rc == 0)
    rc = stm_store_scan_votes_many(svc->store, (const void *)targets, n, view,
                                   on_vote, &vs, err);
  free(targets);
  if (has_floor)
    stm_epoch_destroy(&floor);
  for (size_t i = 0; i < f.ncache; i++)
    free(f.owned[i]);
  return rc;
}

unsigned stm__source_tier(struct stm_service *svc,
                          const struct stm_read_view *view,
                          const char *source_id) {
  const char *id = source_id ? source_id : "";
  struct stm_source s;
  if (id[0] == '\0' || stm_store_get_source(svc->store, id, view, &s, NULL))
    return stm_lens_default_tier(id);
  unsigned tier = s.tier;
  stm_source_destroy(&s);
  return tier;
}

static int lookup_source_key(struct stm_service *svc, const char *id,
                             struct stm_source_key_memo *m,
                             struct stm_error *err) {
  struct stm_store_stats st;
  stm_store_get_stats(svc->store, &st); /* the version, before the read */
  if (stm_source_keys_get(svc->source_keys, id, st.sources_committed,
                          &m->has_key, m->key)) {
    m->id = id;
    return 0;
  }
  struct stm_source s;
  int rc = stm_store_get_source(svc->store, id, NULL, &s, err);
  if (rc == STM_ENOTFOUND) {
    m->has_key = false;
    rc = 0;
  } else if (rc == 0) {
    m->has_key = s.has_public_key;
    memcpy(m->key, s.public_key, STM_PUBLIC_KEY_LEN);
    stm_source_destroy(&s);
  }
  if (rc == 0)
    stm_source_keys_put(svc->source_keys, id, st.sources_committed, m->has_key,
                        m->key);
  m->id = rc == 0 ? id : NULL;
  return rc;
}

int stm__check_source_key(struct stm_service *svc, const struct stm_claim *c,
                          const char *field, struct stm_source_key_memo *memo,
                          struct stm_error *err) {
  if (c->source_id == NULL || c->source_id[0] == '\0')
    return 0;
  struct stm_source_key_memo local = {0};
  struct stm_source_key_memo *m = memo ? memo : &local;
  int rc = 0;
  if (m->id == NULL || strcmp(m->id, c->source_id) != 0)
    rc = lookup_source_key(svc, c->source_id, m, err);
  if (rc == 0 && m->has_key &&
      !(c->has_signature &&
        memcmp(m->key, c->public_key, STM_PUBLIC_KEY_LEN) == 0))
    rc = stm_error_set(err, STM_EPERM, field,
                       "%s: source %s has a registered public key; its claims "
                       "must be signed by that key",
                       field, c->source_id);
  return rc;
}
