/* stemedb query: resolve a concept (and optionally a predicate) via a lens. */
#include "cli.h"

#include "common/validate.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void print_result(const Stemedb__V1__LensResult *r) {
  char value[512];
  stm_cli_value_text(r->winner ? r->winner->value : NULL, value, sizeof value);
  printf("%s  %s = %s\n", r->concept_path, r->predicate, value);
  printf("  lens %s, confidence %.3f, %u competing claim%s",
         r->lens[0] ? r->lens : "-", r->confidence, r->candidates_count,
         r->candidates_count == 1 ? "" : "s");
  if (r->status[0])
    printf(", %s (conflict %.3f)", r->status, r->conflict_score);
  printf("\n");
  if (r->winner)
    printf("  winner %s from %s, sequence %" PRIu64 "\n", r->winner->hash,
           r->winner->source_id[0] ? r->winner->source_id : "(no source)",
           r->winner->sequence);
  for (size_t i = 0; i < r->n_ranked; i++) {
    stm_cli_value_text(r->ranked[i]->value, value, sizeof value);
    printf("  %5.1f%%  %s (%u claim%s)\n", 100.0 * r->ranked[i]->share, value,
           r->ranked[i]->claims, r->ranked[i]->claims == 1 ? "" : "s");
  }
  for (size_t i = 0; i < r->n_tiers; i++) {
    const Stemedb__V1__TierResult *t = r->tiers[i];
    stm_cli_value_text(t->winner ? t->winner->value : NULL, value,
                       sizeof value);
    printf("  tier %u: %s (confidence %.3f, %u claims)\n", t->tier, value,
           t->confidence, t->candidates_count);
  }
}

static void print_response(const Stemedb__V1__QueryResponse *q) {
  for (size_t i = 0; i < q->n_results; i++)
    print_result(q->results[i]);
  if (q->n_results == 0)
    printf("no claims\n");
  printf("(read at sequence %" PRIu64 ")\n", q->sequence);
}

struct query_args {
  char *predicate, *lens;
  int64_t as_of_sequence, as_of_time_ns, limit;
  bool descendants, current_epoch;
};

static int build_query(char *path, const struct query_args *a,
                       Stemedb__V1__QueryRequest *req) {
  struct stm_error err;
  stm_error_clear(&err);
  if (stm_validate_concept_path("concept_path", path, strlen(path), &err) ||
      (a->predicate && stm_validate_predicate("predicate", a->predicate,
                                              strlen(a->predicate), &err)))
    return stm_cli_usage_error("query", "%s", err.message);
  if (a->as_of_sequence < 0 || a->as_of_time_ns < 0 || a->limit < 0 ||
      a->limit > UINT32_MAX)
    return stm_cli_usage_error("query", "--as-of-sequence, --as-of-time-ns and "
                                        "--limit must not be negative");
  req->concept_path = path;
  if (a->predicate)
    req->predicate = a->predicate;
  if (a->lens)
    req->lens = a->lens;
  req->as_of_sequence = (uint64_t)a->as_of_sequence;
  req->as_of_time_ns = a->as_of_time_ns;
  req->include_descendants = a->descendants;
  req->current_epoch_only = a->current_epoch;
  req->limit = (uint32_t)a->limit;
  return 0;
}

int stm_cli_cmd_query(struct stm_cli *cli, int argc, char **argv) {
  static const struct stm_cli_command cmd = {"query", "query PATH [options]",
                                             NULL};
  struct query_args a = {0};
  const struct stm_opt opts[] = {
      {"predicate", NULL, NULL, STM_OPT_STRING, &a.predicate,
       "only this predicate (default: all of the concept's)"},
      {"lens", NULL, NULL, STM_OPT_STRING, &a.lens,
       "recency, consensus, confidence, vote, authority, epoch, skeptic, "
       "layered (default: the server's)"},
      {"as-of-sequence", NULL, NULL, STM_OPT_INT, &a.as_of_sequence,
       "what the database knew at this sequence (0: now)"},
      {"as-of-time-ns", NULL, NULL, STM_OPT_INT, &a.as_of_time_ns,
       "what the database knew at this commit time (0: now)"},
      {"descendants", NULL, NULL, STM_OPT_BOOL, &a.descendants,
       "include the concept's subtree"},
      {"current-epoch", NULL, NULL, STM_OPT_BOOL, &a.current_epoch,
       "only claims of the current epoch"},
      {"limit", NULL, NULL, STM_OPT_INT, &a.limit,
       "at most this many results (0: the server's default)"},
  };
  size_t n = sizeof opts / sizeof opts[0];
  char *pos[1];
  int npos;
  Stemedb__V1__QueryRequest req = STEMEDB__V1__QUERY_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  int rc = stm_cli_parse(cli, &cmd, opts, n, argc, argv, pos, 1, 1, &npos);
  if (rc == 0)
    rc = build_query(pos[0], &a, &req);
  if (rc == 0)
    rc = stm_cli_call(cli, "/stemedb.v1.StemeDB/Query", &req.base,
                      &stemedb__v1__query_response__descriptor, &resp);
  if (rc == 0 && cli->json)
    stm_cli_print_json(
        stm_json_render_query_response((Stemedb__V1__QueryResponse *)resp));
  else if (rc == 0)
    print_response((Stemedb__V1__QueryResponse *)resp);
  if (resp)
    protobuf_c_message_free_unpacked(resp, NULL);
  stm_opts_free_strings(opts, n);
  return rc == STM_CLI_HELP ? STM_CLI_OK : rc;
}
