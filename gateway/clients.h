/*
 * clients.h - who the client of a gateway connection is, and how many
 * connections each client has open (--max-connections-per-client).
 *
 * A connection that arrived over TLS reaches libwebsockets as one end of
 * a socketpair (tls_server.h), whose peer address says nothing: the TLS
 * terminator registers the real client address under that socket's inode,
 * which a dup() of it (the WebSocket handover) shares. stm_gw_peer_of
 * looks there first, then asks the socket itself.
 *
 * Threads: the peer registry is thread-safe (the TLS thread registers, the
 * lws loop looks up); a stm_gw_clients table is used by the loop only.
 */
#ifndef STM_GW_CLIENTS_H
#define STM_GW_CLIENTS_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define STM_GW_PEER_MAX 64
/* Open connections per client address unless configured (0: no limit). */
#define STM_GW_DEFAULT_MAX_CONNS_PER_CLIENT 256

/* The inode of the socket behind fd, or 0. */
ino_t stm_gw_peer_inode(int fd);
/* Record / forget the client address of the socket with inode `ino`. */
void stm_gw_peer_register(ino_t ino, const char *addr);
void stm_gw_peer_unregister(ino_t ino);
/* The address registered for `ino` into buf: true, or false if none. */
bool stm_gw_peer_find(ino_t ino, char *buf, size_t len);

/* The client address of a connection ("127.0.0.1", "::1"), into buf. */
void stm_gw_peer_of(struct lws *wsi, char *buf, size_t len);

struct stm_gw_clients;

/* NULL when out of memory. */
struct stm_gw_clients *stm_gw_clients_new(void);
void stm_gw_clients_delete(struct stm_gw_clients *c);

/*
 * Count one more open connection of `addr`. Unless `force`, refuses (and
 * counts nothing) when `limit` > 0 and `addr` already has `limit` open.
 * Returns true when counted; false when refused or out of memory.
 */
bool stm_gw_clients_enter(struct stm_gw_clients *c, const char *addr,
                          size_t limit, bool force);
/* One connection of `addr`, counted by enter, is closed. */
void stm_gw_clients_leave(struct stm_gw_clients *c, const char *addr);
/* Open connections of `addr`. */
size_t stm_gw_clients_count(const struct stm_gw_clients *c, const char *addr);

#endif
