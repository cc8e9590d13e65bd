#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *stm_strerror(int code) {
  switch (code) {
#define STM__ERR_TEXT(name, value, text)                                       \
  case value:                                                                  \
    return text;
    STM_ERRNO_MAP(STM__ERR_TEXT)
#undef STM__ERR_TEXT
  case 0:
    return "success";
  default:
    return "unknown error";
  }
}

int(stm_error_set)(struct stm_error *err, int code, const char *field,
                   const char *fmt, ...) {
  if (err == NULL)
    return code;
  err->code = code;
  snprintf(err->field, sizeof err->field, "%s", field ? field : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return code;
}

void stm_error_clear(struct stm_error *err) {
  if (err == NULL)
    return;
  err->code = 0;
  err->field[0] = '\0';
  err->message[0] = '\0';
}

int stm_error_from_errno(int errnum) {
  switch (errnum) {
  case 0:
    return 0;
  case ENOMEM:
    return STM_ENOMEM;
  case ENOENT:
    return STM_ENOTFOUND;
  case ENOSPC:
  case EDQUOT:
    return STM_ENOSPC;
  case EINVAL:
    return STM_EINVAL;
  case EEXIST:
    return STM_EEXIST;
  case EACCES:
  case EPERM:
    return STM_EPERM;
  case EFBIG:
    return STM_ETOOBIG;
  default:
    return STM_EIO;
  }
}
