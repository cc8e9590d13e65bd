#include "gateway/apikey.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* "Bearer " + key into out, or "" when the key is empty, too long or holds
 * characters a header value may not (control characters). */
static void put(const char *key, size_t klen, char *out, size_t len) {
  out[0] = '\0';
  while (klen && (*key == ' ' || *key == '\t'))
    key++, klen--;
  while (klen && (key[klen - 1] == ' ' || key[klen - 1] == '\t'))
    klen--;
  if (klen == 0 || klen + 8 > len)
    return;
  for (size_t i = 0; i < klen; i++)
    if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
      return;
  snprintf(out, len, "Bearer %.*s", (int)klen, key);
}

/* "Bearer KEY" (scheme in any case) -> KEY into out. */
static void put_bearer(const char *v, size_t vlen, char *out, size_t len) {
  out[0] = '\0';
  if (vlen > 7 && strncasecmp(v, "bearer ", 7) == 0)
    put(v + 7, vlen - 7, out, len);
}

void stm_gw_apikey_from_request(const struct stm_gw_h1_request *rq, char *out,
                                size_t len) {
  const struct stm_gw_h1_span *k = stm_gw_h1_header(rq, "x-api-key");
  if (k) {
    put(k->p, k->len, out, len);
    return;
  }
  const struct stm_gw_h1_span *a = stm_gw_h1_header(rq, "authorization");
  if (a)
    put_bearer(a->p, a->len, out, len);
  else
    out[0] = '\0';
}

void stm_gw_apikey_agent(const struct stm_gw_h1_request *rq, char *out,
                         size_t len) {
  const struct stm_gw_h1_span *a = stm_gw_h1_header(rq, "x-agent-id");
  char tmp[STM_GW_AGENT_MAX + 8];
  out[0] = '\0';
  if (a == NULL)
    return;
  put(a->p, a->len, tmp, sizeof tmp); /* "Bearer " + the trimmed value */
  if (tmp[0])
    snprintf(out, len, "%s", tmp + 7);
}

void stm_gw_apikey_from_ws(struct lws *wsi, char *out, size_t len) {
  char v[STM_GW_APIKEY_MAX];
  out[0] = '\0';
#if defined(LWS_WITH_CUSTOM_HEADERS)
  int n = lws_hdr_custom_copy(wsi, v, (int)sizeof v, "x-api-key:", 10);
  if (n > 0) {
    put(v, (size_t)n, out, len);
    return;
  }
#endif
  int m = lws_hdr_copy(wsi, v, (int)sizeof v, WSI_TOKEN_HTTP_AUTHORIZATION);
  if (m > 0)
    put_bearer(v, (size_t)m, out, len);
}
