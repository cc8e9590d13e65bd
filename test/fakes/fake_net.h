/*
 * fake_net.h - an in-memory datagram network on a fake clock (after
 * tarantool's fakenet). Endpoints are named by address strings; a datagram
 * sent from one to another is delivered after a random delay in
 * [min, max], or lost: by a global drop rate, by a per-link (one-way) drop
 * rate (1.0 cuts the link), by a partition (endpoints in different groups
 * cannot talk), or because its receiver is detached (a stopped process).
 * Every choice comes from a generator seeded at creation, so a run replays.
 * Single-threaded, like the clock.
 */
#ifndef STM_FAKE_NET_H
#define STM_FAKE_NET_H

#include "fake_clock.h"

#include <stddef.h>
#include <stdint.h>

struct stm_fake_net;

typedef void (*stm_fake_net_recv_fn)(void *arg, int64_t now, const void *data,
                                     size_t len);

/* Caller owns the net; _delete drops datagrams in flight. The clock must
 * outlive it. */
struct stm_fake_net *stm_fake_net_new(struct stm_fake_clock *clock,
                                      uint64_t seed);
void stm_fake_net_delete(struct stm_fake_net *n);

/* Bind `addr` to a receiver (replacing any earlier one: a restart).
 * Returns an opaque endpoint handle, valid until the net is deleted, for
 * stm_fake_net_send's `from`. */
void *stm_fake_net_attach(struct stm_fake_net *n, const char *addr,
                          stm_fake_net_recv_fn fn, void *arg);
/* Unbind: datagrams to `addr` are lost from now on (in flight too). */
void stm_fake_net_detach(struct stm_fake_net *n, const char *addr);

/* Send from endpoint `from` (a handle from _attach) to `to`. The data is
 * copied. Matches struct stm_swim_transport's send, with from as ctx. */
void stm_fake_net_send(void *from, const char *to, const void *data,
                       size_t len);

void stm_fake_net_set_delay(struct stm_fake_net *n, int64_t min_ns,
                            int64_t max_ns);
/* Probability in [0, 1] that any datagram is lost. */
void stm_fake_net_set_drop(struct stm_fake_net *n, double rate);
/* Extra loss on the one-way link from -> to; 1.0 cuts it, 0 restores. */
void stm_fake_net_set_link_drop(struct stm_fake_net *n, const char *from,
                                const char *to, double rate);
/* Put `addr` in partition `group` (all start in 0). */
void stm_fake_net_set_group(struct stm_fake_net *n, const char *addr,
                            int group);
/* Every endpoint back in group 0, every link restored. */
void stm_fake_net_heal(struct stm_fake_net *n);

struct stm_fake_net_stats {
  uint64_t sent, delivered, dropped;
  size_t max_len; /* the longest datagram sent */
};
void stm_fake_net_stats(const struct stm_fake_net *n,
                        struct stm_fake_net_stats *out);

#endif
