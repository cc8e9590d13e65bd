/*
 * libFuzzer target for the gateway's request path, I/O aside: bytes are
 * parsed as an HTTP/1.1 request head (gateway/http_parse.c); a complete
 * head is routed, its Content-Length body parsed as JSON (json/json.c) and
 * the route's builder maps URL + JSON to the gRPC request (gateway/),
 * as http_conn.c's dispatch does. Every built request must pack and
 * unpack again to the same size. Build: scripts/fuzz.sh.
 */
#include "gateway/http_parse.h"
#include "gateway/routes.h"
#include "json/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dup_span(const struct stm_gw_h1_span *s) {
  char *p = malloc(s->len + 1);
  if (p == NULL)
    abort();
  memcpy(p, s->p, s->len);
  p[s->len] = '\0';
  return p;
}

/* A span the parser hands out must lie inside the buffer. */
static void check_span(const struct stm_gw_h1_span *s, const char *buf,
                       size_t len) {
  if (s->len && (s->p < buf || s->p + s->len > buf + len))
    abort();
}

static void build_and_check(const struct stm_gw_route *r, const char *param,
                            const char *query, const char *body,
                            size_t body_len) {
  struct stm_error err;
  stm_error_clear(&err);
  json_t *json = NULL;
  /* The gateway's own limits path (small, so the fuzzer reaches both
   * refusals: nesting before parsing, a long string after). */
  static const struct stm_json_limits lim = {.max_depth = 8, .max_string = 64};
  if (r->body &&
      stm_json_parse_limited(body, body_len, &lim, &json, &err) != 0) {
    if (err.message[0] == '\0')
      abort(); /* every refusal says why */
    return;
  }
  struct stm_gw_request rq = {param, json, query};
  ProtobufCMessage *req = NULL;
  int rc = r->build(&rq, &req, &err);
  json_decref(json);
  if (rc != 0) {
    if (req != NULL || err.message[0] == '\0')
      abort();
    return;
  }
  size_t n = protobuf_c_message_get_packed_size(req);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL || protobuf_c_message_pack(req, buf) != n)
    abort();
  ProtobufCMessage *back = protobuf_c_message_unpack(r->request, NULL, n, buf);
  if (back == NULL || protobuf_c_message_get_packed_size(back) != n)
    abort();
  protobuf_c_message_free_unpacked(back, NULL);
  protobuf_c_message_free_unpacked(req, NULL);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  struct stm_gw_h1_request *rq = malloc(sizeof *rq);
  if (rq == NULL)
    abort();
  enum stm_gw_h1_result res = stm_gw_h1_parse(buf, size, 8192, rq);
  if (res == STM_GW_H1_ERROR &&
      (rq->status < 400 || rq->status > 505 || rq->message[0] == '\0'))
    abort();
  if (res != STM_GW_H1_DONE) {
    free(rq);
    return 0;
  }
  if (rq->head_len > size || rq->n_headers > STM_GW_H1_MAX_HEADERS)
    abort();
  check_span(&rq->method, buf, size);
  check_span(&rq->target, buf, size);
  check_span(&rq->path, buf, size);
  check_span(&rq->query, buf, size);
  for (size_t i = 0; i < rq->n_headers; i++) {
    check_span(&rq->headers[i].name, buf, size);
    check_span(&rq->headers[i].value, buf, size);
  }
  const struct stm_gw_h1_span *te = stm_gw_h1_header(rq, "transfer-encoding");
  if (te)
    (void)stm_gw_h1_has_token(te, "chunked");

  char *method = dup_span(&rq->method), *path = dup_span(&rq->path);
  char *query = dup_span(&rq->query);
  enum stm_gw_method m = stm_gw_method_parse(method);
  const char *param = NULL;
  size_t param_len = 0;
  unsigned allowed = 0;
  const struct stm_gw_route *r = stm_gw_route_match(
      STM_GW_LISTENER_API, m, path, &param, &param_len, &allowed);
  if (r == NULL)
    r = stm_gw_route_match(STM_GW_LISTENER_CLUSTER, m, path, &param, &param_len,
                           &allowed);
  if (r != NULL && r->build != NULL) {
    struct stm_gw_h1_span ps = {param, param_len};
    char *pcopy = dup_span(&ps);
    size_t body_len = size - rq->head_len;
    if (rq->content_length >= 0 && (size_t)rq->content_length < body_len)
      body_len = (size_t)rq->content_length;
    build_and_check(r, pcopy, query, buf + rq->head_len, body_len);
    free(pcopy);
  }
  free(method);
  free(path);
  free(query);
  free(rq);
  return 0;
}
