/*
 * POST /v1/assert, /v1/assert/batch, /v1/query, GET /v1/assertions/{hash}
 * and /v1/skeptic: requests from JSON bodies and URLs (types and shapes
 * only: the server validates the values, so there is one set of rules
 * and messages), replies rendered.
 */
#include "common/validate.h" /* field names, STM_MAX_BATCH */
#include "gateway/request.h"
#include "gateway/resources.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "json/json.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_MAX 96
#define TWO_POW_63 9223372036854775808.0

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

/*
 * Optional string member: *s stays NULL when absent. Present but not a
 * string is STM_EINVAL naming `field`.
 */
static int get_string(const json_t *obj, const char *key, const char *field,
                      const char **s, size_t *len, struct stm_error *err) {
  const json_t *v = stm_gw_body_member(obj, key);
  *s = NULL;
  *len = 0;
  if (v == NULL)
    return 0;
  if (!json_is_string(v))
    return stm_error_set(err, STM_EINVAL, field, "%s must be a string", field);
  *s = json_string_value(v);
  *len = json_string_length(v);
  /* The one value check made here: a C string cannot carry a NUL, and a
   * truncated string must never reach the server (issue 10). */
  if (memchr(*s, 0, *len))
    return stm_error_set(err, STM_EINVAL, field, "%s contains a NUL byte",
                         field);
  return 0;
}

/* Replace a message string field (initially protobuf_c_empty_string). */
static int set_string(char **slot, const char *s, size_t len,
                      struct stm_error *err) {
  if (s == NULL)
    return 0; /* absent: the message keeps "" and the server judges it */
  char *d = dup_n(s, len);
  if (d == NULL)
    return stm_gw_error_oom(err);
  *slot = d;
  return 0;
}

static int get_bool(const json_t *obj, const char *key, protobuf_c_boolean *out,
                    struct stm_error *err) {
  const json_t *v = stm_gw_body_member(obj, key);
  if (v == NULL)
    return 0;
  if (!json_is_boolean(v))
    return stm_error_set(err, STM_EINVAL, key, "%s must be true or false", key);
  *out = json_is_true(v);
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

static int json_to_value(const json_t *v, const char *field,
                         Stemedb__V1__Value **out, struct stm_error *err) {
  if (v == NULL)
    return 0; /* the server answers "value is required" */
  Stemedb__V1__Value *val = malloc(sizeof *val);
  if (val == NULL)
    return stm_gw_error_oom(err);
  stemedb__v1__value__init(val);
  *out = val; /* owned by the request from here on, even on error */
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (memchr(s, 0, len))
      return stm_error_set(err, STM_EINVAL, field, "%s contains a NUL byte",
                           field);
    val->kind_case = STEMEDB__V1__VALUE__KIND_STRING_VALUE;
    val->string_value = dup_n(s, len);
    return val->string_value ? 0 : stm_gw_error_oom(err);
  }
  if (json_is_number(v)) {
    double d = json_number_value(v);
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
    if (memchr(s, 0, len))
      return stm_error_set(err, STM_EINVAL, field, "%s contains a NUL byte",
                           field);
    val->kind_case = STEMEDB__V1__VALUE__KIND_REF_VALUE;
    val->ref_value = dup_n(s, len);
    return val->ref_value ? 0 : stm_gw_error_oom(err);
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
  const char *s = s1 ? s1 : s2;
  size_t len = s1 ? l1 : l2;
  return set_string(&m->source_id, s, len, err);
}

/* Signature and key: copied; their format, that they go together and the
 * signature itself are the server's to check. */
static int fill_signature(const json_t *obj, const char *prefix,
                          Stemedb__V1__AssertRequest *m,
                          struct stm_error *err) {
  char fs[FIELD_MAX], fk[FIELD_MAX];
  const char *sig = NULL, *key = NULL;
  size_t sig_len = 0, key_len = 0;
  int rc = get_string(obj, "signature", field_name(fs, prefix, "signature"),
                      &sig, &sig_len, err);
  if (rc == 0)
    rc = get_string(obj, "public_key", field_name(fk, prefix, "public_key"),
                    &key, &key_len, err);
  if (rc == 0)
    rc = set_string(&m->signature, sig, sig_len, err);
  return rc ? rc : set_string(&m->public_key, key, key_len, err);
}

static int fill_assert(const json_t *obj, const char *prefix,
                       Stemedb__V1__AssertRequest *m, struct stm_error *err) {
  char f[FIELD_MAX];
  const char *s;
  size_t len;
  int rc = get_string(obj, "concept_path",
                      field_name(f, prefix, "concept_path"), &s, &len, err);
  if (rc || (rc = set_string(&m->concept_path, s, len, err)))
    return rc;
  rc = get_string(obj, "predicate", field_name(f, prefix, "predicate"), &s,
                  &len, err);
  if (rc || (rc = set_string(&m->predicate, s, len, err)))
    return rc;
  rc = json_to_value(stm_gw_body_member(obj, "value"),
                     field_name(f, prefix, "value"), &m->value, err);
  if (rc || (rc = fill_source(obj, prefix, m, err)))
    return rc;
  const json_t *v = stm_gw_body_member(obj, "confidence");
  if (v) {
    field_name(f, prefix, "confidence");
    if (!json_is_number(v))
      return stm_error_set(err, STM_EINVAL, f, "%s must be a number", f);
    m->confidence_present_case =
        STEMEDB__V1__ASSERT_REQUEST__CONFIDENCE_PRESENT_CONFIDENCE;
    m->confidence = json_number_value(v);
  }
  rc = get_string(obj, "parent_hash", field_name(f, prefix, "parent_hash"), &s,
                  &len, err);
  if (rc || (rc = set_string(&m->parent_hash, s, len, err)))
    return rc;
  v = stm_gw_body_member(obj, "timestamp_ns");
  if (v &&
      (rc = stm_gw_json_int64(v, field_name(f, prefix, "timestamp_ns"),
                              INT64_MIN, INT64_MAX, &m->timestamp_ns, err)))
    return rc;
  /* Mapped inside a batch too, as gRPC carries it; the server ignores it
   * there and honours the batch's. */
  rc = get_string(obj, "request_id", field_name(f, prefix, "request_id"), &s,
                  &len, err);
  if (rc || (rc = set_string(&m->request_id, s, len, err)))
    return rc;
  return fill_signature(obj, prefix, m, err);
}

int stm_gw_parse_assert_request(const json_t *obj, const char *prefix,
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
    return stm_gw_error_oom(err);
  stemedb__v1__assert_request__init(m);
  int rc = fill_assert(obj, prefix, m, err);
  if (rc) {
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return rc;
  }
  *out = m;
  return 0;
}

int stm_gw_parse_assert_batch(const json_t *obj,
                              Stemedb__V1__AssertBatchRequest **out,
                              struct stm_error *err) {
  *out = NULL;
  const json_t *arr = stm_gw_body_member(obj, "assertions");
  if (arr == NULL)
    return stm_error_set(err, STM_EINVAL, "assertions",
                         "assertions is required");
  if (!json_is_array(arr))
    return stm_error_set(err, STM_EINVAL, "assertions",
                         "assertions must be an array");
  size_t n = json_array_size(arr);
  /* The server applies its --max-batch (and names it); this ceiling only
   * bounds what the gateway builds (the body limit bounds it first). */
  if (n == 0 || n > STM_LIMIT_BATCH_CEIL)
    return stm_error_set(err, STM_EINVAL, "assertions",
                         "assertions must hold 1 to %d claims, not %zu",
                         STM_LIMIT_BATCH_CEIL, n);
  Stemedb__V1__AssertBatchRequest *m = malloc(sizeof *m);
  if (m == NULL)
    return stm_gw_error_oom(err);
  stemedb__v1__assert_batch_request__init(m);
  m->assertions = calloc(n, sizeof *m->assertions);
  if (m->assertions == NULL) {
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return stm_gw_error_oom(err);
  }
  const char *rid;
  size_t rid_len;
  int rc = get_string(obj, "request_id", "request_id", &rid, &rid_len, err);
  if (rc == 0)
    rc = set_string(&m->request_id, rid, rid_len, err);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    char prefix[48];
    stm_field_name_at(prefix, sizeof prefix, "assertions", i, "");
    rc = stm_gw_parse_assert_request(json_array_get(arr, i), prefix,
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

static int fill_query(const json_t *obj, Stemedb__V1__QueryRequest *m,
                      struct stm_error *err) {
  const char *s;
  size_t len;
  int rc = get_string(obj, "concept_path", "concept_path", &s, &len, err);
  if (rc || (rc = set_string(&m->concept_path, s, len, err)))
    return rc;
  rc = get_string(obj, "predicate", "predicate", &s, &len, err);
  if (rc || (rc = set_string(&m->predicate, s, len, err)))
    return rc;
  rc = get_string(obj, "lens", "lens", &s, &len, err);
  if (rc || (rc = set_string(&m->lens, s, len, err)))
    return rc;
  const json_t *v = stm_gw_body_member(obj, "as_of_sequence");
  if (v && (rc = json_uint64(v, "as_of_sequence", UINT64_MAX,
                             &m->as_of_sequence, err)))
    return rc;
  v = stm_gw_body_member(obj, "as_of_time_ns");
  if (v && (rc = stm_gw_json_int64(v, "as_of_time_ns", INT64_MIN, INT64_MAX,
                                   &m->as_of_time_ns, err)))
    return rc;
  uint64_t limit = 0;
  v = stm_gw_body_member(obj, "limit");
  if (v && (rc = json_uint64(v, "limit", UINT32_MAX, &limit, err)))
    return rc;
  m->limit = (uint32_t)limit;
  rc = get_bool(obj, "include_descendants", &m->include_descendants, err);
  return rc ? rc
            : get_bool(obj, "current_epoch_only", &m->current_epoch_only, err);
}

int stm_gw_parse_query_request(const json_t *obj,
                               Stemedb__V1__QueryRequest **out,
                               struct stm_error *err) {
  *out = NULL;
  Stemedb__V1__QueryRequest *m = malloc(sizeof *m);
  if (m == NULL)
    return stm_gw_error_oom(err);
  stemedb__v1__query_request__init(m);
  int rc = fill_query(obj, m, err);
  if (rc) {
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return rc;
  }
  *out = m;
  return 0;
}

int stm_gw_parse_get_request(const char *hash, size_t hash_len,
                             const char *as_of_sequence,
                             const char *as_of_time_ns,
                             Stemedb__V1__GetRequest **out,
                             struct stm_error *err) {
  *out = NULL;
  uint64_t seq = 0;
  int64_t t = 0;
  int rc = 0;
  if (as_of_sequence)
    rc = stm_gw_parse_uint("as_of_sequence", as_of_sequence,
                           strlen(as_of_sequence), &seq, err);
  if (rc == 0 && as_of_time_ns)
    rc = stm_gw_parse_int("as_of_time_ns", as_of_time_ns, strlen(as_of_time_ns),
                          INT64_MIN, INT64_MAX, &t, err);
  if (rc)
    return rc;
  Stemedb__V1__GetRequest *m = malloc(sizeof *m);
  if (m == NULL)
    return stm_gw_error_oom(err);
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

int stm_gw_build_assert(const struct stm_gw_request *rq, ProtobufCMessage **out,
                        struct stm_error *err) {
  Stemedb__V1__AssertRequest *m;
  int rc = stm_gw_parse_assert_request(rq->body, "", &m, err);
  *out = rc ? NULL : &m->base;
  return rc;
}

int stm_gw_build_assert_batch(const struct stm_gw_request *rq,
                              ProtobufCMessage **out, struct stm_error *err) {
  Stemedb__V1__AssertBatchRequest *m;
  int rc = stm_gw_parse_assert_batch(rq->body, &m, err);
  *out = rc ? NULL : &m->base;
  return rc;
}

int stm_gw_build_query(const struct stm_gw_request *rq, ProtobufCMessage **out,
                       struct stm_error *err) {
  Stemedb__V1__QueryRequest *m;
  int rc = stm_gw_parse_query_request(rq->body, &m, err);
  *out = rc ? NULL : &m->base;
  return rc;
}

int stm_gw_build_get(const struct stm_gw_request *rq, ProtobufCMessage **out,
                     struct stm_error *err) {
  char seq[32], t[32];
  const char *q = rq->query ? rq->query : "";
  const char *as_of_seq =
      stm_gw_query_value(q, "as_of_sequence", seq, sizeof seq);
  const char *as_of_t = stm_gw_query_value(q, "as_of_time_ns", t, sizeof t);
  /* A value too long for the buffer is reported as malformed, not dropped. */
  if (as_of_seq == NULL && strstr(q, "as_of_sequence="))
    as_of_seq = "?";
  if (as_of_t == NULL && strstr(q, "as_of_time_ns="))
    as_of_t = "?";
  Stemedb__V1__GetRequest *m;
  int rc = stm_gw_parse_get_request(rq->param, strlen(rq->param), as_of_seq,
                                    as_of_t, &m, err);
  *out = rc ? NULL : &m->base;
  return rc;
}

json_t *stm_gw_render_assert(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__AssertResponse *r =
      (const Stemedb__V1__AssertResponse *)msg;
  *status = r->created ? 201 : 200;
  return stm_json_render_assert_response(r);
}

json_t *stm_gw_render_assert_batch(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__AssertBatchResponse *r =
      (const Stemedb__V1__AssertBatchResponse *)msg;
  for (size_t i = 0; i < r->n_results; i++)
    if (r->results[i]->created)
      *status = 201;
  return stm_json_render_assert_batch_response(r);
}

json_t *stm_gw_render_assertion(const ProtobufCMessage *msg, int *status) {
  return stm_json_render_assertion((const Stemedb__V1__Assertion *)msg);
}

json_t *stm_gw_render_query(const ProtobufCMessage *msg, int *status) {
  return stm_json_render_query_response(
      (const Stemedb__V1__QueryResponse *)msg);
}

int stm_gw_build_skeptic(const struct stm_gw_request *rq,
                         ProtobufCMessage **out, struct stm_error *err) {
  STM_GW_NEW_MSG(Stemedb__V1__QueryRequest, stemedb__v1__query_request__init, m,
                 err);
  /* Absent: "" (the server answers that concept_path is required). */
  int rc = stm_gw_query_string(rq, "concept_path", &m->concept_path, err);
  rc = rc ? rc : stm_gw_query_string(rq, "predicate", &m->predicate, err);
  if (rc == 0 && (m->lens = strdup("skeptic")) == NULL)
    rc = stm_gw_error_oom(err);
  rc = rc ? rc
          : stm_gw_query_uint(rq, "as_of_sequence", UINT64_MAX,
                              &m->as_of_sequence, err);
  rc = rc ? rc : stm_gw_query_int(rq, "as_of_time_ns", &m->as_of_time_ns, err);
  rc = rc ? rc
          : stm_gw_query_bool(rq, "include_descendants",
                              &m->include_descendants, err);
  rc = rc ? rc
          : stm_gw_query_bool(rq, "current_epoch_only", &m->current_epoch_only,
                              err);
  uint64_t limit = 0;
  rc = rc ? rc : stm_gw_query_uint(rq, "limit", UINT32_MAX, &limit, err);
  m->limit = (uint32_t)limit;
  return stm_gw_message_finish(&m->base, rc, out);
}
