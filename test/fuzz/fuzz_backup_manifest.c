/*
 * libFuzzer target for the backup MANIFEST.json reader
 * (cli/backup_manifest.c, used by `stemedb verify` and `restore`):
 * arbitrary bytes are parsed; an accepted manifest is then checked against
 * an empty archive and against its own file list, so the comparison and its
 * messages run on every shape the parser lets through. Errors must carry a
 * message. Build: scripts/fuzz.sh.
 */
#include "cli/backup_manifest.h"
#include "common/error.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (sodium_init() < 0)
    abort();
  struct stm_error err;
  stm_error_clear(&err);
  json_t *m = NULL;
  if (stm_backup_manifest_parse(data, size, &m, &err) != 0) {
    if (m != NULL || err.message[0] == '\0')
      abort();
    return 0;
  }
  struct stm_backup_check chk;
  json_t *empty = json_array();
  stm_backup_check_init(&chk);
  if (stm_backup_manifest_check(m, empty, &chk, &err) != 0 &&
      err.message[0] == '\0')
    abort();
  stm_backup_check_init(&chk);
  stm_error_clear(&err);
  if (stm_backup_manifest_check(m, json_object_get(m, "files"), &chk, &err) !=
          0 &&
      err.message[0] == '\0')
    abort();
  json_decref(empty);
  json_decref(m);
  return 0;
}
