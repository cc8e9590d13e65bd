/*
 * watch_hub.h - the change feed behind stemedb.v1.StemeDB/Watch: one hub per
 * server fans every committed event out to the matching subscribers, after
 * it is durable, and lets a subscriber resume from any sequence (catch-up
 * from the in-memory history or from storage, then a switch to live events
 * with no gap and no duplicate).
 *
 * Conventions:
 *  1. Events are encoded once (a packed stemedb.v1.WatchEvent) into a
 *     refcounted stm_watch_buf shared by the history ring and every
 *     subscriber queue.
 *  2. The transport is a sink (struct stm_watch_sink): the hub calls
 *     sink->send with at most one send outstanding per subscriber, and the
 *     transport reports its completion with stm_watch_sub_sent. The hub
 *     never blocks on a slow subscriber: each has a bounded queue; one whose
 *     queue overflows drops back to catch-up (reading the shared ring or
 *     storage at its own pace), and one that falls more than max_lag
 *     sequences behind the head is ended with STM_ETOOBIG and a message
 *     naming the sequence to resume from.
 *  3. Threads: the store's log listener (the writer thread) only encodes
 *     and appends to the history ring, then wakes the hub thread (with no
 *     watcher at all it encodes nothing: a later watcher reads storage); the hub
 *     thread fans out and drives progress timers; the transport's threads
 *     drive catch-up as sends complete. Every function here is thread-safe.
 *  4. Memory is bounded: history_events events in the ring (shared), plus
 *     at most buffer_events queued per subscriber (of which at most 256
 *     read back from storage, owned by it) and max_total subscribers.
 *
 * Event types: claims, votes, epochs and sources, all in sequence order
 * (the store's log listener and log scan, storage/records.h). A vote is
 * filtered by its claim's concept and predicate, an epoch by its own (a
 * concept-wide epoch, predicate "", matches any predicate filter), and a
 * source, which belongs to no concept, reaches only watches without a
 * concept or predicate filter.
 */
#ifndef STM_WATCH_HUB_H
#define STM_WATCH_HUB_H

#include "common/error.h"
#include "storage/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stm_watch_hub;
struct stm_watch_sub;

/* The event types of stemedb.v1.EventType, as bits of a mask. */
enum {
  STM_WATCH_CLAIM = 1u << 1,
  STM_WATCH_VOTE = 1u << 2,
  STM_WATCH_EPOCH = 1u << 3,
  STM_WATCH_SOURCE = 1u << 4,
  STM_WATCH_ALL =
      STM_WATCH_CLAIM | STM_WATCH_VOTE | STM_WATCH_EPOCH | STM_WATCH_SOURCE,
};

/* One encoded event, shared read-only; see stm_watch_buf_unref. */
struct stm_watch_buf {
  uint64_t sequence;
  uint32_t type_bit;   /* STM_WATCH_*, 0 for a progress event */
  const uint8_t *data; /* the packed stemedb.v1.WatchEvent */
  size_t len;
};

/* Drop one reference; the last frees the buffer. NULL is a no-op. */
void stm_watch_buf_unref(struct stm_watch_buf *b);

#define STM_WATCH_DEFAULT_HISTORY 8192
#define STM_WATCH_DEFAULT_BUFFER 1024
#define STM_WATCH_DEFAULT_MAX_TOTAL 16384
#define STM_WATCH_DEFAULT_MAX_PER_CLIENT 4096
#define STM_WATCH_DEFAULT_MAX_PER_CONNECTION 4096
#define STM_WATCH_DEFAULT_MAX_LAG 100000

struct stm_watch_hub_options {
  struct stm_store *store;   /* borrowed; catch-up source and listener */
  size_t history_events;     /* in-memory ring; 0: the default */
  size_t buffer_events;      /* per-subscriber queue; 0: the default */
  size_t max_total;          /* watches in the whole server; 0: default */
  size_t max_per_connection; /* watches per peer address; 0: default */
  size_t max_per_client;     /* watches per filter.client; 0: default */
  size_t max_lag;            /* sequences a slow subscriber may fall behind
                                before it is cut; 0: the default */
  /* The replay window: a Watch may start at most this many sequences
   * back from the newest; older starts end with STM_ERANGE naming the
   * oldest available sequence. 0: the whole history (storage keeps it). */
  uint64_t retention_events;
  /* Serve catch-up from the in-memory ring only: older starts end with
   * STM_ERANGE (for tests of a window that moves with every write). */
  bool memory_only;
};

/*
 * Create the hub, start its thread and become the store's commit listener.
 * Returns 0 and *out (free with stm_watch_hub_delete), or STM_ENOMEM.
 */
int stm_watch_hub_new(const struct stm_watch_hub_options *opts,
                      struct stm_watch_hub **out, struct stm_error *err);

/*
 * Refuse new watches and end every stream with STM_ESHUTDOWN and a message
 * naming the sequence to resume from. Streams end as soon as their current
 * send completes. Idempotent.
 */
void stm_watch_hub_stop(struct stm_watch_hub *h);

/*
 * Stop the hub thread and free everything. Call after the store is closed
 * (or its listener cleared) and after every transport has released its
 * subscribers. It does not touch the store. NULL is a no-op.
 */
void stm_watch_hub_delete(struct stm_watch_hub *h);

struct stm_watch_hub_stats {
  uint64_t subscribers;
  uint64_t events_published;
  uint64_t events_sent;
  uint64_t cut_slow; /* ended with STM_ETOOBIG */
  uint64_t history_bytes;
};
void stm_watch_hub_get_stats(struct stm_watch_hub *h,
                             struct stm_watch_hub_stats *out);

/*
 * The transport of one subscriber. Both callbacks run on whatever thread
 * drives the hub at the time, never two at once for one subscriber, and
 * with no hub lock held.
 *  send: takes ownership of one reference to `b`; start sending it and
 *        report completion with stm_watch_sub_sent. Return 0, STM_EPERM
 *        when the caller may no longer read (its API key was revoked: the
 *        hub ends the subscriber with STM_EPERM), or other non-zero when
 *        the transport is gone (the hub then ends the subscriber).
 *  finish: end the stream with a negative code: STM_ERANGE (start
 *        pruned), STM_ETOOBIG (slow consumer), STM_ESHUTDOWN (server
 *        stopping), STM_EUNAVAIL (the client went away), STM_EPERM (send
 *        refused: the key was revoked), or a storage
 *        error. `msg` is borrowed for the call. Called exactly once, with
 *        no send outstanding; the sink is never called again afterwards.
 */
struct stm_watch_sink {
  int (*send)(void *ctx, struct stm_watch_buf *b);
  void (*finish)(void *ctx, int rc, const char *msg);
};

struct stm_watch_filter {
  /* A subtree: "a/b" covers "a/b" and "a/b/c", not "a/bc". NULL or "":
   * every concept. */
  const char *concept_prefix;
  const char *predicate;   /* exact; NULL or "": every predicate */
  uint32_t types;          /* STM_WATCH_* mask; 0: all */
  uint32_t progress_ms;    /* idle progress interval; 0: none */
  uint64_t start_sequence; /* inclusive; 0: only new events */
  /* Who is watching, for the per-client limit (the rate limiter's
   * identity: key, x-agent-id or client address); NULL: not counted. */
  const char *client;
};

/*
 * Register a subscriber. The filter strings are copied. `peer` names the
 * connection for the per-connection limit. Nothing is sent until
 * stm_watch_sub_start. Returns 0 and *out with two references (one for the
 * hub's list, one for the caller: release it with stm_watch_sub_unref once
 * the transport is done), or STM_ETOOBIG (a limit; err says which),
 * STM_ESHUTDOWN, STM_ENOMEM.
 */
int stm_watch_hub_subscribe(struct stm_watch_hub *h,
                            const struct stm_watch_filter *f, const char *peer,
                            const struct stm_watch_sink *sink, void *sink_ctx,
                            struct stm_watch_sub **out, struct stm_error *err);

/* Begin delivering: catch-up (if start_sequence > 0), then live events. The
 * first thing delivered after catch-up is a progress event. */
void stm_watch_sub_start(struct stm_watch_sub *s);
/* The transport finished the last send; ok false: the client is gone. */
void stm_watch_sub_sent(struct stm_watch_sub *s, bool ok);
/* The client went away: end the subscriber (finish is still called). */
void stm_watch_sub_close(struct stm_watch_sub *s);
/* Release the caller's reference. NULL is a no-op. */
void stm_watch_sub_unref(struct stm_watch_sub *s);

#endif
