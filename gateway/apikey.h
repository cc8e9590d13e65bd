/*
 * apikey.h - the HTTP client's API key, forwarded to stemedb-server as
 * gRPC metadata "authorization: Bearer KEY" (the server checks it:
 * service/auth.h). REST and the WebSocket upgrade accept "X-API-Key: KEY"
 * or "Authorization: Bearer KEY"; X-API-Key wins when both are sent.
 */
#ifndef STM_GW_APIKEY_H
#define STM_GW_APIKEY_H

#include "gateway/http_parse.h"

#include <stddef.h>

struct lws;

/* Room for "Bearer " and a key; longer keys are not forwarded (and so
 * answered 401 by a server that requires keys). */
#define STM_GW_APIKEY_MAX 256

/* The value to forward as authorization, or "" when the request has none. */
void stm_gw_apikey_from_request(const struct stm_gw_h1_request *rq, char *out,
                                size_t len);
/* X-Agent-Id (printable, at most STM_GW_AGENT_MAX - 1 bytes) into out,
 * or "": whom rate limits and quotas count when there is no key. */
#define STM_GW_AGENT_MAX 128
void stm_gw_apikey_agent(const struct stm_gw_h1_request *rq, char *out,
                         size_t len);
/* The same from a WebSocket handshake that lws parsed. */
void stm_gw_apikey_from_ws(struct lws *wsi, char *out, size_t len);

#endif
