/* PUT /v1/sources[/{id}], GET /v1/sources/{id}, /v1/source?id=,
 * /v1/sources: requests from the URL and body, replies rendered. */
#include "gateway/request.h"
#include "gateway/resources.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "json/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int stm_gw_build_put_source(const struct stm_gw_request *rq,
                            ProtobufCMessage **out, struct stm_error *err) {
  STM_GW_NEW_MSG(Stemedb__V1__PutSourceRequest,
                 stemedb__v1__put_source_request__init, m, err);
  Stemedb__V1__Source *s = malloc(sizeof *s);
  if (s == NULL)
    return stm_gw_message_finish(&m->base, stm_gw_error_oom(err), out);
  stemedb__v1__source__init(s);
  m->source = s;
  int rc = stm_gw_path_id(rq, "source.id", &s->id, err);
  rc = rc ? rc
          : stm_gw_body_string(rq->body, "name", "source.name", false, &s->name,
                               err);
  double tier = 0, trust = 1;
  bool has_tier = false, has_trust = false;
  rc = rc ? rc
          : stm_gw_body_number(rq->body, "tier", "source.tier", false, &tier,
                               &has_tier, err);
  if (rc == 0 && has_tier && (tier != floor(tier) || tier < 0 || tier > 1e9))
    rc = stm_error_set(err, STM_EINVAL, "source.tier",
                       "source.tier must be 0 (regulatory) .. 5 (anecdotal)");
  s->tier = (uint32_t)tier;
  rc = rc ? rc
          : stm_gw_body_number(rq->body, "trust", "source.trust", false, &trust,
                               &has_trust, err);
  if (has_trust) {
    s->trust_present_case = STEMEDB__V1__SOURCE__TRUST_PRESENT_TRUST;
    s->trust = trust;
  }
  rc = rc ? rc
          : stm_gw_body_string(rq->body, "public_key", "source.public_key",
                               false, &s->public_key, err);
  rc = rc ? rc
          : stm_gw_body_string(rq->body, "request_id", "request_id", false,
                               &m->request_id, err);
  return stm_gw_message_finish(&m->base, rc, out);
}

int stm_gw_build_get_source(const struct stm_gw_request *rq,
                            ProtobufCMessage **out, struct stm_error *err) {
  STM_GW_NEW_MSG(Stemedb__V1__GetSourceRequest,
                 stemedb__v1__get_source_request__init, m, err);
  int rc = stm_gw_path_id(rq, "id", &m->id, err);
  rc = rc ? rc
          : stm_gw_query_uint(rq, "as_of_sequence", UINT64_MAX,
                              &m->as_of_sequence, err);
  rc = rc ? rc : stm_gw_query_int(rq, "as_of_time_ns", &m->as_of_time_ns, err);
  return stm_gw_message_finish(&m->base, rc, out);
}

int stm_gw_build_list_sources(const struct stm_gw_request *rq,
                              ProtobufCMessage **out, struct stm_error *err) {
  STM_GW_NEW_MSG(Stemedb__V1__ListSourcesRequest,
                 stemedb__v1__list_sources_request__init, m, err);
  uint64_t limit = 0;
  int rc = stm_gw_query_uint(rq, "limit", UINT32_MAX, &limit, err);
  m->limit = (uint32_t)limit;
  rc = rc ? rc : stm_gw_query_string(rq, "page_token", &m->page_token, err);
  rc = rc ? rc
          : stm_gw_query_uint(rq, "as_of_sequence", UINT64_MAX,
                              &m->as_of_sequence, err);
  rc = rc ? rc : stm_gw_query_int(rq, "as_of_time_ns", &m->as_of_time_ns, err);
  return stm_gw_message_finish(&m->base, rc, out);
}

json_t *stm_gw_render_put_source(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__PutSourceResponse *r = (const void *)msg;
  (void)status;
  json_t *o = json_object();
  stm_json_put(o, "source", stm_json_render_source(r->source));
  return o;
}

json_t *stm_gw_render_source(const ProtobufCMessage *msg, int *status) {
  (void)status;
  return stm_json_render_source((const Stemedb__V1__Source *)msg);
}

json_t *stm_gw_render_list_sources(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__ListSourcesResponse *r = (const void *)msg;
  (void)status;
  json_t *arr = json_array();
  for (size_t i = 0; i < r->n_sources; i++)
    json_array_append_new(arr, stm_json_render_source(r->sources[i]));
  json_t *o = json_object();
  stm_json_put(o, "sources", arr);
  stm_json_put(o, "next_page_token", stm_json_str(r->next_page_token));
  return o;
}
