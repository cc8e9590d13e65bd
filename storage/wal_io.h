/*
 * wal_io.h - the file I/O seam of the WAL. Every call that can lose or
 * damage data (open, write, sync, truncate, rename, unlink) goes through a
 * struct of function pointers so tests can inject short writes, EIO from
 * fdatasync, ENOSPC and "crashes" between any two calls (see
 * test/storage/fault_io.h), the way SQLite's I/O-error tests do.
 *
 * Conventions of every function pointer:
 *   1. The first argument is the `ctx` of the struct.
 *   2. Success returns 0 (or a count or fd, as stated); failure returns a
 *      negative errno value (-EIO, -ENOSPC, ...), never -1 with errno.
 *   3. A short pwrite/pread is not an error; the caller loops. EINTR is
 *      retried inside the real implementation.
 *   4. Offsets and sizes are uint64_t.
 * Directory listing and mkdir are not part of the seam: they cannot lose
 * data.
 */
#ifndef STM_WAL_IO_H
#define STM_WAL_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stm_wal_io {
  void *ctx;
  /* open(2): returns an fd >= 0 or -errno. */
  int (*open)(void *ctx, const char *path, int flags, int mode);
  /* pwrite(2)/pread(2): bytes transferred (maybe fewer) or -errno. */
  ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len,
                    uint64_t offset);
  ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, uint64_t offset);
  int (*fdatasync)(void *ctx, int fd);
  int (*ftruncate)(void *ctx, int fd, uint64_t size);
  int (*close)(void *ctx, int fd);
  /* The file's size in bytes. */
  int (*fsize)(void *ctx, int fd, uint64_t *size);
  int (*unlink)(void *ctx, const char *path);
  int (*rename)(void *ctx, const char *from, const char *to);
  /* Open the directory, fsync it, close it: makes creates/renames durable. */
  int (*fsync_dir)(void *ctx, const char *path);
};

/* The real POSIX implementation. Static, shared, thread-safe. */
const struct stm_wal_io *stm_wal_io_posix(void);

/*
 * Helpers over any io: write or read exactly `len` bytes at `offset`,
 * looping over short transfers. pread_full fails with -EIO at end of file.
 * Return 0 or -errno.
 */
int stm_wal_io_pwrite_full(const struct stm_wal_io *io, int fd, const void *buf,
                           size_t len, uint64_t offset);
int stm_wal_io_pread_full(const struct stm_wal_io *io, int fd, void *buf,
                          size_t len, uint64_t offset);

#endif
