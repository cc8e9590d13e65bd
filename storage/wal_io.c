#include "wal_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static int neg_errno(void) { return errno ? -errno : -EIO; }

static int posix_open(void *ctx, const char *path, int flags, int mode) {
  (void)ctx;
  int fd;
  do
    fd = open(path, flags | O_CLOEXEC, (mode_t)mode);
  while (fd < 0 && errno == EINTR);
  return fd >= 0 ? fd : neg_errno();
}

static ssize_t posix_pwrite(void *ctx, int fd, const void *buf, size_t len,
                            uint64_t offset) {
  (void)ctx;
  ssize_t n;
  do
    n = pwrite(fd, buf, len, (off_t)offset);
  while (n < 0 && errno == EINTR);
  return n >= 0 ? n : neg_errno();
}

static ssize_t posix_pread(void *ctx, int fd, void *buf, size_t len,
                           uint64_t offset) {
  (void)ctx;
  ssize_t n;
  do
    n = pread(fd, buf, len, (off_t)offset);
  while (n < 0 && errno == EINTR);
  return n >= 0 ? n : neg_errno();
}

static int posix_fdatasync(void *ctx, int fd) {
  (void)ctx;
  /* No retry on EINTR or anything else: a failed sync is final. */
  return fdatasync(fd) == 0 ? 0 : neg_errno();
}

static int posix_ftruncate(void *ctx, int fd, uint64_t size) {
  (void)ctx;
  int rc;
  do
    rc = ftruncate(fd, (off_t)size);
  while (rc < 0 && errno == EINTR);
  return rc == 0 ? 0 : neg_errno();
}

static int posix_close(void *ctx, int fd) {
  (void)ctx;
  /* Linux releases the fd even when close fails; never retry. */
  return close(fd) == 0 ? 0 : neg_errno();
}

static int posix_fsize(void *ctx, int fd, uint64_t *size) {
  (void)ctx;
  struct stat st;
  if (fstat(fd, &st) != 0)
    return neg_errno();
  *size = (uint64_t)st.st_size;
  return 0;
}

static int posix_unlink(void *ctx, const char *path) {
  (void)ctx;
  return unlink(path) == 0 ? 0 : neg_errno();
}

static int posix_rename(void *ctx, const char *from, const char *to) {
  (void)ctx;
  return rename(from, to) == 0 ? 0 : neg_errno();
}

static int posix_fsync_dir(void *ctx, const char *path) {
  (void)ctx;
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return neg_errno();
  int rc = fsync(fd) == 0 ? 0 : neg_errno();
  close(fd);
  return rc;
}

static const struct stm_wal_io posix_io = {
    .ctx = NULL,
    .open = posix_open,
    .pwrite = posix_pwrite,
    .pread = posix_pread,
    .fdatasync = posix_fdatasync,
    .ftruncate = posix_ftruncate,
    .close = posix_close,
    .fsize = posix_fsize,
    .unlink = posix_unlink,
    .rename = posix_rename,
    .fsync_dir = posix_fsync_dir,
};

const struct stm_wal_io *stm_wal_io_posix(void) { return &posix_io; }

int stm_wal_io_pwrite_full(const struct stm_wal_io *io, int fd, const void *buf,
                           size_t len, uint64_t offset) {
  const unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = io->pwrite(io->ctx, fd, p, len, offset);
    if (n < 0)
      return (int)n;
    if (n == 0)
      return -EIO; /* no progress: treat as an I/O error, never spin */
    p += n;
    len -= (size_t)n;
    offset += (uint64_t)n;
  }
  return 0;
}

int stm_wal_io_pread_full(const struct stm_wal_io *io, int fd, void *buf,
                          size_t len, uint64_t offset) {
  unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = io->pread(io->ctx, fd, p, len, offset);
    if (n < 0)
      return (int)n;
    if (n == 0)
      return -EIO; /* the file is shorter than its size said */
    p += n;
    len -= (size_t)n;
    offset += (uint64_t)n;
  }
  return 0;
}
