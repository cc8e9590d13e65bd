/* GetSource, ListSources, ListConcepts and Audit of stemedb.v1.StemeDB:
 * reads of sources, concepts and the audit log, paged. */
#include "convert.h"
#include "forward.h"
#include "records_internal.h"
#include "service_internal.h"

#include "common/hex.h"
#include "common/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void stm__handle_get_source(struct stm_grpc_call *call,
                            const ProtobufCMessage *msg, void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__GetSourceRequest *req =
      (const Stemedb__V1__GetSourceRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  size_t len = strlen(req->id);
  int rc = len ? stm_validate_source_id("id", req->id, len, &err)
               : stm_error_set(&err, STM_EINVAL, "id", "id is required");
  rc = rc ? rc : stm__check_as_of_time(req->as_of_time_ns, &err);
  struct stm_source src;
  struct stm_read_view view = {.as_of_sequence = req->as_of_sequence,
                               .as_of_time_ns = req->as_of_time_ns};
  if (rc == 0) {
    rc = stm_store_get_source(svc->store, req->id, &view, &src, &err);
    if (rc == STM_ENOTFOUND)
      stm_error_set(&err, rc, NULL, "no source with id %s%s", req->id,
                    view.as_of_sequence || view.as_of_time_ns
                        ? " as of the requested point"
                        : "");
  }
  if (rc) {
    stm__fail_rc(call, rc, &err);
    return;
  }
  struct stm_arena a;
  stm_arena_init(&a);
  stm_grpc_call_reply(call, &stm_convert_source(&src, &a)->base);
  stm_arena_destroy(&a);
  stm_source_destroy(&src);
}

static int on_source_item(void *ctx, const struct stm_source *s) {
  struct stm__list *l = ctx;
  return stm__list_add(l, stm_convert_source(s, &l->arena));
}

void stm__handle_list_sources(struct stm_grpc_call *call,
                              const ProtobufCMessage *msg, void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__ListSourcesRequest *req =
      (const Stemedb__V1__ListSourcesRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  size_t limit = 0;
  struct stm__list l = {0};
  int rc = stm__list_check_limit(req->limit, &limit, &err);
  rc = rc ? rc : stm__check_as_of_time(req->as_of_time_ns, &err);
  /* A page token is the last id of the page before: anything else was
   * not issued by this server. */
  size_t tlen = strlen(req->page_token);
  if (rc == 0 && tlen &&
      stm_validate_source_id("page_token", req->page_token, tlen, NULL) != 0)
    rc = stm_error_set(&err, STM_EINVAL, "page_token",
                       "page_token is not one this server issued (pass back "
                       "next_page_token unchanged, or nothing for the first "
                       "page)");
  rc = rc ? rc : stm__list_init(&l, limit);
  struct stm_read_view view = {.as_of_sequence = req->as_of_sequence,
                               .as_of_time_ns = req->as_of_time_ns};
  if (rc == 0)
    rc = stm_store_list_sources(svc->store, req->page_token, &view,
                                on_source_item, &l, &err);
  if (rc < 0) {
    stm__fail_rc(call, rc, &err);
  } else {
    Stemedb__V1__ListSourcesResponse m =
        STEMEDB__V1__LIST_SOURCES_RESPONSE__INIT;
    m.sources = (Stemedb__V1__Source **)l.items;
    m.n_sources = l.n;
    m.next_page_token = l.more && l.n ? m.sources[l.n - 1]->id : "";
    stm_grpc_call_reply(call, &m.base);
  }
  stm__list_destroy(&l);
}

static int on_concept_item(void *ctx, const char *path) {
  struct stm__list *l = ctx;
  return stm__list_add(l, stm_arena_strdup(&l->arena, path));
}

void stm__handle_list_concepts(struct stm_grpc_call *call,
                               const ProtobufCMessage *msg, void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__ListConceptsRequest *req =
      (const Stemedb__V1__ListConceptsRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  size_t limit = 0;
  struct stm__list l = {0};
  int rc = stm__list_check_limit(req->limit, &limit, &err);
  size_t plen = strlen(req->prefix);
  for (size_t i = 0; rc == 0 && i < plen; i++) {
    char c = req->prefix[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-' ||
          c == '/'))
      rc = stm_error_set(&err, STM_EINVAL, "prefix",
                         "prefix has an invalid character at byte %zu", i);
  }
  if (rc == 0 && plen > stm_limits_get()->concept_path)
    rc = stm_error_set(&err, STM_EINVAL, "prefix",
                       "prefix is %zu bytes; at most %u are allowed "
                       "(--max-concept-path-bytes)",
                       plen, stm_limits_get()->concept_path);
  size_t tlen = strlen(req->page_token);
  if (rc == 0 && tlen &&
      stm_validate_concept_path("page_token", req->page_token, tlen, NULL))
    rc = stm_error_set(&err, STM_EINVAL, "page_token",
                       "page_token is not one this server issued (pass back "
                       "next_page_token unchanged, or nothing for the first "
                       "page)");
  rc = rc ? rc : stm__list_init(&l, limit);
  if (rc == 0)
    rc = stm_store_list_concepts(svc->store, req->prefix, req->page_token,
                                 on_concept_item, &l, &err);
  if (rc < 0) {
    stm__fail_rc(call, rc, &err);
  } else {
    Stemedb__V1__ListConceptsResponse m =
        STEMEDB__V1__LIST_CONCEPTS_RESPONSE__INIT;
    m.concepts = (char **)l.items;
    m.n_concepts = l.n;
    m.next_page_token = l.more && l.n ? m.concepts[l.n - 1] : "";
    /* in a cluster every node holds some concepts: merge (forward.h) */
    if (!stm_forward_list_concepts(call, msg, m.concepts, l.n, l.more, limit))
      stm_grpc_call_reply(call, &m.base);
  }
  stm__list_destroy(&l);
}

static const char *kind_name(enum stm_record_kind k) {
  switch (k) {
  case STM_RECORD_CLAIM:
    return "claim";
  case STM_RECORD_VOTE:
    return "vote";
  case STM_RECORD_EPOCH:
    return "epoch";
  case STM_RECORD_API_KEY: /* who made or revoked keys; never the hash */
    return "api_key";
  case STM_RECORD_KEY_REVOKE:
    return "api_key_revoke";
  default:
    return "source";
  }
}

static int on_audit_item(void *ctx, const struct stm_audit_entry *e) {
  struct stm__list *l = ctx;
  struct stm_arena *a = &l->arena;
  Stemedb__V1__AuditEntry *m = stm_arena_alloc(a, sizeof *m);
  stemedb__v1__audit_entry__init(m);
  m->sequence = e->sequence;
  m->time_ns = e->time_ns;
  m->operation = stm_arena_strdup(a, e->op);
  m->caller = stm_arena_strdup(a, e->caller);
  m->target_hash = stm_convert_hex(a, e->target, STM_HASH_LEN);
  m->detail = stm_arena_strdup(a, kind_name(e->kind));
  return stm__list_add(l, m);
}

void stm__handle_audit(struct stm_grpc_call *call, const ProtobufCMessage *msg,
                       void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__AuditRequest *req = (const Stemedb__V1__AuditRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  size_t limit = 0;
  struct stm__list l = {0};
  int rc = stm__list_check_limit(req->limit, &limit, &err);
  rc = rc ? rc : stm__list_init(&l, limit);
  if (rc == 0)
    rc = stm_store_scan_audit(svc->store, req->after_sequence, on_audit_item,
                              &l, &err);
  if (rc < 0) {
    stm__fail_rc(call, rc, &err);
  } else {
    Stemedb__V1__AuditResponse m = STEMEDB__V1__AUDIT_RESPONSE__INIT;
    m.entries = (Stemedb__V1__AuditEntry **)l.items;
    m.n_entries = l.n;
    m.next_after_sequence =
        l.n ? m.entries[l.n - 1]->sequence : req->after_sequence;
    stm_grpc_call_reply(call, &m.base);
  }
  stm__list_destroy(&l);
}
