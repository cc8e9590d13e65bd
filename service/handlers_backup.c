/*
 * stemedb.v1.Admin: BackupBegin and BackupRead (proto/stemedb/v1/admin.proto).
 *
 * BackupBegin pins the durable WAL prefix up to the store's last sequence
 * (storage/backup.h) and lists it; BackupRead serves byte ranges of those
 * files. Both do bounded file I/O on the completion-queue thread: reading
 * the last segment once to find where N ends, and one chunk of at most
 * 1 MiB per read. Bytes below a durable position never change and sealed
 * segments are immutable, so reads need no coordination with the writer.
 */
#include "service.h"
#include "service_internal.h"

#include "common/clock.h"
#include "stemedb/v1/admin.pb-c.h"
#include "storage/backup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CHUNK (1u << 20)

void stm__handle_backup_begin(struct stm_grpc_call *call,
                              const ProtobufCMessage *req, void *ctx) {
  struct stm_service *svc = ctx;
  struct stm_store_stats st;
  stm_store_get_stats(svc->store, &st);
  char wal_dir[PATH_MAX];
  snprintf(wal_dir, sizeof wal_dir, "%s/wal", svc->data_dir);
  struct stm_backup_plan plan;
  struct stm_error err;
  stm_error_clear(&err);
  int rc = stm_backup_plan_make(wal_dir, st.last_sequence, &plan, &err);
  if (rc) {
    stm__fail_rc(call, rc == STM_ECORRUPT ? STM_EIO : rc, &err);
    return;
  }
  Stemedb__V1__BackupFile *files = calloc(plan.nfiles + 1, sizeof *files);
  Stemedb__V1__BackupFile **ptrs = calloc(plan.nfiles + 1, sizeof *ptrs);
  if (files == NULL || ptrs == NULL) {
    free(files);
    free(ptrs);
    stm_backup_plan_destroy(&plan);
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  for (size_t i = 0; i < plan.nfiles; i++) {
    stemedb__v1__backup_file__init(&files[i]);
    files[i].name = plan.files[i].name;
    files[i].size = plan.files[i].size;
    ptrs[i] = &files[i];
  }
  Stemedb__V1__BackupBeginResponse resp =
      STEMEDB__V1__BACKUP_BEGIN_RESPONSE__INIT;
  resp.last_sequence = plan.last_sequence;
  resp.last_commit_time_ns = plan.last_commit_time_ns;
  resp.n_files = plan.nfiles;
  resp.files = ptrs;
  resp.assertion_count = st.assertion_count;
  resp.node_id = (char *)svc->node_id;
  resp.version = (char *)STM_VERSION;
  resp.created_time_ns = stm_clock_now_ns();
  stm_grpc_call_reply(call, &resp.base);
  free(ptrs);
  free(files);
  stm_backup_plan_destroy(&plan);
}

void stm__handle_backup_read(struct stm_grpc_call *call,
                             const ProtobufCMessage *msg, void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__BackupReadRequest *req =
      (const Stemedb__V1__BackupReadRequest *)msg;
  if (!stm_backup_segment_name_ok(req->name)) {
    stm_grpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                       "name: not a WAL segment name (<20 digits>.wal)");
    return;
  }
  if (req->length == 0 || req->length > MAX_CHUNK) {
    stm_grpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                       "length: must be 1..%u bytes", MAX_CHUNK);
    return;
  }
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/wal/%s", svc->data_dir, req->name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    stm_grpc_call_fail(
        call, errno == ENOENT ? GRPC_STATUS_NOT_FOUND : GRPC_STATUS_UNAVAILABLE,
        "cannot open %s: %s", req->name, strerror(errno));
    return;
  }
  /* pread past the end would just return nothing, and an offset beyond
   * off_t fails with EINVAL: both are the client's mistake, say so. */
  struct stat sb;
  if (fstat(fd, &sb) == 0 && req->offset > (uint64_t)sb.st_size) {
    close(fd);
    stm_grpc_call_fail(call, GRPC_STATUS_OUT_OF_RANGE,
                       "offset: %llu is past the end of %s (%lld bytes)",
                       (unsigned long long)req->offset, req->name,
                       (long long)sb.st_size);
    return;
  }
  uint8_t *buf = malloc(req->length);
  size_t got = 0;
  int e = 0;
  while (buf && got < req->length) {
    ssize_t n =
        pread(fd, buf + got, req->length - got, (off_t)(req->offset + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      e = errno;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  if (buf == NULL || e) {
    free(buf);
    stm_grpc_call_fail(call, GRPC_STATUS_UNAVAILABLE, "cannot read %s: %s",
                       req->name, buf ? strerror(e) : "out of memory");
    return;
  }
  Stemedb__V1__BackupReadResponse resp =
      STEMEDB__V1__BACKUP_READ_RESPONSE__INIT;
  resp.data.data = buf;
  resp.data.len = got;
  stm_grpc_call_reply(call, &resp.base);
  free(buf);
}
