/*
 * handlers_records.c - Vote, StartEpoch, PutSource, GetSource, ListSources,
 * ListConcepts, Audit and Trace of stemedb.v1.StemeDB. Writes go through
 * the store's group commit (storage/records.h) with the caller's identity
 * for the audit log; reads use the store's snapshot reads.
 */
#include "convert.h"
#include "records_internal.h"
#include "service_internal.h"

#include "../common/hex.h"
#include "../common/validate.h"
#include "storage/store.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT 1000
#define TRACE_MAX_PARENTS 256
#define TRACE_MAX_CHILDREN 1000
#define TRACE_MAX_VOTES 1000
#define MAX_REASON 4096
#define MAX_NAME 256

/* Metadata is client-supplied text: keep it printable. */
static void printable(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
      *s = '?';
}

/* The IP of a gRPC peer string: "ipv4:10.0.0.1:5555" -> "10.0.0.1",
 * "ipv6:%5B::1%5D:5555" or "ipv6:[::1]:5555" -> "::1". */
static void peer_host(const char *peer, char *out, size_t size) {
  const char *p = strchr(peer, ':');
  p = p ? p + 1 : peer;
  const char *end;
  if (strncmp(p, "%5B", 3) == 0 || p[0] == '[') {
    p += p[0] == '[' ? 1 : 3;
    end = strstr(p, p[-1] == '[' ? "]" : "%5D");
  } else {
    end = strrchr(p, ':');
  }
  size_t n = end ? (size_t)(end - p) : strlen(p);
  if (n >= size)
    n = size - 1;
  memcpy(out, p, n);
  out[n] = '\0';
}

/* Is the peer one of the comma-separated addresses in `list`? */
static bool peer_trusted(const char *peer, const char *list) {
  if (peer == NULL || list == NULL)
    return false;
  char host[64];
  peer_host(peer, host, sizeof host);
  size_t hl = strlen(host);
  for (const char *p = list; *p;) {
    p += strspn(p, ", \t");
    size_t n = strcspn(p, ", \t");
    if (n && n == hl && memcmp(p, host, n) == 0)
      return true;
    p += n;
  }
  return false;
}

void stm__call_identity(struct stm_call *call, char *out, size_t len) {
  const char *peer = stm_call_peer(call);
  char who[128], fwd[128], auth[1024];
  bool has_who = stm_call_metadata(call, "x-stemedb-caller", who, sizeof who);
  if (!has_who && stm_call_metadata(call, "authorization", auth, sizeof auth)) {
    /* Never log a credential: name it by a short hash instead. */
    uint8_t h[8];
    crypto_generichash(h, sizeof h, (const uint8_t *)auth, strlen(auth), NULL,
                       0);
    memcpy(who, "credential:", 11);
    stm_hex_encode(h, sizeof h, who + 11);
    has_who = true;
  }
  /* x-forwarded-for is believed only from a configured proxy (the
   * gateway): from anyone else it is a claim as good as its author. */
  struct stm_service *svc = stm_call_context(call);
  bool has_fwd =
      peer_trusted(peer, svc ? svc->trusted_proxies : NULL) &&
      stm_call_metadata(call, "x-forwarded-for", fwd, sizeof fwd);
  if (has_who)
    printable(who);
  if (has_fwd)
    printable(fwd);
  /* A claimed identity is recorded with the peer it came from, never in
   * place of it: nothing authenticates it. */
  snprintf(out, len, "%s%s%s%s%s", has_who ? who : "", has_who ? " via " : "",
           peer ? peer : "unknown", has_fwd ? " for " : "", has_fwd ? fwd : "");
}

/* ---- conversions
 * -------------------------------------------------------------- */

/* ---- writes
 * -------------------------------------------------------------------- */

static void on_record(void *ctx, int rc, const struct stm_record *rec,
                      bool created, const struct stm_error *err) {
  struct stm_call *call = ctx;
  if (rc) {
    stm__fail_rc(call, rc, err);
    return;
  }
  struct stm_arena a;
  stm_arena_init(&a);
  switch (rec->kind) {
  case STM_RECORD_VOTE: {
    Stemedb__V1__VoteResponse m = STEMEDB__V1__VOTE_RESPONSE__INIT;
    m.hash = stm_convert_hex(&a, rec->u.vote.hash, STM_HASH_LEN);
    m.sequence = rec->u.vote.sequence;
    m.created = created;
    stm_call_reply(call, &m.base);
    break;
  }
  case STM_RECORD_EPOCH: {
    Stemedb__V1__StartEpochResponse m = STEMEDB__V1__START_EPOCH_RESPONSE__INIT;
    m.epoch = stm_convert_epoch(&rec->u.epoch, &a);
    m.created = created;
    stm_call_reply(call, &m.base);
    break;
  }
  default: {
    Stemedb__V1__PutSourceResponse m = STEMEDB__V1__PUT_SOURCE_RESPONSE__INIT;
    m.source = stm_convert_source(&rec->u.source, &a);
    stm_call_reply(call, &m.base);
  }
  }
  stm_arena_destroy(&a);
}

static void submit_record(struct stm_service *svc, struct stm_call *call,
                          struct stm_record *rec, const char *op) {
  char who[STM__CALLER_MAX];
  stm__call_identity(call, who, sizeof who);
  int rc = stm_store_submit_record(svc->store, rec, op, who, on_record, call);
  if (rc)
    stm__fail_rc(call, rc, NULL);
}

static struct stm_record *record_new(enum stm_record_kind kind) {
  struct stm_record *r = malloc(sizeof *r);
  if (r)
    stm_record_init(r, kind);
  return r;
}

static void record_free(struct stm_record *r) {
  if (r)
    stm_record_destroy(r);
  free(r);
}

static int dup_str(char **slot, const char *s) {
  *slot = strdup(s ? s : "");
  return *slot ? 0 : STM_ENOMEM;
}

static int parse_hash(const char *field, const char *hex, uint8_t *out,
                      struct stm_error *err) {
  size_t len = strlen(hex);
  int rc = stm_validate_hash_hex(field, hex, len, false, err);
  if (rc == 0)
    stm_hex_decode(hex, len, out, STM_HASH_LEN);
  return rc;
}

void stm__handle_vote(struct stm_call *call, const ProtobufCMessage *msg,
                      void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__VoteRequest *req = (const Stemedb__V1__VoteRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_record *rec = record_new(STM_RECORD_VOTE);
  int rc = rec ? 0 : STM_ENOMEM;
  rc = rc ? rc
          : parse_hash("assertion_hash", req->assertion_hash,
                       rec->u.vote.target, &err);
  size_t vlen = strlen(req->voter_id);
  if (rc == 0 && vlen == 0)
    rc = stm_error_set(&err, STM_EINVAL, "voter_id", "voter_id is required");
  rc = rc ? rc : stm_validate_source_id("voter_id", req->voter_id, vlen, &err);
  if (rc == 0 &&
      !(isfinite(req->weight) && req->weight >= -1.0 && req->weight <= 1.0))
    rc = stm_error_set(&err, STM_EINVAL, "weight",
                       "weight must be a number in [-1, 1]");
  if (rc == 0 && req->timestamp_ns < 0)
    rc = stm_error_set(&err, STM_EINVAL, "timestamp_ns",
                       "timestamp_ns must be 0 (none) or a time in "
                       "nanoseconds since 1970");
  struct stm_claim target;
  stm_claim_init(&target);
  if (rc == 0) {
    rc = stm_store_get_claim(svc->store, rec->u.vote.target, NULL, &target,
                             &err);
    if (rc == STM_ENOTFOUND)
      stm_error_set(&err, rc, "assertion_hash",
                    "no assertion with hash %s to vote on",
                    req->assertion_hash);
  }
  stm_claim_destroy(&target);
  rc = rc ? rc : dup_str(&rec->u.vote.voter_id, req->voter_id);
  if (rc) {
    record_free(rec);
    stm__fail_rc(call, rc, &err);
    return;
  }
  rec->u.vote.weight = req->weight == 0.0 ? 0.0 : req->weight;
  rec->u.vote.timestamp_ns = req->timestamp_ns;
  submit_record(svc, call, rec, "vote");
}

void stm__handle_start_epoch(struct stm_call *call, const ProtobufCMessage *msg,
                             void *ctx) {
  const Stemedb__V1__StartEpochRequest *req =
      (const Stemedb__V1__StartEpochRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  int rc = stm_validate_concept_path("concept_path", req->concept_path,
                                     strlen(req->concept_path), &err);
  if (rc == 0 && req->predicate[0])
    rc = stm_validate_predicate("predicate", req->predicate,
                                strlen(req->predicate), &err);
  size_t rlen = strlen(req->reason);
  if (rc == 0 && (rlen > MAX_REASON || !stm_utf8_valid(req->reason, rlen)))
    rc = stm_error_set(&err, STM_EINVAL, "reason",
                       "reason must be UTF-8 of at most %d bytes", MAX_REASON);
  if (rc == 0 && req->timestamp_ns < 0)
    rc = stm_error_set(&err, STM_EINVAL, "timestamp_ns",
                       "timestamp_ns must be 0 (the server's clock) or a time "
                       "in nanoseconds since 1970");
  struct stm_record *rec = rc ? NULL : record_new(STM_RECORD_EPOCH);
  if (rc == 0 && rec == NULL)
    rc = STM_ENOMEM;
  rc = rc ? rc : dup_str(&rec->u.epoch.concept_path, req->concept_path);
  rc = rc ? rc : dup_str(&rec->u.epoch.predicate, req->predicate);
  rc = rc ? rc : dup_str(&rec->u.epoch.reason, req->reason);
  if (rc == 0)
    rec->u.epoch.timestamp_ns = req->timestamp_ns;
  if (rc) {
    record_free(rec);
    stm__fail_rc(call, rc, &err);
    return;
  }
  submit_record(ctx, call, rec, "start_epoch");
}

static int source_validate(const Stemedb__V1__Source *s, struct stm_source *out,
                           struct stm_error *err) {
  if (s == NULL)
    return stm_error_set(err, STM_EINVAL, "source", "source is required");
  size_t len = strlen(s->id);
  if (len == 0)
    return stm_error_set(err, STM_EINVAL, "source.id", "source.id is required");
  int rc = stm_validate_source_id("source.id", s->id, len, err);
  size_t nlen = strlen(s->name);
  if (rc == 0 && (nlen > MAX_NAME || !stm_utf8_valid(s->name, nlen)))
    rc = stm_error_set(err, STM_EINVAL, "source.name",
                       "source.name must be UTF-8 of at most %d bytes",
                       MAX_NAME);
  if (rc == 0 && s->tier > 5)
    rc = stm_error_set(err, STM_EINVAL, "source.tier",
                       "source.tier must be 0 (regulatory) .. 5 (anecdotal), "
                       "got %u",
                       s->tier);
  out->trust = 1.0;
  if (rc == 0 &&
      s->trust_present_case == STEMEDB__V1__SOURCE__TRUST_PRESENT_TRUST) {
    rc = stm_validate_unit_interval("source.trust", s->trust, err);
    out->trust = s->trust == 0.0 ? 0.0 : s->trust;
  }
  size_t klen = strlen(s->public_key);
  if (rc == 0 && klen) {
    if (stm_hex_decode(s->public_key, klen, out->public_key,
                       STM_PUBLIC_KEY_LEN) != 0)
      rc = stm_error_set(err, STM_EINVAL, "source.public_key",
                         "source.public_key must be 64 hex characters "
                         "(Ed25519)");
    out->has_public_key = rc == 0;
  }
  out->tier = s->tier;
  rc = rc ? rc : dup_str(&out->id, s->id);
  return rc ? rc : dup_str(&out->name, s->name);
}

void stm__handle_put_source(struct stm_call *call, const ProtobufCMessage *msg,
                            void *ctx) {
  const Stemedb__V1__PutSourceRequest *req =
      (const Stemedb__V1__PutSourceRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  struct stm_record *rec = record_new(STM_RECORD_SOURCE);
  int rc =
      rec ? source_validate(req->source, &rec->u.source, &err) : STM_ENOMEM;
  if (rc) {
    record_free(rec);
    stm__fail_rc(call, rc, &err);
    return;
  }
  submit_record(ctx, call, rec, "put_source");
}

/* ---- reads
 * ---------------------------------------------------------------------- */

void stm__handle_get_source(struct stm_call *call, const ProtobufCMessage *msg,
                            void *ctx) {
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
  stm_call_reply(call, &stm_convert_source(&src, &a)->base);
  stm_arena_destroy(&a);
  stm_source_destroy(&src);
}

static int check_limit(uint32_t limit, size_t *out, struct stm_error *err) {
  if (limit > LIST_MAX_LIMIT)
    return stm_error_set(err, STM_EINVAL, "limit", "limit must be at most %d",
                         LIST_MAX_LIMIT);
  *out = limit ? limit : LIST_DEFAULT_LIMIT;
  return 0;
}

struct list_state {
  struct stm_arena arena;
  void **items;
  size_t n, limit;
  bool more;
};

static int list_add(struct list_state *l, void *item) {
  if (l->n == l->limit) {
    l->more = true;
    return 1;
  }
  l->items[l->n++] = item;
  return 0;
}

static int list_init(struct list_state *l, size_t limit) {
  stm_arena_init(&l->arena);
  l->n = 0;
  l->limit = limit;
  l->more = false;
  l->items = calloc(limit, sizeof *l->items);
  return l->items ? 0 : STM_ENOMEM;
}

static void list_destroy(struct list_state *l) {
  free(l->items);
  stm_arena_destroy(&l->arena);
}

static int on_source_item(void *ctx, const struct stm_source *s) {
  struct list_state *l = ctx;
  return list_add(l, stm_convert_source(s, &l->arena));
}

void stm__handle_list_sources(struct stm_call *call,
                              const ProtobufCMessage *msg, void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__ListSourcesRequest *req =
      (const Stemedb__V1__ListSourcesRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  size_t limit = 0;
  struct list_state l = {0};
  int rc = check_limit(req->limit, &limit, &err);
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
  rc = rc ? rc : list_init(&l, limit);
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
    stm_call_reply(call, &m.base);
  }
  list_destroy(&l);
}

static int on_concept_item(void *ctx, const char *path) {
  struct list_state *l = ctx;
  return list_add(l, stm_arena_strdup(&l->arena, path));
}

void stm__handle_list_concepts(struct stm_call *call,
                               const ProtobufCMessage *msg, void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__ListConceptsRequest *req =
      (const Stemedb__V1__ListConceptsRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  size_t limit = 0;
  struct list_state l = {0};
  int rc = check_limit(req->limit, &limit, &err);
  size_t plen = strlen(req->prefix);
  for (size_t i = 0; rc == 0 && i < plen; i++) {
    char c = req->prefix[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-' ||
          c == '/'))
      rc = stm_error_set(&err, STM_EINVAL, "prefix",
                         "prefix has an invalid character at byte %zu", i);
  }
  if (rc == 0 && plen > STM_MAX_CONCEPT_PATH)
    rc = stm_error_set(&err, STM_EINVAL, "prefix", "prefix is too long");
  size_t tlen = strlen(req->page_token);
  if (rc == 0 && tlen &&
      stm_validate_concept_path("page_token", req->page_token, tlen, NULL))
    rc = stm_error_set(&err, STM_EINVAL, "page_token",
                       "page_token is not one this server issued (pass back "
                       "next_page_token unchanged, or nothing for the first "
                       "page)");
  rc = rc ? rc : list_init(&l, limit);
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
    stm_call_reply(call, &m.base);
  }
  list_destroy(&l);
}

static const char *kind_name(enum stm_record_kind k) {
  switch (k) {
  case STM_RECORD_CLAIM:
    return "claim";
  case STM_RECORD_VOTE:
    return "vote";
  case STM_RECORD_EPOCH:
    return "epoch";
  default:
    return "source";
  }
}

static int on_audit_item(void *ctx, const struct stm_audit_entry *e) {
  struct list_state *l = ctx;
  struct stm_arena *a = &l->arena;
  Stemedb__V1__AuditEntry *m = stm_arena_alloc(a, sizeof *m);
  stemedb__v1__audit_entry__init(m);
  m->sequence = e->sequence;
  m->time_ns = e->time_ns;
  m->operation = stm_arena_strdup(a, e->op);
  m->caller = stm_arena_strdup(a, e->caller);
  m->target_hash = stm_convert_hex(a, e->target, STM_HASH_LEN);
  m->detail = stm_arena_strdup(a, kind_name(e->kind));
  return list_add(l, m);
}

void stm__handle_audit(struct stm_call *call, const ProtobufCMessage *msg,
                       void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__AuditRequest *req = (const Stemedb__V1__AuditRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  size_t limit = 0;
  struct list_state l = {0};
  int rc = check_limit(req->limit, &limit, &err);
  rc = rc ? rc : list_init(&l, limit);
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
    stm_call_reply(call, &m.base);
  }
  list_destroy(&l);
}

/* ---- Trace
 * ------------------------------------------------------------------------ */

struct child_ctx {
  struct list_state *l;
  struct stm_service *svc;
  const struct stm_read_view *view;
};

static int on_child_item(void *ctx, const struct stm_claim *c) {
  struct child_ctx *k = ctx;
  Stemedb__V1__Assertion *m = stm_convert_claim(c, &k->l->arena);
  m->source_tier = stm__source_tier(k->svc, k->view, c->source_id);
  return list_add(k->l, m);
}

static int on_vote_item(void *ctx, const struct stm_vote *v) {
  struct list_state *l = ctx;
  return list_add(l, stm_convert_vote(v, &l->arena));
}

/* The first epoch after the claim that covers it: of its predicate or of
 * its whole concept, whichever came first. */
static int superseding_epoch(struct stm_service *svc, const struct stm_claim *c,
                             const struct stm_read_view *view,
                             struct stm_arena *a, Stemedb__V1__Epoch **out,
                             struct stm_error *err) {
  struct stm_epoch e[2];
  int rc[2];
  rc[0] = stm_store_find_epoch(svc->store, c->concept_path, c->predicate,
                               c->sequence, view, &e[0], err);
  rc[1] = stm_store_find_epoch(svc->store, c->concept_path, "", c->sequence,
                               view, &e[1], err);
  int best = -1, bad = 0;
  for (int i = 0; i < 2; i++) {
    if (rc[i] == 0 && (best < 0 || e[i].sequence < e[best].sequence))
      best = i;
    else if (rc[i] != 0 && rc[i] != STM_ENOTFOUND)
      bad = rc[i];
  }
  if (best >= 0)
    *out = stm_convert_epoch(&e[best], a);
  for (int i = 0; i < 2; i++)
    if (rc[i] == 0)
      stm_epoch_destroy(&e[i]);
  return bad;
}

static int trace_build(struct stm_service *svc, const struct stm_claim *claim,
                       const struct stm_read_view *view, struct stm_arena *a,
                       Stemedb__V1__TraceResponse *m, struct list_state *kids,
                       struct list_state *votes, struct stm_error *err) {
  m->assertion = stm_convert_claim(claim, a);
  m->assertion->source_tier = stm__source_tier(svc, view, claim->source_id);
  m->parents = stm_arena_alloc(a, TRACE_MAX_PARENTS * sizeof *m->parents);
  struct stm_claim cur;
  stm_claim_init(&cur);
  int rc = 0;
  bool has = claim->has_parent;
  uint8_t next[STM_HASH_LEN];
  memcpy(next, claim->parent_hash, STM_HASH_LEN);
  while (rc == 0 && has && m->n_parents < TRACE_MAX_PARENTS) {
    rc = stm_store_get_claim(svc->store, next, view, &cur, err);
    if (rc == STM_ENOTFOUND) { /* a parent asserted elsewhere, or later */
      rc = 0;
      break;
    }
    if (rc == 0) {
      Stemedb__V1__Assertion *p = stm_convert_claim(&cur, a);
      p->source_tier = stm__source_tier(svc, view, cur.source_id);
      m->parents[m->n_parents++] = p;
      has = cur.has_parent;
      memcpy(next, cur.parent_hash, STM_HASH_LEN);
    }
  }
  stm_claim_destroy(&cur);
  struct child_ctx kc = {.l = kids, .svc = svc, .view = view};
  if (rc == 0)
    rc = stm_store_scan_children(svc->store, claim->hash, view, on_child_item,
                                 &kc, err);
  if (rc >= 0)
    rc = stm_store_scan_votes(svc->store, claim->hash, view, on_vote_item,
                              votes, err);
  if (rc >= 0)
    rc = superseding_epoch(svc, claim, view, a, &m->superseded_by, err);
  m->children = (Stemedb__V1__Assertion **)kids->items;
  m->n_children = kids->n;
  m->votes = (Stemedb__V1__Vote **)votes->items;
  m->n_votes = votes->n;
  return rc < 0 ? rc : 0;
}

void stm__handle_trace(struct stm_call *call, const ProtobufCMessage *msg,
                       void *ctx) {
  struct stm_service *svc = ctx;
  const Stemedb__V1__TraceRequest *req = (const Stemedb__V1__TraceRequest *)msg;
  struct stm_error err;
  stm_error_clear(&err);
  uint8_t hash[STM_HASH_LEN];
  struct stm_read_view view = {.as_of_sequence = req->as_of_sequence,
                               .as_of_time_ns = req->as_of_time_ns};
  struct stm_claim claim;
  stm_claim_init(&claim);
  int rc = parse_hash("hash", req->hash, hash, &err);
  rc = rc ? rc : stm__check_as_of_time(req->as_of_time_ns, &err);
  if (rc == 0) {
    rc = stm_store_get_claim(svc->store, hash, &view, &claim, &err);
    if (rc == STM_ENOTFOUND)
      stm_error_set(&err, rc, NULL, "no assertion with hash %s%s", req->hash,
                    view.as_of_sequence || view.as_of_time_ns
                        ? " as of the requested point"
                        : "");
  }
  struct list_state kids = {0}, votes = {0};
  struct stm_arena a;
  stm_arena_init(&a);
  rc = rc ? rc : list_init(&kids, TRACE_MAX_CHILDREN);
  rc = rc ? rc : list_init(&votes, TRACE_MAX_VOTES);
  Stemedb__V1__TraceResponse m = STEMEDB__V1__TRACE_RESPONSE__INIT;
  if (rc == 0)
    rc = trace_build(svc, &claim, &view, &a, &m, &kids, &votes, &err);
  if (rc)
    stm__fail_rc(call, rc, &err);
  else
    stm_call_reply(call, &m.base);
  list_destroy(&kids);
  list_destroy(&votes);
  stm_arena_destroy(&a);
  stm_claim_destroy(&claim);
}
