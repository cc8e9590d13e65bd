/*
 * Tests for storage/claim: the frozen canonical encoding and hash (the same
 * vectors as docs/formats.md; they were computed independently from the
 * documented layout, so a change to either side fails here), the storage
 * encoding round trip, and malformed-input rejection.
 */
#include "common/hex.h"
#include "storage_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char VECTOR_A_CANONICAL[] =
    "01010d00000064727567732f6173706972696e02110000006d61785f6461696c795f"
    "646f73655f6d67030900000002000000000040af4004130000006664613a2f2f6c61"
    "62656c2f6173706972696e0508000000cdccccccccccec3f060800000000002a36fe"
    "9c97170700000000";
static const char VECTOR_A_HASH[] =
    "aa6b14daca98bb10078323df9f03a64d59e358ebfd188aed7db7a01263e37aef";
static const char VECTOR_B_HASH[] =
    "976bfa9aaf836c8b7eeb31260ac6d81d9a2b568c65ab1ff7452cf5e2a674afae";

/* Vector A: a number value, no parent. */
static void vector_a(struct stm_claim *c) {
  stm_claim_init(c);
  stm_claim_set_str(&c->concept_path, "drugs/aspirin", 13);
  stm_claim_set_str(&c->predicate, "max_daily_dose_mg", 17);
  stm_claim_set_str(&c->source_id, "fda://label/aspirin", 19);
  stm_value_set_str(&c->value, STM_VALUE_NUMBER, NULL, 0);
  c->value.number = 4000.0;
  c->confidence = 0.9;
  c->timestamp_ns = 1700000000000000000;
}

/* Vector B: a string value, empty source, negative time, parent = A. */
static void vector_b(struct stm_claim *c) {
  stm_claim_init(c);
  stm_claim_set_str(&c->concept_path, "drugs/aspirin", 13);
  stm_claim_set_str(&c->predicate, "brand_name", 10);
  stm_claim_set_str(&c->source_id, "", 0);
  stm_value_set_str(&c->value, STM_VALUE_STRING, "Bayer", 5);
  c->timestamp_ns = -5;
  c->has_parent = true;
  stm_hex_decode(VECTOR_A_HASH, 64, c->parent_hash, STM_HASH_LEN);
}

static void hex_of(const uint8_t *p, size_t n, char *out) {
  stm_hex_encode(p, n, out);
}

static void test_claim_canonical_encoding_matches_frozen_vector(void) {
  struct stm_claim c;
  vector_a(&c);
  struct stm_buf b;
  stm_buf_init(&b);
  CU_ASSERT_EQUAL_FATAL(stm_claim_canonical(&c, &b), 0);
  char hex[512];
  CU_ASSERT_EQUAL_FATAL(b.len * 2, strlen(VECTOR_A_CANONICAL));
  hex_of(b.data, b.len, hex);
  CU_ASSERT_STRING_EQUAL(hex, VECTOR_A_CANONICAL);
  stm_buf_destroy(&b);
  stm_claim_destroy(&c);
}

static void test_claim_hash_matches_frozen_vectors(void) {
  struct stm_claim a, b;
  vector_a(&a);
  vector_b(&b);
  CU_ASSERT_EQUAL(stm_claim_compute_hash(&a), 0);
  CU_ASSERT_EQUAL(stm_claim_compute_hash(&b), 0);
  char hex[STM_HASH_HEX_LEN + 1];
  hex_of(a.hash, STM_HASH_LEN, hex);
  CU_ASSERT_STRING_EQUAL(hex, VECTOR_A_HASH);
  hex_of(b.hash, STM_HASH_LEN, hex);
  CU_ASSERT_STRING_EQUAL(hex, VECTOR_B_HASH);
  stm_claim_destroy(&a);
  stm_claim_destroy(&b);
}

static void test_claim_hash_ignores_commit_fields_and_signature(void) {
  struct stm_claim a, b;
  vector_a(&a);
  vector_a(&b);
  b.sequence = 99;
  b.commit_time_ns = 12345;
  b.epoch = 7;
  b.has_signature = true;
  memset(b.signature, 0xAB, sizeof b.signature);
  stm_claim_compute_hash(&a);
  stm_claim_compute_hash(&b);
  CU_ASSERT_EQUAL(memcmp(a.hash, b.hash, STM_HASH_LEN), 0);
  b.confidence = 0.8; /* content: changes the hash */
  stm_claim_compute_hash(&b);
  CU_ASSERT_NOT_EQUAL(memcmp(a.hash, b.hash, STM_HASH_LEN), 0);
  stm_claim_destroy(&a);
  stm_claim_destroy(&b);
}

static void test_claim_negative_zero_hashes_as_positive_zero(void) {
  struct stm_claim a, b;
  vector_a(&a);
  vector_a(&b);
  a.value.number = 0.0;
  b.value.number = -0.0;
  a.confidence = 0.0;
  b.confidence = -0.0;
  stm_claim_compute_hash(&a);
  stm_claim_compute_hash(&b);
  CU_ASSERT_EQUAL(memcmp(a.hash, b.hash, STM_HASH_LEN), 0);
  stm_claim_destroy(&a);
  stm_claim_destroy(&b);
}

static void test_claim_canonical_rejects_unencodable_content(void) {
  struct stm_claim c;
  vector_a(&c);
  struct stm_buf b;
  stm_buf_init(&b);
  c.value.number = NAN;
  CU_ASSERT_EQUAL(stm_claim_canonical(&c, &b), STM_EINVAL);
  c.value.number = INFINITY;
  CU_ASSERT_EQUAL(stm_claim_compute_hash(&c), STM_EINVAL);
  c.value.number = 1;
  c.confidence = NAN;
  CU_ASSERT_EQUAL(stm_claim_canonical(&c, &b), STM_EINVAL);
  c.confidence = 1;
  stm_value_destroy(&c.value); /* kind NONE */
  CU_ASSERT_EQUAL(stm_claim_canonical(&c, &b), STM_EINVAL);
  CU_ASSERT_EQUAL(b.len, 0u); /* unchanged on error */
  stm_buf_destroy(&b);
  stm_claim_destroy(&c);
}

/* A claim using every field: signature, parent, a value with a NUL byte. */
static void full_claim(struct stm_claim *c) {
  vector_b(c);
  stm_value_set_str(&c->value, STM_VALUE_STRING, "a\0b", 3);
  c->sequence = 42;
  c->commit_time_ns = -1;
  c->epoch = 3;
  c->has_signature = true;
  for (int i = 0; i < STM_SIGNATURE_LEN; i++)
    c->signature[i] = (uint8_t)i;
  for (int i = 0; i < STM_PUBLIC_KEY_LEN; i++)
    c->public_key[i] = (uint8_t)(200 + i);
  stm_claim_compute_hash(c);
}

static void assert_claims_equal(const struct stm_claim *a,
                                const struct stm_claim *b) {
  CU_ASSERT_EQUAL(memcmp(a->hash, b->hash, STM_HASH_LEN), 0);
  CU_ASSERT_STRING_EQUAL(a->concept_path, b->concept_path);
  CU_ASSERT_STRING_EQUAL(a->predicate, b->predicate);
  CU_ASSERT_STRING_EQUAL(a->source_id, b->source_id);
  CU_ASSERT_EQUAL(stm_value_compare(&a->value, &b->value), 0);
  CU_ASSERT_EQUAL(a->value.str_len, b->value.str_len);
  CU_ASSERT_DOUBLE_EQUAL(a->confidence, b->confidence, 0);
  CU_ASSERT_EQUAL(a->timestamp_ns, b->timestamp_ns);
  CU_ASSERT_EQUAL(a->has_parent, b->has_parent);
  CU_ASSERT_EQUAL(memcmp(a->parent_hash, b->parent_hash, STM_HASH_LEN), 0);
  CU_ASSERT_EQUAL(a->has_signature, b->has_signature);
  CU_ASSERT_EQUAL(memcmp(a->signature, b->signature, STM_SIGNATURE_LEN), 0);
  CU_ASSERT_EQUAL(memcmp(a->public_key, b->public_key, STM_PUBLIC_KEY_LEN), 0);
  CU_ASSERT_EQUAL(a->sequence, b->sequence);
  CU_ASSERT_EQUAL(a->commit_time_ns, b->commit_time_ns);
  CU_ASSERT_EQUAL(a->epoch, b->epoch);
}

static void test_claim_storage_encoding_round_trips_every_field(void) {
  struct stm_claim c, d;
  full_claim(&c);
  stm_claim_init(&d);
  struct stm_buf b;
  stm_buf_init(&b);
  CU_ASSERT_EQUAL_FATAL(stm_claim_encode(&c, &b), 0);
  CU_ASSERT_EQUAL(b.len, stm_claim_encoded_size(&c));
  CU_ASSERT_EQUAL_FATAL(stm_claim_decode(b.data, b.len, &d, NULL), 0);
  assert_claims_equal(&c, &d);
  CU_ASSERT_EQUAL(memcmp(d.value.str, "a\0b", 3), 0);
  stm_buf_destroy(&b);
  stm_claim_destroy(&c);
  stm_claim_destroy(&d);
}

static void round_trip_value(const struct stm_value *v) {
  struct stm_claim c, d;
  vector_a(&c);
  stm_value_destroy(&c.value);
  stm_value_copy(&c.value, v);
  stm_claim_compute_hash(&c);
  stm_claim_init(&d);
  struct stm_buf b;
  stm_buf_init(&b);
  CU_ASSERT_EQUAL(stm_claim_encode(&c, &b), 0);
  CU_ASSERT_EQUAL(b.len, stm_claim_encoded_size(&c));
  CU_ASSERT_EQUAL(stm_claim_decode(b.data, b.len, &d, NULL), 0);
  assert_claims_equal(&c, &d);
  stm_buf_destroy(&b);
  stm_claim_destroy(&c);
  stm_claim_destroy(&d);
}

static void test_claim_every_value_kind_round_trips(void) {
  struct stm_value v = {.kind = STM_VALUE_NUMBER, .number = -1.5e300};
  round_trip_value(&v);
  v = (struct stm_value){.kind = STM_VALUE_BOOL, .boolean = true};
  round_trip_value(&v);
  v = (struct stm_value){.kind = STM_VALUE_BOOL, .boolean = false};
  round_trip_value(&v);
  v = (struct stm_value){.kind = STM_VALUE_REF, .str = "drugs/x", .str_len = 7};
  round_trip_value(&v);
  v = (struct stm_value){.kind = STM_VALUE_STRING, .str = "", .str_len = 0};
  round_trip_value(&v);
}

static void test_claim_decode_rejects_every_truncation(void) {
  struct stm_claim c, d;
  full_claim(&c);
  stm_claim_init(&d);
  struct stm_buf b;
  stm_buf_init(&b);
  stm_claim_encode(&c, &b);
  for (size_t len = 0; len < b.len; len++) {
    /* A fresh heap copy of exactly len bytes lets ASan catch any overread. */
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, b.data, len);
    struct stm_error err;
    stm_error_clear(&err);
    CU_ASSERT_EQUAL(stm_claim_decode(copy, len, &d, &err), STM_ECORRUPT);
    CU_ASSERT_EQUAL(err.code, STM_ECORRUPT);
    CU_ASSERT_PTR_NULL(d.concept_path); /* left init'ed */
    free(copy);
  }
  stm_buf_destroy(&b);
  stm_claim_destroy(&c);
  stm_claim_destroy(&d);
}

/* Encode vector A, let `mutate` damage the bytes, expect ECORRUPT. */
static void expect_corrupt(void (*mutate)(struct stm_buf *b), const char *why) {
  struct stm_claim c, d;
  vector_a(&c);
  stm_claim_init(&d);
  struct stm_buf b;
  stm_buf_init(&b);
  stm_claim_encode(&c, &b);
  mutate(&b);
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(stm_claim_decode(b.data, b.len, &d, &err), STM_ECORRUPT);
  if (strstr(err.message, why) == NULL)
    fprintf(stderr, "\n  expected '%s' in '%s'\n", why, err.message);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, why));
  stm_buf_destroy(&b);
  stm_claim_destroy(&c);
  stm_claim_destroy(&d);
}

/* Offsets into vector A's encoding (see VECTOR_A_CANONICAL). */
#define A_VALUE_KIND 46
#define A_VALUE_BYTES 47
static void bad_version(struct stm_buf *b) { b->data[0] = 2; }
static void bad_tag(struct stm_buf *b) { b->data[1] = 2; }
static void bad_kind(struct stm_buf *b) { b->data[A_VALUE_KIND] = 9; }
static void nan_number(struct stm_buf *b) {
  memcpy(b->data + A_VALUE_BYTES, "\x00\x00\x00\x00\x00\x00\xf8\x7f", 8);
}
static void neg_zero(struct stm_buf *b) {
  memcpy(b->data + A_VALUE_BYTES, "\x00\x00\x00\x00\x00\x00\x00\x80", 8);
}
static void nul_in_path(struct stm_buf *b) { b->data[8] = 0; }
static void trailing(struct stm_buf *b) { stm_buf_put_u8(b, 0); }
static void bad_sig_flag(struct stm_buf *b) { b->data[b->len - 1] = 2; }
static void huge_length(struct stm_buf *b) {
  stm_buf_store_u32le(b->data + 2, 0xFFFFFFF0u);
}

static void test_claim_decode_rejects_malformed_fields(void) {
  CU_ASSERT_EQUAL(VECTOR_A_CANONICAL[A_VALUE_KIND * 2 + 1], '2');
  expect_corrupt(bad_version, "version");
  expect_corrupt(bad_tag, "tag");
  expect_corrupt(bad_kind, "unknown value kind");
  expect_corrupt(nan_number, "NaN");
  expect_corrupt(neg_zero, "negative zero");
  expect_corrupt(nul_in_path, "NUL");
  expect_corrupt(trailing, "trailing");
  expect_corrupt(bad_sig_flag, "signature flag");
  expect_corrupt(huge_length, "truncated");
}

static void test_claim_decode_recomputes_the_hash(void) {
  struct stm_claim c, d;
  vector_a(&c);
  memset(c.hash, 0x55, STM_HASH_LEN); /* stale: must not be trusted */
  stm_claim_init(&d);
  struct stm_buf b;
  stm_buf_init(&b);
  stm_claim_encode(&c, &b);
  CU_ASSERT_EQUAL(stm_claim_decode(b.data, b.len, &d, NULL), 0);
  char hex[STM_HASH_HEX_LEN + 1];
  hex_of(d.hash, STM_HASH_LEN, hex);
  CU_ASSERT_STRING_EQUAL(hex, VECTOR_A_HASH);
  stm_buf_destroy(&b);
  stm_claim_destroy(&c);
  stm_claim_destroy(&d);
}

static void
test_claim_copy_is_deep_and_values_order_by_kind_then_content(void) {
  struct stm_claim a, b;
  full_claim(&a);
  CU_ASSERT_EQUAL_FATAL(stm_claim_copy(&b, &a), 0);
  CU_ASSERT_PTR_NOT_EQUAL(a.concept_path, b.concept_path);
  CU_ASSERT_PTR_NOT_EQUAL(a.value.str, b.value.str);
  assert_claims_equal(&a, &b);
  stm_claim_destroy(&a);
  stm_claim_destroy(&b);

  struct stm_value s1 = {.kind = STM_VALUE_STRING, .str = "ab", .str_len = 2};
  struct stm_value s2 = {.kind = STM_VALUE_STRING, .str = "abc", .str_len = 3};
  struct stm_value n1 = {.kind = STM_VALUE_NUMBER, .number = 1};
  struct stm_value n2 = {.kind = STM_VALUE_NUMBER, .number = 2};
  struct stm_value f = {.kind = STM_VALUE_BOOL, .boolean = false};
  CU_ASSERT(stm_value_compare(&s1, &s2) < 0);
  CU_ASSERT(stm_value_compare(&s2, &s1) > 0);
  CU_ASSERT(stm_value_compare(&n1, &n2) < 0);
  CU_ASSERT(stm_value_compare(&s2, &n1) < 0); /* STRING < NUMBER */
  CU_ASSERT(stm_value_compare(&n2, &f) < 0);  /* NUMBER < BOOL */
  CU_ASSERT_EQUAL(stm_value_compare(&f, &f), 0);
}

void stm_test_register_claim(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_claim_canonical_encoding_matches_frozen_vector),
      STM_TEST(test_claim_hash_matches_frozen_vectors),
      STM_TEST(test_claim_hash_ignores_commit_fields_and_signature),
      STM_TEST(test_claim_negative_zero_hashes_as_positive_zero),
      STM_TEST(test_claim_canonical_rejects_unencodable_content),
      STM_TEST(test_claim_storage_encoding_round_trips_every_field),
      STM_TEST(test_claim_every_value_kind_round_trips),
      STM_TEST(test_claim_decode_rejects_every_truncation),
      STM_TEST(test_claim_decode_rejects_malformed_fields),
      STM_TEST(test_claim_decode_recomputes_the_hash),
      STM_TEST(test_claim_copy_is_deep_and_values_order_by_kind_then_content),
      STM_TEST_END};
  stm_test_suite("claim", cases);
}
