/* What every handler family shares: the status of an error code, failing
 * a call from one, the read-view check, the caller identity of the audit
 * log (with the trusted-proxy rule), hashes in requests, and the paged
 * lists of the list RPCs. */
#include "convert.h"
#include "records_internal.h"
#include "service_internal.h"

#include "common/hex.h"
#include "common/validate.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT 1000

grpc_status_code stm_service_status(int rc) {
  switch (rc) {
  case 0:
    return GRPC_STATUS_OK;
  case STM_EINVAL:
    return GRPC_STATUS_INVALID_ARGUMENT;
  case STM_ENOTFOUND:
    return GRPC_STATUS_NOT_FOUND;
  case STM_EREADONLY:
  case STM_ESHUTDOWN:
  case STM_EUNAVAIL:
  case STM_ENOSPC:
    return GRPC_STATUS_UNAVAILABLE;
  case STM_EPERM:
    return GRPC_STATUS_PERMISSION_DENIED;
  case STM_ETOOBIG:
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  case STM_EUNIMPL:
    return GRPC_STATUS_UNIMPLEMENTED;
  case STM_ERANGE:
    return GRPC_STATUS_OUT_OF_RANGE;
  case STM_ETIMEOUT:
    return GRPC_STATUS_DEADLINE_EXCEEDED;
  case STM_EEXIST:
    return GRPC_STATUS_ALREADY_EXISTS;
  default:
    return GRPC_STATUS_INTERNAL;
  }
}

void stm__fail_rc(struct stm_grpc_call *call, int rc,
                  const struct stm_error *err) {
  const char *msg = err && err->message[0] ? err->message : stm_strerror(rc);
  struct stm_service *svc = stm_grpc_call_context(call);
  struct stm_store_stats st = {0};
  if (rc == STM_EREADONLY && svc)
    stm_store_get_stats(svc->store, &st);
  if (rc == STM_EREADONLY && st.disk_full)
    stm_grpc_call_fail(call, GRPC_STATUS_UNAVAILABLE,
                       "the disk was full when this node started: it serves "
                       "reads only and refuses writes until space is freed on "
                       "its data directory's disk and it is restarted");
  else if (rc == STM_EREADONLY)
    stm_grpc_call_fail(
        call, GRPC_STATUS_UNAVAILABLE,
        "storage failed (%s); this node refuses writes until it is "
        "restarted",
        msg);
  else
    stm_grpc_call_fail(call, stm_service_status(rc), "%s", msg);
}

int stm__check_as_of_time(int64_t as_of_time_ns, struct stm_error *err) {
  if (as_of_time_ns >= 0)
    return 0;
  return stm_error_set(err, STM_EINVAL, "as_of_time_ns",
                       "as_of_time_ns must be 0 (now) or a commit time in "
                       "nanoseconds since 1970, got %lld",
                       (long long)as_of_time_ns);
}

/* Metadata is client-supplied text: keep it printable. */
static void printable(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
      *s = '?';
}

/* The IP of a gRPC peer string: "ipv4:10.0.0.1:5555" -> "10.0.0.1",
 * "ipv6:%5B::1%5D:5555" or "ipv6:[::1]:5555" -> "::1". */
static void peer_host(const char *peer, char *out, size_t size) {
  const char *p = strchr(peer, ':');
  p = p ? p + 1 : peer;
  const char *end;
  if (strncmp(p, "%5B", 3) == 0 || p[0] == '[') {
    p += p[0] == '[' ? 1 : 3;
    end = strstr(p, p[-1] == '[' ? "]" : "%5D");
  } else {
    end = strrchr(p, ':');
  }
  size_t n = end ? (size_t)(end - p) : strlen(p);
  if (n >= size)
    n = size - 1;
  memcpy(out, p, n);
  out[n] = '\0';
}

/* Is the peer one of the comma-separated addresses in `list`? */
static bool peer_trusted(const char *peer, const char *list) {
  if (peer == NULL || list == NULL)
    return false;
  char host[64];
  peer_host(peer, host, sizeof host);
  size_t hl = strlen(host);
  for (const char *p = list; *p;) {
    p += strspn(p, ", \t");
    size_t n = strcspn(p, ", \t");
    if (n && n == hl && memcmp(p, host, n) == 0)
      return true;
    p += n;
  }
  return false;
}

void stm__call_identity(struct stm_grpc_call *call, char *out, size_t len) {
  const char *peer = stm_grpc_call_peer(call);
  char who[128], fwd[128], auth[1024];
  /* An authenticated key names the caller; claims cannot override it. */
  const char *principal = stm_grpc_call_principal(call);
  bool has_who = principal != NULL;
  if (has_who)
    snprintf(who, sizeof who, "%s", principal);
  else
    has_who = stm_grpc_call_metadata(call, "x-stemedb-caller", who, sizeof who);
  if (!has_who &&
      stm_grpc_call_metadata(call, "authorization", auth, sizeof auth)) {
    /* Never log a credential: name it by a short hash instead. */
    uint8_t h[8];
    crypto_generichash(h, sizeof h, (const uint8_t *)auth, strlen(auth), NULL,
                       0);
    memcpy(who, "credential:", 11);
    stm_hex_encode(h, sizeof h, who + 11);
    has_who = true;
  }
  /* x-forwarded-for is believed only from a configured proxy (the
   * gateway): from anyone else it is a claim as good as its author. */
  struct stm_service *svc = stm_grpc_call_context(call);
  bool has_fwd =
      peer_trusted(peer, svc ? svc->trusted_proxies : NULL) &&
      stm_grpc_call_metadata(call, "x-forwarded-for", fwd, sizeof fwd);
  if (has_who)
    printable(who);
  if (has_fwd)
    printable(fwd);
  /* A claimed identity is recorded with the peer it came from, never in
   * place of it: nothing authenticates it. */
  snprintf(out, len, "%s%s%s%s%s", has_who ? who : "", has_who ? " via " : "",
           peer ? peer : "unknown", has_fwd ? " for " : "", has_fwd ? fwd : "");
}

void stm__client_key(struct stm_grpc_call *call, char *out, size_t len) {
  const char *who = stm_grpc_call_principal(call);
  const char *peer = stm_grpc_call_peer(call);
  struct stm_service *svc = stm_grpc_call_context(call);
  char v[128], host[80];
  peer_host(peer ? peer : "unknown", host, sizeof host);
  if (who) {
    snprintf(out, len, "%s", who);
  } else if (stm_grpc_call_metadata(call, "x-agent-id", v, sizeof v) && *v) {
    printable(v);
    snprintf(out, len, "agent:%s", v);
  } else if (peer_trusted(peer, svc ? svc->trusted_proxies : NULL) &&
             stm_grpc_call_metadata(call, "x-forwarded-for", v, sizeof v) &&
             *v) {
    v[strcspn(v, ", ")] = '\0'; /* the first hop is the client */
    printable(v);
    snprintf(out, len, "addr:%s", v);
  } else {
    snprintf(out, len, "addr:%s", host);
  }
}

int stm__parse_hash(const char *field, const char *hex, uint8_t *out,
                    struct stm_error *err) {
  size_t len = strlen(hex);
  int rc = stm_validate_hash_hex(field, hex, len, false, err);
  if (rc == 0)
    stm_hex_decode(hex, len, out, STM_HASH_LEN);
  return rc;
}

int stm__list_check_limit(uint32_t limit, size_t *out, struct stm_error *err) {
  if (limit > LIST_MAX_LIMIT)
    return stm_error_set(err, STM_EINVAL, "limit", "limit must be at most %d",
                         LIST_MAX_LIMIT);
  *out = limit ? limit : LIST_DEFAULT_LIMIT;
  return 0;
}

int stm__list_add(struct stm__list *l, void *item) {
  if (l->n == l->limit) {
    l->more = true;
    return 1;
  }
  l->items[l->n++] = item;
  return 0;
}

int stm__list_init(struct stm__list *l, size_t limit) {
  stm_arena_init(&l->arena);
  l->n = 0;
  l->limit = limit;
  l->more = false;
  l->items = calloc(limit, sizeof *l->items);
  return l->items ? 0 : STM_ENOMEM;
}

void stm__list_destroy(struct stm__list *l) {
  free(l->items);
  stm_arena_destroy(&l->arena);
}
