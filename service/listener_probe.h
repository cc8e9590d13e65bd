/*
 * listener_probe.h - notices a gRPC listener that stopped accepting.
 *
 * gRPC C core 1.51 stops its listener for good after one failed accept4
 * (EMFILE when file descriptors run out; grpc/grpc#20418): established
 * connections keep working, but no new one is ever accepted, so health
 * probes, a restarted gateway and every new client time out while the node
 * looks alive. The core has no way to re-arm or rebuild a listener of a
 * running server, so the probe turns that state into one an orchestrator
 * handles: a thread dials our own address on a NEW connection (over TLS
 * with the node's own credentials when the listener is TLS) every
 * interval and calls grpc.health.v1.Health/Check; after `failures`
 * consecutive failures it calls `on_dead` once (the server then reports
 * NOT_SERVING, shuts down in order and exits non-zero, to be restarted).
 */
#ifndef STM_LISTENER_PROBE_H
#define STM_LISTENER_PROBE_H

#include "common/error.h"

#include <stdbool.h>

struct stm_listener_probe;

typedef void (*stm_listener_probe_cb)(void *ctx, const char *why);

struct stm_listener_probe_options {
  const char *listen; /* the server's listen address; a wildcard host is
                          dialled as loopback */
  int port;           /* the port actually bound */
  int interval_ms;    /* between probes, >= 10 */
  int timeout_ms;     /* per probe */
  int failures;       /* consecutive failures that mean "dead", >= 1 */
  bool tls;           /* the listener is TLS: dial with the process's channel
               credentials (the node's own certificate, tls.h), and count
               failures only once a probe succeeded (a certificate not
               valid for the dialled address must not kill the node) */
  stm_listener_probe_cb on_dead; /* called once, on the probe thread */
  void *ctx;
};

/* Start the probe thread. Requires grpc_init(). Returns 0 or STM_ENOMEM /
 * STM_EINVAL with err set. */
int stm_listener_probe_start(const struct stm_listener_probe_options *o,
                             struct stm_listener_probe **out,
                             struct stm_error *err);
/* Stop and join the thread (it finishes a probe in flight first, at most
 * timeout_ms). NULL is a no-op. */
void stm_listener_probe_stop(struct stm_listener_probe *p);

#endif
