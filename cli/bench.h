/*
 * bench.h - a closed-loop load generator on the gRPC C core async API.
 *
 * `clients` calls are kept in flight: each is bound to one of `channels`
 * channels and one of `threads` completion queues (one thread each), and
 * each completion immediately starts that client's next call, until the
 * duration has passed, --max-ops calls were started, or stop is requested.
 * Every call's latency (start of the batch to its completion) goes into a
 * per-thread histogram; statuses are counted by code.
 */
#ifndef STM_CLI_BENCH_H
#define STM_CLI_BENCH_H

#include "hist.h"

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stdint.h>

#define BENCH_MAX_CODES 17

/*
 * Builds the request of call `seq` (0, 1, ... per client) of `client`.
 * `scratch` is a per-thread buffer of scratch_bytes. Returns a new byte
 * buffer (the engine destroys it) or NULL when out of memory.
 */
typedef grpc_byte_buffer *(*bench_build_cb)(void *ctx, int client, uint64_t seq,
                                            char *scratch);

struct bench_spec {
  const char *method;      /* "/stemedb.v1.StemeDB/Assert" */
  grpc_channel **channels; /* borrowed */
  int channel_count;
  int clients; /* calls in flight */
  int threads; /* completion queues, one thread each */
  double duration_s;
  int64_t max_ops;           /* 0: no limit */
  int timeout_ms;            /* per call */
  const char *authorization; /* "Bearer KEY" sent with each call, or NULL */
  bench_build_cb build;
  void *ctx;
  size_t scratch_bytes;
};

struct bench_result {
  uint64_t ok, failed;
  uint64_t by_code[BENCH_MAX_CODES]; /* failed calls per status code */
  struct stm_hist *latency_ns;       /* successful calls; caller frees */
  double elapsed_s;
};

/* Run the load. Returns 0, or -1 when threads or memory could not be had.
 * Thread-safe for one run at a time. */
int bench_run(const struct bench_spec *spec, struct bench_result *out);

/* Ask a running bench_run to stop starting calls (async-signal-safe). */
void bench_request_stop(void);

#endif
