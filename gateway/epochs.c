/* POST /v1/epochs: the request from its body, the reply rendered. */
#include "gateway/request.h"
#include "gateway/resources.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "json/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int stm_gw_build_start_epoch(const struct stm_gw_request *rq,
                             ProtobufCMessage **out, struct stm_error *err) {
  STM_GW_NEW_MSG(Stemedb__V1__StartEpochRequest,
                 stemedb__v1__start_epoch_request__init, m, err);
  int rc = stm_gw_body_string(rq->body, "concept_path", "concept_path", false,
                              &m->concept_path, err);
  rc = rc ? rc
          : stm_gw_body_string(rq->body, "predicate", "predicate", false,
                               &m->predicate, err);
  rc = rc ? rc
          : stm_gw_body_string(rq->body, "reason", "reason", false, &m->reason,
                               err);
  rc = rc ? rc
          : stm_gw_body_int64(rq->body, "timestamp_ns", "timestamp_ns",
                              &m->timestamp_ns, err);
  rc = rc ? rc
          : stm_gw_body_string(rq->body, "request_id", "request_id", false,
                               &m->request_id, err);
  return stm_gw_message_finish(&m->base, rc, out);
}

json_t *stm_gw_render_start_epoch(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__StartEpochResponse *r = (const void *)msg;
  *status = r->created ? 201 : 200;
  json_t *o = json_object();
  stm_json_put(o, "epoch", stm_json_render_epoch(r->epoch));
  stm_json_put(o, "created", json_boolean(r->created));
  return o;
}
