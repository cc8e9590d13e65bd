/*
 * keys_api.c - `stemedb keys create|list|revoke`: the server's API keys
 * (stemedb.v1.Admin CreateKey/ListKeys/RevokeKey, role admin). The new
 * key's secret is printed once, by create; the server keeps only its hash.
 */
#include "cli.h"

#include "stemedb/v1/admin.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *info_json(const Stemedb__V1__ApiKeyInfo *k) {
  return json_pack("{s:s,s:s,s:s,s:I,s:b}", "id", k->id, "role", k->role,
                   "name", k->name, "created_time_ns",
                   (json_int_t)k->created_time_ns, "revoked", k->revoked);
}

static void print_info(const Stemedb__V1__ApiKeyInfo *k) {
  char t[64];
  stm_cli_time_text(k->created_time_ns, t, sizeof t);
  printf("%s  %-6s  %-8s  %s  %s\n", k->id, k->role,
         k->revoked ? "revoked" : "active", t, k->name);
}

static int create(struct stm_cli *cli, const char *role, const char *name) {
  if (role == NULL || name == NULL)
    return stm_cli_usage_error("keys", "create needs --role "
                                       "reader|writer|admin and --name NAME");
  Stemedb__V1__CreateKeyRequest req = STEMEDB__V1__CREATE_KEY_REQUEST__INIT;
  req.role = (char *)role;
  req.name = (char *)name;
  ProtobufCMessage *resp = NULL;
  int rc = stm_cli_call(cli, "/stemedb.v1.Admin/CreateKey", &req.base,
                        &stemedb__v1__create_key_response__descriptor, &resp);
  if (rc)
    return rc;
  Stemedb__V1__CreateKeyResponse *r = (Stemedb__V1__CreateKeyResponse *)resp;
  if (cli->json && r->info)
    stm_cli_print_json(json_pack("{s:s,s:s,s:s,s:s}", "id", r->info->id, "key",
                                 r->key, "role", r->info->role, "name",
                                 r->info->name));
  else if (r->info)
    printf("id   %s\nkey  %s\nrole %s\nname %s\n(the key is shown only "
           "once: store it now)\n",
           r->info->id, r->key, r->info->role, r->info->name);
  protobuf_c_message_free_unpacked(resp, NULL);
  return STM_CLI_OK;
}

static int list(struct stm_cli *cli) {
  Stemedb__V1__ListKeysRequest req = STEMEDB__V1__LIST_KEYS_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  int rc = stm_cli_call(cli, "/stemedb.v1.Admin/ListKeys", &req.base,
                        &stemedb__v1__list_keys_response__descriptor, &resp);
  if (rc)
    return rc;
  Stemedb__V1__ListKeysResponse *r = (Stemedb__V1__ListKeysResponse *)resp;
  if (cli->json) {
    json_t *arr = json_array();
    for (size_t i = 0; i < r->n_keys; i++)
      json_array_append_new(arr, info_json(r->keys[i]));
    stm_cli_print_json(json_pack("{s:o}", "keys", arr));
  } else {
    for (size_t i = 0; i < r->n_keys; i++)
      print_info(r->keys[i]);
  }
  protobuf_c_message_free_unpacked(resp, NULL);
  return STM_CLI_OK;
}

static int revoke(struct stm_cli *cli, const char *id) {
  Stemedb__V1__RevokeKeyRequest req = STEMEDB__V1__REVOKE_KEY_REQUEST__INIT;
  req.id = (char *)id;
  ProtobufCMessage *resp = NULL;
  int rc = stm_cli_call(cli, "/stemedb.v1.Admin/RevokeKey", &req.base,
                        &stemedb__v1__revoke_key_response__descriptor, &resp);
  if (rc)
    return rc;
  Stemedb__V1__RevokeKeyResponse *r = (Stemedb__V1__RevokeKeyResponse *)resp;
  if (cli->json && r->info)
    stm_cli_print_json(info_json(r->info));
  else if (r->info)
    printf("revoked %s (%s)\n", r->info->id, r->info->name);
  protobuf_c_message_free_unpacked(resp, NULL);
  return STM_CLI_OK;
}

int stm_cli_cmd_keys(struct stm_cli *cli, int argc, char **argv) {
  static const struct stm_cli_command cmd = {
      "keys",
      "keys create --role reader|writer|admin --name NAME | keys list | "
      "keys revoke ID",
      NULL};
  char *role = NULL, *name = NULL;
  const struct stm_opt opts[] = {
      {"role", NULL, NULL, STM_OPT_STRING, &role,
       "create: reader, writer or admin"},
      {"name", NULL, NULL, STM_OPT_STRING, &name,
       "create: a name for the key (no spaces)"},
  };
  char *pos[2];
  int npos;
  int rc = stm_cli_parse(cli, &cmd, opts, 2, argc, argv, pos, 1, 2, &npos);
  if (rc == 0) {
    if (strcmp(pos[0], "create") == 0 && npos == 1)
      rc = create(cli, role, name);
    else if (strcmp(pos[0], "list") == 0 && npos == 1)
      rc = list(cli);
    else if (strcmp(pos[0], "revoke") == 0 && npos == 2)
      rc = revoke(cli, pos[1]);
    else
      rc = stm_cli_usage_error("keys", "expected create, list or revoke ID");
  } else if (rc == STM_CLI_HELP) {
    rc = STM_CLI_OK;
  }
  free(role);
  free(name);
  return rc;
}
