/*
 * json.h - the JSON of stemedb.v1 messages, shared by the REST gateway
 * (replies and WebSocket events) and the CLI (--json output), and the JSON
 * plumbing both need: strict parsing of a request body, compact dumping
 * with shortest round-trip reals, and the error body.
 *
 * Conventions: renderers return a new json_t reference (the caller
 * json_decref's it), or NULL only when out of memory; a NULL message
 * renders as JSON null; empty optional strings are omitted; 64-bit
 * integers are JSON integers. A value is a JSON string, number or boolean,
 * or {"ref": "<path or hash>"}.
 *
 * Pure functions, no I/O; thread-safe.
 */
#ifndef STM_JSON_H
#define STM_JSON_H

#include "common/error.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Parse a request body that must be one JSON object. Rejects an empty
 * body, invalid UTF-8, malformed JSON (the message gives line, column and
 * byte offset), duplicate keys, non-objects and a string holding a NUL
 * (\u0000; the error names its field, "assertions[1].value", with the
 * server's message for a NUL in a gRPC string) with STM_EINVAL. On success
 * *out is a new reference.
 */
int stm_json_parse(const char *body, size_t len, json_t **out,
                   struct stm_error *err);

/* The gateway's request limits (--max-json-depth, --max-json-string-bytes). */
#define STM_JSON_DEFAULT_MAX_DEPTH 32
#define STM_JSON_DEFAULT_MAX_STRING 65536
struct stm_json_limits {
  size_t max_depth;  /* nested objects/arrays; 0: the default */
  size_t max_string; /* bytes of any decoded string or key; 0: the default */
};

/*
 * stm_json_parse with limits: nesting deeper than max_depth is refused
 * before jansson parses anything (so its recursion stays bounded), a longer
 * string after, naming its field ("assertions[2].value") and the flag.
 * Both STM_EINVAL (HTTP 400). NULL limits: the defaults.
 */
int stm_json_parse_limited(const char *body, size_t len,
                           const struct stm_json_limits *limits, json_t **out,
                           struct stm_error *err);

/*
 * Serialize compactly, printing every real with the fewest digits that
 * read back to the same double (0.9, not 0.90000000000000002). Returns a
 * malloc'd NUL-terminated string (caller frees) and its length in *len,
 * or NULL when out of memory.
 */
char *stm_json_dump(const json_t *j, size_t *len);

/* {"error":{"code":..,"message":..,"field":..}}; `field` is omitted when
 * NULL or empty. */
json_t *stm_json_render_error(const char *code, const char *message,
                              const char *field);

/* Building blocks for renderers (here and in the gateway's resources). */
/* Server strings are UTF-8 by contract; anything else becomes null rather
 * than invalid JSON. */
static inline json_t *stm_json_str(const char *s) {
  json_t *v = json_string(s ? s : "");
  return v ? v : json_null();
}

static inline json_t *stm_json_uint(uint64_t v) {
  return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static inline void stm_json_put(json_t *o, const char *key, json_t *v) {
  json_object_set_new(o, key, v);
}

static inline void stm_json_put_opt_str(json_t *o, const char *key,
                                        const char *s) {
  if (s && *s)
    stm_json_put(o, key, stm_json_str(s));
}

/* Claims (claims.c). */
json_t *stm_json_render_value(const Stemedb__V1__Value *v);
json_t *stm_json_render_assertion(const Stemedb__V1__Assertion *a);
json_t *stm_json_render_assert_response(const Stemedb__V1__AssertResponse *r);
json_t *stm_json_render_assert_batch_response(
    const Stemedb__V1__AssertBatchResponse *r);
json_t *stm_json_render_query_response(const Stemedb__V1__QueryResponse *r);
json_t *stm_json_render_status_response(const Stemedb__V1__StatusResponse *s);

/* Records (records.c); a NULL epoch renders as null. */
json_t *stm_json_render_vote(const Stemedb__V1__Vote *v);
json_t *stm_json_render_epoch(const Stemedb__V1__Epoch *e);
json_t *stm_json_render_source(const Stemedb__V1__Source *s);

#endif
