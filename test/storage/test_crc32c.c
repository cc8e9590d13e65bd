/* Tests for storage/crc32c: known vectors, streaming, both code paths. */
#include "storage/crc32c.h"
#include "storage_test.h"

#include <string.h>

static void test_crc32c_matches_the_check_value(void) {
  CU_ASSERT_EQUAL(stm_crc32c("123456789", 9), 0xE3069283u);
  CU_ASSERT_EQUAL(stm_crc32c("", 0), 0u);
}

/* RFC 3720 (iSCSI) appendix B.4 test patterns. */
static void test_crc32c_matches_the_rfc3720_vectors(void) {
  uint8_t buf[32];
  memset(buf, 0, sizeof buf);
  CU_ASSERT_EQUAL(stm_crc32c(buf, 32), 0x8A9136AAu);
  memset(buf, 0xFF, sizeof buf);
  CU_ASSERT_EQUAL(stm_crc32c(buf, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; i++)
    buf[i] = (uint8_t)i;
  CU_ASSERT_EQUAL(stm_crc32c(buf, 32), 0x46DD794Eu);
  for (int i = 0; i < 32; i++)
    buf[i] = (uint8_t)(31 - i);
  CU_ASSERT_EQUAL(stm_crc32c(buf, 32), 0x113FDB5Cu);
}

static void test_crc32c_extend_equals_one_shot_at_every_split(void) {
  uint8_t data[300];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 131 + 7);
  uint32_t whole = stm_crc32c(data, sizeof data);
  for (size_t split = 0; split <= sizeof data; split++) {
    uint32_t c = stm_crc32c(data, split);
    CU_ASSERT_EQUAL(stm_crc32c_extend(c, data + split, sizeof data - split),
                    whole);
  }
}

static void test_crc32c_software_and_hardware_paths_agree(void) {
  uint8_t data[1100];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 2654435761u >> 13);
  /* Every alignment and many lengths, so the 8-byte loops and tails run. */
  for (size_t off = 0; off < 9; off++)
    for (size_t len = 0; len + off <= sizeof data; len += 37)
      CU_ASSERT_EQUAL(stm__crc32c_extend_sw(0, data + off, len),
                      stm_crc32c(data + off, len));
  CU_ASSERT_EQUAL(stm__crc32c_extend_sw(0, "123456789", 9), 0xE3069283u);
  (void)stm__crc32c_hw_available();
}

void stm_test_register_crc32c(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_crc32c_matches_the_check_value),
      STM_TEST(test_crc32c_matches_the_rfc3720_vectors),
      STM_TEST(test_crc32c_extend_equals_one_shot_at_every_split),
      STM_TEST(test_crc32c_software_and_hardware_paths_agree), STM_TEST_END};
  stm_test_suite("crc32c", cases);
}
