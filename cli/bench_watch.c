/*
 * stemedb bench watch: latency from a write to the event at a subscriber,
 * over gRPC Watch, over the gateway's WebSocket, and for etcd's Watch, in
 * one run with one method: one write at a time (a unary call), a reader
 * thread timestamps each event as it arrives, the next write starts once
 * both the acknowledgement and the event are in. Reported per transport:
 * write -> event (from the start of the write) and ack -> event (negative
 * when the event arrives before the acknowledgement; StemeDB publishes
 * before it acknowledges).
 *
 * The WebSocket client is a minimal RFC 6455 reader over a plain socket
 * (server frames are unmasked; only text frames and the 101 are parsed).
 * etcd's messages are encoded by hand (etcdserverpb, as in bench_cmd.c).
 */
#include "cli.h"
#include "hist.h"

#include "common/clock.h"
#include "common/options.h"
#include "rpc/codec.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- one event at a time ----------------------------------------------- */

struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t events; /* events seen so far */
  int64_t last_ns; /* arrival time of the latest */
  bool dead;
};

static void waiter_init(struct waiter *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
}

static void waiter_event(struct waiter *w, uint64_t n) {
  int64_t now = stm_clock_mono_ns();
  pthread_mutex_lock(&w->mu);
  w->events += n;
  w->last_ns = now;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void waiter_dead(struct waiter *w) {
  pthread_mutex_lock(&w->mu);
  w->dead = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Wait (5 s at most) until `want` events; returns the arrival time or 0. */
static int64_t waiter_wait(struct waiter *w, uint64_t want) {
  struct timespec until = stm_clock_deadline(CLOCK_REALTIME, 5000000000);
  pthread_mutex_lock(&w->mu);
  while (w->events < want && !w->dead)
    if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0)
      break;
  int64_t t = w->events >= want ? w->last_ns : 0;
  pthread_mutex_unlock(&w->mu);
  return t;
}

/* --- a gRPC server stream read on its own thread ---------------------------
 */

struct gstream {
  grpc_completion_queue *cq;
  grpc_call *call;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array md, trail;
  grpc_status_code code;
  grpc_slice details;
  struct waiter w;
  /* Events in one message (0: not an event). */
  uint64_t (*count)(const grpc_byte_buffer *bb);
  pthread_t thread;
  pthread_mutex_t mu; /* no receive is posted once closing is set */
  bool closing;
  bool started;
};

static void *gstream_main(void *arg) {
  struct gstream *g = arg;
  grpc_event ev;
  while (stm_rpc_cq_next(g->cq, &ev)) {
    if (ev.tag != (void *)1)
      continue;
    if (!ev.success || g->recv == NULL) {
      waiter_dead(&g->w);
      continue;
    }
    uint64_t n = g->count(g->recv);
    grpc_byte_buffer_destroy(g->recv);
    g->recv = NULL;
    if (n)
      waiter_event(&g->w, n);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &g->recv;
    pthread_mutex_lock(&g->mu);
    bool ok = !g->closing && grpc_call_start_batch(g->call, &op, 1, (void *)1,
                                                   NULL) == GRPC_CALL_OK;
    pthread_mutex_unlock(&g->mu);
    if (!ok)
      waiter_dead(&g->w);
  }
  return NULL;
}

/* Open `method` with one request message (client then half-closes only
 * when `half_close`: etcd's Watch is bidirectional). */
static int gstream_open(struct gstream *g, grpc_channel *ch, const char *method,
                        grpc_byte_buffer *req, bool half_close,
                        uint64_t (*count)(const grpc_byte_buffer *)) {
  memset(g, 0, sizeof *g);
  waiter_init(&g->w);
  pthread_mutex_init(&g->mu, NULL);
  g->count = count;
  g->cq = grpc_completion_queue_create_for_next(NULL);
  g->call =
      grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, g->cq,
                               grpc_slice_from_static_string(method), NULL,
                               gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  g->send = req;
  g->details = grpc_empty_slice();
  grpc_metadata_array_init(&g->md);
  grpc_metadata_array_init(&g->trail);
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n++].data.send_message.send_message = g->send;
  if (half_close)
    ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[n++].data.recv_initial_metadata.recv_initial_metadata = &g->md;
  grpc_op st = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
  st.data.recv_status_on_client.trailing_metadata = &g->trail;
  st.data.recv_status_on_client.status = &g->code;
  st.data.recv_status_on_client.status_details = &g->details;
  grpc_op rv = {.op = GRPC_OP_RECV_MESSAGE};
  rv.data.recv_message.recv_message = &g->recv;
  if (grpc_call_start_batch(g->call, ops, n, (void *)2, NULL) ||
      grpc_call_start_batch(g->call, &st, 1, (void *)3, NULL) ||
      grpc_call_start_batch(g->call, &rv, 1, (void *)1, NULL))
    return -1;
  g->started = pthread_create(&g->thread, NULL, gstream_main, g) == 0;
  return g->started ? 0 : -1;
}

static void gstream_close(struct gstream *g) {
  pthread_mutex_lock(&g->mu);
  g->closing = true;
  grpc_call_cancel(g->call, NULL);
  pthread_mutex_unlock(&g->mu);
  grpc_completion_queue_shutdown(g->cq);
  if (g->started)
    pthread_join(g->thread, NULL);
  else
    stm_rpc_cq_drain(g->cq);
  grpc_call_unref(g->call);
  grpc_completion_queue_destroy(g->cq);
  grpc_byte_buffer_destroy(g->send);
  if (g->recv)
    grpc_byte_buffer_destroy(g->recv);
  grpc_metadata_array_destroy(&g->md);
  grpc_metadata_array_destroy(&g->trail);
  grpc_slice_unref(g->details);
  pthread_mutex_destroy(&g->mu);
}

/* --- StemeDB over gRPC -----------------------------------------------------
 */

static uint64_t count_stemedb(const grpc_byte_buffer *bb) {
  Stemedb__V1__WatchEvent *ev = (Stemedb__V1__WatchEvent *)stm_rpc_unpack(
      &stemedb__v1__watch_event__descriptor, (grpc_byte_buffer *)bb);
  uint64_t n = ev && ev->type == STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_CLAIM;
  if (ev)
    protobuf_c_message_free_unpacked(&ev->base, NULL);
  return n;
}

/* One Assert; returns the ack time or 0. */
static int64_t assert_one(grpc_channel *ch, const char *concept, uint64_t i,
                          size_t value_bytes) {
  char value[4096];
  size_t n = value_bytes < sizeof value - 32 ? value_bytes : sizeof value - 32;
  int k = snprintf(value, sizeof value, "%llu-", (unsigned long long)i);
  memset(value + k, 'v', n > (size_t)k ? n - (size_t)k : 0);
  value[n > (size_t)k ? n : (size_t)k] = '\0';
  Stemedb__V1__Value v = STEMEDB__V1__VALUE__INIT;
  v.kind_case = STEMEDB__V1__VALUE__KIND_STRING_VALUE;
  v.string_value = value;
  Stemedb__V1__AssertRequest req = STEMEDB__V1__ASSERT_REQUEST__INIT;
  req.concept_path = (char *)concept;
  req.predicate = "lat";
  req.value = &v;
  ProtobufCMessage *resp = NULL;
  struct stm_rpc_status st;
  grpc_status_code code = stm_rpc_call(
      ch, "/stemedb.v1.StemeDB/Assert", &req.base,
      &stemedb__v1__assert_response__descriptor, 10000, &resp, &st);
  if (resp)
    protobuf_c_message_free_unpacked(resp, NULL);
  return code == GRPC_STATUS_OK ? stm_clock_mono_ns() : 0;
}

/* --- etcd (etcdserverpb, encoded by hand) -----------------------------------
 */

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  do {
    p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return n;
}

static size_t put_bytes(uint8_t *p, int field, const void *d, size_t len) {
  size_t n = 0;
  p[n++] = (uint8_t)(field << 3 | 2);
  n += put_varint(p + n, len);
  memcpy(p + n, d, len);
  return n + len;
}

static grpc_byte_buffer *raw(const uint8_t *d, size_t len) {
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)d, len);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

/* WatchRequest{create_request{key, range_end = key + 1 (a prefix)}}. */
static grpc_byte_buffer *etcd_watch_request(const char *prefix) {
  uint8_t inner[512], outer[600];
  size_t klen = strlen(prefix);
  char end[256];
  memcpy(end, prefix, klen);
  end[klen - 1]++;
  size_t n = put_bytes(inner, 1, prefix, klen);
  n += put_bytes(inner + n, 2, end, klen);
  return raw(outer, put_bytes(outer, 1, inner, n));
}

/* Events (field 11) in a WatchResponse. */
static uint64_t count_etcd(const grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, (grpc_byte_buffer *)bb))
    return 0;
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  const uint8_t *p = GRPC_SLICE_START_PTR(s), *e = p + GRPC_SLICE_LENGTH(s);
  uint64_t events = 0;
  while (p < e) {
    uint64_t key = 0, v = 0;
    for (int sh = 0; p < e; sh += 7) {
      key |= (uint64_t)(*p & 0x7f) << sh;
      if (!(*p++ & 0x80))
        break;
    }
    int wt = (int)(key & 7);
    if (wt == 0) {
      while (p < e && (*p++ & 0x80)) {
      }
      continue;
    }
    if (wt != 2)
      break;
    for (int sh = 0; p < e; sh += 7) {
      v |= (uint64_t)(*p & 0x7f) << sh;
      if (!(*p++ & 0x80))
        break;
    }
    if ((key >> 3) == 11)
      events++;
    p += v;
  }
  grpc_slice_unref(s);
  return events;
}

static int64_t etcd_put(grpc_channel *ch, const char *key, uint64_t i,
                        size_t value_bytes) {
  uint8_t buf[4400];
  char value[4096];
  size_t n = value_bytes < sizeof value ? value_bytes : sizeof value;
  memset(value, 'v', n);
  snprintf(value, n > 24 ? 24 : n, "%llu", (unsigned long long)i);
  size_t len = put_bytes(buf, 1, key, strlen(key));
  len += put_bytes(buf + len, 2, value, n);
  grpc_byte_buffer *send = raw(buf, len), *recv = NULL;
  int64_t t = 0;
  if (stm_rpc_call_raw(ch, "/etcdserverpb.KV/Put", send, 10000, &recv, NULL) ==
      GRPC_STATUS_OK)
    t = stm_clock_mono_ns();
  grpc_byte_buffer_destroy(send);
  if (recv)
    grpc_byte_buffer_destroy(recv);
  return t;
}

/* --- the gateway's WebSocket (minimal client) --------------------------- */

struct wsreader {
  int fd;
  struct waiter w;
  pthread_t thread;
};

static bool read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = read(fd, (char *)buf + got, n - got);
    if (k <= 0)
      return false;
    got += (size_t)k;
  }
  return true;
}

static void *ws_main(void *arg) {
  struct wsreader *r = arg;
  char *payload = NULL;
  for (;;) {
    uint8_t h[2];
    if (!read_full(r->fd, h, 2))
      break;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
      uint8_t x[2];
      if (!read_full(r->fd, x, 2))
        break;
      len = (uint64_t)x[0] << 8 | x[1];
    } else if (len == 127) {
      uint8_t x[8];
      if (!read_full(r->fd, x, 8))
        break;
      len = 0;
      for (int i = 0; i < 8; i++)
        len = len << 8 | x[i];
    }
    char *np = realloc(payload, len + 1);
    if (np == NULL)
      break; /* payload still holds the old buffer: freed below */
    payload = np;
    if (!read_full(r->fd, payload, len))
      break;
    payload[len] = '\0';
    int opcode = h[0] & 0x0f;
    if (opcode == 8)
      break;
    if (opcode == 1 && strstr(payload, "\"type\":\"claim\""))
      waiter_event(&r->w, 1);
  }
  free(payload);
  waiter_dead(&r->w);
  return NULL;
}

static int ws_open(struct wsreader *r, const char *hostport,
                   const char *prefix) {
  waiter_init(&r->w);
  char host[256];
  snprintf(host, sizeof host, "%s", hostport);
  char *colon = strrchr(host, ':');
  if (colon == NULL)
    return -1;
  *colon = '\0';
  char *end = NULL;
  errno = 0;
  long port = strtol(colon + 1, &end, 10);
  if (errno || end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
    return -1; /* "x" or "" is not silently port 0 */
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
    return -1;
  r->fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(r->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
    return -1;
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET /v1/watch?concept_prefix=%s&start_sequence=0 "
                   "HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                   prefix, hostport);
  if (write(r->fd, req, (size_t)n) != n)
    return -1;
  /* Read the 101 up to the blank line, byte by byte (frames follow). */
  char resp[2048];
  size_t got = 0;
  while (got < sizeof resp - 1 && read(r->fd, resp + got, 1) == 1) {
    got++;
    if (got >= 4 && memcmp(resp + got - 4, "\r\n\r\n", 4) == 0)
      break;
  }
  resp[got] = '\0';
  if (strncmp(resp, "HTTP/1.1 101", 12) != 0)
    return -1;
  return pthread_create(&r->thread, NULL, ws_main, r) ? -1 : 0;
}

static void ws_close(struct wsreader *r) {
  shutdown(r->fd, SHUT_RDWR);
  pthread_join(r->thread, NULL);
  close(r->fd);
}

/* --- the runs ------------------------------------------------------------ */

struct result {
  const char *name;
  struct stm_hist write_to_event, ack_to_event;
  uint64_t ack_after_event; /* samples where the event came first */
  uint64_t lost;
};

typedef int64_t (*write_fn)(void *ctx, uint64_t i);

static void run(struct result *res, struct waiter *w, write_fn fn, void *ctx,
                uint64_t count, uint64_t warmup) {
  stm_hist_init(&res->write_to_event);
  stm_hist_init(&res->ack_to_event);
  uint64_t base = 0;
  for (uint64_t i = 0; i < count + warmup; i++) {
    int64_t t0 = stm_clock_mono_ns();
    int64_t ack = fn(ctx, i);
    int64_t ev = ack ? waiter_wait(w, base + 1) : 0;
    if (ev == 0) {
      res->lost++;
      pthread_mutex_lock(&w->mu);
      base = w->events;
      bool dead = w->dead;
      pthread_mutex_unlock(&w->mu);
      if (dead)
        break;
      continue;
    }
    base++;
    if (i < warmup)
      continue;
    stm_hist_record(&res->write_to_event, (uint64_t)(ev - t0));
    if (ev >= ack) {
      stm_hist_record(&res->ack_to_event, (uint64_t)(ev - ack));
    } else {
      stm_hist_record(&res->ack_to_event, 0);
      res->ack_after_event++;
    }
  }
}

struct stemedb_ctx {
  grpc_channel *ch;
  char concept[64];
  size_t value_bytes;
};

static int64_t write_stemedb(void *ctx, uint64_t i) {
  struct stemedb_ctx *c = ctx;
  return assert_one(c->ch, c->concept, i, c->value_bytes);
}

struct etcd_ctx {
  grpc_channel *ch;
  char key[64];
  size_t value_bytes;
};

static int64_t write_etcd(void *ctx, uint64_t i) {
  struct etcd_ctx *c = ctx;
  return etcd_put(c->ch, c->key, i, c->value_bytes);
}

static void report(struct stm_cli *cli, const struct result *r, size_t n) {
  if (cli->json)
    printf("[");
  for (size_t i = 0; i < n; i++) {
    const struct stm_hist *h = &r[i].write_to_event, *a = &r[i].ack_to_event;
    double p50 = (double)stm_hist_percentile(h, 50) / 1e6,
           p99 = (double)stm_hist_percentile(h, 99) / 1e6,
           a50 = (double)stm_hist_percentile(a, 50) / 1e6,
           a99 = (double)stm_hist_percentile(a, 99) / 1e6;
    if (cli->json)
      printf("%s{\"transport\":\"%s\",\"samples\":%llu,\"write_to_event_p50_"
             "ms\":%.3f,\"write_to_event_p99_ms\":%.3f,\"ack_to_event_p50_ms"
             "\":%.3f,\"ack_to_event_p99_ms\":%.3f,\"event_before_ack\":%llu,"
             "\"lost\":%llu}",
             i ? "," : "", r[i].name, (unsigned long long)h->total, p50, p99,
             a50, a99, (unsigned long long)r[i].ack_after_event,
             (unsigned long long)r[i].lost);
    else
      printf("%-22s %7llu samples  write->event p50 %.3f ms  p99 %.3f ms  "
             "ack->event p50 %.3f ms  p99 %.3f ms  (event before ack: "
             "%llu, lost: %llu)\n",
             r[i].name, (unsigned long long)h->total, p50, p99, a50, a99,
             (unsigned long long)r[i].ack_after_event,
             (unsigned long long)r[i].lost);
  }
  if (cli->json)
    printf("]\n");
}

int stm_cli_cmd_bench_watch(struct stm_cli *cli, int argc, char **argv) {
  static const struct stm_cli_command cmd = {
      "bench watch",
      "bench watch [--count N] [--gateway host:port] [--etcd host:port]", NULL};
  int64_t count = 2000, value_bytes = 64;
  char *gateway = NULL, *etcd = NULL;
  const struct stm_opt opts[] = {
      {"count", NULL, NULL, STM_OPT_INT, &count, "writes per transport"},
      {"value-bytes", NULL, NULL, STM_OPT_INT, &value_bytes,
       "size of each value"},
      {"gateway", NULL, NULL, STM_OPT_STRING, &gateway,
       "also over the gateway's WebSocket at host:port (IPv4)"},
      {"etcd", NULL, NULL, STM_OPT_STRING, &etcd,
       "also etcd's Watch at host:port"},
  };
  size_t nopt = sizeof opts / sizeof opts[0];
  int npos = 0;
  char *pos[1];
  int rc = stm_cli_parse(cli, &cmd, opts, nopt, argc, argv, pos, 0, 0, &npos);
  if (rc == 0 &&
      (count < 1 || count > 1000000 || value_bytes < 1 || value_bytes > 4000))
    rc = stm_cli_usage_error("bench watch",
                             "--count 1..1000000, --value-bytes 1..4000");
  if (rc) {
    stm_opts_free_strings(opts, nopt);
    return rc == STM_CLI_HELP ? STM_CLI_OK : rc;
  }
  uint64_t warmup = (uint64_t)count / 10 + 10;
  struct result res[3];
  memset(res, 0, sizeof res);
  size_t nres = 0;
  unsigned tag = (unsigned)(stm_clock_mono_ns() % 1000000);

  /* StemeDB over gRPC. */
  struct stemedb_ctx sc = {.ch = stm_cli_channel(cli),
                           .value_bytes = (size_t)value_bytes};
  snprintf(sc.concept, sizeof sc.concept, "bench/watch/g%u", tag);
  Stemedb__V1__WatchRequest wr = STEMEDB__V1__WATCH_REQUEST__INIT;
  wr.concept_prefix = sc.concept;
  struct gstream g;
  if (gstream_open(&g, sc.ch, "/stemedb.v1.StemeDB/Watch",
                   stm_rpc_pack(&wr.base), true, count_stemedb) == 0) {
    res[nres].name = "stemedb gRPC Watch";
    usleep(200000); /* the watch is registered (first progress event) */
    run(&res[nres++], &g.w, write_stemedb, &sc, (uint64_t)count, warmup);
  } else {
    fprintf(stderr, "stemedb bench watch: cannot open the gRPC watch\n");
    rc = STM_CLI_ESERVER;
  }
  gstream_close(&g);

  /* StemeDB over the gateway's WebSocket. */
  if (rc == 0 && gateway) {
    struct wsreader r;
    snprintf(sc.concept, sizeof sc.concept, "bench/watch/w%u", tag);
    if (ws_open(&r, gateway, sc.concept) == 0) {
      usleep(200000);
      res[nres].name = "stemedb WebSocket";
      run(&res[nres++], &r.w, write_stemedb, &sc, (uint64_t)count, warmup);
      ws_close(&r);
    } else {
      fprintf(stderr, "stemedb bench watch: no WebSocket at %s\n", gateway);
      rc = STM_CLI_ESERVER;
    }
  }

  /* etcd's Watch, same method. */
  if (rc == 0 && etcd) {
    struct etcd_ctx ec = {.value_bytes = (size_t)value_bytes};
    snprintf(ec.key, sizeof ec.key, "bench/watch/e%u/k", tag);
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    ec.ch = grpc_channel_create(etcd, creds, NULL);
    grpc_channel_credentials_release(creds);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "bench/watch/e%u/", tag);
    struct gstream e;
    if (gstream_open(&e, ec.ch, "/etcdserverpb.Watch/Watch",
                     etcd_watch_request(prefix), false, count_etcd) == 0) {
      /* etcd confirms with a "created" response without events; give it
       * the moment it needs before the first put. */
      usleep(200000);
      res[nres].name = "etcd Watch (gRPC)";
      run(&res[nres++], &e.w, write_etcd, &ec, (uint64_t)count, warmup);
    } else {
      fprintf(stderr, "stemedb bench watch: cannot open etcd's watch\n");
      rc = STM_CLI_ESERVER;
    }
    gstream_close(&e);
    grpc_channel_destroy(ec.ch);
  }
  report(cli, res, nres);
  stm_opts_free_strings(opts, nopt);
  return rc;
}
