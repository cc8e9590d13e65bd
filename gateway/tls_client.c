#include "gateway/tls_client.h"

#include "common/pem.h"
#include "rpc/codec.h"

#include <errno.h>
#include <grpc/grpc_security.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int stm_gw_tls_client_setup(const char *ca, const char *cert, const char *key,
                            struct stm_error *err) {
  bool has_cert = cert && *cert, has_key = key && *key;
  if (has_cert != has_key)
    return stm_error_set(err, STM_EINVAL,
                         has_cert ? "server-key" : "server-cert",
                         "--server-cert and --server-key go together");
  if ((ca == NULL || *ca == '\0') && has_cert)
    return stm_error_set(err, STM_EINVAL, "server-ca",
                         "--server-cert needs --server-ca");
  if (ca == NULL || *ca == '\0')
    return 0;
  char *ca_pem = stm_pem_read(ca, "server-ca", err);
  char *cert_pem =
      ca_pem && has_cert ? stm_pem_read(cert, "server-cert", err) : NULL;
  char *key_pem = cert_pem ? stm_pem_read(key, "server-key", err) : NULL;
  int rc = err->code;
  if (rc == 0) {
    grpc_ssl_pem_key_cert_pair pair = {key_pem, cert_pem};
    grpc_channel_credentials *c = grpc_ssl_credentials_create(
        ca_pem, has_cert ? &pair : NULL, NULL, NULL);
    if (c == NULL)
      rc = stm_error_set(err, STM_EINVAL, "server-ca",
                         "gRPC refused the TLS credentials");
    else
      stm_rpc_set_channel_credentials(c);
  }
  free(ca_pem);
  free(cert_pem);
  free(key_pem);
  return rc;
}
