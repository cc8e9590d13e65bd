/*
 * request.h - what a route's builder sees of an HTTP request, and the
 * helpers that read it: query-string parameters (percent-decoded exactly
 * once, here), the {...} path segment, and JSON body members by type.
 * Values are not validated here: the server has the one set of rules, and
 * its INVALID_ARGUMENT comes back as a 400 naming the field.
 *
 * Pure functions; thread-safe.
 */
#ifndef STM_GW_REQUEST_H
#define STM_GW_REQUEST_H

#include "common/error.h"

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a route's `build` sees of the HTTP request. All borrowed. */
struct stm_gw_request {
  const char *param;  /* the {...} path segment as sent (still encoded) */
  const json_t *body; /* the parsed JSON object, NULL for routes without */
  const char *query;  /* raw query string "a=1&b=2", "" when none */
};

/* Allocate message `var` of type T (init: its __init) or return ENOMEM. */
#define STM_GW_NEW_MSG(T, init, var, err)                                      \
  T *var = malloc(sizeof *var);                                                \
  if (var == NULL)                                                             \
    return stm_gw_error_oom(err);                                              \
  init(var)

/* STM_ENOMEM with "out of memory". */
int stm_gw_error_oom(struct stm_error *err);

/* Hand a built message out (rc 0) or free it (rc != 0); returns rc. */
int stm_gw_message_finish(ProtobufCMessage *m, int rc, ProtobufCMessage **out);

/*
 * The raw value of `name` in a query string "a=1&b=2" (not decoded).
 * Returns a pointer to a NUL-terminated copy in buf, or NULL when absent
 * or longer than len - 1.
 */
const char *stm_gw_query_value(const char *query, const char *name, char *buf,
                               size_t len);

/* Percent-decode s[0..len) into out (size outlen, NUL-terminated); '+'
 * becomes a space when `plus`. Returns false on a bad escape, a %00, or
 * when out is too small. */
bool stm_gw_percent_decode(const char *s, size_t len, bool plus, char *out,
                           size_t outlen);

/* Query parameters, decoded once. Absent: 0 and nothing set (*present
 * false). A bad escape or an over-long value: STM_EINVAL naming `name`. */
int stm_gw_query_decoded(const struct stm_gw_request *rq, const char *name,
                         char *buf, size_t len, bool *present,
                         struct stm_error *err);
int stm_gw_query_string(const struct stm_gw_request *rq, const char *name,
                        char **slot, struct stm_error *err);
int stm_gw_query_uint(const struct stm_gw_request *rq, const char *name,
                      uint64_t max, uint64_t *out, struct stm_error *err);
int stm_gw_query_int(const struct stm_gw_request *rq, const char *name,
                     int64_t *out, struct stm_error *err);
int stm_gw_query_bool(const struct stm_gw_request *rq, const char *name,
                      protobuf_c_boolean *out, struct stm_error *err);

/*
 * Parse decimal text as an integer in [min, max] (text need not be
 * NUL-terminated). Returns 0 or STM_EINVAL naming `field`.
 */
int stm_gw_parse_int(const char *field, const char *s, size_t len, int64_t min,
                     int64_t max, int64_t *out, struct stm_error *err);
int stm_gw_parse_uint(const char *field, const char *s, size_t len,
                      uint64_t *out, struct stm_error *err);

/*
 * The id of a source (or a hash) from the URL path segment, decoded once;
 * when the route has none, from ?id= or the body's "id".
 */
int stm_gw_path_id(const struct stm_gw_request *rq, const char *field,
                   char **slot, struct stm_error *err);

/* A body member; JSON null counts as absent (NULL). */
const json_t *stm_gw_body_member(const json_t *obj, const char *key);
/* A string member into *slot (malloc'd); a NUL byte or another type is
 * STM_EINVAL naming `field`; absent is an error only when `required`. */
int stm_gw_body_string(const json_t *obj, const char *key, const char *field,
                       bool required, char **slot, struct stm_error *err);
/* A number member; *present (nullable) says whether it was given. */
int stm_gw_body_number(const json_t *obj, const char *key, const char *field,
                       bool required, double *out, bool *present,
                       struct stm_error *err);
/* An integer in [min, max] from a JSON integer, an integral real or a
 * decimal string (64-bit values do not survive every JSON client as
 * numbers); anything else is STM_EINVAL naming `field`. */
int stm_gw_json_int64(const json_t *v, const char *field, int64_t min,
                      int64_t max, int64_t *out, struct stm_error *err);
/* An optional int64 member: absent leaves *out as it is. */
int stm_gw_body_int64(const json_t *obj, const char *key, const char *field,
                      int64_t *out, struct stm_error *err);

#endif
