#include "gateway/metrics.h"

#include "common/error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                 0.025,  0.05,  0.1,    0.25,  0.5,
                                 1,      2.5,   5,      10};
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])

struct counter {
  const char *a, *b; /* label values */
  int status;        /* HTTP status, or 0 for upstream counters */
  uint64_t count;
};

struct histogram {
  const char *route, *method;
  uint64_t le[N_BUCKETS]; /* cumulative counts are computed at render */
  uint64_t count;
  double sum;
};

struct vec {
  void *items;
  size_t n, cap, size;
};

struct stm_gw_metrics {
  long in_flight;
  size_t ws_connections;
  struct vec requests; /* struct counter: route, method, status */
  struct vec latency;  /* struct histogram */
  struct vec upstream; /* struct counter: rpc, code */
};

static void *vec_push(struct vec *v) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? 2 * v->cap : 16;
    void *items = realloc(v->items, cap * v->size);
    if (items == NULL)
      return NULL;
    v->items = items;
    v->cap = cap;
  }
  void *slot = (char *)v->items + v->n++ * v->size;
  memset(slot, 0, v->size);
  return slot;
}

struct stm_gw_metrics *stm_gw_metrics_new(void) {
  struct stm_gw_metrics *m = calloc(1, sizeof *m);
  if (m == NULL)
    return NULL;
  m->requests.size = sizeof(struct counter);
  m->upstream.size = sizeof(struct counter);
  m->latency.size = sizeof(struct histogram);
  return m;
}

void stm_gw_metrics_delete(struct stm_gw_metrics *m) {
  if (m == NULL)
    return;
  free(m->requests.items);
  free(m->latency.items);
  free(m->upstream.items);
  free(m);
}

void stm_gw_metrics_begin(struct stm_gw_metrics *m) { m->in_flight++; }

void stm_gw_metrics_set_ws_connections(struct stm_gw_metrics *m, size_t n) {
  if (m)
    m->ws_connections = n;
}

long stm_gw_metrics_in_flight(const struct stm_gw_metrics *m) {
  return m->in_flight;
}

static struct counter *counter_get(struct vec *v, const char *a, const char *b,
                                   int status) {
  struct counter *c = v->items;
  for (size_t i = 0; i < v->n; i++)
    if (c[i].status == status && strcmp(c[i].a, a) == 0 &&
        strcmp(c[i].b, b) == 0)
      return &c[i];
  struct counter *n = vec_push(v);
  if (n) {
    n->a = a;
    n->b = b;
    n->status = status;
  }
  return n;
}

static struct histogram *histogram_get(struct vec *v, const char *route,
                                       const char *method) {
  struct histogram *h = v->items;
  for (size_t i = 0; i < v->n; i++)
    if (strcmp(h[i].route, route) == 0 && strcmp(h[i].method, method) == 0)
      return &h[i];
  struct histogram *n = vec_push(v);
  if (n) {
    n->route = route;
    n->method = method;
  }
  return n;
}

int stm_gw_metrics_end(struct stm_gw_metrics *m, const char *route,
                       const char *method, int status, double seconds) {
  m->in_flight--;
  struct counter *c = counter_get(&m->requests, route, method, status);
  struct histogram *h = histogram_get(&m->latency, route, method);
  if (c == NULL || h == NULL)
    return STM_ENOMEM;
  c->count++;
  h->count++;
  h->sum += seconds;
  for (size_t i = 0; i < N_BUCKETS; i++)
    if (seconds <= buckets[i]) {
      h->le[i]++;
      break;
    }
  return 0;
}

int stm_gw_metrics_upstream_call(struct stm_gw_metrics *m, const char *rpc,
                                 const char *code) {
  struct counter *c = counter_get(&m->upstream, rpc, code, 0);
  if (c == NULL)
    return STM_ENOMEM;
  c->count++;
  return 0;
}

__attribute__((format(printf, 2, 3))) static int appendf(struct stm_buf *out,
                                                         const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0)
    return STM_EINVAL;
  return stm_buf_append(out, line,
                        (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static int render_requests(const struct stm_gw_metrics *m,
                           struct stm_buf *out) {
  int rc =
      appendf(out, "# HELP stemedb_gateway_http_requests_total HTTP requests "
                   "answered by the gateway, by route, method and status.\n"
                   "# TYPE stemedb_gateway_http_requests_total counter\n");
  const struct counter *c = m->requests.items;
  for (size_t i = 0; rc == 0 && i < m->requests.n; i++)
    rc = appendf(out,
                 "stemedb_gateway_http_requests_total{route=\"%s\",method="
                 "\"%s\",status=\"%d\"} %llu\n",
                 c[i].a, c[i].b, c[i].status, (unsigned long long)c[i].count);
  return rc;
}

static int render_latency(const struct stm_gw_metrics *m, struct stm_buf *out) {
  const char *name = "stemedb_gateway_http_request_duration_seconds";
  int rc = appendf(out,
                   "# HELP %s Time from request headers to the last byte of "
                   "the response.\n# TYPE %s histogram\n",
                   name, name);
  const struct histogram *h = m->latency.items;
  for (size_t i = 0; rc == 0 && i < m->latency.n; i++) {
    uint64_t cum = 0;
    for (size_t b = 0; rc == 0 && b < N_BUCKETS; b++) {
      cum += h[i].le[b];
      rc = appendf(
          out, "%s_bucket{route=\"%s\",method=\"%s\",le=\"%g\"} %llu\n", name,
          h[i].route, h[i].method, buckets[b], (unsigned long long)cum);
    }
    if (rc == 0)
      rc =
          appendf(out,
                  "%s_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} %llu\n"
                  "%s_sum{route=\"%s\",method=\"%s\"} %.9f\n"
                  "%s_count{route=\"%s\",method=\"%s\"} %llu\n",
                  name, h[i].route, h[i].method, (unsigned long long)h[i].count,
                  name, h[i].route, h[i].method, h[i].sum, name, h[i].route,
                  h[i].method, (unsigned long long)h[i].count);
  }
  return rc;
}

static int render_upstream(const struct stm_gw_metrics *m, bool up,
                           struct stm_buf *out) {
  int rc =
      appendf(out, "# HELP stemedb_gateway_upstream_calls_total gRPC calls "
                   "from the gateway to stemedb-server, by method and status "
                   "code.\n"
                   "# TYPE stemedb_gateway_upstream_calls_total counter\n");
  const struct counter *c = m->upstream.items;
  for (size_t i = 0; rc == 0 && i < m->upstream.n; i++)
    rc = appendf(out,
                 "stemedb_gateway_upstream_calls_total{rpc=\"%s\",code=\"%s\"}"
                 " %llu\n",
                 c[i].a, c[i].b, (unsigned long long)c[i].count);
  if (rc == 0)
    rc = appendf(out,
                 "# HELP stemedb_gateway_upstream_up 1 when stemedb-server "
                 "answered the Metrics call of this scrape, else 0.\n"
                 "# TYPE stemedb_gateway_upstream_up gauge\n"
                 "stemedb_gateway_upstream_up %d\n",
                 up ? 1 : 0);
  return rc;
}

int stm_gw_metrics_render(const struct stm_gw_metrics *m, bool upstream_up,
                          struct stm_buf *out) {
  int rc = appendf(out,
                   "# HELP stemedb_gateway_build_info Gateway version.\n"
                   "# TYPE stemedb_gateway_build_info gauge\n"
                   "stemedb_gateway_build_info{version=\"%s\"} 1\n"
                   "# HELP stemedb_gateway_http_requests_in_flight Requests "
                   "received and not yet answered.\n"
                   "# TYPE stemedb_gateway_http_requests_in_flight gauge\n"
                   "stemedb_gateway_http_requests_in_flight %ld\n"
                   "# HELP stemedb_gateway_ws_connections Open /v1/watch "
                   "WebSocket connections.\n"
                   "# TYPE stemedb_gateway_ws_connections gauge\n"
                   "stemedb_gateway_ws_connections %zu\n",
                   STM_VERSION, m->in_flight, m->ws_connections);
  if (rc == 0)
    rc = render_requests(m, out);
  if (rc == 0)
    rc = render_latency(m, out);
  if (rc == 0)
    rc = render_upstream(m, upstream_up, out);
  return rc;
}
