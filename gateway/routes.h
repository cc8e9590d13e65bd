/*
 * routes.h - the REST route table of the gateway and the pure functions
 * around it: matching a method + path, building the gRPC request from the
 * URL and JSON body, and turning the gRPC reply (or status) into an HTTP
 * response.
 *
 * Adding a REST route for another StemeDB RPC is one table entry in
 * routes.c: pattern, method, RPC path, request/reply descriptors, a
 * `build` function (JSON -> request) and a `render` function (reply ->
 * JSON); errors, status mapping and metrics come for free.
 *
 * Everything here is free of I/O and thread-safe; http.c does the I/O.
 */
#ifndef STM_GW_ROUTES_H
#define STM_GW_ROUTES_H

#include "common/error.h"
#include "gateway/request.h"

#include <grpc/status.h>
#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

struct stm_gw_metrics;

enum stm_gw_method {
  STM_GW_GET = 1 << 0,
  STM_GW_POST = 1 << 1,
  STM_GW_PUT = 1 << 2,
  STM_GW_PATCH = 1 << 3,
  STM_GW_DELETE = 1 << 4,
  STM_GW_HEAD = 1 << 5,
  STM_GW_OPTIONS = 1 << 6,
  STM_GW_OTHER = 1 << 7,
};

/* Which listening port a route lives on. */
enum stm_gw_listener {
  STM_GW_LISTENER_API,     /* --http-listen, 18180 */
  STM_GW_LISTENER_CLUSTER, /* --cluster-listen, 18181 */
};

/* What came back from the server. */
struct stm_gw_reply {
  grpc_status_code code;
  const char *message;         /* status details, "" when none */
  const ProtobufCMessage *msg; /* the decoded reply if code is OK */
};

/* The HTTP response to send. Release with stm_gw_response_destroy. */
struct stm_gw_response {
  int status;
  const char *content_type; /* static string */
  char *body;               /* malloc'd, `len` bytes, NUL-terminated */
  size_t len;
  char allow[64]; /* Allow header value for 405, else "" */
};

/* What responders may need from the running gateway. */
struct stm_gw_env {
  const char *server;             /* upstream address, for messages */
  struct stm_gw_metrics *metrics; /* for GET /metrics */
};

struct stm_gw_route {
  enum stm_gw_listener listener;
  enum stm_gw_method method;
  const char *pattern; /* "/v1/assertions/{hash}"; also the metrics label */
  const char *rpc;     /* "/stemedb.v1.StemeDB/Get"; NULL: answered here */
  const ProtobufCMessageDescriptor *request, *reply;
  bool body; /* expects a JSON body (Content-Type application/json) */
  /* Request message from the HTTP request; STM_EINVAL + err -> 400. */
  int (*build)(const struct stm_gw_request *rq, ProtobufCMessage **out,
               struct stm_error *err);
  /* JSON for an OK reply; *status is preset to 200. */
  json_t *(*render)(const ProtobufCMessage *reply, int *status);
  /* Replaces the default reply handling (health, metrics, local routes). */
  void (*respond)(const struct stm_gw_route *route,
                  const struct stm_gw_reply *reply,
                  const struct stm_gw_env *env, struct stm_gw_response *out);
};

/*
 * Find the route for (listener, method, path). `path` has no query string;
 * one trailing '/' is ignored. On a match returns the route and points
 * *param / *param_len at the {...} segment inside `path` (empty if none).
 * Returns NULL when nothing matches; then *allowed holds the methods that
 * the path does accept (0: unknown path -> 404, else 405).
 */
const struct stm_gw_route *
stm_gw_route_match(enum stm_gw_listener listener, enum stm_gw_method method,
                   const char *path, const char **param, size_t *param_len,
                   unsigned *allowed);

/* Every route, for tests and docs: *n receives the count. */
const struct stm_gw_route *stm_gw_routes(size_t *n);

/* "GET" ... for one method bit; "OTHER" for anything else. */
const char *stm_gw_method_name(enum stm_gw_method m);
/* The method bit for a method name; STM_GW_OTHER when unknown. */
enum stm_gw_method stm_gw_method_parse(const char *name);
/* "GET, POST" for a set of method bits, into buf (always NUL-terminated). */
void stm_gw_allow_header(unsigned methods, char *buf, size_t len);

/*
 * Fill `out` from a finished call: the route's `respond`, or by default
 * `render` on OK and the error body with the mapped status otherwise.
 */
void stm_gw_respond(const struct stm_gw_route *route,
                    const struct stm_gw_reply *reply,
                    const struct stm_gw_env *env, struct stm_gw_response *out);

/*
 * An error response {"error":{"code","message","field"}} with `status`.
 * `field` may be NULL.
 */
void stm_gw_respond_error(struct stm_gw_response *out, int status,
                          const char *code, const char *message,
                          const char *field);

void stm_gw_response_destroy(struct stm_gw_response *r);

/*
 * The field a server error message names: its first word when that is a
 * field path of the `request` message ("concept_path",
 * "assertions[2].predicate"). Returns true and fills `field` (len bytes)
 * when it is one.
 */
bool stm_gw_field_from_message(const ProtobufCMessageDescriptor *request,
                               const char *message, char *field, size_t len);

#endif
