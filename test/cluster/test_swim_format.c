/* Tests for cluster/swim_format: SWIM datagrams, round trip and malformed
 * input (a forged, foreign or damaged datagram must never decode). */
#include "cluster/swim_format.h"
#include "harness.h"
#include "test_cluster.h"

#include "common/rand.h"
#include "stemedb/v1/cluster.pb-c.h"

#include <sodium.h>
#include <string.h>

static struct stm_swim_codec codec(const char *cluster, const char *secret) {
  struct stm_swim_codec c;
  CU_ASSERT_EQUAL_FATAL(
      stm_swim_codec_init(&c, cluster, secret, strlen(secret), NULL), 0);
  return c;
}

static void sample(struct stm_swim_msg *m, size_t updates) {
  memset(m, 0, sizeof *m);
  m->kind = STM_SWIM_PING_REQ;
  strcpy(m->from_id, "node1");
  strcpy(m->from_addr, "10.0.1.51:18183");
  strcpy(m->from_rpc_addr, "10.0.1.51:18182");
  memcpy(m->from_meta, "\x01\x02", 2);
  m->from_meta_len = 2;
  m->from_incarnation = 7;
  m->seq = 123456789;
  strcpy(m->target_id, "node2");
  strcpy(m->target_addr, "[fe80::2]:18183");
  m->n_updates = updates;
  for (size_t i = 0; i < updates; i++) {
    struct stm_swim_update *u = &m->updates[i];
    snprintf(u->id, sizeof u->id, "node%zu", i + 3);
    u->state = (enum stm_swim_state)(i % 4);
    u->incarnation = i * 1000;
    strcpy(u->swim_addr, "db-3.example.com:18183");
    strcpy(u->rpc_addr, "db-3.example.com:18182");
    u->meta_len = i % 9;
    memset(u->meta, 'm', u->meta_len);
    if (u->state == STM_SWIM_SUSPECT)
      strcpy(u->suspector, "node1");
  }
}

static void test_swim_format_round_trips_every_field(void) {
  struct stm_swim_codec c = codec("stemedb", "secret");
  static struct stm_swim_msg m, back;
  sample(&m, 5);
  uint8_t buf[STM_SWIM_MAX_DATAGRAM];
  size_t len = 0;
  CU_ASSERT_EQUAL_FATAL(stm_swim_encode(&c, &m, buf, sizeof buf, &len), 0);
  CU_ASSERT_EQUAL(len, stm_swim_msg_size(&c, &m));
  CU_ASSERT_EQUAL_FATAL(stm_swim_decode(&c, buf, buf + len, &back, NULL), 0);
  CU_ASSERT_EQUAL(back.kind, m.kind);
  CU_ASSERT_STRING_EQUAL(back.from_id, "node1");
  CU_ASSERT_STRING_EQUAL(back.from_addr, m.from_addr);
  CU_ASSERT_STRING_EQUAL(back.from_rpc_addr, m.from_rpc_addr);
  CU_ASSERT_EQUAL(back.from_meta_len, 2);
  CU_ASSERT_EQUAL(back.from_incarnation, 7);
  CU_ASSERT_EQUAL(back.seq, 123456789);
  CU_ASSERT_STRING_EQUAL(back.target_id, "node2");
  CU_ASSERT_STRING_EQUAL(back.target_addr, "[fe80::2]:18183");
  CU_ASSERT_EQUAL_FATAL(back.n_updates, 5);
  for (size_t i = 0; i < 5; i++) {
    CU_ASSERT_STRING_EQUAL(back.updates[i].id, m.updates[i].id);
    CU_ASSERT_EQUAL(back.updates[i].state, m.updates[i].state);
    CU_ASSERT_EQUAL(back.updates[i].incarnation, m.updates[i].incarnation);
    CU_ASSERT_STRING_EQUAL(back.updates[i].swim_addr, m.updates[i].swim_addr);
    CU_ASSERT_STRING_EQUAL(back.updates[i].rpc_addr, m.updates[i].rpc_addr);
    CU_ASSERT_EQUAL(back.updates[i].meta_len, m.updates[i].meta_len);
    CU_ASSERT_STRING_EQUAL(back.updates[i].suspector, m.updates[i].suspector);
  }
  /* The size helpers predict the encoder exactly. */
  size_t with4 = stm_swim_msg_size(&c, &(struct stm_swim_msg){0});
  (void)with4;
  m.n_updates = 4;
  size_t four = stm_swim_msg_size(&c, &m);
  m.n_updates = 5;
  CU_ASSERT_EQUAL(four + stm_swim_update_size(&m.updates[4]), len);
  stm_swim_codec_destroy(&c);
}

static void test_swim_format_refuses_what_does_not_fit_a_datagram(void) {
  struct stm_swim_codec c = codec("stemedb", "secret");
  static struct stm_swim_msg m;
  sample(&m, STM_SWIM_MAX_UPDATES);
  uint8_t buf[4096];
  size_t len;
  CU_ASSERT_EQUAL(stm_swim_encode(&c, &m, buf, sizeof buf, &len), STM_ETOOBIG);
  m.n_updates = STM_SWIM_MAX_UPDATES + 1;
  CU_ASSERT_EQUAL(stm_swim_encode(&c, &m, buf, sizeof buf, &len), STM_EINVAL);
  stm_swim_codec_destroy(&c);
}

static int decode(const struct stm_swim_codec *c, const uint8_t *b,
                  size_t len) {
  static struct stm_swim_msg m;
  struct stm_error err;
  stm_error_clear(&err);
  int rc = stm_swim_decode(c, b, b + len, &m, &err);
  if (rc)
    CU_ASSERT_TRUE(err.message[0] != '\0');
  return rc;
}

static void test_swim_format_drops_forged_and_foreign_datagrams(void) {
  struct stm_swim_codec ours = codec("stemedb", "secret");
  struct stm_swim_codec other_key = codec("stemedb", "Secret");
  struct stm_swim_codec other_cluster = codec("prod", "secret");
  static struct stm_swim_msg m;
  sample(&m, 2);
  uint8_t buf[STM_SWIM_MAX_DATAGRAM];
  size_t len;
  CU_ASSERT_EQUAL_FATAL(stm_swim_encode(&other_key, &m, buf, sizeof buf, &len),
                        0);
  CU_ASSERT_EQUAL(decode(&ours, buf, len), STM_EPERM);
  CU_ASSERT_EQUAL_FATAL(
      stm_swim_encode(&other_cluster, &m, buf, sizeof buf, &len), 0);
  CU_ASSERT_EQUAL(decode(&ours, buf, len), STM_EPERM);
  CU_ASSERT_EQUAL_FATAL(stm_swim_encode(&ours, &m, buf, sizeof buf, &len), 0);
  CU_ASSERT_EQUAL(decode(&ours, buf, len), 0);
  /* Any flipped bit, in the message or in the tag, and any truncation. */
  for (size_t i = 0; i < len; i++) {
    buf[i] ^= 0x10;
    CU_ASSERT_EQUAL(decode(&ours, buf, len), STM_EPERM);
    buf[i] ^= 0x10;
  }
  for (size_t n = 0; n < len; n++)
    CU_ASSERT_NOT_EQUAL(decode(&ours, buf, n), 0);
  CU_ASSERT_NOT_EQUAL(decode(&ours, NULL, 0), 0);
  stm_swim_codec_destroy(&ours);
  stm_swim_codec_destroy(&other_key);
  stm_swim_codec_destroy(&other_cluster);
}

/* Authentic (right key) but malformed: pack a SwimMessage by hand, tag it,
 * and expect STM_ECORRUPT naming the field. */
static void expect_corrupt(const struct stm_swim_codec *c,
                           Stemedb__V1__SwimMessage *p, const char *field) {
  uint8_t buf[8192];
  size_t n = stemedb__v1__swim_message__get_packed_size(p);
  CU_ASSERT_FATAL(n + 32 <= sizeof buf);
  stemedb__v1__swim_message__pack(p, buf);
  crypto_auth(buf + n, buf, n, c->key);
  static struct stm_swim_msg m;
  struct stm_error err;
  stm_error_clear(&err);
  int rc = stm_swim_decode(c, buf, buf + n + 32, &m, &err);
  if (n + 32 > STM_SWIM_MAX_DATAGRAM) {
    CU_ASSERT_EQUAL(rc, STM_ECORRUPT);
    return;
  }
  CU_ASSERT_EQUAL(rc, strcmp(field, "version") == 0 ? STM_EPERM : STM_ECORRUPT);
  if (strcmp(err.field, field) != 0)
    fprintf(stderr, "\nwanted field %s, got %s (%s)\n", field, err.field,
            err.message);
  CU_ASSERT_STRING_EQUAL(err.field, field);
}

static void base(Stemedb__V1__SwimMessage *p) {
  stemedb__v1__swim_message__init(p);
  p->kind = STEMEDB__V1__SWIM_MESSAGE__KIND__KIND_PING;
  p->from_id = "node1";
  p->from_addr = "10.0.0.1:18183";
  p->cluster = "stemedb";
  p->version = STM_SWIM_VERSION;
}

static void test_swim_format_bounds_every_field_of_an_authentic_message(void) {
  struct stm_swim_codec c = codec("stemedb", "k");
  Stemedb__V1__SwimMessage p;
  char long_id[300], long_addr[400];
  memset(long_id, 'a', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  memset(long_addr, 'b', sizeof long_addr - 1);
  long_addr[sizeof long_addr - 1] = '\0';

  base(&p);
  p.version = 2;
  expect_corrupt(&c, &p, "version");
  base(&p);
  p.kind = 0;
  expect_corrupt(&c, &p, "kind");
  base(&p);
  p.kind = 99;
  expect_corrupt(&c, &p, "kind");
  base(&p);
  p.from_id = "";
  expect_corrupt(&c, &p, "from_id");
  base(&p);
  p.from_id = "node 1";
  expect_corrupt(&c, &p, "from_id");
  base(&p);
  p.from_id = long_id;
  expect_corrupt(&c, &p, "from_id");
  base(&p);
  p.from_addr = long_addr;
  expect_corrupt(&c, &p, "from_addr");
  base(&p);
  p.kind = STEMEDB__V1__SWIM_MESSAGE__KIND__KIND_PING_REQ;
  expect_corrupt(&c, &p, "target_id");
  base(&p);
  uint8_t meta[65] = {0};
  p.from_meta.data = meta;
  p.from_meta.len = sizeof meta;
  expect_corrupt(&c, &p, "from_meta");

  Stemedb__V1__SwimUpdate u, *up = &u;
  stemedb__v1__swim_update__init(&u);
  u.id = "node2";
  u.swim_addr = "10.0.0.2:18183";
  base(&p);
  p.n_gossip = 1;
  p.gossip = &up;
  u.state = 4;
  expect_corrupt(&c, &p, "gossip.state");
  u.state = 0;
  u.id = "";
  expect_corrupt(&c, &p, "gossip.id");
  u.id = "node2";
  u.swim_addr = "";
  expect_corrupt(&c, &p, "gossip.swim_addr");
  u.swim_addr = "10.0.0.2:18183";
  u.meta.data = meta;
  u.meta.len = sizeof meta;
  expect_corrupt(&c, &p, "gossip.meta");
  u.meta.len = 0;
  u.suspector = "bad id!";
  expect_corrupt(&c, &p, "gossip.suspector");
  u.suspector = "";
  Stemedb__V1__SwimUpdate *many[STM_SWIM_MAX_UPDATES + 1];
  for (size_t i = 0; i <= STM_SWIM_MAX_UPDATES; i++)
    many[i] = &u;
  p.n_gossip = STM_SWIM_MAX_UPDATES + 1;
  p.gossip = many;
  expect_corrupt(&c, &p, "gossip");
  stm_swim_codec_destroy(&c);
}

static void test_swim_format_survives_random_bytes_with_a_valid_tag(void) {
  struct stm_swim_codec c = codec("stemedb", "k");
  struct stm_rand r;
  stm_rand_init(&r, stm_test_seed());
  uint8_t buf[STM_SWIM_MAX_DATAGRAM];
  static struct stm_swim_msg m, seed;
  sample(&seed, 3);
  size_t seed_len;
  CU_ASSERT_EQUAL_FATAL(stm_swim_encode(&c, &seed, buf, sizeof buf, &seed_len),
                        0);
  uint8_t orig[STM_SWIM_MAX_DATAGRAM];
  memcpy(orig, buf, seed_len);
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = seed_len - 32;
    memcpy(buf, orig, n);
    /* Mutate a valid message a little, or fill with noise. */
    if (iter % 4 == 0) {
      n = (size_t)stm_rand_below(&r, 300);
      for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)stm_rand_u64(&r);
    } else {
      int flips = 1 + (int)stm_rand_below(&r, 4);
      for (int f = 0; f < flips; f++)
        buf[stm_rand_below(&r, n)] = (uint8_t)stm_rand_u64(&r);
      if (stm_rand_below(&r, 3) == 0)
        n = (size_t)stm_rand_below(&r, n + 1);
    }
    crypto_auth(buf + n, buf, n, c.key);
    int rc = stm_swim_decode(&c, buf, buf + n + 32, &m, NULL);
    CU_ASSERT_TRUE(rc == 0 || rc == STM_ECORRUPT || rc == STM_EPERM);
    if (rc == 0) {
      /* What decodes re-encodes. */
      uint8_t out[STM_SWIM_MAX_DATAGRAM];
      size_t len;
      CU_ASSERT_EQUAL(stm_swim_encode(&c, &m, out, sizeof out, &len), 0);
    }
  }
  stm_swim_codec_destroy(&c);
}

static const struct stm_test_case swim_format_cases[] = {
    STM_TEST(test_swim_format_round_trips_every_field),
    STM_TEST(test_swim_format_refuses_what_does_not_fit_a_datagram),
    STM_TEST(test_swim_format_drops_forged_and_foreign_datagrams),
    STM_TEST(test_swim_format_bounds_every_field_of_an_authentic_message),
    STM_TEST(test_swim_format_survives_random_bytes_with_a_valid_tag),
    STM_TEST_END};

void stm_test_register_swim_format(void) {
  stm_test_suite("swim_format", swim_format_cases);
}
