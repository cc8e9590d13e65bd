/*
 * swim_format.h - SWIM datagrams on the wire (docs/formats.md, "SWIM
 * datagrams").
 *
 *   +--------------------------------------+------------------------+
 *   | SwimMessage (protobuf, stemedb.v1)   | tag: 32 bytes          |
 *   |  kind, from_id, from_addr,           | HMAC-SHA512-256 of the |
 *   |  from_incarnation, from_rpc_addr,    | message bytes under    |
 *   |  from_meta, seq, target_id,          |                        |
 *   |  target_addr, cluster, version,      | the cluster key        |
 *   |  gossip: repeated SwimUpdate         | (crypto_auth)          |
 *   +--------------------------------------+------------------------+
 *   whole datagram <= STM_SWIM_MAX_DATAGRAM (1400) bytes
 *
 * cluster key = BLAKE2b-256("stemedb-swim-v1" || 0x00 || cluster_key)
 * (crypto_generichash), so members share it only by sharing the secret.
 * The tag is checked before a byte of the message is parsed; then the
 * cluster name and version must match and every field is bounded (ids as
 * node ids, addresses <= STM_ADDR_MAX, meta <= STM_SWIM_META_MAX, at most
 * STM_SWIM_MAX_UPDATES updates). No replay protection: replaying an old
 * datagram only repeats state that incarnation numbers already order.
 *
 * Internal to cluster/ (swim.c, tests, fuzzer); protobuf-c stays in the .c.
 */
#ifndef STM_SWIM_FORMAT_H
#define STM_SWIM_FORMAT_H

#include "swim.h"

#include <stddef.h>
#include <stdint.h>

#define STM_SWIM_VERSION 1
#define STM_SWIM_MAX_DATAGRAM 1400
#define STM_SWIM_TAG_BYTES 32
#define STM_SWIM_KEY_BYTES 32
#define STM_SWIM_CLUSTER_MAX 64
/* Enough for any datagram of 1400 bytes (an update is >= 30 bytes). */
#define STM_SWIM_MAX_UPDATES 48

enum stm_swim_kind {
  STM_SWIM_PING = 1,
  STM_SWIM_ACK = 2,
  STM_SWIM_PING_REQ = 3,
  STM_SWIM_NACK = 4,
  STM_SWIM_GOSSIP = 5,
  STM_SWIM_PUSH_PULL = 6,
  STM_SWIM_PUSH_PULL_REPLY = 7,
};

/* One member's state as gossiped. */
struct stm_swim_update {
  char id[STM_NODE_ID_MAX + 1];
  enum stm_swim_state state;
  uint64_t incarnation;
  char rpc_addr[STM_ADDR_MAX + 1];
  char swim_addr[STM_ADDR_MAX + 1];
  uint8_t meta[STM_SWIM_META_MAX];
  size_t meta_len;
  char suspector[STM_NODE_ID_MAX + 1]; /* "" unless SUSPECT/DOWN */
};

struct stm_swim_msg {
  enum stm_swim_kind kind;
  char from_id[STM_NODE_ID_MAX + 1];
  char from_addr[STM_ADDR_MAX + 1];
  uint64_t from_incarnation;
  char from_rpc_addr[STM_ADDR_MAX + 1];
  uint8_t from_meta[STM_SWIM_META_MAX];
  size_t from_meta_len;
  uint64_t seq;
  char target_id[STM_NODE_ID_MAX + 1]; /* PING (optional), PING_REQ */
  char target_addr[STM_ADDR_MAX + 1];  /* PING_REQ */
  size_t n_updates;
  struct stm_swim_update updates[STM_SWIM_MAX_UPDATES];
};

struct stm_swim_codec {
  uint8_t key[STM_SWIM_KEY_BYTES];
  char cluster[STM_SWIM_CLUSTER_MAX + 1];
};

/* Derive the key from `secret` (may be empty) and keep the cluster name
 * (at most STM_SWIM_CLUSTER_MAX bytes). 0 or STM_EINVAL naming
 * "cluster.name". */
int stm_swim_codec_init(struct stm_swim_codec *c, const char *cluster,
                        const void *secret, size_t secret_len,
                        struct stm_error *err);
/* Wipe the key. */
void stm_swim_codec_destroy(struct stm_swim_codec *c);

/* Bytes the datagram of `m` takes (message + tag). */
size_t stm_swim_msg_size(const struct stm_swim_codec *c,
                         const struct stm_swim_msg *m);
/* Bytes one more update adds to a datagram. */
size_t stm_swim_update_size(const struct stm_swim_update *u);

/* Encode and tag `m` into out[0, cap). 0 with *len set, or STM_ETOOBIG when
 * it does not fit (cap is normally STM_SWIM_MAX_DATAGRAM), STM_EINVAL for a
 * message the decoder would refuse. */
int stm_swim_encode(const struct stm_swim_codec *c,
                    const struct stm_swim_msg *m, uint8_t *out, size_t cap,
                    size_t *len);

/* Verify and decode the datagram [pos, end) into *m. 0; STM_EPERM for a
 * bad tag, another cluster or another version; STM_ECORRUPT for anything
 * malformed (message names the field). */
int stm_swim_decode(const struct stm_swim_codec *c, const uint8_t *pos,
                    const uint8_t *end, struct stm_swim_msg *m,
                    struct stm_error *err);

#endif
