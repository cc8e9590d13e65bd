/*
 * records.h - the records beside claims: votes, epochs, sources, API keys
 * and their revocations, and the audit entry, as domain structs (part of store.h's interface, as claim.h
 * is), and their encodings inside storage/ (WAL entries and LevelDB
 * values, docs/formats.md "Records"). Submission and reads: store.h.
 */
#ifndef STM_RECORDS_H
#define STM_RECORDS_H

#include "common/buf.h"
#include "common/error.h"
#include "storage/claim.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STM_AUDIT_OP_MAX 32
#define STM_AUDIT_CALLER_MAX 256

enum stm_record_kind {
  STM_RECORD_CLAIM = 1,
  STM_RECORD_VOTE = 2,
  STM_RECORD_EPOCH = 3,
  STM_RECORD_SOURCE = 4,
  /* 5 and 6 are WAL entry kinds (audit wrapper, retime), never records */
  STM_RECORD_API_KEY = 7,    /* an API key was created (service/auth.h) */
  STM_RECORD_KEY_REVOKE = 8, /* an API key id was revoked */
};

/* Is k a record kind (claims included)? */
static inline bool stm_record_kind_valid(unsigned k) {
  return (k >= STM_RECORD_CLAIM && k <= STM_RECORD_SOURCE) ||
         k == STM_RECORD_API_KEY || k == STM_RECORD_KEY_REVOKE;
}
/* API key records: never in change feeds or data reads (auth.h). */
static inline bool stm_record_kind_is_key(unsigned k) {
  return k == STM_RECORD_API_KEY || k == STM_RECORD_KEY_REVOKE;
}
/* Kinds every node holds (shard STM_STORE_SHARD_ALL): sources and keys. */
static inline bool stm_record_kind_everywhere(unsigned k) {
  return k == STM_RECORD_SOURCE || stm_record_kind_is_key(k);
}

struct stm_vote {
  uint8_t hash[STM_HASH_LEN]; /* of target, voter_id, weight, timestamp */
  uint8_t target[STM_HASH_LEN];
  char *voter_id;
  double weight; /* -1..1 */
  int64_t timestamp_ns;
  uint64_t sequence;
  int64_t commit_time_ns;
};

struct stm_epoch {
  uint8_t hash[STM_HASH_LEN]; /* of path, predicate, reason, ts, number */
  char *concept_path;
  char *predicate; /* "" : the whole concept */
  char *reason;
  int64_t timestamp_ns;
  uint64_t number; /* 1, 2, ... per concept/predicate; set by the writer */
  uint64_t sequence;
  int64_t commit_time_ns;
};

struct stm_source {
  uint8_t hash[STM_HASH_LEN]; /* of this version's content */
  char *id;
  char *name;
  uint32_t tier; /* 0..5 */
  double trust;  /* 0..1 */
  bool has_public_key;
  uint8_t public_key[STM_PUBLIC_KEY_LEN];
  int64_t timestamp_ns;
  uint64_t sequence;
  int64_t commit_time_ns;
};

/* An API key: only the BLAKE2b-256 hash of its secret is ever stored.
 * Immutable; a revocation is a record of its own (stm_key_revoke), so
 * the set of records is grow-only and any arrival order gives the same
 * table: a key is live iff it is stored and no revocation names its id. */
struct stm_api_key {
  uint8_t hash[STM_HASH_LEN]; /* of the content below */
  char *id;                   /* 12 hex characters */
  char *name;
  uint8_t role; /* 1 reader, 2 writer, 3 admin (auth.h) */
  uint8_t secret_hash[STM_HASH_LEN];
  int64_t created_ns;
  char *creator; /* the caller that created it */
  uint64_t sequence;
  int64_t commit_time_ns;
};

struct stm_key_revoke {
  uint8_t hash[STM_HASH_LEN]; /* of id, timestamp, by */
  char *id;
  int64_t timestamp_ns;
  char *by; /* the caller that revoked it */
  uint64_t sequence;
  int64_t commit_time_ns;
};

/* One vote, epoch, source or key record to submit (claims go through
 * their own path). */
struct stm_record {
  enum stm_record_kind kind;
  union {
    struct stm_vote vote;
    struct stm_epoch epoch;
    struct stm_source source;
    struct stm_api_key key;
    struct stm_key_revoke revoke;
  } u;
};

struct stm_audit_entry {
  uint64_t sequence;
  int64_t time_ns;
  enum stm_record_kind kind;
  uint8_t target[STM_HASH_LEN];
  char op[STM_AUDIT_OP_MAX];
  char caller[STM_AUDIT_CALLER_MAX];
};

void stm_record_init(struct stm_record *r, enum stm_record_kind kind);
void stm_record_destroy(struct stm_record *r);
void stm_vote_destroy(struct stm_vote *v);
void stm_epoch_destroy(struct stm_epoch *e);
void stm_source_destroy(struct stm_source *s);

/* The content hash and the sequence of a vote, epoch or source. */
const uint8_t *stm_record_hash(const struct stm_record *r);
uint64_t stm_record_sequence(const struct stm_record *r);
int64_t stm_record_commit_time(const struct stm_record *r);
void stm_record_set_commit(struct stm_record *r, uint64_t seq, int64_t t);
/* The record's own time (a vote's, epoch's or source's timestamp_ns, a
 * key's created_ns, a revocation's timestamp_ns). */
int64_t *stm_record_timestamp(struct stm_record *r);
/* Compute r's content hash into its hash field. Returns 0 or STM_ENOMEM. */
int stm_record_compute_hash(struct stm_record *r);
/* Storage encoding (content, then sequence and commit time). */
int stm_record_encode(const struct stm_record *r, struct stm_buf *out);
/*
 * Decode a record of `kind` into an uninitialized *out (stm_record_destroy
 * it after a 0 return). Returns 0 or STM_ECORRUPT; never reads past len.
 * The hash is recomputed from the content.
 */
int stm_record_decode(enum stm_record_kind kind, const void *data, size_t len,
                      struct stm_record *out, struct stm_error *err);

/*
 * The kind-5 WAL wrapper: u8 inner kind | u8 op_len | op | u16le
 * caller_len | caller | inner entry bytes. Header only; the inner payload
 * follows. op and caller are cut to their maximum lengths.
 */
int stm_audit_wrap_header(struct stm_buf *out, enum stm_record_kind inner,
                          const char *op, const char *caller);
size_t stm_audit_wrap_header_size(const char *op, const char *caller);
/* Split a wrapper: fills *inner, op, caller and the inner payload span. */
int stm_audit_unwrap(const void *data, size_t len, enum stm_record_kind *inner,
                     char op[STM_AUDIT_OP_MAX],
                     char caller[STM_AUDIT_CALLER_MAX], const uint8_t **payload,
                     size_t *payload_len, struct stm_error *err);

#endif
