/*
 * service.h - the StemeDB gRPC services (stemedb.v1.StemeDB,
 * stemedb.v1.Cluster, grpc.health.v1.Health): the method table and the
 * state its handlers share. Handlers validate, call storage and answer;
 * they never block a completion-queue thread on I/O (writes complete from
 * the storage writer thread).
 */
#ifndef STM_SERVICE_H
#define STM_SERVICE_H

#include "grpc_server.h"
#include "storage/store.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct stm_watch_hub;
struct stm_auth;
struct stm_ratelimit;
struct stm_quota;

struct stm_service {
  struct stm_store *store;       /* borrowed */
  struct stm_watch_hub *watch;   /* borrowed; NULL: Watch is UNAVAILABLE */
  const char *node_id;           /* borrowed */
  const char *data_dir;          /* borrowed; backups read DIR/wal */
  struct stm_archiver *archiver; /* NULL when archival is off */
  struct stm_grpc_server *grpc;  /* set once serving, for metrics */
  struct stm_source_keys *source_keys; /* NULL: no cache (source_keys.h) */
  int64_t start_mono_ns;
  int64_t trust_half_life_ns;      /* lens trust decay; 0: none */
  const char *trusted_proxies;     /* borrowed; IPs whose x-forwarded-for
                                   the audit log believes */
  atomic_bool shutting_down;       /* health turns NOT_SERVING */
  struct stm_auth *auth;           /* API keys (auth.h); NULL: none */
  struct stm_ratelimit *ratelimit; /* ratelimit.h; NULL: no limits */
  struct stm_quota *quota;         /* quota.h; NULL: no quotas */
};

/* The full method table of every service (unimplemented RPCs have a NULL
 * handler and answer UNIMPLEMENTED). Static storage. */
const struct stm_grpc_method *stm_service_methods(size_t *count);

/* The gRPC status for a storage/validation error code. */
grpc_status_code stm_service_status(int rc);

#endif
