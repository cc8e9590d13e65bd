/* gateway_test.h - helpers shared by the test files of test/gateway. */
#ifndef STM_GATEWAY_TEST_H
#define STM_GATEWAY_TEST_H

#include "harness.h"

#include <protobuf-c/protobuf-c.h>

#define HASH64                                                                 \
  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Free a malloc'd protobuf-c message (NULL is fine). */
void gw_test_free_msg(void *msg);
/* A loopback TCP port that refuses connections (bound, then closed). */
int gw_test_closed_port(void);

/* One registration function per source module under test. */
void gw_test_register_json_map(void);
void gw_test_register_json_records(void);
void gw_test_register_routes(void);
void gw_test_register_upstream(void);
void gw_test_register_http(void);
void gw_test_register_http_parse(void);

#endif
