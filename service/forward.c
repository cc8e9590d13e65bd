/* forward.c - read forwarding (forward.h): the request re-sent to a peer
 * with the forwarded mark, its answer or status relayed to our caller. */
#include "forward.h"

#include "cluster_node.h"
#include "rpc/codec.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <grpc/byte_buffer.h>
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
  *recv = NULL;
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                   gpr_time_from_millis(STM_FORWARD_TIMEOUT_MS, GPR_TIMESPAN));
  grpc_call *c = grpc_channel_create_call(
      ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
      grpc_slice_from_static_string(method), NULL, deadline, NULL);
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
  grpc_metadata_array init_md, trail_md;
  grpc_metadata_array_init(&init_md);
  grpc_metadata_array_init(&trail_md);
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = nmd;
  ops[0].data.send_initial_metadata.metadata = md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
  ops[5].data.recv_status_on_client.status = &code;
  ops[5].data.recv_status_on_client.status_details = &details;
  int tag = 0;
  if (grpc_call_start_batch(c, ops, 6, &tag, NULL) == GRPC_CALL_OK)
    grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME),
                                NULL);
  else
    code = GRPC_STATUS_INTERNAL;
  size_t n = GRPC_SLICE_LENGTH(details);
  if (n >= sizeof st->message)
    n = sizeof st->message - 1;
  memcpy(st->message, GRPC_SLICE_START_PTR(details), n);
  st->message[n] = '\0';
  st->code = code;
  if (code != GRPC_STATUS_OK && *recv) {
    grpc_byte_buffer_destroy(*recv);
    *recv = NULL;
  }
  for (size_t i = 0; i < nmd; i++)
    grpc_slice_unref(md[i].value);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&init_md);
  grpc_metadata_array_destroy(&trail_md);
  grpc_call_unref(c);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL,
                                     gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
             .type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
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
  struct stm_rpc_status st = {0};
  for (size_t i = 0; i < n; i++) {
    grpc_status_code code = relay(call, reps[i].id, msg, method, resp_desc,
                                  &st);
    if (code == GRPC_STATUS_OK)
      return true;
    if (code != GRPC_STATUS_UNAVAILABLE &&
        code != GRPC_STATUS_DEADLINE_EXCEEDED) {
      stm_grpc_call_fail(call, code, "%s", st.message); /* its answer */
      return true;
    }
  }
  if (n == 0)
    return false;
  stm_grpc_call_fail(call, GRPC_STATUS_UNAVAILABLE,
                     "no replica of the shard of %s answered: %s",
                     concept_path, st.message);
  return true;
}

bool stm_forward_to_any(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                        const char *method,
                        const ProtobufCMessageDescriptor *resp_desc) {
  if (!stm_cluster_enabled() || stm_forward_was_forwarded(call))
    return false;
  struct stm_cluster_member *m = NULL;
  size_t n = stm_cluster_members_snapshot(&m);
  bool done = false;
  for (size_t i = 0; i < n && !done; i++) {
    if (m[i].self || m[i].state != STM_SWIM_UP)
      continue;
    struct stm_rpc_status st = {0};
    grpc_status_code code = relay(call, m[i].id, msg, method, resp_desc, &st);
    if (code == GRPC_STATUS_OK)
      done = true;
    else if (code != GRPC_STATUS_NOT_FOUND &&
             code != GRPC_STATUS_UNAVAILABLE &&
             code != GRPC_STATUS_DEADLINE_EXCEEDED) {
      stm_grpc_call_fail(call, code, "%s", st.message);
      done = true;
    }
  }
  free(m);
  return done;
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

bool stm_forward_list_concepts(struct stm_grpc_call *call,
                               const ProtobufCMessage *msg, char **local,
                               size_t n, bool more, size_t limit) {
  if (!stm_cluster_enabled() || stm_forward_was_forwarded(call))
    return false;
  ProtobufCMessage *got[MAX_FAN];
  size_t k = gather(msg, "/stemedb.v1.StemeDB/ListConcepts",
                    &stemedb__v1__list_concepts_response__descriptor, got,
                    MAX_FAN);
  size_t total = n;
  for (size_t i = 0; i < k; i++)
    total += ((Stemedb__V1__ListConceptsResponse *)got[i])->n_concepts;
  char **all = malloc((total ? total : 1) * sizeof *all);
  if (all == NULL) {
    for (size_t i = 0; i < k; i++)
      protobuf_c_message_free_unpacked(got[i], NULL);
    return false;
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
  return true;
}

static int cmp_result(const void *a, const void *b) {
  const Stemedb__V1__LensResult *x = *(Stemedb__V1__LensResult *const *)a;
  const Stemedb__V1__LensResult *y = *(Stemedb__V1__LensResult *const *)b;
  int c = strcmp(x->concept_path, y->concept_path);
  return c ? c : strcmp(x->predicate, y->predicate);
}

bool stm_forward_merge_query(struct stm_grpc_call *call,
                             const ProtobufCMessage *msg,
                             const ProtobufCMessage *local_resp,
                             size_t limit) {
  if (!stm_cluster_enabled() || stm_forward_was_forwarded(call))
    return false;
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
    return false;
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
  return true;
}
