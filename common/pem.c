#include "common/pem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *stm_pem_read(const char *path, const char *option,
                   struct stm_error *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    stm_error_set(err, STM_EINVAL, option, "--%s: cannot read %s: %s", option,
                  path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(STM_PEM_MAX + 1);
  size_t n = buf ? fread(buf, 1, STM_PEM_MAX, f) : 0;
  fclose(f);
  if (buf)
    buf[n] = '\0';
  if (buf == NULL || n == 0 || n == STM_PEM_MAX ||
      strstr(buf, "-----BEGIN ") == NULL) {
    free(buf);
    stm_error_set(err, STM_EINVAL, option, "--%s: %s is not a PEM file", option,
                  path);
    return NULL;
  }
  return buf;
}
