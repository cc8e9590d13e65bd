/*
 * SWIM membership: members, the merge rules for gossiped state, suspicion
 * timing and the public API. Probing, gossip and push-pull are in
 * swim_probe.c. The rules follow memberlist (state.go) with tarantool's
 * ordering at equal incarnation: UP < SUSPECT < DOWN < LEFT.
 */
#include "swim_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *stm_swim_state_name(enum stm_swim_state s) {
  switch (s) {
  case STM_SWIM_UP:
    return "UP";
  case STM_SWIM_SUSPECT:
    return "SUSPECT";
  case STM_SWIM_DOWN:
    return "DOWN";
  case STM_SWIM_LEFT:
    return "LEFT";
  }
  return "?";
}

void stm_swim_config_defaults(struct stm_swim_config *c) {
  memset(c, 0, sizeof *c);
  c->cluster_name = "stemedb";
  c->incarnation = 1;
  c->probe_interval_ns = 1000000000;
  c->probe_timeout_ns = 500000000;
  c->indirect_checks = 3;
  c->suspicion_mult = 4;
  c->suspicion_max_mult = 6;
  c->retransmit_mult = 4;
  c->gossip_interval_ns = 200000000;
  c->gossip_nodes = 3;
  c->push_pull_interval_ns = 30000000000;
  c->gossip_to_dead_ns = 30000000000;
  c->awareness_max = 8;
}

/* FNV-1a: ids are compared by hash first, then by string. */
static uint64_t id_hash(const char *id) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *id; id++)
    h = (h ^ (uint8_t)*id) * 0x100000001b3ULL;
  return h;
}

struct member *stm__swim_find(const struct stm_swim *s, const char *id) {
  uint64_t h = id_hash(id);
  for (size_t i = 0; i < s->n_members; i++)
    if (s->members[i]->id_hash == h && strcmp(s->members[i]->pub.id, id) == 0)
      return s->members[i];
  return NULL;
}

size_t stm__swim_live_count(const struct stm_swim *s) {
  size_t n = 0;
  for (size_t i = 0; i < s->n_members; i++)
    n += s->members[i]->pub.state <= STM_SWIM_SUSPECT;
  return n ? n : 1;
}

int stm__swim_retransmit_limit(const struct stm_swim *s) {
  double n = (double)s->n_members;
  return s->cfg.retransmit_mult * (int)ceil(log10(n + 1));
}

void stm__swim_to_update(const struct member *m, struct stm_swim_update *u) {
  memset(u, 0, offsetof(struct stm_swim_update, meta));
  strcpy(u->id, m->pub.id);
  u->state = m->pub.state;
  u->incarnation = m->pub.incarnation;
  strcpy(u->rpc_addr, m->pub.rpc_addr);
  strcpy(u->swim_addr, m->pub.swim_addr);
  memcpy(u->meta, m->pub.meta, m->pub.meta_len);
  u->meta_len = m->pub.meta_len;
  strcpy(u->suspector,
         m->pub.state == STM_SWIM_SUSPECT || m->pub.state == STM_SWIM_DOWN
             ? m->gossip_suspector
             : "");
}

void stm__swim_seen(struct stm_swim *s, const char *id) {
  struct member *m = stm__swim_find(s, id);
  if (m && !m->pub.self)
    m->pub.last_seen_ns = s->now;
}

static void notify(struct stm_swim *s, const struct member *m,
                   enum stm_swim_state old, bool added) {
  if (s->cfg.on_change)
    s->cfg.on_change(s->cfg.cb_arg, &m->pub, old, added);
}

/* A new state to disseminate: reset its piggyback budget. */
static void rebroadcast(struct stm_swim *s, struct member *m) {
  m->retransmit_left = stm__swim_retransmit_limit(s);
}

static void set_state(struct stm_swim *s, struct member *m,
                      enum stm_swim_state st, uint64_t inc) {
  enum stm_swim_state old = m->pub.state;
  m->pub.state = st;
  m->pub.incarnation = inc;
  if (st != STM_SWIM_SUSPECT)
    m->suspect_deadline = 0;
  if (old != st)
    m->pub.state_changed_ns = s->now;
  rebroadcast(s, m);
  if (old != st)
    notify(s, m, old, false);
}

static void copy_identity(struct member *m, const struct stm_swim_update *u) {
  if (u->rpc_addr[0])
    strcpy(m->pub.rpc_addr, u->rpc_addr);
  strcpy(m->pub.swim_addr, u->swim_addr);
  memcpy(m->pub.meta, u->meta, u->meta_len);
  m->pub.meta_len = u->meta_len;
}

static struct member *add_member(struct stm_swim *s,
                                 const struct stm_swim_update *u) {
  if (s->n_members >= STM_SWIM_MAX_MEMBERS) {
    s->stats.members_ignored++;
    return NULL;
  }
  if (s->n_members == s->cap_members) {
    size_t cap = s->cap_members ? s->cap_members * 2 : 16;
    struct member **mm = realloc(s->members, cap * sizeof *mm);
    size_t *order = realloc(s->order, cap * sizeof *order);
    if (order)
      s->order = order;
    size_t *scratch = realloc(s->scratch, cap * sizeof *scratch);
    if (scratch)
      s->scratch = scratch;
    if (mm)
      s->members = mm;
    if (mm == NULL || order == NULL || scratch == NULL)
      return NULL;
    s->cap_members = cap;
  }
  struct member *m = calloc(1, sizeof *m);
  if (m == NULL)
    return NULL;
  strcpy(m->pub.id, u->id);
  m->id_hash = id_hash(u->id);
  m->pub.state = u->state;
  m->pub.incarnation = u->incarnation;
  m->pub.state_changed_ns = s->now;
  copy_identity(m, u);
  strcpy(m->suspector, u->suspector);
  strcpy(m->gossip_suspector, u->suspector);
  s->members[s->n_members++] = m;
  if (s->n_members > 1)
    stm__swim_order_add(s, s->n_members - 1);
  rebroadcast(s, m);
  return m;
}

/* ------------------------------------------------------------------ */
/* suspicion (Lifeguard)                                                */

/* memberlist suspicion.go: the timeout starts at max and falls towards min
 * as log(C+1)/log(k+1) for C independent confirmations. */
static int64_t suspicion_timeout(const struct stm_swim *s, int confirmations) {
  double n = (double)stm__swim_live_count(s);
  double min = s->cfg.suspicion_mult * fmax(1.0, log10(n)) *
               (double)s->cfg.probe_interval_ns;
  double max = s->cfg.suspicion_max_mult * min;
  int k = s->cfg.suspicion_mult - 2;
  if ((double)k > n - 2)
    k = 0;
  if (k < 1)
    return (int64_t)min;
  double frac = log((double)confirmations + 1) / log((double)k + 1);
  return (int64_t)fmax(min, max - frac * (max - min));
}

void stm__swim_suspect(struct stm_swim *s, struct member *m,
                       const char *suspector) {
  strcpy(m->suspector, suspector);
  strcpy(m->gossip_suspector, suspector);
  m->n_confirm = 0;
  m->suspect_start = s->now;
  set_state(s, m, STM_SWIM_SUSPECT, m->pub.incarnation);
  m->suspect_deadline = s->now + suspicion_timeout(s, 0);
  if (m->suspect_deadline <= s->now)
    m->suspect_deadline = s->now + 1;
}

/* Another member (or we, after our own failed probe) suspects m at the
 * same incarnation: an independent confirmation, gossiped under its name. */
void stm__swim_confirm(struct stm_swim *s, struct member *m, const char *who) {
  if (who[0] == '\0' || strcmp(who, m->suspector) == 0)
    return;
  uint64_t h = id_hash(who);
  for (int i = 0; i < m->n_confirm; i++)
    if (m->confirmers[i] == h)
      return;
  if (m->n_confirm == SWIM_MAX_CONFIRM)
    return;
  m->confirmers[m->n_confirm++] = h;
  int64_t d = m->suspect_start + suspicion_timeout(s, m->n_confirm);
  m->suspect_deadline = d > s->now ? d : s->now;
  strcpy(m->gossip_suspector, who);
  rebroadcast(s, m); /* Lifeguard: re-gossip new confirmations */
}

/* ------------------------------------------------------------------ */
/* merge rules                                                          */

static void refute(struct stm_swim *s, uint64_t accused) {
  struct member *self = s->members[0];
  uint64_t inc = self->pub.incarnation + 1;
  if (accused + 1 > inc)
    inc = accused + 1;
  self->pub.incarnation = inc;
  rebroadcast(s, self);
  s->stats.refutations++;
  if (s->awareness < s->cfg.awareness_max - 1)
    s->awareness++;
}

static void apply_self(struct stm_swim *s, const struct stm_swim_update *u) {
  struct member *self = s->members[0];
  if (s->left || u->incarnation < self->pub.incarnation)
    return;
  if (u->state == STM_SWIM_UP && u->incarnation == self->pub.incarnation &&
      strcmp(u->swim_addr, self->pub.swim_addr) == 0 &&
      u->meta_len == self->pub.meta_len &&
      memcmp(u->meta, self->pub.meta, u->meta_len) == 0)
    return;
  /* Anything else about us at our incarnation or later is an accusation
   * or a previous life of ours: outbid it. */
  refute(s, u->incarnation);
}

static void apply_suspect(struct stm_swim *s, struct member *m,
                          const struct stm_swim_update *u, bool from_pp) {
  uint64_t inc = m->pub.incarnation;
  if (m->pub.state == STM_SWIM_SUSPECT && u->incarnation == inc) {
    stm__swim_confirm(s, m, u->suspector);
    return;
  }
  bool applies = m->pub.state == STM_SWIM_UP ? u->incarnation >= inc
                                             : u->incarnation > inc;
  if (!applies)
    return;
  m->pub.incarnation = u->incarnation;
  if (!from_pp || u->rpc_addr[0])
    copy_identity(m, u);
  stm__swim_suspect(s, m, u->suspector[0] ? u->suspector : "?");
}

void stm__swim_apply(struct stm_swim *s, const struct stm_swim_update *u,
                     bool from_pp) {
  struct member *m = stm__swim_find(s, u->id);
  if (m && m->pub.self) {
    apply_self(s, u);
    return;
  }
  if (m == NULL) {
    m = add_member(s, u);
    if (m == NULL)
      return;
    bool suspect = u->state == STM_SWIM_SUSPECT;
    if (suspect)
      m->pub.state = STM_SWIM_UP; /* then suspected, with our own timer */
    notify(s, m, m->pub.state, true);
    if (suspect)
      stm__swim_suspect(s, m, u->suspector[0] ? u->suspector : "?");
    return;
  }
  uint64_t inc = m->pub.incarnation;
  switch (u->state) {
  case STM_SWIM_UP:
    if (u->incarnation > inc) {
      copy_identity(m, u);
      set_state(s, m, STM_SWIM_UP, u->incarnation);
      notify(s, m, STM_SWIM_UP, false); /* identity may have changed */
    }
    break;
  case STM_SWIM_SUSPECT:
    apply_suspect(s, m, u, from_pp);
    break;
  case STM_SWIM_DOWN:
    if (u->incarnation < inc ||
        (u->incarnation == inc && m->pub.state >= STM_SWIM_DOWN))
      break;
    if (from_pp && m->pub.state == STM_SWIM_UP) {
      /* memberlist: a full-state sync only downgrades to suspect, so one
       * stale view cannot kill a member we hear from. */
      apply_suspect(s, m, u, true);
      break;
    }
    strcpy(m->suspector, u->suspector);
    strcpy(m->gossip_suspector, u->suspector);
    set_state(s, m, STM_SWIM_DOWN, u->incarnation);
    break;
  case STM_SWIM_LEFT:
    if (u->incarnation >= inc && m->pub.state != STM_SWIM_LEFT)
      set_state(s, m, STM_SWIM_LEFT, u->incarnation);
    break;
  }
}

/* Suspicions that ran out become DOWN. */
static void expire_suspicions(struct stm_swim *s) {
  for (size_t i = 1; i < s->n_members; i++) {
    struct member *m = s->members[i];
    if (m->pub.state == STM_SWIM_SUSPECT && m->suspect_deadline &&
        m->suspect_deadline <= s->now) {
      strcpy(m->suspector, s->members[0]->pub.id);
      strcpy(m->gossip_suspector, m->suspector);
      set_state(s, m, STM_SWIM_DOWN, m->pub.incarnation);
    }
  }
}

/* ------------------------------------------------------------------ */
/* API                                                                  */

static int check_config(const struct stm_swim_config *c,
                        struct stm_error *err) {
  int rc = stm_node_id_validate("cluster.node_id", c->node_id, err);
  if (rc)
    return rc;
  if (c->swim_addr == NULL || c->swim_addr[0] == '\0' ||
      strlen(c->swim_addr) > STM_ADDR_MAX)
    return stm_error_set(err, STM_EINVAL, "cluster.swim_addr",
                         "cluster.swim_addr must be host:port");
  if (c->rpc_addr && strlen(c->rpc_addr) > STM_ADDR_MAX)
    return stm_error_set(err, STM_EINVAL, "cluster.rpc_addr",
                         "cluster.rpc_addr is too long");
  if (c->transport.send == NULL)
    return stm_error_set(err, STM_EINVAL, "transport", "no transport");
  if (c->probe_interval_ns <= 0 || c->probe_timeout_ns <= 0 ||
      c->probe_timeout_ns >= c->probe_interval_ns)
    return stm_error_set(err, STM_EINVAL, "cluster.probe_timeout_ms",
                         "the probe timeout must be positive and shorter "
                         "than the probe interval");
  if (c->suspicion_mult < 1 || c->suspicion_max_mult < 1 ||
      c->indirect_checks < 0 || c->retransmit_mult < 1 ||
      c->gossip_interval_ns <= 0 || c->gossip_nodes < 1 ||
      c->push_pull_interval_ns <= 0 || c->awareness_max < 1)
    return stm_error_set(err, STM_EINVAL, "cluster.suspicion_mult",
                         "SWIM multipliers and intervals must be positive");
  return 0;
}

static int copy_seeds(struct stm_swim *s, const struct stm_swim_config *c) {
  s->cfg.seeds = NULL;
  if (c->seed_count == 0)
    return 0;
  s->seeds = calloc(c->seed_count, sizeof *s->seeds);
  if (s->seeds == NULL)
    return STM_ENOMEM;
  for (size_t i = 0; i < c->seed_count; i++)
    if ((s->seeds[i] = strdup(c->seeds[i])) == NULL)
      return STM_ENOMEM;
  s->cfg.seeds = (const char *const *)s->seeds;
  return 0;
}

int stm_swim_new(const struct stm_swim_config *c, int64_t now,
                 struct stm_swim **out, struct stm_error *err) {
  *out = NULL;
  int rc = check_config(c, err);
  if (rc)
    return rc;
  struct stm_swim *s = calloc(1, sizeof *s);
  if (s == NULL)
    return STM_ENOMEM;
  s->cfg = *c;
  s->now = now;
  rc = stm_swim_codec_init(&s->codec,
                           c->cluster_name ? c->cluster_name : "stemedb",
                           c->secret, c->secret_len, err);
  s->cfg.secret = NULL; /* only the derived key is kept */
  s->cfg.secret_len = 0;
  s->cfg.cluster_name = s->codec.cluster;
  if (rc == 0 && (rc = copy_seeds(s, c)) != 0)
    stm_error_set(err, rc, NULL, "out of memory");
  struct stm_swim_update self = {.state = STM_SWIM_UP,
                                 .incarnation = c->incarnation};
  strcpy(self.id, c->node_id);
  strcpy(self.swim_addr, c->swim_addr);
  if (c->rpc_addr)
    strcpy(self.rpc_addr, c->rpc_addr);
  if (rc == 0 && add_member(s, &self) == NULL)
    rc = stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  if (rc) {
    stm_swim_delete(s);
    return rc;
  }
  s->members[0]->pub.self = true;
  s->members[0]->pub.last_seen_ns = now;
  s->cfg.node_id = s->members[0]->pub.id;
  s->cfg.swim_addr = s->members[0]->pub.swim_addr;
  s->cfg.rpc_addr = s->members[0]->pub.rpc_addr;
  stm_rand_init(&s->rand, c->random_seed);
  s->next_seq = 1;
  /* Spread the first probe over one interval so members started together
   * do not probe in lock step. */
  s->next_probe_at =
      now + (int64_t)stm_rand_below(&s->rand, (uint64_t)c->probe_interval_ns);
  s->next_gossip_at = now + c->gossip_interval_ns;
  s->next_push_pull_at = now + c->push_pull_interval_ns;
  s->next_join_at = now;
  s->joining = true;
  *out = s;
  return 0;
}

void stm_swim_delete(struct stm_swim *s) {
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->n_members; i++)
    free(s->members[i]);
  free(s->members);
  free(s->order);
  free(s->scratch);
  if (s->seeds)
    for (size_t i = 0; i < s->cfg.seed_count; i++)
      free(s->seeds[i]);
  free(s->seeds);
  stm_swim_codec_destroy(&s->codec);
  free(s);
}

/* Every datagram carries its sender's own UP record (incarnation,
 * addresses, meta). A newer incarnation than we know is the sender's
 * refutation or news; applying it spreads refutations on every ack, not
 * only within the gossip budget. Unknown senders are learned this way. */
static void sender_record(struct stm_swim *s) {
  struct member *m = stm__swim_find(s, s->in.from_id);
  if (m && s->in.from_incarnation <= m->pub.incarnation)
    return;
  struct stm_swim_update u;
  memset(&u, 0, offsetof(struct stm_swim_update, meta));
  strcpy(u.id, s->in.from_id);
  u.state = STM_SWIM_UP;
  u.incarnation = s->in.from_incarnation;
  strcpy(u.swim_addr, s->in.from_addr);
  strcpy(u.rpc_addr, s->in.from_rpc_addr);
  memcpy(u.meta, s->in.from_meta, s->in.from_meta_len);
  u.meta_len = s->in.from_meta_len;
  stm__swim_apply(s, &u, false);
}

void stm_swim_receive(struct stm_swim *s, int64_t now, const void *data,
                      size_t len) {
  if (now > s->now)
    s->now = now;
  s->members[0]->pub.last_seen_ns = s->now;
  const uint8_t *p = data;
  int rc = stm_swim_decode(&s->codec, p, p + len, &s->in, NULL);
  if (rc) {
    if (rc == STM_EPERM)
      s->stats.dropped_auth++;
    else
      s->stats.dropped_malformed++;
    return;
  }
  s->stats.received++;
  if (strcmp(s->in.from_id, s->members[0]->pub.id) == 0)
    return; /* our own datagram, or a member misconfigured with our id */
  sender_record(s);
  stm__swim_seen(s, s->in.from_id);
  bool pp = s->in.kind == STM_SWIM_PUSH_PULL ||
            s->in.kind == STM_SWIM_PUSH_PULL_REPLY;
  for (size_t i = 0; i < s->in.n_updates; i++)
    stm__swim_apply(s, &s->in.updates[i], pp);
  stm__swim_handle(s);
}

void stm_swim_tick(struct stm_swim *s, int64_t now) {
  if (now > s->now)
    s->now = now;
  s->members[0]->pub.last_seen_ns = s->now;
  expire_suspicions(s);
  stm__swim_timers(s);
}

int64_t stm_swim_next_deadline(const struct stm_swim *s) {
  int64_t d = s->next_gossip_at;
  if (!s->left) {
    if (s->next_probe_at < d)
      d = s->next_probe_at;
    if (s->probe.active && s->probe.indirect_at && s->probe.indirect_at < d)
      d = s->probe.indirect_at;
    if (s->next_push_pull_at < d)
      d = s->next_push_pull_at;
    if (s->joining && s->next_join_at < d)
      d = s->next_join_at;
  }
  for (int i = 0; i < SWIM_MAX_RELAYS; i++)
    if (s->relays[i].active && s->relays[i].nack_at < d)
      d = s->relays[i].nack_at;
  for (size_t i = 1; i < s->n_members; i++) {
    const struct member *m = s->members[i];
    if (m->pub.state == STM_SWIM_SUSPECT && m->suspect_deadline &&
        m->suspect_deadline < d)
      d = m->suspect_deadline;
  }
  return d;
}

int stm_swim_set_meta(struct stm_swim *s, int64_t now, const void *meta,
                      size_t len) {
  if (len > STM_SWIM_META_MAX || (len && meta == NULL))
    return STM_EINVAL;
  if (now > s->now)
    s->now = now;
  struct member *self = s->members[0];
  if (len)
    memcpy(self->pub.meta, meta, len);
  self->pub.meta_len = len;
  if (!s->left) {
    self->pub.incarnation++;
    rebroadcast(s, self);
  }
  return 0;
}

void stm_swim_leave(struct stm_swim *s, int64_t now) {
  if (s->left)
    return;
  if (now > s->now)
    s->now = now;
  struct member *self = s->members[0];
  s->left = true;
  s->probe.active = false;
  set_state(s, self, STM_SWIM_LEFT, self->pub.incarnation + 1);
  stm__swim_gossip_now(s, 2 * s->cfg.gossip_nodes);
}

int stm_swim_remove(struct stm_swim *s, int64_t now, const char *id) {
  struct member *m = stm__swim_find(s, id);
  if (m == NULL)
    return STM_ENOTFOUND;
  if (m->pub.self)
    return STM_EINVAL;
  if (now > s->now)
    s->now = now;
  if (m->pub.state != STM_SWIM_LEFT)
    set_state(s, m, STM_SWIM_LEFT, m->pub.incarnation);
  return 0;
}

size_t stm_swim_member_count(const struct stm_swim *s) { return s->n_members; }

void stm_swim_member_at(const struct stm_swim *s, size_t i,
                        struct stm_swim_member *out) {
  *out = s->members[i]->pub;
}

int stm_swim_member_get(const struct stm_swim *s, const char *id,
                        struct stm_swim_member *out) {
  const struct member *m = stm__swim_find(s, id);
  if (m == NULL)
    return STM_ENOTFOUND;
  *out = m->pub;
  return 0;
}

void stm_swim_stats(const struct stm_swim *s, struct stm_swim_stats *out) {
  *out = s->stats;
  out->awareness = s->awareness;
}

void stm_swim_config_from_cluster(struct stm_swim_config *c,
                                  const struct stm_cluster_config *cc) {
  const int64_t ms = 1000000;
  c->cluster_name = cc->name ? cc->name : STM_CLUSTER_DEFAULT_NAME;
  c->secret = cc->cluster_key;
  c->secret_len = cc->cluster_key ? strlen(cc->cluster_key) : 0;
  c->node_id = cc->node_id;
  c->rpc_addr = cc->rpc_addr;
  c->swim_addr = cc->swim_addr;
  c->seeds = (const char *const *)cc->seeds;
  c->seed_count = cc->seed_count;
  c->probe_interval_ns = cc->probe_interval_ms * ms;
  c->probe_timeout_ns = cc->probe_timeout_ms * ms;
  c->suspicion_mult = (int)cc->suspicion_mult;
  c->suspicion_max_mult = (int)cc->suspicion_max_mult;
  c->push_pull_interval_ns = cc->push_pull_interval_ms * ms;
  /* memberlist's LAN ratios: gossip 5 times per probe interval, gossip to
   * the dead for one push-pull interval. */
  c->gossip_interval_ns = c->probe_interval_ns / 5;
  c->gossip_to_dead_ns = c->push_pull_interval_ns;
}
