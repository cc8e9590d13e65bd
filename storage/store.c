/*
 * store.c - open (lock, index, WAL, recovery, the disk reserve), close,
 * stats. Recovery is store_recovery.c, the writer store_writer.c, what a
 * write puts into a group store_apply.c, the reads store_read.c.
 */
#include "store_internal.h"

#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX_GROUP_BYTES (8u << 20)

static int dir_error(struct stm_error *err, const char *what, const char *path,
                     int errnum) {
  return stm_error_set(err, STM_EIO, "data_dir", "%s %s: %s", what, path,
                       strerror(errnum));
}

/* ---- the lock ---------------------------------------------------------------- */

/*
 * DIR/LOCK with flock: one store per directory, also within one process
 * (flock locks belong to the open file description). The holder's pid is
 * written into it for the operator.
 */
static int take_lock(struct stm_store *s, struct stm_error *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/LOCK", s->dir);
  s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (s->lock_fd < 0)
    return dir_error(err, "cannot open the lock file", path, errno);
  if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return stm_error_set(err, STM_EEXIST, "data_dir",
                           "data directory %s is in use by another process "
                           "(%s is locked)",
                           s->dir, path);
    return dir_error(err, "cannot lock", path, errno);
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(s->lock_fd, 0) == 0 && n > 0)
    (void)!write(s->lock_fd, pid, (size_t)n);
  return 0;
}

/* ---- open / close ---------------------------------------------------------- */

/* mkdir -p: the data directory may be nested in not-yet-existing ones. */
static int make_dirs(const char *dir, struct stm_error *err) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
    return stm_error_set(err, STM_EINVAL, "data_dir", "path is too long");
  for (char *p = path + 1;; p++) {
    bool end = *p == '\0';
    if (*p != '/' && !end)
      continue;
    *p = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
      return dir_error(err, "cannot create data directory", path, errno);
    if (end)
      return 0;
    *p = '/';
  }
}

static int open_parts(struct stm_store *s, const struct stm_store_options *opts,
                      struct stm_error *err) {
  int rc = make_dirs(s->dir, err);
  if (rc)
    return rc;
  rc = take_lock(s, err);
  if (rc)
    return rc;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/index", s->dir);
  rc = stm_index_open_shards(path, s->shards, &s->index, err);
  if (rc)
    return rc;
  snprintf(path, sizeof path, "%s/wal", s->dir);
  struct stm_wal_options wo = {
      .dir = path, .segment_bytes = opts->segment_bytes, .io = opts->io};
  rc = stm_wal_open(&wo, &s->wal, err);
  rc = rc ? rc : stm__store_writer_init(s);
  rc = rc ? rc : stm__store_recover(s, err);
  if (rc == 0 && stm__store_writer_start(s) != 0)
    rc = stm_error_set(err, STM_ENOMEM, NULL, "cannot start the writer");
  return rc;
}

static int open_once(const struct stm_store_options *opts, bool read_only,
                     struct stm_store **out, struct stm_error *err) {
  struct stm_store *s = calloc(1, sizeof *s);
  if (s == NULL || (s->dir = strdup(opts->data_dir)) == NULL) {
    free(s);
    return stm_error_set(err, STM_ENOMEM, NULL, "store: out of memory");
  }
  s->lock_fd = -1;
  s->read_only = read_only;
  s->shards = opts->shards ? opts->shards : STM_INDEX_DEFAULT_SHARDS;
  s->shard_of = opts->shard_of ? opts->shard_of : stm_store_shard_of;
  s->max_group_bytes =
      opts->max_group_bytes ? opts->max_group_bytes : DEFAULT_MAX_GROUP_BYTES;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  int rc = open_parts(s, opts, err);
  if (rc) {
    stm_store_delete(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* LevelDB reports a full disk as an IO error with errno's text. */
static bool no_space(int rc, const struct stm_error *err) {
  return rc == STM_ENOSPC ||
         (err && strstr(err->message, "No space left on device") != NULL);
}

/* Keep DIR/reserve at `bytes`, so a full disk cannot stop the next open. */
static void keep_reserve(const char *dir, uint64_t bytes) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/reserve", dir);
  struct stat st;
  if (bytes == 0 || (stat(path, &st) == 0 && (uint64_t)st.st_size >= bytes))
    return;
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  int e = fd < 0 ? errno : posix_fallocate(fd, 0, (off_t)bytes);
  if (fd >= 0 && e == 0 && fsync(fd) != 0)
    e = errno;
  if (fd >= 0)
    close(fd);
  if (e) {
    unlink(path);
    stm_log_warn("storage %s: cannot keep a disk reserve of %" PRIu64
                 " bytes (%s): if the disk fills up, the node may not "
                 "restart even read-only",
                 dir, bytes, strerror(e));
  }
}

int stm_store_open(const struct stm_store_options *opts, struct stm_store **out,
                   struct stm_error *err) {
  *out = NULL;
  if (opts == NULL || opts->data_dir == NULL || opts->data_dir[0] == '\0')
    return stm_error_set(err, STM_EINVAL, "data_dir",
                         "a data directory is required");
  struct stm_store *s = NULL;
  int rc = open_once(opts, false, &s, err);
  char reserve[PATH_MAX];
  snprintf(reserve, sizeof reserve, "%s/reserve", opts->data_dir);
  if (rc && no_space(rc, err) && unlink(reserve) == 0) {
    stm_log_error("storage %s: the disk is full (%s); released the disk "
                  "reserve to open READ-ONLY: reads are served, writes "
                  "refused until space is freed and the node restarted",
                  opts->data_dir, err ? err->message : "no space");
    stm_error_clear(err);
    rc = open_once(opts, true, &s, err);
  }
  if (rc == 0 && s && !s->read_only)
    keep_reserve(opts->data_dir, opts->reserve_bytes);
  *out = rc == 0 ? s : NULL;
  return rc;
}

void stm_store_delete(struct stm_store *s) {
  if (s == NULL)
    return;
  stm__store_writer_stop(s);
  stm__store_writer_destroy(s);
  stm_wal_delete(s->wal);
  stm_index_delete(s->index);
  if (s->lock_fd >= 0)
    close(s->lock_fd); /* releases the flock */
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s->dir);
  free(s);
}

/* ---- reads and stats ------------------------------------------------------- */

void stm_store_get_stats(struct stm_store *s, struct stm_store_stats *out) {
  pthread_mutex_lock(&s->mu);
  *out = s->stats;
  pthread_mutex_unlock(&s->mu);
}

void stm_store_set_log_listener(struct stm_store *s,
                                stm_store_log_listener_cb cb, void *ctx) {
  pthread_mutex_lock(&s->mu);
  s->listener = cb;
  s->listener_ctx = ctx;
  pthread_mutex_unlock(&s->mu);
}

void stm_store_set_key_listener(struct stm_store *s,
                                stm_store_log_listener_cb cb, void *ctx) {
  pthread_mutex_lock(&s->mu);
  s->key_listener = cb;
  s->key_listener_ctx = ctx;
  pthread_mutex_unlock(&s->mu);
}
