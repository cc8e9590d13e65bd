/*
 * service_internal.h - shared between the handler files of service/ only.
 */
#ifndef STM_SERVICE_INTERNAL_H
#define STM_SERVICE_INTERNAL_H

#include "grpc_server.h"

#include "common/arena.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fail a call from a storage/validation code, using err's message. */
void stm__fail_rc(struct stm_grpc_call *call, int rc,
                  const struct stm_error *err);

/* 0, or STM_EINVAL naming as_of_time_ns when it is negative (the rule
 * REST applies too). */
int stm__check_as_of_time(int64_t as_of_time_ns, struct stm_error *err);

/* 0 or STM_EINVAL naming `field` when hex is not a 64-hex hash; else the
 * decoded hash in out. */
int stm__parse_hash(const char *field, const char *hex, uint8_t *out,
                    struct stm_error *err);

/* A page of a list RPC: items in an arena, at most `limit`, and whether
 * there were more. */
struct stm__list {
  struct stm_arena arena;
  void **items;
  size_t n, limit;
  bool more;
};

/* limit 0: the default (100); more than 1000 is STM_EINVAL naming limit. */
int stm__list_check_limit(uint32_t limit, size_t *out, struct stm_error *err);
int stm__list_init(struct stm__list *l, size_t limit);
/* 0, or 1 (and `more` set) when the page is full: stop the scan. */
int stm__list_add(struct stm__list *l, void *item);
void stm__list_destroy(struct stm__list *l);

/* Handlers, one file per family: handlers_claims.c, handlers_query.c,
 * handlers_records.c, handlers_browse.c, handlers_trace.c,
 * handlers_admin.c, handlers_backup.c, handlers_watch.c. */
void stm__handle_assert(struct stm_grpc_call *call, const ProtobufCMessage *req,
                        void *ctx);
void stm__handle_assert_batch(struct stm_grpc_call *call,
                              const ProtobufCMessage *req, void *ctx);
void stm__handle_get(struct stm_grpc_call *call, const ProtobufCMessage *req,
                     void *ctx);
void stm__handle_query(struct stm_grpc_call *call, const ProtobufCMessage *req,
                       void *ctx);
void stm__handle_vote(struct stm_grpc_call *call, const ProtobufCMessage *req,
                      void *ctx);
void stm__handle_start_epoch(struct stm_grpc_call *call,
                             const ProtobufCMessage *req, void *ctx);
void stm__handle_put_source(struct stm_grpc_call *call,
                            const ProtobufCMessage *req, void *ctx);
void stm__handle_get_source(struct stm_grpc_call *call,
                            const ProtobufCMessage *req, void *ctx);
void stm__handle_list_sources(struct stm_grpc_call *call,
                              const ProtobufCMessage *req, void *ctx);
void stm__handle_list_concepts(struct stm_grpc_call *call,
                               const ProtobufCMessage *req, void *ctx);
void stm__handle_audit(struct stm_grpc_call *call, const ProtobufCMessage *req,
                       void *ctx);
void stm__handle_trace(struct stm_grpc_call *call, const ProtobufCMessage *req,
                       void *ctx);

void stm__handle_status(struct stm_grpc_call *call, const ProtobufCMessage *req,
                        void *ctx);
void stm__handle_metrics(struct stm_grpc_call *call,
                         const ProtobufCMessage *req, void *ctx);
void stm__handle_backup_begin(struct stm_grpc_call *call,
                              const ProtobufCMessage *req, void *ctx);
void stm__handle_backup_read(struct stm_grpc_call *call,
                             const ProtobufCMessage *req, void *ctx);
/* handlers_cluster.c: the cluster administration RPCs. */
void stm__handle_cluster_members(struct stm_grpc_call *call,
                                 const ProtobufCMessage *req, void *ctx);
void stm__handle_cluster_health(struct stm_grpc_call *call,
                                const ProtobufCMessage *req, void *ctx);
void stm__handle_cluster_shards(struct stm_grpc_call *call,
                                const ProtobufCMessage *req, void *ctx);
void stm__handle_cluster_rebalance(struct stm_grpc_call *call,
                                   const ProtobufCMessage *req, void *ctx);
void stm__handle_cluster_remove(struct stm_grpc_call *call,
                                const ProtobufCMessage *req, void *ctx);
void stm__handle_health_check(struct stm_grpc_call *call,
                              const ProtobufCMessage *req, void *ctx);

void stm__handle_watch(struct stm_grpc_call *call, const ProtobufCMessage *req,
                       void *ctx);

#endif
