#include "harness.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int ensure_registry(void) {
  if (CU_get_registry() != NULL)
    return 0;
  return CU_initialize_registry() == CUE_SUCCESS ? 0 : -1;
}

void stm_test_suite(const char *suite, const struct stm_test_case *cases) {
  if (ensure_registry() != 0) {
    fprintf(stderr, "CUnit registry: %s\n", CU_get_error_msg());
    exit(2);
  }
  CU_pSuite s = CU_add_suite(suite, NULL, NULL);
  for (const struct stm_test_case *c = cases; s && c->name; c++)
    CU_add_test(s, c->name, c->fn);
}

int stm_test_run_all(void) {
  if (ensure_registry() != 0)
    return 2;
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed =
      CU_get_number_of_failures() + CU_get_number_of_tests_failed();
  unsigned run = CU_get_number_of_tests_run();
  CU_cleanup_registry();
  return (failed == 0 && run > 0) ? 0 : 1;
}

char *stm_test_tmpdir(const char *tag) {
  const char *base = getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof tmpl, "%s/stm-%s-XXXXXX", base && *base ? base : "/tmp",
           tag);
  char *dir = mkdtemp(tmpl);
  return dir ? strdup(dir) : NULL;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

void stm_test_rmrf(const char *path) {
  if (path)
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
