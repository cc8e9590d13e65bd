/*
 * wal.c - segments, recovery, append with one fdatasync, rotation, replay.
 * The contract and the failure model are in wal.h; the bytes in
 * wal_format.h.
 */
#include "wal.h"

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "crc32c.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_SEGMENT_BYTES (64u << 20)
#define SEGMENT_NAME_LEN 24 /* 20 digits + ".wal" */

struct stm_wal;
static_assert(sizeof(((struct stm_error *)0)->message) == 256,
              "poison_reason holds one error message");

struct stm_wal {
  char *dir;
  const struct stm_wal_io *io;
  uint64_t segment_bytes;
  uint64_t *segs; /* first sequence of every segment, ascending */
  size_t nsegs, cap;
  int fd;                /* the last segment, open for appending */
  uint64_t size;         /* durable size of the last segment */
  uint32_t seg_crc;      /* CRC-32C of bytes [0, size) of the last segment */
  bool last_sealed;      /* the last segment ends with a SEAL record */
  uint64_t sealed_bytes; /* sum of the sizes of all other segments */
  uint64_t last_sequence;
  int64_t last_commit_time_ns;
  uint64_t records_scanned;
  uint64_t truncated_bytes;
  bool poisoned;
  char poison_reason[256]; /* same size as stm_error.message */
  int64_t last_fsync_ns;   /* fdatasync time of the last good append */
  uint64_t io_errors;      /* failed append pwrite/fdatasync calls */
};

static void seg_path(const struct stm_wal *w, uint64_t first, char *out,
                     size_t cap) {
  snprintf(out, cap, "%s/%020" PRIu64 ".wal", w->dir, first);
}

static int io_error(struct stm_error *err, int neg_errno, const char *what,
                    const char *path) {
  int code = stm_error_from_errno(-neg_errno);
  if (code != STM_ENOSPC)
    code = STM_EIO;
  return stm_error_set(err, code, NULL, "WAL %s %s: %s", what, path,
                       strerror(-neg_errno));
}

/* ---- the segment list -------------------------------------------------- */

static int push_segment(struct stm_wal *w, uint64_t first) {
  if (w->nsegs == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 16;
    uint64_t *p = realloc(w->segs, cap * sizeof *p);
    if (p == NULL)
      return STM_ENOMEM;
    w->segs = p;
    w->cap = cap;
  }
  w->segs[w->nsegs++] = first;
  return 0;
}

static bool parse_segment_name(const char *name, uint64_t *first) {
  if (strlen(name) != SEGMENT_NAME_LEN || strcmp(name + 20, ".wal") != 0)
    return false;
  uint64_t v = 0;
  for (int i = 0; i < 20; i++) {
    if (name[i] < '0' || name[i] > '9')
      return false;
    unsigned d = (unsigned)(name[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return false;
    v = v * 10 + d;
  }
  *first = v;
  return true;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int list_segments(struct stm_wal *w, struct stm_error *err) {
  DIR *d = opendir(w->dir);
  if (d == NULL)
    return io_error(err, -errno, "cannot list directory", w->dir);
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    uint64_t first;
    if (parse_segment_name(e->d_name, &first))
      rc = push_segment(w, first);
  }
  closedir(d);
  if (rc)
    return stm_error_set(err, rc, NULL, "WAL: out of memory listing %s",
                         w->dir);
  if (w->nsegs > 1)
    qsort(w->segs, w->nsegs, sizeof *w->segs, cmp_u64);
  return 0;
}

/* ---- reading and scanning segments ------------------------------------- */

/* Read [0, size) of an open segment into buf. */
static int read_segment(const struct stm_wal *w, int fd, const char *path,
                        uint64_t size, struct stm_buf *buf,
                        struct stm_error *err) {
  stm_buf_reset(buf);
  if (size > SIZE_MAX || stm_buf_reserve(buf, (size_t)size))
    return stm_error_set(err, STM_ENOMEM, NULL,
                         "WAL: no memory to read %s (%" PRIu64 " bytes)", path,
                         size);
  int e = stm_wal_io_pread_full(w->io, fd, buf->data, (size_t)size, 0);
  if (e)
    return io_error(err, e, "cannot read", path);
  buf->len = (size_t)size;
  return 0;
}

/* Walks the records of one segment, checking sequence continuity. */
struct seg_scan {
  const char *path;
  const uint8_t *data;
  size_t size;
  uint64_t expected; /* the next sequence the log must continue with */
  int64_t last_commit_time_ns;
  uint64_t records;
  size_t good_end; /* offset just after the last valid record */
  const char *why; /* set when the walk stopped at a bad frame */
  bool sealed;     /* the walk ended at a valid SEAL record */
  uint64_t after;  /* replay: visit TXNs ending after this sequence */
  stm_wal_replay_cb cb;
  void *ctx;
};

static int check_txn(struct seg_scan *s, const struct stm_wal_record *rec,
                     struct stm_wal_txn *txn, struct stm_error *err) {
  if (rec->type != STM_WAL_RECORD_TXN)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s: record at offset %zu has unknown type %u "
                         "(written by a newer version?)",
                         s->path, s->good_end, rec->type);
  struct stm_error sub;
  stm_error_clear(&sub);
  if (stm_wal_txn_decode(rec->payload, rec->payload + rec->payload_len, txn,
                         &sub))
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s: record at offset %zu: %s", s->path,
                         s->good_end, sub.message);
  if (txn->first_sequence != s->expected)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s: record at offset %zu starts at sequence "
                         "%" PRIu64 " but %" PRIu64 " was expected",
                         s->path, s->good_end, txn->first_sequence,
                         s->expected);
  return 0;
}

/*
 * A SEAL must continue the log, cover exactly the bytes before it, carry
 * their CRC and be the last thing in the file.
 */
static int check_seal(struct seg_scan *s, const struct stm_wal_record *rec,
                      struct stm_error *err) {
  struct stm_wal_seal seal;
  struct stm_error sub;
  stm_error_clear(&sub);
  if (stm_wal_seal_decode(rec->payload, rec->payload + rec->payload_len, &seal,
                          &sub))
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s: seal at offset %zu: %s", s->path, s->good_end,
                         sub.message);
  if (seal.last_sequence != s->expected - 1 ||
      seal.covered_bytes != s->good_end)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s: seal at offset %zu says sequence %" PRIu64
                         " and %" PRIu64 " bytes, the segment holds %" PRIu64
                         " and %zu",
                         s->path, s->good_end, seal.last_sequence,
                         seal.covered_bytes, s->expected - 1, s->good_end);
  uint32_t crc = stm_crc32c(s->data, s->good_end);
  if (crc != seal.segment_crc)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s: segment checksum mismatch: the seal at "
                         "offset %zu covers bytes 0..%zu with CRC-32C "
                         "%08x, they now hash to %08x",
                         s->path, s->good_end, s->good_end, seal.segment_crc,
                         crc);
  if (s->good_end + rec->size != s->size)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s at offset %zu: %zu bytes after the seal",
                         s->path, s->good_end + rec->size,
                         s->size - s->good_end - rec->size);
  s->sealed = true;
  s->good_end += rec->size;
  return 0;
}

/*
 * Returns 0 when the walk reached the end or stopped at a bad frame
 * (s->why set, s->good_end its offset); a negative code for damage that is
 * not a bad frame, or the replay callback's non-zero value.
 */
static int scan_records(struct seg_scan *s, struct stm_error *err) {
  s->good_end = STM_WAL_HEADER_LEN;
  s->why = NULL;
  s->sealed = false;
  while (s->good_end < s->size) {
    struct stm_wal_record rec;
    const uint8_t *pos = s->data + s->good_end;
    if (stm_wal_record_decode(pos, s->data + s->size, &rec, &s->why) !=
        STM_WAL_DECODE_OK)
      return 0;
    if (rec.type == STM_WAL_RECORD_SEAL)
      return check_seal(s, &rec, err);
    struct stm_wal_txn txn = {.count = 0};
    int rc = check_txn(s, &rec, &txn, err);
    if (rc)
      return rc;
    if (s->cb && stm_wal_txn_last_sequence(&txn) > s->after) {
      rc = s->cb(s->ctx, &txn, err);
      if (rc)
        return rc;
    }
    s->expected = stm_wal_txn_last_sequence(&txn) + 1;
    s->last_commit_time_ns = txn.commit_time_ns;
    s->records++;
    s->good_end += rec.size;
  }
  return 0;
}

/* ---- recovery ---------------------------------------------------------- */

static int cut_tail(struct stm_wal *w, int fd, const char *path,
                    uint64_t offset, uint64_t size, const char *why,
                    struct stm_error *err) {
  stm_log_warn("WAL %s: cutting %" PRIu64 " bytes of torn or corrupt tail at "
               "offset %" PRIu64 " (%s)",
               path, size - offset, offset, why);
  int e = w->io->ftruncate(w->io->ctx, fd, offset);
  if (e == 0)
    e = w->io->fdatasync(w->io->ctx, fd);
  if (e)
    return io_error(err, e, "cannot cut the torn tail of", path);
  w->truncated_bytes += size - offset;
  return 0;
}

/* The last segment's header was torn while it was being created. */
static int rewrite_header(struct stm_wal *w, int fd, const char *path,
                          uint64_t first, uint64_t size,
                          struct stm_error *err) {
  stm_log_warn("WAL %s: rewriting a torn segment header (%" PRIu64
               " bytes cut)",
               path, size);
  uint8_t h[STM_WAL_HEADER_LEN];
  stm_wal_header_encode(h, first);
  int e = w->io->ftruncate(w->io->ctx, fd, 0);
  e = e ? e : stm_wal_io_pwrite_full(w->io, fd, h, sizeof h, 0);
  e = e ? e : w->io->fdatasync(w->io->ctx, fd);
  if (e)
    return io_error(err, e, "cannot rewrite the header of", path);
  w->truncated_bytes += size;
  return 0;
}

/* The error for segment i's header given the outcome of decoding it (rc,
 * sub) and the first sequence it names; 0 when it is sound. */
static int header_error(const struct stm_wal *w, size_t i, const char *path,
                        int rc, const struct stm_error *sub, uint64_t first,
                        struct stm_error *err) {
  if (rc)
    return stm_error_set(err, rc, NULL, "WAL %s at offset 0: %s", path,
                         sub->message);
  if (first != w->segs[i])
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s at offset 0: header says first sequence "
                         "%" PRIu64 ", the file name says otherwise",
                         path, first);
  return 0;
}

static int check_header(struct stm_wal *w, size_t i, int fd, const char *path,
                        const struct stm_buf *buf, struct stm_error *err) {
  bool last = i + 1 == w->nsegs;
  uint64_t first = 0;
  struct stm_error sub;
  stm_error_clear(&sub);
  int rc = stm_wal_header_decode(buf->data, buf->data + buf->len, &first, &sub);
  if (rc == STM_ECORRUPT && last && buf->len <= STM_WAL_HEADER_LEN)
    return rewrite_header(w, fd, path, w->segs[i], buf->len, err);
  return header_error(w, i, path, rc, &sub, first, err);
}

static uint32_t header_crc(uint64_t first) {
  uint8_t h[STM_WAL_HEADER_LEN];
  stm_wal_header_encode(h, first);
  return stm_crc32c(h, sizeof h);
}

#define SEAL_RECORD_LEN (STM_WAL_RECORD_HEADER_LEN + STM_WAL_SEAL_LEN)

/*
 * A sealed segment at open: only its header and its SEAL are read, so a
 * start costs the same at any WAL size. The whole-file CRC is checked
 * whenever the segment is read (replay, backup, archival, verify).
 */
static int recover_sealed(struct stm_wal *w, size_t i, const char *path,
                          struct stm_error *err) {
  int fd = w->io->open(w->io->ctx, path, O_RDONLY, 0);
  if (fd < 0)
    return io_error(err, fd, "cannot open", path);
  uint64_t size = 0;
  uint8_t h[STM_WAL_HEADER_LEN], t[SEAL_RECORD_LEN];
  int e = w->io->fsize(w->io->ctx, fd, &size);
  if (e == 0 && size >= sizeof h + sizeof t) {
    e = stm_wal_io_pread_full(w->io, fd, h, sizeof h, 0);
    e = e ? e : stm_wal_io_pread_full(w->io, fd, t, sizeof t, size - sizeof t);
  }
  w->io->close(w->io->ctx, fd);
  if (e)
    return io_error(err, e, "cannot read", path);
  uint64_t first = 0;
  struct stm_error sub;
  stm_error_clear(&sub);
  if (size < sizeof h + sizeof t)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s at offset %" PRIu64 ": sealed segment has no "
                         "seal record (truncated?)",
                         path, size);
  int rc = stm_wal_header_decode(h, h + sizeof h, &first, &sub);
  rc = header_error(w, i, path, rc, &sub, first, err);
  if (rc)
    return rc;
  struct stm_wal_record rec;
  struct stm_wal_seal seal;
  uint64_t at = size - sizeof t;
  if (stm_wal_record_decode(t, t + sizeof t, &rec, NULL) != STM_WAL_DECODE_OK ||
      rec.type != STM_WAL_RECORD_SEAL ||
      stm_wal_seal_decode(rec.payload, rec.payload + rec.payload_len, &seal,
                          NULL) != 0 ||
      seal.covered_bytes != at || seal.last_sequence + 1 < first)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s at offset %" PRIu64 ": sealed segment has no "
                         "valid seal record (truncated or damaged?)",
                         path, at);
  w->last_sequence = seal.last_sequence;
  if (seal.last_sequence >= first)
    w->last_commit_time_ns = seal.last_commit_time_ns;
  w->sealed_bytes += size;
  return 0;
}

/* Validate segment i; keeps the last one open in w->fd. */
static int recover_segment(struct stm_wal *w, size_t i, struct stm_buf *buf,
                           struct stm_error *err) {
  bool last = i + 1 == w->nsegs;
  char path[PATH_MAX];
  seg_path(w, w->segs[i], path, sizeof path);
  if (i > 0 && w->segs[i] != w->last_sequence + 1)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s at offset 0: segment starts at sequence "
                         "%" PRIu64 " but the previous one ends at %" PRIu64,
                         path, w->segs[i], w->last_sequence);
  if (!last)
    return recover_sealed(w, i, path, err);
  /* The last segment: checked record by record, a torn tail cut. */
  int fd = w->io->open(w->io->ctx, path, O_RDWR, 0);
  if (fd < 0)
    return io_error(err, fd, "cannot open", path);
  uint64_t size = 0;
  int e = w->io->fsize(w->io->ctx, fd, &size);
  int rc = e ? io_error(err, e, "cannot stat", path)
             : read_segment(w, fd, path, size, buf, err);
  rc = rc ? rc : check_header(w, i, fd, path, buf, err);
  struct seg_scan s = {.path = path,
                       .data = buf->data,
                       .size = buf->len,
                       .expected = w->segs[i]};
  if (rc == 0 && buf->len > STM_WAL_HEADER_LEN)
    rc = scan_records(&s, err);
  else
    s.good_end = STM_WAL_HEADER_LEN;
  if (rc == 0 && s.why != NULL)
    rc = cut_tail(w, fd, path, s.good_end, size, s.why, err);
  if (rc) {
    w->io->close(w->io->ctx, fd);
  } else {
    w->fd = fd;
    w->size = s.good_end;
    w->last_sealed = s.sealed;
    w->seg_crc = header_crc(w->segs[i]);
    if (s.good_end > STM_WAL_HEADER_LEN)
      w->seg_crc = stm_crc32c(buf->data, s.good_end);
  }
  if (rc == 0) {
    w->last_sequence = s.expected - 1;
    if (s.records > 0)
      w->last_commit_time_ns = s.last_commit_time_ns;
    w->records_scanned += s.records;
  }
  return rc;
}

/* ---- creating segments ------------------------------------------------- */

/* Create, stamp and sync a new segment; on success it is the last one. */
static int create_segment(struct stm_wal *w, uint64_t first,
                          struct stm_error *err) {
  char path[PATH_MAX];
  seg_path(w, first, path, sizeof path);
  if (push_segment(w, first))
    return stm_error_set(err, STM_ENOMEM, NULL, "WAL: out of memory");
  int fd = w->io->open(w->io->ctx, path, O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    w->nsegs--;
    return io_error(err, fd, "cannot create segment", path);
  }
  uint8_t h[STM_WAL_HEADER_LEN];
  stm_wal_header_encode(h, first);
  int e = stm_wal_io_pwrite_full(w->io, fd, h, sizeof h, 0);
  e = e ? e : w->io->fdatasync(w->io->ctx, fd);
  e = e ? e : w->io->fsync_dir(w->io->ctx, w->dir);
  if (e) {
    w->io->close(w->io->ctx, fd);
    (void)w->io->unlink(w->io->ctx, path); /* recovery copes if this fails */
    w->nsegs--;
    return io_error(err, e, "cannot create segment", path);
  }
  if (w->nsegs > 1) {
    w->io->close(w->io->ctx, w->fd);
    w->sealed_bytes += w->size;
  }
  w->fd = fd;
  w->size = STM_WAL_HEADER_LEN;
  w->seg_crc = stm_crc32c(h, sizeof h);
  w->last_sealed = false;
  return 0;
}

/* ---- open / close -------------------------------------------------------- */

static int recover_all(struct stm_wal *w, struct stm_error *err) {
  int rc = list_segments(w, err);
  if (rc)
    return rc;
  if (w->nsegs == 0) {
    rc = create_segment(w, 1, err);
    return rc;
  }
  struct stm_buf buf;
  stm_buf_init(&buf);
  for (size_t i = 0; rc == 0 && i < w->nsegs; i++)
    rc = recover_segment(w, i, &buf, err);
  stm_buf_destroy(&buf);
  return rc;
}

/* A new WAL directory must survive a crash too: sync its entry. */
static int sync_parent(struct stm_wal *w, struct stm_error *err) {
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%s", w->dir);
  char *slash = strrchr(parent, '/');
  if (slash == parent)
    slash[1] = '\0';
  else if (slash)
    *slash = '\0';
  else
    snprintf(parent, sizeof parent, ".");
  int e = w->io->fsync_dir(w->io->ctx, parent);
  return e ? io_error(err, e, "cannot fsync directory", parent) : 0;
}

int stm_wal_open(const struct stm_wal_options *opts, struct stm_wal **out,
                 struct stm_error *err) {
  *out = NULL;
  if (opts == NULL || opts->dir == NULL || opts->dir[0] == '\0')
    return stm_error_set(err, STM_EINVAL, "dir", "WAL directory is required");
  bool created = mkdir(opts->dir, 0755) == 0;
  if (!created && errno != EEXIST)
    return io_error(err, -errno, "cannot create directory", opts->dir);
  struct stm_wal *w = calloc(1, sizeof *w);
  if (w == NULL || (w->dir = strdup(opts->dir)) == NULL) {
    free(w);
    return stm_error_set(err, STM_ENOMEM, NULL, "WAL: out of memory");
  }
  w->io = opts->io ? opts->io : stm_wal_io_posix();
  w->segment_bytes =
      opts->segment_bytes ? opts->segment_bytes : DEFAULT_SEGMENT_BYTES;
  w->fd = -1;
  int rc = created ? sync_parent(w, err) : 0;
  rc = rc ? rc : recover_all(w, err);
  if (rc) {
    stm_wal_delete(w);
    return rc;
  }
  *out = w;
  return 0;
}

void stm_wal_delete(struct stm_wal *w) {
  if (w == NULL)
    return;
  if (w->fd >= 0)
    w->io->close(w->io->ctx, w->fd);
  free(w->segs);
  free(w->dir);
  free(w);
}

/* ---- append ------------------------------------------------------------ */

static int poison(struct stm_wal *w, int code, struct stm_error *err) {
  w->poisoned = true;
  memcpy(w->poison_reason, err->message, sizeof w->poison_reason);
  stm_log_error("%s; the WAL refuses all further writes", w->poison_reason);
  return code;
}

/*
 * A write or sync failed: whatever part of this append reached the file is
 * not durable and was never acknowledged, so cut it back (best effort, no
 * sync: the WAL is poisoned either way) lest the next open replay it.
 */
static int append_failed(struct stm_wal *w, int e, const char *what,
                         struct stm_error *err) {
  char path[PATH_MAX];
  seg_path(w, w->segs[w->nsegs - 1], path, sizeof path);
  int code = io_error(err, e, what, path);
  w->io_errors++;
  (void)w->io->ftruncate(w->io->ctx, w->fd, w->size);
  return poison(w, code, err);
}

/*
 * End the last segment with a SEAL (its whole-file CRC) and make it
 * durable. Only then may the next segment be created, so a crash leaves
 * either an unsealed last segment or a sealed one with nothing after it.
 */
static int seal_segment(struct stm_wal *w, struct stm_error *err) {
  struct stm_wal_seal seal = {.last_sequence = w->last_sequence,
                              .covered_bytes = w->size,
                              .segment_crc = w->seg_crc,
                              .last_commit_time_ns = w->last_commit_time_ns};
  struct stm_buf b;
  stm_buf_init(&b);
  if (stm_wal_seal_append(&b, &seal)) {
    stm_buf_destroy(&b);
    return stm_error_set(err, STM_ENOMEM, NULL, "WAL: out of memory");
  }
  int e = stm_wal_io_pwrite_full(w->io, w->fd, b.data, b.len, w->size);
  int rc = e ? append_failed(w, e, "seal write failed on", err) : 0;
  e = rc ? 0 : w->io->fdatasync(w->io->ctx, w->fd);
  if (e)
    rc = append_failed(w, e, "seal fdatasync failed on", err);
  if (rc == 0) {
    w->size += b.len;
    w->last_sealed = true;
  }
  stm_buf_destroy(&b);
  return rc;
}

int stm_wal_append(struct stm_wal *w, const void *data, size_t len,
                   uint64_t first_sequence, uint64_t last_sequence,
                   int64_t last_commit_time_ns, struct stm_error *err) {
  struct stm_error local = {.code = 0};
  err = err ? err : &local; /* poison() keeps the message */
  if (w->poisoned)
    return stm_error_set(err, STM_EREADONLY, NULL,
                         "WAL is read-only after an earlier failure: %s",
                         w->poison_reason);
  if (len == 0 || first_sequence != w->last_sequence + 1 ||
      last_sequence < first_sequence)
    return stm_error_set(err, STM_EINVAL, NULL,
                         "WAL append of sequences %" PRIu64 "..%" PRIu64
                         " does not continue the log at %" PRIu64,
                         first_sequence, last_sequence, w->last_sequence);
  if (w->last_sealed ||
      (w->size >= w->segment_bytes && w->size > STM_WAL_HEADER_LEN)) {
    int rc = w->last_sealed ? 0 : seal_segment(w, err);
    if (rc)
      return rc;
    rc = create_segment(w, first_sequence, err);
    if (rc)
      return poison(w, rc, err);
  }
  int e = stm_wal_io_pwrite_full(w->io, w->fd, data, len, w->size);
  if (e)
    return append_failed(w, e, "write failed on", err);
  int64_t t0 = stm_clock_mono_ns();
  e = w->io->fdatasync(w->io->ctx, w->fd);
  if (e)
    return append_failed(w, e, "fdatasync failed on", err);
  w->last_fsync_ns = stm_clock_mono_ns() - t0;
  w->size += len;
  w->seg_crc = stm_crc32c_extend(w->seg_crc, data, len);
  w->last_sequence = last_sequence;
  w->last_commit_time_ns = last_commit_time_ns;
  return 0;
}

/* ---- replay ------------------------------------------------------------ */

static int replay_segment(struct stm_wal *w, size_t i, uint64_t after,
                          stm_wal_replay_cb cb, void *ctx, struct stm_buf *buf,
                          struct stm_error *err) {
  bool last = i + 1 == w->nsegs;
  char path[PATH_MAX];
  seg_path(w, w->segs[i], path, sizeof path);
  int fd = w->io->open(w->io->ctx, path, O_RDONLY, 0);
  if (fd < 0)
    return io_error(err, fd, "cannot open", path);
  uint64_t size = w->size;
  int e = last ? 0 : w->io->fsize(w->io->ctx, fd, &size);
  int rc = e ? io_error(err, e, "cannot stat", path)
             : read_segment(w, fd, path, size, buf, err);
  w->io->close(w->io->ctx, fd);
  if (rc)
    return rc;
  struct seg_scan s = {.path = path,
                       .data = buf->data,
                       .size = buf->len,
                       .expected = w->segs[i],
                       .after = after,
                       .cb = cb,
                       .ctx = ctx};
  if (!last) {
    /* A sealed segment is checked whole (seal CRC included) before any
     * of it is handed out: nothing of a damaged segment is replayed. */
    struct seg_scan pre = s;
    pre.cb = NULL;
    rc = scan_records(&pre, err);
    if (rc == 0 && (pre.why != NULL || !pre.sealed))
      s = pre; /* report below */
  }
  rc = rc ? rc : s.cb ? scan_records(&s, err) : 0;
  if (rc == 0 && s.why != NULL)
    rc = stm_error_set(err, STM_ECORRUPT, NULL,
                       "WAL %s at offset %zu: %s in a %s segment", path,
                       s.good_end, s.why, last ? "live" : "sealed");
  if (rc == 0 && !last && !s.sealed)
    rc = stm_error_set(err, STM_ECORRUPT, NULL,
                       "WAL %s at offset %zu: sealed segment has no seal "
                       "record",
                       path, s.good_end);
  return rc;
}

int stm_wal_replay(struct stm_wal *w, uint64_t after_sequence,
                   stm_wal_replay_cb cb, void *ctx, struct stm_error *err) {
  struct stm_buf buf;
  stm_buf_init(&buf);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < w->nsegs; i++) {
    /* Segment i holds sequences [segs[i], segs[i+1]). */
    if (i + 1 < w->nsegs && w->segs[i + 1] <= after_sequence + 1)
      continue;
    rc = replay_segment(w, i, after_sequence, cb, ctx, &buf, err);
  }
  stm_buf_destroy(&buf);
  return rc;
}

int stm_wal_segment_verify(const char *name, const uint8_t *data, size_t len,
                           bool require_seal, struct stm_wal_segment_info *out,
                           struct stm_error *err) {
  uint64_t first = 0;
  struct stm_error sub;
  stm_error_clear(&sub);
  int rc = stm_wal_header_decode(data, data + len, &first, &sub);
  if (rc)
    return stm_error_set(err, rc, NULL, "WAL %s at offset 0: %s", name,
                         sub.message);
  struct seg_scan s = {
      .path = name, .data = data, .size = len, .expected = first};
  rc = scan_records(&s, err);
  if (rc)
    return rc;
  if (s.why != NULL)
    return stm_error_set(err, STM_ECORRUPT, NULL, "WAL %s at offset %zu: %s",
                         name, s.good_end, s.why);
  if (require_seal && !s.sealed)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s at offset %zu: no seal record (truncated?)",
                         name, s.good_end);
  *out = (struct stm_wal_segment_info){.first_sequence = first,
                                       .last_sequence = s.expected - 1,
                                       .last_commit_time_ns =
                                           s.last_commit_time_ns,
                                       .records = s.records,
                                       .sealed = s.sealed};
  return 0;
}

void stm_wal_get_info(const struct stm_wal *w, struct stm_wal_info *out) {
  out->segments = w->nsegs;
  out->bytes = w->sealed_bytes + w->size;
  out->last_sequence = w->last_sequence;
  out->last_commit_time_ns = w->last_commit_time_ns;
  out->records_scanned = w->records_scanned;
  out->truncated_bytes = w->truncated_bytes;
  out->poisoned = w->poisoned;
  out->last_fsync_ns = w->last_fsync_ns;
  out->io_errors = w->io_errors;
}
