/*
 * swim.h - cluster membership: SWIM with the Lifeguard refinements.
 *
 * Each member probes one peer per probe interval (round-robin over a
 * shuffled list), asks k others to probe it indirectly when the direct ping
 * goes unanswered, and then suspects it. A suspicion turns into DOWN after
 * a timeout that shrinks as independent members confirm it (memberlist's
 * formula); the suspected member refutes by bumping its own incarnation
 * (only a member ever bumps its own). State changes travel piggybacked on
 * every datagram, each retransmitted retransmit_mult * ceil(log10(n + 1))
 * times, and a periodic push-pull exchanges the full state with a random
 * member so partitions heal. Local health (Lifeguard) stretches the probe
 * interval of a member that misses acks itself.
 *
 * The protocol has no clock, socket or global random state of its own
 * (STYLE.md rule 7): the owner passes `now` (monotonic nanoseconds) to every
 * call, calls stm_swim_tick() at stm_swim_next_deadline(), hands received
 * datagrams to stm_swim_receive(), and supplies a transport that sends
 * datagrams. Randomness comes from a generator seeded by the config. The
 * real owner is cluster/swim_udp.h; tests drive it on a fake clock and
 * network (test/fakes/).
 *
 * Thread safety: none; one owner thread calls everything, and the member
 * callback runs inside the call that caused the change.
 * Wire format: cluster/swim_format.h and docs/formats.md.
 */
#ifndef STM_SWIM_H
#define STM_SWIM_H

#include "cluster_config.h"
#include "common/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stm_swim_state {
  STM_SWIM_UP = 0,
  STM_SWIM_SUSPECT = 1,
  STM_SWIM_DOWN = 2,
  STM_SWIM_LEFT = 3,
};

/* "UP", "SUSPECT", "DOWN", "LEFT" ("?" for anything else). */
const char *stm_swim_state_name(enum stm_swim_state s);

/* Metadata is opaque to SWIM (the server puts assertion_count there). */
#define STM_SWIM_META_MAX 64
/* Members a node tracks at most; more are ignored (and counted). */
#define STM_SWIM_MAX_MEMBERS 4096

struct stm_swim_member {
  char id[STM_NODE_ID_MAX + 1];
  char rpc_addr[STM_ADDR_MAX + 1]; /* "" when not known yet */
  char swim_addr[STM_ADDR_MAX + 1];
  enum stm_swim_state state;
  uint64_t incarnation;
  /* The owner's `now` when this member last answered or sent us anything
   * directly; 0 if never. For self: the latest `now`. */
  int64_t last_seen_ns;
  int64_t state_changed_ns; /* `now` of the last state change we applied */
  uint8_t meta[STM_SWIM_META_MAX];
  size_t meta_len;
  bool self;
};

/* Datagram transport: send `len` bytes to `addr` ("host:port"). Best
 * effort, like UDP: failures are the transport's to count or log. The data
 * is borrowed for the call only. */
struct stm_swim_transport {
  void *ctx;
  void (*send)(void *ctx, const char *addr, const void *data, size_t len);
};

/* Called on every change of a member's state, address or metadata, and
 * when a member is first learned (`added`, `old_state` then meaningless).
 * Runs inside stm_swim_receive/tick/leave; must not call back into this
 * stm_swim. `m` is borrowed for the call. */
typedef void (*stm_swim_member_cb)(void *arg, const struct stm_swim_member *m,
                                   enum stm_swim_state old_state, bool added);

/* Timing and fan-out; stm_swim_config_defaults() sets memberlist's LAN
 * values, given in parentheses. */
struct stm_swim_config {
  const char *cluster_name; /* ("stemedb") carried and checked on the wire */
  const void *secret;       /* cluster_key; NULL/0 means no secret */
  size_t secret_len;
  const char *node_id;      /* required */
  const char *rpc_addr;     /* advertised; may be NULL */
  const char *swim_addr;    /* required: where peers send to us */
  const char *const *seeds; /* SWIM addresses contacted to join */
  size_t seed_count;
  uint64_t incarnation;          /* (1) the incarnation we start with */
  uint64_t random_seed;          /* seeds the probe order and gossip targets */
  int64_t probe_interval_ns;     /* (1 s) one probe per interval */
  int64_t probe_timeout_ns;      /* (500 ms) direct ack wait before ping-req */
  int indirect_checks;           /* (3) members asked to ping-req */
  int suspicion_mult;            /* (4) min suspicion = mult*max(1,log10 n)*T */
  int suspicion_max_mult;        /* (6) max suspicion = this * min */
  int retransmit_mult;           /* (4) */
  int64_t gossip_interval_ns;    /* (200 ms) */
  int gossip_nodes;              /* (3) members gossiped to per interval */
  int64_t push_pull_interval_ns; /* (30 s) full-state sync period */
  int64_t gossip_to_dead_ns;     /* (30 s) keep gossiping to the DOWN */
  int awareness_max;             /* (8) local-health multiplier cap */
  struct stm_swim_transport transport;
  stm_swim_member_cb on_change; /* may be NULL */
  void *cb_arg;
};

/* Zero everything, then the defaults above. */
void stm_swim_config_defaults(struct stm_swim_config *c);

/* Copy the timing keys of a cluster config (probe interval and timeout,
 * suspicion multipliers, push-pull interval) into `c`. */
void stm_swim_config_from_cluster(struct stm_swim_config *c,
                                  const struct stm_cluster_config *cc);

struct stm_swim;

/*
 * Create a member that knows only itself (UP) and will contact the seeds
 * on its first tick. Strings are copied. STM_EINVAL naming the field for a
 * missing/invalid node_id or swim_addr, a bad timing value or a missing
 * transport; STM_ENOMEM. Caller owns *out; free with stm_swim_delete().
 */
int stm_swim_new(const struct stm_swim_config *c, int64_t now,
                 struct stm_swim **out, struct stm_error *err);
/* NULL is a no-op. Sends nothing (call stm_swim_leave first to say bye). */
void stm_swim_delete(struct stm_swim *s);

/* Handle one received datagram. Unauthenticated, foreign-cluster or
 * malformed datagrams are dropped and counted (stm_swim_stats). */
void stm_swim_receive(struct stm_swim *s, int64_t now, const void *data,
                      size_t len);
/* Run every timer due at `now` (probes, timeouts, gossip, push-pull). */
void stm_swim_tick(struct stm_swim *s, int64_t now);
/* The earliest `now` at which stm_swim_tick has work. */
int64_t stm_swim_next_deadline(const struct stm_swim *s);

/* Replace our metadata (at most STM_SWIM_META_MAX bytes) and gossip it
 * with a new incarnation. Throttle it (seconds, not per write). 0 or
 * STM_EINVAL naming "meta". */
int stm_swim_set_meta(struct stm_swim *s, int64_t now, const void *meta,
                      size_t len);
/* Announce that we leave: our state becomes LEFT with a new incarnation,
 * sent at once to up to 2*gossip_nodes members and piggybacked for as long
 * as the owner keeps ticking. We stop probing. Irreversible. */
void stm_swim_leave(struct stm_swim *s, int64_t now);

/* An operator removes member `id` (POST /admin/cluster/remove): it becomes
 * LEFT at its current incarnation and that is gossiped. A member that is
 * in fact alive hears it and refutes, so remove DOWN members (or stop the
 * process first). 0, STM_ENOTFOUND, or STM_EINVAL for ourselves (use
 * stm_swim_leave). */
int stm_swim_remove(struct stm_swim *s, int64_t now, const char *id);

/* Members known, self included (index 0 is always self). */
size_t stm_swim_member_count(const struct stm_swim *s);
/* Copy member `i` (0 <= i < count) into *out. */
void stm_swim_member_at(const struct stm_swim *s, size_t i,
                        struct stm_swim_member *out);
/* Copy the member called `id`; 0 or STM_ENOTFOUND. */
int stm_swim_member_get(const struct stm_swim *s, const char *id,
                        struct stm_swim_member *out);

struct stm_swim_stats {
  uint64_t sent, received;
  uint64_t dropped_auth;      /* bad tag, wrong cluster or version */
  uint64_t dropped_malformed; /* authentic but not a valid message */
  uint64_t probes, probe_failures, suspicions_raised, refutations;
  uint64_t members_ignored; /* beyond STM_SWIM_MAX_MEMBERS */
  int awareness;            /* local health score, 0 = healthy */
};
void stm_swim_stats(const struct stm_swim *s, struct stm_swim_stats *out);

#endif
