/*
 * metrics.h - the gateway's own Prometheus metrics:
 *
 *   stemedb_gateway_http_requests_total{route,method,status}     counter
 *   stemedb_gateway_http_request_duration_seconds{route,method}  histogram
 *   stemedb_gateway_http_requests_in_flight                      gauge
 *   stemedb_gateway_upstream_calls_total{rpc,code}               counter
 *   stemedb_gateway_upstream_up                                  gauge
 *   stemedb_gateway_build_info{version}                          gauge
 *   stemedb_gateway_ws_connections                               gauge
 *
 * `route` is the route pattern ("/v1/assertions/{hash}", "unmatched"), so
 * the label set stays bounded whatever URLs clients send. Label values are
 * stored as pointers: pass strings that outlive the registry (literals).
 *
 * Not thread-safe: the gateway touches it from the event-loop thread only.
 */
#ifndef STM_GW_METRICS_H
#define STM_GW_METRICS_H

#include "common/buf.h"

#include <stdbool.h>

struct stm_gw_metrics;

/* NULL when out of memory. */
struct stm_gw_metrics *stm_gw_metrics_new(void);
/* NULL is a no-op. */
void stm_gw_metrics_delete(struct stm_gw_metrics *m);

/* A request arrived (in-flight + 1). */
void stm_gw_metrics_begin(struct stm_gw_metrics *m);
/* It was answered (or abandoned: status 499): in-flight - 1, count it and
 * observe its latency. Returns 0 or STM_ENOMEM (the sample is dropped). */
int stm_gw_metrics_end(struct stm_gw_metrics *m, const char *route,
                       const char *method, int status, double seconds);
/* One finished gRPC call to the server. Returns 0 or STM_ENOMEM. */
int stm_gw_metrics_upstream_call(struct stm_gw_metrics *m, const char *rpc,
                                 const char *code);
/* The number of open /v1/watch WebSockets (ws.c). NULL m: no-op. */
void stm_gw_metrics_set_ws_connections(struct stm_gw_metrics *m, size_t n);
long stm_gw_metrics_in_flight(const struct stm_gw_metrics *m);

/* Append the text exposition (format 0.0.4) to `out`. `upstream_up` is the
 * value of stemedb_gateway_upstream_up. Returns 0 or STM_ENOMEM. */
int stm_gw_metrics_render(const struct stm_gw_metrics *m, bool upstream_up,
                          struct stm_buf *out);

#endif
