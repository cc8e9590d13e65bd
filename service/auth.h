/*
 * auth.h - API keys and roles, enforced by the gRPC server for every
 * client (the gateway forwards its clients' keys), docs/security.md.
 *
 * Roles are ordered reader < writer < admin. Each method path needs one
 * role (stm_auth_method_role); health, Status and Metrics need none. With
 * auth off every call goes on; with auth required a call needs metadata
 * "authorization: Bearer KEY" (or "x-api-key: KEY") naming a live key.
 *
 * Keys are random 160-bit secrets "stm_<40 hex>", stored only as their
 * BLAKE2b-256 hash in DATA_DIR/keys.log: an append-only text log of
 * "key ID ROLE HASH CREATED_NS NAME" and "revoke ID" lines, each written
 * with fsync before the RPC answers (a torn last line is ignored at load).
 * STEMEDB_ADMIN_KEY is a bootstrap admin key (id "bootstrap"), never
 * stored. Thread-safe.
 */
#ifndef STM_SERVICE_AUTH_H
#define STM_SERVICE_AUTH_H

#include "common/error.h"
#include "grpc_server.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stm_auth_role {
  STM_AUTH_OPEN = 0, /* as a method's need: no key needed */
  STM_AUTH_READER = 1,
  STM_AUTH_WRITER = 2,
  STM_AUTH_ADMIN = 3
};

#define STM_AUTH_ID_LEN 12   /* hex characters of a key id */
#define STM_AUTH_NAME_MAX 64 /* characters of a key name */
#define STM_AUTH_KEY_LEN 44  /* "stm_" + 40 hex */

struct stm_auth_key_info {
  char id[STM_AUTH_ID_LEN + 1];
  enum stm_auth_role role;
  char name[STM_AUTH_NAME_MAX + 1];
  int64_t created_ns;
  bool revoked;
};

struct stm_auth;

/* Load DATA_DIR/keys.log (created on the first key). `admin_key` may be
 * NULL or "". Returns 0 and *out, or an error naming the file. */
int stm_auth_open(const char *data_dir, bool required, const char *admin_key,
                  struct stm_auth **out, struct stm_error *err);
void stm_auth_delete(struct stm_auth *a);
bool stm_auth_required(const struct stm_auth *a);

/* The role a method path needs; unknown paths need admin. */
enum stm_auth_role stm_auth_method_role(const char *path);
const char *stm_auth_role_name(enum stm_auth_role r);
/* "reader", "writer", "admin" -> role; STM_AUTH_OPEN when none. */
enum stm_auth_role stm_auth_role_parse(const char *s);

/* The live key `key` names: true and *info, else false (unknown, revoked). */
bool stm_auth_lookup(struct stm_auth *a, const char *key,
                     struct stm_auth_key_info *info);
/* Make a key: the secret goes to key_out (STM_AUTH_KEY_LEN + 1 bytes). */
int stm_auth_create(struct stm_auth *a, enum stm_auth_role role,
                    const char *name, char *key_out,
                    struct stm_auth_key_info *info, struct stm_error *err);
/* Revoke key `id` at once (STM_ENOTFOUND when unknown). */
int stm_auth_revoke(struct stm_auth *a, const char *id,
                    struct stm_auth_key_info *info, struct stm_error *err);
/* A malloc'd copy of every stored key, oldest first. */
int stm_auth_list(struct stm_auth *a, struct stm_auth_key_info **out,
                  size_t *n);

/* The server's gate (stm_grpc_gate_cb); ctx is the struct stm_service. */
bool stm_auth_gate(struct stm_grpc_call *call, const char *path, void *ctx);

/* stemedb.v1.Admin CreateKey, ListKeys, RevokeKey (auth_handlers.c). */
void stm__handle_create_key(struct stm_grpc_call *call,
                            const ProtobufCMessage *req, void *ctx);
void stm__handle_list_keys(struct stm_grpc_call *call,
                           const ProtobufCMessage *req, void *ctx);
void stm__handle_revoke_key(struct stm_grpc_call *call,
                            const ProtobufCMessage *req, void *ctx);

#endif
