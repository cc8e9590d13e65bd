/* test_http_parse: the gateway's HTTP/1.1 request-head parser
 * (gateway/http_parse.h), including the issue 10 probes. */
#include "gateway_test.h"

#include "gateway/http_parse.h"

#include <string.h>

#define MAX_HEAD 16384

static enum stm_gw_h1_result parse(const char *text,
                                   struct stm_gw_h1_request *rq) {
  return stm_gw_h1_parse(text, strlen(text), MAX_HEAD, rq);
}

static bool span_eq(struct stm_gw_h1_span s, const char *text) {
  return s.len == strlen(text) && memcmp(s.p, text, s.len) == 0;
}

static void test_h1_parses_a_request_head(void) {
  struct stm_gw_h1_request rq;
  const char *req = "\r\nPOST /v1/sources/fda%3A%2F%2Fx?as_of_sequence=3 "
                    "HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
                    "X-Empty:\r\n\r\n{}";
  CU_ASSERT_EQUAL_FATAL(parse(req, &rq), STM_GW_H1_DONE);
  CU_ASSERT_TRUE(span_eq(rq.method, "POST"));
  CU_ASSERT_TRUE(span_eq(rq.path, "/v1/sources/fda%3A%2F%2Fx")); /* raw */
  CU_ASSERT_TRUE(span_eq(rq.query, "as_of_sequence=3"));
  CU_ASSERT_EQUAL(rq.minor, 1);
  CU_ASSERT_EQUAL(rq.content_length, 2);
  CU_ASSERT_EQUAL(rq.head_len, strlen(req) - 2);
  CU_ASSERT_TRUE(rq.keep_alive);
  CU_ASSERT_PTR_NOT_NULL(stm_gw_h1_header(&rq, "HOST"));
  CU_ASSERT_EQUAL(stm_gw_h1_header(&rq, "x-empty")->len, 0);
  /* Bare LF line ends; HTTP/1.0 needs no Host and closes by default. */
  CU_ASSERT_EQUAL(parse("GET / HTTP/1.0\n\n", &rq), STM_GW_H1_DONE);
  CU_ASSERT_FALSE(rq.keep_alive);
  CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHost: t\r\n", &rq), STM_GW_H1_MORE);
  CU_ASSERT_EQUAL(parse("GE", &rq), STM_GW_H1_MORE);
  /* The absolute form counts by its path. */
  CU_ASSERT_EQUAL(
      parse("GET http://h:1/v1/x?a=1 HTTP/1.1\r\nHost: h\r\n\r\n", &rq),
      STM_GW_H1_DONE);
  CU_ASSERT_TRUE(span_eq(rq.path, "/v1/x"));
  CU_ASSERT_TRUE(span_eq(rq.query, "a=1"));
}

/* What each malformed head is answered with, and which field it names. */
static void test_h1_refuses_malformed_heads(void) {
  static const struct {
    const char *req;
    int status;
    const char *field;
  } cases[] = {
      {"GET /v1/health HTTP/9.9\r\nHost: t\r\n\r\n", 505, ""},
      {"GET /v1/health HTTP/1.1\r\n\r\n", 400, "Host"},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Host"},
      {"\x16\x03\x01\x02\x00", 400, ""}, /* a TLS hello, refused at once */
      {"GET /v1/audit?limit=1%0a&after_sequence=2 HTTP/1.1\r\nHost: t\r\n\r\n",
       400, "limit"},
      {"GET /v1/sources/%00 HTTP/1.1\r\nHost: t\r\n\r\n", 400, "path"},
      {"GET /v1/source?id=%00 HTTP/1.1\r\nHost: t\r\n\r\n", 400, "id"},
      {"GET /v1/sources/%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400, "path"},
      {"GET /v1/source?id=%4 HTTP/1.1\r\nHost: t\r\n\r\n", 400, "id"},
      {"GET /a\x01 HTTP/1.1\r\nHost: t\r\n\r\n", 400, "path"},
      {"GET http://x HTTP/1.1\r\nHost: t\r\n\r\n", 400, "path"},
      {"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400, "path"},
      {"GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400, ""},
      {"GET / HTTP/1.1 x\r\nHost: t\r\n\r\n", 400, ""},
      {"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400, ""},
      {"GET / HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", 400, ""},
      {"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x01\r\n\r\n", 400, "X-A"},
      {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
       "Transfer-Encoding: chunked\r\n\r\n",
       400, "Transfer-Encoding"},
      {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
       "Content-Length: 3\r\n\r\n",
       400, "Content-Length"},
      {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400,
       "Content-Length"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct stm_gw_h1_request rq;
    enum stm_gw_h1_result r = parse(cases[i].req, &rq);
    CU_ASSERT_EQUAL(r, STM_GW_H1_ERROR);
    CU_ASSERT_EQUAL(rq.status, cases[i].status);
    CU_ASSERT_STRING_EQUAL(rq.field, cases[i].field);
    if (r != STM_GW_H1_ERROR || rq.status != cases[i].status ||
        strcmp(rq.field, cases[i].field) != 0)
      fprintf(stderr, "\ncase %zu: result %d status %d field '%s' (%s)\n", i, r,
              rq.status, rq.field, rq.message);
  }
}

static void test_h1_limits_the_head(void) {
  static char big[MAX_HEAD + 100];
  struct stm_gw_h1_request rq;
  memset(big, 'a', sizeof big - 1);
  memcpy(big, "GET /", 5);
  CU_ASSERT_EQUAL(parse(big, &rq), STM_GW_H1_ERROR);
  CU_ASSERT_EQUAL(rq.status, 414);
  memcpy(big, "GET / HTTP/1.1\r\nHost: t\r\nX: ", 28);
  CU_ASSERT_EQUAL(parse(big, &rq), STM_GW_H1_ERROR);
  CU_ASSERT_EQUAL(rq.status, 431);
}

static void test_h1_tokens_and_reasons(void) {
  struct stm_gw_h1_span v = {"keep-alive, Upgrade ,x", 22};
  CU_ASSERT_TRUE(stm_gw_h1_has_token(&v, "upgrade"));
  CU_ASSERT_TRUE(stm_gw_h1_has_token(&v, "x"));
  CU_ASSERT_FALSE(stm_gw_h1_has_token(&v, "close"));
  CU_ASSERT_STRING_EQUAL(stm_gw_h1_reason(201), "Created");
  CU_ASSERT_STRING_EQUAL(stm_gw_h1_reason(499), "Client Closed Request");
  CU_ASSERT_STRING_EQUAL(stm_gw_h1_reason(505), "HTTP Version Not Supported");
}

void gw_test_register_http_parse(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_h1_parses_a_request_head),
      STM_TEST(test_h1_refuses_malformed_heads),
      STM_TEST(test_h1_limits_the_head), STM_TEST(test_h1_tokens_and_reasons),
      STM_TEST_END};
  stm_test_suite("http_parse", cases);
}
