#include "gateway/clients.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BUCKETS 1024

/* ---- the peer registry (any thread) -------------------------------------- */

struct peer {
  struct peer *next;
  ino_t ino;
  char addr[STM_GW_PEER_MAX];
};

static pthread_mutex_t peers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct peer *peers[BUCKETS];

ino_t stm_gw_peer_inode(int fd) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 ? st.st_ino : 0;
}

void stm_gw_peer_register(ino_t ino, const char *addr) {
  struct peer *p = calloc(1, sizeof *p);
  if (p == NULL || ino == 0) {
    free(p);
    return; /* the connection is then known by its socket only */
  }
  p->ino = ino;
  strncpy(p->addr, addr, sizeof p->addr - 1);
  pthread_mutex_lock(&peers_mu);
  p->next = peers[ino % BUCKETS];
  peers[ino % BUCKETS] = p;
  pthread_mutex_unlock(&peers_mu);
}

void stm_gw_peer_unregister(ino_t ino) {
  pthread_mutex_lock(&peers_mu);
  for (struct peer **pp = &peers[ino % BUCKETS]; *pp; pp = &(*pp)->next) {
    if ((*pp)->ino == ino) {
      struct peer *p = *pp;
      *pp = p->next;
      free(p);
      break;
    }
  }
  pthread_mutex_unlock(&peers_mu);
}

bool stm_gw_peer_find(ino_t ino, char *buf, size_t len) {
  bool found = false;
  if (ino == 0 || len == 0)
    return false;
  pthread_mutex_lock(&peers_mu);
  for (const struct peer *p = peers[ino % BUCKETS]; p; p = p->next)
    if (p->ino == ino) {
      strncpy(buf, p->addr, len - 1);
      buf[len - 1] = '\0';
      found = true;
      break;
    }
  pthread_mutex_unlock(&peers_mu);
  return found;
}

void stm_gw_peer_of(struct lws *wsi, char *buf, size_t len) {
  if (len == 0)
    return;
  buf[0] = '\0';
  if (!stm_gw_peer_find(stm_gw_peer_inode(lws_get_socket_fd(wsi)), buf, len))
    lws_get_peer_simple(wsi, buf, len);
}

/* ---- open connections per client (loop thread) -------------------------- */

struct count {
  struct count *next;
  size_t n;
  char addr[STM_GW_PEER_MAX];
};

struct stm_gw_clients {
  struct count *buckets[BUCKETS];
};

/* FNV-1a */
static size_t bucket_of(const char *addr) {
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
    h = (h ^ *p) * 16777619u;
  return h % BUCKETS;
}

static struct count **find(struct stm_gw_clients *c, const char *addr) {
  struct count **pp = &c->buckets[bucket_of(addr)];
  while (*pp && strncmp((*pp)->addr, addr, STM_GW_PEER_MAX - 1) != 0)
    pp = &(*pp)->next;
  return pp;
}

struct stm_gw_clients *stm_gw_clients_new(void) {
  return calloc(1, sizeof(struct stm_gw_clients));
}

void stm_gw_clients_delete(struct stm_gw_clients *c) {
  if (c == NULL)
    return;
  for (size_t i = 0; i < BUCKETS; i++)
    while (c->buckets[i]) {
      struct count *n = c->buckets[i];
      c->buckets[i] = n->next;
      free(n);
    }
  free(c);
}

bool stm_gw_clients_enter(struct stm_gw_clients *c, const char *addr,
                          size_t limit, bool force) {
  struct count **pp = find(c, addr);
  if (*pp == NULL) {
    struct count *n = calloc(1, sizeof *n);
    if (n == NULL)
      return false;
    strncpy(n->addr, addr, sizeof n->addr - 1);
    *pp = n;
  }
  if (!force && limit > 0 && (*pp)->n >= limit)
    return false;
  (*pp)->n++;
  return true;
}

void stm_gw_clients_leave(struct stm_gw_clients *c, const char *addr) {
  struct count **pp = find(c, addr);
  struct count *n = *pp;
  if (n == NULL)
    return;
  if (n->n > 1) {
    n->n--;
    return;
  }
  *pp = n->next;
  free(n);
}

size_t stm_gw_clients_count(const struct stm_gw_clients *c, const char *addr) {
  struct count *const *pp = find((struct stm_gw_clients *)c, addr);
  return *pp ? (*pp)->n : 0;
}
