/*
 * wal_format.h - the bytes of WAL segment files (docs/formats.md).
 *
 * Segment file DIR/wal/<first sequence, 20 digits>.wal:
 *
 *   offset 0                    8         12                 20        24
 *   +---------------------------+---------+------------------+---------+
 *   | magic "STMWAL01"          | version | first_sequence   | crc32c  |
 *   |                           | u32le 1 | u64le            | u32le   |
 *   +---------------------------+---------+------------------+---------+
 *   crc32c covers bytes 0..19. Records follow until the end of the file.
 *
 * Record:
 *
 *   +---------------+---------------+--------+---------------------+
 *   | payload_len   | crc32c        | type   | payload             |
 *   | u32le         | u32le         | u8     | payload_len bytes   |
 *   +---------------+---------------+--------+---------------------+
 *   crc32c covers type + payload. payload_len <= STM_WAL_MAX_PAYLOAD.
 *
 * TXN payload (type 1), one all-or-nothing transaction:
 *
 *   +----------------+----------------+--------+---------+---------+--
 *   | first_sequence | commit_time_ns | count  | entry 0 | entry 1 | ...
 *   | u64le          | i64le          | u32le  |         |         |
 *   +----------------+----------------+--------+---------+---------+--
 *   entry: u8 kind | u32le len | len bytes. Entry i has sequence
 *   first_sequence + i; count >= 1. Kind 1 is a claim in its storage
 *   encoding (storage/claim.h); 2 vote, 3 epoch and 4 source are records
 *   in theirs (storage/records.h); 5 is the audit wrapper, the caller and
 *   operation around one entry of another kind (docs/formats.md); 6 is a
 *   RETIME (below); 7 an API key and 8 a key revocation (records.h; in
 *   practice always inside a kind-5 wrapper). Each claim/record encoding
 *   carries its own sequence and commit time: commit_time_ns of the TXN is when THIS node wrote
 *   the group (what PITR cuts by), while an entry replicated from another
 *   node keeps its origin's, earlier, commit time (issue 12).
 *
 * SEAL payload (type 2), the last record of every sealed segment, written
 * (and fdatasync'd) before the next segment is created:
 *
 *   +----------------+----------------+-------------+----------------+
 *   | last_sequence  | covered_bytes  | segment_crc | commit_time_ns |
 *   | u64le          | u64le          | u32le       | i64le          |
 *   +----------------+----------------+-------------+----------------+
 *   covered_bytes is the offset of the seal record itself; segment_crc is
 *   the CRC-32C of bytes [0, covered_bytes) of the file (header and every
 *   record), so a sealed segment is checksummed as a whole; commit_time_ns
 *   is that of its last record. Nothing may follow a seal.
 *
 * Decoders take explicit [pos, end) bounds and never read outside them.
 * Every function here is pure (no I/O, no global state) and thread-safe.
 */
#ifndef STM_WAL_FORMAT_H
#define STM_WAL_FORMAT_H

#include "common/buf.h"
#include "common/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STM_WAL_MAGIC "STMWAL01"
#define STM_WAL_FORMAT_VERSION 1u
#define STM_WAL_HEADER_LEN 24
#define STM_WAL_RECORD_HEADER_LEN 9
#define STM_WAL_TXN_HEADER_LEN 20
#define STM_WAL_ENTRY_HEADER_LEN 5
/* One record (one submission) is at most 64 MiB of payload. */
#define STM_WAL_MAX_PAYLOAD (64u << 20)

enum stm_wal_record_type {
  STM_WAL_RECORD_TXN = 1,
  STM_WAL_RECORD_SEAL = 2,
};

#define STM_WAL_SEAL_LEN 28

enum stm_wal_entry_kind {
  STM_WAL_ENTRY_CLAIM = 1,
  STM_WAL_ENTRY_VOTE = 2,    /* a vote record (records.h) */
  STM_WAL_ENTRY_EPOCH = 3,   /* an epoch record */
  STM_WAL_ENTRY_SOURCE = 4,  /* a source version */
  STM_WAL_ENTRY_AUDIT = 5,   /* op + caller wrapping one entry of 1-4, 7, 8 */
  STM_WAL_ENTRY_RETIME = 6,  /* an earlier origin time for a stored record */
  STM_WAL_ENTRY_API_KEY = 7, /* an API key record (records.h) */
  STM_WAL_ENTRY_KEY_REVOKE = 8, /* an API key revocation record */
};

/* RETIME entry (kind 6, issue 12): a record replicated from another node
 * that this node already stores, committed there EARLIER: the stored copy
 * takes the earlier commit time (the earliest wins everywhere). It uses a
 * sequence like any entry but adds no record:
 *
 *   +--------+-----------+----------------+
 *   | kind   | hash      | commit_time_ns |
 *   | u8 1-4 | 32 bytes  | i64le          |
 *   +--------+-----------+----------------+
 */
#define STM_WAL_RETIME_LEN (1 + 32 + 8)

/* ---- segment header ---------------------------------------------------- */

void stm_wal_header_encode(uint8_t out[STM_WAL_HEADER_LEN],
                           uint64_t first_sequence);
/*
 * Returns 0 and *first_sequence; STM_ECORRUPT when the header is short, its
 * magic or CRC is wrong (a torn or damaged header); STM_EUNIMPL when it is
 * a valid header of a format version this build does not know.
 */
int stm_wal_header_decode(const uint8_t *pos, const uint8_t *end,
                          uint64_t *first_sequence, struct stm_error *err);

/* ---- record framing ---------------------------------------------------- */

enum stm_wal_decode {
  STM_WAL_DECODE_OK = 0,
  STM_WAL_DECODE_TRUNCATED = 1, /* the bytes end inside the record */
  STM_WAL_DECODE_CORRUPT = 2,   /* CRC mismatch or impossible length */
};

struct stm_wal_record {
  uint8_t type;
  const uint8_t *payload; /* borrowed from the input */
  size_t payload_len;
  size_t size; /* header + payload: where the next record starts */
};

/*
 * Classify the record at pos. On OK fills *rec; otherwise *why (may be
 * NULL) gets a static description. The type is not checked here: a valid
 * frame of an unknown type is OK at this level and rejected by its reader.
 */
enum stm_wal_decode stm_wal_record_decode(const uint8_t *pos,
                                          const uint8_t *end,
                                          struct stm_wal_record *rec,
                                          const char **why);

/* Append one framed record. Returns 0, STM_ENOMEM or STM_ETOOBIG. */
int stm_wal_record_append(struct stm_buf *out, uint8_t type,
                          const void *payload, size_t len);

/* ---- SEAL records -------------------------------------------------------- */

struct stm_wal_seal {
  uint64_t last_sequence;
  uint64_t covered_bytes;
  uint32_t segment_crc;
  int64_t last_commit_time_ns;
};

/* Append one framed SEAL record. Returns 0 or STM_ENOMEM. */
int stm_wal_seal_append(struct stm_buf *out, const struct stm_wal_seal *seal);
/* Decode a SEAL payload. Returns 0 or STM_ECORRUPT (wrong length). */
int stm_wal_seal_decode(const uint8_t *pos, const uint8_t *end,
                        struct stm_wal_seal *seal, struct stm_error *err);

/* ---- TXN records --------------------------------------------------------- */

/*
 * Builds one TXN record in place at the end of `out`:
 *   begin, then per entry: entry_begin, append its bytes to out, entry_end;
 *   then finish (fills lengths, count and CRC) or abort (drops the record).
 * On any error the caller must abort.
 */
struct stm_wal_txn_builder {
  struct stm_buf *out;
  size_t record_start;
  size_t entry_start;
  uint32_t count;
};

int stm_wal_txn_begin(struct stm_wal_txn_builder *b, struct stm_buf *out,
                      uint64_t first_sequence, int64_t commit_time_ns);
int stm_wal_txn_entry_begin(struct stm_wal_txn_builder *b, uint8_t kind);
/* Returns 0 or STM_ETOOBIG. */
int stm_wal_txn_entry_end(struct stm_wal_txn_builder *b);
/* Returns 0, STM_EINVAL (no entries) or STM_ETOOBIG. */
int stm_wal_txn_finish(struct stm_wal_txn_builder *b);
void stm_wal_txn_abort(struct stm_wal_txn_builder *b);

struct stm_wal_txn {
  uint64_t first_sequence;
  int64_t commit_time_ns;
  uint32_t count;
  const uint8_t *entries; /* borrowed: the first entry */
  const uint8_t *end;
};

/*
 * Decode and fully validate a TXN payload: count >= 1, first_sequence >= 1
 * without overflow, every entry framed inside the payload, no trailing
 * bytes. Entry contents are not interpreted. Returns 0 or STM_ECORRUPT.
 */
int stm_wal_txn_decode(const uint8_t *pos, const uint8_t *end,
                       struct stm_wal_txn *txn, struct stm_error *err);

/* The last sequence a validated TXN covers. */
uint64_t stm_wal_txn_last_sequence(const struct stm_wal_txn *txn);

struct stm_wal_entry {
  uint8_t kind;
  uint64_t sequence;
  const uint8_t *data; /* borrowed */
  size_t len;
};

struct stm_wal_txn_iter {
  const struct stm_wal_txn *txn;
  const uint8_t *pos;
  uint32_t index;
};

/* Iterate the entries of a TXN that stm_wal_txn_decode accepted. */
void stm_wal_txn_iter_init(struct stm_wal_txn_iter *it,
                           const struct stm_wal_txn *txn);
bool stm_wal_txn_next(struct stm_wal_txn_iter *it, struct stm_wal_entry *e);

#endif
