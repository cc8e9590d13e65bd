#include "gateway/status_map.h"

#include <stddef.h>

static const struct {
  grpc_status_code code;
  int http;
} status_table[] = {
    {GRPC_STATUS_OK, 200},
    {GRPC_STATUS_CANCELLED, 499},
    {GRPC_STATUS_UNKNOWN, 500},
    {GRPC_STATUS_INVALID_ARGUMENT, 400},
    {GRPC_STATUS_DEADLINE_EXCEEDED, 504},
    {GRPC_STATUS_NOT_FOUND, 404},
    {GRPC_STATUS_ALREADY_EXISTS, 409},
    {GRPC_STATUS_PERMISSION_DENIED, 403},
    {GRPC_STATUS_RESOURCE_EXHAUSTED, 429},
    {GRPC_STATUS_FAILED_PRECONDITION, 400},
    {GRPC_STATUS_ABORTED, 409},
    {GRPC_STATUS_OUT_OF_RANGE, 400},
    {GRPC_STATUS_UNIMPLEMENTED, 501},
    {GRPC_STATUS_INTERNAL, 500},
    {GRPC_STATUS_UNAVAILABLE, 503},
    {GRPC_STATUS_DATA_LOSS, 500},
    {GRPC_STATUS_UNAUTHENTICATED, 401},
};

int stm_gw_http_status(grpc_status_code code) {
  for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
    if (status_table[i].code == code)
      return status_table[i].http;
  return 500;
}
