/*
 * toml_internal.h - the document representation shared by toml.c (the
 * document and its lookups) and toml_parse.c / toml_lex.c (the parser).
 * Not for use outside cluster/toml*.c.
 */
#ifndef STM_CLUSTER_TOML_INTERNAL_H
#define STM_CLUSTER_TOML_INTERNAL_H

#include "toml.h"

struct stm__toml_value {
  enum stm_toml_type type;
  union {
    char *s;
    int64_t i;
    double f;
    bool b;
    struct {
      struct stm__toml_value *items;
      size_t n;
      /* When every item is a string: their pointers, for the string-array
       * getter (NULL for an empty array). */
      const char **strs;
      bool all_strings;
    } arr;
  } u;
};

struct stm__toml_entry {
  struct stm_toml_item info; /* info.key points at key */
  char *key;
  struct stm__toml_value v;
};

struct stm__toml_table {
  char *name;
  int line;
};

struct stm_toml_doc {
  struct stm__toml_entry *entries;
  size_t n, cap;
  struct stm__toml_table *tables; /* every [header] seen, for duplicates */
  size_t ntables, tcap;
};

/* Free what a value owns (not the value itself). */
void stm__toml_value_free(struct stm__toml_value *v);

#endif
