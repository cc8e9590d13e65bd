/*
 * stemedb-server settings: defaults, then the TOML file, then STEMEDB_*
 * variables, then flags (common/options does the last two), then the
 * cluster fallbacks and validation.
 */
#include "config.h"
#include "auth.h"
#include "quota.h"
#include "ratelimit.h"

#include "cluster/toml.h"
#include "common/log.h"
#include "common/options.h"
#include "common/validate.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_OPTS 64
#define MAX_DATA_DIR 4096

/* Cluster settings that need converting after all layers. */
struct cluster_strings {
  char *seeds_csv;    /* --seeds */
  char *write_quorum; /* --write-quorum */
};

/* The option table points into cfg and *cs. */
static size_t build_opts(struct stm_server_config *cfg,
                         struct cluster_strings *cs, struct stm_opt *o) {
  struct stm_opt all[] = {
      {"data-dir", "STEMEDB_DATA_DIR", "server.data_dir", STM_OPT_STRING,
       &cfg->data_dir, "directory of the WAL and the indexes"},
      {"grpc-listen", "STEMEDB_GRPC_LISTEN", "server.grpc_listen",
       STM_OPT_STRING, &cfg->grpc_listen,
       "gRPC address host:port (clients and peers); port 0 picks one"},
      {"node-id", "STEMEDB_NODE_ID", "server.node_id", STM_OPT_STRING,
       &cfg->node_id,
       "this node's name (default: cluster.node_id, else the "
       "host name)"},
      {"config", "STEMEDB_CONFIG", NULL, STM_OPT_STRING, &cfg->config_path,
       "TOML file: [server], and [cluster]/[replication] as in cluster.toml"},
      {"log-level", "STEMEDB_LOG_LEVEL", "server.log_level", STM_OPT_STRING,
       &cfg->log_level, "debug, info, warn or error"},
      {"wal-segment-bytes", "STEMEDB_WAL_SEGMENT_BYTES",
       "server.wal_segment_bytes", STM_OPT_INT, &cfg->wal_segment_bytes,
       "size at which a WAL segment is sealed"},
      {"wal-archive-command", "STEMEDB_WAL_ARCHIVE_COMMAND",
       "server.wal_archive_command", STM_OPT_STRING, &cfg->wal_archive_command,
       "shell command run per sealed WAL segment, %p = path of its .zst, "
       "%f = file name (PostgreSQL archive_command); unset: no archival"},
      {"cq-threads", "STEMEDB_CQ_THREADS", "server.cq_threads", STM_OPT_INT,
       &cfg->cq_threads, "gRPC completion-queue threads"},
      {"max-message-bytes", "STEMEDB_MAX_MESSAGE_BYTES",
       "server.max_message_bytes", STM_OPT_INT, &cfg->max_message_bytes,
       "largest gRPC message accepted or sent"},
      {"shutdown-grace-ms", "STEMEDB_SHUTDOWN_GRACE_MS",
       "server.shutdown_grace_ms", STM_OPT_INT, &cfg->shutdown_grace_ms,
       "time in-flight calls get to finish on SIGTERM"},
      {"shutdown-delay-ms", "STEMEDB_SHUTDOWN_DELAY_MS",
       "server.shutdown_delay_ms", STM_OPT_INT, &cfg->shutdown_delay_ms,
       "on SIGTERM, report NOT_SERVING for this long before refusing calls"},
      {"watch-max-total", "STEMEDB_WATCH_MAX_TOTAL", "server.watch_max_total",
       STM_OPT_INT, &cfg->watch_max_total, "open Watch streams, in total"},
      {"watch-max-per-connection", "STEMEDB_WATCH_MAX_PER_CONNECTION",
       "server.watch_max_per_connection", STM_OPT_INT,
       &cfg->watch_max_per_connection, "open Watch streams per connection"},
      {"watch-max-per-client", "STEMEDB_WATCH_MAX_PER_CLIENT",
       "server.watch_max_per_client", STM_OPT_INT, &cfg->watch_max_per_client,
       "open Watch streams per client (API key, else x-agent-id, else "
       "address), over all its connections"},
      {"max-batch", "STEMEDB_MAX_BATCH", "server.max_batch", STM_OPT_INT,
       &cfg->max_batch, "claims per AssertBatch"},
      {"max-concept-path-bytes", "STEMEDB_MAX_CONCEPT_PATH_BYTES",
       "server.max_concept_path_bytes", STM_OPT_INT,
       &cfg->max_concept_path_bytes, "bytes of a concept path (and prefix)"},
      {"max-predicate-bytes", "STEMEDB_MAX_PREDICATE_BYTES",
       "server.max_predicate_bytes", STM_OPT_INT, &cfg->max_predicate_bytes,
       "bytes of a predicate"},
      {"max-value-bytes", "STEMEDB_MAX_VALUE_BYTES", "server.max_value_bytes",
       STM_OPT_INT, &cfg->max_value_bytes, "bytes of a string value"},
      {"max-source-id-bytes", "STEMEDB_MAX_SOURCE_ID_BYTES",
       "server.max_source_id_bytes", STM_OPT_INT, &cfg->max_source_id_bytes,
       "bytes of a source id"},
      {"watch-buffer-events", "STEMEDB_WATCH_BUFFER_EVENTS",
       "server.watch_buffer_events", STM_OPT_INT, &cfg->watch_buffer_events,
       "events buffered per Watch stream before a slow one is cut"},
      {"watch-history-events", "STEMEDB_WATCH_HISTORY_EVENTS",
       "server.watch_history_events", STM_OPT_INT, &cfg->watch_history_events,
       "recent events kept in memory for Watch catch-up"},
      {"watch-max-lag-events", "STEMEDB_WATCH_MAX_LAG_EVENTS",
       "server.watch_max_lag_events", STM_OPT_INT, &cfg->watch_max_lag_events,
       "sequences a slow Watch stream may fall behind before it is cut"},
      {"watch-retention-events", "STEMEDB_WATCH_RETENTION_EVENTS",
       "server.watch_retention_events", STM_OPT_INT,
       &cfg->watch_retention_events,
       "sequences a Watch may resume from, counted back from the newest; "
       "older starts end OUT_OF_RANGE (0: the whole history)"},
      {"watch-memory-only", "STEMEDB_WATCH_MEMORY_ONLY",
       "server.watch_memory_only", STM_OPT_BOOL, &cfg->watch_memory_only,
       "Watch catch-up from the in-memory history only, older starts are "
       "OUT_OF_RANGE (a window that moves with every write; for tests)"},
      {"trust-half-life-s", "STEMEDB_TRUST_HALF_LIFE_S",
       "server.trust_half_life_s", STM_OPT_INT, &cfg->trust_half_life_s,
       "seconds in which unrenewed trust halves its distance to 0.5 "
       "(docs/lenses.md); 0: no decay"},
      {"listener-probe-ms", "STEMEDB_LISTENER_PROBE_MS",
       "server.listener_probe_ms", STM_OPT_INT, &cfg->listener_probe_ms,
       "interval of the self-probe that dials the gRPC port on a new "
       "connection; 3 failures in a row (a listener that stopped accepting) "
       "make the server exit with status 3 to be restarted; 0: off"},
      {"trusted-proxies", "STEMEDB_TRUSTED_PROXIES", "server.trusted_proxies",
       STM_OPT_STRING, &cfg->trusted_proxies,
       "comma-separated peer IP addresses whose x-forwarded-for metadata the "
       "audit log believes (the gateway's); \"\": none"},
      {"tls-cert", "STEMEDB_TLS_CERT", "server.tls_cert", STM_OPT_STRING,
       &cfg->tls_cert,
       "PEM certificate chain: serve gRPC over TLS only (with --tls-key; "
       "SIGHUP reloads both)"},
      {"tls-key", "STEMEDB_TLS_KEY", "server.tls_key", STM_OPT_STRING,
       &cfg->tls_key, "PEM private key of --tls-cert"},
      {"tls-client-ca", "STEMEDB_TLS_CLIENT_CA", "server.tls_client_ca",
       STM_OPT_STRING, &cfg->tls_client_ca,
       "PEM CA bundle: require client certificates signed by it (mTLS)"},
      {"peer-ca", "STEMEDB_PEER_CA", "server.peer_ca", STM_OPT_STRING,
       &cfg->peer_ca,
       "PEM CA bundle that verifies peers' certificates when this node "
       "dials them over TLS (default: --tls-client-ca, else system roots)"},
      {"auth", "STEMEDB_AUTH", "server.auth", STM_OPT_STRING, &cfg->auth,
       "off (every caller may do everything) or required (an API key with "
       "the method's role; bootstrap admin key: STEMEDB_ADMIN_KEY)"},
      {"auth-open", "STEMEDB_AUTH_OPEN", "server.auth_open", STM_OPT_STRING,
       &cfg->auth_open,
       "with --auth required, what answers without a key: any of health "
       "(gRPC health), status (Status: the gateway's /v1/health), metrics "
       "(/metrics), or none; the rest need a reader key"},
      {"rate-limits", "STEMEDB_RATE_LIMITS", "server.rate_limits",
       STM_OPT_STRING, &cfg->rate_limits,
       "token buckets per gRPC method and client: Method=RATE:BURST,... "
       "(\"*\": every other method; off: none)"},
      {"quota-per-hour", "STEMEDB_QUOTA_PER_HOUR", "server.quota_per_hour",
       STM_OPT_INT, &cfg->quota_per_hour,
       "units each agent (key id, else x-agent-id) may use per clock hour: "
       "assert 10 per claim, vote 1, query 5; 0: off"},
      {"quota-overrides", "STEMEDB_QUOTA_OVERRIDES", "server.quota_overrides",
       STM_OPT_STRING, &cfg->quota_overrides,
       "per-agent hourly units: AGENT=UNITS,... (AGENT: key:ID or "
       "agent:X-AGENT-ID)"},
      {"request-id-window-s", "STEMEDB_REQUEST_ID_WINDOW_S",
       "server.request_id_window_s", STM_OPT_INT, &cfg->request_id_window_s,
       "seconds a write's request_id is remembered, so a retry with it is "
       "answered from the first outcome instead of writing again"},
      {"disk-reserve-bytes", "STEMEDB_DISK_RESERVE_BYTES",
       "server.disk_reserve_bytes", STM_OPT_INT, &cfg->disk_reserve_bytes,
       "bytes kept free in DATA_DIR/reserve; on a full disk the server "
       "releases them to start read-only (0: none)"},
      {"cluster", "STEMEDB_CLUSTER_ENABLED", NULL, STM_OPT_BOOL,
       &cfg->cluster.enabled, "join a cluster (cluster.enabled)"},
      {"rpc-addr", "STEMEDB_RPC_ADDR", NULL, STM_OPT_STRING,
       &cfg->cluster.rpc_addr, "gRPC address peers dial (cluster.rpc_addr)"},
      {"swim-addr", "STEMEDB_SWIM_ADDR", NULL, STM_OPT_STRING,
       &cfg->cluster.swim_addr, "SWIM UDP address (cluster.swim_addr)"},
      {"seeds", "STEMEDB_SEEDS", NULL, STM_OPT_STRING, &cs->seeds_csv,
       "comma-separated SWIM addresses of seed nodes (cluster.seeds)"},
      {"replication-factor", "STEMEDB_REPLICATION_FACTOR", NULL, STM_OPT_INT,
       &cfg->cluster.replication_factor,
       "copies of each claim (replication.factor)"},
      {"bind-addr", "STEMEDB_BIND_ADDR", NULL, STM_OPT_STRING,
       &cfg->cluster.bind_addr,
       "the gateway's cluster address host:port, shown to peers "
       "(cluster.bind_addr)"},
      {"shards", "STEMEDB_SHARDS", NULL, STM_OPT_INT, &cfg->cluster.shards,
       "shards of the cluster, fixed for its life (cluster.shards, 64)"},
      {"write-quorum", "STEMEDB_WRITE_QUORUM", NULL, STM_OPT_STRING,
       &cs->write_quorum,
       "one, majority or all: replicas that must have a write before it is "
       "acknowledged (replication.write_quorum, one)"},
      {"cluster-key", "STEMEDB_CLUSTER_KEY", NULL, STM_OPT_STRING,
       &cfg->cluster.cluster_key,
       "shared secret authenticating SWIM datagrams (cluster.cluster_key); "
       "prefer the variable or the file to a flag"},
      {"cluster-name", "STEMEDB_CLUSTER_NAME", NULL, STM_OPT_STRING,
       &cfg->cluster.name,
       "cluster name in every SWIM datagram "
       "(cluster.name, stemedb)"},
      {"probe-interval-ms", "STEMEDB_PROBE_INTERVAL_MS", NULL, STM_OPT_INT,
       &cfg->cluster.probe_interval_ms,
       "SWIM probe interval (cluster.probe_interval_ms, 1000)"},
      {"probe-timeout-ms", "STEMEDB_PROBE_TIMEOUT_MS", NULL, STM_OPT_INT,
       &cfg->cluster.probe_timeout_ms,
       "SWIM direct ack wait (cluster.probe_timeout_ms, 500)"},
      {"suspicion-mult", "STEMEDB_SUSPICION_MULT", NULL, STM_OPT_INT,
       &cfg->cluster.suspicion_mult,
       "SWIM suspicion timeout multiplier (cluster.suspicion_mult, 4)"},
      {"suspicion-max-mult", "STEMEDB_SUSPICION_MAX_MULT", NULL, STM_OPT_INT,
       &cfg->cluster.suspicion_max_mult,
       "SWIM suspicion maximum, times the minimum "
       "(cluster.suspicion_max_mult, 6)"},
      {"push-pull-interval-ms", "STEMEDB_PUSH_PULL_INTERVAL_MS", NULL,
       STM_OPT_INT, &cfg->cluster.push_pull_interval_ms,
       "SWIM full-state sync interval (cluster.push_pull_interval_ms, "
       "30000)"},
  };
  size_t n = sizeof all / sizeof all[0];
  _Static_assert(sizeof all / sizeof all[0] <= MAX_OPTS, "MAX_OPTS too small");
  memcpy(o, all, sizeof all);
  return n;
}

/* Defaults, with the strings that need no fallback logic already set. */
static int set_defaults(struct stm_server_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  stm_cluster_config_init(&cfg->cluster);
  cfg->wal_segment_bytes = STM_SERVER_DEFAULT_WAL_SEGMENT_BYTES;
  cfg->cq_threads = STM_SERVER_DEFAULT_CQ_THREADS;
  cfg->max_message_bytes = STM_SERVER_DEFAULT_MAX_MESSAGE_BYTES;
  cfg->shutdown_grace_ms = STM_SERVER_DEFAULT_SHUTDOWN_GRACE_MS;
  cfg->shutdown_delay_ms = STM_SERVER_DEFAULT_SHUTDOWN_DELAY_MS;
  cfg->watch_max_total = STM_SERVER_DEFAULT_WATCH_MAX_TOTAL;
  cfg->watch_max_per_connection = STM_SERVER_DEFAULT_WATCH_MAX_PER_CONNECTION;
  cfg->watch_max_per_client = STM_SERVER_DEFAULT_WATCH_MAX_PER_CLIENT;
  cfg->max_batch = STM_MAX_BATCH;
  cfg->max_concept_path_bytes = STM_MAX_CONCEPT_PATH;
  cfg->max_predicate_bytes = STM_MAX_PREDICATE;
  cfg->max_value_bytes = STM_MAX_STRING_VALUE;
  cfg->max_source_id_bytes = STM_MAX_SOURCE_ID;
  cfg->watch_buffer_events = STM_SERVER_DEFAULT_WATCH_BUFFER_EVENTS;
  cfg->watch_history_events = STM_SERVER_DEFAULT_WATCH_HISTORY_EVENTS;
  cfg->watch_max_lag_events = STM_SERVER_DEFAULT_WATCH_MAX_LAG_EVENTS;
  cfg->trust_half_life_s = STM_SERVER_DEFAULT_TRUST_HALF_LIFE_S;
  cfg->listener_probe_ms = STM_SERVER_DEFAULT_LISTENER_PROBE_MS;
  cfg->disk_reserve_bytes = STM_SERVER_DEFAULT_DISK_RESERVE_BYTES;
  cfg->request_id_window_s = STM_SERVER_DEFAULT_REQUEST_ID_WINDOW_S;
  cfg->trusted_proxies = strdup(STM_SERVER_DEFAULT_TRUSTED_PROXIES);
  cfg->auth = strdup("off");
  cfg->auth_open = strdup("health,status,metrics");
  cfg->rate_limits = strdup(STM_RATELIMIT_DEFAULT);
  cfg->quota_per_hour = STM_QUOTA_DEFAULT_PER_HOUR;
  cfg->data_dir = strdup(STM_SERVER_DEFAULT_DATA_DIR);
  cfg->log_level = strdup(STM_SERVER_DEFAULT_LOG_LEVEL);
  return cfg->data_dir && cfg->log_level && cfg->trusted_proxies && cfg->auth &&
                 cfg->auth_open && cfg->rate_limits
             ? 0
             : STM_ENOMEM;
}

void stm_server_config_destroy(struct stm_server_config *cfg) {
  free(cfg->data_dir);
  free(cfg->grpc_listen);
  free(cfg->node_id);
  free(cfg->config_path);
  free(cfg->log_level);
  free(cfg->wal_archive_command);
  free(cfg->trusted_proxies);
  free(cfg->auth);
  free(cfg->auth_open);
  free(cfg->rate_limits);
  free(cfg->quota_overrides);
  free(cfg->tls_cert);
  free(cfg->tls_key);
  free(cfg->tls_client_ca);
  free(cfg->peer_ca);
  for (size_t i = 0; i < cfg->unknown_key_count; i++)
    free(cfg->unknown_keys[i]);
  free(cfg->unknown_keys);
  stm_cluster_config_destroy(&cfg->cluster);
  memset(cfg, 0, sizeof *cfg);
}

void stm_server_config_usage(FILE *out) {
  struct stm_server_config cfg;
  struct cluster_strings cs = {NULL, NULL};
  struct stm_opt opts[MAX_OPTS];
  if (set_defaults(&cfg) == 0)
    cfg.grpc_listen = strdup(STM_SERVER_DEFAULT_GRPC_LISTEN);
  size_t n = build_opts(&cfg, &cs, opts);
  stm_opts_usage(out, "stemedb-server [options]", opts, n);
  fputs("\nPrecedence: flags > STEMEDB_* environment > config file > "
        "defaults.\nThe config file is TOML with a [server] table (data_dir, "
        "grpc_listen, node_id,\nlog_level, wal_segment_bytes, cq_threads, "
        "max_message_bytes, shutdown_grace_ms)\nand cluster.toml's [cluster] "
        "and [replication] tables; without server.node_id\nor "
        "server.grpc_listen, cluster.node_id and cluster.rpc_addr are used.\n",
        out);
  stm_server_config_destroy(&cfg);
}

static bool wants_help(int argc, char **argv) {
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
      return true;
  return false;
}

/* ------------------------------------------------------------------ */
/* the config file                                                      */

static int set_string(char **slot, const char *v, const char *key,
                      struct stm_error *err) {
  if (stm_cluster_config_set_string(slot, v))
    return stm_error_set(err, STM_ENOMEM, key, "out of memory");
  return 0;
}

/* One [server] key, type-checked against its option. */
static int apply_file_key(const struct stm_opt *o,
                          const struct stm_toml_doc *doc, const char *key,
                          struct stm_error *err) {
  const char *s;
  switch (o->type) {
  case STM_OPT_STRING: {
    int rc = stm_toml_get_string(doc, key, &s, err);
    return rc ? rc : set_string(o->target, s, key, err);
  }
  case STM_OPT_INT:
    return stm_toml_get_int(doc, key, o->target, err);
  case STM_OPT_BOOL:
    return stm_toml_get_bool(doc, key, o->target, err);
  }
  return STM_EINVAL;
}

static int note_unknown(struct stm_server_config *cfg,
                        const struct stm_toml_item *it, struct stm_error *err) {
  stm_log_warn("config %s line %d: unknown key %s (ignored)", cfg->config_path,
               it->line, it->key);
  char **grown =
      realloc(cfg->unknown_keys, (cfg->unknown_key_count + 1) * sizeof *grown);
  if (grown == NULL)
    return stm_error_set(err, STM_ENOMEM, it->key, "out of memory");
  cfg->unknown_keys = grown;
  if ((grown[cfg->unknown_key_count] = strdup(it->key)) == NULL)
    return stm_error_set(err, STM_ENOMEM, it->key, "out of memory");
  cfg->unknown_key_count++;
  return 0;
}

/* server.node_id and cluster.node_id name the same thing: they must agree.
 * Without [server] values, the cluster ones stand in. */
static int apply_cluster_fallbacks(struct stm_server_config *cfg,
                                   struct stm_error *err) {
  const char *cid = cfg->cluster.node_id;
  if (cfg->node_id && cid && strcmp(cfg->node_id, cid) != 0)
    return stm_error_set(err, STM_EINVAL, "cluster.node_id",
                         "%s: server.node_id \"%s\" and cluster.node_id "
                         "\"%s\" disagree; set only one",
                         cfg->config_path, cfg->node_id, cid);
  int rc = 0;
  if (cfg->node_id == NULL && cid)
    rc = set_string(&cfg->node_id, cid, "node_id", err);
  if (rc == 0 && cfg->grpc_listen == NULL && cfg->cluster.rpc_addr)
    rc = set_string(&cfg->grpc_listen, cfg->cluster.rpc_addr, "grpc_listen",
                    err);
  return rc;
}

static int apply_doc(struct stm_server_config *cfg, const struct stm_opt *opts,
                     size_t n, const struct stm_toml_doc *doc,
                     struct stm_error *err) {
  int rc = stm_cluster_config_from_toml(&cfg->cluster, doc, err);
  for (size_t i = 0; rc == 0 && i < stm_toml_count(doc); i++) {
    const struct stm_toml_item *it = stm_toml_item_at(doc, i);
    const struct stm_opt *o = stm_opts_find_file_key(opts, n, it->key);
    if (o)
      rc = apply_file_key(o, doc, it->key, err);
    else if (!stm_cluster_config_is_key(it->key))
      rc = note_unknown(cfg, it, err);
  }
  return rc ? rc : apply_cluster_fallbacks(cfg, err);
}

/* --config, else STEMEDB_CONFIG: read before the other layers, because
 * the file sits below them. */
static int load_file(struct stm_server_config *cfg, const struct stm_opt *opts,
                     size_t n, int argc, char **argv, struct stm_error *err) {
  const char *path = stm_opts_peek_flag(argc, argv, "config");
  if (path == NULL)
    path = getenv("STEMEDB_CONFIG");
  if (path == NULL || path[0] == '\0')
    return 0;
  int rc = set_string(&cfg->config_path, path, "config", err);
  struct stm_toml_doc *doc = NULL;
  if (rc == 0)
    rc = stm_toml_parse_file(path, &doc, err);
  if (rc == 0)
    rc = apply_doc(cfg, opts, n, doc, err);
  if (rc && err && err->message[0] && strstr(err->message, path) == NULL) {
    struct stm_error inner = *err;
    stm_error_set(err, rc, inner.field, "config file %s: %s", path,
                  inner.message);
  }
  stm_toml_delete(doc);
  return rc;
}

/* ------------------------------------------------------------------ */
/* after all layers                                                     */

/* "a:1, b:2" -> cluster seeds; empty items are dropped. */
static int apply_seeds_csv(struct stm_server_config *cfg, const char *csv,
                           struct stm_error *err) {
  char *copy = strdup(csv);
  const char **items = calloc(strlen(csv) / 2 + 1, sizeof *items);
  size_t n = 0;
  int rc = copy && items ? 0 : STM_ENOMEM;
  for (char *save = NULL, *t = rc ? NULL : strtok_r(copy, ", \t", &save); t;
       t = strtok_r(NULL, ", \t", &save))
    items[n++] = t;
  if (rc == 0)
    rc = stm_cluster_config_set_seeds(&cfg->cluster, items, n);
  free(items);
  free(copy);
  return rc ? stm_error_set(err, rc, "seeds", "out of memory") : 0;
}

static int host_name(char **out, struct stm_error *err) {
  char name[256] = "";
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0')
    snprintf(name, sizeof name, "localhost");
  return set_string(out, name, "node-id", err);
}

/* With the cluster on, derive the advertised addresses we can. */
static int derive_cluster_addrs(struct stm_server_config *cfg,
                                struct stm_error *err) {
  struct stm_cluster_config *c = &cfg->cluster;
  char host[STM_ADDR_MAX + 1];
  int rc = 0;
  if (c->rpc_addr == NULL &&
      stm_addr_parse("grpc-listen", cfg->grpc_listen, true, host, sizeof host,
                     NULL, NULL) == 0 &&
      !stm_addr_host_is_wildcard(host))
    rc = set_string(&c->rpc_addr, cfg->grpc_listen, "cluster.rpc_addr", err);
  if (rc == 0 && c->swim_addr == NULL && c->rpc_addr &&
      stm_addr_parse("cluster.rpc_addr", c->rpc_addr, false, host, sizeof host,
                     NULL, NULL) == 0) {
    char swim[STM_ADDR_MAX + 16];
    snprintf(swim, sizeof swim, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
             STM_CLUSTER_DEFAULT_SWIM_PORT);
    rc = set_string(&c->swim_addr, swim, "cluster.swim_addr", err);
  }
  return rc;
}

static int apply_write_quorum(struct stm_server_config *cfg, const char *q,
                              struct stm_error *err) {
  if (stm_write_quorum_parse(q, &cfg->cluster.write_quorum) == 0)
    return 0;
  return stm_error_set(err, STM_EINVAL, "write-quorum",
                       "--write-quorum (STEMEDB_WRITE_QUORUM, "
                       "replication.write_quorum) must be one, majority or "
                       "all, got \"%.64s\"",
                       q);
}

static int finish(struct stm_server_config *cfg,
                  const struct cluster_strings *cs, struct stm_error *err) {
  const char *seeds_csv = cs->seeds_csv;
  int rc = 0;
  if (cfg->grpc_listen == NULL)
    rc = set_string(&cfg->grpc_listen, STM_SERVER_DEFAULT_GRPC_LISTEN,
                    "grpc-listen", err);
  /* A member's id must not change with the host name (a replaced VM would
   * join as a stranger): clustered, it is given explicitly. */
  if (rc == 0 && cfg->node_id == NULL && cfg->cluster.enabled)
    rc = stm_error_set(err, STM_EINVAL, "cluster.node_id",
                       "cluster.node_id (or --node-id, STEMEDB_NODE_ID) is "
                       "required when cluster.enabled = true");
  if (rc == 0 && cfg->node_id == NULL)
    rc = host_name(&cfg->node_id, err);
  if (rc == 0 && seeds_csv)
    rc = apply_seeds_csv(cfg, seeds_csv, err);
  if (rc == 0 && cs->write_quorum)
    rc = apply_write_quorum(cfg, cs->write_quorum, err);
  if (rc == 0)
    rc =
        set_string(&cfg->cluster.node_id, cfg->node_id, "cluster.node_id", err);
  if (rc == 0 && cfg->cluster.enabled)
    rc = derive_cluster_addrs(cfg, err);
  return rc;
}

static const struct stm_opt *opt_named(const struct stm_opt *opts, size_t n,
                                       const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(opts[i].name, name) == 0)
      return &opts[i];
  return NULL;
}

/* An integer setting within [lo, hi], named by flag, variable and key. */
static int check_int(const struct stm_opt *opts, size_t n, const char *name,
                     int64_t lo, int64_t hi, struct stm_error *err) {
  const struct stm_opt *o = opt_named(opts, n, name);
  int64_t v = *(const int64_t *)o->target;
  if (v >= lo && v <= hi)
    return 0;
  return stm_error_set(err, STM_EINVAL, o->name,
                       "--%s (%s, %s) must be between %lld and %lld, got %lld",
                       o->name, o->env, o->file_key, (long long)lo,
                       (long long)hi, (long long)v);
}

static const struct {
  const char *name;
  unsigned bit;
} open_names[] = {{"health", STM_AUTH_OPEN_HEALTH},
                  {"status", STM_AUTH_OPEN_STATUS},
                  {"metrics", STM_AUTH_OPEN_METRICS}};

/* "health,status,metrics" (any subset, or "none") -> STM_AUTH_OPEN_*. */
static int parse_auth_open(const char *list, const char *field, unsigned *mask,
                           struct stm_error *err) {
  *mask = 0;
  if (list == NULL || strcmp(list, "none") == 0)
    return 0;
  for (const char *p = list; *p;) {
    size_t n = strcspn(p, ",");
    size_t i = 0;
    while (i < sizeof open_names / sizeof open_names[0] &&
           (strlen(open_names[i].name) != n ||
            strncmp(open_names[i].name, p, n) != 0))
      i++;
    if (i == sizeof open_names / sizeof open_names[0])
      return stm_error_set(err, STM_EINVAL, field,
                           "--%s: \"%.*s\" is not health, status, metrics "
                           "or none",
                           field, (int)(n > 32 ? 32 : n), p);
    *mask |= open_names[i].bit;
    p += n + (p[n] == ',');
  }
  return 0;
}

static int check_strings(const struct stm_server_config *cfg,
                         struct stm_error *err) {
  size_t len = strlen(cfg->data_dir);
  if (len == 0 || len > MAX_DATA_DIR)
    return stm_error_set(err, STM_EINVAL, "data-dir",
                         "--data-dir (STEMEDB_DATA_DIR, server.data_dir) must "
                         "be a path of 1 to %d bytes",
                         MAX_DATA_DIR);
  int rc =
      stm_addr_parse("grpc-listen", cfg->grpc_listen, true, NULL, 0, NULL, err);
  if (rc == 0)
    rc = stm_node_id_validate("node-id", cfg->node_id, err);
  enum stm_log_level level;
  if (rc == 0 && stm_log_parse_level(cfg->log_level, &level) != 0)
    rc = stm_error_set(err, STM_EINVAL, "log-level",
                       "--log-level (STEMEDB_LOG_LEVEL, server.log_level) "
                       "must be debug, info, warn or error, got \"%.64s\"",
                       cfg->log_level);
  bool cert = cfg->tls_cert && *cfg->tls_cert,
       key = cfg->tls_key && *cfg->tls_key;
  if (rc == 0 && cert != key)
    rc = stm_error_set(err, STM_EINVAL, cert ? "tls-key" : "tls-cert",
                       "--tls-cert (STEMEDB_TLS_CERT) and --tls-key "
                       "(STEMEDB_TLS_KEY) go together");
  if (rc == 0 && !cert && cfg->tls_client_ca && *cfg->tls_client_ca)
    rc = stm_error_set(err, STM_EINVAL, "tls-client-ca",
                       "--tls-client-ca (STEMEDB_TLS_CLIENT_CA) needs "
                       "--tls-cert and --tls-key");
  if (rc == 0 && !cert && cfg->peer_ca && *cfg->peer_ca)
    rc = stm_error_set(err, STM_EINVAL, "peer-ca",
                       "--peer-ca (STEMEDB_PEER_CA) needs --tls-cert and "
                       "--tls-key (peers are dialled over TLS only then)");
  if (rc == 0 && strcmp(cfg->auth, "off") != 0 &&
      strcmp(cfg->auth, "required") != 0)
    rc = stm_error_set(err, STM_EINVAL, "auth",
                       "--auth (STEMEDB_AUTH, server.auth) must be off or "
                       "required, got \"%.64s\"",
                       cfg->auth);
  return rc;
}

/* The request limits (issue 13); each error names its flag and range. */
static int validate_limits(const struct stm_opt *opts, size_t n,
                           struct stm_error *err) {
  int rc = check_int(opts, n, "watch-max-per-client", 1, 1000000, err);
  if (rc == 0)
    rc = check_int(opts, n, "max-batch", 1, STM_LIMIT_BATCH_CEIL, err);
  if (rc == 0)
    rc = check_int(opts, n, "max-concept-path-bytes", 16,
                   STM_LIMIT_CONCEPT_PATH_CEIL, err);
  if (rc == 0)
    rc = check_int(opts, n, "max-predicate-bytes", 16, STM_LIMIT_PREDICATE_CEIL,
                   err);
  if (rc == 0)
    rc = check_int(opts, n, "max-value-bytes", 16, STM_LIMIT_STRING_VALUE_CEIL,
                   err);
  if (rc == 0)
    rc = check_int(opts, n, "max-source-id-bytes", 16, STM_LIMIT_SOURCE_ID_CEIL,
                   err);
  return rc;
}

static int validate(const struct stm_server_config *cfg,
                    const struct stm_opt *opts, size_t n,
                    struct stm_error *err) {
  int rc = check_strings(cfg, err);
  if (rc == 0)
    rc = check_int(opts, n, "wal-segment-bytes", 64 * 1024,
                   4LL * 1024 * 1024 * 1024, err);
  if (rc == 0)
    rc = check_int(opts, n, "cq-threads", 1, 64, err);
  if (rc == 0)
    rc = check_int(opts, n, "max-message-bytes", 1024 * 1024, 256 * 1024 * 1024,
                   err);
  if (rc == 0)
    rc = check_int(opts, n, "shutdown-grace-ms", 0, 600000, err);
  if (rc == 0)
    rc = check_int(opts, n, "shutdown-delay-ms", 0, 600000, err);
  if (rc == 0)
    rc = check_int(opts, n, "watch-max-total", 1, 1000000, err);
  if (rc == 0)
    rc = check_int(opts, n, "watch-max-per-connection", 1, 1000000, err);
  if (rc == 0)
    rc = check_int(opts, n, "watch-buffer-events", 1, 1000000, err);
  if (rc == 0)
    rc = check_int(opts, n, "watch-history-events", 1, 10000000, err);
  if (rc == 0)
    rc = check_int(opts, n, "watch-max-lag-events", 1, INT64_C(1) << 40, err);
  if (rc == 0)
    rc = check_int(opts, n, "watch-retention-events", 0, INT64_C(1) << 50, err);
  if (rc == 0)
    rc = check_int(opts, n, "trust-half-life-s", 0,
                   INT64_C(100) * 365 * 24 * 3600, err);
  if (rc == 0)
    rc = check_int(opts, n, "listener-probe-ms", 0, 3600000, err);
  if (rc == 0 && cfg->listener_probe_ms > 0 && cfg->listener_probe_ms < 10)
    rc = check_int(opts, n, "listener-probe-ms", 10, 3600000, err);
  if (rc == 0)
    rc = check_int(opts, n, "request-id-window-s", 0, 7 * 24 * 3600, err);
  if (rc == 0)
    rc = check_int(opts, n, "disk-reserve-bytes", 0, INT64_C(1) << 40, err);
  if (rc == 0)
    rc = validate_limits(opts, n, err);
  if (rc == 0)
    rc = stm_cluster_config_validate(&cfg->cluster, err);
  return rc;
}

/* Flags after the file and the environment; no positional arguments. */
static int apply_flags(const struct stm_opt *opts, size_t n, int argc,
                       char **argv, struct stm_error *err) {
  int first = argc;
  int rc = stm_opts_apply_flags(opts, n, argc, argv, &first, err);
  if (rc == 0 && first < argc)
    rc = stm_error_set(err, STM_EINVAL, argv[first],
                       "unexpected argument \"%.100s\" (stemedb-server takes "
                       "only options; see --help)",
                       argv[first]);
  return rc;
}

int stm_server_config_load(struct stm_server_config *cfg, int argc, char **argv,
                           struct stm_error *err) {
  struct cluster_strings cs = {NULL, NULL};
  struct stm_opt opts[MAX_OPTS];
  int rc = set_defaults(cfg);
  size_t n = build_opts(cfg, &cs, opts);
  if (rc)
    return stm_error_set(err, rc, NULL, "out of memory");
  if (wants_help(argc, argv)) {
    stm_server_config_usage(stdout);
    return STM_SERVER_CONFIG_HELP;
  }
  if ((rc = load_file(cfg, opts, n, argc, argv, err)) == 0 &&
      (rc = stm_opts_apply_env(opts, n, err)) == 0 &&
      (rc = apply_flags(opts, n, argc, argv, err)) == 0 &&
      (rc = finish(cfg, &cs, err)) == 0)
    rc = validate(cfg, opts, n, err);
  if (rc == 0)
    rc =
        parse_auth_open(cfg->auth_open, "auth-open", &cfg->auth_open_mask, err);
  free(cs.seeds_csv);
  free(cs.write_quorum);
  return rc;
}
