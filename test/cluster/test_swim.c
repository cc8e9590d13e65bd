/*
 * SWIM on a fake clock and network (test/cluster/swim_sim.h): outcome and
 * timing. Times are simulated; the seed is printed by main and replayed
 * with STM_TEST_SEED.
 */
#include "cluster/swim_format.h"
#include "harness.h"
#include "swim_sim.h"
#include "test_cluster.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Defaults: probe interval T = 1 s, suspicion mult 4 / max mult 6. */
#define T SIM_SEC

static double suspicion_min_s(int n) { return 4 * fmax(1.0, log10(n)); }
static double suspicion_max_s(int n) { return 6 * suspicion_min_s(n); }

static struct sim *formed(int n, sim_tune_fn tune) {
  struct sim *s = sim_new(n, stm_test_seed(), tune);
  bool up = sim_run_until(s, 60 * SIM_SEC, sim_all_up, NULL);
  if (!up)
    fprintf(stderr, "\n%d members did not form in 60 s\n", n);
  CU_ASSERT_TRUE_FATAL(up);
  sim_reset_history(s);
  return s;
}

struct target_state {
  int target;
  enum stm_swim_state state;
};

static bool all_see(struct sim *s, void *arg) {
  const struct target_state *ts = arg;
  return sim_all_see(s, ts->target, ts->state);
}

/* Each joins by a push-pull with node0, then gossip spreads the rest; a
 * member that missed some gossip catches up at its next push-pull (30 s). */
static void test_swim_members_meet_through_one_seed_within_a_push_pull(void) {
  int sizes[] = {3, 20, 50};
  for (size_t k = 0; k < 3; k++) {
    struct sim *s = sim_new(sizes[k], stm_test_seed(), NULL);
    bool up = sim_run_until(s, 35 * SIM_SEC, sim_all_up, NULL);
    if (!up)
      sim_dump(s);
    CU_ASSERT_TRUE(up);
    for (int i = 0; i < sizes[k]; i++)
      CU_ASSERT_EQUAL(stm_swim_member_count(sim_swim(s, i)), (size_t)sizes[k]);
    /* Full states of 50 members span several datagrams, none over 1400. */
    struct stm_fake_net_stats ns;
    stm_fake_net_stats(sim_net(s), &ns);
    CU_ASSERT_TRUE(ns.max_len <= 1400);
    if (sizes[k] == 50)
      CU_ASSERT_TRUE(ns.max_len > 1000);
    sim_delete(s);
  }
}

/* Kill one member; it must be DOWN at every other member no sooner than a
 * probe timeout plus the minimum suspicion, and no later than the bound:
 * every member probes it within 2(n-1) intervals (round-robin, reshuffled
 * per round), one interval for the probe, the maximum suspicion timeout,
 * then a few gossip rounds (5 s allowance). */
static void dead_member_down_within_bound(int n) {
  struct sim *s = formed(n, NULL);
  int victim = n / 2;
  int64_t killed = sim_now(s);
  sim_kill(s, victim);
  double bound_s = (2 * (n - 1) + 1) + suspicion_max_s(n) + 5;
  struct target_state ts = {victim, STM_SWIM_DOWN};
  bool down = sim_run_until(s, (int64_t)(bound_s * SIM_SEC), all_see, &ts);
  double took = (double)(sim_now(s) - killed) / SIM_SEC;
  if (!down)
    fprintf(stderr, "\nn=%d: not DOWN everywhere after %.1f s\n", n, took);
  CU_ASSERT_TRUE(down);
  int64_t first[128];
  sim_first_seen(s, victim, STM_SWIM_DOWN, first);
  for (int i = 0; i < n; i++)
    if (i != victim) {
      double at = (double)(first[i] - killed) / SIM_SEC;
      CU_ASSERT_TRUE(at >= 0.5 + suspicion_min_s(n));
    }
  /* Nobody else was even suspected. */
  for (int i = 0; i < n; i++)
    if (i != victim)
      CU_ASSERT_EQUAL(sim_transitions(s, i, STM_SWIM_SUSPECT), 0);
  sim_delete(s);
}

static void test_swim_dead_member_is_down_everywhere_within_bound(void) {
  dead_member_down_within_bound(3);
  dead_member_down_within_bound(10);
  dead_member_down_within_bound(50);
}

/* Lifeguard: with k = mult - 2 = 2 independent confirmations the
 * suspicion timeout falls from max (6x) to min; with 20 members the time
 * from the first suspicion to the first DOWN is near min, far below max. */
static void test_swim_suspicion_timeout_shrinks_with_confirmations(void) {
  int n = 20;
  struct sim *s = formed(n, NULL);
  int victim = 7;
  sim_kill(s, victim);
  struct target_state ts = {victim, STM_SWIM_DOWN};
  CU_ASSERT_TRUE(sim_run_until(s, 120 * SIM_SEC, all_see, &ts));
  int64_t susp[128], down[128];
  sim_first_seen(s, victim, STM_SWIM_SUSPECT, susp);
  sim_first_seen(s, victim, STM_SWIM_DOWN, down);
  int64_t first_susp = INT64_MAX, first_down = INT64_MAX;
  for (int i = 0; i < n; i++) {
    if (susp[i] >= 0 && susp[i] < first_susp)
      first_susp = susp[i];
    if (down[i] >= 0 && down[i] < first_down)
      first_down = down[i];
  }
  double took = (double)(first_down - first_susp) / SIM_SEC;
  CU_ASSERT_TRUE(took >= suspicion_min_s(n) - 0.01);
  CU_ASSERT_TRUE(took < (suspicion_min_s(n) + suspicion_max_s(n)) / 2);
  sim_delete(s);
}

static bool none_down(struct sim *s, int n) {
  for (int t = 0; t < n; t++)
    if (sim_transitions(s, t, STM_SWIM_DOWN) != 0)
      return false;
  return true;
}

/* False positives: one simulated hour at 20 % loss on every datagram. Many
 * probes fail and members get suspected, but each refutes in time. */
static void test_swim_live_member_under_20_percent_loss_is_not_down(void) {
  int n = 5;
  struct sim *s = formed(n, NULL);
  stm_fake_net_set_drop(sim_net(s), 0.20);
  sim_run_for(s, 3600 * SIM_SEC);
  int suspected = 0, down = 0;
  for (int t = 0; t < n; t++) {
    suspected += sim_transitions(s, t, STM_SWIM_SUSPECT);
    down += sim_transitions(s, t, STM_SWIM_DOWN);
  }
  if (down)
    fprintf(stderr, "\n20%% loss, 1 h: %d suspicions, %d DOWN\n", suspected,
            down);
  CU_ASSERT_EQUAL(down, 0);
  /* The loss is real: members were suspected, and refuted. */
  CU_ASSERT_TRUE(suspected > 0);
  stm_fake_net_set_drop(sim_net(s), 0);
  CU_ASSERT_TRUE(sim_run_until(s, 30 * SIM_SEC, sim_all_up, NULL));
  struct stm_swim_stats st;
  stm_swim_stats(sim_swim(s, 0), &st);
  CU_ASSERT_TRUE(st.refutations > 0);
  sim_delete(s);
}

static void split(struct sim *s, int n, int at) {
  for (int i = 0; i < n; i++)
    stm_fake_net_set_group(sim_net(s), sim_addr(s, i), i < at ? 1 : 2);
}

static void test_swim_partition_heals_to_one_view(void) {
  int n = 6;
  struct sim *s = formed(n, NULL);
  split(s, n, 3);
  /* Each side declares the other DOWN... */
  struct target_state a = {0, STM_SWIM_DOWN}, b = {5, STM_SWIM_DOWN};
  sim_run_for(s, 120 * SIM_SEC);
  CU_ASSERT_EQUAL(sim_state(s, 4, 0), STM_SWIM_DOWN);
  CU_ASSERT_EQUAL(sim_state(s, 0, 5), STM_SWIM_DOWN);
  CU_ASSERT_EQUAL(sim_state(s, 0, 1), STM_SWIM_UP);
  CU_ASSERT_EQUAL(sim_state(s, 4, 5), STM_SWIM_UP);
  (void)a;
  (void)b;
  /* ...and after the heal, push-pull to a DOWN member (at most one
   * push-pull interval, 30 s) and refutation give one view again. */
  stm_fake_net_heal(sim_net(s));
  bool one = sim_run_until(s, 75 * SIM_SEC, sim_all_up, NULL);
  CU_ASSERT_TRUE(one);
  sim_delete(s);
}

static void test_swim_one_way_cut_kills_no_one(void) {
  int n = 5;
  struct sim *s = formed(n, NULL);
  /* node1 can no longer reach node2; node2 still reaches node1. Direct
   * probes across the cut fail, indirect probes through the others work. */
  stm_fake_net_set_link_drop(sim_net(s), sim_addr(s, 1), sim_addr(s, 2), 1.0);
  sim_run_for(s, 600 * SIM_SEC);
  CU_ASSERT_TRUE(none_down(s, n));
  CU_ASSERT_TRUE(sim_all_up(s, NULL));
  sim_delete(s);
}

static void test_swim_member_that_cannot_send_is_down(void) {
  int n = 4;
  struct sim *s = formed(n, NULL);
  for (int i = 0; i < n; i++)
    if (i != 3)
      stm_fake_net_set_link_drop(sim_net(s), sim_addr(s, 3), sim_addr(s, i),
                                 1.0);
  struct target_state ts = {3, STM_SWIM_DOWN};
  CU_ASSERT_TRUE(sim_run_until(s, 60 * SIM_SEC, all_see, &ts));
  sim_delete(s);
}

static void test_swim_restarted_member_refutes_its_old_death(void) {
  int n = 4;
  struct sim *s = formed(n, NULL);
  struct stm_swim_member before;
  CU_ASSERT_EQUAL(stm_swim_member_get(sim_swim(s, 0), "node2", &before), 0);
  sim_kill(s, 2);
  struct target_state down = {2, STM_SWIM_DOWN};
  CU_ASSERT_TRUE_FATAL(sim_run_until(s, 60 * SIM_SEC, all_see, &down));
  /* It comes back with incarnation 1, hears it is DOWN, and outbids it. */
  sim_restart(s, 2);
  CU_ASSERT_TRUE(sim_run_until(s, 10 * SIM_SEC, sim_all_up, NULL));
  struct stm_swim_member after;
  for (int i = 0; i < n; i++) {
    CU_ASSERT_EQUAL(stm_swim_member_get(sim_swim(s, i), "node2", &after), 0);
    CU_ASSERT_TRUE(after.incarnation > before.incarnation);
  }
  struct stm_swim_stats st;
  stm_swim_stats(sim_swim(s, 2), &st);
  CU_ASSERT_TRUE(st.refutations >= 1);
  sim_delete(s);
}

static void test_swim_member_that_leaves_is_left_everywhere(void) {
  int n = 5;
  struct sim *s = formed(n, NULL);
  stm_swim_leave(sim_swim(s, 3), sim_now(s));
  sim_run_for(s, 1 * SIM_SEC); /* the owner keeps ticking to spread it */
  sim_kill(s, 3);
  struct target_state ts = {3, STM_SWIM_LEFT};
  CU_ASSERT_TRUE(sim_run_until(s, 5 * SIM_SEC, all_see, &ts));
  /* LEFT is final: no suspicion, no DOWN afterwards. */
  sim_run_for(s, 120 * SIM_SEC);
  CU_ASSERT_TRUE(sim_all_see(s, 3, STM_SWIM_LEFT));
  CU_ASSERT_EQUAL(sim_transitions(s, 3, STM_SWIM_DOWN), 0);
  sim_delete(s);
}

static void test_swim_removed_dead_member_is_left_everywhere(void) {
  int n = 5;
  struct sim *s = formed(n, NULL);
  sim_kill(s, 4);
  struct target_state down = {4, STM_SWIM_DOWN};
  CU_ASSERT_TRUE_FATAL(sim_run_until(s, 60 * SIM_SEC, all_see, &down));
  CU_ASSERT_EQUAL(stm_swim_remove(sim_swim(s, 0), sim_now(s), "node4"), 0);
  CU_ASSERT_EQUAL(stm_swim_remove(sim_swim(s, 0), sim_now(s), "nobody"),
                  STM_ENOTFOUND);
  CU_ASSERT_EQUAL(stm_swim_remove(sim_swim(s, 0), sim_now(s), "node0"),
                  STM_EINVAL);
  struct target_state left = {4, STM_SWIM_LEFT};
  CU_ASSERT_TRUE(sim_run_until(s, 5 * SIM_SEC, all_see, &left));
  sim_delete(s);
}

/* Lifeguard's local health: a member that hears nothing (its inbound is
 * cut) sees every probe fail without nacks; its score climbs towards the
 * cap (awareness_max - 1 = 7) and it probes several times less often,
 * instead of accusing everyone at full speed. */
static void test_swim_deaf_member_slows_its_probes(void) {
  int n = 4;
  struct sim *s = formed(n, NULL);
  struct stm_swim_stats before, after;
  stm_swim_stats(sim_swim(s, 0), &before);
  CU_ASSERT_EQUAL(before.awareness, 0);
  for (int i = 1; i < n; i++)
    stm_fake_net_set_link_drop(sim_net(s), sim_addr(s, i), sim_addr(s, 0), 1.0);
  /* Each failed probe adds the nacks it missed (1 or 2 here), so the
   * probe interval grows 1, 2-3, 3-5, ... up to 8 s: at most 7 probes in
   * 20 s instead of 20 (the suspicions it raises take 24 s to expire, so
   * every peer is still probed). */
  sim_run_for(s, 20 * SIM_SEC);
  stm_swim_stats(sim_swim(s, 0), &after);
  CU_ASSERT_TRUE(after.awareness >= 5 && after.awareness <= 7);
  CU_ASSERT_TRUE(after.probes - before.probes <= 7);
  CU_ASSERT_TRUE(after.probes - before.probes >= 4);
  sim_delete(s);
}

static bool meta_everywhere(struct sim *s, void *arg) {
  for (int i = 0; i < sim_size(s); i++) {
    struct stm_swim_member m;
    if (stm_swim_member_get(sim_swim(s, i), "node1", &m) != 0 ||
        m.meta_len != strlen(arg) || memcmp(m.meta, arg, m.meta_len) != 0)
      return false;
  }
  return true;
}

static void test_swim_metadata_reaches_every_member(void) {
  struct sim *s = formed(8, NULL);
  char meta[] = "assertion_count=12345";
  CU_ASSERT_EQUAL(
      stm_swim_set_meta(sim_swim(s, 1), sim_now(s), meta, strlen(meta)), 0);
  /* Gossip usually carries it in a second; a member the retransmit budget
   * missed gets it at its next push-pull (30 s). */
  bool spread = sim_run_until(s, 35 * SIM_SEC, meta_everywhere, meta);
  if (!spread)
    sim_dump(s);
  CU_ASSERT_TRUE(spread);
  uint8_t big[STM_SWIM_META_MAX + 1] = {0};
  CU_ASSERT_EQUAL(
      stm_swim_set_meta(sim_swim(s, 1), sim_now(s), big, sizeof big),
      STM_EINVAL);
  sim_delete(s);
}

/* An intruder on the network sends node1 "node2 is DOWN" (and a join of
 * its own) with the wrong key, for another cluster, and as noise. */
static void intrude_kind(struct sim *s, const char *cluster, const char *secret,
                         bool tamper, enum stm_swim_kind kind) {
  struct stm_swim_codec c;
  CU_ASSERT_EQUAL_FATAL(
      stm_swim_codec_init(&c, cluster, secret, strlen(secret), NULL), 0);
  static struct stm_swim_msg m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  strcpy(m.from_id, "intruder");
  strcpy(m.from_addr, "10.9.9.9:18183");
  m.from_incarnation = 1;
  m.n_updates = 1;
  struct stm_swim_member victim;
  CU_ASSERT_EQUAL_FATAL(stm_swim_member_get(sim_swim(s, 1), "node2", &victim),
                        0);
  struct stm_swim_update *u = &m.updates[0];
  strcpy(u->id, "node2");
  u->state = STM_SWIM_DOWN;
  u->incarnation = victim.incarnation + (kind == STM_SWIM_GOSSIP ? 5 : 0);
  strcpy(u->swim_addr, victim.swim_addr);
  strcpy(u->suspector, "intruder");
  uint8_t buf[STM_SWIM_MAX_DATAGRAM];
  size_t len;
  CU_ASSERT_EQUAL_FATAL(stm_swim_encode(&c, &m, buf, sizeof buf, &len), 0);
  if (tamper)
    buf[len / 2] ^= 1;
  void *ep = stm_fake_net_attach(sim_net(s), "10.9.9.9:18183", NULL, NULL);
  stm_fake_net_send(ep, sim_addr(s, 1), buf, len);
  stm_swim_codec_destroy(&c);
}

static void intrude(struct sim *s, const char *cluster, const char *secret,
                    bool tamper) {
  intrude_kind(s, cluster, secret, tamper, STM_SWIM_GOSSIP);
}

/* A full state saying "node2 is DOWN" (a member with a stale view after a
 * partition) only makes node1 suspect node2; node2 hears it, refutes with
 * a higher incarnation, and is never DOWN. */
static void test_swim_a_stale_full_state_cannot_kill_a_live_member(void) {
  struct sim *s = formed(4, NULL);
  struct stm_swim_member before, after;
  CU_ASSERT_EQUAL(stm_swim_member_get(sim_swim(s, 1), "node2", &before), 0);
  intrude_kind(s, "stemedb", "", false, STM_SWIM_PUSH_PULL);
  sim_run_for(s, 10 * SIM_MS);
  CU_ASSERT_EQUAL(sim_state(s, 1, 2), STM_SWIM_SUSPECT);
  sim_run_for(s, 60 * SIM_SEC);
  CU_ASSERT_EQUAL(sim_transitions(s, 2, STM_SWIM_DOWN), 0);
  CU_ASSERT_TRUE(sim_all_see(s, 2, STM_SWIM_UP));
  CU_ASSERT_EQUAL(stm_swim_member_get(sim_swim(s, 1), "node2", &after), 0);
  CU_ASSERT_TRUE(after.incarnation > before.incarnation);
  sim_delete(s);
}

static void test_swim_forged_and_foreign_datagrams_are_ignored(void) {
  struct sim *s = formed(3, NULL);
  intrude(s, "stemedb", "not the key", false);
  intrude(s, "other-cluster", "", false);
  intrude(s, "stemedb", "", true); /* right key, one bit flipped */
  void *ep = stm_fake_net_attach(sim_net(s), "10.9.9.8:18183", NULL, NULL);
  stm_fake_net_send(ep, sim_addr(s, 1), "noise", 5);
  sim_run_for(s, 10 * SIM_SEC);
  struct stm_swim_stats st;
  stm_swim_stats(sim_swim(s, 1), &st);
  CU_ASSERT_EQUAL(st.dropped_auth, 4);
  CU_ASSERT_TRUE(sim_all_up(s, NULL));
  CU_ASSERT_EQUAL(sim_transitions(s, 2, STM_SWIM_DOWN), 0);
  struct stm_swim_member m;
  CU_ASSERT_EQUAL(stm_swim_member_get(sim_swim(s, 1), "intruder", &m),
                  STM_ENOTFOUND);
  /* Control: the same datagram under the right key does take effect, so
   * the checks above are what stopped it. */
  intrude(s, "stemedb", "", false);
  sim_run_for(s, 1 * SIM_MS * 10);
  CU_ASSERT_EQUAL(sim_state(s, 1, 2), STM_SWIM_DOWN);
  CU_ASSERT_EQUAL(stm_swim_member_get(sim_swim(s, 1), "intruder", &m), 0);
  sim_delete(s);
}

static void test_swim_takes_its_settings_from_cluster_toml(void) {
  struct stm_cluster_config cc;
  stm_cluster_config_init(&cc);
  stm_cluster_config_set_string(&cc.node_id, "node1");
  stm_cluster_config_set_string(&cc.swim_addr, "10.0.1.51:18183");
  stm_cluster_config_set_string(&cc.cluster_key, "k");
  cc.probe_interval_ms = 2000;
  cc.probe_timeout_ms = 300;
  cc.suspicion_mult = 5;
  cc.suspicion_max_mult = 3;
  cc.push_pull_interval_ms = 60000;
  struct stm_swim_config c;
  stm_swim_config_defaults(&c);
  CU_ASSERT_EQUAL(c.probe_interval_ns, SIM_SEC);
  CU_ASSERT_EQUAL(c.indirect_checks, 3);
  stm_swim_config_from_cluster(&c, &cc);
  CU_ASSERT_STRING_EQUAL(c.cluster_name, "stemedb");
  CU_ASSERT_STRING_EQUAL(c.node_id, "node1");
  CU_ASSERT_EQUAL(c.secret_len, 1);
  CU_ASSERT_EQUAL(c.probe_interval_ns, 2 * SIM_SEC);
  CU_ASSERT_EQUAL(c.probe_timeout_ns, 300 * SIM_MS);
  CU_ASSERT_EQUAL(c.gossip_interval_ns, 400 * SIM_MS);
  CU_ASSERT_EQUAL(c.suspicion_mult, 5);
  CU_ASSERT_EQUAL(c.suspicion_max_mult, 3);
  CU_ASSERT_EQUAL(c.push_pull_interval_ns, 60 * SIM_SEC);
  CU_ASSERT_EQUAL(c.gossip_to_dead_ns, 60 * SIM_SEC);
  /* Without a transport the protocol refuses to start, naming it. */
  struct stm_swim *w = NULL;
  struct stm_error err;
  CU_ASSERT_EQUAL(stm_swim_new(&c, 0, &w, &err), STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "transport");
  CU_ASSERT_PTR_NULL(w);
  stm_cluster_config_destroy(&cc);
}

static const struct stm_test_case swim_cases[] = {
    STM_TEST(test_swim_takes_its_settings_from_cluster_toml),
    STM_TEST(test_swim_members_meet_through_one_seed_within_a_push_pull),
    STM_TEST(test_swim_dead_member_is_down_everywhere_within_bound),
    STM_TEST(test_swim_suspicion_timeout_shrinks_with_confirmations),
    STM_TEST(test_swim_live_member_under_20_percent_loss_is_not_down),
    STM_TEST(test_swim_partition_heals_to_one_view),
    STM_TEST(test_swim_one_way_cut_kills_no_one),
    STM_TEST(test_swim_member_that_cannot_send_is_down),
    STM_TEST(test_swim_restarted_member_refutes_its_old_death),
    STM_TEST(test_swim_member_that_leaves_is_left_everywhere),
    STM_TEST(test_swim_removed_dead_member_is_left_everywhere),
    STM_TEST(test_swim_deaf_member_slows_its_probes),
    STM_TEST(test_swim_metadata_reaches_every_member),
    STM_TEST(test_swim_forged_and_foreign_datagrams_are_ignored),
    STM_TEST(test_swim_a_stale_full_state_cannot_kill_a_live_member),
    STM_TEST_END};

void stm_test_register_swim(void) { stm_test_suite("swim", swim_cases); }
