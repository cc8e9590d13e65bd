/*
 * swim_sim.h - N SWIM members on the fake clock and fake network
 * (test/fakes), for the simulation tests and the detection benchmark
 * (after tarantool's swim_test_utils). Member i is "node<i>" at
 * "10.0.0.<i>:18183"; each starts knowing only node0's address (node0
 * knows node1's), so the cluster forms through the join path.
 */
#ifndef STM_SWIM_SIM_H
#define STM_SWIM_SIM_H

#include "cluster/swim.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_net.h"

#include <stdbool.h>

#define SIM_SEC INT64_C(1000000000)
#define SIM_MS INT64_C(1000000)

struct sim;

/* Called on each member's config before it starts (timings, secret). */
typedef void (*sim_tune_fn)(int i, struct stm_swim_config *c);

/* n members, started at t = 0, all UP only once they have met. */
struct sim *sim_new(int n, uint64_t seed, sim_tune_fn tune);
void sim_delete(struct sim *s);

struct stm_fake_net *sim_net(struct sim *s);
int64_t sim_now(const struct sim *s);
int sim_size(const struct sim *s);
const char *sim_addr(const struct sim *s, int i);
const char *sim_id(const struct sim *s, int i);
/* Member i's protocol object; NULL while it is killed. */
struct stm_swim *sim_swim(struct sim *s, int i);

/* Run the clock forward by `ns`. */
void sim_run_for(struct sim *s, int64_t ns);
/* Run until pred(s, arg) holds (checked at most once per simulated ms) or
 * `ns` pass.
 * Returns whether it held. */
bool sim_run_until(struct sim *s, int64_t ns,
                   bool (*pred)(struct sim *s, void *arg), void *arg);

/* Stop member i as a crash would: no goodbye, datagrams to it are lost. */
void sim_kill(struct sim *s, int i);
/* Start member i again from scratch (incarnation 1, seeds as at first). */
void sim_restart(struct sim *s, int i);

/* State of `target` as `observer` sees it; -1 if unknown to it. */
int sim_state(struct sim *s, int observer, int target);
/* Every running member other than `target` sees it in `state`. */
bool sim_all_see(struct sim *s, int target, enum stm_swim_state state);
/* Every running member sees every running member UP, and no stopped one
 * UP. */
bool sim_all_up(struct sim *s, void *unused);
/* Count of state changes into `state` about `target` seen by anyone. */
int sim_transitions(const struct sim *s, int target, enum stm_swim_state state);
/* `now` of the first change of `target` into `state` at each observer;
 * fills at[0..n) (-1 where it has not happened since the last reset). */
void sim_first_seen(const struct sim *s, int target, enum stm_swim_state state,
                    int64_t *at);
/* Forget the recorded transitions. */
void sim_reset_history(struct sim *s);
/* Print every member's view to stderr (for failing tests). */
void sim_dump(struct sim *s);

#endif
