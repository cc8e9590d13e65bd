#include "rand.h"

#include "clock.h"

#include <sys/random.h>
#include <unistd.h>

/* splitmix64 spreads one 64-bit seed over the 256-bit state, as the
 * xoshiro authors recommend (an all-zero state would be stuck). */
static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void stm_rand_init(struct stm_rand *r, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t stm_rand_u64(struct stm_rand *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint64_t stm_rand_below(struct stm_rand *r, uint64_t n) {
  if (n == 0)
    return 0;
  /* Reject the top partial range so every value is equally likely. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t v;
  do
    v = stm_rand_u64(r);
  while (v >= limit);
  return v % n;
}

double stm_rand_unit(struct stm_rand *r) {
  return (double)(stm_rand_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t stm_rand_seed_os(void) {
  uint64_t seed;
  if (getrandom(&seed, sizeof seed, 0) == (ssize_t)sizeof seed)
    return seed;
  uint64_t x = (uint64_t)stm_clock_now_ns() ^
               ((uint64_t)stm_clock_mono_ns() << 17) ^ (uint64_t)getpid();
  return splitmix64(&x);
}
