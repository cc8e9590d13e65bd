/* watch_sub.c - one Watch subscriber: its bounded queue, catch-up from
 * the history ring or storage, driving its sends, and subscribe. */
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

/* --- subscriber queue (mu held) ------------------------------------------ */

void stm__watch_queue_push(struct stm_watch_sub *s, struct stm_watch_buf *b) {
  assert(s->qlen < s->qcap);
  s->q[(s->qhead + s->qlen++) % s->qcap] = b;
}

static struct stm_watch_buf *queue_pop(struct stm_watch_sub *s) {
  if (s->qlen == 0 || s->q == NULL)
    return NULL;
  struct stm_watch_buf *b = s->q[s->qhead];
  s->qhead = (s->qhead + 1) % s->qcap;
  s->qlen--;
  return b;
}

static void queue_clear(struct stm_watch_sub *s) {
  while (s->qlen)
    stm_watch_buf_unref(queue_pop(s));
}

/* The first sequence the client has not been handed: where it resumes. */
uint64_t stm__watch_resume_seq(const struct stm_watch_sub *s) {
  return s->qlen ? s->q[s->qhead]->sequence : s->next;
}

void stm__watch_end_locked(struct stm_watch_sub *s, int rc, const char *fmt,
                           ...) {
  if (s->end_rc)
    return;
  s->end_rc = rc;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->end_msg, sizeof s->end_msg, fmt, ap);
  va_end(ap);
  queue_clear(s);
}

/* --- catch-up ----------------------------------------------------------- */

struct scan_ctx {
  struct stm_watch_sub *s;
  struct stm_store *store;
  struct stm_watch_buf **tmp;
  size_t room, count, visited;
  uint64_t last_visited;
  bool stopped, nomem;
};

static int scan_cb(void *ctx, const struct stm_log_entry *e) {
  struct scan_ctx *x = ctx;
  x->visited++;
  x->last_visited = e->sequence;
  /* Claims are matched before encoding; records are rare, so they are
   * encoded first (a vote's concept is its claim's). */
  bool want = true;
  if (e->kind == STM_RECORD_CLAIM)
    want = stm__watch_matches(x->s, STM_WATCH_CLAIM, e->claim->concept_path,
                              e->claim->predicate ? e->claim->predicate : "");
  struct stm_watch_buf *b = want ? stm__watch_encode_entry(x->store, e) : NULL;
  if (want && b == NULL) {
    x->nomem = true;
    return 1;
  }
  if (b && !stm__watch_matches_buf(x->s, b))
    stm_watch_buf_unref(b);
  else if (b)
    x->tmp[x->count++] = b;
  if (x->count == x->room || x->visited >= CATCHUP_SCAN_MAX) {
    x->stopped = true;
    return 1;
  }
  return 0;
}

static void push_all(struct stm_watch_sub *s, struct stm_watch_buf **tmp,
                     size_t n, uint64_t next) {
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < n; i++) {
    if (s->end_rc)
      stm_watch_buf_unref(tmp[i]);
    else
      stm__watch_queue_push(s, tmp[i]);
  }
  if (next > s->next)
    s->next = next;
  pthread_mutex_unlock(&s->mu);
}

/* Catch-up from the ring; ring_mu held. Returns the new `next`. */
static uint64_t ring_read(struct stm_watch_hub *h, struct stm_watch_sub *s,
                          uint64_t next, struct stm_watch_buf **tmp,
                          size_t room, size_t *count) {
  size_t cap = h->o.history_events;
  /* Binary search for the first event with sequence >= next. */
  size_t lo = 0, hi = h->ring_len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (h->ring[(h->ring_head + mid) % cap]->pub.sequence < next)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (size_t i = lo; i < h->ring_len; i++) {
    struct stm_watch_buf *b = &h->ring[(h->ring_head + i) % cap]->pub;
    if (!stm__watch_matches_buf(s, b))
      continue;
    tmp[(*count)++] = stm__watch_buf_ref(b);
    if (*count == room)
      return b->sequence + 1;
  }
  return h->last_seq + 1;
}

/* The storage log kinds (records.h) of a subscriber's STM_WATCH_* types. */
static unsigned log_kinds(uint32_t types) {
  unsigned k = 0;
  k |= (types & STM_WATCH_CLAIM) ? STM_LOG_KIND(STM_RECORD_CLAIM) : 0;
  k |= (types & STM_WATCH_VOTE) ? STM_LOG_KIND(STM_RECORD_VOTE) : 0;
  k |= (types & STM_WATCH_EPOCH) ? STM_LOG_KIND(STM_RECORD_EPOCH) : 0;
  k |= (types & STM_WATCH_SOURCE) ? STM_LOG_KIND(STM_RECORD_SOURCE) : 0;
  return k;
}

/* The oldest sequence a catch-up may start from (last = newest). */
static uint64_t oldest_available(const struct stm_watch_hub *h, uint64_t last,
                                 uint64_t covered) {
  if (h->o.memory_only)
    return covered;
  uint64_t keep = h->o.retention_events;
  return keep && last > keep ? last - keep + 1 : 1;
}

/* One step of catch-up; the caller owns the subscriber (busy). */
static void catchup_step(struct stm_watch_sub *s) {
  struct stm_watch_hub *h = s->hub;
  pthread_mutex_lock(&s->mu);
  uint64_t next = s->next;
  size_t room = s->qcap - s->qlen;
  pthread_mutex_unlock(&s->mu);
  if (room > CATCHUP_CHUNK)
    room = CATCHUP_CHUNK;
  struct stm_watch_buf **tmp = malloc(room * sizeof *tmp);
  if (tmp == NULL || room == 0) {
    free(tmp);
    pthread_mutex_lock(&s->mu);
    stm__watch_end_locked(s, STM_ENOMEM, "out of memory during catch-up");
    pthread_mutex_unlock(&s->mu);
    return;
  }
  pthread_mutex_lock(&h->ring_mu);
  uint64_t last = h->last_seq, covered = h->covered_from;
  if (next > last) {
    pthread_mutex_lock(&s->mu);
    s->state = SUB_LIVE;
    s->lagging = false;
    s->want_progress = true;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&h->ring_mu);
    free(tmp);
    return;
  }
  if (next >= covered) {
    size_t count = 0;
    uint64_t n2 = ring_read(h, s, next, tmp, room, &count);
    pthread_mutex_unlock(&h->ring_mu);
    push_all(s, tmp, count, n2);
    free(tmp);
    return;
  }
  pthread_mutex_unlock(&h->ring_mu);
  uint64_t oldest = oldest_available(h, last, covered);
  if (next < oldest) {
    pthread_mutex_lock(&s->mu);
    stm__watch_end_locked(
        s, STM_ERANGE,
        "start_sequence %llu is no longer available (pruned by "
        "retention); the oldest available sequence is %llu",
        (unsigned long long)next, (unsigned long long)oldest);
    pthread_mutex_unlock(&s->mu);
    free(tmp);
    return;
  }
  struct scan_ctx x = {.s = s,
                       .store = h->o.store,
                       .tmp = tmp,
                       .room = room,
                       .last_visited = next - 1};
  struct stm_error err;
  stm_error_clear(&err);
  int rc = stm_store_scan_log(h->o.store, next - 1, log_kinds(s->types), NULL,
                              scan_cb, &x, &err);
  if (rc < 0 || x.nomem) {
    for (size_t i = 0; i < x.count; i++)
      stm_watch_buf_unref(tmp[i]);
    free(tmp);
    pthread_mutex_lock(&s->mu);
    stm__watch_end_locked(s, rc < 0 ? rc : STM_ENOMEM,
                          "catch-up from storage failed at sequence %llu: %s",
                          (unsigned long long)next,
                          rc < 0 && err.message[0] ? err.message
                                                   : stm_strerror(rc));
    pthread_mutex_unlock(&s->mu);
    return;
  }
  /* A scan that ran dry saw everything visible, which includes every
   * sequence published before it started (the listener runs after
   * visibility). */
  uint64_t n2 = x.last_visited + 1;
  if (!x.stopped && n2 < last + 1)
    n2 = last + 1;
  push_all(s, tmp, x.count, n2);
  free(tmp);
}

/* --- driving one subscriber ---------------------------------------------- */

static void wake_hub(struct stm_watch_hub *h) {
  pthread_mutex_lock(&h->ring_mu);
  h->kick = true;
  pthread_cond_signal(&h->ring_cond);
  pthread_mutex_unlock(&h->ring_mu);
}

/* Send, catch up or finish, unless another thread owns the subscriber. */
void stm__watch_pump(struct stm_watch_sub *s) {
  for (;;) {
    pthread_mutex_lock(&s->mu);
    if (s->busy || s->finished) {
      pthread_mutex_unlock(&s->mu);
      return;
    }
    if (s->end_rc) {
      s->finished = true;
      int rc = s->end_rc;
      char msg[sizeof s->end_msg];
      memcpy(msg, s->end_msg, sizeof msg);
      pthread_mutex_unlock(&s->mu);
      s->sink.finish(s->sink_ctx, rc, msg);
      wake_hub(s->hub);
      return;
    }
    struct stm_watch_buf *b = NULL;
    if (s->qlen) {
      b = queue_pop(s);
    } else if (s->state == SUB_LIVE && s->want_progress) {
      s->want_progress = false;
      uint64_t seq = s->next - 1 > s->seen ? s->next - 1 : s->seen;
      b = stm__watch_encode_progress(seq);
      if (b == NULL) {
        stm__watch_end_locked(s, STM_ENOMEM, "out of memory");
        pthread_mutex_unlock(&s->mu);
        continue;
      }
    }
    if (b) {
      s->busy = true;
      s->last_send_ns = stm_clock_mono_ns();
      pthread_mutex_unlock(&s->mu);
      atomic_fetch_add(&s->hub->sent, 1);
      int src = s->sink.send(s->sink_ctx, b);
      if (src == 0)
        return;
      pthread_mutex_lock(&s->mu);
      s->busy = false;
      if (src == STM_EPERM)
        stm__watch_end_locked(s, STM_EPERM,
                              "the API key of this stream was revoked");
      else
        stm__watch_end_locked(s, STM_EUNAVAIL, "the client went away");
      pthread_mutex_unlock(&s->mu);
      continue;
    }
    if (s->state != SUB_CATCHUP) {
      pthread_mutex_unlock(&s->mu);
      return;
    }
    s->busy = true;
    /* Counted under s->mu: stm_watch_hub_stop ends the subscriber under the
     * same lock, so it either sees this step or the step sees the end. */
    atomic_fetch_add(&s->hub->catchups, 1);
    pthread_mutex_unlock(&s->mu);
    catchup_step(s);
    atomic_fetch_sub(&s->hub->catchups, 1);
    pthread_mutex_lock(&s->mu);
    s->busy = false;
    pthread_mutex_unlock(&s->mu);
  }
}

void stm_watch_sub_start(struct stm_watch_sub *s) { stm__watch_pump(s); }

void stm_watch_sub_sent(struct stm_watch_sub *s, bool ok) {
  pthread_mutex_lock(&s->mu);
  s->busy = false;
  if (!ok)
    stm__watch_end_locked(s, STM_EUNAVAIL, "the client went away");
  pthread_mutex_unlock(&s->mu);
  stm__watch_pump(s);
}

void stm_watch_sub_close(struct stm_watch_sub *s) {
  pthread_mutex_lock(&s->mu);
  stm__watch_end_locked(s, STM_EUNAVAIL, "the client went away");
  pthread_mutex_unlock(&s->mu);
  stm__watch_pump(s);
}

static void sub_free(struct stm_watch_sub *s) {
  queue_clear(s);
  free(s->q);
  free(s->prefix);
  free(s->predicate);
  free(s->peer);
  free(s->client);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

void stm_watch_sub_unref(struct stm_watch_sub *s) {
  if (s && atomic_fetch_sub(&s->refs, 1) == 1)
    sub_free(s);
}

/* --- subscribe ----------------------------------------------------------- */

static char *dup_or_null(const char *s) { return s && s[0] ? strdup(s) : NULL; }

int stm_watch_hub_subscribe(struct stm_watch_hub *h,
                            const struct stm_watch_filter *f, const char *peer,
                            const struct stm_watch_sink *sink, void *sink_ctx,
                            struct stm_watch_sub **out, struct stm_error *err) {
  struct stm_watch_sub *s = calloc(1, sizeof *s);
  if (s == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  s->hub = h;
  atomic_init(&s->refs, 2);
  s->sink = *sink;
  s->sink_ctx = sink_ctx;
  s->prefix = dup_or_null(f->concept_prefix);
  s->prefix_len = s->prefix ? strlen(s->prefix) : 0;
  s->predicate = dup_or_null(f->predicate);
  s->types = f->types ? f->types : STM_WATCH_ALL;
  s->progress_ms = f->progress_ms;
  s->peer = strdup(peer ? peer : "");
  s->client = dup_or_null(f->client);
  s->qcap = h->o.buffer_events;
  s->q = calloc(s->qcap, sizeof *s->q);
  pthread_mutex_init(&s->mu, NULL);
  s->state = SUB_CATCHUP;
  s->last_send_ns = stm_clock_mono_ns();
  if (!s->q || !s->peer ||
      (f->concept_prefix && f->concept_prefix[0] && !s->prefix) ||
      (f->predicate && f->predicate[0] && !s->predicate) ||
      (f->client && f->client[0] && !s->client)) {
    sub_free(s);
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  }
  pthread_mutex_lock(&h->list_mu);
  size_t same_peer = 0, same_client = 0;
  for (struct stm_watch_sub *o = h->subs; o; o = o->list_next) {
    pthread_mutex_lock(&o->mu);
    same_peer += !o->finished && strcmp(o->peer, s->peer) == 0;
    same_client += !o->finished && s->client && o->client &&
                   strcmp(o->client, s->client) == 0;
    pthread_mutex_unlock(&o->mu);
  }
  int rc = 0;
  if (h->stopping)
    rc = stm_error_set(err, STM_ESHUTDOWN, NULL, "the server is shutting down");
  else if (h->nsubs >= h->o.max_total)
    rc = stm_error_set(err, STM_ETOOBIG, "watch-max-total",
                       "too many watches on this server (limit %zu, "
                       "--watch-max-total)",
                       h->o.max_total);
  else if (same_peer >= h->o.max_per_connection)
    rc = stm_error_set(err, STM_ETOOBIG, "watch-max-per-connection",
                       "too many watches on this connection (limit %zu, "
                       "--watch-max-per-connection)",
                       h->o.max_per_connection);
  else if (same_client >= h->o.max_per_client)
    rc = stm_error_set(err, STM_ETOOBIG, "watch-max-per-client",
                       "too many watches for client %s (limit %zu, "
                       "--watch-max-per-client)",
                       s->client, h->o.max_per_client);
  if (rc) {
    pthread_mutex_unlock(&h->list_mu);
    sub_free(s);
    return rc;
  }
  pthread_mutex_lock(&h->ring_mu);
  s->next = f->start_sequence ? f->start_sequence : h->last_seq + 1;
  pthread_mutex_unlock(&h->ring_mu);
  s->list_next = h->subs;
  h->subs = s;
  h->nsubs++;
  atomic_fetch_add(&h->watchers, 1);
  pthread_mutex_unlock(&h->list_mu);
  *out = s;
  return 0;
}
