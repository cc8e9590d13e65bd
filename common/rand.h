/*
 * rand.h - the randomness seam: a small seeded generator (xoshiro256**),
 * so code that needs random choices (SWIM's probe order, gossip targets)
 * replays exactly under a test's fixed seed, and an OS seed for daemons.
 *
 * Not cryptographic: never use it for keys or nonces (use libsodium).
 * Caller-embedded, no allocation; one generator per thread or per owner
 * (not thread-safe).
 */
#ifndef STM_RAND_H
#define STM_RAND_H

#include <stdint.h>

struct stm_rand {
  uint64_t s[4];
};

/* Seed the generator; every seed (0 included) gives a valid stream. */
void stm_rand_init(struct stm_rand *r, uint64_t seed);
/* The next 64 uniformly distributed bits. */
uint64_t stm_rand_u64(struct stm_rand *r);
/* Uniform in [0, n) without modulo bias; n == 0 returns 0. */
uint64_t stm_rand_below(struct stm_rand *r, uint64_t n);
/* Uniform double in [0, 1). */
double stm_rand_unit(struct stm_rand *r);
/* A seed from the operating system (getrandom); falls back to the clocks
 * and the pid if that fails. For daemons; tests pass a fixed seed. */
uint64_t stm_rand_seed_os(void);

#endif
