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

/*
 * Node-to-node TLS (docs/tls.md "Cluster"): every channel the process makes
 * afterwards (peers: replication, forwarding, anti-entropy, cluster jobs)
 * is TLS, presenting `cert` + `key` as the client certificate and
 * verifying the peer's certificate against the address it is dialled by,
 * with the roots `peer_ca`, else `client_ca`, else the system's (either
 * may be NULL). Errors name the option.
 */
int stm_tls_peer_setup(const char *cert, const char *key, const char *client_ca,
                       const char *peer_ca, struct stm_error *err);
/* Read the peer files again (after SIGHUP; not async-signal-safe): peer
 * channels made afterwards use them. A failed read keeps the old ones and
 * is logged. No-op without stm_tls_peer_setup. */
void stm_tls_peer_reload(void);

#endif
