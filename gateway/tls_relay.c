/*
 * tls_relay.c - one TLS connection after accept: the handshake, then the
 * relay between SSL and the socketpair whose other end lws adopts, the
 * linger after our close_notify, and the parking of a dead relay whose
 * app end lws still holds (tls_internal.h).
 */
#include "gateway/tls_internal.h"

#include "common/log.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

const char *stm_gw_tls_ssl_error(char *buf, size_t len) {
  unsigned long e = ERR_get_error();
  if (e == 0)
    snprintf(buf, len, "%s", errno ? strerror(errno) : "connection closed");
  else
    ERR_error_string_n(e, buf, len);
  ERR_clear_error();
  return buf;
}

/* ---- lists and interests ------------------------------------------------- */

void stm_gw_tls_list_push(struct list *l, struct relay *r) {
  r->prev = l->tail;
  r->next = NULL;
  if (l->tail)
    l->tail->next = r;
  else
    l->head = r;
  l->tail = r;
  l->n++;
}

static void list_remove(struct list *l, struct relay *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    l->head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    l->tail = r->prev;
  l->n--;
}

static void move_to(struct stm_gw_tls *t, struct relay *r, enum state s,
                    int64_t deadline_ms) {
  list_remove(&t->lists[r->state], r);
  r->state = s;
  r->deadline_ms = deadline_ms;
  stm_gw_tls_list_push(&t->lists[s], r);
}

static void watch(struct stm_gw_tls *t, int fd, uint64_t tag, uint32_t *reg,
                  uint32_t want) {
  if (*reg == want)
    return;
  struct epoll_event ev = {.events = want, .data.u64 = tag};
  epoll_ctl(t->ep, EPOLL_CTL_MOD, fd, &ev);
  *reg = want;
}

static void set_interest(struct stm_gw_tls *t, struct relay *r) {
  if (r->tcp >= 0)
    watch(t, r->tcp, (uint64_t)(uintptr_t)r, &r->tcp_ev,
          (r->tcp_in ? EPOLLIN : 0) | (r->tcp_out ? EPOLLOUT : 0));
  if (r->app >= 0 && r->app_watched)
    watch(t, r->app, (uint64_t)(uintptr_t)r | 1, &r->app_ev,
          (r->app_in ? EPOLLIN : 0) | (r->app_out ? EPOLLOUT : 0));
}

static void close_app(struct relay *r, struct stm_gw_tls *t) {
  if (r->app < 0)
    return;
  if (r->app_watched)
    epoll_ctl(t->ep, EPOLL_CTL_DEL, r->app, NULL);
  stm_gw_peer_unregister(r->ino);
  close(r->app);
  r->app = -1;
}

static bool buf_get(unsigned char **b) {
  if (*b == NULL)
    *b = malloc(BUF_CAP);
  return *b != NULL;
}

static void buf_drop(unsigned char **b) {
  free(*b);
  *b = NULL;
}

void stm_gw_tls_relay_free(struct stm_gw_tls *t, struct relay *r) {
  list_remove(&t->lists[r->state], r);
  if (r->evicted)
    t->n_evicted--;
  if (r->ready)
    for (struct relay **pp = &t->ready; *pp; pp = &(*pp)->ready_next)
      if (*pp == r) {
        *pp = r->ready_next;
        break;
      }
  close_app(r, t);
  free(r->c2s);
  free(r->s2c);
  SSL_free(r->ssl);
  if (r->tcp >= 0)
    close(r->tcp); /* also leaves epoll */
  free(r);
}

/*
 * A dead relay whose app end lws may still use: free the client's side,
 * give lws EOF, and keep app (and its registry entry) until lws closes
 * it. Returns false when there is nothing to wait for.
 */
static bool park(struct stm_gw_tls *t, struct relay *r) {
  if (r->state == PARKED || r->app < 0 || !r->app_watched || r->app_eof ||
      atomic_load(&t->stopping))
    return false;
  SSL_free(r->ssl);
  r->ssl = NULL;
  close(r->tcp);
  r->tcp = -1;
  buf_drop(&r->c2s);
  buf_drop(&r->s2c);
  r->c2s_off = r->c2s_len = r->s2c_off = r->s2c_len = 0;
  shutdown(r->app, SHUT_WR);
  r->dead = false;
  r->tcp_in = r->tcp_out = r->app_out = false;
  r->app_in = true;
  move_to(t, r, PARKED, stm_gw_tls_now_ms() + PARK_MS);
  set_interest(t, r);
  return true;
}

/* Parked: discard what lws still writes until it closes its end. */
static void parked_read(struct relay *r) {
  unsigned char scratch[4096];
  for (int i = 0; i < 64; i++) {
    ssize_t n = recv(r->app, scratch, sizeof scratch, 0);
    if (n > 0)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
      return;
    r->dead = true;
    return;
  }
}

/* A relay marked dead goes: parked while lws may hold its app end. */
void stm_gw_tls_relay_retire(struct stm_gw_tls *t, struct relay *r) {
  if (!park(t, r))
    stm_gw_tls_relay_free(t, r);
}

void stm_gw_tls_relay_ready(struct stm_gw_tls *t, struct relay *r) {
  if (r->ready)
    return;
  r->ready = true;
  r->ready_next = t->ready;
  t->ready = r;
}

/* ---- the relay ----------------------------------------------------------- */

/* The handshake is done: the plaintext side goes to the lws loop. */
static void start_relay(struct stm_gw_tls *t, struct relay *r) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
    stm_log_warn("TLS: cannot relay a connection: %s", strerror(errno));
    r->dead = true;
    return;
  }
  r->app = sv[0];
  r->ino = stm_gw_peer_inode(sv[1]);
  stm_gw_peer_register(r->ino, r->peer);
  struct epoll_event ev = {.events = 0, .data.u64 = (uintptr_t)r | 1};
  r->app_watched = epoll_ctl(t->ep, EPOLL_CTL_ADD, r->app, &ev) == 0;
  r->app_ev = 0;
  move_to(t, r, RELAY, 0);
  pthread_mutex_lock(&t->mu);
  if (t->q_len == t->q_cap) {
    size_t cap = t->q_cap ? t->q_cap * 2 : 16;
    struct handed *q = realloc(t->queue, cap * sizeof *q);
    if (q) {
      t->queue = q;
      t->q_cap = cap;
    }
  }
  bool queued = t->q_len < t->q_cap;
  if (queued)
    t->queue[t->q_len++] = (struct handed){sv[1], r->kind};
  pthread_mutex_unlock(&t->mu);
  if (!queued) {
    close(sv[1]);
    r->dead = true;
    return;
  }
  t->o.wake(t->o.wake_arg);
}

static void handshake(struct stm_gw_tls *t, struct relay *r) {
  ERR_clear_error();
  errno = 0;
  int rc = SSL_do_handshake(r->ssl);
  if (rc == 1) {
    start_relay(t, r);
    return;
  }
  int e = SSL_get_error(r->ssl, rc);
  if (e == SSL_ERROR_WANT_READ) {
    r->tcp_in = true;
  } else if (e == SSL_ERROR_WANT_WRITE) {
    r->tcp_out = true;
  } else {
    char why[256];
    stm_log_debug("TLS handshake with %s failed: %s", r->peer,
                  stm_gw_tls_ssl_error(why, sizeof why));
    r->dead = true;
  }
}

/* An SSL call that did not complete: what it waits for, or death. */
static void ssl_wait(struct relay *r, int rc) {
  int e = SSL_get_error(r->ssl, rc);
  if (e == SSL_ERROR_WANT_READ)
    r->tcp_in = true;
  else if (e == SSL_ERROR_WANT_WRITE)
    r->tcp_out = true;
  else
    r->dead = true;
}

/* Client -> gateway. Returns true when something moved. */
static bool client_to_app(struct relay *r) {
  bool moved = false;
  if (r->c2s_off == r->c2s_len && !r->cli_eof) {
    r->c2s_off = r->c2s_len = 0;
    if (!buf_get(&r->c2s)) {
      r->dead = true;
      return false;
    }
    ERR_clear_error();
    int n = SSL_read(r->ssl, r->c2s, BUF_CAP);
    if (n > 0) {
      r->c2s_len = (size_t)n;
      moved = true;
    } else if (SSL_get_error(r->ssl, n) == SSL_ERROR_ZERO_RETURN) {
      r->cli_eof = moved = true; /* close_notify, or EOF */
    } else {
      ssl_wait(r, n);
    }
  }
  if (r->c2s_off < r->c2s_len && r->app >= 0) {
    ssize_t w = send(r->app, r->c2s + r->c2s_off, r->c2s_len - r->c2s_off,
                     MSG_NOSIGNAL);
    if (w > 0) {
      r->c2s_off += (size_t)w;
      r->owed = moved = true;
      r->answering = false;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      r->app_out = true;
    } else { /* the gateway closed: what the client sends now is dropped */
      r->c2s_off = r->c2s_len = 0;
      r->cli_eof = r->app_shut = moved = true;
    }
  }
  if (r->c2s_off == r->c2s_len)
    buf_drop(&r->c2s);
  if (r->cli_eof && r->c2s_off == r->c2s_len && !r->app_shut && !r->owed &&
      r->app >= 0) {
    shutdown(r->app, SHUT_WR); /* the client's half-close, passed on */
    r->app_shut = moved = true;
  }
  return moved;
}

/* After close_notify: shut our side, drain the client until it closes. */
static void enter_linger(struct stm_gw_tls *t, struct relay *r) {
  close_app(r, t);
  shutdown(r->tcp, SHUT_WR);
  move_to(t, r, LINGER, stm_gw_tls_now_ms() + LINGER_MS);
  r->tcp_in = true;
  r->tcp_out = false;
}

/* Gateway -> client. Returns true when something moved. */
static bool app_to_client(struct stm_gw_tls *t, struct relay *r) {
  bool moved = false;
  if (r->s2c_off == r->s2c_len && !r->app_eof) {
    r->s2c_off = r->s2c_len = 0;
    if (!buf_get(&r->s2c)) {
      r->dead = true;
      return false;
    }
    ssize_t n = recv(r->app, r->s2c, BUF_CAP, 0);
    if (n > 0) {
      r->s2c_len = (size_t)n;
      r->answering = moved = true;
    } else if (n < 0 &&
               (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      r->app_in = true;
      if (r->answering) { /* the answer paused: a half-close may go now */
        r->owed = r->answering = false;
        moved = r->cli_eof && !r->app_shut;
      }
    } else {
      r->app_eof = moved = true;
    }
  }
  if (r->s2c_off < r->s2c_len) {
    ERR_clear_error();
    int n =
        SSL_write(r->ssl, r->s2c + r->s2c_off, (int)(r->s2c_len - r->s2c_off));
    if (n > 0) {
      r->s2c_off += (size_t)n;
      moved = true;
    } else {
      ssl_wait(r, n);
    }
  }
  if (r->s2c_off == r->s2c_len)
    buf_drop(&r->s2c);
  if (r->app_eof && r->s2c_off == r->s2c_len && !r->dead) {
    ERR_clear_error();
    int rc = SSL_shutdown(r->ssl); /* our close_notify */
    if (rc >= 0 || r->cli_eof) {
      if (r->cli_eof)
        r->dead = true; /* both sides are done */
      else
        enter_linger(t, r);
    } else {
      ssl_wait(r, rc);
    }
    moved = false;
  }
  return moved;
}

static void linger_read(struct relay *r) {
  unsigned char scratch[4096];
  for (int i = 0; i < 64; i++) {
    ssize_t n = recv(r->tcp, scratch, sizeof scratch, 0);
    if (n > 0)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
      return;
    r->dead = true; /* the client closed too */
    return;
  }
}

void stm_gw_tls_relay_pump(struct stm_gw_tls *t, struct relay *r) {
  r->tcp_in = r->tcp_out = r->app_in = r->app_out = false;
  if (r->state == PARKED) {
    r->app_in = true;
    parked_read(r);
  }
  if (r->state == HANDSHAKE)
    handshake(t, r);
  for (int round = 0; r->state == RELAY && !r->dead; round++) {
    r->tcp_in = r->tcp_out = r->app_in = r->app_out = false;
    bool moved = client_to_app(r);
    if (!r->dead)
      moved |= app_to_client(t, r);
    if (!moved)
      break;
    if (round == PUMP_ROUNDS) {
      stm_gw_tls_relay_ready(t, r); /* let the others run first */
      break;
    }
  }
  if (r->state == LINGER && !r->dead)
    linger_read(r);
  if (r->dead)
    stm_gw_tls_relay_retire(t, r);
  else
    set_interest(t, r);
}
