/* ws_queue.c - each socket's bounded frame queue and writing it (see
 * ws_internal.h). */
#include "gateway/ws_internal.h"

#include "common/log.h"
#include "rpc/codec.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void frame_free_list(struct frame *f) {
  while (f) {
    struct frame *n = f->next;
    free(f);
    f = n;
  }
}

void stm_gw_ws_conn_unref(struct conn *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1)
    return;
  frame_free_list(c->qhead);
  pthread_mutex_destroy(&c->mu);
  free(c->rx);
  free(c);
}

/* Mark the connection as having work for the loop thread (mu held). */
static void mark_dirty(struct conn *c) {
  if (c->dirty)
    return;
  c->dirty = true;
  atomic_fetch_add(&c->refs, 1);
  struct stm_gw_ws *w = c->w;
  pthread_mutex_lock(&w->dirty_mu);
  bool was_empty = w->dirty == NULL;
  c->dirty_next = w->dirty;
  w->dirty = c;
  pthread_mutex_unlock(&w->dirty_mu);
  if (was_empty)
    lws_cancel_service(w->ctx);
}

/* Build a frame from a JSON object (consumed). NULL when out of memory. */
struct frame *stm_gw_ws_frame_new(json_t *j, int sub, uint64_t next_seq) {
  size_t len = 0;
  char *s = j ? stm_json_dump(j, &len) : NULL;
  json_decref(j);
  if (s == NULL)
    return NULL;
  struct frame *f = malloc(sizeof *f + LWS_PRE + len);
  if (f) {
    *f = (struct frame){.sub = sub, .next_seq = next_seq, .len = len};
    memcpy(f->data + LWS_PRE, s, len);
  }
  free(s);
  return f;
}

/* Append (mu held). Returns false on overflow: the frame is freed and the
 * connection becomes a slow consumer. Control frames always fit. */
bool stm_gw_ws_enqueue(struct conn *c, struct frame *f, bool control) {
  const struct stm_gw_ws_options *o = &c->w->o;
  /* Backpressure keeps the queue near the limits; the hard cap adds room
   * for the one message each stream may still have in flight. */
  if (c->overflow ||
      (!control &&
       (c->qn + 1 > o->max_queue_frames + STM_GW_WS_MAX_SUBS ||
        c->qbytes + f->len >
            o->max_queue_bytes + STM_GW_WS_MAX_SUBS * (size_t)1048576))) {
    free(f);
    return false;
  }
  f->next = NULL;
  if (c->qtail)
    c->qtail->next = f;
  else
    c->qhead = f;
  c->qtail = f;
  c->qn++;
  c->qbytes += f->len;
  mark_dirty(c);
  return true;
}

void stm_gw_ws_send_control(struct conn *c, int sub, json_t *j,
                            int close_code) {
  struct frame *f = stm_gw_ws_frame_new(j, sub, 0);
  if (f == NULL)
    return;
  f->close_code = close_code;
  pthread_mutex_lock(&c->mu);
  stm_gw_ws_enqueue(c, f, true);
  pthread_mutex_unlock(&c->mu);
}

json_t *stm_gw_ws_error_frame(const char *id, const char *code,
                              const char *message) {
  json_t *j = json_object();
  if (id)
    json_object_set_new(j, "id", json_string(id));
  json_object_set_new(j, "type", json_string("error"));
  json_object_set_new(j, "code", json_string(code));
  json_object_set_new(j, "message", json_string(message));
  return j;
}

bool stm_gw_ws_queue_full(const struct conn *c) {
  return c->qn >= c->w->o.max_queue_frames ||
         c->qbytes >= c->w->o.max_queue_bytes;
}

void stm_gw_ws_conn_close(struct conn *c, int code, const char *what) {
  if (c->closing)
    return;
  c->closing = code;
  /* "resume default=12 a=40": where each subscription resumes. */
  size_t n =
      (size_t)snprintf(c->close_reason, sizeof c->close_reason, "%s", what);
  bool first = true;
  for (int i = 0; i < STM_GW_WS_MAX_SUBS && n < sizeof c->close_reason; i++) {
    struct sub *s = &c->subs[i];
    if (!s->used)
      continue;
    uint64_t r = s->resume ? s->resume : s->first_dropped;
    if (r == 0)
      continue;
    int k =
        snprintf(c->close_reason + n, sizeof c->close_reason - n, "%s%s=%llu",
                 first ? "; resume " : " ", s->id, (unsigned long long)r);
    if (k < 0 || (size_t)k >= sizeof c->close_reason - n) {
      c->close_reason[n] = '\0';
      break;
    }
    n += (size_t)k;
    first = false;
  }
  lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 5);
  lws_callback_on_writable(c->wsi);
}

void stm_gw_ws_service(struct stm_gw_ws *w) {
  pthread_mutex_lock(&w->dirty_mu);
  struct conn *c = w->dirty;
  w->dirty = NULL;
  pthread_mutex_unlock(&w->dirty_mu);
  while (c) {
    struct conn *next = c->dirty_next;
    pthread_mutex_lock(&c->mu);
    c->dirty = false;
    bool overflow = c->overflow;
    pthread_mutex_unlock(&c->mu);
    if (c->wsi) {
      if (overflow)
        stm_gw_ws_conn_close(c, STM_GW_WS_CLOSE_SLOW, "slow consumer");
      else
        lws_callback_on_writable(c->wsi);
    }
    stm_gw_ws_conn_unref(c);
    c = next;
  }
}

int stm_gw_ws_conn_writable(struct conn *c) {
  if (c->closing) {
    lws_close_reason(c->wsi, (enum lws_close_status)c->closing,
                     (unsigned char *)c->close_reason, strlen(c->close_reason));
    return -1;
  }
  if (c->ping_due) {
    /* A payload, because lws 4.1.6 does not report empty pongs
     * (LWS_CALLBACK_RECEIVE_PONG never comes for them). */
    unsigned char buf[LWS_PRE + 4];
    memcpy(buf + LWS_PRE, "stm", 4);
    c->ping_due = false;
    if (lws_write(c->wsi, buf + LWS_PRE, 4, LWS_WRITE_PING) < 0)
      return -1;
    lws_callback_on_writable(c->wsi);
    return 0;
  }
  /* Several frames per callback while the socket takes them. */
  for (int k = 0; k < 64; k++) {
    pthread_mutex_lock(&c->mu);
    struct frame *f = c->qhead;
    if (f) {
      c->qhead = f->next;
      if (c->qhead == NULL)
        c->qtail = NULL;
      c->qn--;
      c->qbytes -= f->len;
    }
    bool more = c->qhead != NULL;
    pthread_mutex_unlock(&c->mu);
    if (f == NULL)
      break;
    int rc = lws_write(c->wsi, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT);
    if (f->sub >= 0 && f->next_seq)
      c->subs[f->sub].resume = f->next_seq;
    int close_code = f->close_code;
    free(f);
    if (rc < 0)
      return -1;
    if (close_code) {
      stm_gw_ws_conn_close(c, close_code, "the subscription ended");
      return 0;
    }
    if (!more)
      break;
    if (lws_send_pipe_choked(c->wsi)) {
      lws_callback_on_writable(c->wsi);
      break;
    }
    if (k == 63)
      lws_callback_on_writable(c->wsi);
  }
  stm_gw_ws_resume_paused(c);
  return 0;
}
