/*
 * backup_manifest.h - MANIFEST.json of a backup archive (docs/formats.md,
 * "Backup archive"): its strict reader and the comparison with what the
 * archive actually held, for `stemedb verify` and `restore` (cli/backup.c).
 * Split out so the reader has a pure entry point for fuzz_backup_manifest.
 */
#ifndef STM_CLI_BACKUP_MANIFEST_H
#define STM_CLI_BACKUP_MANIFEST_H

#include "backup_check.h"
#include "common/error.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define STM_BACKUP_MANIFEST_FORMAT "stemedb-backup-1"

/*
 * Parse MANIFEST.json bytes. Besides valid JSON, the fields the check reads
 * must have their types: format (the one supported, else STM_EUNIMPL),
 * node_id (string), last_sequence and claims (integers >= 0),
 * claims_digest (64 hex digits), files (array of {name: string, size:
 * integer >= 0, blake2b: 64 hex digits}). Returns 0 and a new reference in
 * *out, or STM_ECORRUPT/STM_EUNIMPL with err naming the field.
 */
int stm_backup_manifest_parse(const void *data, size_t len, json_t **out,
                              struct stm_error *err);

/*
 * Compare a parsed manifest with the archive's members (files: an array of
 * {name, size, blake2b} in archive order) and the checked segments (chk;
 * its digest is finished here). Returns 0 or STM_ECORRUPT with err saying
 * what differs.
 */
int stm_backup_manifest_check(const json_t *manifest, const json_t *files,
                              struct stm_backup_check *chk,
                              struct stm_error *err);

#endif
