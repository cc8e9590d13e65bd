/*
 * MANIFEST.json reader (cli/backup_manifest.c): a well-formed manifest is
 * accepted and compared; every field the check reads is type-checked with
 * an error naming it, so a hostile manifest cannot make the check read a
 * missing string.
 */
#include "cli/backup_manifest.h"
#include "harness.h"

#include <string.h>

#define D64 "0000000000000000000000000000000000000000000000000000000000000000"

static int parse(const char *text, json_t **m, struct stm_error *err) {
  stm_error_clear(err);
  return stm_backup_manifest_parse(text, strlen(text), m, err);
}

static void expect_field(const char *text, const char *field) {
  json_t *m = NULL;
  struct stm_error err;
  CU_ASSERT_EQUAL(parse(text, &m, &err), STM_ECORRUPT);
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT_STRING_EQUAL(err.field, field);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, field));
}

static void test_fields_are_type_checked(void) {
  expect_field("[]", "MANIFEST.json");
  expect_field("{\"format\":\"stemedb-backup-1\"}", "node_id");
  expect_field("{\"format\":\"stemedb-backup-1\",\"node_id\":\"n\","
               "\"last_sequence\":-1}",
               "last_sequence");
  expect_field("{\"format\":\"stemedb-backup-1\",\"node_id\":\"n\","
               "\"last_sequence\":0,\"claims\":0,\"claims_digest\":\"x\"}",
               "claims_digest");
  expect_field("{\"format\":\"stemedb-backup-1\",\"node_id\":\"n\","
               "\"last_sequence\":0,\"claims\":0,\"claims_digest\":\"" D64
               "\",\"files\":[{\"size\":1,\"blake2b\":\"" D64 "\"}]}",
               "files");
  json_t *m = NULL;
  struct stm_error err;
  CU_ASSERT_EQUAL(parse("{\"format\":\"v9\"}", &m, &err), STM_EUNIMPL);
  CU_ASSERT_EQUAL(parse("{", &m, &err), STM_ECORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "MANIFEST.json"));
}

static void test_check_against_archive(void) {
  struct stm_backup_check chk;
  stm_backup_check_init(&chk);
  char digest[65];
  stm_backup_check_digest_hex(&chk, digest);
  char text[512];
  snprintf(text, sizeof text,
           "{\"format\":\"stemedb-backup-1\",\"node_id\":\"n\","
           "\"last_sequence\":0,\"claims\":0,\"claims_digest\":\"%s\","
           "\"files\":[]}",
           digest);
  json_t *m = NULL, *files = json_array();
  struct stm_error err;
  CU_ASSERT_EQUAL_FATAL(parse(text, &m, &err), 0);
  stm_backup_check_init(&chk);
  CU_ASSERT_EQUAL(stm_backup_manifest_check(m, files, &chk, &err), 0);
  json_array_append_new(files, json_pack("{s:s, s:i, s:s}", "name", "wal/x",
                                         "size", 1, "blake2b", D64));
  stm_backup_check_init(&chk);
  CU_ASSERT_EQUAL(stm_backup_manifest_check(m, files, &chk, &err),
                  STM_ECORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "lists 0 files"));
  json_decref(files);
  json_decref(m);
}

void stm_test_backup_manifest_register(void);
void stm_test_backup_manifest_register(void) {
  static const struct stm_test_case cases[] = {
      STM_TEST(test_fields_are_type_checked),
      STM_TEST(test_check_against_archive), STM_TEST_END};
  stm_test_suite("backup_manifest", cases);
}
