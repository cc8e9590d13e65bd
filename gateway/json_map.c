#include "json_map.h"

#include "common/hex.h"
#include "common/validate.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_MAX 96
#define SIGNATURE_BYTES 64
#define PUBLIC_KEY_BYTES 32
#define MAX_LENS_NAME 64

/* ---- small helpers ------------------------------------------------------- */

static const char *field_name(char buf[FIELD_MAX], const char *prefix,
                              const char *name) {
  return stm_field_name(buf, FIELD_MAX, prefix, name);
}

static char *dup_n(const char *s, size_t len) {
  char *d = malloc(len + 1);
  if (d) {
    memcpy(d, s, len);
    d[len] = '\0';
  }
  return d;
}

static int oom(struct stm_error *err) {
  return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
}

/* JSON null counts as absent, so clients may send explicit nulls. */
static const json_t *member(const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);
  return json_is_null(v) ? NULL : v;
}

/*
 * Optional string member: *s stays NULL when absent. Present but not a
 * string is STM_EINVAL naming `field`.
 */
static int get_string(const json_t *obj, const char *key, const char *field,
                      const char **s, size_t *len, struct stm_error *err) {
  const json_t *v = member(obj, key);
  *s = NULL;
  *len = 0;
  if (v == NULL)
    return 0;
  if (!json_is_string(v))
    return stm_error_set(err, STM_EINVAL, field, "%s must be a string", field);
  *s = json_string_value(v);
  *len = json_string_length(v);
  return 0;
}

static int get_required_string(const json_t *obj, const char *key,
                               const char *field, const char **s, size_t *len,
                               struct stm_error *err) {
  int rc = get_string(obj, key, field, s, len, err);
  if (rc == 0 && *s == NULL)
    return stm_error_set(err, STM_EINVAL, field, "%s is required", field);
  return rc;
}

/* Replace a message string field (initially protobuf_c_empty_string). */
static int set_string(char **slot, const char *s, size_t len,
                      struct stm_error *err) {
  assert(s != NULL); /* callers check presence first */
  char *d = dup_n(s, len);
  if (d == NULL)
    return oom(err);
  *slot = d;
  return 0;
}

static int get_bool(const json_t *obj, const char *key, protobuf_c_boolean *out,
                    struct stm_error *err) {
  const json_t *v = member(obj, key);
  if (v == NULL)
    return 0;
  if (!json_is_boolean(v))
    return stm_error_set(err, STM_EINVAL, key, "%s must be true or false", key);
  *out = json_is_true(v);
  return 0;
}

/* ---- integers ------------------------------------------------------------ */

int stm_gw_parse_int(const char *field, const char *s, size_t len, int64_t min,
                     int64_t max, int64_t *out, struct stm_error *err) {
  char buf[32];
  bool ok = len > 0 && len < sizeof buf;
  for (size_t i = 0; ok && i < len; i++)
    ok = (s[i] >= '0' && s[i] <= '9') || (i == 0 && s[i] == '-' && len > 1);
  if (!ok)
    return stm_error_set(err, STM_EINVAL, field, "%s must be a decimal integer",
                         field);
  memcpy(buf, s, len);
  buf[len] = '\0';
  errno = 0;
  long long v = strtoll(buf, NULL, 10);
  if (errno == ERANGE || v < min || v > max)
    return stm_error_set(err, STM_EINVAL, field,
                         "%s is out of range [%lld, %lld]", field,
                         (long long)min, (long long)max);
  *out = v;
  return 0;
}

int stm_gw_parse_uint(const char *field, const char *s, size_t len,
                      uint64_t *out, struct stm_error *err) {
  char buf[32];
  bool ok = len > 0 && len < sizeof buf;
  for (size_t i = 0; ok && i < len; i++)
    ok = s[i] >= '0' && s[i] <= '9';
  if (!ok)
    return stm_error_set(err, STM_EINVAL, field,
                         "%s must be a non-negative decimal integer", field);
  memcpy(buf, s, len);
  buf[len] = '\0';
  errno = 0;
  unsigned long long v = strtoull(buf, NULL, 10);
  if (errno == ERANGE)
    return stm_error_set(err, STM_EINVAL, field, "%s is out of range [0, %llu]",
                         field, (unsigned long long)UINT64_MAX);
  *out = v;
  return 0;
}

/* 2^63 as a double: the first value beyond int64_t. */
#define TWO_POW_63 9223372036854775808.0

static int json_int64(const json_t *v, const char *field, int64_t min,
                      int64_t max, int64_t *out, struct stm_error *err) {
  if (json_is_string(v))
    return stm_gw_parse_int(field, json_string_value(v), json_string_length(v),
                            min, max, out, err);
  int64_t n;
  if (json_is_integer(v)) {
    n = json_integer_value(v);
  } else if (json_is_real(v)) {
    double d = json_real_value(v);
    if (d != floor(d))
      return stm_error_set(err, STM_EINVAL, field, "%s must be an integer",
                           field);
    if (d < -TWO_POW_63 || d >= TWO_POW_63)
      return stm_error_set(err, STM_EINVAL, field,
                           "%s is out of range [%lld, %lld]", field,
                           (long long)min, (long long)max);
    n = (int64_t)d;
  } else {
    return stm_error_set(err, STM_EINVAL, field,
                         "%s must be an integer (a JSON number or a decimal "
                         "string)",
                         field);
  }
  if (n < min || n > max)
    return stm_error_set(err, STM_EINVAL, field,
                         "%s is out of range [%lld, %lld]", field,
                         (long long)min, (long long)max);
  *out = n;
  return 0;
}

static int json_uint64(const json_t *v, const char *field, uint64_t max,
                       uint64_t *out, struct stm_error *err) {
  uint64_t n;
  if (json_is_string(v)) {
    int rc = stm_gw_parse_uint(field, json_string_value(v),
                               json_string_length(v), &n, err);
    if (rc)
      return rc;
  } else if (json_is_integer(v) || json_is_real(v)) {
    double d = json_number_value(v);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
      n = (uint64_t)json_integer_value(v);
    else if (d >= 0 && d == floor(d) && d < 2 * TWO_POW_63)
      n = (uint64_t)d;
    else if (d != floor(d))
      return stm_error_set(err, STM_EINVAL, field, "%s must be an integer",
                           field);
    else
      return stm_error_set(err, STM_EINVAL, field,
                           "%s is out of range [0, %llu]", field,
                           (unsigned long long)max);
  } else {
    return stm_error_set(err, STM_EINVAL, field,
                         "%s must be a non-negative integer (a JSON number "
                         "or a decimal string)",
                         field);
  }
  if (n > max)
    return stm_error_set(err, STM_EINVAL, field, "%s is out of range [0, %llu]",
                         field, (unsigned long long)max);
  *out = n;
  return 0;
}

/* ---- parsing a body ------------------------------------------------------ */

int stm_gw_json_parse(const char *body, size_t len, json_t **out,
                      struct stm_error *err) {
  *out = NULL;
  if (len == 0)
    return stm_error_set(err, STM_EINVAL, NULL,
                         "request body is empty; a JSON object is expected");
  if (!stm_utf8_valid(body, len))
    return stm_error_set(err, STM_EINVAL, NULL,
                         "request body is not valid UTF-8");
  json_error_t je;
  json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (j == NULL)
    return stm_error_set(err, STM_EINVAL, NULL,
                         "malformed JSON at line %d, column %d (byte %d): %s",
                         je.line, je.column, je.position, je.text);
  if (!json_is_object(j)) {
    json_decref(j);
    return stm_error_set(err, STM_EINVAL, NULL,
                         "request body must be a JSON object");
  }
  *out = j;
  return 0;
}

/* ---- AssertRequest ------------------------------------------------------- */

static int json_to_value(const json_t *v, const char *field,
                         Stemedb__V1__Value **out, struct stm_error *err) {
  if (v == NULL)
    return stm_error_set(err, STM_EINVAL, field, "%s is required", field);
  Stemedb__V1__Value *val = malloc(sizeof *val);
  if (val == NULL)
    return oom(err);
  stemedb__v1__value__init(val);
  *out = val; /* owned by the request from here on, even on error */
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    int rc = stm_validate_string_value(field, s, len, err);
    if (rc)
      return rc;
    val->kind_case = STEMEDB__V1__VALUE__KIND_STRING_VALUE;
    val->string_value = dup_n(s, len);
    return val->string_value ? 0 : oom(err);
  }
  if (json_is_number(v)) {
    double d = json_number_value(v);
    int rc = stm_validate_number(field, d, err);
    if (rc)
      return rc;
    val->kind_case = STEMEDB__V1__VALUE__KIND_NUMBER_VALUE;
    val->number_value = d;
    return 0;
  }
  if (json_is_boolean(v)) {
    val->kind_case = STEMEDB__V1__VALUE__KIND_BOOL_VALUE;
    val->bool_value = json_is_true(v);
    return 0;
  }
  const json_t *ref = json_is_object(v) ? json_object_get(v, "ref") : NULL;
  if (json_is_string(ref)) {
    const char *s = json_string_value(ref);
    size_t len = json_string_length(ref);
    int rc = stm_validate_ref_value(field, s, len, err);
    if (rc)
      return rc;
    val->kind_case = STEMEDB__V1__VALUE__KIND_REF_VALUE;
    val->ref_value = dup_n(s, len);
    return val->ref_value ? 0 : oom(err);
  }
  return stm_error_set(err, STM_EINVAL, field,
                       "%s must be a string, a number, a boolean or "
                       "{\"ref\": \"<concept path or hash>\"}",
                       field);
}

/* `source` is the REST name, `source_id` the gRPC one; either is fine. */
static int fill_source(const json_t *obj, const char *prefix,
                       Stemedb__V1__AssertRequest *m, struct stm_error *err) {
  char f1[FIELD_MAX], f2[FIELD_MAX];
  const char *s1, *s2;
  size_t l1, l2;
  int rc = get_string(obj, "source", field_name(f1, prefix, "source"), &s1, &l1,
                      err);
  if (rc == 0)
    rc = get_string(obj, "source_id", field_name(f2, prefix, "source_id"), &s2,
                    &l2, err);
  if (rc)
    return rc;
  if (s1 && s2 && (l1 != l2 || memcmp(s1, s2, l1) != 0))
    return stm_error_set(err, STM_EINVAL, f1,
                         "%s and %s disagree; give only one of them", f1, f2);
  const char *s = s1 ? s1 : s2, *f = s1 ? f1 : f2;
  size_t len = s1 ? l1 : l2;
  if (s == NULL)
    return 0;
  rc = stm_validate_source_id(f, s, len, err);
  return rc ? rc : set_string(&m->source_id, s, len, err);
}

/* Signature and key travel together; their format is checked as the
 * server does, the signature itself only by the server. */
static int fill_signature(const json_t *obj, const char *prefix,
                          Stemedb__V1__AssertRequest *m,
                          struct stm_error *err) {
  char fs[FIELD_MAX], fk[FIELD_MAX];
  const char *sig, *key;
  size_t sig_len, key_len;
  int rc = get_string(obj, "signature", field_name(fs, prefix, "signature"),
                      &sig, &sig_len, err);
  if (rc == 0)
    rc = get_string(obj, "public_key", field_name(fk, prefix, "public_key"),
                    &key, &key_len, err);
  if (rc)
    return rc;
  if (sig_len == 0 && key_len == 0)
    return 0;
  if (sig_len == 0 || key_len == 0)
    return stm_error_set(err, STM_EINVAL, sig_len ? fk : fs,
                         "%s is required when %s is given (they go "
                         "together)",
                         sig_len ? fk : fs, sig_len ? fs : fk);
  uint8_t bytes[SIGNATURE_BYTES];
  if (stm_hex_decode(sig, sig_len, bytes, SIGNATURE_BYTES) != 0)
    return stm_error_set(err, STM_EINVAL, fs,
                         "%s must be %d hex characters (Ed25519)", fs,
                         2 * SIGNATURE_BYTES);
  if (stm_hex_decode(key, key_len, bytes, PUBLIC_KEY_BYTES) != 0)
    return stm_error_set(err, STM_EINVAL, fk,
                         "%s must be %d hex characters (Ed25519)", fk,
                         2 * PUBLIC_KEY_BYTES);
  rc = set_string(&m->signature, sig, sig_len, err);
  return rc ? rc : set_string(&m->public_key, key, key_len, err);
}

static int fill_assert(const json_t *obj, const char *prefix,
                       Stemedb__V1__AssertRequest *m, struct stm_error *err) {
  char f[FIELD_MAX];
  const char *s;
  size_t len;
  int rc =
      get_required_string(obj, "concept_path",
                          field_name(f, prefix, "concept_path"), &s, &len, err);
  if (rc || (rc = stm_validate_concept_path(f, s, len, err)) ||
      (rc = set_string(&m->concept_path, s, len, err)))
    return rc;
  rc = get_required_string(obj, "predicate", field_name(f, prefix, "predicate"),
                           &s, &len, err);
  if (rc || (rc = stm_validate_predicate(f, s, len, err)) ||
      (rc = set_string(&m->predicate, s, len, err)))
    return rc;
  rc = json_to_value(member(obj, "value"), field_name(f, prefix, "value"),
                     &m->value, err);
  if (rc || (rc = fill_source(obj, prefix, m, err)))
    return rc;
  const json_t *v = member(obj, "confidence");
  if (v) {
    field_name(f, prefix, "confidence");
    if (!json_is_number(v))
      return stm_error_set(err, STM_EINVAL, f, "%s must be a number", f);
    rc = stm_validate_unit_interval(f, json_number_value(v), err);
    if (rc)
      return rc;
    m->confidence_present_case =
        STEMEDB__V1__ASSERT_REQUEST__CONFIDENCE_PRESENT_CONFIDENCE;
    m->confidence = json_number_value(v);
  }
  rc = get_string(obj, "parent_hash", field_name(f, prefix, "parent_hash"), &s,
                  &len, err);
  if (rc || (rc = stm_validate_hash_hex(f, s ? s : "", len, true, err)))
    return rc;
  if (len && (rc = set_string(&m->parent_hash, s, len, err)))
    return rc;
  v = member(obj, "timestamp_ns");
  if (v && (rc = json_int64(v, field_name(f, prefix, "timestamp_ns"), INT64_MIN,
                            INT64_MAX, &m->timestamp_ns, err)))
    return rc;
  return fill_signature(obj, prefix, m, err);
}

int stm_gw_json_to_assert_request(const json_t *obj, const char *prefix,
                                  Stemedb__V1__AssertRequest **out,
                                  struct stm_error *err) {
  *out = NULL;
  if (!json_is_object(obj)) {
    char f[FIELD_MAX];
    snprintf(f, sizeof f, "%s", *prefix ? prefix : "body");
    size_t n = strlen(f);
    if (n > 0 && f[n - 1] == '.')
      f[n - 1] = '\0';
    return stm_error_set(err, STM_EINVAL, f, "%s must be a JSON object", f);
  }
  Stemedb__V1__AssertRequest *m = malloc(sizeof *m);
  if (m == NULL)
    return oom(err);
  stemedb__v1__assert_request__init(m);
  int rc = fill_assert(obj, prefix, m, err);
  if (rc) {
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return rc;
  }
  *out = m;
  return 0;
}

int stm_gw_json_to_assert_batch(const json_t *obj,
                                Stemedb__V1__AssertBatchRequest **out,
                                struct stm_error *err) {
  *out = NULL;
  const json_t *arr = member(obj, "assertions");
  if (arr == NULL)
    return stm_error_set(err, STM_EINVAL, "assertions",
                         "assertions is required");
  if (!json_is_array(arr))
    return stm_error_set(err, STM_EINVAL, "assertions",
                         "assertions must be an array");
  size_t n = json_array_size(arr);
  if (n == 0 || n > STM_MAX_BATCH)
    return stm_error_set(err, STM_EINVAL, "assertions",
                         "assertions must hold 1 to %d claims, not %zu",
                         STM_MAX_BATCH, n);
  Stemedb__V1__AssertBatchRequest *m = malloc(sizeof *m);
  if (m == NULL)
    return oom(err);
  stemedb__v1__assert_batch_request__init(m);
  m->assertions = calloc(n, sizeof *m->assertions);
  int rc = m->assertions ? 0 : oom(err);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    char prefix[48];
    stm_field_name_at(prefix, sizeof prefix, "assertions", i, "");
    rc = stm_gw_json_to_assert_request(json_array_get(arr, i), prefix,
                                       &m->assertions[i], err);
    if (rc == 0)
      m->n_assertions = i + 1;
  }
  if (rc) {
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return rc;
  }
  *out = m;
  return 0;
}

/* ---- QueryRequest and GetRequest ----------------------------------------- */

static int fill_query(const json_t *obj, Stemedb__V1__QueryRequest *m,
                      struct stm_error *err) {
  const char *s;
  size_t len;
  int rc =
      get_required_string(obj, "concept_path", "concept_path", &s, &len, err);
  if (rc || (rc = stm_validate_concept_path("concept_path", s, len, err)) ||
      (rc = set_string(&m->concept_path, s, len, err)))
    return rc;
  rc = get_string(obj, "predicate", "predicate", &s, &len, err);
  if (rc == 0 && s && len)
    rc = stm_validate_predicate("predicate", s, len, err);
  if (rc || (s && len && (rc = set_string(&m->predicate, s, len, err))))
    return rc;
  /* Lens names are the server's to know; only the shape is checked here. */
  rc = get_string(obj, "lens", "lens", &s, &len, err);
  if (rc == 0 && s && len > MAX_LENS_NAME)
    rc = stm_error_set(err, STM_EINVAL, "lens", "lens is not a known lens");
  if (rc || (s && len && (rc = set_string(&m->lens, s, len, err))))
    return rc;
  const json_t *v = member(obj, "as_of_sequence");
  if (v && (rc = json_uint64(v, "as_of_sequence", UINT64_MAX,
                             &m->as_of_sequence, err)))
    return rc;
  v = member(obj, "as_of_time_ns");
  if (v && (rc = json_int64(v, "as_of_time_ns", 0, INT64_MAX, &m->as_of_time_ns,
                            err)))
    return rc;
  uint64_t limit = 0;
  v = member(obj, "limit");
  if (v && (rc = json_uint64(v, "limit", UINT32_MAX, &limit, err)))
    return rc;
  m->limit = (uint32_t)limit;
  rc = get_bool(obj, "include_descendants", &m->include_descendants, err);
  return rc ? rc
            : get_bool(obj, "current_epoch_only", &m->current_epoch_only, err);
}

int stm_gw_json_to_query_request(const json_t *obj,
                                 Stemedb__V1__QueryRequest **out,
                                 struct stm_error *err) {
  *out = NULL;
  Stemedb__V1__QueryRequest *m = malloc(sizeof *m);
  if (m == NULL)
    return oom(err);
  stemedb__v1__query_request__init(m);
  int rc = fill_query(obj, m, err);
  if (rc) {
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return rc;
  }
  *out = m;
  return 0;
}

int stm_gw_get_request_new(const char *hash, size_t hash_len,
                           const char *as_of_sequence,
                           const char *as_of_time_ns,
                           Stemedb__V1__GetRequest **out,
                           struct stm_error *err) {
  *out = NULL;
  uint64_t seq = 0;
  int64_t t = 0;
  int rc = stm_validate_hash_hex("hash", hash, hash_len, false, err);
  if (rc == 0 && as_of_sequence)
    rc = stm_gw_parse_uint("as_of_sequence", as_of_sequence,
                           strlen(as_of_sequence), &seq, err);
  if (rc == 0 && as_of_time_ns)
    rc = stm_gw_parse_int("as_of_time_ns", as_of_time_ns, strlen(as_of_time_ns),
                          0, INT64_MAX, &t, err);
  if (rc)
    return rc;
  Stemedb__V1__GetRequest *m = malloc(sizeof *m);
  if (m == NULL)
    return oom(err);
  stemedb__v1__get_request__init(m);
  m->as_of_sequence = seq;
  m->as_of_time_ns = t;
  if ((rc = set_string(&m->hash, hash, hash_len, err))) {
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return rc;
  }
  *out = m;
  return 0;
}

/* ---- rendering ----------------------------------------------------------- */

/* Server strings are UTF-8 by contract; anything else becomes null rather
 * than invalid JSON. */
static json_t *jstr(const char *s) {
  json_t *v = json_string(s ? s : "");
  return v ? v : json_null();
}

static json_t *juint(uint64_t v) {
  return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static void put(json_t *o, const char *key, json_t *v) {
  json_object_set_new(o, key, v);
}

static void put_opt_str(json_t *o, const char *key, const char *s) {
  if (s && *s)
    put(o, key, jstr(s));
}

json_t *stm_gw_value_to_json(const Stemedb__V1__Value *v) {
  if (v == NULL)
    return json_null();
  switch (v->kind_case) {
  case STEMEDB__V1__VALUE__KIND_STRING_VALUE:
    return jstr(v->string_value);
  case STEMEDB__V1__VALUE__KIND_NUMBER_VALUE:
    return isfinite(v->number_value) ? json_real(v->number_value) : json_null();
  case STEMEDB__V1__VALUE__KIND_BOOL_VALUE:
    return json_boolean(v->bool_value);
  case STEMEDB__V1__VALUE__KIND_REF_VALUE: {
    json_t *o = json_object();
    put(o, "ref", jstr(v->ref_value));
    return o;
  }
  default:
    return json_null();
  }
}

json_t *stm_gw_assertion_to_json(const Stemedb__V1__Assertion *a) {
  if (a == NULL)
    return json_null();
  json_t *o = json_object();
  put(o, "hash", jstr(a->hash));
  put(o, "concept_path", jstr(a->concept_path));
  put(o, "predicate", jstr(a->predicate));
  put(o, "value", stm_gw_value_to_json(a->value));
  put(o, "source", jstr(a->source_id));
  put(o, "source_tier", json_integer(a->source_tier));
  put(o, "confidence", json_real(a->confidence));
  put(o, "timestamp_ns", json_integer(a->timestamp_ns));
  put(o, "sequence", juint(a->sequence));
  put(o, "epoch", juint(a->epoch));
  put(o, "commit_time_ns", json_integer(a->commit_time_ns));
  put_opt_str(o, "parent_hash", a->parent_hash);
  put_opt_str(o, "signature", a->signature);
  put_opt_str(o, "public_key", a->public_key);
  return o;
}

json_t *stm_gw_assert_response_to_json(const Stemedb__V1__AssertResponse *r) {
  json_t *o = json_object();
  put(o, "hash", jstr(r->hash));
  put(o, "sequence", juint(r->sequence));
  put(o, "created", json_boolean(r->created));
  return o;
}

json_t *stm_gw_assert_batch_response_to_json(
    const Stemedb__V1__AssertBatchResponse *r) {
  json_t *arr = json_array();
  for (size_t i = 0; i < r->n_results; i++)
    json_array_append_new(arr, stm_gw_assert_response_to_json(r->results[i]));
  json_t *o = json_object();
  put(o, "results", arr);
  return o;
}

static json_t *ranked_to_json(const Stemedb__V1__RankedValue *r) {
  json_t *o = json_object();
  put(o, "value", stm_gw_value_to_json(r->value));
  put(o, "share", json_real(r->share));
  put(o, "weight", json_real(r->weight));
  put(o, "claims", json_integer(r->claims));
  put(o, "representative", stm_gw_assertion_to_json(r->representative));
  return o;
}

static json_t *tier_to_json(const Stemedb__V1__TierResult *t) {
  json_t *o = json_object();
  put(o, "tier", json_integer(t->tier));
  put(o, "confidence", json_real(t->confidence));
  put(o, "candidates_count", json_integer(t->candidates_count));
  put(o, "winner", stm_gw_assertion_to_json(t->winner));
  return o;
}

static json_t *lens_result_to_json(const Stemedb__V1__LensResult *r) {
  json_t *o = json_object();
  put(o, "concept_path", jstr(r->concept_path));
  put(o, "predicate", jstr(r->predicate));
  put_opt_str(o, "lens", r->lens);
  put(o, "value", stm_gw_value_to_json(r->winner ? r->winner->value : NULL));
  put(o, "confidence", json_real(r->confidence));
  put(o, "candidates_count", json_integer(r->candidates_count));
  put(o, "conflict_score", json_real(r->conflict_score));
  put_opt_str(o, "status", r->status);
  put(o, "winner", stm_gw_assertion_to_json(r->winner));
  if (r->n_ranked) {
    json_t *arr = json_array();
    for (size_t i = 0; i < r->n_ranked; i++)
      json_array_append_new(arr, ranked_to_json(r->ranked[i]));
    put(o, "ranked", arr);
  }
  if (r->n_tiers) {
    json_t *arr = json_array();
    for (size_t i = 0; i < r->n_tiers; i++)
      json_array_append_new(arr, tier_to_json(r->tiers[i]));
    put(o, "tiers", arr);
  }
  return o;
}

json_t *stm_gw_query_response_to_json(const Stemedb__V1__QueryResponse *r) {
  json_t *arr = json_array();
  for (size_t i = 0; i < r->n_results; i++)
    json_array_append_new(arr, lens_result_to_json(r->results[i]));
  json_t *o = json_object();
  put(o, "results", arr);
  put(o, "sequence", juint(r->sequence));
  return o;
}

json_t *stm_gw_status_response_to_json(const Stemedb__V1__StatusResponse *s) {
  json_t *o = json_object();
  put(o, "status", jstr(s->status));
  put(o, "assertion_count", juint(s->assertion_count));
  put(o, "last_sequence", juint(s->last_sequence));
  put(o, "node_id", jstr(s->node_id));
  put(o, "version", jstr(s->version));
  put(o, "uptime_seconds", juint(s->uptime_seconds));
  put(o, "writable", json_boolean(s->writable));
  return o;
}

json_t *stm_gw_error_json(const char *code, const char *message,
                          const char *field) {
  json_t *e = json_object();
  put(e, "code", jstr(code));
  put(e, "message", jstr(message));
  put_opt_str(e, "field", field);
  json_t *o = json_object();
  put(o, "error", e);
  return o;
}

/* ---- serializing --------------------------------------------------------- */

/* The fewest significant digits (1..17) that read back as exactly d. */
static int digits_for(double d) {
  for (int p = 1; p < 17; p++) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.*g", p, d);
    if (strtod(buf, NULL) == d)
      return p;
  }
  return 17;
}

static int max_digits(const json_t *j) {
  int best = 1;
  if (json_is_real(j)) {
    best = digits_for(json_real_value(j));
  } else if (json_is_object(j)) {
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v) {
      int d = max_digits(v);
      best = d > best ? d : best;
    }
  } else if (json_is_array(j)) {
    for (size_t i = 0; i < json_array_size(j); i++) {
      int d = max_digits(json_array_get(j, i));
      best = d > best ? d : best;
    }
  }
  return best;
}

char *stm_gw_json_dump(const json_t *j, size_t *len) {
  size_t flags =
      JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(max_digits(j));
  char *s = json_dumps(j, flags);
  if (s && len)
    *len = strlen(s);
  return s;
}
