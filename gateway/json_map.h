/*
 * json_map.h - REST/JSON bodies <-> protobuf-c messages of stemedb.v1.
 *
 * Conventions:
 *  1. Pure functions: no I/O, no globals; thread-safe.
 *  2. Requests are validated here with common/validate.h, with the field
 *     names the server uses ("concept_path", "assertions[2].predicate"), so
 *     a bad request is answered 400 without a round trip. Unknown JSON
 *     fields are ignored.
 *  3. Request messages are malloc'd, strings included; free them with
 *     protobuf_c_message_free_unpacked(&msg->base, NULL). On error *out is
 *     left NULL and nothing is leaked.
 *  4. 64-bit integers (timestamp_ns, sequence, ...) are accepted as JSON
 *     integers, as integral JSON reals, or as decimal strings; they are
 *     emitted as JSON integers. Numbers out of range are rejected.
 *  5. Renderers return a new json_t reference (caller json_decref's it), or
 *     NULL only when out of memory. Empty optional strings are omitted.
 *
 * Value mapping: JSON string <-> string_value, number <-> number_value,
 * true/false <-> bool_value, {"ref": "<path or hash>"} <-> ref_value.
 */
#ifndef STM_GW_JSON_MAP_H
#define STM_GW_JSON_MAP_H

#include "common/error.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Parse a request body that must be one JSON object. Rejects an empty
 * body, invalid UTF-8, malformed JSON (the message gives line, column and
 * byte offset), duplicate keys and non-objects, with STM_EINVAL. On success
 * *out is a new reference.
 */
int stm_gw_json_parse(const char *body, size_t len, json_t **out,
                      struct stm_error *err);

/*
 * An AssertRequest from a JSON object. `prefix` goes in front of field
 * names in errors ("" or "assertions[3]."). Fields: concept_path,
 * predicate, value (required); source or source_id, confidence,
 * parent_hash, timestamp_ns, signature + public_key (optional).
 */
int stm_gw_json_to_assert_request(const json_t *obj, const char *prefix,
                                  Stemedb__V1__AssertRequest **out,
                                  struct stm_error *err);

/* {"assertions": [ ...1..STM_MAX_BATCH AssertRequest objects... ]}. */
int stm_gw_json_to_assert_batch(const json_t *obj,
                                Stemedb__V1__AssertBatchRequest **out,
                                struct stm_error *err);

/*
 * A QueryRequest: concept_path (required), predicate, lens, as_of_sequence,
 * as_of_time_ns, include_descendants, limit, current_epoch_only.
 */
int stm_gw_json_to_query_request(const json_t *obj,
                                 Stemedb__V1__QueryRequest **out,
                                 struct stm_error *err);

/*
 * A GetRequest from the hash of the URL path and optional query-string
 * values (NULL when absent) for as_of_sequence and as_of_time_ns.
 */
int stm_gw_get_request_new(const char *hash, size_t hash_len,
                           const char *as_of_sequence,
                           const char *as_of_time_ns,
                           Stemedb__V1__GetRequest **out,
                           struct stm_error *err);

/*
 * Parse decimal text as an integer in [min, max] (text need not be
 * NUL-terminated). Returns 0 or STM_EINVAL naming `field`.
 */
int stm_gw_parse_int(const char *field, const char *s, size_t len, int64_t min,
                     int64_t max, int64_t *out, struct stm_error *err);
int stm_gw_parse_uint(const char *field, const char *s, size_t len,
                      uint64_t *out, struct stm_error *err);

/* Renderers (see convention 5). A NULL message renders as JSON null. */
json_t *stm_gw_value_to_json(const Stemedb__V1__Value *v);
json_t *stm_gw_assertion_to_json(const Stemedb__V1__Assertion *a);
json_t *stm_gw_assert_response_to_json(const Stemedb__V1__AssertResponse *r);
json_t *
stm_gw_assert_batch_response_to_json(const Stemedb__V1__AssertBatchResponse *r);
json_t *stm_gw_query_response_to_json(const Stemedb__V1__QueryResponse *r);
json_t *stm_gw_status_response_to_json(const Stemedb__V1__StatusResponse *s);

/*
 * The error body {"error":{"code":..,"message":..,"field":..}}; `field`
 * is omitted when NULL or empty.
 */
json_t *stm_gw_error_json(const char *code, const char *message,
                          const char *field);

/*
 * Serialize compactly, printing every real with the fewest digits that
 * read back to the same double (0.9, not 0.90000000000000002). Returns a
 * malloc'd NUL-terminated string (caller frees) and its length in *len,
 * or NULL when out of memory.
 */
char *stm_gw_json_dump(const json_t *j, size_t *len);

#endif
