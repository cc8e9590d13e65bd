/*
 * claim.h - the claim (assertion) as storage and the lens engine see it,
 * its canonical encoding, content hash and storage encoding.
 *
 * The content hash is BLAKE2b-256 (libsodium crypto_generichash, no key) of
 * the canonical encoding of the content fields only: concept_path,
 * predicate, value, source_id, confidence, timestamp_ns, parent_hash. Never
 * the sequence, commit time, epoch or signature. docs/formats.md has the
 * byte layout; changing it changes every hash, so it is versioned.
 *
 * Strings in a claim are NUL-terminated heap copies owned by the claim
 * (stm_claim_destroy frees them). A string value may contain NUL bytes, so
 * its length is explicit.
 */
#ifndef STM_CLAIM_H
#define STM_CLAIM_H

#include "common/buf.h"
#include "common/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STM_HASH_LEN 32
#define STM_HASH_HEX_LEN 64
#define STM_SIGNATURE_LEN 64
#define STM_PUBLIC_KEY_LEN 32

enum stm_value_kind {
  STM_VALUE_NONE = 0, /* only in a not-yet-filled claim; never stored */
  STM_VALUE_STRING = 1,
  STM_VALUE_NUMBER = 2,
  STM_VALUE_BOOL = 3,
  STM_VALUE_REF = 4,
};

struct stm_value {
  enum stm_value_kind kind;
  char *str;      /* STRING and REF: owned, NUL-terminated */
  size_t str_len; /* bytes in str, without the terminator */
  double number;  /* NUMBER; -0.0 is stored as 0.0 */
  bool boolean;   /* BOOL */
};

struct stm_claim {
  uint8_t hash[STM_HASH_LEN]; /* content hash; see stm_claim_compute_hash */
  bool hashed; /* hash matches the content: set by stm_claim_compute_hash;
                  whoever changes content after must clear it */
  char *concept_path; /* owned */
  char *predicate;    /* owned */
  struct stm_value value;
  char *source_id; /* owned; "" when no source */
  double confidence;
  int64_t timestamp_ns;
  bool has_parent;
  uint8_t parent_hash[STM_HASH_LEN];
  bool has_signature;
  uint8_t signature[STM_SIGNATURE_LEN];
  uint8_t public_key[STM_PUBLIC_KEY_LEN];
  /* Assigned at commit; not content. */
  uint64_t sequence;
  int64_t commit_time_ns;
  uint64_t epoch;
};

/* Zero everything: empty strings are NULL, value kind NONE, confidence 1. */
void stm_claim_init(struct stm_claim *c);
/* Free the owned strings and re-init. Safe on an init'ed claim. */
void stm_claim_destroy(struct stm_claim *c);
/* Deep copy into an uninitialized dst. Returns 0 or STM_ENOMEM. */
int stm_claim_copy(struct stm_claim *dst, const struct stm_claim *src);

/*
 * Set a string member from (data, len): copies and NUL-terminates.
 * `*slot` is freed first. Returns 0 or STM_ENOMEM.
 */
int stm_claim_set_str(char **slot, const char *data, size_t len);
/* Set the value (kind STRING or REF copies data; NUMBER/BOOL ignore it). */
int stm_value_set_str(struct stm_value *v, enum stm_value_kind kind,
                      const char *data, size_t len);
/* Deep copy of a value into an uninitialized dst. */
int stm_value_copy(struct stm_value *dst, const struct stm_value *src);
void stm_value_destroy(struct stm_value *v);
/* Total order on values (kind first, then content); 0 when equal. */
int stm_value_compare(const struct stm_value *a, const struct stm_value *b);

/*
 * Append the canonical encoding of the content fields to `out`. NULL
 * strings encode as "". Returns 0, STM_ENOMEM, or STM_EINVAL when the
 * content cannot be encoded (value kind NONE, a NaN or infinite number or
 * confidence); `out` is unchanged on error.
 */
int stm_claim_canonical(const struct stm_claim *c, struct stm_buf *out);
/*
 * Compute the content hash into c->hash. Returns 0 or STM_ENOMEM (or
 * STM_EINVAL as stm_claim_canonical does for content it cannot encode).
 */
int stm_claim_compute_hash(struct stm_claim *c);

/*
 * Storage encoding: canonical content plus sequence, commit time, epoch
 * and signature. Used for the WAL and for LevelDB values.
 */
int stm_claim_encode(const struct stm_claim *c, struct stm_buf *out);
/*
 * The exact number of bytes stm_claim_encode appends for `c` (NULL strings
 * count as ""). Lets the store bound a submission before it is queued.
 */
size_t stm_claim_encoded_size(const struct stm_claim *c);
/*
 * Decode into an init'ed `out` (its old contents are destroyed). Returns 0
 * or STM_ECORRUPT with a message in err; never reads past len. The hash is
 * recomputed from the content, so a decoded claim's hash always matches it.
 */
int stm_claim_decode(const void *data, size_t len, struct stm_claim *out,
                     struct stm_error *err);

#endif
