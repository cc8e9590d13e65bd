/*
 * libFuzzer target for the backup archive reader (cli/archive.c: ustar
 * inside one zstd frame). The first byte chooses how the rest is read:
 * even, as the archive file itself (zstd framing, checksum); odd, as the
 * tar stream, which the target compresses first so mutations reach the tar
 * headers instead of dying in zstd. Every member is read until the end or
 * an error, which must carry a message. Build: scripts/fuzz.sh.
 */
#include "cli/archive.h"
#include "common/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <zstd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(const void *p, size_t n) {
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_tar_in *t = NULL;
  if (stm_tar_in_open_mem(p, n, "fuzz", &t, &err) != 0)
    abort();
  const char *name;
  const uint8_t *m;
  size_t len;
  int rc;
  while ((rc = stm_tar_in_next(t, &name, &m, &len, &err)) == 1) {
    volatile uint8_t sink = len ? m[0] ^ m[len - 1] : 0;
    (void)sink;
  }
  if (rc < 0 && err.message[0] == '\0')
    abort();
  stm_tar_in_close(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  if ((data[0] & 1) == 0) {
    read_all(data + 1, size - 1);
    return 0;
  }
  size_t cap = ZSTD_compressBound(size - 1);
  void *z = malloc(cap);
  ZSTD_CCtx *c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
  size_t n = ZSTD_compress2(c, z, cap, data + 1, size - 1);
  ZSTD_freeCCtx(c);
  if (!ZSTD_isError(n))
    read_all(z, n);
  free(z);
  return 0;
}
