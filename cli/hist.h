/*
 * hist.h - a latency histogram in the HDR style: exact below 256 ns, then
 * 128 linear buckets per power of two, so any recorded value is reported
 * within 1/128 (< 0.8 %) of itself, from 1 ns to 2^63 ns, in fixed memory
 * (58 KiB). One per thread, merged at the end; not thread-safe.
 */
#ifndef STM_CLI_HIST_H
#define STM_CLI_HIST_H

#include <stdint.h>

#define STM_HIST_SUB_BITS 7
#define STM_HIST_BUCKETS (256 + 56 * 128)

struct stm_hist {
  uint64_t counts[STM_HIST_BUCKETS];
  uint64_t total;
  uint64_t min, max; /* exact; min is UINT64_MAX while empty */
  double sum;
};

void stm_hist_init(struct stm_hist *h);
void stm_hist_record(struct stm_hist *h, uint64_t value);
/* Add every count of src to dst. */
void stm_hist_merge(struct stm_hist *dst, const struct stm_hist *src);
/* The value at percentile p (0 < p <= 100): the highest value of the bucket
 * holding the ceil(p% * total)-th smallest value, capped at max. 0 when
 * empty. */
uint64_t stm_hist_percentile(const struct stm_hist *h, double p);
double stm_hist_mean(const struct stm_hist *h);

#endif
