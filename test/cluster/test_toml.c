/* Tests for cluster/toml: the TOML subset that cluster.toml needs. */
#include "cluster/toml.h"
#include "harness.h"
#include "test_cluster.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* node2's, as the shell heredoc writes it (escaped quotes already undone). */
const char stm_test_seed_node2_toml[] =
    "[cluster]\n"
    "enabled = true\n"
    "node_id = \"node2\"\n"
    "bind_addr = \"10.0.1.52:18181\"\n"
    "rpc_addr = \"10.0.1.52:18182\"\n"
    "swim_addr = \"10.0.1.52:18183\"\n"
    "seeds = [\"10.0.1.51:18183\", \"10.0.1.53:18183\"]\n"
    "[replication]\n"
    "factor = 2\n";

/* The replacement node: an inline comment after a quoted value. */
static const char seed_replacement_toml[] =
    "[cluster]\n"
    "enabled = true\n"
    "node_id = \"node2-replacement\" # Different ID\n"
    "bind_addr = \"10.0.1.55:18181\"\n"
    "rpc_addr = \"10.0.1.55:18182\"\n"
    "swim_addr = \"10.0.1.55:18183\"\n"
    "seeds = [\"10.0.1.51:18183\", \"10.0.1.53:18183\"]\n"
    "[replication]\n"
    "factor = 2\n";

/* node4's: a multi-line array with a comment after every item. */
static const char seed_node4_toml[] =
    "[cluster]\n"
    "enabled = true\n"
    "node_id = \"node4\"\n"
    "bind_addr = \"10.0.1.54:18181\"\n"
    "rpc_addr = \"10.0.1.54:18182\"\n"
    "swim_addr = \"10.0.1.54:18183\"\n"
    "\n"
    "# Point to existing cluster for discovery\n"
    "seeds = [\n"
    "\"10.0.1.51:18183\", # Node1\n"
    "\"10.0.1.52:18183\", # Node2\n"
    "\"10.0.1.53:18183\" # Node3\n"
    "]\n"
    "\n"
    "[replication]\n"
    "factor = 2\n";

static struct stm_toml_doc *parse_ok(const char *text) {
  struct stm_toml_doc *doc = NULL;
  struct stm_error err;
  stm_error_clear(&err);
  int rc = stm_toml_parse(text, strlen(text), &doc, &err);
  if (rc)
    fprintf(stderr, "\nunexpected parse error: %s\n", err.message);
  CU_ASSERT_EQUAL(rc, 0);
  return doc;
}

static void parse_fails_n(const char *text, size_t len, const char *want);

/* Parse must fail with a message containing `want`. */
static void parse_fails(const char *text, const char *want) {
  parse_fails_n(text, strlen(text), want);
}

static void parse_fails_n(const char *text, size_t len, const char *want) {
  struct stm_toml_doc *doc = (void *)1;
  struct stm_error err;
  stm_error_clear(&err);
  int rc = stm_toml_parse(text, len, &doc, &err);
  CU_ASSERT_EQUAL(rc, STM_EINVAL);
  CU_ASSERT_PTR_NULL(doc);
  if (strstr(err.message, want) == NULL)
    fprintf(stderr, "\nfor %.40s: wanted \"%s\", got \"%s\"\n", text, want,
            err.message);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, want));
}

static const char *str(const struct stm_toml_doc *doc, const char *key) {
  const char *s = NULL;
  CU_ASSERT_EQUAL(stm_toml_get_string(doc, key, &s, NULL), 0);
  return s ? s : "";
}

static int64_t num(const struct stm_toml_doc *doc, const char *key) {
  int64_t v = -424242;
  CU_ASSERT_EQUAL(stm_toml_get_int(doc, key, &v, NULL), 0);
  return v;
}

static void test_toml_parses_the_seed_cluster_toml_verbatim(void) {
  struct stm_toml_doc *doc = parse_ok(stm_test_seed_node1_toml);
  if (doc == NULL)
    return;
  bool enabled = false;
  CU_ASSERT_EQUAL(stm_toml_get_bool(doc, "cluster.enabled", &enabled, NULL), 0);
  CU_ASSERT_TRUE(enabled);
  CU_ASSERT_STRING_EQUAL(str(doc, "cluster.node_id"), "node1");
  CU_ASSERT_STRING_EQUAL(str(doc, "cluster.bind_addr"), "10.0.1.51:18181");
  CU_ASSERT_STRING_EQUAL(str(doc, "cluster.rpc_addr"), "10.0.1.51:18182");
  CU_ASSERT_STRING_EQUAL(str(doc, "cluster.swim_addr"), "10.0.1.51:18183");
  const char *const *seeds = NULL;
  size_t n = 0;
  CU_ASSERT_EQUAL(
      stm_toml_get_string_array(doc, "cluster.seeds", &seeds, &n, NULL), 0);
  CU_ASSERT_EQUAL(n, 2);
  if (n == 2) {
    CU_ASSERT_STRING_EQUAL(seeds[0], "10.0.1.52:18183");
    CU_ASSERT_STRING_EQUAL(seeds[1], "10.0.1.53:18183");
  }
  CU_ASSERT_EQUAL(num(doc, "replication.factor"), 2);
  CU_ASSERT_EQUAL(stm_toml_count(doc), 7);
  stm_toml_delete(doc);
}

static void test_toml_parses_every_other_seed_variant(void) {
  const char *docs[] = {stm_test_seed_node2_toml, seed_replacement_toml,
                        seed_node4_toml};
  const char *ids[] = {"node2", "node2-replacement", "node4"};
  size_t seeds[] = {2, 2, 3};
  for (size_t i = 0; i < 3; i++) {
    struct stm_toml_doc *doc = parse_ok(docs[i]);
    if (doc == NULL)
      continue;
    CU_ASSERT_STRING_EQUAL(str(doc, "cluster.node_id"), ids[i]);
    const char *const *s;
    size_t n = 0;
    CU_ASSERT_EQUAL(
        stm_toml_get_string_array(doc, "cluster.seeds", &s, &n, NULL), 0);
    CU_ASSERT_EQUAL(n, seeds[i]);
    CU_ASSERT_EQUAL(num(doc, "replication.factor"), 2);
    stm_toml_delete(doc);
  }
}

static void test_toml_accepts_crlf_line_endings(void) {
  struct stm_toml_doc *doc =
      parse_ok("[cluster]\r\nnode_id = \"n1\" # x\r\nseeds = [\r\n\"a:1\",\r\n"
               "]\r\n");
  if (doc == NULL)
    return;
  CU_ASSERT_STRING_EQUAL(str(doc, "cluster.node_id"), "n1");
  stm_toml_delete(doc);
}

static void test_toml_decodes_basic_and_literal_strings(void) {
  struct stm_toml_doc *doc = parse_ok(
      "a = \"tab\\there \\\"q\\\" back\\\\slash \\u00e9 \\U0001F600\"\n"
      "b = 'C:\\path\\no escapes'\n"
      "c = \"\"\"\nline one\n  line two \\\n     joined\"\"\"\n"
      "d = '''\nraw \\n ''quoted'' '''\n"
      "e = \"\"\n"
      "f = \"\"\"two quotes at the end\"\"\"\"\"\n");
  if (doc == NULL)
    return;
  CU_ASSERT_STRING_EQUAL(str(doc, "a"), "tab\there \"q\" back\\slash "
                                        "\xc3\xa9 \xf0\x9f\x98\x80");
  CU_ASSERT_STRING_EQUAL(str(doc, "b"), "C:\\path\\no escapes");
  CU_ASSERT_STRING_EQUAL(str(doc, "c"), "line one\n  line two joined");
  CU_ASSERT_STRING_EQUAL(str(doc, "d"), "raw \\n ''quoted'' ");
  CU_ASSERT_STRING_EQUAL(str(doc, "e"), "");
  CU_ASSERT_STRING_EQUAL(str(doc, "f"), "two quotes at the end\"\"");
  stm_toml_delete(doc);
}

static void test_toml_reads_integers_floats_and_booleans(void) {
  struct stm_toml_doc *doc = parse_ok(
      "a = 42\nb = -17\nc = +0\nd = 1_000_000\ne = 0xdead_BEEF\n"
      "f = 0o755\ng = 0b1010\nh = 9223372036854775807\n"
      "i = -9223372036854775808\nj = 3.25\nk = -1e3\nl = 6.02E+23\n"
      "m = inf\nn = -inf\no = nan\np = true\nq = false\nr = 1_0.5_5\n");
  if (doc == NULL)
    return;
  CU_ASSERT_EQUAL(num(doc, "a"), 42);
  CU_ASSERT_EQUAL(num(doc, "b"), -17);
  CU_ASSERT_EQUAL(num(doc, "c"), 0);
  CU_ASSERT_EQUAL(num(doc, "d"), 1000000);
  CU_ASSERT_EQUAL(num(doc, "e"), 0xdeadbeef);
  CU_ASSERT_EQUAL(num(doc, "f"), 0755);
  CU_ASSERT_EQUAL(num(doc, "g"), 10);
  CU_ASSERT_EQUAL(num(doc, "h"), INT64_MAX);
  CU_ASSERT_EQUAL(num(doc, "i"), INT64_MIN);
  double f = 0;
  CU_ASSERT_EQUAL(stm_toml_get_float(doc, "j", &f, NULL), 0);
  CU_ASSERT_DOUBLE_EQUAL(f, 3.25, 1e-12);
  CU_ASSERT_EQUAL(stm_toml_get_float(doc, "k", &f, NULL), 0);
  CU_ASSERT_DOUBLE_EQUAL(f, -1000.0, 1e-9);
  CU_ASSERT_EQUAL(stm_toml_get_float(doc, "l", &f, NULL), 0);
  CU_ASSERT_DOUBLE_EQUAL(f, 6.02e23, 1e10);
  CU_ASSERT_EQUAL(stm_toml_get_float(doc, "m", &f, NULL), 0);
  CU_ASSERT_TRUE(isinf(f) && f > 0);
  CU_ASSERT_EQUAL(stm_toml_get_float(doc, "n", &f, NULL), 0);
  CU_ASSERT_TRUE(isinf(f) && f < 0);
  CU_ASSERT_EQUAL(stm_toml_get_float(doc, "o", &f, NULL), 0);
  CU_ASSERT_TRUE(isnan(f));
  CU_ASSERT_EQUAL(stm_toml_get_float(doc, "a", &f, NULL), 0); /* int ok */
  CU_ASSERT_DOUBLE_EQUAL(f, 42.0, 1e-12);
  CU_ASSERT_EQUAL(stm_toml_get_float(doc, "r", &f, NULL), 0);
  CU_ASSERT_DOUBLE_EQUAL(f, 10.55, 1e-12);
  bool b = false;
  CU_ASSERT_EQUAL(stm_toml_get_bool(doc, "p", &b, NULL), 0);
  CU_ASSERT_TRUE(b);
  CU_ASSERT_EQUAL(stm_toml_get_bool(doc, "q", &b, NULL), 0);
  CU_ASSERT_FALSE(b);
  stm_toml_delete(doc);
}

static void test_toml_names_tables_dotted_and_quoted_keys(void) {
  struct stm_toml_doc *doc =
      parse_ok("top = 1\n[a.b]\nc = 2\nd.e = 3\n[ \"quoted key\" . 'lit' ]\n"
               "\"node id\" = \"x\"\n[a]\nz = 4\n");
  if (doc == NULL)
    return;
  CU_ASSERT_EQUAL(num(doc, "top"), 1);
  CU_ASSERT_EQUAL(num(doc, "a.b.c"), 2);
  CU_ASSERT_EQUAL(num(doc, "a.b.d.e"), 3);
  CU_ASSERT_STRING_EQUAL(str(doc, "quoted key.lit.node id"), "x");
  CU_ASSERT_EQUAL(num(doc, "a.z"), 4);
  stm_toml_delete(doc);
}

static void test_toml_reads_multiline_and_mixed_arrays(void) {
  struct stm_toml_doc *doc = parse_ok(
      "empty = []\nspaced = [ ]\n"
      "m = [ # comment after the bracket\n"
      "  \"a\",\n\n  # a comment line\n  'b' , # trailing comma next\n]\n"
      "mixed = [1, \"two\", 3.0, true]\nints = [1,2,3,]\n");
  if (doc == NULL)
    return;
  const char *const *s;
  size_t n = 99;
  CU_ASSERT_EQUAL(stm_toml_get_string_array(doc, "empty", &s, &n, NULL), 0);
  CU_ASSERT_EQUAL(n, 0);
  CU_ASSERT_EQUAL(stm_toml_get_string_array(doc, "spaced", &s, &n, NULL), 0);
  CU_ASSERT_EQUAL(n, 0);
  CU_ASSERT_EQUAL(stm_toml_get_string_array(doc, "m", &s, &n, NULL), 0);
  CU_ASSERT_EQUAL(n, 2);
  if (n == 2) {
    CU_ASSERT_STRING_EQUAL(s[0], "a");
    CU_ASSERT_STRING_EQUAL(s[1], "b");
  }
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(stm_toml_get_string_array(doc, "mixed", &s, &n, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "mixed");
  CU_ASSERT_EQUAL(stm_toml_find(doc, "ints")->type, STM_TOML_ARRAY);
  stm_toml_delete(doc);
}

static void test_toml_iterates_keys_in_document_order(void) {
  struct stm_toml_doc *doc = parse_ok("a = 1\n[t]\nb = 'x'\n\nc = [1]\n");
  if (doc == NULL)
    return;
  CU_ASSERT_EQUAL(stm_toml_count(doc), 3);
  const struct stm_toml_item *it = stm_toml_item_at(doc, 1);
  CU_ASSERT_STRING_EQUAL(it->key, "t.b");
  CU_ASSERT_EQUAL(it->type, STM_TOML_STRING);
  CU_ASSERT_EQUAL(it->line, 3);
  CU_ASSERT_EQUAL(it->column, 1);
  CU_ASSERT_STRING_EQUAL(stm_toml_item_at(doc, 2)->key, "t.c");
  CU_ASSERT_EQUAL(stm_toml_item_at(doc, 2)->line, 5);
  CU_ASSERT_PTR_NULL(stm_toml_item_at(doc, 3));
  CU_ASSERT_PTR_NULL(stm_toml_find(doc, "b"));
  stm_toml_delete(doc);
}

static void test_toml_lookup_of_wrong_type_names_key_and_line(void) {
  struct stm_toml_doc *doc = parse_ok("[cluster]\nenabled = \"yes\"\n");
  if (doc == NULL)
    return;
  struct stm_error err;
  stm_error_clear(&err);
  bool b;
  int64_t i;
  CU_ASSERT_EQUAL(stm_toml_get_bool(doc, "cluster.enabled", &b, &err),
                  STM_EINVAL);
  CU_ASSERT_STRING_EQUAL(err.field, "cluster.enabled");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "got string (line 2)"));
  CU_ASSERT_EQUAL(stm_toml_get_int(doc, "cluster.enabled", &i, NULL),
                  STM_EINVAL);
  CU_ASSERT_EQUAL(stm_toml_get_int(doc, "cluster.absent", &i, &err),
                  STM_ENOTFOUND);
  stm_toml_delete(doc);
}

static void test_toml_errors_give_line_and_column(void) {
  parse_fails("a = 1\nb = \n", "line 2, column 5: expected a value");
  parse_fails("a = 1\n  b 2\n", "line 2, column 5: expected '='");
  parse_fails("enabled = yes\n", "line 1, column 11: invalid value 'yes' "
                                 "(strings must be quoted)");
  parse_fails("a = \"open\nb = 1\n", "line 1, column 5: unterminated string");
  parse_fails("a = [1, 2\n", "line 1, column 5: unterminated array");
  parse_fails("a = [1 2]\n", "line 1, column 8: expected ',' or ']'");
  parse_fails("a = 1 b = 2\n",
              "line 1, column 7: expected the end of the line");
  parse_fails("[cluster\n", "line 1, column 9: expected ']'");
  parse_fails("a = \"\\q\"\n", "line 1, column 6: invalid escape");
  parse_fails("a = \"\\u12\"\n", "line 1, column 6: \\u needs 4 hex digits");
  parse_fails("a = \"\\ud800\"\n", "not a Unicode scalar value");
  parse_fails("a = \"\\u0000\"\n", "\\u0000 is not supported");
  parse_fails("a = 'tab\x01'\n", "control character 0x01");
  parse_fails("# c\x7f\n", "line 1, column 4: control character 0x7f");
  parse_fails("a = 1\rb = 2\n", "line 1, column 6: expected the end");
  parse_fails("a = \"\xc3\x28\"\n", "line 1, column 6: the file is not valid "
                                    "UTF-8");
  parse_fails_n("a = 1\n\x00", 7, "line 2, column 1: expected a key");
  parse_fails_n("a = 'x\x00'", 8, "line 1, column 7: control character 0x00");
  parse_fails("a = '''never closed\n", "unterminated multi-line string");
  parse_fails("= 1\n", "line 1, column 1: expected a key");
}

static void test_toml_rejects_bad_numbers(void) {
  parse_fails("a = 012\n", "invalid value '012'");
  parse_fails("a = 1__0\n", "invalid value");
  parse_fails("a = _1\n", "invalid value");
  parse_fails("a = 1_\n", "invalid value");
  parse_fails("a = 1.\n", "invalid value");
  parse_fails("a = .5\n", "invalid value");
  parse_fails("a = 1e\n", "invalid value");
  parse_fails("a = 0x\n", "invalid integer");
  parse_fails("a = 0b102\n", "invalid integer");
  parse_fails("a = 9223372036854775808\n", "out of range");
  parse_fails("a = 0x8000000000000000\n", "out of range");
  parse_fails("a = 1e999\n", "out of range");
  parse_fails("a = truefalse\n", "invalid value");
}

static void test_toml_rejects_duplicates_and_conflicts(void) {
  parse_fails("a = 1\na = 2\n", "line 2, column 1: duplicate key a (first set "
                                "on line 1)");
  parse_fails("[t]\nx = 1\n[t]\n", "line 3, column 1: table [t] defined twice");
  parse_fails("a = 1\n[a]\n", "table [a] conflicts with key a");
  parse_fails("a.b = 1\na = 2\n", "key a conflicts with a.b");
  parse_fails("a = 2\na.b = 1\n", "key a.b conflicts with a");
  parse_fails("[a.b]\n[a]\nb = 1\n", "key a.b conflicts with table [a.b]");
}

static void test_toml_rejects_unsupported_constructs_clearly(void) {
  parse_fails("t = { a = 1 }\n", "inline tables are not supported");
  parse_fails("[[node]]\n", "arrays of tables ([[...]]) are not supported");
  parse_fails("d = 1979-05-27\n", "dates and times are not supported");
  parse_fails("d = 07:32:00\n", "dates and times are not supported");
  parse_fails("a = [[1], [2]]\n", "nested arrays are not supported");
  parse_fails("\"a.b\" = 1\n", "a quoted key containing '.'");
  parse_fails("\"\" = 1\n", "empty quoted keys");
}

/* Every prefix of a valid document parses or fails cleanly, never crashes
 * nor reads past the end (ASan watches the latter: each prefix is copied
 * into an exactly-sized allocation). */
static void test_toml_survives_every_prefix_of_a_valid_document(void) {
  static const char full[] =
      "# all features\n[cluster]\nenabled = true\nnode_id = \"n\\u00e9\"\n"
      "seeds = [\n  'a:1', # x\n  \"b:2\",\n]\nf = -1.5e3\nh = 0xff\n"
      "ml = \"\"\"\nx \\\n y\"\"\"\nlit = '''\nz'''\n[t.'q']\nk.j = 1_0\n";
  size_t len = sizeof full - 1, ok = 0;
  for (size_t n = 0; n <= len; n++) {
    char *copy = malloc(n ? n : 1);
    memcpy(copy, full, n);
    struct stm_toml_doc *doc = NULL;
    struct stm_error err;
    stm_error_clear(&err);
    int rc = stm_toml_parse(copy, n, &doc, &err);
    if (rc == 0)
      ok++;
    else
      CU_ASSERT_EQUAL(strncmp(err.message, "line ", 5), 0);
    CU_ASSERT_TRUE((rc == 0) == (doc != NULL));
    stm_toml_delete(doc);
    free(copy);
  }
  CU_ASSERT_TRUE(ok > 10);
}

static uint64_t rng_state;

static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Up to `cap` bytes of random TOML tokens, so the parser gets deep. */
static size_t splice_tokens(char *buf, size_t cap) {
  static const char *const tokens[] = {
      "[cluster]", "[a.b]",      "\n",          "\r\n",    " ",      "k = ",
      "a.b = ",    "\"q k\" = ", "\"s\"",       "'l'",     "\"\"\"", "'''",
      "\\",        "\\u00e9",    "\\U0001F600", "[",       "]",      ",",
      "# c",       "1_000",      "0x1f",        "0o7",     "0b1",    "-1.5e3",
      "inf",       "true",       "false",       "{",       "[[",     "=",
      ".",         "1979-05-27", "\t",          "\"\\\n\""};
  size_t n = 0;
  while (n < cap) {
    const char *t = tokens[rng() % (sizeof tokens / sizeof tokens[0])];
    size_t len = strlen(t);
    if (len > cap - n)
      len = cap - n;
    memcpy(buf + n, t, len);
    n += len;
  }
  return n;
}

/* Random bytes drawn mostly from TOML's own alphabet, plus mutations of a
 * valid document: all must end in 0 or STM_EINVAL. */
static void test_toml_survives_random_garbage(void) {
  rng_state = stm_test_seed();
  static const char alphabet[] = "[]=\"'#.,{}\n\r\t _-+:0123456789abcdefxotrun"
                                 "\\\x01\x7f\xc3\xa9\xff";
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = rng() % 96;
    char *buf = malloc(n ? n : 1);
    if (iter % 3 == 0) {
      for (size_t i = 0; i < n; i++)
        buf[i] = alphabet[rng() % (sizeof alphabet - 1)];
    } else if (iter % 3 == 1) {
      n = splice_tokens(buf, n);
    } else {
      n = n < strlen(stm_test_seed_node1_toml)
              ? n
              : strlen(stm_test_seed_node1_toml);
      memcpy(buf, stm_test_seed_node1_toml, n);
      for (int k = 0; k < 3 && n > 0; k++)
        buf[rng() % n] = (char)(rng() & 0xff);
    }
    struct stm_toml_doc *doc = NULL;
    int rc = stm_toml_parse(buf, n, &doc, NULL);
    CU_ASSERT_TRUE(rc == 0 || rc == STM_EINVAL);
    for (size_t i = 0; doc && i < stm_toml_count(doc); i++)
      CU_ASSERT_PTR_NOT_NULL(stm_toml_find(doc, stm_toml_item_at(doc, i)->key));
    stm_toml_delete(doc);
    free(buf);
  }
}

static void test_toml_parse_file_prefixes_errors_with_the_path(void) {
  char *dir = stm_test_tmpdir("toml");
  char path[600];
  snprintf(path, sizeof path, "%s/cluster.toml", dir);
  FILE *f = fopen(path, "w");
  fputs("[cluster]\nenabled = maybe\n", f);
  fclose(f);
  struct stm_toml_doc *doc = NULL;
  struct stm_error err;
  stm_error_clear(&err);
  CU_ASSERT_EQUAL(stm_toml_parse_file(path, &doc, &err), STM_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, path));
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "line 2, column 11"));
  f = fopen(path, "w");
  fputs(stm_test_seed_node1_toml, f);
  fclose(f);
  CU_ASSERT_EQUAL(stm_toml_parse_file(path, &doc, &err), 0);
  CU_ASSERT_EQUAL(stm_toml_count(doc), 7);
  stm_toml_delete(doc);
  snprintf(path, sizeof path, "%s/missing.toml", dir);
  CU_ASSERT_EQUAL(stm_toml_parse_file(path, &doc, &err), STM_ENOTFOUND);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "No such file"));
  stm_test_rmrf(dir);
  free(dir);
}

static const struct stm_test_case toml_cases[] = {
    STM_TEST(test_toml_parses_the_seed_cluster_toml_verbatim),
    STM_TEST(test_toml_parses_every_other_seed_variant),
    STM_TEST(test_toml_accepts_crlf_line_endings),
    STM_TEST(test_toml_decodes_basic_and_literal_strings),
    STM_TEST(test_toml_reads_integers_floats_and_booleans),
    STM_TEST(test_toml_names_tables_dotted_and_quoted_keys),
    STM_TEST(test_toml_reads_multiline_and_mixed_arrays),
    STM_TEST(test_toml_iterates_keys_in_document_order),
    STM_TEST(test_toml_lookup_of_wrong_type_names_key_and_line),
    STM_TEST(test_toml_errors_give_line_and_column),
    STM_TEST(test_toml_rejects_bad_numbers),
    STM_TEST(test_toml_rejects_duplicates_and_conflicts),
    STM_TEST(test_toml_rejects_unsupported_constructs_clearly),
    STM_TEST(test_toml_survives_every_prefix_of_a_valid_document),
    STM_TEST(test_toml_survives_random_garbage),
    STM_TEST(test_toml_parse_file_prefixes_errors_with_the_path),
    STM_TEST_END};

void stm_test_register_toml(void) { stm_test_suite("toml", toml_cases); }
