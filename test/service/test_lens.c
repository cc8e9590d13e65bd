/* Tests for service/lens.c and service/convert.c: hand-computed cases. */
#include "harness.h"
#include "service/convert.h"
#include "service/lens.h"
#include "service/trust.h"

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
  const char *names[] = {"recency",   "consensus", "confidence", "vote",
                         "authority", "epoch",     "skeptic",    "layered"};
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

/* Resolve claims c[0..n) with defaults for every candidate except those
 * set through the arrays (NULL: default). */
static int resolve(enum stm_lens lens, const struct stm_claim *c, size_t n,
                   const unsigned *tiers, const double *votes,
                   const bool *epoch, struct stm_lens_result *r) {
  struct stm_lens_candidate cand[16];
  for (size_t i = 0; i < n; i++) {
    stm_lens_candidate_init(&cand[i], &c[i]);
    if (tiers)
      cand[i].tier = tiers[i];
    if (votes)
      cand[i].vote_sum = votes[i];
    if (epoch)
      cand[i].in_current_epoch = epoch[i];
  }
  return stm_lens_resolve(lens, cand, n, NULL, r);
}

static void test_recency_picks_the_latest_timestamp(void) {
  struct stm_claim c[3];
  make(&c[0], "old", 100, 9);
  make(&c[1], "new", 300, 1);
  make(&c[2], "mid", 200, 5);
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(resolve(STM_LENS_RECENCY, c, 3, NULL, NULL, NULL, &r), 0);
  CU_ASSERT_TRUE(r.has_winner);
  CU_ASSERT_EQUAL(r.winner, 1);
  CU_ASSERT_EQUAL(r.candidates, 3);
  CU_ASSERT_DOUBLE_EQUAL(r.confidence, 1.0, 1e-12);
  /* Three values, one claim each: maximal conflict. */
  CU_ASSERT_DOUBLE_EQUAL(r.conflict_score, 1.0, 1e-12);
  stm_lens_result_destroy(&r);
}

static void test_recency_tie_goes_to_the_larger_hash(void) {
  struct stm_claim c[3];
  make(&c[0], "a", 7, 0x10);
  make(&c[1], "b", 7, 0xf0);
  make(&c[2], "c", 7, 0x80);
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(resolve(STM_LENS_RECENCY, c, 3, NULL, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 1);
  stm_lens_result_destroy(&r);
  /* Order of the input does not matter: same claims, same winner. */
  struct stm_claim d[3] = {c[2], c[1], c[0]};
  CU_ASSERT_EQUAL(resolve(STM_LENS_RECENCY, d, 3, NULL, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 1);
  stm_lens_result_destroy(&r);
}

static void test_recency_uses_commit_time_when_no_timestamp_stated(void) {
  struct stm_claim c[2];
  make(&c[0], "stated", 500, 1);
  make(&c[1], "unstated", 0, 2);
  c[1].commit_time_ns = 900;
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(resolve(STM_LENS_RECENCY, c, 2, NULL, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 1);
  stm_lens_result_destroy(&r);
}

static void test_consensus_counts_distinct_sources(void) {
  struct stm_claim c[4];
  make(&c[0], "A", 1, 1);
  c[0].source_id = "s1";
  make(&c[1], "A", 2, 2);
  c[1].source_id = "s2";
  make(&c[2], "A", 3, 3);
  c[2].source_id = "s2"; /* the same source twice counts once */
  make(&c[3], "B", 9, 4);
  c[3].source_id = "s3";
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(resolve(STM_LENS_CONSENSUS, c, 4, NULL, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 2); /* A's most recent claim */
  CU_ASSERT_DOUBLE_EQUAL(r.confidence, 2.0 / 3.0, 1e-12);
  stm_lens_result_destroy(&r);
  /* A tie in sources goes to the value with the most recent claim. */
  c[2].source_id = "s1";
  c[1].source_id = "s1";
  CU_ASSERT_EQUAL(resolve(STM_LENS_CONSENSUS, c, 4, NULL, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 3);
  CU_ASSERT_DOUBLE_EQUAL(r.confidence, 0.5, 1e-12);
  stm_lens_result_destroy(&r);
}

static void test_confidence_sums_claim_confidence(void) {
  struct stm_claim c[3];
  make(&c[0], "A", 1, 1);
  c[0].confidence = 0.5;
  make(&c[1], "A", 2, 2);
  c[1].confidence = 0.4;
  make(&c[2], "B", 3, 3);
  c[2].confidence = 0.8;
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(resolve(STM_LENS_CONFIDENCE, c, 3, NULL, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 1);
  CU_ASSERT_DOUBLE_EQUAL(r.confidence, 0.9 / 1.7, 1e-12);
  stm_lens_result_destroy(&r);
}

static void test_vote_weights_clamp_at_zero(void) {
  struct stm_claim c[2];
  make(&c[0], "A", 5, 1);
  make(&c[1], "B", 1, 2);
  double votes[2] = {-2.0, 0.0}; /* A: max(0, 1-2) = 0; B: 1 */
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(resolve(STM_LENS_VOTE, c, 2, NULL, votes, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 1);
  CU_ASSERT_DOUBLE_EQUAL(r.confidence, 1.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(r.conflict_score, 0.0, 1e-12);
  stm_lens_result_destroy(&r);
  votes[0] = 0.5; /* A: 1.5, B: 1 */
  CU_ASSERT_EQUAL(resolve(STM_LENS_VOTE, c, 2, NULL, votes, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 0);
  CU_ASSERT_DOUBLE_EQUAL(r.confidence, 0.6, 1e-12);
  stm_lens_result_destroy(&r);
}

static void test_authority_weights_by_tier_trust_and_confidence(void) {
  struct stm_claim c[3];
  make(&c[0], "A", 1, 1); /* tier 0: 32 */
  make(&c[1], "B", 5, 2); /* tier 5: 1 */
  make(&c[2], "B", 6, 3); /* tier 5: 1 */
  unsigned tiers[3] = {0, 5, 5};
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(resolve(STM_LENS_AUTHORITY, c, 3, tiers, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 0);
  CU_ASSERT_DOUBLE_EQUAL(r.confidence, 32.0 / 34.0, 1e-12);
  stm_lens_result_destroy(&r);
  struct stm_lens_candidate cand;
  stm_lens_candidate_init(&cand, &c[0]);
  cand.tier = 2;
  cand.source_trust = 0.5;
  c[0].confidence = 0.5;
  CU_ASSERT_DOUBLE_EQUAL(stm_lens_authority_weight(&cand), 8 * 0.5 * 0.5,
                         1e-12);
}

static void test_epoch_ignores_superseded_claims(void) {
  struct stm_claim c[3];
  make(&c[0], "old-epoch", 900, 1);
  make(&c[1], "current", 100, 2);
  make(&c[2], "current2", 50, 3);
  bool epoch[3] = {false, true, true};
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(resolve(STM_LENS_EPOCH, c, 3, NULL, NULL, epoch, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 1);
  CU_ASSERT_EQUAL(r.candidates, 2);
  stm_lens_result_destroy(&r);
  bool none[3] = {false, false, false};
  CU_ASSERT_EQUAL(resolve(STM_LENS_EPOCH, c, 3, NULL, NULL, none, &r), 0);
  CU_ASSERT_FALSE(r.has_winner);
  CU_ASSERT_EQUAL(r.candidates, 0);
  stm_lens_result_destroy(&r);
}

static void test_skeptic_equal_weights_are_maximal_conflict(void) {
  struct stm_claim c[2];
  make(&c[0], "yes", 1, 1);
  make(&c[1], "no", 2, 2);
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(resolve(STM_LENS_SKEPTIC, c, 2, NULL, NULL, NULL, &r), 0);
  CU_ASSERT_DOUBLE_EQUAL(r.conflict_score, 1.0, 1e-12);
  CU_ASSERT_EQUAL(r.status, STM_LENS_STATUS_CONTESTED);
  CU_ASSERT_EQUAL(r.ranked_count, 2);
  CU_ASSERT_DOUBLE_EQUAL(r.ranked[0].share, 0.5, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(r.confidence, 0.5, 1e-12);
  stm_lens_result_destroy(&r);
}

static void test_skeptic_statuses_and_entropy(void) {
  struct stm_claim c[2];
  make(&c[0], "same", 1, 1);
  make(&c[1], "same", 2, 2);
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(resolve(STM_LENS_SKEPTIC, c, 2, NULL, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.status, STM_LENS_STATUS_UNANIMOUS);
  CU_ASSERT_DOUBLE_EQUAL(r.conflict_score, 0.0, 1e-12);
  CU_ASSERT_EQUAL(r.ranked_count, 1);
  CU_ASSERT_EQUAL(r.ranked[0].claims, 2);
  stm_lens_result_destroy(&r);
  /* 0.9 / 0.1 shares: AGREED, H/ln2 = 0.468996 (hand-computed). */
  make(&c[1], "other", 2, 2);
  c[0].confidence = 0.9;
  c[1].confidence = 0.1;
  CU_ASSERT_EQUAL(resolve(STM_LENS_SKEPTIC, c, 2, NULL, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.status, STM_LENS_STATUS_AGREED);
  CU_ASSERT_DOUBLE_EQUAL(r.ranked[0].share, 0.9, 1e-12);
  CU_ASSERT_EQUAL(r.ranked[0].representative, 0);
  CU_ASSERT_DOUBLE_EQUAL(r.conflict_score, 0.468996, 1e-6);
  stm_lens_result_destroy(&r);
}

static void test_layered_gives_one_winner_per_tier(void) {
  struct stm_claim c[3];
  make(&c[0], "regulator", 1, 1);
  make(&c[1], "crowd", 2, 2);
  make(&c[2], "crowd2", 3, 3);
  unsigned tiers[3] = {0, 4, 4};
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(resolve(STM_LENS_LAYERED, c, 3, tiers, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 0); /* the overall authority winner */
  CU_ASSERT_EQUAL(r.tier_count, 2);
  CU_ASSERT_EQUAL(r.tiers[0].tier, 0);
  CU_ASSERT_EQUAL(r.tiers[0].winner, 0);
  CU_ASSERT_EQUAL(r.tiers[1].tier, 4);
  CU_ASSERT_EQUAL(r.tiers[1].winner, 2); /* tie in weight: most recent */
  CU_ASSERT_EQUAL(r.tiers[1].candidates, 2);
  CU_ASSERT_DOUBLE_EQUAL(r.tiers[1].confidence, 0.5, 1e-12);
  stm_lens_result_destroy(&r);
}

static void test_resolve_rejects_empty_input(void) {
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(stm_lens_resolve(STM_LENS_RECENCY, NULL, 0, NULL, &r),
                  STM_EINVAL);
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
  CU_ASSERT_FALSE(signbit(c.value.number));     /* -0 is normalized */
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

/* ---- trust decay (service/trust.h) ----------------------------------- */

#define DAY (INT64_C(24) * 3600 * 1000000000)

static void test_trust_halves_its_distance_to_neutral_each_half_life(void) {
  int64_t h = 30 * DAY;
  CU_ASSERT_DOUBLE_EQUAL(stm_trust_decay(1.0, 0, 0, h), 1.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(stm_trust_decay(1.0, 0, h, h), 0.75, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(stm_trust_decay(1.0, 0, 2 * h, h), 0.625, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(stm_trust_decay(0.0, 0, h, h), 0.25, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(stm_trust_decay(0.5, 0, 9 * h, h), 0.5, 1e-12);
  /* Renewal is the reference point: age counts from it. */
  CU_ASSERT_DOUBLE_EQUAL(stm_trust_decay(0.9, 5 * h, 6 * h, h), 0.7, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(stm_trust_decay(1.0, 0, 1000 * h, h), 0.5, 1e-12);
}

static void test_trust_does_not_decay_in_the_future_or_when_disabled(void) {
  CU_ASSERT_DOUBLE_EQUAL(stm_trust_decay(0.9, 100, 50, DAY), 0.9, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(stm_trust_decay(0.9, 0, 1000 * DAY, 0), 0.9, 1e-12);
}

static void test_decayed_trust_changes_the_authority_winner(void) {
  /* Tier 2 at trust 1 (weight 8) beats tier 1 at trust 0.2 (3.2); after
   * three half-lives the tier-1 source is back at 0.4625 (7.4) and the
   * tier-2 one at 0.5625 (4.5). */
  struct stm_claim c[2];
  make(&c[0], "a", 1, 1);
  make(&c[1], "b", 2, 2);
  struct stm_lens_candidate k[2];
  int64_t h = 30 * DAY;
  for (int i = 0; i < 2; i++)
    stm_lens_candidate_init(&k[i], &c[i]);
  k[0].tier = 1;
  k[1].tier = 2;
  k[0].source_trust = 0.2;
  k[1].source_trust = 1.0;
  struct stm_lens_result r;
  CU_ASSERT_EQUAL(stm_lens_resolve(STM_LENS_AUTHORITY, k, 2, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 1);
  stm_lens_result_destroy(&r);
  k[0].source_trust = stm_trust_decay(0.2, 0, 3 * h, h);
  k[1].source_trust = stm_trust_decay(1.0, 0, 3 * h, h);
  CU_ASSERT_DOUBLE_EQUAL(k[0].source_trust, 0.4625, 1e-12);
  CU_ASSERT_EQUAL(stm_lens_resolve(STM_LENS_AUTHORITY, k, 2, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.winner, 0);
  stm_lens_result_destroy(&r);
}

void stm_test_register_source_keys(void); /* test_source_keys.c */
void stm_test_register_request_ids(void); /* test_request_ids.c */
void stm_test_register_auth(void);        /* test_auth.c */

int main(void) {
  static const struct stm_test_case lens[] = {
      STM_TEST(test_lens_parse_knows_every_lens_and_rejects_others),
      STM_TEST(test_recency_picks_the_latest_timestamp),
      STM_TEST(test_recency_tie_goes_to_the_larger_hash),
      STM_TEST(test_recency_uses_commit_time_when_no_timestamp_stated),
      STM_TEST(test_consensus_counts_distinct_sources),
      STM_TEST(test_confidence_sums_claim_confidence),
      STM_TEST(test_vote_weights_clamp_at_zero),
      STM_TEST(test_authority_weights_by_tier_trust_and_confidence),
      STM_TEST(test_epoch_ignores_superseded_claims),
      STM_TEST(test_skeptic_equal_weights_are_maximal_conflict),
      STM_TEST(test_skeptic_statuses_and_entropy),
      STM_TEST(test_layered_gives_one_winner_per_tier),
      STM_TEST(test_resolve_rejects_empty_input),
      STM_TEST(test_default_tier_follows_the_uri_scheme),
      STM_TEST_END};
  static const struct stm_test_case convert[] = {
      STM_TEST(test_convert_assert_request_validates_and_fills),
      STM_TEST(test_convert_rejects_a_signature_that_does_not_verify),
      STM_TEST(test_convert_claim_builds_the_assertion_message), STM_TEST_END};
  static const struct stm_test_case trust[] = {
      STM_TEST(test_trust_halves_its_distance_to_neutral_each_half_life),
      STM_TEST(test_trust_does_not_decay_in_the_future_or_when_disabled),
      STM_TEST(test_decayed_trust_changes_the_authority_winner), STM_TEST_END};
  stm_test_suite("lens", lens);
  stm_test_suite("trust", trust);
  stm_test_suite("convert", convert);
  stm_test_register_source_keys();
  stm_test_register_request_ids();
  stm_test_register_auth();
  return stm_test_run_all();
}
