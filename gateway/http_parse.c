#include "gateway/http_parse.h"

#include "common/hex.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define METHOD_MAX 16

/* RFC 9110 tchar: what a method or a header name is made of. */
static bool is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

static enum stm_gw_h1_result fail(struct stm_gw_h1_request *rq, int status,
                                  const char *field, const char *fmt,
                                  const char *arg) {
  rq->status = status;
  snprintf(rq->field, sizeof rq->field, "%s", field ? field : "");
  snprintf(rq->message, sizeof rq->message, fmt, arg);
  return STM_GW_H1_ERROR;
}

/* End of the line starting at p (the '\n'), or NULL. */
static const char *line_end(const char *p, const char *end) {
  return memchr(p, '\n', (size_t)(end - p));
}

/* Length without a trailing '\r'. */
static size_t trim_cr(const char *p, const char *nl) {
  size_t n = (size_t)(nl - p);
  return n && p[n - 1] == '\r' ? n - 1 : n;
}

/*
 * Check one piece of the target: escapes well formed, no control
 * character once decoded. `what` names it in the message. Returns false
 * (rq filled) on a fault.
 */
static bool check_escapes(struct stm_gw_h1_request *rq, const char *p, size_t n,
                          const char *field, const char *what) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] != '%')
      continue;
    int hi = i + 2 < n ? stm_hex_digit(p[i + 1]) : -1;
    int lo = i + 2 < n ? stm_hex_digit(p[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      fail(rq, 400, field,
           "%s has a malformed percent-escape (a %% must be "
           "followed by two hex digits)",
           what);
      return false;
    }
    if (is_ctl((unsigned char)(hi * 16 + lo))) {
      fail(rq, 400, field,
           "%s contains a control character (%%00-%%1F and "
           "%%7F are not allowed)",
           what);
      return false;
    }
    i += 2;
  }
  return true;
}

/* Path, then each query parameter, named by its (raw) name. */
static bool check_target(struct stm_gw_h1_request *rq) {
  if (!check_escapes(rq, rq->path.p, rq->path.len, "path", "the path"))
    return false;
  const char *q = rq->query.p, *end = q + rq->query.len;
  while (q && q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *pe = amp ? amp : end;
    const char *eq = memchr(q, '=', (size_t)(pe - q));
    size_t name_len = (size_t)((eq ? eq : pe) - q);
    char name[48];
    snprintf(name, sizeof name, "%.*s", (int)(name_len < 40 ? name_len : 40),
             q);
    if (strchr(name, '%'))
      snprintf(name, sizeof name, "query");
    char what[64];
    snprintf(what, sizeof what, "query parameter %s", name);
    if (!check_escapes(rq, q, (size_t)(pe - q), name, what))
      return false;
    q = amp ? amp + 1 : NULL;
  }
  return true;
}

/* "GET /path HTTP/1.1" (already without its line end). */
static enum stm_gw_h1_result parse_request_line(struct stm_gw_h1_request *rq,
                                                const char *p, size_t n) {
  const char *end = p + n;
  const char *sp1 = memchr(p, ' ', n);
  if (sp1 == NULL || sp1 == p)
    return fail(rq, 400, NULL, "%s", "malformed request line");
  const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
  if (sp2 == NULL || sp2 == sp1 + 1 ||
      memchr(sp2 + 1, ' ', (size_t)(end - sp2 - 1)))
    return fail(rq, 400, NULL, "%s",
                "malformed request line (expected METHOD SP target SP "
                "HTTP-version)");
  rq->method = (struct stm_gw_h1_span){p, (size_t)(sp1 - p)};
  rq->target = (struct stm_gw_h1_span){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
  const char *v = sp2 + 1;
  size_t vlen = (size_t)(end - v);
  if (vlen == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1'))
    rq->minor = v[7] - '0';
  else if (vlen == 8 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' &&
           v[5] <= '9' && v[6] == '.' && v[7] >= '0' && v[7] <= '9')
    return fail(rq, 505, NULL, "%s",
                "this HTTP version is not supported; send HTTP/1.1");
  else
    return fail(rq, 400, NULL, "%s",
                "malformed HTTP version in the request line");
  for (size_t i = 0; i < rq->target.len; i++)
    if (is_ctl((unsigned char)rq->target.p[i]) ||
        (unsigned char)rq->target.p[i] >= 0x80 || rq->target.p[i] == '#')
      return fail(rq, 400, "path", "%s",
                  "the request target contains a character that must be "
                  "percent-encoded");
  /* The absolute form (RFC 9112, 3.2.2) must be accepted too: its path
   * is what counts. */
  const char *t = rq->target.p, *tend = t + rq->target.len;
  size_t scheme = rq->target.len > 7 && strncasecmp(t, "http://", 7) == 0 ? 7
                  : rq->target.len > 8 && strncasecmp(t, "https://", 8) == 0
                      ? 8
                      : 0;
  if (scheme) {
    const char *slash = memchr(t + scheme, '/', (size_t)(tend - t - scheme));
    const char *q = memchr(t + scheme, '?', (size_t)(tend - t - scheme));
    if (slash == NULL || (q && q < slash))
      return fail(rq, 400, "path", "%s",
                  "the request target has no path after its authority");
    t = slash;
  }
  if (t[0] != '/')
    return fail(rq, 400, "path", "%s", "the request target must start with /");
  const char *qm = memchr(t, '?', (size_t)(tend - t));
  rq->path =
      (struct stm_gw_h1_span){t, qm ? (size_t)(qm - t) : (size_t)(tend - t)};
  rq->query = qm ? (struct stm_gw_h1_span){qm + 1, (size_t)(sp2 - qm - 1)}
                 : (struct stm_gw_h1_span){sp2, 0};
  return check_target(rq) ? STM_GW_H1_DONE : STM_GW_H1_ERROR;
}

static enum stm_gw_h1_result parse_header(struct stm_gw_h1_request *rq,
                                          const char *p, size_t n) {
  if (p[0] == ' ' || p[0] == '\t')
    return fail(rq, 400, NULL, "%s",
                "obsolete header line folding is not accepted");
  const char *colon = memchr(p, ':', n);
  if (colon == NULL || colon == p)
    return fail(rq, 400, NULL, "%s", "malformed header line (no name: value)");
  char name[64];
  size_t nlen = (size_t)(colon - p);
  snprintf(name, sizeof name, "%.*s", (int)(nlen < 60 ? nlen : 60), p);
  for (size_t i = 0; i < nlen; i++)
    if (!is_tchar((unsigned char)p[i]))
      return fail(rq, 400, NULL, "%s",
                  "malformed header name (no spaces before the colon)");
  const char *v = colon + 1, *end = p + n;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  for (const char *c = v; c < end; c++)
    if (is_ctl((unsigned char)*c) && *c != '\t')
      return fail(rq, 400, name, "header %s contains a control character",
                  name);
  if (rq->n_headers == STM_GW_H1_MAX_HEADERS)
    return fail(rq, 431, NULL, "%s", "too many header fields");
  rq->headers[rq->n_headers++] =
      (struct stm_gw_h1_header){{p, nlen}, {v, (size_t)(end - v)}};
  return STM_GW_H1_DONE;
}

static bool span_is(const struct stm_gw_h1_span *s, const char *text) {
  return s->len == strlen(text) && strncasecmp(s->p, text, s->len) == 0;
}

/* Framing and Host, once every header is in (RFC 9112, 3.2 and 6). */
static enum stm_gw_h1_result check_semantics(struct stm_gw_h1_request *rq) {
  size_t hosts = 0;
  rq->content_length = -1;
  for (size_t i = 0; i < rq->n_headers; i++) {
    const struct stm_gw_h1_header *h = &rq->headers[i];
    if (span_is(&h->name, "host")) {
      hosts++;
    } else if (span_is(&h->name, "transfer-encoding")) {
      rq->transfer_encoding = true;
      rq->chunked = rq->chunked || stm_gw_h1_has_token(&h->value, "chunked");
    } else if (span_is(&h->name, "content-length")) {
      long long n = 0;
      if (h->value.len == 0 || h->value.len > 15)
        return fail(rq, 400, "Content-Length", "%s",
                    "Content-Length is malformed");
      for (size_t k = 0; k < h->value.len; k++) {
        if (h->value.p[k] < '0' || h->value.p[k] > '9')
          return fail(rq, 400, "Content-Length", "%s",
                      "Content-Length is malformed");
        n = n * 10 + (h->value.p[k] - '0');
      }
      if (rq->content_length >= 0 && rq->content_length != n)
        return fail(rq, 400, "Content-Length", "%s",
                    "conflicting Content-Length headers");
      rq->content_length = n;
    }
  }
  if (rq->minor == 1 && hosts != 1)
    return fail(rq, 400, "Host", "%s",
                hosts ? "more than one Host header"
                      : "an HTTP/1.1 request needs a Host header");
  if (rq->transfer_encoding && rq->content_length >= 0)
    return fail(rq, 400, "Transfer-Encoding", "%s",
                "Content-Length together with Transfer-Encoding is not "
                "accepted (RFC 9112, 6.1)");
  const struct stm_gw_h1_span *conn = stm_gw_h1_header(rq, "connection");
  rq->keep_alive = rq->minor == 1
                       ? !(conn && stm_gw_h1_has_token(conn, "close"))
                       : conn && stm_gw_h1_has_token(conn, "keep-alive");
  return STM_GW_H1_DONE;
}

/* While the method is still arriving: refuse bytes no method has. */
static bool method_so_far_ok(const char *p, const char *end) {
  size_t i = 0;
  for (; p + i < end && p[i] != ' '; i++)
    if (!is_tchar((unsigned char)p[i]) || i >= METHOD_MAX)
      return false;
  return true;
}

/* 431 naming the limit and the gateway flag that sets it. */
static enum stm_gw_h1_result too_large(struct stm_gw_h1_request *rq,
                                       size_t max_head) {
  char msg[96];
  snprintf(msg, sizeof msg,
           "the request headers are larger than %zu bytes (--max-header-bytes)",
           max_head);
  return fail(rq, 431, NULL, "%s", msg);
}

enum stm_gw_h1_result stm_gw_h1_parse(const char *buf, size_t len,
                                      size_t max_head,
                                      struct stm_gw_h1_request *rq) {
  memset(rq, 0, sizeof *rq);
  const char *p = buf, *end = buf + len;
  while (p < end && (*p == '\r' || *p == '\n'))
    p++;
  if (!method_so_far_ok(p, end))
    return fail(rq, 400, NULL, "%s", "this is not an HTTP/1.1 request");
  const char *nl = line_end(p, end);
  if (nl == NULL)
    return len >= max_head
               ? fail(rq, 414, "path", "%s", "the request line is too long")
               : STM_GW_H1_MORE;
  enum stm_gw_h1_result r = parse_request_line(rq, p, trim_cr(p, nl));
  for (p = nl + 1; r == STM_GW_H1_DONE;) {
    nl = line_end(p, end);
    if (nl == NULL)
      return len >= max_head ? too_large(rq, max_head) : STM_GW_H1_MORE;
    size_t n = trim_cr(p, nl);
    if (n == 0) {
      rq->head_len = (size_t)(nl + 1 - buf);
      if (rq->head_len > max_head)
        return too_large(rq, max_head);
      return check_semantics(rq);
    }
    r = parse_header(rq, p, n);
    p = nl + 1;
  }
  return r;
}

const struct stm_gw_h1_span *
stm_gw_h1_header(const struct stm_gw_h1_request *rq, const char *name) {
  for (size_t i = 0; i < rq->n_headers; i++)
    if (span_is(&rq->headers[i].name, name))
      return &rq->headers[i].value;
  return NULL;
}

bool stm_gw_h1_has_token(const struct stm_gw_h1_span *value,
                         const char *token) {
  const char *p = value->p, *end = p + value->len;
  size_t tl = strlen(token);
  while (p < end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *e = comma ? comma : end;
    while (p < e && (*p == ' ' || *p == '\t'))
      p++;
    const char *t = e;
    while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
      t--;
    if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0)
      return true;
    p = comma ? comma + 1 : end;
  }
  return false;
}

const char *stm_gw_h1_reason(int status) {
  static const struct {
    int code;
    const char *text;
  } reasons[] = {
      {100, "Continue"},
      {101, "Switching Protocols"},
      {200, "OK"},
      {201, "Created"},
      {204, "No Content"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {409, "Conflict"},
      {411, "Length Required"},
      {413, "Content Too Large"},
      {414, "URI Too Long"},
      {415, "Unsupported Media Type"},
      {426, "Upgrade Required"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {499, "Client Closed Request"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
      {505, "HTTP Version Not Supported"},
  };
  for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
    if (reasons[i].code == status)
      return reasons[i].text;
  return "";
}
