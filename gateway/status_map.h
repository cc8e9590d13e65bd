/*
 * status_map.h - the table that turns a gRPC status code into the HTTP
 * status the gateway answers with. The code names in error bodies come
 * from the one name table, stm_rpc_code_name (rpc/codec.h).
 *
 *   OK 200; INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION 400;
 *   UNAUTHENTICATED 401; PERMISSION_DENIED 403; NOT_FOUND 404;
 *   ALREADY_EXISTS, ABORTED 409; RESOURCE_EXHAUSTED 429; CANCELLED 499;
 *   UNIMPLEMENTED 501; UNAVAILABLE 503; DEADLINE_EXCEEDED 504;
 *   UNKNOWN, INTERNAL, DATA_LOSS and anything else 500.
 *
 * Pure functions over constant tables; thread-safe.
 */
#ifndef STM_GW_STATUS_MAP_H
#define STM_GW_STATUS_MAP_H

#include <grpc/status.h>

/* The HTTP status for a gRPC status code (500 for codes outside the enum). */
int stm_gw_http_status(grpc_status_code code);

#endif
