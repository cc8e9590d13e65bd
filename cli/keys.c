/*
 * keys.c - Ed25519 keys for signed claims: `stemedb keygen` and the
 * signing behind `stemedb assert --sign KEYFILE`.
 *
 * Key file (mode 0600), two lines of text:
 *   public_key <64 hex>
 *   secret_key <128 hex: libsodium's seed || public key>
 * Register the public key with its source (PutSource public_key, or
 * PUT /v1/sources/{id} {"public_key": ...}); from then on the server
 * accepts claims of that source only when signed by it.
 */
#include "cli.h"

#include "common/hex.h"
#include "storage/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int stm_cli_cmd_keygen(struct stm_cli *cli, int argc, char **argv) {
  static const struct stm_cli_command cmd = {"keygen", "keygen --out KEYFILE",
                                             NULL};
  char *out = NULL;
  const struct stm_opt opts[] = {
      {"out", NULL, NULL, STM_OPT_STRING, &out,
       "where to write the key pair (created, mode 0600)"},
  };
  char *pos[1];
  int npos;
  int rc = stm_cli_parse(cli, &cmd, opts, 1, argc, argv, pos, 0, 0, &npos);
  if (rc == 0 && out == NULL)
    rc = stm_cli_usage_error("keygen", "--out KEYFILE is required");
  if (rc == 0 && sodium_init() < 0)
    rc = stm_cli_usage_error("keygen", "libsodium cannot initialize");
  if (rc) {
    stm_opts_free_strings(opts, 1);
    return rc == STM_CLI_HELP ? STM_CLI_OK : rc;
  }
  uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  char pkh[2 * sizeof pk + 1], skh[2 * sizeof sk + 1];
  stm_hex_encode(pk, sizeof pk, pkh);
  stm_hex_encode(sk, sizeof sk, skh);
  sodium_memzero(sk, sizeof sk);
  int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (f == NULL) {
    fprintf(stderr, "stemedb keygen: cannot create %s: %s\n", out,
            strerror(errno));
    if (fd >= 0)
      close(fd);
    rc = STM_CLI_EUSAGE;
  } else {
    fprintf(f, "public_key %s\nsecret_key %s\n", pkh, skh);
    if (fclose(f) != 0) {
      fprintf(stderr, "stemedb keygen: cannot write %s\n", out);
      rc = STM_CLI_EUSAGE;
    }
  }
  sodium_memzero(skh, sizeof skh);
  if (rc == 0) {
    if (cli->json) {
      json_t *j = json_object();
      json_object_set_new(j, "public_key", json_string(pkh));
      json_object_set_new(j, "key_file", json_string(out));
      stm_cli_print_json(j);
    } else {
      printf("%s\n", pkh);
    }
  }
  stm_opts_free_strings(opts, 1);
  return rc;
}

/* Read a key file; returns 0 or a message in err. */
static int read_key(const char *path, uint8_t pk[32], uint8_t sk[64],
                    struct stm_error *err) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return stm_error_set(err, STM_EINVAL, "sign", "cannot open %s: %s", path,
                         strerror(errno));
  char line[300];
  bool have_pk = false, have_sk = false;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (strncmp(line, "public_key ", 11) == 0)
      have_pk = stm_hex_decode(line + 11, strlen(line + 11), pk, 32) == 0;
    else if (strncmp(line, "secret_key ", 11) == 0)
      have_sk = stm_hex_decode(line + 11, strlen(line + 11), sk, 64) == 0;
  }
  fclose(f);
  sodium_memzero(line, sizeof line);
  if (!have_pk || !have_sk || memcmp(sk + 32, pk, 32) != 0)
    return stm_error_set(err, STM_EINVAL, "sign",
                         "%s is not a stemedb key file (stemedb keygen)", path);
  return 0;
}

static int claim_of(const Stemedb__V1__AssertRequest *req,
                    struct stm_claim *c) {
  const Stemedb__V1__Value *v = req->value;
  int rc = stm_claim_set_str(&c->concept_path, req->concept_path,
                             strlen(req->concept_path));
  rc = rc ? rc
          : stm_claim_set_str(&c->predicate, req->predicate,
                              strlen(req->predicate));
  rc = rc ? rc
          : stm_claim_set_str(&c->source_id, req->source_id,
                              strlen(req->source_id));
  if (rc)
    return rc;
  switch (v->kind_case) {
  case STEMEDB__V1__VALUE__KIND_STRING_VALUE:
    rc = stm_value_set_str(&c->value, STM_VALUE_STRING, v->string_value,
                           strlen(v->string_value));
    break;
  case STEMEDB__V1__VALUE__KIND_REF_VALUE:
    rc = stm_value_set_str(&c->value, STM_VALUE_REF, v->ref_value,
                           strlen(v->ref_value));
    break;
  case STEMEDB__V1__VALUE__KIND_NUMBER_VALUE:
    c->value.kind = STM_VALUE_NUMBER;
    c->value.number = v->number_value == 0.0 ? 0.0 : v->number_value;
    break;
  default:
    c->value.kind = STM_VALUE_BOOL;
    c->value.boolean = v->bool_value;
  }
  c->confidence =
      req->confidence_present_case ==
              STEMEDB__V1__ASSERT_REQUEST__CONFIDENCE_PRESENT_CONFIDENCE
          ? req->confidence
          : 1.0;
  c->timestamp_ns = req->timestamp_ns;
  if (req->parent_hash[0]) {
    c->has_parent = stm_hex_decode(req->parent_hash, strlen(req->parent_hash),
                                   c->parent_hash, STM_HASH_LEN) == 0;
  }
  return rc ? rc : stm_claim_compute_hash(c);
}

int stm_cli_sign_assert(const char *key_file, Stemedb__V1__AssertRequest *req,
                        char sig_hex[129], char pk_hex[65],
                        struct stm_error *err) {
  uint8_t pk[32], sk[64], sig[64];
  if (sodium_init() < 0)
    return stm_error_set(err, STM_EINVAL, "sign", "libsodium cannot start");
  int rc = read_key(key_file, pk, sk, err);
  struct stm_claim c;
  stm_claim_init(&c);
  if (rc == 0 && claim_of(req, &c) != 0)
    rc = stm_error_set(err, STM_EINVAL, "sign", "cannot hash the claim");
  if (rc == 0) {
    crypto_sign_detached(sig, NULL, c.hash, STM_HASH_LEN, sk);
    stm_hex_encode(sig, sizeof sig, sig_hex);
    stm_hex_encode(pk, sizeof pk, pk_hex);
    req->signature = sig_hex;
    req->public_key = pk_hex;
  }
  sodium_memzero(sk, sizeof sk);
  stm_claim_destroy(&c);
  return rc;
}
