/*
 * backup.c - backup plans and point-in-time cuts of a WAL directory. The
 * contract is in backup.h; the bytes in wal_format.h.
 */
#include "backup.h"

#include "common/buf.h"
#include "records.h"
#include "wal.h"
#include "wal_format.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool stm_backup_segment_name_ok(const char *name) {
  if (strlen(name) != 24 || strcmp(name + 20, ".wal") != 0)
    return false;
  for (int i = 0; i < 20; i++)
    if (name[i] < '0' || name[i] > '9')
      return false;
  return true;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const struct stm_backup_file *)a)->name,
                ((const struct stm_backup_file *)b)->name);
}

/* Every segment of wal_dir with its current size, in sequence order (the
 * zero-padded names sort as the sequences do). */
static int list_dir(const char *wal_dir, struct stm_backup_file **out,
                    size_t *n, struct stm_error *err) {
  *out = NULL;
  *n = 0;
  DIR *d = opendir(wal_dir);
  if (d == NULL)
    return stm_error_set(err, STM_EIO, NULL, "cannot list %s: %s", wal_dir,
                         strerror(errno));
  size_t cap = 0;
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (!stm_backup_segment_name_ok(e->d_name))
      continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      struct stm_backup_file *p = realloc(*out, cap * sizeof *p);
      if (p == NULL) {
        rc = stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
        break;
      }
      *out = p;
    }
    struct stm_backup_file *f = &(*out)[(*n)++];
    memcpy(f->name, e->d_name, 25); /* 24 checked characters and the NUL */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", wal_dir, f->name);
    struct stat st = {.st_size = 0};
    if (stat(path, &st) != 0)
      rc = stm_error_set(err, STM_EIO, NULL, "cannot stat %s: %s", path,
                         strerror(errno));
    f->size = (uint64_t)st.st_size;
  }
  closedir(d);
  if (rc) {
    free(*out);
    *out = NULL;
    *n = 0;
    return rc;
  }
  if (*n > 1)
    qsort(*out, *n, sizeof **out, cmp_name);
  return 0;
}

static uint64_t first_of(const struct stm_backup_file *f) {
  return strtoull(f->name, NULL, 10);
}

static int read_file(const char *path, struct stm_buf *b,
                     struct stm_error *err) {
  stm_buf_reset(b);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return stm_error_set(err, STM_EIO, NULL, "cannot open %s: %s", path,
                         strerror(errno));
  int rc = 0;
  for (;;) {
    if (stm_buf_reserve(b, 1 << 20)) {
      rc = stm_error_set(err, STM_ENOMEM, NULL, "out of memory reading %s",
                         path);
      break;
    }
    ssize_t got = read(fd, b->data + b->len, 1 << 20);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0)
      rc = stm_error_set(err, STM_EIO, NULL, "cannot read %s: %s", path,
                         strerror(errno));
    if (got <= 0)
      break;
    b->len += (size_t)got;
  }
  close(fd);
  return rc;
}

/* ---- plan ----------------------------------------------------------------- */

/* Find where sequence n ends in a segment image (a live one: bytes after
 * n's record may be torn or in flight and are never looked at). */
static int find_end(const char *name, const uint8_t *data, size_t len,
                    uint64_t n, uint64_t *size, int64_t *commit_ns,
                    struct stm_error *err) {
  size_t pos = STM_WAL_HEADER_LEN;
  while (pos < len) {
    struct stm_wal_record rec;
    struct stm_wal_txn txn;
    if (stm_wal_record_decode(data + pos, data + len, &rec, NULL) !=
            STM_WAL_DECODE_OK ||
        rec.type != STM_WAL_RECORD_TXN ||
        stm_wal_txn_decode(rec.payload, rec.payload + rec.payload_len, &txn,
                           NULL) != 0)
      break;
    uint64_t last = stm_wal_txn_last_sequence(&txn);
    pos += rec.size;
    if (last == n) {
      *size = pos;
      *commit_ns = txn.commit_time_ns;
      return 0;
    }
    if (last > n)
      break;
  }
  return stm_error_set(err, STM_ECORRUPT, NULL,
                       "WAL %s does not end a record at sequence %" PRIu64
                       " (offset %zu)",
                       name, n, pos);
}

int stm_backup_plan_make(const char *wal_dir, uint64_t last_sequence,
                         struct stm_backup_plan *out, struct stm_error *err) {
  *out = (struct stm_backup_plan){.last_sequence = last_sequence};
  struct stm_backup_file *files;
  size_t n;
  int rc = list_dir(wal_dir, &files, &n, err);
  if (rc)
    return rc;
  size_t k = 0; /* segments [0, k) start at or before N */
  while (k < n && first_of(&files[k]) <= last_sequence)
    k++;
  if (last_sequence == 0 || k == 0) {
    free(files);
    return last_sequence == 0
               ? 0
               : stm_error_set(err, STM_ECORRUPT, NULL,
                               "no WAL segment of %s holds sequence %" PRIu64,
                               wal_dir, last_sequence);
  }
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", wal_dir, files[k - 1].name);
  struct stm_buf b;
  stm_buf_init(&b);
  rc = read_file(path, &b, err);
  if (rc == 0)
    rc = find_end(files[k - 1].name, b.data, b.len, last_sequence,
                  &files[k - 1].size, &out->last_commit_time_ns, err);
  stm_buf_destroy(&b);
  if (rc) {
    free(files);
    return rc;
  }
  out->files = files;
  out->nfiles = k;
  return 0;
}

void stm_backup_plan_destroy(struct stm_backup_plan *p) {
  if (p == NULL)
    return;
  free(p->files);
  *p = (struct stm_backup_plan){.last_sequence = 0};
}

/* ---- point-in-time cut ---------------------------------------------------- */

static bool keep(const struct stm_wal_txn *txn, uint64_t to_seq,
                 int64_t to_time) {
  return (to_seq == 0 || stm_wal_txn_last_sequence(txn) <= to_seq) &&
         (to_time == 0 || txn->commit_time_ns <= to_time);
}

/* Returns the offset of the first record to drop, or len if none. */
static size_t cut_point(const uint8_t *data, size_t len, uint64_t to_seq,
                        int64_t to_time, struct stm_backup_cut *out) {
  size_t pos = STM_WAL_HEADER_LEN;
  while (pos < len) {
    struct stm_wal_record rec;
    struct stm_wal_txn txn;
    /* The segment was verified: every frame decodes. */
    stm_wal_record_decode(data + pos, data + len, &rec, NULL);
    if (rec.type != STM_WAL_RECORD_TXN)
      return len; /* the seal: everything before it was kept */
    stm_wal_txn_decode(rec.payload, rec.payload + rec.payload_len, &txn, NULL);
    if (!keep(&txn, to_seq, to_time))
      return pos;
    out->last_sequence = stm_wal_txn_last_sequence(&txn);
    out->last_commit_time_ns = txn.commit_time_ns;
    pos += rec.size;
  }
  return len;
}

static int remove_from(const char *wal_dir, const struct stm_backup_file *f,
                       size_t from, size_t n, struct stm_backup_cut *out,
                       struct stm_error *err) {
  for (size_t i = from; i < n; i++) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", wal_dir, f[i].name);
    if (unlink(path) != 0)
      return stm_error_set(err, STM_EIO, NULL, "cannot remove %s: %s", path,
                           strerror(errno));
    out->removed_segments++;
  }
  return 0;
}

static int truncate_sync(const char *path, uint64_t size,
                         struct stm_error *err) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  int rc = fd < 0 || ftruncate(fd, (off_t)size) != 0 || fdatasync(fd) != 0;
  int e = errno;
  if (fd >= 0)
    close(fd);
  return rc ? stm_error_set(err, STM_EIO, NULL, "cannot cut %s: %s", path,
                            strerror(e))
            : 0;
}

int stm_backup_cut_wal(const char *wal_dir, uint64_t to_sequence,
                       int64_t to_time_ns, struct stm_backup_cut *out,
                       struct stm_error *err) {
  *out = (struct stm_backup_cut){.last_sequence = 0};
  struct stm_backup_file *files;
  size_t n;
  int rc = list_dir(wal_dir, &files, &n, err);
  struct stm_buf b;
  stm_buf_init(&b);
  uint64_t expected = 1;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", wal_dir, files[i].name);
    if (first_of(&files[i]) != expected) {
      rc = stm_error_set(err, STM_ECORRUPT, NULL,
                         "WAL %s starts at sequence %" PRIu64 " but %" PRIu64
                         " was expected: a segment is "
                         "missing (is the WAL archive complete?)",
                         path, first_of(&files[i]), expected);
      break;
    }
    struct stm_wal_segment_info si;
    rc = read_file(path, &b, err);
    rc = rc ? rc
            : stm_wal_segment_verify(path, b.data, b.len, i + 1 < n, &si, err);
    if (rc)
      break;
    size_t cut = cut_point(b.data, b.len, to_sequence, to_time_ns, out);
    out->segments++;
    if (cut < b.len) {
      out->cut_bytes = b.len - cut;
      rc = truncate_sync(path, cut, err);
      rc = rc ? rc : remove_from(wal_dir, files, i + 1, n, out, err);
      break;
    }
    expected = si.last_sequence + 1;
  }
  stm_buf_destroy(&b);
  free(files);
  if (rc == 0 && out->removed_segments > 0) {
    int fd = open(wal_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      (void)fsync(fd);
      close(fd);
    }
  }
  return rc;
}

int stm_backup_segment_verify(const char *name, const uint8_t *data, size_t len,
                              bool require_seal,
                              struct stm_backup_segment_info *out,
                              struct stm_error *err) {
  struct stm_wal_segment_info si;
  int rc = stm_wal_segment_verify(name, data, len, require_seal, &si, err);
  if (rc == 0)
    *out = (struct stm_backup_segment_info){.first_sequence = si.first_sequence,
                                            .last_sequence = si.last_sequence,
                                            .last_commit_time_ns =
                                                si.last_commit_time_ns,
                                            .records = si.records,
                                            .sealed = si.sealed};
  return rc;
}

/* One WAL entry: the claim it holds (unwrapped from an audit entry), or
 * NULL payload for the other kinds. */
static int entry_claim(const struct stm_wal_entry *e, const uint8_t **payload,
                       size_t *plen, struct stm_error *err) {
  *payload = NULL;
  if (e->kind == STM_WAL_ENTRY_CLAIM) {
    *payload = e->data;
    *plen = e->len;
    return 0;
  }
  if (e->kind != STM_WAL_ENTRY_AUDIT)
    return 0;
  enum stm_record_kind inner;
  char op[STM_AUDIT_OP_MAX], caller[STM_AUDIT_CALLER_MAX];
  const uint8_t *p = NULL;
  size_t n = 0;
  int rc = stm_audit_unwrap(e->data, e->len, &inner, op, caller, &p, &n, err);
  if (rc == 0 && inner == STM_RECORD_CLAIM) {
    *payload = p;
    *plen = n;
  }
  return rc;
}

int stm_backup_segment_claims(const char *name, const uint8_t *data, size_t len,
                              stm_backup_claim_cb cb, void *ctx,
                              uint64_t *entries, struct stm_error *err) {
  size_t pos = STM_WAL_HEADER_LEN;
  while (pos < len) {
    struct stm_wal_record rec;
    struct stm_wal_txn txn;
    stm_wal_record_decode(data + pos, data + len, &rec, NULL);
    if (rec.type != STM_WAL_RECORD_TXN)
      break; /* the seal */
    stm_wal_txn_decode(rec.payload, rec.payload + rec.payload_len, &txn, NULL);
    struct stm_wal_txn_iter it;
    struct stm_wal_entry e;
    stm_wal_txn_iter_init(&it, &txn);
    while (stm_wal_txn_next(&it, &e)) {
      (*entries)++;
      struct stm_error sub;
      stm_error_clear(&sub);
      const uint8_t *payload;
      size_t plen = 0;
      int rc = entry_claim(&e, &payload, &plen, &sub);
      if (rc == 0 && payload == NULL)
        continue;
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
      rc = cb(ctx, &claim, e.sequence);
      stm_claim_destroy(&claim);
      if (rc)
        return rc;
    }
    pos += rec.size;
  }
  return 0;
}
