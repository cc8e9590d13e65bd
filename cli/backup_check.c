/*
 * backup_check.c - what backup, verify and restore all do to a WAL segment
 * image: validate it (frames, CRCs, seal, continuity) and decode every
 * claim, recomputing its content hash into a running digest.
 */
#include "backup_check.h"

#include "../common/hex.h"
#include "../storage/claim.h"
#include "../storage/records.h"
#include "../storage/wal.h"
#include "../storage/wal_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void cli_check_init(struct cli_check *c) {
  memset(c, 0, sizeof *c);
  c->next_sequence = 1;
  crypto_generichash_init(&c->digest, NULL, 0, STM_HASH_LEN);
}

void cli_check_digest_hex(struct cli_check *c, char out[65]) {
  uint8_t h[STM_HASH_LEN];
  crypto_generichash_final(&c->digest, h, sizeof h);
  for (int i = 0; i < STM_HASH_LEN; i++)
    snprintf(out + 2 * i, 3, "%02x", h[i]);
}

void cli_blake2b_hex(const void *data, size_t len, char out[65]) {
  uint8_t h[32];
  crypto_generichash(h, sizeof h, data, len, NULL, 0);
  stm_hex_encode(h, sizeof h, out);
}

static int check_claims(struct cli_check *c, const char *name,
                        const uint8_t *data, size_t len,
                        struct stm_error *err) {
  size_t pos = STM_WAL_HEADER_LEN;
  while (pos < len) {
    struct stm_wal_record rec;
    struct stm_wal_txn txn;
    stm_wal_record_decode(data + pos, data + len, &rec, NULL);
    if (rec.type != STM_WAL_RECORD_TXN)
      break; /* the seal */
    stm_wal_txn_decode(rec.payload, rec.payload + rec.payload_len, &txn,
                       NULL);
    struct stm_wal_txn_iter it;
    struct stm_wal_entry e;
    stm_wal_txn_iter_init(&it, &txn);
    while (stm_wal_txn_next(&it, &e)) {
      c->entries++;
      struct stm_error sub;
      stm_error_clear(&sub);
      const uint8_t *payload = e.data;
      size_t plen = e.len;
      int rc = 0;
      if (e.kind == STM_WAL_ENTRY_AUDIT) { /* an audited write: unwrap it */
        enum stm_record_kind inner;
        char op[STM_AUDIT_OP_MAX], caller[STM_AUDIT_CALLER_MAX];
        rc = stm_audit_unwrap(e.data, e.len, &inner, op, caller, &payload,
                              &plen, &sub);
        if (rc == 0 && inner != STM_RECORD_CLAIM)
          continue; /* votes, epochs, sources: framed and CRC'd only */
      } else if (e.kind != STM_WAL_ENTRY_CLAIM) {
        continue;
      }
      struct stm_claim claim;
      stm_claim_init(&claim);
      rc = rc ? rc : stm_claim_decode(payload, plen, &claim, &sub);
      rc = rc ? rc : stm_claim_compute_hash(&claim);
      if (rc) {
        stm_claim_destroy(&claim);
        return stm_error_set(err, STM_ECORRUPT, NULL,
                             "%s at offset %zu: the claim at sequence "
                             "%" PRIu64 " does not decode: %s",
                             name, pos, e.sequence,
                             sub.message[0] ? sub.message : stm_strerror(rc));
      }
      crypto_generichash_update(&c->digest, claim.hash, STM_HASH_LEN);
      stm_claim_destroy(&claim);
      c->claims++;
    }
    c->last_commit_time_ns = txn.commit_time_ns;
    pos += rec.size;
  }
  return 0;
}

int cli_check_segment(struct cli_check *c, const char *name,
                      const uint8_t *data, size_t len, bool *sealed,
                      struct stm_error *err) {
  struct stm_wal_segment_info si;
  int rc = stm_wal_segment_verify(name, data, len, false, &si, err);
  if (rc)
    return rc;
  if (si.first_sequence != c->next_sequence)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "%s starts at sequence %" PRIu64 " but %" PRIu64
                         " was expected: a segment is missing",
                         name, si.first_sequence, c->next_sequence);
  rc = check_claims(c, name, data, len, err);
  if (rc)
    return rc;
  c->next_sequence = si.last_sequence + 1;
  c->segments++;
  *sealed = si.sealed;
  return 0;
}
