/*
 * quota.c - the per-agent usage table of the current hour and its file
 * (quota.h). DATA_DIR/quota.log is rewritten whole (temporary file, fsync,
 * rename): "window HOUR_START_S" then "USED AGENT" lines.
 */
#include "quota.h"

#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TABLE_SIZE 8192
#define AGENT_MAX 160
#define OVERFLOW_AGENT "*overflow*"

struct usage {
  struct usage *next;
  uint64_t used;
  char agent[];
};

struct override {
  char agent[AGENT_MAX];
  uint64_t limit;
};

struct stm_quota {
  uint64_t per_hour;
  struct override *overrides;
  size_t n_overrides;
  char path[4096];
  pthread_mutex_t lock;
  int64_t window; /* start of the hour the usage counts, seconds */
  struct usage *table[TABLE_SIZE];
  size_t n;
  int64_t saved_s;
  bool dirty;
};

uint64_t stm_quota_cost(const char *method, uint64_t claims) {
  if (strcmp(method, "Assert") == 0)
    return 10;
  if (strcmp(method, "AssertBatch") == 0)
    return 10 * (claims ? claims : 1);
  if (strcmp(method, "Vote") == 0)
    return 1;
  if (strcmp(method, "Query") == 0)
    return 5;
  return 0;
}

static size_t slot_of(const char *agent) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)agent; *p; p++)
    h = (h ^ *p) * 1099511628211ULL;
  return (size_t)(h % TABLE_SIZE);
}

static void clear(struct stm_quota *q) {
  for (size_t i = 0; i < TABLE_SIZE; i++) {
    for (struct usage *u = q->table[i], *next; u; u = next) {
      next = u->next;
      free(u);
    }
    q->table[i] = NULL;
  }
  q->n = 0;
}

static struct usage *find(struct stm_quota *q, const char *agent, bool create) {
  size_t slot = slot_of(agent);
  for (struct usage *u = q->table[slot]; u; u = u->next)
    if (strcmp(u->agent, agent) == 0)
      return u;
  if (!create)
    return NULL;
  if (q->n >= STM_QUOTA_MAX_AGENTS && strcmp(agent, OVERFLOW_AGENT) != 0)
    return find(q, OVERFLOW_AGENT, true); /* memory stays bounded */
  size_t len = strlen(agent);
  struct usage *u = calloc(1, sizeof *u + len + 1);
  if (u == NULL)
    return NULL;
  memcpy(u->agent, agent, len + 1);
  u->next = q->table[slot];
  q->table[slot] = u;
  q->n++;
  return u;
}

static void save(struct stm_quota *q) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", q->path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL) {
    stm_log_warn("cannot save quota usage to %s: %s", tmp, strerror(errno));
    return;
  }
  fprintf(f, "window %lld\n", (long long)q->window);
  for (size_t i = 0; i < TABLE_SIZE; i++)
    for (struct usage *u = q->table[i]; u; u = u->next)
      fprintf(f, "%llu %s\n", (unsigned long long)u->used, u->agent);
  bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, q->path) != 0)
    stm_log_warn("cannot save quota usage to %s: %s", q->path, strerror(errno));
  q->dirty = false;
}

static void load(struct stm_quota *q) {
  FILE *f = fopen(q->path, "r");
  if (f == NULL)
    return;
  char line[AGENT_MAX + 64];
  if (fgets(line, sizeof line, f) && strncmp(line, "window ", 7) == 0) {
    char *end = NULL;
    errno = 0;
    long long window = strtoll(line + 7, &end, 10);
    if (errno == 0 && end != line + 7 && (*end == '\n' || *end == '\0'))
      q->window = window;
  }
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *sp = strchr(line, ' ');
    if (sp == NULL)
      continue;
    *sp = '\0';
    struct usage *u = find(q, sp + 1, true);
    if (u)
      u->used = strtoull(line, NULL, 10);
  }
  fclose(f);
}

static int parse_overrides(struct stm_quota *q, const char *spec,
                           struct stm_error *err) {
  for (const char *p = spec ? spec : ""; *p;) {
    p += strspn(p, ", \t");
    size_t n = strcspn(p, ",");
    if (n == 0)
      break;
    const char *eq = memchr(p, '=', n);
    char *end = NULL;
    unsigned long long v = eq ? strtoull(eq + 1, &end, 10) : 0;
    if (eq == NULL || eq == p || (size_t)(eq - p) >= AGENT_MAX ||
        end == eq + 1 || end != p + n)
      return stm_error_set(err, STM_EINVAL, "quota-overrides",
                           "--quota-overrides (STEMEDB_QUOTA_OVERRIDES): "
                           "\"%.*s\" is not AGENT=UNITS",
                           (int)n, p);
    struct override *o =
        realloc(q->overrides, (q->n_overrides + 1) * sizeof *o);
    if (o == NULL)
      return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
    q->overrides = o;
    snprintf(o[q->n_overrides].agent, AGENT_MAX, "%.*s", (int)(eq - p), p);
    o[q->n_overrides++].limit = v;
    p += n;
  }
  return 0;
}

int stm_quota_open(const char *data_dir, int64_t per_hour,
                   const char *overrides, struct stm_quota **out,
                   struct stm_error *err) {
  *out = NULL;
  if (per_hour < 0)
    return stm_error_set(err, STM_EINVAL, "quota-per-hour",
                         "--quota-per-hour (STEMEDB_QUOTA_PER_HOUR) must be "
                         ">= 0 (0: off)");
  if (per_hour == 0)
    return 0;
  struct stm_quota *q = calloc(1, sizeof *q);
  if (q == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  q->per_hour = (uint64_t)per_hour;
  int rc = parse_overrides(q, overrides, err);
  if (rc) {
    free(q->overrides);
    free(q);
    return rc;
  }
  snprintf(q->path, sizeof q->path, "%s/quota.log", data_dir);
  pthread_mutex_init(&q->lock, NULL);
  load(q);
  *out = q;
  return 0;
}

void stm_quota_close(struct stm_quota *q) {
  if (q == NULL)
    return;
  if (q->dirty)
    save(q);
  clear(q);
  pthread_mutex_destroy(&q->lock);
  free(q->overrides);
  free(q);
}

static uint64_t limit_of(const struct stm_quota *q, const char *agent) {
  for (size_t i = 0; i < q->n_overrides; i++)
    if (strcmp(q->overrides[i].agent, agent) == 0)
      return q->overrides[i].limit;
  return q->per_hour;
}

void stm_quota_charge(struct stm_quota *q, const char *agent, uint64_t cost,
                      int64_t now_s, struct stm_quota_verdict *v) {
  int64_t window = now_s - now_s % 3600;
  uint64_t limit = limit_of(q, agent);
  pthread_mutex_lock(&q->lock);
  if (window != q->window) { /* a new hour: everyone starts again */
    clear(q);
    q->window = window;
    q->dirty = true;
  }
  struct usage *u = find(q, agent, true);
  uint64_t used = u ? u->used : 0;
  v->allowed = used + cost <= limit;
  if (v->allowed && u) {
    u->used += cost;
    used = u->used;
    q->dirty = true;
  }
  if (q->dirty && now_s != q->saved_s) {
    q->saved_s = now_s;
    save(q);
  }
  pthread_mutex_unlock(&q->lock);
  v->limit = limit;
  v->remaining = used < limit ? limit - used : 0;
  v->reset_s = (uint32_t)(window + 3600 - now_s);
}
