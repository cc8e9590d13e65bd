/* test_rand: the randomness seam (common/rand.h) - a seed replays its
 * stream exactly (what lets SWIM tests reproduce a run), the stream is the
 * reference xoshiro256** seeded by splitmix64, and the bounded helpers are
 * in range and roughly uniform. Fixed seeds: every run is the same run. */
#include "common/rand.h"
#include "harness.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Computed independently from the published reference algorithms
 * (splitmix64 to fill the state, then xoshiro256**). */
static void test_rand_matches_the_reference_stream(void) {
  static const uint64_t seed0[] = {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL,
                                   0x1a5f849d4933e6e0ULL};
  static const uint64_t seed42[] = {
      0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL, 0xae17533239e499a1ULL};
  struct stm_rand r;
  stm_rand_init(&r, 0);
  for (int i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(stm_rand_u64(&r), seed0[i]);
  stm_rand_init(&r, 42);
  for (int i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(stm_rand_u64(&r), seed42[i]);
}

static void test_rand_same_seed_same_stream(void) {
  struct stm_rand a, b, c;
  stm_rand_init(&a, 0x5eed);
  stm_rand_init(&b, 0x5eed);
  stm_rand_init(&c, 0x5eee);
  int same_as_other_seed = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t x = stm_rand_u64(&a);
    CU_ASSERT_EQUAL(x, stm_rand_u64(&b));
    same_as_other_seed += x == stm_rand_u64(&c);
  }
  CU_ASSERT_EQUAL(same_as_other_seed, 0);
  /* Re-seeding restarts the stream; the helpers are deterministic too. */
  stm_rand_init(&a, 7);
  stm_rand_init(&b, 7);
  for (int i = 0; i < 100; i++) {
    CU_ASSERT_EQUAL(stm_rand_below(&a, 1000), stm_rand_below(&b, 1000));
    CU_ASSERT_EQUAL(stm_rand_unit(&a), stm_rand_unit(&b));
  }
}

/* Each of the 64 bits is set about half the time (n = 64 000 draws:
 * sd = sqrt(n)/2 = 126; 6 sd is far beyond chance for a fixed seed). */
static void test_rand_u64_bits_are_balanced(void) {
  struct stm_rand r;
  stm_rand_init(&r, 1);
  enum { N = 64000 };
  unsigned ones[64];
  memset(ones, 0, sizeof ones);
  for (int i = 0; i < N; i++) {
    uint64_t x = stm_rand_u64(&r);
    for (int b = 0; b < 64; b++)
      ones[b] += (x >> b) & 1;
  }
  for (int b = 0; b < 64; b++)
    CU_ASSERT_TRUE(fabs((double)ones[b] - N / 2.0) < 6 * 126.5);
}

/* stm_rand_below: always < n, every value reached, counts within a
 * chi-square bound; n = 0 and n = 1 give 0; a huge n (the rejection path
 * matters most there) stays in range. */
static void test_rand_below_is_bounded_and_uniform(void) {
  struct stm_rand r;
  stm_rand_init(&r, 2);
  enum { K = 10, N = 100000 };
  unsigned count[K] = {0};
  for (int i = 0; i < N; i++) {
    uint64_t v = stm_rand_below(&r, K);
    CU_ASSERT_TRUE_FATAL(v < K);
    count[v]++;
  }
  double chi2 = 0, expect = (double)N / K;
  for (int k = 0; k < K; k++)
    chi2 += (count[k] - expect) * (count[k] - expect) / expect;
  /* 9 degrees of freedom: P(chi2 > 27.9) = 0.001. */
  CU_ASSERT_TRUE(chi2 < 27.9);
  CU_ASSERT_EQUAL(stm_rand_below(&r, 0), 0);
  CU_ASSERT_EQUAL(stm_rand_below(&r, 1), 0);
  uint64_t big = UINT64_MAX / 2 + 2; /* rejects almost half the draws */
  int upper = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t v = stm_rand_below(&r, big);
    CU_ASSERT_TRUE(v < big);
    upper += v >= big / 2;
  }
  CU_ASSERT_TRUE(upper > 400 && upper < 600);
}

/* stm_rand_unit: in [0, 1), mean near 1/2, both halves of every tenth. */
static void test_rand_unit_is_in_range(void) {
  struct stm_rand r;
  stm_rand_init(&r, 3);
  enum { N = 100000 };
  double sum = 0;
  unsigned decile[10] = {0};
  for (int i = 0; i < N; i++) {
    double d = stm_rand_unit(&r);
    CU_ASSERT_TRUE_FATAL(d >= 0.0 && d < 1.0);
    sum += d;
    decile[(int)(d * 10)]++;
  }
  /* sd of the mean: sqrt(1/12/N) = 0.00091. */
  CU_ASSERT_TRUE(fabs(sum / N - 0.5) < 0.005);
  for (int k = 0; k < 10; k++)
    CU_ASSERT_TRUE(decile[k] > N / 10 - 600 && decile[k] < N / 10 + 600);
}

/* Two OS seeds differ (64 random bits colliding: 2^-64). */
static void test_rand_seed_os_differs(void) {
  CU_ASSERT_NOT_EQUAL(stm_rand_seed_os(), stm_rand_seed_os());
}

int main(void) {
  static const struct stm_test_case rand_cases[] = {
      STM_TEST(test_rand_matches_the_reference_stream),
      STM_TEST(test_rand_same_seed_same_stream),
      STM_TEST(test_rand_u64_bits_are_balanced),
      STM_TEST(test_rand_below_is_bounded_and_uniform),
      STM_TEST(test_rand_unit_is_in_range),
      STM_TEST(test_rand_seed_os_differs),
      STM_TEST_END};
  stm_test_suite("rand", rand_cases);
  return stm_test_run_all();
}
