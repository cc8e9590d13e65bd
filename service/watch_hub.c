/*
 * watch_hub.c - fan-out, history ring, catch-up and backpressure of the
 * change feed. See watch_hub.h for the contract.
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
#include "watch_hub.h"

#include "../common/arena.h"
#include "../common/clock.h"
#include "../common/log.h"
#include "storage/store.h"
#include "convert.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Claims visited per storage read during catch-up, so one read stays short
 * even when the filter matches little. */
#define CATCHUP_SCAN_MAX 4096
/* Events read per catch-up step: bounds the memory of a subscriber that
 * reads from storage (the ring's events are shared and cost no more). */
#define CATCHUP_CHUNK 256
/* The hub thread's tick: progress timers and list cleanup. */
#define TICK_MS 10

struct buf_impl {
  struct stm_watch_buf pub;
  atomic_uint refs;
  const char *concept;   /* points into the same block */
  const char *predicate; /* points into the same block */
};

enum sub_state { SUB_CATCHUP, SUB_LIVE };

struct stm_watch_sub {
  struct stm_watch_hub *hub;
  atomic_uint refs;
  struct stm_watch_sink sink;
  void *sink_ctx;
  /* The filter; immutable after subscribe. */
  char *prefix;
  size_t prefix_len;
  char *predicate; /* NULL: any */
  uint32_t types;
  uint32_t progress_ms;
  char *peer;
  struct stm_watch_sub *list_next; /* under hub->list_mu */
  pthread_mutex_t mu;
  /* Under mu. */
  enum sub_state state;
  bool busy;     /* a thread owns the transport: a send or a catch-up */
  bool finished; /* finish was called */
  bool want_progress;
  bool lagging; /* fell out of live mode because its queue was full */
  int end_rc;
  char end_msg[200];
  uint64_t next; /* the next sequence this subscriber wants */
  uint64_t seen; /* every event <= seen has been offered to it */
  int64_t last_send_ns;
  struct stm_watch_buf **q;
  size_t qhead, qlen, qcap;
};

struct stm_watch_hub {
  struct stm_watch_hub_options o;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t list_mu;
  struct stm_watch_sub *subs;
  size_t nsubs;
  bool stopping;
  pthread_mutex_t ring_mu;
  pthread_cond_t ring_cond;
  struct buf_impl **ring;
  size_t ring_head, ring_len;
  uint64_t last_seq;      /* last sequence published by the listener */
  uint64_t covered_from;  /* the ring holds every event >= covered_from */
  uint64_t fanout_cursor; /* the hub thread has taken events <= this */
  bool overrun; /* an event left the ring (or was lost) before fan-out */
  bool stop_thread;
  bool kick;
  atomic_uint_fast64_t published, sent, cut_slow, history_bytes;
  atomic_uint watchers; /* subscribers in the list; 0: skip encoding */
};

/* --- events ------------------------------------------------------------- */

static struct stm_watch_buf *buf_pack(const Stemedb__V1__WatchEvent *ev,
                                      uint32_t type_bit, const char *concept,
                                      const char *predicate) {
  size_t clen = strlen(concept) + 1, plen = strlen(predicate) + 1;
  size_t len = protobuf_c_message_get_packed_size(&ev->base);
  struct buf_impl *b = malloc(sizeof *b + clen + plen + len);
  if (b == NULL)
    return NULL;
  char *p = (char *)(b + 1);
  memcpy(p, concept, clen);
  memcpy(p + clen, predicate, plen);
  uint8_t *data = (uint8_t *)p + clen + plen;
  protobuf_c_message_pack(&ev->base, data);
  b->pub = (struct stm_watch_buf){
      .sequence = ev->sequence, .type_bit = type_bit, .data = data, .len = len};
  atomic_init(&b->refs, 1);
  b->concept = p;
  b->predicate = p + clen;
  return &b->pub;
}

/* The packed WatchEvent of one claim, with one reference; NULL when out of
 * memory. */
static struct stm_watch_buf *encode_claim(const struct stm_claim *c) {
  struct stm_arena a;
  stm_arena_init(&a);
  Stemedb__V1__WatchEvent ev = STEMEDB__V1__WATCH_EVENT__INIT;
  ev.sequence = c->sequence;
  ev.type = STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_CLAIM;
  ev.payload_case = STEMEDB__V1__WATCH_EVENT__PAYLOAD_CLAIM;
  ev.claim = stm_convert_claim(c, &a);
  struct stm_watch_buf *b =
      ev.claim ? buf_pack(&ev, STM_WATCH_CLAIM, c->concept_path,
                          c->predicate ? c->predicate : "")
               : NULL;
  stm_arena_destroy(&a);
  return b;
}

/*
 * The event of one write of any kind. Filters see a vote under its claim's
 * concept and predicate, an epoch under its own (predicate "" applies to
 * every predicate), and a source under none (only unfiltered watches get
 * sources). NULL when out of memory or when a vote's claim cannot be read.
 */
static struct stm_watch_buf *encode_entry(struct stm_store *store,
                                          const struct stm_log_entry *e) {
  if (e->kind == STM_RECORD_CLAIM)
    return encode_claim(e->claim);
  struct stm_arena a;
  stm_arena_init(&a);
  Stemedb__V1__WatchEvent ev = STEMEDB__V1__WATCH_EVENT__INIT;
  ev.sequence = e->sequence;
  struct stm_watch_buf *b = NULL;
  const struct stm_record *r = e->record;
  switch (e->kind) {
  case STM_RECORD_VOTE: {
    struct stm_claim c;
    stm_claim_init(&c);
    if (stm_store_get_claim(store, r->u.vote.target, NULL, &c, NULL) == 0) {
      ev.type = STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_VOTE;
      ev.payload_case = STEMEDB__V1__WATCH_EVENT__PAYLOAD_VOTE;
      ev.vote = stm_convert_vote(&r->u.vote, &a);
      b = buf_pack(&ev, STM_WATCH_VOTE, c.concept_path,
                   c.predicate ? c.predicate : "");
    }
    stm_claim_destroy(&c);
    break;
  }
  case STM_RECORD_EPOCH:
    ev.type = STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_EPOCH;
    ev.payload_case = STEMEDB__V1__WATCH_EVENT__PAYLOAD_EPOCH;
    ev.epoch = stm_convert_epoch(&r->u.epoch, &a);
    b = buf_pack(&ev, STM_WATCH_EPOCH, r->u.epoch.concept_path,
                 r->u.epoch.predicate);
    break;
  default:
    ev.type = STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_SOURCE;
    ev.payload_case = STEMEDB__V1__WATCH_EVENT__PAYLOAD_SOURCE;
    ev.source = stm_convert_source(&r->u.source, &a);
    b = buf_pack(&ev, STM_WATCH_SOURCE, "", "");
  }
  stm_arena_destroy(&a);
  return b;
}

static struct stm_watch_buf *encode_progress(uint64_t sequence) {
  Stemedb__V1__WatchEvent ev = STEMEDB__V1__WATCH_EVENT__INIT;
  ev.sequence = sequence;
  ev.type = STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_PROGRESS;
  return buf_pack(&ev, 0, "", "");
}

static struct buf_impl *impl(struct stm_watch_buf *b) {
  return (struct buf_impl *)b;
}

static struct stm_watch_buf *buf_ref(struct stm_watch_buf *b) {
  atomic_fetch_add(&impl(b)->refs, 1);
  return b;
}

void stm_watch_buf_unref(struct stm_watch_buf *b) {
  if (b && atomic_fetch_sub(&impl(b)->refs, 1) == 1)
    free(impl(b));
}

static bool matches(const struct stm_watch_sub *s, uint32_t type_bit,
                    const char *concept, const char *predicate) {
  if ((s->types & type_bit) == 0)
    return false;
  /* A prefix names a subtree: "a/b" covers "a/b" and "a/b/c", not "a/bc". */
  if (s->prefix_len &&
      (strncmp(concept, s->prefix, s->prefix_len) != 0 ||
       (concept[s->prefix_len] != '\0' && concept[s->prefix_len] != '/')))
    return false;
  return s->predicate == NULL || strcmp(predicate, s->predicate) == 0 ||
         (type_bit == STM_WATCH_EPOCH && predicate[0] == '\0');
}

static bool matches_buf(const struct stm_watch_sub *s,
                        struct stm_watch_buf *b) {
  return matches(s, b->type_bit, impl(b)->concept, impl(b)->predicate);
}

/* --- subscriber queue (mu held) ------------------------------------------ */

static void queue_push(struct stm_watch_sub *s, struct stm_watch_buf *b) {
  assert(s->qlen < s->qcap);
  s->q[(s->qhead + s->qlen++) % s->qcap] = b;
}

static struct stm_watch_buf *queue_pop(struct stm_watch_sub *s) {
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
static uint64_t resume_seq(const struct stm_watch_sub *s) {
  return s->qlen ? s->q[s->qhead]->sequence : s->next;
}

static void end_locked(struct stm_watch_sub *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void end_locked(struct stm_watch_sub *s, int rc, const char *fmt, ...) {
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
    want = matches(x->s, STM_WATCH_CLAIM, e->claim->concept_path,
                   e->claim->predicate ? e->claim->predicate : "");
  struct stm_watch_buf *b = want ? encode_entry(x->store, e) : NULL;
  if (want && b == NULL) {
    x->nomem = true;
    return 1;
  }
  if (b && !matches_buf(x->s, b))
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
      queue_push(s, tmp[i]);
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
    if (!matches_buf(s, b))
      continue;
    tmp[(*count)++] = buf_ref(b);
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
    end_locked(s, STM_ENOMEM, "out of memory during catch-up");
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
    end_locked(s, STM_ERANGE,
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
    end_locked(s, rc < 0 ? rc : STM_ENOMEM,
               "catch-up from storage failed at sequence %llu: %s",
               (unsigned long long)next,
               rc < 0 && err.message[0] ? err.message : stm_strerror(rc));
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
static void pump(struct stm_watch_sub *s) {
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
      b = encode_progress(seq);
      if (b == NULL) {
        end_locked(s, STM_ENOMEM, "out of memory");
        pthread_mutex_unlock(&s->mu);
        continue;
      }
    }
    if (b) {
      s->busy = true;
      s->last_send_ns = stm_clock_mono_ns();
      pthread_mutex_unlock(&s->mu);
      atomic_fetch_add(&s->hub->sent, 1);
      if (s->sink.send(s->sink_ctx, b) == 0)
        return;
      pthread_mutex_lock(&s->mu);
      s->busy = false;
      end_locked(s, STM_EUNAVAIL, "the client went away");
      pthread_mutex_unlock(&s->mu);
      continue;
    }
    if (s->state != SUB_CATCHUP) {
      pthread_mutex_unlock(&s->mu);
      return;
    }
    s->busy = true;
    pthread_mutex_unlock(&s->mu);
    catchup_step(s);
    pthread_mutex_lock(&s->mu);
    s->busy = false;
    pthread_mutex_unlock(&s->mu);
  }
}

void stm_watch_sub_start(struct stm_watch_sub *s) { pump(s); }

void stm_watch_sub_sent(struct stm_watch_sub *s, bool ok) {
  pthread_mutex_lock(&s->mu);
  s->busy = false;
  if (!ok)
    end_locked(s, STM_EUNAVAIL, "the client went away");
  pthread_mutex_unlock(&s->mu);
  pump(s);
}

void stm_watch_sub_close(struct stm_watch_sub *s) {
  pthread_mutex_lock(&s->mu);
  end_locked(s, STM_EUNAVAIL, "the client went away");
  pthread_mutex_unlock(&s->mu);
  pump(s);
}

static void sub_free(struct stm_watch_sub *s) {
  queue_clear(s);
  free(s->q);
  free(s->prefix);
  free(s->predicate);
  free(s->peer);
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
  s->qcap = h->o.buffer_events;
  s->q = calloc(s->qcap, sizeof *s->q);
  pthread_mutex_init(&s->mu, NULL);
  s->state = SUB_CATCHUP;
  s->last_send_ns = stm_clock_mono_ns();
  if (!s->q || !s->peer ||
      (f->concept_prefix && f->concept_prefix[0] && !s->prefix) ||
      (f->predicate && f->predicate[0] && !s->predicate)) {
    sub_free(s);
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  }
  pthread_mutex_lock(&h->list_mu);
  size_t same_peer = 0;
  for (struct stm_watch_sub *o = h->subs; o; o = o->list_next) {
    pthread_mutex_lock(&o->mu);
    same_peer += !o->finished && strcmp(o->peer, s->peer) == 0;
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
  h->ring[(h->ring_head + h->ring_len++) % cap] = impl(b);
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
    struct stm_watch_buf *b = encode_entry(h->o.store, &entries[i]);
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
      if (matches_buf(s, b)) {
        if (s->qlen == s->qcap) {
          s->state = SUB_CATCHUP;
          s->lagging = true;
          s->next = b->sequence;
          break;
        }
        queue_push(s, buf_ref(b));
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
  uint64_t resume = resume_seq(s);
  if (s->lagging && resume <= cursor && cursor - resume + 1 > h->o.max_lag) {
    end_locked(s, STM_ETOOBIG,
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
      pump(s);
    link = &s->list_next;
  }
  pthread_mutex_unlock(&h->list_mu);
}

static void deadline_in(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_nsec += (long)ms * 1000000L;
  while (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
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
      struct timespec until;
      deadline_in(&until, TICK_MS);
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
      batch[n++] = buf_ref(&h->ring[(h->ring_head + i) % cap]->pub);
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
    end_locked(s, STM_ESHUTDOWN,
               "the server is shutting down; resume with start_sequence=%llu",
               (unsigned long long)resume_seq(s));
    pthread_mutex_unlock(&s->mu);
    pump(s);
  }
  pthread_mutex_unlock(&h->list_mu);
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
