/*
 * swim_udp.h - a running SWIM member: the protocol (swim.h) on a real UDP
 * socket, the monotonic clock and an OS-seeded generator, driven by one
 * background thread. This is what the server starts.
 *
 * Use (the whole lifecycle):
 *
 *   struct stm_swim_node *node;
 *   struct stm_swim_node_options opt = {.on_change = cb, .cb_arg = srv};
 *   if (stm_swim_node_start(&cfg.cluster, &opt, &node, &err) != 0)
 *     fail(err.message);              // e.g. the port is taken
 *   ...
 *   stm_swim_node_set_meta(node, &count, sizeof count);   // now and then
 *   n = stm_swim_node_members(node, &members);  // for /cluster/members
 *   free(members);
 *   ...
 *   stm_swim_node_stop(node, 1000);   // say LEFT for up to 1 s, then stop
 *
 * The socket is bound to cluster->swim_addr (or options->bind_addr, e.g.
 * "0.0.0.0:18183" behind NAT); the advertised address stays swim_addr.
 * A swim_addr or bind_addr with port 0 binds a free port and advertises
 * it (tests). Peer host names are resolved with getaddrinfo on the driver
 * thread and cached for 30 s, so DNS changes (Kubernetes) are picked up.
 *
 * Thread safety: every function may be called from any thread. The
 * member callback runs on the driver thread with the node's lock held: it
 * must be quick and must not call stm_swim_node_* functions.
 */
#ifndef STM_SWIM_UDP_H
#define STM_SWIM_UDP_H

#include "cluster_config.h"
#include "swim.h"

struct stm_swim_node;

struct stm_swim_node_options {
  const char *bind_addr;        /* NULL: bind swim_addr */
  stm_swim_member_cb on_change; /* NULL: no callback */
  void *cb_arg;
  /* Overrides for tests (0 keeps the value derived from the config). */
  int64_t gossip_interval_ns;
  uint64_t random_seed;
};

/*
 * Bind the socket, start the driver thread, and begin joining through
 * cluster->seeds. `cluster` is read during the call only (strings are
 * copied). `options` may be NULL. Returns 0, STM_EINVAL naming the config
 * key (no node_id, unparsable or unresolvable swim_addr), STM_EIO with the
 * socket error (address in use, ...), or STM_ENOMEM.
 * Caller owns *out; stop and free it with stm_swim_node_stop().
 */
int stm_swim_node_start(const struct stm_cluster_config *cluster,
                        const struct stm_swim_node_options *options,
                        struct stm_swim_node **out, struct stm_error *err);

/*
 * Leave (announce LEFT and keep gossiping for up to `leave_ms`; 0 skips the
 * goodbye: peers will see us DOWN after their suspicion timeout), stop the
 * thread, close the socket and free the node. NULL is a no-op.
 */
void stm_swim_node_stop(struct stm_swim_node *node, int leave_ms);

/* A snapshot of the members (self first). Returns the count; *out is
 * malloc'd (NULL when out of memory, count 0). Caller frees *out.
 * Unlike the protocol's monotonic times, last_seen_ns and
 * state_changed_ns here are wall-clock (ns since the Unix epoch; 0 for
 * never), ready for RFC 3339. */
size_t stm_swim_node_members(struct stm_swim_node *node,
                             struct stm_swim_member **out);

/* Set our metadata (see stm_swim_set_meta). 0 or STM_EINVAL. */
int stm_swim_node_set_meta(struct stm_swim_node *node, const void *meta,
                           size_t len);

/* stm_swim_remove on the node. 0, STM_ENOTFOUND or STM_EINVAL. */
int stm_swim_node_remove(struct stm_swim_node *node, const char *id);

/* The address we advertise (swim_addr with the bound port). Borrowed;
 * valid until stm_swim_node_stop. */
const char *stm_swim_node_addr(const struct stm_swim_node *node);

void stm_swim_node_stats(struct stm_swim_node *node,
                         struct stm_swim_stats *out);

#endif
