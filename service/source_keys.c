#include "source_keys.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 256
#define ID_MAX 128 /* longer ids are simply not cached */

struct slot {
  bool used;
  bool has_key;
  uint64_t version;
  char id[ID_MAX + 1];
  uint8_t key[STM_PUBLIC_KEY_LEN];
};

struct stm_source_keys {
  pthread_mutex_t mu;
  struct slot slots[SLOTS];
};

struct stm_source_keys *stm_source_keys_new(void) {
  struct stm_source_keys *c = calloc(1, sizeof *c);
  if (c)
    pthread_mutex_init(&c->mu, NULL);
  return c;
}

void stm_source_keys_delete(struct stm_source_keys *c) {
  if (c == NULL)
    return;
  pthread_mutex_destroy(&c->mu);
  free(c);
}

static struct slot *slot_of(struct stm_source_keys *c, const char *id) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    h = (h ^ *p) * 16777619u;
  return &c->slots[h % SLOTS];
}

bool stm_source_keys_get(struct stm_source_keys *c, const char *id,
                         uint64_t version, bool *has_key,
                         uint8_t key[STM_PUBLIC_KEY_LEN]) {
  if (c == NULL)
    return false;
  pthread_mutex_lock(&c->mu);
  struct slot *s = slot_of(c, id);
  bool hit = s->used && s->version == version && strcmp(s->id, id) == 0;
  if (hit) {
    *has_key = s->has_key;
    memcpy(key, s->key, STM_PUBLIC_KEY_LEN);
  }
  pthread_mutex_unlock(&c->mu);
  return hit;
}

void stm_source_keys_put(struct stm_source_keys *c, const char *id,
                         uint64_t version, bool has_key,
                         const uint8_t key[STM_PUBLIC_KEY_LEN]) {
  size_t len = c ? strnlen(id, ID_MAX + 1) : ID_MAX + 1;
  if (len > ID_MAX)
    return;
  pthread_mutex_lock(&c->mu);
  struct slot *s = slot_of(c, id);
  s->used = true;
  s->has_key = has_key;
  s->version = version;
  memcpy(s->id, id, len + 1);
  memcpy(s->key, key, STM_PUBLIC_KEY_LEN);
  pthread_mutex_unlock(&c->mu);
}
