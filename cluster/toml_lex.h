/*
 * toml_lex.h - the scanner half of the TOML subset parser, shared by
 * toml_lex.c (position, blanks, comments, strings, keys) and toml_parse.c
 * (numbers, values, tables, the document). Not for use outside
 * cluster/toml*.c.
 */
#ifndef STM_CLUSTER_TOML_LEX_H
#define STM_CLUSTER_TOML_LEX_H

#include "../common/buf.h"
#include "toml_internal.h"

#include <stdbool.h>
#include <stddef.h>

struct parser {
  const char *s;
  size_t len, pos;
  int line;
  size_t line_start;
  char *table; /* the current [table] name, "" at the root */
  struct stm_toml_doc *doc;
  struct stm_error *err;
};

static inline int peek_at(const struct parser *p, size_t off) {
  return p->pos + off < p->len ? (unsigned char)p->s[p->pos + off] : -1;
}

static inline int peek(const struct parser *p) { return peek_at(p, 0); }

static inline int column(const struct parser *p) {
  return (int)(p->pos - p->line_start) + 1;
}

__attribute__((format(printf, 4, 5))) int
stm__toml_fail_at(struct parser *p, int line, int col, const char *fmt, ...);
#define FAIL(p, ...) stm__toml_fail_at((p), (p)->line, column(p), __VA_ARGS__)

int stm__toml_nomem(struct parser *p);
/* A printable description of the byte c (or of the end of input). */
const char *stm__toml_describe(int c, char buf[16]);

bool stm__toml_at_newline(const struct parser *p);
void stm__toml_eat_newline(struct parser *p);
void stm__toml_skip_ws(struct parser *p);
int stm__toml_skip_comment(struct parser *p);
/* After a key/value pair or a header: blanks, a comment, then a newline. */
int stm__toml_end_of_line(struct parser *p);

int stm__toml_put(struct parser *p, struct stm_buf *out, const void *d,
                  size_t n);
/* Any string at p->pos (which is at a quote) into `out` (appended, not
 * NUL-terminated). Multi-line forms only when `allow_ml`. */
int stm__toml_parse_string(struct parser *p, struct stm_buf *out,
                           bool allow_ml);
/* Hand the buffer's bytes over as a NUL-terminated string. */
int stm__toml_take_string(struct parser *p, struct stm_buf *b, char **out);

bool stm__toml_is_bare(int c);
/* A dotted key, appended to `key` with '.' between segments; consumes the
 * blanks after it. */
int stm__toml_parse_key(struct parser *p, struct stm_buf *key);

#endif
