/* Assert, AssertBatch and Get of stemedb.v1.StemeDB: claims written
 * through the store's group commit, audited with the caller, and read back
 * by hash. */
#include "convert.h"
#include "forward.h"
#include "records_internal.h"
#include "replication.h"
#include "service_internal.h"

#include "common/hex.h"
#include "common/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- Assert / AssertBatch ------------------------------------------------ */

struct write_ctx {
  struct stm_grpc_call *call;
  bool batch;
};

static void on_written(void *ctx, int rc, const struct stm_write_result *res,
                       size_t n, const struct stm_error *err) {
  struct write_ctx *w = ctx;
  if (rc != 0) {
    stm__fail_rc(w->call, rc, err);
    free(w);
    return;
  }
  Stemedb__V1__AssertResponse *items = calloc(n, sizeof *items);
  Stemedb__V1__AssertResponse **ptrs = calloc(n, sizeof *ptrs);
  char(*hex)[STM_HASH_HEX_LEN + 1] = calloc(n, sizeof *hex);
  if (!items || !ptrs || !hex) {
    stm_grpc_call_fail(
        w->call, GRPC_STATUS_INTERNAL,
        "out of memory building the reply (the write is durable)");
  } else {
    for (size_t i = 0; i < n; i++) {
      stemedb__v1__assert_response__init(&items[i]);
      stm_hex_encode(res[i].hash, STM_HASH_LEN, hex[i]);
      items[i].hash = hex[i];
      items[i].sequence = res[i].sequence;
      items[i].created = res[i].created;
      ptrs[i] = &items[i];
    }
    if (w->batch) {
      Stemedb__V1__AssertBatchResponse resp =
          STEMEDB__V1__ASSERT_BATCH_RESPONSE__INIT;
      resp.n_results = n;
      resp.results = ptrs;
      stm_repl_reply_write(w->call, &resp.base, res[0].hash, sizeof *res, n);
    } else {
      stm_repl_reply_write(w->call, &items[0].base, res[0].hash, sizeof *res,
                           1);
    }
  }
  free(items);
  free(ptrs);
  free(hex);
  free(w);
}

static void submit(struct stm_service *svc, struct stm_grpc_call *call,
                   struct stm_claim *claims, size_t n, bool batch) {
  struct write_ctx *w = malloc(sizeof *w);
  if (w == NULL) {
    for (size_t i = 0; i < n; i++)
      stm_claim_destroy(&claims[i]);
    free(claims);
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  w->call = call;
  w->batch = batch;
  char who[STM__CALLER_MAX];
  stm__call_identity(call, who, sizeof who);
  int rc = stm_store_submit_claims(svc->store, claims, n,
                                   batch ? "assert_batch" : "assert", who,
                                   on_written, w);
  if (rc != 0) {
    free(w);
    stm__fail_rc(call, rc, NULL);
  }
}

void stm__handle_assert(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                        void *ctx) {
  const Stemedb__V1__AssertRequest *req =
      (const Stemedb__V1__AssertRequest *)msg;
  struct stm_claim *claim = malloc(sizeof *claim);
  struct stm_error err;
  stm_error_clear(&err);
  if (claim == NULL) {
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  stm_claim_init(claim);
  int rc = stm_convert_assert_request(req, "", claim, &err);
  if (rc == 0 &&
      (rc = stm__check_source_key(ctx, claim, "signature", NULL, &err)))
    stm_claim_destroy(claim);
  if (rc != 0) {
    free(claim);
    stm__fail_rc(call, rc, &err);
    return;
  }
  submit(ctx, call, claim, 1, false);
}

void stm__handle_assert_batch(struct stm_grpc_call *call,
                              const ProtobufCMessage *msg, void *ctx) {
  const Stemedb__V1__AssertBatchRequest *req =
      (const Stemedb__V1__AssertBatchRequest *)msg;
  size_t n = req->n_assertions;
  if (n == 0) {
    stm_grpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                       "assertions must hold at least one assertion");
    return;
  }
  if (n > stm_limits_get()->batch) {
    stm_grpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                       "assertions holds %zu assertions; at most %u per batch "
                       "(--max-batch)",
                       n, stm_limits_get()->batch);
    return;
  }
  struct stm_claim *claims = calloc(n, sizeof *claims);
  if (claims == NULL) {
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_source_key_memo memo = {0};
  for (size_t i = 0; i < n; i++) {
    char prefix[48], f[48];
    stm_field_name_at(prefix, sizeof prefix, "assertions", i, "");
    stm_claim_init(&claims[i]);
    int rc = stm_convert_assert_request(req->assertions[i], prefix, &claims[i],
                                        &err);
    if (rc == 0 &&
        (rc = stm__check_source_key(
             ctx, &claims[i],
             stm_field_name_at(f, sizeof f, "assertions", i, "signature"),
             &memo, &err)))
      stm_claim_destroy(&claims[i]);
    if (rc != 0) {
      for (size_t k = 0; k < i; k++)
        stm_claim_destroy(&claims[k]);
      free(claims);
      stm__fail_rc(call, rc, &err);
      return;
    }
  }
  submit(ctx, call, claims, n, true);
}

/* --- Get ----------------------------------------------------------------- */

void stm__handle_get(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                     void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__GetRequest *req = (const Stemedb__V1__GetRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  size_t len = strlen(req->hash);
  uint8_t hash[STM_HASH_LEN];
  int rc = stm_validate_hash_hex("hash", req->hash, len, false, &err);
  rc = rc ? rc : stm__check_as_of_time(req->as_of_time_ns, &err);
  if (rc) {
    stm__fail_rc(call, rc, &err);
    return;
  }
  stm_hex_decode(req->hash, len, hash, STM_HASH_LEN);
  struct stm_read_view view = {.as_of_sequence = req->as_of_sequence,
                               .as_of_time_ns = req->as_of_time_ns};
  struct stm_claim claim;
  stm_claim_init(&claim);
  rc = stm_store_get_claim(svc->store, hash, &view, &claim, &err);
  if (rc == STM_ENOTFOUND &&
      stm_forward_to_any(call, msg, "/stemedb.v1.StemeDB/Get",
                         &stemedb__v1__assertion__descriptor)) {
    /* another node of the cluster stores it and answered */
  } else if (rc == STM_ENOTFOUND) {
    stm_grpc_call_fail(
        call, GRPC_STATUS_NOT_FOUND, "no assertion with hash %s%s", req->hash,
        view.as_of_sequence || view.as_of_time_ns ? " as of the requested point"
                                                  : "");
  } else if (rc) {
    stm__fail_rc(call, rc, &err);
  } else {
    struct stm_arena a;
    stm_arena_init(&a);
    Stemedb__V1__Assertion *m = stm_convert_claim(&claim, &a);
    m->source_tier = stm__source_tier(svc, &view, claim.source_id);
    stm_grpc_call_reply(call, &m->base);
    stm_arena_destroy(&a);
  }
  stm_claim_destroy(&claim);
}
