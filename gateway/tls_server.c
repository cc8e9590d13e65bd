#include "gateway/tls_server.h"

#include "common/log.h"
#include "gateway/clients.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_CAP 16384
#define LINGER_MS 2000 /* after our close_notify, wait this for the client */
#define PARK_MS 60000  /* at most this for lws to close a dead relay's end */
#define DRAIN_MS 250   /* on stop, flush what the gateway wrote, this long */
#define PUMP_ROUNDS 16 /* a busy relay yields to the others after this */
#define MAX_LISTENERS 2
#define TAG_EVENT 3 /* epoll tags below 16: listeners 1..2, the eventfd */

/* PARKED: the client is gone but lws may still hold the other end of
 * app (not adopted yet, a WebSocket handover to come), which looks the
 * client's address up by inode: app stays open, and registered, until
 * lws closes its end. */
enum state { HANDSHAKE, RELAY, LINGER, PARKED, N_STATES };

/*
 * One TLS connection. c2s holds decrypted client bytes not yet written to
 * the socketpair, s2c the gateway's bytes not yet taken by SSL_write (which
 * must be retried with the same bytes). The *_in / *_out flags say what
 * the last attempt waits for: they become the epoll interests.
 */
struct relay {
  struct relay *prev, *next; /* in the list of its state, oldest first */
  struct relay *ready_next;
  bool ready;
  enum state state;
  int tcp, app, kind;
  SSL *ssl;
  ino_t ino; /* of the end handed to lws, for the peer registry */
  int64_t deadline_ms;
  bool cli_eof, app_eof, app_shut, app_watched, dead;
  bool evicted; /* a handshake dropped for a newer one, freed soon */
  /* owed: client bytes went to the gateway and its answer has not come
   * and paused yet; answering: some of it came. lws closes a raw socket
   * at EOF, so a client's half-close is passed on only when nothing is
   * owed, or the answer to its last request would be lost. */
  bool owed, answering;
  bool tcp_in, tcp_out, app_in, app_out;
  uint32_t tcp_ev, app_ev; /* registered with epoll */
  size_t c2s_off, c2s_len, s2c_off, s2c_len;
  char peer[STM_GW_PEER_MAX];
  /* BUF_CAP bytes each while they hold data, else NULL: an idle
   * connection (keep-alive, a quiet WebSocket) keeps no buffer. */
  unsigned char *c2s, *s2c;
};

struct list {
  struct relay *head, *tail;
  size_t n;
};

struct handed {
  int fd, kind;
};

struct stm_gw_tls {
  struct stm_gw_tls_options o;
  char *cert, *key;
  pthread_mutex_t mu; /* ctx and the queue */
  SSL_CTX *ctx;
  struct handed *queue;
  size_t q_len, q_cap;
  int ep, evfd;
  int lfd[MAX_LISTENERS], lkind[MAX_LISTENERS];
  size_t n_listen;
  bool accepting;
  size_t n_evicted;           /* handshakes marked evicted, not yet freed */
  int64_t accept_pause_until; /* out of descriptors: retry later */
  pthread_t thread;
  bool started;
  atomic_bool stopping;
  /* The TLS thread only. */
  struct list lists[N_STATES];
  struct relay *ready;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *ssl_error_text(char *buf, size_t len) {
  unsigned long e = ERR_get_error();
  if (e == 0)
    snprintf(buf, len, "%s", errno ? strerror(errno) : "connection closed");
  else
    ERR_error_string_n(e, buf, len);
  ERR_clear_error();
  return buf;
}

/* ---- certificates -------------------------------------------------------- */

/* Offer HTTP/1.1 to clients that ask for ALPN (curl offers h2 first). */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  static const unsigned char h11[] = "\x08http/1.1";
  (void)ssl;
  (void)arg;
  unsigned char *sel = NULL;
  if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *load_ctx(const char *cert, const char *key,
                         struct stm_error *err) {
  char why[256];
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    stm_error_set(err, STM_ENOMEM, NULL, "cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  ERR_clear_error();
  errno = 0;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    stm_error_set(err, STM_EINVAL, "tls-cert",
                  "tls-cert: cannot use \"%s\": %s", cert,
                  ssl_error_text(why, sizeof why));
  } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    stm_error_set(err, STM_EINVAL, "tls-key", "tls-key: cannot use \"%s\": %s",
                  key, ssl_error_text(why, sizeof why));
  } else if (SSL_CTX_check_private_key(ctx) != 1) {
    stm_error_set(err, STM_EINVAL, "tls-key",
                  "tls-key \"%s\" does not match tls-cert \"%s\"", key, cert);
  } else {
    return ctx;
  }
  SSL_CTX_free(ctx);
  return NULL;
}

int stm_gw_tls_reload(struct stm_gw_tls *t, struct stm_error *err) {
  SSL_CTX *ctx = load_ctx(t->cert, t->key, err);
  if (ctx == NULL)
    return err->code;
  pthread_mutex_lock(&t->mu);
  SSL_CTX *old = t->ctx;
  t->ctx = ctx;
  pthread_mutex_unlock(&t->mu);
  SSL_CTX_free(old); /* connections made with it hold their own reference */
  return 0;
}

/* ---- lists and interests ------------------------------------------------- */

static void list_push(struct list *l, struct relay *r) {
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
  list_push(&t->lists[s], r);
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

/* Accept unless stopping or out of descriptors for a moment. */
static void update_accepting(struct stm_gw_tls *t, int64_t now) {
  bool want = !atomic_load(&t->stopping) && now >= t->accept_pause_until;
  if (want == t->accepting)
    return;
  t->accepting = want;
  for (size_t i = 0; i < t->n_listen; i++) {
    struct epoll_event ev = {.events = want ? EPOLLIN : 0, .data.u64 = i + 1};
    epoll_ctl(t->ep, EPOLL_CTL_MOD, t->lfd[i], &ev);
  }
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

static void free_relay(struct stm_gw_tls *t, struct relay *r) {
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
  move_to(t, r, PARKED, now_ms() + PARK_MS);
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
static void retire(struct stm_gw_tls *t, struct relay *r) {
  if (!park(t, r))
    free_relay(t, r);
}

static void mark_ready(struct stm_gw_tls *t, struct relay *r) {
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
                  ssl_error_text(why, sizeof why));
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
  move_to(t, r, LINGER, now_ms() + LINGER_MS);
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

static void pump(struct stm_gw_tls *t, struct relay *r) {
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
      mark_ready(t, r); /* let the others run first */
      break;
    }
  }
  if (r->state == LINGER && !r->dead)
    linger_read(r);
  if (r->dead)
    retire(t, r);
  else
    set_interest(t, r);
}

/* ---- accepting ----------------------------------------------------------- */

static void relay_new(struct stm_gw_tls *t, int fd, int kind,
                      const struct sockaddr_storage *sa, socklen_t sl) {
  struct relay *r = calloc(1, sizeof *r);
  SSL *ssl = NULL;
  if (r) {
    pthread_mutex_lock(&t->mu);
    ssl = SSL_new(t->ctx);
    pthread_mutex_unlock(&t->mu);
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uintptr_t)r};
  if (r == NULL || ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
      epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    SSL_free(ssl);
    free(r);
    close(fd);
    return;
  }
  SSL_set_accept_state(ssl);
  r->ssl = ssl;
  r->tcp = fd;
  r->app = -1;
  r->kind = kind;
  r->tcp_ev = EPOLLIN;
  if (getnameinfo((const struct sockaddr *)sa, sl, r->peer, sizeof r->peer,
                  NULL, 0, NI_NUMERICHOST) != 0)
    snprintf(r->peer, sizeof r->peer, "unknown");
  r->state = HANDSHAKE;
  r->deadline_ms = now_ms() + t->o.handshake_timeout_ms;
  list_push(&t->lists[HANDSHAKE], r);
}

/*
 * At max_handshakes, the oldest handshake makes room for the new one: an
 * honest handshake takes milliseconds, so the oldest is the likeliest to
 * be a client that never finishes (pausing accept instead would let such
 * clients stall everyone until their timeout). Marked dead, it is freed
 * after this round of events (which may still name it).
 */
static void make_room(struct stm_gw_tls *t) {
  if (t->lists[HANDSHAKE].n - t->n_evicted < (size_t)t->o.max_handshakes)
    return;
  for (struct relay *r = t->lists[HANDSHAKE].head; r; r = r->next)
    if (!r->dead) {
      stm_log_debug("TLS: %d handshakes pending, dropping the oldest (%s)",
                    t->o.max_handshakes, r->peer);
      r->dead = r->evicted = true;
      t->n_evicted++;
      mark_ready(t, r);
      return;
    }
}

static void accept_all(struct stm_gw_tls *t, size_t idx) {
  for (int i = 0; i < 64 && t->accepting; i++) {
    make_room(t);
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    int fd = accept4(t->lfd[idx], (struct sockaddr *)&sa, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      relay_new(t, fd, t->lkind[idx], &sa, sl);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED)
      continue;
    if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
        errno == ENOBUFS) {
      stm_log_warn("TLS: cannot accept: %s (retrying in 100 ms)",
                   strerror(errno));
      t->accept_pause_until = now_ms() + 100;
    }
    break;
  }
  update_accepting(t, now_ms());
}

/* ---- the thread ---------------------------------------------------------- */

static void expire(struct stm_gw_tls *t, int64_t now) {
  while (t->lists[HANDSHAKE].head &&
         t->lists[HANDSHAKE].head->deadline_ms <= now) {
    stm_log_debug("TLS handshake with %s timed out",
                  t->lists[HANDSHAKE].head->peer);
    free_relay(t, t->lists[HANDSHAKE].head);
  }
  for (int s = LINGER; s <= PARKED; s++)
    while (t->lists[s].head && t->lists[s].head->deadline_ms <= now)
      free_relay(t, t->lists[s].head);
}

static int next_timeout(const struct stm_gw_tls *t, int64_t now,
                        int64_t stop_at) {
  if (t->ready)
    return 0;
  int64_t next = stop_at ? stop_at : INT64_MAX;
  if (stop_at && stop_at - now > 20)
    next = now + 20; /* stopping: quiet for 20 ms is flushed */
  for (int s = 0; s < N_STATES; s++) {
    const struct relay *h = t->lists[s].head;
    if (s != RELAY && h && h->deadline_ms < next)
      next = h->deadline_ms;
  }
  if (t->accept_pause_until > now && t->accept_pause_until < next)
    next = t->accept_pause_until;
  if (next == INT64_MAX)
    return -1;
  return next <= now ? 0 : (int)(next - now);
}

static void close_listeners(struct stm_gw_tls *t) {
  for (size_t i = 0; i < t->n_listen; i++)
    if (t->lfd[i] >= 0) {
      close(t->lfd[i]);
      t->lfd[i] = -1;
    }
  t->accepting = false;
}

static void handle_event(struct stm_gw_tls *t, const struct epoll_event *ev) {
  uint64_t tag = ev->data.u64;
  if (tag == TAG_EVENT) {
    uint64_t v;
    if (read(t->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
      stm_log_debug("TLS: eventfd: %s", strerror(errno));
  } else if (tag >= 1 && tag <= MAX_LISTENERS) {
    if (t->accepting)
      accept_all(t, tag - 1);
  } else {
    struct relay *r = (struct relay *)(uintptr_t)(tag & ~(uint64_t)1);
    if (r == NULL)
      return;
    if ((tag & 1) && (ev->events & (EPOLLHUP | EPOLLERR)) && r->app_watched) {
      /* The gateway closed its end: read what is left without epoll. */
      epoll_ctl(t->ep, EPOLL_CTL_DEL, r->app, NULL);
      r->app_watched = false;
    }
    if (!(tag & 1) && r->state == PARKED)
      return; /* an event of its closed client socket, in this batch */
    if (!(tag & 1) && (ev->events & (EPOLLERR | EPOLLHUP)))
      r->dead = true; /* reset, or closed both ways */
    mark_ready(t, r);
  }
}

static void *run(void *arg) {
  struct stm_gw_tls *t = arg;
  int64_t stop_at = 0;
  for (;;) {
    int64_t now = now_ms();
    if (atomic_load(&t->stopping) && stop_at == 0) {
      close_listeners(t);
      stop_at = now + DRAIN_MS;
    }
    update_accepting(t, now);
    struct epoll_event evs[64];
    int n = epoll_wait(t->ep, evs, 64, next_timeout(t, now, stop_at));
    for (int i = 0; i < n; i++)
      handle_event(t, &evs[i]);
    struct relay *ready = t->ready;
    t->ready = NULL;
    while (ready) {
      struct relay *r = ready;
      ready = r->ready_next;
      r->ready = false;
      if (r->dead)
        retire(t, r);
      else
        pump(t, r);
    }
    now = now_ms();
    expire(t, now);
    if (stop_at && (now >= stop_at || (n == 0 && t->ready == NULL)))
      break;
  }
  for (int s = 0; s < N_STATES; s++)
    while (t->lists[s].head)
      free_relay(t, t->lists[s].head);
  return NULL;
}

/* ---- lifecycle ----------------------------------------------------------- */

int stm_gw_tls_new(const struct stm_gw_tls_options *o, struct stm_gw_tls **out,
                   struct stm_error *err) {
  *out = NULL;
  struct stm_gw_tls *t = calloc(1, sizeof *t);
  if (t == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  t->o = *o;
  if (t->o.handshake_timeout_ms <= 0)
    t->o.handshake_timeout_ms = 10000;
  if (t->o.max_handshakes <= 0)
    t->o.max_handshakes = 256;
  t->lfd[0] = t->lfd[1] = -1;
  pthread_mutex_init(&t->mu, NULL);
  t->cert = strdup(o->cert);
  t->key = strdup(o->key);
  t->ep = epoll_create1(EPOLL_CLOEXEC);
  t->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int rc = t->cert && t->key && t->ep >= 0 && t->evfd >= 0
               ? 0
               : stm_error_set(err, STM_ENOMEM, NULL,
                               "cannot set up the TLS listener");
  if (rc == 0) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_EVENT};
    epoll_ctl(t->ep, EPOLL_CTL_ADD, t->evfd, &ev);
    t->ctx = load_ctx(t->cert, t->key, err);
    if (t->ctx == NULL)
      rc = err->code;
  }
  if (rc) {
    stm_gw_tls_delete(t);
    return rc;
  }
  *out = t;
  return 0;
}

int stm_gw_tls_listen(struct stm_gw_tls *t, int kind, const char *host,
                      int port, const char *flag, int *bound,
                      struct stm_error *err) {
  if (t->n_listen == MAX_LISTENERS)
    return stm_error_set(err, STM_EINVAL, flag, "too many TLS listeners");
  char ps[8];
  snprintf(ps, sizeof ps, "%d", port);
  bool any = host[0] == '\0' || strcmp(host, "*") == 0;
  struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                           .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  if (getaddrinfo(any ? "0.0.0.0" : host, ps, &hints, &ai) != 0)
    return stm_error_set(err, STM_EUNAVAIL, flag,
                         "cannot listen on %.64s:%d (%s): no such address",
                         host, port, flag);
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  const char *why = NULL;
  if (fd < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 512) != 0)
    why = strerror(errno);
  freeaddrinfo(ai);
  struct sockaddr_storage sa;
  memset(&sa, 0, sizeof sa);
  socklen_t sl = sizeof sa;
  if (why == NULL && getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
    why = strerror(errno);
  if (why) {
    if (fd >= 0)
      close(fd);
    return stm_error_set(err, STM_EUNAVAIL, flag,
                         "cannot listen on %.64s:%d (%s): %s", host, port, flag,
                         why);
  }
  *bound =
      ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                     : ((struct sockaddr_in *)&sa)->sin_port);
  size_t i = t->n_listen++;
  t->lfd[i] = fd;
  t->lkind[i] = kind;
  struct epoll_event ev = {.events = 0, .data.u64 = i + 1};
  epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

int stm_gw_tls_start(struct stm_gw_tls *t, struct stm_error *err) {
  if (pthread_create(&t->thread, NULL, run, t) != 0)
    return stm_error_set(err, STM_ENOMEM, NULL, "cannot start the TLS thread");
  t->started = true;
  return 0;
}

int stm_gw_tls_take(struct stm_gw_tls *t, int *fd, int *kind) {
  int rc = -1;
  pthread_mutex_lock(&t->mu);
  if (t->q_len > 0) {
    *fd = t->queue[0].fd;
    *kind = t->queue[0].kind;
    memmove(t->queue, t->queue + 1, --t->q_len * sizeof *t->queue);
    rc = 0;
  }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

void stm_gw_tls_stop(struct stm_gw_tls *t) {
  if (t == NULL || !t->started)
    return;
  atomic_store(&t->stopping, true);
  uint64_t one = 1;
  if (write(t->evfd, &one, sizeof one) < 0)
    stm_log_debug("TLS: eventfd: %s", strerror(errno));
  pthread_join(t->thread, NULL);
  t->started = false;
}

void stm_gw_tls_delete(struct stm_gw_tls *t) {
  if (t == NULL)
    return;
  stm_gw_tls_stop(t);
  close_listeners(t);
  for (size_t i = 0; i < t->q_len; i++)
    close(t->queue[i].fd);
  free(t->queue);
  if (t->ep >= 0)
    close(t->ep);
  if (t->evfd >= 0)
    close(t->evfd);
  SSL_CTX_free(t->ctx);
  pthread_mutex_destroy(&t->mu);
  free(t->cert);
  free(t->key);
  free(t);
}
