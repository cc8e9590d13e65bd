#include "clock_seam.h"

#include "common/clock.h"
#include "fake_clock.h"

#include <stdatomic.h>
#include <stdbool.h>

#define EPOCH_2026_NS (INT64_C(1767225600) * 1000000000)

static atomic_bool frozen;
static _Atomic int64_t frozen_mono;

static int64_t real(clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t stm_clock_now_ns(void) {
  return atomic_load(&frozen) ? EPOCH_2026_NS + atomic_load(&frozen_mono)
                              : real(CLOCK_REALTIME);
}

int64_t stm_clock_mono_ns(void) {
  return atomic_load(&frozen) ? atomic_load(&frozen_mono)
                              : real(CLOCK_MONOTONIC);
}

void stm_clock_seam_freeze(int64_t mono_ns) {
  atomic_store(&frozen_mono, mono_ns);
  atomic_store(&frozen, true);
}

void stm_clock_seam_advance(int64_t ns) { atomic_fetch_add(&frozen_mono, ns); }

void stm_clock_seam_sync(const struct stm_fake_clock *c) {
  stm_clock_seam_freeze(stm_fake_clock_now(c));
}

void stm_clock_seam_thaw(void) { atomic_store(&frozen, false); }
