/*
 * tls.h - the gRPC listener's TLS credentials (docs/tls.md): a PEM
 * certificate chain and key, optionally a client CA that makes client
 * certificates required and verified (mTLS). The files are read again on
 * the first handshake after stm_tls_request_reload (SIGHUP), so
 * certificates rotate without a restart; a reload that fails keeps the
 * old ones (and logs why).
 */
#ifndef STM_SERVICE_TLS_H
#define STM_SERVICE_TLS_H

#include "common/error.h"

#include <grpc/grpc_security.h>

/* Read and check the files now (errors name the option), then return
 * credentials for grpc_server_add_http2_port. `client_ca` may be NULL. */
int stm_tls_server_credentials(const char *cert, const char *key,
                               const char *client_ca,
                               grpc_server_credentials **out,
                               struct stm_error *err);
/* Ask for the files to be read again (async-signal-safe). */
void stm_tls_request_reload(void);

#endif
