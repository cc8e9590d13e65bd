#include "options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int stm_opts_set(const struct stm_opt *opt, const char *value,
                 const char *origin, struct stm_error *err) {
  switch (opt->type) {
  case STM_OPT_STRING: {
    char **slot = opt->target;
    char *copy = strdup(value);
    if (copy == NULL)
      return stm_error_set(err, STM_ENOMEM, opt->name, "out of memory");
    free(*slot);
    *slot = copy;
    return 0;
  }
  case STM_OPT_INT: {
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end != '\0')
      return stm_error_set(err, STM_EINVAL, opt->name,
                           "%s: %s must be an integer, got \"%s\"", origin,
                           opt->name, value);
    *(int64_t *)opt->target = v;
    return 0;
  }
  case STM_OPT_BOOL:
    if (!strcasecmp(value, "true") || !strcmp(value, "1") ||
        !strcasecmp(value, "yes") || !strcasecmp(value, "on")) {
      *(bool *)opt->target = true;
      return 0;
    }
    if (!strcasecmp(value, "false") || !strcmp(value, "0") ||
        !strcasecmp(value, "no") || !strcasecmp(value, "off")) {
      *(bool *)opt->target = false;
      return 0;
    }
    return stm_error_set(err, STM_EINVAL, opt->name,
                         "%s: %s must be true or false, got \"%s\"", origin,
                         opt->name, value);
  }
  return STM_EINVAL;
}

const struct stm_opt *stm_opts_find_file_key(const struct stm_opt *opts,
                                             size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (opts[i].file_key && strcmp(opts[i].file_key, key) == 0)
      return &opts[i];
  return NULL;
}

int stm_opts_apply_env(const struct stm_opt *opts, size_t n,
                       struct stm_error *err) {
  for (size_t i = 0; i < n; i++) {
    const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
    if (v == NULL)
      continue;
    int rc = stm_opts_set(&opts[i], v, opts[i].env, err);
    if (rc)
      return rc;
  }
  return 0;
}

static const struct stm_opt *find_flag(const struct stm_opt *opts, size_t n,
                                       const char *name, size_t len) {
  for (size_t i = 0; i < n; i++)
    if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
      return &opts[i];
  return NULL;
}

int stm_opts_apply_flags(const struct stm_opt *opts, size_t n, int argc,
                         char **argv, int *first_arg, struct stm_error *err) {
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
      return STM_ENOTFOUND;
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
      break;
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct stm_opt *opt = find_flag(opts, n, name, len);
    if (opt == NULL && !eq && strncmp(name, "no-", 3) == 0) {
      opt = find_flag(opts, n, name + 3, len - 3);
      if (opt && opt->type == STM_OPT_BOOL) {
        *(bool *)opt->target = false;
        continue;
      }
      opt = NULL;
    }
    if (opt == NULL)
      return stm_error_set(err, STM_EINVAL, a, "unknown option --%.*s",
                           (int)len, name);
    const char *value;
    if (eq) {
      value = eq + 1;
    } else if (opt->type == STM_OPT_BOOL) {
      value = "true";
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return stm_error_set(err, STM_EINVAL, opt->name,
                           "option --%s needs a value", opt->name);
    }
    int rc = stm_opts_set(opt, value, "command line", err);
    if (rc)
      return rc;
  }
  if (first_arg)
    *first_arg = i;
  return 0;
}

const char *stm_opts_peek_flag(int argc, char **argv, const char *name) {
  size_t len = strlen(name);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0)
      break;
    if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, len) != 0)
      continue;
    if (a[2 + len] == '=')
      return a + 3 + len;
    if (a[2 + len] == '\0' && i + 1 < argc)
      return argv[i + 1];
  }
  return NULL;
}

void stm_opts_usage(FILE *out, const char *usage_line,
                    const struct stm_opt *opts, size_t n) {
  fprintf(out, "usage: %s\n\noptions (flag, environment, default):\n",
          usage_line);
  for (size_t i = 0; i < n; i++) {
    char def[128] = "";
    switch (opts[i].type) {
    case STM_OPT_STRING: {
      char *const *s = opts[i].target;
      snprintf(def, sizeof def, "%s", *s ? *s : "(none)");
      break;
    }
    case STM_OPT_INT:
      snprintf(def, sizeof def, "%lld",
               (long long)*(const int64_t *)opts[i].target);
      break;
    case STM_OPT_BOOL:
      snprintf(def, sizeof def, "%s",
               *(const bool *)opts[i].target ? "true" : "false");
      break;
    }
    fprintf(out, "  --%-22s %-28s %s\n      %s\n", opts[i].name,
            opts[i].env ? opts[i].env : "", def, opts[i].help);
  }
}

void stm_opts_free_strings(const struct stm_opt *opts, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (opts[i].type != STM_OPT_STRING)
      continue;
    char **slot = opts[i].target;
    free(*slot);
    *slot = NULL;
  }
}
