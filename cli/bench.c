/*
 * The load engine: one completion queue and thread per worker; each worker
 * owns a fixed set of client slots, so a slot is only ever touched by its
 * worker's thread and nothing needs a lock. A slot's call is one batch of
 * the six unary client ops; its completion records the latency and status
 * and starts the slot's next call at once.
 */
#include "bench.h"

#include "common/clock.h"
#include "rpc/codec.h"

#include <grpc/support/time.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_requested;

void bench_request_stop(void) { stop_requested = 1; }

struct run {
  const struct bench_spec *spec;
  void **methods; /* registered method handle per channel */
  int64_t stop_at_ns;
  atomic_int_fast64_t started;
};

struct worker;

struct slot {
  struct worker *w;
  int client, channel;
  uint64_t seq;
  grpc_call *call;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array init_md, trail_md;
  grpc_status_code status;
  grpc_slice details;
  int64_t start_ns;
};

struct worker {
  struct run *run;
  pthread_t thread;
  grpc_completion_queue *cq;
  struct slot *slots;
  int nslots, active;
  char *scratch;
  struct stm_hist *hist;
  uint64_t ok, failed, by_code[BENCH_MAX_CODES];
};

static bool may_start(struct run *r) {
  if (stop_requested || stm_clock_mono_ns() >= r->stop_at_ns)
    return false;
  return r->spec->max_ops <= 0 ||
         atomic_fetch_add(&r->started, 1) < r->spec->max_ops;
}

static gpr_timespec deadline_of(int timeout_ms) {
  if (timeout_ms <= 0)
    return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

static void release(struct slot *s) {
  grpc_byte_buffer_destroy(s->send);
  if (s->recv)
    grpc_byte_buffer_destroy(s->recv);
  grpc_metadata_array_destroy(&s->init_md);
  grpc_metadata_array_destroy(&s->trail_md);
  grpc_slice_unref(s->details);
  grpc_call_unref(s->call);
  s->send = s->recv = NULL;
  s->call = NULL;
}

static void count_failure(struct worker *w, grpc_status_code code) {
  w->failed++;
  w->by_code[(unsigned)code < BENCH_MAX_CODES ? code : GRPC_STATUS_UNKNOWN]++;
}

static void fill_ops(struct slot *s, grpc_op ops[6], grpc_metadata *auth) {
  memset(ops, 0, 6 * sizeof *ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = auth ? 1 : 0;
  ops[0].data.send_initial_metadata.metadata = auth;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &s->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &s->trail_md;
  ops[5].data.recv_status_on_client.status = &s->status;
  ops[5].data.recv_status_on_client.status_details = &s->details;
}

static bool start_call(struct slot *s) {
  struct worker *w = s->w;
  const struct bench_spec *sp = w->run->spec;
  s->send = sp->build(sp->ctx, s->client, s->seq++, w->scratch);
  if (s->send == NULL) {
    count_failure(w, GRPC_STATUS_RESOURCE_EXHAUSTED);
    return false;
  }
  s->call = grpc_channel_create_registered_call(
      sp->channels[s->channel], NULL, GRPC_PROPAGATE_DEFAULTS, w->cq,
      w->run->methods[s->channel], deadline_of(sp->timeout_ms), NULL);
  s->recv = NULL;
  grpc_metadata_array_init(&s->init_md);
  grpc_metadata_array_init(&s->trail_md);
  s->details = grpc_empty_slice();
  s->status = GRPC_STATUS_UNKNOWN;
  /* --api-key: copied by grpc_call_start_batch, so the stack is fine. */
  grpc_metadata auth = {0};
  if (sp->authorization) {
    auth.key = grpc_slice_from_static_string("authorization");
    auth.value = grpc_slice_from_static_string(sp->authorization);
  }
  grpc_op ops[6];
  fill_ops(s, ops, sp->authorization ? &auth : NULL);
  s->start_ns = stm_clock_mono_ns();
  if (grpc_call_start_batch(s->call, ops, 6, s, NULL) == GRPC_CALL_OK)
    return true;
  release(s);
  count_failure(w, GRPC_STATUS_INTERNAL);
  return false;
}

static void finish_call(struct slot *s, int success) {
  int64_t latency = stm_clock_mono_ns() - s->start_ns;
  grpc_status_code code = success ? s->status : GRPC_STATUS_UNKNOWN;
  if (code == GRPC_STATUS_OK) {
    s->w->ok++;
    stm_hist_record(s->w->hist, latency > 0 ? (uint64_t)latency : 0);
  } else {
    count_failure(s->w, code);
  }
  release(s);
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < w->nslots; i++)
    if (may_start(w->run) && start_call(&w->slots[i]))
      w->active++;
  grpc_event ev;
  while (w->active > 0 && stm_rpc_cq_next(w->cq, &ev)) {
    struct slot *s = ev.tag;
    finish_call(s, ev.success);
    w->active--;
    if (may_start(w->run) && start_call(s))
      w->active++;
  }
  return NULL;
}

/* Worker t serves clients t, t + threads, t + 2 * threads, ... */
static int worker_init(struct worker *w, struct run *run, int t) {
  const struct bench_spec *sp = run->spec;
  w->run = run;
  w->nslots = sp->clients / sp->threads + (t < sp->clients % sp->threads);
  w->slots = calloc((size_t)w->nslots + 1, sizeof *w->slots);
  w->scratch = malloc(sp->scratch_bytes ? sp->scratch_bytes : 1);
  w->hist = malloc(sizeof *w->hist);
  w->cq = grpc_completion_queue_create_for_next(NULL);
  if (!w->slots || !w->scratch || !w->hist)
    return -1;
  stm_hist_init(w->hist);
  for (int i = 0; i < w->nslots; i++) {
    struct slot *s = &w->slots[i];
    s->w = w;
    s->client = t + i * sp->threads;
    s->channel = s->client % sp->channel_count;
  }
  return 0;
}

static void worker_destroy(struct worker *w) {
  if (w->cq) {
    grpc_completion_queue_shutdown(w->cq);
    stm_rpc_cq_drain(w->cq);
    grpc_completion_queue_destroy(w->cq);
  }
  free(w->slots);
  free(w->scratch);
  free(w->hist);
}

static void collect(struct worker *ws, int n, struct bench_result *out) {
  for (int t = 0; t < n; t++) {
    out->ok += ws[t].ok;
    out->failed += ws[t].failed;
    for (int c = 0; c < BENCH_MAX_CODES; c++)
      out->by_code[c] += ws[t].by_code[c];
    stm_hist_merge(out->latency_ns, ws[t].hist);
  }
}

/* Start every worker thread, wait for all; returns how many ran. */
static int run_workers(struct worker *ws, int n) {
  int started = 0;
  for (; started < n; started++)
    if (pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]))
      break;
  for (int t = 0; t < started; t++)
    pthread_join(ws[t].thread, NULL);
  return started;
}

int bench_run(const struct bench_spec *spec, struct bench_result *out) {
  memset(out, 0, sizeof *out);
  struct run run = {.spec = spec};
  atomic_init(&run.started, 0);
  stop_requested = 0;
  run.methods = calloc((size_t)spec->channel_count, sizeof *run.methods);
  struct worker *ws = calloc((size_t)spec->threads, sizeof *ws);
  out->latency_ns = malloc(sizeof *out->latency_ns);
  int rc = run.methods && ws && out->latency_ns ? 0 : -1;
  for (int c = 0; rc == 0 && c < spec->channel_count; c++)
    run.methods[c] =
        grpc_channel_register_call(spec->channels[c], spec->method, NULL, NULL);
  for (int t = 0; rc == 0 && t < spec->threads; t++)
    rc = worker_init(&ws[t], &run, t);
  if (rc == 0) {
    stm_hist_init(out->latency_ns);
    int64_t t0 = stm_clock_mono_ns();
    run.stop_at_ns = t0 + (int64_t)(spec->duration_s * 1e9);
    if (run_workers(ws, spec->threads) != spec->threads)
      rc = -1;
    out->elapsed_s = (double)(stm_clock_mono_ns() - t0) / 1e9;
    collect(ws, spec->threads, out);
  }
  for (int t = 0; ws && t < spec->threads; t++)
    worker_destroy(&ws[t]);
  free(ws);
  free(run.methods);
  return rc;
}
