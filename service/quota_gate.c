/*
 * quota_gate.c - the server's admit hook (stm_grpc_admit_cb): charges the
 * call's agent for metered methods and reports X-Quota-* as trailers.
 */
#include "auth.h"
#include "quota.h"
#include "service.h"

#include "common/clock.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* The key id of "key:ID(NAME)", else x-agent-id; false when neither. */
static bool agent_of(struct stm_grpc_call *call, char *out, size_t len) {
  const char *who = stm_grpc_call_principal(call);
  if (who && strncmp(who, "key:", 4) == 0) {
    snprintf(out, len, "key:%.*s", (int)strcspn(who + 4, "("), who + 4);
    return true;
  }
  char v[128];
  if (stm_grpc_call_metadata(call, "x-agent-id", v, sizeof v) && *v) {
    snprintf(out, len, "agent:%s", v);
    return true;
  }
  return false;
}

bool stm_quota_admit(struct stm_grpc_call *call, const char *path,
                     const ProtobufCMessage *req, void *ctx) {
  struct stm_service *svc = ctx;
  if (svc->quota == NULL)
    return true;
  const char *method = strrchr(path, '/');
  method = method ? method + 1 : path;
  uint64_t claims = 0;
  if (strcmp(method, "AssertBatch") == 0 && req)
    claims = ((const Stemedb__V1__AssertBatchRequest *)req)->n_assertions;
  uint64_t cost = stm_quota_cost(method, claims);
  char agent[160];
  if (cost == 0 || !agent_of(call, agent, sizeof agent))
    return true;
  struct stm_quota_verdict v;
  stm_quota_charge(svc->quota, agent, cost, stm_clock_now_s(), &v);
  stm_grpc_call_add_trailer_u64(call, "x-quota-limit", v.limit);
  stm_grpc_call_add_trailer_u64(call, "x-quota-remaining", v.remaining);
  stm_grpc_call_add_trailer_u64(call, "x-quota-reset", v.reset_s);
  if (v.allowed)
    return true;
  stm_grpc_call_add_trailer_u64(call, "retry-after", v.reset_s);
  stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                     "quota exhausted: %s has %llu of its %llu units per hour "
                     "left and %s costs %llu (--quota-per-hour); it resets in "
                     "%u s",
                     agent, (unsigned long long)v.remaining,
                     (unsigned long long)v.limit, method,
                     (unsigned long long)cost, v.reset_s);
  return false;
}
