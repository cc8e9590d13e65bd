/*
 * ratelimit.h - token buckets per (method, client identity), checked by the
 * server's gate before a call runs (docs/security.md).
 *
 * Spec (--rate-limits / STEMEDB_RATE_LIMITS): "Method=RATE:BURST,..." with
 * gRPC method names ("Assert", "Query", ...) and "*" for every other
 * method; RATE is tokens per second (a decimal number > 0), BURST the
 * bucket's size (an integer >= 1). "off" (or "") disables limits. A call
 * takes one token; an empty bucket answers RESOURCE_EXHAUSTED. Buckets of
 * idle identities are forgotten when the table is full, so a flood of
 * fresh identities cannot grow memory without bound.
 */
#ifndef STM_SERVICE_RATELIMIT_H
#define STM_SERVICE_RATELIMIT_H

#include "common/error.h"

#include <stdbool.h>
#include <stdint.h>

#define STM_RATELIMIT_DEFAULT "*=5000:10000"
/* Identities remembered at most (about 100 bytes each). */
#define STM_RATELIMIT_MAX_BUCKETS 100000

struct stm_ratelimit;

struct stm_ratelimit_verdict {
  bool allowed;
  uint32_t limit;         /* the bucket's size (BURST) */
  uint32_t remaining;     /* whole tokens left after this call */
  uint32_t reset_s;       /* seconds until the bucket is full again */
  uint32_t retry_after_s; /* refused: seconds until a token is there */
};

/* Parse `spec`; *out is NULL for "off" / "". Errors name the entry. */
int stm_ratelimit_new(const char *spec, struct stm_ratelimit **out,
                      struct stm_error *err);
void stm_ratelimit_delete(struct stm_ratelimit *rl);

/* Take a token for `method` (the short name, "Assert") and `identity`.
 * Returns false when no rule applies (nothing to report), else true and
 * *v. Thread-safe. */
bool stm_ratelimit_take(struct stm_ratelimit *rl, const char *method,
                        const char *identity, int64_t now_ns,
                        struct stm_ratelimit_verdict *v);

#endif
