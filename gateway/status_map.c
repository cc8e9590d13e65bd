#include "status_map.h"

#include <stddef.h>

/* X(grpc code, HTTP status, name): the whole mapping, in one place. */
#define STM_GW_STATUS_MAP(X)                                                   \
  X(GRPC_STATUS_OK, 200, "OK")                                                 \
  X(GRPC_STATUS_CANCELLED, 499, "CANCELLED")                                   \
  X(GRPC_STATUS_UNKNOWN, 500, "UNKNOWN")                                       \
  X(GRPC_STATUS_INVALID_ARGUMENT, 400, "INVALID_ARGUMENT")                     \
  X(GRPC_STATUS_DEADLINE_EXCEEDED, 504, "DEADLINE_EXCEEDED")                   \
  X(GRPC_STATUS_NOT_FOUND, 404, "NOT_FOUND")                                   \
  X(GRPC_STATUS_ALREADY_EXISTS, 409, "ALREADY_EXISTS")                         \
  X(GRPC_STATUS_PERMISSION_DENIED, 403, "PERMISSION_DENIED")                   \
  X(GRPC_STATUS_RESOURCE_EXHAUSTED, 429, "RESOURCE_EXHAUSTED")                 \
  X(GRPC_STATUS_FAILED_PRECONDITION, 400, "FAILED_PRECONDITION")               \
  X(GRPC_STATUS_ABORTED, 409, "ABORTED")                                       \
  X(GRPC_STATUS_OUT_OF_RANGE, 400, "OUT_OF_RANGE")                             \
  X(GRPC_STATUS_UNIMPLEMENTED, 501, "UNIMPLEMENTED")                           \
  X(GRPC_STATUS_INTERNAL, 500, "INTERNAL")                                     \
  X(GRPC_STATUS_UNAVAILABLE, 503, "UNAVAILABLE")                               \
  X(GRPC_STATUS_DATA_LOSS, 500, "DATA_LOSS")                                   \
  X(GRPC_STATUS_UNAUTHENTICATED, 401, "UNAUTHENTICATED")

static const struct {
  grpc_status_code code;
  int http;
  const char *name;
} status_table[] = {
#define STM__GW_ROW(code, http, name) {code, http, name},
    STM_GW_STATUS_MAP(STM__GW_ROW)
#undef STM__GW_ROW
};

#define TABLE_LEN (sizeof status_table / sizeof status_table[0])

int stm_gw_http_status(grpc_status_code code) {
  for (size_t i = 0; i < TABLE_LEN; i++)
    if (status_table[i].code == code)
      return status_table[i].http;
  return 500;
}

const char *stm_gw_code_name(grpc_status_code code) {
  for (size_t i = 0; i < TABLE_LEN; i++)
    if (status_table[i].code == code)
      return status_table[i].name;
  return "UNKNOWN";
}
