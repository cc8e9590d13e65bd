#include "gateway/request.h"

#include "common/hex.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QVAL_MAX 1024
#define STM_GW_TWO_POW_63 9223372036854775808.0 /* 2^63 as a double */

int stm_gw_error_oom(struct stm_error *err) {
  return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
}

const char *stm_gw_query_value(const char *query, const char *name, char *buf,
                               size_t len) {
  size_t name_len = strlen(name);
  for (const char *p = query; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t pair_len = amp ? (size_t)(amp - p) : strlen(p);
    if (pair_len > name_len && strncmp(p, name, name_len) == 0 &&
        p[name_len] == '=') {
      size_t vlen = pair_len - name_len - 1;
      if (vlen >= len)
        return NULL;
      memcpy(buf, p + name_len + 1, vlen);
      buf[vlen] = '\0';
      return buf;
    }
    p = amp ? amp + 1 : NULL;
  }
  return NULL;
}

bool stm_gw_percent_decode(const char *s, size_t len, bool plus, char *out,
                           size_t outlen) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (o + 1 >= outlen)
      return false;
    char c = s[i];
    if (c == '%') {
      int hi = i + 2 < len ? stm_hex_digit(s[i + 1]) : -1;
      int lo = i + 2 < len ? stm_hex_digit(s[i + 2]) : -1;
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        return false;
      out[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[o++] = plus && c == '+' ? ' ' : c;
    }
  }
  out[o] = '\0';
  return true;
}

/*
 * A query-string parameter, percent-decoded into buf. Returns 0 with
 * *present; STM_EINVAL naming `name` for a bad escape or an over-long
 * value.
 */
int stm_gw_query_decoded(const struct stm_gw_request *rq, const char *name,
                         char *buf, size_t len, bool *present,
                         struct stm_error *err) {
  char raw[QVAL_MAX];
  const char *q = rq->query ? rq->query : "";
  const char *v = stm_gw_query_value(q, name, raw, sizeof raw);
  *present = v != NULL;
  buf[0] = '\0';
  if (v == NULL) {
    char pat[64];
    snprintf(pat, sizeof pat, "%s=", name);
    const char *at = strstr(q, pat);
    if (at && (at == q || at[-1] == '&'))
      return stm_error_set(err, STM_EINVAL, name, "%s is too long", name);
    return 0;
  }
  if (!stm_gw_percent_decode(v, strlen(v), true, buf, len))
    return stm_error_set(err, STM_EINVAL, name,
                         "%s is not valid percent-encoded text", name);
  return 0;
}

int stm_gw_query_string(const struct stm_gw_request *rq, const char *name,
                        char **slot, struct stm_error *err) {
  char buf[QVAL_MAX];
  bool present;
  int rc = stm_gw_query_decoded(rq, name, buf, sizeof buf, &present, err);
  if (rc || !present)
    return rc;
  *slot = strdup(buf);
  return *slot ? 0 : stm_gw_error_oom(err);
}

int stm_gw_query_uint(const struct stm_gw_request *rq, const char *name,
                      uint64_t max, uint64_t *out, struct stm_error *err) {
  char buf[64];
  bool present;
  int rc = stm_gw_query_decoded(rq, name, buf, sizeof buf, &present, err);
  if (rc || !present)
    return rc;
  uint64_t v = 0;
  rc = stm_gw_parse_uint(name, buf, strlen(buf), &v, err);
  if (rc == 0 && v > max)
    rc = stm_error_set(err, STM_EINVAL, name, "%s is out of range [0, %llu]",
                       name, (unsigned long long)max);
  if (rc == 0)
    *out = v;
  return rc;
}

int stm_gw_query_int(const struct stm_gw_request *rq, const char *name,
                     int64_t *out, struct stm_error *err) {
  char buf[64];
  bool present;
  int rc = stm_gw_query_decoded(rq, name, buf, sizeof buf, &present, err);
  if (rc || !present)
    return rc;
  return stm_gw_parse_int(name, buf, strlen(buf), INT64_MIN, INT64_MAX, out,
                          err);
}

int stm_gw_query_bool(const struct stm_gw_request *rq, const char *name,
                      protobuf_c_boolean *out, struct stm_error *err) {
  char buf[16];
  bool present;
  int rc = stm_gw_query_decoded(rq, name, buf, sizeof buf, &present, err);
  if (rc || !present)
    return rc;
  if (strcmp(buf, "true") == 0 || strcmp(buf, "1") == 0)
    *out = 1;
  else if (strcmp(buf, "false") == 0 || strcmp(buf, "0") == 0)
    *out = 0;
  else
    return stm_error_set(err, STM_EINVAL, name, "%s must be true or false",
                         name);
  return 0;
}

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

/* Body members: JSON null counts as absent. */
const json_t *stm_gw_body_member(const json_t *obj, const char *key) {
  const json_t *v = obj ? json_object_get(obj, key) : NULL;
  return json_is_null(v) ? NULL : v;
}

int stm_gw_body_string(const json_t *obj, const char *key, const char *field,
                       bool required, char **slot, struct stm_error *err) {
  const json_t *v = stm_gw_body_member(obj, key);
  if (v == NULL)
    return required
               ? stm_error_set(err, STM_EINVAL, field, "%s is required", field)
               : 0;
  if (!json_is_string(v))
    return stm_error_set(err, STM_EINVAL, field, "%s must be a string", field);
  size_t n = json_string_length(v);
  if (memchr(json_string_value(v), 0, n))
    return stm_error_set(err, STM_EINVAL, field, "%s contains a NUL byte",
                         field);
  *slot = strdup(json_string_value(v));
  return *slot ? 0 : stm_gw_error_oom(err);
}

int stm_gw_body_number(const json_t *obj, const char *key, const char *field,
                       bool required, double *out, bool *present,
                       struct stm_error *err) {
  const json_t *v = stm_gw_body_member(obj, key);
  if (present)
    *present = v != NULL;
  if (v == NULL)
    return required
               ? stm_error_set(err, STM_EINVAL, field, "%s is required", field)
               : 0;
  if (!json_is_number(v))
    return stm_error_set(err, STM_EINVAL, field, "%s must be a number", field);
  *out = json_number_value(v);
  return 0;
}

int stm_gw_json_int64(const json_t *v, const char *field, int64_t min,
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
    if (d < -STM_GW_TWO_POW_63 || d >= STM_GW_TWO_POW_63)
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

int stm_gw_body_int64(const json_t *obj, const char *key, const char *field,
                      int64_t *out, struct stm_error *err) {
  const json_t *v = stm_gw_body_member(obj, key);
  return v ? stm_gw_json_int64(v, field, INT64_MIN, INT64_MAX, out, err) : 0;
}

int stm_gw_message_finish(ProtobufCMessage *m, int rc, ProtobufCMessage **out) {
  if (rc) {
    protobuf_c_message_free_unpacked(m, NULL);
    *out = NULL;
    return rc;
  }
  *out = m;
  return 0;
}

/* The path segment arrives still encoded ("fda%3A%2F%2Fx"): decoded here,
 * once. */
int stm_gw_path_id(const struct stm_gw_request *rq, const char *field,
                   char **slot, struct stm_error *err) {
  char buf[QVAL_MAX];
  if (rq->param == NULL || rq->param[0] == '\0') {
    bool present;
    int rc = stm_gw_query_decoded(rq, "id", buf, sizeof buf, &present, err);
    if (rc == 0 && !present)
      return stm_gw_body_string(rq->body, "id", field, true, slot, err);
    if (rc == 0 && (*slot = strdup(buf)) == NULL)
      rc = stm_gw_error_oom(err);
    return rc;
  }
  if (!stm_gw_percent_decode(rq->param, strlen(rq->param), false, buf,
                             sizeof buf))
    return stm_error_set(err, STM_EINVAL, field,
                         "%s is not valid percent-encoded text", field);
  *slot = strdup(buf);
  return *slot ? 0 : stm_gw_error_oom(err);
}
