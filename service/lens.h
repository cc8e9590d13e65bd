/*
 * lens.h - read-time resolution of competing claims about one concept and
 * predicate. Each lens is a pure, deterministic function of the candidate
 * claims and the facts the caller looked up for them (effective source
 * tier and trust, trust-weighted vote sum, epoch membership), so every node
 * gives the same answer for the same claims. Formulas: docs/lenses.md.
 */
#ifndef STM_LENS_H
#define STM_LENS_H

#include "storage/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stm_lens {
  STM_LENS_RECENCY,
  STM_LENS_CONSENSUS,
  STM_LENS_CONFIDENCE,
  STM_LENS_VOTE,
  STM_LENS_AUTHORITY,
  STM_LENS_EPOCH,
  STM_LENS_SKEPTIC,
  STM_LENS_LAYERED,
};

#define STM_TIER_COUNT 6 /* 0 regulatory .. 5 anecdotal */

/* Lens by name ("recency", ...). Returns 0, or STM_EINVAL for an unknown
 * name (err names the field "lens" and lists the known lenses). */
int stm_lens_parse(const char *name, enum stm_lens *out, struct stm_error *err);
const char *stm_lens_name(enum stm_lens lens);

/*
 * Tier of a source that is not registered, from its URI scheme: rfc://,
 * fda://, ietf:// 0; peer://, pubmed://, doi:// 1; code://, wiki:// 3;
 * community:// 4; blog://, anon://, anything else and no source 5.
 */
unsigned stm_lens_default_tier(const char *source_id);

/*
 * The claim's time for ordering: its timestamp_ns, or its commit time when
 * the client stated none (timestamp_ns 0; the hash then covers 0, so
 * re-asserting the same statement without a time stays idempotent).
 */
static inline int64_t stm_lens_claim_time(const struct stm_claim *c) {
  return c->timestamp_ns != 0 ? c->timestamp_ns : c->commit_time_ns;
}

/* One competing claim and what the lenses need to know about it. */
struct stm_lens_candidate {
  const struct stm_claim *claim; /* borrowed */
  unsigned tier;                 /* effective source tier, 0..5 */
  double source_trust;           /* 0..1 */
  double vote_sum;               /* sum of vote weight x voter trust */
  bool in_current_epoch;         /* committed after the newest epoch */
};

/* Fill a candidate with the defaults for an unregistered source, no votes
 * and no epoch. */
void stm_lens_candidate_init(struct stm_lens_candidate *c,
                             const struct stm_claim *claim);

enum stm_lens_status {
  STM_LENS_STATUS_NONE = 0, /* lenses other than skeptic */
  STM_LENS_STATUS_UNANIMOUS,
  STM_LENS_STATUS_AGREED,
  STM_LENS_STATUS_CONTESTED,
};
const char *stm_lens_status_name(enum stm_lens_status s);

/* One distinct value with its weight and share (skeptic). */
struct stm_lens_ranked {
  size_t representative; /* the value's most recent claim (index) */
  double weight;
  double share;
  size_t claims;
};

/* The authority winner among the claims of one tier (layered). */
struct stm_lens_tier {
  unsigned tier;
  size_t winner;
  double confidence;
  size_t candidates;
};

struct stm_lens_result {
  bool has_winner;       /* false: no claim qualifies (epoch lens) */
  size_t winner;         /* index into the candidates */
  double confidence;     /* 0..1 */
  size_t candidates;     /* competing claims considered */
  double conflict_score; /* 0 unanimous .. 1 maximal conflict */
  enum stm_lens_status status;
  struct stm_lens_ranked *ranked; /* skeptic: all values, best first */
  size_t ranked_count;
  struct stm_lens_tier tiers[STM_TIER_COUNT]; /* layered: tiers present */
  size_t tier_count;
};

struct stm_lens_options {
  double agreed_share; /* skeptic: top share for AGREED; default 0.8 */
};

/*
 * Resolve n >= 1 candidates (all of one concept and predicate) with `lens`
 * into `out`. opts may be NULL. Returns 0, STM_EINVAL when n == 0, or
 * STM_ENOMEM. Caller frees out with stm_lens_result_destroy.
 */
int stm_lens_resolve(enum stm_lens lens, const struct stm_lens_candidate *cands,
                     size_t n, const struct stm_lens_options *opts,
                     struct stm_lens_result *out);
void stm_lens_result_destroy(struct stm_lens_result *r);

/* Authority weight of one claim: 2^(5-tier) x trust x confidence. */
double stm_lens_authority_weight(const struct stm_lens_candidate *c);

/* Normalized Shannon entropy H / ln k of k weights (0 when k <= 1 or the
 * total is 0). */
double stm_lens_conflict(const double *weights, size_t k);

#endif
