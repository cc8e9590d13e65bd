/*
 * clock.h - the time seam (STYLE.md rule 7). Every read of the clock in the
 * product goes through here. Daemons link the real clock (clock.c); a test
 * may link test/fakes/clock_seam.c instead, which defines the same two
 * symbols, and then steps time itself.
 */
#ifndef STM_CLOCK_H
#define STM_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Wall-clock time in nanoseconds since the Unix epoch. */
int64_t stm_clock_now_ns(void);
/* Monotonic time in nanoseconds, for durations and deadlines. */
int64_t stm_clock_mono_ns(void);

/* Wall-clock time in whole seconds since the Unix epoch (what time(NULL)
 * gave), read through stm_clock_now_ns. */
static inline int64_t stm_clock_now_s(void) {
  return stm_clock_now_ns() / 1000000000;
}

/* A pthread_cond_timedwait deadline `delay_ns` (>= 0) from now on `clk`:
 * CLOCK_REALTIME for default condition variables, CLOCK_MONOTONIC for ones
 * made with pthread_condattr_setclock. Always the real clock, also where a
 * test links the fake: a waiting thread is woken by the kernel, which knows
 * no fake time. Inline so that the fake need not define it. */
static inline struct timespec stm_clock_deadline(clockid_t clk,
                                                 int64_t delay_ns) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  int64_t ns = (int64_t)ts.tv_nsec + delay_ns % 1000000000;
  ts.tv_sec += (time_t)(delay_ns / 1000000000 + ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  return ts;
}

#endif
