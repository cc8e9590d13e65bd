#include "lens.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const lens_names[] = {
    [STM_LENS_RECENCY] = "recency",       [STM_LENS_CONSENSUS] = "consensus",
    [STM_LENS_CONFIDENCE] = "confidence", [STM_LENS_VOTE] = "vote",
    [STM_LENS_AUTHORITY] = "authority",   [STM_LENS_EPOCH] = "epoch",
    [STM_LENS_SKEPTIC] = "skeptic",       [STM_LENS_LAYERED] = "layered",
};
#define LENS_COUNT (sizeof lens_names / sizeof lens_names[0])

int stm_lens_parse(const char *name, enum stm_lens *out,
                   struct stm_error *err) {
  for (size_t i = 0; name && i < LENS_COUNT; i++) {
    if (strcmp(name, lens_names[i]) == 0) {
      *out = (enum stm_lens)i;
      return 0;
    }
  }
  return stm_error_set(err, STM_EINVAL, "lens",
                       "lens \"%.64s\" is unknown; known lenses: recency, "
                       "consensus, confidence, vote, authority, epoch, "
                       "skeptic, layered",
                       name ? name : "");
}

const char *stm_lens_name(enum stm_lens lens) {
  return (size_t)lens < LENS_COUNT ? lens_names[lens] : "unknown";
}

const char *stm_lens_status_name(enum stm_lens_status s) {
  switch (s) {
  case STM_LENS_STATUS_UNANIMOUS:
    return "UNANIMOUS";
  case STM_LENS_STATUS_AGREED:
    return "AGREED";
  case STM_LENS_STATUS_CONTESTED:
    return "CONTESTED";
  default:
    return "";
  }
}

unsigned stm_lens_default_tier(const char *source_id) {
  static const struct {
    const char *scheme;
    unsigned tier;
  } schemes[] = {{"rfc://", 0},  {"fda://", 0},    {"ietf://", 0},
                 {"peer://", 1}, {"pubmed://", 1}, {"doi://", 1},
                 {"code://", 3}, {"wiki://", 3},   {"community://", 4}};
  for (size_t i = 0; source_id && i < sizeof schemes / sizeof schemes[0]; i++)
    if (strncmp(source_id, schemes[i].scheme, strlen(schemes[i].scheme)) == 0)
      return schemes[i].tier;
  return 5;
}

void stm_lens_candidate_init(struct stm_lens_candidate *c,
                             const struct stm_claim *claim) {
  c->claim = claim;
  c->tier = stm_lens_default_tier(claim->source_id);
  c->source_trust = 1.0;
  c->vote_sum = 0.0;
  c->in_current_epoch = true;
}

double stm_lens_authority_weight(const struct stm_lens_candidate *c) {
  unsigned tier = c->tier < STM_TIER_COUNT ? c->tier : STM_TIER_COUNT - 1;
  return ldexp(1.0, 5 - (int)tier) * c->source_trust * c->claim->confidence;
}

double stm_lens_conflict(const double *weights, size_t k) {
  double total = 0;
  size_t nonzero = 0;
  for (size_t i = 0; i < k; i++) {
    total += weights[i];
    nonzero += weights[i] > 0;
  }
  if (k <= 1 || total <= 0 || nonzero <= 1)
    return 0.0;
  double h = 0;
  for (size_t i = 0; i < k; i++) {
    double p = weights[i] / total;
    if (p > 0)
      h -= p * log(p);
  }
  double c = h / log((double)k);
  return c > 1.0 ? 1.0 : c;
}

/* True when claim a is more recent than b: later time, then larger hash. */
static bool more_recent(const struct stm_claim *a, const struct stm_claim *b) {
  int64_t ta = stm_lens_claim_time(a), tb = stm_lens_claim_time(b);
  if (ta != tb)
    return ta > tb;
  return memcmp(a->hash, b->hash, STM_HASH_LEN) > 0;
}

/* ---- grouping candidates by value ---------------------------------------- */

struct group {
  size_t best;   /* most recent claim of the value (candidate index) */
  size_t claims; /* how many claims state the value */
  double weight;
};

static int by_value(const void *a, const void *b, void *ctx) {
  const struct stm_lens_candidate *c = ctx;
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  int r = stm_value_compare(&c[i].claim->value, &c[j].claim->value);
  return r ? r : (i > j) - (i < j);
}

static int by_string(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Distinct source ids among idx[0..m) ("" counts as one anonymous source). */
static size_t distinct_sources(const struct stm_lens_candidate *c,
                               const size_t *idx, size_t m,
                               const char **scratch) {
  for (size_t k = 0; k < m; k++)
    scratch[k] = c[idx[k]].claim->source_id ? c[idx[k]].claim->source_id : "";
  qsort(scratch, m, sizeof *scratch, by_string);
  size_t n = m ? 1 : 0;
  for (size_t k = 1; k < m; k++)
    n += strcmp(scratch[k - 1], scratch[k]) != 0;
  return n;
}

static double claim_weight(enum stm_lens lens,
                           const struct stm_lens_candidate *c) {
  switch (lens) {
  case STM_LENS_CONFIDENCE:
    return c->claim->confidence;
  case STM_LENS_VOTE: {
    double w = 1.0 + c->vote_sum;
    return w > 0 ? w : 0;
  }
  case STM_LENS_AUTHORITY:
  case STM_LENS_SKEPTIC:
  case STM_LENS_LAYERED:
    return stm_lens_authority_weight(c);
  default: /* recency, epoch: every claim counts once */
    return 1.0;
  }
}

/*
 * Group idx[0..m) (sorted here by value) into distinct values with their
 * weights under `lens`. Returns the number of groups, or 0 on ENOMEM.
 */
static size_t group_values(enum stm_lens lens,
                           const struct stm_lens_candidate *c, size_t *idx,
                           size_t m, struct group *groups) {
  qsort_r(idx, m, sizeof *idx, by_value, (void *)c);
  const char **scratch =
      lens == STM_LENS_CONSENSUS ? malloc(m * sizeof *scratch) : NULL;
  if (lens == STM_LENS_CONSENSUS && scratch == NULL)
    return 0;
  size_t k = 0, start = 0;
  for (size_t i = 0; i <= m; i++) {
    if (i < m && i > start &&
        stm_value_compare(&c[idx[i]].claim->value,
                          &c[idx[start]].claim->value) == 0)
      continue;
    if (i == start)
      continue;
    struct group *g = &groups[k++];
    *g = (struct group){.best = idx[start], .claims = i - start};
    for (size_t j = start; j < i; j++) {
      if (more_recent(c[idx[j]].claim, c[g->best].claim))
        g->best = idx[j];
      g->weight += claim_weight(lens, &c[idx[j]]);
    }
    if (lens == STM_LENS_CONSENSUS)
      g->weight = (double)distinct_sources(c, idx + start, i - start, scratch);
    start = i;
  }
  free(scratch);
  return k;
}

/* Better group: larger weight; a tie goes to the more recent claim. */
static bool group_beats(const struct stm_lens_candidate *c,
                        const struct group *a, const struct group *b) {
  if (a->weight != b->weight)
    return a->weight > b->weight;
  return more_recent(c[a->best].claim, c[b->best].claim);
}

struct rank_ctx {
  const struct stm_lens_candidate *c;
  const struct group *groups;
};

static int by_rank(const void *a, const void *b, void *arg) {
  const struct rank_ctx *rc = arg;
  const struct group *ga = &rc->groups[*(const size_t *)a];
  const struct group *gb = &rc->groups[*(const size_t *)b];
  if (group_beats(rc->c, ga, gb))
    return -1;
  return group_beats(rc->c, gb, ga) ? 1 : 0;
}

/* ---- the lenses ------------------------------------------------------------ */

/* Resolve the subset idx[0..m) by weighted value groups; the groups stay in
 * groups[0..*k_out) for callers that rank them. */
static int resolve_weighted(enum stm_lens lens,
                            const struct stm_lens_candidate *c, size_t *idx,
                            size_t m, struct stm_lens_result *out,
                            struct group *groups, double *weights,
                            size_t *k_out) {
  size_t k = group_values(lens, c, idx, m, groups);
  if (k == 0)
    return STM_ENOMEM;
  if (k_out)
    *k_out = k;
  size_t win = 0;
  double total = 0;
  for (size_t g = 0; g < k; g++) {
    weights[g] = groups[g].weight;
    total += groups[g].weight;
    if (g && group_beats(c, &groups[g], &groups[win]))
      win = g;
  }
  out->has_winner = true;
  out->winner = groups[win].best;
  out->candidates = m;
  out->conflict_score = stm_lens_conflict(weights, k);
  if (lens == STM_LENS_CONSENSUS) { /* share of all distinct sources */
    const char **scratch = malloc(m * sizeof *scratch);
    if (scratch == NULL)
      return STM_ENOMEM;
    total = (double)distinct_sources(c, idx, m, scratch);
    free(scratch);
  }
  out->confidence = total > 0 ? groups[win].weight / total : 0.0;
  if (out->confidence > 1.0)
    out->confidence = 1.0;
  return 0;
}

static void resolve_recency(const struct stm_lens_candidate *c,
                            const size_t *idx, size_t m,
                            struct stm_lens_result *out) {
  size_t best = idx[0];
  for (size_t i = 1; i < m; i++)
    if (more_recent(c[idx[i]].claim, c[best].claim))
      best = idx[i];
  out->has_winner = true;
  out->winner = best;
  out->confidence = 1.0;
  out->candidates = m;
}

static int resolve_skeptic(const struct stm_lens_candidate *c, size_t *idx,
                           size_t m, const struct stm_lens_options *opts,
                           struct stm_lens_result *out, struct group *groups,
                           double *weights) {
  size_t k = 0;
  int rc =
      resolve_weighted(STM_LENS_SKEPTIC, c, idx, m, out, groups, weights, &k);
  if (rc)
    return rc;
  size_t *rank = malloc(k * sizeof *rank);
  out->ranked = calloc(k, sizeof *out->ranked);
  if (rank == NULL || out->ranked == NULL) {
    free(rank);
    return STM_ENOMEM;
  }
  double total = 0;
  for (size_t g = 0; g < k; g++) {
    rank[g] = g;
    total += groups[g].weight;
  }
  struct rank_ctx ctx = {c, groups};
  qsort_r(rank, k, sizeof *rank, by_rank, &ctx);
  for (size_t r = 0; r < k; r++) {
    const struct group *g = &groups[rank[r]];
    out->ranked[r] = (struct stm_lens_ranked){
        .representative = g->best,
        .weight = g->weight,
        .share = total > 0 ? g->weight / total : 1.0 / (double)k,
        .claims = g->claims};
  }
  out->ranked_count = k;
  free(rank);
  double agreed = opts && opts->agreed_share > 0 ? opts->agreed_share : 0.8;
  out->confidence = out->ranked[0].share;
  out->status = k == 1                           ? STM_LENS_STATUS_UNANIMOUS
                : out->ranked[0].share >= agreed ? STM_LENS_STATUS_AGREED
                                                 : STM_LENS_STATUS_CONTESTED;
  return 0;
}

static int resolve_layered(const struct stm_lens_candidate *c, size_t n,
                           size_t *idx, struct stm_lens_result *out,
                           struct group *groups, double *weights) {
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  int rc = resolve_weighted(STM_LENS_AUTHORITY, c, idx, n, out, groups, weights,
                            NULL);
  for (unsigned t = 0; rc == 0 && t < STM_TIER_COUNT; t++) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
      if (c[i].tier == t)
        idx[m++] = i;
    if (m == 0)
      continue;
    struct stm_lens_result tier = {0};
    rc = resolve_weighted(STM_LENS_AUTHORITY, c, idx, m, &tier, groups, weights,
                          NULL);
    out->tiers[out->tier_count++] =
        (struct stm_lens_tier){.tier = t,
                               .winner = tier.winner,
                               .confidence = tier.confidence,
                               .candidates = m};
  }
  return rc;
}

int stm_lens_resolve(enum stm_lens lens, const struct stm_lens_candidate *cands,
                     size_t n, const struct stm_lens_options *opts,
                     struct stm_lens_result *out) {
  memset(out, 0, sizeof *out);
  if (n == 0)
    return STM_EINVAL;
  size_t *idx = malloc(n * sizeof *idx);
  struct group *groups = malloc(n * sizeof *groups);
  double *weights = malloc(n * sizeof *weights);
  int rc = (idx && groups && weights) ? 0 : STM_ENOMEM;
  size_t m = 0;
  for (size_t i = 0; rc == 0 && i < n; i++)
    if (lens != STM_LENS_EPOCH || cands[i].in_current_epoch)
      idx[m++] = i;
  if (rc == 0) {
    switch (lens) {
    case STM_LENS_RECENCY:
    case STM_LENS_EPOCH:
      if (m > 0) {
        resolve_recency(cands, idx, m, out);
        /* Conflict among the values stated, one count per claim. */
        struct stm_lens_result tmp = {0};
        rc = resolve_weighted(lens, cands, idx, m, &tmp, groups, weights, NULL);
        out->conflict_score = tmp.conflict_score;
      }
      break;
    case STM_LENS_SKEPTIC:
      rc = resolve_skeptic(cands, idx, m, opts, out, groups, weights);
      break;
    case STM_LENS_LAYERED:
      rc = resolve_layered(cands, n, idx, out, groups, weights);
      break;
    default:
      rc = resolve_weighted(lens, cands, idx, m, out, groups, weights, NULL);
      break;
    }
  }
  free(idx);
  free(groups);
  free(weights);
  if (rc)
    stm_lens_result_destroy(out);
  return rc;
}

void stm_lens_result_destroy(struct stm_lens_result *r) {
  if (r == NULL)
    return;
  free(r->ranked);
  memset(r, 0, sizeof *r);
}
