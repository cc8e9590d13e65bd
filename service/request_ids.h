/*
 * request_ids.h - remembers the outcome of writes by their client-supplied
 * request_id, so a retry is answered from the first attempt instead of
 * writing again (docs/api.md "Retries").
 *
 * Keys are (method, request_id). An entry is PENDING while its first call
 * runs; calls that arrive meanwhile with the same key wait on it (opaque
 * waiter pointers the caller answers). A success is remembered with its
 * encoded answer for `window_ns` after it finished; a failure is forgotten
 * (the retry runs again), its waiters get the same failure. A key reused
 * with a different request (by digest) is a client error. Memory is
 * bounded: past `max_entries` or `max_bytes` the oldest finished entries go
 * first. In memory only: a restart forgets (content identity still covers
 * claims and votes, docs/api.md).
 *
 * Thread-safe (one mutex).
 */
#ifndef STM_REQUEST_IDS_H
#define STM_REQUEST_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STM_REQUEST_ID_DIGEST 16
#define STM_REQUEST_ID_MAX 128

struct stm_request_ids;

enum stm_request_ids_verdict {
  STM_REQUEST_ID_NEW,      /* run it; report with stm_request_ids_finish */
  STM_REQUEST_ID_DONE,     /* answered: *answer holds the remembered reply */
  STM_REQUEST_ID_WAITING,  /* the first call runs; `waiter` was queued */
  STM_REQUEST_ID_MISMATCH, /* the id was used for a different request */
};

/* NULL on allocation failure. window_ns > 0. */
struct stm_request_ids *
stm_request_ids_new(int64_t window_ns, size_t max_entries, size_t max_bytes);
/* Frees everything; no waiters may remain. NULL is a no-op. */
void stm_request_ids_delete(struct stm_request_ids *r);

/*
 * Look up (method, id) at time now_ns. On DONE, *answer and *answer_len
 * receive a malloc'd copy of the remembered reply (caller frees; may be
 * NULL with length 0 for an empty reply).
 */
enum stm_request_ids_verdict
stm_request_ids_begin(struct stm_request_ids *r, size_t method, const char *id,
                      const uint8_t digest[STM_REQUEST_ID_DIGEST], void *waiter,
                      int64_t now_ns, void **answer, size_t *answer_len);

/*
 * The first call of (method, id) ended: ok with the encoded reply (copied)
 * or failed. Returns the waiters queued meanwhile (malloc'd array, *n of
 * them; NULL when none) for the caller to answer the same way.
 */
void **stm_request_ids_finish(struct stm_request_ids *r, size_t method,
                              const char *id, bool ok, const void *answer,
                              size_t answer_len, int64_t now_ns, size_t *n);

#endif
