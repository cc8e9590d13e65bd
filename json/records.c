#include "json/json.h"

json_t *stm_json_render_vote(const Stemedb__V1__Vote *v) {
  json_t *o = json_object();
  stm_json_put(o, "hash", stm_json_str(v->hash));
  stm_json_put(o, "assertion_hash", stm_json_str(v->assertion_hash));
  stm_json_put(o, "voter_id", stm_json_str(v->voter_id));
  stm_json_put(o, "weight", json_real(v->weight));
  stm_json_put(o, "sequence", stm_json_uint(v->sequence));
  stm_json_put(o, "commit_time_ns", json_integer(v->commit_time_ns));
  stm_json_put(o, "timestamp_ns", json_integer(v->timestamp_ns));
  return o;
}

json_t *stm_json_render_epoch(const Stemedb__V1__Epoch *e) {
  if (e == NULL)
    return json_null();
  json_t *o = json_object();
  stm_json_put(o, "hash", stm_json_str(e->hash));
  stm_json_put(o, "concept_path", stm_json_str(e->concept_path));
  stm_json_put(o, "predicate", stm_json_str(e->predicate));
  stm_json_put(o, "reason", stm_json_str(e->reason));
  stm_json_put(o, "number", stm_json_uint(e->number));
  stm_json_put(o, "sequence", stm_json_uint(e->sequence));
  stm_json_put(o, "commit_time_ns", json_integer(e->commit_time_ns));
  return o;
}

json_t *stm_json_render_source(const Stemedb__V1__Source *s) {
  if (s == NULL)
    return json_null();
  json_t *o = json_object();
  stm_json_put(o, "id", stm_json_str(s->id));
  stm_json_put(o, "name", stm_json_str(s->name));
  stm_json_put(o, "tier", json_integer(s->tier));
  stm_json_put(o, "trust",
               json_real(s->trust_present_case ==
                                 STEMEDB__V1__SOURCE__TRUST_PRESENT_TRUST
                             ? s->trust
                             : 1.0));
  if (s->public_key && *s->public_key)
    stm_json_put(o, "public_key", stm_json_str(s->public_key));
  stm_json_put(o, "sequence", stm_json_uint(s->sequence));
  stm_json_put(o, "commit_time_ns", json_integer(s->commit_time_ns));
  return o;
}
