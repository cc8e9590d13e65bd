/*
 * resources.h - one request parser and reply renderer per REST resource,
 * each in its own file: claims.c (assert, batch, query, get, skeptic),
 * votes.c, epochs.c, sources.c and history.c (trace, audit, concepts).
 * routes.c puts them in the route table.
 *
 * Builders read the URL, query string and JSON body (request.h) for types
 * and shapes only; the server validates values, so a fault has one rule
 * and one message (its INVALID_ARGUMENT, answered 400 naming the field).
 * Renderers turn the OK reply into JSON (json/json.h) and may set the HTTP
 * status (201 when something was created).
 *
 * Pure functions; thread-safe.
 */
#ifndef STM_GW_RESOURCES_H
#define STM_GW_RESOURCES_H

#include "gateway/request.h"
#include "stemedb/v1/stemedb.pb-c.h"

/* Builders: STM_EINVAL + err (-> 400) or STM_ENOMEM. */
typedef int stm_gw_build_fn(const struct stm_gw_request *rq,
                            ProtobufCMessage **out, struct stm_error *err);
/* Renderers: JSON for an OK reply; *status is preset to 200. */
typedef json_t *stm_gw_render_fn(const ProtobufCMessage *reply, int *status);

/* Claims. The JSON forms are also used directly by tests. */
stm_gw_build_fn stm_gw_build_assert, stm_gw_build_assert_batch,
    stm_gw_build_query, stm_gw_build_get, stm_gw_build_skeptic;
stm_gw_render_fn stm_gw_render_assert, stm_gw_render_assert_batch,
    stm_gw_render_assertion, stm_gw_render_query;
/* An AssertRequest from a JSON object; `prefix` goes in front of field
 * names ("" or "assertions[3]."). */
int stm_gw_parse_assert_request(const json_t *obj, const char *prefix,
                                Stemedb__V1__AssertRequest **out,
                                struct stm_error *err);
/* {"assertions": [ 1..STM_MAX_BATCH AssertRequest objects ]}. */
int stm_gw_parse_assert_batch(const json_t *obj,
                              Stemedb__V1__AssertBatchRequest **out,
                              struct stm_error *err);
int stm_gw_parse_query_request(const json_t *obj,
                               Stemedb__V1__QueryRequest **out,
                               struct stm_error *err);
/* A GetRequest from the URL's hash and optional query values (NULL when
 * absent) for as_of_sequence and as_of_time_ns. */
int stm_gw_parse_get_request(const char *hash, size_t hash_len,
                             const char *as_of_sequence,
                             const char *as_of_time_ns,
                             Stemedb__V1__GetRequest **out,
                             struct stm_error *err);

/* Votes, epochs, sources. */
stm_gw_build_fn stm_gw_build_vote, stm_gw_build_start_epoch,
    stm_gw_build_put_source, stm_gw_build_get_source, stm_gw_build_list_sources;
stm_gw_render_fn stm_gw_render_vote, stm_gw_render_start_epoch,
    stm_gw_render_put_source, stm_gw_render_source, stm_gw_render_list_sources;

/* History: trace, audit, concepts. */
stm_gw_build_fn stm_gw_build_trace, stm_gw_build_audit,
    stm_gw_build_list_concepts;
stm_gw_render_fn stm_gw_render_trace, stm_gw_render_audit,
    stm_gw_render_list_concepts;

#endif
