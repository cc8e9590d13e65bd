/*
 * watch_internal.h - the change feed's parts, inside service/ only:
 * watch_event.c (encoded events, shared by reference, and filters),
 * watch_sub.c (a subscriber: its queue, catch-up from history, sending,
 * subscribe) and watch_hub.c (the commit listener, the history ring, the
 * fan-out thread, lifetime). Locks and the catch-up-to-live switch are
 * described in watch_hub.c.
 */
#ifndef STM_WATCH_INTERNAL_H
#define STM_WATCH_INTERNAL_H

#include "watch_hub.h"

#include "storage/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
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
  char *client;                    /* NULL: not counted per client */
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
  /* Catch-up steps reading the store right now: stop waits for them, so
   * the store is never closed under a scan (LevelDB asserts on it). */
  atomic_int catchups;
};

static inline struct buf_impl *stm__watch_impl(struct stm_watch_buf *b) {
  return (struct buf_impl *)b;
}

/* watch_event.c */
struct stm_watch_buf *stm__watch_buf_ref(struct stm_watch_buf *b);
struct stm_watch_buf *stm__watch_encode_entry(struct stm_store *store,
                                              const struct stm_log_entry *e);
struct stm_watch_buf *stm__watch_encode_progress(uint64_t sequence);
bool stm__watch_matches(const struct stm_watch_sub *s, uint32_t type_bit,
                        const char *concept, const char *predicate);
bool stm__watch_matches_buf(const struct stm_watch_sub *s,
                            struct stm_watch_buf *b);

/* watch_sub.c (the subscriber's mu held for queue_push, resume_seq and
 * end_locked) */
void stm__watch_queue_push(struct stm_watch_sub *s, struct stm_watch_buf *b);
uint64_t stm__watch_resume_seq(const struct stm_watch_sub *s);
void stm__watch_pump(struct stm_watch_sub *s);
void stm__watch_end_locked(struct stm_watch_sub *s, int rc, const char *fmt,
                           ...) __attribute__((format(printf, 3, 4)));

#endif
