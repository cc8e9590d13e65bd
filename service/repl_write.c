/* repl_write.c - write coordination (replication.h): after a write is
 * durable here, send it to the other replicas of its shard (a source: to
 * every UP node) with Cluster.Replicate, and answer the client only when
 * the write rule holds. Runs on its own threads: the store's writer thread
 * hands a job over and never waits on the network. */
#include "repl_internal.h"

#include "common/log.h"
#include "rpc/codec.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WRITE_THREADS 2
#define MAX_QUEUE 4096

struct wjob {
  struct wjob *next;
  struct stm_grpc_call *call;
  const ProtobufCMessageDescriptor *desc;
  uint8_t *reply; /* packed */
  size_t reply_len;
  size_t n;
  uint8_t hashes[][STM_HASH_LEN];
};

static struct {
  struct stm_service *svc;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct wjob *head, *tail;
  size_t queued;
  bool stopping;
  pthread_t t[WRITE_THREADS];
  size_t nthreads;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* How many copies the write rule needs of `replicas` (factor). */
static size_t required(size_t factor) {
  switch (stm_cluster_write_quorum()) {
  case STM_WRITE_QUORUM_ALL:
    return factor;
  case STM_WRITE_QUORUM_MAJORITY:
    return factor / 2 + 1;
  default:
    return 1;
  }
}

struct target {
  char id[STM_NODE_ID_MAX + 1];
  struct stm__repl_set set;
  size_t *which; /* the job's hash index of each set entry */
  size_t nwhich;
  bool ok;
};

static struct target *target_for(struct target *t, size_t *nt, size_t max,
                                 const char *id) {
  for (size_t i = 0; i < *nt; i++)
    if (strcmp(t[i].id, id) == 0)
      return &t[i];
  if (*nt == max)
    return NULL;
  struct target *x = &t[(*nt)++];
  memset(x, 0, sizeof *x);
  size_t l = strnlen(id, STM_NODE_ID_MAX);
  memcpy(x->id, id, l);
  x->id[l] = '\0';
  stm__repl_set_init(&x->set);
  return x;
}

static void reply(struct wjob *j) {
  ProtobufCMessage *m =
      protobuf_c_message_unpack(j->desc, NULL, j->reply_len, j->reply);
  if (m == NULL) {
    stm_grpc_call_fail(j->call, GRPC_STATUS_INTERNAL,
                       "cannot rebuild the reply (the write is durable)");
    return;
  }
  stm_grpc_call_reply(j->call, m);
  protobuf_c_message_free_unpacked(m, NULL);
}

/* Per hash: the shard's replicas; queue the record for every other one. */
static int plan(struct wjob *j, struct target *t, size_t *nt, size_t max,
                size_t *have, size_t *need, struct stm_error *err) {
  struct stm_store *store = W.svc->store;
  for (size_t i = 0; i < j->n; i++) {
    enum stm_record_kind kind;
    struct stm_claim c;
    struct stm_record r;
    stm_claim_init(&c);
    int rc = stm_store_get_any(store, j->hashes[i], &kind, &c, &r, err);
    if (rc) {
      stm_claim_destroy(&c);
      return rc;
    }
    struct stm_cluster_peer reps[STM__REPL_MAX_PEERS];
    size_t nr;
    if (stm_record_kind_everywhere(kind)) { /* every UP node */
      struct stm_cluster_member *m = NULL;
      size_t nm = stm_cluster_members_snapshot(&m);
      nr = 0;
      for (size_t k = 0; k < nm && nr < STM__REPL_MAX_PEERS; k++)
        if (m[k].state == STM_SWIM_UP) {
          memcpy(reps[nr].id, m[k].id, sizeof reps[nr].id);
          reps[nr++].self = m[k].self;
        }
      free(m);
      need[i] = 1;
    } else {
      const char *path = kind == STM_RECORD_CLAIM   ? c.concept_path
                         : kind == STM_RECORD_EPOCH ? r.u.epoch.concept_path
                                                    : NULL;
      uint32_t shard = 0;
      if (path == NULL) { /* a vote: its claim's shard */
        struct stm_claim tc;
        stm_claim_init(&tc);
        if (stm_store_get_claim(store, r.u.vote.target, NULL, &tc, NULL) == 0)
          shard = stm_cluster_shard_of(tc.concept_path);
        stm_claim_destroy(&tc);
      } else {
        shard = stm_cluster_shard_of(path);
      }
      nr = stm_cluster_replicas(shard, reps, STM_PLACEMENT_MAX_REPLICAS);
      need[i] = required(stm_cluster_factor());
    }
    have[i] = 0;
    for (size_t k = 0; rc == 0 && k < nr; k++) {
      if (reps[k].self) {
        have[i]++;
        continue;
      }
      struct target *x = target_for(t, nt, max, reps[k].id);
      if (x == NULL)
        continue;
      size_t *w = realloc(x->which, (x->nwhich + 1) * sizeof *w);
      if (w == NULL) {
        rc = STM_ENOMEM;
        break;
      }
      x->which = w;
      x->which[x->nwhich++] = i;
      rc = stm__repl_set_add(&x->set, store, j->hashes[i], err);
    }
    if (kind != STM_RECORD_CLAIM)
      stm_record_destroy(&r);
    stm_claim_destroy(&c);
    if (rc)
      return rc;
  }
  return 0;
}

static void run(struct wjob *j) {
  struct target t[STM__REPL_MAX_PEERS];
  size_t nt = 0;
  size_t *have = calloc(j->n, sizeof *have), *need = calloc(j->n, sizeof *need);
  struct stm_error err;
  stm_error_clear(&err);
  int rc = have && need ? plan(j, t, &nt, STM__REPL_MAX_PEERS, have, need, &err)
                        : STM_ENOMEM;
  char failed[512] = "";
  for (size_t k = 0; rc == 0 && k < nt; k++) {
    struct stm_error e;
    stm_error_clear(&e);
    t[k].ok = stm_repl_push(t[k].id, &t[k].set.data, t[k].set.off, t[k].set.n,
                            STM_REPL_WRITE_TIMEOUT_MS, NULL, &e) == 0;
    stm__repl_lag_note(t[k].id, t[k].ok, e.message);
    if (t[k].ok)
      for (size_t w = 0; w < t[k].nwhich; w++)
        have[t[k].which[w]]++;
    else
      snprintf(failed + strlen(failed), sizeof failed - strlen(failed), "%s%s",
               failed[0] ? "; " : "", e.message);
  }
  size_t short_i = j->n;
  for (size_t i = 0; rc == 0 && i < j->n; i++)
    if (have[i] < need[i]) {
      short_i = i;
      break;
    }
  if (rc)
    stm_grpc_call_fail(j->call, GRPC_STATUS_INTERNAL,
                       "the write is durable on this node but could not be "
                       "sent to its replicas: %s",
                       err.message);
  else if (short_i < j->n)
    stm_grpc_call_fail(
        j->call, GRPC_STATUS_UNAVAILABLE,
        "write_quorum not met: %zu of the %zu required replicas stored "
        "record %zu of this write (%s); what was stored stays and "
        "anti-entropy completes it; retrying the same write is safe",
        have[short_i], need[short_i], short_i, failed[0] ? failed : "no peer");
  else
    reply(j);
  for (size_t k = 0; k < nt; k++) {
    stm__repl_set_free(&t[k].set);
    free(t[k].which);
  }
  free(have);
  free(need);
}

static void *writer_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&W.mu);
  for (;;) {
    while (W.head == NULL && !W.stopping)
      pthread_cond_wait(&W.cv, &W.mu);
    if (W.head == NULL)
      break;
    struct wjob *j = W.head;
    W.head = j->next;
    if (W.head == NULL)
      W.tail = NULL;
    W.queued--;
    pthread_mutex_unlock(&W.mu);
    run(j);
    free(j->reply);
    free(j);
    pthread_mutex_lock(&W.mu);
  }
  pthread_mutex_unlock(&W.mu);
  return NULL;
}

void stm_repl_reply_write(struct stm_grpc_call *call,
                          const ProtobufCMessage *msg, const uint8_t *hashes,
                          size_t stride, size_t n) {
  if (W.nthreads == 0 || n == 0) {
    stm_grpc_call_reply(call, msg);
    return;
  }
  struct wjob *j = malloc(sizeof *j + n * STM_HASH_LEN);
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *packed = malloc(len ? len : 1);
  if (j == NULL || packed == NULL) {
    free(j);
    free(packed);
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                       "out of memory (the write is durable on this node)");
    return;
  }
  protobuf_c_message_pack(msg, packed);
  *j = (struct wjob){.call = call,
                     .desc = msg->descriptor,
                     .reply = packed,
                     .reply_len = len,
                     .n = n};
  for (size_t i = 0; i < n; i++)
    memcpy(j->hashes[i], hashes + i * stride, STM_HASH_LEN);
  pthread_mutex_lock(&W.mu);
  if (W.tail)
    W.tail->next = j;
  else
    W.head = j;
  W.tail = j;
  W.queued++;
  pthread_cond_signal(&W.cv);
  pthread_mutex_unlock(&W.mu);
}

int stm__repl_write_start(struct stm_service *svc) {
  W.svc = svc;
  W.stopping = false;
  for (; W.nthreads < WRITE_THREADS; W.nthreads++)
    if (pthread_create(&W.t[W.nthreads], NULL, writer_main, NULL) != 0)
      return STM_ENOMEM;
  return 0;
}

void stm__repl_write_stop(void) {
  pthread_mutex_lock(&W.mu);
  W.stopping = true;
  pthread_cond_broadcast(&W.cv);
  pthread_mutex_unlock(&W.mu);
  for (size_t i = 0; i < W.nthreads; i++)
    pthread_join(W.t[i], NULL);
  W.nthreads = 0;
}
