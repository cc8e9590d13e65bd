/*
 * error.h - the one error scheme of StemeDB.
 *
 * Functions return 0 on success or a negative STM_E* code. Where a message
 * helps the caller, a last nullable `struct stm_error *err` receives the
 * code, the offending field (if any) and a human-readable message.
 * errno, LevelDB errors and gRPC statuses are translated at the edge, once.
 */
#ifndef STM_ERROR_H
#define STM_ERROR_H

#include <stddef.h>

/* X(name, value, text): one table, so codes, names and texts never drift. */
#define STM_ERRNO_MAP(X)                                                       \
  X(EINVAL, -1, "invalid argument")                                            \
  X(ENOMEM, -2, "out of memory")                                               \
  X(ENOTFOUND, -3, "not found")                                                \
  X(EIO, -4, "I/O error")                                                      \
  X(ECORRUPT, -5, "corrupt data")                                              \
  X(ENOSPC, -6, "no space left on device")                                     \
  X(EREADONLY, -7, "storage failed; writes refused")                           \
  X(ESHUTDOWN, -8, "shutting down")                                            \
  X(EEXIST, -9, "already exists")                                              \
  X(ETOOBIG, -10, "too large")                                                 \
  X(EUNAVAIL, -11, "unavailable")                                              \
  X(ETIMEOUT, -12, "timed out")                                                \
  X(EPERM, -13, "permission denied")                                           \
  X(EUNIMPL, -14, "not implemented")                                           \
  X(ERANGE, -15, "out of range")

enum stm_errno {
#define STM__ERR_ENUM(name, value, text) STM_##name = (value),
  STM_ERRNO_MAP(STM__ERR_ENUM)
#undef STM__ERR_ENUM
};

/* Static text for a code ("unknown error" for anything else). */
const char *stm_strerror(int code);

struct stm_error {
  int code;          /* a negative STM_E* code, 0 when no error */
  char field[64];    /* offending field name, "" when not about a field */
  char message[256]; /* full sentence for humans */
};

/*
 * Record an error and return `code`, so callers can write
 * `return stm_error_set(err, STM_EINVAL, "predicate", "must not be empty");`
 * `err` may be NULL; `field` may be NULL.
 */
int stm_error_set(struct stm_error *err, int code, const char *field,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#ifdef __clang_analyzer__
/* For clang-tidy's analyzer only: it cannot see into error.c, so it takes
 * `rc = stm_error_set(err, STM_EINVAL, ...)` for a possible 0 and follows
 * "success" paths with nothing set. Spelling out that the call returns
 * `code` removes those false reports at their root. */
#define stm_error_set(err, code, ...)                                          \
  (stm_error_set((err), (code), __VA_ARGS__), (code))
#endif

/* Reset to "no error". */
void stm_error_clear(struct stm_error *err);

/* Translate an errno value into an STM_E* code. */
int stm_error_from_errno(int errnum);

#endif
