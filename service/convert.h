/*
 * convert.h - protobuf-c messages <-> storage domain structs, with the
 * validation of DESIGN.md applied on the way in. The only place in
 * service/ that knows both representations.
 */
#ifndef STM_CONVERT_H
#define STM_CONVERT_H

#include "common/arena.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "storage/store.h"

/*
 * Validate an AssertRequest and fill an init'ed claim with its content.
 * `prefix` is prepended to field names in errors ("assertions[2]." for a
 * batch, "" otherwise). timestamp_ns 0 stays 0 ("not stated by the
 * client"; readers use the commit time instead, see docs/api.md).
 * Verifies the Ed25519 signature when one is given. Returns 0 or
 * STM_EINVAL with err naming the field; the claim is destroyed on error.
 */
int stm_convert_assert_request(const Stemedb__V1__AssertRequest *req,
                               const char *prefix, struct stm_claim *out,
                               struct stm_error *err);

/* Lowercase hex of (data, len), allocated in the arena. */
char *stm_convert_hex(struct stm_arena *a, const uint8_t *data, size_t len);

/* Build an Assertion message in the arena (strings copied into it). */
Stemedb__V1__Assertion *stm_convert_claim(const struct stm_claim *c,
                                          struct stm_arena *a);
Stemedb__V1__Value *stm_convert_value(const struct stm_value *v,
                                      struct stm_arena *a);
/* Vote, Epoch and Source messages in the arena (replies and Watch events). */
Stemedb__V1__Vote *stm_convert_vote(const struct stm_vote *v,
                                    struct stm_arena *a);
Stemedb__V1__Epoch *stm_convert_epoch(const struct stm_epoch *e,
                                      struct stm_arena *a);
Stemedb__V1__Source *stm_convert_source(const struct stm_source *s,
                                        struct stm_arena *a);

#endif
