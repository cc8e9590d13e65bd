/*
 * store_internal.h - the store object shared by its files: store.c (open,
 * close, stats), store_recovery.c (replay at open), store_writer.c (the
 * queue, the writer thread, group commit), store_apply.c (what one write
 * puts into a group) and store_read.c (the reads).
 * Not part of the interface; nothing outside storage/ includes it.
 */
#ifndef STM_STORE_INTERNAL_H
#define STM_STORE_INTERNAL_H

#include "common/buf.h"
#include "hashset.h"
#include "index.h"
#include "records.h"
#include "store.h"
#include "wal.h"

#include <pthread.h>
#include <stdbool.h>

/* One stm_store_submit_claims call waiting in the queue. */
struct stm_store_sub {
  struct stm_store_sub *next;
  struct stm_claim *claims; /* owned */
  size_t n;
  size_t bytes; /* exact WAL record size if every claim is new */
  stm_store_write_cb cb;
  void *ctx;
  /* A vote/epoch/source submission (claims NULL, n 1): records.h. */
  struct stm_record *rec; /* owned */
  stm_store_record_cb rcb;
  bool audited; /* WAL entries carry op + caller (kind-5 wrapper) */
  bool remote;  /* replicated: keep the origin's commit time and content */
  int fail_rc;  /* this submission alone failed (a remote vote whose
                   target is not stored): reported instead of rc 0 */
  char op[STM_AUDIT_OP_MAX];
  char caller[STM_AUDIT_CALLER_MAX];
  struct stm_write_result results[]; /* n */
};

#define STM_STORE_CONCEPT_CACHE 1024

/* State only the writer thread touches (and open, before it starts). */
struct stm_store_writer {
  uint64_t next_sequence;
  int64_t last_commit_time_ns;
  uint64_t assertion_count;
  struct stm_buf wal_buf;
  struct stm_index_batch *batch;
  struct stm_hashset pending; /* hash -> sequence, this group only */
  struct stm_log_entry *log;  /* this group's new writes, in sequence order */
  size_t nlog, log_cap;
  struct stm_log_entry *keylog; /* the group's new API key records */
  size_t nkeylog, keylog_cap;
  char *concepts[STM_STORE_CONCEPT_CACHE]; /* paths whose 'k' key exists */
};

struct stm_store {
  char *dir;
  int lock_fd;
  struct stm_wal *wal;
  struct stm_index *index;
  size_t max_group_bytes;
  pthread_t thread;
  bool thread_started;

  pthread_mutex_t mu; /* guards everything down to the writer state */
  pthread_cond_t cv;  /* signalled on submit and on close */
  struct stm_store_sub *head, *tail;
  bool closing;
  bool writer_idle; /* waiting on cv: only then does a submit signal */
  struct stm_store_stats stats;       /* stats.writable is the write switch */
  bool read_only;                     /* opened on a full disk (store.h) */
  stm_store_log_listener_cb listener; /* records.h */
  void *listener_ctx;
  stm_store_log_listener_cb key_listener; /* API key records only */
  void *key_listener_ctx;

  struct stm_store_writer w;
  uint32_t shards; /* of the shard index (store.h) */
  uint32_t (*shard_of)(const char *concept_path, uint32_t shards);
};

int stm__store_writer_init(struct stm_store *s);
void stm__store_writer_destroy(struct stm_store *s);
/* Start the writer thread. Returns 0 or STM_ENOMEM. */
int stm__store_writer_start(struct stm_store *s);
/* Drain the queue, then join the writer thread. */
void stm__store_writer_stop(struct stm_store *s);
/* Free a submission and its claims. */
void stm__store_sub_free(struct stm_store_sub *sub);
/* Queue a prepared submission (takes it; frees it on failure). Returns 0,
 * STM_ESHUTDOWN or STM_EREADONLY. */
int stm__store_enqueue(struct stm_store *s, struct stm_store_sub *sub);

/* store_recovery.c: replay the WAL into the index at open. */
int stm__store_recover(struct stm_store *s, struct stm_error *err);

/* store_apply.c: what one write puts into the group. */
/* Copy a NUL-terminated string (NULL: ""), cut to size - 1 (snprintf("%s")
 * costs ten times as much, and this runs for every claim). */
void stm__store_copy_cut(char *dst, size_t size, const char *src);
struct stm_wal_txn_builder;
/* Encode sub->rec as the next TXN entry and queue its keys. `head` is the
 * group (for numbering epochs submitted earlier in it). */
int stm__store_build_record(struct stm_store *s, struct stm_store_sub *head,
                            struct stm_store_sub *sub,
                            struct stm_wal_txn_builder *txn, int64_t now,
                            struct stm_error *err);
/* Note a new write of this group for the log listener (writer). `claim`
 * or `record` must live until the group completes. Returns 0 or
 * STM_ENOMEM. */
int stm__store_note_log(struct stm_store_writer *w, uint64_t sequence,
                        const struct stm_claim *claim,
                        const struct stm_record *record);
/* Queue the 'p'/'k' keys and the 'q' log entry of a new claim. */
int stm__store_claim_extras(struct stm_store *s, const struct stm_claim *c,
                            const char *op, const char *caller);
/* Empty the writer's cache of concepts known to LevelDB (a group that
 * queued keys was abandoned). */
void stm__store_forget_concepts(struct stm_store_writer *w);
/* Encode a new claim (sequence and time assigned here) as the next entry
 * of the TXN and queue its keys, audit and log note. */
int stm__store_add_claim(struct stm_store *s, const struct stm_store_sub *sub,
                         struct stm_wal_txn_builder *txn, struct stm_claim *c,
                         int64_t now);
/* Queue the 'q' log entry of a write: its audit, and for a record the
 * record itself (record_len 0 for a claim). */
int stm__store_put_audit(struct stm_store *s, uint64_t seq, int64_t t,
                         enum stm_record_kind kind, const uint8_t *hash,
                         const char *op, const char *caller, const void *record,
                         size_t record_len);
/* The shard of a vote, epoch or source (a vote: its target claim's, found
 * in LevelDB or among the claims of `group`). STM_ENOTFOUND: the target is
 * not stored (yet). */
int stm__store_record_shard(struct stm_store *s,
                            const struct stm_store_sub *group,
                            const struct stm_record *r, uint32_t *shard,
                            struct stm_error *err);
/* Queue the RETIME WAL entry (wal_format.h) at the next sequence. */
int stm__store_add_retime(struct stm_store *s, struct stm_wal_txn_builder *txn,
                          enum stm_record_kind kind, const uint8_t *hash,
                          int64_t time_ns);
#endif
