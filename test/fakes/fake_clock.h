/*
 * fake_clock.h - a discrete-event clock for tests (STYLE.md rule 7, after
 * tarantool's fakeev): time stands still until the test steps it, and a
 * step jumps straight to the earliest armed timer and runs it. A simulated
 * hour costs only the events in it.
 *
 * Timers are caller-embedded (struct stm_fake_timer) and kept in an indexed
 * binary heap, so starting, re-arming and stopping are O(log n). Ties run in
 * the order they were armed. Single-threaded.
 */
#ifndef STM_FAKE_CLOCK_H
#define STM_FAKE_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stm_fake_clock;

typedef void (*stm_fake_timer_fn)(void *arg, int64_t now);

struct stm_fake_timer {
  int64_t when;
  uint64_t order; /* arming order, breaks ties */
  size_t slot;    /* heap index + 1; 0 when not armed */
  stm_fake_timer_fn fn;
  void *arg;
};

/* A clock at `start_ns`. Caller owns it; free with _delete (which leaves
 * armed timers alone: stop them first). */
struct stm_fake_clock *stm_fake_clock_new(int64_t start_ns);
void stm_fake_clock_delete(struct stm_fake_clock *c);
int64_t stm_fake_clock_now(const struct stm_fake_clock *c);

/* Arm (or re-arm) `t` to call fn(arg, now) at `when` (clamped to now). */
void stm_fake_timer_start(struct stm_fake_clock *c, struct stm_fake_timer *t,
                          int64_t when, stm_fake_timer_fn fn, void *arg);
/* Disarm; a no-op when not armed. */
void stm_fake_timer_stop(struct stm_fake_clock *c, struct stm_fake_timer *t);

/* Run the earliest timer if it is due by `limit`: time jumps to it. Returns
 * false, with time moved to `limit`, when nothing is due by then. */
bool stm_fake_clock_step(struct stm_fake_clock *c, int64_t limit);
/* Step until `limit`. */
void stm_fake_clock_run_until(struct stm_fake_clock *c, int64_t limit);

#endif
