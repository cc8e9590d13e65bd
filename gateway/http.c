#include "gateway/http.h"

#include "common/log.h"
#include "common/validate.h"
#include "gateway/clients.h"
#include "gateway/http_conn.h"
#include "gateway/metrics.h"
#include "gateway/tls_server.h"
#include "gateway/upstream.h"
#include "gateway/ws.h"
#include "json/json.h"

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

#define KEEPALIVE_SECS 60
#define REQUEST_SECS 10

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
  struct lws_vhost *ws_vhost; /* no port: WebSocket upgrades land here */
  struct stm_gw_metrics *metrics;
  struct stm_gw_tls *tls; /* NULL: plain HTTP */
  char *server;
  int grace_ms;
  bool hard_stop;
  lws_sorted_usec_list_t grace_timer;
  struct stm_gw_conn_ctx conn; /* what every connection shares */
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

static void grace_expired(lws_sorted_usec_list_t *sul) {
  struct stm_gw_http *gw =
      lws_container_of(sul, struct stm_gw_http, grace_timer);
  gw->hard_stop = true;
}

/* ---- the lws callbacks --------------------------------------------------- */

/* Connections the TLS thread decrypted come as plaintext sockets, adopted
 * exactly as the listeners adopt accepted ones. */
static void adopt_tls(struct stm_gw_http *gw) {
  int fd, kind;
  while (gw->tls && stm_gw_tls_take(gw->tls, &fd, &kind) == 0) {
    lws_sock_file_fd_type u;
    u.sockfd = fd;
    /* On failure lws closes fd. */
    if (lws_adopt_descriptor_vhost(gw->listeners[kind].vh, LWS_ADOPT_SOCKET, u,
                                   "stemedb-h1", NULL) == NULL)
      stm_log_warn("cannot adopt a TLS connection");
  }
}

/*
 * Listening sockets hand every connection to "stemedb-h1" as a raw socket:
 * http_conn.c parses HTTP/1.1 itself. Only WebSocket connections, handed
 * over by http_conn.c, use lws' HTTP role ("stemedb-ws" on the port-less
 * vhost), which does the handshake and framing for ws.c.
 */
static int raw_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                  void *in, size_t len) {
  struct stm_gw_http *gw = lws_context_user(lws_get_context(wsi));
  if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
    /* Sent to each vhost's protocols: draining twice is harmless. */
    if (gw)
      adopt_tls(gw);
    if (gw && gw->conn.up)
      stm_gw_upstream_poll(gw->conn.up, stm_gw_conn_call_done, &gw->conn);
    if (gw && gw->conn.ws)
      stm_gw_ws_service(gw->conn.ws);
    return 0;
  }
  switch (reason) {
  case LWS_CALLBACK_RAW_ADOPT:
  case LWS_CALLBACK_RAW_RX:
  case LWS_CALLBACK_RAW_WRITEABLE:
  case LWS_CALLBACK_RAW_CLOSE:
    break;
  default:
    return 0;
  }
  const struct listener *l = lws_vhost_user(lws_get_vhost(wsi));
  if (l == NULL)
    return 0;
  return stm_gw_conn_callback(&gw->conn, l->kind, wsi, reason, user, in, len);
}

static int ws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                 void *in, size_t len) {
  struct stm_gw_http *gw = lws_context_user(lws_get_context(wsi));
  switch (reason) {
  case LWS_CALLBACK_HTTP:
    return -1; /* only checked upgrades are handed here */
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    return in && strcmp(in, "websocket") == 0 && gw->conn.ws &&
                   stm_gw_ws_wants(wsi)
               ? 0
               : -1;
  case LWS_CALLBACK_ESTABLISHED:
  case LWS_CALLBACK_RECEIVE:
  case LWS_CALLBACK_RECEIVE_PONG:
  case LWS_CALLBACK_SERVER_WRITEABLE:
  case LWS_CALLBACK_CLOSED:
    return gw->conn.ws ? stm_gw_ws_callback(gw->conn.ws, wsi, reason, in, len)
                       : -1;
  default:
    return 0;
  }
}

static struct lws_protocols raw_protocols[] = {
    {"stemedb-h1", raw_cb, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const struct lws_protocols ws_protocols[] = {
    {"stemedb-ws", ws_cb, 0, 0, 0, NULL, 0},
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
  info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
                 LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
  if (gw->tls) {
    /* The TLS thread listens; this vhost only adopts its sockets. */
    int rc = stm_gw_tls_listen(gw->tls, (int)l->kind, l->host, l->port, l->flag,
                               &l->port, err);
    if (rc)
      return rc;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
  } else {
    info.iface = bind_iface(l, &info.options);
    info.port = l->port;
  }
  info.protocols = raw_protocols;
  info.listen_accept_role = "raw-skt";
  info.listen_accept_protocol = "stemedb-h1";
  info.vhost_name = vhost_name;
  info.user = l;
  l->gw = gw;
  l->vh = lws_create_vhost(gw->ctx, &info);
  if (l->vh == NULL) {
    char msg[256];
    explain_bind_failure(l, msg, sizeof msg);
    return stm_error_set(err, STM_EUNAVAIL, l->flag, "%s", msg);
  }
  if (gw->tls == NULL)
    l->port = lws_get_vhost_listen_port(l->vh);
  return 0;
}

/* The vhost without a port where http_conn.c hands WebSocket upgrades. */
static int ws_vhost_new(struct stm_gw_http *gw, struct stm_error *err) {
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
  info.protocols = ws_protocols;
  info.vhost_name = "ws";
  info.keepalive_timeout = KEEPALIVE_SECS;
  gw->ws_vhost = gw->conn.ws_vhost = lws_create_vhost(gw->ctx, &info);
  return gw->ws_vhost ? 0
                      : stm_error_set(err, STM_EIO, NULL,
                                      "cannot create the WebSocket vhost");
}

static int context_new(struct stm_gw_http *gw, struct stm_error *err) {
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  info.user = gw;
  info.server_string = "stemedb-gateway";
  /* lws's default (4 KiB of header data per request) would drop a
   * WebSocket handshake with a large bearer token or cookie. */
  info.max_http_header_data = (unsigned short)gw->conn.max_header_bytes;
  raw_protocols[0].per_session_data_size = stm_gw_conn_size();
  gw->ctx = lws_create_context(&info);
  return gw->ctx ? 0
                 : stm_error_set(err, STM_EIO, NULL,
                                 "cannot create the libwebsockets context");
}

static int watch_new(struct stm_gw_http *gw,
                     const struct stm_gw_http_options *o,
                     struct stm_error *err) {
  struct stm_gw_ws_options wo = {
      .up = gw->conn.up,
      .max_subs_per_socket = (size_t)o->ws_max_subs_per_socket,
      .max_subs_per_client = (size_t)o->ws_max_subs_per_client,
      .max_subs_total = (size_t)o->ws_max_subs_total,
      .metrics = gw->metrics,
      .clients = gw->conn.clients,
  };
  wo.ping_interval_ms = o->ws_ping_interval_ms;
  wo.max_queue_frames = (size_t)o->ws_max_queue_frames;
  wo.slow_ms = o->ws_slow_ms;
  gw->conn.ws = stm_gw_ws_new(gw->ctx, &wo);
  return gw->conn.ws ? 0
                     : stm_error_set(err, STM_ENOMEM, NULL,
                                     "cannot start the watch module");
}

static int tls_new(struct stm_gw_http *gw, const struct stm_gw_http_options *o,
                   struct stm_error *err) {
  if (o->tls_cert == NULL || *o->tls_cert == '\0') {
    if (o->tls_key && *o->tls_key)
      return stm_error_set(err, STM_EINVAL, "tls-cert",
                           "tls-key is set but tls-cert is not");
    return 0;
  }
  if (o->tls_key == NULL || *o->tls_key == '\0')
    return stm_error_set(err, STM_EINVAL, "tls-key",
                         "tls-cert is set but tls-key is not");
  struct stm_gw_tls_options to = {
      .cert = o->tls_cert,
      .key = o->tls_key,
      /* A handshake is part of the first request's time. */
      .handshake_timeout_ms = gw->conn.request_timeout_s * 1000,
      .wake = wake_loop,
      .wake_arg = gw,
  };
  return stm_gw_tls_new(&to, &gw->tls, err);
}

int stm_gw_http_new(const struct stm_gw_http_options *o,
                    struct stm_gw_http **out, struct stm_error *err) {
  *out = NULL;
  struct stm_gw_http *gw = calloc(1, sizeof *gw);
  if (gw == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  gw->grace_ms = o->grace_ms;
  gw->server = strdup(o->server);
  gw->metrics = stm_gw_metrics_new();
  gw->conn.clients = stm_gw_clients_new();
  gw->conn.max_conns_per_client =
      o->max_conns_per_client > 0 ? (size_t)o->max_conns_per_client : 0;
  gw->conn.env.server = gw->server;
  gw->conn.env.metrics = gw->metrics;
  gw->conn.timeout_ms = o->timeout_ms;
  gw->conn.max_body_bytes =
      o->max_body_bytes > 0 ? (size_t)o->max_body_bytes : STM_MAX_REQUEST_BYTES;
  gw->conn.max_header_bytes = o->max_header_bytes > 0
                                  ? (size_t)o->max_header_bytes
                                  : STM_GW_DEFAULT_MAX_HEADER_BYTES;
  gw->conn.json_limits.max_depth =
      o->max_json_depth > 0 ? (size_t)o->max_json_depth : 0;
  gw->conn.json_limits.max_string =
      o->max_json_string_bytes > 0 ? (size_t)o->max_json_string_bytes : 0;
  gw->conn.request_timeout_s =
      o->request_timeout_s > 0 ? o->request_timeout_s : REQUEST_SECS;
  gw->conn.idle_timeout_s =
      o->idle_timeout_s > 0 ? o->idle_timeout_s : KEEPALIVE_SECS;
  gw->listeners[0].port = gw->listeners[1].port = -1;
  int rc = gw->server && gw->metrics && gw->conn.clients
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
  if (rc == 0)
    rc = tls_new(gw, o, err);
  if (rc == 0)
    rc = context_new(gw, err);
  /* First: lws picks the vhost of an HTTP upgrade among those sharing its
   * port (lws_select_vhost falls back to the first with the same port),
   * and under TLS the listeners' vhosts have no port either. */
  if (rc == 0)
    rc = ws_vhost_new(gw, err);
  if (rc == 0)
    rc = listen_on(gw, api, "api", err);
  if (rc == 0 && with_cluster)
    rc = listen_on(gw, cl, "cluster", err);
  if (rc == 0) {
    gw->conn.up = stm_gw_upstream_new(gw->server, wake_loop, gw);
    if (gw->conn.up == NULL)
      rc = stm_error_set(err, STM_ENOMEM, NULL,
                         "cannot start the upstream thread");
  }
  if (rc == 0)
    rc = watch_new(gw, o, err);
  if (rc == 0 && gw->tls)
    rc = stm_gw_tls_start(gw->tls, err);
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
  while (!atomic_load(&h->conn.stop))
    if (lws_service(h->ctx, 0) < 0)
      return STM_EIO;
  lws_sul_schedule(h->ctx, 0, &h->grace_timer, grace_expired,
                   (lws_usec_t)h->grace_ms * 1000);
  stm_gw_ws_shutdown(h->conn.ws); /* close frames 1001 with resume points */
  while (!h->hard_stop &&
         (h->conn.draining > 0 || stm_gw_ws_open(h->conn.ws) > 0))
    if (lws_service(h->ctx, 0) < 0)
      break;
  lws_sul_cancel(&h->grace_timer);
  return 0;
}

int stm_gw_http_reload_tls(struct stm_gw_http *h, struct stm_error *err) {
  if (h->tls == NULL)
    return stm_error_set(err, STM_ENOTFOUND, NULL, "no TLS to reload");
  return stm_gw_tls_reload(h->tls, err);
}

void stm_gw_http_stop(struct stm_gw_http *h) {
  atomic_store(&h->conn.stop, true);
  lws_cancel_service(h->ctx);
}

void stm_gw_http_delete(struct stm_gw_http *h) {
  if (h == NULL)
    return;
  /* Order matters: after stop the cq thread no longer wakes the loop, so
   * the context can go; closing connections then detaches their calls,
   * which the upstream frees last. The TLS thread goes first: it wakes
   * the loop, and the answers it still relays were written already. */
  stm_gw_tls_stop(h->tls);
  stm_gw_ws_stop(h->conn.ws);
  if (h->conn.up)
    stm_gw_upstream_stop(h->conn.up);
  if (h->ctx)
    lws_context_destroy(h->ctx);
  stm_gw_ws_delete(h->conn.ws);
  stm_gw_upstream_delete(h->conn.up);
  stm_gw_tls_delete(h->tls);
  stm_gw_clients_delete(h->conn.clients);
  stm_gw_metrics_delete(h->metrics);
  free(h->server);
  free(h);
}
