/* SWIM datagrams: protobuf SwimMessage + HMAC tag. Layout in the header. */
#include "swim_format.h"

#include "stemedb/v1/cluster.pb-c.h"

#include <assert.h>
#include <sodium.h>
#include <string.h>

static const char key_label[] = "stemedb-swim-v1";

int stm_swim_codec_init(struct stm_swim_codec *c, const char *cluster,
                        const void *secret, size_t secret_len,
                        struct stm_error *err) {
  memset(c, 0, sizeof *c);
  size_t n = cluster ? strlen(cluster) : 0;
  if (n == 0 || n > STM_SWIM_CLUSTER_MAX)
    return stm_error_set(err, STM_EINVAL, "cluster.name",
                         "cluster.name must be 1 to %d bytes",
                         STM_SWIM_CLUSTER_MAX);
  if (sodium_init() < 0)
    return stm_error_set(err, STM_EIO, NULL, "libsodium failed to start");
  memcpy(c->cluster, cluster, n);
  /* The label (with its NUL) separates this key from any other use of the
   * same secret. */
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, sizeof c->key);
  crypto_generichash_update(&st, (const uint8_t *)key_label, sizeof key_label);
  if (secret_len)
    crypto_generichash_update(&st, secret, secret_len);
  crypto_generichash_final(&st, c->key, sizeof c->key);
  return 0;
}

void stm_swim_codec_destroy(struct stm_swim_codec *c) {
  sodium_memzero(c->key, sizeof c->key);
}

static_assert(crypto_auth_BYTES == STM_SWIM_TAG_BYTES, "tag size");
static_assert(crypto_auth_KEYBYTES == STM_SWIM_KEY_BYTES, "key size");

/* ------------------------------------------------------------------ */
/* domain -> protobuf                                                   */

static void to_pb_update(const struct stm_swim_update *u,
                         Stemedb__V1__SwimUpdate *p) {
  stemedb__v1__swim_update__init(p);
  p->id = (char *)u->id;
  p->state = (Stemedb__V1__SwimUpdate__State)u->state;
  p->incarnation = u->incarnation;
  p->rpc_addr = (char *)u->rpc_addr;
  p->swim_addr = (char *)u->swim_addr;
  p->meta.data = (uint8_t *)u->meta;
  p->meta.len = u->meta_len;
  p->suspector = (char *)u->suspector;
}

/* Fills *p pointing into m and the caller's arrays (no allocation). */
static void to_pb(const struct stm_swim_codec *c, const struct stm_swim_msg *m,
                  Stemedb__V1__SwimMessage *p, Stemedb__V1__SwimUpdate *ups,
                  Stemedb__V1__SwimUpdate **ptrs) {
  stemedb__v1__swim_message__init(p);
  p->kind = (Stemedb__V1__SwimMessage__Kind)m->kind;
  p->from_id = (char *)m->from_id;
  p->from_addr = (char *)m->from_addr;
  p->from_incarnation = m->from_incarnation;
  p->from_rpc_addr = (char *)m->from_rpc_addr;
  p->from_meta.data = (uint8_t *)m->from_meta;
  p->from_meta.len = m->from_meta_len;
  p->seq = m->seq;
  p->target_id = (char *)m->target_id;
  p->target_addr = (char *)m->target_addr;
  p->cluster = (char *)c->cluster;
  p->version = STM_SWIM_VERSION;
  for (size_t i = 0; i < m->n_updates; i++) {
    to_pb_update(&m->updates[i], &ups[i]);
    ptrs[i] = &ups[i];
  }
  p->n_gossip = m->n_updates;
  p->gossip = ptrs;
}

size_t stm_swim_update_size(const struct stm_swim_update *u) {
  Stemedb__V1__SwimUpdate p;
  to_pb_update(u, &p);
  size_t n = stemedb__v1__swim_update__get_packed_size(&p);
  /* field tag (1 byte) + length varint */
  return 1 + (n < 128 ? 1 : 2) + n;
}

size_t stm_swim_msg_size(const struct stm_swim_codec *c,
                         const struct stm_swim_msg *m) {
  if (m->n_updates > STM_SWIM_MAX_UPDATES)
    return SIZE_MAX;
  Stemedb__V1__SwimMessage p;
  Stemedb__V1__SwimUpdate ups[STM_SWIM_MAX_UPDATES];
  Stemedb__V1__SwimUpdate *ptrs[STM_SWIM_MAX_UPDATES];
  to_pb(c, m, &p, ups, ptrs);
  return stemedb__v1__swim_message__get_packed_size(&p) + STM_SWIM_TAG_BYTES;
}

int stm_swim_encode(const struct stm_swim_codec *c,
                    const struct stm_swim_msg *m, uint8_t *out, size_t cap,
                    size_t *len) {
  if (m->n_updates > STM_SWIM_MAX_UPDATES || m->kind < STM_SWIM_PING ||
      m->kind > STM_SWIM_PUSH_PULL_REPLY)
    return STM_EINVAL;
  Stemedb__V1__SwimMessage p;
  Stemedb__V1__SwimUpdate ups[STM_SWIM_MAX_UPDATES];
  Stemedb__V1__SwimUpdate *ptrs[STM_SWIM_MAX_UPDATES];
  to_pb(c, m, &p, ups, ptrs);
  size_t n = stemedb__v1__swim_message__get_packed_size(&p);
  if (n + STM_SWIM_TAG_BYTES > cap ||
      n + STM_SWIM_TAG_BYTES > STM_SWIM_MAX_DATAGRAM)
    return STM_ETOOBIG;
  stemedb__v1__swim_message__pack(&p, out);
  crypto_auth(out + n, out, n, c->key);
  *len = n + STM_SWIM_TAG_BYTES;
  return 0;
}

/* ------------------------------------------------------------------ */
/* protobuf -> domain, every field bounded                              */

static int corrupt(struct stm_error *err, const char *field, const char *why) {
  return stm_error_set(err, STM_ECORRUPT, field, "SWIM datagram: %s %s", field,
                       why);
}

/* Copy a string of at most `max` bytes; `id` also checks node-id syntax. */
static int copy_str(char *dst, size_t max, const char *src, bool id,
                    const char *field, struct stm_error *err) {
  size_t n = strlen(src);
  if (n > max)
    return corrupt(err, field, "is too long");
  if (id && n > 0 && stm_node_id_validate(field, src, NULL) != 0)
    return corrupt(err, field, "is not a node id");
  memcpy(dst, src, n + 1);
  return 0;
}

static int from_pb_update(const Stemedb__V1__SwimUpdate *p,
                          struct stm_swim_update *u, struct stm_error *err) {
  int rc;
  if ((rc = copy_str(u->id, STM_NODE_ID_MAX, p->id, true, "gossip.id", err)))
    return rc;
  if (u->id[0] == '\0')
    return corrupt(err, "gossip.id", "is empty");
  if ((unsigned)p->state > STEMEDB__V1__SWIM_UPDATE__STATE__STATE_LEFT)
    return corrupt(err, "gossip.state", "is not a state");
  u->state = (enum stm_swim_state)p->state;
  u->incarnation = p->incarnation;
  if ((rc = copy_str(u->rpc_addr, STM_ADDR_MAX, p->rpc_addr, false,
                     "gossip.rpc_addr", err)) ||
      (rc = copy_str(u->swim_addr, STM_ADDR_MAX, p->swim_addr, false,
                     "gossip.swim_addr", err)) ||
      (rc = copy_str(u->suspector, STM_NODE_ID_MAX, p->suspector, true,
                     "gossip.suspector", err)))
    return rc;
  if (u->swim_addr[0] == '\0')
    return corrupt(err, "gossip.swim_addr", "is empty");
  if (p->meta.len > STM_SWIM_META_MAX)
    return corrupt(err, "gossip.meta", "is longer than 64 bytes");
  if (p->meta.len)
    memcpy(u->meta, p->meta.data, p->meta.len);
  u->meta_len = p->meta.len;
  return 0;
}

static int from_pb(const Stemedb__V1__SwimMessage *p, struct stm_swim_msg *m,
                   struct stm_error *err) {
  int rc;
  if (p->kind < STEMEDB__V1__SWIM_MESSAGE__KIND__KIND_PING ||
      p->kind > STEMEDB__V1__SWIM_MESSAGE__KIND__KIND_PUSH_PULL_REPLY)
    return corrupt(err, "kind", "is not a message kind");
  m->kind = (enum stm_swim_kind)p->kind;
  if ((rc = copy_str(m->from_id, STM_NODE_ID_MAX, p->from_id, true, "from_id",
                     err)) ||
      (rc = copy_str(m->from_addr, STM_ADDR_MAX, p->from_addr, false,
                     "from_addr", err)) ||
      (rc = copy_str(m->target_id, STM_NODE_ID_MAX, p->target_id, true,
                     "target_id", err)) ||
      (rc = copy_str(m->target_addr, STM_ADDR_MAX, p->target_addr, false,
                     "target_addr", err)) ||
      (rc = copy_str(m->from_rpc_addr, STM_ADDR_MAX, p->from_rpc_addr, false,
                     "from_rpc_addr", err)))
    return rc;
  if (p->from_meta.len > STM_SWIM_META_MAX)
    return corrupt(err, "from_meta", "is longer than 64 bytes");
  if (p->from_meta.len)
    memcpy(m->from_meta, p->from_meta.data, p->from_meta.len);
  m->from_meta_len = p->from_meta.len;
  if (m->from_id[0] == '\0' || m->from_addr[0] == '\0')
    return corrupt(err, "from_id", "or from_addr is empty");
  if (m->kind == STM_SWIM_PING_REQ &&
      (m->target_id[0] == '\0' || m->target_addr[0] == '\0'))
    return corrupt(err, "target_id", "or target_addr is empty in a PING_REQ");
  m->from_incarnation = p->from_incarnation;
  m->seq = p->seq;
  if (p->n_gossip > STM_SWIM_MAX_UPDATES)
    return corrupt(err, "gossip", "has too many updates");
  m->n_updates = p->n_gossip;
  for (size_t i = 0; i < p->n_gossip; i++)
    if ((rc = from_pb_update(p->gossip[i], &m->updates[i], err)))
      return rc;
  return 0;
}

int stm_swim_decode(const struct stm_swim_codec *c, const uint8_t *pos,
                    const uint8_t *end, struct stm_swim_msg *m,
                    struct stm_error *err) {
  if (pos == NULL || end < pos)
    return corrupt(err, "datagram", "has no bytes");
  size_t len = (size_t)(end - pos);
  if (len <= STM_SWIM_TAG_BYTES)
    return stm_error_set(err, STM_EPERM, "tag",
                         "SWIM datagram: %zu bytes is too short for a tag",
                         len);
  if (len > STM_SWIM_MAX_DATAGRAM)
    return corrupt(err, "datagram", "is longer than 1400 bytes");
  size_t n = len - STM_SWIM_TAG_BYTES;
  if (crypto_auth_verify(pos + n, pos, n, c->key) != 0)
    return stm_error_set(err, STM_EPERM, "tag",
                         "SWIM datagram: the tag does not verify (another "
                         "cluster_key, or forged)");
  Stemedb__V1__SwimMessage *p = stemedb__v1__swim_message__unpack(NULL, n, pos);
  if (p == NULL)
    return corrupt(err, "message", "is not a SwimMessage");
  int rc;
  if (strcmp(p->cluster, c->cluster) != 0)
    rc = stm_error_set(err, STM_EPERM, "cluster",
                       "SWIM datagram: from cluster \"%.64s\", not \"%s\"",
                       p->cluster, c->cluster);
  else if (p->version != STM_SWIM_VERSION)
    rc = stm_error_set(err, STM_EPERM, "version",
                       "SWIM datagram: protocol version %u, not %d", p->version,
                       STM_SWIM_VERSION);
  else
    rc = from_pb(p, m, err);
  stemedb__v1__swim_message__free_unpacked(p, NULL);
  return rc;
}
