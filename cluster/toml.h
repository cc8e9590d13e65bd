/*
 * toml.h - the small TOML subset that cluster.toml and the server's config
 * file need. No Debian 12 package offers a C TOML parser, so this one is
 * ours; it follows TOML 1.0 wherever it accepts something.
 *
 * Accepted: comments, blank lines, tables `[a]` and `[a.b]`, bare and quoted
 * keys, dotted keys (`a.b = 1`), basic strings with escapes, literal
 * strings, multi-line basic and literal strings, integers (decimal, 0x, 0o,
 * 0b, `_` separators), floats (including inf and nan), booleans, and arrays
 * of those (multi-line, trailing comma, comments between items, mixed
 * types).
 *
 * Rejected with an error that says so: inline tables, arrays of tables
 * (`[[a]]`), dates and times, nested arrays, a quoted key segment containing
 * '.' or nothing, a string containing \u0000, duplicate keys and tables.
 *
 * Conventions:
 * 1. A document is immutable once parsed; lookups on it are thread-safe.
 * 2. Keys are addressed by their full dotted name: a key `seeds` under
 *    `[cluster]` is "cluster.seeds"; `[a.b]` + `c = 1` is "a.b.c".
 * 3. Strings handed out are borrowed from the document, NUL-terminated and
 *    valid UTF-8; they live until stm_toml_delete().
 * 4. Parse errors are STM_EINVAL (STM_ENOMEM when memory runs out) with a
 *    message starting "line L, column C: " (1-based; the column counts
 *    bytes). Lookups return STM_ENOTFOUND for an absent key and STM_EINVAL
 *    for a value of the wrong type, with the key in err->field and the
 *    line in the message.
 */
#ifndef STM_CLUSTER_TOML_H
#define STM_CLUSTER_TOML_H

#include "common/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest file stm_toml_parse_file() reads; a config file is far smaller. */
#define STM_TOML_MAX_FILE_BYTES (1024 * 1024)

struct stm_toml_doc;

enum stm_toml_type {
  STM_TOML_STRING,
  STM_TOML_INT,
  STM_TOML_FLOAT,
  STM_TOML_BOOL,
  STM_TOML_ARRAY,
};

/* One key of a document, for iteration and for error messages. */
struct stm_toml_item {
  const char *key; /* full dotted name, borrowed */
  enum stm_toml_type type;
  int line; /* where the key starts, 1-based */
  int column;
};

/*
 * Parse `len` bytes of `text` (need not be NUL-terminated; a NUL byte in it
 * is an error). On success *out receives a new document: caller owns it;
 * free with stm_toml_delete(). On failure *out is NULL.
 */
int stm_toml_parse(const char *text, size_t len, struct stm_toml_doc **out,
                   struct stm_error *err);

/*
 * Read and parse the file at `path` (at most STM_TOML_MAX_FILE_BYTES).
 * Error messages start with the path: "cluster.toml: line 3, column 9: ...";
 * an unreadable file gives the errno text and its STM_E* code
 * (STM_ENOTFOUND for a missing file). Ownership as stm_toml_parse().
 */
int stm_toml_parse_file(const char *path, struct stm_toml_doc **out,
                        struct stm_error *err);

/* Free a document; NULL is a no-op. */
void stm_toml_delete(struct stm_toml_doc *doc);

/* Number of keys (tables themselves are not counted). */
size_t stm_toml_count(const struct stm_toml_doc *doc);

/* The i-th key in document order, i < stm_toml_count(). Borrowed. */
const struct stm_toml_item *stm_toml_item_at(const struct stm_toml_doc *doc,
                                             size_t i);

/* The item for a dotted key, or NULL when absent. Borrowed. */
const struct stm_toml_item *stm_toml_find(const struct stm_toml_doc *doc,
                                          const char *key);

/* "string", "integer", "float", "boolean", "array". */
const char *stm_toml_type_name(enum stm_toml_type type);

/*
 * Typed lookups. Each returns 0 and stores the value, STM_ENOTFOUND when the
 * key is absent (err untouched, *out untouched), or STM_EINVAL when the value
 * has another type ("cluster.enabled must be a boolean, got string (line
 * 2)"). stm_toml_get_float also accepts an integer.
 */
int stm_toml_get_string(const struct stm_toml_doc *doc, const char *key,
                        const char **out, struct stm_error *err);
int stm_toml_get_int(const struct stm_toml_doc *doc, const char *key,
                     int64_t *out, struct stm_error *err);
int stm_toml_get_float(const struct stm_toml_doc *doc, const char *key,
                       double *out, struct stm_error *err);
int stm_toml_get_bool(const struct stm_toml_doc *doc, const char *key,
                      bool *out, struct stm_error *err);

/*
 * An array whose items are all strings (an empty array qualifies). *items
 * receives a borrowed vector of *count strings.
 */
int stm_toml_get_string_array(const struct stm_toml_doc *doc, const char *key,
                              const char *const **items, size_t *count,
                              struct stm_error *err);

#endif
