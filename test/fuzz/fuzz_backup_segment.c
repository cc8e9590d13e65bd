/*
 * libFuzzer target for the backup reader's segment check
 * (cli/backup_check.c, used by `stemedb backup`, `verify` and `restore`):
 * arbitrary bytes as a backed-up WAL segment image must be accepted or
 * refused with a message, never read out of bounds. The input is also
 * split at its first byte into two segments checked in sequence, so the
 * continuity rules run too. Build: scripts/fuzz.sh.
 */
#include "cli/backup_check.h"
#include "common/error.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(struct stm_backup_check *c, const uint8_t *p, size_t n) {
  struct stm_error err;
  stm_error_clear(&err);
  bool sealed = false;
  int rc = stm_backup_check_segment(c, "00000000000000000001.wal", p, n,
                                    &sealed, &err);
  if (rc != 0 && err.message[0] == '\0')
    abort();
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (sodium_init() < 0)
    abort();
  struct stm_backup_check c;
  stm_backup_check_init(&c);
  char hex[65];
  (void)check(&c, data, size);
  stm_backup_check_digest_hex(&c, hex);
  if (size > 1) {
    size_t cut = 1 + data[0] % (size - 1);
    stm_backup_check_init(&c);
    if (check(&c, data + 1, cut - 1) == 0)
      (void)check(&c, data + cut, size - cut);
    stm_backup_check_digest_hex(&c, hex);
  }
  return 0;
}
