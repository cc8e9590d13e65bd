#include "json/json.h"

#include <math.h>

json_t *stm_json_render_value(const Stemedb__V1__Value *v) {
  if (v == NULL)
    return json_null();
  switch (v->kind_case) {
  case STEMEDB__V1__VALUE__KIND_STRING_VALUE:
    return stm_json_str(v->string_value);
  case STEMEDB__V1__VALUE__KIND_NUMBER_VALUE:
    return isfinite(v->number_value) ? json_real(v->number_value) : json_null();
  case STEMEDB__V1__VALUE__KIND_BOOL_VALUE:
    return json_boolean(v->bool_value);
  case STEMEDB__V1__VALUE__KIND_REF_VALUE: {
    json_t *o = json_object();
    stm_json_put(o, "ref", stm_json_str(v->ref_value));
    return o;
  }
  default:
    return json_null();
  }
}

json_t *stm_json_render_assertion(const Stemedb__V1__Assertion *a) {
  if (a == NULL)
    return json_null();
  json_t *o = json_object();
  stm_json_put(o, "hash", stm_json_str(a->hash));
  stm_json_put(o, "concept_path", stm_json_str(a->concept_path));
  stm_json_put(o, "predicate", stm_json_str(a->predicate));
  stm_json_put(o, "value", stm_json_render_value(a->value));
  stm_json_put(o, "source", stm_json_str(a->source_id));
  stm_json_put(o, "source_tier", json_integer(a->source_tier));
  stm_json_put(o, "confidence", json_real(a->confidence));
  stm_json_put(o, "timestamp_ns", json_integer(a->timestamp_ns));
  stm_json_put(o, "sequence", stm_json_uint(a->sequence));
  stm_json_put(o, "epoch", stm_json_uint(a->epoch));
  stm_json_put(o, "commit_time_ns", json_integer(a->commit_time_ns));
  stm_json_put_opt_str(o, "parent_hash", a->parent_hash);
  stm_json_put_opt_str(o, "signature", a->signature);
  stm_json_put_opt_str(o, "public_key", a->public_key);
  return o;
}

json_t *stm_json_render_assert_response(const Stemedb__V1__AssertResponse *r) {
  json_t *o = json_object();
  stm_json_put(o, "hash", stm_json_str(r->hash));
  stm_json_put(o, "sequence", stm_json_uint(r->sequence));
  stm_json_put(o, "created", json_boolean(r->created));
  return o;
}

json_t *stm_json_render_assert_batch_response(
    const Stemedb__V1__AssertBatchResponse *r) {
  json_t *arr = json_array();
  for (size_t i = 0; i < r->n_results; i++)
    json_array_append_new(arr, stm_json_render_assert_response(r->results[i]));
  json_t *o = json_object();
  stm_json_put(o, "results", arr);
  return o;
}

static json_t *ranked_to_json(const Stemedb__V1__RankedValue *r) {
  json_t *o = json_object();
  stm_json_put(o, "value", stm_json_render_value(r->value));
  stm_json_put(o, "share", json_real(r->share));
  stm_json_put(o, "weight", json_real(r->weight));
  stm_json_put(o, "claims", json_integer(r->claims));
  stm_json_put(o, "representative",
               stm_json_render_assertion(r->representative));
  return o;
}

static json_t *tier_to_json(const Stemedb__V1__TierResult *t) {
  json_t *o = json_object();
  stm_json_put(o, "tier", json_integer(t->tier));
  stm_json_put(o, "confidence", json_real(t->confidence));
  stm_json_put(o, "candidates_count", json_integer(t->candidates_count));
  stm_json_put(o, "winner", stm_json_render_assertion(t->winner));
  return o;
}

static json_t *lens_result_to_json(const Stemedb__V1__LensResult *r) {
  json_t *o = json_object();
  stm_json_put(o, "concept_path", stm_json_str(r->concept_path));
  stm_json_put(o, "predicate", stm_json_str(r->predicate));
  stm_json_put_opt_str(o, "lens", r->lens);
  stm_json_put(o, "value",
               stm_json_render_value(r->winner ? r->winner->value : NULL));
  stm_json_put(o, "confidence", json_real(r->confidence));
  stm_json_put(o, "candidates_count", json_integer(r->candidates_count));
  stm_json_put(o, "conflict_score", json_real(r->conflict_score));
  stm_json_put_opt_str(o, "status", r->status);
  stm_json_put(o, "winner", stm_json_render_assertion(r->winner));
  if (r->n_ranked) {
    json_t *arr = json_array();
    for (size_t i = 0; i < r->n_ranked; i++)
      json_array_append_new(arr, ranked_to_json(r->ranked[i]));
    stm_json_put(o, "ranked", arr);
  }
  if (r->n_tiers) {
    json_t *arr = json_array();
    for (size_t i = 0; i < r->n_tiers; i++)
      json_array_append_new(arr, tier_to_json(r->tiers[i]));
    stm_json_put(o, "tiers", arr);
  }
  return o;
}

json_t *stm_json_render_query_response(const Stemedb__V1__QueryResponse *r) {
  json_t *arr = json_array();
  for (size_t i = 0; i < r->n_results; i++)
    json_array_append_new(arr, lens_result_to_json(r->results[i]));
  json_t *o = json_object();
  stm_json_put(o, "results", arr);
  stm_json_put(o, "sequence", stm_json_uint(r->sequence));
  return o;
}

json_t *stm_json_render_status_response(const Stemedb__V1__StatusResponse *s) {
  json_t *o = json_object();
  stm_json_put(o, "status", stm_json_str(s->status));
  stm_json_put(o, "assertion_count", stm_json_uint(s->assertion_count));
  stm_json_put(o, "last_sequence", stm_json_uint(s->last_sequence));
  stm_json_put(o, "node_id", stm_json_str(s->node_id));
  stm_json_put(o, "version", stm_json_str(s->version));
  stm_json_put(o, "uptime_seconds", stm_json_uint(s->uptime_seconds));
  stm_json_put(o, "writable", json_boolean(s->writable));
  return o;
}
