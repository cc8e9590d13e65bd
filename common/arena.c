#include "arena.h"

#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES 8192

struct stm_arena_chunk {
  struct stm_arena_chunk *next;
  size_t used, cap;
  alignas(max_align_t) unsigned char data[];
};

void stm_arena_init(struct stm_arena *a) { a->head = NULL; }

void stm_arena_destroy(struct stm_arena *a) {
  while (a->head) {
    struct stm_arena_chunk *next = a->head->next;
    free(a->head);
    a->head = next;
  }
}

void *stm_arena_alloc(struct stm_arena *a, size_t size) {
  size_t align = alignof(max_align_t);
  size = (size + align - 1) & ~(align - 1);
  struct stm_arena_chunk *c = a->head;
  if (c == NULL || c->cap - c->used < size) {
    size_t cap = size > CHUNK_BYTES ? size : CHUNK_BYTES;
    c = malloc(sizeof *c + cap);
    if (c == NULL)
      abort();
    c->next = a->head;
    c->used = 0;
    c->cap = cap;
    a->head = c;
  }
  void *p = c->data + c->used;
  c->used += size;
  memset(p, 0, size);
  return p;
}

char *stm_arena_strndup(struct stm_arena *a, const char *s, size_t len) {
  char *p = stm_arena_alloc(a, len + 1);
  if (len)
    memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

char *stm_arena_strdup(struct stm_arena *a, const char *s) {
  return stm_arena_strndup(a, s ? s : "", s ? strlen(s) : 0);
}
