/*
 * SWIM I/O scheduling: the probe cycle (ping, ping-req through k members,
 * nack, suspicion), piggybacked gossip, push-pull full-state sync and
 * joining through the seeds. Every send goes through the transport seam.
 */
#include "swim_internal.h"

#include <math.h>
#include <string.h>

void stm__swim_start_msg(struct stm_swim *s, enum stm_swim_kind kind,
                         uint64_t seq) {
  struct stm_swim_msg *o = &s->out;
  const struct member *self = s->members[0];
  o->kind = kind;
  strcpy(o->from_id, self->pub.id);
  strcpy(o->from_addr, self->pub.swim_addr);
  o->from_incarnation = self->pub.incarnation;
  strcpy(o->from_rpc_addr, self->pub.rpc_addr);
  memcpy(o->from_meta, self->pub.meta, self->pub.meta_len);
  o->from_meta_len = self->pub.meta_len;
  o->seq = seq;
  o->target_id[0] = '\0';
  o->target_addr[0] = '\0';
  o->n_updates = 0;
}

/* Append m's state if it fits in `*budget` bytes. */
static bool add_update(struct stm_swim *s, const struct member *m,
                       size_t *budget) {
  if (s->out.n_updates == STM_SWIM_MAX_UPDATES)
    return false;
  struct stm_swim_update *u = &s->out.updates[s->out.n_updates];
  stm__swim_to_update(m, u);
  size_t need = stm_swim_update_size(u);
  if (need > *budget)
    return false;
  *budget -= need;
  s->out.n_updates++;
  return true;
}

/* Fill the rest of the datagram with the freshest pending updates (most
 * retransmits left first, as memberlist's queue does); `buddy`'s state
 * goes first when it is not UP, so a suspected member learns it at once. */
static void piggyback(struct stm_swim *s, const struct member *buddy) {
  size_t used = stm_swim_msg_size(&s->codec, &s->out);
  size_t budget =
      used < STM_SWIM_MAX_DATAGRAM ? STM_SWIM_MAX_DATAGRAM - used : 0;
  uint64_t stamp = ++s->stamp;
  if (buddy && buddy->pub.state != STM_SWIM_UP && add_update(s, buddy, &budget))
    ((struct member *)buddy)->stamp = stamp;
  for (;;) {
    struct member *best = NULL;
    for (size_t i = 0; i < s->n_members; i++) {
      struct member *m = s->members[i];
      if (m->retransmit_left > 0 && m->stamp != stamp &&
          (best == NULL || m->retransmit_left > best->retransmit_left))
        best = m;
    }
    if (best == NULL)
      return;
    best->stamp = stamp;
    if (!add_update(s, best, &budget))
      return;
    best->retransmit_left--;
  }
}

/* Encode s->out as it is and send it. */
static void emit(struct stm_swim *s, const char *addr) {
  size_t len;
  if (stm_swim_encode(&s->codec, &s->out, s->buf, sizeof s->buf, &len) != 0)
    return; /* piggyback() keeps within the budget; nothing else to do */
  s->stats.sent++;
  s->cfg.transport.send(s->cfg.transport.ctx, addr, s->buf, len);
}

void stm__swim_send(struct stm_swim *s, const char *addr,
                    const struct member *buddy) {
  piggyback(s, buddy);
  emit(s, addr);
}

/* Our whole view, in as many datagrams as it takes. The first part is a
 * PUSH_PULL (the receiver answers with its view); further parts are
 * PUSH_PULL_REPLY so a view of many datagrams costs one answer. */
static void send_state(struct stm_swim *s, const char *addr,
                       enum stm_swim_kind first) {
  enum stm_swim_kind kind = first;
  size_t i = 0;
  while (i < s->n_members) {
    stm__swim_start_msg(s, kind, 0);
    size_t used = stm_swim_msg_size(&s->codec, &s->out);
    size_t budget = STM_SWIM_MAX_DATAGRAM - used;
    while (i < s->n_members && add_update(s, s->members[i], &budget))
      i++;
    if (s->out.n_updates == 0)
      return; /* cannot happen: one update always fits */
    emit(s, addr);
    kind = STM_SWIM_PUSH_PULL_REPLY;
  }
}

typedef bool (*member_filter)(const struct stm_swim *s, const struct member *m,
                              const void *arg);

/* Up to k distinct random members passing `keep`, as indices in
 * s->scratch[0..return). */
static size_t pick(struct stm_swim *s, size_t k, member_filter keep,
                   const void *arg) {
  size_t n = 0;
  for (size_t i = 1; i < s->n_members; i++)
    if (keep(s, s->members[i], arg))
      s->scratch[n++] = i;
  if (k > n)
    k = n;
  for (size_t i = 0; i < k; i++) {
    size_t j = i + (size_t)stm_rand_below(&s->rand, n - i);
    size_t t = s->scratch[i];
    s->scratch[i] = s->scratch[j];
    s->scratch[j] = t;
  }
  return k;
}

static bool is_up_not(const struct stm_swim *s, const struct member *m,
                      const void *arg) {
  return m->pub.state == STM_SWIM_UP && m != arg;
}

static bool is_down(const struct stm_swim *s, const struct member *m,
                    const void *arg) {
  return m->pub.state == STM_SWIM_DOWN;
}

/* memberlist gossips to live members and to the dead for a while, so a
 * member wrongly declared DOWN hears it and refutes. */
static bool gossip_target(const struct stm_swim *s, const struct member *m,
                          const void *arg) {
  if (m->pub.state <= STM_SWIM_SUSPECT)
    return true;
  return m->pub.state == STM_SWIM_DOWN &&
         s->now - m->pub.state_changed_ns < s->cfg.gossip_to_dead_ns;
}

/* ------------------------------------------------------------------ */
/* handling a received datagram (s->in)                                 */

static void probe_succeeded(struct stm_swim *s) {
  s->probe.active = false;
  if (s->awareness > 0)
    s->awareness--;
}

static void on_ack(struct stm_swim *s) {
  if (s->probe.active && s->in.seq == s->probe.seq) {
    stm__swim_seen(s, s->members[s->probe.target]->pub.id);
    probe_succeeded(s);
    return;
  }
  for (int i = 0; i < SWIM_MAX_RELAYS; i++) {
    struct relay *r = &s->relays[i];
    if (r->active && r->seq == s->in.seq) {
      r->active = false;
      stm__swim_start_msg(s, STM_SWIM_ACK, r->reply_seq);
      stm__swim_send(s, r->reply_addr, NULL);
      return;
    }
  }
}

static void on_ping_req(struct stm_swim *s) {
  struct relay *r = NULL;
  for (int i = 0; i < SWIM_MAX_RELAYS && r == NULL; i++)
    if (!s->relays[i].active)
      r = &s->relays[i];
  if (r == NULL)
    return; /* too many at once: the requester counts it as a failure */
  r->active = true;
  r->seq = s->next_seq++;
  r->reply_seq = s->in.seq;
  strcpy(r->reply_addr, s->in.from_addr);
  /* Nack before the requester's probe ends, so its health score sees it. */
  r->nack_at = s->now + s->cfg.probe_timeout_ns * 3 / 4;
  stm__swim_start_msg(s, STM_SWIM_PING, r->seq);
  strcpy(s->out.target_id, s->in.target_id);
  stm__swim_send(s, s->in.target_addr, stm__swim_find(s, s->in.target_id));
}

void stm__swim_handle(struct stm_swim *s) {
  switch (s->in.kind) {
  case STM_SWIM_PING:
    /* A ping meant for an earlier owner of our address is not ours. */
    if (s->in.target_id[0] && strcmp(s->in.target_id, s->cfg.node_id) != 0)
      return;
    stm__swim_start_msg(s, STM_SWIM_ACK, s->in.seq);
    stm__swim_send(s, s->in.from_addr, stm__swim_find(s, s->in.from_id));
    break;
  case STM_SWIM_ACK:
    on_ack(s);
    break;
  case STM_SWIM_PING_REQ:
    on_ping_req(s);
    break;
  case STM_SWIM_NACK:
    if (s->probe.active && s->in.seq == s->probe.seq)
      s->probe.nacks++;
    break;
  case STM_SWIM_PUSH_PULL:
    send_state(s, s->in.from_addr, STM_SWIM_PUSH_PULL_REPLY);
    break;
  case STM_SWIM_GOSSIP:
  case STM_SWIM_PUSH_PULL_REPLY:
    break;
  }
}

/* ------------------------------------------------------------------ */
/* probe cycle                                                          */

void stm__swim_order_add(struct stm_swim *s, size_t idx) {
  /* A new member goes to a random place among those not yet probed this
   * round, so it is probed within one round. */
  s->order[s->n_order++] = idx;
  size_t span = s->n_order - s->order_pos;
  size_t j = s->order_pos + (size_t)stm_rand_below(&s->rand, span);
  s->order[s->n_order - 1] = s->order[j];
  s->order[j] = idx;
}

static void reshuffle(struct stm_swim *s) {
  for (size_t i = s->n_order; i > 1; i--) {
    size_t j = (size_t)stm_rand_below(&s->rand, i);
    size_t t = s->order[i - 1];
    s->order[i - 1] = s->order[j];
    s->order[j] = t;
  }
  s->order_pos = 0;
}

static struct member *next_target(struct stm_swim *s) {
  for (size_t step = 0; step < 2 * s->n_order + 1; step++) {
    if (s->order_pos >= s->n_order)
      reshuffle(s);
    if (s->n_order == 0)
      return NULL;
    size_t idx = s->order[s->order_pos++];
    struct member *m = s->members[idx];
    if (m->pub.state <= STM_SWIM_SUSPECT) {
      s->probe.target = idx;
      return m;
    }
  }
  return NULL;
}

static int64_t scaled_interval(const struct stm_swim *s) {
  return s->cfg.probe_interval_ns * (s->awareness + 1);
}

static void probe_failed(struct stm_swim *s) {
  struct probe *p = &s->probe;
  struct member *m = s->members[p->target];
  p->active = false;
  s->stats.probe_failures++;
  /* Lifeguard: missing nacks mean the fault may be ours, not the target's. */
  int delta = p->expected_nacks > 0 ? p->expected_nacks - p->nacks : 1;
  s->awareness += delta;
  if (s->awareness > s->cfg.awareness_max - 1)
    s->awareness = s->cfg.awareness_max - 1;
  if (m->pub.state == STM_SWIM_UP) {
    s->stats.suspicions_raised++;
    stm__swim_suspect(s, m, s->cfg.node_id);
  } else if (m->pub.state == STM_SWIM_SUSPECT) {
    stm__swim_confirm(s, m, s->cfg.node_id);
  }
}

static void start_probe(struct stm_swim *s) {
  s->next_probe_at = s->now + scaled_interval(s);
  struct member *m = next_target(s);
  if (m == NULL)
    return;
  struct probe *p = &s->probe;
  p->active = true;
  p->seq = s->next_seq++;
  p->indirect_at = s->now + s->cfg.probe_timeout_ns;
  p->end_at = s->next_probe_at;
  p->expected_nacks = p->nacks = 0;
  s->stats.probes++;
  stm__swim_start_msg(s, STM_SWIM_PING, p->seq);
  strcpy(s->out.target_id, m->pub.id);
  stm__swim_send(s, m->pub.swim_addr, m);
}

static void send_ping_reqs(struct stm_swim *s) {
  struct probe *p = &s->probe;
  const struct member *target = s->members[p->target];
  p->indirect_at = 0;
  size_t k = pick(s, (size_t)s->cfg.indirect_checks, is_up_not, target);
  p->expected_nacks = (int)k;
  for (size_t i = 0; i < k; i++) {
    const struct member *relay = s->members[s->scratch[i]];
    stm__swim_start_msg(s, STM_SWIM_PING_REQ, p->seq);
    strcpy(s->out.target_id, target->pub.id);
    strcpy(s->out.target_addr, target->pub.swim_addr);
    stm__swim_send(s, relay->pub.swim_addr, target);
  }
}

/* ------------------------------------------------------------------ */
/* gossip, push-pull, join                                              */

static bool pending_gossip(const struct stm_swim *s) {
  for (size_t i = 0; i < s->n_members; i++)
    if (s->members[i]->retransmit_left > 0)
      return true;
  return false;
}

void stm__swim_gossip_now(struct stm_swim *s, int fanout) {
  if (!pending_gossip(s))
    return;
  size_t k = pick(s, (size_t)fanout, gossip_target, NULL);
  for (size_t i = 0; i < k; i++) {
    stm__swim_start_msg(s, STM_SWIM_GOSSIP, 0);
    stm__swim_send(s, s->members[s->scratch[i]]->pub.swim_addr, NULL);
  }
}

static bool has_live_peer(struct stm_swim *s) {
  return pick(s, 1, is_up_not, NULL) > 0;
}

/* Until we hear from another member, send our state to every seed once
 * per probe interval; a seed answers with its whole view. */
static void join(struct stm_swim *s) {
  if (has_live_peer(s) || s->cfg.seed_count == 0) {
    s->joining = false;
    return;
  }
  for (size_t i = 0; i < s->cfg.seed_count; i++)
    if (strcmp(s->cfg.seeds[i], s->cfg.swim_addr) != 0)
      send_state(s, s->cfg.seeds[i], STM_SWIM_PUSH_PULL);
  s->next_join_at = s->now + s->cfg.probe_interval_ns;
}

/* memberlist util.go pushPullScale: above 32 members the interval grows
 * with log2(n) so the cluster-wide sync load stays bounded. */
static int64_t push_pull_interval(const struct stm_swim *s) {
  double n = (double)s->n_members;
  int64_t base = s->cfg.push_pull_interval_ns;
  if (n <= 32)
    return base;
  return base * (int64_t)(ceil(log2(n) - log2(32)) + 1);
}

static void push_pull(struct stm_swim *s) {
  s->next_push_pull_at = s->now + push_pull_interval(s);
  if (pick(s, 1, is_up_not, NULL) == 1)
    send_state(s, s->members[s->scratch[0]]->pub.swim_addr, STM_SWIM_PUSH_PULL);
  else if (!s->joining) {
    s->joining = true; /* everyone else is gone: ask the seeds */
    s->next_join_at = s->now;
  }
  /* Also reach out to one DOWN member (serf's reconnect): after a partition
   * both sides think the other dead, and this is how they find out. */
  if (pick(s, 1, is_down, NULL) == 1)
    send_state(s, s->members[s->scratch[0]]->pub.swim_addr, STM_SWIM_PUSH_PULL);
}

static void expire_relays(struct stm_swim *s) {
  for (int i = 0; i < SWIM_MAX_RELAYS; i++) {
    struct relay *r = &s->relays[i];
    if (r->active && r->nack_at <= s->now) {
      r->active = false;
      stm__swim_start_msg(s, STM_SWIM_NACK, r->reply_seq);
      stm__swim_send(s, r->reply_addr, NULL);
    }
  }
}

void stm__swim_timers(struct stm_swim *s) {
  if (!s->left) {
    if (s->probe.active && s->probe.indirect_at &&
        s->probe.indirect_at <= s->now)
      send_ping_reqs(s);
    if (s->next_probe_at <= s->now) {
      if (s->probe.active)
        probe_failed(s);
      start_probe(s);
    }
    if (s->joining && s->next_join_at <= s->now)
      join(s);
    if (s->next_push_pull_at <= s->now)
      push_pull(s);
  }
  expire_relays(s);
  if (s->next_gossip_at <= s->now) {
    s->next_gossip_at = s->now + s->cfg.gossip_interval_ns;
    stm__swim_gossip_now(s, s->cfg.gossip_nodes);
  }
}
