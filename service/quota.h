/*
 * quota.h - metered units per agent per hour (docs/security.md): assert 10
 * (each claim of a batch), vote 1, query 5. The agent is the API key's id
 * when authenticated, else the x-agent-id metadata; calls with neither are
 * not metered. Windows are clock hours (UTC); usage is saved to
 * DATA_DIR/quota.log at most once a second and at shutdown, so a restart
 * keeps it (a crash loses at most the last second). Thread-safe.
 */
#ifndef STM_SERVICE_QUOTA_H
#define STM_SERVICE_QUOTA_H

#include "common/error.h"

#include <stdbool.h>
#include <stdint.h>

#define STM_QUOTA_DEFAULT_PER_HOUR 10000
#define STM_QUOTA_MAX_AGENTS 100000

struct stm_quota;

struct stm_quota_verdict {
  bool allowed;
  uint64_t limit, remaining;
  uint32_t reset_s; /* seconds until the next hour starts */
};

/* per_hour 0: off (*out NULL). overrides: "AGENT=N,..." or NULL. */
int stm_quota_open(const char *data_dir, int64_t per_hour,
                   const char *overrides, struct stm_quota **out,
                   struct stm_error *err);
/* Save and free. */
void stm_quota_close(struct stm_quota *q);

/* The units a method costs (AssertBatch: per claim); 0: not metered. */
uint64_t stm_quota_cost(const char *method, uint64_t claims);

/* Charge `cost` units to `agent` unless that would pass its limit. */
void stm_quota_charge(struct stm_quota *q, const char *agent, uint64_t cost,
                      int64_t now_s, struct stm_quota_verdict *v);

/* The server's admit hook (quota_gate.c); ctx is the struct stm_service. */
struct stm_grpc_call;
struct ProtobufCMessage;
bool stm_quota_admit(struct stm_grpc_call *call, const char *path,
                     const struct ProtobufCMessage *req, void *ctx);

#endif
