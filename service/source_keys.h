/*
 * source_keys.h - a small cache of the public keys registered for sources,
 * so the signature check of every Assert does not open a LevelDB iterator
 * for a source that rarely changes.
 *
 * Entries are tagged with the store's sources_committed counter (store.h)
 * read BEFORE the lookup they cache; any committed PutSource moves the
 * counter before it is acknowledged, so a stale entry is never used after
 * a caller could know about the change. Direct-mapped: a collision only
 * costs a lookup. Thread-safe.
 */
#ifndef STM_SOURCE_KEYS_H
#define STM_SOURCE_KEYS_H

#include "storage/store.h" /* STM_PUBLIC_KEY_LEN */

#include <stdbool.h>
#include <stdint.h>

struct stm_source_keys;

/* NULL when out of memory (callers then look every source up). */
struct stm_source_keys *stm_source_keys_new(void);
void stm_source_keys_delete(struct stm_source_keys *c);

/* The cached key state of source `id` at `version`: true and *has_key /
 * key filled, or false (absent, other version, or c NULL). */
bool stm_source_keys_get(struct stm_source_keys *c, const char *id,
                         uint64_t version, bool *has_key,
                         uint8_t key[STM_PUBLIC_KEY_LEN]);

/* Remember what a lookup at `version` found (has_key false: no key or no
 * such source). No-op for c NULL or an id too long to cache. */
void stm_source_keys_put(struct stm_source_keys *c, const char *id,
                         uint64_t version, bool has_key,
                         const uint8_t key[STM_PUBLIC_KEY_LEN]);

#endif
