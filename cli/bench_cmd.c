/*
 * stemedb bench assert|query: argument handling, the request builders and
 * the report. The engine is bench.c.
 *
 * Every assert carries unique content (a per-run random id, the client and
 * its call number in the value), so each one is a real durable write, never
 * an idempotent no-op.
 */
#include "bench.h"
#include "cli.h"

#include "common/validate.h"

#include <grpc/grpc_security.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MAX_CLIENTS 10000
#define MAX_CHANNELS 64
#define MAX_THREADS 64
/* Room for the unique part of a value: run id, client, call, item. */
#define UNIQUE_BYTES 80
/* The largest --max-message-bytes stemedb-server takes: the server, not
 * the CLI, judges a request against its own limit. */
#define MAX_MESSAGE_CEIL (INT64_C(256) * 1024 * 1024)

struct bench_args {
  int64_t clients, channels, threads, batch, value_bytes, max_ops;
  char *duration, *concept, *predicate, *lens;
  double duration_s;
};

struct assert_ctx {
  char run_id[17];
  int batch;
  size_t value_cap; /* bytes per value buffer, NUL included */
  size_t value_bytes;
};

/* ------------------------------------------------------------------ */
/* request builders                                                     */

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

static size_t assert_scratch_bytes(const struct assert_ctx *c) {
  size_t per = sizeof(Stemedb__V1__AssertRequest) +
               sizeof(Stemedb__V1__AssertRequest *) +
               sizeof(Stemedb__V1__Value) + align8(c->value_cap);
  return (size_t)c->batch * per + 64;
}

/* Value k of call `seq` of `client`: unique prefix padded to value_bytes. */
static void fill_value(const struct assert_ctx *c, char *buf, int client,
                       uint64_t seq, int k) {
  int n = snprintf(buf, c->value_cap, "%s-%d-%" PRIu64 "-%d-", c->run_id,
                   client, seq, k);
  size_t len = n > 0 ? (size_t)n : 0;
  if (len < c->value_bytes) {
    memset(buf + len, 'x', c->value_bytes - len);
    buf[c->value_bytes] = '\0';
  }
}

static grpc_byte_buffer *build_assert(void *ctx, int client, uint64_t seq,
                                      char *scratch) {
  const struct assert_ctx *c = ctx;
  Stemedb__V1__AssertRequest *reqs = (void *)scratch;
  Stemedb__V1__AssertRequest **ptrs = (void *)(reqs + c->batch);
  Stemedb__V1__Value *vals = (void *)(ptrs + c->batch);
  char *text = (char *)(vals + c->batch), path[64];
  snprintf(path, sizeof path, "bench/%s/c%d", c->run_id, client);
  for (int k = 0; k < c->batch; k++) {
    char *v = text + (size_t)k * align8(c->value_cap);
    fill_value(c, v, client, seq, k);
    stemedb__v1__value__init(&vals[k]);
    vals[k].kind_case = STEMEDB__V1__VALUE__KIND_STRING_VALUE;
    vals[k].string_value = v;
    stemedb__v1__assert_request__init(&reqs[k]);
    reqs[k].concept_path = path;
    reqs[k].predicate = "load";
    reqs[k].source_id = "bench://stemedb-cli";
    reqs[k].value = &vals[k];
    ptrs[k] = &reqs[k];
  }
  if (c->batch == 1)
    return stm_rpc_pack(&reqs[0].base);
  Stemedb__V1__AssertBatchRequest batch =
      STEMEDB__V1__ASSERT_BATCH_REQUEST__INIT;
  batch.n_assertions = (size_t)c->batch;
  batch.assertions = ptrs;
  return stm_rpc_pack(&batch.base);
}

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  for (; v >= 0x80; v >>= 7)
    p[n++] = (uint8_t)(v | 0x80);
  p[n++] = (uint8_t)v;
  return n;
}

/*
 * etcd's etcdserverpb.PutRequest {key = 1, value = 2}, encoded by hand so
 * the same engine can load etcd's gRPC API (bench/compare.sh): one key per
 * client, overwritten by every call, each value unique.
 */
static grpc_byte_buffer *build_etcd_put(void *ctx, int client, uint64_t seq,
                                        char *scratch) {
  const struct assert_ctx *c = ctx;
  char key[64], *value = scratch + c->value_cap + 32;
  int kl = snprintf(key, sizeof key, "stm-bench/%s/%d", c->run_id, client);
  fill_value(c, value, client, seq, 0);
  size_t vl = strlen(value);
  uint8_t *p = (uint8_t *)scratch;
  size_t n = 0;
  p[n++] = 0x0a;
  n += put_varint(p + n, (uint64_t)kl);
  memcpy(p + n, key, (size_t)kl);
  n += (size_t)kl;
  p[n++] = 0x12;
  n += put_varint(p + n, vl);
  memmove(p + n, value, vl);
  n += vl;
  grpc_slice sl = grpc_slice_from_copied_buffer(scratch, n);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  return bb;
}

static grpc_byte_buffer *build_copy(void *ctx, int client, uint64_t seq,
                                    char *scratch) {
  return grpc_byte_buffer_copy(ctx);
}

/* ------------------------------------------------------------------ */
/* the report                                                           */

/* Milliseconds rounded to the microsecond, so JSON stays readable. */
static double ms(uint64_t ns) { return round((double)ns / 1e3) / 1e3; }

static double tenths(double v) { return round(v * 10.0) / 10.0; }

static void report_text(const struct stm_cli *cli, const char *kind,
                        const struct bench_args *a,
                        const struct bench_result *r) {
  const struct stm_hist *h = r->latency_ns;
  double el = r->elapsed_s > 0 ? r->elapsed_s : 1e-9;
  printf("bench %s: %" PRId64 " clients on %" PRId64 " channel%s, %" PRId64
         " threads, batch %" PRId64 ", %.1f s, server %s\n",
         kind, a->clients, a->channels, a->channels == 1 ? "" : "s", a->threads,
         a->batch, a->duration_s, cli->server);
  printf("calls       %" PRIu64 " ok, %" PRIu64 " failed in %.2f s\n", r->ok,
         r->failed, r->elapsed_s);
  printf("throughput  %.1f ops/s\n", (double)r->ok / el);
  if (a->batch > 1)
    printf("records     %" PRIu64 " (%.1f records/s)\n",
           r->ok * (uint64_t)a->batch, (double)r->ok * (double)a->batch / el);
  printf("latency ms  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  "
         "(min %.3f, mean %.3f)\n",
         ms(stm_hist_percentile(h, 50)), ms(stm_hist_percentile(h, 90)),
         ms(stm_hist_percentile(h, 99)), ms(stm_hist_percentile(h, 99.9)),
         ms(h->max), ms(h->total ? h->min : 0), stm_hist_mean(h) / 1e6);
  const char *sep = "errors      ";
  for (int c = 0; c < BENCH_MAX_CODES; c++) {
    if (r->by_code[c] == 0)
      continue;
    printf("%s%s %" PRIu64, sep, stm_rpc_code_name((grpc_status_code)c),
           r->by_code[c]);
    sep = ", ";
  }
  if (r->failed)
    printf("\n");
}

static json_t *latency_json(const struct stm_hist *h) {
  return json_pack(
      "{s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "min", ms(h->total ? h->min : 0), "p50",
      ms(stm_hist_percentile(h, 50)), "p90", ms(stm_hist_percentile(h, 90)),
      "p99", ms(stm_hist_percentile(h, 99)), "p999",
      ms(stm_hist_percentile(h, 99.9)), "max", ms(h->max), "mean",
      ms((uint64_t)stm_hist_mean(h)));
}

static void report_json(const struct stm_cli *cli, const char *kind,
                        const struct bench_args *a,
                        const struct bench_result *r) {
  double el = r->elapsed_s > 0 ? r->elapsed_s : 1e-9;
  json_t *codes = json_object();
  for (int c = 0; c < BENCH_MAX_CODES; c++)
    if (r->by_code[c])
      json_object_set_new(codes, stm_rpc_code_name((grpc_status_code)c),
                          json_integer((json_int_t)r->by_code[c]));
  json_t *o = json_pack(
      "{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:I,s:I,s:f,s:I,s:f,s:o,s:o}",
      "bench", kind, "server", cli->server, "clients", (json_int_t)a->clients,
      "channels", (json_int_t)a->channels, "threads", (json_int_t)a->threads,
      "batch", (json_int_t)a->batch, "value_bytes", (json_int_t)a->value_bytes,
      "duration_s", a->duration_s, "elapsed_s", r->elapsed_s, "ok",
      (json_int_t)r->ok, "failed", (json_int_t)r->failed, "ops_per_s",
      tenths((double)r->ok / el), "records",
      (json_int_t)r->ok * (json_int_t)a->batch, "records_per_s",
      tenths((double)r->ok * (double)a->batch / el), "latency_ms",
      latency_json(r->latency_ns), "errors_by_code", codes);
  stm_cli_print_json(o);
}

/* ------------------------------------------------------------------ */
/* running                                                              */

static void on_sigint(int sig) {
  (void)sig;
  bench_request_stop();
}

/* The server must answer Status before we start hammering it. */
static int check_reachable(struct stm_cli *cli) {
  Stemedb__V1__StatusRequest req = STEMEDB__V1__STATUS_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  int rc = stm_cli_call(cli, "/stemedb.v1.StemeDB/Status", &req.base,
                        &stemedb__v1__status_response__descriptor, &resp);
  if (resp)
    protobuf_c_message_free_unpacked(resp, NULL);
  return rc;
}

static int run_and_report(struct stm_cli *cli, const char *kind,
                          const struct bench_args *a, struct bench_spec *spec) {
  /* etcd-put loads another server: it has no StemeDB Status. */
  int rc = strcmp(kind, "etcd-put") == 0 ? 0 : check_reachable(cli);
  if (rc)
    return rc;
  grpc_channel *chs[MAX_CHANNELS];
  for (int c = 0; c < (int)a->channels; c++)
    chs[c] = stm_rpc_channel_new_unshared(cli->server);
  spec->channels = chs;
  spec->channel_count = (int)a->channels;
  struct sigaction sa = {.sa_handler = on_sigint}, old;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old);
  struct bench_result r;
  int brc = bench_run(spec, &r);
  sigaction(SIGINT, &old, NULL);
  for (int c = 0; c < (int)a->channels; c++)
    grpc_channel_destroy(chs[c]);
  if (brc != 0) {
    fprintf(stderr, "stemedb bench: cannot start the load (threads or "
                    "memory)\n");
    rc = STM_CLI_ESERVER;
  } else if (cli->json) {
    report_json(cli, kind, a, &r);
  } else {
    report_text(cli, kind, a, &r);
  }
  free(r.latency_ns);
  return rc ? rc : (r.failed || r.ok == 0 ? STM_CLI_ESERVER : STM_CLI_OK);
}

/* ------------------------------------------------------------------ */
/* arguments                                                            */

static int check_range(const char *name, int64_t v, int64_t lo, int64_t hi) {
  if (v >= lo && v <= hi)
    return 0;
  return stm_cli_usage_error(
      "bench", "--%s must be between %" PRId64 " and %" PRId64 ", got %" PRId64,
      name, lo, hi, v);
}

static int check_args(const char *kind, struct bench_args *a) {
  int rc = 0;
  const char *duration = a->duration ? a->duration : "10";
  if (!stm_cli_parse_double(duration, &a->duration_s) || a->duration_s <= 0 ||
      a->duration_s > 86400)
    return stm_cli_usage_error("bench",
                               "--duration must be a number of seconds "
                               "in (0, 86400], got \"%.40s\"",
                               duration);
  if ((rc = check_range("clients", a->clients, 1, MAX_CLIENTS)) ||
      (rc = check_range("channels", a->channels, 1, MAX_CHANNELS)) ||
      (rc = check_range("threads", a->threads, 1, MAX_THREADS)) ||
      (rc = check_range("batch", a->batch, 1, STM_LIMIT_BATCH_CEIL)) ||
      (rc = check_range("value-bytes", a->value_bytes, 1,
                        STM_LIMIT_STRING_VALUE_CEIL)) ||
      (rc = check_range("max-ops", a->max_ops, 0, INT64_MAX)))
    return rc;
  if (a->batch * (a->value_bytes + UNIQUE_BYTES + 64) > MAX_MESSAGE_CEIL)
    return stm_cli_usage_error("bench",
                               "--batch %" PRId64 " x --value-bytes %" PRId64
                               " exceeds the 256 MiB a server accepts at most",
                               a->batch, a->value_bytes);
  if (strcmp(kind, "query") == 0 && a->concept == NULL)
    return stm_cli_usage_error("bench", "bench query needs --concept PATH");
  return 0;
}

static void new_run_id(char out[17]) {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
    r = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  snprintf(out, 17, "%016" PRIx64, r);
}

static int bench_assert(struct stm_cli *cli, const struct bench_args *a,
                        const struct bench_spec *base) {
  struct assert_ctx ctx = {.batch = (int)a->batch,
                           .value_bytes = (size_t)a->value_bytes};
  new_run_id(ctx.run_id);
  ctx.value_cap = (size_t)a->value_bytes > UNIQUE_BYTES
                      ? (size_t)a->value_bytes + 1
                      : UNIQUE_BYTES + 1;
  struct bench_spec spec = *base;
  spec.method = a->batch > 1 ? "/stemedb.v1.StemeDB/AssertBatch"
                             : "/stemedb.v1.StemeDB/Assert";
  spec.build = build_assert;
  spec.ctx = &ctx;
  spec.scratch_bytes = assert_scratch_bytes(&ctx);
  return run_and_report(cli, "assert", a, &spec);
}

static int bench_etcd_put(struct stm_cli *cli, const struct bench_args *a,
                          const struct bench_spec *base) {
  struct assert_ctx ctx = {.batch = 1, .value_bytes = (size_t)a->value_bytes};
  new_run_id(ctx.run_id);
  ctx.value_cap = (size_t)a->value_bytes > UNIQUE_BYTES
                      ? (size_t)a->value_bytes + 1
                      : UNIQUE_BYTES + 1;
  struct bench_spec spec = *base;
  spec.method = "/etcdserverpb.KV/Put";
  spec.build = build_etcd_put;
  spec.ctx = &ctx;
  spec.scratch_bytes = 2 * ctx.value_cap + 128;
  return run_and_report(cli, "etcd-put", a, &spec);
}

static int bench_query(struct stm_cli *cli, const struct bench_args *a,
                       const struct bench_spec *base) {
  struct stm_error err;
  stm_error_clear(&err);
  if (stm_validate_concept_path("concept", a->concept, strlen(a->concept),
                                &err))
    return stm_cli_usage_error("bench", "%s", err.message);
  Stemedb__V1__QueryRequest req = STEMEDB__V1__QUERY_REQUEST__INIT;
  req.concept_path = a->concept;
  if (a->predicate)
    req.predicate = a->predicate;
  if (a->lens)
    req.lens = a->lens;
  struct bench_spec spec = *base;
  spec.method = "/stemedb.v1.StemeDB/Query";
  spec.build = build_copy;
  grpc_byte_buffer *prebuilt = stm_rpc_pack(&req.base);
  spec.ctx = prebuilt;
  int rc = run_and_report(cli, "query", a, &spec);
  grpc_byte_buffer_destroy(prebuilt);
  return rc;
}

int stm_cli_cmd_bench(struct stm_cli *cli, int argc, char **argv) {
  /* bench watch has its own options (cli/bench_watch.c). */
  if (argc > 1 && strcmp(argv[1], "watch") == 0)
    return stm_cli_cmd_bench_watch(cli, argc - 1, argv + 1);
  static const struct stm_cli_command cmd = {
      "bench", "bench assert|query [options]", NULL};
  struct bench_args a = {.clients = 16,
                         .channels = 1,
                         .threads = 2,
                         .batch = 1,
                         .value_bytes = 64};
  const struct stm_opt opts[] = {
      {"clients", NULL, NULL, STM_OPT_INT, &a.clients, "calls in flight"},
      {"duration", NULL, NULL, STM_OPT_STRING, &a.duration,
       "seconds to run (default 10)"},
      {"max-ops", NULL, NULL, STM_OPT_INT, &a.max_ops,
       "stop after this many calls (0: no limit)"},
      {"batch", NULL, NULL, STM_OPT_INT, &a.batch,
       "claims per call; above 1 uses AssertBatch"},
      {"value-bytes", NULL, NULL, STM_OPT_INT, &a.value_bytes,
       "size of each claim's string value"},
      {"channels", NULL, NULL, STM_OPT_INT, &a.channels,
       "gRPC channels (connections) to spread the clients over"},
      {"threads", NULL, NULL, STM_OPT_INT, &a.threads,
       "completion-queue threads"},
      {"concept", NULL, NULL, STM_OPT_STRING, &a.concept,
       "bench query: the concept path to query"},
      {"predicate", NULL, NULL, STM_OPT_STRING, &a.predicate,
       "bench query: only this predicate"},
      {"lens", NULL, NULL, STM_OPT_STRING, &a.lens, "bench query: the lens"},
  };
  size_t n = sizeof opts / sizeof opts[0];
  char *pos[1];
  int npos;
  int rc = stm_cli_parse(cli, &cmd, opts, n, argc, argv, pos, 1, 1, &npos);
  if (rc == 0 && strcmp(pos[0], "assert") != 0 &&
      strcmp(pos[0], "query") != 0 && strcmp(pos[0], "etcd-put") != 0)
    rc = stm_cli_usage_error("bench",
                             "unknown benchmark \"%.40s\" (assert, "
                             "query or etcd-put)",
                             pos[0]);
  if (rc == 0)
    rc = check_args(pos[0], &a);
  char auth[600];
  bool keyed = cli->api_key && *cli->api_key &&
               strlen(cli->api_key) < sizeof auth - sizeof "Bearer ";
  if (keyed)
    snprintf(auth, sizeof auth, "Bearer %s", cli->api_key);
  struct bench_spec spec = {.clients = (int)a.clients,
                            .threads = (int)a.threads,
                            .duration_s = a.duration_s,
                            .max_ops = a.max_ops,
                            .timeout_ms = (int)cli->timeout_ms,
                            .authorization = keyed ? auth : NULL};
  if (rc == 0 && strcmp(pos[0], "etcd-put") == 0)
    rc = bench_etcd_put(cli, &a, &spec);
  else if (rc == 0)
    rc = strcmp(pos[0], "assert") == 0 ? bench_assert(cli, &a, &spec)
                                       : bench_query(cli, &a, &spec);
  stm_opts_free_strings(opts, n);
  return rc == STM_CLI_HELP ? STM_CLI_OK : rc;
}
