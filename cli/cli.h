/*
 * cli.h - internals shared by the files of the `stemedb` command-line
 * program (main.c, args.c, output.c, commands.c, query.c, bench*.c).
 * Not a library interface: nothing outside cli/ includes it.
 *
 * Every command returns an exit code: STM_CLI_OK (0), STM_CLI_ESERVER (1: the
 * server answered with an error or could not be reached) or STM_CLI_EUSAGE (2:
 * bad arguments, nothing was sent). Messages go to stderr; with --json the
 * result (or {"error":{...}}) is one line of JSON on stdout.
 */
#ifndef STM_CLI_H
#define STM_CLI_H

#include "common/error.h"
#include "common/options.h"
#include "rpc/codec.h"
#include "stemedb/v1/stemedb.pb-c.h"
#include "json/json.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

enum { STM_CLI_OK = 0, STM_CLI_ESERVER = 1, STM_CLI_EUSAGE = 2 };

/* Returned by stm_cli_parse when --help was asked for and printed. */
#define STM_CLI_HELP 100

#define STM_CLI_DEFAULT_SERVER "127.0.0.1:18182"
#define STM_CLI_DEFAULT_TIMEOUT_MS 10000
#define STM_CLI_MAX_OPTS 24

/* Global options (stm_cli_global_opts) at most. */
#define STM_CLI_GLOBAL_OPTS 8

/* Global settings: --server, --timeout-ms, --json, --api-key, and TLS:
 * --server-ca (verify the server), --server-cert / --server-key (mTLS). */
struct stm_cli {
  char *server;
  int64_t timeout_ms;
  bool json;
  char *api_key;   /* --api-key / STEMEDB_API_KEY, sent on every call */
  char *server_ca; /* PEM roots: TLS to the server; NULL: plaintext */
  char *server_cert, *server_key; /* client certificate for mTLS */
  bool tls_set;                   /* credentials installed (args.c) */
  grpc_channel *channel; /* created on first use by stm_cli_channel() */
};

/* A subcommand: name, one-line usage and the function that runs it with
 * argv[0] = the subcommand's name. */
struct stm_cli_command {
  const char *name;
  const char *usage;
  int (*run)(struct stm_cli *cli, int argc, char **argv);
};

/* args.c */

/*
 * Parse a subcommand's arguments: its own options plus the global ones, in
 * any order, with "--" ending the options. Positional arguments go to
 * pos[0..*npos), at most max_pos of them (the rest is a usage error), at
 * least min_pos. Returns 0, STM_CLI_HELP (usage printed to stdout) or
 * STM_CLI_EUSAGE (message printed to stderr).
 */
int stm_cli_parse(struct stm_cli *cli, const struct stm_cli_command *cmd,
                  const struct stm_opt *opts, size_t n, int argc, char **argv,
                  char **pos, int min_pos, int max_pos, int *npos);
/* The global options table pointing into `cli`; returns its length. */
size_t stm_cli_global_opts(struct stm_cli *cli, struct stm_opt *out);
/* Print "stemedb NAME: message" to stderr; returns STM_CLI_EUSAGE. */
int stm_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#ifdef __clang_analyzer__
/* As for stm_error_set (common/error.h): tell the analyzer what it
 * returns, or it follows "success" paths after a usage error. */
#define stm_cli_usage_error(...)                                               \
  (stm_cli_usage_error(__VA_ARGS__), STM_CLI_EUSAGE)
#endif
/* A double from text (finite, whole string). */
bool stm_cli_parse_double(const char *s, double *out);

/* keys.c */

int stm_cli_cmd_keygen(struct stm_cli *cli, int argc, char **argv);
/* Sign the claim of `req` with the key file: sets req->signature and
 * req->public_key to sig_hex / pk_hex (the caller's buffers). */
int stm_cli_sign_assert(const char *key_file, Stemedb__V1__AssertRequest *req,
                        char sig_hex[129], char pk_hex[65],
                        struct stm_error *err);

/* keys_api.c */

int stm_cli_cmd_keys(struct stm_cli *cli, int argc, char **argv);

/* output.c */

/* Print one JSON value on one line to stdout and release it. */
void stm_cli_print_json(json_t *j);
/* Report a failed call (status and message) on stderr, or as JSON on
 * stdout with --json. Returns STM_CLI_ESERVER. */
int stm_cli_report_status(const struct stm_cli *cli,
                          const struct stm_rpc_status *st);
/* Human form of a value: "text" quoted, 12.5, true, ref:path. */
void stm_cli_value_text(const Stemedb__V1__Value *v, char *buf, size_t cap);
/* "2026-11-25T11:37:42.123456789Z" for nanoseconds since the epoch. */
void stm_cli_time_text(int64_t ns, char *buf, size_t cap);
void stm_cli_print_assertion(const Stemedb__V1__Assertion *a,
                             const char *indent);

/* commands.c */

/* The channel to --server (created once). */
grpc_channel *stm_cli_channel(struct stm_cli *cli);
/* One unary call with --timeout-ms; on failure reports it. Returns 0 or
 * STM_CLI_ESERVER; *resp as stm_rpc_call. */
int stm_cli_call(struct stm_cli *cli, const char *method,
                 const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc,
                 ProtobufCMessage **resp);

int stm_cli_cmd_status(struct stm_cli *cli, int argc, char **argv);
int stm_cli_cmd_assert(struct stm_cli *cli, int argc, char **argv);
int stm_cli_cmd_get(struct stm_cli *cli, int argc, char **argv);
int stm_cli_cmd_query(struct stm_cli *cli, int argc, char **argv);
int stm_cli_cmd_bench(struct stm_cli *cli, int argc, char **argv);
int stm_cli_cmd_bench_watch(struct stm_cli *cli, int argc, char **argv);

/* backup.c */
int stm_cli_cmd_backup(struct stm_cli *cli, int argc, char **argv);
int stm_cli_cmd_verify(struct stm_cli *cli, int argc, char **argv);
int stm_cli_cmd_restore(struct stm_cli *cli, int argc, char **argv);

#endif
