/* Shards, rendezvous hashing and the versioned shard map (placement.h). */
#include "placement.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t blake64(const void *a, size_t alen, const void *b,
                        size_t blen) {
  crypto_generichash_state st;
  uint8_t out[8];
  crypto_generichash_init(&st, NULL, 0, sizeof out);
  crypto_generichash_update(&st, a, alen);
  if (blen)
    crypto_generichash_update(&st, b, blen);
  crypto_generichash_final(&st, out, sizeof out);
  return stm_buf_load_u64le(out);
}

uint32_t stm_placement_shard_of(const char *concept_path, uint32_t shards) {
  if (shards <= 1)
    return 0;
  return (uint32_t)(blake64(concept_path, strlen(concept_path), NULL, 0) %
                    shards);
}

void stm_placement_shard_name(uint32_t shard, char *buf, size_t len) {
  snprintf(buf, len, "shard-%" PRIu32, shard);
}

int stm_placement_shard_parse(const char *field, const char *name,
                              uint32_t shards, uint32_t *out,
                              struct stm_error *err) {
  const char *p = strncmp(name, "shard-", 6) == 0 ? name + 6 : name;
  char *end = NULL;
  errno = 0;
  unsigned long v = *p >= '0' && *p <= '9' ? strtoul(p, &end, 10) : 0;
  if (end == NULL || *end != '\0' || errno || v >= shards)
    return stm_error_set(err, STM_EINVAL, field,
                         "%s must name a shard \"shard-0\" .. \"shard-%" PRIu32
                         "\", got \"%.64s\"",
                         field, shards ? shards - 1 : 0, name);
  *out = (uint32_t)v;
  return 0;
}

uint64_t stm_placement_score(uint32_t shard, const char *node_id) {
  char key[16];
  int n = snprintf(key, sizeof key, "%" PRIu32, shard);
  /* The NUL separates the shard from the id ("1"+"2x" != "12"+"x"). */
  return blake64(key, (size_t)n + 1, node_id, strlen(node_id));
}

/* Does a (score sa, id a) rank before b? */
static bool ranks_before(uint64_t sa, const char *a, uint64_t sb,
                         const char *b) {
  return sa != sb ? sa > sb : strcmp(a, b) < 0;
}

size_t stm_placement_rendezvous(uint32_t shard, const char *const *nodes,
                                size_t n, size_t factor, size_t *out) {
  uint64_t best[STM_PLACEMENT_MAX_REPLICAS];
  size_t k = 0;
  if (factor > STM_PLACEMENT_MAX_REPLICAS)
    factor = STM_PLACEMENT_MAX_REPLICAS;
  for (size_t i = 0; i < n; i++) {
    uint64_t s = stm_placement_score(shard, nodes[i]);
    size_t pos = k;
    while (pos > 0 &&
           ranks_before(s, nodes[i], best[pos - 1], nodes[out[pos - 1]]))
      pos--;
    if (pos >= factor)
      continue;
    size_t last = k < factor ? k : factor - 1;
    for (size_t j = last; j > pos; j--) {
      best[j] = best[j - 1];
      out[j] = out[j - 1];
    }
    best[pos] = s;
    out[pos] = i;
    if (k < factor)
      k++;
  }
  return k;
}

const char *stm_shard_status_name(enum stm_shard_status s) {
  switch (s) {
  case STM_SHARD_PENDING:
    return "pending";
  case STM_SHARD_COPYING:
    return "copying";
  case STM_SHARD_DONE:
    return "done";
  }
  return "stable";
}

static int status_parse(const char *s, enum stm_shard_status *out) {
  for (int i = STM_SHARD_PENDING; i <= STM_SHARD_DONE; i++)
    if (strcmp(s, stm_shard_status_name((enum stm_shard_status)i)) == 0) {
      *out = (enum stm_shard_status)i;
      return 0;
    }
  return STM_EINVAL;
}

void stm_shard_map_init(struct stm_shard_map *m, uint32_t shards) {
  memset(m, 0, sizeof *m);
  m->shards = shards ? shards : 1;
}

void stm_shard_map_destroy(struct stm_shard_map *m) {
  free(m->entries);
  stm_shard_map_init(m, m->shards);
}

int stm_shard_map_copy(struct stm_shard_map *dst,
                       const struct stm_shard_map *src) {
  struct stm_shard_entry *e = NULL;
  if (src->count) {
    e = malloc(src->count * sizeof *e);
    if (e == NULL)
      return STM_ENOMEM;
    memcpy(e, src->entries, src->count * sizeof *e);
  }
  free(dst->entries);
  *dst = *src;
  dst->entries = e;
  dst->cap = src->count;
  return 0;
}

const struct stm_shard_entry *stm_shard_map_find(const struct stm_shard_map *m,
                                                 uint32_t shard) {
  for (size_t i = 0; i < m->count; i++)
    if (m->entries[i].shard == shard)
      return &m->entries[i];
  return NULL;
}

/* Insert or replace without touching the version. */
static int map_store(struct stm_shard_map *m, const struct stm_shard_entry *e) {
  if (e->shard >= m->shards)
    return STM_EINVAL;
  size_t i = 0;
  while (i < m->count && m->entries[i].shard < e->shard)
    i++;
  if (i < m->count && m->entries[i].shard == e->shard) {
    m->entries[i] = *e;
    return 0;
  }
  if (m->count == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 8;
    struct stm_shard_entry *g = realloc(m->entries, cap * sizeof *g);
    if (g == NULL)
      return STM_ENOMEM;
    m->entries = g;
    m->cap = cap;
  }
  memmove(&m->entries[i + 1], &m->entries[i],
          (m->count - i) * sizeof *m->entries);
  m->entries[i] = *e;
  m->count++;
  return 0;
}

int stm_shard_map_put(struct stm_shard_map *m,
                      const struct stm_shard_entry *e) {
  int rc = map_store(m, e);
  if (rc == 0)
    m->version++;
  return rc;
}

static bool listed(const char *const *ids, size_t n, const char *id) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(ids[i], id) == 0)
      return true;
  return false;
}

size_t stm_placement_replicas(const struct stm_shard_map *m, uint32_t shard,
                              const char *const *up, size_t n, size_t factor,
                              const char **out, size_t max) {
  size_t k = 0;
  const struct stm_shard_entry *e = m ? stm_shard_map_find(m, shard) : NULL;
  for (size_t i = 0; e && i < e->replica_count && k < max; i++)
    for (size_t j = 0; j < n; j++)
      if (strcmp(up[j], e->replicas[i]) == 0 && !listed(out, k, up[j]))
        out[k++] = up[j];
  if (k >= factor)
    return k;
  size_t order[STM_PLACEMENT_MAX_REPLICAS];
  /* Enough candidates to skip the ones the entry already gave. */
  size_t want = factor + k;
  size_t got = stm_placement_rendezvous(shard, up, n, want, order);
  for (size_t i = 0; i < got && k < factor && k < max; i++)
    if (!listed(out, k, up[order[i]]))
      out[k++] = up[order[i]];
  return k;
}

int stm_shard_map_move(struct stm_shard_map *m, uint32_t shard,
                       const char *target, const char *const *current,
                       size_t count, size_t factor, struct stm_error *err) {
  char name[STM_SHARD_NAME_MAX];
  stm_placement_shard_name(shard, name, sizeof name);
  const struct stm_shard_entry *old = stm_shard_map_find(m, shard);
  if (old && old->status != STM_SHARD_DONE)
    return stm_error_set(err, STM_EINVAL, "shard_id",
                         "shard_id %s is already moving to %s (%s)", name,
                         old->target, stm_shard_status_name(old->status));
  if (listed(current, count, target))
    return stm_error_set(err, STM_EINVAL, "target_node",
                         "target_node %s already holds %s", target, name);
  if (count + 1 > STM_PLACEMENT_MAX_REPLICAS)
    return stm_error_set(err, STM_EINVAL, "shard_id", "too many replicas");
  struct stm_shard_entry e = {.shard = shard, .status = STM_SHARD_PENDING};
  snprintf(e.target, sizeof e.target, "%s", target);
  if (count >= factor && count > 0)
    snprintf(e.drop, sizeof e.drop, "%s", current[count - 1]);
  for (size_t i = 0; i < count; i++)
    snprintf(e.replicas[e.replica_count++], sizeof e.replicas[0], "%s",
             current[i]);
  snprintf(e.replicas[e.replica_count++], sizeof e.replicas[0], "%s", target);
  int rc = stm_shard_map_put(m, &e);
  return rc ? stm_error_set(err, rc, "shard_id", "cannot record the move") : 0;
}

int stm_shard_map_set_status(struct stm_shard_map *m, uint32_t shard,
                             enum stm_shard_status status) {
  const struct stm_shard_entry *found = stm_shard_map_find(m, shard);
  if (found == NULL)
    return STM_ENOTFOUND;
  struct stm_shard_entry e = *found;
  e.status = status;
  if (status == STM_SHARD_DONE && e.drop[0]) {
    size_t k = 0;
    for (size_t i = 0; i < e.replica_count; i++)
      if (strcmp(e.replicas[i], e.drop) != 0)
        memmove(e.replicas[k++], e.replicas[i], sizeof e.replicas[0]);
    e.replica_count = k;
  }
  return stm_shard_map_put(m, &e);
}

int stm_shard_map_cancel(struct stm_shard_map *m, uint32_t shard) {
  const struct stm_shard_entry *found = stm_shard_map_find(m, shard);
  if (found == NULL || found->status == STM_SHARD_DONE)
    return STM_ENOTFOUND;
  struct stm_shard_entry e = *found;
  size_t k = 0;
  for (size_t i = 0; i < e.replica_count; i++)
    if (strcmp(e.replicas[i], e.target) != 0)
      memmove(e.replicas[k++], e.replicas[i], sizeof e.replicas[0]);
  e.replica_count = k;
  e.status = STM_SHARD_DONE;
  e.target[0] = e.drop[0] = '\0';
  return stm_shard_map_put(m, &e);
}

int stm_shard_map_format(const struct stm_shard_map *m, struct stm_buf *out) {
  int rc = stm_buf_printf(
      out, "stemedb-shard-map 1\nversion %" PRIu64 "\nshards %" PRIu32 "\n",
      m->version, m->shards);
  for (size_t i = 0; rc == 0 && i < m->count; i++) {
    const struct stm_shard_entry *e = &m->entries[i];
    rc = stm_buf_printf(out, "shard %" PRIu32 " %s %s %s ", e->shard,
                        stm_shard_status_name(e->status),
                        e->target[0] ? e->target : "-",
                        e->drop[0] ? e->drop : "-");
    for (size_t j = 0; rc == 0 && j < e->replica_count; j++)
      rc = stm_buf_printf(out, "%s%s", j ? "," : "", e->replicas[j]);
    if (rc == 0)
      rc = stm_buf_printf(out, "\n");
  }
  return rc;
}

/* "-" -> "", else a node id. */
static int parse_id(const char *s, char *out, size_t len) {
  if (strcmp(s, "-") == 0) {
    out[0] = '\0';
    return 0;
  }
  if (stm_node_id_validate("id", s, NULL) != 0 || strlen(s) >= len)
    return STM_EINVAL;
  snprintf(out, len, "%s", s);
  return 0;
}

static int parse_entry(char *line, uint32_t shards, struct stm_shard_entry *e) {
  char *save = NULL;
  char *tok[6];
  for (int i = 0; i < 6; i++)
    if ((tok[i] = strtok_r(i ? NULL : line, " ", &save)) == NULL)
      return STM_EINVAL;
  if (strtok_r(NULL, " ", &save) != NULL)
    return STM_EINVAL;
  memset(e, 0, sizeof *e);
  char *end;
  unsigned long v = strtoul(tok[1], &end, 10);
  if (strcmp(tok[0], "shard") != 0 || *end || v >= shards ||
      status_parse(tok[2], &e->status) ||
      parse_id(tok[3], e->target, sizeof e->target) ||
      parse_id(tok[4], e->drop, sizeof e->drop))
    return STM_EINVAL;
  e->shard = (uint32_t)v;
  for (char *s2 = NULL, *r = strtok_r(tok[5], ",", &s2); r;
       r = strtok_r(NULL, ",", &s2)) {
    if (e->replica_count == STM_PLACEMENT_MAX_REPLICAS ||
        parse_id(r, e->replicas[e->replica_count], sizeof e->replicas[0]) ||
        !e->replicas[e->replica_count][0])
      return STM_EINVAL;
    e->replica_count++;
  }
  return 0;
}

/* "NAME DIGITS" with the value in [0, max]; unlike sscanf's %llu, no sign,
 * no trailing text and no silent wrap-around. */
static bool parse_counter(const char *line, const char *name, uint64_t max,
                          uint64_t *out) {
  size_t n = strlen(name);
  if (strncmp(line, name, n) != 0 || line[n] != ' ' || line[n + 1] < '0' ||
      line[n + 1] > '9')
    return false;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(line + n + 1, &end, 10);
  if (errno != 0 || *end != '\0' || v > max)
    return false;
  *out = v;
  return true;
}

static int parse_lines(struct stm_shard_map *m, char *text,
                       struct stm_error *err) {
  int lineno = 0;
  char *save = NULL;
  uint64_t version = 0;
  uint64_t shards = 0;
  for (char *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    struct stm_shard_entry e;
    bool ok =
        lineno == 1   ? strcmp(line, "stemedb-shard-map 1") == 0
        : lineno == 2 ? parse_counter(line, "version", UINT64_MAX, &version)
        : lineno == 3
            ? parse_counter(line, "shards", STM_CLUSTER_MAX_SHARDS, &shards) &&
                  shards >= 1
            : (m->shards = (uint32_t)shards,
               parse_entry(line, m->shards, &e) == 0 && map_store(m, &e) == 0);
    if (!ok)
      return stm_error_set(err, STM_EINVAL, "shard_map",
                           "shard map line %d is malformed", lineno);
  }
  if (lineno < 3)
    return stm_error_set(err, STM_EINVAL, "shard_map",
                         "shard map is truncated (%d lines)", lineno);
  m->version = version;
  m->shards = (uint32_t)shards;
  return 0;
}

int stm_shard_map_parse(struct stm_shard_map *m, const char *text, size_t len,
                        struct stm_error *err) {
  char *copy = malloc(len + 1);
  if (copy == NULL)
    return stm_error_set(err, STM_ENOMEM, "shard_map", "out of memory");
  memcpy(copy, text, len);
  copy[len] = '\0';
  struct stm_shard_map tmp;
  stm_shard_map_init(&tmp, m->shards);
  int rc = memchr(text, '\0', len) ? stm_error_set(err, STM_EINVAL, "shard_map",
                                                   "shard map holds a NUL byte")
                                   : parse_lines(&tmp, copy, err);
  free(copy);
  if (rc == 0) {
    stm_shard_map_destroy(m);
    *m = tmp;
  } else {
    stm_shard_map_destroy(&tmp);
  }
  return rc;
}

int stm_shard_map_load(struct stm_shard_map *m, const char *path,
                       struct stm_error *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return errno == ENOENT
               ? 0
               : stm_error_set(err, STM_EIO, "shard_map", "cannot open %s: %s",
                               path, strerror(errno));
  char buf[1 << 16];
  struct stm_buf b;
  stm_buf_init(&b);
  size_t n;
  int rc = 0;
  while (rc == 0 && (n = fread(buf, 1, sizeof buf, f)) > 0)
    rc = stm_buf_append(&b, buf, n);
  bool bad = ferror(f);
  fclose(f);
  if (rc == 0 && bad)
    rc = stm_error_set(err, STM_EIO, "shard_map", "cannot read %s", path);
  else if (rc == 0)
    rc = stm_shard_map_parse(m, (const char *)b.data, b.len, err);
  else
    rc = stm_error_set(err, rc, "shard_map", "out of memory");
  stm_buf_destroy(&b);
  return rc;
}

int stm_shard_map_save(const struct stm_shard_map *m, const char *path,
                       struct stm_error *err) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  struct stm_buf b;
  stm_buf_init(&b);
  int rc = stm_shard_map_format(m, &b);
  int fd = rc ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool ok =
      fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len && fsync(fd) == 0;
  if (fd >= 0 && close(fd) != 0)
    ok = false;
  ok = ok && rename(tmp, path) == 0;
  stm_buf_destroy(&b);
  if (rc)
    return stm_error_set(err, rc, "shard_map", "out of memory");
  if (!ok)
    return stm_error_set(err, STM_EIO, "shard_map", "cannot write %s: %s", path,
                         strerror(errno));
  return 0;
}
