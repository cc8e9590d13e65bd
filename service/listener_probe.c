#include "listener_probe.h"

#include "common/clock.h"
#include "common/log.h"
#include "rpc/codec.h"

#include "grpc/health/v1/health.pb-c.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct stm_listener_probe {
  struct stm_listener_probe_options o;
  char target[300];
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop;
};

/* "0.0.0.0:p" / "[::]:p" / ":p" are dialled on loopback; others as given. */
static void probe_target(const char *listen, int port, char *out, size_t size) {
  const char *colon = strrchr(listen, ':');
  size_t hlen = colon ? (size_t)(colon - listen) : strlen(listen);
  if (hlen == 0 || (hlen == 7 && memcmp(listen, "0.0.0.0", 7) == 0))
    snprintf(out, size, "127.0.0.1:%d", port);
  else if (hlen == 4 && memcmp(listen, "[::]", 4) == 0)
    snprintf(out, size, "[::1]:%d", port);
  else
    snprintf(out, size, "%.*s:%d", (int)hlen, listen, port);
}

/* One Health/Check on a channel of its own, so it needs a new connection
 * (an existing one would keep working after the listener died). */
static bool probe_once(struct stm_listener_probe *p, char *why, size_t size) {
  grpc_arg args[] = {
      {.type = GRPC_ARG_INTEGER,
       .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
       .value.integer = 1},
      {.type = GRPC_ARG_INTEGER,
       .key = GRPC_ARG_ENABLE_RETRIES,
       .value.integer = 0},
  };
  grpc_channel_args ca = {.num_args = sizeof args / sizeof args[0],
                          .args = args};
  grpc_channel *ch;
  if (p->o.tls) {
    ch = stm_rpc_channel_with_args(p->target, &ca);
  } else {
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    ch = grpc_channel_create(p->target, creds, &ca);
    grpc_channel_credentials_release(creds);
  }
  Grpc__Health__V1__HealthCheckRequest req =
      GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  struct stm_rpc_status st = {0};
  grpc_status_code code =
      stm_rpc_call(ch, "/grpc.health.v1.Health/Check", &req.base,
                   &grpc__health__v1__health_check_response__descriptor,
                   p->o.timeout_ms, &resp, &st);
  if (resp)
    protobuf_c_message_free_unpacked(resp, NULL);
  grpc_channel_destroy(ch);
  /* Any answer, NOT_SERVING included, proves that connections are
   * accepted; only a call that never got through counts as a failure. */
  if (code == GRPC_STATUS_UNAVAILABLE ||
      code == GRPC_STATUS_DEADLINE_EXCEEDED) {
    snprintf(why, size, "%s: %s %.200s", p->target, stm_rpc_code_name(code),
             st.message);
    return false;
  }
  return true;
}

static bool wait_interval(struct stm_listener_probe *p) {
  struct timespec until =
      stm_clock_deadline(CLOCK_REALTIME, (int64_t)p->o.interval_ms * 1000000);
  pthread_mutex_lock(&p->lock);
  while (!p->stop && pthread_cond_timedwait(&p->cond, &p->lock, &until) == 0)
    ;
  bool stop = p->stop;
  pthread_mutex_unlock(&p->lock);
  return !stop;
}

static void *probe_main(void *arg) {
  struct stm_listener_probe *p = arg;
  int failed = 0;
  bool armed = !p->o.tls, warned = false;
  char why[1024];
  while (wait_interval(p)) {
    if (probe_once(p, why, sizeof why)) {
      if (!armed)
        stm_log_info("listener probe over TLS to %s works", p->target);
      armed = true;
      failed = 0;
      continue;
    }
    if (!armed) {
      if (!warned)
        stm_log_warn("listener probe over TLS failed (%s); it counts "
                     "failures only after a first success: is the "
                     "certificate valid for %s and signed by a CA the "
                     "node trusts (--peer-ca, --tls-client-ca)?",
                     why, p->target);
      warned = true;
      continue;
    }
    stm_log_warn("listener probe %d/%d failed: %s", failed + 1, p->o.failures,
                 why);
    if (++failed >= p->o.failures) {
      p->o.on_dead(p->o.ctx, why);
      break;
    }
  }
  return NULL;
}

int stm_listener_probe_start(const struct stm_listener_probe_options *o,
                             struct stm_listener_probe **out,
                             struct stm_error *err) {
  if (o->interval_ms < 10 || o->failures < 1 || o->timeout_ms < 1 ||
      o->on_dead == NULL)
    return stm_error_set(err, STM_EINVAL, "listener-probe-ms",
                         "listener probe needs an interval of at least 10 ms");
  struct stm_listener_probe *p = calloc(1, sizeof *p);
  if (p == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  p->o = *o;
  probe_target(o->listen, o->port, p->target, sizeof p->target);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->cond, NULL);
  if (pthread_create(&p->thread, NULL, probe_main, p) != 0) {
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
    return stm_error_set(err, STM_ENOMEM, NULL,
                         "cannot start the listener probe thread");
  }
  *out = p;
  return 0;
}

void stm_listener_probe_stop(struct stm_listener_probe *p) {
  if (p == NULL)
    return;
  pthread_mutex_lock(&p->lock);
  p->stop = true;
  pthread_cond_signal(&p->cond);
  pthread_mutex_unlock(&p->lock);
  pthread_join(p->thread, NULL);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->cond);
  free(p);
}
