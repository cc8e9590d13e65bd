/*
 * http_parse.h - the gateway's own, strict HTTP/1.1 request-head parser
 * (RFC 9112), and the small helpers around it (reason phrases, header
 * lookup, percent-escapes).
 *
 * Why our own: libwebsockets 4.1 parses request heads leniently and
 * percent-decodes while it parses, so "%0a" ends a request line early,
 * "%00" truncates a path, HTTP/9.9 is accepted, and malformed requests get
 * its 403 HTML page. The gateway now reads raw bytes (http.c) and this
 * parser decides, so every fault gets our JSON error naming what is wrong.
 *
 * Nothing is decoded here: the path and query stay as sent (routes decode
 * each value exactly once), but every percent-escape is checked and a
 * decoded control character (0x00-0x1F, 0x7F) anywhere in the target is
 * refused, naming the query parameter or "path".
 *
 * Pure functions; thread-safe.
 */
#ifndef STM_GW_HTTP_PARSE_H
#define STM_GW_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define STM_GW_H1_MAX_HEADERS 100

struct stm_gw_h1_span {
  const char *p;
  size_t len;
};

struct stm_gw_h1_header {
  struct stm_gw_h1_span name, value;
};

struct stm_gw_h1_request {
  struct stm_gw_h1_span method, target, path, query; /* query: after '?' */
  int minor;       /* HTTP/1.<minor>: 0 or 1 */
  size_t head_len; /* request line + headers + blank line, in bytes */
  struct stm_gw_h1_header headers[STM_GW_H1_MAX_HEADERS];
  size_t n_headers;
  long long content_length; /* -1: no Content-Length */
  bool transfer_encoding;   /* a Transfer-Encoding header is present */
  bool chunked;             /* ... and it names chunked */
  bool keep_alive;          /* the connection may serve another request */
  /* When the result is STM_GW_H1_ERROR: */
  int status;        /* 400, 414, 431, 505 */
  char message[200]; /* for the JSON error */
  char field[64];    /* what the message is about ("path", "Host"); or "" */
};

enum stm_gw_h1_result {
  STM_GW_H1_MORE,  /* the head is incomplete (and nothing is wrong yet) */
  STM_GW_H1_DONE,  /* a valid head of rq->head_len bytes */
  STM_GW_H1_ERROR, /* refuse with rq->status and close the connection */
};

/*
 * Parse the request head at the start of buf[0..len). Leading empty lines
 * are skipped (RFC 9112, 2.2); lines may end in CRLF or a bare LF. A head
 * longer than max_head bytes is refused (414 while the request line is
 * unfinished, else 431). Obviously bad input (a method with characters no
 * method has, e.g. a TLS handshake) is refused before the head is complete.
 */
enum stm_gw_h1_result stm_gw_h1_parse(const char *buf, size_t len,
                                      size_t max_head,
                                      struct stm_gw_h1_request *rq);

/* The first header named `name` (any case), or NULL. */
const struct stm_gw_h1_span *
stm_gw_h1_header(const struct stm_gw_h1_request *rq, const char *name);

/* Does a comma-separated header value hold `token` (any case)? */
bool stm_gw_h1_has_token(const struct stm_gw_h1_span *value, const char *token);

/* "Created" for 201 ...; "" for a code we do not name. */
const char *stm_gw_h1_reason(int status);

#endif
