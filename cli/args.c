/* Argument parsing for subcommands: options and positionals interleaved. */
#include "cli.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t stm_cli_global_opts(struct stm_cli *cli, struct stm_opt *out) {
  const struct stm_opt g[] = {
      {"server", "STEMEDB_SERVER", NULL, STM_OPT_STRING, &cli->server,
       "gRPC address of stemedb-server, host:port"},
      {"timeout-ms", "STEMEDB_TIMEOUT_MS", NULL, STM_OPT_INT, &cli->timeout_ms,
       "deadline of each call in milliseconds (0: none)"},
      {"json", NULL, NULL, STM_OPT_BOOL, &cli->json,
       "print the result as one line of JSON"},
      {"api-key", "STEMEDB_API_KEY", NULL, STM_OPT_STRING, &cli->api_key,
       "API key sent as authorization: Bearer KEY (servers with auth "
       "required)"},
      {"server-ca", "STEMEDB_SERVER_CA", NULL, STM_OPT_STRING, &cli->server_ca,
       "PEM CA bundle: reach the server over TLS and verify its certificate "
       "against the --server address"},
      {"server-cert", "STEMEDB_SERVER_CERT", NULL, STM_OPT_STRING,
       &cli->server_cert,
       "PEM client certificate for a server that requires one (mTLS; with "
       "--server-key and --server-ca)"},
      {"server-key", "STEMEDB_SERVER_KEY", NULL, STM_OPT_STRING,
       &cli->server_key, "PEM private key of --server-cert"},
  };
  _Static_assert(sizeof g / sizeof g[0] <= STM_CLI_GLOBAL_OPTS,
                 "raise STM_CLI_GLOBAL_OPTS");
  memcpy(out, g, sizeof g);
  return sizeof g / sizeof g[0];
}

int(stm_cli_usage_error)(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "stemedb %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (see stemedb %s --help)\n", cmd);
  va_end(ap);
  return STM_CLI_EUSAGE;
}

bool stm_cli_parse_double(const char *s, double *out) {
  char *end;
  if (s == NULL || *s == '\0' || *s == ' ' || *s == '\t')
    return false;
  if (strpbrk(s, "xXpP"))
    return false; /* no hex floats: "0x10" stays a string */
  double v = strtod(s, &end);
  if (*end != '\0' || !isfinite(v))
    return false;
  *out = v;
  return true;
}

/* TLS credentials of every channel, from the global options once they
 * are all parsed: before the first channel is made. */
static int tls_setup(struct stm_cli *cli, const char *cmd) {
  bool has_ca = cli->server_ca && *cli->server_ca;
  if (cli->tls_set || (!has_ca && !(cli->server_cert && *cli->server_cert) &&
                       !(cli->server_key && *cli->server_key)))
    return 0;
  if (!has_ca)
    return stm_cli_usage_error(cmd, "--server-cert and --server-key need "
                                    "--server-ca (STEMEDB_SERVER_CA)");
  static const struct stm_rpc_tls_names names = {"server-ca", "server-cert",
                                                 "server-key"};
  struct stm_error err;
  stm_error_clear(&err);
  grpc_channel_credentials *c = NULL;
  if (stm_rpc_tls_credentials(cli->server_ca, cli->server_cert, cli->server_key,
                              &names, &c, &err) != 0)
    return stm_cli_usage_error(cmd, "%s", err.message);
  stm_rpc_set_channel_credentials(c);
  cli->tls_set = true;
  return 0;
}

static void print_help(const struct stm_cli_command *cmd,
                       const struct stm_opt *all, size_t n) {
  char line[256];
  snprintf(line, sizeof line, "stemedb %s", cmd->usage);
  stm_opts_usage(stdout, line, all, n);
}

/* Index of "--" in argv (argc when absent). */
static int find_dashdash(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--") == 0)
      return i;
  return argc;
}

static bool is_option(const char *a) {
  return (a[0] == '-' && a[1] == '-' && a[2] != '\0') || strcmp(a, "-h") == 0;
}

static int take_positional(const struct stm_cli_command *cmd, char *arg,
                           char **pos, int max_pos, int *npos) {
  if (*npos >= max_pos)
    return stm_cli_usage_error(cmd->name, "unexpected argument \"%.100s\"",
                               arg);
  pos[(*npos)++] = arg;
  return 0;
}

int stm_cli_parse(struct stm_cli *cli, const struct stm_cli_command *cmd,
                  const struct stm_opt *opts, size_t n, int argc, char **argv,
                  char **pos, int min_pos, int max_pos, int *npos) {
  struct stm_opt all[STM_CLI_MAX_OPTS];
  if (n)
    memcpy(all, opts, n * sizeof *opts);
  size_t total = n + stm_cli_global_opts(cli, all + n);
  int dd = find_dashdash(argc, argv), rc = 0;
  *npos = 0;
  for (int i = 1; rc == 0 && i < dd;) {
    if (!is_option(argv[i])) {
      rc = take_positional(cmd, argv[i++], pos, max_pos, npos);
      continue;
    }
    /* stm_opts_apply_flags skips its argv[0]: hand it argv[i-1..dd). */
    struct stm_error err;
    stm_error_clear(&err);
    int first = 0;
    int orc = stm_opts_apply_flags(all, total, dd - i + 1, argv + i - 1, &first,
                                   &err);
    if (orc == STM_ENOTFOUND) {
      print_help(cmd, all, total);
      return STM_CLI_HELP;
    }
    if (orc)
      return stm_cli_usage_error(cmd->name, "%s", err.message);
    i += first - 1;
  }
  for (int i = dd + 1; rc == 0 && i < argc; i++)
    rc = take_positional(cmd, argv[i], pos, max_pos, npos);
  if (rc == 0 && *npos < min_pos)
    rc = stm_cli_usage_error(cmd->name, "missing arguments; usage: stemedb %s",
                             cmd->usage);
  return rc ? rc : tls_setup(cli, cmd->name);
}
