#include "request_ids.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
  struct entry *next_in_bucket;
  struct entry *older, *newer; /* finished entries, oldest first */
  size_t method;
  char id[STM_REQUEST_ID_MAX + 1];
  uint8_t digest[STM_REQUEST_ID_DIGEST];
  bool done;
  int64_t done_ns;
  void *answer;
  size_t answer_len;
  void **waiters;
  size_t n_waiters;
};

struct stm_request_ids {
  pthread_mutex_t mu;
  struct entry **buckets;
  size_t n_buckets;
  size_t count, bytes;
  struct entry *oldest, *newest;
  int64_t window_ns;
  size_t max_entries, max_bytes;
};

static size_t hash_key(size_t method, const char *id) {
  uint64_t h = 1469598103934665603ull ^ method; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  return (size_t)h;
}

struct stm_request_ids *
stm_request_ids_new(int64_t window_ns, size_t max_entries, size_t max_bytes) {
  struct stm_request_ids *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->n_buckets = 4096;
  r->buckets = calloc(r->n_buckets, sizeof *r->buckets);
  if (r->buckets == NULL) {
    free(r);
    return NULL;
  }
  pthread_mutex_init(&r->mu, NULL);
  r->window_ns = window_ns;
  r->max_entries = max_entries;
  r->max_bytes = max_bytes;
  return r;
}

static struct entry **slot_of(struct stm_request_ids *r, size_t method,
                              const char *id) {
  struct entry **pp = &r->buckets[hash_key(method, id) % r->n_buckets];
  while (*pp && ((*pp)->method != method || strcmp((*pp)->id, id) != 0))
    pp = &(*pp)->next_in_bucket;
  return pp;
}

static void unlink_done(struct stm_request_ids *r, struct entry *e) {
  if (e->older)
    e->older->newer = e->newer;
  else
    r->oldest = e->newer;
  if (e->newer)
    e->newer->older = e->older;
  else
    r->newest = e->older;
}

/* Take e out of the table and free it (not out of the finished list). */
static void drop(struct stm_request_ids *r, struct entry *e) {
  struct entry **pp = slot_of(r, e->method, e->id);
  *pp = e->next_in_bucket;
  r->count--;
  r->bytes -= e->answer_len + sizeof *e;
  free(e->answer);
  free(e->waiters);
  free(e);
}

static void remove_entry(struct stm_request_ids *r, struct entry *e) {
  if (e->done)
    unlink_done(r, e);
  drop(r, e);
}

/* Forget finished entries past the window, then the oldest while over a
 * bound. Pending entries are never evicted: their calls are running. */
static void expire(struct stm_request_ids *r, int64_t now_ns) {
  while (r->oldest && (now_ns - r->oldest->done_ns > r->window_ns ||
                       r->count > r->max_entries || r->bytes > r->max_bytes)) {
    struct entry *e = r->oldest; /* the head of the finished list */
    r->oldest = e->newer;
    if (r->oldest)
      r->oldest->older = NULL;
    else
      r->newest = NULL;
    drop(r, e);
  }
}

void stm_request_ids_delete(struct stm_request_ids *r) {
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->n_buckets; i++)
    while (r->buckets[i])
      remove_entry(r, r->buckets[i]);
  free(r->buckets);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static enum stm_request_ids_verdict known(struct entry *e,
                                          const uint8_t *digest, void *waiter,
                                          void **answer, size_t *answer_len) {
  if (memcmp(e->digest, digest, STM_REQUEST_ID_DIGEST) != 0)
    return STM_REQUEST_ID_MISMATCH;
  if (!e->done) {
    void **w = realloc(e->waiters, (e->n_waiters + 1) * sizeof *w);
    if (w == NULL)
      return STM_REQUEST_ID_NEW; /* cannot queue: run it (content rules) */
    e->waiters = w;
    w[e->n_waiters++] = waiter;
    return STM_REQUEST_ID_WAITING;
  }
  *answer = NULL;
  *answer_len = 0;
  if (e->answer_len) {
    *answer = malloc(e->answer_len);
    if (*answer == NULL)
      return STM_REQUEST_ID_NEW;
    memcpy(*answer, e->answer, e->answer_len);
    *answer_len = e->answer_len;
  }
  return STM_REQUEST_ID_DONE;
}

enum stm_request_ids_verdict
stm_request_ids_begin(struct stm_request_ids *r, size_t method, const char *id,
                      const uint8_t digest[STM_REQUEST_ID_DIGEST], void *waiter,
                      int64_t now_ns, void **answer, size_t *answer_len) {
  pthread_mutex_lock(&r->mu);
  expire(r, now_ns);
  struct entry **pp = slot_of(r, method, id);
  enum stm_request_ids_verdict v = STM_REQUEST_ID_NEW;
  if (*pp) {
    v = known(*pp, digest, waiter, answer, answer_len);
  } else {
    struct entry *e = calloc(1, sizeof *e);
    if (e) { /* without memory the call runs unremembered */
      e->method = method;
      strncpy(e->id, id, STM_REQUEST_ID_MAX);
      memcpy(e->digest, digest, STM_REQUEST_ID_DIGEST);
      *pp = e;
      r->count++;
      r->bytes += sizeof *e;
    }
  }
  pthread_mutex_unlock(&r->mu);
  return v;
}

void **stm_request_ids_finish(struct stm_request_ids *r, size_t method,
                              const char *id, bool ok, const void *answer,
                              size_t answer_len, int64_t now_ns, size_t *n) {
  pthread_mutex_lock(&r->mu);
  struct entry *e = *slot_of(r, method, id);
  void **waiters = NULL;
  *n = 0;
  if (e && !e->done) {
    waiters = e->waiters;
    *n = e->n_waiters;
    e->waiters = NULL;
    e->n_waiters = 0;
    void *copy = ok && answer_len ? malloc(answer_len) : NULL;
    if (!ok || (answer_len && copy == NULL)) {
      remove_entry(r, e); /* a failure is not remembered: a retry reruns */
    } else {
      if (answer_len)
        memcpy(copy, answer, answer_len);
      e->answer = copy;
      e->answer_len = answer_len;
      r->bytes += answer_len;
      e->done = true;
      e->done_ns = now_ns;
      e->older = r->newest;
      if (r->newest)
        r->newest->newer = e;
      else
        r->oldest = e;
      r->newest = e;
      expire(r, now_ns);
    }
  }
  pthread_mutex_unlock(&r->mu);
  return waiters;
}
