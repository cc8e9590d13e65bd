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
 * BLAKE2b-256 hash, in WAL records (storage/records.h): an API key record
 * (id, name, role, secret hash, created time, creator) and a revocation
 * record (id, time, by). Both are immutable and content-addressed like
 * every record, so they survive restarts, are in `stemedb backup`
 * archives (and PITR), and replicate to every node (shard ALL, like
 * sources). The table here is in memory, loaded from the store at open
 * and updated by the store's key listener at every commit, before any
 * acknowledgement: a revocation is in force when RevokeKey answers, and
 * on a replica as soon as its record arrives. A key is live iff it is
 * stored and no revocation names its id, whatever the arrival order.
 * Key records never reach change feeds or data reads; the secret hash is
 * exposed by no client API (only peers' replication RPCs, admin-only,
 * carry records whole). A DATA_DIR/keys.log of an earlier version is
 * imported once at open and renamed keys.log.imported.
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
struct stm_store;

/* Load the key records of `store` and become its key listener; import a
 * DATA_DIR/keys.log left by an earlier version (logged). `admin_key` may
 * be NULL or "". Returns 0 and *out, or an error. */
int stm_auth_open(const char *data_dir, struct stm_store *store, bool required,
                  const char *admin_key, struct stm_auth **out,
                  struct stm_error *err);
/* Free the table; only after the store is deleted (its key listener). */
void stm_auth_delete(struct stm_auth *a);
bool stm_auth_required(const struct stm_auth *a);

/* The role a method path needs; unknown paths need admin. */
enum stm_auth_role stm_auth_method_role(const char *path);

/* What stays open when auth is required (--auth-open): gRPC health,
 * Status (the gateway's /v1/health and /v1/status) and Metrics (/metrics).
 * A method left out of the set needs a reader key. */
enum {
  STM_AUTH_OPEN_HEALTH = 1u << 0,
  STM_AUTH_OPEN_STATUS = 1u << 1,
  STM_AUTH_OPEN_METRICS = 1u << 2,
  STM_AUTH_OPEN_DEFAULT = 7u
};
/* Set once before serving (the server's config parses --auth-open). */
void stm_auth_set_open(struct stm_auth *a, unsigned mask);
const char *stm_auth_role_name(enum stm_auth_role r);
/* "reader", "writer", "admin" -> role; STM_AUTH_OPEN when none. */
enum stm_auth_role stm_auth_role_parse(const char *s);

/* The live key `key` names: true and *info, else false (unknown, revoked). */
bool stm_auth_lookup(struct stm_auth *a, const char *key,
                     struct stm_auth_key_info *info);
/* Completion of a create or revoke, on the store's writer thread once the
 * record is durable and in the table: rc 0 with the key's info and the
 * record's content hash (for replication), or an error. */
typedef void (*stm_auth_done_cb)(void *ctx, int rc,
                                 const struct stm_auth_key_info *info,
                                 const uint8_t *record_hash,
                                 const struct stm_error *err);
/* Make a key: the secret goes to key_out (STM_AUTH_KEY_LEN + 1 bytes) at
 * once, and is usable when cb reports rc 0. `creator` is the caller, for
 * the record and the audit log. Returns 0 (cb will be called) or an error
 * naming the field (cb is not called). */
int stm_auth_create(struct stm_auth *a, enum stm_auth_role role,
                    const char *name, const char *creator, char *key_out,
                    stm_auth_done_cb cb, void *ctx, struct stm_error *err);
/* Revoke key `id` (STM_ENOTFOUND when unknown): refused from the commit
 * on, before cb runs. Same contract as stm_auth_create. */
int stm_auth_revoke(struct stm_auth *a, const char *id, const char *by,
                    stm_auth_done_cb cb, void *ctx, struct stm_error *err);
/* Long-lived calls (Watch streams) re-check their key: the number of
 * revocations applied so far (any change: ask stm_auth_id_revoked), and
 * whether key `id` is revoked (false for the bootstrap key). NULL `a`:
 * 0 and false. */
uint64_t stm_auth_revocations(struct stm_auth *a);
bool stm_auth_id_revoked(struct stm_auth *a, const char *id);
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
