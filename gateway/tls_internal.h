/*
 * tls_internal.h - what the two halves of the gateway's TLS terminator
 * share; not an interface for anything else (that is tls_server.h).
 *
 * tls_server.c: certificates and reload, listening, accepting (with the
 * handshake limit), the thread's event loop and the lifecycle.
 * tls_relay.c: one connection's life after accept: the handshake, the
 * relay between SSL and the socketpair handed to lws, linger and park.
 *
 * The fields of struct stm_gw_tls under `mu` are shared with the lws loop
 * (take) and reload; the rest belong to the TLS thread once it runs.
 */
#ifndef STM_GW_TLS_INTERNAL_H
#define STM_GW_TLS_INTERNAL_H

#include "gateway/clients.h"
#include "gateway/tls_server.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

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

static inline int64_t stm_gw_tls_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* OpenSSL's first queued error (else errno's text) into buf; clears the
 * queue. Returns buf. */
const char *stm_gw_tls_ssl_error(char *buf, size_t len);

/* Append r to l (the newest last). */
void stm_gw_tls_list_push(struct list *l, struct relay *r);

/* Run r as far as its sockets allow, then set its epoll interests; a
 * relay that died on the way is retired. */
void stm_gw_tls_relay_pump(struct stm_gw_tls *t, struct relay *r);
/* Queue r to be pumped after this round of events. */
void stm_gw_tls_relay_ready(struct stm_gw_tls *t, struct relay *r);
/* A dead relay goes: parked while lws may hold its app end, else freed. */
void stm_gw_tls_relay_retire(struct stm_gw_tls *t, struct relay *r);
/* Close and free r now, whatever its state. */
void stm_gw_tls_relay_free(struct stm_gw_tls *t, struct relay *r);

#endif
