/*
 * tls_server.h - HTTPS and WSS for the gateway's listeners: an in-process
 * TLS terminator (OpenSSL) on its own thread.
 *
 * It owns the listening sockets of the TLS ports, accepts, runs each
 * handshake with nonblocking SSL, and then relays decrypted bytes over a
 * socketpair(AF_UNIX) whose other end the lws loop adopts exactly as an
 * accepted plaintext socket (stm_gw_tls_take): HTTP parsing, limits and
 * the WebSocket handover (http_conn.c) see the same bytes as without TLS.
 * The client's address is registered for that socket (clients.h).
 *
 * Backpressure holds both ways (a full buffer stops reading its source);
 * a client's close_notify or EOF half-closes the relay once the gateway
 * has answered what it sent (lws closes a raw socket at EOF, which would
 * drop that answer), the gateway's close sends close_notify. A handshake must finish within
 * handshake_timeout_ms; at most max_handshakes run at once (a new one
 * drops the oldest). Plaintext sent to a TLS port fails the handshake:
 * the connection is closed without an answer.
 *
 * Threads: new/listen/start/stop/delete from one thread; take from the lws
 * loop; reload from any thread (a signal waiter).
 */
#ifndef STM_GW_TLS_SERVER_H
#define STM_GW_TLS_SERVER_H

#include "common/error.h"

struct stm_gw_tls;

struct stm_gw_tls_options {
  const char *cert;         /* PEM certificate chain */
  const char *key;          /* PEM private key */
  int handshake_timeout_ms; /* 0: 10000 */
  int max_handshakes;       /* handshakes at once; 0: 256 */
  /* Called on the TLS thread when a socket is ready to be taken. */
  void (*wake)(void *arg);
  void *wake_arg;
};

/* Loads the certificate and key (STM_EINVAL naming "tls-cert" or
 * "tls-key" when they cannot be used), or STM_ENOMEM. */
int stm_gw_tls_new(const struct stm_gw_tls_options *o, struct stm_gw_tls **out,
                   struct stm_error *err);

/*
 * Listen on host ("" or "*": every interface) and port (0: any free);
 * accepted connections are tagged `kind`. Returns 0 and the bound port,
 * or STM_EUNAVAIL naming `flag` and the reason. At most 2 listeners.
 */
int stm_gw_tls_listen(struct stm_gw_tls *t, int kind, const char *host,
                      int port, const char *flag, int *bound,
                      struct stm_error *err);

/* Start the thread. */
int stm_gw_tls_start(struct stm_gw_tls *t, struct stm_error *err);

/* The next plaintext socket to adopt: 0 with *fd and *kind, -1 if none.
 * The caller owns *fd. */
int stm_gw_tls_take(struct stm_gw_tls *t, int *fd, int *kind);

/* Read the certificate and key again for new connections. On failure the
 * old ones stay and the error says why. */
int stm_gw_tls_reload(struct stm_gw_tls *t, struct stm_error *err);

/* Stop accepting, flush what the gateway wrote (briefly), close every
 * connection and join the thread. Idempotent. */
void stm_gw_tls_stop(struct stm_gw_tls *t);
/* Stop, free. NULL: no-op. */
void stm_gw_tls_delete(struct stm_gw_tls *t);

#endif
