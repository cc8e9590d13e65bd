#include "validate.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static struct stm_limits limits = {
    .concept_path = STM_MAX_CONCEPT_PATH,
    .predicate = STM_MAX_PREDICATE,
    .string_value = STM_MAX_STRING_VALUE,
    .source_id = STM_MAX_SOURCE_ID,
    .batch = STM_MAX_BATCH,
};

const struct stm_limits *stm_limits_get(void) { return &limits; }

void stm_limits_set(const struct stm_limits *l) { limits = *l; }

static int too_long(struct stm_error *err, const char *field, size_t len,
                    uint32_t max, const char *flag) {
  return stm_error_set(err, STM_EINVAL, field,
                       "%s is %zu bytes; at most %u are allowed (%s)", field,
                       len, max, flag);
}

static bool is_segment_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

int stm_validate_concept_path(const char *field, const char *s, size_t len,
                              struct stm_error *err) {
  if (len == 0)
    return stm_error_set(err, STM_EINVAL, field, "%s must not be empty", field);
  if (len > limits.concept_path)
    return too_long(err, field, len, limits.concept_path,
                    "--max-concept-path-bytes");
  size_t segments = 1, seg_len = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '/') {
      if (seg_len == 0)
        return stm_error_set(err, STM_EINVAL, field,
                             "%s has an empty segment at byte %zu", field, i);
      segments++;
      seg_len = 0;
      continue;
    }
    if (!is_segment_char(c))
      return stm_error_set(err, STM_EINVAL, field,
                           "%s has an invalid character at byte %zu; segments "
                           "allow only A-Z a-z 0-9 _ . -",
                           field, i);
    seg_len++;
  }
  if (seg_len == 0)
    return stm_error_set(err, STM_EINVAL, field,
                         "%s must not end with '/' (empty segment)", field);
  if (segments > STM_MAX_PATH_SEGMENTS)
    return stm_error_set(err, STM_EINVAL, field,
                         "%s has %zu segments; at most %d are allowed", field,
                         segments, STM_MAX_PATH_SEGMENTS);
  return 0;
}

int stm_validate_concept_prefix(const char *field, const char *s, size_t len,
                                struct stm_error *err) {
  return len == 0 ? 0 : stm_validate_concept_path(field, s, len, err);
}

int stm_validate_predicate(const char *field, const char *s, size_t len,
                           struct stm_error *err) {
  if (len == 0)
    return stm_error_set(err, STM_EINVAL, field, "%s must not be empty", field);
  if (len > limits.predicate)
    return too_long(err, field, len, limits.predicate, "--max-predicate-bytes");
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!is_segment_char(c) && c != ':')
      return stm_error_set(err, STM_EINVAL, field,
                           "%s has an invalid character at byte %zu; allowed "
                           "are A-Z a-z 0-9 _ . : -",
                           field, i);
  }
  return 0;
}

bool stm_utf8_valid(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (len - i - 1 < n)
      return false;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return false;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    /* Reject overlong forms, surrogates and code points past U+10FFFF. */
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

int stm_validate_string_value(const char *field, const char *s, size_t len,
                              struct stm_error *err) {
  if (len > limits.string_value)
    return too_long(err, field, len, limits.string_value, "--max-value-bytes");
  if (!stm_utf8_valid(s, len))
    return stm_error_set(err, STM_EINVAL, field, "%s is not valid UTF-8",
                         field);
  return 0;
}

static bool all_hex(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
          (c >= 'A' && c <= 'F')))
      return false;
  }
  return true;
}

int stm_validate_ref_value(const char *field, const char *s, size_t len,
                           struct stm_error *err) {
  if (len == 64 && all_hex(s, len))
    return 0;
  if (stm_validate_concept_path(field, s, len, NULL) == 0)
    return 0;
  return stm_error_set(err, STM_EINVAL, field,
                       "%s must be a concept path or a 64-hex assertion hash",
                       field);
}

int stm_validate_number(const char *field, double v, struct stm_error *err) {
  if (!isfinite(v))
    return stm_error_set(err, STM_EINVAL, field,
                         "%s must be a finite number (not NaN or Infinity)",
                         field);
  return 0;
}

int stm_validate_unit_interval(const char *field, double v,
                               struct stm_error *err) {
  if (!isfinite(v) || v < 0.0 || v > 1.0)
    return stm_error_set(err, STM_EINVAL, field,
                         "%s must be a number between 0 and 1", field);
  return 0;
}

int stm_validate_hash_hex(const char *field, const char *s, size_t len,
                          bool optional, struct stm_error *err) {
  if (len == 0 && optional)
    return 0;
  if (len != 64 || !all_hex(s, len))
    return stm_error_set(err, STM_EINVAL, field,
                         "%s must be 64 hex characters (a BLAKE2b-256 hash)",
                         field);
  return 0;
}

int stm_validate_source_id(const char *field, const char *s, size_t len,
                           struct stm_error *err) {
  if (len > limits.source_id)
    return too_long(err, field, len, limits.source_id, "--max-source-id-bytes");
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7F)
      return stm_error_set(err, STM_EINVAL, field,
                           "%s has an invalid character at byte %zu; printable "
                           "ASCII without spaces is allowed",
                           field, i);
  }
  return 0;
}

const char *stm_field_name(char *buf, size_t size, const char *prefix,
                           const char *name) {
  size_t p = strnlen(prefix, size - 1);
  size_t n = strnlen(name, size - 1 - p);
  memcpy(buf, prefix, p);
  memcpy(buf + p, name, n);
  buf[p + n] = '\0';
  return buf;
}

const char *stm_field_name_at(char *buf, size_t size, const char *array,
                              size_t i, const char *name) {
  char idx[32], digits[24];
  size_t nd = 0, len = 0;
  do
    digits[nd++] = (char)('0' + i % 10);
  while ((i /= 10) != 0);
  idx[len++] = '[';
  while (nd > 0)
    idx[len++] = digits[--nd];
  idx[len++] = ']';
  idx[len++] = '.';
  idx[len] = '\0';
  stm_field_name(buf, size, array, idx);
  size_t used = strlen(buf);
  return stm_field_name(buf + used, size - used, "", name) - used;
}
