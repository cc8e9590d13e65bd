/*
 * watch_hub.c - the change feed's commit listener, history ring, fan-out
 * thread and lifetime (subscribers: watch_sub.c; events: watch_event.c).
 * See watch_hub.h for the contract.
 *
 * Locks, always taken in this order: list_mu (the subscriber list), then
 * ring_mu (history ring, last published sequence), then a subscriber's mu.
 * The commit listener takes only ring_mu, briefly.
 *
 * The switch from catch-up to live without gap or duplicate: a subscriber
 * has `next`, the next sequence it wants. Catch-up reads history (ring or
 * storage) from `next` and advances it; when `next` passes the last
 * published sequence (checked under ring_mu) the subscriber turns live.
 * From then on the hub thread offers it every published event and pushes
 * only those with sequence >= next, advancing next. Events published before
 * the switch were covered by catch-up; events after it reach the hub thread
 * later; an event read from storage before its listener call ran is
 * skipped by the `next` check.
 */
#include "watch_internal.h"

#include "common/arena.h"
#include "common/clock.h"
#include "common/log.h"
#include "convert.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- the listener (storage writer thread) --------------------------------- */

static void ring_clear(struct stm_watch_hub *h) {
  for (size_t i = 0; i < h->ring_len; i++) {
    struct buf_impl *b = h->ring[(h->ring_head + i) % h->o.history_events];
    atomic_fetch_sub(&h->history_bytes, b->pub.len);
    stm_watch_buf_unref(&b->pub);
  }
  h->ring_head = h->ring_len = 0;
}

static void ring_append(struct stm_watch_hub *h, struct stm_watch_buf *b) {
  size_t cap = h->o.history_events;
  if (h->ring_len == cap) {
    struct buf_impl *old = h->ring[h->ring_head];
    h->ring_head = (h->ring_head + 1) % cap;
    h->ring_len--;
    h->covered_from = old->pub.sequence + 1;
    if (old->pub.sequence > h->fanout_cursor)
      h->overrun = true;
    atomic_fetch_sub(&h->history_bytes, old->pub.len);
    stm_watch_buf_unref(&old->pub);
  }
  h->ring[(h->ring_head + h->ring_len++) % cap] = stm__watch_impl(b);
  atomic_fetch_add(&h->history_bytes, b->len);
}

static void on_commit(void *ctx, const struct stm_log_entry *entries,
                      size_t n) {
  struct stm_watch_hub *h = ctx;
  uint64_t newest = entries[n - 1].sequence;
  if (atomic_load(&h->watchers) == 0 && !h->o.memory_only) {
    /* Nobody watches: encoding would only feed the ring, and a later
     * watcher that starts this far back reads storage instead (a
     * memory-only hub keeps its ring: it has nothing else). */
    pthread_mutex_lock(&h->ring_mu);
    ring_clear(h);
    h->covered_from = newest + 1;
    h->overrun = true;
    if (newest > h->last_seq)
      h->last_seq = newest;
    pthread_mutex_unlock(&h->ring_mu);
    atomic_fetch_add(&h->published, n);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    /* Encoded outside the lock: the writer thread waits only for the
     * append. */
    struct stm_watch_buf *b = stm__watch_encode_entry(h->o.store, &entries[i]);
    uint64_t seq = entries[i].sequence;
    pthread_mutex_lock(&h->ring_mu);
    if (b) {
      ring_append(h, b);
    } else {
      /* The event is lost to memory: live subscribers are cut (they
       * resume from storage) and the ring no longer claims to cover it. */
      ring_clear(h);
      h->covered_from = seq + 1;
      h->overrun = true;
    }
    if (seq > h->last_seq)
      h->last_seq = seq;
    pthread_mutex_unlock(&h->ring_mu);
  }
  atomic_fetch_add(&h->published, n);
  pthread_mutex_lock(&h->ring_mu);
  pthread_cond_signal(&h->ring_cond);
  pthread_mutex_unlock(&h->ring_mu);
}

/* --- the hub thread ------------------------------------------------------ */

/*
 * Offer a batch of published events to one subscriber (mu held). A live
 * subscriber whose queue is full is not cut at once: it drops back to
 * catch-up (from the shared ring, else storage) at the event that did not
 * fit, so one large commit does not end a reader that keeps up. It is cut
 * when it falls more than max_lag sequences behind the head.
 */
static void fanout_sub(struct stm_watch_hub *h, struct stm_watch_sub *s,
                       struct stm_watch_buf **batch, size_t n, bool overrun,
                       uint64_t cursor, int64_t now) {
  if (s->end_rc)
    return;
  if (s->state == SUB_LIVE && overrun) {
    /* Events left the ring before fan-out: read them back. */
    s->state = SUB_CATCHUP;
  } else if (s->state == SUB_LIVE) {
    for (size_t i = 0; i < n; i++) {
      struct stm_watch_buf *b = batch[i];
      if (b->sequence < s->next)
        continue;
      if (stm__watch_matches_buf(s, b)) {
        if (s->qlen == s->qcap) {
          s->state = SUB_CATCHUP;
          s->lagging = true;
          s->next = b->sequence;
          break;
        }
        stm__watch_queue_push(s, stm__watch_buf_ref(b));
      }
      s->next = b->sequence + 1;
    }
    if (s->state == SUB_LIVE) {
      if (cursor > s->seen)
        s->seen = cursor;
      if (s->progress_ms && !s->busy && s->qlen == 0 &&
          now - s->last_send_ns >= (int64_t)s->progress_ms * 1000000)
        s->want_progress = true;
    }
  }
  uint64_t resume = stm__watch_resume_seq(s);
  if (s->lagging && resume <= cursor && cursor - resume + 1 > h->o.max_lag) {
    stm__watch_end_locked(
        s, STM_ETOOBIG,
        "subscriber too slow: more than %zu events behind; resume "
        "with start_sequence=%llu",
        h->o.max_lag, (unsigned long long)resume);
    atomic_fetch_add(&h->cut_slow, 1);
  }
}

static void fanout(struct stm_watch_hub *h, struct stm_watch_buf **batch,
                   size_t n, bool overrun, uint64_t cursor) {
  int64_t now = stm_clock_mono_ns();
  pthread_mutex_lock(&h->list_mu);
  struct stm_watch_sub **link = &h->subs;
  while (*link) {
    struct stm_watch_sub *s = *link;
    pthread_mutex_lock(&s->mu);
    bool finished = s->finished;
    bool drive = s->state == SUB_LIVE;
    if (!finished)
      fanout_sub(h, s, batch, n, overrun, cursor, now);
    drive = drive || s->end_rc;
    pthread_mutex_unlock(&s->mu);
    if (finished) {
      *link = s->list_next;
      h->nsubs--;
      atomic_fetch_sub(&h->watchers, 1);
      stm_watch_sub_unref(s);
      continue;
    }
    if (drive)
      stm__watch_pump(s);
    link = &s->list_next;
  }
  pthread_mutex_unlock(&h->list_mu);
}

static void *hub_main(void *arg) {
  struct stm_watch_hub *h = arg;
  size_t cap = h->o.history_events;
  struct stm_watch_buf **batch = malloc(cap * sizeof *batch);
  if (batch == NULL)
    abort(); /* allocated once at start; the hub cannot run without it */
  pthread_mutex_lock(&h->ring_mu);
  for (;;) {
    if (!h->stop_thread && !h->kick && h->last_seq == h->fanout_cursor &&
        !h->overrun) {
      /* ring_cond runs on CLOCK_MONOTONIC (see stm_watch_hub_new). */
      struct timespec until =
          stm_clock_deadline(CLOCK_MONOTONIC, (int64_t)TICK_MS * 1000000);
      pthread_cond_timedwait(&h->ring_cond, &h->ring_mu, &until);
    }
    if (h->stop_thread)
      break;
    h->kick = false;
    /* The ring is in sequence order: walk back from the newest event to
     * the first one not yet fanned out, so the cost follows the new events,
     * not the size of the history. */
    size_t first = h->ring_len;
    while (first > 0 &&
           h->ring[(h->ring_head + first - 1) % cap]->pub.sequence >
               h->fanout_cursor)
      first--;
    size_t n = 0;
    for (size_t i = first; i < h->ring_len; i++)
      batch[n++] = stm__watch_buf_ref(&h->ring[(h->ring_head + i) % cap]->pub);
    bool overrun = h->overrun;
    h->overrun = false;
    if (h->last_seq > h->fanout_cursor)
      h->fanout_cursor = h->last_seq;
    uint64_t cursor = h->fanout_cursor;
    pthread_mutex_unlock(&h->ring_mu);
    fanout(h, batch, n, overrun, cursor);
    for (size_t i = 0; i < n; i++)
      stm_watch_buf_unref(batch[i]);
    pthread_mutex_lock(&h->ring_mu);
  }
  pthread_mutex_unlock(&h->ring_mu);
  free(batch);
  return NULL;
}

/* --- lifetime ------------------------------------------------------------ */

int stm_watch_hub_new(const struct stm_watch_hub_options *opts,
                      struct stm_watch_hub **out, struct stm_error *err) {
  struct stm_watch_hub *h = calloc(1, sizeof *h);
  if (h == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  h->o = *opts;
  if (h->o.history_events == 0)
    h->o.history_events = STM_WATCH_DEFAULT_HISTORY;
  if (h->o.buffer_events == 0)
    h->o.buffer_events = STM_WATCH_DEFAULT_BUFFER;
  if (h->o.max_total == 0)
    h->o.max_total = STM_WATCH_DEFAULT_MAX_TOTAL;
  if (h->o.max_per_connection == 0)
    h->o.max_per_connection = STM_WATCH_DEFAULT_MAX_PER_CONNECTION;
  if (h->o.max_per_client == 0)
    h->o.max_per_client = STM_WATCH_DEFAULT_MAX_PER_CLIENT;
  if (h->o.max_lag == 0)
    h->o.max_lag = STM_WATCH_DEFAULT_MAX_LAG;
  h->ring = calloc(h->o.history_events, sizeof *h->ring);
  if (h->ring == NULL) {
    free(h);
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  }
  pthread_mutex_init(&h->list_mu, NULL);
  pthread_mutex_init(&h->ring_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&h->ring_cond, &ca);
  pthread_condattr_destroy(&ca);
  /* Become the listener first, then read the last sequence: a commit in
   * between is both published and counted, never lost. */
  stm_store_set_log_listener(opts->store, on_commit, h);
  struct stm_store_stats st;
  stm_store_get_stats(opts->store, &st);
  pthread_mutex_lock(&h->ring_mu);
  if (st.last_sequence > h->last_seq)
    h->last_seq = st.last_sequence;
  if (h->ring_len == 0)
    h->covered_from = h->last_seq + 1;
  h->fanout_cursor = h->last_seq;
  pthread_mutex_unlock(&h->ring_mu);
  if (pthread_create(&h->thread, NULL, hub_main, h) != 0) {
    stm_store_set_log_listener(opts->store, NULL, NULL);
    stm_watch_hub_delete(h);
    return stm_error_set(err, STM_ENOMEM, NULL, "cannot start the hub");
  }
  h->thread_started = true;
  *out = h;
  return 0;
}

void stm_watch_hub_stop(struct stm_watch_hub *h) {
  if (h == NULL)
    return;
  pthread_mutex_lock(&h->list_mu);
  h->stopping = true;
  for (struct stm_watch_sub *s = h->subs; s; s = s->list_next) {
    pthread_mutex_lock(&s->mu);
    stm__watch_end_locked(
        s, STM_ESHUTDOWN,
        "the server is shutting down; resume with start_sequence=%llu",
        (unsigned long long)stm__watch_resume_seq(s));
    pthread_mutex_unlock(&s->mu);
    stm__watch_pump(s);
  }
  pthread_mutex_unlock(&h->list_mu);
  /* A catch-up step already running on a gRPC thread reads the store; the
   * store closes after this returns. Each step is bounded (CATCHUP_SCAN_MAX
   * records), so this wait is short. */
  int64_t deadline = stm_clock_mono_ns() + 10 * 1000000000LL;
  while (atomic_load(&h->catchups) > 0 && stm_clock_mono_ns() < deadline) {
    struct timespec tick = {0, 1000000L};
    nanosleep(&tick, NULL);
  }
  if (atomic_load(&h->catchups) > 0)
    stm_log_error("watch: %d catch-up reads still running after 10 s",
                  atomic_load(&h->catchups));
}

void stm_watch_hub_delete(struct stm_watch_hub *h) {
  if (h == NULL)
    return;
  if (h->thread_started) {
    pthread_mutex_lock(&h->ring_mu);
    h->stop_thread = true;
    pthread_cond_signal(&h->ring_cond);
    pthread_mutex_unlock(&h->ring_mu);
    pthread_join(h->thread, NULL);
  }
  while (h->subs) {
    struct stm_watch_sub *s = h->subs;
    h->subs = s->list_next;
    stm_watch_sub_unref(s);
  }
  ring_clear(h);
  free(h->ring);
  pthread_mutex_destroy(&h->list_mu);
  pthread_mutex_destroy(&h->ring_mu);
  pthread_cond_destroy(&h->ring_cond);
  free(h);
}

void stm_watch_hub_get_stats(struct stm_watch_hub *h,
                             struct stm_watch_hub_stats *out) {
  pthread_mutex_lock(&h->list_mu);
  out->subscribers = h->nsubs;
  pthread_mutex_unlock(&h->list_mu);
  out->events_published = atomic_load(&h->published);
  out->events_sent = atomic_load(&h->sent);
  out->cut_slow = atomic_load(&h->cut_slow);
  out->history_bytes = atomic_load(&h->history_bytes);
}
