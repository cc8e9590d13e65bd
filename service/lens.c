#include "lens.h"

#include <string.h>

static const char *const lens_names[] = {
    [STM_LENS_RECENCY] = "recency",     [STM_LENS_CONSENSUS] = "consensus",
    [STM_LENS_CONFIDENCE] = "confidence", [STM_LENS_VOTE] = "vote",
    [STM_LENS_AUTHORITY] = "authority", [STM_LENS_EPOCH] = "epoch",
    [STM_LENS_SKEPTIC] = "skeptic",     [STM_LENS_LAYERED] = "layered",
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

/* recency: latest timestamp_ns; a tie goes to the larger hash so that every
 * node picks the same claim. */
static size_t resolve_recency(const struct stm_claim *claims, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; i++) {
    const struct stm_claim *a = &claims[i], *b = &claims[best];
    int64_t ta = stm_lens_claim_time(a), tb = stm_lens_claim_time(b);
    if (ta > tb ||
        (ta == tb &&
         memcmp(a->hash, b->hash, STM_HASH_LEN) > 0))
      best = i;
  }
  return best;
}

int stm_lens_resolve(enum stm_lens lens, const struct stm_claim *claims,
                     size_t n, struct stm_lens_result *out) {
  if (n == 0)
    return STM_EINVAL;
  memset(out, 0, sizeof *out);
  out->candidates = n;
  switch (lens) {
  case STM_LENS_RECENCY:
    out->winner = resolve_recency(claims, n);
    out->confidence = 1.0;
    return 0;
  default:
    return STM_EUNIMPL;
  }
}
