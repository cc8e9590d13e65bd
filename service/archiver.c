/*
 * archiver.c - the archive_command loop (archiver.h).
 */
#include "archiver.h"

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "storage/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#define POLL_MS 200
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

extern char **environ;

struct stm_archiver {
  char *wal_dir, *status_dir, *command;
  pthread_t thread;
  bool started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  struct stm_archiver_stats stats;
};

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted segment names of the WAL directory; caller frees each and the
 * array. */
static char **list_segments(const char *dir, size_t *n) {
  *n = 0;
  DIR *d = opendir(dir);
  if (d == NULL)
    return NULL;
  char **names = NULL;
  size_t cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!stm_backup_segment_name_ok(e->d_name))
      continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      char **p = realloc(names, cap * sizeof *p);
      if (p == NULL)
        break;
      names = p;
    }
    if ((names[*n] = strdup(e->d_name)) != NULL)
      (*n)++;
  }
  closedir(d);
  if (*n > 1)
    qsort(names, *n, sizeof *names, cmp_name);
  return names;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static int read_all(const char *path, struct stm_buf *b) {
  stm_buf_reset(b);
  FILE *fp = fopen(path, "rb");
  struct stat st;
  if (fp == NULL || fstat(fileno(fp), &st) != 0 ||
      stm_buf_reserve(b, (size_t)st.st_size + 1)) {
    if (fp)
      fclose(fp);
    return -1;
  }
  b->len = fread(b->data, 1, (size_t)st.st_size, fp);
  fclose(fp);
  return b->len == (size_t)st.st_size ? 0 : -1;
}

static int write_synced(const char *path, const void *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  bool ok = write(fd, data, len) == (ssize_t)len && fdatasync(fd) == 0;
  close(fd);
  return ok ? 0 : -1;
}

static void fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

/* The command with %p, %f and %% expanded. */
static char *expand(const char *cmd, const char *p, const char *f) {
  struct stm_buf b;
  stm_buf_init(&b);
  for (const char *c = cmd; *c; c++) {
    if (c[0] == '%' && (c[1] == 'p' || c[1] == 'f' || c[1] == '%')) {
      const char *s = c[1] == 'p' ? p : c[1] == 'f' ? f : "%";
      stm_buf_append(&b, s, strlen(s));
      c++;
    } else {
      stm_buf_put_u8(&b, (uint8_t)*c);
    }
  }
  if (stm_buf_put_u8(&b, 0)) {
    stm_buf_destroy(&b);
    return NULL;
  }
  return (char *)b.data; /* the buffer's bytes are malloc'd; freed by caller */
}

/* posix_spawn, not fork: no atfork handlers of gRPC run, and the
 * server's memory is never copied. */
static int run_command(const char *cmdline) {
  char *argv[] = {"sh", "-c", (char *)cmdline, NULL};
  pid_t pid;
  if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0)
    return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Archive one sealed segment. Returns 0 when archived. */
static int archive_one(struct stm_archiver *a, const char *name,
                       struct stm_buf *raw) {
  char src[PATH_MAX], zpath[PATH_MAX], fname[64], done[PATH_MAX];
  snprintf(src, sizeof src, "%s/%s", a->wal_dir, name);
  snprintf(zpath, sizeof zpath, "%s/%s.zst", a->status_dir, name);
  snprintf(fname, sizeof fname, "%s.zst", name);
  snprintf(done, sizeof done, "%s/%s.done", a->status_dir, name);
  struct stm_backup_segment_info si;
  struct stm_error err;
  stm_error_clear(&err);
  if (read_all(src, raw) != 0) {
    stm_log_error("archiver: cannot read %s: %s", src, strerror(errno));
    return -1;
  }
  if (stm_backup_segment_verify(src, raw->data, raw->len, true, &si, &err)) {
    stm_log_error("archiver: not archiving a damaged segment: %s", err.message);
    return -1;
  }
  size_t cap = ZSTD_compressBound(raw->len);
  void *z = malloc(cap);
  size_t zlen = z ? ZSTD_compress(z, cap, raw->data, raw->len, 3) : 0;
  int rc = z == NULL || ZSTD_isError(zlen) ? -1 : write_synced(zpath, z, zlen);
  free(z);
  if (rc) {
    stm_log_error("archiver: cannot write %s", zpath);
    return -1;
  }
  char *cmd = expand(a->command, zpath, fname);
  int status = cmd ? run_command(cmd) : -1;
  free(cmd);
  if (status != 0) {
    stm_log_warn("archiver: archive command failed for %s (exit status %d); "
                 "will retry",
                 name, status);
    return -1;
  }
  if (write_synced(done, "", 0) != 0) {
    stm_log_error("archiver: cannot write %s", done);
    return -1;
  }
  fsync_dir(a->status_dir);
  unlink(zpath);
  stm_log_info("archiver: archived %s (sequences %llu..%llu, %zu -> %zu "
               "bytes)",
               name, (unsigned long long)si.first_sequence,
               (unsigned long long)si.last_sequence, raw->len, zlen);
  return 0;
}

/* One pass: archive what is pending, in order; stop at the first failure.
 * Returns true when it failed. */
static bool pass(struct stm_archiver *a, struct stm_buf *raw) {
  size_t n = 0;
  char **names = list_segments(a->wal_dir, &n);
  uint64_t pending = 0, archived = 0;
  double oldest = 0;
  bool failed = false;
  for (size_t i = 0; i + 1 < n; i++) { /* the last segment is open */
    char done[PATH_MAX];
    snprintf(done, sizeof done, "%s/%s.done", a->status_dir, names[i]);
    if (exists(done))
      continue;
    if (!failed && archive_one(a, names[i], raw) == 0) {
      archived++;
      continue;
    }
    failed = true;
    pending++;
    char src[PATH_MAX];
    struct stat st;
    snprintf(src, sizeof src, "%s/%s", a->wal_dir, names[i]);
    if (oldest == 0 && stat(src, &st) == 0)
      oldest = difftime((time_t)stm_clock_now_s(), st.st_mtime);
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  pthread_mutex_lock(&a->mu);
  a->stats.archived_total += archived;
  a->stats.failures_total += failed ? 1 : 0;
  a->stats.pending = pending;
  a->stats.oldest_pending_age_s = oldest;
  pthread_mutex_unlock(&a->mu);
  return failed;
}

static void *run(void *arg) {
  struct stm_archiver *a = arg;
  struct stm_buf raw;
  stm_buf_init(&raw);
  int64_t backoff = 0;
  pthread_mutex_lock(&a->mu);
  while (!a->stop) {
    pthread_mutex_unlock(&a->mu);
    bool failed = pass(a, &raw);
    backoff = !failed                        ? 0
              : backoff == 0                 ? BACKOFF_MIN_MS
              : backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                             : backoff * 2;
    int64_t wait_ms = failed ? backoff : POLL_MS;
    struct timespec until =
        stm_clock_deadline(CLOCK_REALTIME, wait_ms * 1000000);
    pthread_mutex_lock(&a->mu);
    if (!a->stop)
      pthread_cond_timedwait(&a->cv, &a->mu, &until);
  }
  pthread_mutex_unlock(&a->mu);
  stm_buf_destroy(&raw);
  return NULL;
}

int stm_archiver_start(const char *wal_dir, const char *command,
                       struct stm_archiver **out, struct stm_error *err) {
  struct stm_archiver *a = calloc(1, sizeof *a);
  char status[PATH_MAX];
  snprintf(status, sizeof status, "%s/archive_status", wal_dir);
  if (a == NULL || (a->wal_dir = strdup(wal_dir)) == NULL ||
      (a->status_dir = strdup(status)) == NULL ||
      (a->command = strdup(command)) == NULL) {
    stm_archiver_stop(a);
    return stm_error_set(err, STM_ENOMEM, NULL, "archiver: out of memory");
  }
  if (mkdir(status, 0755) != 0 && errno != EEXIST) {
    int e = errno;
    stm_archiver_stop(a);
    return stm_error_set(err, STM_EIO, NULL, "archiver: cannot create %s: %s",
                         status, strerror(e));
  }
  pthread_mutex_init(&a->mu, NULL);
  pthread_cond_init(&a->cv, NULL);
  if (pthread_create(&a->thread, NULL, run, a) != 0) {
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    stm_archiver_stop(a);
    return stm_error_set(err, STM_EIO, NULL, "archiver: cannot start thread");
  }
  a->started = true;
  *out = a;
  return 0;
}

void stm_archiver_stop(struct stm_archiver *a) {
  if (a == NULL)
    return;
  if (a->started) {
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
  }
  free(a->wal_dir);
  free(a->status_dir);
  free(a->command);
  free(a);
}

void stm_archiver_get_stats(struct stm_archiver *a,
                            struct stm_archiver_stats *out) {
  *out = (struct stm_archiver_stats){.archived_total = 0};
  if (a == NULL)
    return;
  pthread_mutex_lock(&a->mu);
  *out = a->stats;
  pthread_mutex_unlock(&a->mu);
}

void stm_archiver_metrics(struct stm_archiver *a, struct stm_buf *b) {
  struct stm_archiver_stats st;
  stm_archiver_get_stats(a, &st);
  stm_buf_printf(
      b,
      "# HELP stemedb_wal_archive_enabled 1 when an archive command is set.\n"
      "# TYPE stemedb_wal_archive_enabled gauge\n"
      "stemedb_wal_archive_enabled %d\n"
      "# HELP stemedb_wal_archived_segments_total Sealed WAL segments the "
      "archive command accepted.\n"
      "# TYPE stemedb_wal_archived_segments_total counter\n"
      "stemedb_wal_archived_segments_total %llu\n"
      "# HELP stemedb_wal_archive_failures_total Failed archive attempts "
      "(each is retried).\n"
      "# TYPE stemedb_wal_archive_failures_total counter\n"
      "stemedb_wal_archive_failures_total %llu\n"
      "# HELP stemedb_wal_archive_pending_segments Sealed segments not yet "
      "archived.\n"
      "# TYPE stemedb_wal_archive_pending_segments gauge\n"
      "stemedb_wal_archive_pending_segments %llu\n"
      "# HELP stemedb_wal_archive_oldest_unarchived_age_seconds Age of the "
      "oldest sealed segment not yet archived (0: none).\n"
      "# TYPE stemedb_wal_archive_oldest_unarchived_age_seconds gauge\n"
      "stemedb_wal_archive_oldest_unarchived_age_seconds %.0f\n",
      a ? 1 : 0, (unsigned long long)st.archived_total,
      (unsigned long long)st.failures_total, (unsigned long long)st.pending,
      st.oldest_pending_age_s);
}
