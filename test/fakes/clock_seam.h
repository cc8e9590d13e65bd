/*
 * clock_seam.h - the fake side of common/clock.h's link-time seam. A test
 * executable that compiles clock_seam.c defines stm_clock_now_ns and
 * stm_clock_mono_ns itself, so the linker never pulls common/clock.c out of
 * stm_common and every module in the executable reads this clock.
 *
 * It reads the real clock until a test freezes it; frozen time moves only
 * when the test says. Safe to read from the module's threads while the test
 * steps it (one atomic).
 */
#ifndef STM_TEST_CLOCK_SEAM_H
#define STM_TEST_CLOCK_SEAM_H

#include <stdint.h>

struct stm_fake_clock;

/* Freeze monotonic time at `mono_ns`; wall time is mono_ns plus a fixed
 * epoch offset (2026-01-01T00:00:00Z). */
void stm_clock_seam_freeze(int64_t mono_ns);
/* Move frozen time forward by `ns`. */
void stm_clock_seam_advance(int64_t ns);
/* Follow a fake_clock.h event clock: set frozen time to its now. */
void stm_clock_seam_sync(const struct stm_fake_clock *c);
/* Back to the real clock. */
void stm_clock_seam_thaw(void);

#endif
