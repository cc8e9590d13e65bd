#include "wal_format.h"

#include "crc32c.h"

#include <assert.h>
#include <string.h>

static_assert(sizeof STM_WAL_MAGIC - 1 == 8, "the magic is 8 bytes");

/* ---- segment header ---------------------------------------------------- */

void stm_wal_header_encode(uint8_t out[STM_WAL_HEADER_LEN],
                           uint64_t first_sequence) {
  memcpy(out, STM_WAL_MAGIC, 8);
  stm_buf_store_u32le(out + 8, STM_WAL_FORMAT_VERSION);
  stm_buf_store_u64le(out + 12, first_sequence);
  stm_buf_store_u32le(out + 20, stm_crc32c(out, 20));
}

int stm_wal_header_decode(const uint8_t *pos, const uint8_t *end,
                          uint64_t *first_sequence, struct stm_error *err) {
  if (end - pos < STM_WAL_HEADER_LEN)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "segment header is truncated (%td of %d bytes)",
                         end - pos, STM_WAL_HEADER_LEN);
  if (memcmp(pos, STM_WAL_MAGIC, 8) != 0)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "segment header has a bad magic");
  if (stm_buf_load_u32le(pos + 20) != stm_crc32c(pos, 20))
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "segment header CRC mismatch");
  uint32_t version = stm_buf_load_u32le(pos + 8);
  if (version != STM_WAL_FORMAT_VERSION)
    return stm_error_set(err, STM_EUNIMPL, NULL,
                         "segment format version %u is not supported "
                         "(this build reads version %u)",
                         version, STM_WAL_FORMAT_VERSION);
  *first_sequence = stm_buf_load_u64le(pos + 12);
  return 0;
}

/* ---- record framing ---------------------------------------------------- */

static uint32_t record_crc(uint8_t type, const uint8_t *payload, size_t len) {
  return stm_crc32c_extend(stm_crc32c(&type, 1), payload, len);
}

enum stm_wal_decode stm_wal_record_decode(const uint8_t *pos,
                                          const uint8_t *end,
                                          struct stm_wal_record *rec,
                                          const char **why) {
  const char *unused = NULL;
  why = why ? why : &unused;
  size_t avail = (size_t)(end - pos);
  if (avail < STM_WAL_RECORD_HEADER_LEN) {
    *why = "record header is truncated";
    return STM_WAL_DECODE_TRUNCATED;
  }
  uint32_t len = stm_buf_load_u32le(pos);
  if (len > STM_WAL_MAX_PAYLOAD) {
    *why = "record length exceeds the maximum";
    return STM_WAL_DECODE_CORRUPT;
  }
  if (avail - STM_WAL_RECORD_HEADER_LEN < len) {
    *why = "record payload is truncated";
    return STM_WAL_DECODE_TRUNCATED;
  }
  uint8_t type = pos[8];
  const uint8_t *payload = pos + STM_WAL_RECORD_HEADER_LEN;
  if (stm_buf_load_u32le(pos + 4) != record_crc(type, payload, len)) {
    *why = "record CRC mismatch";
    return STM_WAL_DECODE_CORRUPT;
  }
  rec->type = type;
  rec->payload = payload;
  rec->payload_len = len;
  rec->size = STM_WAL_RECORD_HEADER_LEN + (size_t)len;
  *why = NULL;
  return STM_WAL_DECODE_OK;
}

/* Fill the header of the record that starts at `start` and runs to the end. */
static int seal_record(struct stm_buf *out, size_t start, uint8_t type) {
  size_t len = out->len - start - STM_WAL_RECORD_HEADER_LEN;
  if (len > STM_WAL_MAX_PAYLOAD)
    return STM_ETOOBIG;
  uint8_t *h = out->data + start;
  stm_buf_store_u32le(h, (uint32_t)len);
  h[8] = type;
  stm_buf_store_u32le(h + 4,
                      record_crc(type, h + STM_WAL_RECORD_HEADER_LEN, len));
  return 0;
}

int stm_wal_record_append(struct stm_buf *out, uint8_t type,
                          const void *payload, size_t len) {
  if (len > STM_WAL_MAX_PAYLOAD)
    return STM_ETOOBIG;
  size_t start = out->len;
  uint8_t zero[STM_WAL_RECORD_HEADER_LEN] = {0};
  int rc = stm_buf_reserve(out, sizeof zero + len);
  rc = rc ? rc : stm_buf_append(out, zero, sizeof zero);
  rc = rc ? rc : stm_buf_append(out, payload, len);
  rc = rc ? rc : seal_record(out, start, type);
  if (rc)
    out->len = start;
  return rc;
}

/* ---- SEAL records -------------------------------------------------------- */

int stm_wal_seal_append(struct stm_buf *out, const struct stm_wal_seal *seal) {
  uint8_t p[STM_WAL_SEAL_LEN];
  stm_buf_store_u64le(p, seal->last_sequence);
  stm_buf_store_u64le(p + 8, seal->covered_bytes);
  stm_buf_store_u32le(p + 16, seal->segment_crc);
  stm_buf_store_u64le(p + 20, (uint64_t)seal->last_commit_time_ns);
  return stm_wal_record_append(out, STM_WAL_RECORD_SEAL, p, sizeof p);
}

int stm_wal_seal_decode(const uint8_t *pos, const uint8_t *end,
                        struct stm_wal_seal *seal, struct stm_error *err) {
  if (end - pos != STM_WAL_SEAL_LEN)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "seal payload is %td bytes, not %d", end - pos,
                         STM_WAL_SEAL_LEN);
  seal->last_sequence = stm_buf_load_u64le(pos);
  seal->covered_bytes = stm_buf_load_u64le(pos + 8);
  seal->segment_crc = stm_buf_load_u32le(pos + 16);
  seal->last_commit_time_ns = (int64_t)stm_buf_load_u64le(pos + 20);
  return 0;
}

/* ---- TXN builder --------------------------------------------------------- */

int stm_wal_txn_begin(struct stm_wal_txn_builder *b, struct stm_buf *out,
                      uint64_t first_sequence, int64_t commit_time_ns) {
  b->out = out;
  b->record_start = out->len;
  b->entry_start = 0;
  b->count = 0;
  uint8_t head[STM_WAL_RECORD_HEADER_LEN + STM_WAL_TXN_HEADER_LEN] = {0};
  uint8_t *txn = head + STM_WAL_RECORD_HEADER_LEN;
  stm_buf_store_u64le(txn, first_sequence);
  stm_buf_store_u64le(txn + 8, (uint64_t)commit_time_ns);
  return stm_buf_append(out, head, sizeof head);
}

int stm_wal_txn_entry_begin(struct stm_wal_txn_builder *b, uint8_t kind) {
  b->entry_start = b->out->len;
  uint8_t head[STM_WAL_ENTRY_HEADER_LEN] = {kind, 0, 0, 0, 0};
  return stm_buf_append(b->out, head, sizeof head);
}

int stm_wal_txn_entry_end(struct stm_wal_txn_builder *b) {
  size_t len = b->out->len - b->entry_start - STM_WAL_ENTRY_HEADER_LEN;
  if (len > STM_WAL_MAX_PAYLOAD || b->count == UINT32_MAX)
    return STM_ETOOBIG;
  stm_buf_store_u32le(b->out->data + b->entry_start + 1, (uint32_t)len);
  b->count++;
  return 0;
}

int stm_wal_txn_finish(struct stm_wal_txn_builder *b) {
  if (b->count == 0)
    return STM_EINVAL;
  uint8_t *txn = b->out->data + b->record_start + STM_WAL_RECORD_HEADER_LEN;
  stm_buf_store_u32le(txn + 16, b->count);
  return seal_record(b->out, b->record_start, STM_WAL_RECORD_TXN);
}

void stm_wal_txn_abort(struct stm_wal_txn_builder *b) {
  b->out->len = b->record_start;
  b->count = 0;
}

/* ---- TXN reader ---------------------------------------------------------- */

int stm_wal_txn_decode(const uint8_t *pos, const uint8_t *end,
                       struct stm_wal_txn *txn, struct stm_error *err) {
  struct stm_reader r;
  stm_reader_init(&r, pos, (size_t)(end - pos));
  txn->first_sequence = stm_reader_u64le(&r);
  txn->commit_time_ns = (int64_t)stm_reader_u64le(&r);
  txn->count = stm_reader_u32le(&r);
  if (r.failed)
    return stm_error_set(err, STM_ECORRUPT, NULL, "TXN header is truncated");
  if (txn->count == 0 || txn->first_sequence == 0 ||
      txn->first_sequence > UINT64_MAX - txn->count)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "TXN has an impossible sequence range");
  txn->entries = r.pos;
  txn->end = end;
  for (uint32_t i = 0; i < txn->count; i++) {
    size_t len;
    (void)stm_reader_u8(&r);
    (void)stm_reader_lenbytes(&r, &len);
    if (r.failed)
      return stm_error_set(err, STM_ECORRUPT, NULL,
                           "TXN entry %u of %u is truncated", i, txn->count);
  }
  if (stm_reader_remaining(&r) != 0)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "TXN has bytes after its last entry");
  return 0;
}

uint64_t stm_wal_txn_last_sequence(const struct stm_wal_txn *txn) {
  return txn->first_sequence + txn->count - 1;
}

void stm_wal_txn_iter_init(struct stm_wal_txn_iter *it,
                           const struct stm_wal_txn *txn) {
  it->txn = txn;
  it->pos = txn->entries;
  it->index = 0;
}

bool stm_wal_txn_next(struct stm_wal_txn_iter *it, struct stm_wal_entry *e) {
  if (it->index >= it->txn->count)
    return false;
  struct stm_reader r;
  stm_reader_init(&r, it->pos, (size_t)(it->txn->end - it->pos));
  e->kind = stm_reader_u8(&r);
  e->data = stm_reader_lenbytes(&r, &e->len);
  assert(!r.failed); /* stm_wal_txn_decode validated the framing */
  e->sequence = it->txn->first_sequence + it->index;
  it->pos = r.pos;
  it->index++;
  return !r.failed;
}
