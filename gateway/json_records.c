#include "json_records.h"

#include "common/hex.h"
#include "json_map.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QVAL_MAX 1024

/* ---- helpers ----------------------------------------------------------------
 */

static int oom(struct stm_error *err) {
  return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
}

bool stm_gw_percent_decode(const char *s, size_t len, bool plus, char *out,
                           size_t outlen) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (o + 1 >= outlen)
      return false;
    char c = s[i];
    if (c == '%') {
      int hi = i + 2 < len ? stm_hex_digit(s[i + 1]) : -1;
      int lo = i + 2 < len ? stm_hex_digit(s[i + 2]) : -1;
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        return false;
      out[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[o++] = plus && c == '+' ? ' ' : c;
    }
  }
  out[o] = '\0';
  return true;
}

/*
 * A query-string parameter, percent-decoded into buf. Returns 0 with
 * *present; STM_EINVAL naming `name` for a bad escape or an over-long
 * value.
 */
static int qval(const struct stm_gw_request *rq, const char *name, char *buf,
                size_t len, bool *present, struct stm_error *err) {
  char raw[QVAL_MAX];
  const char *q = rq->query ? rq->query : "";
  const char *v = stm_gw_query_value(q, name, raw, sizeof raw);
  *present = v != NULL;
  buf[0] = '\0';
  if (v == NULL) {
    char pat[64];
    snprintf(pat, sizeof pat, "%s=", name);
    const char *at = strstr(q, pat);
    if (at && (at == q || at[-1] == '&'))
      return stm_error_set(err, STM_EINVAL, name, "%s is too long", name);
    return 0;
  }
  if (!stm_gw_percent_decode(v, strlen(v), true, buf, len))
    return stm_error_set(err, STM_EINVAL, name,
                         "%s is not valid percent-encoded text", name);
  return 0;
}

static int qstr(const struct stm_gw_request *rq, const char *name, char **slot,
                struct stm_error *err) {
  char buf[QVAL_MAX];
  bool present;
  int rc = qval(rq, name, buf, sizeof buf, &present, err);
  if (rc || !present)
    return rc;
  *slot = strdup(buf);
  return *slot ? 0 : oom(err);
}

static int quint(const struct stm_gw_request *rq, const char *name,
                 uint64_t max, uint64_t *out, struct stm_error *err) {
  char buf[64];
  bool present;
  int rc = qval(rq, name, buf, sizeof buf, &present, err);
  if (rc || !present)
    return rc;
  uint64_t v;
  rc = stm_gw_parse_uint(name, buf, strlen(buf), &v, err);
  if (rc == 0 && v > max)
    rc = stm_error_set(err, STM_EINVAL, name, "%s is out of range [0, %llu]",
                       name, (unsigned long long)max);
  if (rc == 0)
    *out = v;
  return rc;
}

static int qint(const struct stm_gw_request *rq, const char *name, int64_t *out,
                struct stm_error *err) {
  char buf[64];
  bool present;
  int rc = qval(rq, name, buf, sizeof buf, &present, err);
  if (rc || !present)
    return rc;
  return stm_gw_parse_int(name, buf, strlen(buf), INT64_MIN, INT64_MAX, out,
                          err);
}

static int qbool(const struct stm_gw_request *rq, const char *name,
                 protobuf_c_boolean *out, struct stm_error *err) {
  char buf[16];
  bool present;
  int rc = qval(rq, name, buf, sizeof buf, &present, err);
  if (rc || !present)
    return rc;
  if (strcmp(buf, "true") == 0 || strcmp(buf, "1") == 0)
    *out = 1;
  else if (strcmp(buf, "false") == 0 || strcmp(buf, "0") == 0)
    *out = 0;
  else
    return stm_error_set(err, STM_EINVAL, name, "%s must be true or false",
                         name);
  return 0;
}

/* Body members: JSON null counts as absent. */
static const json_t *member(const json_t *obj, const char *key) {
  const json_t *v = obj ? json_object_get(obj, key) : NULL;
  return json_is_null(v) ? NULL : v;
}

static int bstr(const json_t *obj, const char *key, const char *field,
                bool required, char **slot, struct stm_error *err) {
  const json_t *v = member(obj, key);
  if (v == NULL)
    return required
               ? stm_error_set(err, STM_EINVAL, field, "%s is required", field)
               : 0;
  if (!json_is_string(v))
    return stm_error_set(err, STM_EINVAL, field, "%s must be a string", field);
  size_t n = json_string_length(v);
  if (memchr(json_string_value(v), 0, n))
    return stm_error_set(err, STM_EINVAL, field, "%s contains a NUL byte",
                         field);
  *slot = strdup(json_string_value(v));
  return *slot ? 0 : oom(err);
}

static int bnum(const json_t *obj, const char *key, const char *field,
                bool required, double *out, bool *present,
                struct stm_error *err) {
  const json_t *v = member(obj, key);
  if (present)
    *present = v != NULL;
  if (v == NULL)
    return required
               ? stm_error_set(err, STM_EINVAL, field, "%s is required", field)
               : 0;
  if (!json_is_number(v))
    return stm_error_set(err, STM_EINVAL, field, "%s must be a number", field);
  *out = json_number_value(v);
  return 0;
}

static int finish(ProtobufCMessage *m, int rc, ProtobufCMessage **out) {
  if (rc) {
    protobuf_c_message_free_unpacked(m, NULL);
    *out = NULL;
    return rc;
  }
  *out = m;
  return 0;
}

#define NEW_MSG(T, init, var, err)                                             \
  T *var = malloc(sizeof *var);                                                \
  if (var == NULL)                                                             \
    return oom(err);                                                           \
  init(var)

/* ---- builders
 * ------------------------------------------------------------------ */

int stm_gw_build_vote(const struct stm_gw_request *rq, ProtobufCMessage **out,
                      struct stm_error *err) {
  NEW_MSG(Stemedb__V1__VoteRequest, stemedb__v1__vote_request__init, m, err);
  int rc = bstr(rq->body, "assertion_hash", "assertion_hash", true,
                &m->assertion_hash, err);
  rc =
      rc ? rc : bstr(rq->body, "voter_id", "voter_id", true, &m->voter_id, err);
  rc =
      rc ? rc : bnum(rq->body, "weight", "weight", true, &m->weight, NULL, err);
  return finish(&m->base, rc, out);
}

int stm_gw_build_start_epoch(const struct stm_gw_request *rq,
                             ProtobufCMessage **out, struct stm_error *err) {
  NEW_MSG(Stemedb__V1__StartEpochRequest,
          stemedb__v1__start_epoch_request__init, m, err);
  int rc = bstr(rq->body, "concept_path", "concept_path", true,
                &m->concept_path, err);
  rc = rc ? rc
          : bstr(rq->body, "predicate", "predicate", false, &m->predicate, err);
  rc = rc ? rc : bstr(rq->body, "reason", "reason", false, &m->reason, err);
  return finish(&m->base, rc, out);
}

/*
 * The id of a source (or a hash) from the URL path segment; when the route
 * has none, from ?id= or the body's "id". libwebsockets decodes %2F and
 * collapses "//" in paths, so ids like "fda://x" must use the latter.
 */
static int path_id(const struct stm_gw_request *rq, const char *field,
                   char **slot, struct stm_error *err) {
  char buf[QVAL_MAX];
  if (rq->param == NULL || rq->param[0] == '\0') {
    bool present;
    int rc = qval(rq, "id", buf, sizeof buf, &present, err);
    if (rc == 0 && !present)
      return bstr(rq->body, "id", field, true, slot, err);
    if (rc == 0 && (*slot = strdup(buf)) == NULL)
      rc = oom(err);
    return rc;
  }
  if (!stm_gw_percent_decode(rq->param, strlen(rq->param), false, buf,
                             sizeof buf))
    return stm_error_set(err, STM_EINVAL, field,
                         "%s is not valid percent-encoded text", field);
  *slot = strdup(buf);
  return *slot ? 0 : oom(err);
}

int stm_gw_build_put_source(const struct stm_gw_request *rq,
                            ProtobufCMessage **out, struct stm_error *err) {
  NEW_MSG(Stemedb__V1__PutSourceRequest, stemedb__v1__put_source_request__init,
          m, err);
  Stemedb__V1__Source *s = malloc(sizeof *s);
  if (s == NULL)
    return finish(&m->base, oom(err), out);
  stemedb__v1__source__init(s);
  m->source = s;
  int rc = path_id(rq, "source.id", &s->id, err);
  rc = rc ? rc : bstr(rq->body, "name", "source.name", false, &s->name, err);
  double tier = 0, trust = 1;
  bool has_tier = false, has_trust = false;
  rc = rc ? rc
          : bnum(rq->body, "tier", "source.tier", false, &tier, &has_tier, err);
  if (rc == 0 && has_tier && (tier != floor(tier) || tier < 0 || tier > 1e9))
    rc = stm_error_set(err, STM_EINVAL, "source.tier",
                       "source.tier must be 0 (regulatory) .. 5 (anecdotal)");
  s->tier = (uint32_t)tier;
  rc = rc ? rc
          : bnum(rq->body, "trust", "source.trust", false, &trust, &has_trust,
                 err);
  if (has_trust) {
    s->trust_present_case = STEMEDB__V1__SOURCE__TRUST_PRESENT_TRUST;
    s->trust = trust;
  }
  rc = rc ? rc
          : bstr(rq->body, "public_key", "source.public_key", false,
                 &s->public_key, err);
  return finish(&m->base, rc, out);
}

int stm_gw_build_get_source(const struct stm_gw_request *rq,
                            ProtobufCMessage **out, struct stm_error *err) {
  NEW_MSG(Stemedb__V1__GetSourceRequest, stemedb__v1__get_source_request__init,
          m, err);
  int rc = path_id(rq, "id", &m->id, err);
  rc = rc ? rc
          : quint(rq, "as_of_sequence", UINT64_MAX, &m->as_of_sequence, err);
  rc = rc ? rc : qint(rq, "as_of_time_ns", &m->as_of_time_ns, err);
  return finish(&m->base, rc, out);
}

int stm_gw_build_list_sources(const struct stm_gw_request *rq,
                              ProtobufCMessage **out, struct stm_error *err) {
  NEW_MSG(Stemedb__V1__ListSourcesRequest,
          stemedb__v1__list_sources_request__init, m, err);
  uint64_t limit = 0;
  int rc = quint(rq, "limit", UINT32_MAX, &limit, err);
  m->limit = (uint32_t)limit;
  rc = rc ? rc : qstr(rq, "page_token", &m->page_token, err);
  rc = rc ? rc
          : quint(rq, "as_of_sequence", UINT64_MAX, &m->as_of_sequence, err);
  rc = rc ? rc : qint(rq, "as_of_time_ns", &m->as_of_time_ns, err);
  return finish(&m->base, rc, out);
}

int stm_gw_build_trace(const struct stm_gw_request *rq, ProtobufCMessage **out,
                       struct stm_error *err) {
  NEW_MSG(Stemedb__V1__TraceRequest, stemedb__v1__trace_request__init, m, err);
  int rc = path_id(rq, "hash", &m->hash, err);
  rc = rc ? rc
          : quint(rq, "as_of_sequence", UINT64_MAX, &m->as_of_sequence, err);
  rc = rc ? rc : qint(rq, "as_of_time_ns", &m->as_of_time_ns, err);
  return finish(&m->base, rc, out);
}

int stm_gw_build_audit(const struct stm_gw_request *rq, ProtobufCMessage **out,
                       struct stm_error *err) {
  NEW_MSG(Stemedb__V1__AuditRequest, stemedb__v1__audit_request__init, m, err);
  uint64_t limit = 0;
  int rc = quint(rq, "after_sequence", UINT64_MAX, &m->after_sequence, err);
  rc = rc ? rc : quint(rq, "limit", UINT32_MAX, &limit, err);
  m->limit = (uint32_t)limit;
  return finish(&m->base, rc, out);
}

int stm_gw_build_list_concepts(const struct stm_gw_request *rq,
                               ProtobufCMessage **out, struct stm_error *err) {
  NEW_MSG(Stemedb__V1__ListConceptsRequest,
          stemedb__v1__list_concepts_request__init, m, err);
  uint64_t limit = 0;
  int rc = qstr(rq, "prefix", &m->prefix, err);
  rc = rc ? rc : quint(rq, "limit", UINT32_MAX, &limit, err);
  m->limit = (uint32_t)limit;
  rc = rc ? rc : qstr(rq, "page_token", &m->page_token, err);
  return finish(&m->base, rc, out);
}

int stm_gw_build_skeptic(const struct stm_gw_request *rq,
                         ProtobufCMessage **out, struct stm_error *err) {
  NEW_MSG(Stemedb__V1__QueryRequest, stemedb__v1__query_request__init, m, err);
  bool present;
  char path[QVAL_MAX];
  int rc = qval(rq, "concept_path", path, sizeof path, &present, err);
  if (rc == 0 && !present)
    rc = stm_error_set(err, STM_EINVAL, "concept_path",
                       "concept_path is required");
  if (rc == 0 && (m->concept_path = strdup(path)) == NULL)
    rc = oom(err);
  rc = rc ? rc : qstr(rq, "predicate", &m->predicate, err);
  if (rc == 0 && (m->lens = strdup("skeptic")) == NULL)
    rc = oom(err);
  rc = rc ? rc
          : quint(rq, "as_of_sequence", UINT64_MAX, &m->as_of_sequence, err);
  rc = rc ? rc : qint(rq, "as_of_time_ns", &m->as_of_time_ns, err);
  rc = rc ? rc : qbool(rq, "include_descendants", &m->include_descendants, err);
  rc = rc ? rc : qbool(rq, "current_epoch_only", &m->current_epoch_only, err);
  uint64_t limit = 0;
  rc = rc ? rc : quint(rq, "limit", UINT32_MAX, &limit, err);
  m->limit = (uint32_t)limit;
  return finish(&m->base, rc, out);
}

/* ---- renderers
 * ----------------------------------------------------------------- */

static json_t *jstr(const char *s) {
  json_t *v = json_string(s ? s : "");
  return v ? v : json_null();
}

static json_t *juint(uint64_t v) {
  return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static void put(json_t *o, const char *k, json_t *v) {
  json_object_set_new(o, k, v);
}

json_t *stm_gw_vote_to_json(const Stemedb__V1__Vote *v) {
  json_t *o = json_object();
  put(o, "hash", jstr(v->hash));
  put(o, "assertion_hash", jstr(v->assertion_hash));
  put(o, "voter_id", jstr(v->voter_id));
  put(o, "weight", json_real(v->weight));
  put(o, "sequence", juint(v->sequence));
  put(o, "commit_time_ns", json_integer(v->commit_time_ns));
  put(o, "timestamp_ns", json_integer(v->timestamp_ns));
  return o;
}

json_t *stm_gw_epoch_to_json(const Stemedb__V1__Epoch *e) {
  if (e == NULL)
    return json_null();
  json_t *o = json_object();
  put(o, "hash", jstr(e->hash));
  put(o, "concept_path", jstr(e->concept_path));
  put(o, "predicate", jstr(e->predicate));
  put(o, "reason", jstr(e->reason));
  put(o, "number", juint(e->number));
  put(o, "sequence", juint(e->sequence));
  put(o, "commit_time_ns", json_integer(e->commit_time_ns));
  return o;
}

json_t *stm_gw_source_to_json(const Stemedb__V1__Source *s) {
  if (s == NULL)
    return json_null();
  json_t *o = json_object();
  put(o, "id", jstr(s->id));
  put(o, "name", jstr(s->name));
  put(o, "tier", json_integer(s->tier));
  put(o, "trust",
      json_real(s->trust_present_case ==
                        STEMEDB__V1__SOURCE__TRUST_PRESENT_TRUST
                    ? s->trust
                    : 1.0));
  if (s->public_key && *s->public_key)
    put(o, "public_key", jstr(s->public_key));
  put(o, "sequence", juint(s->sequence));
  put(o, "commit_time_ns", json_integer(s->commit_time_ns));
  return o;
}

json_t *stm_gw_render_vote(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__VoteResponse *r = (const void *)msg;
  *status = r->created ? 201 : 200;
  json_t *o = json_object();
  put(o, "hash", jstr(r->hash));
  put(o, "sequence", juint(r->sequence));
  put(o, "created", json_boolean(r->created));
  return o;
}

json_t *stm_gw_render_start_epoch(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__StartEpochResponse *r = (const void *)msg;
  *status = 201;
  json_t *o = json_object();
  put(o, "epoch", stm_gw_epoch_to_json(r->epoch));
  return o;
}

json_t *stm_gw_render_put_source(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__PutSourceResponse *r = (const void *)msg;
  (void)status;
  json_t *o = json_object();
  put(o, "source", stm_gw_source_to_json(r->source));
  return o;
}

json_t *stm_gw_render_source(const ProtobufCMessage *msg, int *status) {
  (void)status;
  return stm_gw_source_to_json((const Stemedb__V1__Source *)msg);
}

json_t *stm_gw_render_list_sources(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__ListSourcesResponse *r = (const void *)msg;
  (void)status;
  json_t *arr = json_array();
  for (size_t i = 0; i < r->n_sources; i++)
    json_array_append_new(arr, stm_gw_source_to_json(r->sources[i]));
  json_t *o = json_object();
  put(o, "sources", arr);
  put(o, "next_page_token", jstr(r->next_page_token));
  return o;
}

static json_t *assertions(Stemedb__V1__Assertion **a, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(arr, stm_gw_assertion_to_json(a[i]));
  return arr;
}

json_t *stm_gw_render_trace(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__TraceResponse *r = (const void *)msg;
  (void)status;
  json_t *o = json_object();
  put(o, "assertion", stm_gw_assertion_to_json(r->assertion));
  put(o, "parents", assertions(r->parents, r->n_parents));
  put(o, "children", assertions(r->children, r->n_children));
  json_t *votes = json_array();
  for (size_t i = 0; i < r->n_votes; i++)
    json_array_append_new(votes, stm_gw_vote_to_json(r->votes[i]));
  put(o, "votes", votes);
  put(o, "superseded_by", stm_gw_epoch_to_json(r->superseded_by));
  return o;
}

json_t *stm_gw_render_audit(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__AuditResponse *r = (const void *)msg;
  (void)status;
  json_t *arr = json_array();
  for (size_t i = 0; i < r->n_entries; i++) {
    const Stemedb__V1__AuditEntry *e = r->entries[i];
    json_t *x = json_object();
    put(x, "sequence", juint(e->sequence));
    put(x, "time_ns", json_integer(e->time_ns));
    put(x, "operation", jstr(e->operation));
    put(x, "caller", jstr(e->caller));
    put(x, "target_hash", jstr(e->target_hash));
    put(x, "detail", jstr(e->detail));
    json_array_append_new(arr, x);
  }
  json_t *o = json_object();
  put(o, "entries", arr);
  put(o, "next_after_sequence", juint(r->next_after_sequence));
  return o;
}

json_t *stm_gw_render_list_concepts(const ProtobufCMessage *msg, int *status) {
  const Stemedb__V1__ListConceptsResponse *r = (const void *)msg;
  (void)status;
  json_t *arr = json_array();
  for (size_t i = 0; i < r->n_concepts; i++)
    json_array_append_new(arr, jstr(r->concepts[i]));
  json_t *o = json_object();
  put(o, "concepts", arr);
  put(o, "next_page_token", jstr(r->next_page_token));
  return o;
}
