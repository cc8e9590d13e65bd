/*
 * records_internal.h - what the handler families use of candidates.c and
 * handlers_common.c: the caller identity for audit entries, the
 * registered-key check and the lens inputs of candidates.
 */
#ifndef STM_RECORDS_INTERNAL_H
#define STM_RECORDS_INTERNAL_H

#include "lens.h"
#include "service.h"
#include "storage/store.h"

#include <stdbool.h>
#include <stddef.h>

#define STM__CALLER_MAX 256

/*
 * Who is calling, for the audit log: metadata x-stemedb-caller if given,
 * else the gRPC peer, followed by " for <x-forwarded-for>" when a gateway
 * forwarded an HTTP client address.
 */
void stm__call_identity(struct stm_grpc_call *call, char *out, size_t len);

/*
 * Whom a per-client limit counts (the same rule as the rate limiter's):
 * "key:ID" when authenticated, else "agent:X" from x-agent-id, else
 * "addr:HOST" (the first x-forwarded-for address from a trusted proxy,
 * else the peer's host).
 */
void stm__client_key(struct stm_grpc_call *call, char *out, size_t len);

/* The registered key of the last source looked up, so a batch whose
 * claims share a source reads it once. Zero-init; `id` is borrowed from
 * a claim that outlives the memo. */
struct stm_source_key_memo {
  const char *id;
  bool has_key;
  uint8_t key[STM_PUBLIC_KEY_LEN];
};

/*
 * When c's source is registered with a public key, the claim must carry a
 * signature by that key: returns STM_EPERM (err names `field`) otherwise,
 * 0 when fine, or a storage error. `memo` may be NULL.
 */
int stm__check_source_key(struct stm_service *svc, const struct stm_claim *c,
                          const char *field, struct stm_source_key_memo *memo,
                          struct stm_error *err);

/*
 * Fill cands[0..n) for claims[0..n) (one concept and predicate) from the
 * store as of `view`: effective tier and decayed trust of the source,
 * the trust-weighted vote sum, and whether the claim is in the current
 * epoch. Returns 0 or a storage error.
 */
int stm__fill_candidates(struct stm_service *svc,
                         const struct stm_read_view *view,
                         const struct stm_claim *claims, size_t n,
                         struct stm_lens_candidate *cands,
                         struct stm_error *err);

/* The effective tier of a claim's source as of `view`: the registered
 * source's tier, else the URI-scheme default. */
unsigned stm__source_tier(struct stm_service *svc,
                          const struct stm_read_view *view,
                          const char *source_id);

#endif
