/* Tests for gateway/tls_server: a real TLS client (OpenSSL, blocking) on
 * loopback against the terminator thread, with the test playing the lws
 * loop (it takes the plaintext sockets itself). Certificates are made here
 * with OpenSSL's API. */
#include "gateway/clients.h"
#include "gateway/tls_server.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000 /* any single wait; a loaded CI machine is slow */

struct fixture {
  char *dir;
  char cert[512], key[512];
  int wake_fd;
  struct stm_gw_tls *tls;
  int port;
  SSL_CTX *client_ctx;
};

static void wake(void *arg) {
  uint64_t one = 1;
  if (write(*(int *)arg, &one, sizeof one) < 0)
    perror("wake");
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A self-signed P-256 certificate for 127.0.0.1. */
static int make_cert(struct fixture *f) {
  EVP_PKEY *pk = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  if (pk == NULL || x == NULL)
    return -1;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, pk);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                             (const unsigned char *)"127.0.0.1", -1, -1, 0);
  X509_set_issuer_name(x, n);
  int rc = X509_sign(x, pk, EVP_sha256()) > 0 ? 0 : -1;
  snprintf(f->cert, sizeof f->cert, "%s/tls.crt", f->dir);
  snprintf(f->key, sizeof f->key, "%s/tls.key", f->dir);
  FILE *c = fopen(f->cert, "w"), *k = fopen(f->key, "w");
  if (c == NULL || k == NULL || PEM_write_X509(c, x) != 1 ||
      PEM_write_PrivateKey(k, pk, NULL, NULL, 0, NULL, NULL) != 1)
    rc = -1;
  if (c)
    fclose(c);
  if (k)
    fclose(k);
  X509_free(x);
  EVP_PKEY_free(pk);
  return rc;
}

static void fixture_start(struct fixture *f) {
  memset(f, 0, sizeof *f);
  f->dir = stm_test_tmpdir("gwtls");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f->dir);
  CU_ASSERT_EQUAL_FATAL(make_cert(f), 0);
  f->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  CU_ASSERT_FATAL(f->wake_fd >= 0);
  struct stm_gw_tls_options o = {
      .cert = f->cert, .key = f->key, .wake = wake, .wake_arg = &f->wake_fd};
  struct stm_error err = {0};
  CU_ASSERT_EQUAL_FATAL(stm_gw_tls_new(&o, &f->tls, &err), 0);
  CU_ASSERT_EQUAL_FATAL(stm_gw_tls_listen(f->tls, 0, "127.0.0.1", 0,
                                          "--http-listen", &f->port, &err),
                        0);
  CU_ASSERT_EQUAL_FATAL(stm_gw_tls_start(f->tls, &err), 0);
  f->client_ctx = SSL_CTX_new(TLS_client_method());
  CU_ASSERT_PTR_NOT_NULL_FATAL(f->client_ctx);
  SSL_CTX_set_verify(f->client_ctx, SSL_VERIFY_NONE, NULL);
}

static void fixture_stop(struct fixture *f) {
  stm_gw_tls_delete(f->tls);
  SSL_CTX_free(f->client_ctx);
  close(f->wake_fd);
  stm_test_rmrf(f->dir);
  free(f->dir);
}

/* A handshaken blocking client connection (SSL_get_fd gives its socket). */
static SSL *client_connect(struct fixture *f) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)f->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {.tv_sec = WAIT_MS / 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  SSL *ssl = SSL_new(f->client_ctx);
  if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1) {
    SSL_free(ssl);
    close(fd);
    return NULL;
  }
  return ssl;
}

static void client_free(SSL *ssl) {
  int fd = SSL_get_fd(ssl);
  SSL_free(ssl);
  close(fd);
}

/* The next plaintext socket handed over, as the lws loop would take it. */
static int take(struct fixture *f) {
  int64_t end = now_ms() + WAIT_MS;
  int fd, kind;
  while (stm_gw_tls_take(f->tls, &fd, &kind) != 0) {
    if (now_ms() >= end)
      return -1;
    struct pollfd p = {.fd = f->wake_fd, .events = POLLIN};
    if (poll(&p, 1, 50) > 0) {
      uint64_t v;
      if (read(f->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        return -1;
    }
  }
  return fd;
}

/* Read fd until EOF (or WAIT_MS); returns the bytes read, -1 on error. */
static ssize_t read_to_eof(int fd, char *buf, size_t cap) {
  size_t got = 0;
  int64_t end = now_ms() + WAIT_MS;
  for (;;) {
    int left = (int)(end - now_ms());
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, left) <= 0)
      return -1;
    ssize_t n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
    if (n == 0)
      return (ssize_t)got;
    if (n < 0 && errno != EAGAIN)
      return -1;
    if (n > 0)
      got += (size_t)n;
    if (got == cap)
      return -1;
  }
}

/*
 * A client that sends a request and resets at once: the request is still
 * relayed and lws may adopt the socket (or hand a WebSocket over) only
 * after the TLS side is gone. The client's address must stay registered
 * for that socket until lws closes it - else the request would be
 * attributed to no one (rate limits and connection limits by address) -
 * and go once it is closed.
 */
static void test_address_outlives_the_client_until_the_socket_closes(void) {
  struct fixture f;
  fixture_start(&f);
  SSL *c = client_connect(&f);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL(SSL_write(c, "GET / HTTP/1.1\r\n\r\n", 18), 18);
  int app = take(&f);
  CU_ASSERT_FATAL(app >= 0);
  char buf[256];
  size_t got = 0;
  int64_t end = now_ms() + WAIT_MS;
  while (got < 18 && now_ms() < end) {
    struct pollfd p = {.fd = app, .events = POLLIN};
    poll(&p, 1, 100);
    ssize_t n = recv(app, buf + got, sizeof buf - got, MSG_DONTWAIT);
    if (n > 0)
      got += (size_t)n;
  }
  CU_ASSERT_EQUAL(got, 18);
  /* Reset: linger 0, then close. The socket is not closed yet (lws has
   * not seen the EOF, or has not adopted it at all). */
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(SSL_get_fd(c), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  client_free(c);
  CU_ASSERT_EQUAL(read_to_eof(app, buf, sizeof buf), 0);
  char addr[STM_GW_PEER_MAX] = "";
  CU_ASSERT_TRUE(stm_gw_peer_find(stm_gw_peer_inode(app), addr, sizeof addr));
  CU_ASSERT_STRING_EQUAL(addr, "127.0.0.1");
  ino_t ino = stm_gw_peer_inode(app);
  close(app);
  end = now_ms() + WAIT_MS;
  while (stm_gw_peer_find(ino, addr, sizeof addr) && now_ms() < end) {
    struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
    nanosleep(&ts, NULL); /* polling a registry the thread updates */
  }
  CU_ASSERT_FALSE(stm_gw_peer_find(ino, addr, sizeof addr));
  fixture_stop(&f);
}

/*
 * The client sends its request and close_notify (a half-close). lws closes
 * a raw socket when it reads EOF, so the gateway must see the request but
 * not the EOF until it has answered; the answer reaches the client whole,
 * then close_notify.
 */
static void test_half_closed_client_gets_the_whole_answer(void) {
  struct fixture f;
  fixture_start(&f);
  SSL *c = client_connect(&f);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL(SSL_write(c, "ping", 4), 4);
  CU_ASSERT(SSL_shutdown(c) >= 0);
  int app = take(&f);
  CU_ASSERT_FATAL(app >= 0);
  char buf[64];
  size_t got = 0;
  int64_t end = now_ms() + WAIT_MS;
  while (got < 4 && now_ms() < end) {
    struct pollfd p = {.fd = app, .events = POLLIN};
    poll(&p, 1, 100);
    ssize_t n = recv(app, buf + got, sizeof buf - got, MSG_DONTWAIT);
    if (n > 0)
      got += (size_t)n;
    if (n == 0)
      break; /* EOF with the request: the answer would be lost */
  }
  CU_ASSERT_EQUAL(got, 4);
  /* No EOF while the answer is owed (the relay used to pass it on with
   * the request's bytes; 300 ms is ample for that). */
  struct pollfd pe = {.fd = app, .events = POLLIN};
  CU_ASSERT_EQUAL(poll(&pe, 1, 300), 0);
  /* An answer larger than a relay buffer and a TLS record. */
  size_t len = 200000, sent = 0;
  char *big = malloc(len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(big);
  for (size_t i = 0; i < len; i++)
    big[i] = (char)('a' + i % 26);
  end = now_ms() + WAIT_MS;
  /* Kernel buffers on loopback hold it all while the client does not read
   * yet. */
  while (sent < len && now_ms() < end) {
    struct pollfd p = {.fd = app, .events = POLLOUT};
    poll(&p, 1, 100);
    ssize_t w = send(app, big + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0)
      sent += (size_t)w;
    else if (errno != EAGAIN)
      break;
  }
  CU_ASSERT_EQUAL(sent, len);
  /* Answered: now the client's half-close reaches the gateway. */
  CU_ASSERT_EQUAL(read_to_eof(app, buf, sizeof buf), 0);
  close(app);
  char *out = malloc(len + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  size_t have = 0;
  for (;;) {
    int r = SSL_read(c, out + have, (int)(len + 1 - have));
    if (r <= 0)
      break;
    have += (size_t)r;
  }
  CU_ASSERT_EQUAL(have, len);
  CU_ASSERT(have == len && memcmp(out, big, len) == 0);
  CU_ASSERT_NOT_EQUAL(SSL_get_shutdown(c) & SSL_RECEIVED_SHUTDOWN, 0);
  free(out);
  free(big);
  client_free(c);
  fixture_stop(&f);
}

int main(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_address_outlives_the_client_until_the_socket_closes),
      STM_TEST(test_half_closed_client_gets_the_whole_answer),
      STM_TEST_END,
  };
  stm_test_suite("tls_server", cases);
  return stm_test_run_all();
}
