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

void cli_print_json(json_t *j) {
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

static json_t *jstr(const char *s) {
  json_t *v = json_string(s ? s : "");
  return v ? v : json_null();
}

static json_t *juint(uint64_t v) {
  return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static void put_opt_str(json_t *o, const char *key, const char *s) {
  if (s && *s)
    json_object_set_new(o, key, jstr(s));
}

int cli_report_status(const struct cli *cli, const struct stm_rpc_status *st) {
  const char *code = stm_rpc_code_name(st->code);
  if (cli->json) {
    json_t *e = json_pack("{s:s,s:s}", "code", code, "message", st->message);
    cli_print_json(json_pack("{s:o}", "error", e));
  } else if (st->code == GRPC_STATUS_UNAVAILABLE) {
    fprintf(stderr, "stemedb: cannot reach server at %s: %s (%s)\n",
            cli->server, code, st->message);
  } else if (st->code == GRPC_STATUS_DEADLINE_EXCEEDED) {
    fprintf(stderr, "stemedb: no answer from %s within %lld ms: %s (%s)\n",
            cli->server, (long long)cli->timeout_ms, code, st->message);
  } else {
    fprintf(stderr, "stemedb: server error: %s: %s\n", code, st->message);
  }
  return CLI_ESERVER;
}

json_t *cli_value_json(const Stemedb__V1__Value *v) {
  if (v == NULL)
    return json_null();
  switch (v->kind_case) {
  case STEMEDB__V1__VALUE__KIND_STRING_VALUE:
    return jstr(v->string_value);
  case STEMEDB__V1__VALUE__KIND_NUMBER_VALUE:
    return isfinite(v->number_value) ? json_real(v->number_value)
                                     : json_null();
  case STEMEDB__V1__VALUE__KIND_BOOL_VALUE:
    return json_boolean(v->bool_value);
  case STEMEDB__V1__VALUE__KIND_REF_VALUE:
    return json_pack("{s:o}", "ref", jstr(v->ref_value));
  default:
    return json_null();
  }
}

json_t *cli_assertion_json(const Stemedb__V1__Assertion *a) {
  if (a == NULL)
    return json_null();
  json_t *o = json_object();
  json_object_set_new(o, "hash", jstr(a->hash));
  json_object_set_new(o, "concept_path", jstr(a->concept_path));
  json_object_set_new(o, "predicate", jstr(a->predicate));
  json_object_set_new(o, "value", cli_value_json(a->value));
  json_object_set_new(o, "source", jstr(a->source_id));
  json_object_set_new(o, "source_tier", json_integer(a->source_tier));
  json_object_set_new(o, "confidence", json_real(a->confidence));
  json_object_set_new(o, "timestamp_ns", json_integer(a->timestamp_ns));
  json_object_set_new(o, "sequence", juint(a->sequence));
  json_object_set_new(o, "epoch", juint(a->epoch));
  json_object_set_new(o, "commit_time_ns", json_integer(a->commit_time_ns));
  put_opt_str(o, "parent_hash", a->parent_hash);
  put_opt_str(o, "signature", a->signature);
  put_opt_str(o, "public_key", a->public_key);
  return o;
}

void cli_value_text(const Stemedb__V1__Value *v, char *buf, size_t cap) {
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

void cli_time_text(int64_t ns, char *buf, size_t cap) {
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

void cli_print_assertion(const Stemedb__V1__Assertion *a, const char *indent) {
  char value[512], ts[64], committed[64];
  cli_value_text(a->value, value, sizeof value);
  cli_time_text(a->timestamp_ns, ts, sizeof ts);
  cli_time_text(a->commit_time_ns, committed, sizeof committed);
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
