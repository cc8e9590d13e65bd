/* Tests for gateway/clients: open connections counted per client address
 * (--max-connections-per-client) and the inode registry that keeps a TLS
 * client's address for its relayed socket and every dup of it. */
#include "gateway/clients.h"
#include "harness.h"

#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_counts_refuse_over_the_limit_and_free_on_leave(void) {
  struct stm_gw_clients *c = stm_gw_clients_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  for (int i = 0; i < 3; i++)
    CU_ASSERT_TRUE(stm_gw_clients_enter(c, "10.0.0.1", 3, false));
  CU_ASSERT_FALSE(stm_gw_clients_enter(c, "10.0.0.1", 3, false));
  CU_ASSERT_EQUAL(stm_gw_clients_count(c, "10.0.0.1"), 3);
  /* Another address is another client; force (a WebSocket taking the
   * place of its HTTP connection) is never refused; 0 is no limit. */
  CU_ASSERT_TRUE(stm_gw_clients_enter(c, "10.0.0.2", 3, false));
  CU_ASSERT_TRUE(stm_gw_clients_enter(c, "10.0.0.1", 3, true));
  CU_ASSERT_EQUAL(stm_gw_clients_count(c, "10.0.0.1"), 4);
  for (int i = 0; i < 100; i++)
    CU_ASSERT_TRUE(stm_gw_clients_enter(c, "10.0.0.3", 0, false));
  for (int i = 0; i < 4; i++)
    stm_gw_clients_leave(c, "10.0.0.1");
  CU_ASSERT_EQUAL(stm_gw_clients_count(c, "10.0.0.1"), 0);
  stm_gw_clients_leave(c, "10.0.0.1"); /* unknown: no-op */
  CU_ASSERT_TRUE(stm_gw_clients_enter(c, "10.0.0.1", 1, false));
  CU_ASSERT_EQUAL(stm_gw_clients_count(c, "10.0.0.2"), 1);
  stm_gw_clients_delete(c); /* frees what is still counted */
}

static void test_peer_registry_is_keyed_by_the_socket_not_the_fd(void) {
  int sv[2];
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int dup_fd = dup(sv[1]);
  ino_t ino = stm_gw_peer_inode(sv[1]);
  CU_ASSERT_NOT_EQUAL(ino, 0);
  CU_ASSERT_EQUAL(stm_gw_peer_inode(dup_fd), ino);
  CU_ASSERT_NOT_EQUAL(stm_gw_peer_inode(sv[0]), ino);
  CU_ASSERT_EQUAL(stm_gw_peer_inode(-1), 0);
  stm_gw_peer_register(ino, "192.0.2.7");
  stm_gw_peer_unregister(ino);
  stm_gw_peer_unregister(ino); /* twice: no-op */
  close(dup_fd);
  close(sv[0]);
  close(sv[1]);
}

int main(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_counts_refuse_over_the_limit_and_free_on_leave),
      STM_TEST(test_peer_registry_is_keyed_by_the_socket_not_the_fd),
      STM_TEST_END,
  };
  stm_test_suite("clients", cases);
  return stm_test_run_all();
}
