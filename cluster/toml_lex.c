/*
 * The scanner half of the TOML subset parser (toml_lex.h): blanks,
 * comments, newlines, strings and keys. Reads stop at `len`; errors name
 * the line and column where the offending construct starts.
 */
#include "toml_lex.h"
#include "../common/hex.h"
#include "../common/validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int stm__toml_fail_at(struct parser *p, int line, int col, const char *fmt,
                      ...) {
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return stm_error_set(p->err, STM_EINVAL, NULL, "line %d, column %d: %s", line,
                       col, msg);
}

int stm__toml_nomem(struct parser *p) {
  return stm_error_set(p->err, STM_ENOMEM, NULL, "out of memory");
}

/* A printable description of the byte c (or of the end of input). */
const char *stm__toml_describe(int c, char buf[16]) {
  if (c < 0)
    return "end of input";
  if (c == '\n')
    return "end of line";
  if (c > 0x20 && c < 0x7f)
    snprintf(buf, 16, "'%c'", c);
  else
    snprintf(buf, 16, "byte 0x%02x", (unsigned)c);
  return buf;
}

static bool is_control(int c) {
  return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

bool stm__toml_at_newline(const struct parser *p) {
  return peek(p) == '\n' || (peek(p) == '\r' && peek_at(p, 1) == '\n');
}

void stm__toml_eat_newline(struct parser *p) {
  p->pos += peek(p) == '\r' ? 2 : 1;
  p->line++;
  p->line_start = p->pos;
}

void stm__toml_skip_ws(struct parser *p) {
  while (peek(p) == ' ' || peek(p) == '\t')
    p->pos++;
}

int stm__toml_skip_comment(struct parser *p) {
  if (peek(p) != '#')
    return 0;
  for (int c; (c = peek(p)) != -1 && !stm__toml_at_newline(p); p->pos++)
    if (is_control(c))
      return FAIL(p, "control character 0x%02x in a comment", (unsigned)c);
  return 0;
}

/* After a key/value pair or a header: blanks, a comment, then a newline. */
int stm__toml_end_of_line(struct parser *p) {
  stm__toml_skip_ws(p);
  int rc = stm__toml_skip_comment(p);
  if (rc)
    return rc;
  if (peek(p) == -1)
    return 0;
  if (stm__toml_at_newline(p)) {
    stm__toml_eat_newline(p);
    return 0;
  }
  char b[16];
  return FAIL(p, "expected the end of the line, found %s",
              stm__toml_describe(peek(p), b));
}

/* ------------------------------------------------------------------ */
/* strings                                                              */

int stm__toml_put(struct parser *p, struct stm_buf *out, const void *d,
                  size_t n) {
  return stm_buf_append(out, d, n) ? stm__toml_nomem(p) : 0;
}

static int put_utf8(struct parser *p, struct stm_buf *out, uint32_t cp) {
  uint8_t b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = (uint8_t)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (uint8_t)(0xc0 | (cp >> 6));
    b[1] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (uint8_t)(0xe0 | (cp >> 12));
    b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    b[2] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    b[0] = (uint8_t)(0xf0 | (cp >> 18));
    b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 4;
  }
  return stm__toml_put(p, out, b, n);
}

/* \uXXXX or \UXXXXXXXX; p->pos is at the 'u' / 'U'. */
static int parse_unicode_escape(struct parser *p, struct stm_buf *out, int line,
                                int col) {
  size_t digits = peek(p) == 'u' ? 4 : 8;
  uint32_t cp = 0;
  for (size_t i = 1; i <= digits; i++) {
    int h = stm_hex_digit(peek_at(p, i));
    if (h < 0)
      return stm__toml_fail_at(p, line, col, "\\%c needs %zu hex digits",
                               peek(p), digits);
    cp = cp << 4 | (uint32_t)h;
  }
  if (cp == 0)
    return stm__toml_fail_at(p, line, col,
                             "\\u0000 is not supported in strings");
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return stm__toml_fail_at(p, line, col,
                             "escape U+%04X is not a Unicode scalar value",
                             (unsigned)cp);
  p->pos += digits + 1;
  return put_utf8(p, out, cp);
}

/* A backslash escape of a basic string; p->pos is at the backslash. */
static int parse_escape(struct parser *p, struct stm_buf *out) {
  int line = p->line, col = column(p);
  p->pos++;
  int c = peek(p);
  static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
  const char *hit = c > 0 ? strchr(from, c) : NULL;
  if (hit) {
    p->pos++;
    return stm__toml_put(p, out, &to[hit - from], 1);
  }
  if (c == 'u' || c == 'U')
    return parse_unicode_escape(p, out, line, col);
  char b[16];
  return stm__toml_fail_at(p, line, col,
                           "invalid escape sequence: backslash then %s",
                           stm__toml_describe(c, b));
}

/* A line-ending backslash in a multi-line basic string: if the backslash
 * at p->pos ends its line, skip it and all blanks and newlines after it. */
static bool skip_line_ending_backslash(struct parser *p) {
  size_t i = 1;
  while (peek_at(p, i) == ' ' || peek_at(p, i) == '\t')
    i++;
  int c = peek_at(p, i);
  if (c != '\n' && !(c == '\r' && peek_at(p, i + 1) == '\n'))
    return false;
  p->pos += i;
  for (;;) {
    stm__toml_skip_ws(p);
    if (!stm__toml_at_newline(p))
      return true;
    stm__toml_eat_newline(p);
  }
}

/* Content of a multi-line string; p->pos is just past the opening quotes.
 * `q` is the quote character; escapes only when `basic`. */
static int parse_ml_body(struct parser *p, struct stm_buf *out, int q,
                         bool basic, int line, int col) {
  if (stm__toml_at_newline(p))
    stm__toml_eat_newline(p);
  for (;;) {
    int c = peek(p);
    if (c == -1)
      return stm__toml_fail_at(p, line, col, "unterminated multi-line string");
    if (c == q && peek_at(p, 1) == q && peek_at(p, 2) == q) {
      size_t n = 3;
      while (peek_at(p, n) == q)
        n++;
      if (n > 5)
        return FAIL(p, "too many quotes at the end of a multi-line string");
      p->pos += n;
      char extra[2] = {(char)q, (char)q};
      return stm__toml_put(p, out, extra, n - 3);
    }
    int rc = 0;
    if (basic && c == '\\') {
      if (!skip_line_ending_backslash(p))
        rc = parse_escape(p, out);
    } else if (stm__toml_at_newline(p)) {
      stm__toml_eat_newline(p);
      rc = stm__toml_put(p, out, "\n", 1);
    } else if (is_control(c)) {
      return FAIL(p, "control character 0x%02x in a string", (unsigned)c);
    } else {
      char ch = (char)c;
      p->pos++;
      rc = stm__toml_put(p, out, &ch, 1);
    }
    if (rc)
      return rc;
  }
}

/* Content of a one-line string; p->pos is just past the opening quote. */
static int parse_line_body(struct parser *p, struct stm_buf *out, int q,
                           bool basic, int line, int col) {
  for (;;) {
    int c = peek(p);
    if (c == -1 || c == '\n' || (c == '\r' && peek_at(p, 1) == '\n'))
      return stm__toml_fail_at(p, line, col, "unterminated string");
    int rc;
    if (c == q) {
      p->pos++;
      return 0;
    } else if (basic && c == '\\') {
      rc = parse_escape(p, out);
    } else if (is_control(c)) {
      return FAIL(p, "control character 0x%02x in a string%s", (unsigned)c,
                  basic ? " (use an escape)" : "");
    } else {
      char ch = (char)c;
      p->pos++;
      rc = stm__toml_put(p, out, &ch, 1);
    }
    if (rc)
      return rc;
  }
}

/*
 * Any string at p->pos (which is at a quote) into `out` (appended, not
 * NUL-terminated). Multi-line forms only when `allow_ml`.
 */
int stm__toml_parse_string(struct parser *p, struct stm_buf *out,
                           bool allow_ml) {
  int line = p->line, col = column(p), q = peek(p);
  bool basic = q == '"';
  size_t from = out->len;
  int rc;
  if (allow_ml && peek_at(p, 1) == q && peek_at(p, 2) == q) {
    p->pos += 3;
    rc = parse_ml_body(p, out, q, basic, line, col);
  } else {
    p->pos++;
    rc = parse_line_body(p, out, q, basic, line, col);
  }
  /* An empty string may leave out->data NULL, and NULL + 0 is undefined
   * (clang's UBSan stops on it: found by fuzz_toml). */
  if (rc == 0 && out->len > from &&
      !stm_utf8_valid((const char *)out->data + from, out->len - from))
    rc = stm__toml_fail_at(p, line, col, "string is not valid UTF-8");
  return rc;
}

/* Hand the buffer's bytes over as a NUL-terminated string. */
int stm__toml_take_string(struct parser *p, struct stm_buf *b, char **out) {
  if (stm_buf_append(b, "", 1))
    return stm__toml_nomem(p);
  *out = (char *)b->data;
  stm_buf_init(b);
  return 0;
}

/* ------------------------------------------------------------------ */
/* keys                                                                 */

bool stm__toml_is_bare(int c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int parse_key_segment(struct parser *p, struct stm_buf *key) {
  int c = peek(p);
  if (stm__toml_is_bare(c)) {
    size_t start = p->pos;
    while (stm__toml_is_bare(peek(p)))
      p->pos++;
    return stm__toml_put(p, key, p->s + start, p->pos - start);
  }
  char b[16];
  if (c != '"' && c != '\'')
    return FAIL(p, "expected a key, found %s", stm__toml_describe(c, b));
  int line = p->line, col = column(p);
  size_t from = key->len;
  int rc = stm__toml_parse_string(p, key, false);
  if (rc)
    return rc;
  if (key->len == from)
    return stm__toml_fail_at(p, line, col,
                             "empty quoted keys are not supported");
  if (memchr(key->data + from, '.', key->len - from))
    return stm__toml_fail_at(p, line, col,
                             "a quoted key containing '.' is not supported");
  return 0;
}

/* A dotted key, appended to `key` with '.' between segments; consumes the
 * blanks after it. */
int stm__toml_parse_key(struct parser *p, struct stm_buf *key) {
  for (;;) {
    int rc = parse_key_segment(p, key);
    if (rc)
      return rc;
    stm__toml_skip_ws(p);
    if (peek(p) != '.')
      return 0;
    p->pos++;
    stm__toml_skip_ws(p);
    if (stm__toml_put(p, key, ".", 1))
      return STM_ENOMEM;
  }
}
