/*
 * backup_check.c - what backup, verify and restore all do to a WAL segment
 * image: validate it (frames, CRCs, seal, continuity) and decode every
 * claim, recomputing its content hash into a running digest.
 */
#include "backup_check.h"

#include "common/hex.h"
#include "storage/backup.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void stm_backup_check_init(struct stm_backup_check *c) {
  memset(c, 0, sizeof *c);
  c->next_sequence = 1;
  crypto_generichash_init(&c->digest, NULL, 0, STM_HASH_LEN);
}

void stm_backup_check_digest_hex(struct stm_backup_check *c, char out[65]) {
  uint8_t h[STM_HASH_LEN];
  crypto_generichash_final(&c->digest, h, sizeof h);
  for (int i = 0; i < STM_HASH_LEN; i++)
    snprintf(out + 2 * i, 3, "%02x", h[i]);
}

void stm_backup_check_blake2b_hex(const void *data, size_t len, char out[65]) {
  uint8_t h[32];
  crypto_generichash(h, sizeof h, data, len, NULL, 0);
  stm_hex_encode(h, sizeof h, out);
}

static int on_claim(void *ctx, const struct stm_claim *claim,
                    uint64_t sequence) {
  (void)sequence;
  struct stm_backup_check *c = ctx;
  crypto_generichash_update(&c->digest, claim->hash, STM_HASH_LEN);
  c->claims++;
  return 0;
}

int stm_backup_check_segment(struct stm_backup_check *c, const char *name,
                             const uint8_t *data, size_t len, bool *sealed,
                             struct stm_error *err) {
  struct stm_backup_segment_info si;
  int rc = stm_backup_segment_verify(name, data, len, false, &si, err);
  if (rc)
    return rc;
  if (si.first_sequence != c->next_sequence)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "%s starts at sequence %" PRIu64 " but %" PRIu64
                         " was expected: a segment is missing",
                         name, si.first_sequence, c->next_sequence);
  rc =
      stm_backup_segment_claims(name, data, len, on_claim, c, &c->entries, err);
  if (rc)
    return rc;
  if (si.last_sequence >= si.first_sequence) /* it holds records */
    c->last_commit_time_ns = si.last_commit_time_ns;
  c->next_sequence = si.last_sequence + 1;
  c->segments++;
  *sealed = si.sealed;
  return 0;
}
