#include "swim_sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_MAX 128

/* Set-up failures; the harness is shared with bench_swim (no CUnit). */
#define SIM_CHECK(cond)                                                        \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);               \
      abort();                                                                 \
    }                                                                          \
  } while (0)

struct sim_node {
  struct sim *sim;
  int index;
  char id[32], addr[32], seed_addr[32];
  struct stm_swim *swim;
  void *endpoint;
  struct stm_fake_timer timer;
  /* first time this observer saw each target enter each state */
  int64_t first[SIM_MAX][4];
};

struct sim {
  struct stm_fake_clock *clock;
  struct stm_fake_net *net;
  uint64_t seed;
  sim_tune_fn tune;
  int n;
  int transitions[SIM_MAX][4];
  struct sim_node nodes[SIM_MAX];
};

static void arm(struct sim_node *nd);

static void on_timer(void *arg, int64_t now) {
  struct sim_node *nd = arg;
  stm_swim_tick(nd->swim, now);
  arm(nd);
}

static void arm(struct sim_node *nd) {
  stm_fake_timer_start(nd->sim->clock, &nd->timer,
                       stm_swim_next_deadline(nd->swim), on_timer, nd);
}

static void on_datagram(void *arg, int64_t now, const void *data, size_t len) {
  struct sim_node *nd = arg;
  stm_swim_receive(nd->swim, now, data, len);
  arm(nd);
}

static int index_of(const char *id) {
  return strncmp(id, "node", 4) == 0 ? atoi(id + 4) : -1;
}

static void on_change(void *arg, const struct stm_swim_member *m,
                      enum stm_swim_state old, bool added) {
  struct sim_node *nd = arg;
  int t = index_of(m->id);
  if (t < 0 || t >= SIM_MAX || m->self)
    return;
  nd->sim->transitions[t][m->state]++;
  if (nd->first[t][m->state] < 0)
    nd->first[t][m->state] = stm_fake_clock_now(nd->sim->clock);
}

static void start(struct sim *s, int i) {
  struct sim_node *nd = &s->nodes[i];
  nd->endpoint = stm_fake_net_attach(s->net, nd->addr, on_datagram, nd);
  struct stm_swim_config c;
  stm_swim_config_defaults(&c);
  c.node_id = nd->id;
  c.swim_addr = nd->addr;
  c.rpc_addr = nd->addr;
  const char *seeds[1] = {nd->seed_addr};
  c.seeds = seeds;
  c.seed_count = 1;
  c.random_seed = s->seed * 1000003 + (uint64_t)i;
  c.transport.ctx = nd->endpoint;
  c.transport.send = stm_fake_net_send;
  c.on_change = on_change;
  c.cb_arg = nd;
  if (s->tune)
    s->tune(i, &c);
  struct stm_error err;
  int rc = stm_swim_new(&c, stm_fake_clock_now(s->clock), &nd->swim, &err);
  if (rc)
    fprintf(stderr, "sim: %s\n", err.message);
  SIM_CHECK(rc == 0);
  arm(nd);
}

struct sim *sim_new(int n, uint64_t seed, sim_tune_fn tune) {
  SIM_CHECK(n >= 2 && n <= SIM_MAX);
  struct sim *s = calloc(1, sizeof *s);
  s->clock = stm_fake_clock_new(0);
  s->net = stm_fake_net_new(s->clock, seed);
  s->seed = seed;
  s->tune = tune;
  s->n = n;
  sim_reset_history(s);
  for (int i = 0; i < n; i++) {
    struct sim_node *nd = &s->nodes[i];
    nd->sim = s;
    nd->index = i;
    snprintf(nd->id, sizeof nd->id, "node%d", i);
    snprintf(nd->addr, sizeof nd->addr, "10.0.%d.%d:18183", i / 200,
             i % 200 + 1);
    snprintf(nd->seed_addr, sizeof nd->seed_addr, "10.0.0.%d:18183",
             i == 0 ? 2 : 1);
  }
  for (int i = 0; i < n; i++)
    start(s, i);
  return s;
}

void sim_kill(struct sim *s, int i) {
  struct sim_node *nd = &s->nodes[i];
  if (nd->swim == NULL)
    return;
  stm_fake_timer_stop(s->clock, &nd->timer);
  stm_fake_net_detach(s->net, nd->addr);
  stm_swim_delete(nd->swim);
  nd->swim = NULL;
}

void sim_restart(struct sim *s, int i) {
  sim_kill(s, i);
  start(s, i);
}

void sim_delete(struct sim *s) {
  for (int i = 0; i < s->n; i++)
    sim_kill(s, i);
  stm_fake_net_delete(s->net);
  stm_fake_clock_delete(s->clock);
  free(s);
}

struct stm_fake_net *sim_net(struct sim *s) {
  return s->net;
}
int64_t sim_now(const struct sim *s) { return stm_fake_clock_now(s->clock); }
int sim_size(const struct sim *s) { return s->n; }
const char *sim_addr(const struct sim *s, int i) { return s->nodes[i].addr; }
const char *sim_id(const struct sim *s, int i) { return s->nodes[i].id; }
struct stm_swim *sim_swim(struct sim *s, int i) {
  return s->nodes[i].swim;
}

void sim_run_for(struct sim *s, int64_t ns) {
  stm_fake_clock_run_until(s->clock, sim_now(s) + ns);
}

bool sim_run_until(struct sim *s, int64_t ns,
                   bool (*pred)(struct sim *s, void *arg), void *arg) {
  int64_t limit = sim_now(s) + ns, checked = -1;
  for (;;) {
    /* Checking a whole-cluster view after every datagram of 100 members
     * would cost more than the simulation: check each simulated ms. */
    if (sim_now(s) >= checked + SIM_MS) {
      checked = sim_now(s);
      if (pred(s, arg))
        return true;
    }
    if (!stm_fake_clock_step(s->clock, limit))
      return pred(s, arg);
  }
}

int sim_state(struct sim *s, int observer, int target) {
  struct stm_swim_member m;
  struct stm_swim *w = s->nodes[observer].swim;
  if (w == NULL || stm_swim_member_get(w, s->nodes[target].id, &m) != 0)
    return -1;
  return (int)m.state;
}

bool sim_all_see(struct sim *s, int target, enum stm_swim_state state) {
  for (int i = 0; i < s->n; i++)
    if (i != target && s->nodes[i].swim &&
        sim_state(s, i, target) != (int)state)
      return false;
  return true;
}

bool sim_all_up(struct sim *s, void *unused) {
  int running = 0;
  for (int i = 0; i < s->n; i++)
    running += s->nodes[i].swim != NULL;
  /* O(n^2): each running member knows every running member as UP and
   * every stopped one as not UP. */
  for (int i = 0; i < s->n; i++) {
    struct stm_swim *w = s->nodes[i].swim;
    if (w == NULL)
      continue;
    int up = 0;
    size_t count = stm_swim_member_count(w);
    for (size_t k = 0; k < count; k++) {
      struct stm_swim_member m;
      stm_swim_member_at(w, k, &m);
      if (m.state != STM_SWIM_UP)
        continue;
      int t = index_of(m.id);
      if (t < 0 || t >= s->n || s->nodes[t].swim == NULL)
        return false;
      up++;
    }
    if (up != running)
      return false;
  }
  return true;
}

int sim_transitions(const struct sim *s, int target,
                    enum stm_swim_state state) {
  return s->transitions[target][state];
}

void sim_first_seen(const struct sim *s, int target, enum stm_swim_state state,
                    int64_t *at) {
  for (int i = 0; i < s->n; i++)
    at[i] = s->nodes[i].first[target][state];
}

void sim_reset_history(struct sim *s) {
  memset(s->transitions, 0, sizeof s->transitions);
  for (int i = 0; i < SIM_MAX; i++)
    for (int t = 0; t < SIM_MAX; t++)
      for (int k = 0; k < 4; k++)
        s->nodes[i].first[t][k] = -1;
}

void sim_dump(struct sim *s) {
  fprintf(stderr, "\n-- t=%.3f s\n", (double)sim_now(s) / SIM_SEC);
  for (int i = 0; i < s->n; i++) {
    struct stm_swim *w = s->nodes[i].swim;
    if (w == NULL) {
      fprintf(stderr, "%s: stopped\n", s->nodes[i].id);
      continue;
    }
    struct stm_swim_stats st;
    stm_swim_stats(w, &st);
    fprintf(stderr, "%s (sent %llu recv %llu aw %d):", s->nodes[i].id,
            (unsigned long long)st.sent, (unsigned long long)st.received,
            st.awareness);
    for (size_t k = 0; k < stm_swim_member_count(w); k++) {
      struct stm_swim_member m;
      stm_swim_member_at(w, k, &m);
      fprintf(stderr, " %s=%s/%llu%s", m.id, stm_swim_state_name(m.state),
              (unsigned long long)m.incarnation, m.meta_len ? "+meta" : "");
    }
    fprintf(stderr, "\n");
  }
}
