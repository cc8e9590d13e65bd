/*
 * tls_client.h - the gateway's TLS to stemedb-server (docs/tls.md):
 * --server-ca (STEMEDB_SERVER_CA) verifies the server's certificate,
 * --server-cert / --server-key (STEMEDB_SERVER_CERT / _KEY) present the
 * gateway's own certificate for a server that requires client certificates.
 */
#ifndef STM_GW_TLS_CLIENT_H
#define STM_GW_TLS_CLIENT_H

#include "common/error.h"

/* Make every later channel to the server use TLS. ca: required; cert and
 * key: both or neither. Errors name the option. Call after grpc_init. */
int stm_gw_tls_client_setup(const char *ca, const char *cert, const char *key,
                            struct stm_error *err);

#endif
