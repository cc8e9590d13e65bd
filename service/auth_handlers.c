/*
 * auth_handlers.c - stemedb.v1.Admin CreateKey, ListKeys and RevokeKey
 * (admin.proto) over the key table of auth.h. The gate has already
 * checked role admin when auth is required. Create and revoke answer
 * after their WAL record is durable (and pushed to the UP nodes).
 */
#include "auth.h"
#include "records_internal.h"
#include "replication.h"
#include "service.h"
#include "service_internal.h"

#include "stemedb/v1/admin.pb-c.h"

#include <sodium.h>
#include <stdlib.h>

static void fill_info(Stemedb__V1__ApiKeyInfo *m,
                      struct stm_auth_key_info *info) {
  stemedb__v1__api_key_info__init(m);
  m->id = info->id;
  m->role = (char *)stm_auth_role_name(info->role);
  m->name = info->name;
  m->created_time_ns = info->created_ns;
  m->revoked = info->revoked;
}

static bool have_table(struct stm_grpc_call *call, struct stm_service *svc) {
  if (svc->auth)
    return true;
  stm_grpc_call_fail(call, GRPC_STATUS_UNAVAILABLE,
                     "this server has no API key table");
  return false;
}

/* A CreateKey in flight: the secret is answered once, then wiped. */
struct create_call {
  struct stm_grpc_call *call;
  char key[STM_AUTH_KEY_LEN + 1];
};

/* After the commit (writer thread): answer once every node that is UP has
 * the record, like a source (replication.h). */
static void on_created(void *ctx, int rc, const struct stm_auth_key_info *info,
                       const uint8_t *record_hash,
                       const struct stm_error *err) {
  struct create_call *c = ctx;
  if (rc) {
    stm__fail_rc(c->call, rc, err);
  } else {
    struct stm_auth_key_info copy = *info;
    Stemedb__V1__ApiKeyInfo im;
    fill_info(&im, &copy);
    Stemedb__V1__CreateKeyResponse resp =
        STEMEDB__V1__CREATE_KEY_RESPONSE__INIT;
    resp.info = &im;
    resp.key = c->key;
    stm_repl_reply_write(c->call, &resp.base, record_hash, 0, 1);
  }
  sodium_memzero(c->key, sizeof c->key);
  free(c);
}

void stm__handle_create_key(struct stm_grpc_call *call,
                            const ProtobufCMessage *msg, void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__CreateKeyRequest *req =
      (const Stemedb__V1__CreateKeyRequest *)msg;
  if (!have_table(call, svc))
    return;
  struct stm_error err;
  stm_error_clear(&err);
  struct create_call *c = calloc(1, sizeof *c);
  if (c == NULL) {
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  c->call = call;
  char who[STM__CALLER_MAX];
  stm__call_identity(call, who, sizeof who);
  int rc = stm_auth_create(svc->auth, stm_auth_role_parse(req->role), req->name,
                           who, c->key, on_created, c, &err);
  if (rc) {
    sodium_memzero(c->key, sizeof c->key);
    free(c);
    stm__fail_rc(call, rc, &err);
  }
}

void stm__handle_list_keys(struct stm_grpc_call *call,
                           const ProtobufCMessage *msg, void *ctx) {
  (void)msg;
  struct stm_service *svc = ctx;
  if (!have_table(call, svc))
    return;
  struct stm_auth_key_info *keys;
  size_t n;
  if (stm_auth_list(svc->auth, &keys, &n) != 0) {
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  Stemedb__V1__ApiKeyInfo *ms = calloc(n + 1, sizeof *ms);
  Stemedb__V1__ApiKeyInfo **ps = calloc(n + 1, sizeof *ps);
  if (ms == NULL || ps == NULL) {
    free(ms);
    free(ps);
    free(keys);
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++) {
    fill_info(&ms[i], &keys[i]);
    ps[i] = &ms[i];
  }
  Stemedb__V1__ListKeysResponse resp = STEMEDB__V1__LIST_KEYS_RESPONSE__INIT;
  resp.n_keys = n;
  resp.keys = ps;
  stm_grpc_call_reply(call, &resp.base);
  free(ps);
  free(ms);
  free(keys);
}

static void on_revoked(void *ctx, int rc, const struct stm_auth_key_info *info,
                       const uint8_t *record_hash,
                       const struct stm_error *err) {
  struct stm_grpc_call *call = ctx;
  if (rc) {
    stm__fail_rc(call, rc, err);
    return;
  }
  struct stm_auth_key_info copy = *info;
  Stemedb__V1__ApiKeyInfo im;
  fill_info(&im, &copy);
  Stemedb__V1__RevokeKeyResponse resp = STEMEDB__V1__REVOKE_KEY_RESPONSE__INIT;
  resp.info = &im;
  stm_repl_reply_write(call, &resp.base, record_hash, 0, 1);
}

void stm__handle_revoke_key(struct stm_grpc_call *call,
                            const ProtobufCMessage *msg, void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__RevokeKeyRequest *req =
      (const Stemedb__V1__RevokeKeyRequest *)msg;
  if (!have_table(call, svc))
    return;
  struct stm_error err;
  stm_error_clear(&err);
  char who[STM__CALLER_MAX];
  stm__call_identity(call, who, sizeof who);
  int rc = stm_auth_revoke(svc->auth, req->id, who, on_revoked, call, &err);
  if (rc)
    stm__fail_rc(call, rc, &err);
}
