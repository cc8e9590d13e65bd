/* The parsed document: lookups, iteration, and reading a file. */
#include "toml_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void stm__toml_value_free(struct stm__toml_value *v) {
  if (v->type == STM_TOML_STRING) {
    free(v->u.s);
  } else if (v->type == STM_TOML_ARRAY) {
    for (size_t i = 0; i < v->u.arr.n; i++)
      stm__toml_value_free(&v->u.arr.items[i]);
    free(v->u.arr.items);
    free(v->u.arr.strs);
  }
  memset(v, 0, sizeof *v);
}

void stm_toml_delete(struct stm_toml_doc *doc) {
  if (doc == NULL)
    return;
  for (size_t i = 0; i < doc->n; i++) {
    free(doc->entries[i].key);
    stm__toml_value_free(&doc->entries[i].v);
  }
  for (size_t i = 0; i < doc->ntables; i++)
    free(doc->tables[i].name);
  free(doc->entries);
  free(doc->tables);
  free(doc);
}

size_t stm_toml_count(const struct stm_toml_doc *doc) { return doc->n; }

const struct stm_toml_item *stm_toml_item_at(const struct stm_toml_doc *doc,
                                             size_t i) {
  return i < doc->n ? &doc->entries[i].info : NULL;
}

static const struct stm__toml_entry *find_entry(const struct stm_toml_doc *doc,
                                                const char *key) {
  for (size_t i = 0; key && i < doc->n; i++)
    if (strcmp(doc->entries[i].key, key) == 0)
      return &doc->entries[i];
  return NULL;
}

const struct stm_toml_item *stm_toml_find(const struct stm_toml_doc *doc,
                                          const char *key) {
  const struct stm__toml_entry *e = find_entry(doc, key);
  return e ? &e->info : NULL;
}

const char *stm_toml_type_name(enum stm_toml_type type) {
  switch (type) {
  case STM_TOML_STRING:
    return "string";
  case STM_TOML_INT:
    return "integer";
  case STM_TOML_FLOAT:
    return "float";
  case STM_TOML_BOOL:
    return "boolean";
  case STM_TOML_ARRAY:
    return "array";
  }
  return "value";
}

/* Find `key` and check its type; `want` is the noun for the message. */
static int lookup(const struct stm_toml_doc *doc, const char *key,
                  enum stm_toml_type type, const char *want,
                  const struct stm__toml_entry **out, struct stm_error *err) {
  const struct stm__toml_entry *e = find_entry(doc, key);
  if (e == NULL)
    return STM_ENOTFOUND;
  if (e->v.type != type) {
    stm_error_set(err, STM_EINVAL, key, "%s must be %s, got %s (line %d)", key,
                  want, stm_toml_type_name(e->v.type), e->info.line);
    return STM_EINVAL;
  }
  *out = e;
  return 0;
}

int stm_toml_get_string(const struct stm_toml_doc *doc, const char *key,
                        const char **out, struct stm_error *err) {
  const struct stm__toml_entry *e = NULL;
  int rc = lookup(doc, key, STM_TOML_STRING, "a string", &e, err);
  if (rc == 0)
    *out = e->v.u.s;
  return rc;
}

int stm_toml_get_int(const struct stm_toml_doc *doc, const char *key,
                     int64_t *out, struct stm_error *err) {
  const struct stm__toml_entry *e = NULL;
  int rc = lookup(doc, key, STM_TOML_INT, "an integer", &e, err);
  if (rc == 0)
    *out = e->v.u.i;
  return rc;
}

int stm_toml_get_float(const struct stm_toml_doc *doc, const char *key,
                       double *out, struct stm_error *err) {
  const struct stm__toml_entry *e = find_entry(doc, key);
  if (e && e->v.type == STM_TOML_INT) {
    *out = (double)e->v.u.i;
    return 0;
  }
  int rc = lookup(doc, key, STM_TOML_FLOAT, "a number", &e, err);
  if (rc == 0)
    *out = e->v.u.f;
  return rc;
}

int stm_toml_get_bool(const struct stm_toml_doc *doc, const char *key,
                      bool *out, struct stm_error *err) {
  const struct stm__toml_entry *e = NULL;
  int rc =
      lookup(doc, key, STM_TOML_BOOL, "a boolean (true or false)", &e, err);
  if (rc == 0)
    *out = e->v.u.b;
  return rc;
}

int stm_toml_get_string_array(const struct stm_toml_doc *doc, const char *key,
                              const char *const **items, size_t *count,
                              struct stm_error *err) {
  const struct stm__toml_entry *e = NULL;
  int rc = lookup(doc, key, STM_TOML_ARRAY, "an array of strings", &e, err);
  if (rc)
    return rc;
  if (!e->v.u.arr.all_strings)
    return stm_error_set(err, STM_EINVAL, key,
                         "%s must be an array of strings, but an item is not "
                         "a string (line %d)",
                         key, e->info.line);
  *items = e->v.u.arr.strs;
  *count = e->v.u.arr.n;
  return 0;
}

/* Read a whole file of at most STM_TOML_MAX_FILE_BYTES into *out. */
static int read_file(const char *path, char **out, size_t *len,
                     struct stm_error *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return stm_error_set(err, stm_error_from_errno(errno), path,
                         "cannot open %s: %s", path, strerror(errno));
  char *buf = malloc(STM_TOML_MAX_FILE_BYTES + 1);
  if (buf == NULL) {
    fclose(f);
    return stm_error_set(err, STM_ENOMEM, path, "out of memory");
  }
  size_t n = fread(buf, 1, STM_TOML_MAX_FILE_BYTES + 1, f);
  int failed = ferror(f), saved = errno;
  fclose(f);
  if (failed) {
    free(buf);
    return stm_error_set(err, stm_error_from_errno(saved), path,
                         "cannot read %s: %s", path, strerror(saved));
  }
  if (n > STM_TOML_MAX_FILE_BYTES) {
    free(buf);
    return stm_error_set(err, STM_ETOOBIG, path, "%s is larger than %d bytes",
                         path, STM_TOML_MAX_FILE_BYTES);
  }
  *out = buf;
  *len = n;
  return 0;
}

int stm_toml_parse_file(const char *path, struct stm_toml_doc **out,
                        struct stm_error *err) {
  *out = NULL;
  char *text = NULL;
  size_t len = 0;
  int rc = read_file(path, &text, &len, err);
  if (rc)
    return rc;
  struct stm_error perr;
  stm_error_clear(&perr);
  rc = stm_toml_parse(text, len, out, &perr);
  free(text);
  if (rc)
    stm_error_set(err, rc, perr.field[0] ? perr.field : path, "%s: %s", path,
                  perr.message);
  return rc;
}
