#include "gateway/http_conn.h"

#include "common/buf.h"
#include "common/log.h"
#include "common/validate.h"
#include "gateway/apikey.h"
#include "gateway/clients.h"
#include "gateway/cors.h"
#include "gateway/http_parse.h"
#include "gateway/metrics.h"
#include "gateway/status_map.h"
#include "gateway/ws.h"
#include "rpc/codec.h"
#include "json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define PARAM_MAX 256
#define QUERY_MAX 2048
/* Unread bytes held per connection before reading pauses: one request at
 * its largest, plus room for a few small pipelined ones. */
/* Reading pauses once this much is buffered: one whole request and then
 * some (--max-body-bytes). */
#define IN_CAP(g) ((g)->max_header_bytes + (g)->max_body_bytes + 65536)
#define CLOSE_LINGER_S 2

/*
 * Per-connection state (lws zeroes it at accept). `in` holds the bytes
 * received and not yet consumed; `active` spans one request, from its
 * complete arrival to the last byte of its answer.
 */
struct session {
  struct stm_gw_conn_ctx *g;
  struct lws *wsi;
  enum stm_gw_listener kind;
  char peer[STM_GW_PEER_MAX]; /* the client's address (clients.h) */
  bool counted;               /* in the open connections of peer */
  struct stm_buf in;
  size_t consume; /* bytes of the active request (head + body) */
  bool continue_sent, closing, linger, paused, timing;
  /* Reading stops while a whole request is being answered: lws closes a
   * raw socket as soon as it reads EOF, so a client that half-closes after
   * its request would otherwise lose the answer. */
  bool held;
  bool http10; /* the active request is HTTP/1.0 (keep-alive must be said) */
  /* The active request. */
  bool active;
  const struct stm_gw_route *route;
  const char *label; /* metrics route label */
  enum stm_gw_method method;
  lws_usec_t t0;
  char param[PARAM_MAX];
  char query[QUERY_MAX];
  char authz[STM_GW_APIKEY_MAX]; /* "Bearer KEY" for the server, or "" */
  char agent[STM_GW_AGENT_MAX];  /* X-Agent-Id, or "" */
  char limit_hdrs[512]; /* the server's x-ratelimit-* / x-quota-* lines */
  char cors_hdrs[512];  /* access-control-* lines for an allowed Origin */
  struct stm_gw_call *call;
  struct stm_gw_response resp;
  bool have_resp, head, before_stop;
  char out_head[1024];
  size_t out_head_len, sent;
};

size_t stm_gw_conn_size(void) { return sizeof(struct session); }

/* ---- the request's lifetime ---------------------------------------------- */

static enum stm_gw_method parse_method(const struct stm_gw_h1_span *m) {
  char name[16];
  if (m->len >= sizeof name)
    return STM_GW_OTHER;
  memcpy(name, m->p, m->len);
  name[m->len] = '\0';
  return stm_gw_method_parse(name);
}

/* Hold or resume reading; `paused` (a full input buffer) also holds it. */
static void hold_rx(struct session *s, bool hold) {
  if (s->held == hold)
    return;
  s->held = hold;
  if (!s->paused)
    lws_rx_flow_control(s->wsi, hold ? 0 : 1);
}

static void begin(struct session *s, enum stm_gw_method method) {
  struct stm_gw_conn_ctx *g = s->g;
  hold_rx(s, true); /* the whole request is in s->in (process) */
  s->active = true;
  s->route = NULL;
  s->label = "unmatched";
  s->method = method;
  s->head = method == STM_GW_HEAD; /* HEAD is GET without the body */
  s->t0 = lws_now_usecs();
  s->have_resp = false;
  s->sent = s->out_head_len = 0;
  s->call = NULL;
  s->param[0] = s->query[0] = s->limit_hdrs[0] = s->cors_hdrs[0] = '\0';
  memset(&s->resp, 0, sizeof s->resp);
  s->before_stop = !atomic_load(&g->stop);
  if (s->before_stop)
    g->draining++;
  else
    s->closing = true; /* stopping: send keep-alive clients elsewhere */
  stm_gw_metrics_begin(g->env.metrics);
}

/* The request is over (answered, or its connection is gone). */
static void finish(struct session *s, int status) {
  if (!s->active)
    return;
  if (s->call) {
    stm_gw_call_detach(s->call);
    s->call = NULL;
  }
  double secs = (double)(lws_now_usecs() - s->t0) / 1e6;
  stm_log_debug("%s %s -> %d (%.3f ms)", stm_gw_method_name(s->method),
                s->label, status, secs * 1e3);
  stm_gw_metrics_end(s->g->env.metrics, s->label, stm_gw_method_name(s->method),
                     status, secs);
  stm_gw_response_destroy(&s->resp);
  if (s->before_stop)
    s->g->draining--;
  s->active = false;
}

static void respond(struct session *s) {
  s->have_resp = true;
  lws_callback_on_writable(s->wsi);
}

static void respond_error(struct session *s, int status, const char *code,
                          const char *message, const char *field) {
  stm_gw_respond_error(&s->resp, status, code, message, field);
  respond(s);
}

static void respond_stm_error(struct session *s, const struct stm_error *err) {
  if (err->code == STM_ENOMEM)
    respond_error(s, 500, "RESOURCE_EXHAUSTED", "the gateway is out of memory",
                  NULL);
  else
    respond_error(s, 400, "INVALID_ARGUMENT", err->message, err->field);
}

/* A request that cannot be framed: answer, then close. */
static void refuse(struct session *s, int status, const char *code,
                   const char *message, const char *field) {
  s->closing = true;
  respond_error(s, status, code, message, field);
}

/* ---- dispatching --------------------------------------------------------- */

static void dispatch(struct session *s, const char *body, size_t body_len) {
  struct stm_gw_conn_ctx *g = s->g;
  const struct stm_gw_route *r = s->route;
  if (r->rpc == NULL) {
    struct stm_gw_reply rep = {GRPC_STATUS_UNIMPLEMENTED, "", NULL};
    stm_gw_respond(r, &rep, &g->env, &s->resp);
    respond(s);
    return;
  }
  struct stm_error err;
  stm_error_clear(&err);
  json_t *json = NULL;
  if (r->body && stm_json_parse_limited(body, body_len, &g->json_limits, &json,
                                        &err) != 0) {
    respond_stm_error(s, &err);
    return;
  }
  struct stm_gw_request rq = {s->param, json, s->query};
  ProtobufCMessage *req = NULL;
  int rc = r->build(&rq, &req, &err);
  json_decref(json);
  if (rc) {
    respond_stm_error(s, &err);
    return;
  }
  struct stm_gw_forward fw = {s->peer, s->authz, s->agent};
  rc = stm_gw_upstream_start_as(g->up, r->rpc, req, g->timeout_ms, &fw, s,
                                &s->call);
  protobuf_c_message_free_unpacked(req, NULL);
  if (rc) {
    respond_error(s, 500, "INTERNAL",
                  "could not start the call to "
                  "stemedb-server",
                  NULL);
    return;
  }
  /* The connection must not time out before the call's deadline. */
  lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, g->timeout_ms / 1000 + 5);
}

void stm_gw_conn_call_done(struct stm_gw_call *call, void *owner, void *arg) {
  struct session *s = owner;
  struct stm_gw_conn_ctx *g = arg;
  s->call = NULL;
  grpc_status_code code = stm_gw_call_code(call);
  stm_gw_metrics_upstream_call(g->env.metrics, s->route->rpc,
                               stm_rpc_code_name(code));
  ProtobufCMessage *msg =
      code == GRPC_STATUS_OK ? stm_gw_call_reply(call, s->route->reply) : NULL;
  stm_gw_call_limit_headers(call, s->limit_hdrs, sizeof s->limit_hdrs);
  struct stm_gw_reply rep = {code, stm_gw_call_message(call), msg};
  stm_gw_respond(s->route, &rep, &g->env, &s->resp);
  if (msg)
    protobuf_c_message_free_unpacked(msg, NULL);
  respond(s);
}

/* application/json, optionally with "; charset=utf-8" (any case). */
static bool is_json(const struct stm_gw_h1_span *ct) {
  if (ct == NULL)
    return false;
  const char *semi = memchr(ct->p, ';', ct->len);
  size_t n = semi ? (size_t)(semi - ct->p) : ct->len;
  while (n && (ct->p[n - 1] == ' ' || ct->p[n - 1] == '\t'))
    n--;
  if (n != 16 || strncasecmp(ct->p, "application/json", 16) != 0)
    return false;
  if (semi == NULL)
    return true;
  const char *p = semi + 1, *end = ct->p + ct->len;
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  return end - p == 13 && strncasecmp(p, "charset=utf-8", 13) == 0;
}

/* While stopping, new requests get a quick 503 (and /v1/health says
 * "unhealthy"), so load balancers and clients move on while the requests
 * that came before the stop finish. */
static void respond_draining(struct session *s) {
  json_t *j = stm_json_render_error("UNAVAILABLE",
                                    "stemedb-gateway is shutting down", NULL);
  if (strcmp(s->route->pattern, "/v1/health") == 0)
    json_object_set_new(j, "status", json_string("unhealthy"));
  stm_gw_response_destroy(&s->resp);
  s->resp.status = 503;
  s->resp.content_type = "application/json";
  s->resp.body = stm_json_dump(j, &s->resp.len);
  json_decref(j);
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

/* ---- WebSocket upgrades -------------------------------------------------- */

/* A WebSocket elsewhere than on /v1/watch: 404 naming the right path. */
static void refuse_upgrade(struct session *s) {
  refuse(s, 404, "NOT_FOUND",
         "WebSocket is served only on GET " STM_GW_WS_PATH
         " of the API port (api/watch.md)",
         "path");
}

/*
 * Check a WebSocket handshake (RFC 6455, 4.2.1) and hand the socket to
 * the lws vhost that speaks WebSocket: a dup of the descriptor plus the
 * bytes read so far. The raw connection then closes its own descriptor
 * only (lws never shuts a raw socket down). Returns -1 after a handover.
 */
static int upgrade_ws(struct session *s, const struct stm_gw_h1_request *rq) {
  const struct stm_gw_h1_span *ver =
      stm_gw_h1_header(rq, "sec-websocket-version");
  const struct stm_gw_h1_span *key = stm_gw_h1_header(rq, "sec-websocket-key");
  const struct stm_gw_h1_span *conn = stm_gw_h1_header(rq, "connection");
  if (ver == NULL || ver->len != 2 || memcmp(ver->p, "13", 2) != 0) {
    refuse(s, 426, "FAILED_PRECONDITION",
           "only WebSocket version 13 is supported (Sec-WebSocket-Version: 13)",
           "Sec-WebSocket-Version");
    snprintf(s->resp.allow, sizeof s->resp.allow, "13");
    return 0;
  }
  if (key == NULL || key->len != 24 || conn == NULL ||
      !stm_gw_h1_has_token(conn, "upgrade")) {
    refuse(s, 400, "INVALID_ARGUMENT",
           "a WebSocket handshake needs Connection: Upgrade and a 24-character "
           "Sec-WebSocket-Key",
           key ? "Connection" : "Sec-WebSocket-Key");
    return 0;
  }
  if (!s->before_stop) {
    refuse(s, 503, "UNAVAILABLE", "stemedb-gateway is shutting down", NULL);
    return 0;
  }
  int fd = dup(lws_get_socket_fd(s->wsi));
  if (fd < 0 || lws_adopt_socket_vhost_readbuf(s->g->ws_vhost, fd,
                                               (const char *)s->in.data,
                                               s->in.len) == NULL) {
    stm_log_warn("cannot hand a WebSocket connection over");
    return -1;
  }
  s->in.len = 0;
  finish(s, 101);
  return -1;
}

/* ---- one complete request ------------------------------------------------ */

static int handle(struct session *s, const struct stm_gw_h1_request *rq) {
  char path[PARAM_MAX + 64];
  const char *param = "";
  size_t param_len = 0;
  unsigned allowed = 0;
  const struct stm_gw_h1_span *upgrade = stm_gw_h1_header(rq, "upgrade");
  if (rq->path.len >= sizeof path) {
    respond_error(s, 404, "NOT_FOUND", "the path is too long", "path");
    return 0;
  }
  memcpy(path, rq->path.p, rq->path.len);
  path[rq->path.len] = '\0';
  stm_gw_apikey_from_request(rq, s->authz, sizeof s->authz);
  stm_gw_apikey_agent(rq, s->agent, sizeof s->agent);
  bool preflight = stm_gw_cors_is_preflight(rq);
  bool origin_ok =
      stm_gw_cors_headers(rq, preflight, s->cors_hdrs, sizeof s->cors_hdrs);
  if (preflight) { /* answered here: no route is called */
    s->label = "preflight";
    if (!origin_ok) {
      respond_error(s, 403, "PERMISSION_DENIED",
                    "this Origin is not in the gateway's allowed origins "
                    "(STEMEDB_ALLOWED_ORIGINS)",
                    "Origin");
      return 0;
    }
    stm_gw_response_destroy(&s->resp);
    s->resp.status = 200;
    s->resp.content_type = "text/plain";
    respond(s);
    return 0;
  }
  s->route = stm_gw_route_match(s->kind, s->head ? STM_GW_GET : s->method, path,
                                &param, &param_len, &allowed);
  if (s->route)
    s->label = s->route->pattern;
  /* Other upgrades (h2c from curl --http2) are ignored, as RFC 9110 7.8
   * allows: the request is served over HTTP/1.1. */
  if (upgrade && stm_gw_h1_has_token(upgrade, "websocket")) {
    if (s->kind == STM_GW_LISTENER_API && s->method == STM_GW_GET && s->g->ws &&
        strcmp(path, STM_GW_WS_PATH) == 0) {
      s->label = STM_GW_WS_PATH;
      return upgrade_ws(s, rq);
    }
    refuse_upgrade(s);
  } else if (!s->before_stop && s->route) {
    respond_draining(s);
  } else if (rq->query.len >= sizeof s->query) {
    respond_error(s, 414, "INVALID_ARGUMENT", "query string is too long",
                  "query");
  } else if (s->route == NULL) {
    respond_no_route(s, path, allowed);
  } else if (param_len >= sizeof s->param) {
    respond_error(s, 404, "NOT_FOUND", "path segment is too long", "path");
  } else if (s->route->body && !is_json(stm_gw_h1_header(rq, "content-type"))) {
    respond_error(s, 415, "UNSUPPORTED_MEDIA_TYPE",
                  "Content-Type must be application/json", NULL);
  } else {
    memcpy(s->param, param, param_len);
    s->param[param_len] = '\0';
    memcpy(s->query, rq->query.p, rq->query.len);
    s->query[rq->query.len] = '\0';
    dispatch(s, (const char *)s->in.data + rq->head_len,
             rq->content_length > 0 ? (size_t)rq->content_length : 0);
  }
  return 0;
}

/* lws ignores nothing here, but curl and others wait a second for this
 * before sending a body when they sent "Expect: 100-continue". */
static int send_continue(struct session *s) {
  static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
  unsigned char buf[LWS_PRE + sizeof line];
  memcpy(buf + LWS_PRE, line, sizeof line - 1);
  s->continue_sent = true;
  return lws_write(s->wsi, buf + LWS_PRE, sizeof line - 1, LWS_WRITE_RAW) ==
                 (int)sizeof line - 1
             ? 0
             : -1;
}

/*
 * Framing checks that need no route: answered with our error, then the
 * connection closes (the rest of the bytes cannot be trusted).
 */
static bool refuse_framing(struct session *s,
                           const struct stm_gw_h1_request *rq) {
  if (rq->transfer_encoding) {
    /* Chunked request bodies are not supported: ask for Content-Length. */
    refuse(s, rq->chunked ? 411 : 400,
           rq->chunked ? "LENGTH_REQUIRED" : "INVALID_ARGUMENT",
           rq->chunked ? "chunked request bodies are not supported; send "
                         "Content-Length"
                       : "Transfer-Encoding is not supported; send "
                         "Content-Length",
           "Transfer-Encoding");
    return true;
  }
  if (rq->content_length > (long long)s->g->max_body_bytes) {
    char msg[128];
    snprintf(msg, sizeof msg,
             "request body is larger than %zu bytes (--max-body-bytes)",
             s->g->max_body_bytes);
    refuse(s, 413, "PAYLOAD_TOO_LARGE", msg, NULL);
    return true;
  }
  return false;
}

/* Start the next complete request in `in`, if any. Returns -1 to close. */
static int process(struct session *s) {
  if (s->active || s->closing)
    return 0;
  if (s->in.len == 0) {
    s->timing = false;
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, s->g->idle_timeout_s);
    return 0;
  }
  if (!s->timing) { /* the request's clock starts at its first byte */
    s->timing = true;
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, s->g->request_timeout_s);
  }
  struct stm_gw_h1_request *rq = malloc(sizeof *rq);
  if (rq == NULL)
    return -1;
  enum stm_gw_h1_result r = stm_gw_h1_parse((const char *)s->in.data, s->in.len,
                                            s->g->max_header_bytes, rq);
  int rc = 0;
  if (r == STM_GW_H1_ERROR) {
    begin(s, rq->method.len ? parse_method(&rq->method) : STM_GW_OTHER);
    refuse(s, rq->status,
           rq->status == 505 ? "HTTP_VERSION_NOT_SUPPORTED"
           : rq->status == 414 || rq->status == 431 ? "RESOURCE_EXHAUSTED"
                                                    : "INVALID_ARGUMENT",
           rq->message, rq->field[0] ? rq->field : NULL);
  } else if (r == STM_GW_H1_DONE) {
    size_t body = rq->content_length > 0 ? (size_t)rq->content_length : 0;
    const struct stm_gw_h1_span *ex = stm_gw_h1_header(rq, "expect");
    bool framed = !rq->transfer_encoding &&
                  rq->content_length <= (long long)s->g->max_body_bytes;
    if (framed && s->in.len < rq->head_len + body) {
      /* The body is still arriving. */
      if (!s->continue_sent && ex && ex->len == 12 &&
          strncasecmp(ex->p, "100-continue", 12) == 0)
        rc = send_continue(s);
    } else {
      begin(s, parse_method(&rq->method));
      if (!refuse_framing(s, rq)) {
        s->consume = rq->head_len + body;
        if (!rq->keep_alive)
          s->closing = true;
        s->http10 = rq->minor == 0;
        rc = handle(s, rq);
      }
    }
  }
  free(rq);
  return rc;
}

/* ---- writing ------------------------------------------------------------- */

static void build_head(struct session *s) {
  const struct stm_gw_response *r = &s->resp;
  int n =
      snprintf(s->out_head, sizeof s->out_head,
               "HTTP/1.1 %d %s\r\nserver: stemedb-gateway\r\n"
               "content-type: %s\r\ncontent-length: %zu\r\n"
               "cache-control: no-store\r\n",
               r->status, stm_gw_h1_reason(r->status),
               r->content_type ? r->content_type : "application/json", r->len);
  size_t used = n > 0 ? (size_t)n : 0;
  if (r->allow[0])
    used += (size_t)snprintf(
        s->out_head + used, sizeof s->out_head - used, "%s: %s\r\n",
        r->status == 426 ? "sec-websocket-version" : "allow", r->allow);
  if (s->limit_hdrs[0])
    used += (size_t)snprintf(s->out_head + used, sizeof s->out_head - used,
                             "%s", s->limit_hdrs);
  if (s->cors_hdrs[0] && used < sizeof s->out_head)
    used += (size_t)snprintf(s->out_head + used, sizeof s->out_head - used,
                             "%s", s->cors_hdrs);
  /* The server is away (restarting, unreachable): the channel retries
   * within a second (rpc/codec.c), so say when to come back. */
  if (r->status == 503 && strstr(s->limit_hdrs, "retry-after") == NULL &&
      used < sizeof s->out_head)
    used += (size_t)snprintf(s->out_head + used, sizeof s->out_head - used,
                             "retry-after: 1\r\n");
  if (s->closing || s->http10)
    used += (size_t)snprintf(s->out_head + used, sizeof s->out_head - used,
                             "connection: %s\r\n",
                             s->closing ? "close" : "keep-alive");
  used +=
      (size_t)snprintf(s->out_head + used, sizeof s->out_head - used, "\r\n");
  s->out_head_len = used < sizeof s->out_head ? used : sizeof s->out_head - 1;
}

/* Drop the answered request's bytes; resume reading if it was paused. */
static void consume(struct session *s) {
  size_t n = s->consume < s->in.len ? s->consume : s->in.len;
  memmove(s->in.data, s->in.data + n, s->in.len - n);
  s->in.len -= n;
  s->consume = 0;
  s->continue_sent = false;
  s->timing = false;
  if (s->paused && s->in.len < IN_CAP(s->g)) {
    s->paused = false;
    if (!s->held)
      lws_rx_flow_control(s->wsi, 1);
  }
}

/*
 * Closing: once lws has flushed what we wrote (the next WRITEABLE comes
 * only then), shut our side down and linger until the peer closes, so
 * unread request bytes cannot turn the close into a reset that destroys
 * the answer in flight.
 */
static int close_gracefully(struct session *s) {
  if (!s->linger) {
    s->linger = true;
    lws_callback_on_writable(s->wsi);
    return 0;
  }
  shutdown(lws_get_socket_fd(s->wsi), SHUT_WR);
  lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_LINGER_S);
  return 0;
}

static int on_writeable(struct session *s) {
  if (s->linger)
    return close_gracefully(s);
  if (!s->active || !s->have_resp)
    return 0;
  if (s->out_head_len == 0)
    build_head(s);
  size_t total = s->out_head_len + (s->head ? 0 : s->resp.len);
  size_t n = total - s->sent;
  n = n < STM_GW_WRITE_CHUNK ? n : STM_GW_WRITE_CHUNK;
  /* The slice [sent, sent + n) of head + body. */
  unsigned char *p = s->g->wbuf + LWS_PRE;
  size_t from_head = s->sent < s->out_head_len ? s->out_head_len - s->sent : 0;
  from_head = from_head < n ? from_head : n;
  if (from_head)
    memcpy(p, s->out_head + s->sent, from_head);
  if (n > from_head)
    memcpy(p + from_head,
           s->resp.body + (s->sent + from_head - s->out_head_len),
           n - from_head);
  if (lws_write(s->wsi, p, n, LWS_WRITE_RAW) < (int)n)
    return -1;
  s->sent += n;
  if (s->sent < total) {
    lws_callback_on_writable(s->wsi);
    return 0;
  }
  finish(s, s->resp.status);
  hold_rx(s, false); /* answered: an EOF may be read now (and lingering
                        needs to see the peer's close) */
  if (s->closing)
    return close_gracefully(s);
  consume(s);
  return process(s); /* a pipelined request, answered in order */
}

/* ---- the raw-socket callback --------------------------------------------- */

static int on_rx(struct session *s, const void *in, size_t len) {
  if (s->linger)
    return 0; /* closing: what comes now is dropped */
  if (s->closing && !s->active)
    return 0;
  if (stm_buf_append(&s->in, in, len) != 0)
    return -1;
  if (s->in.len >= IN_CAP(s->g) && !s->paused) {
    s->paused = true;
    if (!s->held)
      lws_rx_flow_control(s->wsi, 0);
  }
  return process(s);
}

/*
 * A new connection: count it for its client, or answer 429 at once and
 * close when the client already has --max-connections-per-client open
 * (HTTP connections and WebSockets, plaintext and TLS alike).
 */
static void on_adopt(struct session *s) {
  struct stm_gw_conn_ctx *g = s->g;
  stm_gw_peer_of(s->wsi, s->peer, sizeof s->peer);
  s->counted =
      stm_gw_clients_enter(g->clients, s->peer, g->max_conns_per_client, false);
  /* A connection that never sends a whole request is reaped. */
  lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, g->request_timeout_s);
  if (s->counted)
    return;
  char msg[160];
  snprintf(msg, sizeof msg,
           "too many open connections from this client: at most %zu "
           "(--max-connections-per-client)",
           g->max_conns_per_client);
  begin(s, STM_GW_OTHER);
  s->label = "connection_limit";
  snprintf(s->limit_hdrs, sizeof s->limit_hdrs, "retry-after: 1\r\n");
  refuse(s, 429, "RESOURCE_EXHAUSTED", msg, "max-connections-per-client");
}

int stm_gw_conn_callback(struct stm_gw_conn_ctx *g, enum stm_gw_listener kind,
                         struct lws *wsi, enum lws_callback_reasons reason,
                         void *user, void *in, size_t len) {
  struct session *s = user;
  switch (reason) {
  case LWS_CALLBACK_RAW_ADOPT:
    memset(s, 0, sizeof *s);
    s->g = g;
    s->wsi = wsi;
    s->kind = kind;
    stm_buf_init(&s->in);
    on_adopt(s);
    return 0;
  case LWS_CALLBACK_RAW_RX:
    return s && s->g ? on_rx(s, in, len) : -1;
  case LWS_CALLBACK_RAW_WRITEABLE:
    return s && s->g ? on_writeable(s) : 0;
  case LWS_CALLBACK_RAW_CLOSE:
    if (s && s->g) {
      finish(s, 499);
      if (s->counted)
        stm_gw_clients_leave(g->clients, s->peer);
      s->counted = false;
      stm_buf_destroy(&s->in);
      s->g = NULL;
    }
    return 0;
  default:
    return 0;
  }
}
