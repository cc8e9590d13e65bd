/*
 * tls_server.c - the gateway's TLS terminator (tls_server.h): certificates
 * and reload, the listeners, accepting within max_handshakes, the TLS
 * thread's event loop and the lifecycle. What happens to a connection
 * after accept is tls_relay.c.
 */
#include "gateway/tls_server.h"

#include "common/log.h"
#include "gateway/tls_internal.h"

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
#include <unistd.h>

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
                  stm_gw_tls_ssl_error(why, sizeof why));
  } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    stm_error_set(err, STM_EINVAL, "tls-key", "tls-key: cannot use \"%s\": %s",
                  key, stm_gw_tls_ssl_error(why, sizeof why));
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
  r->deadline_ms = stm_gw_tls_now_ms() + t->o.handshake_timeout_ms;
  stm_gw_tls_list_push(&t->lists[HANDSHAKE], r);
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
      stm_gw_tls_relay_ready(t, r);
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
      t->accept_pause_until = stm_gw_tls_now_ms() + 100;
    }
    break;
  }
  update_accepting(t, stm_gw_tls_now_ms());
}

/* ---- the thread ---------------------------------------------------------- */

static void expire(struct stm_gw_tls *t, int64_t now) {
  while (t->lists[HANDSHAKE].head &&
         t->lists[HANDSHAKE].head->deadline_ms <= now) {
    stm_log_debug("TLS handshake with %s timed out",
                  t->lists[HANDSHAKE].head->peer);
    stm_gw_tls_relay_free(t, t->lists[HANDSHAKE].head);
  }
  for (int s = LINGER; s <= PARKED; s++)
    while (t->lists[s].head && t->lists[s].head->deadline_ms <= now)
      stm_gw_tls_relay_free(t, t->lists[s].head);
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
    stm_gw_tls_relay_ready(t, r);
  }
}

static void *run(void *arg) {
  struct stm_gw_tls *t = arg;
  int64_t stop_at = 0;
  for (;;) {
    int64_t now = stm_gw_tls_now_ms();
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
        stm_gw_tls_relay_retire(t, r);
      else
        stm_gw_tls_relay_pump(t, r);
    }
    now = stm_gw_tls_now_ms();
    expire(t, now);
    if (stop_at && (now >= stop_at || (n == 0 && t->ready == NULL)))
      break;
  }
  for (int s = 0; s < N_STATES; s++)
    while (t->lists[s].head)
      stm_gw_tls_relay_free(t, t->lists[s].head);
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
