/*
 * fault_io.h - a fault-injecting stm_wal_io for the storage tests. It
 * wraps the real POSIX io and, on command, fails or tears operations the
 * way disks and kernels do:
 *
 *   - short writes: every pwrite transfers at most `max_write` bytes;
 *   - write failures: once `write_limit` bytes were written, writes fail
 *     with `write_errno` (ENOSPC, EIO); the write crossing the limit is
 *     short, so a partial record reaches the file;
 *   - fdatasync failures: the fdatasyncs after the first N good ones fail
 *     with EIO; with `lose_unsynced` the failing sync also drops what was
 *     written since the last good one (the page cache after a writeback
 *     error, as Linux does: the PostgreSQL fsyncgate case);
 *   - crash: after N calls, every call fails with EIO and does nothing; a
 *     pwrite at the crash point writes half its bytes first (a torn write).
 *     The files then hold exactly what a power cut would have left if the
 *     page cache had been written back.
 *
 * Every operation is counted. Thread-safe (one mutex).
 */
#ifndef STM_TEST_FAULT_IO_H
#define STM_TEST_FAULT_IO_H

#include "storage/wal_io.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define FAULT_IO_NEVER (-1L)
#define FAULT_IO_MAX_FDS 32

struct fault_io {
  struct stm_wal_io io; /* hand &f->io to the code under test */
  pthread_mutex_t mu;
  /* knobs: set through the functions below */
  long crash_after_calls;
  long fdatasync_ok_limit;
  bool lose_unsynced;
  long write_limit;
  int write_errno;
  size_t max_write;
  /* counters */
  long calls;
  long fdatasyncs; /* successful ones */
  long failed_fdatasyncs;
  long failed_writes;
  uint64_t bytes_written;
  bool crashed;
  struct {
    int fd;
    uint64_t synced;
  } fds[FAULT_IO_MAX_FDS];
};

void fault_io_init(struct fault_io *f);
void fault_io_destroy(struct fault_io *f);

/* Every pwrite transfers at most n bytes (0: no limit). */
void fault_io_short_writes(struct fault_io *f, size_t n);
/* Allow `ok` more good fdatasyncs, then fail every later one with EIO. */
void fault_io_fail_fdatasync_after(struct fault_io *f, long ok,
                                   bool lose_unsynced);
/* Allow `bytes` more bytes to be written, then fail writes with errnum. */
void fault_io_fail_writes_after(struct fault_io *f, long bytes, int errnum);
/* Allow `calls` more calls, then "crash". */
void fault_io_crash_after(struct fault_io *f, long calls);
/* Calls made so far. */
long fault_io_calls(struct fault_io *f);

#endif
