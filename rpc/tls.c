/* TLS client credentials from PEM files (codec.h): the CLI's --server-ca
 * and a server's credentials toward its peers. */
#include "rpc/codec.h"

#include "common/pem.h"

#include <grpc/grpc_security.h>
#include <stdlib.h>

int stm_rpc_tls_credentials(const char *ca, const char *cert, const char *key,
                            const struct stm_rpc_tls_names *names,
                            grpc_channel_credentials **out,
                            struct stm_error *err) {
  *out = NULL;
  bool has_ca = ca && *ca, has_cert = cert && *cert, has_key = key && *key;
  if (has_cert != has_key)
    return stm_error_set(err, STM_EINVAL, has_cert ? names->key : names->cert,
                         "--%s and --%s go together", names->cert, names->key);
  char *ca_pem = has_ca ? stm_pem_read(ca, names->ca, err) : NULL;
  char *cert_pem =
      err->code == 0 && has_cert ? stm_pem_read(cert, names->cert, err) : NULL;
  char *key_pem =
      err->code == 0 && has_key ? stm_pem_read(key, names->key, err) : NULL;
  if (err->code == 0) {
    grpc_ssl_pem_key_cert_pair pair = {key_pem, cert_pem};
    *out = grpc_ssl_credentials_create(ca_pem, has_cert ? &pair : NULL, NULL,
                                       NULL);
    if (*out == NULL)
      stm_error_set(err, STM_EINVAL, has_ca ? names->ca : names->cert,
                    "gRPC refused the TLS credentials");
  }
  free(ca_pem);
  free(cert_pem);
  free(key_pem);
  return err->code;
}
