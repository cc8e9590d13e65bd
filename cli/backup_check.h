/*
 * backup_check.h - validation of backed-up WAL segments shared by
 * `stemedb backup`, `verify` and `restore` (cli/backup.c).
 */
#ifndef STM_CLI_BACKUP_CHECK_H
#define STM_CLI_BACKUP_CHECK_H

#include "common/error.h"

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stm_backup_check {
  uint64_t next_sequence; /* the next segment must start here */
  uint64_t segments;
  uint64_t entries; /* WAL entries of every kind */
  uint64_t claims;
  int64_t last_commit_time_ns;
  crypto_generichash_state digest; /* BLAKE2b-256 of the claim hashes */
};

void stm_backup_check_init(struct stm_backup_check *c);
/* Finish the digest (once) as 64 hex characters. */
void stm_backup_check_digest_hex(struct stm_backup_check *c, char out[65]);
/* BLAKE2b-256 of (data, len) as 64 hex characters. */
void stm_backup_check_blake2b_hex(const void *data, size_t len, char out[65]);

/*
 * Validate the next segment image in sequence order (stm_wal_segment_verify
 * plus continuity with the previous one), decode every claim and add its
 * recomputed content hash to the digest. *sealed says whether it ends with
 * a seal (every segment but the last of a backup must). Returns 0 or
 * STM_ECORRUPT/STM_EUNIMPL with err naming the file and offset.
 */
int stm_backup_check_segment(struct stm_backup_check *c, const char *name,
                             const uint8_t *data, size_t len, bool *sealed,
                             struct stm_error *err);

#endif
