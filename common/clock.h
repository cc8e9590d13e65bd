/*
 * clock.h - the time seam. Daemons link the real clock; tests may link a
 * fake with the same symbols.
 */
#ifndef STM_CLOCK_H
#define STM_CLOCK_H

#include <stdint.h>

/* Wall-clock time in nanoseconds since the Unix epoch. */
int64_t stm_clock_now_ns(void);
/* Monotonic time in nanoseconds, for durations and deadlines. */
int64_t stm_clock_mono_ns(void);

#endif
