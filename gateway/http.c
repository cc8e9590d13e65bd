#include "http.h"

#include "common/buf.h"
#include "common/log.h"
#include "common/validate.h"
#include "json_map.h"
#include "metrics.h"
#include "status_map.h"
#include "upstream.h"
#include "ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define WRITE_CHUNK (32 * 1024)
#define PARAM_MAX 256
#define QUERY_MAX 1024
#define KEEPALIVE_SECS 60

struct listener {
  struct stm_gw_http *gw;
  enum stm_gw_listener kind;
  const char *flag; /* for messages: "--http-listen" */
  struct lws_vhost *vh;
  char host[256];   /* as configured: "", an address, a name or an iface */
  char numeric[64]; /* host resolved to an address, "" when it was not */
  int port;
};

struct stm_gw_http {
  struct lws_context *ctx;
  struct listener listeners[2];
  struct stm_gw_upstream *up;
  struct stm_gw_ws *ws; /* GET /v1/watch (ws.h) */
  struct stm_gw_metrics *metrics;
  struct stm_gw_env env;
  char *server;
  int timeout_ms, grace_ms;
  atomic_bool stop;
  bool hard_stop;
  long draining; /* requests begun before the stop and not yet answered */
  lws_sorted_usec_list_t grace_timer;
  unsigned char wbuf[LWS_PRE + WRITE_CHUNK];
};

/*
 * Per-connection state (lws allocates and zeroes it; with keep-alive it
 * serves one request after another). `active` spans one request, from its
 * headers to the last byte of the response or the connection's end.
 */
struct session {
  struct stm_gw_http *gw;
  struct lws *wsi;
  bool active;
  const struct stm_gw_route *route;
  const char *label; /* metrics route label */
  enum stm_gw_method method;
  lws_usec_t t0;
  char param[PARAM_MAX];
  char query[QUERY_MAX];
  struct stm_buf body;
  bool reading_body;
  bool too_large;
  struct stm_gw_call *call;
  struct stm_gw_response resp;
  bool have_resp, headers_sent, close_after;
  bool head;        /* a HEAD request: headers only */
  bool before_stop; /* arrived before stm_gw_http_stop: finish it */
  bool body_done;   /* BODY_COMPLETION seen for this request */
  size_t sent;
};

/* ---- addresses ----------------------------------------------------------- */

int stm_gw_parse_listen(const char *field, const char *addr, char *host,
                        size_t host_len, int *port, struct stm_error *err) {
  const char *colon = strrchr(addr, ':');
  const char *h = addr;
  size_t hlen = colon ? (size_t)(colon - addr) : 0;
  if (colon == NULL || colon[1] == '\0')
    return stm_error_set(err, STM_EINVAL, field,
                         "%s must be host:port, got \"%s\"", field, addr);
  if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
    h++;
    hlen -= 2;
  } else if (memchr(h, ':', hlen)) {
    return stm_error_set(err, STM_EINVAL, field,
                         "%s: write IPv6 addresses as [addr]:port, got \"%s\"",
                         field, addr);
  }
  char *end;
  errno = 0;
  long p = strtol(colon + 1, &end, 10);
  if (errno || *end != '\0' || p < 0 || p > 65535)
    return stm_error_set(err, STM_EINVAL, field,
                         "%s: port must be 0..65535, got \"%s\"", field,
                         colon + 1);
  if (hlen >= host_len)
    return stm_error_set(err, STM_EINVAL, field, "%s: host is too long", field);
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (int)p;
  return 0;
}

/* lws reports a failed bind only in its log; redo the bind to learn why. */
static void explain_bind_failure(const struct listener *l, char *buf,
                                 size_t len) {
  char port[8];
  snprintf(port, sizeof port, "%d", l->port);
  struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICHOST,
                           .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  const char *why = "cannot bind";
  bool any = l->host[0] == '\0' || strcmp(l->host, "*") == 0 ||
             strcmp(l->host, "0.0.0.0") == 0;
  if (!any && l->numeric[0] == '\0') {
    why = "no such address or network interface";
  } else if (getaddrinfo(any ? "0.0.0.0" : l->numeric, port, &hints, &ai) ==
             0) {
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    int one = 1;
    if (fd >= 0 &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
      why = strerror(errno);
    if (fd >= 0)
      close(fd);
    freeaddrinfo(ai);
  }
  snprintf(buf, len, "cannot listen on %.64s:%d (%s): %.100s", l->host, l->port,
           l->flag, why);
}

/* ---- responses ----------------------------------------------------------- */

static void respond(struct session *s) {
  s->have_resp = true;
  lws_callback_on_writable(s->wsi);
}

static void respond_error(struct session *s, int status, const char *code,
                          const char *message, const char *field) {
  stm_gw_respond_error(&s->resp, status, code, message, field);
  /* Answer at once unless the request body is still arriving: reading it
   * to the end keeps the keep-alive connection in step. */
  if (s->reading_body)
    s->have_resp = true;
  else
    respond(s);
}

static void respond_stm_error(struct session *s, const struct stm_error *err) {
  if (err->code == STM_ENOMEM)
    respond_error(s, 500, "RESOURCE_EXHAUSTED", "the gateway is out of memory",
                  NULL);
  else
    respond_error(s, 400, "INVALID_ARGUMENT", err->message, err->field);
}

/* The request is over (answered, or its connection is gone). */
static void session_finish(struct session *s, int status) {
  if (!s->active)
    return;
  if (s->call) {
    stm_gw_call_detach(s->call);
    s->call = NULL;
  }
  double secs = (double)(lws_now_usecs() - s->t0) / 1e6;
  stm_log_debug("%s %s -> %d (%.3f ms)", stm_gw_method_name(s->method),
                s->label, status, secs * 1e3);
  stm_gw_metrics_end(s->gw->metrics, s->label, stm_gw_method_name(s->method),
                     status, secs);
  stm_gw_response_destroy(&s->resp);
  stm_buf_destroy(&s->body);
  if (s->before_stop)
    s->gw->draining--;
  s->active = false;
}

/* ---- request handling ---------------------------------------------------- */

static enum stm_gw_method request_method(struct lws *wsi) {
  char *uri;
  int uri_len;
  switch (lws_http_get_uri_and_method(wsi, &uri, &uri_len)) {
  case LWSHUMETH_GET:
    return STM_GW_GET;
  case LWSHUMETH_POST:
    return STM_GW_POST;
  case LWSHUMETH_PUT:
    return STM_GW_PUT;
  case LWSHUMETH_PATCH:
    return STM_GW_PATCH;
  case LWSHUMETH_DELETE:
    return STM_GW_DELETE;
  case LWSHUMETH_HEAD:
    return STM_GW_HEAD;
  case LWSHUMETH_OPTIONS:
    return STM_GW_OPTIONS;
  default:
    return STM_GW_OTHER;
  }
}

/* lws splits the query string into fragments at '&'; join them back. */
static bool copy_query(struct lws *wsi, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0;; i++) {
    char frag[QUERY_MAX];
    int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag,
                                  WSI_TOKEN_HTTP_URI_ARGS, i);
    if (n < 0)
      return lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) <= 0;
    if (used + (used ? 1 : 0) + (size_t)n >= len)
      return false;
    if (used)
      buf[used++] = '&';
    memcpy(buf + used, frag, (size_t)n);
    used += (size_t)n;
    buf[used] = '\0';
  }
}

/* application/json, optionally with "; charset=utf-8" (any case). */
static bool is_json_content_type(struct lws *wsi) {
  char ct[128];
  if (lws_hdr_copy(wsi, ct, sizeof ct, WSI_TOKEN_HTTP_CONTENT_TYPE) <= 0)
    return false;
  char *semi = strchr(ct, ';');
  char *param = semi ? semi + 1 : NULL;
  size_t n = semi ? (size_t)(semi - ct) : strlen(ct);
  while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
    n--;
  if (n != 16 || strncasecmp(ct, "application/json", 16) != 0)
    return false;
  if (param == NULL)
    return true;
  param += strspn(param, " \t");
  return strncasecmp(param, "charset=utf-8", 13) == 0 &&
         param[13 + strspn(param + 13, " \t")] == '\0';
}

static bool expects_continue(struct lws *wsi) {
  char buf[32];
  return lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_EXPECT) > 0 &&
         strcasecmp(buf, "100-continue") == 0;
}

/* lws 4.1 ignores "Expect: 100-continue", so such clients (curl among
 * them) would wait a second before sending the body; tell them to go on. */
static int send_continue(struct lws *wsi) {
  static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
  unsigned char buf[LWS_PRE + sizeof line];
  memcpy(buf + LWS_PRE, line, sizeof line - 1);
  return lws_write(wsi, buf + LWS_PRE, sizeof line - 1,
                   LWS_WRITE_HTTP_HEADERS) == (int)sizeof line - 1
             ? 0
             : -1;
}

/* -1: no Content-Length header; -2: not a number. */
static long long content_length(struct lws *wsi) {
  char buf[32];
  if (lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
    return -1;
  char *end;
  errno = 0;
  long long n = strtoll(buf, &end, 10);
  return errno || *end != '\0' || n < 0 ? -2 : n;
}

static bool is_chunked(struct lws *wsi) {
  char buf[64];
  return lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_TRANSFER_ENCODING) >
             0 &&
         strcasestr(buf, "chunked") != NULL;
}

static void respond_too_large(struct session *s) {
  char msg[128];
  snprintf(msg, sizeof msg, "request body is larger than %d bytes",
           STM_MAX_REQUEST_BYTES);
  /* The rest of the body is never read, so the connection cannot be
   * reused: answer at once and close. */
  s->too_large = true;
  s->reading_body = false;
  s->close_after = true;
  stm_buf_destroy(&s->body);
  stm_gw_respond_error(&s->resp, 413, "PAYLOAD_TOO_LARGE", msg, NULL);
  respond(s);
}

static void dispatch(struct session *s) {
  struct stm_gw_http *gw = s->gw;
  const struct stm_gw_route *r = s->route;
  if (r->rpc == NULL) {
    struct stm_gw_reply rep = {GRPC_STATUS_UNIMPLEMENTED, "", NULL};
    stm_gw_respond(r, &rep, &gw->env, &s->resp);
    respond(s);
    return;
  }
  struct stm_error err;
  stm_error_clear(&err);
  json_t *body = NULL;
  if (r->body && stm_gw_json_parse((const char *)s->body.data, s->body.len,
                                   &body, &err) != 0) {
    respond_stm_error(s, &err);
    return;
  }
  stm_buf_destroy(&s->body);
  struct stm_gw_request rq = {s->param, body, s->query};
  ProtobufCMessage *req = NULL;
  int rc = r->build(&rq, &req, &err);
  json_decref(body);
  if (rc) {
    respond_stm_error(s, &err);
    return;
  }
  char client[64] = "";
  lws_get_peer_simple(s->wsi, client, sizeof client);
  rc = stm_gw_upstream_start_for(gw->up, r->rpc, req, gw->timeout_ms, client,
                                 s, &s->call);
  protobuf_c_message_free_unpacked(req, NULL);
  if (rc) {
    respond_error(s, 500, "INTERNAL",
                  "could not start the call to "
                  "stemedb-server",
                  NULL);
    return;
  }
  /* lws must not time the connection out before the call's deadline. */
  lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, gw->timeout_ms / 1000 + 5);
}

/* Body framing: answers 411 / 400 / 413 and returns true when the request
 * cannot be read as it is framed. */
static bool refuse_framing(struct session *s, struct lws *wsi) {
  long long cl = content_length(wsi);
  s->reading_body = cl > 0;
  if (cl < 0 && is_chunked(wsi)) {
    /* lws 4.1 never delivers a chunked request body (the connection just
     * times out), so refuse it up front. */
    s->close_after = true;
    respond_error(s, 411, "LENGTH_REQUIRED",
                  "chunked request bodies are not supported; send "
                  "Content-Length",
                  NULL);
    return true;
  }
  if (cl == -2) {
    s->reading_body = false;
    s->close_after = true;
    respond_error(s, 400, "INVALID_ARGUMENT", "Content-Length is malformed",
                  NULL);
    return true;
  }
  if (cl > STM_MAX_REQUEST_BYTES) {
    respond_too_large(s);
    return true;
  }
  return false;
}

/* While stopping, new requests get a quick 503 (and /v1/health says
 * "unhealthy"), so load balancers and clients move on while the requests
 * that came before the stop finish. */
static void respond_draining(struct session *s) {
  json_t *j = stm_gw_error_json("UNAVAILABLE",
                                "stemedb-gateway is shutting down", NULL);
  if (strcmp(s->route->pattern, "/v1/health") == 0)
    json_object_set_new(j, "status", json_string("unhealthy"));
  stm_gw_response_destroy(&s->resp);
  s->resp.status = 503;
  s->resp.content_type = "application/json";
  s->resp.body = stm_gw_json_dump(j, &s->resp.len);
  json_decref(j);
  if (s->reading_body)
    s->have_resp = true;
  else
    respond(s);
}

/* No route: 405 with Allow when the path exists, else 404. */
static void respond_no_route(struct session *s, const char *path,
                             unsigned allowed) {
  char msg[200], allow[sizeof s->resp.allow];
  if (allowed == 0) {
    snprintf(msg, sizeof msg, "no route for %s %.100s",
             stm_gw_method_name(s->method), path);
    respond_error(s, 404, "NOT_FOUND", msg, NULL);
    return;
  }
  stm_gw_allow_header(allowed & STM_GW_GET ? allowed | STM_GW_HEAD : allowed,
                      allow, sizeof allow);
  snprintf(msg, sizeof msg, "%.100s allows only %s", path, allow);
  respond_error(s, 405, "METHOD_NOT_ALLOWED", msg, NULL);
  memcpy(s->resp.allow, allow, sizeof allow);
}

static void session_start(struct session *s, struct stm_gw_http *gw,
                          struct lws *wsi) {
  session_finish(s, 499); /* defensive: a previous request left over */
  memset(s, 0, sizeof *s);
  s->gw = gw;
  s->wsi = wsi;
  s->active = true;
  s->t0 = lws_now_usecs();
  s->label = "unmatched";
  s->method = request_method(wsi);
  s->head = s->method == STM_GW_HEAD; /* HEAD is GET without the body */
  s->before_stop = !atomic_load(&gw->stop);
  if (s->before_stop)
    gw->draining++;
  stm_gw_metrics_begin(gw->metrics);
}

static int on_request(struct session *s, struct stm_gw_http *gw,
                      const struct listener *l, struct lws *wsi,
                      const char *path) {
  session_start(s, gw, wsi);
  stm_log_debug("request %s %.200s", stm_gw_method_name(s->method), path);
  const char *param = "";
  size_t param_len = 0;
  unsigned allowed = 0;
  s->route = stm_gw_route_match(l->kind, s->head ? STM_GW_GET : s->method, path,
                                &param, &param_len, &allowed);
  if (s->route)
    s->label = s->route->pattern;
  bool stopping = !s->before_stop;
  if (stopping)
    s->close_after = true; /* send keep-alive clients elsewhere */
  if (refuse_framing(s, wsi))
    return 0;
  if (stopping && s->route) {
    respond_draining(s);
    return 0;
  }
  if (!copy_query(wsi, s->query, sizeof s->query)) {
    respond_error(s, 400, "INVALID_ARGUMENT", "query string is too long", NULL);
  } else if (s->route == NULL) {
    respond_no_route(s, path, allowed);
  } else if (param_len >= sizeof s->param) {
    respond_error(s, 404, "NOT_FOUND", "path segment is too long", NULL);
  } else if (s->route->body && !is_json_content_type(wsi)) {
    respond_error(s, 415, "UNSUPPORTED_MEDIA_TYPE",
                  "Content-Type must be application/json", NULL);
  } else {
    memcpy(s->param, param, param_len);
    s->param[param_len] = '\0';
    if (!s->reading_body)
      dispatch(s);
    else if (expects_continue(wsi) && send_continue(wsi))
      return -1;
  }
  return 0;
}

/* Does the body start like "POST /", the request's own request line?
 * No JSON text begins with an upper-case letter. */
static bool is_own_request_line(const struct session *s, const char *p,
                                size_t len) {
  char line[16];
  int n = snprintf(line, sizeof line, "%s /", stm_gw_method_name(s->method));
  size_t cmp = len < (size_t)n ? len : (size_t)n;
  return cmp > 0 && memcmp(p, line, cmp) == 0;
}

static int on_body(struct session *s, const void *in, size_t len) {
  /*
   * lws 4.1.6 mishandles a request with a body that was pipelined behind
   * another one: it hands our own request line and headers back as the
   * body, then calls BODY_COMPLETION in an endless loop. Closing the
   * connection is the only way out; a pipelining client retries the
   * unanswered request on a new connection (RFC 9112, 9.3.2).
   */
  if (s->active && s->body.len == 0 && is_own_request_line(s, in, len)) {
    stm_log_debug("pipelined request with a body: closing the connection");
    return -1;
  }
  if (!s->active || s->too_large || s->have_resp)
    return 0; /* answered already: the rest of the body is dropped */
  if (s->body.len + len > STM_MAX_REQUEST_BYTES) {
    respond_too_large(s);
    return 0;
  }
  if (stm_buf_append(&s->body, in, len) != 0) {
    s->reading_body = false;
    s->close_after = true;
    respond_error(s, 500, "RESOURCE_EXHAUSTED", "the gateway is out of memory",
                  NULL);
  }
  return 0;
}

static int on_body_done(struct session *s) {
  /*
   * With bytes of a pipelined next request buffered behind a body, lws
   * 4.1.6 calls BODY_COMPLETION again and again (a busy loop) until this
   * request is answered, and rx flow control cannot stop it (a flow-
   * controlled h1 connection never becomes writable). So a second
   * completion closes the connection; clients should not pipeline after
   * a POST anyway (RFC 9112, 9.3.2) and retry on a new connection.
   */
  if (s->active && s->body_done) {
    stm_log_debug("request pipelined behind a body: closing the connection");
    return -1;
  }
  s->body_done = true;
  if (!s->active || s->too_large || !s->reading_body)
    return 0;
  s->reading_body = false;
  if (s->have_resp)
    lws_callback_on_writable(s->wsi);
  else
    dispatch(s);
  return 0;
}

static void on_call_done(struct stm_gw_call *call, void *owner, void *arg) {
  struct session *s = owner;
  struct stm_gw_http *gw = arg;
  s->call = NULL;
  grpc_status_code code = stm_gw_call_code(call);
  stm_gw_metrics_upstream_call(gw->metrics, s->route->rpc,
                               stm_gw_code_name(code));
  ProtobufCMessage *msg =
      code == GRPC_STATUS_OK ? stm_gw_call_reply(call, s->route->reply) : NULL;
  struct stm_gw_reply rep = {code, stm_gw_call_message(call), msg};
  stm_gw_respond(s->route, &rep, &gw->env, &s->resp);
  if (msg)
    protobuf_c_message_free_unpacked(msg, NULL);
  respond(s);
}

/* ---- writing ------------------------------------------------------------- */

static int write_headers(struct session *s) {
  unsigned char buf[LWS_PRE + 1024];
  unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
  const struct stm_gw_response *r = &s->resp;
  struct lws *wsi = s->wsi;
  if (lws_add_http_common_headers(wsi, (unsigned)r->status, r->content_type,
                                  r->len, &p, end) ||
      lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                  (const unsigned char *)"no-store", 8, &p,
                                  end))
    return -1;
  if (r->allow[0] &&
      lws_add_http_header_by_name(
          wsi, (const unsigned char *)"allow:", (const unsigned char *)r->allow,
          (int)strlen(r->allow), &p, end))
    return -1;
  if (s->close_after &&
      lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                   (const unsigned char *)"close", 5, &p, end))
    return -1;
  return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

/* One lws_write per WRITEABLE callback: headers first, then the body in
 * chunks, the last one flagged LWS_WRITE_HTTP_FINAL. */
static int on_writeable(struct session *s) {
  if (!s->active || !s->have_resp || s->reading_body)
    return 0;
  if (!s->headers_sent) {
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, 30);
    if (write_headers(s))
      return -1;
    s->headers_sent = true;
    if (s->resp.len > 0 && !s->head) {
      lws_callback_on_writable(s->wsi);
      return 0;
    }
  } else {
    size_t n = s->resp.len - s->sent;
    n = n < WRITE_CHUNK ? n : WRITE_CHUNK;
    bool last = s->sent + n == s->resp.len;
    unsigned char *p = s->gw->wbuf + LWS_PRE;
    memcpy(p, s->resp.body + s->sent, n);
    if (lws_write(s->wsi, p, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
        (int)n)
      return -1;
    s->sent += n;
    if (!last) {
      lws_callback_on_writable(s->wsi);
      return 0;
    }
  }
  bool close = s->close_after;
  session_finish(s, s->resp.status);
  if (close)
    return -1;
  return lws_http_transaction_completed(s->wsi) ? -1 : 0;
}

/* ---- the lws callback ---------------------------------------------------- */

/*
 * Upgrades other than WebSocket on /v1/watch (h2c, websocket elsewhere) are
 * refused with a 501 written on the spot, then the connection is closed.
 * lws 4.1.6 would switch a cleartext connection to HTTP/2 on "Upgrade:
 * h2c", where a request body is lost and the loop can spin.
 */
static int refuse_upgrade(struct lws *wsi, const char *protocol) {
  char msg[160];
  snprintf(msg, sizeof msg,
           "upgrading to %.40s is not supported here; send plain HTTP/1.1",
           protocol ? protocol : "another protocol");
  json_t *j = stm_gw_error_json("UNIMPLEMENTED", msg, NULL);
  size_t len = 0;
  char *body = stm_gw_json_dump(j, &len);
  json_decref(j);
  unsigned char buf[LWS_PRE + 1024];
  unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
  if (body && len < 512 &&
      !lws_add_http_common_headers(wsi, 501, "application/json", len, &p,
                                   end) &&
      !lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                    (const unsigned char *)"close", 5, &p,
                                    end) &&
      !lws_finalize_write_http_header(wsi, start, &p, end)) {
    memcpy(start, body, len);
    lws_write(wsi, start, len, LWS_WRITE_HTTP_FINAL);
  }
  free(body);
  return -1;
}

static void grace_expired(lws_sorted_usec_list_t *sul) {
  struct stm_gw_http *gw =
      lws_container_of(sul, struct stm_gw_http, grace_timer);
  gw->hard_stop = true;
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason,
                   void *user, void *in, size_t len) {
  struct stm_gw_http *gw = lws_context_user(lws_get_context(wsi));
  struct session *s = user;
  switch (reason) {
  case LWS_CALLBACK_HTTP: {
    const struct listener *l = lws_vhost_user(lws_get_vhost(wsi));
    return on_request(s, gw, l, wsi, in ? (const char *)in : "/");
  }
  case LWS_CALLBACK_HTTP_BODY:
    return on_body(s, in, len);
  case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    return on_body_done(s);
  case LWS_CALLBACK_HTTP_WRITEABLE:
    return on_writeable(s);
  case LWS_CALLBACK_CLOSED_HTTP:
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    if (s)
      session_finish(s, 499);
    return 0;
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    /* Only WebSocket, and only on /v1/watch. */
    if (in && strcmp(in, "websocket") == 0 && gw->ws &&
        stm_gw_ws_wants(wsi))
      return 0;
    return refuse_upgrade(wsi, in);
  case LWS_CALLBACK_ESTABLISHED:
  case LWS_CALLBACK_RECEIVE:
  case LWS_CALLBACK_RECEIVE_PONG:
  case LWS_CALLBACK_SERVER_WRITEABLE:
  case LWS_CALLBACK_CLOSED:
    return gw->ws ? stm_gw_ws_callback(gw->ws, wsi, reason, in, len) : -1;
  case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
    /* Sent to each vhost's protocols: draining twice is harmless. */
    if (gw && gw->up)
      stm_gw_upstream_poll(gw->up, on_call_done, gw);
    if (gw && gw->ws)
      stm_gw_ws_service(gw->ws);
    return 0;
  default:
    return 0;
  }
}

static const struct lws_protocols protocols[] = {
    {"stemedb-http", http_cb, sizeof(struct session), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- lifecycle ----------------------------------------------------------- */

static void wake_loop(void *arg) {
  struct stm_gw_http *gw = arg;
  lws_cancel_service(gw->ctx);
}

/*
 * lws takes an address or an interface name as `iface`, but no host name:
 * resolve names ("localhost") to their first address here. Returns what to
 * pass as iface (NULL: every interface) and sets IPv4-only for v4.
 */
static const char *bind_iface(struct listener *l, uint64_t *options) {
  l->numeric[0] = '\0';
  if (l->host[0] == '\0' || strcmp(l->host, "*") == 0 ||
      strcmp(l->host, "0.0.0.0") == 0)
    return NULL; /* lws then binds 0.0.0.0 on an IPv4 socket */
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  if (getaddrinfo(l->host, NULL, &hints, &ai) != 0)
    return l->host; /* perhaps an interface name, such as "eth0" */
  const void *addr =
      ai->ai_family == AF_INET
          ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
          : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
  inet_ntop(ai->ai_family, addr, l->numeric, sizeof l->numeric);
  if (ai->ai_family == AF_INET)
    *options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  freeaddrinfo(ai);
  return l->numeric;
}

static int listen_on(struct stm_gw_http *gw, struct listener *l,
                     const char *vhost_name, struct stm_error *err) {
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  /* Without this, lws "defers" a vhost whose interface is missing and
   * creates it anyway, listening on nothing. */
  info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
  info.iface = bind_iface(l, &info.options);
  info.port = l->port;
  info.protocols = protocols;
  info.vhost_name = vhost_name;
  info.keepalive_timeout = KEEPALIVE_SECS;
  info.user = l;
  l->gw = gw;
  l->vh = lws_create_vhost(gw->ctx, &info);
  if (l->vh == NULL) {
    char msg[256];
    explain_bind_failure(l, msg, sizeof msg);
    return stm_error_set(err, STM_EUNAVAIL, l->flag, "%s", msg);
  }
  l->port = lws_get_vhost_listen_port(l->vh);
  return 0;
}

int stm_gw_http_new(const struct stm_gw_http_options *o,
                    struct stm_gw_http **out, struct stm_error *err) {
  *out = NULL;
  struct stm_gw_http *gw = calloc(1, sizeof *gw);
  if (gw == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  gw->timeout_ms = o->timeout_ms;
  gw->grace_ms = o->grace_ms;
  gw->server = strdup(o->server);
  gw->metrics = stm_gw_metrics_new();
  gw->env.server = gw->server;
  gw->env.metrics = gw->metrics;
  gw->listeners[0].port = gw->listeners[1].port = -1;
  int rc = gw->server && gw->metrics
               ? 0
               : stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  struct listener *api = &gw->listeners[STM_GW_LISTENER_API];
  struct listener *cl = &gw->listeners[STM_GW_LISTENER_CLUSTER];
  api->kind = STM_GW_LISTENER_API;
  api->flag = "--http-listen";
  cl->kind = STM_GW_LISTENER_CLUSTER;
  cl->flag = "--cluster-listen";
  bool with_cluster = o->cluster_listen && *o->cluster_listen;
  if (rc == 0)
    rc = stm_gw_parse_listen("http-listen", o->http_listen, api->host,
                             sizeof api->host, &api->port, err);
  if (rc == 0 && with_cluster)
    rc = stm_gw_parse_listen("cluster-listen", o->cluster_listen, cl->host,
                             sizeof cl->host, &cl->port, err);
  if (rc == 0) {
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.user = gw;
    info.server_string = "stemedb-gateway";
    /* lws's default (4 KiB of header data per request) drops a request
     * with a large bearer token or cookie; the buffer is held only while
     * a request's headers are parsed. */
    info.max_http_header_data = STM_GW_MAX_HEADER_BYTES;
    gw->ctx = lws_create_context(&info);
    if (gw->ctx == NULL)
      rc = stm_error_set(err, STM_EIO, NULL,
                         "cannot create the libwebsockets context");
  }
  if (rc == 0)
    rc = listen_on(gw, api, "api", err);
  if (rc == 0 && with_cluster)
    rc = listen_on(gw, cl, "cluster", err);
  if (rc == 0) {
    gw->up = stm_gw_upstream_new(gw->server, wake_loop, gw);
    if (gw->up == NULL)
      rc = stm_error_set(err, STM_ENOMEM, NULL,
                         "cannot start the upstream thread");
  }
  if (rc == 0) {
    struct stm_gw_ws_options wo = {.server = gw->server};
    const char *ping = getenv("STEMEDB_WS_PING_INTERVAL_MS");
    wo.ping_interval_ms = ping ? atoi(ping) : 0;
    const char *q = getenv("STEMEDB_WS_MAX_QUEUE_FRAMES");
    wo.max_queue_frames = q ? (size_t)strtoul(q, NULL, 10) : 0;
    const char *slow = getenv("STEMEDB_WS_SLOW_MS");
    wo.slow_ms = slow ? atoi(slow) : 0;
    gw->ws = stm_gw_ws_new(gw->ctx, &wo);
    if (gw->ws == NULL)
      rc = stm_error_set(err, STM_ENOMEM, NULL,
                         "cannot start the watch thread");
  }
  if (rc) {
    stm_gw_http_delete(gw);
    return rc;
  }
  *out = gw;
  return 0;
}

int stm_gw_http_port(const struct stm_gw_http *h,
                     enum stm_gw_listener listener) {
  const struct listener *l = &h->listeners[listener];
  return l->vh ? l->port : -1;
}

int stm_gw_http_run(struct stm_gw_http *h) {
  while (!atomic_load(&h->stop))
    if (lws_service(h->ctx, 0) < 0)
      return STM_EIO;
  lws_sul_schedule(h->ctx, 0, &h->grace_timer, grace_expired,
                   (lws_usec_t)h->grace_ms * 1000);
  stm_gw_ws_shutdown(h->ws); /* close frames 1001 with resume points */
  while (!h->hard_stop && (h->draining > 0 || stm_gw_ws_open(h->ws) > 0))
    if (lws_service(h->ctx, 0) < 0)
      break;
  lws_sul_cancel(&h->grace_timer);
  return 0;
}

void stm_gw_http_stop(struct stm_gw_http *h) {
  atomic_store(&h->stop, true);
  lws_cancel_service(h->ctx);
}

void stm_gw_http_delete(struct stm_gw_http *h) {
  if (h == NULL)
    return;
  /* Order matters: after stop the cq thread no longer wakes the loop, so
   * the context can go; closing connections then detaches their calls,
   * which the upstream frees last. */
  if (h->up)
    stm_gw_upstream_stop(h->up);
  stm_gw_ws_stop(h->ws);
  if (h->ctx)
    lws_context_destroy(h->ctx);
  stm_gw_ws_delete(h->ws);
  stm_gw_upstream_delete(h->up);
  stm_gw_metrics_delete(h->metrics);
  free(h->server);
  free(h);
}
