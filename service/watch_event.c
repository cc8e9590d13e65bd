/* watch_event.c - encoded change-feed events (one encoding shared by
 * reference among every stream) and the subscriber filters. */
#include "watch_internal.h"

#include "common/arena.h"
#include "common/clock.h"
#include "common/log.h"
#include "convert.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- events ------------------------------------------------------------- */

static struct stm_watch_buf *buf_pack(const Stemedb__V1__WatchEvent *ev,
                                      uint32_t type_bit, const char *concept,
                                      const char *predicate) {
  size_t clen = strlen(concept) + 1, plen = strlen(predicate) + 1;
  size_t len = protobuf_c_message_get_packed_size(&ev->base);
  struct buf_impl *b = malloc(sizeof *b + clen + plen + len);
  if (b == NULL)
    return NULL;
  char *p = (char *)(b + 1);
  memcpy(p, concept, clen);
  memcpy(p + clen, predicate, plen);
  uint8_t *data = (uint8_t *)p + clen + plen;
  protobuf_c_message_pack(&ev->base, data);
  b->pub = (struct stm_watch_buf){
      .sequence = ev->sequence, .type_bit = type_bit, .data = data, .len = len};
  atomic_init(&b->refs, 1);
  b->concept = p;
  b->predicate = p + clen;
  return &b->pub;
}

/* The packed WatchEvent of one claim, with one reference; NULL when out of
 * memory. */
static struct stm_watch_buf *encode_claim(const struct stm_claim *c) {
  struct stm_arena a;
  stm_arena_init(&a);
  Stemedb__V1__WatchEvent ev = STEMEDB__V1__WATCH_EVENT__INIT;
  ev.sequence = c->sequence;
  ev.type = STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_CLAIM;
  ev.payload_case = STEMEDB__V1__WATCH_EVENT__PAYLOAD_CLAIM;
  ev.claim = stm_convert_claim(c, &a);
  struct stm_watch_buf *b =
      ev.claim ? buf_pack(&ev, STM_WATCH_CLAIM, c->concept_path,
                          c->predicate ? c->predicate : "")
               : NULL;
  stm_arena_destroy(&a);
  return b;
}

/*
 * The event of one write of any kind. Filters see a vote under its claim's
 * concept and predicate, an epoch under its own (predicate "" applies to
 * every predicate), and a source under none (only unfiltered watches get
 * sources). NULL when out of memory or when a vote's claim cannot be read.
 */
struct stm_watch_buf *stm__watch_encode_entry(struct stm_store *store,
                                              const struct stm_log_entry *e) {
  if (e->kind == STM_RECORD_CLAIM)
    return encode_claim(e->claim);
  struct stm_arena a;
  stm_arena_init(&a);
  Stemedb__V1__WatchEvent ev = STEMEDB__V1__WATCH_EVENT__INIT;
  ev.sequence = e->sequence;
  struct stm_watch_buf *b = NULL;
  const struct stm_record *r = e->record;
  switch (e->kind) {
  case STM_RECORD_VOTE: {
    struct stm_claim c;
    stm_claim_init(&c);
    if (stm_store_get_claim(store, r->u.vote.target, NULL, &c, NULL) == 0) {
      ev.type = STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_VOTE;
      ev.payload_case = STEMEDB__V1__WATCH_EVENT__PAYLOAD_VOTE;
      ev.vote = stm_convert_vote(&r->u.vote, &a);
      b = buf_pack(&ev, STM_WATCH_VOTE, c.concept_path,
                   c.predicate ? c.predicate : "");
    }
    stm_claim_destroy(&c);
    break;
  }
  case STM_RECORD_EPOCH:
    ev.type = STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_EPOCH;
    ev.payload_case = STEMEDB__V1__WATCH_EVENT__PAYLOAD_EPOCH;
    ev.epoch = stm_convert_epoch(&r->u.epoch, &a);
    b = buf_pack(&ev, STM_WATCH_EPOCH, r->u.epoch.concept_path,
                 r->u.epoch.predicate);
    break;
  default:
    ev.type = STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_SOURCE;
    ev.payload_case = STEMEDB__V1__WATCH_EVENT__PAYLOAD_SOURCE;
    ev.source = stm_convert_source(&r->u.source, &a);
    b = buf_pack(&ev, STM_WATCH_SOURCE, "", "");
  }
  stm_arena_destroy(&a);
  return b;
}

struct stm_watch_buf *stm__watch_encode_progress(uint64_t sequence) {
  Stemedb__V1__WatchEvent ev = STEMEDB__V1__WATCH_EVENT__INIT;
  ev.sequence = sequence;
  ev.type = STEMEDB__V1__EVENT_TYPE__EVENT_TYPE_PROGRESS;
  return buf_pack(&ev, 0, "", "");
}

struct stm_watch_buf *stm__watch_buf_ref(struct stm_watch_buf *b) {
  atomic_fetch_add(&stm__watch_impl(b)->refs, 1);
  return b;
}

void stm_watch_buf_unref(struct stm_watch_buf *b) {
  if (b && atomic_fetch_sub(&stm__watch_impl(b)->refs, 1) == 1)
    free(stm__watch_impl(b));
}

bool stm__watch_matches(const struct stm_watch_sub *s, uint32_t type_bit,
                        const char *concept, const char *predicate) {
  if ((s->types & type_bit) == 0)
    return false;
  /* A prefix names a subtree: "a/b" covers "a/b" and "a/b/c", not "a/bc". */
  if (s->prefix_len &&
      (strncmp(concept, s->prefix, s->prefix_len) != 0 ||
       (concept[s->prefix_len] != '\0' && concept[s->prefix_len] != '/')))
    return false;
  return s->predicate == NULL || strcmp(predicate, s->predicate) == 0 ||
         (type_bit == STM_WATCH_EPOCH && predicate[0] == '\0');
}

bool stm__watch_matches_buf(const struct stm_watch_sub *s,
                            struct stm_watch_buf *b) {
  return stm__watch_matches(s, b->type_bit, stm__watch_impl(b)->concept,
                            stm__watch_impl(b)->predicate);
}
