/*
 * ws.c - WebSocket subscriptions over gRPC Watch streams. See ws.h and
 * api/watch.md.
 *
 * Lifetimes: a connection (struct conn) is refcounted: one reference while
 * its socket is open (dropped on LWS_CALLBACK_CLOSED), one per gRPC call in
 * flight (dropped when the call's last batch completes) and one while it
 * sits in the dirty list. Subscriptions live inside their connection.
 * Each call has three batches: start (send the request, half-close,
 * receive metadata), receive one message (re-posted by the cq thread after
 * each message), and receive the status.
 */
#include "gateway/ws_internal.h"

#include "common/log.h"
#include "gateway/clients.h"
#include "rpc/codec.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "json/json.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_established(struct stm_gw_ws *w, struct lws *wsi) {
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    return;
  }
  c->w = w;
  atomic_init(&c->refs, 1);
  pthread_mutex_init(&c->mu, NULL);
  for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++) {
    c->subs[i].c = c;
    c->subs[i].index = i;
  }
  c->wsi = wsi;
  stm_gw_peer_of(wsi, c->peer, sizeof c->peer);
  /* The HTTP connection that upgraded was counted and is closing now:
   * this socket takes its place, never refused. */
  if (w->o.clients)
    c->counted = stm_gw_clients_enter(w->o.clients, c->peer, 0, true);
  stm_gw_apikey_from_ws(wsi, c->authz, sizeof c->authz);
  c->last_alive = lws_now_usecs();
  c->next = w->open;
  if (w->open)
    w->open->prev = c;
  w->open = c;
  w->n_open++;
  stm_gw_metrics_set_ws_connections(w->o.metrics, w->n_open);
  lws_set_opaque_user_data(wsi, c);
  if (w->shutting_down)
    stm_gw_ws_conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY,
                         "gateway shutting down");
  else
    stm_gw_ws_subscribe_from_query(c, wsi);
}

static void on_closed(struct stm_gw_ws *w, struct conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    w->open = c->next;
  if (c->next)
    c->next->prev = c->prev;
  w->n_open--;
  stm_gw_metrics_set_ws_connections(w->o.metrics, w->n_open);
  if (c->counted)
    stm_gw_clients_leave(w->o.clients, c->peer);
  c->counted = false;
  c->wsi = NULL;
  pthread_mutex_lock(&c->mu);
  c->gone = true;
  pthread_mutex_unlock(&c->mu);
  stm_gw_ws_cancel_all(c); /* frees the server's streams at once */
  stm_gw_ws_conn_unref(c);
}

static void on_receive(struct conn *c, struct lws *wsi, const void *in,
                       size_t len) {
  c->last_alive = lws_now_usecs();
  if (c->rx_len + len > MAX_RX) {
    stm_gw_ws_conn_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                         "client messages are limited to 64 KiB");
    return;
  }
  char *nrx = realloc(c->rx, c->rx_len + len + 1);
  if (nrx == NULL)
    return;
  c->rx = nrx;
  memcpy(c->rx + c->rx_len, in, len);
  c->rx_len += len;
  if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
    return;
  c->rx[c->rx_len] = '\0';
  if (!c->w->shutting_down)
    stm_gw_ws_client_message(c, c->rx, c->rx_len);
  c->rx_len = 0;
}

static void ping_tick(lws_sorted_usec_list_t *sul) {
  struct stm_gw_ws *w = lws_container_of(sul, struct stm_gw_ws, ping_timer);
  lws_usec_t now = lws_now_usecs();
  lws_usec_t every = (lws_usec_t)w->o.ping_interval_ms * 1000;
  for (struct conn *c = w->open; c; c = c->next) {
    if (c->closing)
      continue;
    if (now - c->last_alive > 3 * every) {
      /* Three pings unanswered: the peer is gone. */
      lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
      continue;
    }
    c->ping_due = true;
    lws_callback_on_writable(c->wsi);
  }
  lws_sul_schedule(w->ctx, 0, &w->ping_timer, ping_tick, every);
}

/* A socket whose queue stayed full for slow_ms: close it as slow. */
static void slow_tick(lws_sorted_usec_list_t *sul) {
  struct stm_gw_ws *w = lws_container_of(sul, struct stm_gw_ws, slow_timer);
  lws_usec_t now = lws_now_usecs();
  for (struct conn *c = w->open; c; c = c->next) {
    pthread_mutex_lock(&c->mu);
    bool slow =
        c->full_since && now - c->full_since > (lws_usec_t)w->o.slow_ms * 1000;
    if (slow && !c->overflow) {
      c->overflow = true;
      for (int i = 0; i < STM_GW_WS_MAX_SUBS; i++)
        if (c->subs[i].active && c->subs[i].call)
          grpc_call_cancel(c->subs[i].call, NULL);
    }
    pthread_mutex_unlock(&c->mu);
    if (slow)
      stm_gw_ws_conn_close(c, STM_GW_WS_CLOSE_SLOW, "slow consumer");
  }
  lws_sul_schedule(w->ctx, 0, &w->slow_timer, slow_tick, 100 * 1000);
}

bool stm_gw_ws_wants(struct lws *wsi) {
  char uri[64];
  if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
    return false;
  return strcmp(uri, STM_GW_WS_PATH) == 0;
}

int stm_gw_ws_callback(struct stm_gw_ws *w, struct lws *wsi,
                       enum lws_callback_reasons reason, void *in, size_t len) {
  struct conn *c = lws_get_opaque_user_data(wsi);
  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED:
    on_established(w, wsi);
    return 0;
  case LWS_CALLBACK_RECEIVE:
    if (c)
      on_receive(c, wsi, in, len);
    return 0;
  case LWS_CALLBACK_RECEIVE_PONG:
    if (c)
      c->last_alive = lws_now_usecs();
    return 0;
  case LWS_CALLBACK_SERVER_WRITEABLE:
    return c ? stm_gw_ws_conn_writable(c) : -1;
  case LWS_CALLBACK_CLOSED:
    if (c) {
      lws_set_opaque_user_data(wsi, NULL);
      on_closed(w, c);
    }
    return 0;
  default:
    return 0;
  }
}

struct stm_gw_ws *stm_gw_ws_new(struct lws_context *ctx,
                                const struct stm_gw_ws_options *o) {
  struct stm_gw_ws *w = calloc(1, sizeof *w);
  if (w == NULL)
    return NULL;
  w->ctx = ctx;
  w->o = *o;
  if (w->o.max_queue_frames == 0)
    w->o.max_queue_frames = 4096;
  if (w->o.max_queue_bytes == 0)
    w->o.max_queue_bytes = 8 * 1024 * 1024;
  if (w->o.ping_interval_ms <= 0)
    w->o.ping_interval_ms = 20000;
  if (w->o.slow_ms <= 0)
    w->o.slow_ms = 10000;
  if (w->o.max_subs_per_socket == 0 ||
      w->o.max_subs_per_socket > STM_GW_WS_MAX_SUBS)
    w->o.max_subs_per_socket = STM_GW_WS_MAX_SUBS;
  if (w->o.max_subs_per_client == 0)
    w->o.max_subs_per_client = STM_GW_WS_DEFAULT_SUBS_PER_CLIENT;
  if (w->o.max_subs_total == 0)
    w->o.max_subs_total = STM_GW_WS_DEFAULT_SUBS_TOTAL;
  pthread_mutex_init(&w->dirty_mu, NULL);
  w->running = true;
  lws_sul_schedule(ctx, 0, &w->ping_timer, ping_tick,
                   (lws_usec_t)w->o.ping_interval_ms * 1000);
  lws_sul_schedule(ctx, 0, &w->slow_timer, slow_tick, 100 * 1000);
  return w;
}

void stm_gw_ws_shutdown(struct stm_gw_ws *w) {
  if (w == NULL || w->shutting_down)
    return;
  w->shutting_down = true;
  for (struct conn *c = w->open; c; c = c->next)
    stm_gw_ws_conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY,
                         "gateway shutting down");
}

size_t stm_gw_ws_open(const struct stm_gw_ws *w) { return w ? w->n_open : 0; }

void stm_gw_ws_stop(struct stm_gw_ws *w) {
  if (w == NULL || !w->running)
    return;
  w->running = false;
  lws_sul_cancel(&w->ping_timer);
  lws_sul_cancel(&w->slow_timer);
  /* The streams' last batches complete on the upstream's cq thread, which
   * stm_gw_upstream_stop drains and joins. */
  for (struct conn *c = w->open; c; c = c->next)
    stm_gw_ws_cancel_all(c);
}

void stm_gw_ws_delete(struct stm_gw_ws *w) {
  if (w == NULL)
    return;
  stm_gw_ws_stop(w);
  /* Connections still open lost their socket with the context. */
  while (w->open)
    on_closed(w, w->open);
  pthread_mutex_lock(&w->dirty_mu);
  struct conn *c = w->dirty;
  w->dirty = NULL;
  pthread_mutex_unlock(&w->dirty_mu);
  while (c) {
    struct conn *next = c->dirty_next;
    stm_gw_ws_conn_unref(c);
    c = next;
  }
  pthread_mutex_destroy(&w->dirty_mu);
  free(w);
}
