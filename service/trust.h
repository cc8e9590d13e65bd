/*
 * trust.h - trust of a source or voter, decaying toward neutral.
 *
 * A trust value t0 set (or renewed) at time r is worth, at time `now`,
 *
 *     t(now) = 0.5 + (t0 - 0.5) * 2^(-(now - r) / half_life)
 *
 * so it halves its distance to the neutral 0.5 every half-life (default
 * 30 days): an unrenewed trust of 1 is 0.75 after one half-life, 0.625
 * after two; a distrusted 0 climbs back the same way. Renewal is a new
 * version of the source (PutSource) or, for a voter that is not a
 * registered source, the vote itself. Times in the future count as age 0;
 * half_life <= 0 disables decay. Pure function; thread-safe.
 */
#ifndef STM_TRUST_H
#define STM_TRUST_H

#include <stdint.h>

#define STM_TRUST_NEUTRAL 0.5
#define STM_TRUST_DEFAULT_HALF_LIFE_NS (INT64_C(30) * 24 * 3600 * 1000000000)

double stm_trust_decay(double trust, int64_t renewed_ns, int64_t now_ns,
                       int64_t half_life_ns);

#endif
