/*
 * cors.h - Cross-Origin Resource Sharing for browsers (docs/security.md):
 * only the origins listed in --allowed-origins / STEMEDB_ALLOWED_ORIGINS
 * (comma-separated, exact "scheme://host[:port]"; none by default, and no
 * wildcard) get Access-Control-* headers; a preflight (OPTIONS with
 * Origin and Access-Control-Request-Method) is answered by the gateway.
 */
#ifndef STM_GW_CORS_H
#define STM_GW_CORS_H

#include "gateway/http_parse.h"

#include <stdbool.h>
#include <stddef.h>

/* Set the allowed origins (copied) once at start; NULL or "": none. */
void stm_gw_cors_configure(const char *origins);

/* Is this request a CORS preflight? */
bool stm_gw_cors_is_preflight(const struct stm_gw_h1_request *rq);

/*
 * The header lines ("name: value\r\n") for the request's Origin into out
 * (a preflight's also name methods, headers and max-age). Returns false
 * when the request has an Origin that is not allowed (out is then "");
 * true otherwise (out "" when there is no Origin).
 */
bool stm_gw_cors_headers(const struct stm_gw_h1_request *rq, bool preflight,
                         char *out, size_t len);

#endif
