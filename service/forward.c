/* forward.c - read forwarding (forward.h): the request re-sent to a peer
 * with the forwarded mark, its answer or status relayed to our caller. */
#include "forward.h"

#include "cluster_node.h"
#include "rpc/codec.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <grpc/byte_buffer.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool stm_forward_was_forwarded(const struct stm_grpc_call *call) {
  char v[8];
  return stm_grpc_call_metadata(call, STM_FORWARD_HEADER, v, sizeof v);
}

/* One unary call to `peer` with the forwarded mark (and the cluster's
 * admin key: peers authenticate each other with it, docs/security.md). */
static grpc_status_code call_peer(grpc_channel *ch, const char *method,
                                  grpc_byte_buffer *send,
                                  grpc_byte_buffer **recv,
                                  struct stm_rpc_status *st) {
  grpc_metadata md[2];
  size_t nmd = 0;
  md[nmd].key = grpc_slice_from_static_string(STM_FORWARD_HEADER);
  md[nmd++].value = grpc_slice_from_copied_string(stm_cluster_self_id());
  char auth[300];
  const char *key = getenv("STEMEDB_ADMIN_KEY");
  if (key && key[0]) {
    snprintf(auth, sizeof auth, "Bearer %s", key);
    md[nmd].key = grpc_slice_from_static_string("authorization");
    md[nmd++].value = grpc_slice_from_copied_string(auth);
  }
  grpc_status_code code = stm_rpc_call_raw_md(ch, method, md, nmd, send,
                                              STM_FORWARD_TIMEOUT_MS, recv, st);
  for (size_t i = 0; i < nmd; i++)
    grpc_slice_unref(md[i].value);
  return code;
}

/* Forward to `peer`; on OK answer the call. Returns the peer's status. */
static grpc_status_code relay(struct stm_grpc_call *call, const char *peer,
                              const ProtobufCMessage *msg, const char *method,
                              const ProtobufCMessageDescriptor *desc,
                              struct stm_rpc_status *st) {
  grpc_channel *ch = stm_cluster_peer_channel(peer);
  if (ch == NULL) {
    st->code = GRPC_STATUS_UNAVAILABLE;
    snprintf(st->message, sizeof st->message, "no address for node %s", peer);
    return st->code;
  }
  grpc_byte_buffer *send = stm_rpc_pack(msg), *recv = NULL;
  grpc_status_code code = call_peer(ch, method, send, &recv, st);
  grpc_byte_buffer_destroy(send);
  if (code != GRPC_STATUS_OK)
    return code;
  ProtobufCMessage *resp = stm_rpc_unpack(desc, recv);
  if (recv)
    grpc_byte_buffer_destroy(recv);
  if (resp == NULL) {
    stm_grpc_call_fail(call, GRPC_STATUS_INTERNAL,
                       "node %s sent an answer that does not parse", peer);
    return GRPC_STATUS_OK;
  }
  stm_grpc_call_reply(call, resp);
  protobuf_c_message_free_unpacked(resp, NULL);
  return GRPC_STATUS_OK;
}

static bool shard_sync(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                       const char *method,
                       const ProtobufCMessageDescriptor *resp_desc,
                       const char *concept_path) {
  struct stm_cluster_peer reps[STM_PLACEMENT_MAX_REPLICAS];
  size_t n = stm_cluster_replicas(stm_cluster_shard_of(concept_path), reps,
                                  STM_PLACEMENT_MAX_REPLICAS);
  struct stm_rpc_status st = {0};
  for (size_t i = 0; i < n; i++) {
    grpc_status_code code =
        relay(call, reps[i].id, msg, method, resp_desc, &st);
    if (code == GRPC_STATUS_OK)
      return true;
    if (code != GRPC_STATUS_UNAVAILABLE &&
        code != GRPC_STATUS_DEADLINE_EXCEEDED) {
      stm_grpc_call_fail(call, code, "%s", st.message); /* its answer */
      return true;
    }
  }
  stm_grpc_call_fail(call, GRPC_STATUS_UNAVAILABLE,
                     "no replica of the shard of %s answered: %s", concept_path,
                     n ? st.message : "none is UP");
  return true;
}

/* Ask each other UP node; the first answer other than NOT_FOUND wins.
 * Nobody has it: NOT_FOUND with a peer's message (the same text this
 * node's handler would give). */
static void any_sync(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                     const char *method,
                     const ProtobufCMessageDescriptor *resp_desc) {
  struct stm_cluster_member *m = NULL;
  size_t n = stm_cluster_members_snapshot(&m);
  bool done = false;
  char nf[512] = "";
  for (size_t i = 0; i < n && !done; i++) {
    if (m[i].self || m[i].state != STM_SWIM_UP)
      continue;
    struct stm_rpc_status st = {0};
    grpc_status_code code = relay(call, m[i].id, msg, method, resp_desc, &st);
    if (code == GRPC_STATUS_OK)
      done = true;
    else if (code == GRPC_STATUS_NOT_FOUND)
      memcpy(nf, st.message, sizeof nf);
    else if (code != GRPC_STATUS_UNAVAILABLE &&
             code != GRPC_STATUS_DEADLINE_EXCEEDED) {
      stm_grpc_call_fail(call, code, "%s", st.message);
      done = true;
    }
  }
  free(m);
  if (!done)
    stm_grpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "%s",
                       nf[0] ? nf
                             : "not stored on this node, and no other node "
                               "answered");
}

/* ---- fan-out: ListConcepts and Query with include_descendants ---------- */

/* The answers of every other UP node to `msg` (forwarded), unpacked; the
 * caller frees each with protobuf_c_message_free_unpacked. A node that
 * fails is skipped: its shards have other replicas. */
static size_t gather(const ProtobufCMessage *msg, const char *method,
                     const ProtobufCMessageDescriptor *desc,
                     ProtobufCMessage **out, size_t max) {
  struct stm_cluster_member *m = NULL;
  size_t n = stm_cluster_members_snapshot(&m), k = 0;
  for (size_t i = 0; i < n && k < max; i++) {
    if (m[i].self || m[i].state != STM_SWIM_UP)
      continue;
    grpc_channel *ch = stm_cluster_peer_channel(m[i].id);
    if (ch == NULL)
      continue;
    struct stm_rpc_status st;
    grpc_byte_buffer *send = stm_rpc_pack(msg), *recv = NULL;
    if (call_peer(ch, method, send, &recv, &st) == GRPC_STATUS_OK &&
        (out[k] = stm_rpc_unpack(desc, recv)) != NULL)
      k++;
    grpc_byte_buffer_destroy(send);
    if (recv)
      grpc_byte_buffer_destroy(recv);
  }
  free(m);
  return k;
}

#define MAX_FAN 64

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_sync(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                      char **local, size_t n, bool more, size_t limit) {
  ProtobufCMessage *got[MAX_FAN];
  size_t k =
      gather(msg, "/stemedb.v1.StemeDB/ListConcepts",
             &stemedb__v1__list_concepts_response__descriptor, got, MAX_FAN);
  size_t total = n;
  for (size_t i = 0; i < k; i++)
    total += ((Stemedb__V1__ListConceptsResponse *)got[i])->n_concepts;
  char **all = malloc((total ? total : 1) * sizeof *all);
  if (all == NULL) {
    for (size_t i = 0; i < k; i++)
      protobuf_c_message_free_unpacked(got[i], NULL);
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    all[c++] = local[i];
  for (size_t i = 0; i < k; i++) {
    Stemedb__V1__ListConceptsResponse *r =
        (Stemedb__V1__ListConceptsResponse *)got[i];
    more = more || r->next_page_token[0] != '\0';
    for (size_t j = 0; j < r->n_concepts; j++)
      all[c++] = r->concepts[j];
  }
  qsort(all, c, sizeof *all, cmp_str);
  size_t u = 0; /* every concept lives on factor nodes: dedupe */
  for (size_t i = 0; i < c; i++)
    if (u == 0 || strcmp(all[u - 1], all[i]) != 0)
      all[u++] = all[i];
  if (u > limit) {
    u = limit;
    more = true;
  }
  Stemedb__V1__ListConceptsResponse resp =
      STEMEDB__V1__LIST_CONCEPTS_RESPONSE__INIT;
  resp.concepts = all;
  resp.n_concepts = u;
  resp.next_page_token = more && u ? all[u - 1] : "";
  stm_grpc_call_reply(call, &resp.base);
  free(all);
  for (size_t i = 0; i < k; i++)
    protobuf_c_message_free_unpacked(got[i], NULL);
}

static int cmp_result(const void *a, const void *b) {
  const Stemedb__V1__LensResult *x = *(Stemedb__V1__LensResult *const *)a;
  const Stemedb__V1__LensResult *y = *(Stemedb__V1__LensResult *const *)b;
  int c = strcmp(x->concept_path, y->concept_path);
  return c ? c : strcmp(x->predicate, y->predicate);
}

static void merge_sync(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                       const ProtobufCMessage *local_resp, size_t limit) {
  const Stemedb__V1__QueryResponse *mine =
      (const Stemedb__V1__QueryResponse *)local_resp;
  ProtobufCMessage *got[MAX_FAN];
  size_t k = gather(msg, "/stemedb.v1.StemeDB/Query",
                    &stemedb__v1__query_response__descriptor, got, MAX_FAN);
  size_t total = mine->n_results;
  for (size_t i = 0; i < k; i++)
    total += ((Stemedb__V1__QueryResponse *)got[i])->n_results;
  Stemedb__V1__LensResult **all = malloc((total ? total : 1) * sizeof *all);
  if (all == NULL) {
    for (size_t i = 0; i < k; i++)
      protobuf_c_message_free_unpacked(got[i], NULL);
    stm_grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  size_t c = 0;
  for (size_t i = 0; i < mine->n_results; i++)
    all[c++] = mine->results[i];
  for (size_t i = 0; i < k; i++) {
    Stemedb__V1__QueryResponse *r = (Stemedb__V1__QueryResponse *)got[i];
    for (size_t j = 0; j < r->n_results; j++)
      all[c++] = r->results[j];
  }
  /* A (concept, predicate) is answered alike by each of its replicas:
   * keep one, in the order a single node answers (path, predicate). */
  qsort(all, c, sizeof *all, cmp_result);
  size_t u = 0;
  for (size_t i = 0; i < c; i++)
    if (u == 0 || cmp_result(&all[u - 1], &all[i]) != 0)
      all[u++] = all[i];
  Stemedb__V1__QueryResponse resp = STEMEDB__V1__QUERY_RESPONSE__INIT;
  resp.results = all;
  resp.n_results = u < limit ? u : limit;
  resp.sequence = mine->sequence; /* this node's: sequences are local */
  stm_grpc_call_reply(call, &resp.base);
  free(all);
  for (size_t i = 0; i < k; i++)
    protobuf_c_message_free_unpacked(got[i], NULL);
}

/* ---- the forwarding threads ----------------------------------------------
 * A handler runs on a completion-queue thread: waiting there for a peer
 * would stall every call of that queue, and two nodes forwarding to each
 * other could each wait for the other's busy threads. So the handler
 * queues a job with copies of what it needs and returns; these threads
 * call the peers and answer. */

#define FORWARD_THREADS 4

enum fkind { F_SHARD, F_ANY, F_LIST, F_MERGE };

struct fjob {
  struct fjob *next;
  enum fkind kind;
  struct stm_grpc_call *call;
  ProtobufCMessage *req;   /* a copy */
  ProtobufCMessage *local; /* F_MERGE: this node's answer, a copy */
  const char *method;      /* static */
  const ProtobufCMessageDescriptor *desc;
  char *concept;   /* F_SHARD */
  char **concepts; /* F_LIST: this node's page, copies */
  size_t n, limit;
  bool more;
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct fjob *head, *tail;
  pthread_t t[FORWARD_THREADS];
  size_t nthreads;
  bool stopping;
} F = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static ProtobufCMessage *copy_msg(const ProtobufCMessage *m) {
  size_t len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL)
    return NULL;
  protobuf_c_message_pack(m, buf);
  ProtobufCMessage *c =
      protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
  free(buf);
  return c;
}

static void job_free(struct fjob *j) {
  if (j->req)
    protobuf_c_message_free_unpacked(j->req, NULL);
  if (j->local)
    protobuf_c_message_free_unpacked(j->local, NULL);
  for (size_t i = 0; j->concepts && i < j->n; i++)
    free(j->concepts[i]);
  free(j->concepts);
  free(j->concept);
  free(j);
}

static void job_run(struct fjob *j) {
  switch (j->kind) {
  case F_SHARD:
    shard_sync(j->call, j->req, j->method, j->desc, j->concept);
    break;
  case F_ANY:
    any_sync(j->call, j->req, j->method, j->desc);
    break;
  case F_LIST:
    list_sync(j->call, j->req, j->concepts, j->n, j->more, j->limit);
    break;
  default:
    merge_sync(j->call, j->req, j->local, j->limit);
  }
}

static void *forward_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&F.mu);
  for (;;) {
    while (F.head == NULL && !F.stopping)
      pthread_cond_wait(&F.cv, &F.mu);
    if (F.head == NULL)
      break;
    struct fjob *j = F.head;
    F.head = j->next;
    if (F.head == NULL)
      F.tail = NULL;
    pthread_mutex_unlock(&F.mu);
    job_run(j);
    job_free(j);
    pthread_mutex_lock(&F.mu);
  }
  pthread_mutex_unlock(&F.mu);
  return NULL;
}

/* Queue j (taking it). False (j freed) when it cannot run: the caller
 * answers locally. */
static bool queue(struct fjob *j) {
  if (j->req == NULL) {
    job_free(j);
    return false;
  }
  pthread_mutex_lock(&F.mu);
  while (!F.stopping && F.nthreads < FORWARD_THREADS &&
         pthread_create(&F.t[F.nthreads], NULL, forward_main, NULL) == 0)
    F.nthreads++;
  bool ok = !F.stopping && F.nthreads > 0;
  if (ok) {
    if (F.tail)
      F.tail->next = j;
    else
      F.head = j;
    F.tail = j;
    pthread_cond_signal(&F.cv);
  }
  pthread_mutex_unlock(&F.mu);
  if (!ok)
    job_free(j);
  return ok;
}

static struct fjob *job_new(enum fkind kind, struct stm_grpc_call *call,
                            const ProtobufCMessage *msg, const char *method,
                            const ProtobufCMessageDescriptor *desc) {
  struct fjob *j = calloc(1, sizeof *j);
  if (j == NULL)
    return NULL;
  j->kind = kind;
  j->call = call;
  j->method = method;
  j->desc = desc;
  j->req = copy_msg(msg);
  return j;
}

static bool others_up(void) {
  struct stm_cluster_member *m = NULL;
  size_t n = stm_cluster_members_snapshot(&m);
  bool any = false;
  for (size_t i = 0; i < n; i++)
    any = any || (!m[i].self && m[i].state == STM_SWIM_UP);
  free(m);
  return any;
}

bool stm_forward_to_shard(struct stm_grpc_call *call,
                          const ProtobufCMessage *msg, const char *method,
                          const ProtobufCMessageDescriptor *resp_desc,
                          const char *concept_path) {
  if (!stm_cluster_enabled() || concept_path == NULL ||
      concept_path[0] == '\0' || stm_forward_was_forwarded(call))
    return false;
  struct stm_cluster_peer reps[STM_PLACEMENT_MAX_REPLICAS];
  size_t n = stm_cluster_replicas(stm_cluster_shard_of(concept_path), reps,
                                  STM_PLACEMENT_MAX_REPLICAS);
  for (size_t i = 0; i < n; i++)
    if (reps[i].self)
      return false;
  if (n == 0)
    return false;
  struct fjob *j = job_new(F_SHARD, call, msg, method, resp_desc);
  if (j == NULL)
    return false;
  j->concept = strdup(concept_path);
  if (j->concept == NULL) {
    job_free(j);
    return false;
  }
  return queue(j);
}

bool stm_forward_to_any(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                        const char *method,
                        const ProtobufCMessageDescriptor *resp_desc) {
  if (!stm_cluster_enabled() || stm_forward_was_forwarded(call) || !others_up())
    return false;
  struct fjob *j = job_new(F_ANY, call, msg, method, resp_desc);
  return j ? queue(j) : false;
}

bool stm_forward_list_concepts(struct stm_grpc_call *call,
                               const ProtobufCMessage *msg, char **local,
                               size_t n, bool more, size_t limit) {
  if (!stm_cluster_enabled() || stm_forward_was_forwarded(call) || !others_up())
    return false;
  struct fjob *j = job_new(F_LIST, call, msg, NULL, NULL);
  if (j == NULL)
    return false;
  j->concepts = calloc(n ? n : 1, sizeof *j->concepts);
  bool ok = j->concepts != NULL;
  for (size_t i = 0; ok && i < n; i++)
    ok = (j->concepts[j->n++] = strdup(local[i])) != NULL;
  j->more = more;
  j->limit = limit;
  if (!ok) {
    job_free(j);
    return false;
  }
  return queue(j);
}

bool stm_forward_merge_query(struct stm_grpc_call *call,
                             const ProtobufCMessage *msg,
                             const ProtobufCMessage *local_resp, size_t limit) {
  if (!stm_cluster_enabled() || stm_forward_was_forwarded(call) || !others_up())
    return false;
  struct fjob *j = job_new(F_MERGE, call, msg, NULL, NULL);
  if (j == NULL)
    return false;
  j->local = copy_msg(local_resp);
  j->limit = limit;
  if (j->local == NULL) {
    job_free(j);
    return false;
  }
  return queue(j);
}

void stm_forward_stop(void) {
  pthread_mutex_lock(&F.mu);
  F.stopping = true;
  pthread_cond_broadcast(&F.cv);
  pthread_mutex_unlock(&F.mu);
  for (size_t i = 0; i < F.nthreads; i++)
    pthread_join(F.t[i], NULL);
  F.nthreads = 0;
}
