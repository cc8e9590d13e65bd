/* Tests for service/config: flags > STEMEDB_* > config file > defaults. */
#include "fixtures/seed_toml.h"
#include "harness.h"
#include "service/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARGC(a) ((int)(sizeof(a) / sizeof(a)[0]) - 1)

static const char *const env_names[] = {"STEMEDB_DATA_DIR",
                                        "STEMEDB_GRPC_LISTEN",
                                        "STEMEDB_NODE_ID",
                                        "STEMEDB_CONFIG",
                                        "STEMEDB_LOG_LEVEL",
                                        "STEMEDB_WAL_SEGMENT_BYTES",
                                        "STEMEDB_CQ_THREADS",
                                        "STEMEDB_MAX_MESSAGE_BYTES",
                                        "STEMEDB_SHUTDOWN_GRACE_MS",
                                        "STEMEDB_CLUSTER_ENABLED",
                                        "STEMEDB_RPC_ADDR",
                                        "STEMEDB_SWIM_ADDR",
                                        "STEMEDB_SEEDS",
                                        "STEMEDB_REPLICATION_FACTOR",
                                        "STEMEDB_BIND_ADDR",
                                        "STEMEDB_SHARDS",
                                        "STEMEDB_WRITE_QUORUM",
                                        "STEMEDB_CLUSTER_KEY",
                                        "STEMEDB_CLUSTER_NAME",
                                        "STEMEDB_PROBE_INTERVAL_MS",
                                        "STEMEDB_PROBE_TIMEOUT_MS",
                                        "STEMEDB_SUSPICION_MULT",
                                        "STEMEDB_SUSPICION_MAX_MULT",
                                        "STEMEDB_PUSH_PULL_INTERVAL_MS"};

static char *tmpdir;

static void clear_env(void) {
  for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
    unsetenv(env_names[i]);
}

/* Write `text` to <tmpdir>/<name>; returns the path (static buffer). */
static const char *write_file(const char *name, const char *text) {
  static char path[600];
  if (tmpdir == NULL)
    tmpdir = stm_test_tmpdir("config");
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(text, f);
  fclose(f);
  return path;
}

/* Load from argv; returns the code, cfg must be destroyed by the caller. */
static int load(struct stm_server_config *cfg, int argc, char **argv,
                struct stm_error *err) {
  stm_error_clear(err);
  return stm_server_config_load(cfg, argc, argv, err);
}

static void expect_error(int argc, char **argv, int code, const char *field,
                         const char *want) {
  struct stm_server_config cfg;
  struct stm_error err;
  CU_ASSERT_EQUAL(load(&cfg, argc, argv, &err), code);
  CU_ASSERT_STRING_EQUAL(err.field, field);
  if (strstr(err.message, want) == NULL)
    fprintf(stderr, "\nwanted \"%s\" in \"%s\"\n", want, err.message);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, want));
  stm_server_config_destroy(&cfg);
}

static void test_config_defaults_match_the_command_line_contract(void) {
  clear_env();
  char *argv[] = {"stemedb-server", NULL};
  struct stm_server_config cfg;
  struct stm_error err;
  CU_ASSERT_EQUAL_FATAL(load(&cfg, ARGC(argv), argv, &err), 0);
  CU_ASSERT_STRING_EQUAL(cfg.data_dir, "./data");
  CU_ASSERT_STRING_EQUAL(cfg.grpc_listen, "0.0.0.0:18182");
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  CU_ASSERT_STRING_EQUAL(cfg.node_id, host[0] ? host : "localhost");
  CU_ASSERT_PTR_NULL(cfg.config_path);
  CU_ASSERT_STRING_EQUAL(cfg.log_level, "info");
  CU_ASSERT_EQUAL(cfg.wal_segment_bytes, 64 * 1024 * 1024);
  CU_ASSERT_EQUAL(cfg.cq_threads, 2);
  CU_ASSERT_EQUAL(cfg.max_message_bytes, 4 * 1024 * 1024);
  CU_ASSERT_EQUAL(cfg.shutdown_grace_ms, 5000);
  CU_ASSERT_FALSE(cfg.cluster.enabled);
  CU_ASSERT_STRING_EQUAL(cfg.cluster.node_id, cfg.node_id);
  CU_ASSERT_EQUAL(cfg.cluster.shards, 64);
  stm_server_config_destroy(&cfg);
}

static const char *precedence_file(void) {
  return write_file("prec.toml", "[server]\n"
                                 "data_dir = \"/from/file\"\n"
                                 "grpc_listen = \"127.0.0.1:1001\"\n"
                                 "node_id = \"file-node\"\n"
                                 "log_level = \"warn\"\n"
                                 "cq_threads = 3\n");
}

static void test_config_flag_beats_env_beats_file_beats_default(void) {
  clear_env();
  const char *path = precedence_file();
  char *full[] = {"stemedb-server", "--config",   (char *)path,
                  "--data-dir",     "/from/flag", "--node-id=flag-node",
                  "--cq-threads",   "5",          NULL};
  char *file_only[] = {"stemedb-server", "--config", (char *)path, NULL};
  struct stm_server_config cfg;
  struct stm_error err;

  setenv("STEMEDB_DATA_DIR", "/from/env", 1);
  setenv("STEMEDB_NODE_ID", "env-node", 1);
  setenv("STEMEDB_LOG_LEVEL", "debug", 1);
  setenv("STEMEDB_CQ_THREADS", "4", 1);
  CU_ASSERT_EQUAL_FATAL(load(&cfg, ARGC(full), full, &err), 0);
  CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/from/flag");        /* flag */
  CU_ASSERT_STRING_EQUAL(cfg.node_id, "flag-node");          /* flag */
  CU_ASSERT_EQUAL(cfg.cq_threads, 5);                        /* flag */
  CU_ASSERT_STRING_EQUAL(cfg.log_level, "debug");            /* env */
  CU_ASSERT_STRING_EQUAL(cfg.grpc_listen, "127.0.0.1:1001"); /* file */
  CU_ASSERT_EQUAL(cfg.shutdown_grace_ms, 5000);              /* default */
  CU_ASSERT_STRING_EQUAL(cfg.config_path, path);
  stm_server_config_destroy(&cfg);

  CU_ASSERT_EQUAL_FATAL(load(&cfg, ARGC(file_only), file_only, &err), 0);
  CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/from/env");
  CU_ASSERT_STRING_EQUAL(cfg.node_id, "env-node");
  CU_ASSERT_EQUAL(cfg.cq_threads, 4);
  stm_server_config_destroy(&cfg);

  clear_env();
  CU_ASSERT_EQUAL_FATAL(load(&cfg, ARGC(file_only), file_only, &err), 0);
  CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/from/file");
  CU_ASSERT_STRING_EQUAL(cfg.node_id, "file-node");
  CU_ASSERT_STRING_EQUAL(cfg.log_level, "warn");
  CU_ASSERT_EQUAL(cfg.cq_threads, 3);
  stm_server_config_destroy(&cfg);
}

static void test_config_file_may_come_from_stemedb_config(void) {
  clear_env();
  setenv("STEMEDB_CONFIG", precedence_file(), 1);
  char *argv[] = {"stemedb-server", NULL};
  struct stm_server_config cfg;
  struct stm_error err;
  CU_ASSERT_EQUAL_FATAL(load(&cfg, ARGC(argv), argv, &err), 0);
  CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/from/file");
  stm_server_config_destroy(&cfg);
  clear_env();
}

static void test_config_reads_the_seed_cluster_toml_verbatim(void) {
  clear_env();
  const char *path = write_file("cluster.toml", stm_test_seed_node1_toml);
  char *argv[] = {"stemedb-server", "--config", (char *)path, NULL};
  struct stm_server_config cfg;
  struct stm_error err;
  int rc = load(&cfg, ARGC(argv), argv, &err);
  if (rc)
    fprintf(stderr, "\n%s\n", err.message);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT_STRING_EQUAL(cfg.node_id, "node1");
  CU_ASSERT_STRING_EQUAL(cfg.grpc_listen, "10.0.1.51:18182");
  CU_ASSERT_STRING_EQUAL(cfg.data_dir, "./data");
  CU_ASSERT_TRUE(cfg.cluster.enabled);
  CU_ASSERT_STRING_EQUAL(cfg.cluster.node_id, "node1");
  CU_ASSERT_STRING_EQUAL(cfg.cluster.bind_addr, "10.0.1.51:18181");
  CU_ASSERT_STRING_EQUAL(cfg.cluster.rpc_addr, "10.0.1.51:18182");
  CU_ASSERT_STRING_EQUAL(cfg.cluster.swim_addr, "10.0.1.51:18183");
  CU_ASSERT_EQUAL_FATAL(cfg.cluster.seed_count, 2);
  CU_ASSERT_STRING_EQUAL(cfg.cluster.seeds[1], "10.0.1.53:18183");
  CU_ASSERT_EQUAL(cfg.cluster.replication_factor, 2);
  CU_ASSERT_EQUAL(cfg.unknown_key_count, 0);
  stm_server_config_destroy(&cfg);

  /* The environment still overrides what the file says. */
  setenv("STEMEDB_NODE_ID", "node1b", 1);
  setenv("STEMEDB_GRPC_LISTEN", "0.0.0.0:18182", 1);
  CU_ASSERT_EQUAL_FATAL(load(&cfg, ARGC(argv), argv, &err), 0);
  CU_ASSERT_STRING_EQUAL(cfg.node_id, "node1b");
  CU_ASSERT_STRING_EQUAL(cfg.cluster.node_id, "node1b");
  CU_ASSERT_STRING_EQUAL(cfg.grpc_listen, "0.0.0.0:18182");
  CU_ASSERT_STRING_EQUAL(cfg.cluster.rpc_addr, "10.0.1.51:18182");
  stm_server_config_destroy(&cfg);
  clear_env();
}

static void test_config_server_table_wins_over_cluster_keys(void) {
  clear_env();
  const char *path = write_file(
      "both.toml", "[server]\ngrpc_listen = \"0.0.0.0:9000\"\n"
                   "node_id = \"node1\"\n[cluster]\nnode_id = \"node1\"\n"
                   "rpc_addr = \"10.0.0.1:9000\"\n");
  char *argv[] = {"stemedb-server", "--config", (char *)path, NULL};
  struct stm_server_config cfg;
  struct stm_error err;
  CU_ASSERT_EQUAL_FATAL(load(&cfg, ARGC(argv), argv, &err), 0);
  CU_ASSERT_STRING_EQUAL(cfg.grpc_listen, "0.0.0.0:9000");
  stm_server_config_destroy(&cfg);
  path = write_file("clash.toml", "[server]\nnode_id = \"a\"\n[cluster]\n"
                                  "node_id = \"b\"\n");
  expect_error(ARGC(argv), argv, STM_EINVAL, "cluster.node_id", "disagree");
}

static void test_config_cluster_flags_derive_addresses(void) {
  clear_env();
  setenv("STEMEDB_SEEDS", "10.0.0.2:18183, 10.0.0.3:18183", 1);
  char *argv[] = {"stemedb-server", "--cluster",      "--node-id", "n1",
                  "--grpc-listen",  "10.0.0.1:18182", NULL};
  struct stm_server_config cfg;
  struct stm_error err;
  CU_ASSERT_EQUAL_FATAL(load(&cfg, ARGC(argv), argv, &err), 0);
  CU_ASSERT_TRUE(cfg.cluster.enabled);
  CU_ASSERT_STRING_EQUAL(cfg.cluster.rpc_addr, "10.0.0.1:18182");
  CU_ASSERT_STRING_EQUAL(cfg.cluster.swim_addr, "10.0.0.1:18183");
  CU_ASSERT_EQUAL_FATAL(cfg.cluster.seed_count, 2);
  CU_ASSERT_STRING_EQUAL(cfg.cluster.seeds[1], "10.0.0.3:18183");
  stm_server_config_destroy(&cfg);
  clear_env();
  char *wild[] = {"stemedb-server", "--cluster", "--node-id", "n1", NULL};
  expect_error(ARGC(wild), wild, STM_EINVAL, "cluster.rpc_addr",
               "required when cluster.enabled = true");
  /* Clustered, the id is never the host name by default. */
  char *anon[] = {"stemedb-server", "--cluster", "--grpc-listen",
                  "10.0.0.1:18182", NULL};
  expect_error(ARGC(anon), anon, STM_EINVAL, "cluster.node_id",
               "required when cluster.enabled = true");
}

/* Every cluster.toml key is also a STEMEDB_* variable, above the file and
 * below the flags. */
static void test_config_every_cluster_key_has_a_variable(void) {
  clear_env();
  const char *path = write_file("c.toml", stm_test_seed_node1_toml);
  static const char *const vars[][2] = {
      {"STEMEDB_BIND_ADDR", "10.0.0.9:18181"},
      {"STEMEDB_SHARDS", "128"},
      {"STEMEDB_WRITE_QUORUM", "majority"},
      {"STEMEDB_CLUSTER_KEY", "s3cret"},
      {"STEMEDB_CLUSTER_NAME", "prod"},
      {"STEMEDB_PROBE_INTERVAL_MS", "300"},
      {"STEMEDB_PROBE_TIMEOUT_MS", "150"},
      {"STEMEDB_SUSPICION_MULT", "5"},
      {"STEMEDB_SUSPICION_MAX_MULT", "7"},
      {"STEMEDB_PUSH_PULL_INTERVAL_MS", "9000"},
      {"STEMEDB_REPLICATION_FACTOR", "3"}};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    setenv(vars[i][0], vars[i][1], 1);
  char *argv[] = {"stemedb-server", "--config", (char *)path,
                  "--write-quorum", "all",      NULL};
  struct stm_server_config cfg;
  struct stm_error err;
  CU_ASSERT_EQUAL_FATAL(load(&cfg, ARGC(argv), argv, &err), 0);
  const struct stm_cluster_config *c = &cfg.cluster;
  CU_ASSERT_STRING_EQUAL(c->bind_addr, "10.0.0.9:18181");
  CU_ASSERT_EQUAL(c->shards, 128);
  CU_ASSERT_EQUAL(c->write_quorum, STM_WRITE_QUORUM_ALL); /* the flag */
  CU_ASSERT_STRING_EQUAL(c->cluster_key, "s3cret");
  CU_ASSERT_STRING_EQUAL(c->name, "prod");
  CU_ASSERT_EQUAL(c->probe_interval_ms, 300);
  CU_ASSERT_EQUAL(c->probe_timeout_ms, 150);
  CU_ASSERT_EQUAL(c->suspicion_mult, 5);
  CU_ASSERT_EQUAL(c->suspicion_max_mult, 7);
  CU_ASSERT_EQUAL(c->push_pull_interval_ms, 9000);
  CU_ASSERT_EQUAL(c->replication_factor, 3);
  CU_ASSERT_STRING_EQUAL(c->node_id, "node1"); /* from the file */
  stm_server_config_destroy(&cfg);
  setenv("STEMEDB_WRITE_QUORUM", "most", 1);
  char *bad[] = {"stemedb-server", "--config", (char *)path, NULL};
  expect_error(ARGC(bad), bad, STM_EINVAL, "write-quorum",
               "must be one, majority or all, got \"most\"");
  clear_env();
}

static void test_config_bad_values_are_named(void) {
  clear_env();
  char *a[] = {"stemedb-server", "--cq-threads", "0", NULL};
  expect_error(ARGC(a), a, STM_EINVAL, "cq-threads",
               "--cq-threads (STEMEDB_CQ_THREADS, server.cq_threads) must be "
               "between 1 and 64, got 0");
  char *b[] = {"stemedb-server", "--grpc-listen", "localhost", NULL};
  expect_error(ARGC(b), b, STM_EINVAL, "grpc-listen", "port is missing");
  char *c[] = {"stemedb-server", "--wal-segment-bytes", "64MiB", NULL};
  expect_error(ARGC(c), c, STM_EINVAL, "wal-segment-bytes",
               "must be an integer");
  char *d[] = {"stemedb-server", "--bogus", NULL};
  expect_error(ARGC(d), d, STM_EINVAL, "--bogus", "unknown option --bogus");
  char *e[] = {"stemedb-server", "serve", NULL};
  expect_error(ARGC(e), e, STM_EINVAL, "serve", "unexpected argument");
  char *f[] = {"stemedb-server", "--node-id", "has space", NULL};
  expect_error(ARGC(f), f, STM_EINVAL, "node-id", "may only contain");
  char *g[] = {"stemedb-server", "--seeds", "10.0.0.2", NULL};
  expect_error(ARGC(g), g, STM_EINVAL, "cluster.seeds[0]", "port is missing");
  setenv("STEMEDB_LOG_LEVEL", "loud", 1);
  char *h[] = {"stemedb-server", NULL};
  expect_error(ARGC(h), h, STM_EINVAL, "log-level", "got \"loud\"");
  clear_env();
  setenv("STEMEDB_MAX_MESSAGE_BYTES", "1000", 1);
  expect_error(ARGC(h), h, STM_EINVAL, "max-message-bytes", "got 1000");
  clear_env();
  /* Peers are dialled over TLS only with the node's own certificate. */
  char *i[] = {"stemedb-server", "--peer-ca", "ca.crt", NULL};
  expect_error(ARGC(i), i, STM_EINVAL, "peer-ca",
               "--peer-ca (STEMEDB_PEER_CA) needs --tls-cert and --tls-key");
}

static void test_config_file_errors_name_file_key_and_line(void) {
  clear_env();
  const char *path = write_file("bad.toml", "[server]\ncq_threads = \"2\"\n");
  char *argv[] = {"stemedb-server", "--config", (char *)path, NULL};
  expect_error(ARGC(argv), argv, STM_EINVAL, "server.cq_threads",
               "server.cq_threads must be an integer, got string (line 2)");
  path = write_file("syntax.toml", "[server]\ndata_dir = /var/lib\n");
  expect_error(ARGC(argv), argv, STM_EINVAL, path, "line 2, column 12");
  path = write_file("range.toml", "[replication]\nfactor = 0\n");
  expect_error(ARGC(argv), argv, STM_EINVAL, "replication.factor", "got 0");
  char *missing[] = {"stemedb-server", "--config", "/nonexistent/x.toml", NULL};
  expect_error(ARGC(missing), missing, STM_ENOTFOUND, "/nonexistent/x.toml",
               "cannot open /nonexistent/x.toml");
}

static void test_config_unknown_keys_are_listed_not_fatal(void) {
  clear_env();
  const char *path = write_file(
      "unknown.toml", "[server]\ndata_dri = 'x'\n[cluster]\nsedes = []\n");
  char *argv[] = {"stemedb-server", "--config", (char *)path, NULL};
  struct stm_server_config cfg;
  struct stm_error err;
  CU_ASSERT_EQUAL_FATAL(load(&cfg, ARGC(argv), argv, &err), 0);
  CU_ASSERT_EQUAL_FATAL(cfg.unknown_key_count, 2);
  CU_ASSERT_STRING_EQUAL(cfg.unknown_keys[0], "server.data_dri");
  CU_ASSERT_STRING_EQUAL(cfg.unknown_keys[1], "cluster.sedes");
  stm_server_config_destroy(&cfg);
}

static void test_config_help_returns_its_own_code(void) {
  clear_env();
  /* --help wins even over a broken config file. */
  setenv("STEMEDB_CONFIG", "/nonexistent/x.toml", 1);
  char *argv[] = {"stemedb-server", "--data-dir", "x", "--help", NULL};
  struct stm_server_config cfg;
  struct stm_error err;
  fflush(stdout);
  FILE *saved = stdout;
  FILE *sink = fopen("/dev/null", "w");
  stdout = sink;
  int rc = load(&cfg, ARGC(argv), argv, &err);
  stdout = saved;
  fclose(sink);
  CU_ASSERT_EQUAL(rc, STM_SERVER_CONFIG_HELP);
  stm_server_config_destroy(&cfg);
  clear_env();
  char *buf = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&buf, &len);
  stm_server_config_usage(mem);
  fclose(mem);
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "--data-dir"));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "STEMEDB_GRPC_LISTEN"));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "0.0.0.0:18182"));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "--log-level"));
  free(buf);
}

static const struct stm_test_case config_cases[] = {
    STM_TEST(test_config_defaults_match_the_command_line_contract),
    STM_TEST(test_config_flag_beats_env_beats_file_beats_default),
    STM_TEST(test_config_file_may_come_from_stemedb_config),
    STM_TEST(test_config_reads_the_seed_cluster_toml_verbatim),
    STM_TEST(test_config_server_table_wins_over_cluster_keys),
    STM_TEST(test_config_cluster_flags_derive_addresses),
    STM_TEST(test_config_every_cluster_key_has_a_variable),
    STM_TEST(test_config_bad_values_are_named),
    STM_TEST(test_config_file_errors_name_file_key_and_line),
    STM_TEST(test_config_unknown_keys_are_listed_not_fatal),
    STM_TEST(test_config_help_returns_its_own_code),
    STM_TEST_END};

int main(void) {
  stm_test_suite("config", config_cases);
  int rc = stm_test_run_all();
  stm_test_rmrf(tmpdir);
  free(tmpdir);
  return rc;
}
