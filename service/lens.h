/*
 * lens.h - read-time resolution of competing claims about one concept and
 * predicate. Each lens is a pure, deterministic function of the candidate
 * claims (and, for some lenses, votes, sources and trust), so every node
 * gives the same answer for the same claims.
 */
#ifndef STM_LENS_H
#define STM_LENS_H

#include "../storage/claim.h"

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

/* Lens by name ("recency", ...). Returns 0, or STM_EINVAL for an unknown
 * name (err names the field "lens" and lists the known lenses). */
int stm_lens_parse(const char *name, enum stm_lens *out,
                   struct stm_error *err);
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

struct stm_lens_result {
  size_t winner;         /* index into the candidates */
  double confidence;     /* 0..1 */
  size_t candidates;     /* number of competing claims considered */
  double conflict_score; /* 0 unanimous .. 1 maximal conflict */
};

/*
 * Resolve n >= 1 candidates (all of one concept and predicate) with `lens`.
 * Returns 0, STM_EINVAL when n == 0, or STM_EUNIMPL for a lens this build
 * does not implement yet.
 */
int stm_lens_resolve(enum stm_lens lens, const struct stm_claim *claims,
                     size_t n, struct stm_lens_result *out);

#endif
