#include "fault_io.h"

#include <errno.h>
#include <string.h>
#include <sys/types.h>

/* Count a call; true when the process has "crashed" before it. */
static bool crashed_at_call(struct fault_io *f) {
  f->calls++;
  if (f->crash_after_calls != FAULT_IO_NEVER && f->calls > f->crash_after_calls)
    f->crashed = true;
  return f->crashed;
}

static uint64_t *synced_slot(struct fault_io *f, int fd) {
  for (int i = 0; i < FAULT_IO_MAX_FDS; i++)
    if (f->fds[i].fd == fd)
      return &f->fds[i].synced;
  return NULL;
}

static uint64_t file_size(int fd) {
  uint64_t size = 0;
  const struct stm_wal_io *real = stm_wal_io_posix();
  real->fsize(real->ctx, fd, &size);
  return size;
}

static void track_fd(struct fault_io *f, int fd) {
  for (int i = 0; i < FAULT_IO_MAX_FDS; i++)
    if (f->fds[i].fd < 0 || f->fds[i].fd == fd) {
      f->fds[i].fd = fd;
      f->fds[i].synced = file_size(fd);
      return;
    }
}

static void untrack_fd(struct fault_io *f, int fd) {
  for (int i = 0; i < FAULT_IO_MAX_FDS; i++)
    if (f->fds[i].fd == fd)
      f->fds[i].fd = -1;
}

#define REAL stm_wal_io_posix()
/* Run the statement(s) under the mutex (variadic: they may hold commas). */
#define LOCKED(f, ...)                                                         \
  do {                                                                         \
    pthread_mutex_lock(&(f)->mu);                                              \
    __VA_ARGS__;                                                               \
    pthread_mutex_unlock(&(f)->mu);                                            \
  } while (0)

static int f_open(void *ctx, const char *path, int flags, int mode) {
  struct fault_io *f = ctx;
  int rc;
  LOCKED(f, {
    rc = crashed_at_call(f) ? -EIO : REAL->open(NULL, path, flags, mode);
    if (rc >= 0)
      track_fd(f, rc);
  });
  return rc;
}

/* How many of `len` bytes this pwrite may write, or a negative errno. */
static ssize_t write_budget(struct fault_io *f, size_t len) {
  if (crashed_at_call(f))
    return f->calls == f->crash_after_calls + 1 ? (ssize_t)(len / 2) : -EIO;
  if (f->write_limit != FAULT_IO_NEVER) {
    uint64_t left = f->bytes_written < (uint64_t)f->write_limit
                        ? (uint64_t)f->write_limit - f->bytes_written
                        : 0;
    if (left == 0) {
      f->failed_writes++;
      return -f->write_errno;
    }
    if (len > left)
      len = (size_t)left;
  }
  if (f->max_write && len > f->max_write)
    len = f->max_write;
  return (ssize_t)len;
}

static ssize_t f_pwrite(void *ctx, int fd, const void *buf, size_t len,
                        uint64_t offset) {
  struct fault_io *f = ctx;
  ssize_t rc;
  LOCKED(f, {
    bool was_crashed = f->crashed;
    rc = write_budget(f, len);
    if (rc > 0)
      rc = REAL->pwrite(NULL, fd, buf, (size_t)rc, offset);
    if (rc > 0)
      f->bytes_written += (uint64_t)rc;
    if (!was_crashed && f->crashed)
      rc = -EIO; /* the torn half was written; the caller sees a failure */
  });
  return rc;
}

static ssize_t f_pread(void *ctx, int fd, void *buf, size_t len,
                       uint64_t offset) {
  struct fault_io *f = ctx;
  ssize_t rc;
  LOCKED(f, rc = crashed_at_call(f) ? -EIO
                                    : REAL->pread(NULL, fd, buf, len, offset));
  return rc;
}

static int f_fdatasync(void *ctx, int fd) {
  struct fault_io *f = ctx;
  int rc;
  LOCKED(f, {
    uint64_t *synced = synced_slot(f, fd);
    if (crashed_at_call(f)) {
      rc = -EIO;
    } else if (f->fdatasync_ok_limit != FAULT_IO_NEVER &&
               f->fdatasyncs >= f->fdatasync_ok_limit) {
      rc = -EIO;
      f->failed_fdatasyncs++;
      if (f->lose_unsynced && synced)
        REAL->ftruncate(NULL, fd, *synced);
    } else {
      rc = REAL->fdatasync(NULL, fd);
      if (rc == 0) {
        f->fdatasyncs++;
        if (synced)
          *synced = file_size(fd);
      }
    }
  });
  return rc;
}

static int f_ftruncate(void *ctx, int fd, uint64_t size) {
  struct fault_io *f = ctx;
  int rc;
  LOCKED(f, rc = crashed_at_call(f) ? -EIO : REAL->ftruncate(NULL, fd, size));
  return rc;
}

static int f_close(void *ctx, int fd) {
  struct fault_io *f = ctx;
  /* Even a crashed "process" must not leak descriptors in the test. */
  LOCKED(f, {
    crashed_at_call(f);
    untrack_fd(f, fd);
    REAL->close(NULL, fd);
  });
  return 0;
}

static int f_fsize(void *ctx, int fd, uint64_t *size) {
  struct fault_io *f = ctx;
  int rc;
  LOCKED(f, rc = crashed_at_call(f) ? -EIO : REAL->fsize(NULL, fd, size));
  return rc;
}

static int f_unlink(void *ctx, const char *path) {
  struct fault_io *f = ctx;
  int rc;
  LOCKED(f, rc = crashed_at_call(f) ? -EIO : REAL->unlink(NULL, path));
  return rc;
}

static int f_rename(void *ctx, const char *from, const char *to) {
  struct fault_io *f = ctx;
  int rc;
  LOCKED(f, rc = crashed_at_call(f) ? -EIO : REAL->rename(NULL, from, to));
  return rc;
}

static int f_fsync_dir(void *ctx, const char *path) {
  struct fault_io *f = ctx;
  int rc;
  LOCKED(f, rc = crashed_at_call(f) ? -EIO : REAL->fsync_dir(NULL, path));
  return rc;
}

void fault_io_init(struct fault_io *f) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  f->io = (struct stm_wal_io){
      .ctx = f,
      .open = f_open,
      .pwrite = f_pwrite,
      .pread = f_pread,
      .fdatasync = f_fdatasync,
      .ftruncate = f_ftruncate,
      .close = f_close,
      .fsize = f_fsize,
      .unlink = f_unlink,
      .rename = f_rename,
      .fsync_dir = f_fsync_dir,
  };
  f->crash_after_calls = FAULT_IO_NEVER;
  f->fdatasync_ok_limit = FAULT_IO_NEVER;
  f->write_limit = FAULT_IO_NEVER;
  f->write_errno = EIO;
  for (int i = 0; i < FAULT_IO_MAX_FDS; i++)
    f->fds[i].fd = -1;
}

void fault_io_destroy(struct fault_io *f) { pthread_mutex_destroy(&f->mu); }

void fault_io_short_writes(struct fault_io *f, size_t n) {
  LOCKED(f, f->max_write = n);
}

void fault_io_fail_fdatasync_after(struct fault_io *f, long ok,
                                   bool lose_unsynced) {
  LOCKED(f, {
    f->fdatasync_ok_limit = f->fdatasyncs + ok;
    f->lose_unsynced = lose_unsynced;
  });
}

void fault_io_fail_writes_after(struct fault_io *f, long bytes, int errnum) {
  LOCKED(f, {
    f->write_limit = (long)f->bytes_written + bytes;
    f->write_errno = errnum;
  });
}

void fault_io_crash_after(struct fault_io *f, long calls) {
  LOCKED(f, f->crash_after_calls = f->calls + calls);
}

long fault_io_calls(struct fault_io *f) {
  long n;
  LOCKED(f, n = f->calls);
  return n;
}
