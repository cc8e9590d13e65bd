/*
 * fault_preload.c - an LD_PRELOAD shim that breaks a real stemedb-server's
 * WAL I/O on command, for the process-level fault tests (test_faults.py).
 * The unit tests use the stm_wal_io seam (test/storage/fault_io.h); this
 * shim exists so the whole stack - store, handlers, health, metrics - is
 * seen failing the way a client sees it.
 *
 * While the file named by $STM_FAULT_TRIGGER exists, calls on files whose
 * name ends in ".wal" fail according to its first word:
 *   "eio"     fdatasync fails with EIO (the bytes stay in the page cache);
 *   "enospc"  the next pwrite writes half its bytes, every later one fails
 *             with ENOSPC (a torn record reaches the file).
 * Other files (LevelDB's) are never touched. Not thread-safe beyond what
 * the store needs: one writer thread does all WAL I/O.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

enum mode { MODE_NONE, MODE_EIO, MODE_ENOSPC };

static bool torn;

static enum mode armed(int fd) {
  const char *trigger = getenv("STM_FAULT_TRIGGER");
  if (trigger == NULL)
    return MODE_NONE;
  FILE *fp = fopen(trigger, "r");
  if (fp == NULL)
    return MODE_NONE;
  char word[16] = {0};
  bool got = fgets(word, sizeof word, fp) != NULL;
  fclose(fp);
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (!got || n < 4)
    return MODE_NONE;
  path[n] = '\0';
  if (strcmp(path + n - 4, ".wal") != 0)
    return MODE_NONE;
  if (strncmp(word, "eio", 3) == 0)
    return MODE_EIO;
  if (strncmp(word, "enospc", 6) == 0)
    return MODE_ENOSPC;
  return MODE_NONE;
}

int fdatasync(int fd) {
  if (armed(fd) == MODE_EIO) {
    errno = EIO;
    return -1;
  }
  int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  return real(fd);
}

static ssize_t fault_pwrite(const char *name, int fd, const void *buf,
                            size_t len, off_t off) {
  ssize_t (*real)(int, const void *, size_t, off_t) =
      (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, name);
  if (armed(fd) == MODE_ENOSPC) {
    if (torn || len < 2) {
      errno = ENOSPC;
      return -1;
    }
    torn = true;
    return real(fd, buf, len / 2, off);
  }
  return real(fd, buf, len, off);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off) {
  return fault_pwrite("pwrite", fd, buf, len, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off) {
  return fault_pwrite("pwrite64", fd, buf, len, off);
}
