/*
 * bench_swim: SWIM failure detection in simulation (fake clock and
 * network, test/cluster/swim_sim.h), default 100 members at 5 % loss on
 * every datagram, memberlist's LAN timings. Not part of ctest:
 *
 *   build/test/cluster/bench_swim [members] [loss] [trials] [quiet_minutes]
 *
 * Reports, for `trials` crashes of a random member: the time from the crash
 * to the first member declaring it DOWN (detection) and to every member
 * doing so (dissemination), mean / p50 / p99 / max; then, over
 * `quiet_minutes` simulated minutes with nobody crashing, the false
 * positives: DOWN declarations about live members, per member-hour. The
 * seed is $STM_TEST_SEED (default 1).
 */
#include "swim_sim.h"

#include "common/rand.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void report(const char *what, double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  double sum = 0;
  for (int i = 0; i < n; i++)
    sum += v[i];
  int p99 = (int)(0.99 * (n - 1) + 0.5);
  printf("%-34s mean %6.2f s  p50 %6.2f s  p99 %6.2f s  max %6.2f s\n", what,
         sum / n, v[n / 2], v[p99], v[n - 1]);
}

static bool anyone_sees_down(struct sim *s, void *arg) {
  int t = *(int *)arg;
  for (int i = 0; i < sim_size(s); i++)
    if (i != t && sim_state(s, i, t) == STM_SWIM_DOWN)
      return true;
  return false;
}

static bool everyone_sees_down(struct sim *s, void *arg) {
  return sim_all_see(s, *(int *)arg, STM_SWIM_DOWN);
}

static int live_downs(struct sim *s, int except) {
  int d = 0;
  for (int t = 0; t < sim_size(s); t++)
    if (t != except)
      d += sim_transitions(s, t, STM_SWIM_DOWN);
  return d;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100;
  double loss = argc > 2 ? atof(argv[2]) : 0.05;
  int trials = argc > 3 ? atoi(argv[3]) : 50;
  int quiet_min = argc > 4 ? atoi(argv[4]) : 60;
  const char *env = getenv("STM_TEST_SEED");
  uint64_t seed = env && *env ? strtoull(env, NULL, 0) : 1;
  if (n < 3 || n > 128 || trials < 1 || trials > 1000) {
    fprintf(stderr, "usage: bench_swim [3..128 members] [loss] [trials] "
                    "[quiet minutes]\n");
    return 2;
  }
  clock_t cpu0 = clock();
  struct sim *s = sim_new(n, seed, NULL);
  if (!sim_run_until(s, 120 * SIM_SEC, sim_all_up, NULL)) {
    fprintf(stderr, "bench_swim: %d members did not form\n", n);
    return 1;
  }
  stm_fake_net_set_drop(sim_net(s), loss);
  sim_run_for(s, 60 * SIM_SEC);
  double *detect = calloc((size_t)trials, sizeof *detect);
  double *spread = calloc((size_t)trials, sizeof *spread);
  int fp_trials = 0, missed = 0;
  struct stm_rand r;
  stm_rand_init(&r, seed);
  for (int k = 0; k < trials; k++) {
    int victim = (int)stm_rand_below(&r, (uint64_t)n);
    sim_reset_history(s);
    int64_t t0 = sim_now(s);
    sim_kill(s, victim);
    if (!sim_run_until(s, 600 * SIM_SEC, anyone_sees_down, &victim))
      missed++;
    detect[k] = (double)(sim_now(s) - t0) / SIM_SEC;
    sim_run_until(s, 600 * SIM_SEC, everyone_sees_down, &victim);
    spread[k] = (double)(sim_now(s) - t0) / SIM_SEC;
    fp_trials += live_downs(s, victim);
    sim_restart(s, victim);
    sim_run_until(s, 600 * SIM_SEC, sim_all_up, NULL);
    sim_run_for(s, 30 * SIM_SEC);
  }
  printf("SWIM simulation: %d members, %.0f %% loss, seed %llu, %d crashes\n",
         n, loss * 100, (unsigned long long)seed, trials);
  report("crash -> first DOWN (detection):", detect, trials);
  report("crash -> DOWN at every member:", spread, trials);
  if (missed)
    printf("crashes never detected: %d\n", missed);
  sim_reset_history(s);
  sim_run_for(s, (int64_t)quiet_min * 60 * SIM_SEC);
  int fp = live_downs(s, -1);
  int suspicions = 0;
  for (int t = 0; t < n; t++)
    suspicions += sim_transitions(s, t, STM_SWIM_SUSPECT);
  double member_hours = n * quiet_min / 60.0;
  printf("false positives, %d quiet minutes: %d DOWN declarations about live "
         "members (%.4f per member-hour); %d suspicion transitions%s\n",
         quiet_min, fp, fp / member_hours, suspicions,
         fp ? "" : ", all refuted");
  printf("false DOWN declarations about live members during the crash "
         "trials: %d\n",
         fp_trials);
  struct stm_fake_net_stats ns;
  stm_fake_net_stats(sim_net(s), &ns);
  printf("datagrams sent %llu, dropped %llu; CPU %.1f s\n",
         (unsigned long long)ns.sent, (unsigned long long)ns.dropped,
         (double)(clock() - cpu0) / CLOCKS_PER_SEC);
  free(detect);
  free(spread);
  sim_delete(s);
  return 0;
}
