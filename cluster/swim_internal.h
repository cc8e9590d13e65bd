/* swim_internal.h - shared by swim.c (state, merge rules, API) and
 * swim_probe.c (probes, gossip, push-pull). Not an interface. */
#ifndef STM_SWIM_INTERNAL_H
#define STM_SWIM_INTERNAL_H

#include "common/rand.h"
#include "swim.h"
#include "swim_format.h"

#define SWIM_MAX_CONFIRM 8
#define SWIM_MAX_RELAYS 64

struct member {
  struct stm_swim_member pub;
  uint64_t id_hash;
  char suspector[STM_NODE_ID_MAX + 1];        /* who started the suspicion */
  char gossip_suspector[STM_NODE_ID_MAX + 1]; /* whom our gossip names */
  int64_t suspect_start, suspect_deadline;    /* 0: no running suspicion */
  uint64_t confirmers[SWIM_MAX_CONFIRM]; /* id hashes, originator excluded */
  int n_confirm;
  int retransmit_left; /* piggybacks left for the current state */
  uint64_t stamp;      /* picked for the datagram being built */
};

/* A ping we send on behalf of a PING_REQ. */
struct relay {
  bool active;
  uint64_t seq;       /* our ping's seq */
  uint64_t reply_seq; /* the requester's seq */
  char reply_addr[STM_ADDR_MAX + 1];
  int64_t nack_at;
};

struct probe {
  bool active;
  size_t target;
  uint64_t seq;
  int64_t indirect_at; /* 0 once the ping-reqs went out */
  int64_t end_at;
  int expected_nacks, nacks;
};

struct stm_swim {
  struct stm_swim_config cfg;
  char cluster[STM_SWIM_CLUSTER_MAX + 1];
  char **seeds;
  struct stm_swim_codec codec;
  struct stm_rand rand;
  struct member **members; /* [0] is self */
  size_t n_members, cap_members;
  size_t *order; /* probe order: indices into members, self excluded */
  size_t n_order, order_pos;
  size_t *scratch; /* random picks */
  uint64_t stamp;
  struct probe probe;
  struct relay relays[SWIM_MAX_RELAYS];
  uint64_t next_seq;
  int awareness;
  bool left;
  bool joining; /* contacting the seeds at next_join_at */
  int64_t now;
  int64_t next_probe_at, next_gossip_at, next_push_pull_at, next_join_at;
  struct stm_swim_stats stats;
  struct stm_swim_msg in, out; /* scratch: large, so not on the stack */
  uint8_t buf[STM_SWIM_MAX_DATAGRAM];
};

/* swim.c */
struct member *stm__swim_find(const struct stm_swim *s, const char *id);
void stm__swim_apply(struct stm_swim *s, const struct stm_swim_update *u,
                     bool from_push_pull);
void stm__swim_suspect(struct stm_swim *s, struct member *m,
                       const char *suspector);
void stm__swim_confirm(struct stm_swim *s, struct member *m, const char *who);
void stm__swim_to_update(const struct member *m, struct stm_swim_update *u);
int stm__swim_retransmit_limit(const struct stm_swim *s);
size_t stm__swim_live_count(const struct stm_swim *s);
void stm__swim_seen(struct stm_swim *s, const char *id);

/* swim_probe.c */
void stm__swim_start_msg(struct stm_swim *s, enum stm_swim_kind kind,
                         uint64_t seq);
void stm__swim_send(struct stm_swim *s, const char *addr,
                    const struct member *buddy);
void stm__swim_handle(struct stm_swim *s);
void stm__swim_timers(struct stm_swim *s);
void stm__swim_order_add(struct stm_swim *s, size_t idx);
void stm__swim_gossip_now(struct stm_swim *s, int fanout);

#endif
