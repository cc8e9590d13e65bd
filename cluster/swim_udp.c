/*
 * The real SWIM transport and driver: a non-blocking UDP socket, a poll
 * loop on one thread, the monotonic clock, getaddrinfo with a small cache.
 */
#include "swim_udp.h"

#include "swim_format.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/rand.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESOLVE_TTL_NS (30 * INT64_C(1000000000))
#define MAX_CACHE 1024
#define MAX_RECV_BURST 64

struct resolved {
  char addr[STM_ADDR_MAX + 1];
  struct sockaddr_storage sa;
  socklen_t len; /* 0: did not resolve */
  int64_t at;
};

struct stm_swim_node {
  pthread_mutex_t lock;
  pthread_t thread;
  bool thread_started;
  int fd, wake_fd, family;
  struct stm_swim *swim;
  char addr[STM_ADDR_MAX + 1];
  bool stopping;
  int64_t stop_at;
  struct resolved *cache;
  size_t n_cache;
  uint64_t send_errors;
};

/* ------------------------------------------------------------------ */
/* addresses                                                            */

static int resolve(const char *addr, int family, bool passive,
                   struct sockaddr_storage *sa, socklen_t *len) {
  char host[STM_ADDR_MAX + 1], port[8];
  uint16_t p;
  if (stm_addr_parse("addr", addr, true, host, sizeof host, &p, NULL) != 0)
    return STM_EINVAL;
  snprintf(port, sizeof port, "%u", p);
  struct addrinfo hints = {.ai_family = family,
                           .ai_socktype = SOCK_DGRAM,
                           .ai_flags = passive ? AI_PASSIVE : 0};
  struct addrinfo *res = NULL;
  bool wildcard = stm_addr_host_is_wildcard(host);
  if (getaddrinfo(wildcard ? NULL : host, port, &hints, &res) != 0 || !res)
    return STM_ENOTFOUND;
  memcpy(sa, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

static struct resolved *cached(struct stm_swim_node *n, const char *addr,
                               int64_t now) {
  struct resolved *slot = NULL;
  for (size_t i = 0; i < n->n_cache; i++)
    if (strcmp(n->cache[i].addr, addr) == 0) {
      slot = &n->cache[i];
      if (now - slot->at < RESOLVE_TTL_NS)
        return slot;
      break;
    }
  if (slot == NULL) {
    /* Full: recycle a pseudo-random entry; it only costs a lookup. */
    slot = n->n_cache < MAX_CACHE ? &n->cache[n->n_cache++]
                                  : &n->cache[(size_t)now % MAX_CACHE];
    snprintf(slot->addr, sizeof slot->addr, "%s", addr);
  }
  slot->at = now;
  if (resolve(addr, n->family, false, &slot->sa, &slot->len) != 0)
    slot->len = 0;
  return slot;
}

/* The transport seam: called by the protocol with the lock held. */
static void udp_send(void *ctx, const char *addr, const void *data,
                     size_t len) {
  struct stm_swim_node *n = ctx;
  struct resolved *r = cached(n, addr, stm_clock_mono_ns());
  if (r->len == 0 || sendto(n->fd, data, len, MSG_DONTWAIT,
                            (struct sockaddr *)&r->sa, r->len) < 0)
    n->send_errors++;
}

/* ------------------------------------------------------------------ */
/* driver thread                                                        */

static void wake(struct stm_swim_node *n) {
  uint64_t one = 1;
  if (write(n->wake_fd, &one, sizeof one) < 0) {
    /* The counter saturates only if never read; the loop reads it. */
  }
}

static void receive_burst(struct stm_swim_node *n) {
  uint8_t buf[STM_SWIM_MAX_DATAGRAM + 1];
  for (int i = 0; i < MAX_RECV_BURST; i++) {
    ssize_t got = recv(n->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (got < 0)
      return;
    if ((size_t)got > STM_SWIM_MAX_DATAGRAM)
      continue; /* longer than any datagram of ours */
    pthread_mutex_lock(&n->lock);
    stm_swim_receive(n->swim, stm_clock_mono_ns(), buf, (size_t)got);
    pthread_mutex_unlock(&n->lock);
  }
}

static void *drive(void *arg) {
  struct stm_swim_node *n = arg;
  struct pollfd fds[2] = {{.fd = n->fd, .events = POLLIN},
                          {.fd = n->wake_fd, .events = POLLIN}};
  for (;;) {
    pthread_mutex_lock(&n->lock);
    int64_t now = stm_clock_mono_ns();
    if (n->stopping && now >= n->stop_at) {
      pthread_mutex_unlock(&n->lock);
      return NULL;
    }
    if (stm_swim_next_deadline(n->swim) <= now)
      stm_swim_tick(n->swim, now);
    int64_t until = stm_swim_next_deadline(n->swim);
    if (n->stopping && n->stop_at < until)
      until = n->stop_at;
    pthread_mutex_unlock(&n->lock);
    int64_t wait_ns = until - now;
    int timeout = wait_ns <= 0 ? 0 : (int)((wait_ns + 999999) / 1000000);
    if (timeout > 1000)
      timeout = 1000;
    if (poll(fds, 2, timeout) > 0) {
      if (fds[1].revents & POLLIN) {
        uint64_t v;
        if (read(n->wake_fd, &v, sizeof v) < 0) {
          /* EAGAIN: another wake-up already drained it */
        }
      }
      if (fds[0].revents & POLLIN)
        receive_burst(n);
    }
  }
}

/* ------------------------------------------------------------------ */
/* start / stop                                                         */

static int open_socket(struct stm_swim_node *n, const char *bind_addr,
                       struct stm_error *err) {
  struct sockaddr_storage sa;
  socklen_t len;
  int rc = resolve(bind_addr, AF_UNSPEC, true, &sa, &len);
  if (rc)
    return stm_error_set(err, STM_EINVAL, "cluster.swim_addr",
                         "cannot resolve the SWIM address \"%.100s\"",
                         bind_addr);
  n->family = sa.ss_family;
  n->fd = socket(sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (n->fd < 0 || bind(n->fd, (struct sockaddr *)&sa, len) != 0)
    return stm_error_set(err, STM_EIO, "cluster.swim_addr",
                         "cannot bind UDP %.100s: %s", bind_addr,
                         strerror(errno));
  n->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (n->wake_fd < 0)
    return stm_error_set(err, STM_EIO, NULL, "eventfd: %s", strerror(errno));
  return 0;
}

/* The advertised address: swim_addr, with the bound port if it said 0. */
static int advertised(struct stm_swim_node *n, const char *swim_addr,
                      struct stm_error *err) {
  char host[STM_ADDR_MAX + 1];
  uint16_t port;
  int rc = stm_addr_parse("cluster.swim_addr", swim_addr, true, host,
                          sizeof host, &port, err);
  if (rc)
    return rc;
  if (port == 0) {
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof sa); /* the analyzer cannot see getsockname fill it */
    socklen_t len = sizeof sa;
    if (getsockname(n->fd, (struct sockaddr *)&sa, &len) != 0)
      return stm_error_set(err, STM_EIO, "cluster.swim_addr",
                           "cannot read the bound SWIM port: %s",
                           strerror(errno));
    port =
        ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                       : ((struct sockaddr_in *)&sa)->sin_port);
  }
  snprintf(n->addr, sizeof n->addr, strchr(host, ':') ? "[%s]:%u" : "%s:%u",
           host, port);
  return 0;
}

static void free_node(struct stm_swim_node *n) {
  if (n->fd >= 0)
    close(n->fd);
  if (n->wake_fd >= 0)
    close(n->wake_fd);
  stm_swim_delete(n->swim);
  free(n->cache);
  pthread_mutex_destroy(&n->lock);
  free(n);
}

int stm_swim_node_start(const struct stm_cluster_config *cc,
                        const struct stm_swim_node_options *opt,
                        struct stm_swim_node **out, struct stm_error *err) {
  *out = NULL;
  struct stm_swim_node_options none = {0};
  if (opt == NULL)
    opt = &none;
  if (cc->node_id == NULL || cc->swim_addr == NULL)
    return stm_error_set(err, STM_EINVAL,
                         cc->node_id ? "cluster.swim_addr" : "cluster.node_id",
                         "SWIM needs cluster.node_id and cluster.swim_addr");
  struct stm_swim_node *n = calloc(1, sizeof *n);
  if (n == NULL || (n->cache = calloc(MAX_CACHE, sizeof *n->cache)) == NULL) {
    free(n);
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  }
  pthread_mutex_init(&n->lock, NULL);
  n->fd = n->wake_fd = -1;
  int rc = open_socket(n, opt->bind_addr ? opt->bind_addr : cc->swim_addr, err);
  if (rc == 0)
    rc = advertised(n, cc->swim_addr, err);
  if (rc == 0) {
    struct stm_swim_config c;
    stm_swim_config_defaults(&c);
    stm_swim_config_from_cluster(&c, cc);
    c.swim_addr = n->addr;
    if (opt->gossip_interval_ns)
      c.gossip_interval_ns = opt->gossip_interval_ns;
    c.random_seed = opt->random_seed ? opt->random_seed : stm_rand_seed_os();
    c.transport.ctx = n;
    c.transport.send = udp_send;
    c.on_change = opt->on_change;
    c.cb_arg = opt->cb_arg;
    if (cc->cluster_key == NULL)
      stm_log_warn("SWIM: no cluster.cluster_key: any host that can reach "
                   "%s can join this cluster",
                   n->addr);
    rc = stm_swim_new(&c, stm_clock_mono_ns(), &n->swim, err);
  }
  if (rc == 0 && pthread_create(&n->thread, NULL, drive, n) != 0)
    rc = stm_error_set(err, STM_EIO, NULL, "cannot start the SWIM thread");
  if (rc) {
    free_node(n);
    return rc;
  }
  n->thread_started = true;
  *out = n;
  return 0;
}

void stm_swim_node_stop(struct stm_swim_node *n, int leave_ms) {
  if (n == NULL)
    return;
  pthread_mutex_lock(&n->lock);
  int64_t now = stm_clock_mono_ns();
  if (leave_ms > 0)
    stm_swim_leave(n->swim, now);
  n->stopping = true;
  n->stop_at = now + (leave_ms > 0 ? (int64_t)leave_ms * 1000000 : 0);
  pthread_mutex_unlock(&n->lock);
  wake(n);
  pthread_join(n->thread, NULL);
  free_node(n);
}

size_t stm_swim_node_members(struct stm_swim_node *n,
                             struct stm_swim_member **out) {
  pthread_mutex_lock(&n->lock);
  size_t count = stm_swim_member_count(n->swim);
  *out = malloc(count * sizeof **out);
  if (*out == NULL)
    count = 0;
  /* Monotonic times become wall-clock ones for the caller. */
  int64_t mono = stm_clock_mono_ns(), wall = stm_clock_now_ns();
  for (size_t i = 0; i < count; i++) {
    struct stm_swim_member *m = &(*out)[i];
    stm_swim_member_at(n->swim, i, m);
    m->last_seen_ns = m->last_seen_ns ? wall - (mono - m->last_seen_ns) : 0;
    m->state_changed_ns =
        m->state_changed_ns ? wall - (mono - m->state_changed_ns) : 0;
  }
  pthread_mutex_unlock(&n->lock);
  return count;
}

int stm_swim_node_set_meta(struct stm_swim_node *n, const void *meta,
                           size_t len) {
  pthread_mutex_lock(&n->lock);
  int rc = stm_swim_set_meta(n->swim, stm_clock_mono_ns(), meta, len);
  pthread_mutex_unlock(&n->lock);
  wake(n);
  return rc;
}

int stm_swim_node_remove(struct stm_swim_node *n, const char *id) {
  pthread_mutex_lock(&n->lock);
  int rc = stm_swim_remove(n->swim, stm_clock_mono_ns(), id);
  pthread_mutex_unlock(&n->lock);
  wake(n);
  return rc;
}

const char *stm_swim_node_addr(const struct stm_swim_node *n) {
  return n->addr;
}

void stm_swim_node_stats(struct stm_swim_node *n, struct stm_swim_stats *out) {
  pthread_mutex_lock(&n->lock);
  stm_swim_stats(n->swim, out);
  pthread_mutex_unlock(&n->lock);
}
