#include "gateway/cors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *allowed; /* comma-separated, set once before serving */

void stm_gw_cors_configure(const char *origins) {
  free(allowed);
  allowed = origins && *origins ? strdup(origins) : NULL;
}

bool stm_gw_cors_is_preflight(const struct stm_gw_h1_request *rq) {
  return rq->method.len == 7 && memcmp(rq->method.p, "OPTIONS", 7) == 0 &&
         stm_gw_h1_header(rq, "origin") &&
         stm_gw_h1_header(rq, "access-control-request-method");
}

static bool origin_allowed(const char *o, size_t n) {
  for (const char *p = allowed ? allowed : ""; *p;) {
    p += strspn(p, ", \t");
    size_t m = strcspn(p, ", \t");
    if (m && m == n && strncasecmp(p, o, n) == 0)
      return true;
    p += m;
  }
  return false;
}

bool stm_gw_cors_headers(const struct stm_gw_h1_request *rq, bool preflight,
                         char *out, size_t len) {
  out[0] = '\0';
  const struct stm_gw_h1_span *o = stm_gw_h1_header(rq, "origin");
  if (o == NULL)
    return true;
  if (!origin_allowed(o->p, o->len) || o->len > 200)
    return false;
  int n = snprintf(out, len,
                   "access-control-allow-origin: %.*s\r\nvary: origin\r\n",
                   (int)o->len, o->p);
  if (n < 0 || (size_t)n >= len)
    return (out[0] = '\0', false);
  if (preflight)
    snprintf(out + n, len - (size_t)n,
             "access-control-allow-methods: GET, POST, PUT, DELETE\r\n"
             "access-control-allow-headers: content-type, authorization, "
             "x-api-key, x-agent-id\r\naccess-control-max-age: 600\r\n");
  else
    snprintf(out + n, len - (size_t)n,
             "access-control-expose-headers: retry-after, x-ratelimit-limit, "
             "x-ratelimit-remaining, x-ratelimit-reset, x-quota-limit, "
             "x-quota-remaining, x-quota-reset\r\n");
  return true;
}
