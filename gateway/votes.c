/* POST /v1/votes: the request from its body, the reply rendered. */
#include "gateway/request.h"
#include "gateway/resources.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "json/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int stm_gw_build_vote(const struct stm_gw_request *rq, ProtobufCMessage **out,
                      struct stm_error *err) {
  STM_GW_NEW_MSG(Stemedb__V1__VoteRequest, stemedb__v1__vote_request__init, m,
                 err);
  int rc = stm_gw_body_string(rq->body, "assertion_hash", "assertion_hash",
                              false, &m->assertion_hash, err);
  rc = rc ? rc
          : stm_gw_body_string(rq->body, "voter_id", "voter_id", false,
                               &m->voter_id, err);
  rc = rc ? rc
          : stm_gw_body_number(rq->body, "weight", "weight", true, &m->weight,
                               NULL, err);
  rc = rc ? rc
          : stm_gw_body_int64(rq->body, "timestamp_ns", "timestamp_ns",
                              &m->timestamp_ns, err);
  rc = rc ? rc
          : stm_gw_body_string(rq->body, "request_id", "request_id", false,
                               &m->request_id, err);
  return stm_gw_message_finish(&m->base, rc, out);
}

json_t *stm_gw_render_vote(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__VoteResponse *r = (const void *)msg;
  *status = r->created ? 201 : 200;
  json_t *o = json_object();
  stm_json_put(o, "hash", stm_json_str(r->hash));
  stm_json_put(o, "sequence", stm_json_uint(r->sequence));
  stm_json_put(o, "created", json_boolean(r->created));
  return o;
}
