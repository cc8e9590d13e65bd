#include "json/json.h"

#include "common/validate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The first string (or object key) that `bad` flags, depth first: true
 * with its path ("assertions[2].value.ref") in field; `bad` stores what it
 * found in *out. The path is built in place: each level appends its part
 * and cuts it off again. Depth is bounded by the depth check before
 * parsing and jansson's own nesting limit.
 */
typedef bool (*string_check)(const char *s, size_t len, size_t arg,
                             size_t *out);

static bool find_string(const json_t *j, string_check bad, size_t arg,
                        char *field, size_t cap, size_t *out) {
  if (json_is_string(j))
    return bad(json_string_value(j), json_string_length(j), arg, out);
  size_t used = strlen(field);
  if (json_is_object(j)) {
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v) {
      snprintf(field + used, cap - used, "%s%s", used ? "." : "", key);
      if (bad(key, strlen(key), arg, out) ||
          find_string(v, bad, arg, field, cap, out))
        return true;
    }
  } else if (json_is_array(j)) {
    for (size_t i = 0; i < json_array_size(j); i++) {
      snprintf(field + used, cap - used, "[%zu]", i);
      if (find_string(json_array_get(j, i), bad, arg, field, cap, out))
        return true;
    }
  }
  field[used] = '\0';
  return false;
}

/* A NUL inside: its byte offset. */
static bool has_nul(const char *s, size_t len, size_t unused, size_t *at) {
  (void)unused;
  const char *nul = memchr(s, 0, len);
  if (nul)
    *at = (size_t)(nul - s);
  return nul != NULL;
}

/* Longer than max: its length. */
static bool too_long(const char *s, size_t len, size_t max, size_t *out) {
  (void)s;
  *out = len;
  return len > max;
}

/* The deepest nesting of objects and arrays outside strings, stopping
 * once it passes max (a single pass; malformed JSON is left to jansson). */
static size_t json_depth(const char *s, size_t len, size_t max) {
  size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < len && deepest <= max; i++) {
    char c = s[i];
    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      depth++;
      deepest = depth > deepest ? depth : deepest;
    } else if ((c == '}' || c == ']') && depth > 0) {
      depth--;
    }
  }
  return deepest;
}

int stm_json_parse_limited(const char *body, size_t len,
                           const struct stm_json_limits *limits, json_t **out,
                           struct stm_error *err) {
  size_t max_depth = limits && limits->max_depth ? limits->max_depth
                                                 : STM_JSON_DEFAULT_MAX_DEPTH;
  size_t max_string = limits && limits->max_string
                          ? limits->max_string
                          : STM_JSON_DEFAULT_MAX_STRING;
  *out = NULL;
  if (json_depth(body, len, max_depth) > max_depth)
    return stm_error_set(err, STM_EINVAL, NULL,
                         "request body nests JSON objects/arrays deeper than "
                         "%zu levels (--max-json-depth)",
                         max_depth);
  int rc = stm_json_parse(body, len, out, err);
  if (rc)
    return rc;
  char field[256];
  size_t n = 0;
  field[0] = '\0';
  if (find_string(*out, too_long, max_string, field, sizeof field, &n)) {
    json_decref(*out);
    *out = NULL;
    return stm_error_set(err, STM_EINVAL, field,
                         "%s is a %zu-byte string; at most %zu bytes are "
                         "allowed (--max-json-string-bytes)",
                         field, n, max_string);
  }
  return 0;
}

int stm_json_parse(const char *body, size_t len, json_t **out,
                   struct stm_error *err) {
  *out = NULL;
  if (len == 0)
    return stm_error_set(err, STM_EINVAL, NULL,
                         "request body is empty; a JSON object is expected");
  if (!stm_utf8_valid(body, len))
    return stm_error_set(err, STM_EINVAL, NULL,
                         "request body is not valid UTF-8");
  /* \u0000 is decoded (JSON_ALLOW_NUL) so that the refusal below can name
   * the field, with the message the server gives a gRPC string with a NUL;
   * jansson's own refusal names neither. */
  json_error_t je;
  json_t *j =
      json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
  if (j == NULL)
    return stm_error_set(err, STM_EINVAL, NULL,
                         "malformed JSON at line %d, column %d (byte %d): %s",
                         je.line, je.column, je.position, je.text);
  if (!json_is_object(j)) {
    json_decref(j);
    return stm_error_set(err, STM_EINVAL, NULL,
                         "request body must be a JSON object");
  }
  char field[256];
  size_t at = 0;
  field[0] = '\0';
  if (find_string(j, has_nul, 0, field, sizeof field, &at)) {
    json_decref(j);
    return stm_error_set(err, STM_EINVAL, field,
                         "%s contains a NUL byte (at byte %zu); no string "
                         "field may contain NUL",
                         field, at);
  }
  *out = j;
  return 0;
}

json_t *stm_json_render_error(const char *code, const char *message,
                              const char *field) {
  json_t *e = json_object();
  stm_json_put(e, "code", stm_json_str(code));
  stm_json_put(e, "message", stm_json_str(message));
  stm_json_put_opt_str(e, "field", field);
  json_t *o = json_object();
  stm_json_put(o, "error", e);
  return o;
}

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

char *stm_json_dump(const json_t *j, size_t *len) {
  size_t flags =
      JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(max_digits(j));
  char *s = json_dumps(j, flags);
  if (s && len)
    *len = strlen(s);
  return s;
}
