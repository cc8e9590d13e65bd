/* test_cli: the CLI's archive (tar + zstd) and MANIFEST.json readers. */
#include "harness.h"

#include <sodium.h>

void stm_test_archive_register(void);
void stm_test_backup_manifest_register(void);

int main(void) {
  if (sodium_init() < 0)
    return 1;
  stm_test_archive_register();
  stm_test_backup_manifest_register();
  return stm_test_run_all();
}
