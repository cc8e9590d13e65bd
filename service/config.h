/*
 * config.h - the settings of stemedb-server, from four layers with the
 * precedence flags > STEMEDB_* environment > config file > defaults.
 *
 *   flag                 environment                  file key          default
 *   --data-dir           STEMEDB_DATA_DIR             server.data_dir   ./data
 *   --grpc-listen        STEMEDB_GRPC_LISTEN          server.grpc_listen 0.0.0.0:18182
 *   --node-id            STEMEDB_NODE_ID              server.node_id    host name
 *   --config             STEMEDB_CONFIG               -                 none
 *   --log-level          STEMEDB_LOG_LEVEL            server.log_level  info
 *   --wal-segment-bytes  STEMEDB_WAL_SEGMENT_BYTES    server.wal_segment_bytes 64 MiB
 *   --cq-threads         STEMEDB_CQ_THREADS           server.cq_threads 2
 *   --max-message-bytes  STEMEDB_MAX_MESSAGE_BYTES    server.max_message_bytes 4 MiB
 *   --shutdown-grace-ms  STEMEDB_SHUTDOWN_GRACE_MS    server.shutdown_grace_ms 5000
 *   --shutdown-delay-ms  STEMEDB_SHUTDOWN_DELAY_MS    server.shutdown_delay_ms 200
 *   --watch-max-total    STEMEDB_WATCH_MAX_TOTAL      server.watch_max_total 16384
 *   --watch-max-per-connection STEMEDB_WATCH_MAX_PER_CONNECTION
 *                                                     server.watch_max_per_connection 4096
 *   --watch-max-per-client STEMEDB_WATCH_MAX_PER_CLIENT
 *                                                     server.watch_max_per_client 4096
 *   --max-batch          STEMEDB_MAX_BATCH            server.max_batch  10000
 *   --max-concept-path-bytes STEMEDB_MAX_CONCEPT_PATH_BYTES            512
 *   --max-predicate-bytes STEMEDB_MAX_PREDICATE_BYTES                  128
 *   --max-value-bytes    STEMEDB_MAX_VALUE_BYTES                       65536
 *   --max-source-id-bytes STEMEDB_MAX_SOURCE_ID_BYTES                  256
 *     (file keys server.max_*: the flag name with '_')
 *   --watch-buffer-events STEMEDB_WATCH_BUFFER_EVENTS server.watch_buffer_events 1024
 *   --watch-history-events STEMEDB_WATCH_HISTORY_EVENTS server.watch_history_events 8192
 *   --watch-max-lag-events STEMEDB_WATCH_MAX_LAG_EVENTS server.watch_max_lag_events 100000
 *   --watch-retention-events STEMEDB_WATCH_RETENTION_EVENTS
 *                                                     server.watch_retention_events 0
 *   --watch-memory-only  STEMEDB_WATCH_MEMORY_ONLY    server.watch_memory_only false
 *   --trust-half-life-s  STEMEDB_TRUST_HALF_LIFE_S    server.trust_half_life_s 2592000 (30 days)
 *   --listener-probe-ms  STEMEDB_LISTENER_PROBE_MS    server.listener_probe_ms 5000
 *   --trusted-proxies    STEMEDB_TRUSTED_PROXIES      server.trusted_proxies 127.0.0.1,::1
 *   --tls-cert FILE      STEMEDB_TLS_CERT             server.tls_cert   none
 *   --tls-key FILE       STEMEDB_TLS_KEY              server.tls_key    none
 *   --tls-client-ca FILE STEMEDB_TLS_CLIENT_CA        server.tls_client_ca none
 *   --peer-ca FILE       STEMEDB_PEER_CA              server.peer_ca    --tls-client-ca
 *   --auth off|required  STEMEDB_AUTH                 server.auth       off
 *   --auth-open LIST     STEMEDB_AUTH_OPEN            server.auth_open  health,status,metrics
 *   --rate-limits        STEMEDB_RATE_LIMITS          server.rate_limits *=5000:10000
 *   --quota-per-hour     STEMEDB_QUOTA_PER_HOUR       server.quota_per_hour 10000
 *   --quota-overrides    STEMEDB_QUOTA_OVERRIDES      server.quota_overrides none
 *   --request-id-window-s STEMEDB_REQUEST_ID_WINDOW_S server.request_id_window_s 600
 *   --disk-reserve-bytes STEMEDB_DISK_RESERVE_BYTES   server.disk_reserve_bytes 32 MiB
 *   --cluster            STEMEDB_CLUSTER_ENABLED      cluster.enabled   false
 *   --rpc-addr           STEMEDB_RPC_ADDR             cluster.rpc_addr  see below
 *   --swim-addr          STEMEDB_SWIM_ADDR            cluster.swim_addr see below
 *   --seeds a:1,b:2      STEMEDB_SEEDS                cluster.seeds     none
 *   --replication-factor STEMEDB_REPLICATION_FACTOR   replication.factor 1
 *   --bind-addr          STEMEDB_BIND_ADDR            cluster.bind_addr none
 *   --shards             STEMEDB_SHARDS               cluster.shards    64
 *   --write-quorum       STEMEDB_WRITE_QUORUM         replication.write_quorum one
 *   --cluster-key        STEMEDB_CLUSTER_KEY          cluster.cluster_key none
 *   --cluster-name       STEMEDB_CLUSTER_NAME         cluster.name      stemedb
 *   --probe-interval-ms  STEMEDB_PROBE_INTERVAL_MS    cluster.probe_interval_ms 1000
 *   --probe-timeout-ms   STEMEDB_PROBE_TIMEOUT_MS     cluster.probe_timeout_ms 500
 *   --suspicion-mult     STEMEDB_SUSPICION_MULT       cluster.suspicion_mult 4
 *   --suspicion-max-mult STEMEDB_SUSPICION_MAX_MULT   cluster.suspicion_max_mult 6
 *   --push-pull-interval-ms STEMEDB_PUSH_PULL_INTERVAL_MS
 *                                                     cluster.push_pull_interval_ms 30000
 *
 * The config file is TOML: a [server] table plus cluster.toml's [cluster]
 * and [replication] tables, so the runbook's cluster.toml is a complete
 * config file as it stands. Identity and address fall back on the cluster
 * keys:
 *  - node id: --node-id > STEMEDB_NODE_ID > server.node_id > cluster.node_id
 *    > host name. server.node_id and cluster.node_id must agree when both
 *    are given. cluster.node_id always ends up equal to node_id.
 *  - gRPC listen address: --grpc-listen > STEMEDB_GRPC_LISTEN >
 *    server.grpc_listen > cluster.rpc_addr > 0.0.0.0:18182.
 *  - With the cluster enabled, a missing rpc_addr is taken from the listen
 *    address when that names a concrete host, and a missing swim_addr is
 *    rpc_addr's host with port 18183.
 * Unknown keys in the file are warned about (stm_log_warn) and listed in
 * unknown_keys, never fatal.
 */
#ifndef STM_SERVICE_CONFIG_H
#define STM_SERVICE_CONFIG_H

#include "cluster/cluster_config.h"
#include "common/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define STM_SERVER_DEFAULT_TRUST_HALF_LIFE_S (INT64_C(30) * 24 * 3600)

/* stm_server_config_load() printed the usage: exit 0. */
#define STM_SERVER_CONFIG_HELP 1

#define STM_SERVER_DEFAULT_DATA_DIR "./data"
#define STM_SERVER_DEFAULT_GRPC_LISTEN "0.0.0.0:18182"
#define STM_SERVER_DEFAULT_LOG_LEVEL "info"
#define STM_SERVER_DEFAULT_WAL_SEGMENT_BYTES (INT64_C(64) * 1024 * 1024)
#define STM_SERVER_DEFAULT_CQ_THREADS 2
/* Requests are at most 1 MiB (DESIGN.md); the slack covers framing and
 * replies that are larger than their request. */
#define STM_SERVER_DEFAULT_MAX_MESSAGE_BYTES (INT64_C(4) * 1024 * 1024)
#define STM_SERVER_DEFAULT_SHUTDOWN_GRACE_MS 5000
/* Long enough for a load balancer's health probe to see NOT_SERVING. */
#define STM_SERVER_DEFAULT_SHUTDOWN_DELAY_MS 200
#define STM_SERVER_DEFAULT_WATCH_MAX_TOTAL 16384
#define STM_SERVER_DEFAULT_WATCH_MAX_PER_CONNECTION 4096
#define STM_SERVER_DEFAULT_WATCH_MAX_PER_CLIENT 4096
#define STM_SERVER_DEFAULT_WATCH_BUFFER_EVENTS 1024
#define STM_SERVER_DEFAULT_WATCH_HISTORY_EVENTS 8192
#define STM_SERVER_DEFAULT_WATCH_MAX_LAG_EVENTS 100000
#define STM_SERVER_DEFAULT_LISTENER_PROBE_MS 5000
#define STM_SERVER_DEFAULT_REQUEST_ID_WINDOW_S 600
/* Twice LevelDB's 16 MiB memtable: room to turn its log into a table. */
#define STM_SERVER_DEFAULT_DISK_RESERVE_BYTES (INT64_C(32) * 1024 * 1024)
/* The gateway runs beside the server; anyone else is recorded by address. */
#define STM_SERVER_DEFAULT_TRUSTED_PROXIES "127.0.0.1,::1"

/* All strings are malloc'd and owned by the struct. */
struct stm_server_config {
  char *data_dir;
  char *grpc_listen; /* host:port; port 0 picks a free port */
  char *node_id;
  char *config_path;                /* NULL when no file was given */
  char *log_level;                  /* debug, info, warn, error */
  int64_t wal_segment_bytes;        /* 64 KiB .. 4 GiB */
  char *wal_archive_command;        /* NULL or "": no WAL archival */
  int64_t cq_threads;               /* 1 .. 64 */
  int64_t max_message_bytes;        /* 1 MiB .. 256 MiB */
  int64_t shutdown_grace_ms;        /* 0 .. 600000 */
  int64_t watch_max_total;          /* 1 .. 1e6 */
  int64_t watch_max_per_connection; /* 1 .. 1e6 */
  int64_t watch_max_per_client;     /* 1 .. 1e6 */
  int64_t max_batch;                /* claims per AssertBatch, 1 .. 1e5 */
  int64_t max_concept_path_bytes;   /* 16 .. 4096 */
  int64_t max_predicate_bytes;      /* 16 .. 1024 */
  int64_t max_value_bytes;          /* 16 .. 16 MiB */
  int64_t max_source_id_bytes;      /* 16 .. 4096 */
  int64_t watch_buffer_events;      /* 1 .. 1e6, per stream */
  int64_t watch_history_events;     /* 1 .. 1e7, in memory */
  int64_t watch_max_lag_events;     /* 1 .. 2^40 sequences */
  int64_t watch_retention_events;   /* 0: all; else the replay window */
  bool watch_memory_only;           /* catch-up from the ring only */
  int64_t trust_half_life_s;        /* 0 (no decay) .. 100 years */
  int64_t shutdown_delay_ms;   /* 0 .. 600000: NOT_SERVING before stopping */
  int64_t listener_probe_ms;   /* 0 (off) or 10 .. 3600000 */
  char *trusted_proxies;       /* comma-separated IPs; "" none */
  char *auth;                  /* "off" or "required" (auth.h) */
  char *auth_open;             /* "health,status,metrics" subset or none */
  unsigned auth_open_mask;     /* STM_AUTH_OPEN_* parsed from auth_open */
  char *tls_cert, *tls_key;    /* PEM files (tls.h); NULL: plaintext */
  char *tls_client_ca;         /* PEM CA: mTLS; NULL: none */
  char *peer_ca;               /* PEM CA of peers; NULL: tls_client_ca */
  char *rate_limits;           /* ratelimit.h spec; "off": none */
  int64_t quota_per_hour;      /* quota.h; 0: off */
  char *quota_overrides;       /* "AGENT=UNITS,..." or NULL */
  int64_t request_id_window_s; /* 0 (off) .. 7 days */
  int64_t disk_reserve_bytes;  /* 0 (none) .. 1 TiB */
  struct stm_cluster_config cluster;
  char **unknown_keys; /* config-file keys we ignored */
  size_t unknown_key_count;
};

/*
 * Fill `cfg` from defaults, the config file (--config or STEMEDB_CONFIG),
 * the STEMEDB_* environment and argv (argv[0] is the program name; every
 * other argument must be an option). Validates the result.
 *
 * Returns 0; STM_SERVER_CONFIG_HELP after printing the usage to stdout for
 * --help / -h; or a negative STM_E* code with err naming the setting (for
 * example field "cq-threads" and "--cq-threads (STEMEDB_CQ_THREADS,
 * server.cq_threads) must be between 1 and 64, got 0", or the file's
 * "line L, column C" for a syntax error). In every case `cfg` is
 * initialized and must be released with stm_server_config_destroy().
 * Reads the environment; not thread-safe.
 */
int stm_server_config_load(struct stm_server_config *cfg, int argc, char **argv,
                           struct stm_error *err);

/* Print the usage (every option with its variable and default). */
void stm_server_config_usage(FILE *out);

/* Free everything `cfg` owns; safe on a zeroed or loaded struct. */
void stm_server_config_destroy(struct stm_server_config *cfg);

#endif
