/*
 * Output: JSON renderings (the same field names and value mapping as the
 * REST gateway: strings, numbers and booleans as themselves, a reference
 * as {"ref": "..."}, 64-bit integers as JSON integers, empty optional
 * strings omitted) and the human-readable forms.
 */
#include "cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void stm_cli_print_json(json_t *j) {
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
  if (s) {
    fputs(s, stdout);
    fputc('\n', stdout);
  } else {
    fputs("{\"error\":{\"code\":\"INTERNAL\",\"message\":\"cannot render "
          "JSON\"}}\n",
          stdout);
  }
  free(s);
  json_decref(j);
}

int stm_cli_report_status(const struct stm_cli *cli,
                          const struct stm_rpc_status *st) {
  const char *code = stm_rpc_code_name(st->code);
  if (cli->json) {
    json_t *e = json_pack("{s:s,s:s}", "code", code, "message", st->message);
    stm_cli_print_json(json_pack("{s:o}", "error", e));
  } else if (st->code == GRPC_STATUS_UNAVAILABLE) {
    /* A TLS mismatch looks like any unreachable server: say what to try. */
    fprintf(stderr, "stemedb: cannot reach server at %s: %s (%s)%s\n",
            cli->server, code, st->message,
            cli->server_ca && *cli->server_ca
                ? "; over TLS: is the server's certificate signed by "
                  "--server-ca and valid for that address, and does it "
                  "require a client certificate (--server-cert/--server-key)?"
                : "; a server with TLS needs --server-ca (STEMEDB_SERVER_CA)");
  } else if (st->code == GRPC_STATUS_DEADLINE_EXCEEDED) {
    fprintf(stderr, "stemedb: no answer from %s within %lld ms: %s (%s)\n",
            cli->server, (long long)cli->timeout_ms, code, st->message);
  } else {
    fprintf(stderr, "stemedb: server error: %s: %s\n", code, st->message);
  }
  return STM_CLI_ESERVER;
}

void stm_cli_value_text(const Stemedb__V1__Value *v, char *buf, size_t cap) {
  if (v == NULL) {
    snprintf(buf, cap, "(none)");
    return;
  }
  switch (v->kind_case) {
  case STEMEDB__V1__VALUE__KIND_STRING_VALUE:
    snprintf(buf, cap, "\"%s\"", v->string_value);
    break;
  case STEMEDB__V1__VALUE__KIND_NUMBER_VALUE:
    snprintf(buf, cap, "%.16g", v->number_value);
    break;
  case STEMEDB__V1__VALUE__KIND_BOOL_VALUE:
    snprintf(buf, cap, "%s", v->bool_value ? "true" : "false");
    break;
  case STEMEDB__V1__VALUE__KIND_REF_VALUE:
    snprintf(buf, cap, "ref:%s", v->ref_value);
    break;
  default:
    snprintf(buf, cap, "(none)");
  }
}

void stm_cli_time_text(int64_t ns, char *buf, size_t cap) {
  time_t secs = (time_t)(ns / 1000000000);
  long frac = (long)(ns % 1000000000);
  if (frac < 0) {
    secs--;
    frac += 1000000000;
  }
  struct tm tm;
  if (gmtime_r(&secs, &tm) == NULL) {
    snprintf(buf, cap, "%" PRId64 "ns", ns);
    return;
  }
  char date[32];
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, cap, "%s.%09ldZ", date, frac);
}

void stm_cli_print_assertion(const Stemedb__V1__Assertion *a,
                             const char *indent) {
  char value[512], ts[64], committed[64];
  stm_cli_value_text(a->value, value, sizeof value);
  stm_cli_time_text(a->timestamp_ns, ts, sizeof ts);
  stm_cli_time_text(a->commit_time_ns, committed, sizeof committed);
  printf("%shash        %s\n", indent, a->hash);
  printf("%sconcept     %s\n", indent, a->concept_path);
  printf("%spredicate   %s\n", indent, a->predicate);
  printf("%svalue       %s\n", indent, value);
  printf("%ssource      %s (tier %u)\n", indent,
         a->source_id[0] ? a->source_id : "(none)", a->source_tier);
  printf("%sconfidence  %.4g\n", indent, a->confidence);
  printf("%stimestamp   %s\n", indent, ts);
  printf("%ssequence    %" PRIu64 " (epoch %" PRIu64 ", committed %s)\n",
         indent, a->sequence, a->epoch, committed);
  if (a->parent_hash[0])
    printf("%sparent      %s\n", indent, a->parent_hash);
  if (a->signature[0])
    printf("%ssigned by   %s\n", indent, a->public_key);
}
