/* Tests for service/lens.c and service/convert.c: hand-computed cases. */
#include "harness.h"
#include "service/convert.h"
#include "service/lens.h"

#include <math.h>
#include <string.h>

static void make(struct stm_claim *c, const char *value, int64_t ts,
                 uint8_t hash0) {
  stm_claim_init(c);
  c->value.kind = STM_VALUE_STRING;
  c->value.str = (char *)value;
  c->value.str_len = strlen(value);
  c->timestamp_ns = ts;
  memset(c->hash, 0, sizeof c->hash);
  c->hash[0] = hash0;
}

static void test_lens_parse_knows_every_lens_and_rejects_others(void) {
  const char *names[] = {"recency", "consensus", "confidence", "vote",
                         "authority", "epoch", "skeptic", "layered"};
  for (size_t i = 0; i < 8; i++) {
    enum stm_lens l;
    CU_ASSERT_EQUAL(stm_lens_parse(names[i], &l, NULL), 0);
    CU_ASSERT_STRING_EQUAL(stm_lens_name(l), names[i]);
  }
  struct stm_error err;
  enum stm_lens l;
  CU_ASSERT_EQUAL(stm_lens_parse("magic", &l, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "lens");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "magic"));
}

static void test_recency_picks_the_latest_timestamp(void) {
  struct stm_claim c[3];
  make(&c[0], "old", 100, 9);
  make(&c[1], "new", 300, 1);
  make(&c[2], "mid", 200, 5);
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(stm_lens_resolve(STM_LENS_RECENCY, c, 3, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 1);
  CU_ASSERT_EQUAL(r.candidates, 3);
  CU_ASSERT_DOUBLE_EQUAL(r.confidence, 1.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(r.conflict_score, 0.0, 1e-12);
}

static void test_recency_tie_goes_to_the_larger_hash(void) {
  struct stm_claim c[3];
  make(&c[0], "a", 7, 0x10);
  make(&c[1], "b", 7, 0xf0);
  make(&c[2], "c", 7, 0x80);
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(stm_lens_resolve(STM_LENS_RECENCY, c, 3, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 1);
  /* Order of the input does not matter: same claims, same winner. */
  struct stm_claim d[3] = {c[2], c[1], c[0]};
  CU_ASSERT_EQUAL(stm_lens_resolve(STM_LENS_RECENCY, d, 3, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 1);
}

static void test_recency_uses_commit_time_when_no_timestamp_stated(void) {
  struct stm_claim c[2];
  make(&c[0], "stated", 500, 1);
  make(&c[1], "unstated", 0, 2);
  c[1].commit_time_ns = 900;
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(stm_lens_resolve(STM_LENS_RECENCY, c, 2, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 1);
}

static void test_resolve_rejects_empty_input(void) {
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(stm_lens_resolve(STM_LENS_RECENCY, NULL, 0, &r), STM_EINVAL);
}

static void test_default_tier_follows_the_uri_scheme(void) {
  CU_ASSERT_EQUAL(stm_lens_default_tier("fda://label"), 0);
  CU_ASSERT_EQUAL(stm_lens_default_tier("rfc://9110"), 0);
  CU_ASSERT_EQUAL(stm_lens_default_tier("pubmed://1"), 1);
  CU_ASSERT_EQUAL(stm_lens_default_tier("wiki://x"), 3);
  CU_ASSERT_EQUAL(stm_lens_default_tier("community://x"), 4);
  CU_ASSERT_EQUAL(stm_lens_default_tier("blog://x"), 5);
  CU_ASSERT_EQUAL(stm_lens_default_tier(""), 5);
  CU_ASSERT_EQUAL(stm_lens_default_tier(NULL), 5);
}

static void test_convert_assert_request_validates_and_fills(void) {
  Stemedb__V1__Value v = STEMEDB__V1__VALUE__INIT;
  v.kind_case = STEMEDB__V1__VALUE__KIND_NUMBER_VALUE;
  v.number_value = -0.0;
  Stemedb__V1__AssertRequest req = STEMEDB__V1__ASSERT_REQUEST__INIT;
  req.concept_path = "drugs/x";
  req.predicate = "dose";
  req.value = &v;
  req.source_id = "fda://y";
  struct stm_claim c;
  stm_claim_init(&c);
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(stm_convert_assert_request(&req, "", &c, &err), 0);
  CU_ASSERT_STRING_EQUAL(c.concept_path, "drugs/x");
  CU_ASSERT_EQUAL(c.value.kind, STM_VALUE_NUMBER);
  CU_ASSERT_FALSE(signbit(c.value.number)); /* -0 is normalized */
  CU_ASSERT_DOUBLE_EQUAL(c.confidence, 1.0, 0); /* absent means 1 */
  stm_claim_destroy(&c);

  req.confidence_present_case =
      STEMEDB__V1__ASSERT_REQUEST__CONFIDENCE_PRESENT_CONFIDENCE;
  req.confidence = 0.0; /* present and zero is not "absent" */
  stm_claim_init(&c);
  CU_ASSERT_EQUAL(stm_convert_assert_request(&req, "", &c, &err), 0);
  CU_ASSERT_DOUBLE_EQUAL(c.confidence, 0.0, 0);
  stm_claim_destroy(&c);

  req.predicate = "bad predicate";
  stm_claim_init(&c);
  CU_ASSERT_EQUAL(stm_convert_assert_request(&req, "assertions[4].", &c, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "assertions[4].predicate");
  req.predicate = "dose";
  req.value = NULL;
  stm_claim_init(&c);
  CU_ASSERT_EQUAL(stm_convert_assert_request(&req, "", &c, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "value");
}

static void test_convert_rejects_a_signature_that_does_not_verify(void) {
  Stemedb__V1__Value v = STEMEDB__V1__VALUE__INIT;
  v.kind_case = STEMEDB__V1__VALUE__KIND_BOOL_VALUE;
  v.bool_value = 1;
  Stemedb__V1__AssertRequest req = STEMEDB__V1__ASSERT_REQUEST__INIT;
  req.concept_path = "a";
  req.predicate = "p";
  req.value = &v;
  char sig[129], key[65];
  memset(sig, 'a', 128);
  sig[128] = 0;
  memset(key, 'b', 64);
  key[64] = 0;
  req.signature = sig;
  req.public_key = key;
  struct stm_claim c;
  stm_claim_init(&c);
  struct stm_error err;
  CU_ASSERT_EQUAL(stm_convert_assert_request(&req, "", &c, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "signature");
  req.public_key = "";
  stm_claim_init(&c);
  CU_ASSERT_EQUAL(stm_convert_assert_request(&req, "", &c, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "public_key");
}

static void test_convert_claim_builds_the_assertion_message(void) {
  struct stm_claim c;
  stm_claim_init(&c);
  stm_claim_set_str(&c.concept_path, "a/b", 3);
  stm_claim_set_str(&c.predicate, "p", 1);
  stm_claim_set_str(&c.source_id, "wiki://w", 8);
  stm_value_set_str(&c.value, STM_VALUE_REF, "x/y", 3);
  c.commit_time_ns = 77;
  c.sequence = 5;
  memset(c.hash, 0xab, sizeof c.hash);
  struct stm_arena a;
  stm_arena_init(&a);
  Stemedb__V1__Assertion *m = stm_convert_claim(&c, &a);
  CU_ASSERT_EQUAL(strlen(m->hash), 64);
  CU_ASSERT_EQUAL(strncmp(m->hash, "abab", 4), 0);
  CU_ASSERT_EQUAL(m->value->kind_case, STEMEDB__V1__VALUE__KIND_REF_VALUE);
  CU_ASSERT_STRING_EQUAL(m->value->ref_value, "x/y");
  CU_ASSERT_EQUAL(m->timestamp_ns, 77); /* unstated: the commit time */
  CU_ASSERT_EQUAL(m->source_tier, 3);
  CU_ASSERT_STRING_EQUAL(m->parent_hash, "");
  stm_arena_destroy(&a);
  stm_claim_destroy(&c);
}

int main(void) {
  static const struct stm_test_case lens[] = {
      STM_TEST(test_lens_parse_knows_every_lens_and_rejects_others),
      STM_TEST(test_recency_picks_the_latest_timestamp),
      STM_TEST(test_recency_tie_goes_to_the_larger_hash),
      STM_TEST(test_recency_uses_commit_time_when_no_timestamp_stated),
      STM_TEST(test_resolve_rejects_empty_input),
      STM_TEST(test_default_tier_follows_the_uri_scheme), STM_TEST_END};
  static const struct stm_test_case convert[] = {
      STM_TEST(test_convert_assert_request_validates_and_fills),
      STM_TEST(test_convert_rejects_a_signature_that_does_not_verify),
      STM_TEST(test_convert_claim_builds_the_assertion_message), STM_TEST_END};
  stm_test_suite("lens", lens);
  stm_test_suite("convert", convert);
  return stm_test_run_all();
}
