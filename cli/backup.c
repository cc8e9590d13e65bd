/*
 * backup.c - `stemedb backup`, `stemedb verify` and `stemedb restore`.
 *
 * backup: BackupBegin pins the durable WAL prefix up to the server's last
 * sequence; the segments are fetched with BackupRead in 1 MiB chunks, each
 * validated and its claims decoded and hashed (backup_check.h), and written
 * as members wal/<name> of one zstd-compressed tar (archive.h), followed by
 * MANIFEST.json (sizes, BLAKE2b-256 of every file, sequence range, claim
 * count and the digest of every claim hash in sequence order).
 * verify: all of that again from the archive alone, against the manifest.
 * restore: verify while extracting into DATA_DIR/wal, add archived sealed
 * segments (--wal-archive), cut at the point-in-time target, then open the
 * store once so the LevelDB index is rebuilt from the WAL.
 */
#include "archive.h"
#include "backup_check.h"
#include "backup_manifest.h"
#include "cli.h"

#include "common/clock.h"
#include "stemedb/v1/admin.pb-c.h"
#include "storage/backup.h"
#include "storage/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#define CHUNK (1u << 20)

/* ---- progress ------------------------------------------------------------ */

struct progress {
  const char *verb;
  uint64_t total, done, claims;
  int64_t t0, last;
  bool tty;
};

static void progress_init(struct progress *p, const char *verb,
                          uint64_t total) {
  *p = (struct progress){.verb = verb,
                         .total = total,
                         .t0 = stm_clock_mono_ns(),
                         .tty = isatty(2)};
}

static void progress_show(struct progress *p, bool final) {
  int64_t now = stm_clock_mono_ns();
  if (!final && now - p->last < (p->tty ? 100000000 : 1000000000))
    return;
  p->last = now;
  double secs = (double)(now - p->t0) / 1e9;
  double rate = secs > 0 ? (double)p->done / secs : 0;
  double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
  fprintf(stderr,
          "%s%s: %.1f/%.1f MiB, %" PRIu64 " claims, %.1f MiB/s, ETA %.0f s%s",
          p->tty ? "\r" : "", p->verb, (double)p->done / 1048576.0,
          (double)p->total / 1048576.0, p->claims, rate / 1048576.0, eta,
          p->tty ? (final ? "\n" : "   ") : "\n");
}

static int fail(const char *cmd, const struct stm_error *err) {
  fprintf(stderr, "stemedb %s: %s\n", cmd, err->message);
  return STM_CLI_ESERVER;
}

/* ---- backup -------------------------------------------------------------- */

static int fetch(struct stm_cli *cli, const Stemedb__V1__BackupFile *f,
                 uint8_t *buf, struct progress *p, struct stm_error *err) {
  uint64_t off = 0;
  while (off < f->size) {
    Stemedb__V1__BackupReadRequest req = STEMEDB__V1__BACKUP_READ_REQUEST__INIT;
    req.name = f->name;
    req.offset = off;
    req.length = (uint32_t)(f->size - off < CHUNK ? f->size - off : CHUNK);
    ProtobufCMessage *resp = NULL;
    if (stm_cli_call(cli, "/stemedb.v1.Admin/BackupRead", &req.base,
                     &stemedb__v1__backup_read_response__descriptor, &resp))
      return stm_error_set(err, STM_EIO, NULL, "reading %s failed", f->name);
    Stemedb__V1__BackupReadResponse *r =
        (Stemedb__V1__BackupReadResponse *)resp;
    size_t n = r->data.len;
    if (n > req.length || n == 0) {
      protobuf_c_message_free_unpacked(resp, NULL);
      return stm_error_set(err, STM_ECORRUPT, NULL,
                           "%s: the server returned %zu bytes at offset "
                           "%" PRIu64 " for %u asked (file shrank?)",
                           f->name, n, off, req.length);
    }
    memcpy(buf + off, r->data.data, n);
    protobuf_c_message_free_unpacked(resp, NULL);
    off += n;
    p->done += n;
    progress_show(p, false);
  }
  return 0;
}

static json_t *manifest_new(const Stemedb__V1__BackupBeginResponse *b) {
  return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:[]}", "format",
                   STM_BACKUP_MANIFEST_FORMAT, "node_id", b->node_id,
                   "server_version", b->version, "created_time_ns",
                   (json_int_t)b->created_time_ns, "last_sequence",
                   (json_int_t)b->last_sequence, "last_commit_time_ns",
                   (json_int_t)b->last_commit_time_ns, "assertion_count",
                   (json_int_t)b->assertion_count, "files");
}

static int backup_files(struct stm_cli *cli,
                        const Stemedb__V1__BackupBeginResponse *b,
                        struct stm_tar_out *tar, json_t *manifest,
                        struct stm_backup_check *chk, struct stm_error *err) {
  uint64_t total = 0;
  for (size_t i = 0; i < b->n_files; i++)
    total += b->files[i]->size;
  struct progress p;
  progress_init(&p, "backup", total);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < b->n_files; i++) {
    const Stemedb__V1__BackupFile *f = b->files[i];
    uint8_t *buf = malloc(f->size ? f->size : 1);
    if (buf == NULL)
      return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
    bool sealed = false;
    rc = fetch(cli, f, buf, &p, err);
    rc =
        rc ? rc
           : stm_backup_check_segment(chk, f->name, buf, f->size, &sealed, err);
    if (rc == 0 && !sealed && i + 1 < b->n_files)
      rc = stm_error_set(err, STM_ECORRUPT, NULL, "%s is not sealed", f->name);
    char member[64], hex[65];
    snprintf(member, sizeof member, "wal/%s", f->name);
    rc = rc ? rc : stm_tar_out_add(tar, member, buf, f->size, err);
    if (rc == 0) {
      stm_backup_check_blake2b_hex(buf, f->size, hex);
      json_array_append_new(json_object_get(manifest, "files"),
                            json_pack("{s:s, s:I, s:s}", "name", member, "size",
                                      (json_int_t)f->size, "blake2b", hex));
    }
    p.claims = chk->claims;
    free(buf);
  }
  progress_show(&p, true);
  return rc;
}

int stm_cli_cmd_backup(struct stm_cli *cli, int argc, char **argv) {
  static const struct stm_cli_command cmd = {"backup", "backup --out FILE",
                                             NULL};
  char *out = NULL;
  const struct stm_opt opts[] = {
      {"out", NULL, NULL, STM_OPT_STRING, &out,
       "the archive to write (zstd-compressed tar)"}};
  char *pos[1];
  int npos,
      rc = stm_cli_parse(cli, &cmd, opts, 1, argc, argv, pos, 0, 0, &npos);
  if (rc == 0 && out == NULL)
    rc = stm_cli_usage_error("backup", "--out FILE is required");
  if (rc) {
    free(out);
    return rc == STM_CLI_HELP ? STM_CLI_OK : rc;
  }
  int64_t t0 = stm_clock_mono_ns();
  Stemedb__V1__BackupBeginRequest req = STEMEDB__V1__BACKUP_BEGIN_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  rc = stm_cli_call(cli, "/stemedb.v1.Admin/BackupBegin", &req.base,
                    &stemedb__v1__backup_begin_response__descriptor, &resp);
  if (rc) {
    free(out);
    return rc;
  }
  Stemedb__V1__BackupBeginResponse *b =
      (Stemedb__V1__BackupBeginResponse *)resp;
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_tar_out *tar = NULL;
  struct stm_backup_check chk;
  stm_backup_check_init(&chk);
  json_t *manifest = manifest_new(b);
  rc = stm_tar_out_open(out, &tar, &err);
  rc = rc ? rc : backup_files(cli, b, tar, manifest, &chk, &err);
  if (rc == 0 && chk.next_sequence != b->last_sequence + 1)
    rc = stm_error_set(&err, STM_ECORRUPT, NULL,
                       "the files end at sequence %" PRIu64
                       ", the server pinned %" PRIu64,
                       chk.next_sequence - 1, b->last_sequence);
  char digest[65];
  stm_backup_check_digest_hex(&chk, digest);
  json_object_set_new(manifest, "claims", json_integer((json_int_t)chk.claims));
  json_object_set_new(manifest, "claims_digest", json_string(digest));
  char *text = json_dumps(manifest, JSON_INDENT(2) | JSON_SORT_KEYS);
  rc =
      rc ? rc : stm_tar_out_add(tar, "MANIFEST.json", text, strlen(text), &err);
  if (rc)
    stm_tar_out_abort(tar);
  else
    rc = stm_tar_out_close(tar, &err); /* removes the partial file itself */
  double secs = (double)(stm_clock_mono_ns() - t0) / 1e9;
  if (rc == 0)
    printf("backup %s: sequences 1..%" PRIu64 ", %" PRIu64 " claims, %zu WAL "
           "segments, taken from %s in %.2f s\n",
           out, b->last_sequence, chk.claims, b->n_files, b->node_id, secs);
  free(text);
  json_decref(manifest);
  protobuf_c_message_free_unpacked(resp, NULL);
  free(out);
  return rc ? fail("backup", &err) : STM_CLI_OK;
}

/* ---- reading an archive (verify and restore) ------------------------------ */

struct reader {
  struct stm_backup_check chk;
  json_t *files; /* what the archive holds: name, size, blake2b */
  json_t *manifest;
  bool last_sealed;
  const char *restore_dir; /* write wal/ members here; NULL: verify only */
  char last_name[64];
};

static int write_file(const char *path, const void *data, size_t len,
                      struct stm_error *err) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool ok = fd >= 0;
  const uint8_t *p = data;
  size_t left = len;
  while (ok && left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    ok = n > 0;
    if (ok) {
      p += n;
      left -= (size_t)n;
    }
  }
  ok = ok && fdatasync(fd) == 0;
  int e = errno;
  if (fd >= 0)
    close(fd);
  return ok ? 0
            : stm_error_set(err, STM_EIO, NULL, "cannot write %s: %s", path,
                            strerror(e));
}

static int read_member(struct reader *r, const char *name, const uint8_t *data,
                       size_t len, struct stm_error *err) {
  if (r->manifest)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "member %s after MANIFEST.json", name);
  if (strcmp(name, "MANIFEST.json") == 0)
    return stm_backup_manifest_parse(data, len, &r->manifest, err);
  if (strncmp(name, "wal/", 4) != 0 || !stm_backup_segment_name_ok(name + 4))
    return stm_error_set(err, STM_ECORRUPT, NULL, "unexpected member %s", name);
  if (r->chk.segments > 0 && !r->last_sealed)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "%s follows %s, which is not sealed", name,
                         r->last_name);
  int rc =
      stm_backup_check_segment(&r->chk, name, data, len, &r->last_sealed, err);
  if (rc)
    return rc;
  snprintf(r->last_name, sizeof r->last_name, "%s", name);
  char hex[65];
  stm_backup_check_blake2b_hex(data, len, hex);
  json_array_append_new(r->files,
                        json_pack("{s:s, s:I, s:s}", "name", name, "size",
                                  (json_int_t)len, "blake2b", hex));
  if (r->restore_dir == NULL)
    return 0;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", r->restore_dir, name);
  return write_file(path, data, len, err);
}

/* Read, check and (for restore) extract the whole archive. */
static int read_archive(const char *path, struct reader *r,
                        struct stm_error *err) {
  stm_backup_check_init(&r->chk);
  r->files = json_array();
  struct stm_tar_in *tar = NULL;
  int rc = stm_tar_in_open(path, &tar, err);
  while (rc == 0) {
    const char *name;
    const uint8_t *data;
    size_t len;
    rc = stm_tar_in_next(tar, &name, &data, &len, err);
    if (rc <= 0)
      break;
    rc = read_member(r, name, data, len, err);
  }
  stm_tar_in_close(tar);
  if (rc == 0 && r->manifest == NULL)
    rc = stm_error_set(err, STM_ECORRUPT, NULL,
                       "MANIFEST.json is missing (incomplete archive?)");
  return rc ? rc
            : stm_backup_manifest_check(r->manifest, r->files, &r->chk, err);
}

static void reader_destroy(struct reader *r) {
  json_decref(r->files);
  json_decref(r->manifest);
}

int stm_cli_cmd_verify(struct stm_cli *cli, int argc, char **argv) {
  static const struct stm_cli_command cmd = {"verify", "verify FILE", NULL};
  char *pos[1];
  int npos,
      rc = stm_cli_parse(cli, &cmd, NULL, 0, argc, argv, pos, 1, 1, &npos);
  if (rc)
    return rc == STM_CLI_HELP ? STM_CLI_OK : rc;
  struct reader r = {.restore_dir = NULL};
  struct stm_error err;
  stm_error_clear(&err);
  rc = read_archive(pos[0], &r, &err);
  if (rc == 0)
    printf("%s: OK: sequences 1..%" PRIu64 ", %" PRIu64 " claims, %" PRIu64
           " WAL segments, node %s\n",
           pos[0], r.chk.next_sequence - 1, r.chk.claims, r.chk.segments,
           json_string_value(json_object_get(r.manifest, "node_id")));
  else
    fprintf(stderr, "stemedb verify: %s: %s\n", pos[0], err.message);
  reader_destroy(&r);
  return rc ? STM_CLI_ESERVER : STM_CLI_OK;
}

/* ---- restore ------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  return ftw->level == 0 ? 0 : remove(path);
}

/* DIR must be missing or empty, unless force (then it is emptied). */
static int prepare_dir(const char *dir, bool force, struct stm_error *err) {
  DIR *d = opendir(dir);
  if (d == NULL && errno == ENOENT)
    return mkdir(dir, 0755) == 0
               ? 0
               : stm_error_set(err, STM_EIO, NULL, "cannot create %s: %s", dir,
                               strerror(errno));
  if (d == NULL)
    return stm_error_set(err, STM_EIO, NULL, "cannot open %s: %s", dir,
                         strerror(errno));
  bool empty = true;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      empty = false;
  closedir(d);
  if (!empty && !force)
    return stm_error_set(err, STM_EEXIST, NULL,
                         "%s is not empty; refusing to overwrite it "
                         "(use --force)",
                         dir);
  if (!empty && nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
    return stm_error_set(err, STM_EIO, NULL, "cannot empty %s: %s", dir,
                         strerror(errno));
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Copy the archived sealed segments that continue the backup into wal_dir.
 * The backup's last segment is replaced by its archived (sealed) version
 * after checking the backup bytes are a prefix of it.
 */
static int add_archived(const char *archive_dir, const char *wal_dir,
                        const char *last_member, uint64_t *added,
                        struct stm_error *err) {
  const char *last = last_member + 4; /* skip "wal/" */
  DIR *d = opendir(archive_dir);
  if (d == NULL)
    return stm_error_set(err, STM_EIO, NULL, "cannot open --wal-archive %s: %s",
                         archive_dir, strerror(errno));
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char seg[32];
    if (strlen(e->d_name) != 28 || strcmp(e->d_name + 24, ".zst") != 0)
      continue;
    memcpy(seg, e->d_name, 24);
    seg[24] = '\0';
    if (!stm_backup_segment_name_ok(seg) || strcmp(seg, last) < 0)
      continue;
    if (n == cap) {
      size_t ncap = cap ? 2 * cap : 16;
      char **grown = realloc(names, ncap * sizeof *names);
      if (grown == NULL)
        break;
      names = grown;
      cap = ncap;
    }
    if ((names[n] = strdup(e->d_name)) == NULL)
      break;
    n++;
  }
  bool out_of_memory = e != NULL;
  closedir(d);
  int rc = out_of_memory
               ? stm_error_set(err, STM_ENOMEM, NULL,
                               "out of memory listing %s", archive_dir)
               : 0;
  /* qsort's pointer must be valid even for no elements (C11 7.22.5). */
  if (n > 1)
    qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    char src[PATH_MAX], dst[PATH_MAX + 32];
    snprintf(src, sizeof src, "%s/%s", archive_dir, names[i]);
    snprintf(dst, sizeof dst, "%s/%.24s", wal_dir, names[i]);
    FILE *fp = fopen(src, "rb");
    struct stat st;
    uint8_t *z = NULL, *raw = NULL;
    size_t zlen = 0;
    if (fp && fstat(fileno(fp), &st) == 0 &&
        (z = malloc((size_t)st.st_size + 1)) != NULL)
      zlen = fread(z, 1, (size_t)st.st_size, fp);
    if (fp)
      fclose(fp);
    unsigned long long raw_len =
        z ? ZSTD_getFrameContentSize(z, zlen) : ZSTD_CONTENTSIZE_ERROR;
    if (raw_len == ZSTD_CONTENTSIZE_ERROR ||
        raw_len == ZSTD_CONTENTSIZE_UNKNOWN || raw_len > (1ull << 33) ||
        (raw = malloc(raw_len + 1)) == NULL ||
        ZSTD_decompress(raw, raw_len, z, zlen) != raw_len) {
      rc = stm_error_set(err, STM_ECORRUPT, NULL,
                         "archived segment %s is damaged or truncated", src);
    }
    struct stm_backup_segment_info si;
    rc = rc ? rc : stm_backup_segment_verify(src, raw, raw_len, true, &si, err);
    if (rc == 0 && strncmp(names[i], last, 24) == 0) {
      /* The archived copy must extend what the backup holds. */
      int fd = open(dst, O_RDONLY);
      struct stat bs;
      uint8_t *have = NULL;
      bool same = fd >= 0 && fstat(fd, &bs) == 0 &&
                  (uint64_t)bs.st_size <= raw_len &&
                  (have = malloc((size_t)bs.st_size + 1)) != NULL &&
                  read(fd, have, (size_t)bs.st_size) == bs.st_size &&
                  memcmp(have, raw, (size_t)bs.st_size) == 0;
      free(have);
      if (fd >= 0)
        close(fd);
      if (!same)
        rc =
            stm_error_set(err, STM_ECORRUPT, NULL,
                          "archived %s does not extend the backup's copy", src);
    }
    rc = rc ? rc : write_file(dst, raw, raw_len, err);
    if (rc == 0)
      (*added)++;
    free(z);
    free(raw);
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return rc;
}

/* "123" (ns since the epoch) or "2026-11-25T12:00:00[.123456789]Z". */
static bool parse_time(const char *s, int64_t *ns) {
  char *end;
  long long v = strtoll(s, &end, 10);
  if (*s && *end == '\0' && v > 0) {
    *ns = v;
    return true;
  }
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (p == NULL)
    return false;
  int64_t frac = 0, scale = 1000000000;
  if (*p == '.')
    for (p++; *p >= '0' && *p <= '9'; p++)
      if (scale > 1) {
        scale /= 10;
        frac += (*p - '0') * scale;
      }
  if (strcmp(p, "Z") != 0)
    return false;
  *ns = (int64_t)timegm(&tm) * 1000000000 + frac;
  return true;
}

struct restore_args {
  char *data_dir, *to_time, *wal_archive;
  int64_t to_sequence;
  bool force;
};

static int restore(const char *file, const struct restore_args *a,
                   int64_t to_time, struct stm_error *err) {
  int64_t t0 = stm_clock_mono_ns();
  int rc = prepare_dir(a->data_dir, a->force, err);
  char wal_dir[PATH_MAX];
  snprintf(wal_dir, sizeof wal_dir, "%s/wal", a->data_dir);
  if (rc == 0 && mkdir(wal_dir, 0755) != 0)
    rc = stm_error_set(err, STM_EIO, NULL, "cannot create %s: %s", wal_dir,
                       strerror(errno));
  struct reader r = {.restore_dir = a->data_dir};
  rc = rc ? rc : read_archive(file, &r, err);
  uint64_t added = 0;
  if (rc == 0 && a->wal_archive && r.chk.segments > 0)
    rc = add_archived(a->wal_archive, wal_dir, r.last_name, &added, err);
  struct stm_backup_cut cut = {.last_sequence = 0};
  rc = rc ? rc
          : stm_backup_cut_wal(wal_dir, (uint64_t)a->to_sequence, to_time, &cut,
                               err);
  if (rc == 0 && a->to_sequence > 0 &&
      cut.last_sequence < (uint64_t)a->to_sequence)
    fprintf(stderr,
            "stemedb restore: warning: the data ends at sequence "
            "%" PRIu64 ", before the target %" PRId64 "\n",
            cut.last_sequence, a->to_sequence);
  int64_t t1 = stm_clock_mono_ns();
  struct stm_store *store = NULL;
  struct stm_store_options so = {.data_dir = a->data_dir};
  rc = rc ? rc : stm_store_open(&so, &store, err);
  struct stm_store_stats st = {.assertion_count = 0};
  if (rc == 0) {
    stm_store_get_stats(store, &st);
    stm_store_delete(store);
  }
  int64_t t2 = stm_clock_mono_ns();
  if (rc == 0) {
    char when[64] = "-";
    if (cut.last_commit_time_ns)
      stm_cli_time_text(cut.last_commit_time_ns, when, sizeof when);
    printf("restored %s: sequences 1..%" PRIu64 " (committed %s), %" PRIu64
           " claims; backup to %" PRIu64 " + %" PRIu64
           " archived segments; %" PRIu64 " segments dropped after the "
           "target; index rebuilt in %.2f s; total %.2f s\n",
           a->data_dir, st.last_sequence, when, st.assertion_count,
           r.chk.next_sequence - 1, added, cut.removed_segments,
           (double)(t2 - t1) / 1e9, (double)(t2 - t0) / 1e9);
  }
  reader_destroy(&r);
  return rc;
}

int stm_cli_cmd_restore(struct stm_cli *cli, int argc, char **argv) {
  static const struct stm_cli_command cmd = {
      "restore",
      "restore FILE --data-dir DIR [--to-sequence N | --to-time T] "
      "[--wal-archive DIR] [--force]",
      NULL};
  struct restore_args a = {.force = false};
  const struct stm_opt opts[] = {
      {"data-dir", NULL, NULL, STM_OPT_STRING, &a.data_dir,
       "the data directory to rebuild (must be empty unless --force)"},
      {"to-sequence", NULL, NULL, STM_OPT_INT, &a.to_sequence,
       "stop after this sequence (0: everything)"},
      {"to-time", NULL, NULL, STM_OPT_STRING, &a.to_time,
       "stop after this commit time: ns since the epoch or RFC 3339 UTC"},
      {"wal-archive", NULL, NULL, STM_OPT_STRING, &a.wal_archive,
       "directory of archived segments (<name>.wal.zst) to replay"},
      {"force", NULL, NULL, STM_OPT_BOOL, &a.force,
       "empty a non-empty data directory first"},
  };
  char *pos[1];
  int npos,
      rc = stm_cli_parse(cli, &cmd, opts, 5, argc, argv, pos, 1, 1, &npos);
  int64_t to_time = 0;
  if (rc == 0 && a.data_dir == NULL)
    rc = stm_cli_usage_error("restore", "--data-dir DIR is required");
  if (rc == 0 && a.to_sequence < 0)
    rc = stm_cli_usage_error("restore", "--to-sequence must be >= 0");
  if (rc == 0 && a.to_time && !parse_time(a.to_time, &to_time))
    rc = stm_cli_usage_error("restore",
                             "--to-time: \"%s\" is neither ns since "
                             "the epoch nor YYYY-MM-DDTHH:MM:SS[.f]Z",
                             a.to_time);
  if (rc == 0) {
    struct stm_error err;
    stm_error_clear(&err);
    rc =
        restore(pos[0], &a, to_time, &err) ? fail("restore", &err) : STM_CLI_OK;
  }
  stm_opts_free_strings(opts, 5);
  return rc == STM_CLI_HELP ? STM_CLI_OK : rc;
}
