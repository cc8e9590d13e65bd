/* GET /v1/trace/{hash}, /v1/audit and /v1/concepts: requests from the
 * URL, replies rendered. */
#include "gateway/request.h"
#include "gateway/resources.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "json/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int stm_gw_build_trace(const struct stm_gw_request *rq, ProtobufCMessage **out,
                       struct stm_error *err) {
  STM_GW_NEW_MSG(Stemedb__V1__TraceRequest, stemedb__v1__trace_request__init, m,
                 err);
  int rc = stm_gw_path_id(rq, "hash", &m->hash, err);
  rc = rc ? rc
          : stm_gw_query_uint(rq, "as_of_sequence", UINT64_MAX,
                              &m->as_of_sequence, err);
  rc = rc ? rc : stm_gw_query_int(rq, "as_of_time_ns", &m->as_of_time_ns, err);
  return stm_gw_message_finish(&m->base, rc, out);
}

int stm_gw_build_audit(const struct stm_gw_request *rq, ProtobufCMessage **out,
                       struct stm_error *err) {
  STM_GW_NEW_MSG(Stemedb__V1__AuditRequest, stemedb__v1__audit_request__init, m,
                 err);
  uint64_t limit = 0;
  int rc = stm_gw_query_uint(rq, "after_sequence", UINT64_MAX,
                             &m->after_sequence, err);
  rc = rc ? rc : stm_gw_query_uint(rq, "limit", UINT32_MAX, &limit, err);
  m->limit = (uint32_t)limit;
  return stm_gw_message_finish(&m->base, rc, out);
}

int stm_gw_build_list_concepts(const struct stm_gw_request *rq,
                               ProtobufCMessage **out, struct stm_error *err) {
  STM_GW_NEW_MSG(Stemedb__V1__ListConceptsRequest,
                 stemedb__v1__list_concepts_request__init, m, err);
  uint64_t limit = 0;
  int rc = stm_gw_query_string(rq, "prefix", &m->prefix, err);
  rc = rc ? rc : stm_gw_query_uint(rq, "limit", UINT32_MAX, &limit, err);
  m->limit = (uint32_t)limit;
  rc = rc ? rc : stm_gw_query_string(rq, "page_token", &m->page_token, err);
  return stm_gw_message_finish(&m->base, rc, out);
}

static json_t *assertions(Stemedb__V1__Assertion **a, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(arr, stm_json_render_assertion(a[i]));
  return arr;
}

json_t *stm_gw_render_trace(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__TraceResponse *r = (const void *)msg;
  (void)status;
  json_t *o = json_object();
  stm_json_put(o, "assertion", stm_json_render_assertion(r->assertion));
  stm_json_put(o, "parents", assertions(r->parents, r->n_parents));
  stm_json_put(o, "children", assertions(r->children, r->n_children));
  json_t *votes = json_array();
  for (size_t i = 0; i < r->n_votes; i++)
    json_array_append_new(votes, stm_json_render_vote(r->votes[i]));
  stm_json_put(o, "votes", votes);
  stm_json_put(o, "superseded_by", stm_json_render_epoch(r->superseded_by));
  return o;
}

json_t *stm_gw_render_audit(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__AuditResponse *r = (const void *)msg;
  (void)status;
  json_t *arr = json_array();
  for (size_t i = 0; i < r->n_entries; i++) {
    const Stemedb__V1__AuditEntry *e = r->entries[i];
    json_t *x = json_object();
    stm_json_put(x, "sequence", stm_json_uint(e->sequence));
    stm_json_put(x, "time_ns", json_integer(e->time_ns));
    stm_json_put(x, "operation", stm_json_str(e->operation));
    stm_json_put(x, "caller", stm_json_str(e->caller));
    stm_json_put(x, "target_hash", stm_json_str(e->target_hash));
    stm_json_put(x, "detail", stm_json_str(e->detail));
    json_array_append_new(arr, x);
  }
  json_t *o = json_object();
  stm_json_put(o, "entries", arr);
  stm_json_put(o, "next_after_sequence", stm_json_uint(r->next_after_sequence));
  return o;
}

json_t *stm_gw_render_list_concepts(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__ListConceptsResponse *r = (const void *)msg;
  (void)status;
  json_t *arr = json_array();
  for (size_t i = 0; i < r->n_concepts; i++)
    json_array_append_new(arr, stm_json_str(r->concepts[i]));
  json_t *o = json_object();
  stm_json_put(o, "concepts", arr);
  stm_json_put(o, "next_page_token", stm_json_str(r->next_page_token));
  return o;
}
