/*
 * stemedb: the command-line client of stemedb-server.
 *
 *   stemedb [--server ADDR] [--timeout-ms N] [--json] [--api-key KEY]
 *           [--server-ca FILE [--server-cert FILE --server-key FILE]]
 *           COMMAND [ARGS]
 *
 * Exit status: 0 success, 1 the server answered with an error or could not
 * be reached, 2 usage error (nothing was sent).
 */
#include "cli.h"

#include "common/validate.h"

#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct stm_cli_command commands[] = {
    {"status", "status", stm_cli_cmd_status},
    {"assert",
     "assert PATH PREDICATE VALUE [--source S] [--confidence C] "
     "[--parent HASH] [--timestamp-ns T] "
     "[--type string|number|bool|ref] [--sign KEYFILE]",
     stm_cli_cmd_assert},
    {"keygen", "keygen --out KEYFILE", stm_cli_cmd_keygen},
    {"keys",
     "keys create --role reader|writer|admin --name NAME | keys list | "
     "keys revoke ID",
     stm_cli_cmd_keys},
    {"query",
     "query PATH [--predicate P] [--lens L] [--as-of-sequence N] "
     "[--descendants]",
     stm_cli_cmd_query},
    {"get", "get HASH [--as-of-sequence N]", stm_cli_cmd_get},
    {"bench", "bench assert|query --clients N --duration S [...]",
     stm_cli_cmd_bench},
    {"backup", "backup --out FILE", stm_cli_cmd_backup},
    {"verify", "verify FILE", stm_cli_cmd_verify},
    {"restore",
     "restore FILE --data-dir DIR [--to-sequence N | --to-time T] "
     "[--wal-archive DIR] [--force]",
     stm_cli_cmd_restore},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out, struct stm_cli *cli) {
  struct stm_opt g[STM_CLI_GLOBAL_OPTS];
  size_t n = stm_cli_global_opts(cli, g);
  stm_opts_usage(out, "stemedb [options] COMMAND [ARGS]", g, n);
  fputs("\ncommands:\n", out);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(out, "  stemedb %s\n", commands[i].usage);
  fputs("\n`stemedb COMMAND --help` lists a command's options. Exit status: "
        "0 ok, 1 server error,\n2 usage error.\n",
        out);
}

/* Global options before the command; returns its index, or a negative
 * exit code to return at once. */
static int parse_globals(struct stm_cli *cli, int argc, char **argv) {
  struct stm_opt g[STM_CLI_GLOBAL_OPTS];
  size_t n = stm_cli_global_opts(cli, g);
  struct stm_error err;
  stm_error_clear(&err);
  int first = argc;
  int rc = stm_opts_apply_env(g, n, &err);
  if (rc == 0)
    rc = stm_opts_apply_flags(g, n, argc, argv, &first, &err);
  if (rc == STM_ENOTFOUND) {
    usage(stdout, cli);
    return -STM_CLI_OK - 1;
  }
  if (rc) {
    fprintf(stderr, "stemedb: %s\n", err.message);
    return -STM_CLI_EUSAGE - 1;
  }
  if (first >= argc) {
    usage(stderr, cli);
    return -STM_CLI_EUSAGE - 1;
  }
  return first;
}

static int dispatch(struct stm_cli *cli, int argc, char **argv) {
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (strcmp(argv[0], commands[i].name) == 0)
      return commands[i].run(cli, argc, argv);
  if (strcmp(argv[0], "help") == 0) {
    usage(stdout, cli);
    return STM_CLI_OK;
  }
  fprintf(stderr, "stemedb: unknown command \"%.100s\" (see stemedb --help)\n",
          argv[0]);
  return STM_CLI_EUSAGE;
}

/*
 * The length limits of common/validate.c are the server's to set
 * (--max-concept-path-bytes, --max-value-bytes, ...): a server may accept
 * more than the compiled-in defaults, so the CLI checks only what no
 * option changes (characters, segments, hashes, ranges) and lets the
 * server refuse a length, naming the field and the option to raise.
 */
static void lengths_are_the_servers(void) {
  struct stm_limits l = *stm_limits_get();
  l.concept_path = l.predicate = l.string_value = l.source_id = UINT32_MAX;
  l.batch = UINT32_MAX;
  stm_limits_set(&l);
}

int main(int argc, char **argv) {
  struct stm_cli cli = {.server = strdup(STM_CLI_DEFAULT_SERVER),
                        .timeout_ms = STM_CLI_DEFAULT_TIMEOUT_MS};
  int first = parse_globals(&cli, argc, argv);
  if (first < 0) {
    free(cli.server);
    free(cli.api_key);
    free(cli.server_ca);
    free(cli.server_cert);
    free(cli.server_key);
    return -first - 1;
  }
  /* gRPC's own log lines would only repeat what we report. */
  gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
  lengths_are_the_servers();
  grpc_init();
  int rc = dispatch(&cli, argc - first, argv + first);
  if (cli.channel)
    grpc_channel_destroy(cli.channel);
  stm_rpc_set_channel_credentials(NULL); /* --server-ca's, if any */
  grpc_shutdown();
  free(cli.server);
  free(cli.api_key);
  free(cli.server_ca);
  free(cli.server_cert);
  free(cli.server_key);
  return rc;
}
