/*
 * tls.c - TLS credentials of the gRPC listener with reload (tls.h). gRPC
 * asks the config fetcher before each new handshake; it answers
 * UNCHANGED unless a reload was requested.
 */
#include "tls.h"

#include "common/log.h"
#include "common/pem.h"
#include "rpc/codec.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_files {
  char *cert, *key, *client_ca; /* paths */
};

static struct tls_files files; /* one listener per process */
static atomic_bool reload_wanted;
static atomic_bool fetched; /* the first fetch always loads */

void stm_tls_request_reload(void) { atomic_store(&reload_wanted, true); }

static grpc_ssl_server_certificate_config *load(struct stm_error *err) {
  char *cert = stm_pem_read(files.cert, "tls-cert", err);
  char *key = cert ? stm_pem_read(files.key, "tls-key", err) : NULL;
  char *ca = key && files.client_ca
                 ? stm_pem_read(files.client_ca, "tls-client-ca", err)
                 : NULL;
  grpc_ssl_server_certificate_config *cfg = NULL;
  if (key && (files.client_ca == NULL || ca)) {
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    /* gRPC 1.51 asserts (aborts) on a fetched config without root
     * certificates, even when client certificates are not requested: give
     * it our own chain, which is never used then (docs/dev-notes.md). */
    cfg = grpc_ssl_server_certificate_config_create(ca ? ca : cert, &pair, 1);
  }
  free(cert);
  free(key);
  free(ca);
  return cfg;
}

static grpc_ssl_certificate_config_reload_status
fetch(void *user, grpc_ssl_server_certificate_config **config) {
  (void)user;
  bool first = !atomic_exchange(&fetched, true);
  if (!first && !atomic_exchange(&reload_wanted, false))
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  struct stm_error err;
  stm_error_clear(&err);
  grpc_ssl_server_certificate_config *cfg = load(&err);
  if (cfg == NULL) {
    stm_log_error("TLS certificates not reloaded, the old ones stay: %s",
                  err.message);
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
  }
  if (!first)
    stm_log_info("TLS certificates reloaded from %s", files.cert);
  *config = cfg;
  return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

int stm_tls_server_credentials(const char *cert, const char *key,
                               const char *client_ca,
                               grpc_server_credentials **out,
                               struct stm_error *err) {
  *out = NULL;
  free(files.cert);
  free(files.key);
  free(files.client_ca);
  files.cert = strdup(cert);
  files.key = strdup(key);
  files.client_ca = client_ca && *client_ca ? strdup(client_ca) : NULL;
  grpc_ssl_server_certificate_config *check = load(err);
  if (check == NULL)
    return err->code ? err->code : STM_ENOMEM;
  grpc_ssl_server_certificate_config_destroy(check);
  grpc_ssl_server_credentials_options *o =
      grpc_ssl_server_credentials_create_options_using_config_fetcher(
          files.client_ca
              ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
              : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
          fetch, NULL);
  *out = o ? grpc_ssl_server_credentials_create_with_options(o) : NULL;
  return *out ? 0
              : stm_error_set(err, STM_EINVAL, "tls-cert",
                              "gRPC refused the TLS credentials");
}

/* The peer files (stm_tls_peer_setup); reloaded on the signal thread. */
static struct tls_files peer;

static struct stm_rpc_tls_names peer_names = {"peer-ca", "tls-cert", "tls-key"};

static int peer_load(struct stm_error *err) {
  grpc_channel_credentials *c = NULL;
  if (stm_rpc_tls_credentials(peer.client_ca, peer.cert, peer.key, &peer_names,
                              &c, err) != 0)
    return err->code;
  stm_rpc_set_channel_credentials(c);
  return 0;
}

int stm_tls_peer_setup(const char *cert, const char *key, const char *client_ca,
                       const char *peer_ca, struct stm_error *err) {
  free(peer.cert);
  free(peer.key);
  free(peer.client_ca);
  bool own = peer_ca && *peer_ca;
  const char *ca = own ? peer_ca : client_ca;
  peer_names.ca = own ? "peer-ca" : "tls-client-ca";
  peer.cert = strdup(cert);
  peer.key = strdup(key);
  /* the trust root of peers, in the slot of the listener's client CA */
  peer.client_ca = ca && *ca ? strdup(ca) : NULL;
  if (peer.cert == NULL || peer.key == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  return peer_load(err);
}

void stm_tls_peer_reload(void) {
  if (peer.cert == NULL)
    return;
  struct stm_error err;
  stm_error_clear(&err);
  if (peer_load(&err) != 0)
    stm_log_error("TLS certificates toward peers not reloaded, the old ones "
                  "stay: %s",
                  err.message);
  else
    stm_log_info("TLS certificates toward peers reloaded from %s", peer.cert);
}
