#include "hashset.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>

struct stm_hashset_slot {
  uint8_t hash[32];
  uint64_t value;
  uint32_t gen;
};

void stm_hashset_init(struct stm_hashset *set) {
  memset(set, 0, sizeof *set);
  set->gen = 1;
}

void stm_hashset_destroy(struct stm_hashset *set) {
  free(set->slots);
  stm_hashset_init(set);
}

void stm_hashset_clear(struct stm_hashset *set) {
  set->len = 0;
  if (++set->gen == 0) { /* wrapped: old slots could look used again */
    if (set->slots)
      memset(set->slots, 0, set->cap * sizeof *set->slots);
    set->gen = 1;
  }
}

/* The hash is already uniformly random: its first 8 bytes index the table. */
static size_t home(const uint8_t hash[32], size_t cap) {
  uint64_t h;
  memcpy(&h, hash, sizeof h);
  return (size_t)h & (cap - 1);
}

static struct stm_hashset_slot *find(const struct stm_hashset *set,
                                     const uint8_t hash[32]) {
  for (size_t i = home(hash, set->cap);; i = (i + 1) & (set->cap - 1)) {
    struct stm_hashset_slot *s = &set->slots[i];
    if (s->gen != set->gen || memcmp(s->hash, hash, 32) == 0)
      return s;
  }
}

static int grow(struct stm_hashset *set) {
  size_t cap = set->cap ? set->cap * 2 : 64;
  struct stm_hashset_slot *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return STM_ENOMEM;
  struct stm_hashset old = *set;
  set->slots = slots;
  set->cap = cap;
  set->len = 0;
  set->gen = 1;
  for (size_t i = 0; i < old.cap; i++)
    if (old.slots[i].gen == old.gen)
      stm_hashset_put(set, old.slots[i].hash, old.slots[i].value);
  free(old.slots);
  return 0;
}

int stm_hashset_put(struct stm_hashset *set, const uint8_t hash[32],
                    uint64_t value) {
  /* Keep the load under 1/2 so probes stay short and find() terminates. */
  if ((set->len + 1) * 2 > set->cap && grow(set) != 0)
    return STM_ENOMEM;
  struct stm_hashset_slot *s = find(set, hash);
  if (s->gen != set->gen) {
    memcpy(s->hash, hash, 32);
    s->gen = set->gen;
    set->len++;
  }
  s->value = value;
  return 0;
}

bool stm_hashset_get(const struct stm_hashset *set, const uint8_t hash[32],
                     uint64_t *value) {
  if (set->cap == 0)
    return false;
  const struct stm_hashset_slot *s = find(set, hash);
  if (s->gen != set->gen)
    return false;
  *value = s->value;
  return true;
}
