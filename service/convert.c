#include "convert.h"

#include "common/hex.h"
#include "common/validate.h"
#include "lens.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static const char *field(char *buf, size_t size, const char *prefix,
                         const char *name) {
  return stm_field_name(buf, size, prefix, name);
}

static int convert_value(const Stemedb__V1__Value *v, const char *fname,
                         struct stm_value *out, struct stm_error *err) {
  if (v == NULL)
    return stm_error_set(err, STM_EINVAL, fname, "%s is required", fname);
  switch (v->kind_case) {
  case STEMEDB__V1__VALUE__KIND_STRING_VALUE: {
    size_t len = strlen(v->string_value);
    int rc = stm_validate_string_value(fname, v->string_value, len, err);
    return rc ? rc
              : stm_value_set_str(out, STM_VALUE_STRING, v->string_value, len);
  }
  case STEMEDB__V1__VALUE__KIND_REF_VALUE: {
    size_t len = strlen(v->ref_value);
    int rc = stm_validate_ref_value(fname, v->ref_value, len, err);
    return rc ? rc : stm_value_set_str(out, STM_VALUE_REF, v->ref_value, len);
  }
  case STEMEDB__V1__VALUE__KIND_NUMBER_VALUE: {
    int rc = stm_validate_number(fname, v->number_value, err);
    if (rc)
      return rc;
    out->kind = STM_VALUE_NUMBER;
    out->number = v->number_value == 0.0 ? 0.0 : v->number_value;
    return 0;
  }
  case STEMEDB__V1__VALUE__KIND_BOOL_VALUE:
    out->kind = STM_VALUE_BOOL;
    out->boolean = v->bool_value;
    return 0;
  default:
    return stm_error_set(err, STM_EINVAL, fname,
                         "%s must set one of string_value, number_value, "
                         "bool_value, ref_value",
                         fname);
  }
}

static int convert_signature(const Stemedb__V1__AssertRequest *req,
                             const char *prefix, struct stm_claim *c,
                             struct stm_error *err) {
  char f[96];
  size_t sig_len = strlen(req->signature), key_len = strlen(req->public_key);
  if (sig_len == 0 && key_len == 0)
    return 0;
  if (sig_len == 0 || key_len == 0)
    return stm_error_set(
        err, STM_EINVAL,
        field(f, sizeof f, prefix, sig_len ? "public_key" : "signature"),
        "signature and public_key must be given together");
  if (stm_hex_decode(req->signature, sig_len, c->signature,
                     STM_SIGNATURE_LEN) != 0)
    return stm_error_set(err, STM_EINVAL,
                         field(f, sizeof f, prefix, "signature"),
                         "%s must be 128 hex characters (Ed25519)", f);
  if (stm_hex_decode(req->public_key, key_len, c->public_key,
                     STM_PUBLIC_KEY_LEN) != 0)
    return stm_error_set(err, STM_EINVAL,
                         field(f, sizeof f, prefix, "public_key"),
                         "%s must be 64 hex characters (Ed25519)", f);
  if (stm_claim_compute_hash(c) != 0)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  if (crypto_sign_verify_detached(c->signature, c->hash, STM_HASH_LEN,
                                  c->public_key) != 0)
    return stm_error_set(err, STM_EINVAL,
                         field(f, sizeof f, prefix, "signature"),
                         "%s does not verify: it must be an Ed25519 "
                         "signature of the claim's content hash by public_key",
                         f);
  c->has_signature = true;
  return 0;
}

static int convert_assert(const Stemedb__V1__AssertRequest *req,
                          const char *prefix, struct stm_claim *c,
                          struct stm_error *err) {
  char f[96];
  size_t len = strlen(req->concept_path);
  int rc = stm_validate_concept_path(field(f, sizeof f, prefix, "concept_path"),
                                     req->concept_path, len, err);
  if (rc || (rc = stm_claim_set_str(&c->concept_path, req->concept_path, len)))
    return rc;
  len = strlen(req->predicate);
  rc = stm_validate_predicate(field(f, sizeof f, prefix, "predicate"),
                              req->predicate, len, err);
  if (rc || (rc = stm_claim_set_str(&c->predicate, req->predicate, len)))
    return rc;
  rc = convert_value(req->value, field(f, sizeof f, prefix, "value"), &c->value,
                     err);
  if (rc)
    return rc;
  len = strlen(req->source_id);
  rc = stm_validate_source_id(field(f, sizeof f, prefix, "source_id"),
                              req->source_id, len, err);
  if (rc || (rc = stm_claim_set_str(&c->source_id, req->source_id, len)))
    return rc;
  c->confidence = 1.0;
  if (req->confidence_present_case ==
      STEMEDB__V1__ASSERT_REQUEST__CONFIDENCE_PRESENT_CONFIDENCE) {
    rc = stm_validate_unit_interval(field(f, sizeof f, prefix, "confidence"),
                                    req->confidence, err);
    if (rc)
      return rc;
    c->confidence = req->confidence;
  }
  len = strlen(req->parent_hash);
  rc = stm_validate_hash_hex(field(f, sizeof f, prefix, "parent_hash"),
                             req->parent_hash, len, true, err);
  if (rc)
    return rc;
  if (len) {
    stm_hex_decode(req->parent_hash, len, c->parent_hash, STM_HASH_LEN);
    c->has_parent = true;
  }
  c->timestamp_ns = req->timestamp_ns;
  return convert_signature(req, prefix, c, err);
}

int stm_convert_assert_request(const Stemedb__V1__AssertRequest *req,
                               const char *prefix, struct stm_claim *out,
                               struct stm_error *err) {
  int rc = convert_assert(req, prefix, out, err);
  if (rc == STM_ENOMEM)
    stm_error_set(err, rc, NULL, "out of memory");
  if (rc)
    stm_claim_destroy(out);
  return rc;
}

Stemedb__V1__Value *stm_convert_value(const struct stm_value *v,
                                      struct stm_arena *a) {
  Stemedb__V1__Value *m = stm_arena_alloc(a, sizeof *m);
  stemedb__v1__value__init(m);
  switch (v->kind) {
  case STM_VALUE_STRING:
    m->kind_case = STEMEDB__V1__VALUE__KIND_STRING_VALUE;
    m->string_value = stm_arena_strndup(a, v->str, v->str_len);
    break;
  case STM_VALUE_REF:
    m->kind_case = STEMEDB__V1__VALUE__KIND_REF_VALUE;
    m->ref_value = stm_arena_strndup(a, v->str, v->str_len);
    break;
  case STM_VALUE_NUMBER:
    m->kind_case = STEMEDB__V1__VALUE__KIND_NUMBER_VALUE;
    m->number_value = v->number;
    break;
  case STM_VALUE_BOOL:
    m->kind_case = STEMEDB__V1__VALUE__KIND_BOOL_VALUE;
    m->bool_value = v->boolean;
    break;
  default:
    break;
  }
  return m;
}

char *stm_convert_hex(struct stm_arena *a, const uint8_t *data, size_t len) {
  char *p = stm_arena_alloc(a, 2 * len + 1);
  stm_hex_encode(data, len, p);
  return p;
}

Stemedb__V1__Assertion *stm_convert_claim(const struct stm_claim *c,
                                          struct stm_arena *a) {
  Stemedb__V1__Assertion *m = stm_arena_alloc(a, sizeof *m);
  stemedb__v1__assertion__init(m);
  m->hash = stm_convert_hex(a, c->hash, STM_HASH_LEN);
  m->concept_path = stm_arena_strdup(a, c->concept_path);
  m->predicate = stm_arena_strdup(a, c->predicate);
  m->value = stm_convert_value(&c->value, a);
  m->source_id = stm_arena_strdup(a, c->source_id);
  m->confidence = c->confidence;
  m->timestamp_ns = stm_lens_claim_time(c);
  m->parent_hash = c->has_parent
                       ? stm_convert_hex(a, c->parent_hash, STM_HASH_LEN)
                       : stm_arena_strdup(a, "");
  m->signature = c->has_signature
                     ? stm_convert_hex(a, c->signature, STM_SIGNATURE_LEN)
                     : stm_arena_strdup(a, "");
  m->public_key = c->has_signature
                      ? stm_convert_hex(a, c->public_key, STM_PUBLIC_KEY_LEN)
                      : stm_arena_strdup(a, "");
  m->sequence = c->sequence;
  m->epoch = c->epoch;
  m->commit_time_ns = c->commit_time_ns;
  m->source_tier = stm_lens_default_tier(c->source_id);
  return m;
}

Stemedb__V1__Vote *stm_convert_vote(const struct stm_vote *v,
                                    struct stm_arena *a) {
  Stemedb__V1__Vote *m = stm_arena_alloc(a, sizeof *m);
  stemedb__v1__vote__init(m);
  m->hash = stm_convert_hex(a, v->hash, STM_HASH_LEN);
  m->assertion_hash = stm_convert_hex(a, v->target, STM_HASH_LEN);
  m->voter_id = stm_arena_strdup(a, v->voter_id);
  m->weight = v->weight;
  m->sequence = v->sequence;
  m->commit_time_ns = v->commit_time_ns;
  /* A vote whose client stated no time reports its commit time (its hash
   * covers 0, so a retried vote stays one vote). */
  m->timestamp_ns = v->timestamp_ns ? v->timestamp_ns : v->commit_time_ns;
  return m;
}

Stemedb__V1__Epoch *stm_convert_epoch(const struct stm_epoch *e,
                                      struct stm_arena *a) {
  Stemedb__V1__Epoch *m = stm_arena_alloc(a, sizeof *m);
  stemedb__v1__epoch__init(m);
  m->hash = stm_convert_hex(a, e->hash, STM_HASH_LEN);
  m->concept_path = stm_arena_strdup(a, e->concept_path);
  m->predicate = stm_arena_strdup(a, e->predicate);
  m->reason = stm_arena_strdup(a, e->reason);
  m->sequence = e->sequence;
  m->commit_time_ns = e->commit_time_ns;
  m->number = e->number;
  return m;
}

Stemedb__V1__Source *stm_convert_source(const struct stm_source *s,
                                        struct stm_arena *a) {
  Stemedb__V1__Source *m = stm_arena_alloc(a, sizeof *m);
  stemedb__v1__source__init(m);
  m->id = stm_arena_strdup(a, s->id);
  m->name = stm_arena_strdup(a, s->name);
  m->tier = s->tier;
  m->public_key = s->has_public_key
                      ? stm_convert_hex(a, s->public_key, STM_PUBLIC_KEY_LEN)
                      : stm_arena_strdup(a, "");
  m->trust_present_case = STEMEDB__V1__SOURCE__TRUST_PRESENT_TRUST;
  m->trust = s->trust;
  m->sequence = s->sequence;
  m->commit_time_ns = s->commit_time_ns;
  return m;
}
