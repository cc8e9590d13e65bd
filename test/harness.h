/*
 * harness.h - a thin layer over CUnit's basic interface so every test
 * executable reads the same: register suites of named cases, run them all,
 * exit non-zero when any assertion failed.
 */
#ifndef STM_TEST_HARNESS_H
#define STM_TEST_HARNESS_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

struct stm_test_case {
  const char *name;
  void (*fn)(void);
};

#define STM_TEST(fn)                                                           \
  { #fn, fn }
#define STM_TEST_END                                                           \
  { NULL, NULL }

/* Register one suite; cases end with STM_TEST_END. */
void stm_test_suite(const char *suite, const struct stm_test_case *cases);
/* Run every registered suite; returns the process exit status. */
int stm_test_run_all(void);
/* A fresh empty directory under $TMPDIR (or /tmp); caller frees and removes. */
char *stm_test_tmpdir(const char *tag);
/* rm -rf path (best effort). */
void stm_test_rmrf(const char *path);

#endif
