/*
 * json_records.h - REST routes of issue 4 (votes, epochs, sources, trace,
 * audit, concepts, skeptic): request builders from the URL, query string
 * and JSON body, and renderers of the replies. Same conventions as
 * json_map.h (pure, thread-safe, validation with the server's field
 * names, 64-bit integers as JSON integers or decimal strings).
 *
 * Routes (routes.c has the table):
 *   POST /v1/votes            {"assertion_hash","voter_id","weight"}
 *   POST /v1/epochs           {"concept_path","predicate","reason"}
 *   PUT  /v1/sources/{id}     {"name","tier","trust","public_key"}; the id
 *                             is percent-decoded ("fda%3A%2F%2Fx")
 *   GET  /v1/sources/{id}     GET /v1/sources?limit=&page_token=
 *   GET  /v1/trace/{hash}?as_of_sequence=&as_of_time_ns=
 *   GET  /v1/audit?after_sequence=&limit=
 *   GET  /v1/concepts?prefix=&limit=&page_token=
 *   GET  /v1/skeptic?concept_path=&predicate=&as_of_sequence=&as_of_time_ns=
 *        &include_descendants=&current_epoch_only=
 * Query-string values are percent-decoded ('+' is a space).
 */
#ifndef STM_GW_JSON_RECORDS_H
#define STM_GW_JSON_RECORDS_H

#include "routes.h"
#include "stemedb/v1/stemedb.pb-c.h"

int stm_gw_build_vote(const struct stm_gw_request *rq, ProtobufCMessage **out,
                      struct stm_error *err);
int stm_gw_build_start_epoch(const struct stm_gw_request *rq,
                             ProtobufCMessage **out, struct stm_error *err);
int stm_gw_build_put_source(const struct stm_gw_request *rq,
                            ProtobufCMessage **out, struct stm_error *err);
int stm_gw_build_get_source(const struct stm_gw_request *rq,
                            ProtobufCMessage **out, struct stm_error *err);
int stm_gw_build_list_sources(const struct stm_gw_request *rq,
                              ProtobufCMessage **out, struct stm_error *err);
int stm_gw_build_trace(const struct stm_gw_request *rq, ProtobufCMessage **out,
                       struct stm_error *err);
int stm_gw_build_audit(const struct stm_gw_request *rq, ProtobufCMessage **out,
                       struct stm_error *err);
int stm_gw_build_list_concepts(const struct stm_gw_request *rq,
                               ProtobufCMessage **out, struct stm_error *err);
int stm_gw_build_skeptic(const struct stm_gw_request *rq,
                         ProtobufCMessage **out, struct stm_error *err);

/* The JSON of one Vote / Epoch / Source, as in REST replies and WebSocket
 * events (a NULL epoch: JSON null). */
json_t *stm_gw_vote_to_json(const Stemedb__V1__Vote *v);
json_t *stm_gw_epoch_to_json(const Stemedb__V1__Epoch *e);
json_t *stm_gw_source_to_json(const Stemedb__V1__Source *s);

json_t *stm_gw_render_vote(const ProtobufCMessage *msg, int *status);
json_t *stm_gw_render_start_epoch(const ProtobufCMessage *msg, int *status);
json_t *stm_gw_render_put_source(const ProtobufCMessage *msg, int *status);
json_t *stm_gw_render_source(const ProtobufCMessage *msg, int *status);
json_t *stm_gw_render_list_sources(const ProtobufCMessage *msg, int *status);
json_t *stm_gw_render_trace(const ProtobufCMessage *msg, int *status);
json_t *stm_gw_render_audit(const ProtobufCMessage *msg, int *status);
json_t *stm_gw_render_list_concepts(const ProtobufCMessage *msg, int *status);

/* Percent-decode s[0..len) into out (size outlen, NUL-terminated); '+'
 * becomes a space when `plus`. Returns false on a bad escape or when out
 * is too small. */
bool stm_gw_percent_decode(const char *s, size_t len, bool plus, char *out,
                           size_t outlen);

#endif
