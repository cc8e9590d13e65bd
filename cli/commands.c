/* The unary subcommands: status, assert, get. */
#include "cli.h"

#include "common/validate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

grpc_channel *stm_cli_channel(struct stm_cli *cli) {
  if (cli->channel == NULL) {
    stm_rpc_set_api_key(cli->api_key); /* before any call starts */
    cli->channel = stm_rpc_channel_new(cli->server);
  }
  return cli->channel;
}

int stm_cli_call(struct stm_cli *cli, const char *method,
                 const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc,
                 ProtobufCMessage **resp) {
  struct stm_rpc_status st;
  memset(&st, 0, sizeof st);
  grpc_status_code code =
      stm_rpc_call(stm_cli_channel(cli), method, req, resp_desc,
                   (int)cli->timeout_ms, resp, &st);
  return code == GRPC_STATUS_OK ? STM_CLI_OK : stm_cli_report_status(cli, &st);
}

/* ------------------------------------------------------------------ */
/* status                                                               */

static void print_status(const Stemedb__V1__StatusResponse *s) {
  printf("status       %s\n", s->status);
  printf("node         %s\n", s->node_id);
  printf("version      %s\n", s->version);
  printf("assertions   %" PRIu64 "\n", s->assertion_count);
  printf("last seq     %" PRIu64 "\n", s->last_sequence);
  printf("uptime       %" PRIu64 " s\n", s->uptime_seconds);
  printf("writable     %s\n", s->writable ? "yes" : "no");
}

int stm_cli_cmd_status(struct stm_cli *cli, int argc, char **argv) {
  static const struct stm_cli_command cmd = {"status", "status [options]",
                                             NULL};
  char *pos[1];
  int npos,
      rc = stm_cli_parse(cli, &cmd, NULL, 0, argc, argv, pos, 0, 0, &npos);
  if (rc)
    return rc == STM_CLI_HELP ? STM_CLI_OK : rc;
  Stemedb__V1__StatusRequest req = STEMEDB__V1__STATUS_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  rc = stm_cli_call(cli, "/stemedb.v1.StemeDB/Status", &req.base,
                    &stemedb__v1__status_response__descriptor, &resp);
  if (rc)
    return rc;
  Stemedb__V1__StatusResponse *s = (Stemedb__V1__StatusResponse *)resp;
  if (cli->json)
    stm_cli_print_json(stm_json_render_status_response(s));
  else
    print_status(s);
  protobuf_c_message_free_unpacked(resp, NULL);
  return STM_CLI_OK;
}

/* ------------------------------------------------------------------ */
/* assert                                                               */

struct assert_args {
  char *source, *confidence, *parent, *type, *sign;
  int64_t timestamp_ns;
};

/* VALUE typed as --type says, or guessed: true/false, a finite number,
 * else a string. */
static int build_value(const char *text, const char *type,
                       Stemedb__V1__Value *v, struct stm_error *err) {
  bool guess = type == NULL;
  if ((guess || strcmp(type, "bool") == 0) &&
      (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)) {
    v->kind_case = STEMEDB__V1__VALUE__KIND_BOOL_VALUE;
    v->bool_value = text[0] == 't';
  } else if ((guess || strcmp(type, "number") == 0) &&
             stm_cli_parse_double(text, &v->number_value)) {
    v->kind_case = STEMEDB__V1__VALUE__KIND_NUMBER_VALUE;
  } else if (guess || strcmp(type, "string") == 0) {
    v->kind_case = STEMEDB__V1__VALUE__KIND_STRING_VALUE;
    v->string_value = (char *)text;
    return stm_validate_string_value("value", text, strlen(text), err);
  } else if (strcmp(type, "ref") == 0) {
    v->kind_case = STEMEDB__V1__VALUE__KIND_REF_VALUE;
    v->ref_value = (char *)text;
    return stm_validate_ref_value("value", text, strlen(text), err);
  } else if (strcmp(type, "bool") == 0 || strcmp(type, "number") == 0) {
    return stm_error_set(err, STM_EINVAL, "value",
                         "value \"%.60s\" is not a %s", text, type);
  } else {
    return stm_error_set(err, STM_EINVAL, "type",
                         "--type must be string, number, bool or ref, got "
                         "\"%.40s\"",
                         type);
  }
  return 0;
}

/* Fill the request from the positionals and options (strings borrowed). */
static int build_assert(char **pos, const struct assert_args *a,
                        Stemedb__V1__AssertRequest *req,
                        Stemedb__V1__Value *value, struct stm_error *err) {
  req->concept_path = pos[0];
  req->predicate = pos[1];
  req->value = value;
  int rc =
      stm_validate_concept_path("concept_path", pos[0], strlen(pos[0]), err);
  if (rc == 0)
    rc = stm_validate_predicate("predicate", pos[1], strlen(pos[1]), err);
  if (rc == 0)
    rc = build_value(pos[2], a->type, value, err);
  if (rc == 0 && a->source) {
    req->source_id = a->source;
    rc = stm_validate_source_id("source", a->source, strlen(a->source), err);
  }
  if (rc == 0 && a->confidence) {
    req->confidence_present_case =
        STEMEDB__V1__ASSERT_REQUEST__CONFIDENCE_PRESENT_CONFIDENCE;
    rc = stm_cli_parse_double(a->confidence, &req->confidence)
             ? stm_validate_unit_interval("confidence", req->confidence, err)
             : stm_error_set(err, STM_EINVAL, "confidence",
                             "confidence must be a number from 0 to 1");
  }
  if (rc == 0 && a->parent) {
    req->parent_hash = a->parent;
    rc = stm_validate_hash_hex("parent", a->parent, strlen(a->parent), true,
                               err);
  }
  req->timestamp_ns = a->timestamp_ns;
  return rc;
}

static void print_assert_response(const struct stm_cli *cli,
                                  const Stemedb__V1__AssertResponse *r) {
  if (cli->json)
    stm_cli_print_json(stm_json_render_assert_response(r));
  else
    printf("%s %s (sequence %" PRIu64 ")\n", r->created ? "created" : "exists ",
           r->hash, r->sequence);
}

int stm_cli_cmd_assert(struct stm_cli *cli, int argc, char **argv) {
  static const struct stm_cli_command cmd = {
      "assert", "assert PATH PREDICATE VALUE [options]", NULL};
  struct assert_args a = {0};
  const struct stm_opt opts[] = {
      {"source", NULL, NULL, STM_OPT_STRING, &a.source, "source id (URI)"},
      {"confidence", NULL, NULL, STM_OPT_STRING, &a.confidence,
       "0..1 (default 1)"},
      {"parent", NULL, NULL, STM_OPT_STRING, &a.parent,
       "hash of the claim this one refines"},
      {"timestamp-ns", NULL, NULL, STM_OPT_INT, &a.timestamp_ns,
       "the claim's own time (0: the server's clock)"},
      {"type", NULL, NULL, STM_OPT_STRING, &a.type,
       "string, number, bool or ref (default: guessed from VALUE)"},
      {"sign", NULL, NULL, STM_OPT_STRING, &a.sign,
       "sign with this key file (stemedb keygen)"},
  };
  size_t n = sizeof opts / sizeof opts[0];
  char *pos[3];
  int npos;
  int rc = stm_cli_parse(cli, &cmd, opts, n, argc, argv, pos, 3, 3, &npos);
  Stemedb__V1__AssertRequest req = STEMEDB__V1__ASSERT_REQUEST__INIT;
  Stemedb__V1__Value value = STEMEDB__V1__VALUE__INIT;
  struct stm_error err;
  stm_error_clear(&err);
  if (rc == 0 && build_assert(pos, &a, &req, &value, &err) != 0)
    rc = stm_cli_usage_error("assert", "%s", err.message);
  char sig[129], pk[65];
  if (rc == 0 && a.sign &&
      stm_cli_sign_assert(a.sign, &req, sig, pk, &err) != 0)
    rc = stm_cli_usage_error("assert", "%s", err.message);
  ProtobufCMessage *resp = NULL;
  if (rc == 0)
    rc = stm_cli_call(cli, "/stemedb.v1.StemeDB/Assert", &req.base,
                      &stemedb__v1__assert_response__descriptor, &resp);
  if (rc == 0)
    print_assert_response(cli, (Stemedb__V1__AssertResponse *)resp);
  if (resp)
    protobuf_c_message_free_unpacked(resp, NULL);
  stm_opts_free_strings(opts, n);
  return rc == STM_CLI_HELP ? STM_CLI_OK : rc;
}

/* ------------------------------------------------------------------ */
/* get                                                                  */

int stm_cli_cmd_get(struct stm_cli *cli, int argc, char **argv) {
  static const struct stm_cli_command cmd = {"get", "get HASH [options]", NULL};
  int64_t as_of = 0;
  const struct stm_opt opts[] = {
      {"as-of-sequence", NULL, NULL, STM_OPT_INT, &as_of,
       "read as the database was at this sequence (0: now)"},
  };
  char *pos[1];
  int npos;
  int rc = stm_cli_parse(cli, &cmd, opts, 1, argc, argv, pos, 1, 1, &npos);
  struct stm_error err;
  stm_error_clear(&err);
  if (rc == 0 &&
      stm_validate_hash_hex("hash", pos[0], strlen(pos[0]), false, &err))
    rc = stm_cli_usage_error("get", "%s", err.message);
  if (rc == 0 && as_of < 0)
    rc = stm_cli_usage_error("get", "--as-of-sequence must not be negative");
  if (rc)
    return rc == STM_CLI_HELP ? STM_CLI_OK : rc;
  Stemedb__V1__GetRequest req = STEMEDB__V1__GET_REQUEST__INIT;
  req.hash = pos[0];
  req.as_of_sequence = (uint64_t)as_of;
  ProtobufCMessage *resp = NULL;
  rc = stm_cli_call(cli, "/stemedb.v1.StemeDB/Get", &req.base,
                    &stemedb__v1__assertion__descriptor, &resp);
  if (rc)
    return rc;
  if (cli->json)
    stm_cli_print_json(
        stm_json_render_assertion((Stemedb__V1__Assertion *)resp));
  else
    stm_cli_print_assertion((Stemedb__V1__Assertion *)resp, "");
  protobuf_c_message_free_unpacked(resp, NULL);
  return STM_CLI_OK;
}
