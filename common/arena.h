/*
 * arena.h - a bump allocator for short-lived object graphs (protobuf-c
 * replies built field by field, then packed and dropped in one go).
 * Allocation failure aborts: replies are small and bounded.
 */
#ifndef STM_ARENA_H
#define STM_ARENA_H

#include <stddef.h>

struct stm_arena_chunk;

struct stm_arena {
  struct stm_arena_chunk *head;
};

void stm_arena_init(struct stm_arena *a);
/* Free every allocation made from the arena. */
void stm_arena_destroy(struct stm_arena *a);
/* Zeroed memory aligned for any type; valid until stm_arena_destroy. */
void *stm_arena_alloc(struct stm_arena *a, size_t size);
/* NUL-terminated copy of (s, len). */
char *stm_arena_strndup(struct stm_arena *a, const char *s, size_t len);
char *stm_arena_strdup(struct stm_arena *a, const char *s);

#endif
