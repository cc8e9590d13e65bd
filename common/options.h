/*
 * options.h - command-line contract helper: one table per program maps each
 * setting to its flag, its STEMEDB_* environment variable and its config
 * file key. Precedence is flags > environment > config file > defaults:
 * callers put defaults in the targets, then apply file values, then
 * stm_opts_apply_env, then stm_opts_apply_flags.
 *
 * String targets are `char **` holding malloc'd strings (or NULL); the
 * module frees the old value when it sets a new one. Free them all with
 * stm_opts_free_strings.
 */
#ifndef STM_OPTIONS_H
#define STM_OPTIONS_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum stm_opt_type { STM_OPT_STRING, STM_OPT_INT, STM_OPT_BOOL };

struct stm_opt {
  const char *name;     /* flag without dashes: "data-dir" -> --data-dir */
  const char *env;      /* "STEMEDB_DATA_DIR", or NULL */
  const char *file_key; /* "section.key" in the config file, or NULL */
  enum stm_opt_type type;
  void *target; /* char **, int64_t * or bool * */
  const char *help;
};

/* Set one option from its textual value (type-checked). */
int stm_opts_set(const struct stm_opt *opt, const char *value,
                 const char *origin, struct stm_error *err);
/* Find an option by its config-file key; NULL when unknown. */
const struct stm_opt *stm_opts_find_file_key(const struct stm_opt *opts,
                                             size_t n, const char *key);
/* Apply every set STEMEDB_* variable of the table. */
int stm_opts_apply_env(const struct stm_opt *opts, size_t n,
                       struct stm_error *err);
/*
 * Parse argv[1..]: --name=value, --name value, and for booleans --name /
 * --no-name. Stops at the first non-option argument or after "--"; its index
 * goes to *first_arg (argc when none). "--help"/"-h" returns STM_ENOTFOUND
 * so the caller can print usage. Unknown flags are STM_EINVAL naming them.
 */
int stm_opts_apply_flags(const struct stm_opt *opts, size_t n, int argc,
                         char **argv, int *first_arg, struct stm_error *err);
/* The value of --NAME / --NAME=... in argv, or NULL (borrowed from argv). */
const char *stm_opts_peek_flag(int argc, char **argv, const char *name);
void stm_opts_usage(FILE *out, const char *usage_line,
                    const struct stm_opt *opts, size_t n);
void stm_opts_free_strings(const struct stm_opt *opts, size_t n);

#endif
