/* Tests for gateway/upstream.c against servers that are down or mute. */
#include "gateway/upstream.h"
#include "gateway_test.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <arpa/inet.h>
#include <grpc/grpc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the upstream, against servers that are down or never answer --------- */

struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int wakes;
};

static void on_wake(void *arg) {
  struct waiter *w = arg;
  pthread_mutex_lock(&w->lock);
  w->wakes++;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

static bool wait_wake(struct waiter *w, int seconds) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += seconds;
  pthread_mutex_lock(&w->lock);
  while (w->wakes == 0 &&
         pthread_cond_timedwait(&w->cond, &w->lock, &until) == 0) {
  }
  bool woke = w->wakes > 0;
  w->wakes = 0;
  pthread_mutex_unlock(&w->lock);
  return woke;
}

struct done {
  int calls;
  grpc_status_code code;
  void *owner;
  char message[256];
};

static void on_done(struct stm_gw_call *c, void *owner, void *arg) {
  struct done *d = arg;
  d->calls++;
  d->code = stm_gw_call_code(c);
  d->owner = owner;
  snprintf(d->message, sizeof d->message, "%s", stm_gw_call_message(c));
  CU_ASSERT_PTR_NULL(
      stm_gw_call_reply(c, &stemedb__v1__status_response__descriptor));
  CU_ASSERT_STRING_EQUAL(stm_gw_call_method(c), "/stemedb.v1.StemeDB/Status");
}

static void test_upstream_reports_unavailable_asynchronously(void) {
  grpc_init();
  struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  char target[32];
  snprintf(target, sizeof target, "127.0.0.1:%d", gw_test_closed_port());
  struct stm_gw_upstream *up = stm_gw_upstream_new(target, on_wake, &w);
  CU_ASSERT_PTR_NOT_NULL_FATAL(up);
  Stemedb__V1__StatusRequest req = STEMEDB__V1__STATUS_REQUEST__INIT;
  int owner = 0;
  struct stm_gw_call *c = NULL;
  CU_ASSERT_EQUAL(stm_gw_upstream_start(up, "/stemedb.v1.StemeDB/Status",
                                        &req.base, 5000, &owner, &c),
                  0);
  CU_ASSERT_EQUAL(stm_gw_upstream_active(up), 1);
  CU_ASSERT_TRUE(wait_wake(&w, 10));
  struct done d = {0};
  CU_ASSERT_EQUAL(stm_gw_upstream_poll(up, on_done, &d), 1);
  CU_ASSERT_EQUAL(d.code, GRPC_STATUS_UNAVAILABLE);
  CU_ASSERT_PTR_EQUAL(d.owner, &owner);
  CU_ASSERT_EQUAL(stm_gw_upstream_active(up), 0);

  /* A detached call finishes without calling back. */
  CU_ASSERT_EQUAL(stm_gw_upstream_start(up, "/stemedb.v1.StemeDB/Status",
                                        &req.base, 5000, &owner, &c),
                  0);
  stm_gw_call_detach(c);
  CU_ASSERT_TRUE(wait_wake(&w, 10));
  memset(&d, 0, sizeof d);
  CU_ASSERT_EQUAL(stm_gw_upstream_poll(up, on_done, &d), 0);
  CU_ASSERT_EQUAL(d.calls, 0);
  CU_ASSERT_EQUAL(stm_gw_upstream_active(up), 0);
  stm_gw_upstream_delete(up);
  grpc_shutdown();
}

static void test_upstream_deadline_and_stop_with_calls_in_flight(void) {
  grpc_init();
  /* A listener that accepts TCP but never speaks HTTP/2: calls hang. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  listen(fd, 16);
  getsockname(fd, (struct sockaddr *)&a, &len);
  char target[32];
  snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(a.sin_port));
  struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  struct stm_gw_upstream *up = stm_gw_upstream_new(target, on_wake, &w);
  Stemedb__V1__StatusRequest req = STEMEDB__V1__STATUS_REQUEST__INIT;
  int owner = 0;
  struct stm_gw_call *c = NULL;
  CU_ASSERT_EQUAL(stm_gw_upstream_start(up, "/stemedb.v1.StemeDB/Status",
                                        &req.base, 200, &owner, &c),
                  0);
  CU_ASSERT_TRUE(wait_wake(&w, 10));
  struct done d = {0};
  CU_ASSERT_EQUAL(stm_gw_upstream_poll(up, on_done, &d), 1);
  CU_ASSERT_EQUAL(d.code, GRPC_STATUS_DEADLINE_EXCEEDED);

  /* Stopping cancels what is in flight instead of waiting 60 s. */
  for (int i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(stm_gw_upstream_start(up, "/stemedb.v1.StemeDB/Status",
                                          &req.base, 60000, &owner, &c),
                    0);
  time_t t0 = time(NULL);
  stm_gw_upstream_stop(up);
  CU_ASSERT_TRUE(time(NULL) - t0 < 5);
  stm_gw_upstream_delete(up);
  close(fd);
  grpc_shutdown();
}

void gw_test_register_upstream(void) {
  static const struct stm_test_case upstream[] = {
      STM_TEST(test_upstream_reports_unavailable_asynchronously),
      STM_TEST(test_upstream_deadline_and_stop_with_calls_in_flight),
      STM_TEST_END};
  stm_test_suite("upstream", upstream);
}
