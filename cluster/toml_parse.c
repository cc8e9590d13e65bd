/*
 * The TOML subset parser: one pass over (text, len) with an explicit
 * position, so no read ever goes past `len`. Every error names the line and
 * column where the offending construct starts. This half reads numbers,
 * values, arrays, tables and the document; the scanner (blanks, comments,
 * strings, keys) is toml_lex.c behind toml_lex.h.
 */
#include "../common/buf.h"
#include "../common/hex.h"
#include "../common/validate.h"
#include "toml_lex.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds the quadratic duplicate-key check; config files have a few dozen. */
#define MAX_KEYS 10000
/* Longest number token we convert (digits, sign, separators, exponent). */
#define MAX_NUMBER 80

/* ------------------------------------------------------------------ */
/* numbers and keywords                                                 */

static bool is_token_char(int c) {
  return stm__toml_is_bare(c) || c == '+' || c == '.' || c == ':';
}

static bool is_digit_of(int c, int base) {
  if (base == 16)
    return stm_hex_digit(c) >= 0;
  return c >= '0' && c < '0' + (base < 10 ? base : 10);
}

/* Copy digits dropping '_', each of which must sit between two digits. */
static bool strip_underscores(const char *t, size_t n, int base, char *out) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (t[i] != '_') {
      out[k++] = t[i];
      continue;
    }
    if (i == 0 || i + 1 == n || !is_digit_of(t[i - 1], base) ||
        !is_digit_of(t[i + 1], base))
      return false;
  }
  out[k] = '\0';
  return true;
}

static int parse_radix_int(struct parser *p, const char *t, size_t n,
                           struct stm__toml_value *v, int line, int col) {
  int base = t[1] == 'x' ? 16 : t[1] == 'o' ? 8 : 2;
  char digits[MAX_NUMBER];
  if (n == 2 || !strip_underscores(t + 2, n - 2, base, digits))
    return stm__toml_fail_at(p, line, col, "invalid integer '%.*s'", (int)n, t);
  for (const char *d = digits; *d; d++)
    if (!is_digit_of(*d, base))
      return stm__toml_fail_at(p, line, col, "invalid integer '%.*s'", (int)n,
                               t);
  errno = 0;
  long long x = strtoll(digits, NULL, base);
  if (errno == ERANGE)
    return stm__toml_fail_at(p, line, col, "integer '%.*s' is out of range",
                             (int)n, t);
  v->type = STM_TOML_INT;
  v->u.i = x;
  return 0;
}

/* Checks the decimal grammar: [+-] (0 | [1-9][0-9]*) [. digits] [e [+-]
 * digits]. Sets *is_float when a fraction or exponent is present. */
static bool decimal_ok(const char *d, bool *is_float) {
  size_t i = (d[0] == '+' || d[0] == '-') ? 1 : 0;
  if (!is_digit_of(d[i], 10) || (d[i] == '0' && is_digit_of(d[i + 1], 10)))
    return false;
  while (is_digit_of(d[i], 10))
    i++;
  *is_float = false;
  if (d[i] == '.') {
    if (!is_digit_of(d[++i], 10))
      return false;
    while (is_digit_of(d[i], 10))
      i++;
    *is_float = true;
  }
  if (d[i] == 'e' || d[i] == 'E') {
    i++;
    if (d[i] == '+' || d[i] == '-')
      i++;
    if (!is_digit_of(d[i], 10))
      return false;
    while (is_digit_of(d[i], 10))
      i++;
    *is_float = true;
  }
  return d[i] == '\0';
}

static bool is_special_float(const char *t, size_t n, double *out) {
  size_t s = (n > 0 && (t[0] == '+' || t[0] == '-')) ? 1 : 0;
  if (n - s != 3)
    return false;
  if (memcmp(t + s, "inf", 3) == 0)
    *out = (t[0] == '-') ? -INFINITY : INFINITY;
  else if (memcmp(t + s, "nan", 3) == 0)
    *out = NAN;
  else
    return false;
  return true;
}

static bool looks_like_date(const char *t, size_t n) {
  if (memchr(t, ':', n))
    return true;
  return n >= 5 && is_digit_of(t[0], 10) && is_digit_of(t[3], 10) &&
         t[4] == '-';
}

static int parse_number(struct parser *p, const char *t, size_t n,
                        struct stm__toml_value *v, int line, int col) {
  if (is_special_float(t, n, &v->u.f)) {
    v->type = STM_TOML_FLOAT;
    return 0;
  }
  if (looks_like_date(t, n))
    return stm__toml_fail_at(p, line, col, "dates and times are not supported");
  if (n >= MAX_NUMBER)
    return stm__toml_fail_at(p, line, col, "number is too long");
  if (n >= 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'o' || t[1] == 'b'))
    return parse_radix_int(p, t, n, v, line, col);
  char d[MAX_NUMBER];
  bool is_float;
  if (!strip_underscores(t, n, 10, d) || !decimal_ok(d, &is_float)) {
    bool word = n > 0 && !is_digit_of(t[0], 10) && t[0] != '+' && t[0] != '-';
    return stm__toml_fail_at(p, line, col, "invalid value '%.*s'%s",
                             (int)(n > 40 ? 40 : n), t,
                             word ? " (strings must be quoted)" : "");
  }
  errno = 0;
  if (is_float) {
    v->u.f = strtod(d, NULL);
    if (errno == ERANGE && isinf(v->u.f))
      return stm__toml_fail_at(p, line, col, "float '%.*s' is out of range",
                               (int)n, t);
    v->type = STM_TOML_FLOAT;
    return 0;
  }
  v->u.i = strtoll(d, NULL, 10);
  if (errno == ERANGE)
    return stm__toml_fail_at(p, line, col, "integer '%.*s' is out of range",
                             (int)n, t);
  v->type = STM_TOML_INT;
  return 0;
}

static int parse_scalar_token(struct parser *p, struct stm__toml_value *v) {
  int line = p->line, col = column(p);
  size_t start = p->pos;
  while (is_token_char(peek(p)))
    p->pos++;
  const char *t = p->s + start;
  size_t n = p->pos - start;
  char b[16];
  if (n == 0)
    return FAIL(p, "expected a value, found %s",
                stm__toml_describe(peek(p), b));
  if ((n == 4 && memcmp(t, "true", 4) == 0) ||
      (n == 5 && memcmp(t, "false", 5) == 0)) {
    v->type = STM_TOML_BOOL;
    v->u.b = n == 4;
    return 0;
  }
  return parse_number(p, t, n, v, line, col);
}

/* ------------------------------------------------------------------ */
/* values and arrays                                                    */

static int parse_value(struct parser *p, struct stm__toml_value *v,
                       bool in_array);

/* Blanks, comments and newlines between array items. */
static int skip_array_space(struct parser *p) {
  for (;;) {
    stm__toml_skip_ws(p);
    int rc = stm__toml_skip_comment(p);
    if (rc)
      return rc;
    if (!stm__toml_at_newline(p))
      return 0;
    stm__toml_eat_newline(p);
  }
}

static int finish_array(struct parser *p, struct stm__toml_value *v) {
  v->u.arr.all_strings = true;
  for (size_t i = 0; i < v->u.arr.n; i++)
    if (v->u.arr.items[i].type != STM_TOML_STRING)
      v->u.arr.all_strings = false;
  if (!v->u.arr.all_strings || v->u.arr.n == 0)
    return 0;
  v->u.arr.strs = malloc(v->u.arr.n * sizeof *v->u.arr.strs);
  if (v->u.arr.strs == NULL)
    return stm__toml_nomem(p);
  for (size_t i = 0; i < v->u.arr.n; i++)
    v->u.arr.strs[i] = v->u.arr.items[i].u.s;
  return 0;
}

static int push_item(struct parser *p, struct stm__toml_value *v, size_t *cap) {
  if (v->u.arr.n < *cap)
    return 0;
  size_t ncap = *cap ? *cap * 2 : 4;
  void *grown = realloc(v->u.arr.items, ncap * sizeof *v->u.arr.items);
  if (grown == NULL)
    return stm__toml_nomem(p);
  v->u.arr.items = grown;
  *cap = ncap;
  return 0;
}

/* The array loop; on error the caller frees the items parsed so far. */
static int parse_array_items(struct parser *p, struct stm__toml_value *v,
                             int line, int col) {
  size_t cap = 0;
  char b[16];
  for (;;) {
    int rc = skip_array_space(p);
    if (rc)
      return rc;
    if (peek(p) == ']')
      break;
    if (peek(p) == -1)
      return stm__toml_fail_at(p, line, col, "unterminated array");
    if ((rc = push_item(p, v, &cap)) ||
        (rc = parse_value(p, &v->u.arr.items[v->u.arr.n], true)))
      return rc;
    v->u.arr.n++;
    if ((rc = skip_array_space(p)))
      return rc;
    if (peek(p) == ',') {
      p->pos++;
      continue;
    }
    if (peek(p) == ']')
      break;
    if (peek(p) == -1)
      return stm__toml_fail_at(p, line, col, "unterminated array");
    return FAIL(p, "expected ',' or ']' in an array, found %s",
                stm__toml_describe(peek(p), b));
  }
  p->pos++;
  return finish_array(p, v);
}

static int parse_array(struct parser *p, struct stm__toml_value *v) {
  int line = p->line, col = column(p);
  p->pos++;
  memset(v, 0, sizeof *v);
  v->type = STM_TOML_ARRAY;
  int rc = parse_array_items(p, v, line, col);
  if (rc)
    stm__toml_value_free(v);
  return rc;
}

static int parse_string_value(struct parser *p, struct stm__toml_value *v) {
  struct stm_buf b;
  stm_buf_init(&b);
  int rc = stm__toml_parse_string(p, &b, true);
  if (rc == 0)
    rc = stm__toml_take_string(p, &b, &v->u.s);
  stm_buf_destroy(&b);
  if (rc == 0)
    v->type = STM_TOML_STRING;
  return rc;
}

static int parse_value(struct parser *p, struct stm__toml_value *v,
                       bool in_array) {
  memset(v, 0, sizeof *v);
  v->type = STM_TOML_INT;
  switch (peek(p)) {
  case '"':
  case '\'':
    return parse_string_value(p, v);
  case '[':
    if (in_array)
      return FAIL(p, "nested arrays are not supported");
    return parse_array(p, v);
  case '{':
    return FAIL(p, "inline tables are not supported; use a [table]");
  default:
    return parse_scalar_token(p, v);
  }
}

/* ------------------------------------------------------------------ */
/* the document                                                         */

/* True when a and b name the same key or one is a table holding the other. */
static bool clash(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b), m = la < lb ? la : lb;
  if (strncmp(a, b, m) != 0)
    return false;
  return la == lb || (la < lb ? b[la] : a[lb]) == '.';
}

static int check_new_key(struct parser *p, const char *key, int line, int col) {
  const struct stm_toml_doc *d = p->doc;
  for (size_t i = 0; i < d->n; i++) {
    const struct stm__toml_entry *e = &d->entries[i];
    if (strcmp(e->key, key) == 0)
      return stm__toml_fail_at(p, line, col,
                               "duplicate key %s (first set on line %d)", key,
                               e->info.line);
    if (clash(e->key, key))
      return stm__toml_fail_at(p, line, col,
                               "key %s conflicts with %s (line %d)", key,
                               e->key, e->info.line);
  }
  for (size_t i = 0; i < d->ntables; i++) {
    const struct stm__toml_table *t = &d->tables[i];
    if (clash(t->name, key) && strlen(t->name) >= strlen(key))
      return stm__toml_fail_at(p, line, col,
                               "key %s conflicts with table [%s] (line %d)",
                               key, t->name, t->line);
  }
  if (d->n >= MAX_KEYS)
    return stm__toml_fail_at(p, line, col, "too many keys (more than %d)",
                             MAX_KEYS);
  return 0;
}

static int add_entry(struct parser *p, char *key, struct stm__toml_value *v,
                     int line, int col) {
  struct stm_toml_doc *d = p->doc;
  if (d->n == d->cap) {
    size_t ncap = d->cap ? d->cap * 2 : 16;
    void *grown = realloc(d->entries, ncap * sizeof *d->entries);
    if (grown == NULL)
      return stm__toml_nomem(p);
    d->entries = grown;
    d->cap = ncap;
  }
  struct stm__toml_entry *e = &d->entries[d->n++];
  e->key = key;
  e->v = *v;
  e->info = (struct stm_toml_item){key, v->type, line, col};
  return 0;
}

static int parse_keyval(struct parser *p) {
  int line = p->line, col = column(p), rc = 0;
  struct stm_buf kb;
  stm_buf_init(&kb);
  char *key = NULL;
  if (p->table[0] && (stm__toml_put(p, &kb, p->table, strlen(p->table)) ||
                      stm__toml_put(p, &kb, ".", 1)))
    rc = STM_ENOMEM;
  if (rc == 0 && (rc = stm__toml_parse_key(p, &kb)) == 0 &&
      (rc = stm__toml_take_string(p, &kb, &key)) == 0 && peek(p) != '=') {
    char b[16];
    rc = FAIL(p, "expected '=' after the key %s, found %s", key,
              stm__toml_describe(peek(p), b));
  }
  stm_buf_destroy(&kb);
  if (rc == 0)
    rc = check_new_key(p, key, line, col);
  if (rc) {
    free(key);
    return rc;
  }
  p->pos++;
  stm__toml_skip_ws(p);
  struct stm__toml_value v;
  if ((rc = parse_value(p, &v, false)) == 0 &&
      (rc = add_entry(p, key, &v, line, col)) != 0)
    stm__toml_value_free(&v);
  if (rc) {
    free(key);
    return rc;
  }
  return stm__toml_end_of_line(p);
}

static int check_new_table(struct parser *p, const char *name, int line,
                           int col) {
  const struct stm_toml_doc *d = p->doc;
  for (size_t i = 0; i < d->ntables; i++)
    if (strcmp(d->tables[i].name, name) == 0)
      return stm__toml_fail_at(p, line, col,
                               "table [%s] defined twice (first on line %d)",
                               name, d->tables[i].line);
  for (size_t i = 0; i < d->n; i++) {
    const struct stm__toml_entry *e = &d->entries[i];
    if (clash(e->key, name) && strlen(e->key) <= strlen(name))
      return stm__toml_fail_at(p, line, col,
                               "table [%s] conflicts with key %s (line %d)",
                               name, e->key, e->info.line);
  }
  return 0;
}

static int add_table(struct parser *p, char *name, int line) {
  struct stm_toml_doc *d = p->doc;
  if (d->ntables == d->tcap) {
    size_t ncap = d->tcap ? d->tcap * 2 : 8;
    void *grown = realloc(d->tables, ncap * sizeof *d->tables);
    if (grown == NULL)
      return stm__toml_nomem(p);
    d->tables = grown;
    d->tcap = ncap;
  }
  d->tables[d->ntables++] = (struct stm__toml_table){name, line};
  p->table = name;
  return 0;
}

static int parse_table_header(struct parser *p) {
  int line = p->line, col = column(p);
  p->pos++;
  if (peek(p) == '[')
    return FAIL(p, "arrays of tables ([[...]]) are not supported");
  stm__toml_skip_ws(p);
  struct stm_buf kb;
  stm_buf_init(&kb);
  char *name = NULL;
  int rc = stm__toml_parse_key(p, &kb);
  if (rc == 0 && peek(p) != ']') {
    char b[16];
    rc = FAIL(p, "expected ']' after the table name, found %s",
              stm__toml_describe(peek(p), b));
  }
  if (rc == 0 && (rc = stm__toml_take_string(p, &kb, &name)) == 0 &&
      (rc = check_new_table(p, name, line, col)) == 0)
    rc = add_table(p, name, line);
  stm_buf_destroy(&kb);
  if (rc) {
    free(name);
    return rc;
  }
  p->pos++;
  return stm__toml_end_of_line(p);
}

/* Length of the UTF-8 sequence a lead byte announces (0: invalid lead). */
static size_t utf8_seq_len(unsigned char c) {
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    return 2;
  if (c >= 0xe0 && c <= 0xef)
    return 3;
  if (c >= 0xf0 && c <= 0xf4)
    return 4;
  return 0;
}

/* TOML documents are UTF-8; find the first bad byte for the message. */
static int check_utf8(struct parser *p) {
  int line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < p->len;) {
    unsigned char c = (unsigned char)p->s[i];
    if (c == '\n') {
      line++;
      line_start = ++i;
      continue;
    }
    size_t n = utf8_seq_len(c);
    if (n == 0 || n > p->len - i || !stm_utf8_valid(p->s + i, n))
      return stm__toml_fail_at(p, line, (int)(i - line_start) + 1,
                               "the file is not valid UTF-8");
    i += n;
  }
  return 0;
}

static int parse_document(struct parser *p) {
  int rc = check_utf8(p);
  while (rc == 0) {
    stm__toml_skip_ws(p);
    int c = peek(p);
    if (c == -1)
      break;
    if (c == '[')
      rc = parse_table_header(p);
    else if (c == '#' || c == '\n' || c == '\r')
      rc = stm__toml_end_of_line(p);
    else
      rc = parse_keyval(p);
  }
  return rc;
}

int stm_toml_parse(const char *text, size_t len, struct stm_toml_doc **out,
                   struct stm_error *err) {
  *out = NULL;
  struct stm_toml_doc *doc = calloc(1, sizeof *doc);
  if (doc == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  struct parser p = {.s = text ? text : "",
                     .len = text ? len : 0,
                     .line = 1,
                     .table = "",
                     .doc = doc,
                     .err = err};
  int rc = parse_document(&p);
  if (rc) {
    stm_toml_delete(doc);
    return rc;
  }
  *out = doc;
  return 0;
}
