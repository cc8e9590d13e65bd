#include "fake_net.h"

#include "common/rand.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct endpoint {
  struct stm_fake_net *net;
  char *addr;
  uint64_t hash;
  stm_fake_net_recv_fn fn; /* NULL: detached */
  void *arg;
  int group;
  uint64_t generation; /* bumped by attach/detach: in-flight mail is lost */
};

struct link {
  struct endpoint *from, *to;
  double drop;
};

struct packet {
  struct stm_fake_timer timer;
  struct packet *prev, *next; /* in flight, so _delete can free them */
  struct endpoint *to;
  uint64_t generation;
  size_t len;
  uint8_t data[];
};

struct stm_fake_net {
  struct stm_fake_clock *clock;
  struct stm_rand rand;
  struct endpoint **eps;
  size_t n_eps, cap_eps;
  struct link *links;
  size_t n_links, cap_links;
  struct packet *in_flight;
  int64_t delay_min, delay_max;
  double drop;
  struct stm_fake_net_stats stats;
};

static uint64_t hash(const char *s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
  return h;
}

struct stm_fake_net *stm_fake_net_new(struct stm_fake_clock *clock,
                                      uint64_t seed) {
  struct stm_fake_net *n = calloc(1, sizeof *n);
  assert(n != NULL);
  n->clock = clock;
  stm_rand_init(&n->rand, seed);
  n->delay_min = 100000; /* 0.1 ms to 2 ms: a LAN */
  n->delay_max = 2000000;
  return n;
}

void stm_fake_net_delete(struct stm_fake_net *n) {
  if (n == NULL)
    return;
  while (n->in_flight) {
    struct packet *p = n->in_flight;
    n->in_flight = p->next;
    stm_fake_timer_stop(n->clock, &p->timer);
    free(p);
  }
  for (size_t i = 0; i < n->n_eps; i++) {
    free(n->eps[i]->addr);
    free(n->eps[i]);
  }
  free(n->eps);
  free(n->links);
  free(n);
}

static struct endpoint *find(struct stm_fake_net *n, const char *addr,
                             bool create) {
  uint64_t h = hash(addr);
  for (size_t i = 0; i < n->n_eps; i++)
    if (n->eps[i]->hash == h && strcmp(n->eps[i]->addr, addr) == 0)
      return n->eps[i];
  if (!create)
    return NULL;
  if (n->n_eps == n->cap_eps) {
    n->cap_eps = n->cap_eps ? 2 * n->cap_eps : 16;
    n->eps = realloc(n->eps, n->cap_eps * sizeof *n->eps);
    assert(n->eps != NULL);
  }
  struct endpoint *e = calloc(1, sizeof *e);
  assert(e != NULL);
  e->net = n;
  e->addr = strdup(addr);
  e->hash = h;
  n->eps[n->n_eps++] = e;
  return e;
}

void *stm_fake_net_attach(struct stm_fake_net *n, const char *addr,
                          stm_fake_net_recv_fn fn, void *arg) {
  struct endpoint *e = find(n, addr, true);
  e->fn = fn;
  e->arg = arg;
  e->generation++;
  return e;
}

void stm_fake_net_detach(struct stm_fake_net *n, const char *addr) {
  struct endpoint *e = find(n, addr, false);
  if (e) {
    e->fn = NULL;
    e->generation++;
  }
}

static double link_drop(struct stm_fake_net *n, const struct endpoint *from,
                        const struct endpoint *to) {
  for (size_t i = 0; i < n->n_links; i++)
    if (n->links[i].from == from && n->links[i].to == to)
      return n->links[i].drop;
  return 0;
}

static void unlink_packet(struct stm_fake_net *n, struct packet *p) {
  if (p->prev)
    p->prev->next = p->next;
  else
    n->in_flight = p->next;
  if (p->next)
    p->next->prev = p->prev;
}

static void deliver(void *arg, int64_t now) {
  struct packet *p = arg;
  struct endpoint *to = p->to;
  struct stm_fake_net *n = to->net;
  unlink_packet(n, p);
  if (to->fn && to->generation == p->generation) {
    n->stats.delivered++;
    to->fn(to->arg, now, p->data, p->len);
  } else {
    n->stats.dropped++;
  }
  free(p);
}

void stm_fake_net_send(void *from_handle, const char *to_addr, const void *data,
                       size_t len) {
  struct endpoint *from = from_handle;
  struct stm_fake_net *n = from->net;
  n->stats.sent++;
  if (len > n->stats.max_len)
    n->stats.max_len = len;
  struct endpoint *to = find(n, to_addr, false);
  /* Draw both numbers always, so one change of settings does not shift
   * every later random choice. */
  double r1 = stm_rand_unit(&n->rand), r2 = stm_rand_unit(&n->rand);
  int64_t span = n->delay_max - n->delay_min;
  int64_t delay =
      n->delay_min + (int64_t)stm_rand_below(&n->rand, (uint64_t)span + 1);
  if (to == NULL || to->fn == NULL || from->group != to->group ||
      r1 < n->drop || r2 < link_drop(n, from, to)) {
    n->stats.dropped++;
    return;
  }
  struct packet *p = malloc(sizeof *p + len);
  assert(p != NULL);
  memset(&p->timer, 0, sizeof p->timer);
  p->to = to;
  p->generation = to->generation;
  p->len = len;
  memcpy(p->data, data, len);
  p->prev = NULL;
  p->next = n->in_flight;
  if (n->in_flight)
    n->in_flight->prev = p;
  n->in_flight = p;
  stm_fake_timer_start(n->clock, &p->timer,
                       stm_fake_clock_now(n->clock) + delay, deliver, p);
}

void stm_fake_net_set_delay(struct stm_fake_net *n, int64_t min_ns,
                            int64_t max_ns) {
  n->delay_min = min_ns;
  n->delay_max = max_ns < min_ns ? min_ns : max_ns;
}

void stm_fake_net_set_drop(struct stm_fake_net *n, double rate) {
  n->drop = rate;
}

void stm_fake_net_set_link_drop(struct stm_fake_net *n, const char *from,
                                const char *to, double rate) {
  struct endpoint *f = find(n, from, true), *t = find(n, to, true);
  for (size_t i = 0; i < n->n_links; i++)
    if (n->links[i].from == f && n->links[i].to == t) {
      n->links[i].drop = rate;
      return;
    }
  if (n->n_links == n->cap_links) {
    n->cap_links = n->cap_links ? 2 * n->cap_links : 16;
    n->links = realloc(n->links, n->cap_links * sizeof *n->links);
    assert(n->links != NULL);
  }
  n->links[n->n_links++] = (struct link){f, t, rate};
}

void stm_fake_net_set_group(struct stm_fake_net *n, const char *addr,
                            int group) {
  find(n, addr, true)->group = group;
}

void stm_fake_net_heal(struct stm_fake_net *n) {
  for (size_t i = 0; i < n->n_eps; i++)
    n->eps[i]->group = 0;
  n->n_links = 0;
}

void stm_fake_net_stats(const struct stm_fake_net *n,
                        struct stm_fake_net_stats *out) {
  *out = n->stats;
}
