/*
 * hashset.h - an open-addressing map from a 32-byte content hash to a
 * sequence number. The writer uses it for the hashes pending in the group
 * being built (not yet in LevelDB); recovery for the batch being replayed.
 * Clearing is O(1) (a generation counter), so a set sized for one big group
 * costs nothing for the many small ones after it. Not thread-safe.
 */
#ifndef STM_HASHSET_H
#define STM_HASHSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stm_hashset_slot;

struct stm_hashset {
  struct stm_hashset_slot *slots;
  size_t cap; /* power of two or 0 */
  size_t len;
  uint32_t gen; /* a slot is used when its gen equals this */
};

void stm_hashset_init(struct stm_hashset *set);
void stm_hashset_destroy(struct stm_hashset *set);
void stm_hashset_clear(struct stm_hashset *set);
/* Insert or overwrite. Returns 0 or STM_ENOMEM. */
int stm_hashset_put(struct stm_hashset *set, const uint8_t hash[32],
                    uint64_t value);
bool stm_hashset_get(const struct stm_hashset *set, const uint8_t hash[32],
                     uint64_t *value);

#endif
