/*
 * ratelimit.c - the rules of a spec and a chained hash table of buckets
 * keyed by (rule, identity) under one mutex (ratelimit.h).
 */
#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RULES 64
#define NAME_MAX_LEN 64
#define TABLE_SIZE 8192

struct rule {
  char name[NAME_MAX_LEN]; /* "Assert", or "*" */
  double rate;             /* tokens per second */
  double burst;
};

struct bucket {
  struct bucket *next;
  int rule;
  double tokens;
  int64_t last_ns;
  char identity[]; /* NUL-terminated */
};

struct stm_ratelimit {
  struct rule rules[MAX_RULES];
  int n_rules;
  int star; /* index of "*", or -1 */
  pthread_mutex_t lock;
  struct bucket *table[TABLE_SIZE];
  size_t n_buckets;
};

static int parse_rule(const char *entry, size_t len, struct rule *r,
                      struct stm_error *err) {
  char buf[160];
  if (len >= sizeof buf)
    len = sizeof buf - 1;
  memcpy(buf, entry, len);
  buf[len] = '\0';
  char *eq = strchr(buf, '='), *colon = eq ? strchr(eq, ':') : NULL;
  char *end1 = NULL, *end2 = NULL;
  if (eq && colon) {
    *eq = *colon = '\0';
    r->rate = strtod(eq + 1, &end1);
    r->burst = strtod(colon + 1, &end2);
  }
  size_t nlen = eq ? strlen(buf) : 0;
  if (!eq || !colon || nlen == 0 || nlen >= NAME_MAX_LEN || *end1 || *end2 ||
      end1 == eq + 1 || end2 == colon + 1 || !(r->rate > 0) ||
      !isfinite(r->rate) || r->burst < 1 || r->burst > 1e9 ||
      r->burst != floor(r->burst))
    return stm_error_set(err, STM_EINVAL, "rate-limits",
                         "--rate-limits (STEMEDB_RATE_LIMITS): \"%.*s\" is not "
                         "Method=RATE:BURST (RATE > 0 per second, BURST a "
                         "whole number >= 1)",
                         (int)len, entry);
  memcpy(r->name, buf, nlen + 1);
  return 0;
}

int stm_ratelimit_new(const char *spec, struct stm_ratelimit **out,
                      struct stm_error *err) {
  *out = NULL;
  if (spec == NULL || *spec == '\0' || strcmp(spec, "off") == 0)
    return 0;
  struct stm_ratelimit *rl = calloc(1, sizeof *rl);
  if (rl == NULL)
    return stm_error_set(err, STM_ENOMEM, NULL, "out of memory");
  rl->star = -1;
  for (const char *p = spec; *p;) {
    p += strspn(p, ", \t");
    size_t n = strcspn(p, ",");
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
      n--;
    if (n == 0)
      break;
    if (rl->n_rules == MAX_RULES) {
      free(rl);
      return stm_error_set(err, STM_EINVAL, "rate-limits",
                           "--rate-limits: at most %d entries", MAX_RULES);
    }
    struct rule *r = &rl->rules[rl->n_rules];
    int rc = parse_rule(p, n, r, err);
    if (rc) {
      free(rl);
      return rc;
    }
    if (strcmp(r->name, "*") == 0)
      rl->star = rl->n_rules;
    rl->n_rules++;
    p += n;
  }
  pthread_mutex_init(&rl->lock, NULL);
  *out = rl;
  return 0;
}

void stm_ratelimit_delete(struct stm_ratelimit *rl) {
  if (rl == NULL)
    return;
  for (size_t i = 0; i < TABLE_SIZE; i++)
    for (struct bucket *b = rl->table[i], *next; b; b = next) {
      next = b->next;
      free(b);
    }
  pthread_mutex_destroy(&rl->lock);
  free(rl);
}

static int find_rule(const struct stm_ratelimit *rl, const char *method) {
  for (int i = 0; i < rl->n_rules; i++)
    if (strcmp(rl->rules[i].name, method) == 0)
      return i;
  return rl->star;
}

static size_t slot_of(int rule, const char *identity) {
  uint64_t h = 1469598103934665603ULL ^ (uint64_t)rule; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)identity; *p; p++)
    h = (h ^ *p) * 1099511628211ULL;
  return (size_t)(h % TABLE_SIZE);
}

static void refill(struct bucket *b, const struct rule *r, int64_t now_ns) {
  if (now_ns > b->last_ns) {
    b->tokens += r->rate * (double)(now_ns - b->last_ns) / 1e9;
    if (b->tokens > r->burst)
      b->tokens = r->burst;
  }
  b->last_ns = now_ns;
}

/* Forget buckets that have refilled: they hold no state worth keeping. */
static void sweep(struct stm_ratelimit *rl, int64_t now_ns) {
  for (size_t i = 0; i < TABLE_SIZE; i++)
    for (struct bucket **pp = &rl->table[i]; *pp;) {
      struct bucket *b = *pp;
      refill(b, &rl->rules[b->rule], now_ns);
      if (b->tokens >= rl->rules[b->rule].burst) {
        *pp = b->next;
        free(b);
        rl->n_buckets--;
      } else {
        pp = &b->next;
      }
    }
}

static struct bucket *lookup(struct stm_ratelimit *rl, int rule,
                             const char *identity, int64_t now_ns) {
  size_t slot = slot_of(rule, identity);
  for (struct bucket *b = rl->table[slot]; b; b = b->next)
    if (b->rule == rule && strcmp(b->identity, identity) == 0)
      return b;
  if (rl->n_buckets >= STM_RATELIMIT_MAX_BUCKETS)
    sweep(rl, now_ns);
  /* Still full: every known identity is busy; the newcomer shares one
   * bucket per rule rather than growing the table. */
  if (rl->n_buckets >= STM_RATELIMIT_MAX_BUCKETS && strcmp(identity, "*") != 0)
    return lookup(rl, rule, "*", now_ns);
  size_t len = strlen(identity);
  struct bucket *b = malloc(sizeof *b + len + 1);
  if (b == NULL)
    return NULL;
  b->rule = rule;
  b->tokens = rl->rules[rule].burst;
  b->last_ns = now_ns;
  memcpy(b->identity, identity, len + 1);
  b->next = rl->table[slot];
  rl->table[slot] = b;
  rl->n_buckets++;
  return b;
}

bool stm_ratelimit_take(struct stm_ratelimit *rl, const char *method,
                        const char *identity, int64_t now_ns,
                        struct stm_ratelimit_verdict *v) {
  if (rl == NULL)
    return false;
  int rule = find_rule(rl, method);
  if (rule < 0)
    return false;
  const struct rule *r = &rl->rules[rule];
  pthread_mutex_lock(&rl->lock);
  struct bucket *b = lookup(rl, rule, identity, now_ns);
  if (b == NULL) { /* out of memory: let the call through */
    pthread_mutex_unlock(&rl->lock);
    return false;
  }
  refill(b, r, now_ns);
  v->allowed = b->tokens >= 1.0;
  if (v->allowed)
    b->tokens -= 1.0;
  double tokens = b->tokens;
  pthread_mutex_unlock(&rl->lock);
  v->limit = (uint32_t)r->burst;
  v->remaining = (uint32_t)floor(tokens);
  v->reset_s = (uint32_t)ceil((r->burst - tokens) / r->rate);
  v->retry_after_s = v->allowed ? 0 : (uint32_t)ceil((1.0 - tokens) / r->rate);
  if (!v->allowed && v->retry_after_s == 0)
    v->retry_after_s = 1;
  return true;
}
