/*
 * service_internal.h - shared between the handler files of service/ only.
 */
#ifndef STM_SERVICE_INTERNAL_H
#define STM_SERVICE_INTERNAL_H

#include "grpc_server.h"

/* Fail a call from a storage/validation code, using err's message. */
void stm__fail_rc(struct stm_call *call, int rc, const struct stm_error *err);

/* 0, or STM_EINVAL naming as_of_time_ns when it is negative (the rule
 * REST applies too). */
int stm__check_as_of_time(int64_t as_of_time_ns, struct stm_error *err);

void stm__handle_status(struct stm_call *call, const ProtobufCMessage *req,
                        void *ctx);
void stm__handle_metrics(struct stm_call *call, const ProtobufCMessage *req,
                         void *ctx);
void stm__handle_backup_begin(struct stm_call *call,
                              const ProtobufCMessage *req, void *ctx);
void stm__handle_backup_read(struct stm_call *call,
                             const ProtobufCMessage *req, void *ctx);
void stm__handle_health_check(struct stm_call *call,
                              const ProtobufCMessage *req, void *ctx);

void stm__handle_watch(struct stm_call *call, const ProtobufCMessage *req,
                        void *ctx);

#endif
