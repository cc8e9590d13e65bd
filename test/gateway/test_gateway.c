/* test_gateway: the CUnit executable for gateway/ (and json/). One file
 * per source module: test_claims.c (claims.c, json/), test_records.c
 * (request.c and the record resources), test_routes.c (status table,
 * routes, metrics, openapi.yaml), test_upstream.c, test_http_parse.c and
 * test_http.c. */
#include "gateway_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

void gw_test_free_msg(void *msg) {
  if (msg)
    protobuf_c_message_free_unpacked(msg, NULL);
}

/* A port that refuses connections: bind, then close. */
int gw_test_closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  CU_ASSERT_EQUAL(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  CU_ASSERT_EQUAL(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

int main(void) {
  gw_test_register_json_map();
  gw_test_register_json_records();
  gw_test_register_routes();
  gw_test_register_upstream();
  gw_test_register_http_parse();
  gw_test_register_http();
  return stm_test_run_all();
}
