/* Vote, StartEpoch and PutSource of stemedb.v1.StemeDB: the record writes,
 * through the store's group commit (storage/store.h) with the caller's
 * identity for the audit log. */
#include "convert.h"
#include "forward.h"
#include "records_internal.h"
#include "replication.h"
#include "service_internal.h"

#include "common/hex.h"
#include "common/validate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REASON 4096
#define MAX_NAME 256

static void on_record(void *ctx, int rc, const struct stm_record *rec,
                      bool created, const struct stm_error *err) {
  struct stm_grpc_call *call = ctx;
  if (rc) {
    stm__fail_rc(call, rc, err);
    return;
  }
  struct stm_arena a;
  stm_arena_init(&a);
  switch (rec->kind) {
  case STM_RECORD_VOTE: {
    Stemedb__V1__VoteResponse m = STEMEDB__V1__VOTE_RESPONSE__INIT;
    m.hash = stm_convert_hex(&a, rec->u.vote.hash, STM_HASH_LEN);
    m.sequence = rec->u.vote.sequence;
    m.created = created;
    stm_repl_reply_write(call, &m.base, stm_record_hash(rec), 0, 1);
    break;
  }
  case STM_RECORD_EPOCH: {
    Stemedb__V1__StartEpochResponse m = STEMEDB__V1__START_EPOCH_RESPONSE__INIT;
    m.epoch = stm_convert_epoch(&rec->u.epoch, &a);
    m.created = created;
    stm_repl_reply_write(call, &m.base, stm_record_hash(rec), 0, 1);
    break;
  }
  default: {
    Stemedb__V1__PutSourceResponse m = STEMEDB__V1__PUT_SOURCE_RESPONSE__INIT;
    m.source = stm_convert_source(&rec->u.source, &a);
    stm_repl_reply_write(call, &m.base, stm_record_hash(rec), 0, 1);
  }
  }
  stm_arena_destroy(&a);
}

static void submit_record(struct stm_service *svc, struct stm_grpc_call *call,
                          struct stm_record *rec, const char *op) {
  char who[STM__CALLER_MAX];
  stm__call_identity(call, who, sizeof who);
  int rc = stm_store_submit_record(svc->store, rec, op, who, on_record, call);
  if (rc)
    stm__fail_rc(call, rc, NULL);
}

static struct stm_record *record_new(enum stm_record_kind kind) {
  struct stm_record *r = malloc(sizeof *r);
  if (r)
    stm_record_init(r, kind);
  return r;
}

static void record_free(struct stm_record *r) {
  if (r)
    stm_record_destroy(r);
  free(r);
}

static int dup_str(char **slot, const char *s) {
  *slot = strdup(s ? s : "");
  return *slot ? 0 : STM_ENOMEM;
}

void stm__handle_vote(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                      void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__VoteRequest *req = (const Stemedb__V1__VoteRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_record *rec = record_new(STM_RECORD_VOTE);
  int rc = rec ? 0 : STM_ENOMEM;
  rc = rc ? rc
          : stm__parse_hash("assertion_hash", req->assertion_hash,
                            rec->u.vote.target, &err);
  size_t vlen = strlen(req->voter_id);
  if (rc == 0 && vlen == 0)
    rc = stm_error_set(&err, STM_EINVAL, "voter_id", "voter_id is required");
  rc = rc ? rc : stm_validate_source_id("voter_id", req->voter_id, vlen, &err);
  if (rc == 0 &&
      !(isfinite(req->weight) && req->weight >= -1.0 && req->weight <= 1.0))
    rc = stm_error_set(&err, STM_EINVAL, "weight",
                       "weight must be a number in [-1, 1]");
  if (rc == 0 && req->timestamp_ns < 0)
    rc = stm_error_set(&err, STM_EINVAL, "timestamp_ns",
                       "timestamp_ns must be 0 (none) or a time in "
                       "nanoseconds since 1970");
  struct stm_claim target;
  stm_claim_init(&target);
  if (rc == 0) {
    rc = stm_store_get_claim(svc->store, rec->u.vote.target, NULL, &target,
                             &err);
    /* In a cluster the claim may live on other nodes only: the vote goes
     * to one that stores it, which coordinates it (forward.h). */
    if (rc == STM_ENOTFOUND &&
        stm_forward_to_any(call, msg, "/stemedb.v1.StemeDB/Vote",
                           &stemedb__v1__vote_response__descriptor)) {
      stm_claim_destroy(&target);
      record_free(rec);
      return;
    }
    if (rc == STM_ENOTFOUND)
      stm_error_set(&err, rc, "assertion_hash",
                    "no assertion with hash %s to vote on",
                    req->assertion_hash);
  }
  stm_claim_destroy(&target);
  rc = rc ? rc : dup_str(&rec->u.vote.voter_id, req->voter_id);
  if (rc) {
    record_free(rec);
    stm__fail_rc(call, rc, &err);
    return;
  }
  rec->u.vote.weight = req->weight == 0.0 ? 0.0 : req->weight;
  rec->u.vote.timestamp_ns = req->timestamp_ns;
  submit_record(svc, call, rec, "vote");
}

void stm__handle_start_epoch(struct stm_grpc_call *call,
                             const ProtobufCMessage *msg, void *ctx) {
  const Stemedb__V1__StartEpochRequest *req =
      (const Stemedb__V1__StartEpochRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  int rc = stm_validate_concept_path("concept_path", req->concept_path,
                                     strlen(req->concept_path), &err);
  if (rc == 0 && req->predicate[0])
    rc = stm_validate_predicate("predicate", req->predicate,
                                strlen(req->predicate), &err);
  size_t rlen = strlen(req->reason);
  if (rc == 0 && (rlen > MAX_REASON || !stm_utf8_valid(req->reason, rlen)))
    rc = stm_error_set(&err, STM_EINVAL, "reason",
                       "reason must be UTF-8 of at most %d bytes", MAX_REASON);
  if (rc == 0 && req->timestamp_ns < 0)
    rc = stm_error_set(&err, STM_EINVAL, "timestamp_ns",
                       "timestamp_ns must be 0 (the server's clock) or a time "
                       "in nanoseconds since 1970");
  struct stm_record *rec = rc ? NULL : record_new(STM_RECORD_EPOCH);
  if (rc == 0 && rec == NULL)
    rc = STM_ENOMEM;
  rc = rc ? rc : dup_str(&rec->u.epoch.concept_path, req->concept_path);
  rc = rc ? rc : dup_str(&rec->u.epoch.predicate, req->predicate);
  rc = rc ? rc : dup_str(&rec->u.epoch.reason, req->reason);
  if (rc == 0)
    rec->u.epoch.timestamp_ns = req->timestamp_ns;
  if (rc) {
    record_free(rec);
    stm__fail_rc(call, rc, &err);
    return;
  }
  submit_record(ctx, call, rec, "start_epoch");
}

static int source_validate(const Stemedb__V1__Source *s, struct stm_source *out,
                           struct stm_error *err) {
  if (s == NULL)
    return stm_error_set(err, STM_EINVAL, "source", "source is required");
  size_t len = strlen(s->id);
  if (len == 0)
    return stm_error_set(err, STM_EINVAL, "source.id", "source.id is required");
  int rc = stm_validate_source_id("source.id", s->id, len, err);
  size_t nlen = strlen(s->name);
  if (rc == 0 && (nlen > MAX_NAME || !stm_utf8_valid(s->name, nlen)))
    rc = stm_error_set(err, STM_EINVAL, "source.name",
                       "source.name must be UTF-8 of at most %d bytes",
                       MAX_NAME);
  if (rc == 0 && s->tier > 5)
    rc = stm_error_set(err, STM_EINVAL, "source.tier",
                       "source.tier must be 0 (regulatory) .. 5 (anecdotal), "
                       "got %u",
                       s->tier);
  out->trust = 1.0;
  if (rc == 0 &&
      s->trust_present_case == STEMEDB__V1__SOURCE__TRUST_PRESENT_TRUST) {
    rc = stm_validate_unit_interval("source.trust", s->trust, err);
    out->trust = s->trust == 0.0 ? 0.0 : s->trust;
  }
  size_t klen = strlen(s->public_key);
  if (rc == 0 && klen) {
    if (stm_hex_decode(s->public_key, klen, out->public_key,
                       STM_PUBLIC_KEY_LEN) != 0)
      rc = stm_error_set(err, STM_EINVAL, "source.public_key",
                         "source.public_key must be 64 hex characters "
                         "(Ed25519)");
    out->has_public_key = rc == 0;
  }
  out->tier = s->tier;
  rc = rc ? rc : dup_str(&out->id, s->id);
  return rc ? rc : dup_str(&out->name, s->name);
}

void stm__handle_put_source(struct stm_grpc_call *call,
                            const ProtobufCMessage *msg, void *ctx) {
  const Stemedb__V1__PutSourceRequest *req =
      (const Stemedb__V1__PutSourceRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_record *rec = record_new(STM_RECORD_SOURCE);
  int rc =
      rec ? source_validate(req->source, &rec->u.source, &err) : STM_ENOMEM;
  if (rc) {
    record_free(rec);
    stm__fail_rc(call, rc, &err);
    return;
  }
  submit_record(ctx, call, rec, "put_source");
}
