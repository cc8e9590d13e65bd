#include "hist.h"

#include <math.h>
#include <string.h>

void stm_hist_init(struct stm_hist *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v) {
  if (v < 256)
    return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = msb - STM_HIST_SUB_BITS;
  unsigned mantissa = (unsigned)(v >> shift); /* 128..255 */
  return 256u + (msb - 8u) * 128u + (mantissa - 128u);
}

/* The largest value that falls into bucket b. */
static uint64_t bucket_top(unsigned b) {
  if (b < 256)
    return b;
  unsigned k = b - 256, msb = k / 128 + 8, shift = msb - STM_HIST_SUB_BITS;
  uint64_t mantissa = k % 128 + 128;
  return ((mantissa + 1) << shift) - 1;
}

void stm_hist_record(struct stm_hist *h, uint64_t value) {
  h->counts[bucket_of(value)]++;
  h->total++;
  h->sum += (double)value;
  if (value < h->min)
    h->min = value;
  if (value > h->max)
    h->max = value;
}

void stm_hist_merge(struct stm_hist *dst, const struct stm_hist *src) {
  for (unsigned b = 0; b < STM_HIST_BUCKETS; b++)
    dst->counts[b] += src->counts[b];
  dst->total += src->total;
  dst->sum += src->sum;
  if (src->min < dst->min)
    dst->min = src->min;
  if (src->max > dst->max)
    dst->max = src->max;
}

uint64_t stm_hist_percentile(const struct stm_hist *h, double p) {
  if (h->total == 0)
    return 0;
  uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total), seen = 0;
  if (rank < 1)
    rank = 1;
  for (unsigned b = 0; b < STM_HIST_BUCKETS; b++) {
    seen += h->counts[b];
    if (seen >= rank) {
      uint64_t top = bucket_top(b);
      return top < h->max ? top : h->max;
    }
  }
  return h->max;
}

double stm_hist_mean(const struct stm_hist *h) {
  return h->total ? h->sum / (double)h->total : 0.0;
}
