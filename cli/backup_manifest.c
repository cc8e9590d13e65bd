/*
 * backup_manifest.c - MANIFEST.json reader and check (backup_manifest.h).
 */
#include "backup_manifest.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

static int bad(struct stm_error *err, const char *field, const char *want) {
  return stm_error_set(err, STM_ECORRUPT, field, "MANIFEST.json: %s must be %s",
                       field, want);
}

static bool is_hex64(const json_t *v) {
  const char *s = json_string_value(v);
  if (s == NULL || json_string_length(v) != 64)
    return false;
  for (size_t i = 0; i < 64; i++)
    if (strchr("0123456789abcdef", s[i]) == NULL || s[i] == '\0')
      return false;
  return true;
}

static bool is_count(const json_t *v) {
  return json_is_integer(v) && json_integer_value(v) >= 0;
}

static int check_files(const json_t *files, struct stm_error *err) {
  if (!json_is_array(files))
    return bad(err, "files", "an array");
  for (size_t i = 0; i < json_array_size(files); i++) {
    const json_t *f = json_array_get(files, i);
    if (!json_is_object(f) || !json_is_string(json_object_get(f, "name")) ||
        !is_count(json_object_get(f, "size")) ||
        !is_hex64(json_object_get(f, "blake2b")))
      return bad(err, "files",
                 "an array of {name: string, size: integer >= 0, blake2b: "
                 "64 hex digits}");
  }
  return 0;
}

static int check_fields(const json_t *m, struct stm_error *err) {
  if (!json_is_object(m))
    return bad(err, "MANIFEST.json", "a JSON object");
  const char *format = json_string_value(json_object_get(m, "format"));
  if (format == NULL || strcmp(format, STM_BACKUP_MANIFEST_FORMAT) != 0)
    return stm_error_set(err, STM_EUNIMPL, "format",
                         "MANIFEST.json: format is not "
                         "\"" STM_BACKUP_MANIFEST_FORMAT "\"");
  if (!json_is_string(json_object_get(m, "node_id")))
    return bad(err, "node_id", "a string");
  if (!is_count(json_object_get(m, "last_sequence")))
    return bad(err, "last_sequence", "an integer >= 0");
  if (!is_count(json_object_get(m, "claims")))
    return bad(err, "claims", "an integer >= 0");
  if (!is_hex64(json_object_get(m, "claims_digest")))
    return bad(err, "claims_digest", "64 hex digits");
  return check_files(json_object_get(m, "files"), err);
}

int stm_backup_manifest_parse(const void *data, size_t len, json_t **out,
                              struct stm_error *err) {
  *out = NULL;
  json_error_t je;
  json_t *m = json_loadb(data, len, 0, &je);
  if (m == NULL)
    return stm_error_set(err, STM_ECORRUPT, NULL, "MANIFEST.json: %s (line %d)",
                         je.text, je.line);
  int rc = check_fields(m, err);
  if (rc) {
    json_decref(m);
    return rc;
  }
  *out = m;
  return 0;
}

static const char *str(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "?";
}

static int compare_files(const json_t *want, const json_t *have,
                         struct stm_error *err) {
  size_t n = json_array_size(want);
  if (n != json_array_size(have))
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "the manifest lists %zu files, the archive holds %zu",
                         n, json_array_size(have));
  for (size_t i = 0; i < n; i++) {
    const json_t *a = json_array_get(want, i), *b = json_array_get(have, i);
    if (!json_equal((json_t *)a, (json_t *)b))
      return stm_error_set(
          err, STM_ECORRUPT, NULL,
          "%s: size or BLAKE2b differs from the manifest (manifest %s "
          "%" JSON_INTEGER_FORMAT " bytes %s, archive %s %" JSON_INTEGER_FORMAT
          " bytes %s)",
          str(b, "name"), str(a, "name"),
          json_integer_value(json_object_get(a, "size")), str(a, "blake2b"),
          str(b, "name"), json_integer_value(json_object_get(b, "size")),
          str(b, "blake2b"));
  }
  return 0;
}

int stm_backup_manifest_check(const json_t *m, const json_t *files,
                              struct stm_backup_check *chk,
                              struct stm_error *err) {
  int rc = compare_files(json_object_get(m, "files"), files, err);
  if (rc)
    return rc;
  uint64_t last =
      (uint64_t)json_integer_value(json_object_get(m, "last_sequence"));
  if (chk->next_sequence - 1 != last)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "the WAL ends at sequence %" PRIu64
                         ", the manifest says %" PRIu64,
                         chk->next_sequence - 1, last);
  uint64_t claims = (uint64_t)json_integer_value(json_object_get(m, "claims"));
  if (claims != chk->claims)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "%" PRIu64 " claims decode, the manifest says "
                         "%" PRIu64,
                         chk->claims, claims);
  char digest[65];
  stm_backup_check_digest_hex(chk, digest);
  const char *d = str(m, "claims_digest");
  if (strcmp(d, digest) != 0)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "the claim hashes digest to %s, the manifest says %s",
                         digest, d);
  return 0;
}
