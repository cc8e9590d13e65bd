#include "fake_clock.h"

#include <assert.h>
#include <stdlib.h>

struct stm_fake_clock {
  int64_t now;
  uint64_t armed;
  struct stm_fake_timer **heap;
  size_t n, cap;
};

struct stm_fake_clock *stm_fake_clock_new(int64_t start_ns) {
  struct stm_fake_clock *c = calloc(1, sizeof *c);
  if (c)
    c->now = start_ns;
  return c;
}

void stm_fake_clock_delete(struct stm_fake_clock *c) {
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->n; i++)
    c->heap[i]->slot = 0;
  free(c->heap);
  free(c);
}

int64_t stm_fake_clock_now(const struct stm_fake_clock *c) { return c->now; }

static bool before(const struct stm_fake_timer *a,
                   const struct stm_fake_timer *b) {
  return a->when < b->when || (a->when == b->when && a->order < b->order);
}

static void put(struct stm_fake_clock *c, size_t i, struct stm_fake_timer *t) {
  c->heap[i] = t;
  t->slot = i + 1;
}

static void sift_up(struct stm_fake_clock *c, size_t i) {
  struct stm_fake_timer *t = c->heap[i];
  while (i > 0 && before(t, c->heap[(i - 1) / 2])) {
    put(c, i, c->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  put(c, i, t);
}

static void sift_down(struct stm_fake_clock *c, size_t i) {
  struct stm_fake_timer *t = c->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, best = i;
    const struct stm_fake_timer *bt = t;
    if (l < c->n && before(c->heap[l], bt))
      best = l, bt = c->heap[l];
    if (l + 1 < c->n && before(c->heap[l + 1], bt))
      best = l + 1;
    if (best == i)
      break;
    put(c, i, c->heap[best]);
    i = best;
  }
  put(c, i, t);
}

void stm_fake_timer_stop(struct stm_fake_clock *c, struct stm_fake_timer *t) {
  if (t->slot == 0)
    return;
  size_t i = t->slot - 1;
  assert(c->heap[i] == t);
  t->slot = 0;
  struct stm_fake_timer *last = c->heap[--c->n];
  if (i == c->n)
    return;
  put(c, i, last);
  sift_up(c, i);
  sift_down(c, last->slot - 1);
}

void stm_fake_timer_start(struct stm_fake_clock *c, struct stm_fake_timer *t,
                          int64_t when, stm_fake_timer_fn fn, void *arg) {
  stm_fake_timer_stop(c, t);
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 64;
    struct stm_fake_timer **h = realloc(c->heap, cap * sizeof *h);
    assert(h != NULL);
    c->heap = h;
    c->cap = cap;
  }
  t->when = when < c->now ? c->now : when;
  t->order = c->armed++;
  t->fn = fn;
  t->arg = arg;
  put(c, c->n++, t);
  sift_up(c, c->n - 1);
}

bool stm_fake_clock_step(struct stm_fake_clock *c, int64_t limit) {
  if (c->n == 0 || c->heap[0]->when > limit) {
    if (limit > c->now)
      c->now = limit;
    return false;
  }
  struct stm_fake_timer *t = c->heap[0];
  stm_fake_timer_stop(c, t);
  c->now = t->when;
  t->fn(t->arg, c->now);
  return true;
}

void stm_fake_clock_run_until(struct stm_fake_clock *c, int64_t limit) {
  while (stm_fake_clock_step(c, limit))
    ;
}
