/*
 * archive.c - ustar members in one zstd frame (archive.h).
 */
#include "archive.h"
#include "common/clock.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#define BLOCK 512
#define PATH_CAP 4096
#define MEMBER_STEP ((size_t)1 << 20)

struct stm_tar_out {
  FILE *fp;
  ZSTD_CCtx *z;
  char path[PATH_CAP], partial[PATH_CAP + 16];
  uint8_t *obuf;
  size_t ocap;
};

static int zerr(struct stm_error *err, const char *what, size_t code) {
  return stm_error_set(err, STM_ECORRUPT, NULL, "%s: zstd: %s", what,
                       ZSTD_getErrorName(code));
}

int stm_tar_out_open(const char *path, struct stm_tar_out **out,
                     struct stm_error *err) {
  struct stm_tar_out *t = calloc(1, sizeof *t);
  if (t == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  snprintf(t->path, sizeof t->path, "%s", path);
  snprintf(t->partial, sizeof t->partial, "%s.partial", path);
  t->ocap = ZSTD_CStreamOutSize();
  t->obuf = malloc(t->ocap);
  t->z = ZSTD_createCCtx();
  t->fp = fopen(t->partial, "wb");
  if (t->fp == NULL || t->obuf == NULL || t->z == NULL) {
    int e = errno;
    stm_tar_out_abort(t);
    return stm_error_set(err, STM_EIO, NULL, "cannot create %s.partial: %s",
                         path, strerror(e));
  }
  ZSTD_CCtx_setParameter(t->z, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(t->z, ZSTD_c_checksumFlag, 1);
  *out = t;
  return 0;
}

static int put(struct stm_tar_out *t, const void *data, size_t len,
               ZSTD_EndDirective mode, struct stm_error *err) {
  ZSTD_inBuffer in = {data, len, 0};
  for (;;) {
    ZSTD_outBuffer o = {t->obuf, t->ocap, 0};
    size_t left = ZSTD_compressStream2(t->z, &o, &in, mode);
    if (ZSTD_isError(left))
      return zerr(err, t->partial, left);
    if (o.pos && fwrite(t->obuf, 1, o.pos, t->fp) != o.pos)
      return stm_error_set(err, STM_EIO, NULL, "cannot write %s: %s",
                           t->partial, strerror(errno));
    bool done = mode == ZSTD_e_end ? left == 0 : in.pos == in.size;
    if (done)
      return 0;
  }
}

static void octal(char *field, size_t width, uint64_t v) {
  snprintf(field, width, "%0*llo", (int)width - 1, (unsigned long long)v);
}

int stm_tar_out_add(struct stm_tar_out *t, const char *name, const void *data,
                    size_t len, struct stm_error *err) {
  if (strlen(name) >= 100)
    return stm_error_set(err, STM_EINVAL, NULL, "member name too long: %s",
                         name);
  char h[BLOCK];
  memset(h, 0, sizeof h);
  memcpy(h, name, strlen(name));
  octal(h + 100, 8, 0644);
  octal(h + 108, 8, 0);
  octal(h + 116, 8, 0);
  octal(h + 124, 12, len);
  octal(h + 136, 12, (uint64_t)stm_clock_now_s());
  memset(h + 148, ' ', 8);
  h[156] = '0';
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  unsigned sum = 0;
  for (int i = 0; i < BLOCK; i++)
    sum += (unsigned char)h[i];
  snprintf(h + 148, 8, "%06o", sum);
  static const char zero[BLOCK];
  int rc = put(t, h, sizeof h, ZSTD_e_continue, err);
  rc = rc ? rc : put(t, data, len, ZSTD_e_continue, err);
  if (rc == 0 && len % BLOCK)
    rc = put(t, zero, BLOCK - len % BLOCK, ZSTD_e_continue, err);
  return rc;
}

int stm_tar_out_close(struct stm_tar_out *t, struct stm_error *err) {
  static const char zero[2 * BLOCK];
  int rc = put(t, zero, sizeof zero, ZSTD_e_end, err);
  if (rc == 0 && (fflush(t->fp) != 0 || fsync(fileno(t->fp)) != 0))
    rc = stm_error_set(err, STM_EIO, NULL, "cannot sync %s: %s", t->partial,
                       strerror(errno));
  if (rc == 0) {
    fclose(t->fp);
    t->fp = NULL;
    if (rename(t->partial, t->path) != 0)
      rc = stm_error_set(err, STM_EIO, NULL, "cannot rename %s: %s", t->partial,
                         strerror(errno));
  }
  if (rc) {
    stm_tar_out_abort(t);
    return rc;
  }
  ZSTD_freeCCtx(t->z);
  free(t->obuf);
  free(t);
  return 0;
}

void stm_tar_out_abort(struct stm_tar_out *t) {
  if (t == NULL)
    return;
  if (t->fp)
    fclose(t->fp);
  unlink(t->partial);
  ZSTD_freeCCtx(t->z);
  free(t->obuf);
  free(t);
}

/* ---- reading ------------------------------------------------------------- */

struct stm_tar_in {
  FILE *fp;           /* NULL when reading from memory */
  const uint8_t *mem; /* stm_tar_in_open_mem: the whole archive */
  size_t mem_len, mem_off;
  ZSTD_DCtx *z;
  char path[PATH_CAP];
  uint8_t *ibuf;
  size_t icap;
  ZSTD_inBuffer in;
  size_t frame_left; /* last ZSTD_decompressStream hint; 0 = frame done */
  bool eof;
  uint8_t *member;
  size_t mcap;
  char name[101];
};

static struct stm_tar_in *tar_in_new(const char *label) {
  struct stm_tar_in *t = calloc(1, sizeof *t);
  if (t == NULL)
    return NULL;
  snprintf(t->path, sizeof t->path, "%s", label);
  t->icap = ZSTD_DStreamInSize();
  t->ibuf = malloc(t->icap);
  t->z = ZSTD_createDCtx();
  t->frame_left = 1;
  t->in = (ZSTD_inBuffer){t->ibuf, 0, 0};
  return t;
}

int stm_tar_in_open(const char *path, struct stm_tar_in **out,
                    struct stm_error *err) {
  struct stm_tar_in *t = tar_in_new(path);
  if (t == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  t->fp = fopen(path, "rb");
  if (t->fp == NULL || t->ibuf == NULL || t->z == NULL) {
    int e = errno;
    stm_tar_in_close(t);
    return stm_error_set(err, STM_EIO, NULL, "cannot open %s: %s", path,
                         strerror(e));
  }
  *out = t;
  return 0;
}

int stm_tar_in_open_mem(const void *data, size_t len, const char *label,
                        struct stm_tar_in **out, struct stm_error *err) {
  struct stm_tar_in *t = tar_in_new(label);
  if (t == NULL || t->ibuf == NULL || t->z == NULL) {
    stm_tar_in_close(t);
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  }
  t->mem = data;
  t->mem_len = len;
  *out = t;
  return 0;
}

/* Refill the compressed input once it is used up; sets eof at the end. */
static void refill(struct stm_tar_in *t) {
  if (t->in.pos < t->in.size || t->eof)
    return;
  size_t n = 0;
  if (t->fp) {
    n = fread(t->ibuf, 1, t->icap, t->fp);
  } else {
    n = t->mem_len - t->mem_off < t->icap ? t->mem_len - t->mem_off : t->icap;
    if (n)
      memcpy(t->ibuf, t->mem + t->mem_off, n);
    t->mem_off += n;
  }
  t->in.size = n;
  t->in.pos = 0;
  t->eof = n == 0;
}

/* Exactly len decompressed bytes into dst. */
static int read_exact(struct stm_tar_in *t, void *dst, size_t len,
                      struct stm_error *err) {
  ZSTD_outBuffer o = {dst, len, 0};
  while (o.pos < o.size) {
    refill(t);
    if (t->in.pos == t->in.size && t->eof)
      return stm_error_set(err, STM_ECORRUPT, NULL,
                           "%s: truncated (the archive ends %s)", t->path,
                           t->frame_left ? "inside the zstd frame"
                                         : "after the zstd frame");
    size_t r = ZSTD_decompressStream(t->z, &o, &t->in);
    if (ZSTD_isError(r))
      return zerr(err, t->path, r);
    t->frame_left = r;
  }
  return 0;
}

static uint64_t parse_octal(const char *p, size_t width, bool *ok) {
  uint64_t v = 0;
  size_t i = 0;
  while (i < width && p[i] == ' ')
    i++;
  for (; i < width && p[i] >= '0' && p[i] <= '7'; i++)
    v = v * 8 + (uint64_t)(p[i] - '0');
  *ok = i < width && (p[i] == '\0' || p[i] == ' ');
  return v;
}

/* After the first zero block: the second one, then the rest of the zstd
 * frame, whose content checksum zstd verifies as it reaches it. */
static int finish(struct stm_tar_in *t, struct stm_error *err) {
  char h[BLOCK];
  int rc = read_exact(t, h, sizeof h, err);
  if (rc)
    return rc;
  static const char zero[BLOCK];
  if (memcmp(h, zero, BLOCK) != 0)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "%s: damaged end-of-archive block", t->path);
  while (t->frame_left != 0) {
    refill(t);
    if (t->in.pos == t->in.size && t->eof)
      return stm_error_set(err, STM_ECORRUPT, NULL,
                           "%s: truncated inside the zstd frame", t->path);
    /* tar pads to its record size with more zero blocks: allow zeros. */
    uint8_t extra = 0;
    ZSTD_outBuffer o = {&extra, 1, 0};
    size_t r = ZSTD_decompressStream(t->z, &o, &t->in);
    if (ZSTD_isError(r))
      return zerr(err, t->path, r);
    if (o.pos && extra != 0)
      return stm_error_set(err, STM_ECORRUPT, NULL,
                           "%s: data after the end of the archive", t->path);
    t->frame_left = r;
  }
  return 0;
}

/*
 * The member's padded bytes, read in steps of at most 1 MiB with the buffer
 * grown only as the bytes arrive: a header claiming gigabytes in a tiny
 * (truncated) archive must not allocate them up front (a 100-byte
 * archive could ask malloc for 8 GiB; test_archive checks it).
 */
static int read_member(struct stm_tar_in *t, size_t padded,
                       struct stm_error *err) {
  size_t got = 0;
  while (got < padded) {
    size_t step = padded - got < MEMBER_STEP ? padded - got : MEMBER_STEP;
    if (got + step + 1 > t->mcap) {
      size_t cap = t->mcap * 2 > got + step + 1 ? t->mcap * 2 : got + step + 1;
      cap = cap > padded + 1 ? padded + 1 : cap;
      uint8_t *p = realloc(t->member, cap);
      if (p == NULL)
        return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
      t->member = p;
      t->mcap = cap;
    }
    int rc = read_exact(t, t->member + got, step, err);
    if (rc)
      return rc;
    got += step;
  }
  return 0;
}

/* One header block; 1 for a member, 0 for a directory entry to skip, 2 at
 * the first end-of-archive block. */
static int read_header(struct stm_tar_in *t, uint64_t *size,
                       struct stm_error *err) {
  char h[BLOCK];
  int rc = read_exact(t, h, sizeof h, err);
  if (rc)
    return rc;
  static const char zero[BLOCK];
  if (memcmp(h, zero, BLOCK) == 0)
    return 2;
  unsigned sum = 0;
  for (int i = 0; i < BLOCK; i++)
    sum += (i >= 148 && i < 156) ? ' ' : (unsigned char)h[i];
  bool ok1, ok2;
  uint64_t want = parse_octal(h + 148, 8, &ok1);
  *size = parse_octal(h + 124, 12, &ok2);
  if (!ok1 || !ok2 || want != sum || memcmp(h + 257, "ustar", 5) != 0)
    return stm_error_set(err, STM_ECORRUPT, NULL,
                         "%s: damaged tar header after member \"%s\"", t->path,
                         t->name);
  memcpy(t->name, h, 100);
  t->name[100] = '\0';
  /* A directory entry (GNU tar writes them): skipped. A loop, not
   * recursion: a million of them compress to a few kilobytes and
   * overflowed the stack (test_archive checks it). */
  return h[156] == '5' && *size == 0 ? 0 : 1;
}

int stm_tar_in_next(struct stm_tar_in *t, const char **name,
                    const uint8_t **data, size_t *len, struct stm_error *err) {
  uint64_t size = 0;
  int rc;
  while ((rc = read_header(t, &size, err)) == 0)
    ;
  if (rc < 0)
    return rc;
  if (rc == 2)
    return finish(t, err);
  size_t padded = (size_t)((size + BLOCK - 1) / BLOCK * BLOCK);
  rc = read_member(t, padded, err);
  if (rc)
    return rc;
  *name = t->name;
  *data = t->member;
  *len = (size_t)size;
  return 1;
}

void stm_tar_in_close(struct stm_tar_in *t) {
  if (t == NULL)
    return;
  if (t->fp)
    fclose(t->fp);
  ZSTD_freeDCtx(t->z);
  free(t->ibuf);
  free(t->member);
  free(t);
}
